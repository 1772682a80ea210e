//! Callback delivery: POSTs what the notifier built, off the capture path,
//! with a timeout and a few retries. (A durable outbox comes later; a
//! callback still queued when the process ends is lost.)

use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::Duration;

use ureq::Agent;

/// A callback to send.
#[derive(Clone, Debug)]
pub struct Callback {
    /// Receiver URL.
    pub url: String,
    /// Headers from the notifier.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// What it is about, for logs.
    pub label: String,
}

/// Delivery settings.
#[derive(Clone, Copy, Debug)]
pub struct DeliveryConfig {
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Attempts before giving up.
    pub attempts: u32,
    /// Wait before the second attempt; doubled after each.
    pub backoff: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(10), attempts: 3, backoff: Duration::from_millis(500) }
    }
}

/// Counts of finished deliveries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    /// Answered 2xx.
    pub ok: u64,
    /// Given up.
    pub failed: u64,
}

/// A background sender.
pub struct Delivery {
    tx: Option<Sender<Callback>>,
    worker: Option<JoinHandle<DeliveryStats>>,
}

impl Delivery {
    /// Starts the sender thread.
    pub fn start(config: DeliveryConfig) -> Self {
        let (tx, rx) = channel();
        let worker = std::thread::Builder::new()
            .name("callbacks".into())
            .spawn(move || run(rx, config))
            .expect("spawning the callback thread");
        Self { tx: Some(tx), worker: Some(worker) }
    }

    /// Queues a callback.
    pub fn send(&self, callback: Callback) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(callback);
        }
    }

    /// Waits until every queued callback is delivered or given up.
    pub fn finish(mut self) -> DeliveryStats {
        self.tx.take();
        self.worker.take().map(|w| w.join().unwrap_or_default()).unwrap_or_default()
    }
}

fn run(rx: Receiver<Callback>, config: DeliveryConfig) -> DeliveryStats {
    let agent: Agent = Agent::config_builder()
        .timeout_global(Some(config.timeout))
        .http_status_as_error(false)
        .user_agent(concat!("livesnap/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut stats = DeliveryStats::default();
    for callback in rx {
        if deliver(&agent, &callback, config) {
            stats.ok += 1;
        } else {
            stats.failed += 1;
        }
    }
    stats
}

fn deliver(agent: &Agent, cb: &Callback, config: DeliveryConfig) -> bool {
    let mut wait = config.backoff;
    for attempt in 1..=config.attempts {
        let mut request = agent.post(&cb.url);
        let mut has_type = false;
        for (k, v) in &cb.headers {
            has_type |= k.eq_ignore_ascii_case("content-type");
            request = request.header(k, v);
        }
        if !has_type {
            request = request.header("content-type", "application/json");
        }
        let outcome = match request.send(&cb.body[..]) {
            Ok(response) if response.status().is_success() => {
                tracing::info!(callback = %cb.label, url = %cb.url, status = response.status().as_u16(), attempt, "callback delivered");
                return true;
            }
            Ok(response) => format!("HTTP {}", response.status()),
            Err(e) => e.to_string(),
        };
        if attempt == config.attempts {
            tracing::warn!(callback = %cb.label, url = %cb.url, attempt, error = %outcome, "callback failed; giving up");
        } else {
            tracing::warn!(callback = %cb.label, url = %cb.url, attempt, error = %outcome, retry_in = ?wait, "callback failed; retrying");
            std::thread::sleep(wait);
            wait *= 2;
        }
    }
    false
}
