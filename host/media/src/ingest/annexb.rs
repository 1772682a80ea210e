//! Raw H.264 Annex-B byte streams (`.h264`): NAL units split at start codes
//! and grouped into access units; timestamps come from a frame rate.

use std::io::Read;

use super::h264::{NAL_IDR, NAL_PPS, NAL_SLICE, NAL_SPS, START_CODE, nal_type};
use super::window::Window;
use super::{AccessUnit, Demuxer, IngestError, VideoEvent};

/// NAL units larger than this are treated as damage.
const MAX_NAL: usize = 16 << 20;

/// Reads an Annex-B stream; access unit `n` gets timestamp `n * 1000 / fps`.
pub struct AnnexBReader<R> {
    input: Window<R>,
    fps: f64,
    frames: u64,
    unit: Vec<u8>,
    unit_has_slice: bool,
    unit_idr: bool,
    params: Vec<u8>,
    params_changed: bool,
    queued: Option<VideoEvent>,
    warnings: Vec<IngestError>,
    started: bool,
}

impl<R: Read> AnnexBReader<R> {
    /// Wraps a reader; `fps` must be positive.
    pub fn new(src: R, fps: f64) -> Self {
        Self {
            input: Window::new(src),
            fps,
            frames: 0,
            unit: Vec::new(),
            unit_has_slice: false,
            unit_idr: false,
            params: Vec::new(),
            params_changed: false,
            queued: None,
            warnings: Vec::new(),
            started: false,
        }
    }

    /// The next NAL unit (without start code), `None` at the end.
    fn next_nal(&mut self) -> Result<Option<Vec<u8>>, IngestError> {
        // Find the start code in front of this unit.
        loop {
            let n = self.input.fill(4)?;
            let buf = self.input.available();
            if n < 4 {
                if n > 0 && self.started {
                    // Trailing bytes shorter than a start code + header.
                    self.input.consume(n);
                }
                return Ok(None);
            }
            if buf[..3] == START_CODE[1..] {
                self.input.consume(3);
                break;
            }
            if buf[..4] == START_CODE {
                self.input.consume(4);
                break;
            }
            let skip = buf.windows(3).position(|w| w == [0, 0, 1]).map_or(n.saturating_sub(2), |p| p.max(1));
            self.warnings.push(IngestError::Malformed {
                what: "Annex-B stream",
                offset: self.input.offset(),
                detail: format!("{skip} bytes before a start code; skipped"),
            });
            self.input.consume(skip);
        }
        self.started = true;
        // The unit runs to the next start code or the end of input.
        let mut searched = 0;
        loop {
            let have = self.input.available().len();
            if let Some(p) = self.input.available()[searched..].windows(3).position(|w| w == [0, 0, 1]) {
                let end = searched + p;
                let mut nal = self.input.available()[..end].to_vec();
                while nal.last() == Some(&0) {
                    nal.pop(); // the zero of a 4-byte start code, or trailing zeros
                }
                self.input.consume(end);
                return Ok(Some(nal));
            }
            if self.input.at_eof() {
                let nal = self.input.available().to_vec();
                self.input.consume(have);
                return Ok(Some(nal));
            }
            if have > MAX_NAL {
                let offset = self.input.offset();
                self.input.consume(have - 2);
                return Err(IngestError::Malformed { what: "NAL unit", offset, detail: format!("no start code within {MAX_NAL} bytes") });
            }
            searched = have.saturating_sub(2);
            self.input.fill(have + (1 << 16))?;
        }
    }

    fn finish_unit(&mut self) -> Option<VideoEvent> {
        if !self.unit_has_slice {
            return None;
        }
        let ts = (self.frames as f64 * 1000.0 / self.fps).round() as u64;
        self.frames += 1;
        self.unit_has_slice = false;
        Some(VideoEvent::Unit(AccessUnit {
            dts_ms: ts,
            pts_ms: ts,
            idr: std::mem::take(&mut self.unit_idr),
            data: std::mem::take(&mut self.unit),
        }))
    }
}

