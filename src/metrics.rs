//! The agent's own metrics, exposed at `GET P/metrics` beside the stored
//! groups.
//!
//! Every metric is declared once in [`CATALOG`]; the README's table of self
//! metrics is checked against it by a test, so the two cannot drift.
//!
//! Components hold typed handles ([`Counter`], [`Gauge`], [`Histogram`]),
//! got once from [`Metrics`] (per label values, with [`Labelled::with`])
//! and updated with atomics: nothing allocates or takes a lock per update.
//! A scrape reads them into [`Family`]s directly ([`Metrics::families`]).
//! This module imports nothing of pushkit but the model.

use crate::model::family::{self, Family, Metric, MetricType, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// One self metric as documented.
pub struct MetricDoc {
    pub name: &'static str,
    pub kind: MetricType,
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
pub const SINK_EXPORTS: &str = "pushkit_sink_exports_total";
pub const SINK_EXPORT_POINTS: &str = "pushkit_sink_export_points_total";
pub const LOG_FSYNCS: &str = "pushkit_log_fsyncs_total";
pub const LOG_DAMAGED_BYTES: &str = "pushkit_log_damaged_bytes_total";
pub const DATA_FAILED: &str = "pushkit_data_failed";
pub const DATA_DIR_FREE_BYTES: &str = "pushkit_data_dir_free_bytes";
pub const HTTP_RATE_LIMITED: &str = "pushkit_http_rate_limited_total";
pub const HTTP_UNAUTHORIZED: &str = "pushkit_http_unauthorized_total";
pub const STORE_LOCK_MAX_HOLD: &str = "pushkit_store_lock_max_hold_seconds";
pub const STORE_GROUPS: &str = "pushkit_store_groups";
pub const STORE_SERIES: &str = "pushkit_store_series";
pub const STORE_MAX_GROUPS: &str = "pushkit_store_max_groups";
pub const STORE_MAX_SERIES: &str = "pushkit_store_max_series";

pub const CATALOG: &[MetricDoc] = &[
    MetricDoc {
        name: PUSHES,
        kind: MetricType::Counter,
        labels: &["method", "code"],
        help: "Push requests handled, by HTTP method and status code.",
    },
    MetricDoc {
        name: PUSH_DURATION,
        kind: MetricType::Histogram,
        labels: &["method"],
        help: "Time from a push request's arrival to its reply.",
    },
    MetricDoc {
        name: SAMPLES_RECEIVED,
        kind: MetricType::Counter,
        labels: &[],
        help: "Samples received in accepted pushes.",
    },
    MetricDoc {
        name: POINTS_EMITTED,
        kind: MetricType::Counter,
        labels: &[],
        help: "Points produced by the mapping and handed to the sinks.",
    },
    MetricDoc {
        name: SINK_REQUESTS,
        kind: MetricType::Counter,
        labels: &["sink", "outcome"],
        help: "Write requests to a sink, by outcome: success, retry (network error, timeout, 429 or 5xx) or rejected (other 4xx).",
    },
    MetricDoc {
        name: SINK_REQUEST_DURATION,
        kind: MetricType::Histogram,
        labels: &["sink"],
        help: "Duration of write requests to a sink.",
    },
    MetricDoc {
        name: SINK_DELIVERED,
        kind: MetricType::Counter,
        labels: &["sink"],
        help: "Points a sink acknowledged.",
    },
    MetricDoc {
        name: SINK_DROPPED,
        kind: MetricType::Counter,
        labels: &["sink", "reason"],
        help: "Points given up on, by reason: rejected (the backend answered a 4xx other than 429), queue_full (overflow = drop_oldest), shutdown (memory queue not delivered within shutdown_timeout), encode (a batch that could not be encoded), corrupt (unreadable from a damaged disk queue); and samples the sink's format cannot carry: non_finite (NaN or ±Inf in line protocol), field_is_tag (a line-protocol field keyed like a tag of its point), native_buckets (a native histogram's buckets, in line protocol), exemplar (an exemplar, in line protocol).",
    },
    MetricDoc {
        name: SINK_QUEUE_POINTS,
        kind: MetricType::Gauge,
        labels: &["sink"],
        help: "Points waiting in a sink's queue, the batch in flight included.",
    },
    MetricDoc {
        name: SINK_QUEUE_BYTES,
        kind: MetricType::Gauge,
        labels: &["sink"],
        help: "Estimated line-protocol bytes waiting in a sink's queue (record bytes with queue_dir).",
    },
    MetricDoc {
        name: SINK_QUEUE_OLDEST_AGE,
        kind: MetricType::Gauge,
        labels: &["sink"],
        help: "Age of the oldest point in a sink's queue; 0 when it is empty.",
    },
    MetricDoc {
        name: SINK_RETRIED,
        kind: MetricType::Counter,
        labels: &["sink"],
        help: "Points in write requests that failed and were retried (network error, timeout, 429 or 5xx).",
    },
    MetricDoc {
        name: SINK_DUPLICATES,
        kind: MetricType::Counter,
        labels: &["sink", "reason"],
        help: "Points delivered that the backend may already hold: retried after a timeout or reset (timeout), or sent again after a restart because the crash came before the acknowledgement was recorded (restart).",
    },
    MetricDoc {
        name: SINK_EXPORTS,
        kind: MetricType::Counter,
        labels: &["sink", "outcome"],
        help: "Exports of the store to a sink (export_interval), by outcome: queued, skipped (it did not fit in the room the sink's queue budget had free), sent (delivered whole), cut (a push needed its room, a newer export replaced it, or a request failed: exports are never retried).",
    },
    MetricDoc {
        name: SINK_EXPORT_POINTS,
        kind: MetricType::Counter,
        labels: &["sink", "outcome"],
        help: "Points of store exports, counted apart from pushed points, by outcome: delivered (staleness markers included), rejected (the backend answered a 4xx other than 429), left_out (samples line protocol cannot carry).",
    },
    MetricDoc {
        name: LOG_FSYNCS,
        kind: MetricType::Counter,
        labels: &[],
        help: "Group commits of the durable logs (the store's journal and the disk queue, or the one log they share): one fsync each, covering every record appended since the last.",
    },
    MetricDoc {
        name: LOG_DAMAGED_BYTES,
        kind: MetricType::Counter,
        labels: &[],
        help: "Bytes of the durable logs' files found damaged at start and skipped, their records lost: a flipped byte costs its record, not the file.",
    },
    MetricDoc {
        name: DATA_FAILED,
        kind: MetricType::Gauge,
        labels: &["data"],
        help: "1 while the store's journal (data=\"journal\") or the sinks' disk queue (data=\"disk_queue\") refuses appends after a failed write or fsync (a full disk, until there is room; an I/O error, until a fresh file is started), and /-/ready says why; 0 otherwise.",
    },
    MetricDoc {
        name: DATA_DIR_FREE_BYTES,
        kind: MetricType::Gauge,
        labels: &["dir"],
        help: "Bytes free for pushkit on the filesystem of persistence_dir or queue_dir (dir names the key).",
    },
    MetricDoc {
        name: HTTP_RATE_LIMITED,
        kind: MetricType::Counter,
        labels: &["class"],
        help: "Requests refused with 429 rateLimited, by route class (push, admin, read).",
    },
    MetricDoc {
        name: HTTP_UNAUTHORIZED,
        kind: MetricType::Counter,
        labels: &["class"],
        help: "Requests refused with 401 for missing or wrong credentials, by route class.",
    },
    MetricDoc {
        name: STORE_LOCK_MAX_HOLD,
        kind: MetricType::Gauge,
        labels: &[],
        help: "Longest time one caller held the group store's lock since the previous GET of the exposition, which reads and resets it; set by the store, absent without one.",
    },
    MetricDoc {
        name: STORE_GROUPS,
        kind: MetricType::Gauge,
        labels: &[],
        help: "Groups the store holds; set by the store, absent without one.",
    },
    MetricDoc {
        name: STORE_SERIES,
        kind: MetricType::Gauge,
        labels: &[],
        help: "Series the store holds; set by the store, absent without one.",
    },
    MetricDoc {
        name: STORE_MAX_GROUPS,
        kind: MetricType::Gauge,
        labels: &[],
        help: "The store's max_groups (0: no limit); set by the store, absent without one.",
    },
    MetricDoc {
        name: STORE_MAX_SERIES,
        kind: MetricType::Gauge,
        labels: &[],
        help: "The store's max_series (0: no limit); set by the store, absent without one.",
    },
];

const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// An `f64` updated atomically (its bits in an `AtomicU64`).
#[derive(Default)]
struct AtomicF64(AtomicU64);

impl AtomicF64 {
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    fn add(&self, v: f64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }
}

/// A counter: only ever goes up.
#[derive(Default)]
pub struct Counter(AtomicF64);

impl Counter {
    pub fn add(&self, v: f64) {
        self.0.add(v);
    }

    pub fn get(&self) -> f64 {
        self.0.get()
    }

    /// Sets the counter to a total counted elsewhere (never lower than
    /// before, as a counter must not go down).
    pub fn set_total(&self, total: f64) {
        let _ = self
            .0
             .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                (total > f64::from_bits(bits)).then_some(total.to_bits())
            });
    }
}

