//! Request authentication as Huawei's API gateway does it: AK/SK signing
//! (`SDK-HMAC-SHA256`, as huaweicloudsdkcore's signer builds it), or a plain
//! `X-Auth-Token` for curl. The access key or token names the project; the
//! caller looks it up and checks the signature with that project's secret.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::credentials::Secret;
use crate::encoding::{UNRESERVED, percent_decode, percent_encode};

/// How far `X-Sdk-Date` may be from the server clock.
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);
const ALGORITHM: &str = "SDK-HMAC-SHA256";
/// `X-Sdk-Content-Sha256` for a body the signature does not cover.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// A request as the signature covers it.
pub struct SignedRequest<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Path as received (percent-encoded).
    pub path: &'a str,
    /// Raw query string.
    pub query: &'a str,
    /// Headers.
    pub headers: &'a HeaderMap,
    /// Body bytes.
    pub body: &'a [u8],
}

/// Why a request is refused. Everything decided after the access key is
/// known reads [`AuthError::BadSignature`], so answers never tell whether
/// a key exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Neither a token nor a signature.
    #[error("missing Authorization (SDK-HMAC-SHA256 signature) or X-Auth-Token")]
    Missing,
    /// The token is wrong.
    #[error("X-Auth-Token is not valid")]
    BadToken,
    /// Another scheme than SDK-HMAC-SHA256.
    #[error("the Authorization scheme must be {ALGORITHM}")]
    Scheme,
    /// A field of Authorization is missing.
    #[error("Authorization needs Access, SignedHeaders and Signature")]
    Incomplete,
    /// No `X-Sdk-Date`.
    #[error("missing X-Sdk-Date")]
    MissingDate,
    /// `X-Sdk-Date` is not a date.
    #[error("X-Sdk-Date is not YYYYMMDDTHHMMSSZ")]
    BadDate,
    /// `X-Sdk-Date` is too far from the server clock.
    #[error("X-Sdk-Date {0} is more than 15 minutes from the server's clock")]
    Skewed(String),
    /// A header that must be signed is not among SignedHeaders.
    #[error("SignedHeaders must include {0}")]
    MustSign(&'static str),
    /// A header named in SignedHeaders is not in the request.
    #[error("signed header {0} is missing")]
    MissingSignedHeader(String),
    /// `X-Sdk-Content-Sha256` is neither a SHA-256 nor UNSIGNED-PAYLOAD.
    #[error("X-Sdk-Content-Sha256 must be the hex SHA-256 of the body or {UNSIGNED_PAYLOAD}")]
    BadContentHash,
    /// UNSIGNED-PAYLOAD with a body, which the operator does not allow.
    #[error("X-Sdk-Content-Sha256: {UNSIGNED_PAYLOAD} is not accepted; sign the body")]
    UnsignedPayload,
    /// Unknown access key, wrong secret, or a changed request or body.
    #[error("the signature does not match (unknown access key, wrong secret key, or the request was changed)")]
    BadSignature,
    /// Valid credentials of another project than the path's.
    #[error("the credentials are not those of project '{0}'")]
    OtherProject(String),
    /// A state-changing signed request seen before.
    #[error("this signed request was already received; sign every request anew")]
    Replayed,
    /// Too many signed requests within the skew window to remember them all.
    #[error("too many signed requests in the last 15 minutes; retry later")]
    ReplayCacheFull,
}

/// Checks the operator can relax (`[http]`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Policy {
    /// Accept `X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD` with a body.
    pub allow_unsigned_payload: bool,
}

/// What the headers alone establish.
#[derive(Debug)]
pub enum Checked {
    /// An `X-Auth-Token`, to be looked up.
    Token(Secret),
    /// A signature, fresh and over the required headers; its access key is
    /// still to be looked up and the signature checked over the body.
    Signed(Pending),
}

/// A signature whose headers checked out.
#[derive(Debug)]
pub struct Pending {
    access_key: String,
    signed_headers: Vec<String>,
    signature: String,
    date: String,
    at: SystemTime,
    content_hash: Option<String>,
    policy: Policy,
}

