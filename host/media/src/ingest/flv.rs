//! FLV: the file container and the video tag body that RTMP also carries.
//!
//! Damaged input is skipped, not fatal: a tag whose header or trailing size
//! does not add up makes the reader scan forward for the next tag whose
//! header and trailing size agree, and a truncated last tag is dropped.

use std::io::Read;

use super::h264::{self, AvcConfig};
use super::window::Window;
use super::{AccessUnit, Demuxer, IngestError, VideoEvent};

const TAG_AUDIO: u8 = 8;
const TAG_VIDEO: u8 = 9;
const TAG_SCRIPT: u8 = 18;
const TAG_HEADER: usize = 11;
/// Tags larger than this are treated as damage (a 4K IDR is well below it).
const MAX_TAG: usize = 8 << 20;

/// Parses FLV/RTMP video tag bodies of one stream.
#[derive(Debug, Default)]
pub struct VideoTagParser {
    config: Option<AvcConfig>,
}

impl VideoTagParser {
    /// Parses one video tag body with its tag timestamp; `offset` locates it
    /// in errors. `Ok(None)` for bodies that carry no picture.
    pub fn parse(&mut self, timestamp_ms: u32, body: &[u8], offset: u64) -> Result<Option<VideoEvent>, IngestError> {
        let Some(&first) = body.first() else { return Ok(None) };
        if first & 0x80 != 0 {
            // Enhanced RTMP: a FourCC names the codec.
            let fourcc = body.get(1..5).map(|f| String::from_utf8_lossy(f).into_owned()).unwrap_or_default();
            return Err(IngestError::UnsupportedCodec(format!("'{fourcc}' (enhanced RTMP)")));
        }
        let frame_type = first >> 4;
        let codec = first & 0x0f;
        let malformed = |detail: String| IngestError::Malformed { what: "AVC video tag", offset, detail };
        if codec != 7 {
            // Once the stream is known to be H.264, another codec id is damage.
            if self.config.is_some() {
                return Err(malformed(format!("codec id {codec} in an H.264 stream")));
            }
            return Err(IngestError::UnsupportedCodec(codec_name(codec).into()));
        }
        if frame_type == 5 {
            return Ok(None); // video info / command frame
        }
        if body.len() < 5 {
            return Err(malformed(format!("{} bytes, need at least 5", body.len())));
        }
        let cts = i32::from_be_bytes([body[2], body[3], body[4], 0]) >> 8;
        let payload = &body[5..];
        match body[1] {
            0 => {
                let config = h264::parse_avc_config(payload, offset + 5)?;
                let sets = config.parameter_sets.clone();
                self.config = Some(config);
                Ok(Some(VideoEvent::ParameterSets(sets)))
            }
            1 => {
                let length_size = self.config.as_ref().map_or(4, |c| c.length_size);
                let (data, idr) = h264::avcc_to_annexb(payload, length_size, offset + 5)?;
                if data.is_empty() {
                    return Ok(None);
                }
                let dts = u64::from(timestamp_ms);
                let pts = dts.saturating_add_signed(i64::from(cts));
                Ok(Some(VideoEvent::Unit(AccessUnit { dts_ms: dts, pts_ms: pts, idr, data })))
            }
            2 => Ok(None), // end of sequence
            other => Err(malformed(format!("AVCPacketType {other} (expected 0, 1 or 2)"))),
        }
    }
}

fn codec_name(id: u8) -> &'static str {
    match id {
        2 => "Sorenson H.263",
        3 => "Screen video",
        4 => "On2 VP6",
        5 => "On2 VP6 with alpha",
        6 => "Screen video v2",
        12 => "HEVC (non-standard id 12)",
        _ => "unknown",
    }
}

/// Reads an FLV file or stream from any reader.
pub struct FlvReader<R> {
    input: Window<R>,
    video: VideoTagParser,
    header_done: bool,
    warnings: Vec<IngestError>,
}

impl<R: Read> FlvReader<R> {
    /// Wraps a reader positioned at the FLV signature.
    pub fn new(src: R) -> Self {
        Self { input: Window::new(src), video: VideoTagParser::default(), header_done: false, warnings: Vec::new() }
    }

