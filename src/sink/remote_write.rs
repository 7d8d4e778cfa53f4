//! Prometheus remote write 1.0 encoding of a batch of points.
//!
//! # What is sent
//!
//! The body is a protobuf `prometheus.WriteRequest`, compressed with snappy's
//! *block* format (not the framing format), sent with the headers in
//! [`HEADERS`]. Each field of each point is one sample of the series named
//! `family + suffix` (`x`, `x_bucket`, `x_sum`, `x_count`), taken from
//! [`Point::family`] and [`Field::suffix`](crate::model::point::Field) — never from
//! the measurement or the field key, which the measurement mapping may have
//! renamed. The series' labels are `__name__` plus the point's tags, which
//! already hold the grouping labels, the pushed labels, and `le` or
//! `quantile` for buckets and quantiles. Timestamps are the point's time in
//! milliseconds (rounded down).
//!
//! # Where it follows the spec
//!
//! - One `TimeSeries` per distinct (name, label set) in the batch, whatever
//!   the number of points it came from.
//! - Labels sorted by name, byte-wise, as Prometheus requires. `__name__`
//!   comes first for ordinary (lower-case) label names; a label name with an
//!   upper-case first letter sorts before it, as it does in Prometheus.
//! - Labels with an empty value are left out (Prometheus treats an empty
//!   label as absent); so is a tag named `__name__`, which the series name
//!   overrides. Tags that are not sorted or repeat a name are sorted (the
//!   first of a repeated name is kept); [`Point`] never has them.
//! - Samples of a series sorted by timestamp, with at most one per timestamp:
//!   of two samples with the same timestamp, the one pushed last is kept.
//! - The protobuf bytes are exactly what prost writes for [`WriteRequest`]
//!   (proto3: a zero value or timestamp is left out of a sample).
//!
//! # Where it differs
//!
//! - No `metadata` (field 3): metric types and help texts are not sent, as
//!   the field is optional in 1.0.
//! - No exemplars, native histograms or created timestamps: points carry
//!   none of them.
//! - Nothing is checked against the receiver's rules for names and values
//!   (e.g. label name syntax); the push path already validated them, and
//!   whatever a receiver still rejects comes back as a 400 that the delivery
//!   loop isolates with [`halves`].
//!
//! # How
//!
//! Series are found with one hash lookup per point, keyed by the borrowed
//! family name and tag slice; the point's fields pick one of four slots
//! (one per suffix). Samples go into one flat array, grouped per series with
//! a counting sort, so there is no allocation per sample or per series.
//! [`encode`] writes the protobuf straight from that borrowed view into one
//! buffer of the exact size; [`write_request`] builds the owned prost
//! messages from the same view (the tests check that prost encodes them to
//! the same bytes).

use crate::model::family::LabelStr;
use crate::model::point::{Point, SeriesSuffix};
use std::collections::HashMap;

