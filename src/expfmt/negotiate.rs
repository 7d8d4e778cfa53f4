//! Content negotiation of `GET /metrics`: the format from `Accept`
//! ([`negotiate`]), the name escaping from its `escaping` parameter
//! ([`negotiate_escaping`]), and gzip from `Accept-Encoding`
//! ([`accepts_gzip`], [`gzip`]).

use std::io::Write as _;

use flate2::write::GzEncoder;
use flate2::Compression;

use crate::model::names::{escape_dots, escape_underscores, escape_values, NameKind};

/// A format `GET /metrics` can answer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpositionFormat {
    /// The text format, version 0.0.4.
    Text,
    /// Varint-length-delimited `io.prometheus.client.MetricFamily` messages.
    Delimited,
}

/// `Content-Type` of a text-format exposition.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `Content-Type` of a delimited-protobuf exposition.
pub const DELIMITED_CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

impl ExpositionFormat {
    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            ExpositionFormat::Text => TEXT_CONTENT_TYPE,
            ExpositionFormat::Delimited => DELIMITED_CONTENT_TYPE,
        }
    }
}

const PROTOBUF_MEDIA_TYPE: &str = "application/vnd.google.protobuf";
const PROTOBUF_PROTO: &str = "io.prometheus.client.MetricFamily";
const TEXT_VERSION: &str = "0.0.4";

/// How names that are not legacy Prometheus names are written, from the
/// `escaping` parameter of `Accept` (Prometheus' `expfmt`, as Pushgateway
/// 1.11 negotiates it). Only with `utf8_names` can the store hold such
/// names; without it pushkit answers as 1.5.1 did and escapes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NameEscaping {
    /// Names as they are: `utf8_names` off, nothing to escape.
    #[default]
    AsStored,
    /// `escaping=allow-utf-8`: names as they are, quoted in text where
    /// they are not legacy names.
    AllowUtf8,
    /// `escaping=underscores`, the default: see `names::escape_underscores`.
    Underscores,
    /// `escaping=dots`.
    Dots,
    /// `escaping=values`: the `U__` form.
    Values,
}

impl NameEscaping {
    /// The `escaping` parameter's value, as `Content-Type` names it.
    pub fn as_param(self) -> Option<&'static str> {
        match self {
            NameEscaping::AsStored => None,
            NameEscaping::AllowUtf8 => Some("allow-utf-8"),
            NameEscaping::Underscores => Some("underscores"),
            NameEscaping::Dots => Some("dots"),
            NameEscaping::Values => Some("values"),
        }
    }

    /// True when names are rewritten (escaped or quoted) on the way out.
    pub fn rewrites(self) -> bool {
        self != NameEscaping::AsStored
    }

    /// A name of `kind` as this escaping writes it (quoting, for
    /// `AllowUtf8`, is the text writer's).
    pub fn name(self, name: &str, kind: NameKind) -> std::borrow::Cow<'_, str> {
        match self {
            NameEscaping::AsStored | NameEscaping::AllowUtf8 => name.into(),
            NameEscaping::Underscores => escape_underscores(name, kind),
            NameEscaping::Dots => escape_dots(name, kind),
            NameEscaping::Values => escape_values(name, kind),
        }
    }

    fn from_param(value: &str) -> Option<NameEscaping> {
        // Case-sensitive, as in Go; an unknown value is ignored.
        match value {
            "allow-utf-8" => Some(NameEscaping::AllowUtf8),
            "underscores" => Some(NameEscaping::Underscores),
            "dots" => Some(NameEscaping::Dots),
            "values" => Some(NameEscaping::Values),
            _ => None,
        }
    }
}

/// Chooses the format from an Accept header as Go's `expfmt.Negotiate` does:
/// delimited protobuf when a media range `application/vnd.google.protobuf`
/// with `proto=io.prometheus.client.MetricFamily` and `encoding=delimited` is
/// accepted, text otherwise (a missing or garbled header, `*/*`, OpenMetrics
/// requests: OpenMetrics is not spoken here).
///
/// Unlike Go, which walks the ranges by falling q but ignores q=0, a range
/// with q=0 (or an unparsable q, which Go reads as 0) is not acceptable.
/// Of the acceptable ranges that name delimited protobuf or
/// `text/plain` (version 0.0.4 or none), the one with the highest q wins;
/// on a tie, the first in the header.
pub fn negotiate(accept: Option<&str>) -> ExpositionFormat {
    negotiate_with_escaping(accept).0
}

