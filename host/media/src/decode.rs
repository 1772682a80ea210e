//! H.264 decoding with openh264, only of what a snapshot needs.
//!
//! A snapshot decodes the IDR that starts its GOP and the access units up
//! to the wanted one. Decoders are not held per stream: a small pool shared
//! by all streams lends one per snapshot, since creating one costs its
//! picture buffers' allocation and clearing again (≈10 % of a 1080p
//! snapshot). Output is full-range YUV 4:2:0, tightly packed.

use std::borrow::Cow;
use std::ptr::{addr_of_mut, null_mut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

use openh264::OpenH264API;
use openh264::decoder::{Decoder, DecoderConfig, Flush};
use openh264_sys2::{DECODER_OPTION_NUM_OF_FRAMES_REMAINING_IN_BUFFER, SBufferInfo, dsErrorFree};

use crate::ingest::AccessUnit;
use crate::ingest::h264::NAL_SPS;

/// A decoded picture: planar YUV 4:2:0, full range, no padding.
#[derive(Clone, Debug)]
pub struct Picture {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Presentation time in stream milliseconds.
    pub pts_ms: u64,
    /// Luma, `width * height` bytes.
    pub y: Vec<u8>,
    /// Cb, `ceil(width/2) * ceil(height/2)` bytes.
    pub u: Vec<u8>,
    /// Cr, same size as `u`.
    pub v: Vec<u8>,
}

/// Why a picture could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// openh264 could not be set up.
    #[error("creating the H.264 decoder: {0}")]
    Init(String),
    /// The bitstream is damaged or unsupported.
    #[error("H.264 decode failed at access unit {unit} (pts {pts_ms} ms): decoder state {state:#x}")]
    Bitstream {
        /// Index of the unit in the GOP.
        unit: usize,
        /// Its presentation time.
        pts_ms: u64,
        /// openh264's DECODING_STATE bits.
        state: i32,
    },
    /// The decoder did not output the wanted picture.
    #[error("the decoder produced no picture for pts {0} ms")]
    NoPicture(u64),
    /// Nothing to decode.
    #[error("no access units to decode")]
    Empty,
}

/// Decodes `units` (decode order, starting at an IDR) after `parameter_sets`
/// and returns the picture of the last unit, with a decoder of the shared pool.
pub fn decode_last(parameter_sets: &[u8], units: &[&AccessUnit]) -> Result<Picture, DecodeError> {
    static SHARED: LazyLock<DecoderPool> = LazyLock::new(|| DecoderPool::new(std::thread::available_parallelism().map_or(2, |n| n.get())));
    SHARED.decode_last(parameter_sets, units)
}

/// Idle decoders lent out one per snapshot. A decoder goes back only in the
/// state it has between two pictures of one continuous stream: the decode
/// succeeded, nothing is left buffered and it was never flushed. Each job
/// starts at an IDR, which resets references, and input timestamps are
/// unique across all decodes, so one snapshot can never get another's picture.
///
/// High-profile streams, B-frames or not, are decoded without display
/// reordering (see [`without_reordering`]), so they need no flush either;
/// only Main and Extended streams with B-frames still do.
pub struct DecoderPool {
    idle: Mutex<Vec<Decoder>>,
    capacity: usize,
    reused: AtomicU64,
}

/// Input timestamps handed out so far: each decode takes a fresh range.
static TIMESTAMPS: AtomicU64 = AtomicU64::new(0);

impl DecoderPool {
    /// A pool keeping at most `capacity` idle decoders (0: a fresh decoder
    /// for every snapshot).
    pub fn new(capacity: usize) -> Self {
        Self { idle: Mutex::new(Vec::new()), capacity, reused: AtomicU64::new(0) }
    }

    /// How many decodes ran on a decoder from the pool rather than a new one.
    pub fn reused(&self) -> u64 {
        self.reused.load(Ordering::Relaxed)
    }

    /// As [`decode_last`], with a decoder of this pool.
    pub fn decode_last(&self, parameter_sets: &[u8], units: &[&AccessUnit]) -> Result<Picture, DecodeError> {
        if units.is_empty() {
            return Err(DecodeError::Empty);
        }
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut decoder = match idle {
            Some(d) => {
                self.reused.fetch_add(1, Ordering::Relaxed);
                d
            }
            None => Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new().flush_after_decode(Flush::NoFlush))
                .map_err(|e| DecodeError::Init(e.to_string()))?,
        };
        let mut raw = RawDecoder { decoder: &mut decoder, flushed: false };
        let result = raw.decode_last(parameter_sets, units);
        if result.is_ok() && !raw.flushed && raw.remaining() == 0 {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < self.capacity {
                idle.push(decoder);
            }
        }
        result
    }
}

