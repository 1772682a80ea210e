//! One RTMP publisher: handshake, publish checks, and its stream's session.
//! Decoding and the functions run on the bounded worker pool, never on this
//! task, so a slow or stuck publisher holds up nobody else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::app::State;
use crate::capture::Take;
use crate::config::runtime::RtmpLimits;
use crate::ingest::flv::VideoTagParser;
use crate::ingest::rtmp::chunk::{Limits, SharedBudget};
use crate::ingest::rtmp::{self, Connection, Event, PublishRequest, RtmpError, handshake};
use crate::ingest::{IngestError, VideoEvent};
use crate::runtime::bindings::types::StreamId;
use crate::snapshot::{Snapshot, SnapshotJob, StreamCapture};
use crate::streams::StreamInfo;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The window over which a publisher's data rate is checked.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// Pictures without an IDR before the stream is reported as undecodable.
const NO_KEYFRAME_WARNING: u64 = 300;

#[derive(Debug, thiserror::Error)]
enum PublisherError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Timeout(String),
    #[error("handshake: {0}")]
    Handshake(&'static str),
    #[error(transparent)]
    Rtmp(#[from] RtmpError),
    #[error("publish refused: {0}")]
    Refused(String),
    #[error("{0}")]
    Codec(IngestError),
    #[error("service shutting down")]
    Shutdown,
}

/// Serves one connection to its end; every outcome is logged here.
pub(super) async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    socket: S,
    peer: SocketAddr,
    state: Arc<State>,
    budget: Arc<SharedBudget>,
    cancel: CancellationToken,
) {
    let mut stream_name = None;
    let result = tokio::select! {
        r = publish(socket, peer, &state, budget, &mut stream_name) => r,
        _ = cancel.cancelled() => Err(PublisherError::Shutdown),
    };
    let stream = stream_name.unwrap_or_else(|| "-".into());
    match result {
        Ok(()) => tracing::info!(%peer, %stream, "publisher disconnected"),
        Err(PublisherError::Shutdown) => tracing::info!(%peer, %stream, "publisher closed for shutdown"),
        Err(e @ PublisherError::Refused(_)) => {
            state.metrics().publishes_refused.inc();
            tracing::warn!(%peer, %stream, "{e}");
        }
        Err(e) => tracing::warn!(%peer, %stream, "publisher dropped: {e}"),
    }
}

async fn publish(
    mut socket: impl AsyncRead + AsyncWrite + Unpin,
    peer: SocketAddr,
    state: &Arc<State>,
    budget: Arc<SharedBudget>,
    stream_name: &mut Option<String>,
) -> Result<(), PublisherError> {
    let limits: RtmpLimits = state.config().runtime.rtmp.clone();
    let accepted_at = tokio::time::Instant::now();
    let publish_deadline = accepted_at + limits.publish_timeout;
    tokio::time::timeout_at(publish_deadline.min(accepted_at + HANDSHAKE_TIMEOUT), do_handshake(&mut socket))
        .await
        .map_err(|_| PublisherError::Timeout("no handshake within 10 s".into()))??;
    let mut conn = Connection::with_limits(Limits::publisher(Some(budget)));
    let mut buf = Vec::with_capacity(1 << 16);
    let mut live: Option<LiveStream> = None;
    let mut window = (tokio::time::Instant::now(), 0u64);
    loop {
        // Before its publish is accepted a connection has a deadline; after,
        // it must keep sending at least the minimum rate.
        let until = if live.is_none() { publish_deadline } else { tokio::time::Instant::now() + limits.idle_timeout };
        let read = tokio::time::timeout_at(until.min(tokio::time::Instant::now() + limits.idle_timeout), socket.read_buf(&mut buf)).await;
        let n = match read {
            Ok(r) => r?,
            Err(_) if live.is_none() && tokio::time::Instant::now() >= publish_deadline => {
                return Err(PublisherError::Timeout(format!("no publish within {} s of connecting", limits.publish_timeout.as_secs())));
            }
            Err(_) => return Err(PublisherError::Timeout(format!("no data for {} s", limits.idle_timeout.as_secs()))),
        };
        if n == 0 {
            break;
        }
        window.1 += n as u64;
        if window.0.elapsed() >= RATE_WINDOW {
            if live.is_some() && window.1 < limits.min_bytes_per_10s {
                return Err(PublisherError::Timeout(format!(
                    "sent {} bytes in {} s, below the minimum of {} per 10 s",
                    window.1,
                    window.0.elapsed().as_secs(),
                    limits.min_bytes_per_10s
                )));
            }
            window = (tokio::time::Instant::now(), 0);
        }
        let (consumed, events) = conn.feed(&buf)?;
        buf.drain(..consumed);
        for event in events {
            match event {
                Event::Connected { app, tc_url } => {
                    tracing::debug!(%peer, %app, tc_url = tc_url.as_deref().unwrap_or("-"), "RTMP connect");
                }
                Event::Publish(request) => match admit(state, peer, &request) {
                    Ok(stream) => {
                        conn.accept(&request);
                        *stream_name = Some(stream.label());
                        tracing::info!(%peer, stream = %stream.label(), "publishing");
                        state.metrics().publishes.inc();
                        live = Some(stream);
                    }
                    Err((code, reason)) => {
                        // Without its parameters: a signed URL is a credential until it expires.
                        *stream_name = Some(request.name.split('?').next().unwrap_or_default().to_string());
                        conn.reject(&request, code, &reason);
                        socket.write_all(&conn.take_output()).await?;
                        return Err(PublisherError::Refused(reason));
                    }
                },
                Event::Video { timestamp, data } => {
                    if let Some(stream) = live.as_mut() {
                        stream.on_video(timestamp, &data)?;
                    }
                }
                Event::Unpublished => {
                    if let Some(mut stream) = live.take() {
                        stream.finish();
                    }
                }
            }
        }
        let out = conn.take_output();
        if !out.is_empty() {
            socket.write_all(&out).await?;
        }
    }
    if let Some(mut stream) = live.take() {
        stream.finish();
    }
    Ok(())
}

