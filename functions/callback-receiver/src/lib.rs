//! A Spin HTTP component that receives livesnap (Huawei Live) snapshot
//! callbacks: it checks `auth_sign` and its expiry with the key from the Spin
//! variable `auth_key`, drops duplicates of at-least-once delivery by their
//! `Idempotency-Key` (Spin key-value store `default`), and answers 200.
//! Deploy it on its own with `spin deploy` (see spin.toml), or run it inside
//! livesnap as a `[[trigger.http]]` route.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    if *req.method() != spin_sdk::http::Method::Post {
        return Ok(reply(405, "POST a snapshot callback"));
    }
    let key = spin_sdk::variables::get("auth_key")?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    if let Err(why) = check(req.body(), &key, now) {
        return Ok(reply(401, &why));
    }
    let Some(id) = req.header("idempotency-key").and_then(|h| h.as_str()) else {
        return Ok(reply(200, "accepted"));
    };
    let seen = Store::open_default()?;
    let marker = format!("callback:{id}");
    if seen.exists(&marker)? {
        return Ok(reply(200, "duplicate"));
    }
    seen.set(&marker, b"1")?;
    // This is where a customer's own handling goes (index, moderate, notify).
    Ok(reply(200, "accepted"))
}

fn reply(status: u16, text: &str) -> Response {
    Response::builder().status(status).header("content-type", "text/plain").body(text.to_string()).build()
}

/// Checks a callback body's signature and expiry; the error says why not.
pub fn check(body: &[u8], key: &str, now: u64) -> Result<(), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not a JSON callback: {e}"))?;
    let sign = v.get("auth_sign").and_then(Value::as_str).ok_or("unsigned callback")?;
    let expires = v.get("auth_timestamp").and_then(Value::as_u64).ok_or("unsigned callback")?;
    let text = |path: &[&str]| -> Result<String, String> {
        let x = path.iter().try_fold(&v, |x, p| x.get(p)).ok_or(format!("missing {}", path.join(".")))?;
        Ok(match x {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).map_err(|e| e.to_string())?;
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
    let sign = hex::decode(sign).map_err(|_| "auth_sign is not hex")?;
    mac.verify_slice(&sign).map_err(|_| "auth_sign does not match")?;
    if expires < now {
        return Err(format!("signature expired at {expires}"));
    }
    Ok(())
}