    fn read_header(&mut self) -> Result<(), IngestError> {
        let n = self.input.fill(13)?;
        let head = self.input.available();
        if n < 3 || &head[..3] != b"FLV" {
            return Err(IngestError::NotFlv("the file does not start with the FLV signature".into()));
        }
        if n < 13 {
            return Err(IngestError::NotFlv(format!("the header is cut short ({n} of 13 bytes)")));
        }
        let data_offset = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) as usize;
        if !(9..=1024).contains(&data_offset) {
            return Err(IngestError::NotFlv(format!("header size {data_offset} (expected 9)")));
        }
        self.input.fill(data_offset + 4)?;
        self.input.consume(data_offset + 4); // header and PreviousTagSize0
        self.header_done = true;
        Ok(())
    }

    /// Checks the tag at `at` bytes into the window: `Some(body size)` when
    /// its header is plausible and its trailing size matches.
    fn tag_at(&mut self, at: usize) -> Result<TagCheck, IngestError> {
        let n = self.input.fill(at + TAG_HEADER)?;
        if n < at + TAG_HEADER {
            return Ok(TagCheck::Truncated);
        }
        let h = &self.input.available()[at..at + TAG_HEADER];
        let kind = h[0] & 0x1f;
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        if ![TAG_AUDIO, TAG_VIDEO, TAG_SCRIPT].contains(&kind) || h[0] & 0xc0 != 0 || h[8..11] != [0, 0, 0] || size > MAX_TAG {
            return Ok(TagCheck::Bad(format!("implausible tag header (type {}, size {size})", h[0])));
        }
        let end = at + TAG_HEADER + size + 4;
        if self.input.fill(end)? < end {
            return Ok(TagCheck::Truncated);
        }
        let t = &self.input.available()[end - 4..end];
        let trailer = u32::from_be_bytes([t[0], t[1], t[2], t[3]]) as usize;
        if trailer != TAG_HEADER + size {
            return Ok(TagCheck::Bad(format!("trailing tag size {trailer} does not match {}", TAG_HEADER + size)));
        }
        Ok(TagCheck::Good(size))
    }

    /// Skips forward to the next tag that checks out; false at the end.
    fn resync(&mut self) -> Result<bool, IngestError> {
        let from = self.input.offset();
        let mut at = 1;
        loop {
            match self.tag_at(at)? {
                TagCheck::Good(_) => {
                    self.input.consume(at);
                    self.warnings.push(IngestError::Malformed {
                        what: "FLV data",
                        offset: from,
                        detail: format!("skipped {at} damaged bytes"),
                    });
                    return Ok(true);
                }
                TagCheck::Bad(_) => at += 1,
                TagCheck::Truncated if self.input.available().len() > at + TAG_HEADER => at += 1,
                TagCheck::Truncated => {
                    let left = self.input.available().len();
                    self.warnings.push(IngestError::Malformed {
                        what: "FLV data",
                        offset: from,
                        detail: format!("no valid tag in the last {left} bytes; ignored"),
                    });
                    self.input.consume(left);
                    return Ok(false);
                }
            }
        }
    }
}

enum TagCheck {
    Good(usize),
    Bad(String),
    Truncated,
}

impl<R: Read> Demuxer for FlvReader<R> {
    fn next_event(&mut self) -> Result<Option<VideoEvent>, IngestError> {
        if !self.header_done {
            self.read_header()?;
        }
        loop {
            let offset = self.input.offset();
            let size = match self.tag_at(0)? {
                TagCheck::Good(size) => size,
                TagCheck::Truncated => {
                    let left = self.input.available().len();
                    if left > 0 {
                        self.warnings.push(IngestError::Malformed {
                            what: "FLV tag",
                            offset,
                            detail: format!("the input ends inside a tag; ignored the last {left} bytes"),
                        });
                        self.input.consume(left);
                    }
                    return Ok(None);
                }
                TagCheck::Bad(detail) => {
                    self.warnings.push(IngestError::Malformed { what: "FLV tag", offset, detail });
                    if self.resync()? {
                        continue;
                    }
                    return Ok(None);
                }
            };
            let tag = &self.input.available()[..TAG_HEADER + size];
            let kind = tag[0] & 0x1f;
            let ts = u32::from_be_bytes([tag[7], tag[4], tag[5], tag[6]]);
            let event = if kind == TAG_VIDEO {
                let body = tag[TAG_HEADER..].to_vec();
                self.video.parse(ts, &body, offset + TAG_HEADER as u64)
            } else {
                Ok(None)
            };
            self.input.consume(TAG_HEADER + size + 4);
            match event {
                Ok(Some(event)) => return Ok(Some(event)),
                Ok(None) => {}
                Err(e @ IngestError::UnsupportedCodec(_)) => return Err(e),
                Err(e) => self.warnings.push(e),
            }
        }
    }

