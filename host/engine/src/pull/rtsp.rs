//! RTSP through retina, which is async: a current-thread tokio runtime on a
//! thread of its own plays the session and hands [`VideoEvent`]s over a
//! bounded channel, so the demuxer is blocking like the others.
//!
//! The server's address is vetted by the egress policy and retina is given
//! the URL with that IP address as its host (so it connects exactly there),
//! without userinfo (the credentials go to retina's [`Credentials`]) and
//! without fragment. Transport is TCP-interleaved; the fragment `#udp`
//! selects UDP.

use std::net::SocketAddr;
use std::sync::mpsc::{RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use retina::client::{
    Credentials, PlayOptions, Session, SessionOptions, SetupOptions, TcpTransportOptions, Transport, UdpTransportOptions,
};
use retina::codec::{CodecItem, FrameFormat, ParametersRef, VideoParametersCodec};

use super::pump::{Pump, Taken};
use super::{POLL, PullError, PullOptions, Target};
use crate::ingest::h264::{self, START_CODE};
use crate::ingest::{AccessUnit, Demuxer, IngestError, VideoEvent};

/// Events buffered between the RTSP thread and the demuxer.
const DEPTH: usize = 64;

pub(super) fn open(target: Target, options: &PullOptions) -> Result<Box<dyn Demuxer + Send>, PullError> {
    let udp = target.url.fragment().is_some_and(|f| f.eq_ignore_ascii_case("udp") || f.eq_ignore_ascii_case("transport=udp"));
    let addr = target.vetted(options)?[0];
    let (url, creds) = retina_url(&target, addr)?;
    let (tx, pump) = Pump::new(DEPTH, options, &target);
    let (ready_tx, ready_rx) = sync_channel(1);
    let (thread_target, thread_options) = (target.clone(), options.clone());
    thread::Builder::new()
        .name("pull-rtsp".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready_tx.send(Err(thread_target.io(e)));
                    return;
                }
            };
            let player = Player { target: thread_target, options: thread_options, tx };
            runtime.block_on(player.run(url, creds, udp, ready_tx));
        })
        .map_err(|e| target.io(e))?;
    // The thread answers within the connect and read timeouts; still, look
    // at the cancel flag meanwhile.
    loop {
        match ready_rx.recv_timeout(POLL) {
            Ok(Ok(())) => break,
            Ok(Err(e)) => return Err(e),
            Err(_) if options.cancelled() => return Err(target.protocol("cancelled")),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Err(target.protocol("the RTSP session ended at once")),
        }
    }
    tracing::info!(url = %target.redacted, transport = if udp { "udp" } else { "tcp" }, "RTSP playing");
    Ok(Box::new(RtspPull { pump, position: 0 }))
}

/// The URL retina gets (vetted IP as host, no userinfo, no fragment) and
/// the credentials of the URL's userinfo.
fn retina_url(target: &Target, addr: SocketAddr) -> Result<(url::Url, Option<Credentials>), PullError> {
    let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
    let creds = (!target.url.username().is_empty())
        .then(|| Credentials { username: decode(target.url.username()), password: decode(target.url.password().unwrap_or_default()) });
    let mut url = target.url.clone();
    url.set_fragment(None);
    let rewritten = url
        .set_username("")
        .and_then(|()| url.set_password(None))
        .and_then(|()| url.set_ip_host(addr.ip()))
        .and_then(|()| url.set_port(Some(addr.port())));
    rewritten.map_err(|()| target.bad("cannot rewrite the URL to the vetted address"))?;
    Ok((url, creds))
}

/// The RTSP thread's side.
struct Player {
    target: Target,
    options: PullOptions,
    tx: SyncSender<Result<VideoEvent, PullError>>,
}

