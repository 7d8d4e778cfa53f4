//! Writing a queue record's payload (the current version of `codec`'s
//! layout) one point at a time, either from `Point`s or straight from the
//! mapping's parts ([`EmitPoints`]), so that a push bound for the disk
//! queue never builds a `Point` for each of its samples only to encode
//! and free it.
//!
//! Invariant: whatever the source, the bytes are those of the layout in
//! `codec`'s module docs, with a string written as "the same as the point
//! before" exactly when it equals the string in the same place of the
//! point before. The writer keeps its own copy of the point before's
//! strings (buffers reused from point to point, so a push allocates them
//! once).

use super::codec::{encode_extra, kind_code, suffix_code};
use crate::convert::{EmitPoints, PointParts};
use crate::model::family::{Family, MetricType};
use crate::model::point::{Point, PointExtra, SeriesSuffix};

/// The payload of a queue record holding `points`, appended at `append_ns`.
pub fn encode(points: &[Point], append_ns: i64) -> Vec<u8> {
    RecordWriter::of_points(append_ns, points).finish()
}

/// A queue record's payload, written point by point; see the module docs.
pub struct RecordWriter {
    out: Vec<u8>,
    count: u32,
    /// The time of the point before (0 before the first).
    time: i64,
    before: Before,
    /// The family [`EmitPoints::family`] named last.
    family: CurrentFamily,
}

/// The strings of the point before, in their places.
#[derive(Default)]
struct Before {
    /// False before the first point: every string is written whole.
    any: bool,
    measurement: String,
    /// The first `n_tags` are the point before's; the rest are spare
    /// buffers.
    tags: Vec<(String, String)>,
    n_tags: usize,
    keys: Vec<String>,
    n_keys: usize,
    family: String,
}

#[derive(Default)]
struct CurrentFamily {
    name: String,
    kind: Option<MetricType>,
    measurement: String,
    field: String,
}

/// One point's strings and values, from either source.
struct PointIn<'a, T, F> {
    measurement: &'a str,
    tags: T,
    /// Each field's key is its two parts, joined.
    fields: F,
    time_ns: i64,
    family: &'a str,
    kind: MetricType,
    extra: Option<&'a PointExtra>,
}

impl RecordWriter {
    /// A payload dated `append_ns` (see `codec`), with room for about
    /// `bytes`.
    pub fn new(append_ns: i64, bytes: usize) -> RecordWriter {
        let mut out = Vec::with_capacity(12 + bytes);
        out.extend_from_slice(&append_ns.to_le_bytes());
        // The count, set by `finish`.
        out.extend_from_slice(&0u32.to_le_bytes());
        RecordWriter {
            out,
            count: 0,
            time: 0,
            before: Before::default(),
            family: CurrentFamily::default(),
        }
    }

    /// A payload dated `append_ns` holding `points`.
    pub fn of_points(append_ns: i64, points: &[Point]) -> RecordWriter {
        let mut w = RecordWriter::new(append_ns, points.len() * 40);
        for p in points {
            w.write_point(p);
        }
        w
    }

    /// Points written so far.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The time the payload is dated (see `codec`).
    pub fn append_ns(&self) -> i64 {
        i64::from_le_bytes(self.out[..8].try_into().expect("8 bytes"))
    }

    /// The payload.
    pub fn finish(mut self) -> Vec<u8> {
        self.out[8..12].copy_from_slice(&self.count.to_le_bytes());
        self.out
    }

    /// Appends `p`.
    pub fn write_point(&mut self, p: &Point) {
        self.write(PointIn {
            measurement: &p.measurement,
            tags: p.tags.iter().map(|(k, v)| (&**k, &**v)),
            fields: p.fields.iter().map(|f| ((&*f.key, ""), f.value, f.suffix)),
            time_ns: p.time_ns,
            family: &p.family,
            kind: p.kind,
            extra: p.extra.as_deref(),
        });
    }

    fn write<'a, T, F>(&mut self, p: PointIn<'a, T, F>)
    where
        T: Iterator<Item = (&'a str, &'a str)> + Clone,
        F: Iterator<Item = ((&'a str, &'a str), f64, SeriesSuffix)> + Clone,
    {
        let out = &mut self.out;
        let b = &mut self.before;
        let any = b.any;
        put_shared(out, (p.measurement, ""), &mut b.measurement, any);
        let n_tags = p.tags.clone().count();
        put_varint(out, n_tags as u64);
        for (i, (k, v)) in p.tags.enumerate() {
            if b.tags.len() == i {
                b.tags.push(Default::default());
            }
            let had = any && i < b.n_tags;
            let (bk, bv) = &mut b.tags[i];
            put_shared(out, (k, ""), bk, had);
            put_shared(out, (v, ""), bv, had);
        }
        b.n_tags = n_tags;
        let n_keys = p.fields.clone().count();
        put_varint(out, n_keys as u64);
        for (j, (key, value, suffix)) in p.fields.enumerate() {
            if b.keys.len() == j {
                b.keys.push(String::new());
            }
            let had = any && j < b.n_keys;
            put_shared(out, key, &mut b.keys[j], had);
            out.extend_from_slice(&value.to_bits().to_le_bytes());
            out.push(suffix_code(suffix));
        }
        b.n_keys = n_keys;
        let delta = p.time_ns.wrapping_sub(self.time);
        put_varint(out, ((delta << 1) ^ (delta >> 63)) as u64);
        self.time = p.time_ns;
        put_shared(out, (p.family, ""), &mut b.family, any);
        out.push(kind_code(p.kind));
        match p.extra {
            Some(e) => {
                let bytes = encode_extra(e);
                put_varint(out, bytes.len() as u64);
                out.extend_from_slice(&bytes);
            }
            None => out.push(0),
        }
        b.any = true;
        self.count = self.count.saturating_add(1);
    }
}

