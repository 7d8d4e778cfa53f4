//! How each kind of value is written in a config file, as serde `with`
//! modules for the fields of the typed sections.
//!
//! Files are strict: a bool must be a TOML boolean, a count a TOML integer,
//! a duration a Go duration string; a size may be an integer or a string.
//! ENV values arrive here already turned into those TOML types by the ENV
//! overlay (`env.rs`), so one parser serves both. A helper's error text is
//! the "expected ..." half of an error line; the loader adds where the
//! value came from and the value itself.
//!
//! Serializing is for showing the configuration (`pushkit check`, the
//! README's defaults): it writes the syntax the loader reads back, except
//! that secrets come out as "REDACTED" and URLs redacted.
//!
//! Imports `value` and `url` only.

use std::fmt::Display;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

use super::url::{parse_http_url, redact_url, EXPECT_URL};
use super::value::{
    check_count_int, check_limit_int, check_listen, check_size_int, format_duration,
    normalize_route_prefix, parse_duration, parse_size, quote, size_with_unit, EXPECT_COUNT,
    EXPECT_DURATION, EXPECT_LIMIT, EXPECT_LISTEN, EXPECT_NONZERO_DURATION, EXPECT_ROUTE_PREFIX,
    EXPECT_SIZE, REDACTED,
};

pub(crate) const EXPECT_BOOL: &str = "expected a TOML boolean, true or false";
pub(crate) const EXPECT_STRING: &str = "expected a TOML string";
pub(crate) const EXPECT_HEADERS: &str = "expected a TOML table of header names to string values";

/// Takes the value as TOML and converts it with `parse`.
pub(crate) fn read<'de, D, T, E>(
    d: D,
    parse: impl FnOnce(toml::Value) -> Result<T, E>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    E: Display,
{
    parse(toml::Value::deserialize(d)?).map_err(D::Error::custom)
}

/// A string value, or `expected` for any other TOML type.
fn string(v: toml::Value, expected: &'static str) -> Result<String, &'static str> {
    match v {
        toml::Value::String(s) => Ok(s),
        _ => Err(expected),
    }
}

/// `true` or `false`, nothing else.
pub(crate) mod flag {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        read(d, |v| v.as_bool().ok_or(EXPECT_BOOL))
    }

    pub(crate) fn serialize<S: Serializer>(b: &bool, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(*b)
    }
}

/// Bytes, at least 1: an integer, or a string with an optional binary
/// suffix ("1024", "512KiB", "16MiB", "1GiB").
pub(crate) mod size {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        read(d, |v| match v {
            toml::Value::Integer(n) => check_size_int(n),
            toml::Value::String(s) => parse_size(&s),
            _ => Err(EXPECT_SIZE),
        })
    }

    /// "16MiB" when exact, else the byte count (as a string past what a
    /// TOML integer holds).
    pub(crate) fn serialize<S: Serializer>(bytes: &u64, s: S) -> Result<S::Ok, S::Error> {
        match (size_with_unit(*bytes), i64::try_from(*bytes)) {
            (Some(text), _) => s.serialize_str(&text),
            (None, Ok(n)) => s.serialize_i64(n),
            (None, Err(_)) => s.serialize_str(&bytes.to_string()),
        }
    }
}

/// A whole number, at least 1, written as a TOML integer.
pub(crate) mod count {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        read(d, |v| match v {
            toml::Value::Integer(n) => check_count_int(n),
            toml::Value::String(_) => Err("expected a TOML integer of at least 1, not a string"),
            _ => Err(EXPECT_COUNT),
        })
    }

    pub(crate) fn serialize<S: Serializer>(n: &usize, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*n as u64)
    }
}

/// A limit: a whole number written as a TOML integer, 0 for none.
pub(crate) mod limit {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        read(d, |v| match v {
            toml::Value::Integer(n) => check_limit_int(n),
            toml::Value::String(_) => Err("expected a TOML integer (0 for no limit), not a string"),
            _ => Err(EXPECT_LIMIT),
        })
    }

    pub(crate) fn serialize<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*n)
    }
}

/// A Go duration ("300ms", "1m30s"), zero allowed.
pub(crate) mod duration {
    use super::*;
    use std::time::Duration;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        read(d, |v| parse_duration(&string(v, EXPECT_DURATION)?))
    }

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }
}