/// A gauge: set to the current value.
#[derive(Default)]
pub struct Gauge(AtomicF64);

impl Gauge {
    pub fn set(&self, v: f64) {
        self.0.set(v);
    }

    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

/// A histogram of durations in seconds, over [`DURATION_BUCKETS`].
#[derive(Default)]
pub struct Histogram {
    /// Non-cumulative counts per bucket; made cumulative when read.
    buckets: [AtomicU64; DURATION_BUCKETS.len()],
    count: AtomicU64,
    sum: AtomicF64,
}

impl Histogram {
    pub fn observe(&self, v: f64) {
        if let Some(i) = DURATION_BUCKETS.iter().position(|le| v <= *le) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.add(v);
    }

    fn value(&self) -> Value {
        let mut cumulative = 0;
        let count = self.count.load(Ordering::Relaxed) as f64;
        // The +Inf bucket is written out, so that the protobuf exposition
        // (which adds none) carries it too.
        let buckets = DURATION_BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(le, c)| {
                cumulative += c.load(Ordering::Relaxed);
                (*le, cumulative as f64)
            })
            .chain([(f64::INFINITY, count)])
            .collect();
        Value::Histogram(family::Histogram {
            sample_count: count,
            sample_sum: self.sum.get(),
            buckets,
            native: None,
            exemplars: None,
        })
    }
}

