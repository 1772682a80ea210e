#![no_main]
//! openh264 through our decode path with arbitrary access units: an error
//! is fine, a crash is not.

use libfuzzer_sys::fuzz_target;
use livesnap_media::decode::decode_last;
use livesnap_media::ingest::AccessUnit;

fuzz_target!(|data: &[u8]| {
    let units: Vec<AccessUnit> = data
        .split(|b| *b == 0xff)
        .take(8)
        .enumerate()
        .map(|(i, d)| AccessUnit { dts_ms: i as u64, pts_ms: i as u64, idr: i == 0, data: [&[0, 0, 0, 1][..], d].concat() })
        .collect();
    let refs: Vec<&AccessUnit> = units.iter().collect();
    let _ = decode_last(&[], &refs);
});
