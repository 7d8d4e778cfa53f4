//! The encoding of a push's points in a queue record.
//!
//! ```text
//! payload (record version 4): append_ns: i64 | count: u32 | count × point
//! point:   measurement: str | tags: n × (key: str, value: str)
//!          | fields: n × (key: str, value: f64, suffix: u8)
//!          | time: zigzag | family: str | kind: u8 | extra: n × u8
//! n:       a varint (LEB128)
//! str:     n = 0: the string in the same place of the point before
//!          (measurement, the i-th tag's key or value, the j-th field's
//!          key, family); else n - 1 UTF-8 bytes follow
//! zigzag:  a varint of the zigzag-coded difference from the point
//!          before's time (from 0 for the first point)
//! ```
//!
//! The points of one push share most of their strings (the measurement,
//! the grouping labels, the family, the field key) and their time, so a
//! point mostly costs its value and the labels that set it apart: about a
//! fifth of version 3's bytes, which is less for the log to write and
//! fsync and for the sinks to read back (BENCHMARKS.md, "Queue records
//! written once per string").
//!
//! Fixed-width numbers are little-endian; `f64` is its IEEE bits, so NaN
//! (payload included), ±Inf and -0.0 come back as they went in. `suffix`
//! is 0 none, 1 `_count`, 2 `_sum`, 3 `_bucket`; `kind` is 0 counter,
//! 1 gauge, 2 summary, 3 untyped, 4 histogram, 5 gauge histogram.
//! `append_ns` (Unix time) dates the record for `DiskQueue::oldest_age`.
//!
//! `extra` is a point's native histogram and exemplars (`PointExtra`), as
//! protobuf: `io.prometheus.client.Histogram` carries the native fields and
//! `Exemplar` the exemplars, so they keep exactly what was pushed. Nearly
//! every point has none, and pays one byte.
//!
//! The record's version (in the engine's record header) names this
//! layout, and [`decode`] keeps reading the old ones. Version 3 (up to
//! this layout) wrote every string and count whole: `str` a `u32` length
//! and the bytes, counts a `u32`, `time_ns` an `i64`, `extra` a `u32`
//! length and the bytes. Version 2 is version 3 without `extra` (releases
//! before native histograms were forwarded). Version 1 is the point body
//! of the format-1 disk queue (releases up to 57b122d): a version byte
//! (1), then `count × point` as in version 2; [`decode_v1`] reads it for
//! the migration.

use crate::expfmt::proto;
use crate::lineproto::{Dialect, LineReuse, LpDrops};
use crate::model::family::{LabelStr, MetricType};
use crate::model::point::{Field, Point, PointExtra, SeriesSuffix};
use prost::Message as _;
use std::sync::Arc;

/// The record version `record_writer` writes.
pub const VERSION: u8 = 4;
/// The version that wrote every string whole.
const VERSION_3: u8 = 3;
/// The version before points carried their `extra`.
const VERSION_2: u8 = 2;
/// The smallest encoded point of version 2: empty strings, no tags, no
/// fields; version 3 adds an empty `extra`.
const MIN_POINT_LEN: usize = 4 + 4 + 4 + 8 + 4 + 1;

/// A point's `extra` on disk.
#[derive(Clone, PartialEq, prost::Message)]
struct ExtraMessage {
    #[prost(message, optional, tag = "1")]
    native: Option<proto::Histogram>,
    #[prost(message, repeated, tag = "2")]
    exemplars: Vec<proto::Exemplar>,
}

pub(super) fn encode_extra(e: &PointExtra) -> Vec<u8> {
    ExtraMessage {
        native: e.native.as_ref().map(|n| {
            let mut h = proto::Histogram::default();
            proto::set_native(&mut h, n);
            h
        }),
        exemplars: e.exemplars.iter().map(proto::exemplar_to_proto).collect(),
    }
    .encode_to_vec()
}

fn decode_extra(bytes: &[u8]) -> Result<PointExtra, String> {
    let m = ExtraMessage::decode(bytes).map_err(|e| format!("bad point extra: {e}"))?;
    Ok(PointExtra {
        native: m.native.map(proto::native_from_proto),
        exemplars: m
            .exemplars
            .into_iter()
            .map(proto::exemplar_from_proto)
            .collect(),
    })
}