/// A metric's series, one per set of label values, each a handle of type
/// `T`. Series are created on first use and never removed; there are few
/// (sinks × outcomes, methods × status codes).
pub struct Labelled<T> {
    series: RwLock<Vec<Series<T>>>,
}

/// One series: its label values and its handle.
type Series<T> = (Box<[String]>, Arc<T>);

impl<T> Default for Labelled<T> {
    fn default() -> Self {
        Labelled {
            series: RwLock::new(Vec::new()),
        }
    }
}

impl<T: Default> Labelled<T> {
    /// The handle for `values` (in the order of the metric's label names).
    /// Keep it where the same series is updated often.
    pub fn with(&self, values: &[&str]) -> Arc<T> {
        let same = |k: &[String]| k.iter().map(String::as_str).eq(values.iter().copied());
        let read = self.series.read().unwrap_or_else(|p| p.into_inner());
        if let Some((_, h)) = read.iter().find(|(k, _)| same(k)) {
            return h.clone();
        }
        drop(read);
        let mut write = self.series.write().unwrap_or_else(|p| p.into_inner());
        if let Some((_, h)) = write.iter().find(|(k, _)| same(k)) {
            return h.clone();
        }
        let h = Arc::new(T::default());
        write.push((values.iter().map(|v| v.to_string()).collect(), h.clone()));
        h
    }

    /// Every series as `(labels, value)`, sorted by label values.
    fn metrics(&self, doc: &MetricDoc, value: impl Fn(&T) -> Value) -> Vec<Metric> {
        let series = self.series.read().unwrap_or_else(|p| p.into_inner());
        let mut sorted: Vec<_> = series.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        sorted
            .into_iter()
            .map(|(values, h)| Metric {
                labels: doc
                    .labels
                    .iter()
                    .zip(values.iter())
                    .map(|(n, v)| ((*n).into(), v.as_str().into()))
                    .collect(),
                value: value(h),
                timestamp_ms: None,
                exemplar: None,
            })
            .collect()
    }
}

