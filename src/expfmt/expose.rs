//! The exposition side of `GET /metrics`: choosing a format from the scrape's
//! `Accept` header ([`negotiate`]), gzip from `Accept-Encoding`
//! ([`accepts_gzip`], [`gzip`]), and writing the families
//! ([`ExpositionWriter`]) as the text format 0.0.4 or as varint-delimited
//! `io.prometheus.client.MetricFamily` messages.
//!
//! The text output is what Go's `expfmt.MetricFamilyToText`
//! (prometheus/common) writes for the same data: HELP only when there is
//! one, TYPE always (a gauge histogram as `histogram`), values and `le` /
//! `quantile` labels as `strconv.FormatFloat(v, 'g', -1, 64)` with `+Inf`,
//! `-Inf`, `NaN` and a bare `0` for both zeros, the timestamp on every line
//! of a metric, and a `+Inf` bucket added to a histogram that has none.
//!
//! The protobuf output is byte for byte what prost encodes for
//! [`family_to_proto`](super::proto::family_to_proto) of the same family, but
//! it is encoded straight from the borrowed model, without building (and
//! cloning every label into) the message structs. As in Go, a histogram's
//! buckets go out as they are: no `+Inf` bucket is added.
//!
//! Both writers append to one buffer and allocate nothing per sample.
//! A family without metrics is skipped by both (Go's text writer refuses one
//! with "has no metrics").

use prost::encoding::{encode_varint, encoded_len_varint};

pub use super::negotiate::{
    ExpositionFormat, NameEscaping, DELIMITED_CONTENT_TYPE, TEXT_CONTENT_TYPE,
};
use super::proto;
use crate::model::family::{Exemplar, Histogram, Metric, MetricType, Summary, Value};
use crate::model::gofloat::write_go_g;
use crate::model::names::{is_valid_metric_name, NameKind};
use prost::Message as _;
use std::borrow::Cow;

/// Accumulates one exposition, family by family, in the chosen format.
pub struct ExpositionWriter {
    format: ExpositionFormat,
    out: Vec<u8>,
    /// Reused per metric (text: the rendered label pairs of a summary or
    /// histogram) or per family (protobuf: the encoded metrics).
    scratch: Vec<u8>,
    /// How metric and label names are written.
    names: NameEscaping,
}

impl ExpositionWriter {
    pub fn new(format: ExpositionFormat) -> Self {
        Self::with_capacity(format, 0)
    }

    /// A writer whose output buffer starts with room for `capacity` bytes
    /// (the size of the previous exposition is a good guess).
    pub fn with_capacity(format: ExpositionFormat, capacity: usize) -> Self {
        ExpositionWriter {
            format,
            out: Vec::with_capacity(capacity),
            scratch: Vec::new(),
            names: NameEscaping::AsStored,
        }
    }

    /// Writes names in `names`' escaping (with `utf8_names`; the default,
    /// `AsStored`, writes them as they are and costs nothing).
    pub fn with_names(mut self, names: NameEscaping) -> Self {
        self.names = names;
        self
    }

    /// The format being written.
    pub fn format(&self) -> ExpositionFormat {
        self.format
    }

    /// Writes one family. Families must be written in the order they are to
    /// appear; the caller guarantees one call per name. `metrics` may come
    /// from several groups. Timestamps in Metric are written if Some. A
    /// family whose iterator yields nothing is skipped entirely.
    pub fn write_family<'a>(
        &mut self,
        name: &str,
        help: Option<&str>,
        kind: MetricType,
        metrics: impl Iterator<Item = &'a Metric>,
    ) {
        let mut metrics = metrics.peekable();
        if metrics.peek().is_none() {
            return;
        }
        if self.names.rewrites() {
            let mut b = self.begin_family(name, help, kind);
            for m in metrics {
                let pairs: Vec<(&str, &str)> = m
                    .labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                b.series_at(&pairs, &m.value, m.exemplar.as_deref(), m.timestamp_ms);
            }
            return;
        }
        match self.format {
            ExpositionFormat::Text => {
                write_text_header(&mut self.out, name, help, kind, false);
                for metric in metrics {
                    write_text_metric(&mut self.out, &mut self.scratch, name, metric);
                }
            }
            ExpositionFormat::Delimited => {
                encode_delimited_family(&mut self.out, &mut self.scratch, name, help, kind, metrics)
            }
        }
    }

    /// Starts a family whose series the caller writes one by one with
    /// [`FamilyBuilder::series`], from label pairs it assembles itself (the
    /// store keeps a series' labels apart from its group's). As with
    /// [`ExpositionWriter::write_family`], a family with no series writes
    /// nothing; the family is complete when the builder is dropped.
    pub fn begin_family<'w>(
        &'w mut self,
        name: &'w str,
        help: Option<&'w str>,
        kind: MetricType,
    ) -> FamilyBuilder<'w> {
        self.scratch.clear();
        let name = self.names.name(name, NameKind::Metric);
        FamilyBuilder {
            writer: self,
            name,
            help,
            kind,
            series: 0,
            labels: Vec::new(),
        }
    }

    /// The exposition written so far.
    pub fn finish(self) -> Vec<u8> {
        self.out
    }
}

/// One family being written series by series; see
/// [`ExpositionWriter::begin_family`].
pub struct FamilyBuilder<'w> {
    writer: &'w mut ExpositionWriter,
    /// Escaped as the writer's `names` say.
    name: Cow<'w, str>,
    help: Option<&'w str>,
    kind: MetricType,
    series: usize,
    /// Text: the rendered label pairs of a summary or histogram.
    labels: Vec<u8>,
}

