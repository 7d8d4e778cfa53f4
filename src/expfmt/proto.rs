//! The protobuf messages of `io.prometheus.client` (prometheus/client_model
//! `metrics.proto`, proto2, with the native histogram fields), written by
//! hand for prost, and the conversions between them and the [`model`].
//!
//! Field numbers follow the real `metrics.proto`; repeated scalars are
//! unpacked as proto2 encodes them by default (decoding accepts both).

use super::ParseError;
use crate::model::family::{self as model, Family, LabelStr, Value};
use crate::model::names::{is_valid_label_name_with, is_valid_metric_name_with};

/// `google.protobuf.Timestamp`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPair {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MetricType {
    Counter = 0,
    Gauge = 1,
    Summary = 2,
    Untyped = 3,
    Histogram = 4,
    GaugeHistogram = 5,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Gauge {
    #[prost(double, optional, tag = "1")]
    pub value: Option<f64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Counter {
    #[prost(double, optional, tag = "1")]
    pub value: Option<f64>,
    #[prost(message, optional, tag = "2")]
    pub exemplar: Option<Exemplar>,
    #[prost(message, optional, tag = "3")]
    pub created_timestamp: Option<Timestamp>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Quantile {
    #[prost(double, optional, tag = "1")]
    pub quantile: Option<f64>,
    #[prost(double, optional, tag = "2")]
    pub value: Option<f64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    #[prost(uint64, optional, tag = "1")]
    pub sample_count: Option<u64>,
    #[prost(double, optional, tag = "2")]
    pub sample_sum: Option<f64>,
    #[prost(message, repeated, tag = "3")]
    pub quantile: Vec<Quantile>,
    #[prost(message, optional, tag = "4")]
    pub created_timestamp: Option<Timestamp>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Untyped {
    #[prost(double, optional, tag = "1")]
    pub value: Option<f64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    #[prost(uint64, optional, tag = "1")]
    pub sample_count: Option<u64>,
    /// Overrides `sample_count` if > 0.
    #[prost(double, optional, tag = "4")]
    pub sample_count_float: Option<f64>,
    #[prost(double, optional, tag = "2")]
    pub sample_sum: Option<f64>,
    /// Classic buckets, in increasing order of upper bound; +Inf optional.
    #[prost(message, repeated, tag = "3")]
    pub bucket: Vec<Bucket>,
    #[prost(message, optional, tag = "15")]
    pub created_timestamp: Option<Timestamp>,
    // Native (sparse) histogram fields.
    #[prost(sint32, optional, tag = "5")]
    pub schema: Option<i32>,
    #[prost(double, optional, tag = "6")]
    pub zero_threshold: Option<f64>,
    #[prost(uint64, optional, tag = "7")]
    pub zero_count: Option<u64>,
    #[prost(double, optional, tag = "8")]
    pub zero_count_float: Option<f64>,
    #[prost(message, repeated, tag = "9")]
    pub negative_span: Vec<BucketSpan>,
    #[prost(sint64, repeated, packed = "false", tag = "10")]
    pub negative_delta: Vec<i64>,
    #[prost(double, repeated, packed = "false", tag = "11")]
    pub negative_count: Vec<f64>,
    #[prost(message, repeated, tag = "12")]
    pub positive_span: Vec<BucketSpan>,
    #[prost(sint64, repeated, packed = "false", tag = "13")]
    pub positive_delta: Vec<i64>,
    #[prost(double, repeated, packed = "false", tag = "14")]
    pub positive_count: Vec<f64>,
    #[prost(message, repeated, tag = "16")]
    pub exemplars: Vec<Exemplar>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Bucket {
    #[prost(uint64, optional, tag = "1")]
    pub cumulative_count: Option<u64>,
    /// Overrides `cumulative_count` if > 0.
    #[prost(double, optional, tag = "4")]
    pub cumulative_count_float: Option<f64>,
    #[prost(double, optional, tag = "2")]
    pub upper_bound: Option<f64>,
    #[prost(message, optional, tag = "3")]
    pub exemplar: Option<Exemplar>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BucketSpan {
    #[prost(sint32, optional, tag = "1")]
    pub offset: Option<i32>,
    #[prost(uint32, optional, tag = "2")]
    pub length: Option<u32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    #[prost(message, repeated, tag = "1")]
    pub label: Vec<LabelPair>,
    #[prost(double, optional, tag = "2")]
    pub value: Option<f64>,
    #[prost(message, optional, tag = "3")]
    pub timestamp: Option<Timestamp>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    #[prost(message, repeated, tag = "1")]
    pub label: Vec<LabelPair>,
    #[prost(message, optional, tag = "2")]
    pub gauge: Option<Gauge>,
    #[prost(message, optional, tag = "3")]
    pub counter: Option<Counter>,
    #[prost(message, optional, tag = "4")]
    pub summary: Option<Summary>,
    #[prost(message, optional, tag = "5")]
    pub untyped: Option<Untyped>,
    #[prost(message, optional, tag = "7")]
    pub histogram: Option<Histogram>,
    #[prost(int64, optional, tag = "6")]
    pub timestamp_ms: Option<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricFamily {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub help: Option<String>,
    #[prost(enumeration = "MetricType", optional, tag = "3")]
    pub r#type: Option<i32>,
    #[prost(message, repeated, tag = "4")]
    pub metric: Vec<Metric>,
    #[prost(string, optional, tag = "5")]
    pub unit: Option<String>,
}

impl From<MetricType> for model::MetricType {
    fn from(t: MetricType) -> Self {
        match t {
            MetricType::Counter => model::MetricType::Counter,
            MetricType::Gauge => model::MetricType::Gauge,
            MetricType::Summary => model::MetricType::Summary,
            MetricType::Untyped => model::MetricType::Untyped,
            MetricType::Histogram => model::MetricType::Histogram,
            MetricType::GaugeHistogram => model::MetricType::GaugeHistogram,
        }
    }
}

impl From<model::MetricType> for MetricType {
    fn from(t: model::MetricType) -> Self {
        match t {
            model::MetricType::Counter => MetricType::Counter,
            model::MetricType::Gauge => MetricType::Gauge,
            model::MetricType::Summary => MetricType::Summary,
            model::MetricType::Untyped => MetricType::Untyped,
            model::MetricType::Histogram => MetricType::Histogram,
            model::MetricType::GaugeHistogram => MetricType::GaugeHistogram,
        }
    }
}

/// Converts a decoded `MetricFamily` into the model, validating it:
/// the name must be a valid metric name; label names must be valid, not
/// `__name__`, and unique within a metric (nor `quantile` on a summary or
/// `le` on a histogram, which the model keeps in the value); every metric
/// must carry the value field of the family's type (`histogram` for gauge
/// histograms). A missing type means COUNTER, as in Go; an empty HELP is
/// taken as no HELP, as the text format cannot tell them apart.
pub fn family_from_proto(mf: MetricFamily) -> Result<Family, ParseError> {
    family_from_proto_names(mf, false)
}

/// [`family_from_proto`], taking any non-empty metric and label name when
/// `utf8` (`utf8_names`).
pub fn family_from_proto_names(mf: MetricFamily, utf8: bool) -> Result<Family, ParseError> {
    let name = mf.name.unwrap_or_default();
    if name.is_empty() {
        return Err(ParseError::protobuf("metric family without a name"));
    }
    if !is_valid_metric_name_with(&name, utf8) {
        return Err(ParseError::protobuf(format!(
            "invalid metric name {name:?}"
        )));
    }
    let raw_type = mf.r#type.unwrap_or(MetricType::Counter as i32);
    let kind: model::MetricType = MetricType::try_from(raw_type)
        .map_err(|_| {
            ParseError::protobuf(format!(
                "unknown metric type {raw_type} for metric family {name:?}"
            ))
        })?
        .into();
    let metrics = mf
        .metric
        .into_iter()
        .map(|m| metric_from_proto(&name, kind, m, utf8))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Family {
        help: mf.help.filter(|h| !h.is_empty()),
        name,
        kind,
        metrics,
    })
}

fn metric_from_proto(
    family: &str,
    kind: model::MetricType,
    m: Metric,
    utf8: bool,
) -> Result<model::Metric, ParseError> {
    let mut labels = Vec::with_capacity(m.label.len() + model::GROUPING_LABELS_ROOM);
    for pair in m.label {
        let label = pair.name.unwrap_or_default();
        if !is_valid_label_name_with(&label, utf8) {
            return Err(ParseError::protobuf(format!(
                "invalid label name {label:?} in metric family {family:?}"
            )));
        }
        if label == "__name__" {
            return Err(ParseError::protobuf(format!(
                "label name \"__name__\" is reserved (metric family {family:?})"
            )));
        }
        let reserved = match kind {
            model::MetricType::Summary => label == "quantile",
            model::MetricType::Histogram | model::MetricType::GaugeHistogram => label == "le",
            _ => false,
        };
        if reserved {
            return Err(ParseError::protobuf(format!(
                "label name {label:?} is reserved in {} metric family {family:?}",
                kind.as_str()
            )));
        }
        if labels.iter().any(|(n, _)| *n == label) {
            return Err(ParseError::protobuf(format!(
                "duplicate label name {label:?} in metric family {family:?}"
            )));
        }
        labels.push((
            LabelStr::from(label),
            LabelStr::from(pair.value.unwrap_or_default()),
        ));
    }
    let missing = |field: &str| {
        ParseError::protobuf(format!(
            "metric family {family:?} is of type {} but a metric has no {field} value",
            kind.as_str()
        ))
    };
    let mut exemplar = None;
    let value = match kind {
        model::MetricType::Counter => {
            let c = m.counter.ok_or_else(|| missing("counter"))?;
            exemplar = c.exemplar.map(|e| Box::new(exemplar_from_proto(e)));
            Value::Simple(c.value.unwrap_or(0.0))
        }
        model::MetricType::Gauge => Value::Simple(
            m.gauge
                .ok_or_else(|| missing("gauge"))?
                .value
                .unwrap_or(0.0),
        ),
        model::MetricType::Untyped => Value::Simple(
            m.untyped
                .ok_or_else(|| missing("untyped"))?
                .value
                .unwrap_or(0.0),
        ),
        model::MetricType::Summary => {
            let s = m.summary.ok_or_else(|| missing("summary"))?;
            Value::Summary(model::Summary {
                sample_count: s.sample_count.unwrap_or(0) as f64,
                sample_sum: s.sample_sum.unwrap_or(0.0),
                quantiles: s
                    .quantile
                    .iter()
                    .map(|q| (q.quantile.unwrap_or(0.0), q.value.unwrap_or(0.0)))
                    .collect(),
            })
        }
        model::MetricType::Histogram | model::MetricType::GaugeHistogram => {
            let h = m.histogram.ok_or_else(|| missing("histogram"))?;
            Value::Histogram(histogram_from_proto(h))
        }
    };
    Ok(model::Metric {
        labels,
        value,
        timestamp_ms: m.timestamp_ms,
        exemplar,
    })
}

/// The float override when it is > 0, else the integer count (the rule of
/// `sample_count_float` and `cumulative_count_float`).
fn count(int: Option<u64>, float: Option<f64>) -> f64 {
    match float {
        Some(f) if f > 0.0 => f,
        _ => int.unwrap_or(0) as f64,
    }
}

fn histogram_from_proto(mut h: Histogram) -> model::Histogram {
    // Classic-only encoders (client_golang included) set none of the native
    // fields; proto3 encoders (which cannot mark presence) leave zero values
    // out, so presence is the sign of native data.
    let has_native = h.schema.is_some()
        || h.zero_threshold.is_some()
        || h.zero_count.is_some()
        || h.zero_count_float.is_some()
        || !h.negative_span.is_empty()
        || !h.negative_delta.is_empty()
        || !h.negative_count.is_empty()
        || !h.positive_span.is_empty()
        || !h.positive_delta.is_empty()
        || !h.positive_count.is_empty();
    let mut bucket_exemplars = Vec::new();
    let buckets = std::mem::take(&mut h.bucket)
        .into_iter()
        .enumerate()
        .map(|(i, b)| {
            if let Some(e) = b.exemplar {
                bucket_exemplars.push((i, exemplar_from_proto(e)));
            }
            (
                b.upper_bound.unwrap_or(0.0),
                count(b.cumulative_count, b.cumulative_count_float),
            )
        })
        .collect();
    let native_exemplars: Vec<model::Exemplar> = std::mem::take(&mut h.exemplars)
        .into_iter()
        .map(exemplar_from_proto)
        .collect();
    let (sample_count, sample_sum) = (count(h.sample_count, h.sample_count_float), h.sample_sum);
    let native = has_native.then(|| Box::new(native_from_proto(h)));
    let exemplars = (!bucket_exemplars.is_empty() || !native_exemplars.is_empty()).then(|| {
        Box::new(model::HistogramExemplars {
            buckets: bucket_exemplars,
            native: native_exemplars,
        })
    });
    model::Histogram {
        sample_count,
        sample_sum: sample_sum.unwrap_or(0.0),
        buckets,
        native,
        exemplars,
    }
}

/// The native fields of `h` and its count fields, as they are (sum,
/// classic buckets and exemplars are not looked at).
pub fn native_from_proto(h: Histogram) -> model::NativeHistogram {
    let spans = |s: Vec<BucketSpan>| {
        s.into_iter()
            .map(|s| (s.offset.unwrap_or(0), s.length.unwrap_or(0)))
            .collect()
    };
    model::NativeHistogram {
        sample_count: h.sample_count,
        sample_count_float: h.sample_count_float,
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count: h.zero_count,
        zero_count_float: h.zero_count_float,
        negative: model::NativeBuckets {
            spans: spans(h.negative_span),
            deltas: h.negative_delta,
            counts: h.negative_count,
        },
        positive: model::NativeBuckets {
            spans: spans(h.positive_span),
            deltas: h.positive_delta,
            counts: h.positive_count,
        },
    }
}

/// Sets the native fields of `out` from `n`, and its count fields as they
/// were pushed.
pub fn set_native(out: &mut Histogram, n: &model::NativeHistogram) {
    let spans = |s: &[(i32, u32)]| {
        s.iter()
            .map(|&(offset, length)| BucketSpan {
                offset: Some(offset),
                length: Some(length),
            })
            .collect()
    };
    out.sample_count = n.sample_count;
    out.sample_count_float = n.sample_count_float;
    out.schema = n.schema;
    out.zero_threshold = n.zero_threshold;
    out.zero_count = n.zero_count;
    out.zero_count_float = n.zero_count_float;
    out.negative_span = spans(&n.negative.spans);
    out.negative_delta = n.negative.deltas.clone();
    out.negative_count = n.negative.counts.clone();
    out.positive_span = spans(&n.positive.spans);
    out.positive_delta = n.positive.deltas.clone();
    out.positive_count = n.positive.counts.clone();
}

pub fn exemplar_from_proto(e: Exemplar) -> model::Exemplar {
    model::Exemplar {
        labels: e
            .label
            .into_iter()
            .map(|p| {
                (
                    LabelStr::from(p.name.unwrap_or_default()),
                    LabelStr::from(p.value.unwrap_or_default()),
                )
            })
            .collect(),
        value: e.value.unwrap_or(0.0),
        timestamp: e.timestamp.map(|t| (t.seconds, t.nanos)),
    }
}

/// Label pairs as `LabelPair` messages.
fn label_pairs(labels: &[(LabelStr, LabelStr)]) -> Vec<LabelPair> {
    labels
        .iter()
        .map(|(name, value)| LabelPair {
            name: Some(name.to_string()),
            value: Some(value.to_string()),
        })
        .collect()
}

pub fn exemplar_to_proto(e: &model::Exemplar) -> Exemplar {
    Exemplar {
        label: label_pairs(&e.labels),
        value: Some(e.value),
        timestamp: e
            .timestamp
            .map(|(seconds, nanos)| Timestamp { seconds, nanos }),
    }
}

/// Converts a model family into its `MetricFamily` message.
///
/// Counts that are whole numbers in `u64` range go into the integer fields;
/// other histogram counts go into the `_float` fields (with the truncated
/// integer alongside). Native fields and exemplars go out as they came in.
/// A `Value::Simple` goes into the field of the family's type (`untyped`
/// when the type is not counter or gauge).
pub fn family_to_proto(family: &Family) -> MetricFamily {
    MetricFamily {
        name: Some(family.name.clone()),
        help: family.help.clone(),
        r#type: Some(MetricType::from(family.kind) as i32),
        metric: family
            .metrics
            .iter()
            .map(|m| metric_to_proto(family.kind, m))
            .collect(),
        unit: None,
    }
}

fn metric_to_proto(kind: model::MetricType, m: &model::Metric) -> Metric {
    let mut out = Metric {
        label: label_pairs(&m.labels),
        timestamp_ms: m.timestamp_ms,
        ..Metric::default()
    };
    match &m.value {
        Value::Simple(v) => match kind {
            model::MetricType::Counter => {
                out.counter = Some(Counter {
                    value: Some(*v),
                    exemplar: m.exemplar.as_deref().map(exemplar_to_proto),
                    created_timestamp: None,
                })
            }
            model::MetricType::Gauge => out.gauge = Some(Gauge { value: Some(*v) }),
            _ => out.untyped = Some(Untyped { value: Some(*v) }),
        },
        Value::Summary(s) => {
            out.summary = Some(Summary {
                sample_count: Some(s.sample_count as u64),
                sample_sum: Some(s.sample_sum),
                quantile: s
                    .quantiles
                    .iter()
                    .map(|&(q, v)| Quantile {
                        quantile: Some(q),
                        value: Some(v),
                    })
                    .collect(),
                created_timestamp: None,
            })
        }
        Value::Histogram(h) => out.histogram = Some(histogram_to_proto(h)),
    }
    out
}

/// The `Histogram` message of a model histogram.
pub fn histogram_to_proto(h: &model::Histogram) -> Histogram {
    let (sample_count, sample_count_float) = split_count(h.sample_count);
    let exemplars = h.exemplars.as_deref();
    let mut out = Histogram {
        sample_count,
        sample_count_float,
        sample_sum: Some(h.sample_sum),
        bucket: h
            .buckets
            .iter()
            .enumerate()
            .map(|(i, &(upper_bound, c))| {
                let (cumulative_count, cumulative_count_float) = split_count(c);
                Bucket {
                    cumulative_count,
                    cumulative_count_float,
                    upper_bound: Some(upper_bound),
                    exemplar: exemplars
                        .and_then(|e| e.of_bucket(i))
                        .map(exemplar_to_proto),
                }
            })
            .collect(),
        exemplars: exemplars.map_or_else(Vec::new, |e| {
            e.native.iter().map(exemplar_to_proto).collect()
        }),
        ..Histogram::default()
    };
    if let Some(n) = h.native.as_deref() {
        set_native(&mut out, n);
        // The count fields as pushed, unless they no longer say the count
        // (a model built by hand).
        if count(n.sample_count, n.sample_count_float).to_bits() != h.sample_count.to_bits() {
            out.sample_count = sample_count;
            out.sample_count_float = sample_count_float;
        }
    }
    out
}

/// A count as (integer field, float field).
fn split_count(c: f64) -> (Option<u64>, Option<f64>) {
    // 2^64 as f64; `c < 2^64` keeps `c as u64` exact.
    const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;
    if (0.0..TWO_POW_64).contains(&c) && c.fract() == 0.0 {
        (Some(c as u64), None)
    } else {
        (Some(c as u64), Some(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn label(name: &str, value: &str) -> LabelPair {
        LabelPair {
            name: Some(name.into()),
            value: Some(value.into()),
        }
    }

    fn family(name: &str, t: MetricType, metric: Vec<Metric>) -> MetricFamily {
        MetricFamily {
            name: Some(name.into()),
            help: Some("help".into()),
            r#type: Some(t as i32),
            metric,
            unit: None,
        }
    }

    fn gauge_metric(labels: Vec<LabelPair>, v: f64) -> Metric {
        Metric {
            label: labels,
            gauge: Some(Gauge { value: Some(v) }),
            ..Metric::default()
        }
    }

    fn err_of(mf: MetricFamily) -> String {
        match family_from_proto(mf) {
            Ok(f) => panic!("expected an error, got {f:?}"),
            Err(e) => {
                assert_eq!(e.line, None);
                e.message
            }
        }
    }

    fn sample_families() -> Vec<model::Family> {
        vec![
            model::Family {
                name: "c".into(),
                help: Some("A counter.".into()),
                kind: model::MetricType::Counter,
                metrics: vec![model::Metric {
                    labels: vec![("a".into(), "1".into()), ("b".into(), "ü\n".into())],
                    value: Value::Simple(3.5),
                    timestamp_ms: Some(1_700_000_000_000),
                    exemplar: None,
                }],
            },
            model::Family {
                name: "g".into(),
                help: None,
                kind: model::MetricType::Gauge,
                metrics: vec![model::Metric {
                    labels: vec![],
                    value: Value::Simple(-1.0),
                    timestamp_ms: None,
                    exemplar: None,
                }],
            },
            model::Family {
                name: "u".into(),
                help: None,
                kind: model::MetricType::Untyped,
                metrics: vec![model::Metric {
                    labels: vec![],
                    value: Value::Simple(f64::INFINITY),
                    timestamp_ms: Some(-3),
                    exemplar: None,
                }],
            },
            model::Family {
                name: "s".into(),
                help: Some("Summary.".into()),
                kind: model::MetricType::Summary,
                metrics: vec![model::Metric {
                    labels: vec![("x".into(), "y".into())],
                    value: Value::Summary(model::Summary {
                        sample_count: 42.0,
                        sample_sum: 12.5,
                        quantiles: vec![(0.5, 1.0), (0.99, 2.0)],
                    }),
                    timestamp_ms: None,
                    exemplar: None,
                }],
            },
            model::Family {
                name: "h".into(),
                help: None,
                kind: model::MetricType::Histogram,
                metrics: vec![model::Metric {
                    labels: vec![],
                    value: Value::Histogram(model::Histogram {
                        sample_count: 7.0,
                        sample_sum: 3.25,
                        buckets: vec![(0.1, 1.0), (1.0, 5.0)],
                        native: None,
                        exemplars: None,
                    }),
                    timestamp_ms: None,
                    exemplar: None,
                }],
            },
            model::Family {
                name: "gh".into(),
                help: None,
                kind: model::MetricType::GaugeHistogram,
                metrics: vec![model::Metric {
                    labels: vec![("k".into(), "v".into())],
                    value: Value::Histogram(model::Histogram {
                        sample_count: 2.5,
                        sample_sum: -1.0,
                        buckets: vec![(f64::INFINITY, 2.5)],
                        native: None,
                        exemplars: None,
                    }),
                    timestamp_ms: None,
                    exemplar: None,
                }],
            },
        ]
    }

    #[test]
    fn round_trip_through_bytes() {
        for fam in sample_families() {
            let msg = family_to_proto(&fam);
            let bytes = msg.encode_to_vec();
            let decoded = MetricFamily::decode(bytes.as_slice()).unwrap();
            assert_eq!(decoded, msg);
            assert_eq!(family_from_proto(decoded).unwrap(), fam);
        }
    }

    #[test]
    fn to_proto_fields() {
        let fams = sample_families();
        let c = family_to_proto(&fams[0]);
        assert_eq!(c.r#type, Some(MetricType::Counter as i32));
        assert_eq!(c.metric[0].counter.as_ref().unwrap().value, Some(3.5));
        assert!(c.metric[0].gauge.is_none());
        let gh = family_to_proto(&fams[5]);
        assert_eq!(gh.r#type, Some(MetricType::GaugeHistogram as i32));
        let h = gh.metric[0].histogram.as_ref().unwrap();
        assert_eq!(h.sample_count_float, Some(2.5));
        assert_eq!(h.bucket[0].cumulative_count_float, Some(2.5));
        let h = family_to_proto(&fams[4]);
        let h = h.metric[0].histogram.as_ref().unwrap();
        assert_eq!(h.sample_count, Some(7));
        assert_eq!(h.sample_count_float, None);
        assert_eq!(h.schema, None);
        assert!(h.positive_span.is_empty());
    }

    #[test]
    fn field_numbers_match_metrics_proto() {
        // A MetricFamily with a counter, hand-encoded: name (1), help (2),
        // type (3) = GAUGE, metric (4) { label (1) { name, value },
        // gauge (2) { value (1) = 1.0 }, timestamp_ms (6) = 5 }.
        let bytes: Vec<u8> = [
            &[0x0a, 0x01, b'x'][..],
            &[0x12, 0x01, b'h'],
            &[0x18, 0x01],
            &[0x22, 21],
            &[0x0a, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, b'b'],
            &[0x12, 0x09, 0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f],
            &[0x30, 0x05],
        ]
        .concat();
        let mf = MetricFamily::decode(bytes.as_slice()).unwrap();
        let fam = family_from_proto(mf.clone()).unwrap();
        assert_eq!(
            fam,
            model::Family {
                name: "x".into(),
                help: Some("h".into()),
                kind: model::MetricType::Gauge,
                metrics: vec![model::Metric {
                    labels: vec![("a".into(), "b".into())],
                    value: Value::Simple(1.0),
                    timestamp_ms: Some(5),
                    exemplar: None,
                }],
            }
        );
        assert_eq!(mf.encode_to_vec(), bytes);
    }

    #[test]
    fn native_histogram_fields() {
        // Histogram { sample_count = 3, schema (5, sint32) = 3,
        // zero_threshold (6), positive_span (12) { offset 0, length 1 },
        // positive_delta (13, sint64, packed) [2] }.
        let h = Histogram {
            sample_count: Some(3),
            sample_sum: Some(0.0),
            schema: Some(3),
            zero_threshold: Some(1e-128),
            positive_span: vec![BucketSpan {
                offset: Some(-1),
                length: Some(2),
            }],
            positive_delta: vec![1, -1],
            ..Histogram::default()
        };
        let bytes = h.encode_to_vec();
        // schema: tag 5 varint, zigzag(3) = 6.
        assert!(bytes.windows(2).any(|w| w == [0x28, 0x06]));
        // positive_delta unpacked: tag 13 varint, zigzag(1) = 2, zigzag(-1) = 1.
        assert!(bytes.windows(4).any(|w| w == [0x68, 0x02, 0x68, 0x01]));
        // Packed encoding (as proto3 encoders send) decodes too.
        let packed = [0x6a, 0x02, 0x02, 0x01];
        let decoded = Histogram::decode(&packed[..]).unwrap();
        assert_eq!(decoded.positive_delta, vec![1, -1]);

        let mf = family(
            "n",
            MetricType::Histogram,
            vec![Metric {
                histogram: Some(h),
                ..Metric::default()
            }],
        );
        let fam = family_from_proto(MetricFamily::decode(mf.encode_to_vec().as_slice()).unwrap())
            .unwrap();
        assert_eq!(
            fam.metrics[0].value,
            Value::Histogram(model::Histogram {
                sample_count: 3.0,
                sample_sum: 0.0,
                buckets: vec![],
                native: Some(Box::new(model::NativeHistogram {
                    sample_count: Some(3),
                    schema: Some(3),
                    zero_threshold: Some(1e-128),
                    positive: model::NativeBuckets {
                        spans: vec![(-1, 2)],
                        deltas: vec![1, -1],
                        counts: vec![],
                    },
                    ..model::NativeHistogram::default()
                })),
                exemplars: None,
            })
        );
        // Back to the message, field for field.
        assert_eq!(
            family_to_proto(&fam).metric[0].histogram.as_ref(),
            mf.metric[0].histogram.as_ref()
        );
        // Only a no-op span: still native.
        let h = Histogram {
            positive_span: vec![BucketSpan {
                offset: Some(0),
                length: Some(0),
            }],
            ..Histogram::default()
        };
        assert!(histogram_from_proto(h).native.is_some());
        assert!(histogram_from_proto(Histogram::default()).native.is_none());
    }

    #[test]
    fn exemplars_round_trip() {
        let ex = |v: f64, ts: Option<Timestamp>| Exemplar {
            label: vec![label("trace_id", "abc")],
            value: Some(v),
            timestamp: ts,
        };
        let ts = Some(Timestamp {
            seconds: 1_700_000_000,
            nanos: 123_000_000,
        });
        let counter = family(
            "c_total",
            MetricType::Counter,
            vec![Metric {
                counter: Some(Counter {
                    value: Some(4.0),
                    exemplar: Some(ex(1.0, ts.clone())),
                    created_timestamp: None,
                }),
                ..Metric::default()
            }],
        );
        let hist = family(
            "h",
            MetricType::Histogram,
            vec![Metric {
                histogram: Some(Histogram {
                    sample_count: Some(2),
                    sample_sum: Some(0.7),
                    bucket: vec![
                        Bucket {
                            cumulative_count: Some(1),
                            upper_bound: Some(0.5),
                            exemplar: Some(ex(0.2, ts.clone())),
                            ..Bucket::default()
                        },
                        Bucket {
                            cumulative_count: Some(2),
                            upper_bound: Some(1.0),
                            ..Bucket::default()
                        },
                    ],
                    schema: Some(0),
                    zero_threshold: Some(0.0),
                    zero_count: Some(0),
                    exemplars: vec![ex(0.5, None)],
                    ..Histogram::default()
                }),
                ..Metric::default()
            }],
        );
        for mf in [counter, hist] {
            let model = family_from_proto(mf.clone()).unwrap();
            assert_eq!(family_to_proto(&model).metric, mf.metric);
        }
        let model = family_from_proto(family(
            "c_total",
            MetricType::Counter,
            vec![Metric {
                counter: Some(Counter {
                    value: Some(4.0),
                    exemplar: Some(ex(1.0, ts)),
                    created_timestamp: None,
                }),
                ..Metric::default()
            }],
        ))
        .unwrap();
        let e = model.metrics[0].exemplar.as_deref().unwrap();
        assert_eq!(e.timestamp_ms(), 1_700_000_000_123);
        assert_eq!(e.labels, vec![("trace_id".into(), "abc".into())]);
    }

    #[test]
    fn float_counts_override_when_positive() {
        let h = Histogram {
            sample_count: Some(10),
            sample_count_float: Some(2.5),
            bucket: vec![
                Bucket {
                    cumulative_count: Some(4),
                    cumulative_count_float: Some(0.0),
                    upper_bound: Some(1.0),
                    exemplar: None,
                },
                Bucket {
                    cumulative_count: Some(4),
                    cumulative_count_float: Some(1.5),
                    upper_bound: Some(2.0),
                    exemplar: None,
                },
            ],
            ..Histogram::default()
        };
        let m = histogram_from_proto(h.clone());
        assert_eq!(m.sample_count, 2.5);
        assert_eq!(m.buckets, vec![(1.0, 4.0), (2.0, 1.5)]);
        let h = Histogram {
            sample_count: Some(10),
            sample_count_float: Some(-1.0),
            ..Histogram::default()
        };
        assert_eq!(histogram_from_proto(h.clone()).sample_count, 10.0);
    }

    #[test]
    fn defaults_and_empty_help() {
        // No type means COUNTER (Go's GetType()); empty help means none;
        // a counter message without a value means 0.
        let mf = MetricFamily {
            name: Some("x".into()),
            help: Some(String::new()),
            r#type: None,
            metric: vec![Metric {
                counter: Some(Counter::default()),
                ..Metric::default()
            }],
            unit: None,
        };
        let fam = family_from_proto(mf).unwrap();
        assert_eq!(fam.kind, model::MetricType::Counter);
        assert_eq!(fam.help, None);
        assert_eq!(fam.metrics[0].value, Value::Simple(0.0));
        // A family without metrics converts (to an empty family).
        let fam = family_from_proto(family("e", MetricType::Gauge, vec![])).unwrap();
        assert!(fam.metrics.is_empty());
        // Extra value fields besides the expected one are ignored.
        let mut m = gauge_metric(vec![], 2.0);
        m.counter = Some(Counter {
            value: Some(9.0),
            ..Counter::default()
        });
        let fam = family_from_proto(family("x", MetricType::Gauge, vec![m])).unwrap();
        assert_eq!(fam.metrics[0].value, Value::Simple(2.0));
    }

    #[test]
    fn invalid_names() {
        let mut mf = family("x", MetricType::Gauge, vec![]);
        mf.name = None;
        assert!(err_of(mf).contains("without a name"));
        assert!(err_of(family("", MetricType::Gauge, vec![])).contains("without a name"));
        for bad in ["1x", "a-b", "a b", "é"] {
            let msg = err_of(family(bad, MetricType::Gauge, vec![]));
            assert!(msg.contains("invalid metric name"), "{msg}");
        }
        for bad in ["1x", "a:b", "", "a-b"] {
            let msg = err_of(family(
                "x",
                MetricType::Gauge,
                vec![gauge_metric(vec![label(bad, "v")], 1.0)],
            ));
            assert!(msg.contains("invalid label name"), "{msg}");
        }
        let msg = err_of(family(
            "x",
            MetricType::Gauge,
            vec![gauge_metric(vec![label("__name__", "v")], 1.0)],
        ));
        assert!(msg.contains("reserved"), "{msg}");
        let msg = err_of(family(
            "x",
            MetricType::Gauge,
            vec![gauge_metric(
                vec![label("a", "1"), label("b", "2"), label("a", "3")],
                1.0,
            )],
        ));
        assert!(msg.contains("duplicate label name \"a\""), "{msg}");
    }

    #[test]
    fn reserved_quantile_and_le() {
        let m = Metric {
            label: vec![label("quantile", "0.5")],
            summary: Some(Summary::default()),
            ..Metric::default()
        };
        assert!(err_of(family("s", MetricType::Summary, vec![m])).contains("reserved"));
        let m = Metric {
            label: vec![label("le", "1")],
            histogram: Some(Histogram::default()),
            ..Metric::default()
        };
        assert!(err_of(family("h", MetricType::GaugeHistogram, vec![m])).contains("reserved"));
        // On other types they are ordinary labels.
        let m = gauge_metric(vec![label("le", "1"), label("quantile", "2")], 1.0);
        assert!(family_from_proto(family("g", MetricType::Gauge, vec![m])).is_ok());
    }

    #[test]
    fn value_field_must_match_type() {
        for (t, field) in [
            (MetricType::Counter, "counter"),
            (MetricType::Summary, "summary"),
            (MetricType::Untyped, "untyped"),
            (MetricType::Histogram, "histogram"),
            (MetricType::GaugeHistogram, "histogram"),
        ] {
            let msg = err_of(family("x", t, vec![gauge_metric(vec![], 1.0)]));
            assert!(msg.contains(&format!("no {field} value")), "{msg}");
        }
        let m = Metric {
            counter: Some(Counter::default()),
            ..Metric::default()
        };
        assert!(err_of(family("x", MetricType::Gauge, vec![m])).contains("no gauge value"));
    }

    #[test]
    fn unknown_type_number() {
        let mut mf = family("x", MetricType::Gauge, vec![]);
        mf.r#type = Some(9);
        assert!(err_of(mf).contains("unknown metric type 9"));
    }
}