impl EmitPoints for RecordWriter {
    fn family(&mut self, family: &Family, measurement: &str, field: &str) {
        let f = &mut self.family;
        set(&mut f.name, &family.name);
        f.kind = Some(family.kind);
        set(&mut f.measurement, measurement);
        set(&mut f.field, field);
    }

    fn point(&mut self, p: &PointParts<'_>) {
        // Taken out for the call, so that `write` may borrow the writer.
        let f = std::mem::take(&mut self.family);
        let extra = (p.native.is_some() || !p.exemplars.is_empty()).then(|| PointExtra {
            native: p.native.cloned(),
            exemplars: p.exemplars.to_vec(),
        });
        let field = f.field.as_str();
        self.write(PointIn {
            measurement: &f.measurement,
            tags: p.tags(),
            fields: p
                .values
                .iter()
                .map(|&(suffix, value)| ((field, suffix.as_str()), value, suffix)),
            time_ns: p.time_ns,
            family: &f.name,
            kind: f.kind.expect("family() first"),
            extra: extra.as_ref(),
        });
        self.family = f;
    }
}

/// `x == y`, without a call to `memcmp` for the short strings that most
/// labels are (the call costs more than the comparison, see
/// `put_shared`): two overlapping word loads cover 4 to 32 bytes.
#[inline]
fn same_bytes(x: &[u8], y: &[u8]) -> bool {
    fn word(s: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(s[at..at + 8].try_into().expect("8 bytes"))
    }
    fn half(s: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(s[at..at + 4].try_into().expect("4 bytes"))
    }
    let n = x.len();
    if n != y.len() {
        return false;
    }
    match n {
        0..=3 => x.iter().zip(y).all(|(a, b)| a == b),
        4..=7 => half(x, 0) == half(y, 0) && half(x, n - 4) == half(y, n - 4),
        8..=16 => word(x, 0) == word(y, 0) && word(x, n - 8) == word(y, n - 8),
        17..=32 => {
            word(x, 0) == word(y, 0)
                && word(x, 8) == word(y, 8)
                && word(x, n - 16) == word(y, n - 16)
                && word(x, n - 8) == word(y, n - 8)
        }
        _ => x == y,
    }
}