/// A Go duration above zero: intervals and timeouts that would otherwise
/// spin or fail every request.
pub(crate) mod nonzero_duration {
    use super::*;
    use std::time::Duration;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        read(d, |v| match parse_duration(&string(v, EXPECT_DURATION)?)? {
            d if d.is_zero() => Err(EXPECT_NONZERO_DURATION),
            d => Ok(d),
        })
    }

    pub(crate) use super::duration::serialize;
}

/// A Go duration above zero that may be left unset. Fields using it
/// need `skip_serializing_if = "Option::is_none"`.
pub(crate) mod opt_nonzero_duration {
    use super::*;
    use std::time::Duration;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        super::nonzero_duration::deserialize(d).map(Some)
    }

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format_duration(*d)),
            None => s.serialize_none(),
        }
    }
}

/// `true` or `false`, or left unset. Fields using it need
/// `skip_serializing_if = "Option::is_none"`.
pub(crate) mod opt_flag {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        super::flag::deserialize(d).map(Some)
    }

    pub(crate) fn serialize<S: Serializer>(b: &Option<bool>, s: S) -> Result<S::Ok, S::Error> {
        match b {
            Some(b) => s.serialize_bool(*b),
            None => s.serialize_none(),
        }
    }
}

/// A non-empty string.
pub(crate) mod name {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        read(d, |v| match string(v, EXPECT_STRING)? {
            s if s.is_empty() => Err("expected a non-empty string"),
            s => Ok(s),
        })
    }

    pub(crate) fn serialize<S: Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v)
    }
}

/// A string that may be left unset; "" also means unset. Fields using it
/// need `skip_serializing_if = "Option::is_none"`.
pub(crate) mod opt_text {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        read(d, |v| {
            string(v, EXPECT_STRING).map(|s| Some(s).filter(|s| !s.is_empty()))
        })
    }

    pub(crate) fn serialize<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(text) => s.serialize_str(text),
            None => s.serialize_none(),
        }
    }
}

/// Like `opt_text`, but never shown: a token.
pub(crate) mod secret {
    use super::*;

    pub(crate) use super::opt_text::deserialize;

    pub(crate) fn serialize<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(_) => s.serialize_str(REDACTED),
            None => s.serialize_none(),
        }
    }
}

/// "host:port", kept as written so the server binds what was asked.
pub(crate) mod listen {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        read(d, |v| check_listen(&string(v, EXPECT_LISTEN)?))
    }

    pub(crate) use super::name::serialize;
}

/// An http(s) URL; shown with its query values and password redacted.
pub(crate) mod http_url {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        read(d, |v| {
            let s = string(v, EXPECT_URL)?;
            parse_http_url(&s)?;
            Ok::<_, &str>(s)
        })
    }

    pub(crate) fn serialize<S: Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&redact_url(v))
    }
}

/// A URL path, normalised like the Pushgateway's --web.route-prefix.
pub(crate) mod route_prefix {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        read(d, |v| {
            normalize_route_prefix(&string(v, EXPECT_ROUTE_PREFIX)?)
        })
    }

    pub(crate) use super::name::serialize;
}

/// A table of HTTP header names to values; values are never shown. Fields
/// using it need `skip_serializing_if = "BTreeMap::is_empty"`.
pub(crate) mod headers {
    use super::*;
    use serde::ser::SerializeMap;
    use std::collections::BTreeMap;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, String>, D::Error> {
        read(d, |v| {
            let toml::Value::Table(t) = v else {
                return Err(EXPECT_HEADERS);
            };
            t.into_iter()
                .map(|(k, v)| Ok((k, string(v, EXPECT_HEADERS)?)))
                .collect()
        })
    }

    pub(crate) fn serialize<S: Serializer>(
        v: &BTreeMap<String, String>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(v.len()))?;
        for name in v.keys() {
            map.serialize_entry(name, REDACTED)?;
        }
        map.end()
    }
}

/// A rate: a TOML integer or float, finite and not negative.
pub(crate) mod rate {
    use super::*;

