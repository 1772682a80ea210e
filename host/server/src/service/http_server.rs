//! The HTTP accept loop: hyper over our own listener, so connections are
//! capped (in total and per client address), closed when their headers do
//! not arrive in time or they stall, and drained at shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use crate::config::http::HttpSettings;

/// Largest read buffer of a connection, so the most its headers can take.
const MAX_BUF: usize = 64 << 10;

use crate::limiter::{ConnectionLimiter, ConnectionPermit, fd_budget_per_listener};

/// Serves `router` on `listener` until `cancel`, then waits for the
/// connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: HttpSettings,
    tls: Option<Arc<super::tls::Tls>>,
    cancel: CancellationToken,
) {
    let budget = fd_budget_per_listener();
    let (total, per_ip) = settings.connection_caps(budget);
    let idle = settings.idle_timeout();
    tracing::info!(
        max_connections = total,
        max_connections_per_ip = per_ip,
        header_read_timeout_secs = settings.header_read_timeout().as_secs(),
        fd_budget = budget,
        "HTTP connection limits"
    );
    let mut builder = http1::Builder::new();
    // A 64 KiB buffer bounds what a connection's headers can hold (hyper's
    // default is ~400 KiB, times every slow connection).
    builder.timer(TokioTimer::new()).header_read_timeout(settings.header_read_timeout()).max_buf_size(MAX_BUF);
    let limits = ConnectionLimiter::new(total, per_ip);
    let refused = Throttled::default();
    let connections = TaskTracker::new();
    loop {
        let (socket, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, most likely: give connections time to close.
                    refused.warn(|n| tracing::warn!(times = n, "accepting an HTTP connection failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = limits.admit(peer.ip()) else {
            // Over a cap: closed before hyper reads a byte.
            refused.warn(|n| tracing::warn!(peer = %peer.ip(), times = n, "HTTP connection refused: connection cap reached"));
            drop(socket);
            continue;
        };
        let _ = socket.set_nodelay(true);
        let (router, builder, cancel) = (router.clone(), builder.clone(), cancel.clone());
        match tls.as_ref().map(|t| t.acceptor()) {
            None => {
                connections.spawn(connection(socket, peer, router, builder, idle, cancel, slot));
            }
            Some(acceptor) => {
                // The handshake gets the same time as a request's headers.
                let handshake = settings.header_read_timeout();
                connections.spawn(async move {
                    match tokio::time::timeout(handshake, acceptor.accept(socket)).await {
                        Ok(Ok(stream)) => connection(stream, peer, router, builder, idle, cancel, slot).await,
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    socket: S,
    peer: SocketAddr,
    router: Router,
    builder: http1::Builder,
    idle: Duration,
    cancel: CancellationToken,
    _slot: ConnectionPermit,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked { inner: socket, activity: activity.clone() });
    let service = PeerService { router: TowerToHyperService::new(router), peer, activity: activity.clone() };
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(peer = %peer, "HTTP connection ended: {e}");
                }
                return;
            }
            _ = cancel.cancelled(), if !draining => {
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
            _ = activity.idle_for(idle) => {
                tracing::debug!(peer = %peer, "closing a stalled HTTP connection");
                return;
            }
        }
    }
}

/// A warning logged at most every 10 s, with how often it happened.
#[derive(Default)]
struct Throttled {
    last: Mutex<Option<Instant>>,
    count: AtomicU64,
}

impl Throttled {
    fn warn(&self, log: impl FnOnce(u64)) {
        let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last.lock().unwrap();
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            *last = Some(Instant::now());
            self.count.store(0, Ordering::Relaxed);
            log(n);
        }
    }
}

/// When a connection last moved a byte, and whether a request is being handled.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    busy: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self { start: Instant::now(), last_ms: AtomicU64::new(0), busy: AtomicUsize::new(0) }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// Resolves once nothing moved for `idle` while no request was handled.
    async fn idle_for(&self, idle: Duration) {
        loop {
            tokio::time::sleep_until((self.last() + idle).into()).await;
            if self.busy.load(Ordering::Acquire) > 0 {
                // A handler may compute for a while; its own limits apply.
                self.touch();
            } else if self.last() + idle <= Instant::now() {
                return;
            }
        }
    }
}

/// Marks a request as being handled until dropped.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The socket, noting every byte moved.
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.touch();
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        result
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The router, with the peer address as `ConnectInfo` and the request
/// marked busy while its handler runs.
#[derive(Clone)]
struct PeerService {
    router: TowerToHyperService<Router>,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

type ResponseFuture = Pin<Box<dyn Future<Output = Result<axum::response::Response, Infallible>> + Send>>;

impl hyper::service::Service<hyper::Request<Incoming>> for PeerService {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, mut request: hyper::Request<Incoming>) -> Self::Future {
        request.extensions_mut().insert(ConnectInfo(self.peer));
        self.activity.busy.fetch_add(1, Ordering::AcqRel);
        let busy = Busy(self.activity.clone());
        let response = hyper::service::Service::call(&self.router, request);
        Box::pin(async move {
            let response = response.await;
            drop(busy);
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_are_clamped_to_the_descriptor_budget() {
        let s = HttpSettings::default();
        assert_eq!(s.connection_caps(96), (96, 64));
        assert_eq!(s.connection_caps(1 << 20), (1024, 64));
        let tiny = HttpSettings { max_connections: 0, max_connections_per_ip: 500, ..s };
        assert_eq!(tiny.connection_caps(96), (1, 1));
    }
}
