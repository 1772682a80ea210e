//! RTMP chunk streams: reassembling messages from chunks, and splitting
//! outgoing messages into chunks.

use std::collections::HashMap;

use super::RtmpError;

/// A reassembled RTMP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Chunk stream it came on.
    pub csid: u32,
    /// Message timestamp (ms).
    pub timestamp: u32,
    /// Message type id.
    pub type_id: u8,
    /// Message stream id.
    pub stream_id: u32,
    /// Payload.
    pub payload: Vec<u8>,
}

#[derive(Clone, Debug, Default)]
struct StreamState {
    timestamp: u32,
    delta: u32,
    length: usize,
    type_id: u8,
    stream_id: u32,
    extended: bool,
    partial: Vec<u8>,
}

/// Reassembles incoming chunks into messages.
#[derive(Debug)]
pub struct ChunkDecoder {
    chunk_size: usize,
    max_message: usize,
    streams: HashMap<u32, StreamState>,
}

/// Largest chunk size a peer may set.
pub const MAX_CHUNK_SIZE: usize = 1 << 24;
/// Most chunk streams one connection may use at once.
const MAX_CHUNK_STREAMS: usize = 64;

impl ChunkDecoder {
    /// A decoder with the protocol's initial chunk size (128) that refuses
    /// messages longer than `max_message`.
    pub fn new(max_message: usize) -> Self {
        Self { chunk_size: 128, max_message, streams: HashMap::new() }
    }

    /// Applies the peer's Set Chunk Size.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), RtmpError> {
        let size = (size & 0x7fff_ffff) as usize;
        if size == 0 || size > MAX_CHUNK_SIZE {
            return Err(RtmpError::Protocol(format!("chunk size {size} is outside 1-{MAX_CHUNK_SIZE}")));
        }
        self.chunk_size = size;
        Ok(())
    }

    /// Drops a partly received message (Abort Message).
    pub fn abort(&mut self, csid: u32) {
        if let Some(s) = self.streams.get_mut(&csid) {
            s.partial.clear();
        }
    }

    /// Reads one chunk from the front of `data`. `Ok(None)` when `data`
    /// does not hold a whole chunk yet; otherwise the bytes consumed and
    /// the message the chunk completed, if any.
    pub fn read_chunk(&mut self, data: &[u8]) -> Result<Option<(usize, Option<Message>)>, RtmpError> {
        let Some(&b0) = data.first() else { return Ok(None) };
        let fmt = b0 >> 6;
        let (csid, mut pos) = match b0 & 0x3f {
            0 if data.len() >= 2 => (u32::from(data[1]) + 64, 2),
            1 if data.len() >= 3 => (u32::from(data[1]) + u32::from(data[2]) * 256 + 64, 3),
            0 | 1 => return Ok(None),
            id => (u32::from(id), 1),
        };
        let header_len = [11, 7, 3, 0][usize::from(fmt)];
        if data.len() < pos + header_len {
            return Ok(None);
        }
        let h = &data[pos..pos + header_len];
        pos += header_len;
        let mut state = match self.streams.get(&csid) {
            Some(s) => s.clone(),
            None if fmt == 0 => {
                if self.streams.len() >= MAX_CHUNK_STREAMS {
                    return Err(RtmpError::Protocol(format!("more than {MAX_CHUNK_STREAMS} chunk streams")));
                }
                StreamState::default()
            }
            None => {
                return Err(RtmpError::Protocol(format!(
                    "chunk stream {csid} starts with a type {fmt} header (needs a full header first)"
                )));
            }
        };
        let continuing = fmt == 3 && !state.partial.is_empty();
        if fmt < 3 && !state.partial.is_empty() {
            return Err(RtmpError::Protocol(format!(
                "chunk stream {csid}: a new message header arrived with {} of {} bytes of the previous message",
                state.partial.len(),
                state.length
            )));
        }
        let ts_field = if fmt < 3 { u32::from_be_bytes([0, h[0], h[1], h[2]]) } else { 0 };
        let extended = if fmt < 3 { ts_field == 0xff_ffff } else { state.extended };
        let mut ts = ts_field;
        if extended {
            if data.len() < pos + 4 {
                return Ok(None);
            }
            ts = u32::from_be_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]]);
            pos += 4;
        }
        if fmt <= 1 {
            state.length = u32::from_be_bytes([0, h[3], h[4], h[5]]) as usize;
            state.type_id = h[6];
            if state.length > self.max_message {
                return Err(RtmpError::Protocol(format!(
                    "message of {} bytes on chunk stream {csid} exceeds the {} byte limit",
                    state.length, self.max_message
                )));
            }
        }
        if fmt == 0 {
            state.stream_id = u32::from_le_bytes([h[7], h[8], h[9], h[10]]);
        }
        match fmt {
            0 => {
                state.timestamp = ts;
                state.delta = 0;
            }
            1 | 2 => {
                state.delta = ts;
                state.timestamp = state.timestamp.wrapping_add(ts);
            }
            _ if !continuing => {
                if extended {
                    state.delta = ts;
                }
                state.timestamp = state.timestamp.wrapping_add(state.delta);
            }
            _ => {}
        }
        state.extended = extended;
        let piece = (state.length - state.partial.len()).min(self.chunk_size);
        if data.len() < pos + piece {
            return Ok(None);
        }
        state.partial.extend_from_slice(&data[pos..pos + piece]);
        pos += piece;
        let message = (state.partial.len() == state.length).then(|| Message {
            csid,
            timestamp: state.timestamp,
            type_id: state.type_id,
            stream_id: state.stream_id,
            payload: std::mem::take(&mut state.partial),
        });
        self.streams.insert(csid, state);
        Ok(Some((pos, message)))
    }
}

