//! InfluxDB line protocol: the encoding of one point per line, written
//! either from a [`Point`] or straight from the parts
//! the mapping produces (see `crate::convert`), and [`Lines`], the encoded
//! points of one push as sinks queue and send them.
//!
//! # Escaping, per [`Dialect`]
//!
//! Backends read backslashes differently, so no one encoding gives every
//! backend back what was pushed:
//! - InfluxDB 1.x (and DataKit's Dataway, which reads line protocol as
//!   InfluxDB does) unescapes only `\,`, `\ ` and `\=` (`\,` and `\ ` in a
//!   measurement) and keeps every other backslash as it is, but while
//!   scanning for the end of a name or value a backslash always hides the
//!   byte after it.
//! - VictoriaMetrics also turns `\\` into `\`.
//!
//! Both dialects escape `,` and space everywhere and `=` in tag keys, tag
//! values and field keys with a backslash. What line protocol cannot carry
//! is replaced as DataKit does, in both dialects: a newline or a carriage
//! return becomes a space, and a NUL byte is dropped. Then:
//! - [`Dialect::InfluxDb`] writes backslashes as they are, except that a
//!   run of backslashes right before a byte that is escaped, or at the end
//!   of a name or value, is dropped (InfluxDB would read it as escaping the
//!   separator after it, or store it doubled).
//! - [`Dialect::VictoriaMetrics`] doubles every backslash, which it reads
//!   back as one: backslashes arrive exactly.

mod reuse;

pub use reuse::LineReuse;

use crate::model::point::{Point, PointExtra};
use std::io::Write as _;

/// Encoded points, one line each, newline included.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lines {
    pub text: Vec<u8>,
    /// `ends[i]` is the end of line `i` in `text`.
    pub ends: Vec<u32>,
}

impl Lines {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Where line `i` starts in `text`.
    pub fn start(&self, i: usize) -> usize {
        if i == 0 {
            0
        } else {
            self.ends[i - 1] as usize
        }
    }

    /// The bytes of lines `from..to`.
    pub fn range(&self, from: usize, to: usize) -> &[u8] {
        if from >= to {
            return &[];
        }
        &self.text[self.start(from)..self.ends[to - 1] as usize]
    }

    /// Closes the line just written into `text`.
    pub fn end_line(&mut self) {
        self.ends
            .push(u32::try_from(self.text.len()).unwrap_or(u32::MAX));
    }
}

/// How a backend reads backslashes in line protocol; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Dialect {
    /// InfluxDB 1.x and DataKit's Dataway.
    #[default]
    InfluxDb,
    /// VictoriaMetrics' `/write` (`/influx/write`).
    VictoriaMetrics,
}

/// What line protocol had to leave out of the points written, by reason:
/// one count per field value, per native histogram, per exemplar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LpDrops {
    /// NaN or ±Inf, which line protocol has no float for.
    pub non_finite: u64,
    /// A field keyed like one of its point's tags (a StateSet's
    /// `job_state{job_state="running"}`), which InfluxDB refuses.
    pub field_is_tag: u64,
    /// Native histograms, whose buckets line protocol has no form for (their
    /// count, sum and classic buckets go out as fields).
    pub native_buckets: u64,
    /// Exemplars.
    pub exemplars: u64,
}

impl LpDrops {
    pub fn add(&mut self, other: LpDrops) {
        self.non_finite += other.non_finite;
        self.field_is_tag += other.field_is_tag;
        self.native_buckets += other.native_buckets;
        self.exemplars += other.exemplars;
    }

    /// Everything left out, whatever the reason.
    pub fn total(&self) -> u64 {
        self.non_finite + self.field_is_tag + self.native_buckets + self.exemplars
    }

