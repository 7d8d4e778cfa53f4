//! The agent's own metrics, exposed at `GET P/metrics` in text format.
//!
//! Every metric is declared once in [`CATALOG`]; the README's table of self
//! metrics is checked against it by a test, so the two cannot drift.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// One self metric as documented.
pub struct MetricDoc {
    pub name: &'static str,
    pub kind: &'static str,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

pub const PUSHES: &str = "pushkit_pushes_total";
pub const PUSH_DURATION: &str = "pushkit_push_duration_seconds";
pub const SAMPLES_RECEIVED: &str = "pushkit_samples_received_total";
pub const POINTS_EMITTED: &str = "pushkit_points_emitted_total";
pub const SINK_REQUESTS: &str = "pushkit_sink_requests_total";
pub const SINK_REQUEST_DURATION: &str = "pushkit_sink_request_duration_seconds";
pub const SINK_DELIVERED: &str = "pushkit_sink_points_delivered_total";
pub const SINK_DROPPED: &str = "pushkit_sink_points_dropped_total";
pub const SINK_QUEUE_POINTS: &str = "pushkit_sink_queue_points";
pub const SINK_QUEUE_BYTES: &str = "pushkit_sink_queue_bytes";
pub const SINK_QUEUE_OLDEST_AGE: &str = "pushkit_sink_queue_oldest_age_seconds";
pub const SINK_RETRIED: &str = "pushkit_sink_points_retried_total";
pub const SINK_DUPLICATES: &str = "pushkit_sink_points_possible_duplicates_total";
pub const STORE_LOCK_MAX_HOLD: &str = "pushkit_store_lock_max_hold_seconds";

pub const CATALOG: &[MetricDoc] = &[
    MetricDoc {
        name: PUSHES,
        kind: "counter",
        labels: &["method", "code"],
        help: "Push requests handled, by HTTP method and status code.",
    },
    MetricDoc {
        name: PUSH_DURATION,
        kind: "histogram",
        labels: &["method"],
        help: "Time from a push request's arrival to its reply.",
    },
    MetricDoc {
        name: SAMPLES_RECEIVED,
        kind: "counter",
        labels: &[],
        help: "Samples received in accepted pushes.",
    },
    MetricDoc {
        name: POINTS_EMITTED,
        kind: "counter",
        labels: &[],
        help: "Points produced by the mapping and handed to the sinks.",
    },
    MetricDoc {
        name: SINK_REQUESTS,
        kind: "counter",
        labels: &["sink", "outcome"],
        help: "Write requests to a sink, by outcome: success, retry (network error, timeout, 429 or 5xx) or rejected (other 4xx).",
    },
    MetricDoc {
        name: SINK_REQUEST_DURATION,
        kind: "histogram",
        labels: &["sink"],
        help: "Duration of write requests to a sink.",
    },
    MetricDoc {
        name: SINK_DELIVERED,
        kind: "counter",
        labels: &["sink"],
        help: "Points a sink acknowledged.",
    },
    MetricDoc {
        name: SINK_DROPPED,
        kind: "counter",
        labels: &["sink", "reason"],
        help: "Points given up on, by reason: rejected (the backend answered a 4xx other than 429), queue_full (overflow = drop_oldest), shutdown (memory queue not delivered within shutdown_timeout), encode (a batch that could not be encoded), corrupt (unreadable from a damaged disk queue).",
    },
    MetricDoc {
        name: SINK_QUEUE_POINTS,
        kind: "gauge",
        labels: &["sink"],
        help: "Points waiting in a sink's queue, the batch in flight included.",
    },
    MetricDoc {
        name: SINK_QUEUE_BYTES,
        kind: "gauge",
        labels: &["sink"],
        help: "Estimated line-protocol bytes waiting in a sink's queue (record bytes with queue_dir).",
    },
    MetricDoc {
        name: SINK_QUEUE_OLDEST_AGE,
        kind: "gauge",
        labels: &["sink"],
        help: "Age of the oldest point in a sink's queue; 0 when it is empty.",
    },
    MetricDoc {
        name: SINK_RETRIED,
        kind: "counter",
        labels: &["sink"],
        help: "Points in write requests that failed and were retried (network error, timeout, 429 or 5xx).",
    },
    MetricDoc {
        name: SINK_DUPLICATES,
        kind: "counter",
        labels: &["sink", "reason"],
        help: "Points delivered that the backend may already hold: retried after a timeout or reset (timeout), or sent again after a restart because the crash came before the acknowledgement was recorded (restart).",
    },
    MetricDoc {
        name: STORE_LOCK_MAX_HOLD,
        kind: "gauge",
        labels: &[],
        help: "Longest time one caller held the group store's lock since the previous GET of the exposition, which reads and resets it; set by the store, absent without one.",
    },
];

const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct HistogramState {
    buckets: Vec<u64>,
    count: u64,
    sum: f64,
}

/// Labelled counters, gauges and histograms; cheap enough for the push path
/// (one short lock per update), and rendered on demand.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, Vec<String>), f64>>,
    gauges: Mutex<BTreeMap<(&'static str, Vec<String>), f64>>,
    histograms: Mutex<BTreeMap<(&'static str, Vec<String>), HistogramState>>,
    samples_received: AtomicU64,
    points_emitted: AtomicU64,
}

impl Metrics {
    pub fn add(&self, name: &'static str, labels: &[&str], v: f64) {
        let key = (name, labels.iter().map(|s| s.to_string()).collect());
        *self.counters.lock().unwrap().entry(key).or_default() += v;
    }

    pub fn set(&self, name: &'static str, labels: &[&str], v: f64) {
        let key = (name, labels.iter().map(|s| s.to_string()).collect());
        self.gauges.lock().unwrap().insert(key, v);
    }

    pub fn observe(&self, name: &'static str, labels: &[&str], v: f64) {
        let key = (name, labels.iter().map(|s| s.to_string()).collect());
        let mut all = self.histograms.lock().unwrap();
        let h = all.entry(key).or_default();
        if h.buckets.is_empty() {
            h.buckets = vec![0; DURATION_BUCKETS.len()];
        }
        for (i, le) in DURATION_BUCKETS.iter().enumerate() {
            if v <= *le {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum += v;
    }

    /// Lock-free counters for the per-push hot path.
    pub fn add_samples_received(&self, n: u64) {
        self.samples_received.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_points_emitted(&self, n: u64) {
        self.points_emitted.fetch_add(n, Ordering::Relaxed);
    }

    pub fn counter_value(&self, name: &'static str, labels: &[&str]) -> f64 {
        match name {
            SAMPLES_RECEIVED => return self.samples_received.load(Ordering::Relaxed) as f64,
            POINTS_EMITTED => return self.points_emitted.load(Ordering::Relaxed) as f64,
            _ => {}
        }
        let key = (name, labels.iter().map(|s| s.to_string()).collect());
        self.counters
            .lock()
            .unwrap()
            .get(&key)
            .copied()
            .unwrap_or(0.0)
    }

    /// Text exposition format 0.0.4, families in catalog order.
    pub fn render(&self) -> String {
        let counters = self.counters.lock().unwrap();
        let gauges = self.gauges.lock().unwrap();
        let histograms = self.histograms.lock().unwrap();
        let mut out = String::new();
        for doc in CATALOG {
            let _ = writeln!(out, "# HELP {} {}", doc.name, doc.help);
            let _ = writeln!(out, "# TYPE {} {}", doc.name, doc.kind);
            match doc.name {
                SAMPLES_RECEIVED => {
                    let v = self.samples_received.load(Ordering::Relaxed);
                    let _ = writeln!(out, "{} {v}", doc.name);
                    continue;
                }
                POINTS_EMITTED => {
                    let v = self.points_emitted.load(Ordering::Relaxed);
                    let _ = writeln!(out, "{} {v}", doc.name);
                    continue;
                }
                _ => {}
            }
            let series = match doc.kind {
                "counter" => &*counters,
                "gauge" => &*gauges,
                _ => {
                    for ((name, values), h) in histograms.iter() {
                        if *name != doc.name {
                            continue;
                        }
                        let labels = label_text(doc.labels, values);
                        for (le, c) in DURATION_BUCKETS.iter().zip(&h.buckets) {
                            let _ = writeln!(
                                out,
                                "{}_bucket{{{}le=\"{le}\"}} {c}",
                                doc.name,
                                with_comma(&labels)
                            );
                        }
                        let _ = writeln!(
                            out,
                            "{}_bucket{{{}le=\"+Inf\"}} {}",
                            doc.name,
                            with_comma(&labels),
                            h.count
                        );
                        let _ = writeln!(out, "{}_sum{} {}", doc.name, braces(&labels), h.sum);
                        let _ = writeln!(out, "{}_count{} {}", doc.name, braces(&labels), h.count);
                    }
                    continue;
                }
            };
            for ((name, values), v) in series.iter() {
                if *name == doc.name {
                    let _ = writeln!(
                        out,
                        "{}{} {v}",
                        doc.name,
                        braces(&label_text(doc.labels, values))
                    );
                }
            }
        }
        out
    }
}

fn label_text(names: &[&str], values: &[String]) -> String {
    names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escape_label_value(v)))
        .collect::<Vec<_>>()
        .join(",")
}

fn escape_label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn braces(labels: &str) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    }
}

fn with_comma(labels: &str) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{labels},")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expfmt::parse_text;

