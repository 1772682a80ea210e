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
    pub fn register(&self, key: StreamKey, peer: String, requests: Sender<OnDemand>) -> Option<Arc<StreamInfo>> {
        let mut live = self.live.lock().unwrap();
        if live.contains_key(&key) {
            return None;
        }
        let started_at = crate::time::unix_secs();
        let info = Arc::new(StreamInfo {
            key: key.clone(),
            peer,
            started_at,
            frames: AtomicU64::new(0),
            snapshots: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_snapshot: Mutex::new(None),
            requests: Mutex::new(requests),
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

    /// A snapshot of every live stream.
    pub fn list(&self) -> Vec<StreamView> {
        self.live
            .lock()
            .unwrap()
            .values()
            .map(|s| StreamView {
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