async fn do_handshake(socket: &mut (impl AsyncRead + AsyncWrite + Unpin)) -> Result<(), PublisherError> {
    let mut c0c1 = [0u8; handshake::C0C1_LEN];
    socket.read_exact(&mut c0c1).await?;
    let uptime = crate::time::unix_ms() as u32;
    let reply = handshake::respond(&c0c1, uptime).ok_or(PublisherError::Handshake("not RTMP version 3"))?;
    socket.write_all(&reply).await?;
    let mut c2 = [0u8; handshake::C2_LEN];
    socket.read_exact(&mut c2).await?;
    Ok(())
}

/// Checks a publish against the templates and the live streams.
fn admit(state: &Arc<State>, peer: SocketAddr, request: &PublishRequest) -> Result<LiveStream, (&'static str, String)> {
    let target =
        rtmp::publish_target(&request.app, request.tc_url.as_deref(), &request.name).map_err(|e| ("NetStream.Publish.BadName", e))?;
    let chain = state.key_chain(&target.domain);
    if let Some(chain) = chain {
        let params = rtmp::publish_params(&request.app, request.tc_url.as_deref(), &request.name);
        if let Err(e) = chain.verify(&target.app, &target.stream, &params, crate::time::unix_secs()) {
            state.metrics().publishes_unauthorized.inc();
            return Err((
                "NetStream.Publish.Unauthorized",
                format!("{}/{}/{}: ingest URL validation failed: {e}", target.domain, target.app, target.stream),
            ));
        }
    }
    let (generation, template) = state.template(&target.domain, &target.app);
    let Some(template) = template else {
        return Err(("NetStream.Publish.Rejected", format!("no snapshot template for domain '{}' app '{}'", target.domain, target.app)));
    };
    let key = (target.domain.clone(), target.app.clone(), target.stream.clone());
    let info = state.streams().register(key, peer.to_string()).ok_or_else(|| {
        ("NetStream.Publish.BadName", format!("{}/{}/{} is already being published", target.domain, target.app, target.stream))
    })?;
    let (retry_tx, retry_rx) = channel();
    let id = StreamId { domain: target.domain, app: target.app, stream: target.stream };
    Ok(LiveStream {
        state: state.clone(),
        capture: StreamCapture::new(id, template, crate::time::unix_ms()),
        generation,
        info,
        parser: VideoTagParser::default(),
        retry_tx,
        retry_rx,
        warned_no_keyframe: false,
    })
}

