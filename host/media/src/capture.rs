//! The capture clock: decides, frame by frame in stream time, which picture
//! each snapshot takes (ARCHITECTURE §2).
//!
//! Due times sit on a fixed grid from the first decodable picture (first,
//! first + interval, …), so late pictures never make the schedule drift.

use std::fmt;
use std::str::FromStr;

/// Huawei's `snapshot_mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SnapshotMode {
    /// The first IDR at or after each due time (one decoded picture).
    #[default]
    Keyframe,
    /// The first non-IDR picture at or after each due time.
    NoKeyframe,
    /// Alternates: even snapshots keyframe, odd ones nokeyframe.
    Random,
}

impl FromStr for SnapshotMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "keyframe" => Ok(Self::Keyframe),
            "nokeyframe" => Ok(Self::NoKeyframe),
            "random" => Ok(Self::Random),
            other => Err(format!("'{other}' is not one of keyframe, nokeyframe, random")),
        }
    }
}

impl fmt::Display for SnapshotMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Keyframe => "keyframe",
            Self::NoKeyframe => "nokeyframe",
            Self::Random => "random",
        })
    }
}

/// A decision to take a snapshot: decode the current GOP up to `gop_index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Take {
    /// Index of the picture in the GOP buffer (0 is its IDR).
    pub gop_index: usize,
    /// The due time this snapshot serves, in stream milliseconds.
    pub due_ms: u64,
    /// Snapshot number in this stream, from 0.
    pub seq: u64,
}

/// Per-stream capture state.
#[derive(Debug)]
pub struct CaptureClock {
    interval_ms: u64,
    mode: SnapshotMode,
    next_due: Option<u64>,
    taken: u64,
    /// Keyframe mode: the picture at the due time, taken if no IDR comes
    /// within the interval.
    fallback: Option<usize>,
}

impl CaptureClock {
    /// A clock that has not seen a decodable picture yet.
    pub fn new(interval_ms: u64, mode: SnapshotMode) -> Self {
        Self { interval_ms: interval_ms.max(1), mode, next_due: None, taken: 0, fallback: None }
    }

    /// Applies a template change from the next snapshot on.
    pub fn reconfigure(&mut self, interval_ms: u64, mode: SnapshotMode) {
        self.interval_ms = interval_ms.max(1);
        self.mode = mode;
    }

    /// The next due time, once started.
    pub fn next_due(&self) -> Option<u64> {
        self.next_due
    }

    /// Feeds one picture in decode order; `gop_index` is its place in the
    /// current GOP buffer (0 for an IDR).
    pub fn on_picture(&mut self, pts_ms: u64, idr: bool, gop_index: usize) -> Option<Take> {
        if idr {
            self.fallback = None; // the buffer it pointed into is gone
        }
        let Some(due) = self.next_due else {
            return idr.then(|| self.take(pts_ms, gop_index, pts_ms));
        };
        // A stream whose clock jumped far back (a restarted encoder) starts over.
        if pts_ms.saturating_add(2 * self.interval_ms) < due {
            self.next_due = None;
            self.fallback = None;
            return idr.then(|| self.take(pts_ms, gop_index, pts_ms));
        }
        if pts_ms < due {
            return None;
        }
        let want_keyframe = match self.mode {
            SnapshotMode::Keyframe => true,
            SnapshotMode::NoKeyframe => false,
            SnapshotMode::Random => self.taken.is_multiple_of(2),
        };
        if want_keyframe {
            if idr {
                return Some(self.take(due, gop_index, pts_ms));
            }
            match self.fallback {
                None => self.fallback = Some(gop_index),
                Some(index) if pts_ms >= due + self.interval_ms => {
                    let take = self.take(due, index, pts_ms);
                    // This picture is the due one for the next due time.
                    if self.next_due.is_some_and(|next| pts_ms >= next) {
                        self.fallback = Some(gop_index);
                    }
                    return Some(take);
                }
                Some(_) => {}
            }
            None
        } else if !idr {
            Some(self.take(due, gop_index, pts_ms))
        } else {
            None
        }
    }

    /// At the end of the stream: the pending keyframe-mode fallback, if any.
    pub fn finish(&mut self) -> Option<Take> {
        let index = self.fallback.take()?;
        let due = self.next_due?;
        Some(self.take(due, index, due))
    }

    /// The snapshot could not be made (the picture did not decode): serve
    /// the same due time with a later picture.
    pub fn retry(&mut self, take: Take) {
        self.taken = take.seq;
        self.fallback = None;
        self.next_due = (take.seq > 0).then_some(take.due_ms);
    }

