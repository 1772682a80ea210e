//! `livesnap up` with real RTMP publishers (ffmpeg) and a real callback
//! listener.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::Value;

use crate::service::*;
use crate::support::*;

fn manifest_with_callback(dir: &std::path::Path, url: &str, interval: u32, mode: u8) {
    std::fs::write(
        dir.join("spin.toml"),
        format!(
            r#"spin_manifest_version = 2
[application]
name = "live-test"
[[trigger.snapshot]]
domain = "localhost"
app_name = "live"
time_interval = {interval}
object_write_mode = {mode}
obs_location = {{ bucket = "snapshots", location = "local" }}
call_back_enable = "on"
call_back_url = "{url}"
"#
        ),
    )
    .unwrap();
}

fn next_callback(listener: &Listener) -> Value {
    let r = listener.requests.recv_timeout(WAIT).expect("a callback within the wait");
    serde_json::from_slice(&r.body).unwrap()
}

#[test]
fn snapshots_and_callbacks_arrive_while_the_stream_is_live() {
    let dir = tempdir();
    let listener = Listener::start(vec![]);
    manifest_with_callback(dir.path(), &listener.url, 5, 0);
    let mut service = Service::start(dir.path(), &[]);
    let mut ffmpeg = KillOnDrop(ffmpeg_publish(&small_baseline_flv(), &service.rtmp_url("localhost", "live/cam1"), true, &[]));

    let first = next_callback(&listener);
    assert!(ffmpeg.0.try_wait().unwrap().is_none(), "the first callback came while publishing");
    assert_eq!((first["domain"].as_str(), first["stream_name"].as_str()), (Some("localhost"), Some("cam1")));
    let second = next_callback(&listener);
    assert!(ffmpeg.0.try_wait().unwrap().is_none(), "the second callback came while publishing");
    assert_ne!(first["obs_addr"]["object"], second["obs_addr"]["object"]);

    // The snapshot URL serves the stored bytes.
    let url = second["snapshot_url"].as_str().unwrap();
    let path = url.strip_prefix(&service.http).expect("snapshot_url points at this service");
    let (status, body) = service.get(path);
    assert_eq!(status, 200);
    let object = second["obs_addr"]["object"].as_str().unwrap();
    assert_eq!(body, std::fs::read(dir.path().join(".livesnap/snapshots").join(object)).unwrap());

    let (status, body) = service.api_get("/streams");
    assert_eq!(status, 200);
    let streams: Value = serde_json::from_slice(&body).unwrap();
    let s = &streams["streams"][0];
    assert_eq!((s["stream"].as_str(), s["template"]["time_interval"].as_u64()), (Some("cam1"), Some(5)));
    assert!(s["frames"].as_u64().unwrap() > 0 && s["snapshots"].as_u64().unwrap() >= 2, "{s}");
    assert!(s["last_snapshot_url"].is_string());
    let (_, metrics) = service.get("/metrics");
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(metrics.contains("livesnap_streams_active 1"), "{metrics}");
    assert!(metrics.contains("livesnap_callbacks_total{result=\"ok\"}"));

    // An abrupt end: the publisher is killed.
    ffmpeg.0.kill().unwrap();
    let line = service.wait_for_log("publisher disconnected");
    assert!(line.contains("stream=localhost/live/cam1"), "{line}");
    let (_, body) = service.api_get("/streams");
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["total"], 0);
    assert!(service.stop().success());
}

