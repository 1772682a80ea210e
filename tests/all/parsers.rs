//! Parsers replay real captures (ffmpeg output) mutated many ways: they may
//! refuse input, but never panic or loop.

use livesnap::ingest::Demuxer;
use livesnap::ingest::annexb::AnnexBReader;
use livesnap::ingest::flv::FlvReader;
use livesnap::ingest::rtmp::chunk::{Message, encode_message};
use livesnap::ingest::rtmp::{Connection, amf0};

use crate::service::flv_video_tags;
use crate::support::*;

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Flips bytes, cuts, duplicates and inserts ranges.
fn mutate(rng: &mut Rng, data: &[u8]) -> Vec<u8> {
    let mut d = data.to_vec();
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(d.len());
        match rng.below(4) {
            0 => d[at] ^= 1 << rng.below(8),
            1 => d.truncate(at.max(1)),
            2 => {
                let len = rng.below(64).min(d.len() - at);
                let piece = d[at..at + len].to_vec();
                d.splice(at..at, piece);
            }
            _ => {
                let junk: Vec<u8> = (0..rng.below(32)).map(|_| rng.next() as u8).collect();
                d.splice(at..at, junk);
            }
        }
        if d.is_empty() {
            d.push(0);
        }
    }
    d
}

fn drain(mut demuxer: impl Demuxer) -> usize {
    let mut events = 0;
    while let Ok(Some(_)) = demuxer.next_event() {
        events += 1;
        assert!(events < 1_000_000, "the demuxer does not terminate");
    }
    events
}

#[test]
fn flv_reader_survives_mutated_captures() {
    let data = std::fs::read(small_baseline_flv()).unwrap();
    let data = &data[..data.len().min(200_000)];
    assert!(drain(FlvReader::new(data)) > 100);
    let mut rng = Rng(0x5eed_f17e);
    for _ in 0..300 {
        drain(FlvReader::new(&mutate(&mut rng, data)[..]));
    }
}

#[test]
fn annexb_reader_survives_mutated_captures() {
    let raw =
        media("fuzz.h264", &["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-t", "2", "-c:v", "libx264", "-bf", "2", "-f", "h264"]);
    let data = std::fs::read(raw).unwrap();
    assert!(drain(AnnexBReader::new(&data[..], 25.0)) >= 50);
    let mut rng = Rng(0xa11e_b000);
    for _ in 0..300 {
        drain(AnnexBReader::new(&mutate(&mut rng, &data)[..], 25.0));
    }
}

#[test]
fn rtmp_connection_and_amf0_survive_mutated_sessions() {
    // A publish session as bytes: connect, createStream, publish, video.
    let cmd = |stream_id: u32, values: &[amf0::Value]| {
        encode_message(128, &Message { csid: 3, timestamp: 0, type_id: 20, stream_id, payload: amf0::encode(values) })
    };
    use amf0::{Value, object, string};
    let mut session =
        cmd(0, &[string("connect"), Value::Number(1.0), object(&[("app", string("live")), ("tcUrl", string("rtmp://localhost/live"))])]);
    session.extend(cmd(0, &[string("createStream"), Value::Number(2.0), Value::Null]));
    session.extend(cmd(1, &[string("publish"), Value::Number(3.0), Value::Null, string("s"), string("live")]));
    for (ts, body) in flv_video_tags(&small_baseline_flv()).into_iter().take(40) {
        session.extend(encode_message(128, &Message { csid: 6, timestamp: ts, type_id: 9, stream_id: 1, payload: body }));
    }
    let mut rng = Rng(0x7e57_0001);
    for _ in 0..300 {
        let data = mutate(&mut rng, &session);
        let mut c = Connection::new();
        let mut pos = 0;
        while pos < data.len() {
            match c.feed(&data[pos..]) {
                Ok((0, _)) | Err(_) => break,
                Ok((n, events)) => {
                    pos += n;
                    for e in events {
                        if let livesnap::ingest::rtmp::Event::Publish(r) = e {
                            c.accept(&r);
                        }
                    }
                }
            }
        }
        let _ = amf0::decode_all(&data[..data.len().min(500)]);
    }
}
