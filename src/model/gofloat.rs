//! Go's `strconv.FormatFloat(v, 'g', -1, 64)`: the float format of the
//! Pushgateway's JSON API, of `le` and `quantile` label values, and (with
//! both zeros as `0`) of the text exposition. Shortest round-trip digits;
//! the exponent form (`1e+06`, `1e-05`: a sign and two digits at least)
//! when the decimal exponent is below -4 or at least 6; `+Inf`, `-Inf`
//! and `NaN` spelled out.

use std::fmt::{self, Write as _};

/// Formats `v` as Go's `%g` with shortest precision does.
pub fn format_go_g(v: f64) -> String {
    let mut out = Vec::with_capacity(24);
    write_go_g(&mut out, v);
    String::from_utf8(out).expect("digits, signs and letters are ASCII")
}

/// Appends `v` as [`format_go_g`] formats it, without allocating.
pub fn write_go_g(out: &mut Vec<u8>, v: f64) {
    if v == 0.0 {
        out.extend_from_slice(if v.is_sign_negative() { b"-0" } else { b"0" });
    } else if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e6 {
        // The common case of a whole count below 10^6: plain digits.
        out.extend_from_slice(itoa::Buffer::new().format(v as i64).as_bytes());
    } else {
        // Go's shortest 'g' uses the exponent form when the decimal exponent
        // is below -4 or at least 6 (the eprec of 6 for shortest). Rust's
        // `{}` and `{:e}` both give the shortest round-tripping digits, and
        // a shortest representation is at least 1e-4 (below 1e6) exactly
        // when the float is, so comparing the float decides the form.
        let mut buf = StackBuf::new();
        let abs = v.abs();
        if (1e-4..1e6).contains(&abs) {
            write!(buf, "{v}").expect("a float fits in the stack buffer");
            out.extend_from_slice(buf.as_bytes());
        } else {
            // `{:e}` writes `1.5e-7` / `1e21`; Go writes `1.5e-07` / `1e+21`.
            write!(buf, "{v:e}").expect("a float fits in the stack buffer");
            let s = buf.as_bytes();
            let e = s
                .iter()
                .position(|&b| b == b'e')
                .expect("{:e} writes an exponent");
            out.extend_from_slice(&s[..=e]);
            let exp = &s[e + 1..];
            let digits = match exp.strip_prefix(b"-") {
                Some(digits) => {
                    out.push(b'-');
                    digits
                }
                None => {
                    out.push(b'+');
                    exp
                }
            };
            if digits.len() < 2 {
                out.push(b'0');
            }
            out.extend_from_slice(digits);
        }
    }
}

/// A small stack buffer for formatting one float without allocating. The
/// longest `{}` of a float in [1e-4, 1e6) or `{:e}` of any float is well
/// under 32 bytes (`-2.2250738585072014e-308` is 24).
struct StackBuf {
    buf: [u8; 48],
    len: usize,
}

impl StackBuf {
    fn new() -> Self {
        StackBuf {
            buf: [0; 48],
            len: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's rule written the slow, obvious way, as the fast path's oracle.
    fn reference(v: f64) -> String {
        if v.is_nan() {
            return "NaN".to_string();
        }
        if v.is_infinite() {
            return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
        }
        if v == 0.0 {
            return if v.is_sign_negative() { "-0" } else { "0" }.to_string();
        }
        let sci = format!("{v:e}");
        let (mantissa, exp) = sci.split_once('e').unwrap();
        let exp: i32 = exp.parse().unwrap();
        if !(-4..6).contains(&exp) {
            let sign = if exp < 0 { '-' } else { '+' };
            format!("{mantissa}e{sign}{:02}", exp.abs())
        } else {
            format!("{v}")
        }
    }

    #[test]
    fn go_g_format() {
        let cases = [
            (0.1, "0.1"),
            (1.0, "1"),
            (100000.0, "100000"),
            (1e6, "1e+06"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (2.5e-7, "2.5e-07"),
            (123456789.0, "1.23456789e+08"),
            (1e100, "1e+100"),
            (0.005, "0.005"),
            (0.0, "0"),
            (-1.5, "-1.5"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ];
        for (v, want) in cases {
            assert_eq!(format_go_g(v), want, "{v}");
        }
    }

    #[test]
    fn fast_path_matches_the_reference() {
        let fixed = [
            1.0,
            -1.0,
            0.5,
            0.1,
            0.0001,
            0.00009999999999999999,
            0.000123,
            1e-5,
            99999.0,
            999999.0,
            999999.5,
            999999.9999999999,
            1e6,
            1_000_001.0,
            1234567.0,
            1e15,
            1e21,
            1e22,
            1e100,
            -1e-100,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            std::f64::consts::PI,
            -std::f64::consts::E * 1e10,
            2.5e-3,
            123456.789,
            9007199254740993.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        for v in fixed {
            assert_eq!(format_go_g(v), reference(v), "{v:e}");
        }
        // Pseudo-random bit patterns and decimal magnitudes around the edges.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = if i % 2 == 0 {
                f64::from_bits(x)
            } else {
                let exp = (x % 24) as i32 - 10;
                ((x >> 16) % 10_000_000) as f64 * 10f64.powi(exp) / 1e6
            };
            if v == 0.0 {
                continue;
            }
            assert_eq!(format_go_g(v), reference(v), "{v:e}");
        }
        assert_eq!(format_go_g(0.0), "0");
        assert_eq!(format_go_g(-0.0), "-0");
    }
}
