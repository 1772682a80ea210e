//! Several nodes sharing a PostgreSQL state database (ARCHITECTURE §8):
//! stream leases (a stream name is live on one node at a time), the
//! heartbeat that renews this node's leases with each stream's counters,
//! other nodes' streams for listings, and the watch that applies changes
//! made through other nodes. With SQLite (one node) all of it is off.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::app::State;
use crate::state::{StateError, StreamLease};
use crate::streams::{Rates, StreamInfo, StreamKey};

/// How long a lease lasts without renewal: a node that dies frees its
/// stream names after this.
pub const LEASE_TTL: Duration = Duration::from_secs(15);

/// How often a node renews its leases (and refreshes what others see of
/// its streams).
const HEARTBEAT: Duration = Duration::from_secs(3);

/// How often a node looks for changes made through other nodes.
const WATCH: Duration = Duration::from_millis(250);

/// What a node tells the others about one of its streams (the lease's
/// `info`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Summary {
    /// Publisher's address (a pulled stream: its URL's host).
    pub peer: String,
    /// Unix seconds.
    pub started_at: u64,
    /// Pictures received.
    pub frames: u64,
    /// Snapshots stored.
    pub snapshots: u64,
    /// Snapshots failed.
    pub errors: u64,
    /// Measured rates.
    pub rates: Rates,
    /// Picture size once decoded.
    pub resolution: Option<(u32, u32)>,
    /// FLV sound format once audio arrived.
    pub audio_format: Option<u8>,
    /// The latest snapshot's URL.
    pub last_snapshot_url: Option<String>,
    /// The latest snapshot's bucket and object (any node can read it).
    pub last_snapshot: Option<(String, String)>,
}

impl Summary {
    /// A live stream of this node, now.
    pub fn of(info: &StreamInfo) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        // Each lock taken once and released before the next: temporaries
        // in one struct expression would hold them all to its end.
        let last = info.last_snapshot.lock().unwrap().clone();
        let rates = info.meter.lock().unwrap().rates();
        let resolution = *info.resolution.lock().unwrap();
        let audio_format = *info.audio_format.lock().unwrap();
        Self {
            peer: info.peer.clone(),
            started_at: info.started_at,
            frames: info.frames.load(Relaxed),
            snapshots: info.snapshots.load(Relaxed),
            errors: info.errors.load(Relaxed),
            rates,
            resolution,
            audio_format,
            last_snapshot_url: last.as_ref().map(|s| s.url.clone()),
            last_snapshot: last.map(|s| (s.bucket, s.object)),
        }
    }
}

/// A stream live on another node.
#[derive(Clone, Debug)]
pub struct RemoteStream {
    /// Domain, app, stream.
    pub key: StreamKey,
    /// The owner key of its project.
    pub owner: String,
    /// The node it is live on.
    pub node: String,
    /// What that node last said about it.
    pub summary: Summary,
}

fn now_ms() -> i64 {
    crate::time::unix_ms() as i64
}

/// Takes the cluster-wide lease of a stream this node registered; false if
/// it is live on another node. Always true with one node.
pub fn acquire(state: &State, info: &StreamInfo) -> Result<bool, StateError> {
    let node = state.node();
    if !node.shared() {
        return Ok(true);
    }
    let now = now_ms();
    let lease = StreamLease {
        domain: info.key.0.clone(),
        app: info.key.1.clone(),
        stream: info.key.2.clone(),
        node: node.name().to_string(),
        owner: info.owner.clone(),
        info: serde_json::to_string(&Summary::of(info)).unwrap_or_default(),
        expires_at: now + LEASE_TTL.as_millis() as i64,
    };
    off_executor(|| state.db().acquire_stream(&lease, now))
}

/// Runs a blocking database call from anywhere: on a runtime worker thread
/// the worker's other tasks (accept loops, publishers) move to another
/// thread first, so a slow database does not stall them.
fn off_executor<T>(call: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(call),
        _ => call(),
    }
}

/// Frees this node's lease of a stream that ended.
pub fn release(state: &State, key: &StreamKey) {
    let node = state.node();
    if node.shared()
        && let Err(e) = off_executor(|| state.db().release_stream(node.name(), &key.0, &key.1, &key.2))
    {
        tracing::warn!(stream = %format!("{}/{}/{}", key.0, key.1, key.2), "freeing the stream's lease: {e}");
    }
}

