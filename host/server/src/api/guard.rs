//! What the API holds against its clients: failed authentications per
//! address, signatures already used, and how many large bodies it reads at
//! once and for how long.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use tokio::sync::Semaphore;

use super::MAX_BODY;
use super::auth::{Policy, ReplayCache};
use super::error::ApiError;
use crate::config::http::HttpSettings;
use crate::limiter::FailureLimiter;

/// Signatures remembered at most (state-changing requests in 15 minutes).
const REPLAY_CAPACITY: usize = 100_000;

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
    pub failures: Arc<FailureLimiter>,
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
            failures: Arc::new(FailureLimiter::new(settings.max_auth_failures, settings.auth_failure_window())),
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
