//! Signed callbacks received by a real HTTP listener, checked by an
//! implementation independent of the component (Python's hmac).

use std::process::Command;

use serde_json::Value;

use crate::support::*;

const KEY: &str = "k3y-for-snapshot-callback-0123456789abcdef";

/// auth_sign as Python's standard library computes it.
fn python_sign(key: &str, body: &Value) -> String {
    let fields = [
        body["domain"].as_str().unwrap().to_string(),
        body["app"].as_str().unwrap().to_string(),
        body["stream_name"].as_str().unwrap().to_string(),
        body["snapshot_url"].as_str().unwrap().to_string(),
        body["width"].to_string(),
        body["height"].to_string(),
        body["obs_addr"]["bucket"].as_str().unwrap().to_string(),
        body["obs_addr"]["location"].as_str().unwrap().to_string(),
        body["obs_addr"]["object"].as_str().unwrap().to_string(),
        body["auth_timestamp"].to_string(),
    ];
    let out = Command::new("python3")
        .args([
            "-c",
            "import hmac, hashlib, sys; print(hmac.new(sys.argv[1].encode(), ''.join(sys.argv[2:]).encode(), hashlib.sha256).hexdigest())",
            key,
        ])
        .args(&fields)
        .output()
        .expect("python3 is needed to check signatures independently");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn python_agrees_with_the_reference_vector() {
    let body: Value = serde_json::json!({
        "domain": "push.example.com", "app": "live", "stream_name": "test001",
        "snapshot_url": "http://127.0.0.1:8080/obs/snapshots/snapshot/push.example.com/live/test001/1764070000.jpg",
        "width": 1280, "height": 720,
        "obs_addr": {"bucket": "snapshots", "location": "region-local", "object": "snapshot/push.example.com/live/test001/1764070000.jpg"},
        "auth_timestamp": 1764070300u64,
    });
    assert_eq!(python_sign(KEY, &body), "f7a97b11c5043d7125b4cd0c50c1d9f9afe86104fc23f1f91dff2bd2c213be0f");
}

#[test]
fn every_snapshot_gets_a_signed_callback() {
    let listener = Listener::start(vec![]);
    let video = small_baseline_flv();
    let dir = tempdir();
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let (lines, summary, output) =
        capture(dir.path(), &video, &["--callback-url", &listener.url, "--auth-key", KEY, "--stream", "test001"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(summary["callbacks_ok"], 4);
    let mut received = listener.drain();
    assert_eq!(received.len(), 4);
    // Senders work in parallel: callbacks arrive in any order.
    let object = |r: &Received| serde_json::from_slice::<Value>(&r.body).unwrap()["obs_addr"]["object"].as_str().unwrap().to_string();
    received.sort_by_key(object);
    let mut lines = lines;
    lines.sort_by_key(|l| l["object"].as_str().unwrap().to_string());
    for (r, line) in received.iter().zip(&lines) {
        assert_eq!(r.path, "/callback");
        assert_eq!(r.headers.get("content-type").map(String::as_str), Some("application/json"));
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["domain"], "localhost");
        assert_eq!(body["app"], "live");
        assert_eq!(body["stream_name"], "test001");
        assert_eq!(body["snapshot_url"], line["url"]);
        assert_eq!((body["width"].as_u64(), body["height"].as_u64()), (Some(320), Some(240)));
        assert_eq!(body["obs_addr"]["bucket"], "snapshots");
        assert_eq!(body["obs_addr"]["location"], "local");
        assert_eq!(body["obs_addr"]["object"], line["object"]);
        let expires = body["auth_timestamp"].as_u64().unwrap();
        assert!(expires >= before + 300 && expires <= before + 400, "expiry {expires} is not about 5 minutes ahead");
        assert_eq!(body["auth_sign"].as_str().unwrap(), python_sign(KEY, &body));
    }

    // `livesnap verify` accepts a genuine body and refuses a tampered one.
    let file = dir.path().join("body.json");
    std::fs::write(&file, &received[0].body).unwrap();
    let ok = run(livesnap().args(["verify", "--key", KEY]).arg(&file));
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));
    let tampered = String::from_utf8(received[0].body.clone()).unwrap().replace("test001", "test002");
    std::fs::write(&file, tampered).unwrap();
    let bad = run(livesnap().args(["verify", "--key", KEY]).arg(&file));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stdout).contains("does not match"));
    std::fs::write(&file, &received[0].body).unwrap();
    let late = run(livesnap().args(["verify", "--key", KEY, "--now", &(before + 10_000).to_string()]).arg(&file));
    assert!(!late.status.success());
    assert!(String::from_utf8_lossy(&late.stdout).contains("expired"));
}

#[test]
fn without_a_key_callbacks_are_unsigned_and_the_key_is_never_logged() {
    let listener = Listener::start(vec![]);
    let video = small_baseline_flv();
    let dir = tempdir();
    let (_, summary, output) = capture(dir.path(), &video, &["--callback-url", &listener.url, "--interval", "10"]);
    assert!(output.status.success());
    assert_eq!(summary["callbacks_ok"], 2);
    for r in listener.drain() {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert!(body.get("auth_sign").is_none() && body.get("auth_timestamp").is_none(), "{body}");
    }

    let (_, _, output) = capture(dir.path(), &video, &["--callback-url", &listener.url, "--auth-key", KEY]);
    assert!(!stderr(&output).contains(KEY) && !String::from_utf8_lossy(&output.stdout).contains(KEY));
}

#[test]
fn failing_receivers_are_retried_and_refused_connections_do_not_stop_capture() {
    // 500 twice, then 200: the first callback arrives on its third attempt.
    let listener = Listener::start(vec![500, 503]);
    let video = small_baseline_flv();
    let dir = tempdir();
    let (_, summary, output) = capture(dir.path(), &video, &["--callback-url", &listener.url, "--interval", "10"]);
    assert!(output.status.success());
    assert_eq!((summary["callbacks_ok"].as_u64(), summary["callbacks_failed"].as_u64()), (Some(2), Some(0)));
    assert_eq!(listener.drain().len(), 4);

    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/callback");
    let (lines, summary, output) = capture(dir.path(), &video, &["--callback-url", &url, "--interval", "10"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(lines.len(), 2, "capture goes on without the receiver");
    assert_eq!((summary["callbacks_ok"].as_u64(), summary["callbacks_failed"].as_u64()), (Some(0), Some(2)));
    assert!(stderr(&output).contains("callback failed; giving up"));
}
