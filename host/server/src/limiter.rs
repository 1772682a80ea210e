//! Connection caps per listener: a total and one per client address (IPv6:
//! per /64), so one client cannot take every connection, and the file
//! descriptor budget the caps are clamped to; failed sign-ins per address
//! (the API's and the console's).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::OnceLock;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Counts open connections against a total and a per-client cap.
#[derive(Debug)]
pub struct ConnectionLimiter {
    total: usize,
    per_client: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitHit {
    /// The listener holds its maximum.
    #[error("the server holds its maximum of {0} connections")]
    Total(usize),
    /// This client holds its maximum.
    #[error("this client holds its maximum of {0} connections")]
    PerClient(usize),
}

/// An admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct ConnectionPermit {
    limiter: Arc<ConnectionLimiter>,
    ip: IpAddr,
}

impl ConnectionLimiter {
    /// At most `total` connections, `per_client` from one address.
    pub fn new(total: usize, per_client: usize) -> Arc<Self> {
        Arc::new(Self { total: total.max(1), per_client: per_client.max(1), open: Mutex::default() })
    }

    /// Admits a connection from `ip`, or says which cap it hit.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, LimitHit> {
        let ip = client_key(ip);
        let mut open = self.open.lock().unwrap();
        if open.0 >= self.total {
            return Err(LimitHit::Total(self.total));
        }
        let n = open.1.entry(ip).or_default();
        if *n >= self.per_client {
            return Err(LimitHit::PerClient(self.per_client));
        }
        *n += 1;
        open.0 += 1;
        Ok(ConnectionPermit { limiter: self.clone(), ip })
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut open = self.limiter.open.lock().unwrap();
        open.0 -= 1;
        if let Some(n) = open.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.ip);
            }
        }
    }
}

/// Descriptors kept for everything but the two listeners' connections: the
/// state database, component cache files, callback and S3 connections.
const RESERVED_FDS: u64 = 64;

/// How many connections each listener (HTTP, RTMP) may hold open: half of
/// what the process may open after a reserve. The first call raises the
/// soft `RLIMIT_NOFILE` to the hard limit.
pub fn fd_budget_per_listener() -> usize {
    static BUDGET: OnceLock<usize> = OnceLock::new();
    *BUDGET.get_or_init(|| budget_for(raise_nofile_limit()))
}

fn budget_for(nofile: u64) -> usize {
    let reserve = RESERVED_FDS.max(nofile / 8);
    usize::try_from(nofile.saturating_sub(reserve) / 2).unwrap_or(usize::MAX).max(1)
}

/// Raises the soft descriptor limit to the hard one; returns the soft limit
/// in effect.
fn raise_nofile_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes into `limit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        // SAFETY: setrlimit only reads `raised`.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        } else {
            tracing::warn!(soft = limit.rlim_cur, hard = limit.rlim_max, "could not raise the open-file limit");
        }
    }
    if limit.rlim_cur == libc::RLIM_INFINITY { 1 << 20 } else { limit.rlim_cur }
}

/// The address connection and failure limits count under: IPv6 clients
/// get a /64 each, as one host usually does.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// Client addresses whose failures are counted at most; past that, new
/// ones are not counted (rather than blocking addresses that never failed).
const TRACKED_CLIENTS: usize = 65_536;

/// Counts failed authentications per client address in fixed windows.
pub struct FailureLimiter {
    max: u32,
    window: Duration,
    clients: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl FailureLimiter {
    /// `max` failures per `window`; 0 turns the limit off.
    pub fn new(max: u32, window: Duration) -> Self {
        Self { max, window, clients: Mutex::new(HashMap::new()) }
    }

    /// How long `client` must still wait, if it failed too often.
    pub fn blocked(&self, client: IpAddr, now: Instant) -> Option<Duration> {
        if self.max == 0 {
            return None;
        }
        let clients = self.clients.lock().unwrap();
        let (start, count) = clients.get(&client)?;
        let left = (*start + self.window).checked_duration_since(now)?;
        (*count >= self.max && !left.is_zero()).then_some(left)
    }

    /// Counts a failure; true when it is the one that blocks `client`.
    pub fn failed(&self, client: IpAddr, now: Instant) -> bool {
        if self.max == 0 {
            return false;
        }
        let mut clients = self.clients.lock().unwrap();
        if !clients.contains_key(&client) && clients.len() >= TRACKED_CLIENTS {
            clients.retain(|_, (start, _)| now.duration_since(*start) < self.window);
            if clients.len() >= TRACKED_CLIENTS {
                return false;
            }
        }
        let entry = clients.entry(client).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 == self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_and_free_on_drop() {
        let l = ConnectionLimiter::new(3, 2);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let p1 = l.admit(a).unwrap();
        let _p2 = l.admit(a).unwrap();
        assert_eq!(l.admit(a).unwrap_err(), LimitHit::PerClient(2));
        let _p3 = l.admit(b).unwrap();
        assert_eq!(l.admit(b).unwrap_err(), LimitHit::Total(3));
        drop(p1);
        assert!(l.admit(a).is_ok());
        // IPv6 clients count per /64; IPv4-mapped as IPv4.
        let l = ConnectionLimiter::new(10, 1);
        let _v6 = l.admit("2001:db8::1".parse().unwrap()).unwrap();
        assert!(l.admit("2001:db8::2".parse().unwrap()).is_err());
        assert_eq!(client_key("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn the_descriptor_budget_is_half_of_what_is_left_after_a_reserve() {
        assert_eq!(budget_for(256), 96);
        assert_eq!(budget_for(1024), 448);
        assert_eq!(budget_for(10), 1);
    }

    #[test]
    fn failures_block_an_address_for_the_rest_of_its_window() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60));
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.1".parse().unwrap());
        let t0 = Instant::now();
        assert!(!limiter.failed(a, t0));
        assert!(!limiter.failed(a, t0 + Duration::from_secs(1)));
        assert_eq!(limiter.blocked(a, t0 + Duration::from_secs(2)), None);
        assert!(limiter.failed(a, t0 + Duration::from_secs(2)), "the third failure blocks");
        assert_eq!(limiter.blocked(a, t0 + Duration::from_secs(10)), Some(Duration::from_secs(50)));
        assert_eq!(limiter.blocked(b, t0 + Duration::from_secs(10)), None, "other addresses are not affected");
        assert_eq!(limiter.blocked(a, t0 + Duration::from_secs(60)), None, "the window passed");
        assert!(!limiter.failed(a, t0 + Duration::from_secs(61)), "a new window starts");
        assert_eq!(FailureLimiter::new(0, Duration::from_secs(60)).blocked(a, t0), None);
    }
}