    pub(crate) const EXPECT_RATE: &str =
        "expected a number of requests per second, 0 for no limit, such as 20 or 0.5";

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        read(d, |v| {
            let n = match v {
                toml::Value::Integer(n) => n as f64,
                toml::Value::Float(f) => f,
                _ => return Err(EXPECT_RATE),
            };
            if n.is_finite() && n >= 0.0 {
                Ok(n)
            } else {
                Err(EXPECT_RATE)
            }
        })
    }

    pub(crate) fn serialize<S: Serializer>(n: &f64, s: S) -> Result<S::Ok, S::Error> {
        if n.fract() == 0.0 && n.abs() < 1e15 {
            s.serialize_i64(*n as i64)
        } else {
            s.serialize_f64(*n)
        }
    }
}

/// An array of strings, each checked by `check`; written as an array.
fn strings<T>(
    v: toml::Value,
    expected: &'static str,
    check: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, String> {
    let toml::Value::Array(items) = v else {
        return Err(expected.to_string());
    };
    items
        .into_iter()
        .map(|item| match item {
            toml::Value::String(s) => {
                check(&s).ok_or_else(|| format!("{} in {expected}", quote(&s)))
            }
            _ => Err(expected.to_string()),
        })
        .collect()
}

/// Networks in CIDR notation ("10.0.0.0/8", "fd00::/8"); a bare address
/// is the network of that one address.
pub(crate) mod cidrs {
    use super::*;
    use crate::config::value::{parse_cidr, Cidr};

    pub(crate) const EXPECT_CIDRS: &str =
        r#"expected an array of networks such as ["10.0.0.0/8", "fd00::/8", "127.0.0.1"]"#;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Cidr>, D::Error> {
        read(d, |v| strings(v, EXPECT_CIDRS, parse_cidr))
    }

    pub(crate) fn serialize<S: Serializer>(v: &[Cidr], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(Cidr::to_string))
    }
}

/// An array of words of a `Choice`, each at most once.
pub(crate) mod choices {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>, T: Choice>(
        d: D,
    ) -> Result<Vec<T>, D::Error> {
        read(d, |v| {
            let expected = format!(
                "expected an array of {}",
                T::expected().trim_start_matches("expected ")
            );
            let toml::Value::Array(items) = v else {
                return Err(expected);
            };
            let mut out: Vec<T> = Vec::new();
            for item in items {
                let found = item
                    .as_str()
                    .and_then(|s| T::CHOICES.iter().find(|(w, _)| *w == s).map(|(_, c)| *c))
                    .ok_or_else(|| expected.clone())?;
                if !out.contains(&found) {
                    out.push(found);
                }
            }
            Ok(out)
        })
    }

    pub(crate) fn serialize<S: Serializer, T: Choice>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|c| c.word()))
    }
}

/// A table of user names to bcrypt hashes, as Prometheus' web config has
/// them; the hashes are never shown. Fields using it need
/// `skip_serializing_if = "BTreeMap::is_empty"`.
pub(crate) mod bcrypt_users {
    use super::*;
    use crate::config::value::is_bcrypt_hash;
    use std::collections::BTreeMap;

    pub(crate) const EXPECT_USERS: &str = r#"expected a table of user names to bcrypt hashes such as { alice = "$2y$10$..." } (make one with `htpasswd -nBC 10 alice`)"#;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, String>, D::Error> {
        read(d, |v| {
            let toml::Value::Table(t) = v else {
                return Err(EXPECT_USERS.to_string());
            };
            t.into_iter()
                .map(|(user, hash)| match hash {
                    toml::Value::String(h)
                        if is_bcrypt_hash(&h) && !user.is_empty() && !user.contains(':') =>
                    {
                        Ok((user, h))
                    }
                    _ => Err(format!("user {}: {EXPECT_USERS}", quote(&user))),
                })
                .collect()
        })
    }

    // Names shown, hashes never: as a sink's headers are.
    pub(crate) use super::headers::serialize;
}

/// A closed set of words, for the enums of the typed sections.
pub(crate) trait Choice: Copy + PartialEq + 'static {
    /// Every value and how it is written, the default first.
    const CHOICES: &'static [(&'static str, Self)];

    fn word(self) -> &'static str {
        Self::CHOICES
            .iter()
            .find(|(_, c)| *c == self)
            .map(|(w, _)| *w)
            .expect("CHOICES lists every value")
    }

    /// `expected "a", "b" or "c"`.
    fn expected() -> String {
        let words: Vec<String> = Self::CHOICES.iter().map(|(w, _)| quote(w)).collect();
        match words.split_last() {
            Some((last, [])) => format!("expected {last}"),
            Some((last, rest)) => format!("expected {} or {last}", rest.join(", ")),
            None => "expected nothing".to_string(),
        }
    }
}

