//! Callback delivery: POSTs what the notifier built, off the capture path,
//! with a timeout and a few retries. (A durable outbox comes later; a
//! callback still queued when the process ends is lost.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
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
    /// Sender threads (a slow receiver holds up only one of them).
    pub workers: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(10), attempts: 3, backoff: Duration::from_millis(500), workers: 4 }
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

/// Background senders.
pub struct Delivery {
    tx: Mutex<Option<Sender<Callback>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
}

impl Delivery {
    /// Starts the sender threads.
    pub fn start(config: DeliveryConfig) -> Self {
        let (tx, rx) = channel();
        let rx = Arc::new(Mutex::new(rx));
        let counts = Arc::new(Counts::default());
        let agent: Agent = Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .user_agent(concat!("livesnap/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let workers = (0..config.workers.max(1))
            .map(|i| {
                let (rx, counts, agent) = (rx.clone(), counts.clone(), agent.clone());
                std::thread::Builder::new()
                    .name(format!("callbacks-{i}"))
                    .spawn(move || run(&rx, &agent, &counts, config))
                    .expect("spawning a callback thread")
            })
            .collect();
        Self { tx: Mutex::new(Some(tx)), workers: Mutex::new(workers), counts }
    }

    /// Queues a callback.
    pub fn send(&self, callback: Callback) {
        if let Some(tx) = self.tx.lock().unwrap().as_ref() {
            let _ = tx.send(callback);
        }
    }

    /// Deliveries finished so far.
    pub fn stats(&self) -> DeliveryStats {
        DeliveryStats { ok: self.counts.ok.load(Ordering::Relaxed), failed: self.counts.failed.load(Ordering::Relaxed) }
    }

    /// Stops taking callbacks and waits until every queued one is
    /// delivered or given up.
    pub fn finish(&self) -> DeliveryStats {
        self.tx.lock().unwrap().take();
        let workers: Vec<_> = self.workers.lock().unwrap().drain(..).collect();
        for w in workers {
            let _ = w.join();
        }
        self.stats()
    }
}

fn run(rx: &Mutex<Receiver<Callback>>, agent: &Agent, counts: &Counts, config: DeliveryConfig) {
    loop {
        let next = rx.lock().unwrap().recv();
        let Ok(callback) = next else { return };
        let counter = if deliver(agent, &callback, config) { &counts.ok } else { &counts.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }
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
