//! Remote write's messages for what only some points carry: native
//! histograms (`prometheus.Histogram`, `TimeSeries` field 4) and exemplars
//! (`prometheus.Exemplar`, field 3), and how a point's [`PointExtra`] maps
//! onto them.
//!
//! A native histogram goes out as pushed: an integer histogram (deltas,
//! integer counts) as `count_int`, `zero_count_int` and deltas; a float one
//! (absolute counts, `_float` counts) as `count_float`, `zero_count_float`
//! and counts. Its count and sum are the point's `_count` and `_sum` fields;
//! a gauge histogram gets the reset hint `GAUGE`. An exemplar without a
//! timestamp gets its sample's, as Prometheus' scrape gives it.
//!
//! The `oneof` fields (`count`, `zero_count`) are optional fields here:
//! proto3 writes a set oneof member even when zero, as prost writes a
//! `Some` optional field, so the bytes are the same.
//!
//! [`PointExtra`]: crate::model::point::PointExtra

use super::Label;
use crate::model::family::{Exemplar as ModelExemplar, NativeBuckets, NativeHistogram};

/// `prometheus.Exemplar`; `timestamp` in ms.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(double, tag = "2")]
    pub value: f64,
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// `prometheus.BucketSpan`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BucketSpan {
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    #[prost(uint32, tag = "2")]
    pub length: u32,
}

/// `prometheus.Histogram`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    #[prost(uint64, optional, tag = "1")]
    pub count_int: Option<u64>,
    #[prost(double, optional, tag = "2")]
    pub count_float: Option<f64>,
    #[prost(double, tag = "3")]
    pub sum: f64,
    #[prost(sint32, tag = "4")]
    pub schema: i32,
    #[prost(double, tag = "5")]
    pub zero_threshold: f64,
    #[prost(uint64, optional, tag = "6")]
    pub zero_count_int: Option<u64>,
    #[prost(double, optional, tag = "7")]
    pub zero_count_float: Option<f64>,
    #[prost(message, repeated, tag = "8")]
    pub negative_spans: Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "9")]
    pub negative_deltas: Vec<i64>,
    #[prost(double, repeated, tag = "10")]
    pub negative_counts: Vec<f64>,
    #[prost(message, repeated, tag = "11")]
    pub positive_spans: Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "12")]
    pub positive_deltas: Vec<i64>,
    #[prost(double, repeated, tag = "13")]
    pub positive_counts: Vec<f64>,
    /// 0 unknown, 1 yes, 2 no, 3 gauge.
    #[prost(int32, tag = "14")]
    pub reset_hint: i32,
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
}

/// `ResetHint.GAUGE`.
const RESET_HINT_GAUGE: i32 = 3;

pub fn exemplar(e: &ModelExemplar, sample_ms: i64) -> Exemplar {
    Exemplar {
        labels: e
            .labels
            .iter()
            .map(|(name, value)| Label {
                name: name.to_string(),
                value: value.to_string(),
            })
            .collect(),
        value: e.value,
        timestamp: if e.timestamp.is_some() {
            e.timestamp_ms()
        } else {
            sample_ms
        },
    }
}

/// A native histogram sample: its native part, `count` and `sum` (the
/// point's fields) at `timestamp` ms.
pub fn histogram(
    n: &NativeHistogram,
    count: f64,
    sum: f64,
    gauge: bool,
    timestamp: i64,
) -> Histogram {
    let float = n.is_float() || count.fract() != 0.0 || count < 0.0;
    let spans = |b: &NativeBuckets| {
        b.spans
            .iter()
            .map(|&(offset, length)| BucketSpan { offset, length })
            .collect()
    };
    let mut h = Histogram {
        sum,
        schema: n.schema.unwrap_or(0),
        zero_threshold: n.zero_threshold.unwrap_or(0.0),
        negative_spans: spans(&n.negative),
        positive_spans: spans(&n.positive),
        reset_hint: if gauge { RESET_HINT_GAUGE } else { 0 },
        timestamp,
        ..Histogram::default()
    };
    if float {
        h.count_float = Some(count);
        h.zero_count_float = Some(n.zero_count());
        h.negative_counts = absolute(&n.negative);
        h.positive_counts = absolute(&n.positive);
    } else {
        h.count_int = Some(count as u64);
        h.zero_count_int = Some(n.zero_count() as u64);
        h.negative_deltas = deltas(&n.negative);
        h.positive_deltas = deltas(&n.positive);
    }
    h
}

