//! Snapshots on demand and the latest snapshot of a live stream, through
//! the API of `livesnap up` with a real ffmpeg publisher.

use serde_json::Value;

use crate::service::*;
use crate::support::*;

fn manifest(dir: &std::path::Path, callback: &str) {
    std::fs::write(
        dir.join("spin.toml"),
        format!(
            r#"spin_manifest_version = 2
[application]
name = "on-demand"
[[trigger.snapshot]]
domain = "localhost"
app_name = "live"
time_interval = 60
object_write_mode = 0
obs_location = {{ bucket = "snapshots", location = "local" }}
call_back_enable = "on"
call_back_url = "{callback}"
image_object_format = "{{obs_object}}/{{stream}}/{{unix_time_milli}}.jpg"
"#
        ),
    )
    .unwrap();
}

#[test]
fn a_snapshot_on_demand_takes_the_newest_picture_and_latest_serves_it_until_the_stream_ends() {
    let dir = tempdir();
    let listener = Listener::start(vec![]);
    manifest(dir.path(), &listener.url);
    let mut service = Service::start(dir.path(), &[]);
    let api = service.api();

    // Not live: 404 for both.
    assert_eq!(api.call("POST", "/streams/localhost/live/cam/snapshot", None).0, 404);
    let (status, _, body) = api.get_raw("/streams/localhost/live/cam/latest.jpg", None);
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("is not live"), "{}", String::from_utf8_lossy(&body));

    let video = small_baseline_flv();
    let mut ffmpeg = KillOnDrop(ffmpeg_publish(&video, &service.rtmp_url("localhost", "live/cam"), true, &[]));
    // The interval (60 s) snapshot at the stream's first picture.
    let first: Value = serde_json::from_slice(&listener.requests.recv_timeout(WAIT).expect("the first snapshot's callback").body).unwrap();

    let (status, taken) = api.call("POST", "/streams/localhost/live/cam/snapshot", None);
    assert_eq!(status, 200, "{taken}");
    assert!(ffmpeg.0.try_wait().unwrap().is_none(), "still publishing");
    let stream_time = taken["stream_time_ms"].as_u64().unwrap();
    assert!(stream_time > 0, "newer than the interval snapshot at the first picture: {taken}");
    assert_eq!((taken["width"].as_u64(), taken["height"].as_u64()), (Some(320), Some(240)));
    let object = taken["obs_addr"]["object"].as_str().unwrap();
    assert_ne!(Some(object), first["obs_addr"]["object"].as_str());
    let file = dir.path().join(".livesnap/snapshots").join(object);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), taken["size"].as_u64().unwrap());

    // It is the picture at its stream time (30 fps), as ffmpeg decodes it:
    // close to it (at 320x240, chroma upsampling differences cap PSNR near
    // 27 dB) and closer than to the pictures before and after.
    let (pixels, w, h) = decode_jpeg(&file);
    let frame = (stream_time * 30 + 500) / 1000;
    let (reference, rw, rh) = reference_frame(&video, frame);
    assert_eq!((w, h), (rw, rh));
    let quality = psnr(&pixels, &reference);
    assert!(quality >= 25.0, "PSNR {quality:.1} dB against frame {frame}");
    for other in [frame - 1, frame + 1] {
        let against = psnr(&pixels, &reference_frame(&video, other).0);
        assert!(against < quality, "frame {other} matches better ({against:.1} dB) than frame {frame} ({quality:.1} dB)");
    }

    // Stored and notified as the template says.
    let notified: Value = serde_json::from_slice(&listener.requests.recv_timeout(WAIT).expect("its callback").body).unwrap();
    assert_eq!(notified["obs_addr"]["object"].as_str(), Some(object));

    // latest.jpg is that snapshot, revalidated by ETag, never cached blindly.
    let (status, headers, body) = api.get_raw("/streams/localhost/live/cam/latest.jpg", None);
    assert_eq!(status, 200);
    assert_eq!(body, std::fs::read(&file).unwrap());
    assert_eq!(headers.get("content-type").map(String::as_str), Some("image/jpeg"));
    assert_eq!(headers.get("cache-control").map(String::as_str), Some("no-cache"));
    let etag = headers.get("etag").expect("an ETag").clone();
    let (status, _, body) = api.get_raw("/streams/localhost/live/cam/latest.jpg", Some(&etag));
    assert_eq!((status, body.len()), (304, 0));

    // After the stream ends: 404 with a clear body.
    ffmpeg.0.kill().unwrap();
    service.wait_for_log("publisher disconnected");
    let (status, _, body) = api.get_raw("/streams/localhost/live/cam/latest.jpg", Some(&etag));
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("localhost/live/cam is not live"), "{}", String::from_utf8_lossy(&body));
    assert_eq!(api.call("POST", "/streams/localhost/live/cam/snapshot", None).0, 404);
}
