//! Checking a callback's `auth_sign` and expiry, as a receiver does.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// Why a callback does not verify.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not JSON, or a field is missing or of the wrong type.
    #[error("malformed callback body: {0}")]
    Malformed(String),
    /// No `auth_sign`/`auth_timestamp`: the callback is unsigned.
    #[error("the callback is not signed (no auth_sign)")]
    Unsigned,
    /// The signature does not match.
    #[error("auth_sign does not match: wrong key or tampered body")]
    BadSignature,
    /// The signature expired.
    #[error("the signature expired at {expired} (now {now})")]
    Expired {
        /// `auth_timestamp`.
        expired: u64,
        /// The time checked against.
        now: u64,
    },
}

/// Verifies a callback body with `key` at unix time `now`; returns the
/// expiry on success.
pub fn verify_callback(body: &[u8], key: &str, now: u64) -> Result<u64, VerifyError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    let (Some(sign), Some(expires)) = (v.get("auth_sign"), v.get("auth_timestamp")) else {
        return Err(VerifyError::Unsigned);
    };
    let text = |path: &[&str]| -> Result<String, VerifyError> {
        let mut x = &v;
        for p in path {
            x = x.get(p).ok_or_else(|| VerifyError::Malformed(format!("missing {}", path.join("."))))?;
        }
        match x {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            _ => Err(VerifyError::Malformed(format!("{} is not a string or number", path.join(".")))),
        }
    };
    let expires = expires.as_u64().ok_or_else(|| VerifyError::Malformed("auth_timestamp is not an integer".into()))?;
    let sign = sign.as_str().ok_or_else(|| VerifyError::Malformed("auth_sign is not a string".into()))?;
    let sign = hex::decode(sign).map_err(|_| VerifyError::BadSignature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("hmac takes any key length");
    for path in [
        &["domain"][..],
        &["app"],
        &["stream_name"],
        &["snapshot_url"],
        &["width"],
        &["height"],
        &["obs_addr", "bucket"],
        &["obs_addr", "location"],
        &["obs_addr", "object"],
    ] {
        mac.update(text(path)?.as_bytes());
    }
    mac.update(expires.to_string().as_bytes());
    mac.verify_slice(&sign).map_err(|_| VerifyError::BadSignature)?;
    if expires < now {
        return Err(VerifyError::Expired { expired: expires, now });
    }
    Ok(expires)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "k3y-for-snapshot-callback-0123456789abcdef";
    const BODY: &str = r#"{"domain":"push.example.com","app":"live","stream_name":"test001",
        "snapshot_url":"http://127.0.0.1:8080/obs/snapshots/snapshot/push.example.com/live/test001/1764070000.jpg",
        "width":1280,"height":720,"obs_addr":{"bucket":"snapshots","location":"region-local",
        "object":"snapshot/push.example.com/live/test001/1764070000.jpg"},"auth_timestamp":1764070300,
        "auth_sign":"f7a97b11c5043d7125b4cd0c50c1d9f9afe86104fc23f1f91dff2bd2c213be0f"}"#;

    #[test]
    fn reference_vector_verifies_until_it_expires() {
        assert_eq!(verify_callback(BODY.as_bytes(), KEY, 1_764_070_000), Ok(1_764_070_300));
        assert!(matches!(verify_callback(BODY.as_bytes(), KEY, 1_764_070_301), Err(VerifyError::Expired { .. })));
        assert_eq!(verify_callback(BODY.as_bytes(), "another-key-another-key-another-key", 0), Err(VerifyError::BadSignature));
        let tampered = BODY.replace("\"width\":1280", "\"width\":1281");
        assert_eq!(verify_callback(tampered.as_bytes(), KEY, 0), Err(VerifyError::BadSignature));
        assert_eq!(verify_callback(b"{\"domain\":\"x\"}", KEY, 0), Err(VerifyError::Unsigned));
    }
}
