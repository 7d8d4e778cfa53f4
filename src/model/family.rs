//! The one in-memory model of pushed metrics, shared by the text parser, the
//! protobuf decoder, the converter and (later) the store.
//!
//! It mirrors `io.prometheus.client.MetricFamily` closely enough that text and
//! protobuf pushes of the same data give equal values, but it is owned plain
//! Rust data with no optional-field ceremony.

/// The type of a metric family, as `TYPE` lines and `MetricType` name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    Counter,
    Gauge,
    Summary,
    Untyped,
    Histogram,
    GaugeHistogram,
}

impl MetricType {
    /// The lowercase name used in `# TYPE` lines (`gauge_histogram` as the Go
    /// text parser spells it).
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Summary => "summary",
            MetricType::Untyped => "untyped",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gauge_histogram",
        }
    }

    /// True for the types whose samples are histograms.
    pub fn is_histogram(self) -> bool {
        matches!(self, MetricType::Histogram | MetricType::GaugeHistogram)
    }
}

/// One metric family: a name, its HELP and TYPE, and its metrics in push order.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: String,
    /// `None` when the push carried no HELP for the family.
    pub help: Option<String>,
    pub kind: MetricType,
    pub metrics: Vec<Metric>,
}

/// A label name or value. Strings of up to 24 bytes (nearly every label)
/// are kept inline, so parsing a push, forcing its grouping labels and
/// mapping it to points copy labels without allocating for each one.
pub type LabelStr = compact_str::CompactString;

/// Orders label names as `str::cmp` does, deciding on the first bytes
/// inline when they differ, as they mostly do among one series' label
/// names: sorting and searching label sets otherwise spend their time
/// calling `memcmp` for a few bytes.
pub fn cmp_names(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.as_bytes().first(), b.as_bytes().first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

/// Room a parser leaves in a metric's label vector for the grouping labels
/// (job, instance) the store forces onto every series.
pub const GROUPING_LABELS_ROOM: usize = 2;

/// True when the label names are sorted and none comes twice, as clients
/// usually write them.
pub fn names_sorted(labels: &[(LabelStr, LabelStr)]) -> bool {
    labels
        .windows(2)
        .all(|w| cmp_names(&w[0].0, &w[1].0).is_lt())
}

/// One metric (one label set) of a family.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Label pairs in push order. Never contains `__name__`, nor the `le` of a
    /// histogram or the `quantile` of a summary: those live in `value`.
    pub labels: Vec<(LabelStr, LabelStr)>,
    pub value: Value,
    /// Milliseconds since the Unix epoch, when the push carried one.
    pub timestamp_ms: Option<i64>,
    /// A counter's exemplar (`Counter.exemplar`), when the push carried
    /// one; only protobuf pushes can. A histogram keeps its exemplars in
    /// its value.
    pub exemplar: Option<Box<Exemplar>>,
}

/// An exemplar: one observation with labels of its own (a trace id, say),
/// as `io.prometheus.client.Exemplar` carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    pub labels: Vec<(LabelStr, LabelStr)>,
    pub value: f64,
    /// `google.protobuf.Timestamp` as (seconds, nanos), when it has one.
    pub timestamp: Option<(i64, i32)>,
}

impl Exemplar {
    /// Its timestamp in milliseconds since the Unix epoch (0 without one),
    /// as remote write carries it.
    pub fn timestamp_ms(&self) -> i64 {
        self.timestamp.map_or(0, |(s, n)| {
            s.saturating_mul(1000)
                .saturating_add(i64::from(n) / 1_000_000)
        })
    }
}

