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
    /// True when the push carried native (sparse) histogram data. Native
    /// buckets are not modelled: only count, sum and classic buckets are.
    pub has_native: bool,
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