/// Absolute bucket counts: as pushed, or summed up from the deltas.
fn absolute(b: &NativeBuckets) -> Vec<f64> {
    if !b.counts.is_empty() {
        return b.counts.clone();
    }
    let mut running = 0i64;
    b.deltas
        .iter()
        .map(|&d| {
            running = running.wrapping_add(d);
            running as f64
        })
        .collect()
}

/// Deltas between bucket counts: as pushed, or taken from the counts.
fn deltas(b: &NativeBuckets) -> Vec<i64> {
    if !b.deltas.is_empty() || b.counts.is_empty() {
        return b.deltas.clone();
    }
    let mut prev = 0i64;
    b.counts
        .iter()
        .map(|&c| {
            let c = c as i64;
            let d = c.wrapping_sub(prev);
            prev = c;
            d
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_and_float_histograms_keep_their_form() {
        let int = NativeHistogram {
            sample_count: None,
            sample_count_float: None,
            schema: Some(2),
            zero_threshold: Some(1e-9),
            zero_count: Some(3),
            zero_count_float: None,
            negative: NativeBuckets::default(),
            positive: NativeBuckets {
                spans: vec![(-1, 3)],
                deltas: vec![4, -2, 1],
                counts: vec![],
            },
        };
        let h = histogram(&int, 10.0, 2.5, false, 7);
        assert_eq!(h.count_int, Some(10));
        assert_eq!(h.count_float, None);
        assert_eq!(h.zero_count_int, Some(3));
        assert_eq!(h.positive_deltas, vec![4, -2, 1]);
        assert!(h.positive_counts.is_empty());
        assert_eq!(
            h.positive_spans,
            vec![BucketSpan {
                offset: -1,
                length: 3
            }]
        );
        assert_eq!(
            (h.schema, h.zero_threshold, h.sum, h.timestamp),
            (2, 1e-9, 2.5, 7)
        );
        assert_eq!(h.reset_hint, 0);

        let float = NativeHistogram {
            zero_count_float: Some(0.5),
            positive: NativeBuckets {
                spans: vec![(0, 2)],
                deltas: vec![],
                counts: vec![1.5, 2.0],
            },
            ..int.clone()
        };
        let h = histogram(&float, 4.0, 1.0, true, 0);
        assert_eq!(h.count_float, Some(4.0));
        assert_eq!(h.count_int, None);
        assert_eq!(h.zero_count_float, Some(0.5));
        assert_eq!(h.positive_counts, vec![1.5, 2.0]);
        assert!(h.positive_deltas.is_empty());
        assert_eq!(h.reset_hint, RESET_HINT_GAUGE);
        assert_eq!(absolute(&int.positive), vec![4.0, 2.0, 3.0]);
        assert_eq!(deltas(&float.positive), vec![1, 1]);
    }

    #[test]
    fn an_exemplar_without_time_takes_its_sample_time() {
        let e = ModelExemplar {
            labels: vec![("trace_id".into(), "x".into())],
            value: 0.5,
            timestamp: None,
        };
        assert_eq!(exemplar(&e, 1234).timestamp, 1234);
        let e = ModelExemplar {
            timestamp: Some((2, 5_000_000)),
            ..e
        };
        let got = exemplar(&e, 1234);
        assert_eq!(got.timestamp, 2005);
        assert_eq!(got.labels[0].name, "trace_id");
    }
}
