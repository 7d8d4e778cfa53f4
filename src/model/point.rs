//! A point (measurement, tags, fields, time), as sinks that need one
//! (remote write, the disk queue) take it. `lineproto` writes it as a line.

use super::family::{LabelStr, MetricType};
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
}

/// Now, in ns since the Unix epoch (0 if the clock is before 1970).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