/// Checks what can be checked before the body is read and without knowing
/// the project: for a signature its form, the date and the signed headers.
pub fn check_headers(policy: Policy, headers: &HeaderMap, now: SystemTime) -> Result<Checked, AuthError> {
    if let Some(token) = headers.get("x-auth-token") {
        let token = std::str::from_utf8(token.as_bytes()).map_err(|_| AuthError::BadToken)?;
        if token.is_empty() {
            return Err(AuthError::BadToken);
        }
        return Ok(Checked::Token(Secret::new(token)));
    }
    let auth = headers.get("authorization").ok_or(AuthError::Missing)?.to_str().map_err(|_| AuthError::Scheme)?;
    let fields = auth.strip_prefix(ALGORITHM).ok_or(AuthError::Scheme)?;
    let (mut access, mut signed, mut signature) = (None, None, None);
    for part in fields.split(',') {
        match part.trim().split_once('=') {
            Some(("Access", v)) => access = Some(v),
            Some(("SignedHeaders", v)) => signed = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => {}
        }
    }
    let (Some(access), Some(signed), Some(signature)) = (access, signed, signature) else {
        return Err(AuthError::Incomplete);
    };
    // Everything that does not depend on the key comes first, so what is
    // said about the key is only ever BadSignature.
    let date = header(headers, "x-sdk-date").ok_or(AuthError::MissingDate)?;
    let at = parse_date(&date).ok_or(AuthError::BadDate)?;
    let skew = now.duration_since(at).unwrap_or_else(|e| e.duration());
    if skew > MAX_SKEW {
        return Err(AuthError::Skewed(date));
    }
    let signed_headers: Vec<String> = signed.split(';').map(str::to_string).collect();
    // Unsigned, the date would allow replays forever and the host would
    // let a request signed for one server be sent to another.
    for required in ["host", "x-sdk-date"] {
        if !signed_headers.iter().any(|h| h.eq_ignore_ascii_case(required)) {
            return Err(AuthError::MustSign(required));
        }
    }
    for name in &signed_headers {
        if header(headers, name).is_none() {
            return Err(AuthError::MissingSignedHeader(name.clone()));
        }
    }
    let content_hash = header(headers, "x-sdk-content-sha256");
    match content_hash.as_deref() {
        None => {}
        Some(UNSIGNED_PAYLOAD) if !policy.allow_unsigned_payload && declares_body(headers) => return Err(AuthError::UnsignedPayload),
        Some(UNSIGNED_PAYLOAD) => {}
        Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {}
        Some(_) => return Err(AuthError::BadContentHash),
    }
    Ok(Checked::Signed(Pending {
        access_key: access.to_string(),
        signed_headers,
        signature: signature.to_string(),
        date,
        at,
        content_hash,
        policy,
    }))
}

impl Pending {
    /// The access key that signed (not yet known to be anyone's).
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// Checks the signature with the access key's `secret_key` over the
    /// request as it arrived, body included.
    pub fn verify(&self, secret_key: &Secret, r: &SignedRequest<'_>) -> Result<(), AuthError> {
        let actual = hex::encode(Sha256::digest(r.body));
        // What the client hashed as the payload, as the SDKs do: an empty
        // body is always the empty hash; a claimed hash must be the body's.
        let mut payloads = vec![actual.clone()];
        match self.content_hash.as_deref() {
            None => {}
            Some(UNSIGNED_PAYLOAD) if r.body.is_empty() => payloads.push(UNSIGNED_PAYLOAD.into()),
            Some(UNSIGNED_PAYLOAD) if self.policy.allow_unsigned_payload => payloads = vec![UNSIGNED_PAYLOAD.into()],
            Some(UNSIGNED_PAYLOAD) => return Err(AuthError::BadSignature),
            Some(claimed) if claimed.eq_ignore_ascii_case(&actual) => payloads.push(claimed.to_string()),
            Some(_) => return Err(AuthError::BadSignature),
        }
        let names: Vec<&str> = self.signed_headers.iter().map(String::as_str).collect();
        for payload in &payloads {
            let expected = signature_for(secret_key.expose(), r, &names, &self.date, payload)?;
            if bool::from(expected.as_bytes().ct_eq(self.signature.as_bytes())) {
                return Ok(());
            }
        }
        Err(AuthError::BadSignature)
    }

    /// The signature (hex), which identifies the request.
    pub fn signature(&self) -> &str {
        &self.signature
    }

    /// `X-Sdk-Date`.
    pub fn date(&self) -> SystemTime {
        self.at
    }
}

