#![no_main]
//! AMF0 decoding of arbitrary bytes, and re-encoding what decodes.

use libfuzzer_sys::fuzz_target;
use livesnap_media::ingest::rtmp::amf0;

fuzz_target!(|data: &[u8]| {
    if let Ok(values) = amf0::decode_all(data) {
        let again = amf0::decode_all(&amf0::encode(&values)).expect("what we encode decodes");
        assert_eq!(again.len(), values.len());
    }
});
