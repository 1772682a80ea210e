//! Attacks from loopback that once worked, each bounded in count and time,
//! each asserting the bound the fix now keeps: RTMP memory pinning, slow and
//! squatting RTMP clients, callback SSRF (every loopback spelling, a name
//! that resolves to loopback, redirects, port probing), bucket folders over
//! the state folder, receivers that never answer, and quotas.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use livesnap::ingest::rtmp::chunk::{Message, encode_message};
use serde_json::json;

use crate::service::*;
use crate::support::*;

/// A type 0 chunk header on `csid` announcing a `len`-byte message of `type_id`.
fn header(csid: u8, len: usize, type_id: u8) -> Vec<u8> {
    let mut h = vec![csid & 0x3f, 0, 0, 0];
    h.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    h.push(type_id);
    h.extend_from_slice(&1u32.to_le_bytes());
    h
}

fn set_chunk_size(size: u32) -> Vec<u8> {
    encode_message(128, &Message { csid: 2, timestamp: 0, type_id: 1, stream_id: 0, payload: size.to_be_bytes().to_vec() })
}

/// Opens `streams` chunk streams, each holding one 1 MiB chunk of a message
/// announced as 16 MiB − 1; stops when the server closes the connection.
fn pin(p: &mut RawPublisher, streams: u8) {
    const CHUNK: usize = 1 << 20;
    let piece = vec![0x5a; CHUNK];
    if p.socket.write_all(&set_chunk_size(CHUNK as u32)).is_err() {
        return;
    }
    for csid in 3..3 + streams {
        if p.socket.write_all(&header(csid, (16 << 20) - 1, 9)).is_err() || p.socket.write_all(&piece).is_err() {
            return;
        }
    }
}

fn rtmp_config(dir: &Path, body: &str) -> String {
    let rc = dir.join("runtime-config.toml");
    std::fs::write(&rc, body).unwrap();
    rc.to_str().unwrap().to_string()
}

#[test]
fn unfinished_rtmp_messages_cannot_pin_memory() {
    let dir = tempdir();
    let mut service = Service::start(dir.path(), &[]);
    let before = service.rss();
    // Without credentials: handshake only, then 2 × 60 partial 16 MiB messages
    // (120 MiB held before the fix).
    for _ in 0..2 {
        let mut p = RawPublisher::connect(&service.rtmp);
        pin(&mut p, 60);
        assert!(p.closed_by_server(1 << 20), "the server closes a connection that sends large messages before publishing");
    }
    service.wait_for_log("before a publish is accepted");
    // After an accepted publish, one connection may hold one large message, not 40.
    let mut p = RawPublisher::connect(&service.rtmp);
    p.publish(&service.rtmp_url("localhost", "live"), "live", "pinner");
    p.wait_for_reply(b"NetStream.Publish.Start");
    pin(&mut p, 40);
    assert!(p.closed_by_server(1 << 20), "the server closes a publisher holding too many unfinished messages");
    service.wait_for_log("unfinished messages would hold more than");
    let grown = service.rss().saturating_sub(before);
    eprintln!("RSS growth under 2 x 60 + 40 partial 16 MiB messages: {:.1} MiB", grown as f64 / (1 << 20) as f64);
    assert!(grown < 64 << 20, "the service grew by {} MiB", grown >> 20);
    // It still serves: a real publisher gets its snapshot.
    let mut ffmpeg = ffmpeg_publish(&small_baseline_flv(), &service.rtmp_url("localhost", "live/after"), false, &["-t", "2"]);
    assert!(ffmpeg.wait().unwrap().success());
    service.wait_for_log("live/after");
}

#[test]
fn a_client_that_never_publishes_is_closed_at_the_deadline() {
    let dir = tempdir();
    let rc = rtmp_config(dir.path(), "[rtmp]\npublish_timeout_secs = 1\n");
    let mut service = Service::start(dir.path(), &["--runtime-config", &rc]);
    // One byte at a time, each before the idle timeout: closed at the publish
    // deadline (1 s), not kept forever. At most 20 bytes (10 s).
    let mut slow = RawPublisher::connect(&service.rtmp);
    slow.socket.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut closed = false;
    for _ in 0..20 {
        if slow.socket.write_all(&[0x03]).is_err() || slow.closed_by_server(0) {
            closed = true;
            break;
        }
    }
    assert!(closed, "a connection trickling bytes without publishing was kept open");
    service.wait_for_log("no publish within 1 s of connecting");
}

