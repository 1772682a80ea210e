//! Counters for `/metrics`, exposed in the OpenMetrics text format by
//! `prometheus-client`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the snapshot latency histogram.
const BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// One label, e.g. `result="ok"`.
type Label = [(&'static str, &'static str); 1];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    stage: String,
    component: String,
    kind: String,
}

/// Service-wide counters.
pub struct Metrics {
    /// Publishes accepted.
    pub publishes: Counter,
    /// Publishes refused.
    pub publishes_refused: Counter,
    /// Publishes refused by ingest URL validation (a subset of the refused).
    pub publishes_unauthorized: Counter,
    /// Pictures received.
    pub frames: Counter,
    /// Snapshots stored.
    pub snapshots: Counter,
    /// Pictures that did not decode.
    pub decode_errors: Counter,
    /// Damaged input skipped.
    pub input_errors: Counter,
    streams_active: Gauge,
    callbacks: Family<Label, Counter>,
    outbox: Family<Label, Gauge>,
    component_errors: Family<ErrorLabels, Counter>,
    /// Failed calls per component, for the functions API (a family cannot
    /// be read back by one label).
    failures: Mutex<BTreeMap<String, u64>>,
    latency: Histogram,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Self {
            publishes: Counter::default(),
            publishes_refused: Counter::default(),
            publishes_unauthorized: Counter::default(),
            frames: Counter::default(),
            snapshots: Counter::default(),
            decode_errors: Counter::default(),
            input_errors: Counter::default(),
            streams_active: Gauge::default(),
            callbacks: Family::default(),
            outbox: Family::default(),
            component_errors: Family::default(),
            failures: Mutex::default(),
            latency: Histogram::new(BUCKETS),
            registry: Registry::default(),
        };
        // Counter names without `_total` (the encoder appends it), help
        // without the final '.' (the registry appends it); registration
        // order is exposition order.
        let r = &mut m.registry;
        r.register("livesnap_publishes", "RTMP publishes accepted", m.publishes.clone());
        r.register("livesnap_publishes_refused", "RTMP publishes refused", m.publishes_refused.clone());
        r.register("livesnap_publishes_unauthorized", "RTMP publishes refused by ingest URL validation", m.publishes_unauthorized.clone());
        r.register("livesnap_frames", "Pictures received", m.frames.clone());
        r.register("livesnap_snapshots", "Snapshots stored", m.snapshots.clone());
        r.register("livesnap_decode_errors", "Snapshot pictures that did not decode", m.decode_errors.clone());
        r.register("livesnap_input_errors", "Damaged input skipped", m.input_errors.clone());
        r.register("livesnap_streams_active", "Streams being published", m.streams_active.clone());
        r.register("livesnap_callbacks", "Callback deliveries finished", m.callbacks.clone());
        r.register("livesnap_outbox_callbacks", "Callbacks in the outbox by status", m.outbox.clone());
        r.register("livesnap_component_errors", "Function calls that failed", m.component_errors.clone());
        r.register("livesnap_snapshot_seconds", "Time from decode start to callback queued", m.latency.clone());
        m
    }
}

impl Metrics {
    /// Counts a function failure.
    pub fn component_error(&self, stage: &str, component: &str, kind: &str) {
        let labels = ErrorLabels { stage: stage.into(), component: component.into(), kind: kind.into() };
        self.component_errors.get_or_create(&labels).inc();
        *self.failures.lock().unwrap().entry(component.into()).or_default() += 1;
    }

    /// Failed calls of one component, all stages and kinds.
    pub fn component_failures(&self, component: &str) -> u64 {
        self.failures.lock().unwrap().get(component).copied().unwrap_or(0)
    }

    /// Records one snapshot's processing time.
    pub fn observe_latency(&self, d: Duration) {
        self.latency.observe(d.as_secs_f64());
    }

    /// The exposition ([`CONTENT_TYPE`]), with the live-stream gauge and
    /// callback counts supplied by the caller.
    pub fn render(
        &self,
        streams_active: usize,
        callbacks_ok: u64,
        callbacks_failed: u64,
        outbox_pending: u64,
        outbox_failed: u64,
    ) -> String {
        self.streams_active.set(i64::try_from(streams_active).unwrap_or(i64::MAX));
        // The delivery totals live in the pipeline; the counters mirror them.
        for (result, n) in [("ok", callbacks_ok), ("failed", callbacks_failed)] {
            self.callbacks.get_or_create(&[("result", result)]).inner().store(n, Ordering::Relaxed);
        }
        for (status, n) in [("pending", outbox_pending), ("failed", outbox_failed)] {
            self.outbox.get_or_create(&[("status", status)]).set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_keeps_the_metric_names_and_labels() {
        let m = Metrics::default();
        m.publishes.inc();
        m.component_error("encode", "spinner", "deadline");
        m.component_error("store", "spinner", "error");
        m.observe_latency(Duration::from_millis(30));
        let text = m.render(2, 5, 1, 3, 4);
        for line in [
            "livesnap_publishes_total 1",
            "livesnap_streams_active 2",
            "livesnap_callbacks_total{result=\"ok\"} 5",
            "livesnap_outbox_callbacks{status=\"failed\"} 4",
            "livesnap_component_errors_total{stage=\"encode\",component=\"spinner\",kind=\"deadline\"} 1",
            "livesnap_snapshot_seconds_count 1",
            "livesnap_snapshot_seconds_bucket{le=\"0.05\"} 1",
            "livesnap_snapshot_seconds_bucket{le=\"0.025\"} 0",
            "# TYPE livesnap_publishes counter",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in:\n{text}");
        }
        assert_eq!(m.component_failures("spinner"), 2);
    }
}