    /// Counts what a point's extra (native buckets, exemplars) takes
    /// away from its line.
    pub fn note_extra(&mut self, extra: Option<&PointExtra>) {
        if let Some(e) = extra {
            self.native_buckets += u64::from(e.native.is_some());
            self.exemplars += e.exemplars.len() as u64;
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == LpDrops::default()
    }

    /// Whether a field can go out, counting it if not. `is_tag` says
    /// whether its key is one of the point's tag keys.
    fn keep(&mut self, value: f64, is_tag: impl FnOnce() -> bool) -> bool {
        if !value.is_finite() {
            self.non_finite += 1;
            false
        } else if is_tag() {
            self.field_is_tag += 1;
            false
        } else {
            true
        }
    }
}

/// Whether `key` is one of the tag keys.
fn is_tag_key<T: AsRef<[u8]>>(key: &[u8], tags: impl IntoIterator<Item = (T, T)>) -> bool {
    tags.into_iter().any(|(k, _)| k.as_ref() == key)
}

/// Writes one line: `measurement[,tag=value...] field=value[,...] time\n`.
/// Tags are written in the order given (sorted, by the caller's contract).
/// Names and values are UTF-8 text, as `&str` or as bytes already known
/// to be UTF-8 (the disk queue's records). Fields line protocol cannot
/// carry are left out and counted in `drops` (see [`LpDrops`]); a point
/// left with no field is not written, and the result is false.
pub fn write_line<T: AsRef<[u8]>, F: AsRef<[u8]>>(
    out: &mut Vec<u8>,
    dialect: Dialect,
    measurement: impl AsRef<[u8]>,
    tags: impl IntoIterator<Item = (T, T)> + Clone,
    fields: impl IntoIterator<Item = (F, f64)>,
    time_ns: i64,
    drops: &mut LpDrops,
) -> bool {
    // Written optimistically, taken back if no field can go.
    let mark = out.len();
    escape_into(out, measurement.as_ref(), MEASUREMENT_SPECIALS, dialect);
    write_tags(out, dialect, tags.clone());
    let mut first = true;
    for (key, value) in fields {
        let key = key.as_ref();
        if !drops.keep(value, || is_tag_key(key, tags.clone())) {
            continue;
        }
        out.push(if first { b' ' } else { b',' });
        first = false;
        escape_into(out, key, KEY_SPECIALS, dialect);
        out.push(b'=');
        write_float(out, value);
    }
    if first {
        out.truncate(mark);
        return false;
    }
    write_time(out, time_ns);
    true
}

/// ` <time_ns>\n`: the end of a line.
fn write_time(out: &mut Vec<u8>, time_ns: i64) {
    out.push(b' ');
    out.extend_from_slice(itoa::Buffer::new().format(time_ns).as_bytes());
    out.push(b'\n');
}

fn write_tags<S: AsRef<[u8]>>(
    out: &mut Vec<u8>,
    dialect: Dialect,
    tags: impl IntoIterator<Item = (S, S)>,
) {
    for (k, v) in tags {
        out.push(b',');
        escape_into(out, k.as_ref(), KEY_SPECIALS, dialect);
        out.push(b'=');
        escape_into(out, v.as_ref(), KEY_SPECIALS, dialect);
    }
}

/// Writes the lines of one push: runs of points that share a measurement
/// and field name (a family's), mostly with one timestamp (the push's).
/// Those are escaped or formatted once, not once per line.
#[derive(Default)]
pub struct LinesWriter {
    pub lines: Lines,
    /// What line protocol left out of the points written.
    pub drops: LpDrops,
    dialect: Dialect,
    /// The field name as given.
    field_name: String,
    measurement: Vec<u8>,
    /// The field name, escaped.
    field: Vec<u8>,
    /// The field name as given, when it ends in a backslash: whether that
    /// backslash is dropped depends on the suffix after it, so such keys
    /// are escaped whole, line by line.
    field_raw: Option<String>,
    /// The last timestamp and its text, with the space before it.
    time: Option<(i64, Vec<u8>)>,
}

impl LinesWriter {
    pub fn with_capacity(dialect: Dialect, bytes: usize) -> LinesWriter {
        LinesWriter {
            lines: Lines {
                text: Vec::with_capacity(bytes),
                ends: Vec::new(),
            },
            dialect,
            ..LinesWriter::default()
        }
    }