/// The raw openh264 calls the crate's safe API does not expose: it drops the
/// input timestamp that identifies which access unit a picture came from.
struct RawDecoder<'a> {
    decoder: &'a mut Decoder,
    /// Whether `flush_frame` ran. openh264's single-threaded flush does not
    /// release the picture it outputs (ReleaseBufferedReadyPictureReorder
    /// reads m_pPicBuff, set only by the threaded path), so a flushed decoder
    /// runs out of picture buffers a few pictures into its next GOP
    /// (measured: dsOutOfMemory at the fifth): it is never reused.
    flushed: bool,
}

/// A picture still in the decoder's buffers, copied out before the next call.
struct Output<'a> {
    timestamp: u64,
    width: usize,
    height: usize,
    strides: [usize; 2],
    planes: [&'a [u8]; 3],
}

impl RawDecoder<'_> {
    fn decode_last(&mut self, parameter_sets: &[u8], units: &[&AccessUnit]) -> Result<Picture, DecodeError> {
        let target = units.last().ok_or(DecodeError::Empty)?;
        let first = TIMESTAMPS.fetch_add(units.len() as u64 + 1, Ordering::Relaxed);
        let wanted = first + units.len() as u64;
        if !parameter_sets.is_empty() {
            // Parameter sets alone produce no picture; a bad set shows up below.
            let _ = self.decode(&without_reordering(parameter_sets), first);
        }
        for (i, unit) in units.iter().enumerate() {
            let (state, out) = self.decode(&without_reordering(&unit.data), first + 1 + i as u64);
            if state != dsErrorFree {
                return Err(DecodeError::Bitstream { unit: i, pts_ms: unit.pts_ms, state });
            }
            if let Some(out) = out.filter(|o| o.timestamp == wanted) {
                return Ok(out.into_picture(target.pts_ms));
            }
        }
        while self.remaining() > 0 {
            match self.flush() {
                Some(out) if out.timestamp == wanted => return Ok(out.into_picture(target.pts_ms)),
                Some(_) => {}
                None => break,
            }
        }
        Err(DecodeError::NoPicture(target.pts_ms))
    }

    fn decode(&mut self, data: &[u8], timestamp: u64) -> (i32, Option<Output<'_>>) {
        let mut dst = [null_mut::<u8>(); 3];
        let mut info = SBufferInfo { uiInBsTimeStamp: timestamp, ..Default::default() };
        // SAFETY: the pointers are valid for the call; the decoder outlives it.
        let state = unsafe { self.decoder.raw_api().decode_frame_no_delay(data.as_ptr(), data.len() as i32, dst.as_mut_ptr(), &mut info) };
        (state, unsafe { output(&dst, &info) })
    }

    fn flush(&mut self) -> Option<Output<'_>> {
        self.flushed = true;
        let mut dst = [null_mut::<u8>(); 3];
        let mut info = SBufferInfo::default();
        // SAFETY: as in `decode`.
        let state = unsafe { self.decoder.raw_api().flush_frame(dst.as_mut_ptr(), &mut info) };
        if state != dsErrorFree {
            return None;
        }
        unsafe { output(&dst, &info) }
    }

    fn remaining(&mut self) -> usize {
        let mut n: i32 = 0;
        // SAFETY: the option writes one int.
        unsafe {
            self.decoder.raw_api().get_option(DECODER_OPTION_NUM_OF_FRAMES_REMAINING_IN_BUFFER, addr_of_mut!(n).cast());
        }
        n.max(0) as usize
    }
}

/// Profile IDC of High and of Scalable Baseline.
const PROFILE_HIGH: u8 = 100;
const PROFILE_SCALABLE_BASELINE: u8 = 83;

/// `annexb` with the profile of each High SPS in it changed to Scalable
/// Baseline, so openh264 outputs every picture as soon as it is decoded.
///
/// openh264 holds pictures back for display reordering in every profile but
/// Baseline and Scalable Baseline, and the only way to get one out early is a
/// flush, which leaks a picture buffer. A snapshot wants the picture of one
/// known access unit, found by its input timestamp, not display order. An SPS
/// of profile 83 has the same syntax as one of profile 100 (openh264 reads the
/// High fields for both), and decoding does not depend on the profile, so the
/// pictures are the same; only their output order changes. Copies only when
/// there is an SPS to change (normally just the parameter sets).
fn without_reordering(annexb: &[u8]) -> Cow<'_, [u8]> {
    let profiles: Vec<usize> = memchr::memmem::find_iter(annexb, &[0, 0, 1])
        .map(|start| start + 4)
        .filter(|&profile| annexb.get(profile - 1..=profile).is_some_and(|h| h[0] & 0x1f == NAL_SPS && h[1] == PROFILE_HIGH))
        .collect();
    if profiles.is_empty() {
        return Cow::Borrowed(annexb);
    }
    let mut out = annexb.to_vec();
    for i in profiles {
        out[i] = PROFILE_SCALABLE_BASELINE;
    }
    Cow::Owned(out)
}

