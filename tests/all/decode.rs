//! Decoders lent from the pool decode exactly what a fresh decoder does,
//! across streams, sizes and profiles, and after a failed decode.

use std::path::Path;

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
    // The Baseline stream needs no flush, so its decoders went back and were reused.
    assert!(pooled.reused() >= 8, "reused {} times", pooled.reused());
    assert_eq!(fresh.reused(), 0);
}
