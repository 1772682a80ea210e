#![no_main]
//! The Annex-B reader over arbitrary bytes.

use libfuzzer_sys::fuzz_target;
use livesnap_media::ingest::Demuxer;
use livesnap_media::ingest::annexb::AnnexBReader;

fuzz_target!(|data: &[u8]| {
    let mut r = AnnexBReader::new(data, 30.0);
    while let Ok(Some(_)) = r.next_event() {}
});
