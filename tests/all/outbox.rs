//! The durable callback outbox: retries, idempotency keys, re-signing,
//! surviving SIGKILL, giving up and redelivering, per-destination limits.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use crate::service::*;
use crate::support::*;

const KEY: &str = "k3y-for-snapshot-callback-0123456789abcdef";

fn setup(dir: &Path, callback_url: &str, delivery: &str) -> std::path::PathBuf {
    std::fs::write(
        dir.join("spin.toml"),
        format!(
            "spin_manifest_version = 2\n[[trigger.snapshot]]\ndomain = \"localhost\"\ntime_interval = 5\nobs_location = {{ bucket = \"snapshots\", location = \"local\" }}\ncall_back_enable = \"on\"\ncall_back_url = \"{callback_url}\"\nauth_key = \"{KEY}\"\n"
        ),
    )
    .unwrap();
    let rc = dir.join("runtime-config.toml");
    std::fs::write(&rc, format!("[delivery]\n{delivery}\n")).unwrap();
    rc
}

fn publish_file(service: &Service, stream: &str) {
    let mut ffmpeg = ffmpeg_publish(&small_baseline_flv(), &service.rtmp_url("localhost", &format!("live/{stream}")), false, &[]);
    assert!(ffmpeg.wait().unwrap().success());
}

fn key(r: &Received) -> String {
    r.headers.get("idempotency-key").cloned().expect("every callback has an Idempotency-Key")
}

fn verifies(body: &[u8]) -> bool {
    let dir = tempdir();
    let f = dir.path().join("b.json");
    std::fs::write(&f, body).unwrap();
    run(livesnap().args(["verify", "--key", KEY]).arg(&f)).status.success()
}

#[test]
fn a_failing_receiver_gets_every_callback_exactly_once_after_deduplication() {
    let dir = tempdir();
    let listener = Listener::start(vec![500, 500, 502, 500, 503, 500]);
    let rc = setup(dir.path(), &listener.url, "backoff_ms = 50\nmax_backoff_ms = 200");
    let service = Service::start(dir.path(), &["--runtime-config", rc.to_str().unwrap()]);
    publish_file(&service, "flaky");
    let mut delivered: BTreeMap<String, u32> = BTreeMap::new();
    let mut attempts: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut record = |r: Received| {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert!(verifies(&r.body), "every attempt carries a valid signature: {body}");
        attempts.entry(key(&r)).or_default().push(body);
        if r.status == 200 {
            *delivered.entry(key(&r)).or_default() += 1;
        }
    };
    let mut delivered_keys = BTreeSet::new();
    while delivered_keys.len() < 4 {
        let r = listener.requests.recv_timeout(WAIT).expect("callbacks keep coming until each is delivered");
        if r.status == 200 {
            delivered_keys.insert(key(&r));
        }
        record(r);
    }
    // Then until the receiver is quiet: the service stops (after the attempts
    // in flight), and every request it made is read, duplicates included.
    let stored = service.log_text().matches("snapshot stored").count();
    assert!(service.stop().success());
    for r in listener.drain() {
        record(r);
    }
    assert!(delivered.values().all(|n| *n == 1), "each delivered once: {delivered:?}");
    assert!(attempts.values().any(|a| a.len() > 1), "some were retried");
    for tries in attempts.values() {
        let objects: BTreeSet<&str> = tries.iter().map(|b| b["obs_addr"]["object"].as_str().unwrap()).collect();
        assert_eq!(objects.len(), 1, "one key, one snapshot");
        let stamps: Vec<u64> = tries.iter().map(|b| b["auth_timestamp"].as_u64().unwrap()).collect();
        assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "retries are re-signed, never older: {stamps:?}");
    }
    assert_eq!(delivered.len(), stored);
}

