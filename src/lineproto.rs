//! InfluxDB line protocol: the encoding of one point per line, written
//! either from a [`Point`](crate::point::Point) or straight from the parts
//! the mapping produces (see `crate::convert`), and [`Lines`], the encoded
//! points of one push as sinks queue and send them.

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

/// Writes one line: `measurement[,tag=value...] field=value[,...] time\n`.
/// Tags are written in the order given (sorted, by the caller's contract);
/// `fields` must not be empty.
pub fn write_line<'a>(
    out: &mut Vec<u8>,
    measurement: &str,
    tags: impl IntoIterator<Item = (&'a str, &'a str)>,
    fields: impl IntoIterator<Item = (FieldKey<'a>, f64)>,
    time_ns: i64,
) {
    escape_into(out, measurement, MEASUREMENT_SPECIALS);
    for (k, v) in tags {
        out.push(b',');
        escape_into(out, k, KEY_SPECIALS);
        out.push(b'=');
        escape_into(out, v, KEY_SPECIALS);
    }
    for (i, (key, value)) in fields.into_iter().enumerate() {
        out.push(if i == 0 { b' ' } else { b',' });
        escape_into(out, key.base, KEY_SPECIALS);
        escape_into(out, key.suffix, KEY_SPECIALS);
        out.push(b'=');
        write_float(out, value);
    }
    out.push(b' ');
    out.extend_from_slice(itoa::Buffer::new().format(time_ns).as_bytes());
    out.push(b'\n');
}

/// A field key in two parts (the family's field name and a series suffix
/// such as `_count`), so that the mapping need not join them to write it.
#[derive(Debug, Clone, Copy)]
pub struct FieldKey<'a> {
    pub base: &'a str,
    pub suffix: &'a str,
}

impl FieldKey<'_> {
    /// Whether the joined key equals `s`.
    pub fn is(&self, s: &str) -> bool {
        s.len() == self.base.len() + self.suffix.len()
            && s.starts_with(self.base)
            && s.ends_with(self.suffix)
    }
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
fn escape_into(out: &mut Vec<u8>, s: &str, specials: u8) {
    let bytes = s.as_bytes();
    let needs_escape = |b: u8| ESCAPES[usize::from(b)] & specials != 0;
    let Some(first) = bytes.iter().position(|&b| needs_escape(b)) else {
        out.extend_from_slice(bytes);
        return;
    };
    out.extend_from_slice(&bytes[..first]);
    for &b in &bytes[first..] {
        if needs_escape(b) {
            out.push(b'\\');
            out.push(if b == b'\n' { b'n' } else { b });
        } else {
            out.push(b);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(base: &str) -> FieldKey<'_> {
        FieldKey { base, suffix: "" }
    }

    fn line(measurement: &str, tags: &[(&str, &str)], fields: &[(&str, f64)]) -> String {
        let mut out = Vec::new();
        write_line(
            &mut out,
            measurement,
            tags.iter().copied(),
            fields.iter().map(|(k, v)| (key(k), *v)),
            1_700_000_000_000_000_000,
        );
        String::from_utf8(out).unwrap()
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
        assert_eq!(
            line(
                "m ea,s=",
                &[("t k=", "a,b c=d\\"), ("nl", "x\ny")],
                &[("f,k ey=", 2.0)]
            ),
            "m\\ ea\\,s=,t\\ k\\==a\\,b\\ c\\=d\\\\,nl=x\\ny f\\,k\\ ey\\==2 1700000000000000000\n"
        );
    }

    #[test]
    fn field_keys_join_their_parts() {
        let k = FieldKey {
            base: "req",
            suffix: "_count",
        };
        assert!(k.is("req_count"));
        assert!(!k.is("req_coun"));
        assert!(!k.is("req"));
        assert!(!k.is("rex_count"));
        let mut out = Vec::new();
        write_line(&mut out, "m", [], [(k, 3.0)], 5);
        assert_eq!(out, b"m req_count=3 5\n");
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
}
