//! The registry of live streams: one entry per (domain, app, stream) while
//! its publisher is connected.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// What identifies a live stream.
pub type StreamKey = (String, String, String);

/// A live stream's counters, shared by its publisher task and snapshot jobs.
#[derive(Debug)]
pub struct StreamInfo {
    /// Domain, app, stream.
    pub key: StreamKey,
    /// The owner key of the project whose template accepted it: the stream
    /// stays that project's even if its domain is deleted and taken again.
    pub owner: String,
    /// Publisher's address.
    pub peer: String,
    /// Unix seconds when publishing started.
    pub started_at: u64,
    /// Pictures received.
    pub frames: AtomicU64,
    /// Snapshots stored.
    pub snapshots: AtomicU64,
    /// Snapshots that failed.
    pub errors: AtomicU64,
    /// The latest stored snapshot.
    pub last_snapshot: Mutex<Option<StoredSnapshot>>,
    /// On-demand snapshot requests, to the stream's receiving task.
    pub requests: Mutex<Sender<OnDemand>>,
    /// Frame rates and bitrates, measured on stream time.
    pub meter: Mutex<Meter>,
    /// Picture size, from the latest decoded snapshot.
    pub resolution: Mutex<Option<(u32, u32)>>,
    /// The audio codec's FLV sound format, once audio arrived.
    pub audio_format: Mutex<Option<u8>>,
}

/// Measured rates of a stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Rates {
    /// Pictures per second.
    pub video_fps: u64,
    /// Video kbit/s.
    pub video_kbps: u64,
    /// Audio frames (messages) per second.
    pub audio_fps: u64,
    /// Audio kbit/s.
    pub audio_kbps: u64,
}

/// Counts a stream's pictures and bytes over windows of stream time.
#[derive(Debug, Default)]
pub struct Meter {
    start_ms: Option<u64>,
    last_ms: u64,
    counts: [u64; 4],
    rates: Option<Rates>,
}

/// The measuring window, in stream milliseconds.
const WINDOW_MS: u64 = 5000;

impl Meter {
    /// A picture of `bytes` at stream time `pts_ms`.
    pub fn video(&mut self, pts_ms: u64, bytes: usize) {
        let start = *self.start_ms.get_or_insert(pts_ms);
        self.last_ms = self.last_ms.max(pts_ms);
        if pts_ms.saturating_sub(start) >= WINDOW_MS {
            self.rates = Some(self.current());
            self.start_ms = Some(pts_ms);
            self.counts = [0; 4];
        }
        self.counts[0] += 1;
        self.counts[1] += bytes as u64;
    }

    /// An audio frame of `bytes`.
    pub fn audio(&mut self, bytes: usize) {
        self.counts[2] += 1;
        self.counts[3] += bytes as u64;
    }

    /// The last full window's rates, or the current one's once it spans a second.
    pub fn rates(&self) -> Rates {
        match self.rates {
            Some(r) => r,
            None if self.span_ms() >= 1000 => self.current(),
            None => Rates::default(),
        }
    }

    fn span_ms(&self) -> u64 {
        self.start_ms.map_or(0, |s| self.last_ms.saturating_sub(s))
    }

    fn current(&self) -> Rates {
        let ms = self.span_ms().max(1);
        let [frames, video_bytes, audio_frames, audio_bytes] = self.counts;
        Rates {
            video_fps: (frames * 1000 + ms / 2) / ms,
            video_kbps: video_bytes * 8 / ms,
            audio_fps: (audio_frames * 1000 + ms / 2) / ms,
            audio_kbps: audio_bytes * 8 / ms,
        }
    }
}

/// Where a snapshot was stored.
#[derive(Clone, Debug)]
pub struct StoredSnapshot {
    /// Bucket.
    pub bucket: String,
    /// Object key.
    pub object: String,
    /// Its URL.
    pub url: String,
}

/// What an on-demand snapshot answers: the stored snapshot as a callback
/// body describes it, or why there is none.
pub type OnDemandReply = Result<serde_json::Value, String>;