/// Every self metric of one agent.
#[derive(Default)]
pub struct Metrics {
    pub pushes: Labelled<Counter>,
    pub push_duration: Labelled<Histogram>,
    pub samples_received: Counter,
    pub points_emitted: Counter,
    pub sink_requests: Labelled<Counter>,
    pub sink_request_duration: Labelled<Histogram>,
    pub sink_delivered: Labelled<Counter>,
    pub sink_dropped: Labelled<Counter>,
    pub sink_queue_points: Labelled<Gauge>,
    pub sink_queue_bytes: Labelled<Gauge>,
    pub sink_queue_oldest_age: Labelled<Gauge>,
    pub sink_retried: Labelled<Counter>,
    pub sink_duplicates: Labelled<Counter>,
    pub sink_exports: Labelled<Counter>,
    pub sink_export_points: Labelled<Counter>,
    /// Set from the durable engine's count when a scrape reads it.
    pub log_fsyncs: Counter,
    /// Set from the durable engine's count when a scrape reads it.
    pub log_damaged_bytes: Counter,
    /// Set when a scrape reads them.
    pub data_failed: Labelled<Gauge>,
    pub data_dir_free_bytes: Labelled<Gauge>,
    pub http_rate_limited: Labelled<Counter>,
    pub http_unauthorized: Labelled<Counter>,
    /// Each sink's last delivery error and its time (ns since the epoch),
    /// for the status page; not a metric.
    sink_errors: std::sync::Mutex<std::collections::BTreeMap<String, (String, i64)>>,
}

impl Metrics {
    /// Records `message` as sink `sink`'s last error, now.
    pub fn note_sink_error(&self, sink: &str, message: String) {
        let now = crate::model::point::now_ns();
        let mut errors = self.sink_errors.lock().unwrap_or_else(|p| p.into_inner());
        errors.insert(sink.to_string(), (message, now));
    }