    /// The dialect the lines are written in.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The measurement and field name of the lines that follow.
    pub fn set_names(&mut self, measurement: &str, field: &str) {
        self.measurement.clear();
        escape_into(
            &mut self.measurement,
            measurement.as_bytes(),
            MEASUREMENT_SPECIALS,
            self.dialect,
        );
        self.field.clear();
        escape_into(
            &mut self.field,
            field.as_bytes(),
            KEY_SPECIALS,
            self.dialect,
        );
        self.field_raw = field.ends_with('\\').then(|| field.to_string());
        self.field_name.clear();
        self.field_name.push_str(field);
    }

    /// Writes one line; each value's field key is the field name plus its
    /// suffix (`_count`, `_sum`, `_bucket` or none: nothing to escape).
    /// `values` must not be empty.
    pub fn write<'a>(
        &mut self,
        tags: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
        values: impl IntoIterator<Item = (&'a str, f64)>,
        time_ns: i64,
    ) -> bool {
        let field = self.field_name.as_str();
        let out = &mut self.lines.text;
        // Written optimistically, taken back if no field can go.
        let mark = out.len();
        out.extend_from_slice(&self.measurement);
        write_tags(out, self.dialect, tags.clone());
        let mut first = true;
        for (suffix, value) in values {
            let is_tag = || {
                let key_is = |k: &str| {
                    k.len() == field.len() + suffix.len()
                        && k.starts_with(field)
                        && k.ends_with(suffix)
                };
                tags.clone().into_iter().any(|(k, _)| key_is(k))
            };
            if !self.drops.keep(value, is_tag) {
                continue;
            }
            out.push(if first { b' ' } else { b',' });
            first = false;
            match &self.field_raw {
                Some(raw) => {
                    let key = format!("{raw}{suffix}");
                    escape_into(out, key.as_bytes(), KEY_SPECIALS, self.dialect);
                }
                None => {
                    out.extend_from_slice(&self.field);
                    // Suffixes are the mapping's own (`_count`...):
                    // nothing to escape.
                    out.extend_from_slice(suffix.as_bytes());
                }
            }
            out.push(b'=');
            write_float(out, value);
        }
        if first {
            out.truncate(mark);
            return false;
        }
        let time = match &mut self.time {
            Some((t, text)) if *t == time_ns => text,
            slot => {
                let mut text = Vec::new();
                write_time(&mut text, time_ns);
                &mut slot.insert((time_ns, text)).1
            }
        };
        out.extend_from_slice(time);
        self.lines.end_line();
        true
    }
}

/// Bytes that need care, as a lookup table: bit 0 escaped in
/// measurements, bit 1 escaped in tag keys, tag values and field keys,
/// bit 2 handled by the dialect's slow path (backslash) or replaced
/// (newline, carriage return, NUL) in every context.
const ESCAPES: [u8; 256] = {
    let mut table = [0u8; 256];
    table[b',' as usize] = 0b011;
    table[b' ' as usize] = 0b011;
    table[b'=' as usize] = 0b010;
    table[b'\\' as usize] = 0b100;
    table[b'\n' as usize] = 0b100;
    table[b'\r' as usize] = 0b100;
    table[0] = 0b100;
    table
};
const MEASUREMENT_SPECIALS: u8 = 0b001;
const KEY_SPECIALS: u8 = 0b010;
const SLOW: u8 = 0b100;

/// Escapes `bytes` (UTF-8 text) in `dialect`; see the module docs. Every
/// byte that needs care is ASCII, so the scan is bytewise.
#[inline]
fn escape_into(out: &mut Vec<u8>, bytes: &[u8], specials: u8, dialect: Dialect) {
    // Label names and values are mostly a few bytes long and need at most
    // a backslash before a comma or space: one pass that copies while it
    // checks beats a scan followed by a `memcpy` call. Anything else goes
    // to the slow path.
    out.reserve(2 * bytes.len());
    let start = out.len();
    // SAFETY: the reserve above leaves room for every byte escaped (two
    // bytes each), so `dst` stays within the allocation; every byte up to
    // the new length has been written.
    #[allow(unsafe_code)]
    let fast = unsafe {
        let base = out.as_mut_ptr();
        let mut dst = base.add(start);
        let mut fast = true;
        for &b in bytes {
            let class = ESCAPES[usize::from(b)];
            // Most bytes need nothing: one test for them.
            if class != 0 {
                if class & SLOW != 0 {
                    fast = false;
                    break;
                }
                if class & specials != 0 {
                    *dst = b'\\';
                    dst = dst.add(1);
                }
            }
            *dst = b;
            dst = dst.add(1);
        }
        out.set_len(dst.offset_from(base) as usize);
        fast
    };
    if !fast {
        out.truncate(start);
        escape_slow(out, bytes, specials, dialect);
    }
}

/// [`escape_into`] for text with a backslash, newline, carriage return or
/// NUL in it.
fn escape_slow(out: &mut Vec<u8>, bytes: &[u8], specials: u8, dialect: Dialect) {
    let text: Vec<u8> = bytes
        .iter()
        .filter(|&&b| b != 0)
        .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b })
        .collect();
    let escaped = |b: u8| ESCAPES[usize::from(b)] & specials != 0;
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if b == b'\\' {
            let run = text[i..].iter().take_while(|&&c| c == b'\\').count();
            match dialect {
                Dialect::VictoriaMetrics => {
                    for _ in 0..run {
                        out.extend_from_slice(b"\\\\");
                    }
                }
                Dialect::InfluxDb => {
                    let next = text.get(i + run).copied();
                    if next.is_some_and(|n| !escaped(n)) {
                        out.extend_from_slice(&text[i..i + run]);
                    }
                }
            }
            i += run;
            continue;
        }
        if escaped(b) {
            out.push(b'\\');
        }
        out.push(b);
        i += 1;
    }
}