#[test]
fn eight_publishers_at_once() {
    let dir = tempdir();
    let listener = Listener::start(vec![]);
    manifest_with_callback(dir.path(), &listener.url, 5, 0);
    let service = Service::start(dir.path(), &[]);
    let video = small_baseline_flv();
    let publishers: Vec<KillOnDrop> = (0..8)
        .map(|i| KillOnDrop(ffmpeg_publish(&video, &service.rtmp_url("localhost", &format!("live/s{i}")), true, &["-t", "8"])))
        .collect();
    let mut per_stream: BTreeMap<String, Vec<String>> = BTreeMap::new();
    while per_stream.len() < 8 || per_stream.values().any(|v| v.len() < 2) {
        let cb = next_callback(&listener);
        per_stream
            .entry(cb["stream_name"].as_str().unwrap().to_string())
            .or_default()
            .push(cb["obs_addr"]["object"].as_str().unwrap().to_string());
    }
    for (stream, objects) in &per_stream {
        assert!(objects.iter().all(|o| o.contains(&format!("/live/{stream}/"))), "{stream}: {objects:?}");
        assert!(dir.path().join(".livesnap/snapshots").join(&objects[1]).is_file());
    }
    drop(publishers);
}

#[test]
fn bad_publishers_are_refused_or_dropped_and_others_keep_their_snapshots() {
    let dir = tempdir();
    let listener = Listener::start(vec![]);
    manifest_with_callback(dir.path(), &listener.url, 5, 0);
    let mut service = Service::start(dir.path(), &[]);
    let video = small_baseline_flv();
    let good = KillOnDrop(ffmpeg_publish(&video, &service.rtmp_url("localhost", "live/good"), true, &[]));
    assert_eq!(next_callback(&listener)["stream_name"], "good");

    // Unknown domain (from tcUrl): refused at publish.
    let tc_url = "rtmp://unknown.example/live";
    let mut unknown = ffmpeg_publish(&video, &service.rtmp_url("127.0.0.1", "live/x"), false, &["-t", "1", "-rtmp_tcurl", tc_url]);
    assert!(!unknown.wait().unwrap().success());
    service.wait_for_log("publish refused: no snapshot template for domain 'unknown.example' app 'live'");

    // A second publisher on a live stream name: refused.
    let mut twin = ffmpeg_publish(&video, &service.rtmp_url("localhost", "live/good"), false, &["-t", "1"]);
    assert!(!twin.wait().unwrap().success());
    service.wait_for_log("localhost/live/good is already being published");

    // Garbage after the handshake: dropped with a protocol error.
    let mut garbage = RawPublisher::connect(&service.rtmp);
    let noise: Vec<u8> = (0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8).collect();
    let _ = garbage.socket.write_all(&noise);
    service.wait_for_log("publisher dropped: RTMP protocol error");

    // A publisher that never sends a keyframe: reported, never decoded.
    let mut nokey = RawPublisher::connect(&service.rtmp);
    nokey.publish(&format!("rtmp://localhost:{}/live", service.rtmp.rsplit(':').next().unwrap()), "live", "nokey");
    for (ts, body) in flv_video_tags(&small_baseline_flv()) {
        let keyframe_picture = body[0] >> 4 == 1 && body[1] == 1;
        if !keyframe_picture {
            nokey.video(ts, &body).unwrap();
        }
    }
    service.wait_for_log("stream=localhost/live/nokey");
    service.wait_for_log("no keyframe (IDR) received yet");
    let nokey_counts = |service: &Service| {
        let (_, body) = service.api_get("/streams");
        let streams: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let s = streams["streams"].as_array().unwrap().iter().find(|s| s["stream"] == "nokey").cloned().expect("nokey is live");
        (s["frames"].as_u64().unwrap(), s["snapshots"].as_u64().unwrap())
    };
    let (frames, snapshots) = nokey_counts(&service);
    assert!(frames >= 300 && snapshots == 0, "{frames} pictures, {snapshots} snapshots: nothing captured without a keyframe");

    // The good stream still gets its snapshots after all that.
    let mut after = 0;
    while after < 1 {
        if next_callback(&listener)["stream_name"] == "good" {
            after += 1;
        }
    }
    assert_eq!(nokey_counts(&service).1, 0, "still nothing captured without a keyframe");
    drop(nokey);
    drop(good);
}

