//! Request authentication as Huawei's API gateway does it: AK/SK signing
//! (`SDK-HMAC-SHA256`, as huaweicloudsdkcore's signer builds it), or a plain
//! `X-Auth-Token` for curl.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::config::credentials::ApiCredentials;
use crate::encoding::{percent_decode, percent_encode};

/// How far `X-Sdk-Date` may be from the server clock.
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);
const ALGORITHM: &str = "SDK-HMAC-SHA256";

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

/// Checks a request's credentials; the error says why it is refused.
pub fn verify(creds: &ApiCredentials, r: &SignedRequest<'_>, now: SystemTime) -> Result<(), String> {
    if let Some(token) = r.headers.get("x-auth-token") {
        return if creds.token.matches(token.to_str().unwrap_or_default()) {
            Ok(())
        } else {
            Err("X-Auth-Token is not valid".into())
        };
    }
    let auth = r
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or("missing Authorization (SDK-HMAC-SHA256 signature) or X-Auth-Token")?;
    let fields = auth.strip_prefix(ALGORITHM).ok_or(format!("the Authorization scheme must be {ALGORITHM}"))?;
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
        return Err("Authorization needs Access, SignedHeaders and Signature".into());
    };
    if access != creds.access_key {
        return Err("unknown access key".into());
    }
    let date = header(r.headers, "x-sdk-date").ok_or("missing X-Sdk-Date")?;
    let signed_headers: Vec<&str> = signed.split(';').collect();
    if !signed_headers.contains(&"x-sdk-date") {
        return Err("X-Sdk-Date must be a signed header".into());
    }
    let at = parse_date(&date).ok_or("X-Sdk-Date is not YYYYMMDDTHHMMSSZ")?;
    let skew = now.duration_since(at).unwrap_or_else(|e| e.duration());
    if skew > MAX_SKEW {
        return Err(format!("X-Sdk-Date {date} is more than 15 minutes from the server's clock"));
    }
    let expected = signature_for(creds.secret_key.expose(), r, &signed_headers, &date)?;
    if !constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
        return Err("the signature does not match (wrong secret key, or the request was changed)".into());
    }
    Ok(())
}

/// The hex signature of a request, as the SDK computes it.
pub fn signature_for(sk: &str, r: &SignedRequest<'_>, signed_headers: &[&str], date: &str) -> Result<String, String> {
    let mut canonical_headers = String::new();
    for name in signed_headers {
        let value = header(r.headers, name).ok_or(format!("signed header {name} is missing"))?;
        canonical_headers.push_str(&format!("{name}:{}\n", value.trim()));
    }
    let payload = match header(r.headers, "x-sdk-content-sha256") {
        Some(v) => v,
        None => hex::encode(Sha256::digest(r.body)),
    };
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

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn canonical_uri(path: &str) -> String {
    let mut uri: String = percent_decode(path).split('/').map(|segment| percent_encode(segment, b"")).collect::<Vec<_>>().join("/");
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
    pairs.iter().map(|(k, v)| format!("{}={}", percent_encode(k, b""), percent_encode(v, b""))).collect::<Vec<_>>().join("&")
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::credentials::Secret;

    #[test]
    fn dates_and_canonical_forms() {
        assert_eq!(parse_date("20251125T112640Z"), Some(UNIX_EPOCH + Duration::from_secs(1_764_070_000)));
        assert_eq!(parse_date("2025-11-25"), None);
        assert_eq!(canonical_uri("/v1/p1/stream/snapshot"), "/v1/p1/stream/snapshot/");
        assert_eq!(canonical_query("offset=0&domain=a.com&app_name=live%20x&limit=10"), "app_name=live%20x&domain=a.com&limit=10&offset=0");
    }

    #[test]
    fn signature_roundtrip_and_refusals() {
        let creds = ApiCredentials {
            project_id: "p".into(),
            access_key: "AK".into(),
            secret_key: Secret::new("SK"),
            token: Secret::new("tok"),
        };
        let now = UNIX_EPOCH + Duration::from_secs(1_764_070_000);
        let mut headers = HeaderMap::new();
        headers.insert("host", "127.0.0.1:8080".parse().unwrap());
        headers.insert("x-sdk-date", "20251125T112640Z".parse().unwrap());
        headers.insert("content-type", "application/json".parse().unwrap());
        fn req(headers: &HeaderMap) -> SignedRequest<'_> {
            SignedRequest { method: "POST", path: "/v1/p/stream/snapshot", query: "", headers, body: br#"{"domain":"a"}"# }
        }
        let sig = signature_for("SK", &req(&headers), &["content-type", "host", "x-sdk-date"], "20251125T112640Z").unwrap();
        headers.insert(
            "authorization",
            format!("SDK-HMAC-SHA256 Access=AK, SignedHeaders=content-type;host;x-sdk-date, Signature={sig}").parse().unwrap(),
        );
        assert_eq!(verify(&creds, &req(&headers), now), Ok(()));
        let tampered = SignedRequest { body: br#"{"domain":"b"}"#, ..req(&headers) };
        assert!(verify(&creds, &tampered, now).unwrap_err().contains("does not match"));
        let late = now + Duration::from_secs(16 * 60);
        assert!(verify(&creds, &req(&headers), late).unwrap_err().contains("15 minutes"));
        let mut token = HeaderMap::new();
        token.insert("x-auth-token", "tok".parse().unwrap());
        assert_eq!(verify(&creds, &req(&token), now), Ok(()));
        let empty = HeaderMap::new();
        assert!(verify(&creds, &req(&empty), now).is_err());
    }
}
