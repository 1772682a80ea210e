//! The Spin callback receiver (functions/callback-receiver, spin-sdk 5.2)
//! run inside livesnap as a `[[trigger.http]]` route from its own spin.toml.

use std::path::PathBuf;

use hmac::Mac;
use serde_json::{Value, json};

use crate::service::*;
use crate::support::*;

const KEY: &str = "k3y-for-snapshot-callback-0123456789abcdef";

fn receiver_manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../functions/callback-receiver/spin.toml")
}

fn start_receiver(dir: &std::path::Path) -> Service {
    // The key reaches the component as Spin variable `auth_key`, from the
    // application variable callback_auth_key.
    Service::start_with_env(dir, &["--manifest", receiver_manifest().to_str().unwrap()], &[("SPIN_VARIABLE_CALLBACK_AUTH_KEY", KEY)])
}

fn signed(expires: u64) -> Value {
    let mut body = json!({"domain": "localhost", "app": "live", "stream_name": "cam",
        "snapshot_url": "http://127.0.0.1:8080/obs/snapshots/snapshot/localhost/live/cam/1.jpg",
        "width": 320, "height": 240,
        "obs_addr": {"bucket": "snapshots", "location": "local", "object": "snapshot/localhost/live/cam/1.jpg"},
        "auth_timestamp": expires});
    let text = format!(
        "localhostlivecam{}320240snapshotslocal{}{expires}",
        body["snapshot_url"].as_str().unwrap(),
        body["obs_addr"]["object"].as_str().unwrap()
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
    mac.update(text.as_bytes());
    body["auth_sign"] = json!(hex::encode(mac.finalize().into_bytes()));
    body
}

fn post(service: &Service, body: &str, idempotency: Option<&str>) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut req = agent.post(&format!("{}/callback", service.http)).header("content-type", "application/json");
    if let Some(id) = idempotency {
        req = req.header("Idempotency-Key", id);
    }
    let mut r = req.send(body).unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

#[test]
fn the_receiver_accepts_valid_callbacks_and_rejects_tampered_expired_and_unsigned_ones() {
    let dir = tempdir();
    let service = start_receiver(dir.path());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();

    let valid = signed(now + 300).to_string();
    assert_eq!(post(&service, &valid, Some("snap-1")), (200, "accepted".into()));
    assert_eq!(post(&service, &valid, Some("snap-1")), (200, "duplicate".into()), "deduplicated by Idempotency-Key");

    let tampered = valid.replace("\"width\":320", "\"width\":321");
    let (status, why) = post(&service, &tampered, Some("snap-2"));
    assert_eq!((status, why.as_str()), (401, "auth_sign does not match"));
    let (status, why) = post(&service, &signed(now - 1).to_string(), Some("snap-3"));
    assert_eq!(status, 401);
    assert!(why.contains("expired"), "{why}");
    let mut unsigned = signed(now + 300);
    unsigned.as_object_mut().unwrap().remove("auth_sign");
    unsigned.as_object_mut().unwrap().remove("auth_timestamp");
    assert_eq!(post(&service, &unsigned.to_string(), Some("snap-4")), (401, "unsigned callback".into()));

    // The dedup memory is Spin key-value storage: it outlives a restart.
    assert!(service.stop().success());
    let service = start_receiver(dir.path());
    assert_eq!(post(&service, &valid, Some("snap-1")), (200, "duplicate".into()));
}

#[test]
fn livesnap_callbacks_pass_the_receiver_end_to_end() {
    let dir = tempdir();
    let receiver = start_receiver(dir.path());
    let work = tempdir();
    let url = format!("{}/callback", receiver.http);
    let (lines, summary, out) = capture(work.path(), &small_baseline_flv(), &["--callback-url", &url, "--auth-key", KEY]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(lines.len(), 4);
    assert_eq!((summary["callbacks_ok"].as_u64(), summary["callbacks_failed"].as_u64()), (Some(4), Some(0)));
    let wrong_key = "x".repeat(40);
    let (_, _, out) = capture(work.path(), &small_baseline_flv(), &["--callback-url", &url, "--auth-key", &wrong_key]);
    assert!(stderr(&out).contains("HTTP 401"), "a wrong key is refused by the receiver");
}