/// Splits a message into chunks of `chunk_size` (type 0, then type 3).
pub fn encode_message(chunk_size: usize, m: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(m.payload.len() + 16 + m.payload.len() / chunk_size.max(1) * 5);
    let extended = m.timestamp >= 0xff_ffff;
    let basic = |out: &mut Vec<u8>, fmt: u8| match m.csid {
        2..=63 => out.push(fmt << 6 | m.csid as u8),
        64..=319 => out.extend_from_slice(&[fmt << 6, (m.csid - 64) as u8]),
        _ => out.extend_from_slice(&[fmt << 6 | 1, ((m.csid - 64) & 0xff) as u8, ((m.csid - 64) >> 8) as u8]),
    };
    basic(&mut out, 0);
    let ts = if extended { 0xff_ffff } else { m.timestamp };
    out.extend_from_slice(&ts.to_be_bytes()[1..]);
    out.extend_from_slice(&(m.payload.len() as u32).to_be_bytes()[1..]);
    out.push(m.type_id);
    out.extend_from_slice(&m.stream_id.to_le_bytes());
    if extended {
        out.extend_from_slice(&m.timestamp.to_be_bytes());
    }
    for (i, piece) in m.payload.chunks(chunk_size.max(1)).enumerate() {
        if i > 0 {
            basic(&mut out, 3);
            if extended {
                out.extend_from_slice(&m.timestamp.to_be_bytes());
            }
        }
        out.extend_from_slice(piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(d: &mut ChunkDecoder, mut data: &[u8]) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some((n, m)) = d.read_chunk(data).unwrap() {
            data = &data[n..];
            out.extend(m);
        }
        assert!(data.is_empty(), "{} bytes left", data.len());
        out
    }

    fn msg(csid: u32, ts: u32, len: usize) -> Message {
        Message { csid, timestamp: ts, type_id: 9, stream_id: 1, payload: (0..len).map(|i| i as u8).collect() }
    }

    #[test]
    fn roundtrip_across_chunk_sizes_and_extended_timestamps() {
        for (size, m) in [(128, msg(6, 40, 300)), (4096, msg(6, 0x0100_0000, 10_000)), (1, msg(70, 5, 3)), (128, msg(400, 7, 0))] {
            let mut d = ChunkDecoder::new(1 << 20);
            d.set_chunk_size(size as u32).unwrap();
            assert_eq!(read_all(&mut d, &encode_message(size, &m)), [m]);
        }
    }

    #[test]
    fn delta_headers_accumulate_timestamps() {
        let mut d = ChunkDecoder::new(1 << 20);
        // type 0 at 100, then type 2 (delta 40) and type 3 (same delta), one byte each.
        let data = [
            &[0x06, 0, 0, 100, 0, 0, 1, 9, 1, 0, 0, 0, 0xaa][..],
            &[0x86, 0, 0, 40, 0xbb],
            &[0xc6, 0xcc],
        ]
        .concat();
        let ts: Vec<u32> = read_all(&mut d, &data).iter().map(|m| m.timestamp).collect();
        assert_eq!(ts, [100, 140, 180]);
    }

    #[test]
    fn incomplete_input_consumes_nothing_and_bad_input_is_an_error() {
        let mut d = ChunkDecoder::new(1 << 20);
        let whole = encode_message(128, &msg(6, 1, 50));
        for cut in 0..whole.len() {
            assert_eq!(d.read_chunk(&whole[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert!(ChunkDecoder::new(100).read_chunk(&encode_message(128, &msg(6, 1, 101))).is_err());
        assert!(ChunkDecoder::new(100).read_chunk(&[0xc5, 0, 0]).is_err(), "type 3 without a header");
        assert!(d.set_chunk_size(0).is_err());
    }
}