/// A request for a snapshot of the newest picture, now.
#[derive(Debug)]
pub struct OnDemand {
    /// Where the answer goes.
    pub reply: tokio::sync::oneshot::Sender<OnDemandReply>,
}

/// A stream as `GET /v1/{project_id}/streams` shows it.
#[derive(Debug, Serialize)]
pub struct StreamView {
    /// The owner key of its project.
    pub owner: String,
    /// Ingest domain.
    pub domain: String,
    /// Application.
    pub app: String,
    /// Stream name.
    pub stream: String,
    /// Publisher address.
    pub peer: String,
    /// Unix seconds.
    pub started_at: u64,
    /// Pictures received.
    pub frames: u64,
    /// Snapshots stored.
    pub snapshots: u64,
    /// Snapshots failed.
    pub errors: u64,
    /// Latest snapshot URL.
    pub last_snapshot_url: Option<String>,
}

/// Live streams by key.
#[derive(Default)]
pub struct Streams {
    live: Mutex<BTreeMap<StreamKey, Arc<StreamInfo>>>,
}

impl Streams {
    /// Registers a stream; `None` when that stream is already live.
    pub fn register(&self, key: StreamKey, owner: String, peer: String, requests: Sender<OnDemand>) -> Option<Arc<StreamInfo>> {
        let mut live = self.live.lock().unwrap();
        if live.contains_key(&key) {
            return None;
        }
        let started_at = crate::time::unix_secs();
        let info = Arc::new(StreamInfo {
            key: key.clone(),
            owner,
            peer,
            started_at,
            frames: AtomicU64::new(0),
            snapshots: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_snapshot: Mutex::new(None),
            requests: Mutex::new(requests),
            meter: Mutex::default(),
            resolution: Mutex::new(None),
            audio_format: Mutex::new(None),
        });
        live.insert(key, info.clone());
        Some(info)
    }

    /// A live stream.
    pub fn get(&self, key: &StreamKey) -> Option<Arc<StreamInfo>> {
        self.live.lock().unwrap().get(key).cloned()
    }

    /// Removes a stream (its publisher left).
    pub fn remove(&self, key: &StreamKey) {
        self.live.lock().unwrap().remove(key);
    }

    /// How many streams are live.
    pub fn len(&self) -> usize {
        self.live.lock().unwrap().len()
    }

    /// Whether none is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every live stream's entry.
    pub fn entries(&self) -> Vec<Arc<StreamInfo>> {
        self.live.lock().unwrap().values().cloned().collect()
    }

    /// A snapshot of every live stream.
    pub fn list(&self) -> Vec<StreamView> {
        self.live
            .lock()
            .unwrap()
            .values()
            .map(|s| StreamView {
                owner: s.owner.clone(),
                domain: s.key.0.clone(),
                app: s.key.1.clone(),
                stream: s.key.2.clone(),
                peer: s.peer.clone(),
                started_at: s.started_at,
                frames: s.frames.load(Ordering::Relaxed),
                snapshots: s.snapshots.load(Ordering::Relaxed),
                errors: s.errors.load(Ordering::Relaxed),
                last_snapshot_url: s.last_snapshot.lock().unwrap().as_ref().map(|l| l.url.clone()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meter_measures_on_stream_time() {
        let mut m = Meter::default();
        assert_eq!(m.rates(), Rates::default(), "nothing before a second of stream");
        // 30 fps, 12500 bytes a picture (3 Mbit/s), 47 AAC frames of 300 bytes a second.
        for i in 0..=450u64 {
            m.video(i * 1000 / 30, 12_500);
            if i % 30 == 0 {
                for _ in 0..47 {
                    m.audio(300);
                }
            }
        }
        let r = m.rates();
        assert_eq!((r.video_fps, r.video_kbps / 100), (30, 30), "{r:?}");
        assert_eq!((r.audio_fps, r.audio_kbps), (47, 112), "{r:?}");
    }
}
