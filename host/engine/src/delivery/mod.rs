//! Callback delivery through a durable outbox: every callback is recorded
//! before its first attempt, retried with exponential backoff and jitter on
//! connection errors, timeouts and non-2xx answers, kept across restarts,
//! and given up (marked failed, visible through the API) after a bounded
//! number of attempts or age. Each carries an `Idempotency-Key` so receivers
//! can drop duplicates of at-least-once delivery.
//!
//! Every destination passes the egress policy after DNS and is connected to
//! at the vetted address; redirects are not followed. Workers are shared
//! fairly: one stays free for destinations with nothing in flight, so
//! receivers that never answer cannot hold every sender, and a destination
//! that keeps failing gets a shorter timeout.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ureq::Agent;

use crate::egress::{EgressPolicy, VettingResolver, refusal_of};
use crate::state::{OutboxItem, OutboxStatus, OutboxTable};

/// The idempotency header.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// A callback to send.
#[derive(Clone, Debug)]
pub struct Callback {
    /// Stable snapshot id (the idempotency key).
    pub id: String,
    /// Receiver URL.
    pub url: String,
    /// Headers from the notifier.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// What the re-signer needs to rebuild the body on a retry.
    pub resign: Option<String>,
    /// The owner key of the template's project.
    pub project: String,
}

/// A rebuilt request: (url, headers, body).
pub type Resigned = (String, Vec<(String, String)>, Vec<u8>);

/// Rebuilds a request for a retry, so a signed body's fields stay
/// consistent with its new `auth_timestamp`.
pub type Resigner = Arc<dyn Fn(&str) -> Option<Resigned> + Send + Sync>;

/// The runtime config's `[delivery]` section as written; [`DeliverySection::resolve`]
/// fills in the defaults and bounds.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySection {
    max_attempts: Option<u32>,
    max_age_secs: Option<u64>,
    backoff_ms: Option<u64>,
    max_backoff_ms: Option<u64>,
    timeout_secs: Option<u64>,
    workers: Option<usize>,
    per_destination: Option<usize>,
}

impl DeliverySection {
    /// The settings, defaults filled in and bounded.
    pub fn resolve(self) -> DeliveryConfig {
        let d = DeliveryConfig::default();
        DeliveryConfig {
            max_attempts: self.max_attempts.unwrap_or(d.max_attempts).max(1),
            max_age: self.max_age_secs.map_or(d.max_age, Duration::from_secs),
            backoff: self.backoff_ms.map_or(d.backoff, Duration::from_millis),
            max_backoff: self.max_backoff_ms.map_or(d.max_backoff, Duration::from_millis),
            timeout: self.timeout_secs.map_or(d.timeout, |s| Duration::from_secs(s.max(1))),
            workers: self.workers.unwrap_or(d.workers).clamp(1, 64),
            per_destination: self.per_destination.unwrap_or(d.per_destination).clamp(1, 64),
        }
    }
}

/// Delivery settings (`[delivery]` in the runtime config).
#[derive(Clone, Copy, Debug)]
pub struct DeliveryConfig {
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Attempts before giving up.
    pub max_attempts: u32,
    /// Age after which a callback is given up.
    pub max_age: Duration,
    /// Wait before the second attempt; doubled after each, with ±20 % jitter.
    pub backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Sender threads.
    pub workers: usize,
    /// Attempts in flight to one destination (scheme://host:port) at most,
    /// so one dead receiver cannot hold every sender.
    pub per_destination: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_attempts: 10,
            max_age: Duration::from_secs(24 * 3600),
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            workers: 8,
            per_destination: 2,
        }
    }
}

/// Deliveries finished by this process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    /// Answered 2xx.
    pub ok: u64,
    /// Given up.
    pub failed: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Running,
    /// Stop once nothing is pending (one-off runs).
    Drain,
    /// Stop after the attempts in flight (service shutdown; the rest stays pending).
    Halt,
}

/// How much longer than its attempt's timeout a claim lasts: a node that
/// dies mid-attempt leaves the callback to the others after that.
const CLAIM_MARGIN: Duration = Duration::from_secs(20);

struct Claims {
    mode: Mode,
    ids: HashSet<String>,
    per_destination: HashMap<String, usize>,
    /// Attempts in flight, all destinations.
    in_flight: usize,
    /// Failures in a row per destination (reset by a success).
    strikes: HashMap<String, u32>,
}

struct Inner {
    store: Arc<dyn OutboxTable>,
    /// This node's name on its claims.
    node: String,
    config: DeliveryConfig,
    agent: Agent,
    resigner: Mutex<Option<Resigner>>,
    claims: Mutex<Claims>,
    wake: Condvar,
    ok: AtomicU64,
    failed: AtomicU64,
}