/// The headers a remote write request must carry.
pub const HEADERS: &[(&str, &str)] = &[
    ("Content-Encoding", "snappy"),
    ("Content-Type", "application/x-protobuf"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
];

/// The label holding the series name.
const NAME_LABEL: &str = "__name__";

/// `prometheus.WriteRequest` (remote write 1.0), without `metadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`: labels sorted by name, samples by timestamp.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`; `timestamp` in milliseconds since the Unix epoch.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// The uncompressed WriteRequest for `points` (series grouped, labels
/// sorted, samples sorted and de-duplicated).
pub fn write_request(points: &[Point]) -> WriteRequest {
    let fixed = fix_tags(points);
    let batch = Batch::group(points, &fixed);
    let timeseries = batch
        .series
        .iter()
        .map(|s| {
            let mut labels = Vec::with_capacity(s.tags.len() + 1);
            s.each_label(|name, value, suffix| {
                let mut v = String::with_capacity(value.len() + suffix.len());
                v.push_str(value);
                v.push_str(suffix);
                labels.push(Label {
                    name: name.to_string(),
                    value: v,
                });
            });
            let samples = batch
                .samples_of(s)
                .iter()
                .map(|&(timestamp, value)| Sample { value, timestamp })
                .collect();
            TimeSeries { labels, samples }
        })
        .collect();
    WriteRequest { timeseries }
}

/// Protobuf + snappy block: the request body.
///
/// # Panics
///
/// If the protobuf is 4 GiB or more, which snappy's block format cannot
/// hold; a batch that large cannot be sent as one request anyway.
pub fn encode(points: &[Point]) -> Vec<u8> {
    let raw = protobuf(points);
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("a remote write batch under 4 GiB")
}

/// The number of samples a batch of points makes: one per field (the
/// sink's counters count points, not samples). Samples that [`write_request`] folds into
/// one (same series, same timestamp) are each counted, so that the count of
/// a batch is the sum of the counts of its [`halves`].
pub fn sample_count(points: &[Point]) -> usize {
    points.iter().map(|p| p.fields.len()).sum()
}

/// Splits a batch in two halves (by points) to isolate what a receiver
/// rejected with 400. The first half gets the odd point, so a batch of one
/// gives `([p], [])` and only an empty batch gives an empty first half.
pub fn halves(points: &[Point]) -> (&[Point], &[Point]) {
    points.split_at(points.len().div_ceil(2))
}

/// The uncompressed protobuf `WriteRequest`, written straight from the
/// grouped, borrowed view into one buffer of the exact size.
fn protobuf(points: &[Point]) -> Vec<u8> {
    let fixed = fix_tags(points);
    let batch = Batch::group(points, &fixed);
    let lens: Vec<usize> = batch.series.iter().map(|s| batch.series_len(s)).collect();
    let total: usize = lens.iter().map(|&l| 1 + varint_len(l as u64) + l).sum();
    let mut buf = Vec::with_capacity(total);
    for (s, &len) in batch.series.iter().zip(&lens) {
        buf.push(KEY_WRITE_REQUEST_TIMESERIES);
        put_varint(&mut buf, len as u64);
        s.each_label(|name, value, suffix| {
            buf.push(KEY_TIMESERIES_LABELS);
            put_varint(&mut buf, label_len(name, value, suffix) as u64);
            put_string(&mut buf, KEY_LABEL_NAME, &[name]);
            put_string(&mut buf, KEY_LABEL_VALUE, &[value, suffix]);
        });
        for &(ts, v) in batch.samples_of(s) {
            buf.push(KEY_TIMESERIES_SAMPLES);
            put_varint(&mut buf, sample_len(ts, v) as u64);
            if v != 0.0 {
                buf.push(KEY_SAMPLE_VALUE);
                buf.extend_from_slice(&v.to_le_bytes());
            }
            if ts != 0 {
                buf.push(KEY_SAMPLE_TIMESTAMP);
                put_varint(&mut buf, ts as u64);
            }
        }
    }
    debug_assert_eq!(buf.len(), total);
    buf
}

/// Sorted, clean copies of the tags of the points whose tags are not
/// (unsorted, repeated or `__name__` names, empty names or values), by
/// point index; empty when no point needs one, which is the usual case.
fn fix_tags(points: &[Point]) -> Vec<Option<Vec<(LabelStr, LabelStr)>>> {
    let needs_fix = |tags: &[(LabelStr, LabelStr)]| {
        tags.iter()
            .any(|(k, v)| k.is_empty() || v.is_empty() || k == NAME_LABEL)
            || tags.windows(2).any(|w| w[0].0 >= w[1].0)
    };
    if !points.iter().any(|p| needs_fix(&p.tags)) {
        return Vec::new();
    }
    points
        .iter()
        .map(|p| {
            needs_fix(&p.tags).then(|| {
                let mut tags: Vec<(LabelStr, LabelStr)> = p
                    .tags
                    .iter()
                    .filter(|(k, v)| !k.is_empty() && !v.is_empty() && k != NAME_LABEL)
                    .cloned()
                    .collect();
                tags.sort_by(|a, b| a.0.cmp(&b.0));
                tags.dedup_by(|later, first| later.0 == first.0);
                tags
            })
        })
        .collect()
}

/// A series of the batch, borrowing its name parts and labels.
struct Series<'a> {
    family: &'a str,
    suffix: SeriesSuffix,
    /// Sorted by name, unique names, no empty values, no `__name__`.
    tags: &'a [(LabelStr, LabelStr)],
    /// This series' samples: `Batch::samples[start..start + len]`.
    start: usize,
    len: usize,
}