/// [`negotiate`], and the name escaping as Go's `Negotiate` finds it:
/// `underscores` unless a range walked before (or at) the chosen one, by
/// falling q, names a known `escaping`; the last such wins, and it carries
/// over to later ranges.
pub fn negotiate_with_escaping(accept: Option<&str>) -> (ExpositionFormat, NameEscaping) {
    let Some(accept) = accept else {
        return (ExpositionFormat::Text, NameEscaping::Underscores);
    };
    let mut ranges: Vec<(f64, Option<ExpositionFormat>, Option<NameEscaping>)> = Vec::new();
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("");
        let Some((ty, subtype)) = media.split_once('/') else {
            continue;
        };
        let media_is = |want: &str| {
            let (want_ty, want_sub) = want.split_once('/').expect("a media type has a slash");
            ty.trim().eq_ignore_ascii_case(want_ty) && subtype.trim().eq_ignore_ascii_case(want_sub)
        };
        let mut q = 1.0;
        let mut proto = None;
        let mut encoding = None;
        let mut version = None;
        let mut escaping = None;
        for param in parts {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            let key = key.trim();
            let value = unquote(value.trim());
            if key.eq_ignore_ascii_case("q") {
                q = parse_q(value);
            } else if key.eq_ignore_ascii_case("proto") {
                proto = Some(value);
            } else if key.eq_ignore_ascii_case("encoding") {
                encoding = Some(value);
            } else if key.eq_ignore_ascii_case("version") {
                version = Some(value);
            } else if key.eq_ignore_ascii_case("escaping") {
                escaping = NameEscaping::from_param(value);
            }
        }
        let format = if media_is(PROTOBUF_MEDIA_TYPE)
            && proto == Some(PROTOBUF_PROTO)
            && encoding.is_some_and(|e| e.eq_ignore_ascii_case("delimited"))
        {
            Some(ExpositionFormat::Delimited)
        } else if media_is("text/plain")
            && version.is_none_or(|v| v.is_empty() || v == TEXT_VERSION)
        {
            Some(ExpositionFormat::Text)
        } else {
            None
        };
        ranges.push((q, format.filter(|_| q > 0.0), escaping));
    }
    // By falling q; a stable sort keeps header order on a tie.
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut escaping = NameEscaping::Underscores;
    for (_, format, named) in ranges {
        if let Some(e) = named {
            escaping = e;
        }
        if let Some(format) = format {
            return (format, escaping);
        }
    }
    (ExpositionFormat::Text, escaping)
}

/// True when Accept-Encoding allows gzip: a `gzip` (or `x-gzip`) coding with
/// q > 0, or else `*` with q > 0. An explicit `gzip;q=0` refuses gzip even
/// when `*` is accepted. Case-insensitive.
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    let Some(header) = accept_encoding else {
        return false;
    };
    let mut gzip_q: Option<f64> = None;
    let mut any_q: Option<f64> = None;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let mut q = 1.0;
        for param in parts {
            if let Some((key, value)) = param.split_once('=') {
                if key.trim().eq_ignore_ascii_case("q") {
                    q = parse_q(value.trim());
                }
            }
        }
        let slot = if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            &mut gzip_q
        } else if coding == "*" {
            &mut any_q
        } else {
            continue;
        };
        *slot = Some(slot.map_or(q, |old| old.max(q)));
    }
    gzip_q.or(any_q).is_some_and(|q| q > 0.0)
}

