//! Pulling live streams from real servers on loopback (ffmpeg serving RTMP
//! and HTTP-FLV, GStreamer's RTSP server): `livesnap capture URL` takes the
//! same snapshots as for a pushed stream; refusals name their reason and
//! never print the password.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::capture::assert_right_pictures;
use crate::support::*;

/// 7 s of 1280x720 30 fps x264 High profile with B-frames, an IDR every second.
fn clip() -> PathBuf {
    high_profile_clip("pull-high720.flv", 7)
}

/// A server process, killed when the test ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// ffmpeg serving `clip` in real time to one client at `url` (`-listen 1`).
fn ffmpeg_server(clip: &Path, url: &str) -> Server {
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
        .arg(clip)
        .args(["-c", "copy", "-f", "flv", "-listen", "1", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("ffmpeg must be installed (scripts/setup --test)");
    Server(child)
}

/// GStreamer's RTSP server (tests/support/rtsp-server.py) serving `clip`.
fn rtsp_server(clip: &Path, port: u16, path: &str) -> Server {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/support/rtsp-server.py");
    let child = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(port.to_string())
        .arg(path)
        .arg(clip)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("python3 with GStreamer's RTSP server (scripts/setup --test)");
    Server(child)
}

/// `livesnap capture URL --duration 6 --interval 5`, retried while the
/// server does not listen yet (the client reports "cannot connect").
fn pull(dir: &Path, url: &str) -> (Vec<Value>, Value, Output) {
    let out = dir.join("out");
    let args = ["--out", out.to_str().unwrap(), "--stream", "cam", "--interval", "5", "--duration", "6"];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut cmd = livesnap();
        cmd.current_dir(dir).arg("capture").arg(url).args(["--json", "--start-time", "1764070000"]).args(args);
        let output = run(&mut cmd);
        let err = stderr(&output);
        if !output.status.success() && err.contains("cannot connect") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        assert!(output.status.success(), "{url}: {err}");
        let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let (summary, lines) = lines.split_last().expect("a summary line");
        return (lines.to_vec(), summary["summary"].clone(), output);
    }
}

/// Snapshots on the 5 s grid of the first 6 s, the pictures ffmpeg decodes there.
fn assert_pulled(clip: &Path, dir: &Path, lines: &[Value], summary: &Value) {
    let times: Vec<u64> = lines.iter().map(|l| l["stream_time_ms"].as_u64().unwrap()).collect();
    assert_eq!(times, [0, 5000], "{lines:?}");
    assert_eq!(lines[0]["object"], "snapshot/localhost/live/cam/1764070000.jpg");
    assert_eq!(summary["snapshots"], 2);
    assert_eq!(summary["errors"], 0);
    assert!(summary["error"].is_null(), "{summary}");
    let pictures = summary["pictures"].as_u64().unwrap();
    assert!((170..=185).contains(&pictures), "6 s of 30 fps, got {pictures} pictures");
    assert_right_pictures(clip, &dir.join("out"), lines);
}

#[test]
fn rtmp_pull_from_ffmpeg() {
    let clip = clip();
    let port = free_port();
    let _server = ffmpeg_server(&clip, &format!("rtmp://127.0.0.1:{port}/live/cam"));
    let dir = tempdir();
    let (lines, summary, _) = pull(dir.path(), &format!("rtmp://127.0.0.1:{port}/live/cam"));
    assert_pulled(&clip, dir.path(), &lines, &summary);
}

#[test]
fn http_flv_pull_from_ffmpeg() {
    let clip = clip();
    let port = free_port();
    let _server = ffmpeg_server(&clip, &format!("http://127.0.0.1:{port}/live/cam.flv"));
    let dir = tempdir();
    let (lines, summary, _) = pull(dir.path(), &format!("http://127.0.0.1:{port}/live/cam.flv"));
    assert_pulled(&clip, dir.path(), &lines, &summary);
}

#[test]
fn rtsp_pull_from_gstreamer_over_tcp() {
    let clip = clip();
    let port = free_port();
    let _server = rtsp_server(&clip, port, "/live/cam");
    let dir = tempdir();
    let (lines, summary, _) = pull(dir.path(), &format!("rtsp://127.0.0.1:{port}/live/cam"));
    assert_pulled(&clip, dir.path(), &lines, &summary);
}

#[test]
fn rtsp_pull_over_udp_with_the_udp_fragment() {
    let clip = clip();
    let port = free_port();
    let _server = rtsp_server(&clip, port, "/live/cam");
    let dir = tempdir();
    let (lines, summary, output) = pull(dir.path(), &format!("rtsp://127.0.0.1:{port}/live/cam#udp"));
    assert!(stderr(&output).contains("transport=\"udp\""), "{}", stderr(&output));
    assert_pulled(&clip, dir.path(), &lines, &summary);
}

/// An RTSP server that answers every request with 401 and a digest
/// challenge; the requests it saw come out of the returned receiver.
fn rtsp_401_server() -> (u16, std::sync::mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(4) {
            let Ok(conn) = conn else { return };
            conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut writer = conn.try_clone().unwrap();
            let mut reader = BufReader::new(conn);
            loop {
                let mut request = String::new();
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                    request.push_str(&line);
                    line.clear();
                }
                if request.is_empty() {
                    break;
                }
                let cseq = request.lines().find_map(|l| l.strip_prefix("CSeq:")).unwrap_or("1").trim().to_string();
                let _ = tx.send(request);
                let reply = format!(
                    "RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\nWWW-Authenticate: Digest realm=\"livesnap-test\", nonce=\"0a4f113b\"\r\nContent-Length: 0\r\n\r\n"
                );
                if writer.write_all(reply.as_bytes()).is_err() {
                    break;
                }
            }
            let _ = reader.read_to_end(&mut Vec::new());
        }
    });
    (port, rx)
}

#[test]
fn rtsp_wrong_password_is_unauthorized_and_the_password_is_never_printed() {
    let (port, requests) = rtsp_401_server();
    let dir = tempdir();
    let url = format!("rtsp://admin:Sup3rSecretPw@127.0.0.1:{port}/live/cam?token=TopTok3n");
    let out = run(livesnap().current_dir(dir.path()).args(["capture", &url, "--json", "--duration", "2"]));
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.to_lowercase().contains("unauthorized"), "{err}");
    assert!(!err.contains("Sup3rSecretPw") && !err.contains("TopTok3n"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Sup3rSecretPw"));
    assert!(err.contains("rtsp://admin:***@127.0.0.1"), "{err}");
    let seen: Vec<String> = requests.try_iter().collect();
    assert!(seen[0].starts_with("DESCRIBE rtsp://127.0.0.1:"), "no userinfo in the request URL: {seen:?}");
    assert!(seen.iter().all(|r| !r.contains("Sup3rSecretPw")), "{seen:?}");
    assert!(seen.iter().any(|r| r.contains("Authorization: Digest")), "the credentials were offered: {seen:?}");
}

#[test]
fn a_metadata_address_is_refused_by_the_egress_policy_before_any_packet() {
    let dir = tempdir();
    for url in ["rtsp://169.254.169.254/x", "rtmp://169.254.169.254/live/x", "http://169.254.169.254/live/x.flv"] {
        let out = run(livesnap().current_dir(dir.path()).env_remove("LIVESNAP_EGRESS_ALLOW").args(["capture", url, "--duration", "1"]));
        let err = stderr(&out);
        assert!(!out.status.success(), "{url}");
        assert!(err.contains("refused by the egress policy: a cloud metadata address"), "{url}: {err}");
    }
}