impl<'a> Series<'a> {
    /// Calls `f(name, value, value_suffix)` for each label in name order;
    /// a label's value is `value` followed by `value_suffix` (only the
    /// series name has a suffix).
    fn each_label(&self, mut f: impl FnMut(&'a str, &'a str, &'a str)) {
        let at = self.tags.partition_point(|(k, _)| k.as_str() < NAME_LABEL);
        for (k, v) in &self.tags[..at] {
            f(k, v, "");
        }
        f(NAME_LABEL, self.family, self.suffix.as_str());
        for (k, v) in &self.tags[at..] {
            f(k, v, "");
        }
    }
}

/// The points of a request grouped into series.
struct Batch<'a> {
    series: Vec<Series<'a>>,
    /// `(timestamp_ms, value)`, grouped by series, each series' run sorted
    /// by timestamp and de-duplicated (its tail past `len` is unused).
    samples: Vec<(i64, f64)>,
}

/// A label set of the batch, before the suffix: family name and tags.
type SeriesKey<'a> = (&'a str, &'a [(LabelStr, LabelStr)]);

/// A free slot in a label set's per-suffix series table.
const NO_SERIES: u32 = u32::MAX;

fn suffix_slot(s: SeriesSuffix) -> usize {
    match s {
        SeriesSuffix::None => 0,
        SeriesSuffix::Count => 1,
        SeriesSuffix::Sum => 2,
        SeriesSuffix::Bucket => 3,
    }
}

impl<'a> Batch<'a> {
    /// Groups the points' fields into series, in order of first appearance.
    /// `fixed` is [`fix_tags`]'s answer for `points`.
    fn group(points: &'a [Point], fixed: &'a [Option<Vec<(LabelStr, LabelStr)>>]) -> Batch<'a> {
        let n = sample_count(points);
        // Series ids are u32 to keep the table small: a batch holds far
        // fewer than 4 billion fields.
        let mut index: HashMap<SeriesKey<'a>, [u32; 4]> = HashMap::with_capacity(points.len());
        let mut series: Vec<Series<'a>> = Vec::new();
        // Each field's series and sample, in push order.
        let mut pushed: Vec<(u32, i64, f64)> = Vec::with_capacity(n);
        for (i, p) in points.iter().enumerate() {
            let tags: &'a [(LabelStr, LabelStr)] = match fixed.get(i) {
                Some(Some(t)) => t,
                _ => &p.tags,
            };
            let ts = p.time_ns.div_euclid(1_000_000);
            let slots = index.entry((&*p.family, tags)).or_insert([NO_SERIES; 4]);
            for f in &p.fields {
                let slot = &mut slots[suffix_slot(f.suffix)];
                if *slot == NO_SERIES {
                    *slot = series.len() as u32;
                    series.push(Series {
                        family: &p.family,
                        suffix: f.suffix,
                        tags,
                        start: 0,
                        len: 0,
                    });
                }
                series[*slot as usize].len += 1;
                pushed.push((*slot, ts, f.value));
            }
        }
        // Counting sort by series, stable, so that push order is kept
        // within a series.
        let mut start = 0;
        for s in &mut series {
            s.start = start;
            start += s.len;
            s.len = 0;
        }
        let mut samples = vec![(0i64, 0f64); n];
        for (id, ts, v) in pushed {
            let s = &mut series[id as usize];
            samples[s.start + s.len] = (ts, v);
            s.len += 1;
        }
        for s in &mut series {
            s.len = sort_dedup(&mut samples[s.start..s.start + s.len]);
        }
        Batch { series, samples }
    }

    fn samples_of(&self, s: &Series) -> &[(i64, f64)] {
        &self.samples[s.start..s.start + s.len]
    }

    /// Length of the encoded `TimeSeries` message body.
    fn series_len(&self, s: &Series) -> usize {
        let mut len = 0;
        s.each_label(|name, value, suffix| {
            let l = label_len(name, value, suffix);
            len += 1 + varint_len(l as u64) + l;
        });
        for &(ts, v) in self.samples_of(s) {
            let l = sample_len(ts, v);
            len += 1 + varint_len(l as u64) + l;
        }
        len
    }
}