/// The outbox and its sender threads.
pub struct Delivery {
    inner: Arc<Inner>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl Delivery {
    /// Starts the senders over `store` as node `node`; pending callbacks
    /// left by an earlier run (or by a node that died) are picked up too.
    pub fn start(store: Arc<dyn OutboxTable>, node: &str, config: DeliveryConfig, egress: Arc<EgressPolicy>) -> Self {
        let agent_config = Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            // A redirect could lead anywhere, a proxy would be resolved instead of the receiver.
            .max_redirects(0)
            .proxy(None)
            .user_agent(concat!("livesnap/", env!("CARGO_PKG_VERSION")))
            .build();
        let agent = Agent::with_parts(agent_config, ureq::unversioned::transport::DefaultConnector::new(), VettingResolver(egress));
        let inner = Arc::new(Inner {
            store,
            node: node.to_string(),
            config,
            agent,
            resigner: Mutex::new(None),
            claims: Mutex::new(Claims {
                mode: Mode::Running,
                ids: HashSet::new(),
                per_destination: HashMap::new(),
                in_flight: 0,
                strikes: HashMap::new(),
            }),
            wake: Condvar::new(),
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        });
        let workers = (0..config.workers.max(1))
            .map(|i| {
                let inner = inner.clone();
                std::thread::Builder::new().name(format!("callbacks-{i}")).spawn(move || inner.work()).expect("spawning a callback thread")
            })
            .collect();
        Self { inner, workers: Mutex::new(workers) }
    }

    /// Sets how retries rebuild signed bodies.
    pub fn set_resigner(&self, resigner: Resigner) {
        *self.inner.resigner.lock().unwrap() = Some(resigner);
    }

    /// Records a callback (durably) and wakes a sender.
    pub fn send(&self, cb: Callback) {
        let item = OutboxItem {
            destination: destination(&cb.url),
            id: cb.id,
            url: cb.url,
            headers: cb.headers,
            body: cb.body,
            resign: cb.resign,
            status: OutboxStatus::Pending,
            attempts: 0,
            next_attempt_at: 0,
            last_error: None,
            created_at: 0,
            updated_at: 0,
            project: cb.project,
        };
        match self.inner.store.enqueue(&item) {
            // One callback: one sender to wake (the busy ones look again when done).
            Ok(true) => self.inner.wake.notify_one(),
            Ok(false) => tracing::debug!(id = %item.id, "callback already in the outbox"),
            Err(e) => tracing::error!(id = %item.id, destination = %item.destination, "could not record the callback: {e}"),
        }
    }

    /// Wakes the senders (after a redeliver).
    pub fn nudge(&self) {
        self.inner.wake.notify_all();
    }

    /// Deliveries finished by this process so far.
    pub fn stats(&self) -> DeliveryStats {
        DeliveryStats { ok: self.inner.ok.load(Ordering::Relaxed), failed: self.inner.failed.load(Ordering::Relaxed) }
    }

    /// Waits until no callback is pending (each delivered or given up).
    pub fn finish(&self) -> DeliveryStats {
        self.stop(Mode::Drain)
    }

    /// Stops after the attempts in flight; pending callbacks stay recorded
    /// for the next start.
    pub fn shutdown(&self) -> DeliveryStats {
        self.stop(Mode::Halt)
    }

    fn stop(&self, mode: Mode) -> DeliveryStats {
        self.inner.claims.lock().unwrap().mode = mode;
        self.inner.wake.notify_all();
        let workers: Vec<_> = self.workers.lock().unwrap().drain(..).collect();
        for w in workers {
            let _ = w.join();
        }
        // Nothing is in flight any more: what this node claimed is free for the others now.
        if let Err(e) = self.inner.store.release_claims(&self.inner.node) {
            tracing::warn!("releasing callback claims: {e}");
        }
        self.stats()
    }
}

impl Inner {
    fn work(&self) {
        while let Some((item, timeout)) = self.claim() {
            let dest = item.destination.clone();
            let id = item.id.clone();
            let delivered = self.attempt(item, timeout);
            let mut claims = self.claims.lock().unwrap();
            claims.ids.remove(&id);
            claims.in_flight -= 1;
            if let Some(n) = claims.per_destination.get_mut(&dest) {
                *n = n.saturating_sub(1);
            }
            if delivered {
                claims.strikes.remove(&dest);
            } else {
                *claims.strikes.entry(dest).or_default() += 1;
            }
            drop(claims);
            // This worker looks for the next callback itself; one other may
            // now fit under the per-destination limits. (Waking all of them
            // made each query the outbox for nothing.)
            self.wake.notify_one();
        }
    }

