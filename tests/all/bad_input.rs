//! Damaged and wrong input: a clear error or a clean skip, never a panic.

use crate::support::*;

#[test]
fn truncated_file_keeps_what_is_there() {
    let video = small_baseline_flv();
    let data = std::fs::read(&video).unwrap();
    let dir = tempdir();
    let cut = dir.path().join("cut.flv");
    std::fs::write(&cut, &data[..data.len() * 6 / 10 + 7]).unwrap();
    let (lines, summary, output) = capture(dir.path(), &cut, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(lines.len(), 3, "snapshots at 0, 5 and 10 s of the 12 s left");
    assert_eq!(summary["skipped"], 1);
    assert!(stderr(&output).contains("the input ends inside a tag"), "{}", stderr(&output));
}

#[test]
fn garbage_in_the_middle_is_skipped() {
    let video = small_baseline_flv();
    let mut data = std::fs::read(&video).unwrap();
    let middle = data.len() / 2;
    let mut x: u32 = 12345;
    for b in &mut data[middle..middle + 20_000] {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        *b = (x >> 16) as u8;
    }
    let dir = tempdir();
    let bad = dir.path().join("garbage.flv");
    std::fs::write(&bad, &data).unwrap();
    let (lines, summary, output) = capture(dir.path(), &bad, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("damaged bytes"), "{}", stderr(&output));
    assert!(summary["skipped"].as_u64().unwrap() >= 1);
    assert_eq!(lines.iter().filter(|l| l.get("error").is_none()).count(), 4, "{lines:?}");
}

#[test]
fn a_damaged_keyframe_costs_only_its_own_snapshot_time() {
    let video = small_baseline_flv();
    let clean = std::fs::read(&video).unwrap();
    // Overwrite the slice data of the IDR at 5 s (the container stays intact).
    let mut data = clean.clone();
    let mut pos = 13;
    let mut damaged = None;
    while pos + 11 <= data.len() {
        let size = u32::from_be_bytes([0, data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        let ts = u32::from_be_bytes([data[pos + 7], data[pos + 4], data[pos + 5], data[pos + 6]]);
        let body = pos + 11;
        if data[pos] == 9 && ts >= 5000 && data[body] >> 4 == 1 && data[body + 1] == 1 {
            let mut x: u32 = 777;
            for b in &mut data[body + 24..body + size] {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                *b = (x >> 16) as u8;
            }
            damaged = Some(ts);
            break;
        }
        pos = body + size + 4;
    }
    assert_eq!(damaged, Some(5000), "the IDR at 5 s was found");
    let dir = tempdir();
    let bad = dir.path().join("bad-idr.flv");
    std::fs::write(&bad, &data).unwrap();
    let secs = |lines: &[serde_json::Value]| -> Vec<u64> {
        lines
            .iter()
            .map(|l| {
                l["object"].as_str().unwrap().rsplit('/').next().unwrap().trim_end_matches(".jpg").parse::<u64>().unwrap() - 1_764_070_000
            })
            .collect()
    };
    let (clean_lines, _, _) = capture(dir.path(), &video, &["--stream", "clean"]);
    assert_eq!(secs(&clean_lines), [0, 5, 10, 15]);
    let (lines, _, output) = capture(dir.path(), &bad, &["--stream", "bad"]);
    assert!(output.status.success(), "{}", stderr(&output));
    // Only the snapshot due at 5 s moves (to the next IDR, at 6 s); the others
    // are the same pictures as from the clean file.
    assert_eq!(secs(&lines), [0, 6, 10, 15], "{}", stderr(&output));
}

#[test]
fn non_h264_flv_missing_file_and_noise_get_clear_errors() {
    let sorenson = media("sorenson.flv", &["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "2", "-c:v", "flv1", "-f", "flv"]);
    let dir = tempdir();
    let (_, summary, output) = capture(dir.path(), &sorenson, &[]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("video codec Sorenson H.263 is not supported (only H.264/AVC)"), "{}", stderr(&output));
    assert_eq!(summary["snapshots"], 0);

    let out = run(livesnap().current_dir(dir.path()).args(["capture", "does-not-exist.flv"]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("opening does-not-exist.flv"), "{}", stderr(&out));

    let noise = dir.path().join("noise.flv");
    std::fs::write(&noise, b"FLV\x01\x05garbage").unwrap();
    let (_, _, output) = capture(dir.path(), &noise, &[]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("not an FLV file"), "{}", stderr(&output));

    let random = dir.path().join("random.h264");
    std::fs::write(&random, (0..100_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect::<Vec<_>>()).unwrap();
    let (lines, summary, output) = capture(dir.path(), &random, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(lines.is_empty());
    assert_eq!(summary["snapshots"], 0);
}
