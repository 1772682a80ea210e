//! Ingest URL validation as Huawei Cloud Live does it ("key chain" per push
//! domain): the publisher's URL carries a signature over the stream name
//! and a start time, valid for the domain's `timeout`. Without it anyone who
//! reaches the port could publish, or squat a stream name.
//!
//! Supported `auth_type`s (Huawei's recipes):
//! - `d_sha256` (recommended): `hwSecret = hex(HMAC-SHA256(key, stream + hwTime))`,
//!   `hwTime = hex(unix seconds)`.
//! - `b_md5`: `txSecret = hex(MD5(key + stream + txTime))`, `txTime = hex(unix seconds)`.
//! - `a_md5`: `auth_key = {timestamp}-{rand}-{uid}-{md5}` with
//!   `md5 = hex(MD5("/{app}/{stream}-{timestamp}-{rand}-{uid}-{key}"))`, timestamp
//!   in decimal unix seconds.
//!
//! Huawei's `c_aes` is not supported (its plaintext layout is not published).

use std::fmt;
use std::time::Duration;

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How a domain's ingest URLs are signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthType {
    /// `hwSecret`/`hwTime`, HMAC-SHA256.
    DSha256,
    /// `txSecret`/`txTime`, MD5.
    BMd5,
    /// `auth_key`, MD5.
    AMd5,
}

impl AuthType {
    /// Huawei's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::DSha256 => "d_sha256",
            AuthType::BMd5 => "b_md5",
            AuthType::AMd5 => "a_md5",
        }
    }
}

impl std::str::FromStr for AuthType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "d_sha256" => Ok(AuthType::DSha256),
            "b_md5" => Ok(AuthType::BMd5),
            "a_md5" => Ok(AuthType::AMd5),
            "c_aes" => Err("auth_type 'c_aes' is not supported; use 'd_sha256'".into()),
            other => Err(format!("auth_type '{other}' is not one of d_sha256, b_md5, a_md5")),
        }
    }
}

/// A domain's key chain.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyChain {
    /// The shared key.
    pub key: String,
    /// How URLs are signed.
    pub auth_type: AuthType,
    /// How long a signed URL stays valid after its time.
    pub timeout: Duration,
}

impl fmt::Debug for KeyChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyChain").field("key", &"***").field("auth_type", &self.auth_type).field("timeout", &self.timeout).finish()
    }
}

/// Clock skew accepted for a signature time in the future.
const FUTURE_SKEW: u64 = 300;