/// SAFETY: `dst` and `info` must come from the decoder call just made; the
/// planes stay valid until the decoder is called again.
unsafe fn output<'a>(dst: &[*mut u8; 3], info: &SBufferInfo) -> Option<Output<'a>> {
    if info.iBufferStatus != 1 || dst.iter().any(|p| p.is_null()) {
        return None;
    }
    // SAFETY: iBufferStatus 1 means sSystemBuffer describes the planes.
    let buf = unsafe { info.UsrData.sSystemBuffer };
    let (width, height) = (usize::try_from(buf.iWidth).ok()?, usize::try_from(buf.iHeight).ok()?);
    let strides = [usize::try_from(buf.iStride[0]).ok()?, usize::try_from(buf.iStride[1]).ok()?];
    if width == 0 || height == 0 || strides[0] < width || strides[1] < width.div_ceil(2) {
        return None;
    }
    let chroma_rows = height.div_ceil(2);
    // SAFETY: openh264 owns planes of `stride * rows` bytes.
    let planes = unsafe {
        [
            std::slice::from_raw_parts(dst[0], strides[0] * height),
            std::slice::from_raw_parts(dst[1], strides[1] * chroma_rows),
            std::slice::from_raw_parts(dst[2], strides[1] * chroma_rows),
        ]
    };
    Some(Output { timestamp: info.uiOutYuvTimeStamp, width, height, strides, planes })
}

impl Output<'_> {
    /// Copies the planes out without padding, expanding limited range
    /// (16–235 luma, 16–240 chroma) to the full range JFIF expects.
    fn into_picture(self, pts_ms: u64) -> Picture {
        let (cw, ch) = (self.width.div_ceil(2), self.height.div_ceil(2));
        Picture {
            width: self.width as u32,
            height: self.height as u32,
            pts_ms,
            y: expand(self.planes[0], self.strides[0], self.width, self.height, &LUMA),
            u: expand(self.planes[1], self.strides[1], cw, ch, &CHROMA),
            v: expand(self.planes[2], self.strides[1], cw, ch, &CHROMA),
        }
    }
}

fn expand(plane: &[u8], stride: usize, width: usize, rows: usize, table: &[u8; 256]) -> Vec<u8> {
    let mut out = Vec::with_capacity(width * rows);
    for row in plane.chunks(stride).take(rows) {
        out.extend(row[..width].iter().map(|&p| table[p as usize]));
    }
    out
}

static LUMA: LazyLock<[u8; 256]> = LazyLock::new(|| range_table(16.0, 219.0, 0.0));
static CHROMA: LazyLock<[u8; 256]> = LazyLock::new(|| range_table(128.0, 224.0, 128.0));

fn range_table(center: f32, span: f32, to: f32) -> [u8; 256] {
    std::array::from_fn(|i| ((i as f32 - center) * 255.0 / span + to).round().clamp(0.0, 255.0) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_tables_expand_limited_to_full() {
        assert_eq!((LUMA[16], LUMA[235], LUMA[0], LUMA[255]), (0, 255, 0, 255));
        assert_eq!((CHROMA[16], CHROMA[128], CHROMA[240]), (1, 128, 255));
        assert_eq!(LUMA[126], 128);
    }

    #[test]
    fn only_high_profile_sps_are_presented_as_scalable_baseline() {
        let main_sps = [0, 0, 0, 1, 0x67, 77, 0, 0x1f, 0, 0, 1, 0x68, 100];
        assert!(matches!(without_reordering(&main_sps), Cow::Borrowed(_)));
        // An SPS in band after an SEI, then a slice whose payload holds 100.
        let unit = [0, 0, 0, 1, 0x06, 5, 0, 0, 1, 0x27, 100, 0, 0x28, 0, 0, 0, 1, 0x65, 100, 0x88];
        let mut expected = unit;
        expected[10] = 83;
        assert_eq!(*without_reordering(&unit), expected);
        assert_eq!(*without_reordering(&[0, 0, 1, 0x67]), [0, 0, 1, 0x67]);
    }

    #[test]
    fn empty_and_garbage_input_are_errors() {
        assert!(matches!(decode_last(&[], &[]), Err(DecodeError::Empty)));
        let junk = AccessUnit { dts_ms: 0, pts_ms: 0, idr: true, data: vec![0, 0, 0, 1, 0x65, 0xff, 0x00, 0x13, 0x37] };
        assert!(decode_last(&[], &[&junk]).is_err());
    }
}
