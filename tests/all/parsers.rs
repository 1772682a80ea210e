//! Parsers replay real captures (ffmpeg output) mutated many ways: they may
//! refuse input, but never panic or loop. Each run has a positive control:
//! the clean capture parses in full before and after, and the mutations
//! change what is parsed (so the run tested something).

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
    let clean = drain(FlvReader::new(data));
    assert!(clean > 100);
    let mut rng = Rng(0x5eed_f17e);
    let changed = (0..300).filter(|_| drain(FlvReader::new(&mutate(&mut rng, data)[..])) != clean).count();
    assert!(changed > 30, "only {changed} of 300 mutations changed what was parsed");
    assert_eq!(drain(FlvReader::new(data)), clean, "the clean capture still parses in full");
}

#[test]
fn annexb_reader_survives_mutated_captures() {
    let raw =
        media("fuzz.h264", &["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-t", "2", "-c:v", "libx264", "-bf", "2", "-f", "h264"]);
    let data = std::fs::read(raw).unwrap();
    let clean = drain(AnnexBReader::new(&data[..], 25.0));
    assert!(clean >= 50);
    let mut rng = Rng(0xa11e_b000);
    let changed = (0..300).filter(|_| drain(AnnexBReader::new(&mutate(&mut rng, &data)[..], 25.0)) != clean).count();
    assert!(changed > 30, "only {changed} of 300 mutations changed what was parsed");
    assert_eq!(drain(AnnexBReader::new(&data[..], 25.0)), clean, "the clean capture still parses in full");
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
    // (publishes, video messages, refused) of a session fed in 4 KiB reads.
    let replay = |data: &[u8]| {
        let (mut publishes, mut videos) = (0, 0);
        let mut c = Connection::new();
        let mut pos = 0;
        let mut end = 0;
        while end < data.len() {
            end = (end + 4096).min(data.len());
            match c.feed(&data[pos..end]) {
                Err(_) => return (publishes, videos, true),
                Ok((n, events)) => {
                    pos += n;
                    for e in events {
                        match e {
                            livesnap::ingest::rtmp::Event::Publish(r) => {
                                publishes += 1;
                                c.accept(&r);
                            }
                            livesnap::ingest::rtmp::Event::Video { .. } => videos += 1,
                            _ => {}
                        }
                    }
                }
            }
        }
        (publishes, videos, false)
    };
    let clean = replay(&session);
    assert_eq!(clean, (1, clean.1, false));
    assert!(clean.1 >= 30, "{clean:?}");
    let mut rng = Rng(0x7e57_0001);
    let mut changed = 0;
    for _ in 0..300 {
        let data = mutate(&mut rng, &session);
        changed += usize::from(replay(&data) != clean);
        let _ = amf0::decode_all(&data[..data.len().min(500)]);
    }
    assert!(changed > 30, "only {changed} of 300 mutations changed what was parsed");
    assert_eq!(replay(&session), clean, "the clean session still parses in full");
}
