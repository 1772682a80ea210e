//! RTMP chunk streams: reassembling messages from chunks, and splitting
//! outgoing messages into chunks.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// What a chunk stream remembers of its last message header.
#[derive(Clone, Copy, Debug, Default)]
struct Header {
    timestamp: u32,
    delta: u32,
    length: usize,
    type_id: u8,
    stream_id: u32,
    extended: bool,
}

#[derive(Debug, Default)]
struct StreamState {
    header: Header,
    /// The message being reassembled; appended to in place, so reassembly
    /// stays linear in the bytes received whatever the chunk size.
    partial: Vec<u8>,
}

/// Bytes of unfinished messages held by every connection of a process
/// together, so many connections cannot pin memory one limit at a time.
#[derive(Debug)]
pub struct SharedBudget {
    used: AtomicUsize,
    limit: usize,
}

impl SharedBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self { used: AtomicUsize::new(0), limit })
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn take(&self, n: usize) -> bool {
        self.used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| u.checked_add(n).filter(|&t| t <= self.limit)).is_ok()
    }

    fn give(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// How much a connection may make the server hold.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Longest media message (video, aggregate).
    pub max_message: usize,
    /// Bytes of unfinished messages this connection may hold at once.
    pub max_unfinished: usize,
    /// Shared with the other connections.
    pub shared: Option<Arc<SharedBudget>>,
}

impl Limits {
    /// A publisher's: media messages up to [`MAX_MESSAGE`],
    /// one of them unfinished (plus 1 MiB of audio and commands), with the
    /// budget shared with the other connections, if any.
    pub fn publisher(shared: Option<Arc<SharedBudget>>) -> Self {
        Self { max_message: MAX_MESSAGE, max_unfinished: MAX_MESSAGE + (1 << 20), shared }
    }
}

/// Messages larger than this close the connection (a 4K IDR is far below).
pub const MAX_MESSAGE: usize = 16 << 20;

/// Longest control, command or metadata message: these are a few hundred
/// bytes in practice, so only media may be large.
pub const MAX_SMALL_MESSAGE: usize = 64 << 10;
/// Longest audio message.
const MAX_AUDIO_MESSAGE: usize = 1 << 20;

/// Reassembles incoming chunks into messages.
#[derive(Debug)]
pub struct ChunkDecoder {
    chunk_size: usize,
    limits: Limits,
    /// Until the caller allows media (an accepted publish), every message is
    /// held to [`MAX_SMALL_MESSAGE`].
    media_allowed: bool,
    unfinished: usize,
    streams: HashMap<u32, StreamState>,
}

/// Largest chunk size a peer may set.
pub const MAX_CHUNK_SIZE: usize = 1 << 24;
/// Most chunk streams one connection may use at once.
const MAX_CHUNK_STREAMS: usize = 64;

impl ChunkDecoder {
    /// A decoder with the protocol's initial chunk size (128) that refuses
    /// messages longer than `max_message`, media allowed, no shared budget.
    pub fn new(max_message: usize) -> Self {
        let mut d = Self::with_limits(Limits { max_message, max_unfinished: max_message, shared: None });
        d.allow_media();
        d
    }

    /// A decoder held to `limits`; media messages are refused until
    /// [`ChunkDecoder::allow_media`].
    pub fn with_limits(limits: Limits) -> Self {
        Self { chunk_size: 128, limits, media_allowed: false, unfinished: 0, streams: HashMap::new() }
    }

    /// Lets media messages grow to the media limit (after a publish is accepted).
    pub fn allow_media(&mut self) {
        self.media_allowed = true;
    }