/// Shortest round-trip form; exponent form for very large or small values so
/// that 1e300 does not become 301 digits. Callers never pass NaN or ±Inf.
pub fn write_float(out: &mut Vec<u8>, v: f64) {
    let a = v.abs();
    if v.fract() == 0.0 && (1.0..1e15).contains(&a) {
        // The common case of a whole count: plain digits, as `{}` writes it.
        out.extend_from_slice(itoa::Buffer::new().format(v as i64).as_bytes());
    } else if a != 0.0 && !(1e-5..1e16).contains(&a) {
        let _ = write!(out, "{v:e}");
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Appends `point` as one line of line protocol, newline included, as
/// [`write_line`] does (what it cannot carry is counted in `drops`).
pub fn write_point(
    out: &mut Vec<u8>,
    dialect: Dialect,
    point: &Point,
    drops: &mut LpDrops,
) -> bool {
    drops.note_extra(point.extra.as_deref());
    write_line(
        out,
        dialect,
        &point.measurement,
        point.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        point.fields.iter().map(|f| (f.key.as_str(), f.value)),
        point.time_ns,
        drops,
    )
}

/// Encodes points as a line-protocol body, with what it left out.
pub fn encode_line_protocol(points: &[Point], dialect: Dialect) -> (Vec<u8>, LpDrops) {
    let mut out = Vec::with_capacity(points.len() * 96);
    let mut drops = LpDrops::default();
    for p in points {
        write_point(&mut out, dialect, p, &mut drops);
    }
    (out, drops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::family::MetricType;
    use crate::model::point::{Field, SeriesSuffix};
    use std::sync::Arc;

    fn line_in(
        dialect: Dialect,
        measurement: &str,
        tags: &[(&str, &str)],
        fields: &[(&str, f64)],
    ) -> String {
        let mut out = Vec::new();
        write_line(
            &mut out,
            dialect,
            measurement,
            tags.iter().copied(),
            fields.iter().copied(),
            1_700_000_000_000_000_000,
            &mut LpDrops::default(),
        );
        String::from_utf8(out).unwrap()
    }

    fn line(measurement: &str, tags: &[(&str, &str)], fields: &[(&str, f64)]) -> String {
        line_in(Dialect::InfluxDb, measurement, tags, fields)
    }

    #[test]
    fn plain_line() {
        assert_eq!(
            line(
                "etcd",
                &[("job", "j")],
                &[("etcd_up", 1.0), ("etcd_x", 0.5)]
            ),
            "etcd,job=j etcd_up=1,etcd_x=0.5 1700000000000000000\n"
        );
    }

    #[test]
    fn escapes_specials() {
        for dialect in [Dialect::InfluxDb, Dialect::VictoriaMetrics] {
            assert_eq!(
                line_in(
                    dialect,
                    "m ea,s=",
                    &[("t k=", "a,b c=d"), ("nl", "x\ny\r\0z")],
                    &[("f,k ey=", 2.0)]
                ),
                "m\\ ea\\,s=,t\\ k\\==a\\,b\\ c\\=d,nl=x\\ y\\ z f\\,k\\ ey\\==2 1700000000000000000\n",
                "{dialect:?}"
            );
        }
    }

    /// A tag value as each dialect writes it.
    fn tag_value(dialect: Dialect, value: &str) -> String {
        let l = line_in(dialect, "m", &[("t", value)], &[("f", 1.0)]);
        l.strip_prefix("m,t=")
            .and_then(|rest| rest.strip_suffix(" f=1 1700000000000000000\n"))
            .unwrap_or_else(|| panic!("{l:?}"))
            .to_string()
    }

    #[test]
    fn influxdb_keeps_backslashes_it_reads_as_they_are() {
        let cases = [
            ("C:\\Windows\\Temp", "C:\\Windows\\Temp"),
            ("a\\\\b", "a\\\\b"),
            // InfluxDB would take these as escaping the separator after
            // the value: dropped, as DataKit drops them.
            ("D:\\", "D:"),
            ("D:\\\\\\", "D:"),
            // Before an escaped byte, a backslash would make it `\\,`,
            // which InfluxDB cannot read back: dropped too.
            ("a\\,b", "a\\,b"),
            ("a\\\\ b", "a\\ b"),
            ("a\\=b", "a\\=b"),
            // A newline becomes a space, and the backslash before it goes.
            ("a\\\nb", "a\\ b"),
            ("\\", ""),
        ];
        for (value, want) in cases {
            assert_eq!(tag_value(Dialect::InfluxDb, value), want, "{value:?}");
        }
    }

    #[test]
    fn victoriametrics_gets_every_backslash_doubled() {
        let cases = [
            ("C:\\Windows\\Temp", "C:\\\\Windows\\\\Temp"),
            ("D:\\", "D:\\\\"),
            ("a\\,b", "a\\\\\\,b"),
            ("a\\\nb", "a\\\\\\ b"),
        ];
        for (value, want) in cases {
            assert_eq!(
                tag_value(Dialect::VictoriaMetrics, value),
                want,
                "{value:?}"
            );
        }
    }

    #[test]
    fn a_measurement_escapes_no_equals_sign() {
        assert_eq!(
            line("a=b\\", &[], &[("f", 1.0)]),
            "a=b f=1 1700000000000000000\n"
        );
        assert_eq!(
            line_in(Dialect::VictoriaMetrics, "a=b\\", &[], &[("f", 1.0)]),
            "a=b\\\\ f=1 1700000000000000000\n"
        );
    }

    #[test]
    fn what_line_protocol_cannot_carry_is_left_out_and_counted() {
        let mut drops = LpDrops::default();
        let mut out = Vec::new();
        let fields = [
            ("f", f64::NAN),
            ("g", 1.0),
            ("t", 2.0),
            ("h", f64::INFINITY),
        ];
        let written = write_line(
            &mut out,
            Dialect::InfluxDb,
            "m",
            [("t", "v")],
            fields,
            5,
            &mut drops,
        );
        assert!(written);
        assert_eq!(out, b"m,t=v g=1 5\n");
        assert_eq!(
            drops,
            LpDrops {
                non_finite: 2,
                field_is_tag: 1,
                ..LpDrops::default()
            }
        );
        let mut out = Vec::new();
        let fields = [("f", f64::NAN)];
        assert!(!write_line(
            &mut out,
            Dialect::InfluxDb,
            "m",
            [("t", "v")],
            fields,
            5,
            &mut drops
        ));
        assert!(out.is_empty(), "no field left, no line");
        assert_eq!(drops.non_finite, 3);

        let mut w = LinesWriter::default();
        w.set_names("m", "req");
        assert!(!w.write(
            [("req_count", "x")],
            [("_count", 1.0), ("_sum", f64::NAN)],
            5
        ));
        assert!(w.write([("req", "x")], [("_count", 1.0), ("_sum", f64::NAN)], 5));
        assert_eq!(w.lines.text, b"m,req=x req_count=1 5\n");
        assert_eq!(w.lines.len(), 1);
        assert_eq!(
            w.drops,
            LpDrops {
                non_finite: 2,
                field_is_tag: 1,
                ..LpDrops::default()
            }
        );
    }

    #[test]
    fn a_writer_joins_field_name_and_suffix() {
        let mut w = LinesWriter::default();
        assert_eq!(w.dialect(), Dialect::InfluxDb);
        w.set_names("m", "req");
        w.write([], [("_count", 3.0)], 5);
        assert_eq!(w.lines.text, b"m req_count=3 5\n");
    }

    #[test]
    fn a_writer_writes_what_write_line_does() {
        for dialect in [Dialect::InfluxDb, Dialect::VictoriaMetrics] {
            let mut w = LinesWriter::with_capacity(dialect, 0);
            let mut want = Vec::new();
            let names = [
                ("m ea,s\\", "f=1\\", 5),
                ("m ea,s\\", "f=1\\", 5),
                ("n", "g", 6),
            ];
            for (m, f, t) in names {
                w.set_names(m, f);
                let tags = [("a b", "c,d\\"), ("e", "f\nx")];
                let values = [("_count", 2.0), ("_sum", 0.5)];
                w.write(tags, values, t);
                let keys = values.map(|(suffix, v)| (format!("{f}{suffix}"), v));
                let fields = keys.iter().map(|(k, v)| (k.as_str(), *v));
                write_line(
                    &mut want,
                    dialect,
                    m,
                    tags,
                    fields,
                    t,
                    &mut LpDrops::default(),
                );
            }
            assert_eq!(
                String::from_utf8(w.lines.text).unwrap(),
                String::from_utf8(want).unwrap()
            );
            assert_eq!(w.lines.ends.len(), 3);
        }
    }

    #[test]
    fn lines_index_their_ranges() {
        let mut l = Lines::default();
        for s in ["a 1 1\n", "bb 2 2\n", "c 3 3\n"] {
            l.text.extend_from_slice(s.as_bytes());
            l.end_line();
        }
        assert_eq!(l.len(), 3);
        assert_eq!(l.range(1, 3), b"bb 2 2\nc 3 3\n");
        assert_eq!(l.range(0, 1), b"a 1 1\n");
        assert_eq!(l.range(2, 2), b"");
    }

    #[test]
    fn floats_round_trip_shortest() {
        let cases = [
            (0.1, "0.1"),
            (1.0, "1"),
            (-2.5, "-2.5"),
            (0.0, "0"),
            (1e21, "1e21"),
            (1.5e-7, "1.5e-7"),
            (123456789.0, "123456789"),
            (-42.0, "-42"),
            (-0.0, "-0"),
            (1e14, "100000000000000"),
            (1e15, "1000000000000000"),
        ];
        for (v, want) in cases {
            let mut s = Vec::new();
            write_float(&mut s, v);
            let s = String::from_utf8(s).unwrap();
            assert_eq!(s, want);
            assert_eq!(s.parse::<f64>().unwrap(), v);
        }
    }

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
            extra: None,
        };
        assert_eq!(
            encode_line_protocol(&[p.clone(), p], Dialect::InfluxDb).0,
            b"etcd,job=j etcd_up=1,etcd_x=0.5 1700000000000000000\n".repeat(2)
        );
    }
}
