//! Online streams (`ListLiveStreamsOnline`) and usage (`ListSnapshotData`,
//! the v2 client) through Huawei's own Python SDK, measured from a real
//! ffmpeg publisher with audio.

use crate::service::*;
use crate::support::*;

/// 20 s of 320x240 30 fps Baseline video and 64 kbit/s AAC, FLV.
fn audio_video_flv() -> std::path::PathBuf {
    media(
        "av240.flv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100",
            "-t",
            "20",
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
            "-g",
            "30",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "64k",
            "-f",
            "flv",
        ],
    )
}

#[test]
fn online_streams_show_measured_rates_and_usage_counts_snapshots_across_restarts() {
    let dir = tempdir();
    let mut service = Service::start(dir.path(), &[]);
    let c = service.api();
    let video = audio_video_flv();
    let tags = flv_video_tags(&video);
    let expected_kbps = tags.iter().map(|(_, d)| d.len() as f64).sum::<f64>() * 8.0 / 20.0 / 1000.0;
    let _publisher = KillOnDrop(ffmpeg_publish(&video, &service.rtmp_url("localhost", "live/cam"), true, &[]));
    // Snapshots at stream time 0 and 5 s: a full measuring window has passed.
    service.wait_for_log("snapshot stored");
    service.wait_for_log("snapshot stored");

    let online = sdk(&service, &c, &["online", "localhost"]);
    assert_eq!(online["ok"], true, "{online}");
    let body = &online["body"];
    assert_eq!((body["total_num"].as_u64(), body["total_page"].as_u64()), (Some(1), Some(1)), "{online}");
    assert!(body["request_id"].as_str().is_some_and(|id| id.len() == 32), "{online}");
    let s = &body["streams"][0];
    eprintln!("measured: {s}; the file's video: {expected_kbps:.0} kbit/s");
    assert_eq!((s["publish_domain"].as_str(), s["app"].as_str(), s["stream"].as_str()), (Some("localhost"), Some("live"), Some("cam")));
    assert_eq!((s["video_codec"].as_str(), s["audio_codec"].as_str()), (Some("H264"), Some("AAC")), "{s}");
    assert_eq!((s["resolution"].as_str(), s["client_ip"].as_str()), (Some("320x240"), Some("127.0.0.1")), "{s}");
    assert_eq!(s["video_frame_rate"].as_u64(), Some(30), "{s}");
    let kbps = s["video_bitrate"].as_f64().unwrap();
    assert!(kbps > expected_kbps * 0.5 && kbps < expected_kbps * 1.5, "video {kbps} kbit/s, the file has {expected_kbps:.0}: {s}");
    let audio = s["audio_bitrate"].as_f64().unwrap();
    assert!((40.0..100.0).contains(&audio), "audio {audio} kbit/s for 64k AAC: {s}");
    assert!((40..50).contains(&s["audio_frame_rate"].as_u64().unwrap()), "44.1 kHz AAC is 43 frames/s: {s}");
    let start = s["start_time"].as_str().unwrap();
    assert!(crate::service::iso_utc_like(start), "{start}");
    // Other domains and names see nothing; a stream needs its app.
    assert_eq!(sdk(&service, &c, &["online", "127.0.0.1"])["body"]["total_num"], 0);
    assert_eq!(sdk(&service, &c, &["online", "localhost", "live", "other"])["body"]["total_num"], 0);
    let refused = sdk(&service, &c, &["online", "localhost", "", "cam"]);
    assert_eq!((refused["status"].as_u64(), refused["error_code"].as_str()), (Some(400), Some("LIVE.100011001")), "{refused}");

    // Usage: every hour of the last day, the snapshots in this one.
    let usage = sdk(&service, &c, &["usage", "localhost"]);
    assert_eq!(usage["ok"], true, "{usage}");
    let list = usage["body"]["snapshot_list"].as_array().unwrap();
    assert_eq!(list.len(), 25, "{usage}");
    let counted = usage["body"]["total"].as_u64().unwrap();
    assert!(counted >= 2, "{usage}");
    assert_eq!(list.iter().map(|h| h["count"].as_u64().unwrap()).sum::<u64>(), counted);
    assert!(list.iter().all(|h| h["time"].as_str().is_some_and(|t| t.ends_with(":00:00Z"))), "{usage}");
    for (start, end, why) in [("yesterday", "", "start_time"), ("2025-01-01T00:00:00Z", "2025-03-01T00:00:00Z", "31 days")] {
        let refused = sdk(&service, &c, &["usage", "localhost", start, end]);
        assert_eq!(refused["status"].as_u64(), Some(400), "{refused}");
        assert!(refused["error_msg"].as_str().unwrap().contains(why), "{refused}");
    }

    // Counted durably: after a restart, at least as many.
    drop(_publisher);
    assert!(service.stop().success());
    let service = Service::start(dir.path(), &[]);
    let again = sdk(&service, &c, &["usage", "localhost"]);
    assert!(again["body"]["total"].as_u64().unwrap() >= counted, "{again}");
    assert_eq!(sdk(&service, &c, &["usage", "127.0.0.1"])["body"]["total"], 0);
}