    /// Each sink's last error and its time, by sink name.
    pub fn sink_errors(&self) -> std::collections::BTreeMap<String, (String, i64)> {
        self.sink_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every self metric as a family, in [`CATALOG`] order, with HELP and
    /// TYPE as documented there.
    pub fn families(&self) -> Vec<Family> {
        let counter = |c: &Counter| Value::Simple(c.get());
        let gauge = |g: &Gauge| Value::Simple(g.get());
        let histogram = |h: &Histogram| h.value();
        CATALOG
            .iter()
            .map(|doc| {
                let metrics = match doc.name {
                    PUSHES => self.pushes.metrics(doc, counter),
                    PUSH_DURATION => self.push_duration.metrics(doc, histogram),
                    SAMPLES_RECEIVED => vec![unlabelled(counter(&self.samples_received))],
                    POINTS_EMITTED => vec![unlabelled(counter(&self.points_emitted))],
                    SINK_REQUESTS => self.sink_requests.metrics(doc, counter),
                    SINK_REQUEST_DURATION => self.sink_request_duration.metrics(doc, histogram),
                    SINK_DELIVERED => self.sink_delivered.metrics(doc, counter),
                    SINK_DROPPED => self.sink_dropped.metrics(doc, counter),
                    SINK_QUEUE_POINTS => self.sink_queue_points.metrics(doc, gauge),
                    SINK_QUEUE_BYTES => self.sink_queue_bytes.metrics(doc, gauge),
                    SINK_QUEUE_OLDEST_AGE => self.sink_queue_oldest_age.metrics(doc, gauge),
                    SINK_RETRIED => self.sink_retried.metrics(doc, counter),
                    SINK_DUPLICATES => self.sink_duplicates.metrics(doc, counter),
                    SINK_EXPORTS => self.sink_exports.metrics(doc, counter),
                    SINK_EXPORT_POINTS => self.sink_export_points.metrics(doc, counter),
                    LOG_FSYNCS => vec![unlabelled(counter(&self.log_fsyncs))],
                    LOG_DAMAGED_BYTES => vec![unlabelled(counter(&self.log_damaged_bytes))],
                    DATA_FAILED => self.data_failed.metrics(doc, gauge),
                    DATA_DIR_FREE_BYTES => self.data_dir_free_bytes.metrics(doc, gauge),
                    HTTP_RATE_LIMITED => self.http_rate_limited.metrics(doc, counter),
                    HTTP_UNAUTHORIZED => self.http_unauthorized.metrics(doc, counter),
                    // The store sets it as it writes the exposition.
                    STORE_LOCK_MAX_HOLD | STORE_GROUPS | STORE_SERIES | STORE_MAX_GROUPS
                    | STORE_MAX_SERIES => Vec::new(),
                    other => unreachable!("{other} is in CATALOG but has no handle"),
                };
                Family {
                    name: doc.name.to_string(),
                    help: Some(doc.help.to_string()),
                    kind: doc.kind,
                    metrics,
                }
            })
            .collect()
    }
}

fn unlabelled(value: Value) -> Metric {
    Metric {
        labels: Vec::new(),
        value,
        timestamp_ms: None,
        exemplar: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of `name`'s series with label values `values`.
    fn value(m: &Metrics, name: &str, values: &[&str]) -> Value {
        let f = m.families().into_iter().find(|f| f.name == name).unwrap();
        let metric = f
            .metrics
            .into_iter()
            .find(|s| {
                s.labels
                    .iter()
                    .map(|(_, v)| v.as_str())
                    .eq(values.iter().copied())
            })
            .unwrap_or_else(|| panic!("no {name}{values:?}"));
        metric.value
    }

    #[test]
    fn every_catalog_entry_has_a_family() {
        let names: Vec<_> = Metrics::default()
            .families()
            .into_iter()
            .map(|f| f.name)
            .collect();
        let want: Vec<_> = CATALOG.iter().map(|d| d.name.to_string()).collect();
        assert_eq!(names, want);
    }

    #[test]
    fn handles_update_what_a_scrape_reads() {
        let m = Metrics::default();
        m.pushes.with(&["PUT", "200"]).add(2.0);
        m.pushes.with(&["PUT", "200"]).add(1.0);
        m.sink_dropped.with(&["vm", "rejected"]).add(5.0);
        m.sink_queue_points.with(&["vm"]).set(7.0);
        m.sink_queue_points.with(&["vm"]).set(3.0);
        m.push_duration.with(&["PUT"]).observe(0.003);
        m.push_duration.with(&["PUT"]).observe(100.0);
        m.samples_received.add(10.0);
        assert_eq!(value(&m, PUSHES, &["PUT", "200"]), Value::Simple(3.0));
        assert_eq!(
            value(&m, SINK_DROPPED, &["vm", "rejected"]),
            Value::Simple(5.0)
        );
        assert_eq!(value(&m, SINK_QUEUE_POINTS, &["vm"]), Value::Simple(3.0));
        let Value::Histogram(h) = value(&m, PUSH_DURATION, &["PUT"]) else {
            panic!("a histogram");
        };
        let bucket = |le: f64| h.buckets.iter().find(|(b, _)| *b == le).unwrap().1;
        assert_eq!(bucket(0.005), 1.0);
        assert_eq!(bucket(0.001), 0.0);
        assert_eq!(bucket(10.0), 1.0);
        assert_eq!(bucket(f64::INFINITY), 2.0);
        assert_eq!(h.sample_count, 2.0);
        assert_eq!(value(&m, SAMPLES_RECEIVED, &[]), Value::Simple(10.0));
        assert_eq!(m.pushes.with(&["PUT", "200"]).get(), 3.0);
    }

    #[test]
    fn a_mirrored_total_never_goes_down() {
        let c = Counter::default();
        c.set_total(5.0);
        c.set_total(3.0);
        assert_eq!(c.get(), 5.0);
        c.set_total(8.0);
        assert_eq!(c.get(), 8.0);
    }

    #[test]
    fn series_are_sorted_by_label_values() {
        let m = Metrics::default();
        m.sink_delivered.with(&["b"]).add(1.0);
        m.sink_delivered.with(&["a"]).add(1.0);
        let f = m
            .families()
            .into_iter()
            .find(|f| f.name == SINK_DELIVERED)
            .unwrap();
        let sinks: Vec<_> = f
            .metrics
            .iter()
            .map(|m| m.labels[0].1.to_string())
            .collect();
        assert_eq!(sinks, ["a", "b"]);
    }
}