/// The hex signature of a request whose payload hashes to `payload`, as
/// the SDK computes it.
pub fn signature_for(sk: &str, r: &SignedRequest<'_>, signed_headers: &[&str], date: &str, payload: &str) -> Result<String, AuthError> {
    let mut canonical_headers = String::new();
    for name in signed_headers {
        let value = header(r.headers, name).ok_or_else(|| AuthError::MissingSignedHeader(name.to_string()))?;
        canonical_headers.push_str(&format!("{name}:{}\n", value.trim()));
    }
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        r.method.to_uppercase(),
        canonical_uri(r.path),
        canonical_query(r.query),
        canonical_headers,
        signed_headers.join(";"),
        payload
    );
    let string_to_sign = format!("{ALGORITHM}\n{date}\n{}", hex::encode(Sha256::digest(canonical.as_bytes())));
    let mut mac = Hmac::<Sha256>::new_from_slice(sk.as_bytes()).expect("hmac takes any key length");
    mac.update(string_to_sign.as_bytes());
    Ok(hex::encode(mac.finalize().into_bytes()))
}

/// Signatures of state-changing requests seen within the skew window, so a
/// captured request cannot be sent again.
pub struct ReplayCache {
    seen: Mutex<HashMap<String, SystemTime>>,
    capacity: usize,
}

impl ReplayCache {
    /// Remembers at most `capacity` signatures at a time.
    pub fn new(capacity: usize) -> Self {
        Self { seen: Mutex::new(HashMap::new()), capacity: capacity.max(1) }
    }

    /// Records a verified signature dated `date`; refuses one seen before.
    pub fn first_use(&self, signature: &str, date: SystemTime, now: SystemTime) -> Result<(), AuthError> {
        let mut seen = self.seen.lock().unwrap();
        if seen.get(signature).is_some_and(|expires| *expires > now) {
            return Err(AuthError::Replayed);
        }
        if seen.len() >= self.capacity {
            seen.retain(|_, expires| *expires > now);
            if seen.len() >= self.capacity {
                return Err(AuthError::ReplayCacheFull);
            }
        }
        // Past date + MAX_SKEW the date check refuses it anyway.
        seen.insert(signature.to_string(), date + MAX_SKEW);
        Ok(())
    }
}

/// Whether the request says a body follows.
fn declares_body(headers: &HeaderMap) -> bool {
    let length = headers.get("content-length").map(|v| v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()));
    // An unreadable Content-Length counts as a body.
    headers.contains_key("transfer-encoding") || length.is_some_and(|n| n != Some(0))
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn canonical_uri(path: &str) -> String {
    let mut uri: String = percent_decode(path).split('/').map(|segment| percent_encode(segment, UNRESERVED)).collect::<Vec<_>>().join("/");
    if !uri.ends_with('/') {
        uri.push('/');
    }
    uri
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{}={}", percent_encode(k, UNRESERVED), percent_encode(v, UNRESERVED))).collect::<Vec<_>>().join("&")
}