/// A q-value; an unparsable one counts as 0 (Go's `ParseFloat` error value).
fn parse_q(value: &str) -> f64 {
    value
        .parse::<f64>()
        .ok()
        .filter(|q| !q.is_nan())
        .unwrap_or(0.0)
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// Gzips `bytes` at the fast compression level (this is on the scrape path).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4 + 64),
        Compression::fast(),
    );
    encoder
        .write_all(bytes)
        .expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_as_go_negotiates_it() {
        let e = |accept: Option<&str>| negotiate_with_escaping(accept);
        use ExpositionFormat::{Delimited, Text};
        use NameEscaping::*;
        assert_eq!(e(None), (Text, Underscores));
        assert_eq!(e(Some("*/*")), (Text, Underscores));
        assert_eq!(e(Some("text/plain;version=0.0.4")), (Text, Underscores));
        assert_eq!(
            e(Some("text/plain;version=0.0.4;escaping=allow-utf-8")),
            (Text, AllowUtf8)
        );
        let proto = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";
        assert_eq!(
            e(Some(&format!("{proto};escaping=values"))),
            (Delimited, Values)
        );
        assert_eq!(e(Some("text/plain;escaping=bogus")), (Text, Underscores));
        assert_eq!(
            e(Some("text/plain;escaping=ALLOW-UTF-8")),
            (Text, Underscores)
        );
        // Carried over from a range that is not served.
        assert_eq!(
            e(Some(
                "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8"
            )),
            (Text, AllowUtf8)
        );
        assert_eq!(
            e(Some("application/json;escaping=values, text/plain;q=0.5")),
            (Text, Values)
        );
        // A lower q is walked after the chosen range: its escaping is not.
        assert_eq!(
            e(Some(&format!(
                "text/plain;escaping=allow-utf-8;q=0.2, {proto};q=0.9"
            ))),
            (Delimited, Underscores)
        );
        assert_eq!(NameEscaping::Dots.as_param(), Some("dots"));
    }

    #[test]
    fn negotiate_formats() {
        use ExpositionFormat::{Delimited, Text};
        let cases: &[(Option<&str>, ExpositionFormat)] = &[
            (None, Text),
            (Some(""), Text),
            (Some("garbage;;,,==/"), Text),
            (Some("*/*"), Text),
            (Some("text/plain"), Text),
            (Some("text/plain;version=0.0.4"), Text),
            // Prometheus 2.x with protobuf scraping enabled.
            (
                Some(
                    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
                     encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.1",
                ),
                Delimited,
            ),
            // Prometheus 2.x default: OpenMetrics first.
            (
                Some(
                    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                     version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                ),
                Text,
            ),
            (Some("application/openmetrics-text;version=1.0.0"), Text),
            (
                Some(
                    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
                     encoding=delimited",
                ),
                Delimited,
            ),
            (
                Some(
                    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; \
                     encoding=delimited; escaping=allow-utf-8; q=0.9, text/plain; q=0.5",
                ),
                Delimited,
            ),
            // Not acceptable at q=0.
            (
                Some(
                    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
                     encoding=delimited;q=0",
                ),
                Text,
            ),
            (
                Some(
                    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
                     encoding=delimited;q=0,text/plain;q=0.1",
                ),
                Text,
            ),
            // Text preferred by q.
            (
                Some(
                    "text/plain;version=0.0.4;q=0.9,application/vnd.google.protobuf;\
                     proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5",
                ),
                Text,
            ),
            // An unknown text version does not count: protobuf is the best.
            (
                Some(
                    "text/plain;version=9.9.9,application/vnd.google.protobuf;\
                     proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5",
                ),
                Delimited,
            ),
            // Protobuf text encodings and other messages are not spoken.
            (
                Some(
                    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
                     encoding=text",
                ),
                Text,
            ),
            (
                Some("application/vnd.google.protobuf;proto=other.Message;encoding=delimited"),
                Text,
            ),
            (Some("application/vnd.google.protobuf"), Text),
        ];
        for &(accept, want) in cases {
            assert_eq!(negotiate(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn gzip_acceptance() {
        let cases: &[(Option<&str>, bool)] = &[
            (Some("gzip"), true),
            (Some("gzip, deflate"), true),
            (Some("deflate, br;q=1.0, GZip;q=0.5"), true),
            (Some("deflate"), false),
            (Some("gzip;q=0"), false),
            (Some("gzip; q=0.0, deflate"), false),
            (Some("*"), true),
            (Some("*;q=0"), false),
            (Some("gzip;q=0, *"), false),
            (Some("deflate, *;q=0.1"), true),
            (Some("x-gzip"), true),
            (Some(""), false),
            (None, false),
        ];
        for &(header, want) in cases {
            assert_eq!(accepts_gzip(header), want, "{header:?}");
        }
    }

    #[test]
    fn gzip_round_trip() {
        use std::io::Read;
        let body = "# TYPE m counter\nm{a=\"1\"} 2\n".repeat(200);
        let zipped = gzip(body.as_bytes());
        assert!(zipped.len() < body.len());
        let mut unzipped = String::new();
        flate2::read::GzDecoder::new(&zipped[..])
            .read_to_string(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, body);
    }
}
