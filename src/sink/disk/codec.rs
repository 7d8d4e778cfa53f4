//! The encoding of a push's points in a queue record.
//!
//! ```text
//! payload (record version 3): append_ns: i64 | count: u32 | count × point
//! point:   measurement: str | tags: u32 × (key: str, value: str)
//!          | fields: u32 × (key: str, value: f64, suffix: u8) | time_ns: i64
//!          | family: str | kind: u8 | extra: bytes
//! str:     len: u32 | UTF-8 bytes
//! bytes:   len: u32 | bytes; for `extra`, empty or an `ExtraMessage`
//! ```
//!
//! Numbers are little-endian; `f64` is its IEEE bits, so NaN (payload
//! included), ±Inf and -0.0 come back as they went in. `suffix` is 0 none,
//! 1 `_count`, 2 `_sum`, 3 `_bucket`; `kind` is 0 counter, 1 gauge,
//! 2 summary, 3 untyped, 4 histogram, 5 gauge histogram. `append_ns` (Unix
//! time) dates the record for `DiskQueue::oldest_age`.
//!
//! `extra` is a point's native histogram and exemplars (`PointExtra`), as
//! protobuf: `io.prometheus.client.Histogram` carries the native fields and
//! `Exemplar` the exemplars, so they keep exactly what was pushed. Nearly
//! every point has none, and pays four bytes.
//!
//! The record's version (in the engine's record header) names this
//! layout, and [`decode`] keeps reading the old ones: version 2 is the same
//! without `extra` (releases before native histograms were forwarded).
//! Version 1 is the point body of the format-1 disk queue (releases up to
//! 57b122d): a version byte (1), then `count × point` as in version 2;
//! [`decode_v1`] reads it for the migration.

use crate::expfmt::proto;
use crate::lineproto::{write_line, Dialect, LpDrops};
use crate::model::family::{LabelStr, MetricType};
use crate::model::point::{Field, Point, PointExtra, SeriesSuffix};
use prost::Message as _;
use std::sync::Arc;

/// The record version [`encode`] writes.
pub const VERSION: u8 = 3;
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

fn encode_extra(e: &PointExtra) -> Vec<u8> {
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

/// The payload of a queue record holding `points`, appended at `append_ns`.
pub fn encode(points: &[Point], append_ns: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + points.len() * 96);
    out.extend_from_slice(&append_ns.to_le_bytes());
    encode_points(points, true, &mut out);
    out
}

/// The append time and point count of a payload, without decoding it.
pub fn peek(version: u8, payload: &[u8]) -> Result<(i64, u32), String> {
    if version != VERSION && version != VERSION_2 {
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

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Longer strings cannot fit a record anyway; `append` refuses them.
    put_u32(out, u32::try_from(s.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(s.as_bytes());
}

fn suffix_code(s: SeriesSuffix) -> u8 {
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

fn kind_code(k: MetricType) -> u8 {
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

/// Appends the point count and the points, with their `extra` (version 3)
/// or without (version 2, for tests of reading old records).
fn encode_points(points: &[Point], with_extra: bool, out: &mut Vec<u8>) {
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
        if n.saturating_mul(min_len) > self.data.len() - self.pos {
            return Err(format!("count {n} exceeds the record at byte {}", self.pos));
        }
        Ok(n)
    }
}

fn utf8(b: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(b).map_err(|e| format!("invalid UTF-8 in a string: {e}"))
}

/// One point as the payload holds it, borrowed from the payload and from
/// the walker's scratch vectors. Strings are bytes: [`encode_points`]
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

/// Walks what [`encode_points`] wrote (or its `version` 2), all of
/// `body`, checking its structure: calls `each` with each point's index
/// and the point, and stops at the first error either finds. Returns the
/// count.
fn walk_points<'p>(
    version: u8,
    body: &'p [u8],
    mut each: impl FnMut(usize, &PointRef<'p, '_>) -> Result<(), String>,
) -> Result<usize, String> {
    let mut d = Decoder { data: body, pos: 0 };
    let has_extra = version >= VERSION;
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
            let code = d.u8()?;
            let suffix =
                suffix_from_code(code).ok_or_else(|| format!("unknown series suffix {code}"))?;
            fields.push((key, value, suffix));
        }
        let time_ns = d.i64()?;
        let family = d.str()?;
        let code = d.u8()?;
        let kind = kind_from_code(code).ok_or_else(|| format!("unknown metric type {code}"))?;
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
    if d.pos != body.len() {
        return Err(format!(
            "{} unexpected bytes after the points",
            body.len() - d.pos
        ));
    }
    Ok(n)
}

/// Decodes what [`encode_points`] wrote, all of `body`.
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
    let walked = walk_points(version, &payload[8..], |i, p| {
        if range.contains(&i) {
            if !p.extra.is_empty() {
                drops.note_extra(Some(&decode_extra(p.extra)?));
            }
            let written = write_line(
                out,
                dialect,
                p.measurement,
                p.tags.iter().copied(),
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
            // Version 2 (no extras), and the format-1 body: a version
            // byte, then the points as version 2 has them.
            let mut v2 = 77i64.to_le_bytes().to_vec();
            encode_points(&points, false, &mut v2);
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
