//! Pull sources in `livesnap up`: a stream pulled from a real ffmpeg server
//! is captured like a pushed one, survives its server dying and coming
//! back, and a failing source shows why without its credentials.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use crate::service::*;
use crate::support::*;

fn manifest(dir: &Path, callback: &str, sources: &str) {
    std::fs::write(
        dir.join("spin.toml"),
        format!(
            r#"spin_manifest_version = 2
[application]
name = "sources"
[[trigger.snapshot]]
domain = "localhost"
app_name = "live"
time_interval = 5
object_write_mode = 0
obs_location = {{ bucket = "snapshots", location = "local" }}
call_back_enable = "on"
call_back_url = "{callback}"
{sources}"#
        ),
    )
    .unwrap();
}

/// ffmpeg serving `video` to one RTMP player at `url`, in real time.
fn rtmp_server(video: &Path, url: &str) -> KillOnDrop {
    let child: Child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
        .arg(video)
        .args(["-c", "copy", "-f", "flv", "-listen", "1", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting ffmpeg");
    KillOnDrop(child)
}

fn source<'a>(list: &'a Value, stream: &str) -> &'a Value {
    list["sources"].as_array().unwrap().iter().find(|s| s["stream"] == stream).unwrap_or_else(|| panic!("no source {stream}: {list}"))
}

#[test]
fn a_pulled_rtmp_stream_is_captured_like_a_pushed_one_and_resumes_after_its_server_comes_back() {
    let dir = tempdir();
    let listener = Listener::start(vec![]);
    manifest(dir.path(), &listener.url, "");
    let mut service = Service::start(dir.path(), &[]);
    let api = service.api();
    let video = long_baseline_flv();
    let port = free_port();
    let url = format!("rtmp://127.0.0.1:{port}/live/cam");
    let server = rtmp_server(&video, &url);

    // Refused: no template for the app; not a pull URL.
    let (status, body) = api.call("PUT", "/sources/localhost/other/cam", Some(json!({"url": url}).to_string().as_bytes()));
    assert_eq!(status, 400, "{body}");
    let (status, body) = api.call("PUT", "/sources/localhost/live/cam", Some(br#"{"url": "ftp://127.0.0.1/x"}"#));
    assert_eq!(status, 400, "{body}");
    assert!(body["error_msg"].as_str().unwrap().starts_with("url:"), "{body}");

    let (status, body) = api.call("PUT", "/sources/localhost/live/cam", Some(json!({"url": url}).to_string().as_bytes()));
    assert_eq!(status, 201, "{body}");
    service.wait_for_log("pull source live");
    let first: Value = serde_json::from_slice(&listener.requests.recv_timeout(WAIT).expect("a callback").body).unwrap();
    assert_eq!(
        (first["domain"].as_str(), first["app"].as_str(), first["stream_name"].as_str()),
        (Some("localhost"), Some("live"), Some("cam"))
    );
    let stored = dir.path().join(".livesnap/snapshots").join(first["obs_addr"]["object"].as_str().unwrap());
    assert_eq!(decode_jpeg(&stored).1, 320);

    let (_, list) = api.call("GET", "/sources", None);
    assert_eq!((source(&list, "cam")["state"].as_str(), source(&list, "cam")["origin"].as_str()), (Some("live"), Some("api")), "{list}");
    let (_, streams) = api.call("GET", "/streams", None);
    assert_eq!(streams["streams"][0]["peer"].as_str(), Some(url.as_str()), "{streams}");
    // On demand, as for a pushed stream.
    let (status, taken) = api.call("POST", "/streams/localhost/live/cam/snapshot", None);
    assert_eq!(status, 200, "{taken}");
    assert!(dir.path().join(".livesnap/snapshots").join(taken["obs_addr"]["object"].as_str().unwrap()).is_file());

    // The server dies: the source retries, with the reason.
    drop(server);
    service.wait_for_log("pull source: ");
    let (_, list) = api.call("GET", "/sources", None);
    let cam = source(&list, "cam");
    assert!(matches!(cam["state"].as_str(), Some("retrying" | "connecting")), "{list}");
    // It comes back: live again, snapshots resume.
    let _server = rtmp_server(&video, &url);
    service.wait_for_log("pull source live");
    let resumed: Value = loop {
        let cb: Value = serde_json::from_slice(&listener.requests.recv_timeout(WAIT).expect("callbacks after the comeback").body).unwrap();
        if cb["obs_addr"]["object"] != first["obs_addr"]["object"] {
            break cb;
        }
    };
    assert_eq!(resumed["stream_name"].as_str(), Some("cam"));

    // Deleted: it stops and is gone.
    let (status, _) = api.call("DELETE", "/sources/localhost/live/cam", None);
    assert_eq!(status, 204);
    service.wait_for_log("pull source stopped");
    let (_, list) = api.call("GET", "/sources", None);
    assert_eq!(list["total"], 0, "{list}");
    assert_eq!(api.call("DELETE", "/sources/localhost/live/cam", None).0, 404);
}

/// An RTSP server that answers every request with 401 (Basic).
fn rtsp_refusing() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut out = conn;
                let mut cseq = String::from("1");
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 {
                    if let Some(v) = line.strip_prefix("CSeq:") {
                        cseq = v.trim().to_string();
                    }
                    if line == "\r\n" {
                        let reply = format!("RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\nWWW-Authenticate: Basic realm=\"cam\"\r\n\r\n");
                        if out.write_all(reply.as_bytes()).is_err() {
                            return;
                        }
                    }
                    line.clear();
                }
            });
        }
    });
    port
}