impl Player {
    async fn run(self, url: url::Url, creds: Option<Credentials>, udp: bool, ready: SyncSender<Result<(), PullError>>) {
        let (mut demuxed, stream_i) = match self.start(url, creds, udp).await {
            Ok(playing) => {
                let _ = ready.send(Ok(()));
                playing
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let mut sets: Option<Vec<u8>> = None;
        let mut silent_since = Instant::now();
        loop {
            if self.options.cancelled() {
                return;
            }
            let item = match tokio::time::timeout(POLL, demuxed.next()).await {
                Err(_) if silent_since.elapsed() >= self.options.read_timeout => {
                    let secs = self.options.read_timeout.as_secs_f64();
                    let _ = self.hand_over(Err(self.target.timeout(format!("no data for {secs} s")))).await;
                    return;
                }
                Err(_) => continue,
                Ok(None) => return,
                Ok(Some(Err(e))) => {
                    let _ = self.hand_over(Err(self.error(&e))).await;
                    return;
                }
                Ok(Some(Ok(item))) => item,
            };
            silent_since = Instant::now();
            let CodecItem::VideoFrame(frame) = item else { continue };
            if frame.stream_id() != stream_i {
                continue;
            }
            if sets.is_none() || frame.has_new_parameters() {
                let new = parameter_sets(demuxed.streams()[stream_i].parameters());
                if new.is_some() && new != sets {
                    sets = new;
                    if !self.hand_over(Ok(VideoEvent::ParameterSets(sets.clone().unwrap_or_default()))).await {
                        return;
                    }
                }
            }
            let ts = frame.timestamp();
            let pts_ms = (ts.elapsed().max(0) as u64).saturating_mul(1000) / u64::from(ts.clock_rate().get());
            let event = match h264::avcc_to_annexb(frame.data(), 4, 0) {
                Ok((data, _)) if data.is_empty() => continue,
                // RTP carries presentation times only.
                Ok((data, idr)) => Ok(VideoEvent::Unit(AccessUnit { dts_ms: pts_ms, pts_ms, idr, data })),
                Err(e) => Err(self.target.protocol(e)),
            };
            let failed = event.is_err();
            if !self.hand_over(event).await || failed {
                return;
            }
        }
    }

    /// DESCRIBE, SETUP of the first H.264 video stream, PLAY.
    async fn start(&self, url: url::Url, creds: Option<Credentials>, udp: bool) -> Result<(retina::client::Demuxed, usize), PullError> {
        let session_options = SessionOptions::default().creds(creds).user_agent(concat!("livesnap/", env!("CARGO_PKG_VERSION")).into());
        let mut session =
            self.bounded(self.options.connect_timeout + self.options.read_timeout, Session::describe(url, session_options)).await?;
        let stream_i =
            session.streams().iter().position(|s| s.media() == "video" && s.encoding_name().eq_ignore_ascii_case("h264")).ok_or_else(
                || {
                    let found: Vec<String> = session.streams().iter().map(|s| format!("{}/{}", s.media(), s.encoding_name())).collect();
                    self.target.protocol(format!("no H.264 video stream (the server offers {})", found.join(", ")))
                },
            )?;
        let transport = if udp { Transport::Udp(UdpTransportOptions::default()) } else { Transport::Tcp(TcpTransportOptions::default()) };
        let setup = SetupOptions::default().transport(transport).frame_format(FrameFormat::MP4);
        self.bounded(self.options.read_timeout, session.setup(stream_i, setup)).await?;
        let playing = self.bounded(self.options.read_timeout, session.play(PlayOptions::default())).await?;
        let demuxed = playing.demuxed().map_err(|e| self.error(&e))?;
        Ok((demuxed, stream_i))
    }

    async fn bounded<T>(&self, limit: Duration, f: impl Future<Output = Result<T, retina::Error>>) -> Result<T, PullError> {
        match tokio::time::timeout(limit, f).await {
            Ok(r) => r.map_err(|e| self.error(&e)),
            Err(_) => Err(self.target.timeout(format!("no answer within {} s", limit.as_secs_f64()))),
        }
    }

    /// Hands an event to the demuxer, waiting while its buffer is full;
    /// false once the demuxer is gone or cancelled.
    async fn hand_over(&self, mut item: Result<VideoEvent, PullError>) -> bool {
        loop {
            match self.tx.try_send(item) {
                Ok(()) => return true,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(back)) => {
                    if self.options.cancelled() {
                        return false;
                    }
                    item = back;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// A retina error as a pull error: the first line of its text (the rest
    /// is connection context), secrets scrubbed.
    fn error(&self, e: &retina::Error) -> PullError {
        let text = e.to_string();
        let first = text.lines().next().unwrap_or_default();
        let (url, detail) = (self.target.redacted.clone(), self.target.scrub(first));
        match e.status_code() {
            Some(401 | 403) => PullError::Unauthorized { url, detail },
            Some(404) => PullError::NotFound { url, detail },
            _ if first.starts_with("Unable to connect") => PullError::Connect { url, detail },
            _ => PullError::Protocol { url, detail },
        }
    }
}

/// SPS and PPS as Annex-B, from the stream's parameters.
fn parameter_sets(params: Option<ParametersRef<'_>>) -> Option<Vec<u8>> {
    let Some(ParametersRef::Video(v)) = params else { return None };
    match v.codec_params() {
        VideoParametersCodec::H264 { sps, pps } => Some([&START_CODE[..], sps, &START_CODE[..], pps].concat()),
        _ => None,
    }
}

/// The demuxer's side.
struct RtspPull {
    pump: Pump<VideoEvent>,
    position: u64,
}

impl Demuxer for RtspPull {
    fn next_event(&mut self) -> Result<Option<VideoEvent>, IngestError> {
        match self.pump.take() {
            Ok(Taken::Item(e)) => {
                self.position += match &e {
                    VideoEvent::ParameterSets(p) => p.len(),
                    VideoEvent::Unit(u) => u.data.len(),
                } as u64;
                Ok(Some(e))
            }
            Ok(Taken::End | Taken::Cancelled) => Ok(None),
            Err(e) => Err(e.into_ingest()),
        }
    }

    fn take_warnings(&mut self) -> Vec<IngestError> {
        Vec::new()
    }

    fn position(&self) -> u64 {
        self.position
    }
}
