#![no_main]
//! The FLV demuxer over arbitrary bytes: never panics, always ends.

use libfuzzer_sys::fuzz_target;
use livesnap_media::ingest::Demuxer;
use livesnap_media::ingest::flv::FlvReader;

fuzz_target!(|data: &[u8]| {
    let mut r = FlvReader::new(data);
    while let Ok(Some(_)) = r.next_event() {}
    let _ = r.take_warnings();
});
