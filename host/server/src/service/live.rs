//! A live stream, whatever brings its pictures (an RTMP publisher or a
//! pulled source): registered among the live streams, captured through
//! [`StreamCapture`] on its template, snapshots run on the bounded worker
//! pool, and on-demand snapshots answered.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Instant;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::app::State;
use crate::capture::Take;
use crate::ingest::VideoEvent;
use crate::runtime::bindings::types::StreamId;
use crate::snapshot::{Snapshot, SnapshotJob, StreamCapture};
use crate::streams::{OnDemand, OnDemandReply, StoredSnapshot, StreamInfo, StreamKey};

/// Pictures without an IDR before the stream is reported as undecodable.
const NO_KEYFRAME_WARNING: u64 = 300;

/// Why a stream could not go live.
#[derive(Debug)]
pub enum Refusal {
    /// No template for its domain and app.
    NoTemplate(String),
    /// That stream name is live already.
    AlreadyLive(String),
    /// Its domain is turned off, or the live-stream quota is used up.
    NotNow(String),
}

/// A stream being received.
pub struct LiveStream {
    state: Arc<State>,
    capture: StreamCapture,
    generation: u64,
    info: Arc<StreamInfo>,
    /// Takes whose picture did not decode, sent back by the workers.
    retry_tx: Sender<Take>,
    retry_rx: Receiver<Take>,
    /// On-demand snapshot requests from the API.
    requests: Receiver<OnDemand>,
    /// Where snapshot jobs run (sources feed streams from plain threads).
    runtime: Handle,
    warned_no_keyframe: bool,
}

impl LiveStream {
    /// Registers stream (domain, app, stream) from `peer` as live, if its
    /// template exists and the name is free. Call from within the runtime.
    pub fn start(state: &Arc<State>, id: StreamId, peer: String) -> Result<Self, Refusal> {
        if crate::control::domains::is_off(state, &id.domain) {
            return Err(Refusal::NotNow(format!("domain '{}' is off", id.domain)));
        }
        let (generation, template) = state.template(&id.domain, &id.app);
        let Some(template) = template else {
            return Err(Refusal::NoTemplate(format!("no snapshot template for domain '{}' app '{}'", id.domain, id.app)));
        };
        // The quota is the project's: its domains' streams count, on every node.
        let config = state.config();
        let quota = config.runtime.quotas.max_streams;
        if crate::cluster::live_streams_of(state, &template.owner) >= quota {
            return Err(Refusal::NotNow(format!("the project has its maximum of {quota} live streams")));
        }
        let key: StreamKey = (id.domain.clone(), id.app.clone(), id.stream.clone());
        let (request_tx, requests) = channel();
        let info = state
            .streams()
            .register(key, template.owner.clone(), peer, request_tx)
            .ok_or_else(|| Refusal::AlreadyLive(format!("{}/{}/{} is already being published", id.domain, id.app, id.stream)))?;
        // With several nodes the name must be free on all of them.
        match crate::cluster::acquire(state, &info) {
            Ok(true) => {}
            Ok(false) => {
                state.streams().remove(&info.key);
                return Err(Refusal::AlreadyLive(format!(
                    "{}/{}/{} is already being published (on another node)",
                    id.domain, id.app, id.stream
                )));
            }
            Err(e) => {
                state.streams().remove(&info.key);
                tracing::warn!(stream = %format!("{}/{}/{}", id.domain, id.app, id.stream), "taking the stream's lease: {e}");
                return Err(Refusal::NotNow("the shared state database is unavailable".into()));
            }
        }
        let (retry_tx, retry_rx) = channel();
        Ok(Self {
            state: state.clone(),
            capture: StreamCapture::new(id, template, crate::time::unix_ms()),
            generation,
            info,
            retry_tx,
            retry_rx,
            requests,
            runtime: Handle::current(),
            warned_no_keyframe: false,
        })
    }

    /// `domain/app/stream`.
    pub fn label(&self) -> String {
        self.capture.label()
    }

    /// Counts a damaged part of the input that was skipped.
    pub fn skipped(&self, what: &dyn std::fmt::Display) {
        self.state.metrics().input_errors.inc();
        tracing::warn!(stream = %self.label(), "{what}; skipped");
    }

    /// Takes one demuxed event: a snapshot job when one is due, and any
    /// on-demand snapshot asked for since the last event.
    pub fn on_event(&mut self, event: VideoEvent) {
        self.refresh_template();
        while let Ok(take) = self.retry_rx.try_recv() {
            self.capture.retry(take);
        }
        if let VideoEvent::Unit(unit) = &event {
            self.info.meter.lock().unwrap().video(unit.pts_ms, unit.data.len());
            self.state.metrics().frames.inc();
            let frames = self.info.frames.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if frames >= NO_KEYFRAME_WARNING && !self.warned_no_keyframe && !self.capture.has_started() && !unit.idr {
                self.warned_no_keyframe = true;
                tracing::warn!(stream = %self.label(), frames, "no keyframe (IDR) received yet: nothing can be decoded until one arrives");
            }
        }
        if let Some(job) = self.capture.push(event) {
            self.spawn(job, None);
        }
        while let Ok(request) = self.requests.try_recv() {
            match self.capture.newest() {
                Some(job) => self.spawn(job, Some(request.reply)),
                None => {
                    let _ = request.reply.send(Err("no decodable picture yet (waiting for a keyframe) or no template".into()));
                }
            }
        }
    }

