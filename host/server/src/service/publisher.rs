//! One RTMP publisher: handshake, publish checks, and its stream's session.
//! Decoding and the functions run on the bounded worker pool, never on this
//! task, so a slow or stuck publisher holds up nobody else.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::live::{LiveStream, Refusal};
use super::read_batching::ReadBatching;
use crate::app::State;
use crate::config::runtime::RtmpLimits;
use crate::ingest::IngestError;
use crate::ingest::flv::VideoTagParser;
use crate::ingest::rtmp::chunk::{Limits, SharedBudget};
use crate::ingest::rtmp::{self, Connection, Event, PublishRequest, RtmpError, handshake};
use crate::runtime::bindings::types::StreamId;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The window over which a publisher's data rate is checked.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// When a new publisher's rate is first used for read batching.
const FIRST_MARK_AFTER: Duration = Duration::from_secs(3);

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

/// Serves one connection to its end; every outcome is logged here. `fd`
/// is the TCP socket under `socket`, for read batching.
pub(super) async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    socket: S,
    fd: Option<RawFd>,
    peer: SocketAddr,
    state: Arc<State>,
    budget: Arc<SharedBudget>,
    cancel: CancellationToken,
) {
    let mut stream_name = None;
    let result = tokio::select! {
        r = publish(socket, fd, peer, &state, budget, &mut stream_name) => r,
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
    fd: Option<RawFd>,
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
    let mut live: Option<Publisher> = None;
    let mut window = RateWindow::new();
    let mut batching = ReadBatching::new(fd, limits.read_batch);
    loop {
        let n = read_more(&mut socket, &mut buf, &limits, live.is_none().then_some(publish_deadline), &mut batching).await?;
        if n == 0 {
            break;
        }
        window.count(n, live.is_some(), &limits, &mut batching)?;
        // Fed until nothing whole is left: feed stops after a publish so the
        // media behind it is read once the publish is decided.
        loop {
            let (consumed, events) = conn.feed(&buf)?;
            buf.drain(..consumed);
            if consumed == 0 {
                break;
            }
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
                    Event::Audio { format, bytes, .. } => {
                        if let Some(stream) = live.as_ref() {
                            stream.live.on_audio(format, bytes);
                        }
                    }
                    Event::Unpublished => {
                        if let Some(mut stream) = live.take() {
                            stream.finish();
                        }
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

/// Reads what arrives: before its publish is accepted a connection has a
/// deadline (`publish_deadline`); after, it may be idle for at most the
/// idle timeout.
async fn read_more(
    socket: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
    limits: &RtmpLimits,
    publish_deadline: Option<tokio::time::Instant>,
    batching: &mut ReadBatching,
) -> Result<usize, PublisherError> {
    let idle = tokio::time::Instant::now() + limits.idle_timeout;
    if batching.active() {
        // Bytes under the low-water mark are not reported: a publisher
        // that went quieter is read as its bytes come again.
        if let Ok(r) = tokio::time::timeout(batching.patience(), socket.read_buf(buf)).await {
            return Ok(r?);
        }
        batching.off();
    }
    match tokio::time::timeout_at(publish_deadline.map_or(idle, |d| d.min(idle)), socket.read_buf(buf)).await {
        Ok(r) => Ok(r?),
        Err(_) if publish_deadline.is_some_and(|d| tokio::time::Instant::now() >= d) => {
            Err(PublisherError::Timeout(format!("no publish within {} s of connecting", limits.publish_timeout.as_secs())))
        }
        Err(_) => Err(PublisherError::Timeout(format!("no data for {} s", limits.idle_timeout.as_secs()))),
    }
}

/// Bytes received in the current rate window: a live publisher must send
/// at least the minimum per window.
struct RateWindow {
    start: tokio::time::Instant,
    bytes: u64,
}

impl RateWindow {
    fn new() -> Self {
        Self { start: tokio::time::Instant::now(), bytes: 0 }
    }

    /// Counts `n` bytes; at the end of a window, checks a live publisher's
    /// rate and batches its reads by it.
    fn count(&mut self, n: usize, live: bool, limits: &RtmpLimits, batching: &mut ReadBatching) -> Result<(), PublisherError> {
        self.bytes += n as u64;
        let elapsed = self.start.elapsed();
        if elapsed < RATE_WINDOW {
            // The first mark a few seconds in, not a whole window later.
            if live && !batching.started() && elapsed >= FIRST_MARK_AFTER {
                batching.adapt(self.bytes, elapsed);
            }
            return Ok(());
        }
        if live && self.bytes < limits.min_bytes_per_10s {
            return Err(PublisherError::Timeout(format!(
                "sent {} bytes in {} s, below the minimum of {} per 10 s",
                self.bytes,
                self.start.elapsed().as_secs(),
                limits.min_bytes_per_10s
            )));
        }
        if live {
            batching.adapt(self.bytes, self.start.elapsed());
        }
        *self = Self::new();
        Ok(())
    }
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

/// Checks a publish against the key chain, the templates and the live
/// streams; the stream it starts.
fn admit(state: &Arc<State>, peer: SocketAddr, request: &PublishRequest) -> Result<Publisher, (&'static str, String)> {
    let target =
        rtmp::publish_target(&request.app, request.tc_url.as_deref(), &request.name).map_err(|e| ("NetStream.Publish.BadName", e))?;
    if let Some(chain) = state.key_chain(&target.domain) {
        let params = rtmp::publish_params(&request.app, request.tc_url.as_deref(), &request.name);
        if let Err(e) = chain.verify(&target.app, &target.stream, &params, crate::time::unix_secs()) {
            state.metrics().publishes_unauthorized.inc();
            return Err((
                "NetStream.Publish.Unauthorized",
                format!("{}/{}/{}: ingest URL validation failed: {e}", target.domain, target.app, target.stream),
            ));
        }
    }
    let id = StreamId { domain: target.domain, app: target.app, stream: target.stream };
    match LiveStream::start(state, id, peer.to_string()) {
        Ok(live) => Ok(Publisher { live, parser: VideoTagParser::default() }),
        Err(Refusal::NoTemplate(why) | Refusal::NotNow(why)) => Err(("NetStream.Publish.Rejected", why)),
        Err(Refusal::AlreadyLive(why)) => Err(("NetStream.Publish.BadName", why)),
    }
}

/// A publisher's stream and the parser of its RTMP video messages.
struct Publisher {
    live: LiveStream,
    parser: VideoTagParser,
}

impl Publisher {
    fn label(&self) -> String {
        self.live.label()
    }

    fn on_video(&mut self, timestamp: u32, data: &[u8]) -> Result<(), PublisherError> {
        match self.parser.parse(timestamp, data, 0) {
            Ok(Some(event)) => self.live.on_event(event),
            Ok(None) => {}
            Err(e @ IngestError::UnsupportedCodec(_)) => return Err(PublisherError::Codec(e)),
            Err(e) => self.live.skipped(&e),
        }
        Ok(())
    }

    fn finish(&mut self) {
        self.live.finish();
    }
}