/// The value of a metric, shaped by the family's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Counter, gauge and untyped.
    Simple(f64),
    Summary(Summary),
    /// Histogram and gauge histogram.
    Histogram(Histogram),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    pub sample_count: f64,
    pub sample_sum: f64,
    /// `(quantile, value)` pairs in push order.
    pub quantiles: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Histogram {
    pub sample_count: f64,
    pub sample_sum: f64,
    /// `(upper_bound, cumulative_count)` pairs in push order. A protobuf push
    /// from the Go client leaves out the `+Inf` bucket; the converter adds it.
    pub buckets: Vec<(f64, f64)>,
    /// The native (sparse) part, when the push carried one: a native or a
    /// mixed classic-and-native histogram. Boxed: most histograms have none.
    pub native: Option<Box<NativeHistogram>>,
    /// Its exemplars, when the push carried any.
    pub exemplars: Option<Box<HistogramExemplars>>,
}

/// The native part of a histogram, field for field as
/// `io.prometheus.client.Histogram` carries it: each field is kept present
/// or absent as it was pushed, so that it is exposed as it came.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NativeHistogram {
    /// The count fields as pushed (`sample_count`, `sample_count_float`):
    /// a float histogram has only the float one, which the histogram's
    /// plain count cannot tell.
    pub sample_count: Option<u64>,
    pub sample_count_float: Option<f64>,
    pub schema: Option<i32>,
    pub zero_threshold: Option<f64>,
    pub zero_count: Option<u64>,
    pub zero_count_float: Option<f64>,
    pub negative: NativeBuckets,
    pub positive: NativeBuckets,
}

/// The native buckets of one sign: spans of consecutive bucket indexes
/// and, per bucket, deltas (an integer histogram) or absolute counts (a
/// float histogram), as they were pushed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NativeBuckets {
    /// `(offset, length)` pairs.
    pub spans: Vec<(i32, u32)>,
    pub deltas: Vec<i64>,
    pub counts: Vec<f64>,
}

impl NativeHistogram {
    /// Its zero bucket's count, the float one when it is set (the rule of
    /// `zero_count_float`).
    pub fn zero_count(&self) -> f64 {
        match self.zero_count_float {
            Some(f) if f > 0.0 => f,
            _ => self.zero_count.unwrap_or(0) as f64,
        }
    }

    /// True for a float histogram: its buckets carry absolute counts.
    pub fn is_float(&self) -> bool {
        !self.positive.counts.is_empty()
            || !self.negative.counts.is_empty()
            || self.zero_count_float.is_some_and(|f| f > 0.0)
    }
}

/// A histogram's exemplars: those of its classic buckets
/// (`Bucket.exemplar`) and those of its native part (`Histogram.exemplars`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistogramExemplars {
    /// `(bucket index, exemplar)`, by increasing index.
    pub buckets: Vec<(usize, Exemplar)>,
    pub native: Vec<Exemplar>,
}

impl HistogramExemplars {
    /// The exemplar of classic bucket `index`, if it has one.
    pub fn of_bucket(&self, index: usize) -> Option<&Exemplar> {
        self.buckets
            .binary_search_by_key(&index, |(i, _)| *i)
            .ok()
            .map(|at| &self.buckets[at].1)
    }
}

impl Histogram {
    /// True when it carries anything beyond count, sum and classic buckets.
    pub fn has_extras(&self) -> bool {
        self.native.is_some() || self.exemplars.is_some()
    }
}

/// The first series that appears twice in `families`, described as
/// `name{labels}`: two metrics of one family whose labels are equal once
/// labels with an empty value (absent ones, as Prometheus has it) are left
/// out. For a push that no store checks (`store = false`).
pub fn duplicate_series(families: &[Family]) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    for family in families {
        seen.clear();
        for metric in &family.metrics {
            let mut labels: Vec<(&str, &str)> = metric
                .labels
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            labels.sort_unstable();
            if !seen.insert(labels) {
                let shown: Vec<String> = metric
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v:?}"))
                    .collect();
                return Some(format!("{}{{{}}}", family.name, shown.join(",")));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::cmp_names;

    #[test]
    fn cmp_names_orders_as_str_does() {
        let names = [
            "", "a", "A", "_", "ab", "abc", "b", "instance", "job", "j", "é", "z9",
        ];
        for a in names {
            for b in names {
                assert_eq!(cmp_names(a, b), a.cmp(b), "{a:?} {b:?}");
            }
        }
    }
}
