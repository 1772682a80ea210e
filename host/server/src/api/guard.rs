//! What the API holds against its clients: failed authentications per
//! address, signatures already used, and how many large bodies it reads at
//! once and for how long.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use tokio::sync::Semaphore;

use super::MAX_BODY;
use super::auth::{Policy, ReplayCache};
use super::error::ApiError;
use crate::config::http::HttpSettings;

/// Signatures remembered at most (state-changing requests in 15 minutes).
const REPLAY_CAPACITY: usize = 100_000;
/// Client addresses whose failures are counted at most; past that, new
/// ones are not counted (rather than blocking addresses that never failed).
const TRACKED_CLIENTS: usize = 65_536;

/// Shared by the API's requests.
pub struct Guard {
    /// Signature checks as the operator configured them.
    pub policy: Policy,
    /// A request body must arrive within this.
    pub body_timeout: Duration,
    /// Module uploads read at once.
    pub uploads: Semaphore,
    /// Large `[[trigger.http]]` bodies read at once.
    pub trigger_bodies: Semaphore,
    /// Signatures of state-changing requests already served.
    pub replays: ReplayCache,
    /// Failed authentications per client address.
    pub failures: FailureLimiter,
}

impl Guard {
    /// From the runtime config's `[http]`.
    pub fn new(settings: &HttpSettings) -> Self {
        let large = settings.max_large_body_reads.max(1);
        Self {
            policy: Policy { allow_unsigned_payload: settings.allow_unsigned_payload },
            body_timeout: settings.body_read_timeout(),
            uploads: Semaphore::new(large),
            trigger_bodies: Semaphore::new(large),
            replays: ReplayCache::new(REPLAY_CAPACITY),
            failures: FailureLimiter::new(settings.max_auth_failures, settings.auth_failure_window()),
        }
    }

    /// Reads a body of at most `limit` bytes within the body timeout; one
    /// that may be over [`MAX_BODY`] first waits for a place in `large`.
    pub async fn read_body(&self, body: Body, limit: usize, large: &Semaphore) -> Result<Bytes, ApiError> {
        let too_large = || ApiError::too_large(format!("the request body is larger than {limit} bytes"));
        // Content-Length, or 0 without a body; none when chunked.
        let declared = body.size_hint().upper();
        let deadline = tokio::time::Instant::now() + self.body_timeout;
        if declared.is_some_and(|n| n > limit as u64) {
            // A little over: read it to the end, discarding, so the client
            // (which is still sending) gets to read the 413 instead of a reset.
            if declared.is_some_and(|n| n <= (limit + DRAIN_MAX) as u64) {
                let _ = tokio::time::timeout_at(deadline, drain(body)).await;
            }
            return Err(too_large());
        }
        let _place = if limit > MAX_BODY && declared.is_none_or(|n| n > MAX_BODY as u64) {
            match tokio::time::timeout_at(deadline, large.acquire()).await {
                Ok(Ok(place)) => Some(place),
                _ => return Err(ApiError::busy("too many large request bodies are being received; retry later")),
            }
        } else {
            None
        };
        match tokio::time::timeout_at(deadline, axum::body::to_bytes(body, limit)).await {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(e)) if over_limit(&e) => Err(too_large()),
            Ok(Err(e)) => Err(ApiError::invalid(format!("reading the request body failed: {e}"))),
            Err(_) => Err(ApiError::timeout(format!("the request body did not arrive within {} s", self.body_timeout.as_secs()))),
        }
    }
}

/// Bytes past a route's limit that are still read (and dropped) before a 413.
const DRAIN_MAX: usize = 1 << 20;

async fn drain(mut body: Body) {
    use http_body_util::BodyExt;
    while let Some(Ok(_)) = body.frame().await {}
}

fn over_limit(e: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

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
