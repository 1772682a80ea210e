//! Decoders lent from the pool decode exactly what a fresh decoder does,
//! across streams, sizes and profiles, and after a failed decode.

use std::path::Path;
use std::process::Command;

use livesnap::decode::{DecoderPool, Picture};
use livesnap::ingest::flv::FlvReader;
use livesnap::ingest::{AccessUnit, Demuxer, VideoEvent};

use crate::support::*;

/// (parameter sets, units) of each of the first `gops` GOPs of an FLV.
fn gops(path: &Path, gops: usize) -> Vec<(Vec<u8>, Vec<AccessUnit>)> {
    let mut reader = FlvReader::new(std::fs::File::open(path).unwrap());
    let (mut sets, mut out) = (Vec::new(), Vec::<(Vec<u8>, Vec<AccessUnit>)>::new());
    while let Some(event) = reader.next_event().unwrap() {
        match event {
            VideoEvent::ParameterSets(ps) => sets = ps,
            VideoEvent::Unit(unit) if unit.idr => out.push((sets.clone(), vec![unit])),
            VideoEvent::Unit(unit) => {
                if let Some(gop) = out.last_mut() {
                    gop.1.push(unit);
                }
            }
        }
    }
    out.truncate(gops);
    out
}

fn decode(pool: &DecoderPool, sets: &[u8], units: &[AccessUnit]) -> Picture {
    let refs: Vec<&AccessUnit> = units.iter().collect();
    pool.decode_last(sets, &refs).unwrap()
}

#[test]
fn pooled_decoders_decode_what_fresh_ones_do() {
    let (high, small) = (gops(&high_profile_flv(), 4), gops(&small_baseline_flv(), 4));
    assert!(high.len() == 4 && small.len() == 4);
    let (pooled, fresh) = (DecoderPool::new(1), DecoderPool::new(0));
    let mut compared = 0;
    for (a, b) in high.iter().zip(&small) {
        // Alternating streams and sizes, each target after the other's: the
        // pooled decoder's previous job is always another stream's.
        for (sets, units) in [a, b] {
            for end in [1, 8, units.len()] {
                let (p, f) = (decode(&pooled, sets, &units[..end]), decode(&fresh, sets, &units[..end]));
                assert_eq!((p.width, p.height, p.pts_ms), (f.width, f.height, f.pts_ms));
                assert!(p.y == f.y && p.u == f.u && p.v == f.v, "picture at {} ms differs", f.pts_ms);
                compared += 1;
            }
        }
        // A damaged GOP fails on its own and does not spoil the pool.
        let mut broken = a.1[..4].to_vec();
        let keep = broken[2].data.len() / 3;
        broken[2].data.truncate(keep);
        broken[2].data.extend(std::iter::repeat_n(0x5a, 200));
        let refs: Vec<&AccessUnit> = broken.iter().collect();
        let _ = pooled.decode_last(&a.0, &refs);
    }
    assert_eq!(compared, 24);
    // Neither stream needs a flush (the High one is decoded without display
    // reordering), so the decoder went back after each job and was reused:
    // all 12 Baseline jobs could reuse it even when High ones were flushed.
    assert!(pooled.reused() >= 20, "reused {} times", pooled.reused());
    assert_eq!(fresh.reused(), 0);
}

/// ffmpeg's decode of the first `frames` frames, display order, limited range.
fn ffmpeg_frames(path: &Path, frames: usize) -> Vec<Vec<u8>> {
    let out = run(Command::new("ffmpeg").args(["-hide_banner", "-loglevel", "error", "-i"]).arg(path).args([
        "-frames:v",
        &frames.to_string(),
        "-fps_mode",
        "passthrough",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "yuv420p",
        "-",
    ]));
    let size = 1280 * 720 * 3 / 2;
    assert_eq!(out.stdout.len(), size * frames, "ffmpeg decoded a different number of frames");
    out.stdout.chunks(size).map(<[u8]>::to_vec).collect()
}

/// Limited to full range, as the decoder's output is (the JFIF convention).
fn full_range(p: u8, center: f32, span: f32, to: f32) -> u8 {
    ((p as f32 - center) * 255.0 / span + to).round().clamp(0.0, 255.0) as u8
}

#[test]
fn b_frame_pictures_match_ffmpeg_and_reuse_one_decoder() {
    b_frame_pictures_match_ffmpeg(&high_profile_flv());
}

#[test]
fn b_frame_pictures_with_slices_and_parameter_sets_in_band_match_ffmpeg() {
    // Four slices per picture, and an SPS and PPS before every IDR inside
    // the units, as some encoders send them.
    let clip = high_profile_clip_with("high720-sliced.flv", 3, Some("slices=4:repeat-headers=1"));
    b_frame_pictures_match_ffmpeg(&clip);
}

fn b_frame_pictures_match_ffmpeg(clip: &Path) {
    let gops = gops(clip, 2);
    let reference = ffmpeg_frames(clip, 60);
    // Closed GOPs of 30: the first 60 pictures in display order are these units'.
    let mut display: Vec<u64> = gops.iter().flat_map(|(_, units)| units.iter().map(|u| u.pts_ms)).collect();
    display.sort_unstable();
    assert_eq!(display.len(), 60);
    let pool = DecoderPool::new(1);
    let mut jobs = 0;
    for (sets, units) in &gops {
        // The IDR, the P and two B-frames that follow it in decode order, and later pictures.
        for end in [1, 2, 3, 4, 9, 30] {
            let picture = decode(&pool, sets, &units[..end]);
            let expected = &reference[display.binary_search(&picture.pts_ms).unwrap()];
            let (y, chroma) = expected.split_at(1280 * 720);
            let (u, v) = chroma.split_at(640 * 360);
            let luma: Vec<u8> = y.iter().map(|&p| full_range(p, 16.0, 219.0, 0.0)).collect();
            let (cb, cr): (Vec<u8>, Vec<u8>) =
                u.iter().zip(v).map(|(&b, &r)| (full_range(b, 128.0, 224.0, 128.0), full_range(r, 128.0, 224.0, 128.0))).unzip();
            // openh264 and ffmpeg disagree by a few levels on a few dozen
            // samples of some pictures (with display reordering on or off);
            // any other picture differs on most of them.
            for (plane, ours, theirs) in [("Y", &picture.y, &luma), ("Cb", &picture.u, &cb), ("Cr", &picture.v, &cr)] {
                let differ = ours.iter().zip(theirs).filter(|(a, b)| a.abs_diff(**b) > 0).count();
                let most = ours.iter().zip(theirs).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
                assert!(
                    differ <= theirs.len() / 5000 && most <= 4,
                    "picture {end} at {} ms: {differ} {plane} samples differ from ffmpeg's, by up to {most}",
                    picture.pts_ms
                );
            }
            jobs += 1;
        }
    }
    // Every job after the first ran on the decoder the one before gave back.
    assert_eq!(pool.reused(), jobs - 1);
}