    /// Bytes of unfinished messages held now.
    pub fn unfinished(&self) -> usize {
        self.unfinished
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
            let n = s.partial.len();
            s.partial = Vec::new();
            self.release(n);
        }
    }

    /// The longest message of `type_id` accepted now.
    fn limit_for(&self, type_id: u8) -> usize {
        let media = match type_id {
            8 => MAX_AUDIO_MESSAGE,
            9 | 22 => self.limits.max_message,
            _ => return MAX_SMALL_MESSAGE,
        };
        if self.media_allowed { media } else { MAX_SMALL_MESSAGE }
    }

    fn release(&mut self, n: usize) {
        self.unfinished -= n;
        if let Some(b) = &self.limits.shared {
            b.give(n);
        }
    }

    /// Reads one chunk from the front of `data`. `Ok(None)` when `data`
    /// does not hold a whole chunk yet; otherwise the bytes consumed and
    /// the message the chunk completed, if any.
    pub fn read_chunk(&mut self, data: &[u8]) -> Result<Option<(usize, Option<Message>)>, RtmpError> {
        let Some((fmt, csid, basic_len)) = basic_header(data) else { return Ok(None) };
        let Some(ChunkHeader { header, have, len }) = self.message_header(fmt, csid, &data[basic_len..])? else { return Ok(None) };
        let mut pos = basic_len + len;
        let piece = (header.length - have).min(self.chunk_size);
        if data.len() < pos + piece {
            return Ok(None);
        }
        let completes = have + piece == header.length;
        if !completes {
            self.hold(piece)?;
        }
        let state = self.streams.entry(csid).or_default();
        state.header = header;
        let bytes = &data[pos..pos + piece];
        pos += piece;
        let message = if completes {
            let payload = if have == 0 {
                bytes.to_vec()
            } else {
                let mut p = std::mem::take(&mut state.partial);
                p.extend_from_slice(bytes);
                p
            };
            if have > 0 {
                self.release(have);
            }
            Some(Message { csid, timestamp: header.timestamp, type_id: header.type_id, stream_id: header.stream_id, payload })
        } else {
            state.partial.extend_from_slice(bytes);
            None
        };
        Ok(Some((pos, message)))
    }

    /// The message header of a chunk of type `fmt` on chunk stream `csid`
    /// (`data` starts after the basic header), applied to a copy of the
    /// stream's last header so an incomplete chunk changes nothing; `None`
    /// until all of it has arrived.
    fn message_header(&self, fmt: u8, csid: u32, data: &[u8]) -> Result<Option<ChunkHeader>, RtmpError> {
        let header_len = [11, 7, 3, 0][usize::from(fmt)];
        if data.len() < header_len {
            return Ok(None);
        }
        let h = &data[..header_len];
        let mut pos = header_len;
        let (mut header, have) = match self.streams.get(&csid) {
            Some(s) => (s.header, s.partial.len()),
            None if fmt == 0 => {
                if self.streams.len() >= MAX_CHUNK_STREAMS {
                    return Err(RtmpError::Protocol(format!("more than {MAX_CHUNK_STREAMS} chunk streams")));
                }
                (Header::default(), 0)
            }
            None => {
                return Err(RtmpError::Protocol(format!(
                    "chunk stream {csid} starts with a type {fmt} header (needs a full header first)"
                )));
            }
        };
        let continuing = fmt == 3 && have > 0;
        if fmt < 3 && have > 0 {
            return Err(RtmpError::Protocol(format!(
                "chunk stream {csid}: a new message header arrived with {have} of {} bytes of the previous message",
                header.length
            )));
        }
        let ts_field = if fmt < 3 { u32::from_be_bytes([0, h[0], h[1], h[2]]) } else { 0 };
        let extended = if fmt < 3 { ts_field == 0xff_ffff } else { header.extended };
        let mut ts = ts_field;
        if extended {
            if data.len() < pos + 4 {
                return Ok(None);
            }
            ts = u32::from_be_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]]);
            pos += 4;
        }
        if fmt <= 1 {
            header.length = u32::from_be_bytes([0, h[3], h[4], h[5]]) as usize;
            header.type_id = h[6];
        }
        if !continuing {
            let limit = self.limit_for(header.type_id);
            if header.length > limit {
                let when = if self.media_allowed { "" } else { " before a publish is accepted" };
                return Err(RtmpError::Protocol(format!(
                    "message type {} of {} bytes on chunk stream {csid} exceeds the {limit} byte limit{when}",
                    header.type_id, header.length
                )));
            }
        }
        if fmt == 0 {
            header.stream_id = u32::from_le_bytes([h[7], h[8], h[9], h[10]]);
        }
        match fmt {
            0 => {
                header.timestamp = ts;
                header.delta = 0;
            }
            1 | 2 => {
                header.delta = ts;
                header.timestamp = header.timestamp.wrapping_add(ts);
            }
            _ if !continuing => {
                if extended {
                    header.delta = ts;
                }
                header.timestamp = header.timestamp.wrapping_add(header.delta);
            }
            _ => {}
        }
        header.extended = extended;
        Ok(Some(ChunkHeader { header, have, len: pos }))
    }

    /// Counts `piece` bytes that stay held in an unfinished message against
    /// the connection's limit and the shared budget.
    fn hold(&mut self, piece: usize) -> Result<(), RtmpError> {
        if self.unfinished + piece > self.limits.max_unfinished {
            return Err(RtmpError::Protocol(format!("unfinished messages would hold more than {} bytes", self.limits.max_unfinished)));
        }
        if let Some(b) = &self.limits.shared
            && !b.take(piece)
        {
            return Err(RtmpError::Protocol("the server's budget for unfinished messages is spent".into()));
        }
        self.unfinished += piece;
        Ok(())
    }
}

impl Drop for ChunkDecoder {
    fn drop(&mut self) {
        if let Some(b) = &self.limits.shared {
            b.give(self.unfinished);
        }
    }
}

/// A chunk's message header as it applies: the header, bytes of its
/// message already held, and the header's length in the input.
struct ChunkHeader {
    header: Header,
    have: usize,
    len: usize,
}