impl FamilyBuilder<'_> {
    /// Writes one series: `labels` in the order to write them, no
    /// timestamp; a counter's `exemplar` goes out in protobuf only, as in
    /// Go's text writer.
    pub fn series(&mut self, labels: &[(&str, &str)], value: &Value, exemplar: Option<&Exemplar>) {
        self.series_at(labels, value, exemplar, None);
    }

    /// [`FamilyBuilder::series`] with a timestamp.
    fn series_at(
        &mut self,
        labels: &[(&str, &str)],
        value: &Value,
        exemplar: Option<&Exemplar>,
        ts: Option<i64>,
    ) {
        let names = self.writer.names;
        if !matches!(names, NameEscaping::AsStored | NameEscaping::AllowUtf8) {
            let escaped: Vec<(Cow<'_, str>, &str)> = labels
                .iter()
                .map(|&(k, v)| (names.name(k, NameKind::Label), v))
                .collect();
            let pairs: Vec<(&str, &str)> = escaped.iter().map(|(k, v)| (k.as_ref(), *v)).collect();
            self.write_series(&pairs, value, exemplar, ts);
        } else {
            self.write_series(labels, value, exemplar, ts);
        }
    }

    fn write_series(
        &mut self,
        labels: &[(&str, &str)],
        value: &Value,
        exemplar: Option<&Exemplar>,
        ts: Option<i64>,
    ) {
        let w = &mut *self.writer;
        let quote = w.names == NameEscaping::AllowUtf8;
        match w.format {
            ExpositionFormat::Text => {
                if self.series == 0 {
                    write_text_header(&mut w.out, &self.name, self.help, self.kind, quote);
                }
                if quote {
                    write_quoted_series(
                        &mut w.out,
                        &mut self.labels,
                        &self.name,
                        labels,
                        value,
                        ts,
                    );
                } else {
                    write_text_series(&mut w.out, &mut self.labels, &self.name, labels, value, ts);
                }
            }
            ExpositionFormat::Delimited => {
                encode_series(&mut w.scratch, self.kind, labels, value, exemplar, ts)
            }
        }
        self.series += 1;
    }
}

impl Drop for FamilyBuilder<'_> {
    fn drop(&mut self) {
        let w = &mut *self.writer;
        if w.format == ExpositionFormat::Delimited && self.series > 0 {
            encode_family(&mut w.out, &self.name, self.help, self.kind, &w.scratch);
        }
    }
}

// ---------------------------------------------------------------------------
// Text format 0.0.4

fn text_type(kind: MetricType) -> &'static [u8] {
    match kind {
        MetricType::Counter => b"counter",
        MetricType::Gauge => b"gauge",
        MetricType::Summary => b"summary",
        MetricType::Untyped => b"untyped",
        // Text 0.0.4 has no gauge histogram type; Go writes `histogram`.
        MetricType::Histogram | MetricType::GaugeHistogram => b"histogram",
    }
}

/// `quote`: with `escaping=allow-utf-8`, a name that is not a legacy one
/// is written quoted, as Go's `writeName` does.
fn write_text_header(
    out: &mut Vec<u8>,
    name: &str,
    help: Option<&str>,
    kind: MetricType,
    quote: bool,
) {
    if let Some(help) = help {
        out.extend_from_slice(b"# HELP ");
        write_name(out, name, NameKind::Metric, quote);
        out.push(b' ');
        write_escaped(out, help, false);
        out.push(b'\n');
    }
    out.extend_from_slice(b"# TYPE ");
    write_name(out, name, NameKind::Metric, quote);
    out.push(b' ');
    out.extend_from_slice(text_type(kind));
    out.push(b'\n');
}

fn write_text_metric(out: &mut Vec<u8>, labels: &mut Vec<u8>, name: &str, metric: &Metric) {
    write_text_series(
        out,
        labels,
        name,
        &metric.labels,
        &metric.value,
        metric.timestamp_ms,
    );
}

fn write_text_series<K: AsRef<str>, V: AsRef<str>>(
    out: &mut Vec<u8>,
    labels: &mut Vec<u8>,
    name: &str,
    pairs: &[(K, V)],
    value: &Value,
    ts: Option<i64>,
) {
    match value {
        Value::Simple(v) => {
            out.extend_from_slice(name.as_bytes());
            if !pairs.is_empty() {
                out.push(b'{');
                write_label_pairs(out, pairs);
                out.push(b'}');
            }
            end_sample(out, *v, ts);
        }
        Value::Summary(Summary {
            sample_count,
            sample_sum,
            quantiles,
        }) => {
            // The label pairs are the same on every line: render them once.
            labels.clear();
            write_label_pairs(labels, pairs);
            for &(q, v) in quantiles {
                write_sample(out, name, b"", labels, Some((b"quantile", q)), v, ts);
            }
            write_sample(out, name, b"_sum", labels, None, *sample_sum, ts);
            write_sample(out, name, b"_count", labels, None, *sample_count, ts);
        }
        Value::Histogram(
            h @ Histogram {
                sample_sum,
                buckets,
                ..
            },
        ) => {
            let sample_count = &text_histogram_count(h);
            labels.clear();
            write_label_pairs(labels, pairs);
            let mut inf_seen = false;
            for &(le, count) in buckets {
                write_sample(out, name, b"_bucket", labels, Some((b"le", le)), count, ts);
                inf_seen |= le == f64::INFINITY;
            }
            if !inf_seen {
                let le = Some((&b"le"[..], f64::INFINITY));
                write_sample(out, name, b"_bucket", labels, le, *sample_count, ts);
            }
            write_sample(out, name, b"_sum", labels, None, *sample_sum, ts);
            write_sample(out, name, b"_count", labels, None, *sample_count, ts);
        }
    }
}

