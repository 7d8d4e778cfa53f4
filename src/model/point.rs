//! A point (measurement, tags, fields, time), as sinks that need one
//! (remote write, the disk queue) take it. `lineproto` writes it as a line.

use super::family::{Exemplar, LabelStr, MetricType, NativeHistogram};
use std::sync::Arc;

/// Which Prometheus series a field stands for, relative to the family name.
/// Sinks that speak Prometheus (remote write) rebuild the series name from
/// this; the field key alone cannot tell it once the mapping has renamed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesSuffix {
    None,
    Count,
    Sum,
    Bucket,
}

impl SeriesSuffix {
    pub fn as_str(self) -> &'static str {
        match self {
            SeriesSuffix::None => "",
            SeriesSuffix::Count => "_count",
            SeriesSuffix::Sum => "_sum",
            SeriesSuffix::Bucket => "_bucket",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub key: LabelStr,
    pub value: f64,
    pub suffix: SeriesSuffix,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub measurement: LabelStr,
    /// Sorted by key, unique keys, no empty values.
    pub tags: Vec<(LabelStr, LabelStr)>,
    pub fields: Vec<Field>,
    /// Nanoseconds since the Unix epoch.
    pub time_ns: i64,
    /// The original Prometheus family name and type.
    pub family: Arc<str>,
    pub kind: MetricType,
    /// What only Prometheus' own protocols carry, when the sample had any;
    /// boxed, as nearly every point has none.
    pub extra: Option<Box<PointExtra>>,
}

/// A point's native histogram and exemplars, which remote write carries
/// and line protocol cannot.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PointExtra {
    /// On a histogram's `_count`/`_sum` point: its native part (count and
    /// sum are the point's fields). Remote write sends it as the series
    /// named after the family, without suffix.
    pub native: Option<NativeHistogram>,
    /// Exemplars of the point's main series: a counter's own, a classic
    /// bucket's (`_bucket{le}`), or a native histogram's.
    pub exemplars: Vec<Exemplar>,
}

/// Now, in ns since the Unix epoch (0 if the clock is before 1970).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
