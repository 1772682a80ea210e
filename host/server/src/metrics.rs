//! Counters for `/metrics` (Prometheus text format).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the snapshot latency histogram.
const BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Service-wide counters.
#[derive(Default)]
pub struct Metrics {
    /// Publishes accepted.
    pub publishes: AtomicU64,
    /// Publishes refused.
    pub publishes_refused: AtomicU64,
    /// Publishes refused by ingest URL validation (a subset of the refused).
    pub publishes_unauthorized: AtomicU64,
    /// Pictures received.
    pub frames: AtomicU64,
    /// Snapshots stored.
    pub snapshots: AtomicU64,
    /// Pictures that did not decode.
    pub decode_errors: AtomicU64,
    /// Damaged input skipped.
    pub input_errors: AtomicU64,
    /// Function failures by (stage, component, kind).
    component_errors: Mutex<BTreeMap<(String, String, String), u64>>,
    /// Snapshot latency (decode to callback queued): bucket counts, sum, count.
    latency: Mutex<([u64; BUCKETS.len()], f64, u64)>,
}

impl Metrics {
    /// Counts a function failure.
    pub fn component_error(&self, stage: &str, component: &str, kind: &str) {
        *self.component_errors.lock().unwrap().entry((stage.into(), component.into(), kind.into())).or_default() += 1;
    }

    /// Failed calls of one component, all stages and kinds.
    pub fn component_failures(&self, component: &str) -> u64 {
        self.component_errors.lock().unwrap().iter().filter(|((_, c, _), _)| c == component).map(|(_, n)| n).sum()
    }

    /// Records one snapshot's processing time.
    pub fn observe_latency(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let mut l = self.latency.lock().unwrap();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                l.0[i] += 1;
            }
        }
        l.1 += secs;
        l.2 += 1;
    }

    /// The text exposition, with the live-stream gauge and callback counts
    /// supplied by the caller.
    pub fn render(
        &self,
        streams_active: usize,
        callbacks_ok: u64,
        callbacks_failed: u64,
        outbox_pending: u64,
        outbox_failed: u64,
    ) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        };
        counter("livesnap_publishes_total", "RTMP publishes accepted.", self.publishes.load(Ordering::Relaxed));
        counter("livesnap_publishes_refused_total", "RTMP publishes refused.", self.publishes_refused.load(Ordering::Relaxed));
        counter(
            "livesnap_publishes_unauthorized_total",
            "RTMP publishes refused by ingest URL validation.",
            self.publishes_unauthorized.load(Ordering::Relaxed),
        );
        counter("livesnap_frames_total", "Pictures received.", self.frames.load(Ordering::Relaxed));
        counter("livesnap_snapshots_total", "Snapshots stored.", self.snapshots.load(Ordering::Relaxed));
        counter("livesnap_decode_errors_total", "Snapshot pictures that did not decode.", self.decode_errors.load(Ordering::Relaxed));
        counter("livesnap_input_errors_total", "Damaged input skipped.", self.input_errors.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "# HELP livesnap_streams_active Streams being published.\n# TYPE livesnap_streams_active gauge\nlivesnap_streams_active {streams_active}"
        );
        let _ = writeln!(
            out,
            "# HELP livesnap_callbacks_total Callback deliveries finished.\n# TYPE livesnap_callbacks_total counter\nlivesnap_callbacks_total{{result=\"ok\"}} {callbacks_ok}\nlivesnap_callbacks_total{{result=\"failed\"}} {callbacks_failed}"
        );
        let _ = writeln!(
            out,
            "# HELP livesnap_outbox_callbacks Callbacks in the outbox by status.\n# TYPE livesnap_outbox_callbacks gauge\nlivesnap_outbox_callbacks{{status=\"pending\"}} {outbox_pending}\nlivesnap_outbox_callbacks{{status=\"failed\"}} {outbox_failed}"
        );
        let _ = writeln!(
            out,
            "# HELP livesnap_component_errors_total Function calls that failed.\n# TYPE livesnap_component_errors_total counter"
        );
        for ((stage, component, kind), n) in self.component_errors.lock().unwrap().iter() {
            let _ = writeln!(out, "livesnap_component_errors_total{{stage=\"{stage}\",component=\"{component}\",kind=\"{kind}\"}} {n}");
        }
        let l = self.latency.lock().unwrap();
        let _ = writeln!(
            out,
            "# HELP livesnap_snapshot_seconds Time from decode start to callback queued.\n# TYPE livesnap_snapshot_seconds histogram"
        );
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "livesnap_snapshot_seconds_bucket{{le=\"{le}\"}} {}", l.0[i]);
        }
        let _ = writeln!(
            out,
            "livesnap_snapshot_seconds_bucket{{le=\"+Inf\"}} {}\nlivesnap_snapshot_seconds_sum {}\nlivesnap_snapshot_seconds_count {}",
            l.2, l.1, l.2
        );
        out
    }
}
