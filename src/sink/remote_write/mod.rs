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
//! - Native histograms and exemplars ride on points (`PointExtra`) and go
//!   out in `TimeSeries` fields 4 and 3, as Prometheus' receiver reads
//!   them (see [`extra`]): a native histogram as the series named after its
//!   family, without suffix, beside its `_count` and `_sum` series (and
//!   `_bucket` for its classic buckets); an exemplar on its counter's,
//!   bucket's or native histogram's series. A receiver without native
//!   histograms enabled refuses the request (Prometheus answers 500).
//! - No created timestamps.
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

pub mod extra;

use crate::model::family::{LabelStr, MetricType};
use crate::model::point::{Point, SeriesSuffix};
use prost::Message as _;
use std::collections::HashMap;
use std::ops::Range;

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
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<extra::Exemplar>,
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<extra::Histogram>,
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
            TimeSeries {
                labels,
                samples,
                exemplars: batch.exemplars[s.exemplars.clone()]
                    .iter()
                    .map(|(_, e)| e.clone())
                    .collect(),
                histograms: batch.histograms[s.histograms.clone()]
                    .iter()
                    .map(|(_, h)| h.clone())
                    .collect(),
            }
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
        for (_, e) in &batch.exemplars[s.exemplars.clone()] {
            buf.push(KEY_TIMESERIES_EXEMPLARS);
            put_varint(&mut buf, e.encoded_len() as u64);
            e.encode_raw(&mut buf);
        }
        for (_, h) in &batch.histograms[s.histograms.clone()] {
            buf.push(KEY_TIMESERIES_HISTOGRAMS);
            put_varint(&mut buf, h.encoded_len() as u64);
            h.encode_raw(&mut buf);
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
    /// Its native histogram samples and exemplars, in `Batch`'s.
    histograms: Range<usize>,
    exemplars: Range<usize>,
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
    /// Native histogram samples and exemplars with their series, by series
    /// and then timestamp, histograms de-duplicated as samples are. Empty
    /// in nearly every batch.
    histograms: Vec<(u32, extra::Histogram)>,
    exemplars: Vec<(u32, extra::Exemplar)>,
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
        let mut histograms: Vec<(u32, extra::Histogram)> = Vec::new();
        let mut exemplars: Vec<(u32, extra::Exemplar)> = Vec::new();
        for (i, p) in points.iter().enumerate() {
            let tags: &'a [(LabelStr, LabelStr)] = match fixed.get(i) {
                Some(Some(t)) => t,
                _ => &p.tags,
            };
            let ts = p.time_ns.div_euclid(1_000_000);
            let slots = index.entry((&*p.family, tags)).or_insert([NO_SERIES; 4]);
            for f in &p.fields {
                let id = series_of(slots, &mut series, &p.family, f.suffix, tags);
                series[id as usize].len += 1;
                pushed.push((id, ts, f.value));
            }
            if let Some(x) = &p.extra {
                // A native histogram is the family's own series; other
                // exemplars belong to the point's one field's series.
                let main = match (&x.native, p.fields.first()) {
                    (None, Some(f)) => f.suffix,
                    _ => SeriesSuffix::None,
                };
                let id = series_of(slots, &mut series, &p.family, main, tags);
                if let Some(n) = &x.native {
                    let field = |s| p.fields.iter().find(|f| f.suffix == s).map(|f| f.value);
                    let count = field(SeriesSuffix::Count).unwrap_or(0.0);
                    let sum = field(SeriesSuffix::Sum).unwrap_or(0.0);
                    let gauge = p.kind == MetricType::GaugeHistogram;
                    histograms.push((id, extra::histogram(n, count, sum, gauge, ts)));
                }
                for e in &x.exemplars {
                    exemplars.push((id, extra::exemplar(e, ts)));
                }
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
        // Rare: sorted whole (stable, so push order is kept within a
        // timestamp), then cut into each series' run.
        histograms.sort_by_key(|(id, h)| (*id, h.timestamp));
        // Of two histograms of a series at one timestamp, the later wins.
        let mut deduped: Vec<(u32, extra::Histogram)> = Vec::with_capacity(histograms.len());
        for h in histograms {
            match deduped.last_mut() {
                Some(last) if last.0 == h.0 && last.1.timestamp == h.1.timestamp => *last = h,
                _ => deduped.push(h),
            }
        }
        let histograms = deduped;
        exemplars.sort_by_key(|(id, e)| (*id, e.timestamp));
        for (i, s) in series.iter_mut().enumerate() {
            let id = i as u32;
            s.histograms = run_of(&histograms, id);
            s.exemplars = run_of(&exemplars, id);
        }
        Batch {
            series,
            samples,
            histograms,
            exemplars,
        }
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
        for (_, e) in &self.exemplars[s.exemplars.clone()] {
            let l = e.encoded_len();
            len += 1 + varint_len(l as u64) + l;
        }
        for (_, h) in &self.histograms[s.histograms.clone()] {
            let l = h.encoded_len();
            len += 1 + varint_len(l as u64) + l;
        }
        len
    }
}

/// The id of the series of `family` + `suffix` with `tags`, whose slots
/// are `slots`: a new one if it has none yet.
fn series_of<'a>(
    slots: &mut [u32; 4],
    series: &mut Vec<Series<'a>>,
    family: &'a str,
    suffix: SeriesSuffix,
    tags: &'a [(LabelStr, LabelStr)],
) -> u32 {
    let slot = &mut slots[suffix_slot(suffix)];
    if *slot == NO_SERIES {
        *slot = series.len() as u32;
        series.push(Series {
            family,
            suffix,
            tags,
            start: 0,
            len: 0,
            histograms: 0..0,
            exemplars: 0..0,
        });
    }
    *slot
}

/// The range of the entries of series `id` in `items`, sorted by series.
fn run_of<T>(items: &[(u32, T)], id: u32) -> Range<usize> {
    if items.is_empty() {
        return 0..0;
    }
    items.partition_point(|(i, _)| *i < id)..items.partition_point(|(i, _)| *i <= id)
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
const KEY_TIMESERIES_EXEMPLARS: u8 = 3 << 3 | LEN;
const KEY_TIMESERIES_HISTOGRAMS: u8 = 4 << 3 | LEN;
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
mod tests;