    #[test]
    fn render_is_valid_text_format() {
        let m = Metrics::default();
        m.add(PUSHES, &["PUT", "200"], 2.0);
        m.add(SINK_DROPPED, &["vm", "rejected"], 5.0);
        m.set(SINK_QUEUE_POINTS, &["vm"], 7.0);
        m.observe(PUSH_DURATION, &["PUT"], 0.003);
        m.add_samples_received(10);
        let text = m.render();
        let families = parse_text(text.as_bytes()).unwrap();
        let names: Vec<_> = families.iter().map(|f| f.name.as_str()).collect();
        assert!(names.contains(&PUSHES));
        assert!(names.contains(&PUSH_DURATION));
        assert!(text.contains("pushkit_pushes_total{method=\"PUT\",code=\"200\"} 2\n"));
        assert!(
            text.contains("pushkit_sink_points_dropped_total{sink=\"vm\",reason=\"rejected\"} 5\n")
        );
        assert!(
            text.contains("pushkit_push_duration_seconds_bucket{method=\"PUT\",le=\"0.005\"} 1\n")
        );
        assert!(
            text.contains("pushkit_push_duration_seconds_bucket{method=\"PUT\",le=\"0.001\"} 0\n")
        );
        assert!(text.contains("pushkit_samples_received_total 10\n"));
        assert_eq!(m.counter_value(PUSHES, &["PUT", "200"]), 2.0);
    }
}