/// The append time and point count of a payload, without decoding it.
pub fn peek(version: u8, payload: &[u8]) -> Result<(i64, u32), String> {
    if !(VERSION_2..=VERSION).contains(&version) {
        return Err(format!("unknown queue record version {version}"));
    }
    if payload.len() < 12 {
        return Err("queue record too short".into());
    }
    let ns = i64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
    let n = u32::from_le_bytes(payload[8..12].try_into().expect("4 bytes"));
    Ok((ns, n))
}

/// The points of a payload of record version `version`.
pub fn decode(version: u8, payload: &[u8]) -> Result<Vec<Point>, String> {
    peek(version, payload)?;
    decode_points(version, &payload[8..])
}

/// The points of a format-1 record body (without its trailer).
pub fn decode_v1(body: &[u8]) -> Result<Vec<Point>, String> {
    match body.first() {
        Some(1) => decode_points(VERSION_2, &body[1..]),
        Some(v) => Err(format!("unknown record version {v}")),
        None => Err("empty record".into()),
    }
}

#[cfg(test)]
fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
fn put_str(out: &mut Vec<u8>, s: &str) {
    // Longer strings cannot fit a record anyway; `append` refuses them.
    put_u32(out, u32::try_from(s.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(s.as_bytes());
}

pub(super) fn suffix_code(s: SeriesSuffix) -> u8 {
    match s {
        SeriesSuffix::None => 0,
        SeriesSuffix::Count => 1,
        SeriesSuffix::Sum => 2,
        SeriesSuffix::Bucket => 3,
    }
}

fn suffix_from_code(c: u8) -> Option<SeriesSuffix> {
    Some(match c {
        0 => SeriesSuffix::None,
        1 => SeriesSuffix::Count,
        2 => SeriesSuffix::Sum,
        3 => SeriesSuffix::Bucket,
        _ => return None,
    })
}

pub(super) fn kind_code(k: MetricType) -> u8 {
    match k {
        MetricType::Counter => 0,
        MetricType::Gauge => 1,
        MetricType::Summary => 2,
        MetricType::Untyped => 3,
        MetricType::Histogram => 4,
        MetricType::GaugeHistogram => 5,
    }
}

fn kind_from_code(c: u8) -> Option<MetricType> {
    Some(match c {
        0 => MetricType::Counter,
        1 => MetricType::Gauge,
        2 => MetricType::Summary,
        3 => MetricType::Untyped,
        4 => MetricType::Histogram,
        5 => MetricType::GaugeHistogram,
        _ => return None,
    })
}

/// Appends the point count and the points as version 3 wrote them (with
/// `extra`) or version 2 (without), for tests of reading old records.
#[cfg(test)]
fn encode_points_v3(points: &[Point], with_extra: bool, out: &mut Vec<u8>) {
    put_u32(out, u32::try_from(points.len()).unwrap_or(u32::MAX));
    for p in points {
        put_str(out, &p.measurement);
        put_u32(out, u32::try_from(p.tags.len()).unwrap_or(u32::MAX));
        for (k, v) in &p.tags {
            put_str(out, k);
            put_str(out, v);
        }
        put_u32(out, u32::try_from(p.fields.len()).unwrap_or(u32::MAX));
        for f in &p.fields {
            put_str(out, &f.key);
            out.extend_from_slice(&f.value.to_bits().to_le_bytes());
            out.push(suffix_code(f.suffix));
        }
        out.extend_from_slice(&p.time_ns.to_le_bytes());
        put_str(out, &p.family);
        out.push(kind_code(p.kind));
        match &p.extra {
            _ if !with_extra => {}
            Some(e) => {
                let bytes = encode_extra(e);
                put_u32(out, u32::try_from(bytes.len()).unwrap_or(u32::MAX));
                out.extend_from_slice(&bytes);
            }
            None => put_u32(out, 0),
        }
    }
}

struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.data.len() - self.pos < n {
            return Err(format!("record body truncated at byte {}", self.pos));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn f64(&mut self) -> Result<f64, String> {
        Ok(f64::from_bits(u64::from_le_bytes(self.array()?)))
    }

    /// A string's bytes, not yet checked to be UTF-8 (see [`utf8`]).
    fn str(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    /// A count of items each at least `min_len` bytes long: checked against
    /// what is left, so that a bad count cannot cause a huge allocation.
    fn count(&mut self, min_len: usize) -> Result<usize, String> {
        let n = self.u32()? as usize;
        self.fits(n, min_len)
    }

    /// `n`, if `n` items of at least `min_len` bytes fit in what is left.
    fn fits(&self, n: usize, min_len: usize) -> Result<usize, String> {
        if n.saturating_mul(min_len) > self.data.len() - self.pos {
            return Err(format!("count {n} exceeds the record at byte {}", self.pos));
        }
        Ok(n)
    }

    fn suffix(&mut self) -> Result<SeriesSuffix, String> {
        let code = self.u8()?;
        suffix_from_code(code).ok_or_else(|| format!("unknown series suffix {code}"))
    }

    fn kind(&mut self) -> Result<MetricType, String> {
        let code = self.u8()?;
        kind_from_code(code).ok_or_else(|| format!("unknown metric type {code}"))
    }

    /// Checks that the points took the whole body.
    fn end(&self) -> Result<(), String> {
        match self.data.len() - self.pos {
            0 => Ok(()),
            left => Err(format!("{left} unexpected bytes after the points")),
        }
    }

    /// A varint of up to 64 bits (see the module docs).
    #[inline]
    fn varint(&mut self) -> Result<u64, String> {
        // Nearly all are one byte (lengths, counts, "the same").
        if let Some(&b) = self.data.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(u64::from(b));
            }
        }
        self.long_varint()
    }

    fn long_varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(format!("varint too long at byte {}", self.pos))
    }

    /// A count (a varint) of items each at least `min_len` bytes long,
    /// checked against what is left as [`Decoder::count`] does.
    fn varint_count(&mut self, min_len: usize) -> Result<usize, String> {
        let n = usize::try_from(self.varint()?).unwrap_or(usize::MAX);
        self.fits(n, min_len)
    }

    /// A string of version 4: its bytes, or `before`'s when it says "the
    /// same" (an error if there is no string before in its place).
    #[inline]
    fn shared(&mut self, before: Option<&'a [u8]>) -> Result<&'a [u8], String> {
        match self.varint()? {
            0 => before.ok_or_else(|| {
                format!(
                    "a string at byte {} refers to a point before that has none",
                    self.pos
                )
            }),
            n => self.take(usize::try_from(n - 1).unwrap_or(usize::MAX)),
        }
    }
}

fn utf8(b: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(b).map_err(|e| format!("invalid UTF-8 in a string: {e}"))
}

/// One point as the payload holds it, borrowed from the payload and from
/// the walker's scratch vectors. Strings are bytes: `record_writer`
/// wrote them from `str`s and the record's checksum held, so they are
/// UTF-8, but only [`decode_points`], which makes `str`s of them, checks
/// again; line protocol is written from the bytes.
struct PointRef<'p, 's> {
    measurement: &'p [u8],
    tags: &'s [(&'p [u8], &'p [u8])],
    fields: &'s [(&'p [u8], f64, SeriesSuffix)],
    time_ns: i64,
    family: &'p [u8],
    kind: MetricType,
    /// An `ExtraMessage`, or empty.
    extra: &'p [u8],
}