    fn take(&mut self, due: u64, gop_index: usize, now_ms: u64) -> Take {
        let take = Take { gop_index, due_ms: due, seq: self.taken };
        self.taken += 1;
        self.fallback = None;
        // Due times missed in a gap in the stream are skipped, not made up.
        let mut next = due + self.interval_ms;
        while next < now_ms {
            next += self.interval_ms;
        }
        self.next_due = Some(next);
        take
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a stream of (pts, idr) pictures with GOP buffer indices and
    /// returns (pts of the taken picture, due) per snapshot.
    fn run(mode: SnapshotMode, interval: u64, pictures: &[(u64, bool)]) -> Vec<(u64, u64)> {
        let mut clock = CaptureClock::new(interval, mode);
        let mut gop: Vec<u64> = Vec::new();
        let mut out = Vec::new();
        for &(pts, idr) in pictures {
            if idr {
                gop.clear();
            }
            gop.push(pts);
            if let Some(t) = clock.on_picture(pts, idr, gop.len() - 1) {
                out.push((gop[t.gop_index], t.due_ms));
            }
        }
        out
    }

    /// 25 fps, an IDR every `gop` ms, from `start`.
    fn stream(start: u64, len_ms: u64, gop: u64) -> Vec<(u64, bool)> {
        (0..len_ms / 40).map(|i| (start + i * 40, (i * 40) % gop == 0)).collect()
    }

    #[test]
    fn keyframe_mode_takes_the_idr_at_each_due_time() {
        let taken = run(SnapshotMode::Keyframe, 5000, &stream(67, 20_000, 1000));
        assert_eq!(taken, [(67, 67), (5067, 5067), (10067, 10067), (15067, 15067)]);
    }

    #[test]
    fn keyframe_mode_waits_for_the_next_idr_on_the_grid() {
        // IDRs every 2 s: due 5000 is served by the IDR at 6000, the next
        // due stays 10000.
        let taken = run(SnapshotMode::Keyframe, 5000, &stream(0, 20_000, 2000));
        assert_eq!(taken, [(0, 0), (6000, 5000), (10000, 10000), (16000, 15000)]);
    }

    #[test]
    fn keyframe_mode_falls_back_to_the_due_picture_without_idrs() {
        // One IDR at 0, then none: the picture at the due time is taken
        // once the interval has passed without an IDR.
        let taken = run(SnapshotMode::Keyframe, 5000, &stream(0, 16_000, 1_000_000));
        assert_eq!(taken, [(0, 0), (5000, 5000), (10000, 10000)]);
        let mut clock = CaptureClock::new(5000, SnapshotMode::Keyframe);
        clock.on_picture(0, true, 0);
        assert_eq!(clock.finish(), None, "nothing pending");
        clock.on_picture(5000, false, 125);
        assert_eq!(clock.finish().map(|t| (t.gop_index, t.due_ms)), Some((125, 5000)), "the due picture at the end");
    }

    #[test]
    fn nokeyframe_and_random_modes() {
        let taken = run(SnapshotMode::NoKeyframe, 5000, &stream(0, 11_000, 1000));
        assert_eq!(taken, [(0, 0), (5040, 5000), (10040, 10000)]);
        let taken = run(SnapshotMode::Random, 5000, &stream(0, 16_000, 1000));
        assert_eq!(taken, [(0, 0), (5040, 5000), (10000, 10000), (15040, 15000)]);
    }

    #[test]
    fn nothing_before_the_first_idr_and_retry_serves_the_same_due() {
        let mut clock = CaptureClock::new(5000, SnapshotMode::Keyframe);
        assert_eq!(clock.on_picture(0, false, 0), None);
        let first = clock.on_picture(40, true, 0).unwrap();
        clock.retry(first);
        assert_eq!(clock.next_due(), None);
        let first = clock.on_picture(80, true, 0).unwrap();
        assert_eq!((first.due_ms, first.seq), (80, 0));
        let second = clock.on_picture(5080, true, 0).unwrap();
        clock.retry(second);
        let again = clock.on_picture(6080, true, 0).unwrap();
        assert_eq!((again.due_ms, again.seq), (5080, 1));
    }

    #[test]
    fn gaps_skip_missed_due_times_and_rewinds_restart() {
        let taken = run(SnapshotMode::Keyframe, 5000, &[(0, true), (17_000, true), (20_000, true), (100, true)]);
        assert_eq!(taken, [(0, 0), (17_000, 5000), (20_000, 20_000), (100, 100)]);
    }
}