/// A stream being published: its capture (the same as `livesnap capture`
/// runs), its entry in the live-stream registry, and its RTMP video parser.
struct LiveStream {
    state: Arc<State>,
    capture: StreamCapture,
    generation: u64,
    info: Arc<StreamInfo>,
    parser: VideoTagParser,
    /// Takes whose picture did not decode, sent back by the workers.
    retry_tx: Sender<Take>,
    retry_rx: Receiver<Take>,
    warned_no_keyframe: bool,
}

impl LiveStream {
    fn label(&self) -> String {
        self.capture.label()
    }

    fn on_video(&mut self, timestamp: u32, data: &[u8]) -> Result<(), PublisherError> {
        self.refresh_template();
        while let Ok(take) = self.retry_rx.try_recv() {
            self.capture.retry(take);
        }
        let event = match self.parser.parse(timestamp, data, 0) {
            Ok(Some(event)) => event,
            Ok(None) => return Ok(()),
            Err(e @ IngestError::UnsupportedCodec(_)) => return Err(PublisherError::Codec(e)),
            Err(e) => {
                self.state.metrics().input_errors.inc();
                tracing::warn!(stream = %self.label(), "{e}; skipped");
                return Ok(());
            }
        };
        if let VideoEvent::Unit(unit) = &event {
            self.state.metrics().frames.inc();
            let frames = self.info.frames.fetch_add(1, Ordering::Relaxed) + 1;
            if frames >= NO_KEYFRAME_WARNING && !self.warned_no_keyframe && !self.capture.has_started() && !unit.idr {
                self.warned_no_keyframe = true;
                tracing::warn!(stream = %self.label(), frames, "no keyframe (IDR) received yet: nothing can be decoded until one arrives");
            }
        }
        if let Some(job) = self.capture.push(event) {
            self.spawn(job);
        }
        Ok(())
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
        if template.is_none() {
            tracing::warn!(stream = %self.label(), "template removed; snapshots stop for this stream");
        }
        self.capture.set_template(template);
    }

    /// The stream ended: a snapshot still waiting for an IDR takes its due picture.
    fn finish(&mut self) {
        if let Some(job) = self.capture.finish() {
            self.spawn(job);
        }
    }

    /// Runs the job on the worker pool, never on the publisher's task.
    fn spawn(&self, job: SnapshotJob) {
        let state = self.state.clone();
        let info = self.info.clone();
        let retry = self.retry_tx.clone();
        let label = self.label();
        self.state.tasks().spawn(async move {
            let Ok(permit) = state.workers().clone().acquire_owned().await else { return };
            let _ = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let started = Instant::now();
                report(&state, &info, &retry, &label, job.run(state.pipeline()), started);
            })
            .await;
        });
    }
}

impl Drop for LiveStream {
    fn drop(&mut self) {
        self.state.streams().remove(&self.info.key);
    }
}

/// Counts and logs what became of a snapshot; a picture that did not
/// decode goes back to the publisher's task to try the next one.
fn report(state: &State, info: &StreamInfo, retry: &Sender<Take>, label: &str, snapshot: Snapshot, started: Instant) {
    match snapshot {
        Snapshot::Undecodable { take, error } => {
            let _ = retry.send(take);
            state.metrics().decode_errors.inc();
            tracing::warn!(stream = %label, due_ms = take.due_ms, "snapshot picture did not decode: {error}; trying the next one");
        }
        Snapshot::Stored { take, stream_time_ms, outcome, .. } => {
            state.metrics().snapshots.inc();
            state.metrics().observe_latency(started.elapsed());
            info.snapshots.fetch_add(1, Ordering::Relaxed);
            *info.last_snapshot_url.lock().unwrap() = Some(outcome.stored.url.clone());
            tracing::info!(stream = %label, seq = take.seq, stream_time_ms, object = %outcome.stored.object, bytes = outcome.bytes, "snapshot stored");
        }
        Snapshot::Failed { take, stream_time_ms, error, .. } => {
            info.errors.fetch_add(1, Ordering::Relaxed);
            if let Some((stage, component, kind)) = error.call_site() {
                state.metrics().component_error(&stage.to_string(), component, kind);
            }
            tracing::error!(stream = %label, seq = take.seq, stream_time_ms, "snapshot failed: {error}");
        }
    }
}