/// A name, quoted and escaped if `quote` and it is not a legacy name of
/// its kind. Go tests label names against the metric-name rule too, so
/// it writes a label `a:b` bare, which no parser reads back.
fn write_name(out: &mut Vec<u8>, name: &str, kind: NameKind, quote: bool) {
    if quote && !kind.is_legacy(name) {
        out.push(b'"');
        write_escaped(out, name, true);
        out.push(b'"');
    } else {
        out.extend_from_slice(name.as_bytes());
    }
}

/// A series with `escaping=allow-utf-8`: as [`write_text_series`], but a
/// metric name that is not a legacy one goes quoted as the first item in
/// the braces (`{"my.metric",a="b"} 1`), and such label names quoted.
fn write_quoted_series(
    out: &mut Vec<u8>,
    labels: &mut Vec<u8>,
    name: &str,
    pairs: &[(&str, &str)],
    value: &Value,
    ts: Option<i64>,
) {
    labels.clear();
    write_label_pairs_quoted(labels, pairs, true);
    let line = |out: &mut Vec<u8>, suffix: &[u8], extra: Option<(&[u8], f64)>, v: f64| {
        if is_valid_metric_name(name.as_bytes()) {
            write_sample(out, name, suffix, labels, extra, v, ts);
            return;
        }
        out.extend_from_slice(b"{\"");
        write_escaped(out, name, true);
        out.extend_from_slice(suffix);
        out.push(b'"');
        if !labels.is_empty() {
            out.push(b',');
            out.extend_from_slice(labels);
        }
        if let Some((label, v)) = extra {
            out.push(b',');
            out.extend_from_slice(label);
            out.extend_from_slice(b"=\"");
            write_float(out, v);
            out.push(b'"');
        }
        out.push(b'}');
        end_sample(out, v, ts);
    };
    match value {
        Value::Simple(v) => line(out, b"", None, *v),
        Value::Summary(s) => {
            for &(q, v) in &s.quantiles {
                line(out, b"", Some((b"quantile", q)), v);
            }
            line(out, b"_sum", None, s.sample_sum);
            line(out, b"_count", None, s.sample_count);
        }
        Value::Histogram(h) => {
            let count = text_histogram_count(h);
            let mut inf_seen = false;
            for &(le, c) in &h.buckets {
                line(out, b"_bucket", Some((b"le", le)), c);
                inf_seen |= le == f64::INFINITY;
            }
            if !inf_seen {
                line(out, b"_bucket", Some((b"le", f64::INFINITY)), count);
            }
            line(out, b"_sum", None, h.sample_sum);
            line(out, b"_count", None, count);
        }
    }
}

/// The count Go's text writer shows: it reads the integer count field
/// only, so a float native histogram (`sample_count_float`) shows its
/// integer count, 0 when unset, as the Pushgateway's text does.
fn text_histogram_count(h: &Histogram) -> f64 {
    match h.native.as_deref() {
        Some(n) if n.sample_count_float.is_some_and(|f| f > 0.0) => {
            n.sample_count.unwrap_or(0) as f64
        }
        _ => h.sample_count,
    }
}

/// `l1="v1",l2="v2"`, values escaped, no braces.
fn write_label_pairs<K: AsRef<str>, V: AsRef<str>>(out: &mut Vec<u8>, labels: &[(K, V)]) {
    write_label_pairs_quoted(out, labels, false);
}

/// [`write_label_pairs`], names quoted as [`write_name`] does when `quote`.
fn write_label_pairs_quoted<K: AsRef<str>, V: AsRef<str>>(
    out: &mut Vec<u8>,
    labels: &[(K, V)],
    quote: bool,
) {
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_name(out, name.as_ref(), NameKind::Label, quote);
        out.extend_from_slice(b"=\"");
        write_escaped(out, value.as_ref(), true);
        out.push(b'"');
    }
}

/// One line: `name suffix {labels,extra="x"} value [timestamp]`, where
/// `labels` is pre-rendered by [`write_label_pairs`].
fn write_sample(
    out: &mut Vec<u8>,
    name: &str,
    suffix: &[u8],
    labels: &[u8],
    extra: Option<(&[u8], f64)>,
    value: f64,
    timestamp_ms: Option<i64>,
) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(suffix);
    if !labels.is_empty() || extra.is_some() {
        out.push(b'{');
        out.extend_from_slice(labels);
        if let Some((label, v)) = extra {
            if !labels.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(label);
            out.extend_from_slice(b"=\"");
            write_float(out, v);
            out.push(b'"');
        }
        out.push(b'}');
    }
    end_sample(out, value, timestamp_ms);
}

/// ` value [timestamp]\n`.
fn end_sample(out: &mut Vec<u8>, value: f64, timestamp_ms: Option<i64>) {
    out.push(b' ');
    write_float(out, value);
    if let Some(ts) = timestamp_ms {
        out.push(b' ');
        write_i64(out, ts);
    }
    out.push(b'\n');
}

/// Appends `s` with `\` → `\\` and newline → `\n`, and also `"` → `\"` when
/// `quote` (label values; HELP text leaves `"` alone).
fn write_escaped(out: &mut Vec<u8>, s: &str, quote: bool) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'"' if quote => b"\\\"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escaped);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Appends `v` as Go's expfmt `writeFloat` does: Go's `%g`
/// ([`write_go_g`]), except that both zeros are `0`.
fn write_float(out: &mut Vec<u8>, v: f64) {
    if v == 0.0 {
        out.push(b'0');
    } else {
        write_go_g(out, v);
    }
}

fn write_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

