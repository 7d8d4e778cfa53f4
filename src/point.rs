//! A point (measurement, tags, fields, time) and its InfluxDB line-protocol
//! encoding.

use crate::expfmt::model::{LabelStr, MetricType};
use std::fmt::Write as _;
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
    pub fn write_line_protocol(&self, out: &mut String) {
        escape_into(out, &self.measurement, MEASUREMENT_SPECIALS);
        for (k, v) in &self.tags {
            out.push(',');
            escape_into(out, k, KEY_SPECIALS);
            out.push('=');
            escape_into(out, v, KEY_SPECIALS);
        }
        for (i, f) in self.fields.iter().enumerate() {
            out.push(if i == 0 { ' ' } else { ',' });
            escape_into(out, &f.key, KEY_SPECIALS);
            out.push('=');
            write_float(out, f.value);
        }
        out.push(' ');
        out.push_str(itoa::Buffer::new().format(self.time_ns));
        out.push('\n');
    }
}

/// Encodes points as a line-protocol body.
pub fn encode_line_protocol(points: &[Point]) -> String {
    let mut out = String::with_capacity(points.len() * 96);
    for p in points {
        p.write_line_protocol(&mut out);
    }
    out
}

/// Bytes to escape, as a lookup table per context: bit 0 in measurements,
/// bit 1 in tag keys, tag values and field keys.
const ESCAPES: [u8; 256] = {
    let mut table = [0u8; 256];
    table[b'\\' as usize] = 0b11;
    table[b'\n' as usize] = 0b11;
    table[b',' as usize] = 0b11;
    table[b' ' as usize] = 0b11;
    table[b'=' as usize] = 0b10;
    table
};
const MEASUREMENT_SPECIALS: u8 = 0b01;
const KEY_SPECIALS: u8 = 0b10;

/// Escapes per the line-protocol spec. Backslashes are doubled so that a
/// value ending in `\` cannot swallow the separator after it, and a newline
/// (which line protocol cannot carry) is written as the two characters `\n`.
/// Every byte that needs escaping is ASCII, so the scan is bytewise and the
/// common case (nothing to escape) is one copy.
fn escape_into(out: &mut String, s: &str, specials: u8) {
    let needs_escape = |b: &u8| ESCAPES[usize::from(*b)] & specials != 0;
    let Some(first) = s.as_bytes().iter().position(needs_escape) else {
        out.push_str(s);
        return;
    };
    let mut start = 0;
    for (i, b) in s.bytes().enumerate().skip(first) {
        if !needs_escape(&b) {
            continue;
        }
        // Escaped bytes are ASCII, so every cut here is a char boundary.
        out.push_str(&s[start..i]);
        out.push_str(match b {
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b',' => "\\,",
            b'=' => "\\=",
            _ => "\\ ",
        });
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

/// Shortest round-trip form; exponent form for very large or small values so
/// that 1e300 does not become 301 digits. Callers never pass NaN or ±Inf.
pub fn write_float(out: &mut String, v: f64) {
    let a = v.abs();
    if v.fract() == 0.0 && (1.0..1e15).contains(&a) {
        // The common case of a whole count: plain digits, as `{}` writes it.
        out.push_str(itoa::Buffer::new().format(v as i64));
    } else if a != 0.0 && !(1e-5..1e16).contains(&a) {
        let _ = write!(out, "{v:e}");
    } else {
        let _ = write!(out, "{v}");
    }
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

    fn point(measurement: &str, tags: &[(&str, &str)], fields: &[(&str, f64)]) -> Point {
        Point {
            measurement: measurement.into(),
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            fields: fields
                .iter()
                .map(|(k, v)| Field {
                    key: (*k).into(),
                    value: *v,
                    suffix: SeriesSuffix::None,
                })
                .collect(),
            time_ns: 1_700_000_000_000_000_000,
            family: Arc::from("x"),
            kind: MetricType::Gauge,
        }
    }

    fn line(p: &Point) -> String {
        let mut s = String::new();
        p.write_line_protocol(&mut s);
        s
    }

    #[test]
    fn plain_point() {
        let p = point(
            "etcd",
            &[("job", "j")],
            &[("etcd_up", 1.0), ("etcd_x", 0.5)],
        );
        assert_eq!(
            line(&p),
            "etcd,job=j etcd_up=1,etcd_x=0.5 1700000000000000000\n"
        );
    }

    #[test]
    fn escapes_specials() {
        let p = point(
            "m ea,s=",
            &[("t k=", "a,b c=d\\"), ("nl", "x\ny")],
            &[("f,k ey=", 2.0)],
        );
        assert_eq!(
            line(&p),
            "m\\ ea\\,s=,t\\ k\\==a\\,b\\ c\\=d\\\\,nl=x\\ny f\\,k\\ ey\\==2 1700000000000000000\n"
        );
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
            let mut s = String::new();
            write_float(&mut s, v);
            assert_eq!(s, want);
            assert_eq!(s.parse::<f64>().unwrap(), v);
        }
    }
}