/// The basic header: (fmt, chunk stream id, its length), `None` until it
/// has arrived.
fn basic_header(data: &[u8]) -> Option<(u8, u32, usize)> {
    let &b0 = data.first()?;
    let (csid, len) = match b0 & 0x3f {
        0 if data.len() >= 2 => (u32::from(data[1]) + 64, 2),
        1 if data.len() >= 3 => (u32::from(data[1]) + u32::from(data[2]) * 256 + 64, 3),
        0 | 1 => return None,
        id => (u32::from(id), 1),
    };
    Some((b0 >> 6, csid, len))
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

/// Counts bytes received and says when an acknowledgement is due (every
/// window size the peer set): the same for the server and the client side.
#[derive(Debug, Default)]
pub struct AckWindow {
    window: Option<u32>,
    received: u64,
    acked: u64,
}

impl AckWindow {
    /// The peer's Window Acknowledgement Size.
    pub fn set_window(&mut self, size: u32) {
        self.window = Some(size.max(1));
    }

    /// Counts `n` bytes; the sequence number to acknowledge when one is due.
    pub fn received(&mut self, n: usize) -> Option<u32> {
        self.received += n as u64;
        let window = self.window?;
        (self.received - self.acked >= u64::from(window)).then(|| {
            self.acked = self.received;
            self.received as u32
        })
    }
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
        let data = [&[0x06, 0, 0, 100, 0, 0, 1, 9, 1, 0, 0, 0, 0xaa][..], &[0x86, 0, 0, 40, 0xbb], &[0xc6, 0xcc]].concat();
        let ts: Vec<u32> = read_all(&mut d, &data).iter().map(|m| m.timestamp).collect();
        assert_eq!(ts, [100, 140, 180]);
    }

    /// Counts the bytes this thread allocates, to bound reassembly's copying.
    struct Counting;
    thread_local! {
        static ALLOCATED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }
    // SAFETY: forwards to the system allocator; only counts on the side.
    unsafe impl std::alloc::GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
            let _ = ALLOCATED.try_with(|a| a.set(a.get() + l.size()));
            unsafe { std::alloc::System.alloc(l) }
        }
        unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
            unsafe { std::alloc::System.dealloc(p, l) }
        }
        unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, new: usize) -> *mut u8 {
            let _ = ALLOCATED.try_with(|a| a.set(a.get() + new));
            unsafe { std::alloc::System.realloc(p, l, new) }
        }
    }
    #[global_allocator]
    static COUNTING: Counting = Counting;

    #[test]
    fn reassembly_in_one_byte_chunks_is_linear() {
        // 4 MiB in 1-byte chunks: copying the partial message on every chunk
        // (as before) allocates terabytes; appending in place a few MiB.
        let len = 4 << 20;
        let m = msg(6, 1, len);
        let data = encode_message(1, &m);
        let mut d = ChunkDecoder::new(16 << 20);
        d.set_chunk_size(1).unwrap();
        let before = ALLOCATED.with(|a| a.get());
        let mut pos = 0;
        let mut out = None;
        while let Some((n, done)) = d.read_chunk(&data[pos..]).unwrap() {
            pos += n;
            if done.is_some() {
                out = done;
            }
        }
        let allocated = ALLOCATED.with(|a| a.get()) - before;
        eprintln!("reassembling {len} bytes from 1-byte chunks allocated {allocated} bytes");
        assert_eq!(out.as_ref(), Some(&m));
        assert!(allocated < 4 * len, "reassembling {len} bytes allocated {allocated}");
        assert_eq!(d.unfinished(), 0);
    }

    #[test]
    fn small_limits_before_media_and_a_cap_on_unfinished_bytes() {
        let budget = SharedBudget::new(3000);
        let limits = Limits { max_message: 1 << 20, max_unfinished: 2500, shared: Some(budget.clone()) };
        // Before media is allowed, a large video message is refused at its header.
        let mut d = ChunkDecoder::with_limits(limits.clone());
        let big = encode_message(128, &msg(6, 0, 100_000));
        assert!(d.read_chunk(&big).unwrap_err().to_string().contains("before a publish is accepted"));
        // Commands stay small even after.
        let mut d = ChunkDecoder::with_limits(limits.clone());
        d.allow_media();
        let mut command = msg(3, 0, MAX_SMALL_MESSAGE + 1);
        command.type_id = 20;
        assert!(d.read_chunk(&encode_message(128, &command)).is_err());
        // Partial messages on many chunk streams: the per-connection cap.
        let mut d = ChunkDecoder::with_limits(limits.clone());
        d.allow_media();
        d.set_chunk_size(1000).unwrap();
        let mut held = 0;
        let refused = (10..40u32).find_map(|csid| {
            let first_chunk = &encode_message(1000, &msg(csid, 0, 5000))[..12 + 1000];
            match d.read_chunk(first_chunk) {
                Ok(_) => {
                    held += 1000;
                    None
                }
                Err(e) => Some(e),
            }
        });
        assert!(refused.unwrap().to_string().contains("2500"), "{held}");
        assert_eq!((d.unfinished(), budget.used()), (2000, 2000));
        // Another connection shares the budget that is left.
        let mut other = ChunkDecoder::with_limits(limits);
        other.allow_media();
        other.set_chunk_size(1000).unwrap();
        assert!(other.read_chunk(&encode_message(1000, &msg(5, 0, 5000))[..12 + 1000]).is_ok());
        assert!(other.read_chunk(&encode_message(1000, &msg(7, 0, 5000))[..12 + 1000]).unwrap_err().to_string().contains("budget"));
        drop(d);
        drop(other);
        assert_eq!(budget.used(), 0, "closing connections returns their bytes");
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
