//! The naming rules of the Prometheus data model, as the Pushgateway and
//! its text parser enforce them: metric names `[a-zA-Z_:][a-zA-Z0-9_:]*`,
//! label names `[a-zA-Z_][a-zA-Z0-9_]*`. Checked on bytes, so that parsers
//! can test a name before they make a string of it.
//!
//! With UTF-8 names (`utf8_names`, Pushgateway 1.11's
//! `--push.enable-utf8-names`) any non-empty UTF-8 name is valid, and
//! names travel in the escapings of Prometheus' `model` package:
//! [`escape_underscores`] (how a scraper that did not ask for UTF-8 sees a
//! name), [`escape_values`] and [`unescape_values`] (the `U__` form of URL
//! label names), and [`escape_dots`].

/// True for a valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_valid_metric_name(name: &[u8]) -> bool {
    match name.split_first() {
        Some((&first, rest)) => {
            is_metric_name_start(first) && rest.iter().all(|&b| is_metric_name_continue(b))
        }
        None => false,
    }
}

/// True for a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &[u8]) -> bool {
    match name.split_first() {
        Some((&first, rest)) => {
            is_label_name_start(first) && rest.iter().all(|&b| is_label_name_continue(b))
        }
        None => false,
    }
}

#[inline]
pub const fn is_label_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

#[inline]
pub const fn is_label_name_continue(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

#[inline]
pub const fn is_metric_name_start(b: u8) -> bool {
    is_label_name_start(b) || b == b':'
}

#[inline]
pub const fn is_metric_name_continue(b: u8) -> bool {
    is_label_name_continue(b) || b == b':'
}

/// Whether a name is valid: with `utf8`, any non-empty one (a `&str` is
/// UTF-8 already); else a legacy label name.
pub fn is_valid_label_name_with(name: &str, utf8: bool) -> bool {
    if utf8 {
        !name.is_empty()
    } else {
        is_valid_label_name(name.as_bytes())
    }
}

/// Whether a name is valid: with `utf8`, any non-empty one; else a legacy
/// metric name.
pub fn is_valid_metric_name_with(name: &str, utf8: bool) -> bool {
    if utf8 {
        !name.is_empty()
    } else {
        is_valid_metric_name(name.as_bytes())
    }
}

/// Which legacy rule a name is escaped against. Prometheus' `EscapeName`
/// tests label names against the metric-name rule, so `a:b` would go out
/// bare as a label name, which no parser reads back; here a label name is
/// escaped (and, with `allow-utf-8`, quoted) unless it is a legacy label
/// name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Metric,
    Label,
}

impl NameKind {
    /// True for a legacy name of this kind.
    pub fn is_legacy(self, name: &str) -> bool {
        match self {
            NameKind::Metric => is_valid_metric_name(name.as_bytes()),
            NameKind::Label => is_valid_label_name(name.as_bytes()),
        }
    }

    /// A rune a legacy name of this kind may hold at byte offset `i`.
    fn legacy_rune(self, c: char, i: usize) -> bool {
        c.is_ascii_alphabetic()
            || c == '_'
            || (c == ':' && self == NameKind::Metric)
            || (c.is_ascii_digit() && i > 0)
    }
}

/// Underscore escaping: a legacy name of its kind as it is, any other
/// with each rune such a name cannot hold (a leading digit included) as
/// one `_`.
pub fn escape_underscores(name: &str, kind: NameKind) -> std::borrow::Cow<'_, str> {
    if kind.is_legacy(name) {
        return name.into();
    }
    name.char_indices()
        .map(|(i, c)| if kind.legacy_rune(c, i) { c } else { '_' })
        .collect::<String>()
        .into()
}

/// Value-encoding escaping: a legacy name of its kind as it is, any
/// other as `U__` followed by each rune: `_` as `__`, a rune such a name
/// may hold as itself, anything else as `_<lowercase hex code>_`
/// (`foo.bar` → `U__foo_2e_bar`).
pub fn escape_values(name: &str, kind: NameKind) -> std::borrow::Cow<'_, str> {
    use std::fmt::Write as _;
    if kind.is_legacy(name) {
        return name.into();
    }
    let mut out = String::from("U__");
    for (i, c) in name.char_indices() {
        if c == '_' {
            out.push_str("__");
        } else if kind.legacy_rune(c, i) {
            out.push(c);
        } else {
            let _ = write!(out, "_{:x}_", u32::from(c));
        }
    }
    out.into()
}