// ---------------------------------------------------------------------------
// Delimited protobuf, encoded by hand from the borrowed model.
//
// Field numbers and the encoding follow `proto.rs` and `family_to_proto`:
// prost writes fields in tag order, optional fields when Some (even when
// zero), repeated messages one by one. Wire types: 0 varint, 1 fixed64,
// 2 length-delimited.

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;

const fn key(field: u8, wire_type: u8) -> u8 {
    (field << 3) | wire_type
}

/// Encoded size of a length-delimited field (single-byte key) whose payload
/// is `len` bytes.
fn len_field_size(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

/// Size of a fixed64 field with a single-byte key.
const DOUBLE_FIELD_SIZE: usize = 9;

fn put_len_field(out: &mut Vec<u8>, field: u8, len: usize) {
    out.push(key(field, LEN));
    encode_varint(len as u64, out);
}

fn put_bytes_field(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    put_len_field(out, field, bytes.len());
    out.extend_from_slice(bytes);
}

fn put_double_field(out: &mut Vec<u8>, field: u8, v: f64) {
    out.push(key(field, FIXED64));
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_varint_field(out: &mut Vec<u8>, field: u8, v: u64) {
    out.push(key(field, VARINT));
    encode_varint(v, out);
}

/// A count as (integer field, float field), as `family_to_proto` splits it:
/// whole counts in `u64` range go in the integer field alone; others also in
/// the float field, with the saturated integer alongside.
fn split_count(c: f64) -> (u64, Option<f64>) {
    const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;
    if (0.0..TWO_POW_64).contains(&c) && c.fract() == 0.0 {
        (c as u64, None)
    } else {
        (c as u64, Some(c))
    }
}

/// Appends one `MetricFamily` message with its varint length prefix,
/// encoding its metrics into `scratch` first (a family without metrics is
/// written too, as prost would write it).
pub(super) fn encode_delimited_family<'a>(
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    name: &str,
    help: Option<&str>,
    kind: MetricType,
    metrics: impl Iterator<Item = &'a Metric>,
) {
    scratch.clear();
    for metric in metrics {
        encode_metric(scratch, kind, metric);
    }
    encode_family(out, name, help, kind, scratch);
}

/// Appends one `MetricFamily` message with its varint length prefix;
/// `metrics` holds the already encoded `metric` fields (field 4).
fn encode_family(
    out: &mut Vec<u8>,
    name: &str,
    help: Option<&str>,
    kind: MetricType,
    metrics: &[u8],
) {
    let type_number = proto::MetricType::from(kind) as i32 as u64;
    let len = len_field_size(name.len())
        + help.map_or(0, |h| len_field_size(h.len()))
        + 1
        + encoded_len_varint(type_number)
        + metrics.len();
    out.reserve(len + 5);
    encode_varint(len as u64, out);
    put_bytes_field(out, 1, name.as_bytes());
    if let Some(help) = help {
        put_bytes_field(out, 2, help.as_bytes());
    }
    put_varint_field(out, 3, type_number);
    out.extend_from_slice(metrics);
}

fn label_pair_size(name: &str, value: &str) -> usize {
    len_field_size(name.len()) + len_field_size(value.len())
}

fn summary_size(s: &Summary) -> usize {
    1 + encoded_len_varint(s.sample_count as u64)
        + DOUBLE_FIELD_SIZE
        + s.quantiles.len() * len_field_size(2 * DOUBLE_FIELD_SIZE)
}

fn bucket_size(count: f64) -> usize {
    let (int, float) = split_count(count);
    1 + encoded_len_varint(int)
        + DOUBLE_FIELD_SIZE
        + if float.is_some() {
            DOUBLE_FIELD_SIZE
        } else {
            0
        }
}

fn histogram_size(h: &Histogram) -> usize {
    let (int, float) = split_count(h.sample_count);
    1 + encoded_len_varint(int)
        + DOUBLE_FIELD_SIZE
        + h.buckets
            .iter()
            .map(|&(_, c)| len_field_size(bucket_size(c)))
            .sum::<usize>()
        + if float.is_some() {
            DOUBLE_FIELD_SIZE
        } else {
            0
        }
}

/// Appends one `metric` field (field 4 of `MetricFamily`): key, length and
/// the `Metric` message.
fn encode_metric(out: &mut Vec<u8>, kind: MetricType, m: &Metric) {
    encode_series(
        out,
        kind,
        &m.labels,
        &m.value,
        m.exemplar.as_deref(),
        m.timestamp_ms,
    );
}

/// The value message of a counter with an exemplar or of a histogram with
/// native buckets or exemplars, encoded by prost: such series are rare, and
/// their messages have many optional parts.
fn encode_rare_value(value: &Value, exemplar: Option<&Exemplar>) -> Option<Vec<u8>> {
    match value {
        Value::Simple(v) => exemplar.map(|e| {
            proto::Counter {
                value: Some(*v),
                exemplar: Some(proto::exemplar_to_proto(e)),
                created_timestamp: None,
            }
            .encode_to_vec()
        }),
        Value::Histogram(h) if h.has_extras() => Some(proto::histogram_to_proto(h).encode_to_vec()),
        _ => None,
    }
}

fn encode_series<K: AsRef<str>, V: AsRef<str>>(
    out: &mut Vec<u8>,
    kind: MetricType,
    labels: &[(K, V)],
    value: &Value,
    exemplar: Option<&Exemplar>,
    timestamp_ms: Option<i64>,
) {
    // A counter's exemplar exists only on counters.
    let exemplar = exemplar.filter(|_| kind == MetricType::Counter);
    let rare = encode_rare_value(value, exemplar);
    // Which field of Metric carries the value, and its payload size.
    let (value_field, value_size) = match value {
        Value::Simple(_) => {
            let field = match kind {
                MetricType::Counter => 3,
                MetricType::Gauge => 2,
                _ => 5,
            };
            (field, DOUBLE_FIELD_SIZE)
        }
        Value::Summary(s) => (4, summary_size(s)),
        Value::Histogram(h) => (7, histogram_size(h)),
    };
    let value_size = rare.as_ref().map_or(value_size, Vec::len);
    let size = labels
        .iter()
        .map(|(n, v)| len_field_size(label_pair_size(n.as_ref(), v.as_ref())))
        .sum::<usize>()
        + len_field_size(value_size)
        + timestamp_ms.map_or(0, |ts| 1 + encoded_len_varint(ts as u64));
    put_len_field(out, 4, size);

    for (name, v) in labels {
        let (name, v) = (name.as_ref(), v.as_ref());
        put_len_field(out, 1, label_pair_size(name, v));
        put_bytes_field(out, 1, name.as_bytes());
        put_bytes_field(out, 2, v.as_bytes());
    }
    // Fields go in tag order: the timestamp (6) sits between the simple and
    // summary values (2 to 5) and the histogram (7).
    let put_value = |out: &mut Vec<u8>| match &rare {
        Some(bytes) => put_bytes_field(out, value_field, bytes),
        None => encode_value(out, value_field, value_size, value),
    };
    if value_field < 6 {
        put_value(out);
    }
    if let Some(ts) = timestamp_ms {
        put_varint_field(out, 6, ts as u64);
    }
    if value_field > 6 {
        put_value(out);
    }
}

/// A value without exemplars or native buckets, encoded by hand.
fn encode_value(out: &mut Vec<u8>, field: u8, size: usize, value: &Value) {
    put_len_field(out, field, size);
    match value {
        // Counter, Gauge and Untyped all carry the value as field 1.
        Value::Simple(v) => put_double_field(out, 1, *v),
        Value::Summary(s) => {
            put_varint_field(out, 1, s.sample_count as u64);
            put_double_field(out, 2, s.sample_sum);
            for &(q, v) in &s.quantiles {
                put_len_field(out, 3, 2 * DOUBLE_FIELD_SIZE);
                put_double_field(out, 1, q);
                put_double_field(out, 2, v);
            }
        }
        Value::Histogram(h) => {
            let (count, count_float) = split_count(h.sample_count);
            put_varint_field(out, 1, count);
            put_double_field(out, 2, h.sample_sum);
            for &(upper_bound, c) in &h.buckets {
                put_len_field(out, 3, bucket_size(c));
                let (int, float) = split_count(c);
                put_varint_field(out, 1, int);
                put_double_field(out, 2, upper_bound);
                if let Some(f) = float {
                    put_double_field(out, 4, f);
                }
            }
            if let Some(f) = count_float {
                put_double_field(out, 4, f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::delimited::parse_delimited;
    use super::super::proto::family_to_proto;
    use super::super::text::parse_text;
    use super::*;
    use crate::model::family::{Family, LabelStr};
    use prost::Message;

    /// The builder, fed series by series, writes what `write_family` does,
    /// in both formats, and nothing for a family without series.
    #[test]
    fn builder_matches_write_family() {
        let families = parse_text(
            b"# HELP c C.\n# TYPE c counter\nc{a=\"1\"} 2\nc 3\n# TYPE s summary\ns{quantile=\"0.5\",x=\"y\"} 1\ns_sum{x=\"y\"} 2\ns_count{x=\"y\"} 3\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 2\nh_count 3\n",
        )
        .unwrap();
        for format in [ExpositionFormat::Text, ExpositionFormat::Delimited] {
            let mut whole = ExpositionWriter::new(format);
            let mut built = ExpositionWriter::new(format);
            for f in &families {
                whole.write_family(&f.name, f.help.as_deref(), f.kind, f.metrics.iter());
                let mut b = built.begin_family(&f.name, f.help.as_deref(), f.kind);
                for m in &f.metrics {
                    let pairs: Vec<(&str, &str)> = m
                        .labels
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    b.series(&pairs, &m.value, m.exemplar.as_deref());
                }
            }
            drop(built.begin_family("empty", Some("never written"), MetricType::Gauge));
            assert_eq!(built.finish(), whole.finish(), "{format:?}");
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(LabelStr, LabelStr)> {
        pairs
            .iter()
            .map(|&(n, v)| (LabelStr::from(n), LabelStr::from(v)))
            .collect()
    }

    fn simple(pairs: &[(&str, &str)], v: f64, ts: Option<i64>) -> Metric {
        Metric {
            labels: labels(pairs),
            value: Value::Simple(v),
            timestamp_ms: ts,
            exemplar: None,
        }
    }

    fn text_of(families: &[Family]) -> String {
        let mut w = ExpositionWriter::new(ExpositionFormat::Text);
        for f in families {
            w.write_family(&f.name, f.help.as_deref(), f.kind, f.metrics.iter());
        }
        String::from_utf8(w.finish()).unwrap()
    }

    fn delimited_of(families: &[Family]) -> Vec<u8> {
        let mut w = ExpositionWriter::new(ExpositionFormat::Delimited);
        assert_eq!(w.format(), ExpositionFormat::Delimited);
        for f in families {
            w.write_family(&f.name, f.help.as_deref(), f.kind, f.metrics.iter());
        }
        w.finish()
    }

    fn family(name: &str, help: Option<&str>, kind: MetricType, metrics: Vec<Metric>) -> Family {
        Family {
            name: name.into(),
            help: help.map(Into::into),
            kind,
            metrics,
        }
    }

    fn float_text(v: f64) -> String {
        let mut out = Vec::new();
        write_float(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    fn sample_families() -> Vec<Family> {
        vec![
            family(
                "requests_total",
                Some("Requests \\ served.\nSecond line, \"quoted\"."),
                MetricType::Counter,
                vec![
                    simple(&[("code", "200"), ("path", "/a\\b\"c\nd")], 1027.0, None),
                    simple(
                        &[("code", "500"), ("path", "ü")],
                        3.5,
                        Some(1_700_000_000_123),
                    ),
                ],
            ),
            family(
                "temperature",
                None,
                MetricType::Gauge,
                vec![simple(&[], -12.25, Some(-5))],
            ),
            family(
                "rpc_seconds",
                Some("RPC latency."),
                MetricType::Summary,
                vec![Metric {
                    labels: labels(&[("svc", "x")]),
                    value: Value::Summary(Summary {
                        sample_count: 42.0,
                        sample_sum: 1.5e-3,
                        quantiles: vec![(0.5, 0.01), (0.99, 2e6)],
                    }),
                    timestamp_ms: Some(7),
                    exemplar: None,
                }],
            ),
            family(
                "size_bytes",
                None,
                MetricType::Histogram,
                vec![
                    Metric {
                        labels: vec![],
                        value: Value::Histogram(Histogram {
                            sample_count: 10.0,
                            sample_sum: 123.5,
                            buckets: vec![(100.0, 3.0), (1000.0, 8.0), (f64::INFINITY, 10.0)],
                            native: None,
                            exemplars: None,
                        }),
                        timestamp_ms: None,
                        exemplar: None,
                    },
                    Metric {
                        labels: labels(&[("a", "b")]),
                        value: Value::Histogram(Histogram {
                            sample_count: 4.0,
                            sample_sum: 0.0,
                            buckets: vec![(0.5, 4.0)],
                            native: None,
                            exemplars: None,
                        }),
                        timestamp_ms: None,
                        exemplar: None,
                    },
                ],
            ),
            family(
                "queue_depth",
                Some(""),
                MetricType::GaugeHistogram,
                vec![Metric {
                    labels: labels(&[("q", "1")]),
                    value: Value::Histogram(Histogram {
                        sample_count: 2.0,
                        sample_sum: 3.0,
                        buckets: vec![(1.0, 1.0), (5.0, 2.0)],
                        native: None,
                        exemplars: None,
                    }),
                    timestamp_ms: Some(99),
                    exemplar: None,
                }],
            ),
            family(
                "misc",
                None,
                MetricType::Untyped,
                vec![simple(&[("k", "")], 1e21, None)],
            ),
        ]
    }

    #[test]
    fn content_types() {
        assert_eq!(ExpositionFormat::Text.content_type(), TEXT_CONTENT_TYPE);
        assert_eq!(
            ExpositionFormat::Delimited.content_type(),
            DELIMITED_CONTENT_TYPE
        );
    }

    #[test]
    fn text_simple_types() {
        let fams = vec![
            family(
                "c_total",
                Some("A counter."),
                MetricType::Counter,
                vec![
                    simple(&[("a", "1"), ("b", "2")], 5.0, None),
                    simple(&[], 6.5, Some(1234)),
                ],
            ),
            family("g", None, MetricType::Gauge, vec![simple(&[], -1.0, None)]),
            family(
                "u",
                Some("Untyped."),
                MetricType::Untyped,
                vec![simple(&[("x", "y")], 0.25, None)],
            ),
        ];
        assert_eq!(
            text_of(&fams),
            "# HELP c_total A counter.\n\
             # TYPE c_total counter\n\
             c_total{a=\"1\",b=\"2\"} 5\n\
             c_total 6.5 1234\n\
             # TYPE g gauge\n\
             g -1\n\
             # HELP u Untyped.\n\
             # TYPE u untyped\n\
             u{x=\"y\"} 0.25\n"
        );
    }

    #[test]
    fn text_escaping() {
        let fams = vec![family(
            "e",
            Some("back\\slash \"quote\"\nnewline"),
            MetricType::Gauge,
            vec![simple(
                &[("l", "a\\b\"c\nd"), ("m", "plain ü"), ("n", "")],
                1.0,
                None,
            )],
        )];
        assert_eq!(
            text_of(&fams),
            "# HELP e back\\\\slash \"quote\"\\nnewline\n\
             # TYPE e gauge\n\
             e{l=\"a\\\\b\\\"c\\nd\",m=\"plain ü\",n=\"\"} 1\n"
        );
    }

    #[test]
    fn text_summary() {
        let fams = vec![family(
            "s",
            None,
            MetricType::Summary,
            vec![
                Metric {
                    labels: labels(&[("a", "x\"")]),
                    value: Value::Summary(Summary {
                        sample_count: 3.0,
                        sample_sum: 4.5,
                        quantiles: vec![(0.5, 1.0), (0.99, f64::NAN)],
                    }),
                    timestamp_ms: Some(10),
                    exemplar: None,
                },
                Metric {
                    labels: vec![],
                    value: Value::Summary(Summary {
                        sample_count: 0.0,
                        sample_sum: 0.0,
                        quantiles: vec![(0.9, 2.0)],
                    }),
                    timestamp_ms: None,
                    exemplar: None,
                },
            ],
        )];
        assert_eq!(
            text_of(&fams),
            "# TYPE s summary\n\
             s{a=\"x\\\"\",quantile=\"0.5\"} 1 10\n\
             s{a=\"x\\\"\",quantile=\"0.99\"} NaN 10\n\
             s_sum{a=\"x\\\"\"} 4.5 10\n\
             s_count{a=\"x\\\"\"} 3 10\n\
             s{quantile=\"0.9\"} 2\n\
             s_sum 0\n\
             s_count 0\n"
        );
    }

    #[test]
    fn text_histogram_adds_inf_bucket() {
        let fams = vec![
            family(
                "h",
                Some("H."),
                MetricType::Histogram,
                vec![Metric {
                    labels: labels(&[("a", "1")]),
                    value: Value::Histogram(Histogram {
                        sample_count: 5.0,
                        sample_sum: 2.5,
                        buckets: vec![(0.1, 1.0), (1e6, 4.0)],
                        native: None,
                        exemplars: None,
                    }),
                    timestamp_ms: None,
                    exemplar: None,
                }],
            ),
            family(
                "gh",
                None,
                MetricType::GaugeHistogram,
                vec![Metric {
                    labels: vec![],
                    value: Value::Histogram(Histogram {
                        sample_count: 2.0,
                        sample_sum: -1.0,
                        buckets: vec![(1.0, 1.0), (f64::INFINITY, 2.0)],
                        native: None,
                        exemplars: None,
                    }),
                    timestamp_ms: Some(5),
                    exemplar: None,
                }],
            ),
            family(
                "empty_buckets",
                None,
                MetricType::Histogram,
                vec![Metric {
                    labels: vec![],
                    value: Value::Histogram(Histogram {
                        sample_count: 1.5,
                        sample_sum: 1.0,
                        buckets: vec![],
                        native: None,
                        exemplars: None,
                    }),
                    timestamp_ms: None,
                    exemplar: None,
                }],
            ),
        ];
        assert_eq!(
            text_of(&fams),
            "# HELP h H.\n\
             # TYPE h histogram\n\
             h_bucket{a=\"1\",le=\"0.1\"} 1\n\
             h_bucket{a=\"1\",le=\"1e+06\"} 4\n\
             h_bucket{a=\"1\",le=\"+Inf\"} 5\n\
             h_sum{a=\"1\"} 2.5\n\
             h_count{a=\"1\"} 5\n\
             # TYPE gh histogram\n\
             gh_bucket{le=\"1\"} 1 5\n\
             gh_bucket{le=\"+Inf\"} 2 5\n\
             gh_sum -1 5\n\
             gh_count 2 5\n\
             # TYPE empty_buckets histogram\n\
             empty_buckets_bucket{le=\"+Inf\"} 1.5\n\
             empty_buckets_sum 1\n\
             empty_buckets_count 1.5\n"
        );
    }

    #[test]
    fn text_special_values() {
        let fams = vec![family(
            "v",
            None,
            MetricType::Gauge,
            vec![
                simple(&[("i", "1")], f64::INFINITY, None),
                simple(&[("i", "2")], f64::NEG_INFINITY, None),
                simple(&[("i", "3")], f64::NAN, None),
                simple(&[("i", "4")], -0.0, None),
                simple(&[("i", "5")], 1e-7, Some(i64::MIN)),
                simple(&[("i", "6")], 123456789.0, Some(i64::MAX)),
            ],
        )];
        assert_eq!(
            text_of(&fams),
            "# TYPE v gauge\n\
             v{i=\"1\"} +Inf\n\
             v{i=\"2\"} -Inf\n\
             v{i=\"3\"} NaN\n\
             v{i=\"4\"} 0\n\
             v{i=\"5\"} 1e-07 -9223372036854775808\n\
             v{i=\"6\"} 1.23456789e+08 9223372036854775807\n"
        );
    }

    #[test]
    fn floats_are_go_g_but_both_zeros_are_0() {
        // Go's writeFloat writes both zeros as `0` (strconv would say `-0`).
        assert_eq!(float_text(0.0), "0");
        assert_eq!(float_text(-0.0), "0");
        assert_eq!(float_text(1e6), "1e+06");
        assert_eq!(float_text(-2.5e-7), "-2.5e-07");
    }

    #[test]
    fn empty_family_is_skipped() {
        for format in [ExpositionFormat::Text, ExpositionFormat::Delimited] {
            let mut w = ExpositionWriter::new(format);
            w.write_family("nothing", Some("help"), MetricType::Gauge, [].iter());
            w.write_family(
                "one",
                None,
                MetricType::Gauge,
                [simple(&[], 1.0, None)].iter(),
            );
            w.write_family("nothing_either", None, MetricType::Summary, [].iter());
            let out = w.finish();
            match format {
                ExpositionFormat::Text => assert_eq!(out, b"# TYPE one gauge\none 1\n"),
                ExpositionFormat::Delimited => {
                    let fams = parse_delimited(&out).unwrap();
                    assert_eq!(fams.len(), 1);
                    assert_eq!(fams[0].name, "one");
                }
            }
        }
    }

    #[test]
    fn metrics_from_several_groups() {
        let a = [simple(&[("job", "a")], 1.0, None)];
        let b = [simple(&[("job", "b")], 2.0, None)];
        let mut w = ExpositionWriter::new(ExpositionFormat::Text);
        w.write_family("m", None, MetricType::Counter, a.iter().chain(b.iter()));
        assert_eq!(
            w.finish(),
            b"# TYPE m counter\nm{job=\"a\"} 1\nm{job=\"b\"} 2\n"
        );
    }

    #[test]
    fn delimited_matches_prost_encoding() {
        let mut fams = sample_families();
        // Counts that need the float fields, a negative timestamp, a value
        // of a type the family does not have, an empty label value.
        fams.push(family(
            "odd",
            Some("x"),
            MetricType::Histogram,
            vec![Metric {
                labels: labels(&[("e", "")]),
                value: Value::Histogram(Histogram {
                    sample_count: 2.5,
                    sample_sum: f64::NAN,
                    buckets: vec![(1.0, 0.5), (2.0, -1.0), (3.0, 1e300), (4.0, 300.0)],
                    native: Some(Box::default()),
                    exemplars: None,
                }),
                timestamp_ms: Some(-1),
                exemplar: None,
            }],
        ));
        fams.push(family(
            "mixed",
            None,
            MetricType::Summary,
            vec![simple(&[], 1.0, None)],
        ));
        fams.extend(rare_families());
        let mut want = Vec::new();
        for f in &fams {
            family_to_proto(f)
                .encode_length_delimited(&mut want)
                .unwrap();
        }
        assert_eq!(delimited_of(&fams), want);
    }

    /// A counter with an exemplar, and native and mixed histograms with
    /// exemplars: the series whose value prost encodes.
    fn rare_families() -> Vec<Family> {
        use crate::model::family::{HistogramExemplars, NativeBuckets, NativeHistogram};
        let ex = |v: f64, ts: Option<(i64, i32)>| Exemplar {
            labels: labels(&[("trace_id", "4bf92f35")]),
            value: v,
            timestamp: ts,
        };
        let native = NativeHistogram {
            sample_count: Some(5),
            sample_count_float: None,
            schema: Some(3),
            zero_threshold: Some(2.938735877055719e-39),
            zero_count: Some(1),
            zero_count_float: None,
            negative: NativeBuckets {
                spans: vec![(-2, 1)],
                deltas: vec![1],
                counts: vec![],
            },
            positive: NativeBuckets {
                spans: vec![(0, 2), (3, 1)],
                deltas: vec![2, -1, 0],
                counts: vec![],
            },
        };
        let mut counter = simple(&[("a", "b")], 5.0, None);
        counter.exemplar = Some(Box::new(ex(1.0, Some((1_700_000_000, 5)))));
        let histogram = |buckets: Vec<(f64, f64)>, ex_buckets: Vec<(usize, Exemplar)>| Metric {
            labels: labels(&[("path", "/x")]),
            value: Value::Histogram(Histogram {
                sample_count: 5.0,
                sample_sum: 1.25,
                buckets,
                native: Some(Box::new(native.clone())),
                exemplars: Some(Box::new(HistogramExemplars {
                    buckets: ex_buckets,
                    native: vec![ex(0.3, None)],
                })),
            }),
            timestamp_ms: None,
            exemplar: None,
        };
        vec![
            family("ex_total", None, MetricType::Counter, vec![counter]),
            family(
                "native",
                Some("N."),
                MetricType::Histogram,
                vec![
                    histogram(vec![], vec![]),
                    histogram(
                        vec![(0.5, 2.0), (1.0, 5.0)],
                        vec![(1, ex(0.7, Some((3, 0))))],
                    ),
                ],
            ),
        ]
    }

    #[test]
    fn rare_values_round_trip_and_write_classic_text() {
        let fams = rare_families();
        let back = parse_delimited(&delimited_of(&fams)).unwrap();
        assert_eq!(back, fams);
        // Text 0.0.4 has no exemplars or native buckets: Go writes the
        // classic lines, a +Inf bucket from the count included.
        let text = text_of(&fams[1..]);
        assert_eq!(
            text,
            "# HELP native N.\n# TYPE native histogram\n\
             native_bucket{path=\"/x\",le=\"+Inf\"} 5\nnative_sum{path=\"/x\"} 1.25\n\
             native_count{path=\"/x\"} 5\n\
             native_bucket{path=\"/x\",le=\"0.5\"} 2\nnative_bucket{path=\"/x\",le=\"1\"} 5\n\
             native_bucket{path=\"/x\",le=\"+Inf\"} 5\nnative_sum{path=\"/x\"} 1.25\n\
             native_count{path=\"/x\"} 5\n"
        );
    }

    #[test]
    fn delimited_round_trip() {
        let fams = sample_families();
        let body = delimited_of(&fams);
        let mut back = parse_delimited(&body).unwrap();
        // Parsing takes an empty HELP as no HELP.
        let mut want = fams.clone();
        for f in &mut want {
            f.help = f.help.take().filter(|h| !h.is_empty());
        }
        // No +Inf bucket is added in protobuf.
        assert_eq!(back.len(), want.len());
        for (b, w) in back.iter_mut().zip(&want) {
            assert_eq!(b, w);
        }
    }

    #[test]
    fn text_round_trip() {
        let fams = sample_families();
        let body = text_of(&fams);
        let back = parse_text(body.as_bytes()).unwrap();
        let mut want = fams.clone();
        for f in &mut want {
            f.help = f.help.take().filter(|h| !h.is_empty());
            // Text has no gauge histogram type.
            if f.kind == MetricType::GaugeHistogram {
                f.kind = MetricType::Histogram;
            }
            for m in &mut f.metrics {
                // The text writer adds the +Inf bucket the parser keeps.
                if let Value::Histogram(h) = &mut m.value {
                    if !h.buckets.iter().any(|&(le, _)| le == f64::INFINITY) {
                        h.buckets.push((f64::INFINITY, h.sample_count));
                    }
                }
            }
        }
        assert_eq!(back, want);
    }

    #[test]
    fn large_label_and_help_lengths() {
        // Lengths over 127 take multi-byte varints in every nesting level.
        let long = "v".repeat(300);
        let fams = vec![family(
            "long",
            Some(&long),
            MetricType::Gauge,
            (0..50)
                .map(|i| simple(&[("l", &long), ("i", &i.to_string())], i as f64, None))
                .collect(),
        )];
        let body = delimited_of(&fams);
        assert_eq!(parse_delimited(&body).unwrap(), fams);
        assert_eq!(parse_text(text_of(&fams).as_bytes()).unwrap(), fams);
    }
}
