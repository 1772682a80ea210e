//! `[http]` of the runtime config: limits of the HTTP server and the API
//! (the server crate applies them).

use std::time::Duration;

use serde::Deserialize;

/// `[http]` of the runtime config: limits of the HTTP server and the API.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// A connection must send a request's headers within this many seconds
    /// of connecting or of its previous response (so it also bounds how
    /// long a keep-alive connection may wait for its next request).
    pub header_read_timeout_secs: u64,
    /// A connection that moves no byte for this long while none of its
    /// requests is being handled (a client that stopped reading) is closed.
    pub idle_timeout_secs: u64,
    /// An API request body (and a `[[trigger.http]]` one) must arrive within this.
    pub body_read_timeout_secs: u64,
    /// Open HTTP connections at most (clamped to the descriptor budget,
    /// see the file descriptor budget); more are closed at once.
    pub max_connections: usize,
    /// Open HTTP connections per client address (IPv6: per /64) at most.
    pub max_connections_per_ip: usize,
    /// Module uploads (bodies over 64 KiB) read at the same time at most;
    /// bounds the memory they can take.
    pub max_large_body_reads: usize,
    /// Accept `X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD` on a request with a
    /// body (the body is then not covered by the signature).
    pub allow_unsigned_payload: bool,
    /// Failed authentications from one client address within
    /// `auth_failure_window_secs` before it gets 429 for the rest of the
    /// window; 0 turns the limit off.
    pub max_auth_failures: u32,
    /// The window of `max_auth_failures`.
    pub auth_failure_window_secs: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            body_read_timeout_secs: 30,
            max_connections: 1024,
            max_connections_per_ip: 64,
            max_large_body_reads: 4,
            allow_unsigned_payload: false,
            max_auth_failures: 20,
            auth_failure_window_secs: 60,
        }
    }
}

impl HttpSettings {
    /// [`Self::header_read_timeout_secs`], at least 1 s.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs.max(1))
    }

    /// [`Self::idle_timeout_secs`], at least 1 s.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1))
    }

    /// [`Self::body_read_timeout_secs`], at least 1 s.
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_secs(self.body_read_timeout_secs.max(1))
    }

    /// [`Self::auth_failure_window_secs`], at least 1 s.
    pub fn auth_failure_window(&self) -> Duration {
        Duration::from_secs(self.auth_failure_window_secs.max(1))
    }

    /// (total, per address) connection caps, clamped to `budget` descriptors.
    pub fn connection_caps(&self, budget: usize) -> (usize, usize) {
        let total = self.max_connections.clamp(1, budget.max(1));
        (total, self.max_connections_per_ip.clamp(1, total))
    }
}