impl<R: Read> Demuxer for AnnexBReader<R> {
    fn next_event(&mut self) -> Result<Option<VideoEvent>, IngestError> {
        if let Some(e) = self.queued.take() {
            return Ok(Some(e));
        }
        loop {
            let nal = match self.next_nal() {
                Ok(Some(nal)) => nal,
                Ok(None) => return Ok(self.finish_unit()),
                Err(e @ IngestError::Malformed { .. }) => {
                    self.warnings.push(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let Some(kind) = nal_type(&nal) else { continue };
            if nal[0] & 0x80 != 0 {
                self.warnings.push(IngestError::Malformed {
                    what: "NAL unit",
                    offset: self.input.offset(),
                    detail: "forbidden_zero_bit is set; skipped".into(),
                });
                continue;
            }
            let is_slice = kind == NAL_SLICE || kind == NAL_IDR;
            // A new picture starts at an access unit delimiter, at parameter
            // sets or SEI after a slice, or at a slice whose first_mb_in_slice
            // is 0 (ue(v) = 0 is a single 1 bit).
            let starts_picture = match kind {
                9 | 6 | NAL_SPS | NAL_PPS => self.unit_has_slice,
                NAL_SLICE | NAL_IDR => self.unit_has_slice && nal.get(1).is_some_and(|b| b & 0x80 != 0),
                _ => false,
            };
            let finished = if starts_picture { self.finish_unit() } else { None };
            if kind == NAL_SPS {
                self.params.clear();
            }
            if kind == NAL_SPS || kind == NAL_PPS {
                self.params.extend_from_slice(&START_CODE);
                self.params.extend_from_slice(&nal);
                self.params_changed = true;
            }
            if is_slice && self.params_changed {
                self.params_changed = false;
                let sets = VideoEvent::ParameterSets(self.params.clone());
                match finished {
                    Some(f) => {
                        self.queued = Some(sets);
                        self.push(kind, &nal);
                        return Ok(Some(f));
                    }
                    None => {
                        self.push(kind, &nal);
                        return Ok(Some(sets));
                    }
                }
            }
            self.push(kind, &nal);
            if let Some(f) = finished {
                return Ok(Some(f));
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

impl<R> AnnexBReader<R> {
    fn push(&mut self, kind: u8, nal: &[u8]) {
        self.unit.extend_from_slice(&START_CODE);
        self.unit.extend_from_slice(nal);
        self.unit_has_slice |= kind == NAL_SLICE || kind == NAL_IDR;
        self.unit_idr |= kind == NAL_IDR;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(data: &[u8]) -> (Vec<VideoEvent>, Vec<IngestError>) {
        let mut r = AnnexBReader::new(data, 25.0);
        let mut out = Vec::new();
        while let Some(e) = r.next_event().unwrap() {
            out.push(e);
        }
        (out, r.take_warnings())
    }

    #[test]
    fn groups_slices_into_pictures_with_timestamps() {
        let stream = [
            &[0, 0, 0, 1, 0x67, 0x42][..],
            &[0, 0, 1, 0x68, 0xce],
            &[0, 0, 0, 1, 0x65, 0x88, 0x80],
            &[0, 0, 1, 0x65, 0x08, 0x80], // second slice of the same picture
            &[0, 0, 0, 1, 0x41, 0x9a, 0x00],
            &[0, 0, 0, 1, 0x41, 0x9b, 0x00],
        ]
        .concat();
        let (ev, warnings) = read_all(&stream);
        assert!(warnings.is_empty(), "{warnings:?}");
        let units: Vec<&AccessUnit> = ev.iter().filter_map(|e| if let VideoEvent::Unit(u) = e { Some(u) } else { None }).collect();
        assert!(matches!(ev[0], VideoEvent::ParameterSets(_)));
        assert_eq!(units.len(), 3);
        assert!(units[0].idr && !units[1].idr);
        assert_eq!(units.iter().map(|u| u.pts_ms).collect::<Vec<_>>(), [0, 40, 80]);
        // In-band parameter sets stay in front of the picture they precede.
        assert_eq!(units[0].data[..11], [0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68]);
        assert_eq!(units[0].data[12..], [0, 0, 0, 1, 0x65, 0x88, 0x80, 0, 0, 0, 1, 0x65, 0x08, 0x80]);
    }

    #[test]
    fn leading_garbage_is_skipped_with_a_warning() {
        let stream = [&b"garbage!"[..], &[0, 0, 0, 1, 0x65, 0x88, 0x80]].concat();
        let (ev, warnings) = read_all(&stream);
        assert_eq!(ev.len(), 1);
        assert_eq!(warnings.len(), 1);
    }
}