/// Sorts a series' samples by timestamp (stable) and keeps the last of each
/// timestamp, compacting to the front; returns the number kept.
fn sort_dedup(samples: &mut [(i64, f64)]) -> usize {
    if samples.windows(2).all(|w| w[0].0 < w[1].0) {
        return samples.len();
    }
    samples.sort_by_key(|s| s.0);
    let mut kept = 0;
    for r in 0..samples.len() {
        if kept > 0 && samples[kept - 1].0 == samples[r].0 {
            samples[kept - 1] = samples[r];
        } else {
            samples[kept] = samples[r];
            kept += 1;
        }
    }
    kept
}

// Field keys (field number << 3 | wire type); all field numbers are < 16,
// so each key is one byte.
const LEN: u8 = 2;
const I64: u8 = 1;
const VARINT: u8 = 0;
const KEY_WRITE_REQUEST_TIMESERIES: u8 = 1 << 3 | LEN;
const KEY_TIMESERIES_LABELS: u8 = 1 << 3 | LEN;
const KEY_TIMESERIES_SAMPLES: u8 = 2 << 3 | LEN;
const KEY_LABEL_NAME: u8 = 1 << 3 | LEN;
const KEY_LABEL_VALUE: u8 = 2 << 3 | LEN;
const KEY_SAMPLE_VALUE: u8 = 1 << 3 | I64;
const KEY_SAMPLE_TIMESTAMP: u8 = 2 << 3 | VARINT;

/// Bytes of a proto3 string field of `len` bytes: nothing when empty.
fn string_field_len(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        1 + varint_len(len as u64) + len
    }
}

fn label_len(name: &str, value: &str, suffix: &str) -> usize {
    string_field_len(name.len()) + string_field_len(value.len() + suffix.len())
}

/// Bytes of a `Sample` body; proto3 leaves out a zero value (including
/// -0.0, as prost does) and a zero timestamp.
fn sample_len(ts: i64, v: f64) -> usize {
    let value = if v != 0.0 { 9 } else { 0 };
    let time = if ts != 0 {
        1 + varint_len(ts as u64)
    } else {
        0
    };
    value + time
}