/// Why a publish URL is refused. The texts never include the key or the
/// expected signature.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlAuthError {
    /// A parameter the auth type needs is missing.
    #[error("the URL has no {0} parameter (the domain requires signed ingest URLs)")]
    Missing(&'static str),
    /// A parameter is not in its format.
    #[error("{0} is malformed")]
    Malformed(&'static str),
    /// The URL's time plus the domain's timeout has passed.
    #[error("the signed URL expired {0} s ago")]
    Expired(u64),
    /// The URL's time is too far ahead of the server clock.
    #[error("the signed URL's time is {0} s in the future")]
    Future(u64),
    /// The signature does not match.
    #[error("the signature does not match")]
    BadSignature,
}

impl KeyChain {
    /// Validates a key: 32 letters and digits, not all of one kind (Huawei's rule).
    pub fn check_key(key: &str) -> Result<(), String> {
        let ok = key.len() == 32
            && key.chars().all(|c| c.is_ascii_alphanumeric())
            && key.chars().any(|c| c.is_ascii_digit())
            && key.chars().any(|c| c.is_ascii_alphabetic());
        if ok { Ok(()) } else { Err("key: 32 letters and digits, not all letters or all digits".into()) }
    }

    /// Checks a publish of `app`/`stream` with URL parameters `params` at
    /// unix time `now`.
    pub fn verify(&self, app: &str, stream: &str, params: &[(String, String)], now: u64) -> Result<(), UrlAuthError> {
        let param = |k: &'static str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).ok_or(UrlAuthError::Missing(k));
        let hex_time = |k: &'static str| -> Result<u64, UrlAuthError> {
            let v = param(k)?;
            u64::from_str_radix(v, 16).map_err(|_| UrlAuthError::Malformed(k))
        };
        let (at, ok) = match self.auth_type {
            AuthType::DSha256 => {
                let time = param("hwTime")?;
                let at = hex_time("hwTime")?;
                let mut mac = Hmac::<Sha256>::new_from_slice(self.key.as_bytes()).expect("hmac takes any key length");
                mac.update(stream.as_bytes());
                mac.update(time.as_bytes());
                let given = hex::decode(param("hwSecret")?).map_err(|_| UrlAuthError::Malformed("hwSecret"))?;
                (at, mac.verify_slice(&given).is_ok())
            }
            AuthType::BMd5 => {
                let time = param("txTime")?;
                let at = hex_time("txTime")?;
                let digest = Md5::digest(format!("{}{stream}{time}", self.key).as_bytes());
                let given = hex::decode(param("txSecret")?).map_err(|_| UrlAuthError::Malformed("txSecret"))?;
                (at, bool::from(digest.as_slice().ct_eq(&given)))
            }
            AuthType::AMd5 => {
                let value = param("auth_key")?;
                let mut parts = value.splitn(4, '-');
                let (Some(ts), Some(rand), Some(uid), Some(hash)) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
                    return Err(UrlAuthError::Malformed("auth_key"));
                };
                let at = ts.parse::<u64>().map_err(|_| UrlAuthError::Malformed("auth_key"))?;
                let digest = Md5::digest(format!("/{app}/{stream}-{ts}-{rand}-{uid}-{}", self.key).as_bytes());
                let given = hex::decode(hash).map_err(|_| UrlAuthError::Malformed("auth_key"))?;
                (at, bool::from(digest.as_slice().ct_eq(&given)))
            }
        };
        // The signature first: an unsigned time must not tell anything.
        if !ok {
            return Err(UrlAuthError::BadSignature);
        }
        if at > now + FUTURE_SKEW {
            return Err(UrlAuthError::Future(at - now));
        }
        let expires = at.saturating_add(self.timeout.as_secs());
        if expires <= now {
            return Err(UrlAuthError::Expired(now - expires));
        }
        Ok(())
    }

    /// The parameters that sign a publish of `app`/`stream` at `now` (for
    /// `livesnap sign-url` and tests).
    pub fn sign(&self, app: &str, stream: &str, now: u64) -> Vec<(String, String)> {
        match self.auth_type {
            AuthType::DSha256 => {
                let time = format!("{now:x}");
                let mut mac = Hmac::<Sha256>::new_from_slice(self.key.as_bytes()).expect("hmac takes any key length");
                mac.update(stream.as_bytes());
                mac.update(time.as_bytes());
                vec![("hwSecret".into(), hex::encode(mac.finalize().into_bytes())), ("hwTime".into(), time)]
            }
            AuthType::BMd5 => {
                let time = format!("{now:x}");
                let digest = Md5::digest(format!("{}{stream}{time}", self.key).as_bytes());
                vec![("txSecret".into(), hex::encode(digest)), ("txTime".into(), time)]
            }
            AuthType::AMd5 => {
                let mut r = [0u8; 16];
                let _ = getrandom::fill(&mut r);
                let rand = hex::encode(r);
                let digest = Md5::digest(format!("/{app}/{stream}-{now}-{rand}-0-{}", self.key).as_bytes());
                vec![("auth_key".into(), format!("{now}-{rand}-0-{}", hex::encode(digest)))]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "GCTbw44s6MPLh4GqgDpnfuFHgy25Enly";

    fn chain(auth_type: AuthType) -> KeyChain {
        KeyChain { key: KEY.into(), auth_type, timeout: Duration::from_secs(3600) }
    }

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    // The examples of Huawei's URL validation documentation.
    #[test]
    fn huawei_documentation_examples_verify() {
        let at = 0x5eed5888;
        let d = p(&[("hwSecret", "ce201856a0957413319e883c8ccae13602f01d3d91e21daf5161964cf708a6a8"), ("hwTime", "5eed5888")]);
        assert_eq!(chain(AuthType::DSha256).verify("livetest", "huawei1", &d, at + 10), Ok(()));
        let b = p(&[("txSecret", "5cdc845362c332a4ec3e09ac5d5571d6"), ("txTime", "5eed5888")]);
        assert_eq!(chain(AuthType::BMd5).verify("livetest", "huawei1", &b, at + 10), Ok(()));
        assert_eq!(chain(AuthType::DSha256).sign("livetest", "huawei1", at), d);
    }

    #[test]
    fn missing_forged_expired_and_future_urls_are_refused() {
        let c = chain(AuthType::DSha256);
        let now = 1_764_070_000;
        let good = c.sign("live", "cam", now);
        assert_eq!(c.verify("live", "cam", &good, now + 3599), Ok(()));
        assert_eq!(c.verify("live", "cam", &good, now + 3600), Err(UrlAuthError::Expired(0)));
        assert_eq!(c.verify("live", "other", &good, now), Err(UrlAuthError::BadSignature), "bound to the stream name");
        assert_eq!(c.verify("live", "cam", &[], now), Err(UrlAuthError::Missing("hwTime")));
        let forged = KeyChain { key: "0000000000000000000000000000000a".into(), ..c.clone() }.sign("live", "cam", now);
        assert_eq!(c.verify("live", "cam", &forged, now), Err(UrlAuthError::BadSignature));
        let ahead = c.sign("live", "cam", now + 3000);
        assert_eq!(c.verify("live", "cam", &ahead, now), Err(UrlAuthError::Future(3000)));
        let a = chain(AuthType::AMd5);
        let signed = a.sign("live", "cam", now);
        assert_eq!(a.verify("live", "cam", &signed, now), Ok(()));
        assert_eq!(a.verify("other", "cam", &signed, now), Err(UrlAuthError::BadSignature), "bound to the app");
        assert!(!format!("{c:?}").contains(KEY));
        assert!("c_aes".parse::<AuthType>().is_err());
        assert!(KeyChain::check_key(KEY).is_ok() && KeyChain::check_key("short").is_err());
    }
}