    /// The next due callback this thread may send and the timeout for its
    /// attempt, or `None` to stop.
    fn claim(&self) -> Option<(OutboxItem, Duration)> {
        let mut claims = self.claims.lock().unwrap();
        loop {
            if claims.mode == Mode::Halt {
                return None;
            }
            let now = now_ms();
            let due = self.store.due(now, 256).unwrap_or_else(|e| {
                tracing::error!("reading the outbox: {e}");
                Vec::new()
            });
            let limit = self.config.per_destination.max(1);
            let workers = self.config.workers.max(1);
            let free = workers.saturating_sub(claims.in_flight);
            let nothing_due = due.is_empty();
            for item in due {
                let busy = claims.per_destination.get(&item.destination).copied().unwrap_or(0);
                // A destination already being tried may not take the last free
                // worker: that one is kept for a destination with nothing in flight.
                if claims.ids.contains(&item.id) || busy >= limit || (busy > 0 && free <= 1) {
                    continue;
                }
                let strikes = claims.strikes.get(&item.destination).copied().unwrap_or(0);
                let timeout = if strikes >= 2 {
                    (self.config.timeout / 4).max(Duration::from_secs(1)).min(self.config.timeout)
                } else {
                    self.config.timeout
                };
                // Claimed in the outbox, so no other node sharing it attempts
                // the callback meanwhile; the claim outlives the attempt.
                let until = now + (timeout + CLAIM_MARGIN).as_millis() as i64;
                match self.store.claim(&item.id, &self.node, now, until) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::error!(id = %item.id, "claiming a callback: {e}");
                        continue;
                    }
                }
                claims.ids.insert(item.id.clone());
                claims.in_flight += 1;
                *claims.per_destination.entry(item.destination.clone()).or_default() += 1;
                return Some((item, timeout));
            }
            // Only a draining delivery needs the count: it stops at zero.
            if claims.mode == Mode::Drain && claims.ids.is_empty() && self.store.counts().map(|(p, _)| p).unwrap_or(0) == 0 {
                return None;
            }
            // With callbacks due but none for this worker now, a finished
            // attempt wakes it; else it sleeps until the next one comes due.
            let wait = if !nothing_due {
                1000
            } else {
                match self.store.next_due() {
                    Ok(Some(at)) => (at - now).clamp(5, 1000),
                    _ => 1000,
                }
            };
            claims = self.wake.wait_timeout(claims, Duration::from_millis(wait as u64)).unwrap().0;
        }
    }

    /// One attempt; whether it was delivered.
    fn attempt(&self, mut item: OutboxItem, timeout: Duration) -> bool {
        if item.attempts > 0
            && let Some(resign) = &item.resign
            && let Some(resigner) = self.resigner.lock().unwrap().clone()
            && let Some((url, headers, body)) = resigner(resign)
        {
            item.url = url;
            item.headers = headers;
            item.body = body;
        }
        item.attempts += 1;
        let mut request = self.agent.post(&item.url).config().timeout_global(Some(timeout)).build().header(IDEMPOTENCY_HEADER, &item.id);
        let mut has_type = false;
        for (k, v) in &item.headers {
            has_type |= k.eq_ignore_ascii_case("content-type");
            request = request.header(k, v);
        }
        if !has_type {
            request = request.header("content-type", "application/json");
        }
        let mut refused = false;
        let outcome = match request.send(&item.body[..]) {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("HTTP {}", r.status())),
            Err(e) => match refusal_of(&e) {
                Some(refusal) => {
                    refused = true;
                    Err(refusal.to_string())
                }
                // One text for every transport failure: the receiver's tenant
                // must not learn which ports are open on a host.
                None => Err("no answer from the receiver (could not connect, or it timed out)".into()),
            },
        };
        let delivered = outcome.is_ok();
        let now = now_ms();
        let mut retry_in = None;
        match outcome {
            Ok(_) => {
                item.status = OutboxStatus::Delivered;
                item.last_error = None;
            }
            Err(error) => {
                let too_old = now - item.created_at > self.config.max_age.as_millis() as i64;
                // A refusal is the operator's policy: retrying cannot change it.
                if refused || item.attempts >= self.config.max_attempts || too_old {
                    item.status = OutboxStatus::Failed;
                } else {
                    let wait = self.backoff(item.attempts);
                    item.next_attempt_at = now + wait.as_millis() as i64;
                    retry_in = Some(wait);
                }
                item.last_error = Some(error);
            }
        }
        // Recorded before it is logged or counted: whoever reads the log or
        // the counters finds the outbox saying the same.
        if let Err(e) = self.store.record_attempt(&item) {
            tracing::error!(id = %item.id, "recording a callback attempt: {e}");
        }
        let (id, destination, attempt) = (&item.id, &item.destination, item.attempts);
        let error = item.last_error.as_deref().unwrap_or_default();
        match (item.status, retry_in) {
            (OutboxStatus::Delivered, _) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%id, %destination, attempt, "callback delivered");
            }
            (_, Some(wait)) => tracing::warn!(%id, %destination, attempt, %error, retry_in = ?wait, "callback failed; retrying"),
            _ => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%id, %destination, attempt, %error, "callback failed; giving up");
            }
        }
        delivered
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let base = self.config.backoff.as_secs_f64() * 2f64.powi(attempts.saturating_sub(1).min(30) as i32);
        let capped = base.min(self.config.max_backoff.as_secs_f64());
        let mut r = [0u8; 4];
        let _ = getrandom::fill(&mut r);
        let jitter = 0.8 + 0.4 * (u32::from_le_bytes(r) as f64 / u32::MAX as f64);
        Duration::from_secs_f64(capped * jitter)
    }
}

/// `scheme://host:port` of a URL (never its credentials or path).
fn destination(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!("{}://{}:{}", u.scheme(), u.host_str().unwrap_or(""), u.port_or_known_default().unwrap_or(0)),
        Err(_) => "(invalid URL)".into(),
    }
}

fn now_ms() -> i64 {
    crate::time::unix_ms() as i64
}