/// Live streams of other nodes (none with one node). Blocking (the database).
pub fn remote_streams(state: &State) -> Vec<RemoteStream> {
    let node = state.node();
    if !node.shared() {
        return Vec::new();
    }
    match off_executor(|| state.db().stream_leases(now_ms())) {
        Ok(leases) => leases
            .into_iter()
            .filter(|l| l.node != node.name())
            .map(|l| RemoteStream {
                summary: serde_json::from_str(&l.info).unwrap_or_default(),
                key: (l.domain, l.app, l.stream),
                owner: l.owner,
                node: l.node,
            })
            .collect(),
        Err(e) => {
            tracing::warn!("reading other nodes' streams: {e}");
            Vec::new()
        }
    }
}

/// The other node a stream is live on, if any. Blocking (the database).
pub fn holder(state: &State, key: &StreamKey) -> Option<String> {
    remote(state, key).map(|r| r.node)
}

/// A stream live on another node, if it is. Blocking (the database).
pub fn remote(state: &State, key: &StreamKey) -> Option<RemoteStream> {
    remote_streams(state).into_iter().find(|r| &r.key == key)
}

/// How many streams of `owner` are live on every node (with one node:
/// this node's). Blocking (the database).
pub fn live_streams_of(state: &State, owner: &str) -> usize {
    let local = state.streams().entries().iter().filter(|s| s.owner == owner).count();
    local + remote_streams(state).iter().filter(|s| s.owner == owner).count()
}

/// Renews this node's leases until cancelled. A lease found taken by
/// another node (this one was cut off longer than the TTL) is logged.
pub async fn heartbeat(state: Arc<State>, cancel: CancellationToken) {
    if !state.node().shared() {
        return;
    }
    let mut tick = ticker(HEARTBEAT);
    while next_tick(&mut tick, &cancel).await {
        let renewed = blocking(&state, |st| {
            let entries = st.streams().entries();
            let streams: Vec<_> = entries
                .iter()
                .map(|i| {
                    let summary = serde_json::to_string(&Summary::of(i)).unwrap_or_default();
                    (i.key.0.clone(), i.key.1.clone(), i.key.2.clone(), summary)
                })
                .collect();
            let until = now_ms() + LEASE_TTL.as_millis() as i64;
            st.db().renew_streams(st.node().name(), &streams, until).map(|held| (held, streams.len())).map_err(|e| e.to_string())
        })
        .await;
        match renewed {
            Ok((held, live)) if held < live => {
                tracing::warn!(held, live, "some of this node's stream leases were taken by another node (this node was cut off)")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("renewing stream leases: {e}"),
        }
    }
}

/// Applies changes made through other nodes (templates, domains, modules,
/// key chains, sources, authorizations) until cancelled: the revision is
/// read every 250 ms and a new one reloads them from the database.
pub async fn watch(state: Arc<State>, cancel: CancellationToken) {
    if !state.node().shared() {
        return;
    }
    let mut seen = None;
    let mut tick = ticker(WATCH);
    while next_tick(&mut tick, &cancel).await {
        let result = blocking(&state, move |st| -> Result<Option<i64>, String> {
            let revision = st.db().revision().map_err(|e| e.to_string())?;
            if Some(revision) == seen {
                return Ok(None);
            }
            // The first look applies too: a change may have landed between
            // this node reading its configuration and now.
            st.writer().apply_shared_changes().map_err(|e| e.to_string())?;
            Ok(Some(revision))
        })
        .await;
        match result {
            Ok(Some(revision)) => {
                if seen.is_some() {
                    tracing::info!(revision, "applied configuration changes from the shared state");
                }
                seen = Some(revision);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("applying changes from the shared state: {e}"),
        }
    }
}

/// A periodic tick that waits out a slow round instead of bunching up.
pub(crate) fn ticker(period: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// The next tick; false once cancelled.
pub(crate) async fn next_tick(tick: &mut tokio::time::Interval, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tick.tick() => true,
    }
}

/// Runs a database round off the executor.
pub(crate) async fn blocking<T: Send + 'static>(
    state: &Arc<State>,
    round: impl FnOnce(&State) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || round(&state)).await.map_err(|e| e.to_string())?
}

/// Frees everything this node holds (stream leases; the delivery releases
/// its callback claims itself) as it shuts down.
pub fn leave(state: &State) {
    let node = state.node();
    if !node.shared() {
        return;
    }
    match state.db().release_node(node.name()) {
        Ok(n) => tracing::info!(node = %node.name(), leases = n, "left the cluster"),
        Err(e) => tracing::warn!("freeing this node's stream leases: {e}"),
    }
}