fn set(buf: &mut String, s: &str) {
    buf.clear();
    buf.push_str(s);
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The string `a` + `b`, or "the same" if `had` (there is a string in
/// this place of the point before) and `before`, that string, equals it.
/// `before` then holds it.
fn put_shared(out: &mut Vec<u8>, (a, b): (&str, &str), before: &mut String, had: bool) {
    let len = a.len() + b.len();
    // Slices compared, not `starts_with`/`ends_with`: `ends_with` calls
    // `memcmp` even for an empty suffix, and that call took about 70 ns on
    // the benchmark machine, four times this whole function.
    let same = || {
        let (x, y) = before.as_bytes().split_at(a.len());
        same_bytes(x, a.as_bytes()) && same_bytes(y, b.as_bytes())
    };
    if had && before.len() == len && same() {
        out.push(0);
        return;
    }
    // Longer strings cannot fit a record anyway; `append` refuses them.
    put_varint(out, len.min(u32::MAX as usize - 1) as u64 + 1);
    out.extend_from_slice(a.as_bytes());
    before.clear();
    before.push_str(a);
    // Only a field key has a second part (its suffix), and mostly none.
    if !b.is_empty() {
        out.extend_from_slice(b.as_bytes());
        before.push_str(b);
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::{self, VERSION};
    use super::*;
    use crate::convert::{convert, convert_into, Mapping};
    use crate::expfmt::parse_text;
    use crate::model::family::{Exemplar, Histogram, HistogramExemplars, Metric, Value};
    use crate::model::GroupingKey;

    const TEXT: &str = "# TYPE up gauge\nup 1\nup{a=\"x\"} NaN\nup{a=\"y\",b=\"z\"} +Inf\n\
        # TYPE req_total counter\nreq_total{code=\"200\",path=\"C:\\\\x y,z=\\\"q\\\"\"} 3 1700000000000\n\
        req_total{code=\"500\",path=\"/\"} -0.0\n\
        # TYPE lat_seconds histogram\nlat_seconds_bucket{le=\"0.5\"} 1\nlat_seconds_bucket{le=\"+Inf\"} 2\n\
        lat_seconds_sum 0.75\nlat_seconds_count 2\n\
        # TYPE rpc summary\nrpc{quantile=\"0.5\",m=\"g\"} 0.1\nrpc{quantile=\"0.99\",m=\"g\"} 0.9\n\
        rpc_sum{m=\"g\"} 4\nrpc_count{m=\"g\"} 9\nrpc{quantile=\"0.5\",m=\"p\"} 0.2\n\
        rpc_sum{m=\"p\"} 1\nrpc_count{m=\"p\"} 1\n\
        # TYPE job_state gauge\njob_state{job_state=\"running\"} 1\n";

    /// A histogram with a native part and exemplars, and a counter with
    /// an exemplar, as a protobuf push brings them.
    fn native_families() -> Vec<Family> {
        let exemplar = |v: f64| Exemplar {
            labels: vec![("trace_id".into(), format!("t{v}").into())],
            value: v,
            timestamp: Some((1_700_000_000, 5)),
        };
        let mut native = Box::<crate::model::family::NativeHistogram>::default();
        native.schema = Some(3);
        native.sample_count = Some(4);
        let histogram = Metric {
            labels: vec![("h".into(), "1".into())],
            value: Value::Histogram(Histogram {
                sample_count: 4.0,
                sample_sum: 2.5,
                buckets: vec![(0.1, 1.0), (1.0, 3.0)],
                native: Some(native),
                exemplars: Some(Box::new(HistogramExemplars {
                    buckets: vec![(1, exemplar(0.5))],
                    native: vec![exemplar(0.7), exemplar(0.9)],
                })),
            }),
            timestamp_ms: None,
            exemplar: None,
        };
        let counter = Metric {
            labels: vec![],
            value: Value::Simple(7.0),
            timestamp_ms: Some(1_700_000_000_123),
            exemplar: Some(Box::new(exemplar(1.0))),
        };
        vec![
            Family {
                name: "rtt_seconds".into(),
                help: Some("Round trips.".into()),
                kind: MetricType::Histogram,
                metrics: vec![histogram],
            },
            Family {
                name: "hits_total".into(),
                help: None,
                kind: MetricType::Counter,
                metrics: vec![counter],
            },
        ]
    }

    #[test]
    fn a_record_written_from_the_mapping_is_the_one_its_points_encode_to() {
        let mut families = parse_text(TEXT.as_bytes()).unwrap();
        families.extend(native_families());
        let group = GroupingKey::from_pairs("j", &["instance", "h1", "a", "grouped"]);
        for honor_timestamps in [false, true] {
            let mapping = Mapping {
                honor_timestamps,
                ..Mapping::default()
            };
            let points = convert(&families, &group, &mapping, 5_000);
            assert!(points.iter().any(|p| p.extra.is_some()));
            let mut direct = RecordWriter::new(42, 0);
            convert_into(&families, &group, &mapping, 5_000, &mut direct);
            assert_eq!(direct.count() as usize, points.len());
            assert_eq!(direct.append_ns(), 42);
            let bytes = direct.finish();
            assert_eq!(bytes, encode(&points, 42));
            // As text: NaN is not equal to itself.
            let back = codec::decode(VERSION, &bytes).unwrap();
            assert_eq!(format!("{back:?}"), format!("{points:?}"));
        }
    }

    #[test]
    fn short_strings_compare_equal_exactly_when_they_are() {
        for n in 0..48usize {
            let x: Vec<u8> = (0..n).map(|i| (i * 7 + n) as u8).collect();
            assert!(same_bytes(&x, &x.clone()), "{n}");
            for at in 0..n {
                let mut y = x.clone();
                y[at] ^= 0x20;
                assert!(!same_bytes(&x, &y), "{n} bytes, differing at {at}");
            }
            assert!(!same_bytes(&x, &x[..n.saturating_sub(1)]) || n == 0);
        }
    }

    #[test]
    fn strings_are_shared_only_with_the_same_place_of_the_point_before() {
        let families = parse_text(
            "# TYPE m gauge\nm{a=\"1\",b=\"2\"} 1\nm{a=\"1\"} 2\nm{a=\"1\",b=\"2\"} 3\nm{b=\"2\"} 4\n"
                .as_bytes(),
        )
        .unwrap();
        let group = GroupingKey::from_pairs("j", &[]);
        let mut w = RecordWriter::new(0, 0);
        convert_into(&families, &group, &Mapping::default(), 1, &mut w);
        let bytes = w.finish();
        let points = codec::decode(VERSION, &bytes).unwrap();
        let tags: Vec<Vec<(String, String)>> = points
            .iter()
            .map(|p| {
                p.tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .collect();
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            tags,
            [
                vec![pair("a", "1"), pair("b", "2"), pair("job", "j")],
                vec![pair("a", "1"), pair("job", "j")],
                vec![pair("a", "1"), pair("b", "2"), pair("job", "j")],
                vec![pair("b", "2"), pair("job", "j")],
            ]
        );
    }
}