/// Walks what `record_writer` wrote (or what versions 2 and 3 wrote),
/// all of `body`, checking its structure: calls `each` with each point's
/// index and the point, and stops at the first error either finds.
/// Returns the count.
fn walk_points<'p>(
    version: u8,
    body: &'p [u8],
    each: impl FnMut(usize, &PointRef<'p, '_>) -> Result<(), String>,
) -> Result<usize, String> {
    if version >= VERSION {
        walk_points_v4(body, each)
    } else {
        walk_points_v3(version, body, each)
    }
}

/// The smallest point of version 4: "same" or empty strings, no tags,
/// no fields, the same time, no extra.
const MIN_POINT_LEN_V4: usize = 7;

fn walk_points_v4<'p>(
    body: &'p [u8],
    mut each: impl FnMut(usize, &PointRef<'p, '_>) -> Result<(), String>,
) -> Result<usize, String> {
    let mut d = Decoder { data: body, pos: 0 };
    let n = d.count(MIN_POINT_LEN_V4)?;
    // The point before's strings, in their places: a point's tags and
    // fields are written over them.
    let mut tags: Vec<(&[u8], &[u8])> = Vec::new();
    let mut fields: Vec<(&[u8], f64, SeriesSuffix)> = Vec::new();
    let mut measurement = None;
    let mut family = None;
    let mut time_ns = 0i64;
    for i in 0..n {
        measurement = Some(d.shared(measurement)?);
        let ntags = d.varint_count(2)?;
        for t in 0..ntags {
            let had = tags.get(t).copied();
            let tag = (
                d.shared(had.map(|(k, _)| k))?,
                d.shared(had.map(|(_, v)| v))?,
            );
            match tags.get_mut(t) {
                Some(slot) => *slot = tag,
                None => tags.push(tag),
            }
        }
        tags.truncate(ntags);
        let nfields = d.varint_count(1 + 8 + 1)?;
        for j in 0..nfields {
            let key = d.shared(fields.get(j).map(|f| f.0))?;
            let value = d.f64()?;
            let suffix = d.suffix()?;
            match fields.get_mut(j) {
                Some(slot) => *slot = (key, value, suffix),
                None => fields.push((key, value, suffix)),
            }
        }
        fields.truncate(nfields);
        let zigzag = d.varint()?;
        time_ns = time_ns.wrapping_add(((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64));
        family = Some(d.shared(family)?);
        let kind = d.kind()?;
        let extra_len = usize::try_from(d.varint()?).unwrap_or(usize::MAX);
        let extra = d.take(extra_len)?;
        each(
            i,
            &PointRef {
                measurement: measurement.expect("set above"),
                tags: &tags,
                fields: &fields,
                time_ns,
                family: family.expect("set above"),
                kind,
                extra,
            },
        )?;
    }
    d.end()?;
    Ok(n)
}

/// [`walk_points`] for versions 2 and 3.
fn walk_points_v3<'p>(
    version: u8,
    body: &'p [u8],
    mut each: impl FnMut(usize, &PointRef<'p, '_>) -> Result<(), String>,
) -> Result<usize, String> {
    let mut d = Decoder { data: body, pos: 0 };
    let has_extra = version >= VERSION_3;
    let n = d.count(MIN_POINT_LEN + if has_extra { 4 } else { 0 })?;
    let mut tags = Vec::new();
    let mut fields = Vec::new();
    for i in 0..n {
        let measurement = d.str()?;
        let ntags = d.count(8)?;
        tags.clear();
        for _ in 0..ntags {
            tags.push((d.str()?, d.str()?));
        }
        let nfields = d.count(4 + 8 + 1)?;
        fields.clear();
        for _ in 0..nfields {
            let key = d.str()?;
            let value = d.f64()?;
            let suffix = d.suffix()?;
            fields.push((key, value, suffix));
        }
        let time_ns = d.i64()?;
        let family = d.str()?;
        let kind = d.kind()?;
        let extra = if has_extra { d.str()? } else { &[] };
        each(
            i,
            &PointRef {
                measurement,
                tags: &tags,
                fields: &fields,
                time_ns,
                family,
                kind,
                extra,
            },
        )?;
    }
    d.end()?;
    Ok(n)
}