#[test]
fn one_client_address_cannot_take_every_rtmp_connection() {
    let dir = tempdir();
    let rc = rtmp_config(dir.path(), "[rtmp]\nmax_per_client = 2\n");
    let mut service = Service::start(dir.path(), &["--runtime-config", &rc]);
    // 127.0.0.2 holds its 2 connections; its third and fourth are closed at
    // once, and 127.0.0.1 still connects.
    let held: Vec<TcpStream> = (0..2).map(|_| connect_from("127.0.0.2", &service.rtmp)).collect();
    for _ in 0..2 {
        let mut extra = RawPublisher { socket: connect_from("127.0.0.2", &service.rtmp) };
        assert!(extra.closed_by_server(0), "a connection over the per-client cap is closed");
    }
    service.wait_for_log("this client holds its maximum of 2 connections");
    let mut other = RawPublisher::connect(&service.rtmp);
    other.publish(&service.rtmp_url("localhost", "live"), "live", "other");
    other.wait_for_reply(b"NetStream.Publish.Start");
    drop(held);
}

/// A manifest with one template per callback URL, apps `e0`, `e1`, ….
fn egress_manifest(dir: &Path, urls: &[String]) -> String {
    let mut m = String::from("spin_manifest_version = 2\n");
    for (i, url) in urls.iter().enumerate() {
        m.push_str(&format!(
            "[[trigger.snapshot]]\ndomain = \"localhost\"\napp_name = \"e{i}\"\ntime_interval = 3600\nobs_location = {{ bucket = \"snapshots\", location = \"local\" }}\ncall_back_enable = \"on\"\ncall_back_url = \"{url}\"\n"
        ));
    }
    let path = dir.join("spin.toml");
    std::fs::write(&path, m).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn callbacks_to_loopback_in_any_spelling_are_refused_unless_the_operator_allows_them() {
    let dir = tempdir();
    let listener = Listener::start(vec![]);
    let port = listener.url.split(':').nth(2).unwrap().split('/').next().unwrap().to_string();
    let urls: Vec<String> = ["127.0.0.1", "2130706433", "0x7f000001", "127.1", "0177.0.0.1", "[::ffff:127.0.0.1]", "localhost"]
        .iter()
        .map(|host| format!("http://{host}:{port}/callback"))
        .collect();
    let manifest = egress_manifest(dir.path(), &urls);
    for (i, url) in urls.iter().enumerate() {
        let mut cmd = livesnap();
        cmd.current_dir(dir.path()).env("LIVESNAP_EGRESS_ALLOW", "").arg("capture").arg(small_baseline_flv());
        cmd.args(["--json", "--manifest", &manifest, "--app", &format!("e{i}"), "--stream", "s"]);
        let out = run(&mut cmd);
        let log = stderr(&out);
        assert!(out.status.success(), "{log}");
        let summary: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
        assert_eq!(summary["summary"]["callbacks_failed"], 1, "{url}: {log}");
        assert!(log.contains("destination refused by the egress policy: a loopback address"), "{url}: {log}");
    }
    assert!(listener.drain().is_empty(), "no request reached the loopback receiver");
    // The positive control: the operator allows loopback, and the same template delivers.
    let (_, summary, _) = capture(dir.path(), &small_baseline_flv(), &["--manifest", &manifest, "--app", "e0", "--stream", "s"]);
    assert_eq!(summary["callbacks_ok"], 1);
    assert_eq!(listener.requests.recv_timeout(WAIT).unwrap().path, "/callback");
}

#[test]
fn redirects_are_not_followed_and_errors_do_not_tell_open_ports_from_closed() {
    let dir = tempdir();
    let target = Listener::start(vec![]);
    // Answers every request with a redirect to the target.
    let redirector = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let redirect_url = format!("http://{}/callback", redirector.local_addr().unwrap());
    let location = target.url.clone();
    std::thread::spawn(move || {
        for mut c in redirector.incoming().take(8).flatten() {
            let mut buf = [0u8; 65536];
            let _ = c.read(&mut buf);
            let _ = write!(c, "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    let (_, summary, out) = capture(dir.path(), &small_baseline_flv(), &["--callback-url", &redirect_url, "--interval", "3600"]);
    assert_eq!((summary["callbacks_ok"].as_u64(), summary["callbacks_failed"].as_u64()), (Some(0), Some(1)), "{}", stderr(&out));
    assert!(stderr(&out).contains("HTTP 302"), "{}", stderr(&out));
    assert!(target.drain().is_empty(), "the redirect was not followed");

    // A closed port reads the same as a receiver that times out.
    let closed = format!("http://127.0.0.1:{}/callback", free_port());
    let (_, summary, out) = capture(dir.path(), &small_baseline_flv(), &["--callback-url", &closed, "--interval", "3600"]);
    assert_eq!(summary["callbacks_failed"], 1);
    let log = stderr(&out);
    assert!(log.contains("no answer from the receiver (could not connect, or it timed out)"), "{log}");
    assert!(!log.to_lowercase().contains("connection refused"), "{log}");
}

#[test]
fn callback_urls_with_credentials_are_refused() {
    let dir = tempdir();
    let service = Service::start(dir.path(), &[]);
    let body = json!({"domain": "localhost", "app_name": "creds", "time_interval": 5,
        "obs_location": {"bucket": "snapshots", "location": "local"},
        "call_back_enable": "on", "call_back_url": "http://user:hunter2@127.0.0.1:9/cb"});
    let (status, answer) = service.api().call("POST", "/stream/snapshot", Some(body.to_string().as_bytes()));
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error_msg"].as_str().unwrap().contains("credentials"), "{answer}");
    assert!(!answer.to_string().contains("hunter2") && !service.log_text().contains("hunter2"));
}

#[test]
fn bucket_folders_cannot_overlap_the_state_folder_and_symlinks_are_not_served() {
    let dir = tempdir();
    for bucket in [
        "name = \"snapshots\"\nbackend = \"fs\"\npath = \".livesnap\"",
        "name = \"cache\"\nbackend = \"fs\"",
        "name = \"top\"\nbackend = \"fs\"\npath = \".\"",
    ] {
        let rc = rtmp_config(dir.path(), &format!("[[bucket]]\n{bucket}\n"));
        let out = run(livesnap().current_dir(dir.path()).args([
            "up",
            "--runtime-config",
            &rc,
            "--http-listen",
            "127.0.0.1:0",
            "--rtmp-listen",
            "127.0.0.1:0",
        ]));
        assert!(!out.status.success(), "{bucket}");
        assert!(stderr(&out).contains("overlaps the state folder"), "{bucket}: {}", stderr(&out));
    }
    std::fs::remove_file(dir.path().join("runtime-config.toml")).unwrap();
    let service = Service::start(dir.path(), &[]);
    let state = dir.path().join(".livesnap");
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state.join("state.db")), 0o600);
    assert_eq!(mode(&state.join("cache")), 0o700);
    let objects = state.join("snapshots");
    std::fs::create_dir_all(objects.join("real")).unwrap();
    std::fs::write(objects.join("real/a.jpg"), b"jpeg").unwrap();
    std::os::unix::fs::symlink(state.join("state.db"), objects.join("leak.jpg")).unwrap();
    std::os::unix::fs::symlink(&state, objects.join("up")).unwrap();
    assert_eq!(service.get("/obs/snapshots/real/a.jpg"), (200, b"jpeg".to_vec()), "the control: a real object is served");
    assert_eq!(service.get("/obs/snapshots/leak.jpg").0, 404);
    assert_eq!(service.get("/obs/snapshots/up/state.db").0, 404);
}

#[test]
fn two_receivers_that_never_answer_do_not_hold_up_another_templates_callbacks() {
    let dir = tempdir();
    let mut stuck_urls = Vec::new();
    let mut holders = Vec::new();
    for _ in 0..2 {
        let stuck = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        stuck_urls.push(format!("http://{}/callback", stuck.local_addr().unwrap()));
        holders.push(std::thread::spawn(move || stuck.incoming().take(16).collect::<Vec<_>>()));
    }
    let good = Listener::start(vec![]);
    let mut manifest = String::from("spin_manifest_version = 2\n");
    for (app, url) in [("stuck0", &stuck_urls[0]), ("stuck1", &stuck_urls[1]), ("live", &good.url)] {
        manifest.push_str(&format!(
            "[[trigger.snapshot]]\ndomain = \"localhost\"\napp_name = \"{app}\"\ntime_interval = 5\nobs_location = {{ bucket = \"snapshots\", location = \"local\" }}\ncall_back_enable = \"on\"\ncall_back_url = \"{url}\"\n"
        ));
    }
    std::fs::write(dir.path().join("spin.toml"), manifest).unwrap();
    // The default workers and per-destination limit; receivers never time out here.
    let rc = rtmp_config(dir.path(), "[delivery]\ntimeout_secs = 600\n");
    let service = Service::start(dir.path(), &["--runtime-config", &rc]);
    for app in ["stuck0", "stuck1"] {
        let mut a = ffmpeg_publish(&small_baseline_flv(), &service.rtmp_url("localhost", &format!("{app}/s")), false, &[]);
        assert!(a.wait().unwrap().success());
    }
    let mut f = ffmpeg_publish(&small_baseline_flv(), &service.rtmp_url("localhost", "live/fine"), false, &[]);
    assert!(f.wait().unwrap().success());
    let mut keys = BTreeSet::new();
    while keys.len() < 4 {
        let r = good.requests.recv_timeout(WAIT).expect("the good receiver's callbacks are not held up by the stuck ones");
        keys.insert(r.headers["idempotency-key"].clone());
    }
    drop(service);
    drop(holders);
}

#[test]
fn quotas_bound_templates_and_modules() {
    let dir = tempdir();
    let rc = rtmp_config(dir.path(), "[quotas]\nmax_templates = 1\nmax_modules = 1\n");
    let service = Service::start(dir.path(), &["--runtime-config", &rc]);
    let api = service.api();
    let template = |app: &str| {
        json!({"domain": "localhost", "app_name": app, "time_interval": 5, "obs_location": {"bucket": "snapshots", "location": "local"}})
            .to_string()
    };
    assert_eq!(api.call("POST", "/stream/snapshot", Some(template("q1").as_bytes())).0, 201);
    let (status, answer) = api.call("POST", "/stream/snapshot", Some(template("q2").as_bytes()));
    assert_eq!((status, answer["error_code"].as_str()), (400, Some("LIVE.103011020")), "{answer}");
    let module = std::fs::read(functions_dir().join("hostile_encode.wasm")).unwrap();
    assert_eq!(api.call("PUT", "/functions/m1", Some(&module)).0, 201);
    assert_eq!(api.call("PUT", "/functions/m1", Some(&module)).0, 200, "replacing one stays within the quota");
    let (status, answer) = api.call("PUT", "/functions/m2", Some(&module));
    assert_eq!((status, answer["error_code"].as_str()), (400, Some("LIVE.103011020")), "{answer}");
}

#[test]
fn publishing_to_a_domain_with_url_validation_needs_a_valid_signature() {
    const CHAIN_KEY: &str = "k3yChainForIngest0123456789abcde";
    let dir = tempdir();
    let mut service = Service::start(dir.path(), &[]);
    let api = service.api();
    let body = json!({"key": CHAIN_KEY, "auth_type": "d_sha256", "timeout": 120}).to_string();
    assert_eq!(api.call("PUT", "/guard/key-chain?domain=localhost", Some(body.as_bytes())).0, 200);
    let (status, shown) = api.call("GET", "/guard/key-chain?domain=localhost", None);
    assert_eq!((status, shown["auth_type"].as_str(), shown["timeout"].as_u64()), (200, Some("d_sha256"), Some(120)));
    assert!(!shown.to_string().contains(CHAIN_KEY), "the key is never returned: {shown}");
    let weak = json!({"key": "short"}).to_string();
    assert_eq!(api.call("PUT", "/guard/key-chain?domain=localhost", Some(weak.as_bytes())).0, 400);

    let base = service.rtmp_url("localhost", "live");
    let sign = |key: &str, stream: &str, time: u64| {
        let url = format!("{base}/{stream}");
        let out = run(livesnap().args(["sign-url", "--key", key, "--time", &time.to_string(), &url]));
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let attempts = [
        ("unsigned", format!("{base}/unsigned"), "has no hwTime parameter"),
        ("expired", sign(CHAIN_KEY, "expired", now - 600), "the signed URL expired"),
        ("forged", sign("f0rgedKeyForIngest0123456789abcd", "forged", now), "the signature does not match"),
    ];
    for (name, url, why) in attempts {
        let mut ffmpeg = ffmpeg_publish(&small_baseline_flv(), &url, false, &["-t", "2"]);
        assert!(!ffmpeg.wait().unwrap().success(), "{name}: the publish was refused");
        let line = service.wait_for_log("ingest URL validation failed");
        assert!(line.contains(why) && line.contains(&format!("live/{name}")), "{name}: {line}");
        assert!(!line.contains("hwSecret"), "the signature is not logged: {line}");
    }
    let mut ffmpeg = ffmpeg_publish(&small_baseline_flv(), &sign(CHAIN_KEY, "signed", now), false, &["-t", "2"]);
    assert!(ffmpeg.wait().unwrap().success());
    service.wait_for_log("localhost/live/signed");
    let (_, metrics) = service.get("/metrics");
    assert!(String::from_utf8_lossy(&metrics).contains("livesnap_publishes_unauthorized_total 3"));
    // Off again: an unsigned publish captures.
    assert_eq!(api.call("DELETE", "/guard/key-chain?domain=localhost", None).0, 204);
    let mut ffmpeg = ffmpeg_publish(&small_baseline_flv(), &service.rtmp_url("localhost", "live/open"), false, &["-t", "2"]);
    assert!(ffmpeg.wait().unwrap().success());
}

#[test]
fn a_notifier_cannot_send_its_callback_outside_its_allowed_outbound_hosts() {
    let dir = tempdir();
    let mut service = Service::start(dir.path(), &[]);
    let api = service.api();
    let template_target = Listener::start(vec![]);
    let elsewhere = Listener::start(vec![]);
    let module = std::fs::read(functions_dir().join("elsewhere_notify.wasm")).unwrap();
    let env = format!("?env=TARGET_URL={}", elsewhere.url);
    assert_eq!(api.call("PUT", &format!("/functions/elsewhere{env}"), Some(&module)).0, 201);
    let body = json!({"domain": "localhost", "app_name": "away", "time_interval": 5,
        "obs_location": {"bucket": "snapshots", "location": "local"},
        "call_back_enable": "on", "call_back_url": template_target.url, "functions": {"notify": "elsewhere"}});
    assert_eq!(api.call("POST", "/stream/snapshot", Some(body.to_string().as_bytes())).0, 201);
    let mut ffmpeg = ffmpeg_publish(&small_baseline_flv(), &service.rtmp_url("localhost", "away/a"), false, &["-t", "2"]);
    assert!(ffmpeg.wait().unwrap().success());
    let line = service.wait_for_log("snapshot failed");
    assert!(line.contains("is neither the template's call_back_url nor in the component's allowed_outbound_hosts"), "{line}");
    // Allowed by the module's grant, the same URL is delivered.
    let port = elsewhere.url.split(':').nth(2).unwrap().split('/').next().unwrap();
    let grant = format!("{env}&allowed_outbound_hosts=http://127.0.0.1:{port}");
    assert_eq!(api.call("PUT", &format!("/functions/elsewhere{grant}"), Some(&module)).0, 200);
    let mut ffmpeg = ffmpeg_publish(&small_baseline_flv(), &service.rtmp_url("localhost", "away/b"), false, &["-t", "2"]);
    assert!(ffmpeg.wait().unwrap().success());
    assert_eq!(elsewhere.requests.recv_timeout(WAIT).unwrap().body, b"{}");
    assert!(template_target.drain().is_empty());
}
