//! Fewer wake-ups per publisher. Each of a publisher's frames would
//! otherwise wake the runtime on its own (30 a second at 30 fps), and at a
//! few hundred publishers those wake-ups, not the bytes, are most of what
//! ingest costs. Once a publisher's rate is known, the kernel is asked
//! (`SO_RCVLOWAT`) to report its socket readable only when about
//! `read_batch` worth of bytes wait, so one read takes several frames. The
//! bytes then wait about that long, which a snapshot every few seconds does
//! not notice. When the rate drops (a pause, the last commands of a stream,
//! a client waiting for an acknowledgement), a read that waits [`ReadBatching::patience`]
//! ends the batching until the next rate window; a FIN is reported at once.

use std::os::fd::RawFd;
use std::time::Duration;

/// The most bytes asked to wait: Linux grows the receive buffer to twice
/// the mark, and more than this saves no further wake-ups worth having.
const MOST: usize = 64 << 10;

/// A publisher socket's low-water mark, set from its rate.
pub(super) struct ReadBatching {
    /// The TCP socket under the publisher (also under TLS); it outlives this.
    fd: Option<RawFd>,
    batch: Duration,
    mark: usize,
    /// Whether a mark was ever set on this connection.
    started: bool,
}

impl ReadBatching {
    /// Batching for the socket `fd` (none: never batched) over `batch`.
    pub(super) fn new(fd: Option<RawFd>, batch: Duration) -> Self {
        Self { fd, batch, mark: 1, started: false }
    }

    /// Whether bytes may be waiting in the kernel unreported.
    pub(super) fn active(&self) -> bool {
        self.mark > 1
    }

    /// Whether a mark was ever set (the first comes before a whole window).
    pub(super) fn started(&self) -> bool {
        self.started
    }

    /// How long a batched read waits before the batching ends: a few
    /// batches, so a steady publisher's frames (bursts around the average)
    /// do not end it, and a quiet one's last bytes wait well under a second.
    pub(super) fn patience(&self) -> Duration {
        (self.batch * 4).max(Duration::from_millis(250))
    }

    /// Sets the mark for a publisher that sent `bytes` in `elapsed`.
    pub(super) fn adapt(&mut self, bytes: u64, elapsed: Duration) {
        self.set(low_water(bytes, elapsed, self.batch));
    }

    /// Back to reporting every byte (when the publisher went quiet).
    pub(super) fn off(&mut self) {
        self.set(1);
    }

    fn set(&mut self, mark: usize) {
        let Some(fd) = self.fd else { return };
        if mark == self.mark {
            return;
        }
        // Linux clamps the receive window to a mark whose buffer would not
        // fit the socket's receive buffer, which would throttle a publisher
        // far away: stay at a quarter of it.
        let mark = receive_buffer(fd).map_or(mark, |buffer| mark.min(buffer / 4).max(1));
        if set_low_water(fd, mark).is_ok() {
            self.mark = mark;
            self.started |= mark > 1;
        }
    }
}

/// Bytes that arrive in `batch` at the rate of `bytes` per `elapsed`
/// (at least 1, at most [`MOST`]).
fn low_water(bytes: u64, elapsed: Duration, batch: Duration) -> usize {
    if elapsed.is_zero() {
        return 1;
    }
    let per_batch = bytes as f64 * batch.as_secs_f64() / elapsed.as_secs_f64();
    (per_batch as usize).clamp(1, MOST)
}

fn receive_buffer(fd: RawFd) -> Option<usize> {
    let (mut value, mut len) = (0 as libc::c_int, size_of::<libc::c_int>() as libc::socklen_t);
    // SAFETY: as in `set_low_water`; writes one int into a live local.
    let r = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, (&raw mut value).cast(), &mut len) };
    (r == 0).then(|| usize::try_from(value).ok()).flatten()
}

fn set_low_water(fd: RawFd, mark: usize) -> std::io::Result<()> {
    let value = libc::c_int::try_from(mark).unwrap_or(libc::c_int::MAX);
    // SAFETY: `fd` is an open socket for the caller's lifetime; the option
    // reads one int from a live local.
    let r = unsafe {
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVLOWAT, (&raw const value).cast(), size_of::<libc::c_int>() as libc::socklen_t)
    };
    if r == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn the_mark_is_the_bytes_of_one_batch_within_bounds() {
        let (second, batch) = (Duration::from_secs(1), Duration::from_millis(100));
        // 2 Mbit/s (720p30) over 10 s: 25 KB per 100 ms.
        assert_eq!(low_water(2_500_000, Duration::from_secs(10), batch), 25_000);
        assert_eq!(low_water(4_000_000, second, batch), MOST);
        assert_eq!(low_water(5, second, batch), 1);
        assert_eq!(low_water(1_000_000, Duration::ZERO, batch), 1);
        assert_eq!(low_water(1_000_000, second, Duration::ZERO), 1);
    }

    fn mark_of(socket: &std::net::TcpStream) -> i32 {
        let (mut value, mut len) = (0 as libc::c_int, size_of::<libc::c_int>() as libc::socklen_t);
        // SAFETY: reads one int into a live local.
        let r = unsafe { libc::getsockopt(socket.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVLOWAT, (&raw mut value).cast(), &mut len) };
        assert_eq!(r, 0);
        value
    }

    #[test]
    fn the_socket_gets_the_mark_and_loses_it() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let mut batching = ReadBatching::new(Some(server.as_raw_fd()), Duration::from_millis(100));
        batching.adapt(2_500_000, Duration::from_secs(10));
        assert!(batching.active() && batching.started());
        let buffer = receive_buffer(server.as_raw_fd()).unwrap();
        assert_eq!(mark_of(&server) as usize, 25_000.min(buffer / 4));
        // A rate beyond the buffer gets a quarter of it, not a clamped window.
        batching.adapt(400_000_000, Duration::from_secs(10));
        assert_eq!(mark_of(&server) as usize, MOST.min(buffer / 4));
        batching.off();
        assert!(!batching.active() && batching.started());
        assert_eq!(mark_of(&server), 1);
        let mut unbatched = ReadBatching::new(None, Duration::from_millis(100));
        unbatched.adapt(2_500_000, Duration::from_secs(10));
        assert!(!unbatched.active());
    }
}
