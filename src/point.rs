//! A point (measurement, tags, fields, time), as sinks that need one
//! (remote write, the disk queue) take it.

use crate::expfmt::model::{LabelStr, MetricType};
use crate::lineproto;
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

impl Point {
    /// Appends the point as one line of line protocol, newline included.
    pub fn write_line_protocol(&self, out: &mut Vec<u8>) {
        lineproto::write_line(
            out,
            &self.measurement,
            self.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            self.fields.iter().map(|f| (f.key.as_str(), f.value)),
            self.time_ns,
        );
    }
}

/// Encodes points as a line-protocol body.
pub fn encode_line_protocol(points: &[Point]) -> Vec<u8> {
    let mut out = Vec::with_capacity(points.len() * 96);
    for p in points {
        p.write_line_protocol(&mut out);
    }
    out
}

/// Now, in ns since the Unix epoch (0 if the clock is before 1970).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_is_one_line() {
        let p = Point {
            measurement: "etcd".into(),
            tags: vec![("job".into(), "j".into())],
            fields: vec![
                Field {
                    key: "etcd_up".into(),
                    value: 1.0,
                    suffix: SeriesSuffix::None,
                },
                Field {
                    key: "etcd_x".into(),
                    value: 0.5,
                    suffix: SeriesSuffix::None,
                },
            ],
            time_ns: 1_700_000_000_000_000_000,
            family: Arc::from("x"),
            kind: MetricType::Gauge,
        };
        assert_eq!(
            encode_line_protocol(&[p.clone(), p]),
            b"etcd,job=j etcd_up=1,etcd_x=0.5 1700000000000000000\n".repeat(2)
        );
    }
}
