//! A Spin HTTP component that receives livesnap (Huawei Live) snapshot
//! callbacks: it checks `auth_sign` and its expiry with the key from the Spin
//! variable `auth_key`, drops duplicates of at-least-once delivery by their
//! `Idempotency-Key` (Spin key-value store `default`), and answers 200.
//! Deploy it on its own with `spin deploy` (see spin.toml), or run it inside
//! livesnap as a `[[trigger.http]]` route.

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
    callback_sign::verify(body, key, now).map(|_| ()).map_err(|e| match e {
        callback_sign::VerifyError::Expired { expired, .. } => format!("signature expired at {expired}"),
        other => other.to_string(),
    })
}