fn parse_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (n(0..4)?, n(4..6)?, n(6..8)?, n(9..11)?, n(11..13)?, n(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (mo + if mo > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + se;
    u64::try_from(secs).ok().map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::credentials::ApiCredentials;

    /// One project's check, as the service does it for the project a key
    /// or token names.
    fn verify(creds: &ApiCredentials, policy: Policy, r: &SignedRequest<'_>, now: SystemTime) -> Result<(), AuthError> {
        match check_headers(policy, r.headers, now)? {
            Checked::Token(t) if creds.token.matches(t.expose()) => Ok(()),
            Checked::Token(_) => Err(AuthError::BadToken),
            Checked::Signed(p) if crate::secret::equal(p.access_key(), &creds.access_key) => p.verify(&creds.secret_key, r),
            Checked::Signed(_) => Err(AuthError::BadSignature),
        }
    }

    #[test]
    fn dates_and_canonical_forms() {
        assert_eq!(parse_date("20251125T112640Z"), Some(UNIX_EPOCH + Duration::from_secs(1_764_070_000)));
        assert_eq!(parse_date("2025-11-25"), None);
        assert_eq!(canonical_uri("/v1/p1/stream/snapshot"), "/v1/p1/stream/snapshot/");
        assert_eq!(canonical_query("offset=0&domain=a.com&app_name=live%20x&limit=10"), "app_name=live%20x&domain=a.com&limit=10&offset=0");
    }

    #[test]
    fn signature_roundtrip_and_refusals() {
        let creds =
            ApiCredentials { project_id: "p".into(), access_key: "AK".into(), secret_key: Secret::new("SK"), token: Secret::new("tok") };
        let strict = Policy::default();
        let now = UNIX_EPOCH + Duration::from_secs(1_764_070_000);
        let mut headers = HeaderMap::new();
        headers.insert("host", "127.0.0.1:8080".parse().unwrap());
        headers.insert("x-sdk-date", "20251125T112640Z".parse().unwrap());
        headers.insert("content-type", "application/json".parse().unwrap());
        fn req(headers: &HeaderMap) -> SignedRequest<'_> {
            SignedRequest { method: "POST", path: "/v1/p/stream/snapshot", query: "", headers, body: br#"{"domain":"a"}"# }
        }
        let body_hash = hex::encode(Sha256::digest(br#"{"domain":"a"}"#));
        let sign = |headers: &HeaderMap, names: &str, payload: &str| {
            let list: Vec<&str> = names.split(';').collect();
            let sig = signature_for("SK", &req(headers), &list, "20251125T112640Z", payload).unwrap();
            format!("SDK-HMAC-SHA256 Access=AK, SignedHeaders={names}, Signature={sig}").parse().unwrap()
        };
        headers.insert("authorization", sign(&headers, "content-type;host;x-sdk-date", &body_hash));
        assert_eq!(verify(&creds, strict, &req(&headers), now), Ok(()));
        let tampered = SignedRequest { body: br#"{"domain":"b"}"#, ..req(&headers) };
        assert_eq!(verify(&creds, strict, &tampered, now), Err(AuthError::BadSignature));
        let late = now + Duration::from_secs(16 * 60);
        assert!(verify(&creds, strict, &req(&headers), late).unwrap_err().to_string().contains("15 minutes"));

        // The claimed payload hash must be the body's: a swapped body with
        // the original hash alongside is refused.
        let mut swapped = headers.clone();
        swapped.insert("x-sdk-content-sha256", body_hash.parse().unwrap());
        assert_eq!(verify(&creds, strict, &req(&swapped), now), Ok(()), "the right hash is fine");
        let other_body = SignedRequest { body: br#"{"domain":"b"}"#, ..req(&swapped) };
        assert_eq!(verify(&creds, strict, &other_body, now), Err(AuthError::BadSignature));

        // UNSIGNED-PAYLOAD only when the operator allows it.
        let mut unsigned = headers.clone();
        unsigned.insert("x-sdk-content-sha256", UNSIGNED_PAYLOAD.parse().unwrap());
        unsigned.insert("content-length", "14".parse().unwrap());
        unsigned.insert("authorization", sign(&unsigned, "content-type;host;x-sdk-date", UNSIGNED_PAYLOAD));
        assert_eq!(verify(&creds, strict, &req(&unsigned), now), Err(AuthError::UnsignedPayload));
        assert_eq!(verify(&creds, Policy { allow_unsigned_payload: true }, &req(&unsigned), now), Ok(()));

        // host and x-sdk-date must be signed.
        let mut no_host = headers.clone();
        no_host.insert("authorization", sign(&no_host, "content-type;x-sdk-date", &body_hash));
        assert_eq!(verify(&creds, strict, &req(&no_host), now), Err(AuthError::MustSign("host")));

        // An unknown key reads like a wrong signature.
        let mut other = headers.clone();
        let auth = other["authorization"].to_str().unwrap().replace("Access=AK", "Access=XX");
        other.insert("authorization", auth.parse().unwrap());
        assert_eq!(verify(&creds, strict, &req(&other), now), Err(AuthError::BadSignature));

        let mut token = HeaderMap::new();
        token.insert("x-auth-token", "tok".parse().unwrap());
        assert_eq!(verify(&creds, strict, &req(&token), now), Ok(()));
        token.insert("x-auth-token", "".parse().unwrap());
        assert_eq!(verify(&creds, strict, &req(&token), now), Err(AuthError::BadToken));
        let empty = HeaderMap::new();
        assert_eq!(verify(&creds, strict, &req(&empty), now), Err(AuthError::Missing));
    }

    #[test]
    fn a_signature_is_accepted_once_within_the_window() {
        let cache = ReplayCache::new(2);
        let date = UNIX_EPOCH + Duration::from_secs(1_764_070_000);
        assert_eq!(cache.first_use("a", date, date), Ok(()));
        assert_eq!(cache.first_use("a", date, date + Duration::from_secs(60)), Err(AuthError::Replayed));
        assert_eq!(cache.first_use("b", date, date), Ok(()));
        assert_eq!(cache.first_use("c", date, date), Err(AuthError::ReplayCacheFull));
        // Expired entries make room.
        let later = date + MAX_SKEW + Duration::from_secs(1);
        assert_eq!(cache.first_use("c", later, later), Ok(()));
    }
}
