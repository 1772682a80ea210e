//! Snapshots on stream time, right pictures, right names.

use std::process::Command;

use crate::support::*;

fn ffprobe_field(path: &std::path::Path, field: &str) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", &format!("stream={field}"), "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Each stored JPEG has the stream's size and is the picture ffmpeg decodes
/// at the snapshot's stream time.
pub(crate) fn assert_right_pictures(video: &std::path::Path, out_dir: &std::path::Path, lines: &[serde_json::Value]) {
    for line in lines {
        let object = line["object"].as_str().unwrap();
        let (jpeg, w, h) = decode_jpeg(&out_dir.join(object));
        let frame = (line["stream_time_ms"].as_u64().unwrap() * 30 + 500) / 1000;
        let (reference, rw, rh) = reference_frame(video, frame);
        assert_eq!((w, h), (rw, rh), "{object}");
        assert_eq!((line["width"].as_u64(), line["height"].as_u64()), (Some(u64::from(w)), Some(u64::from(h))));
        let db = psnr(&jpeg, &reference);
        assert!(db >= 30.0, "{object}: PSNR {db:.1} dB against frame {frame}");
    }
}

#[test]
fn high_profile_with_b_frames_gives_snapshots_every_5s_of_stream_time() {
    let video = high_profile_flv();
    assert_eq!(ffprobe_field(&video, "profile"), "High");
    assert_ne!(ffprobe_field(&video, "has_b_frames"), "0", "the fixture must have B-frames");
    let dir = tempdir();
    let out = dir.path().join("out");
    let (lines, summary, output) = capture(dir.path(), &video, &["--out", out.to_str().unwrap(), "--stream", "test001", "--interval", "5"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let times: Vec<u64> = lines.iter().map(|l| l["stream_time_ms"].as_u64().unwrap()).collect();
    assert_eq!(times, [0, 5000, 10000, 15000]);
    let objects: Vec<&str> = lines.iter().map(|l| l["object"].as_str().unwrap()).collect();
    assert_eq!(
        objects,
        [
            "snapshot/localhost/live/test001/1764070000.jpg",
            "snapshot/localhost/live/test001/1764070005.jpg",
            "snapshot/localhost/live/test001/1764070010.jpg",
            "snapshot/localhost/live/test001/1764070015.jpg",
        ]
    );
    assert_eq!(lines[0]["url"], "http://127.0.0.1:8080/obs/snapshots/snapshot/localhost/live/test001/1764070000.jpg");
    assert_eq!(summary["snapshots"], 4);
    assert_eq!(summary["pictures"], 600);
    assert_right_pictures(&video, &out, &lines);
}

#[test]
fn nokeyframe_and_random_modes_decode_the_right_non_idr_pictures() {
    let video = high_profile_flv();
    for mode in ["nokeyframe", "random"] {
        let dir = tempdir();
        let out = dir.path().join("out");
        let (lines, _, output) = capture(dir.path(), &video, &["--out", out.to_str().unwrap(), "--snapshot-mode", mode]);
        assert!(output.status.success(), "{}", stderr(&output));
        let times: Vec<u64> = lines.iter().map(|l| l["stream_time_ms"].as_u64().unwrap()).collect();
        assert_eq!(times.len(), 4, "{mode}: {times:?}");
        assert_eq!(times[0], 0, "the first snapshot is the first decodable picture");
        for (i, t) in times.iter().enumerate().skip(1) {
            let due = 5000 * i as u64;
            let is_idr_time = t % 1000 == 0;
            let want_keyframe = mode == "random" && i % 2 == 0;
            assert!(*t >= due && *t < due + 1000, "{mode}: snapshot {i} at {t}");
            assert_eq!(is_idr_time, want_keyframe, "{mode}: snapshot {i} at {t}");
        }
        assert_right_pictures(&video, &out, &lines);
    }
}

#[test]
fn colours_are_full_range() {
    let video = media(
        "black-white.flv",
        &[
            "-f",
            "lavfi",
            "-i",
            "color=c=black:s=320x240:r=30:d=5",
            "-f",
            "lavfi",
            "-i",
            "color=c=white:s=320x240:r=30:d=5",
            "-filter_complex",
            "[0][1]concat=n=2:v=1",
            "-c:v",
            "libx264",
            "-g",
            "30",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "flv",
        ],
    );
    let dir = tempdir();
    let out = dir.path().join("out");
    let (lines, _, output) = capture(dir.path(), &video, &["--out", out.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(lines.len(), 2);
    let mean = |i: usize| {
        let (px, _, _) = decode_jpeg(&out.join(lines[i]["object"].as_str().unwrap()));
        px.iter().map(|&p| f64::from(p)).sum::<f64>() / px.len() as f64
    };
    // Limited-range output would decode to about 16 and 235.
    assert!(mean(0) < 4.0, "black decodes to {}", mean(0));
    assert!(mean(1) > 251.0, "white decodes to {}", mean(1));
}

#[test]
fn instant_mode_keeps_exactly_one_object_per_stream() {
    let video = small_baseline_flv();
    let dir = tempdir();
    let out = dir.path().join("out");
    let (lines, _, output) = capture(dir.path(), &video, &["--out", out.to_str().unwrap(), "--mode", "instant", "--stream", "cam1"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(lines.len(), 4);
    assert!(lines.iter().all(|l| l["object"] == "snapshot/localhost/live/cam1.jpg"));
    let files: Vec<_> = walk(&out);
    assert_eq!(files, [out.join("snapshot/localhost/live/cam1.jpg")]);
    let last = lines.last().unwrap()["bytes"].as_u64().unwrap();
    assert_eq!(std::fs::metadata(&files[0]).unwrap().len(), last, "the object is the latest snapshot");
}

#[test]
fn a_domain_without_a_template_is_captured_with_the_default_settings_and_says_so() {
    let video = small_baseline_flv();
    let dir = tempdir();
    let out = dir.path().join("out");
    let (lines, _, output) =
        capture(dir.path(), &video, &["--out", out.to_str().unwrap(), "--domain", "cams.example.com", "--app", "door", "--stream", "s1"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("no template for domain 'cams.example.com' app 'door': capturing with the settings of localhost/live")
    );
    assert_eq!(lines.len(), 4, "the default interval (5 s) over 20 s");
    for line in &lines {
        let object = line["object"].as_str().unwrap();
        assert!(object.starts_with("snapshot/cams.example.com/door/s1/"), "{object}");
        assert!(out.join(object).is_file());
    }
}

#[test]
fn image_object_format_and_prefix_from_the_manifest() {
    let video = small_baseline_flv();
    let dir = tempdir();
    let manifest = dir.path().join("spin.toml");
    std::fs::write(
        &manifest,
        r#"spin_manifest_version = 2
[application]
name = "naming"
[[trigger.snapshot]]
domain = "push.example.com"
app_name = "live"
time_interval = 10
obs_location = { bucket = "snapshots", location = "local", object = "shots" }
image_object_format = "{obs_object}/{app}/{stream}-{fmt_time_utc}-{unix_time_milli}"
"#,
    )
    .unwrap();
    let out = dir.path().join("out");
    let (lines, _, output) =
        capture(dir.path(), &video, &["--out", out.to_str().unwrap(), "--domain", "push.example.com", "--stream", "s1"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let objects: Vec<&str> = lines.iter().map(|l| l["object"].as_str().unwrap()).collect();
    assert_eq!(objects, ["shots/live/s1-20251125112640-1764070000000.jpg", "shots/live/s1-20251125112650-1764070010000.jpg"]);
    for o in objects {
        assert!(out.join(o).is_file());
    }
}

#[test]
fn annexb_input_from_a_file_and_from_stdin() {
    let raw = media(
        "base240.h264",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-t",
            "12",
            "-c:v",
            "libx264",
            "-bf",
            "2",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "h264",
        ],
    );
    let dir = tempdir();
    let (lines, summary, output) = capture(dir.path(), &raw, &["--fps", "25"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(summary["pictures"], 300);
    let times: Vec<u64> = lines.iter().map(|l| l["stream_time_ms"].as_u64().unwrap()).collect();
    assert_eq!(times, [0, 5000, 10000]);
    assert!(dir.path().join(".livesnap/snapshots/snapshot/localhost/live/base240/1764070005.jpg").is_file());

    let mut cmd = livesnap();
    cmd.current_dir(dir.path())
        .args(["capture", "-", "--json", "--fps", "25", "--stream", "piped", "--start-time", "1764070000"])
        .stdin(std::fs::File::open(&raw).unwrap());
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 4, "3 snapshots and the summary");
    assert!(dir.path().join(".livesnap/snapshots/snapshot/localhost/live/piped/1764070010.jpg").is_file());
}

#[test]
fn overrides_are_validated_like_templates() {
    let video = small_baseline_flv();
    let dir = tempdir();
    let out = run(livesnap().current_dir(dir.path()).arg("capture").arg(&video).args(["--interval", "4"]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("time_interval: 4 is outside 5-3600"), "{}", stderr(&out));
    // A domain without a template takes the default settings, but its name
    // is still validated as a template's.
    let out = run(livesnap().current_dir(dir.path()).arg("capture").arg(&video).args(["--domain", "not a domain!"]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("invalid value: domain:"), "{}", stderr(&out));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out.sort();
    out
}
