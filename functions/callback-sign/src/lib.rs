//! Huawei Live's snapshot callback signature, in one place for the notifier
//! that signs, the receiver that checks, and `livesnap verify`:
//!
//! `auth_sign = hex(HMAC-SHA256(key, domain + app + stream_name + snapshot_url
//! + width + height + obs_addr.bucket + obs_addr.location + obs_addr.object
//! + auth_timestamp))`, numbers in decimal; `auth_timestamp` is the expiry.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// The signed fields of a callback, in signing order.
pub const SIGNED_FIELDS: [&[&str]; 9] = [
    &["domain"],
    &["app"],
    &["stream_name"],
    &["snapshot_url"],
    &["width"],
    &["height"],
    &["obs_addr", "bucket"],
    &["obs_addr", "location"],
    &["obs_addr", "object"],
];

/// Why a callback does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// Not JSON, or a field is missing or of the wrong type.
    Malformed(String),
    /// No `auth_sign`/`auth_timestamp`.
    Unsigned,
    /// The signature does not match.
    BadSignature,
    /// The signature expired at `expired`; checked at `now`.
    Expired {
        /// `auth_timestamp`.
        expired: u64,
        /// The time checked against.
        now: u64,
    },
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyError::Malformed(m) => write!(f, "malformed callback body: {m}"),
            VerifyError::Unsigned => f.write_str("unsigned callback"),
            VerifyError::BadSignature => f.write_str("auth_sign does not match"),
            VerifyError::Expired { expired, now } => write!(f, "signature expired at {expired} (now {now})"),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Signs the field values (in [`SIGNED_FIELDS`] order) and the expiry.
pub fn sign(key: &str, fields: &[String; 9], expires: u64) -> String {
    hex::encode(mac(key, fields, expires).finalize().into_bytes())
}

fn mac(key: &str, fields: &[String; 9], expires: u64) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("hmac takes any key length");
    for f in fields {
        mac.update(f.as_bytes());
    }
    mac.update(expires.to_string().as_bytes());
    mac
}

/// Checks a callback body with `key` at unix time `now` (constant-time
/// comparison); returns the expiry.
pub fn verify(body: &[u8], key: &str, now: u64) -> Result<u64, VerifyError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    let (Some(sign), Some(expires)) = (v.get("auth_sign"), v.get("auth_timestamp")) else {
        return Err(VerifyError::Unsigned);
    };
    let expires = expires.as_u64().ok_or_else(|| VerifyError::Malformed("auth_timestamp is not an integer".into()))?;
    let sign = sign.as_str().ok_or_else(|| VerifyError::Malformed("auth_sign is not a string".into()))?;
    let sign = hex::decode(sign).map_err(|_| VerifyError::BadSignature)?;
    let mut fields: [String; 9] = Default::default();
    for (slot, path) in fields.iter_mut().zip(SIGNED_FIELDS) {
        let x = path.iter().try_fold(&v, |x, p| x.get(p)).ok_or_else(|| VerifyError::Malformed(format!("missing {}", path.join("."))))?;
        *slot = match x {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err(VerifyError::Malformed(format!("{} is not a string or number", path.join(".")))),
        };
    }
    mac(key, &fields, expires).verify_slice(&sign).map_err(|_| VerifyError::BadSignature)?;
    if expires < now {
        return Err(VerifyError::Expired { expired: expires, now });
    }
    Ok(expires)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "k3y-for-snapshot-callback-0123456789abcdef";
    const URL: &str = "http://127.0.0.1:8080/obs/snapshots/snapshot/push.example.com/live/test001/1764070000.jpg";
    const OBJECT: &str = "snapshot/push.example.com/live/test001/1764070000.jpg";
    const SIGN: &str = "f7a97b11c5043d7125b4cd0c50c1d9f9afe86104fc23f1f91dff2bd2c213be0f";

    // The independently computed vector from DEVELOPERS.md.
    #[test]
    fn reference_vector() {
        let fields = ["push.example.com", "live", "test001", URL, "1280", "720", "snapshots", "region-local", OBJECT].map(String::from);
        assert_eq!(sign(KEY, &fields, 1_764_070_300), SIGN);
        let body = serde_json::json!({"domain": "push.example.com", "app": "live", "stream_name": "test001",
            "snapshot_url": URL, "width": 1280, "height": 720,
            "obs_addr": {"bucket": "snapshots", "location": "region-local", "object": OBJECT},
            "auth_timestamp": 1_764_070_300u64, "auth_sign": SIGN})
        .to_string();
        assert_eq!(verify(body.as_bytes(), KEY, 1_764_070_000), Ok(1_764_070_300));
        assert!(matches!(verify(body.as_bytes(), KEY, 1_764_070_301), Err(VerifyError::Expired { .. })));
        assert_eq!(verify(body.as_bytes(), "another-key-another-key-another-key", 0), Err(VerifyError::BadSignature));
        let tampered = body.replace("\"width\":1280", "\"width\":1281");
        assert_eq!(verify(tampered.as_bytes(), KEY, 0), Err(VerifyError::BadSignature));
        assert_eq!(verify(b"{\"domain\":\"x\"}", KEY, 0), Err(VerifyError::Unsigned));
    }
}