/// Serde glue for a `Choice` field.
pub(crate) mod choice {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>, T: Choice>(d: D) -> Result<T, D::Error> {
        read(d, |v| {
            let found = v
                .as_str()
                .and_then(|s| T::CHOICES.iter().find(|(w, _)| *w == s).map(|(_, c)| *c));
            found.ok_or_else(T::expected)
        })
    }

    pub(crate) fn serialize<S: Serializer, T: Choice>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.word())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::de::{value_de, DeError, DeErrorKind};
    use std::time::Duration;

    /// What helper `$module::deserialize` makes of the TOML value `$text`.
    macro_rules! field {
        ($module:ident, $text:expr) => {{
            let table: toml::Table = format!("v = {}", $text).parse().unwrap();
            $module::deserialize(value_de(&table["v"])).map_err(|e: DeError| match e.kind {
                DeErrorKind::Expected(e) => e,
                other => panic!("{other:?}"),
            })
        }};
    }

    #[test]
    fn file_types_are_strict() {
        assert_eq!(field!(flag, "false"), Ok(false));
        assert_eq!(field!(flag, "\"true\""), Err(EXPECT_BOOL.into()));
        assert_eq!(field!(name, "1"), Err(EXPECT_STRING.into()));
        assert_eq!(
            field!(name, "\"\""),
            Err("expected a non-empty string".into())
        );
        assert_eq!(field!(duration, "10"), Err(EXPECT_DURATION.into()));
        assert_eq!(field!(duration, "\"0\""), Ok(Duration::ZERO));
        assert_eq!(
            field!(nonzero_duration, "\"0s\""),
            Err(EXPECT_NONZERO_DURATION.into())
        );
        assert_eq!(
            field!(count, "\"10\""),
            Err("expected a TOML integer of at least 1, not a string".into())
        );
        assert_eq!(field!(count, "0"), Err(EXPECT_COUNT.into()));
        assert_eq!(field!(size, "1024"), Ok(1024));
        assert_eq!(field!(size, "\"1024\""), Ok(1024));
        assert_eq!(field!(size, "true"), Err(EXPECT_SIZE.into()));
        assert_eq!(field!(opt_text, "\"\""), Ok(None));
        assert_eq!(field!(opt_text, "\"x\""), Ok(Some("x".into())));
        assert_eq!(field!(headers, "{ a = 1 }"), Err(EXPECT_HEADERS.into()));
        assert_eq!(field!(headers, "[]"), Err(EXPECT_HEADERS.into()));
        assert_eq!(
            field!(headers, "{ a = \"b\" }"),
            Ok([("a".to_string(), "b".to_string())].into())
        );
    }

    #[test]
    fn sizes_serialize_to_what_they_read_from() {
        #[derive(serde::Serialize)]
        struct Size(#[serde(with = "size")] u64);
        for (bytes, shown) in [
            (16 << 20, toml::Value::String("16MiB".into())),
            (1000, toml::Value::Integer(1000)),
            (u64::MAX, toml::Value::String(u64::MAX.to_string())),
        ] {
            let value = toml::Value::try_from(Size(bytes)).unwrap();
            assert_eq!(value, shown);
            assert_eq!(field!(size, toml_text(&value)), Ok(bytes));
        }
    }

    fn toml_text(v: &toml::Value) -> String {
        match v {
            toml::Value::String(s) => quote(s),
            other => other.to_string(),
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Abc {
        A,
        B,
        C,
    }

    impl Choice for Abc {
        const CHOICES: &'static [(&'static str, Self)] =
            &[("a", Abc::A), ("b", Abc::B), ("c-c", Abc::C)];
    }

    #[test]
    fn choices() {
        let abc = |text: &str| -> Result<Abc, String> { field!(choice, text) };
        assert_eq!(abc("\"c-c\""), Ok(Abc::C));
        assert_eq!(abc("\"b\""), Ok(Abc::B));
        assert_eq!(
            abc("\"d\""),
            Err(r#"expected "a", "b" or "c-c""#.to_string())
        );
        assert_eq!(abc("1"), Err(Abc::expected()));
        assert_eq!(Abc::A.word(), "a");
    }
}