fn put_string(buf: &mut Vec<u8>, key: u8, parts: &[&str]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len == 0 {
        return;
    }
    buf.push(key);
    put_varint(buf, len as u64);
    for p in parts {
        buf.extend_from_slice(p.as_bytes());
    }
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::{convert, Mapping, Naming};
    use crate::expfmt::text::parse_text;
    use crate::model::family::MetricType;
    use crate::model::point::Field;
    use crate::model::GroupingKey;
    use prost::Message;
    use std::sync::Arc;

    const NOW_NS: i64 = 1_700_000_000_123_456_789;
    const NOW_MS: i64 = 1_700_000_000_123;

    /// Points from a text push under job `j`, with the measurement prefix
    /// stripped from field keys (so names cannot come from the field key).
    fn points(text: &str, pairs: &[&str]) -> Vec<Point> {
        let families = parse_text(text.as_bytes()).unwrap();
        let group = GroupingKey::from_pairs("j", pairs);
        let mapping = Mapping {
            naming: Naming {
                keep_exist_metric_name: false,
                ..Naming::default()
            },
            honor_timestamps: true,
        };
        convert(&families, &group, &mapping, NOW_NS)
    }

    fn point(family: &str, tags: &[(&str, &str)], time_ns: i64, value: f64) -> Point {
        Point {
            measurement: "m".into(),
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            fields: vec![Field {
                key: "f".into(),
                value,
                suffix: SeriesSuffix::None,
            }],
            time_ns,
            family: Arc::from(family),
            kind: MetricType::Gauge,
        }
    }

    /// A series as `name{k="v",...}` with its labels in wire order, and its
    /// samples as (ms, value).
    fn render(req: &WriteRequest) -> Vec<(String, Vec<(i64, f64)>)> {
        req.timeseries
            .iter()
            .map(|ts| {
                let labels: Vec<String> = ts
                    .labels
                    .iter()
                    .map(|l| format!("{}={}", l.name, l.value))
                    .collect();
                let samples = ts.samples.iter().map(|s| (s.timestamp, s.value)).collect();
                (labels.join(","), samples)
            })
            .collect()
    }

    fn series(labels: &str, samples: &[(i64, f64)]) -> (String, Vec<(i64, f64)>) {
        (labels.to_string(), samples.to_vec())
    }

    /// The encoder's bytes are prost's bytes for `write_request`, and the
    /// snappy body decodes back to it.
    fn check_wire(points: &[Point]) {
        let want = write_request(points);
        assert_eq!(protobuf(points), want.encode_to_vec());
        let body = encode(points);
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        assert_eq!(WriteRequest::decode(raw.as_slice()).unwrap(), want);
    }

    #[test]
    fn counter() {
        let pts = points(
            "# TYPE http_requests_total counter\n\
             http_requests_total{method=\"get\"} 7 1700000000999\n",
            &["instance", "h1"],
        );
        assert_eq!(pts[0].fields[0].key, "requests_total");
        assert_eq!(
            render(&write_request(&pts)),
            vec![series(
                "__name__=http_requests_total,instance=h1,job=j,method=get",
                &[(1_700_000_000_999, 7.0)]
            )]
        );
        assert_eq!(sample_count(&pts), 1);
        check_wire(&pts);
    }

    #[test]
    fn gauge_with_tags() {
        let pts = points(
            "# TYPE node_temp_celsius gauge\n\
             node_temp_celsius{zone=\"cpu\",chip=\"a\"} 41.5\n\
             node_temp_celsius{zone=\"gpu\",chip=\"a\"} -3\n",
            &["rack", "r1"],
        );
        assert_eq!(
            render(&write_request(&pts)),
            vec![
                series(
                    "__name__=node_temp_celsius,chip=a,job=j,rack=r1,zone=cpu",
                    &[(NOW_MS, 41.5)]
                ),
                series(
                    "__name__=node_temp_celsius,chip=a,job=j,rack=r1,zone=gpu",
                    &[(NOW_MS, -3.0)]
                ),
            ]
        );
        check_wire(&pts);
    }

    #[test]
    fn histogram_names_come_from_the_family() {
        // No +Inf bucket: the mapping adds one from the count.
        let pts = points(
            "# TYPE req_bytes histogram\n\
             req_bytes_bucket{le=\"100\"} 3\n\
             req_bytes_bucket{le=\"1e+06\"} 5\n\
             req_bytes_sum 4200\n\
             req_bytes_count 6\n",
            &[],
        );
        // The field keys lost the `req_` prefix; the series names did not.
        let keys: Vec<&str> = pts
            .iter()
            .flat_map(|p| p.fields.iter().map(|f| f.key.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                "bytes_count",
                "bytes_sum",
                "bytes_bucket",
                "bytes_bucket",
                "bytes_bucket"
            ]
        );
        assert_eq!(
            render(&write_request(&pts)),
            vec![
                series("__name__=req_bytes_count,job=j", &[(NOW_MS, 6.0)]),
                series("__name__=req_bytes_sum,job=j", &[(NOW_MS, 4200.0)]),
                series("__name__=req_bytes_bucket,job=j,le=100", &[(NOW_MS, 3.0)]),
                series("__name__=req_bytes_bucket,job=j,le=1e+06", &[(NOW_MS, 5.0)]),
                series("__name__=req_bytes_bucket,job=j,le=+Inf", &[(NOW_MS, 6.0)]),
            ]
        );
        assert_eq!(sample_count(&pts), 5);
        check_wire(&pts);
    }

    #[test]
    fn summary() {
        let pts = points(
            "# TYPE rpc_duration_seconds summary\n\
             rpc_duration_seconds{quantile=\"0.5\",op=\"r\"} 0.25\n\
             rpc_duration_seconds{quantile=\"0.99\",op=\"r\"} 0.9\n\
             rpc_duration_seconds_sum{op=\"r\"} 12.5\n\
             rpc_duration_seconds_count{op=\"r\"} 40\n",
            &[],
        );
        assert_eq!(
            render(&write_request(&pts)),
            vec![
                series(
                    "__name__=rpc_duration_seconds_count,job=j,op=r",
                    &[(NOW_MS, 40.0)]
                ),
                series(
                    "__name__=rpc_duration_seconds_sum,job=j,op=r",
                    &[(NOW_MS, 12.5)]
                ),
                series(
                    "__name__=rpc_duration_seconds,job=j,op=r,quantile=0.5",
                    &[(NOW_MS, 0.25)]
                ),
                series(
                    "__name__=rpc_duration_seconds,job=j,op=r,quantile=0.99",
                    &[(NOW_MS, 0.9)]
                ),
            ]
        );
        check_wire(&pts);
    }

    #[test]
    fn labels_sorted_byte_wise() {
        // Lower-case names sort after `__name__`; `_a` and upper-case names
        // sort before it, as in Prometheus.
        let p = point(
            "x",
            &[("Zone", "z"), ("_a", "1"), ("a", "2"), ("b", "3")],
            0,
            1.0,
        );
        let req = write_request(std::slice::from_ref(&p));
        let names: Vec<&str> = req.timeseries[0]
            .labels
            .iter()
            .map(|l| l.name.as_str())
            .collect();
        assert_eq!(names, ["Zone", "__name__", "_a", "a", "b"]);
        let p = point("x", &[("a", "2"), ("job", "j")], 0, 1.0);
        let req = write_request(&[p]);
        assert_eq!(req.timeseries[0].labels[0].name, "__name__");
        assert!(req.timeseries[0]
            .labels
            .windows(2)
            .all(|w| w[0].name < w[1].name));
    }

    #[test]
    fn bad_tags_are_cleaned() {
        // Unsorted, repeated, empty-valued and `__name__` tags; the same
        // series as clean tags.
        let messy = point(
            "x",
            &[
                ("b", "3"),
                ("__name__", "other"),
                ("a", "1"),
                ("e", ""),
                ("a", "9"),
            ],
            1_000_000,
            1.0,
        );
        let clean = point("x", &[("a", "1"), ("b", "3")], 2_000_000, 2.0);
        let pts = [messy, clean];
        assert_eq!(
            render(&write_request(&pts)),
            vec![series("__name__=x,a=1,b=3", &[(1, 1.0), (2, 2.0)])]
        );
        check_wire(&pts);
    }

    #[test]
    fn samples_sorted_by_time() {
        let tags = [("job", "j")];
        let pts = [
            point("x", &tags, 3_000_000_000, 3.0),
            point("x", &tags, 1_000_000_000, 1.0),
            point("y", &tags, 5_000_000_000, 5.0),
            point("x", &tags, 2_000_000_000, 2.0),
        ];
        assert_eq!(
            render(&write_request(&pts)),
            vec![
                series("__name__=x,job=j", &[(1000, 1.0), (2000, 2.0), (3000, 3.0)]),
                series("__name__=y,job=j", &[(5000, 5.0)]),
            ]
        );
        check_wire(&pts);
    }

    #[test]
    fn duplicate_timestamp_keeps_the_last() {
        let tags = [("job", "j")];
        let pts = [
            point("x", &tags, 2_000_000_000, 1.0),
            point("x", &tags, 1_000_000_000, 7.0),
            // Same millisecond as the first point.
            point("x", &tags, 2_000_999_999, 2.0),
            point("x", &tags, 2_000_000_000, 3.0),
        ];
        assert_eq!(
            render(&write_request(&pts)),
            vec![series("__name__=x,job=j", &[(1000, 7.0), (2000, 3.0)])]
        );
        // Counted as pushed, so that halves add up.
        assert_eq!(sample_count(&pts), 4);
        check_wire(&pts);
    }

    #[test]
    fn same_series_from_two_pushes() {
        // Separate pushes have separate family `Arc`s: grouped by content.
        let mut pts = points("a_b{k=\"v\"} 1 1000\n", &[]);
        pts.extend(points("a_b{k=\"v\"} 2 2000\n", &[]));
        assert!(!Arc::ptr_eq(&pts[0].family, &pts[1].family));
        assert_eq!(
            render(&write_request(&pts)),
            vec![series(
                "__name__=a_b,job=j,k=v",
                &[(1000, 1.0), (2000, 2.0)]
            )]
        );
    }

    #[test]
    fn wire_edge_values() {
        // Zero, negative zero and a zero timestamp are left out the way
        // prost leaves them out; negative and huge values round-trip.
        let pts = [
            point("z", &[], 0, 0.0),
            point("n", &[], -5_000_000, -0.0),
            point("v", &[("k", "ü")], i64::MAX, f64::MAX),
            point("w", &[], -1, f64::NAN),
        ];
        assert_eq!(protobuf(&pts), write_request(&pts).encode_to_vec());
        let req = write_request(&pts);
        assert_eq!(req.timeseries[1].samples[0].timestamp, -5);
        assert_eq!(req.timeseries[2].samples[0].timestamp, i64::MAX / 1_000_000);
        // Rounded down, not toward zero.
        assert_eq!(req.timeseries[3].samples[0].timestamp, -1);
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&encode(&pts))
            .unwrap();
        let back = WriteRequest::decode(raw.as_slice()).unwrap();
        assert_eq!(back.timeseries[2], req.timeseries[2]);
        assert!(back.timeseries[3].samples[0].value.is_nan());
    }

    #[test]
    fn snappy_round_trip_of_a_mixed_batch() {
        let mut pts = points(
            "# TYPE req_bytes histogram\n\
             req_bytes_bucket{le=\"1\"} 1\n\
             req_bytes_bucket{le=\"+Inf\"} 2\n\
             req_bytes_sum 3\n\
             req_bytes_count 2\n\
             # TYPE up gauge\n\
             up{instance=\"h\"} 1\n",
            &["zone", "eu"],
        );
        // Enough series to need multi-byte lengths.
        for i in 0..300 {
            pts.push(point(
                "many",
                &[("i", &i.to_string()), ("pad", &"p".repeat(i))],
                i as i64 * 1_000_000,
                i as f64,
            ));
        }
        check_wire(&pts);
        let body = encode(&pts);
        assert!(body.len() < protobuf(&pts).len());
        assert!(encode(&[]).len() <= 1);
        assert_eq!(write_request(&[]), WriteRequest::default());
    }

    #[test]
    fn halves_split_by_points() {
        let p = |t| point("x", &[], t, 1.0);
        let empty: &[Point] = &[];
        assert_eq!(halves(empty), (empty, empty));
        let one = [p(1)];
        assert_eq!(halves(&one), (&one[..], empty));
        let two = [p(1), p(2)];
        assert_eq!(halves(&two), (&two[..1], &two[1..]));
        let five = [p(1), p(2), p(3), p(4), p(5)];
        let (a, b) = halves(&five);
        assert_eq!((a.len(), b.len()), (3, 2));
        assert_eq!([a, b].concat(), five.to_vec());
        assert_eq!(sample_count(a) + sample_count(b), sample_count(&five));
    }

    #[test]
    fn headers() {
        let get = |name: &str| HEADERS.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        assert_eq!(get("Content-Encoding"), Some("snappy"));
        assert_eq!(get("Content-Type"), Some("application/x-protobuf"));
        assert_eq!(get("X-Prometheus-Remote-Write-Version"), Some("0.1.0"));
    }

    #[test]
    fn varint_lengths() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            assert_eq!(buf.len(), varint_len(v), "{v}");
            assert_eq!(buf.len(), prost::length_delimiter_len(v as usize), "{v}");
        }
    }
}