/// Decodes what `record_writer` wrote, all of `body`.
fn decode_points(version: u8, body: &[u8]) -> Result<Vec<Point>, String> {
    let mut points = Vec::new();
    // Points of one push mostly share their family: share the Arc too.
    let mut last_family: Option<Arc<str>> = None;
    walk_points(version, body, |_, p| {
        let family = match &last_family {
            Some(f) if f.as_bytes() == p.family => f.clone(),
            _ => {
                let f: Arc<str> = Arc::from(utf8(p.family)?);
                last_family = Some(f.clone());
                f
            }
        };
        let mut tags = Vec::with_capacity(p.tags.len());
        for &(k, v) in p.tags {
            tags.push((LabelStr::from(utf8(k)?), LabelStr::from(utf8(v)?)));
        }
        let mut fields = Vec::with_capacity(p.fields.len());
        for &(key, value, suffix) in p.fields {
            fields.push(Field {
                key: LabelStr::from(utf8(key)?),
                value,
                suffix,
            });
        }
        points.push(Point {
            measurement: LabelStr::from(utf8(p.measurement)?),
            tags,
            fields,
            time_ns: p.time_ns,
            family,
            kind: p.kind,
            extra: match p.extra {
                [] => None,
                bytes => Some(Box::new(decode_extra(bytes)?)),
            },
        });
        Ok(())
    })?;
    Ok(points)
}