    fn take_warnings(&mut self) -> Vec<IngestError> {
        std::mem::take(&mut self.warnings)
    }

    fn position(&self) -> u64 {
        self.input.offset()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(kind: u8, ts: u32, body: &[u8]) -> Vec<u8> {
        let size = body.len() as u32;
        let mut t = vec![kind];
        t.extend_from_slice(&size.to_be_bytes()[1..]);
        t.extend_from_slice(&ts.to_be_bytes()[1..]);
        t.push((ts >> 24) as u8);
        t.extend_from_slice(&[0, 0, 0]);
        t.extend_from_slice(body);
        t.extend_from_slice(&(size + 11).to_be_bytes());
        t
    }

    fn file(tags: &[Vec<u8>]) -> Vec<u8> {
        let mut f = b"FLV\x01\x01\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        for t in tags {
            f.extend_from_slice(t);
        }
        f
    }

    const CONFIG: [u8; 20] = [0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 2, 0x67, 0x64, 1, 0, 2, 0x68, 0xee];

    fn idr(cts: u8) -> Vec<u8> {
        vec![0x17, 1, 0, 0, cts, 0, 0, 0, 2, 0x65, 0x88]
    }

    fn events(data: Vec<u8>) -> (Vec<VideoEvent>, Vec<IngestError>) {
        let mut r = FlvReader::new(&data[..]);
        let mut out = Vec::new();
        while let Some(e) = r.next_event().unwrap() {
            out.push(e);
        }
        (out, r.take_warnings())
    }

    #[test]
    fn reads_config_and_units_with_composition_time() {
        let (ev, warnings) = events(file(&[tag(18, 0, b"meta"), tag(9, 0, &CONFIG), tag(8, 0, b"aac"), tag(9, 40, &idr(80))]));
        assert!(warnings.is_empty());
        assert_eq!(ev.len(), 2);
        assert!(matches!(&ev[0], VideoEvent::ParameterSets(p) if p.starts_with(&[0, 0, 0, 1, 0x67])));
        let VideoEvent::Unit(au) = &ev[1] else { panic!("{ev:?}") };
        assert_eq!((au.dts_ms, au.pts_ms, au.idr), (40, 120, true));
        assert_eq!(au.data, [0, 0, 0, 1, 0x65, 0x88]);
    }

    #[test]
    fn skips_garbage_between_tags() {
        let mut garbage = vec![0xde; 300];
        garbage[7] = 9;
        let mut data = file(&[tag(9, 0, &CONFIG), tag(9, 0, &idr(0))]);
        data.extend_from_slice(&garbage);
        data.extend_from_slice(&tag(9, 1000, &idr(0)));
        let (ev, warnings) = events(data);
        assert_eq!(ev.len(), 3, "{ev:?}");
        assert!(warnings.iter().any(|w| w.to_string().contains("skipped 300 damaged bytes")), "{warnings:?}");
    }

    #[test]
    fn truncated_last_tag_is_dropped_with_a_warning() {
        let mut data = file(&[tag(9, 0, &CONFIG), tag(9, 0, &idr(0))]);
        let whole = data.len();
        data.extend_from_slice(&tag(9, 40, &idr(0))[..9]);
        let (ev, warnings) = events(data);
        assert_eq!(ev.len(), 2);
        assert!(warnings[0].to_string().contains(&format!("at byte {whole}")), "{warnings:?}");
    }

    #[test]
    fn other_codecs_and_containers_are_refused() {
        let h263 = file(&[tag(9, 0, &[0x22, 1, 2, 3])]);
        let mut r = FlvReader::new(&h263[..]);
        assert!(r.next_event().unwrap_err().to_string().contains("Sorenson H.263"));
        let mut r = FlvReader::new(&b"\x00\x00\x00\x01\x67"[..]);
        assert!(matches!(r.next_event(), Err(IngestError::NotFlv(_))));
    }

    #[test]
    fn nal_length_past_packet_end_is_a_warning_not_an_error() {
        let bad = [0x27, 1, 0, 0, 0, 0, 0, 0x10, 0, 0x41];
        let (ev, warnings) = events(file(&[tag(9, 0, &CONFIG), tag(9, 0, &bad), tag(9, 40, &idr(0))]));
        assert_eq!(ev.len(), 2);
        assert_eq!(warnings.len(), 1);
    }
}
