#![no_main]
//! An RTMP connection (after the handshake) fed arbitrary bytes, accepting
//! every publish, as the service does.

use libfuzzer_sys::fuzz_target;
use livesnap_media::ingest::rtmp::{Connection, Event};

fuzz_target!(|data: &[u8]| {
    let mut c = Connection::new();
    let mut pos = 0;
    while pos < data.len() {
        match c.feed(&data[pos..]) {
            Ok((0, _)) | Err(_) => break,
            Ok((n, events)) => {
                pos += n;
                for e in events {
                    if let Event::Publish(r) = e {
                        c.accept(&r);
                    }
                }
            }
        }
    }
});