/// The inverse of [`escape_values`], as Prometheus' `UnescapeName` reads
/// it: a name without the `U__` prefix, or one that does not decode (a
/// lone `_` at the end, a code that is not hex, longer than five digits,
/// unclosed, or not a Unicode scalar value), is returned as it is.
pub fn unescape_values(name: &str) -> std::borrow::Cow<'_, str> {
    let Some(escaped) = name.strip_prefix("U__") else {
        return name.into();
    };
    let bytes = escaped.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'_' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        i += 1;
        match bytes.get(i) {
            None => return name.into(),
            Some(b'_') => {
                out.push(b'_');
                i += 1;
                continue;
            }
            Some(_) => {}
        }
        let mut code: u32 = 0;
        let mut digits = 0;
        loop {
            // Five hex digits at most: a sixth fails before the closing
            // `_` is looked for, as in Prometheus.
            if digits >= 6 {
                return name.into();
            }
            let Some(&b) = bytes.get(i) else {
                return name.into();
            };
            if b == b'_' {
                let Some(c) = char::from_u32(code) else {
                    return name.into();
                };
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                i += 1;
                break;
            }
            let Some(d) = (b as char).to_digit(16) else {
                return name.into();
            };
            code = code * 16 + d;
            digits += 1;
            i += 1;
        }
    }
    // Only whole runes were added to the escaped form's other bytes.
    String::from_utf8(out).map_or_else(|_| name.into(), Into::into)
}

/// Dots escaping: `_` as `__`, `.` as `_dot_`, any other rune a legacy
/// name of its kind cannot hold as `__`; a legacy name as it is.
pub fn escape_dots(name: &str, kind: NameKind) -> std::borrow::Cow<'_, str> {
    if kind.is_legacy(name) {
        return name.into();
    }
    let mut out = String::with_capacity(name.len() + 8);
    for (i, c) in name.char_indices() {
        match c {
            '_' => out.push_str("__"),
            '.' => out.push_str("_dot_"),
            c if kind.legacy_rune(c, i) => out.push(c),
            _ => out.push_str("__"),
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapings_as_prometheus_has_them() {
        use NameKind::{Label, Metric};
        assert_eq!(escape_values("foo.bar", Metric), "U__foo_2e_bar");
        assert_eq!(escape_values("1abc", Metric), "U___31_abc");
        assert_eq!(escape_values("ö", Metric), "U___f6_");
        assert_eq!(escape_values("😱", Metric), "U___1f631_");
        assert_eq!(escape_values("a_b.c", Metric), "U__a__b_2e_c");
        assert_eq!(escape_values("ok_name", Metric), "ok_name");
        assert_eq!(escape_underscores("foo.bar", Metric), "foo_bar");
        assert_eq!(escape_underscores("1abc", Metric), "_abc");
        assert_eq!(escape_underscores("héllo wörld", Metric), "h_llo_w_rld");
        assert_eq!(escape_dots("a_b.c-d", Metric), "a__b_dot_c__d");
        // A colon is legacy in a metric name only.
        assert_eq!(escape_underscores("a:b", Metric), "a:b");
        assert_eq!(escape_underscores("a:b", Label), "a_b");
        assert_eq!(escape_values("a:b", Label), "U__a_3a_b");
        assert_eq!(escape_dots("a:b", Label), "a__b");
        for name in [
            "foo.bar", "1abc", "ö", "😱", "a_b.c", "__x", "a b\\\"c", "a:b",
        ] {
            for kind in [Metric, Label] {
                assert_eq!(unescape_values(&escape_values(name, kind)), name, "{name}");
            }
        }
        // A legacy name is not escaped, so one that looks escaped does not
        // come back: as in Prometheus.
        assert_eq!(unescape_values(&escape_values("U__y", Metric)), "y");
    }

    #[test]
    fn unescaping_leaves_what_does_not_decode() {
        assert_eq!(unescape_values("U__foo_2E_bar"), "foo.bar");
        assert_eq!(unescape_values("U__"), "");
        assert_eq!(unescape_values("U__a_0_b"), "a\0b");
        assert_eq!(unescape_values("U__1abc"), "1abc");
        assert_eq!(unescape_values("U_____5f_foo"), "__foo");
        assert_eq!(unescape_values("U__a_fffff_b"), "a\u{fffff}b");
        for unchanged in [
            "foo_bar",
            "u__foo_2e_bar",
            "U__foo_zz_bar",
            "U__foo_",
            "U__foo_2e",
            "U__a_d800_b",
            "U__a_10ffff_b",
            "U__a_0fffff_b",
        ] {
            assert_eq!(unescape_values(unchanged), unchanged);
        }
    }

    #[test]
    fn name_validation() {
        assert!(is_valid_metric_name(b"a:b_c9"));
        assert!(is_valid_metric_name(b":x"));
        assert!(!is_valid_metric_name(b""));
        assert!(!is_valid_metric_name(b"9a"));
        assert!(!is_valid_metric_name(b"a-b"));
        assert!(is_valid_label_name(b"_a9"));
        assert!(!is_valid_label_name(b"a:b"));
        assert!(!is_valid_label_name(b""));
        assert!(!is_valid_label_name(b"1a"));
    }
}
