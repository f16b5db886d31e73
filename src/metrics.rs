//! Counters and latency histograms, rendered in the Prometheus text format for `/metrics`.
//!
//! Recording is a short mutex-protected map update; nothing here does I/O.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Histogram bucket upper bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += secs;
        self.count += 1;
    }
}

type Labels = Vec<(&'static str, String)>;

/// All of incd's metrics.
#[derive(Default)]
pub struct Metrics {
    /// Socket Mode connections that said hello and are still open.
    pub live_connections: AtomicUsize,
    pub connection_opens: AtomicU64,
    counters: Mutex<BTreeMap<(&'static str, Labels), u64>>,
    histograms: Mutex<BTreeMap<(&'static str, Labels), Histogram>>,
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    fn inc(&self, name: &'static str, labels: Labels) {
        let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        *c.entry((name, labels)).or_insert(0) += 1;
    }

    fn observe(&self, name: &'static str, labels: Labels, d: Duration) {
        let mut h = self.histograms.lock().unwrap_or_else(|p| p.into_inner());
        h.entry((name, labels))
            .or_default()
            .observe(d.as_secs_f64());
    }

    /// An envelope arrived (`kind` is the envelope type).
    pub fn envelope(&self, kind: &str) {
        self.inc("incd_envelopes_total", vec![("type", kind.to_string())]);
    }

    /// An envelope was a duplicate and was acked without being handled again.
    pub fn duplicate_envelope(&self) {
        self.inc("incd_envelopes_duplicate_total", vec![]);
    }

    /// An ack went out `latency` after the envelope was read.
    pub fn ack(&self, latency: Duration) {
        self.inc("incd_acks_total", vec![]);
        self.observe("incd_ack_latency_seconds", vec![], latency);
    }

    /// A handler panicked (the envelope was still acked).
    pub fn handler_panic(&self) {
        self.inc("incd_handler_panics_total", vec![]);
    }

    /// A workflow step ended with `outcome` (done, failed, gave_up, ...).
    pub fn step(&self, step: &str, outcome: &str) {
        let step = step.split(':').next().unwrap_or(step).to_string();
        self.inc(
            "incd_workflow_steps_total",
            vec![("step", step), ("outcome", outcome.to_string())],
        );
    }

    /// A call to `service` is being retried for `reason`.
    pub fn retry(&self, service: &str, reason: &str) {
        self.inc(
            "incd_retries_total",
            vec![
                ("service", service.to_string()),
                ("reason", reason.to_string()),
            ],
        );
    }

    /// One outbound call finished.
    pub fn external_call(&self, service: &str, op: &str, elapsed: Duration, ok: bool) {
        let labels = vec![("service", service.to_string()), ("op", op.to_string())];
        self.observe("incd_external_call_seconds", labels.clone(), elapsed);
        if !ok {
            self.inc("incd_external_errors_total", labels);
        }
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# TYPE incd_socket_connections gauge");
        let _ = writeln!(
            out,
            "incd_socket_connections {}",
            self.live_connections.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# TYPE incd_socket_connection_opens_total counter");
        let _ = writeln!(
            out,
            "incd_socket_connection_opens_total {}",
            self.connection_opens.load(Ordering::Relaxed)
        );
        let counters = self
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut last = "";
        for ((name, labels), v) in &counters {
            if *name != last {
                let _ = writeln!(out, "# TYPE {name} counter");
                last = name;
            }
            let _ = writeln!(out, "{name}{} {v}", fmt_labels(labels, None));
        }
        let hists = self
            .histograms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        last = "";
        for ((name, labels), h) in &hists {
            if *name != last {
                let _ = writeln!(out, "# TYPE {name} histogram");
                last = name;
            }
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {}",
                    fmt_labels(labels, Some(&b.to_string())),
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "{name}_bucket{} {}",
                fmt_labels(labels, Some("+Inf")),
                h.count
            );
            let _ = writeln!(out, "{name}_sum{} {}", fmt_labels(labels, None), h.sum);
            let _ = writeln!(out, "{name}_count{} {}", fmt_labels(labels, None), h.count);
        }
        out
    }
}

fn fmt_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms_in_prometheus_text() {
        let m = Metrics::new();
        m.envelope("slash_commands");
        m.envelope("slash_commands");
        m.ack(Duration::from_micros(800));
        m.external_call(
            "slack",
            crate::slack::web::Method::ChatPostMessage.name(),
            Duration::from_millis(30),
            false,
        );
        let text = m.render();
        assert!(text.contains("incd_envelopes_total{type=\"slash_commands\"} 2"));
        assert!(text.contains("incd_ack_latency_seconds_bucket{le=\"0.001\"} 1"));
        assert!(text.contains("incd_ack_latency_seconds_count 1"));
        assert!(text
            .contains("incd_external_errors_total{service=\"slack\",op=\"chat.postMessage\"} 1"));
        assert!(text.contains("incd_socket_connections 0"));
    }
}
