//! A stream session: the state of one stream between demuxer and pipeline —
//! its parameter sets, the compressed pictures of the current GOP and its
//! capture clock.

use crate::capture::{CaptureClock, SnapshotMode, Take};
use crate::decode::{self, DecodeError, Picture};
use crate::ingest::{AccessUnit, VideoEvent};

/// A GOP longer than this (in bytes) is not buffered further; a snapshot
/// that would need the dropped part waits for the next IDR.
const MAX_GOP_BYTES: usize = 64 << 20;

/// A snapshot's decode work, cut from the GOP buffer so it can run off the
/// ingest path.
#[derive(Debug, Clone)]
pub struct DecodeJob {
    /// Which snapshot this is.
    pub take: Take,
    parameter_sets: Vec<u8>,
    units: Vec<AccessUnit>,
}

impl DecodeJob {
    /// Decodes the snapshot's picture.
    pub fn decode(&self) -> Result<Picture, DecodeError> {
        let units: Vec<&AccessUnit> = self.units.iter().collect();
        decode::decode_last(&self.parameter_sets, &units)
    }
}

/// Per-stream state.
#[derive(Debug)]
pub struct StreamSession {
    parameter_sets: Vec<u8>,
    gop: Vec<AccessUnit>,
    gop_bytes: usize,
    gop_overflow: bool,
    clock: CaptureClock,
    pictures: u64,
}

impl StreamSession {
    /// A session capturing every `interval_ms` in `mode`.
    pub fn new(interval_ms: u64, mode: SnapshotMode) -> Self {
        Self {
            parameter_sets: Vec::new(),
            gop: Vec::new(),
            gop_bytes: 0,
            gop_overflow: false,
            clock: CaptureClock::new(interval_ms, mode),
            pictures: 0,
        }
    }

    /// Applies a template change from the next snapshot on.
    pub fn reconfigure(&mut self, interval_ms: u64, mode: SnapshotMode) {
        self.clock.reconfigure(interval_ms, mode);
    }

    /// Whether a decodable picture (an IDR) has arrived.
    pub fn has_started(&self) -> bool {
        self.clock.next_due().is_some()
    }

    /// Pictures received so far.
    pub fn pictures(&self) -> u64 {
        self.pictures
    }

    /// Feeds one event; returns the decode work when a snapshot is due.
    pub fn push(&mut self, event: VideoEvent) -> Option<DecodeJob> {
        let unit = match event {
            VideoEvent::ParameterSets(sets) => {
                self.parameter_sets = sets;
                return None;
            }
            VideoEvent::Unit(unit) => unit,
        };
        self.pictures += 1;
        if unit.idr {
            self.gop.clear();
            self.gop_bytes = 0;
            self.gop_overflow = false;
        } else if self.gop.is_empty() || self.gop_overflow {
            return None; // not decodable: no IDR to start from
        }
        if self.gop_bytes + unit.data.len() > MAX_GOP_BYTES {
            self.gop_overflow = true;
            return None;
        }
        self.gop_bytes += unit.data.len();
        let (pts, idr) = (unit.pts_ms, unit.idr);
        self.gop.push(unit);
        let take = self.clock.on_picture(pts, idr, self.gop.len() - 1)?;
        Some(self.job(take))
    }

    /// The stream ended: a keyframe-mode snapshot still waiting for an IDR
    /// takes the picture at its due time.
    pub fn finish(&mut self) -> Option<DecodeJob> {
        let take = self.clock.finish()?;
        (take.gop_index < self.gop.len()).then(|| self.job(take))
    }

    /// A snapshot of the newest picture now, off the capture grid (an
    /// on-demand snapshot, numbered `seq`): decoded from the GOP's IDR.
    /// `None` before the first IDR.
    pub fn newest(&self, seq: u64) -> Option<DecodeJob> {
        let newest = self.gop.last()?;
        Some(self.job(Take { gop_index: self.gop.len() - 1, due_ms: newest.pts_ms, seq }))
    }

    /// A job's picture did not decode: serve its due time with a later picture.
    pub fn retry(&mut self, take: Take) {
        self.clock.retry(take);
    }

    // The IDR, the pictures later ones may reference, and the wanted one:
    // pictures no other picture references (nal_ref_idc 0, e.g. B-frames
    // from x264) are not decoded unless they are the snapshot.
    fn job(&self, take: Take) -> DecodeJob {
        let last = take.gop_index;
        let units = self.gop[..=last]
            .iter()
            .enumerate()
            .filter(|(i, u)| *i == 0 || *i == last || is_reference(u))
            .map(|(_, u)| u.clone())
            .collect();
        DecodeJob { take, parameter_sets: self.parameter_sets.clone(), units }
    }
}

/// Whether any slice of the picture may be referenced (nal_ref_idc > 0).
fn is_reference(unit: &AccessUnit) -> bool {
    crate::ingest::h264::split_annexb(&unit.data)
        .filter(|nal| matches!(crate::ingest::h264::nal_type(nal), Some(1 | 5)))
        .any(|nal| nal[0] & 0x60 != 0)
}