/// Appends points `from..to` of a payload of record version `version` to
/// `out` as line protocol, exactly as
/// [`write_point`](crate::lineproto::write_point) writes them once
/// decoded, without building them: line-protocol sinks read their batches
/// through here. Returns the lines written (a point whose every field line
/// protocol cannot carry gives none) and what was left out. The whole
/// payload's structure is checked as [`decode`] checks it (its strings are
/// not checked for UTF-8 again; see `PointRef`); on an error, or if the
/// payload holds fewer than `to` points, `out` is left as it was.
pub fn write_lines(
    dialect: Dialect,
    version: u8,
    payload: &[u8],
    from: u32,
    to: u32,
    out: &mut Vec<u8>,
) -> Result<(usize, LpDrops), String> {
    peek(version, payload)?;
    let mark = out.len();
    let range = from as usize..to as usize;
    let mut lines = 0;
    let mut drops = LpDrops::default();
    // The points' strings all live in `payload`.
    let mut reuse = LineReuse::default();
    let walked = walk_points(version, &payload[8..], |i, p| {
        if range.contains(&i) {
            if !p.extra.is_empty() {
                drops.note_extra(Some(&decode_extra(p.extra)?));
            }
            let written = reuse.write(
                out,
                dialect,
                p.measurement,
                p.tags,
                p.fields.iter().map(|&(key, value, _)| (key, value)),
                p.time_ns,
                &mut drops,
            );
            lines += usize::from(written);
        }
        Ok(())
    });
    match walked {
        Ok(n) if n >= range.end => Ok((lines, drops)),
        Ok(n) => {
            out.truncate(mark);
            Err(format!(
                "holds {n} points, fewer than the {} indexed",
                range.end
            ))
        }
        Err(why) => {
            out.truncate(mark);
            Err(why)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::record_writer::encode;
    use super::super::tests::push;
    use super::*;

    #[test]
    fn special_values_keep_their_bits() {
        let mut p = push(0, 1);
        let nan = f64::from_bits(0x7FF8_0000_0000_0ABC);
        for v in [nan, f64::INFINITY, f64::NEG_INFINITY] {
            p[0].fields[0].value = v;
            let back = decode(VERSION, &encode(&p, 0)).unwrap();
            assert_eq!(back[0].fields[0].value.to_bits(), v.to_bits());
        }
    }

    #[test]
    fn lines_are_written_as_the_decoded_points_would_be() {
        let mut points = push(3, 4);
        points[1].tags = vec![("a b".into(), "x,y=z\\".into()), ("ü".into(), "🙂".into())];
        points[2].fields.push(Field {
            key: "s".into(),
            value: 0.25,
            suffix: SeriesSuffix::Sum,
        });
        let body = encode(&points, 9);
        for (from, to) in [(0, 4), (1, 3), (2, 2), (3, 4)] {
            let mut want = b"before\n".to_vec();
            for p in &points[from..to] {
                crate::lineproto::write_point(
                    &mut want,
                    Dialect::InfluxDb,
                    p,
                    &mut LpDrops::default(),
                );
            }
            let mut got = b"before\n".to_vec();
            write_lines(
                Dialect::InfluxDb,
                VERSION,
                &body,
                from as u32,
                to as u32,
                &mut got,
            )
            .unwrap();
            assert_eq!(
                String::from_utf8(got).unwrap(),
                String::from_utf8(want).unwrap()
            );
        }
        let mut out = Vec::new();
        let err = write_lines(Dialect::InfluxDb, VERSION, &body, 0, 5, &mut out).unwrap_err();
        assert!(err.contains("fewer"), "{err}");
        assert!(out.is_empty());
        for cut in 0..body.len() {
            assert!(write_lines(Dialect::InfluxDb, VERSION, &body[..cut], 0, 1, &mut out).is_err());
            assert!(out.is_empty());
        }
    }

    /// Lines written from a record reuse the line before's measurement,
    /// leading tags, field key and time (`LineReuse`): the same bytes as
    /// the decoded points give, over every range, through lines left out
    /// (NaN, a field keyed like a tag), escapes and changing times.
    #[test]
    fn lines_reusing_the_line_before_are_those_of_the_decoded_points() {
        use crate::convert::{convert_into, Mapping};
        use crate::model::GroupingKey;
        let text = "# TYPE up gauge\nup 1\nup{a=\"x\"} NaN\nup{a=\"x\"} 2\nup{a=\"y y\"} 3\n\
            # TYPE req_total counter\nreq_total{code=\"200\",path=\"C:\\\\x,y=z\"} 3 1700000000000\n\
            req_total{code=\"200\",path=\"/\"} 4 1700000000000\nreq_total{code=\"500\",path=\"/\"} 5\n\
            req_total{code=\"500\",path=\"/\"} +Inf\n\
            # TYPE job_state gauge\njob_state{job_state=\"running\"} 1\njob_state{a=\"x\"} 1\n\
            # TYPE lat_seconds histogram\nlat_seconds_bucket{le=\"0.5\"} 1\n\
            lat_seconds_bucket{le=\"+Inf\"} 2\nlat_seconds_sum 0.75\nlat_seconds_count 2\n";
        let families = crate::expfmt::parse_text(text.as_bytes()).unwrap();
        let group = GroupingKey::from_pairs("j", &["instance", "h 1"]);
        let mapping = Mapping {
            honor_timestamps: true,
            ..Mapping::default()
        };
        let mut w = super::super::RecordWriter::new(0, 0);
        convert_into(&families, &group, &mapping, 9_000_000, &mut w);
        let body = w.finish();
        let points = decode(VERSION, &body).unwrap();
        let n = points.len();
        for dialect in [Dialect::InfluxDb, Dialect::VictoriaMetrics] {
            for from in 0..n {
                for to in from..=n {
                    let mut want = Vec::new();
                    let mut want_drops = LpDrops::default();
                    let mut want_lines = 0;
                    for p in &points[from..to] {
                        let before = want.len();
                        crate::lineproto::write_point(&mut want, dialect, p, &mut want_drops);
                        want_lines += usize::from(want.len() > before);
                    }
                    let mut got = Vec::new();
                    let (lines, drops) =
                        write_lines(dialect, VERSION, &body, from as u32, to as u32, &mut got)
                            .unwrap();
                    assert_eq!(
                        String::from_utf8(got).unwrap(),
                        String::from_utf8(want).unwrap(),
                        "{dialect:?} {from}..{to}"
                    );
                    assert_eq!((lines, drops), (want_lines, want_drops));
                }
            }
        }
    }

    #[test]
    fn a_string_that_is_not_utf8_fails_decoding() {
        let mut points = push(0, 1);
        points[0].measurement = "m\u{e9}".into();
        let mut body = encode(&points, 0);
        let at = body
            .windows(3)
            .position(|w| w == "m\u{e9}".as_bytes())
            .unwrap();
        body[at + 1] = 0xFF;
        assert!(decode(VERSION, &body).unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn encoding_round_trips() {
        let mut points = push(1, 2);
        points[0].tags = vec![("a".into(), "x,y= z\n\\".into()), ("ü".into(), "🙂".into())];
        points[0].fields = vec![
            Field {
                key: "c".into(),
                value: -0.0,
                suffix: SeriesSuffix::Count,
            },
            Field {
                key: "s".into(),
                value: 1e300,
                suffix: SeriesSuffix::Sum,
            },
            Field {
                key: "b".into(),
                value: f64::MIN_POSITIVE,
                suffix: SeriesSuffix::Bucket,
            },
        ];
        points[0].time_ns = i64::MIN;
        points[1].tags.clear();
        points[1].fields.clear();
        points[1].measurement.clear();
        points[1].family = Arc::from("");
        let kinds = [
            MetricType::Counter,
            MetricType::Gauge,
            MetricType::Summary,
            MetricType::Untyped,
            MetricType::Histogram,
            MetricType::GaugeHistogram,
        ];
        for kind in kinds {
            points[1].kind = kind;
            let body = encode(&points, 77);
            assert_eq!(peek(VERSION, &body), Ok((77, 2)));
            let back = decode(VERSION, &body).unwrap();
            assert_eq!(back, points);
            assert_eq!(back[0].fields[0].value.to_bits(), (-0.0f64).to_bits());
            // Any truncation is an error, never a panic.
            for cut in 0..body.len() {
                assert!(decode(VERSION, &body[..cut]).is_err());
            }
            // Version 3 (every string whole), version 2 (no extras), and
            // the format-1 body: a version byte, then the points as
            // version 2 has them.
            let mut v3 = 77i64.to_le_bytes().to_vec();
            encode_points_v3(&points, true, &mut v3);
            assert_eq!(decode(VERSION_3, &v3).unwrap(), points);
            let mut v2 = 77i64.to_le_bytes().to_vec();
            encode_points_v3(&points, false, &mut v2);
            assert_eq!(decode(VERSION_2, &v2).unwrap(), points);
            let v1 = [&[1u8][..], &v2[8..]].concat();
            assert_eq!(decode_v1(&v1).unwrap(), points);
        }
        let mut body = encode(&points, 0);
        body.push(0);
        let mut out = b"kept".to_vec();
        assert!(write_lines(Dialect::InfluxDb, VERSION, &body, 0, 1, &mut out).is_err());
        assert_eq!(out, b"kept", "a bad payload writes nothing");
        assert!(decode(VERSION, &body)
            .unwrap_err()
            .contains("unexpected bytes"));
        assert!(decode(VERSION + 1, &encode(&points, 0)).is_err());
    }

    #[test]
    fn strings_shared_with_the_point_before_round_trip() {
        // 100 series of one push, as the benchmark pushes them: they share
        // all but two labels, the family and the time.
        let mut points = push(0, 100);
        for (i, p) in points.iter_mut().enumerate() {
            p.measurement = "bench".into();
            p.family = Arc::from("bench_requests_total");
            p.tags = vec![
                ("code".into(), "200".into()),
                ("instance".into(), "g988".into()),
                ("job".into(), "bench".into()),
                ("method".into(), ["GET", "POST"][i % 2].into()),
                ("shard".into(), format!("{i:03}").into()),
            ];
            p.fields[0].key = "bench_requests_total".into();
            p.time_ns = 1_700_000_000_000_000_000;
        }
        let shared = encode(&points, 5);
        let mut whole = 5i64.to_le_bytes().to_vec();
        encode_points_v3(&points, true, &mut whole);
        assert_eq!(decode(VERSION, &shared).unwrap(), points);
        assert!(
            shared.len() * 4 < whole.len(),
            "{} bytes shared against {} whole",
            shared.len(),
            whole.len()
        );
        // Tags and fields that grow, shrink, change places and go empty;
        // a time that goes back.
        let mut odd = push(0, 5);
        odd[1].tags.push(("new".into(), "".into()));
        odd[2].tags = vec![("new".into(), "v".into())];
        odd[3].tags = vec![("k".into(), "".into()), ("new".into(), "v".into())];
        odd[3].fields.push(Field {
            key: "".into(),
            value: f64::NAN,
            suffix: SeriesSuffix::Bucket,
        });
        odd[4].measurement = "".into();
        odd[2].time_ns = i64::MAX;
        odd[3].time_ns = i64::MIN;
        odd[4].time_ns = -1;
        let back = decode(VERSION, &encode(&odd, 0)).unwrap();
        assert_eq!(format!("{back:?}"), format!("{odd:?}"));
        // "The same as before" in the first point has nothing to refer to.
        let mut bad = 0i64.to_le_bytes().to_vec();
        bad.extend_from_slice(&1u32.to_le_bytes());
        bad.extend_from_slice(&[0, 0, 0, 0, 1, 0, 0]);
        let err = decode(VERSION, &bad).unwrap_err();
        assert!(err.contains("refers to a point before"), "{err}");
    }

    #[test]
    fn damaged_records_fail_cleanly_or_decode_to_what_they_say() {
        // A record's checksum keeps damage from reaching the decoder, but a
        // bug or a collision must still never panic it. Flipped, cut and
        // added bytes of real records, with a fixed seed.
        let mut points = push(0, 12);
        points[3].tags.push(("extra".into(), "".into()));
        points[7].tags.clear();
        points[9].time_ns = -5;
        let records = [encode(&points, 1), encode(&push(2, 3), 2)];
        let mut rng = fastrand::Rng::with_seed(7);
        let mut decoded = 0;
        for _ in 0..20_000 {
            let mut body = records[rng.usize(..records.len())].clone();
            for _ in 0..rng.usize(1..4) {
                let at = rng.usize(..body.len());
                match rng.u8(..3) {
                    0 => body[at] ^= 1 << rng.u8(..8),
                    1 => body.truncate(at),
                    _ => body.insert(at, rng.u8(..)),
                }
                if body.is_empty() {
                    break;
                }
            }
            let mut out = Vec::new();
            let n = peek(VERSION, &body).map_or(1, |(_, n)| n);
            let lines = write_lines(Dialect::InfluxDb, VERSION, &body, 0, n, &mut out);
            if let Ok(back) = decode(VERSION, &body) {
                // Whatever decodes is points that encode and decode alike.
                decoded += 1;
                let again = decode(VERSION, &encode(&back, 0)).unwrap();
                assert_eq!(format!("{again:?}"), format!("{back:?}"));
                assert!(lines.is_ok());
            } else if let Err(e) = decode(VERSION, &body) {
                // Line protocol is written from the bytes, not checked for
                // UTF-8 again (see `PointRef`); any other damage writes
                // nothing.
                if !e.contains("UTF-8") {
                    assert!(out.is_empty(), "a bad payload writes nothing: {e}");
                }
            }
        }
        assert!(decoded > 0, "some damage leaves a decodable record");
    }

    #[test]
    fn extras_round_trip_and_count_as_line_protocol_drops() {
        use crate::model::family::{Exemplar, NativeBuckets, NativeHistogram};
        let mut points = push(0, 3);
        let ex = |v: f64| Exemplar {
            labels: vec![("trace_id".into(), "t".into())],
            value: v,
            timestamp: Some((1, 2)),
        };
        points[0].extra = Some(Box::new(PointExtra {
            native: Some(NativeHistogram {
                sample_count: Some(7),
                sample_count_float: None,
                schema: Some(-1),
                zero_threshold: Some(0.0),
                zero_count: Some(0),
                zero_count_float: Some(2.5),
                negative: NativeBuckets {
                    spans: vec![(2, 1)],
                    deltas: vec![],
                    counts: vec![f64::NAN],
                },
                positive: NativeBuckets {
                    spans: vec![(0, 2)],
                    deltas: vec![i64::MIN, i64::MAX],
                    counts: vec![],
                },
            }),
            exemplars: vec![ex(1.0), ex(2.0)],
        }));
        points[2].extra = Some(Box::new(PointExtra {
            native: None,
            exemplars: vec![ex(-0.5)],
        }));
        let body = encode(&points, 5);
        let back = decode(VERSION, &body).unwrap();
        assert_eq!(
            format!("{back:?}"),
            format!("{points:?}"),
            "NaN compares unequal"
        );
        let mut out = Vec::new();
        let (_, drops) = write_lines(Dialect::InfluxDb, VERSION, &body, 0, 3, &mut out).unwrap();
        assert_eq!((drops.native_buckets, drops.exemplars), (1, 3));
        for cut in 0..body.len() {
            assert!(decode(VERSION, &body[..cut]).is_err());
        }
    }
}