#[test]
fn pending_callbacks_survive_sigkill_and_are_delivered_after_restart() {
    let dir = tempdir();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/callback");
    let rc = setup(dir.path(), &url, "backoff_ms = 100\nmax_backoff_ms = 300\nmax_attempts = 100000");
    let mut service = Service::start(dir.path(), &["--runtime-config", rc.to_str().unwrap()]);
    publish_file(&service, "survivor");
    for _ in 0..4 {
        service.wait_for_log("snapshot stored");
    }
    service.wait_for_log("callback failed; retrying");
    drop(service); // SIGKILL

    let listener = Listener::start_on(port, vec![]);
    let _service = Service::start(dir.path(), &["--runtime-config", rc.to_str().unwrap()]);
    let mut keys = BTreeSet::new();
    while keys.len() < 4 {
        let r = listener.requests.recv_timeout(WAIT).expect("the pending callbacks after the restart");
        assert!(verifies(&r.body), "re-signed on delivery after the restart");
        keys.insert(key(&r));
    }
}

#[test]
fn given_up_callbacks_are_listed_as_failed_and_can_be_redelivered() {
    let dir = tempdir();
    let port = free_port();
    let rc = setup(dir.path(), &format!("http://127.0.0.1:{port}/callback"), "backoff_ms = 20\nmax_attempts = 2");
    let mut service = Service::start(dir.path(), &["--runtime-config", rc.to_str().unwrap()]);
    publish_file(&service, "lost");
    for _ in 0..4 {
        service.wait_for_log("callback failed; giving up");
    }
    let (status, body) = service.api_get("/callbacks?status=failed");
    assert_eq!(status, 200);
    let failed: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(failed["total"], 4, "{failed}");
    let (_, metrics) = service.get("/metrics");
    assert!(String::from_utf8_lossy(&metrics).contains("livesnap_outbox_callbacks{status=\"failed\"} 4"));

    let listener = Listener::start_on(port, vec![]);
    let api = service.api();
    for cb in failed["callbacks"].as_array().unwrap() {
        assert_eq!(cb["attempts"], 2);
        assert!(cb["last_error"].as_str().unwrap().contains("onnect"), "{cb}");
        let (status, _) = api.call("POST", &format!("/callbacks/{}/redeliver", cb["id"].as_str().unwrap()), None);
        assert_eq!(status, 200);
    }
    let mut keys = BTreeSet::new();
    while keys.len() < 4 {
        keys.insert(key(&listener.requests.recv_timeout(WAIT).unwrap()));
    }
    let wanted: BTreeSet<String> = failed["callbacks"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(keys, wanted);
    let (_, body) = service.api_get("/callbacks?status=failed");
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["total"], 0);
    let (_, body) = service.api_get("/callbacks?status=bogus");
    assert!(String::from_utf8_lossy(&body).contains("status: 'bogus' is not pending, delivered or failed"));
}

#[test]
fn a_receiver_that_never_answers_does_not_hold_up_the_others() {
    let dir = tempdir();
    // Accepts connections and never answers.
    let stuck = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stuck_url = format!("http://{}/callback", stuck.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for c in stuck.incoming().take(8) {
            conns.push(c);
        }
        conns
    });
    let good = Listener::start(vec![]);
    let rc = setup(dir.path(), &good.url, "timeout_secs = 600\nworkers = 2\nper_destination = 1");
    let manifest = std::fs::read_to_string(dir.path().join("spin.toml")).unwrap();
    std::fs::write(
        dir.path().join("spin.toml"),
        format!(
            "{manifest}[[trigger.snapshot]]\ndomain = \"localhost\"\napp_name = \"stuck\"\ntime_interval = 5\nobs_location = {{ bucket = \"snapshots\", location = \"local\" }}\ncall_back_enable = \"on\"\ncall_back_url = \"{stuck_url}\"\n"
        ),
    )
    .unwrap();
    let service = Service::start(dir.path(), &["--runtime-config", rc.to_str().unwrap()]);
    let mut a = ffmpeg_publish(&small_baseline_flv(), &service.rtmp_url("localhost", "stuck/s"), false, &[]);
    assert!(a.wait().unwrap().success());
    publish_file(&service, "fine");
    let mut keys = BTreeSet::new();
    while keys.len() < 4 {
        keys.insert(key(&good.requests.recv_timeout(WAIT).expect("the good receiver's callbacks are not held up")));
    }
    drop(service);
    drop(held);
}