    /// Counts an audio frame (audio is measured, not kept).
    pub fn on_audio(&self, format: u8, bytes: usize) {
        self.info.meter.lock().unwrap().audio(bytes);
        self.info.audio_format.lock().unwrap().get_or_insert(format);
    }

    /// Picks up a changed template from the next snapshot on.
    fn refresh_template(&mut self) {
        let generation = self.state.generation();
        if generation == self.generation {
            return;
        }
        self.generation = generation;
        let id = self.capture.id();
        let (_, template) = self.state.template(&id.domain, &id.app);
        // A template of another project (the domain deleted and taken again)
        // does not capture this project's stream.
        let template = template.filter(|t| t.owner == self.info.owner);
        if template.is_none() {
            tracing::warn!(stream = %self.label(), "template removed; snapshots stop for this stream");
        }
        self.capture.set_template(template);
    }

    /// The stream ended: a snapshot still waiting for an IDR takes its due picture.
    pub fn finish(&mut self) {
        if let Some(job) = self.capture.finish() {
            self.spawn(job, None);
        }
    }

    /// Runs the job on the worker pool, never on the receiving task.
    fn spawn(&self, job: SnapshotJob, reply: Option<oneshot::Sender<OnDemandReply>>) {
        let state = self.state.clone();
        let info = self.info.clone();
        // An on-demand picture that does not decode is not retried: it is
        // off the capture grid.
        let retry = reply.is_none().then(|| self.retry_tx.clone());
        let label = self.label();
        let id = self.capture.id().clone();
        let work = async move {
            let Ok(permit) = state.workers().clone().acquire_owned().await else { return };
            let _ = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let started = Instant::now();
                let owner = job.template().owner.clone();
                let snapshot = job.run(state.pipeline(), &mut |outcome| record(&state, &info, &owner, outcome));
                if let Some(reply) = reply {
                    let _ = reply.send(answer(&id, &snapshot));
                }
                report(&state, &info, retry.as_ref(), &label, snapshot, started);
            })
            .await;
        };
        self.state.tasks().spawn_on(work, &self.runtime);
    }
}

impl Drop for LiveStream {
    fn drop(&mut self) {
        // The lease first: until the registry lets the name go, no new
        // publisher of it on this node can take a lease this would free.
        crate::cluster::release(&self.state, &self.info.key);
        self.state.streams().remove(&self.info.key);
    }
}

/// What an on-demand request gets back.
fn answer(id: &StreamId, snapshot: &Snapshot) -> OnDemandReply {
    match snapshot {
        Snapshot::Stored { outcome, stream_time_ms, .. } => Ok(serde_json::json!({
            "domain": id.domain, "app": id.app, "stream": id.stream,
            "snapshot_url": outcome.stored.url, "width": outcome.width, "height": outcome.height, "size": outcome.bytes,
            "obs_addr": {"bucket": outcome.stored.bucket, "object": outcome.stored.object},
            "stream_time_ms": stream_time_ms, "callback": outcome.callback,
        })),
        Snapshot::Undecodable { error, .. } => Err(format!("the newest picture did not decode: {error}")),
        Snapshot::Failed { error, .. } => Err(error.to_string()),
    }
}

/// What the API shows of a stored snapshot (counters, usage, the latest),
/// recorded before its callback is queued and before its log line: whoever
/// hears of it finds it counted.
fn record(state: &State, info: &StreamInfo, owner: &str, outcome: &crate::pipeline::Outcome) {
    info.snapshots.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    crate::control::usage::count_snapshot(state, owner, &info.key.0);
    *info.resolution.lock().unwrap() = Some((outcome.width, outcome.height));
    *info.last_snapshot.lock().unwrap() = Some(StoredSnapshot {
        bucket: outcome.stored.bucket.clone(),
        object: outcome.stored.object.clone(),
        url: outcome.stored.url.clone(),
    });
}

/// Counts and logs what became of a snapshot; a picture that did not
/// decode goes back to the stream to try the next one.
fn report(state: &State, info: &StreamInfo, retry: Option<&Sender<Take>>, label: &str, snapshot: Snapshot, started: Instant) {
    use std::sync::atomic::Ordering::Relaxed;
    match snapshot {
        Snapshot::Undecodable { take, error } => {
            if let Some(retry) = retry {
                let _ = retry.send(take);
            }
            state.metrics().decode_errors.inc();
            tracing::warn!(stream = %label, due_ms = take.due_ms, "snapshot picture did not decode: {error}; trying the next one");
        }
        Snapshot::Stored { take, stream_time_ms, outcome, .. } => {
            state.metrics().snapshots.inc();
            state.metrics().observe_latency(started.elapsed());
            tracing::info!(stream = %label, seq = take.seq, stream_time_ms, object = %outcome.stored.object, bytes = outcome.bytes, "snapshot stored");
        }
        Snapshot::Failed { take, stream_time_ms, error, .. } => {
            info.errors.fetch_add(1, Relaxed);
            if let Some((stage, component, kind)) = error.call_site() {
                state.metrics().component_error(&stage.to_string(), component, kind);
            }
            tracing::error!(stream = %label, seq = take.seq, stream_time_ms, "snapshot failed: {error}");
        }
    }
}