#[test]
fn up_works_out_of_the_box_without_config_files() {
    let dir = tempdir();
    let mut service = Service::start(dir.path(), &[]);
    let mut ffmpeg = ffmpeg_publish(&small_baseline_flv(), &service.rtmp_url("127.0.0.1", "live/test?token=abc"), false, &["-t", "7"]);
    assert!(ffmpeg.wait().unwrap().success());
    let stored = service.wait_for_log("stream_time_ms=5000");
    let object = stored.split_whitespace().find_map(|w| w.strip_prefix("object=")).unwrap();
    assert!(object.starts_with("snapshot/127.0.0.1/live/test/") && object.ends_with(".jpg"), "{object}");
    let file = dir.path().join(".livesnap/snapshots").join(object);
    let (status, body) = service.get(&format!("/obs/snapshots/{object}"));
    assert_eq!(status, 200);
    assert_eq!(body, std::fs::read(file).unwrap());
    let (status, body) = service.get("/obs/snapshots/../secret");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("\"error_code\":\"LIVE."));
    assert_eq!(service.get("/obs/snapshots/snapshot/none.jpg").0, 404);
    assert_eq!(service.get("/obs/other-bucket/a.jpg").0, 404);
    let status = service.stop();
    assert!(status.success());
}

#[test]
fn template_changes_apply_from_the_next_snapshot_and_bad_ones_are_rejected() {
    let dir = tempdir();
    let listener = Listener::start(vec![]);
    manifest_with_callback(dir.path(), &listener.url, 5, 0);
    let mut service = Service::start(dir.path(), &[]);
    let _ffmpeg = KillOnDrop(ffmpeg_publish(&small_baseline_flv(), &service.rtmp_url("localhost", "live/cam"), true, &[]));
    let first = next_callback(&listener);
    assert!(first["obs_addr"]["object"].as_str().unwrap().starts_with("snapshot/localhost/live/cam/"));

    // An invalid change is refused and the running template kept.
    std::fs::write(dir.path().join("spin.toml"), "spin_manifest_version = 2\n[[trigger.snapshot]]\ndomain = \"localhost\"\ntime_interval = 1\nobs_location = { bucket = \"snapshots\", location = \"local\" }\n").unwrap();
    service.hangup();
    service.wait_for_log("configuration change rejected");

    // Instant mode from the next snapshot on.
    manifest_with_callback(dir.path(), &listener.url, 5, 1);
    service.hangup();
    service.wait_for_log("configuration reloaded");
    loop {
        let cb = next_callback(&listener);
        if cb["obs_addr"]["object"] == "snapshot/localhost/live/cam.jpg" {
            break;
        }
    }
    assert!(dir.path().join(".livesnap/snapshots/snapshot/localhost/live/cam.jpg").is_file());
    assert!(service.stop().success());
}

#[test]
fn a_publish_past_the_live_stream_quota_is_refused_and_the_live_one_keeps_going() {
    let dir = tempdir();
    let listener = Listener::start(vec![]);
    manifest_with_callback(dir.path(), &listener.url, 5, 0);
    std::fs::write(dir.path().join("rc.toml"), "[quotas]\nmax_streams = 1\n").unwrap();
    let mut service = Service::start(dir.path(), &["--runtime-config", "rc.toml"]);
    let video = small_baseline_flv();
    let _first = KillOnDrop(ffmpeg_publish(&video, &service.rtmp_url("localhost", "live/one"), true, &[]));
    assert_eq!(next_callback(&listener)["stream_name"], "one");
    let mut second = ffmpeg_publish(&video, &service.rtmp_url("localhost", "live/two"), false, &["-t", "1"]);
    assert!(!second.wait().unwrap().success());
    let line = service.wait_for_log("maximum of 1 live streams");
    assert!(line.contains("stream=two"), "{line}");
    assert_eq!(next_callback(&listener)["stream_name"], "one", "the live stream keeps its snapshots");
}