/// The next log line of a failed attempt of source `stream`.
fn failure_of(service: &mut Service, stream: &str) -> String {
    loop {
        let line = service.wait_for_log("pull source: ");
        if line.contains(&format!("stream=localhost/live/{stream} ")) {
            return line;
        }
    }
}

#[test]
fn a_failing_source_shows_why_and_never_its_password() {
    let dir = tempdir();
    let listener = Listener::start(vec![]);
    let port = rtsp_refusing();
    let declared =
        format!("[[trigger.snapshot.source]]\nstream = \"door\"\nurl = \"rtsp://admin:hunter2@127.0.0.1:{port}/cam?token=t0ps3cret\"\n");
    manifest(dir.path(), &listener.url, &declared);
    let mut service = Service::start(dir.path(), &[]);
    let api = service.api();
    let line = failure_of(&mut service, "door");
    assert!(line.to_lowercase().contains("unauthorized"), "{line}");

    // A private address is refused by the egress policy before any packet.
    let (status, body) = api.call("PUT", "/sources/localhost/live/lan", Some(br#"{"url": "rtsp://user:pw123456@10.1.2.3/x"}"#));
    assert_eq!(status, 201, "{body}");
    let line = failure_of(&mut service, "lan");
    assert!(line.contains("egress") || line.contains("refused"), "{line}");

    // Nothing listens there: the reason says so.
    let closed = free_port();
    let (status, _) = api.call(
        "PUT",
        "/sources/localhost/live/gone",
        Some(json!({"url": format!("rtmp://127.0.0.1:{closed}/live/x")}).to_string().as_bytes()),
    );
    assert_eq!(status, 201);
    let line = failure_of(&mut service, "gone");
    assert!(line.to_lowercase().contains("connect"), "{line}");

    let (_, list) = api.call("GET", "/sources", None);
    assert!(source(&list, "gone")["last_error"].as_str().unwrap().to_lowercase().contains("connect"), "{list}");
    let door = source(&list, "door");
    // Retrying, or already at its next attempt: either way with the reason.
    assert_eq!(door["origin"].as_str(), Some("manifest"), "{list}");
    assert!(matches!(door["state"].as_str(), Some("retrying" | "connecting")), "{list}");
    assert!(door["last_error"].as_str().unwrap().to_lowercase().contains("unauthorized"), "{list}");
    assert!(door["attempts"].as_u64().unwrap() >= 1, "{list}");
    assert_eq!(door["url"].as_str(), Some(format!("rtsp://admin:***@127.0.0.1:{port}/cam?token=***").as_str()));
    // The manifest's source is read-only through the API.
    assert_eq!(api.call("PUT", "/sources/localhost/live/door", Some(br#"{"url": "rtsp://127.0.0.1/x"}"#)).0, 400);

    let everything = format!("{list}\n{}", service.log_text());
    for secret in ["hunter2", "t0ps3cret", "pw123456"] {
        assert!(!everything.contains(secret), "{secret} leaked:\n{everything}");
    }
}

#[test]
fn sources_past_the_quota_are_refused() {
    let dir = tempdir();
    let listener = Listener::start(vec![]);
    manifest(dir.path(), &listener.url, "");
    std::fs::write(dir.path().join("rc.toml"), "[quotas]\nmax_sources = 1\n").unwrap();
    let service = Service::start(dir.path(), &["--runtime-config", "rc.toml"]);
    let api = service.api();
    let url = |port: u16| json!({"url": format!("rtmp://127.0.0.1:{port}/live/x")}).to_string();
    assert_eq!(api.call("PUT", "/sources/localhost/live/one", Some(url(free_port()).as_bytes())).0, 201);
    // Replacing the one there is fine; a second is not.
    assert_eq!(api.call("PUT", "/sources/localhost/live/one", Some(url(free_port()).as_bytes())).0, 200);
    let (status, answer) = api.call("PUT", "/sources/localhost/live/two", Some(url(free_port()).as_bytes()));
    assert_eq!((status, answer["error_code"].as_str()), (400, Some("LIVE.103011020")), "{answer}");
}
