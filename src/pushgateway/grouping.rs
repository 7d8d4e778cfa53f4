//! The grouping key: the label set a push names in its URL path,
//! `/metrics/job/<job>{/<name>/<value>}`, with `@base64` values, as the
//! Prometheus Pushgateway reads it.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use std::borrow::Cow;

use crate::model::names::{is_valid_label_name_with, unescape_values};
use crate::model::GroupingKey;

/// Why a grouping key could not be read from a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupingError {
    JobNameRequired,
    OddComponents,
    InvalidLabelName(String),
    InvalidBase64 {
        label: String,
        value: String,
    },
    /// A path segment does not percent-decode to UTF-8.
    InvalidPath,
}

impl std::fmt::Display for GroupingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupingError::JobNameRequired => write!(f, "job name is required"),
            GroupingError::OddComponents => write!(
                f,
                "odd number of components in label string: labels must come as /<name>/<value> pairs"
            ),
            GroupingError::InvalidLabelName(name) => write!(
                f,
                "improper label name {name:?}: must match [a-zA-Z_][a-zA-Z0-9_]* (with utf8_names: any name, U__-escaped) and not start with \"__\""
            ),
            GroupingError::InvalidBase64 { label, value } => write!(
                f,
                "invalid base64 encoding in value {value:?} of label {label:?}"
            ),
            GroupingError::InvalidPath => {
                write!(f, "a path segment does not percent-decode to UTF-8")
            }
        }
    }
}

/// Go's URL-safe decoder without padding, which also takes non-zero trailing
/// bits; the crate's default engine would reject what Go clients send.
const GO_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// The grouping key of a push: `raw_rest` is the path after the input's
/// prefix, still percent-encoded. None when it is not a push path
/// (`/metrics/job/...` or `/metrics/job@base64/...`).
///
/// The path is split on `/` first and each segment percent-decoded on its
/// own, as RFC 3986 has it: `%2F` is a slash inside a value
/// (`/instance/a%2Fb` is `instance="a/b"`, as Node's `prom-client` sends
/// it). The Go Pushgateway decodes the whole path first and answers 400.
///
/// With `utf8` (`utf8_names`), a label name may be any UTF-8 name, sent in
/// the `U__` escaping of [`unescape_values`] (`U__foo_2e_bar` is
/// `foo.bar`), combinable with `@base64`; the job is never unescaped.
pub fn parse_push_path(raw_rest: &str, utf8: bool) -> Option<Result<GroupingKey, GroupingError>> {
    let mut segments = raw_rest.split('/');
    if segments.next() != Some("") || segments.next().and_then(decode).as_deref() != Some("metrics")
    {
        return None;
    }
    let job_base64 = match segments.next().and_then(decode).as_deref() {
        Some("job") => false,
        Some("job@base64") => true,
        _ => return None,
    };
    Some(grouping_key_from_segments(segments, job_base64, utf8))
}

/// A path segment percent-decoded, borrowed when it has no escape (nearly
/// every push); None for a malformed escape or a result that is not UTF-8.
fn decode(segment: &str) -> Option<Cow<'_, str>> {
    if segment.contains('%') {
        crate::http::percent_decode(segment).map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(segment))
    }
}

/// `<job>{/<name>/<value>}`, one raw segment each → grouping key.
fn grouping_key_from_segments<'a>(
    mut segments: impl Iterator<Item = &'a str>,
    job_base64: bool,
    utf8: bool,
) -> Result<GroupingKey, GroupingError> {
    let decode = |s: &'a str| decode(s).ok_or(GroupingError::InvalidPath);
    let job = segments.next().map(decode).transpose()?.unwrap_or_default();
    let mut labels: Vec<Cow<'a, str>> = segments.map(decode).collect::<Result<_, _>>()?;
    // As the Pushgateway splits them: a trailing "/" after pairs makes the
    // count odd, a lone "/" after the job means no labels.
    if labels.len() == 1 && labels[0].is_empty() {
        labels.clear();
    }
    let pairs: Vec<&str> = labels.iter().map(|l| l.as_ref()).collect();
    parse_grouping_key(&job, job_base64, &pairs, utf8)
}

/// Reads the grouping key from the path segments after `/metrics/job/`:
/// `segments[0]` is the job (or `job@base64` was matched by the caller and
/// `job_base64` is true), the rest are name/value pairs. The segments are
/// already percent-decoded. A `job` among the pairs is overridden by the
/// path's job. With `utf8`, label names are unescaped (see
/// [`parse_push_path`]); a name that is reserved (`__`) before or after is
/// refused.
pub fn parse_grouping_key(
    job: &str,
    job_base64: bool,
    pairs: &[&str],
    utf8: bool,
) -> Result<GroupingKey, GroupingError> {
    let job = if job_base64 {
        decode_base64("job", job)?
    } else {
        job.to_string()
    };
    if job.is_empty() {
        return Err(GroupingError::JobNameRequired);
    }
    if !pairs.len().is_multiple_of(2) {
        return Err(GroupingError::OddComponents);
    }
    let mut labels: Vec<(String, String)> = Vec::with_capacity(pairs.len() / 2 + 1);
    for pair in pairs.chunks(2) {
        let (raw_name, raw_value) = (pair[0], pair[1]);
        let (escaped, value) = match raw_name.strip_suffix("@base64") {
            Some(name) => (name, decode_base64(name, raw_value)?),
            None => (raw_name, raw_value.to_string()),
        };
        let name = if utf8 {
            unescape_values(escaped)
        } else {
            Cow::Borrowed(escaped)
        };
        let name = name.as_ref();
        if !is_valid_label_name_with(name, utf8)
            || escaped.starts_with("__")
            || name.starts_with("__")
        {
            return Err(GroupingError::InvalidLabelName(escaped.to_string()));
        }
        if name == "job" {
            continue;
        }
        // A later pair with the same name wins, as in a Go map.
        match labels.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value,
            None => labels.push((name.to_string(), value)),
        }
    }
    Ok(GroupingKey::new(job, labels))
}

/// Padding is optional: every trailing `=` is stripped first, so a lone `=`
/// is the empty value.
fn decode_base64(label: &str, value: &str) -> Result<String, GroupingError> {
    let bad = || GroupingError::InvalidBase64 {
        label: label.to_string(),
        value: value.to_string(),
    };
    let bytes = GO_URL_SAFE
        .decode(value.trim_end_matches('='))
        .map_err(|_| bad())?;
    String::from_utf8(bytes).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(job: &str, b64: bool, pairs: &[&str]) -> Result<Vec<(String, String)>, GroupingError> {
        parse_grouping_key(job, b64, pairs, false).map(|k| k.labels().to_vec())
    }

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn job_only() {
        assert_eq!(
            key("batch", false, &[]).unwrap(),
            owned(&[("job", "batch")])
        );
    }

    #[test]
    fn labels_sorted_and_order_independent() {
        let a = parse_grouping_key("j", false, &["zone", "a", "instance", "i1"], false).unwrap();
        let b = parse_grouping_key("j", false, &["instance", "i1", "zone", "a"], false).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a.labels(),
            owned(&[("job", "j"), ("instance", "i1"), ("zone", "a")])
        );
    }

    #[test]
    fn base64_values() {
        // "a/b" in URL-safe base64, with and without padding.
        assert_eq!(
            key("j", false, &["path@base64", "YS9i"]).unwrap(),
            owned(&[("job", "j"), ("path", "a/b")])
        );
        assert_eq!(
            key("j", false, &["x@base64", "YQ=="]).unwrap(),
            owned(&[("job", "j"), ("x", "a")])
        );
        assert_eq!(
            key("j", false, &["x@base64", "YQ"]).unwrap(),
            owned(&[("job", "j"), ("x", "a")])
        );
        // A lone "=" is the empty value.
        assert_eq!(
            key("j", false, &["x@base64", "="]).unwrap(),
            owned(&[("job", "j"), ("x", "")])
        );
        // URL-safe alphabet: "~~~" is "fn5-" (standard base64 would say "fn5+").
        assert_eq!(
            key("j", false, &["x@base64", "fn5-"]).unwrap(),
            owned(&[("job", "j"), ("x", "~~~")])
        );
        assert_eq!(
            key("Zm9vL2Jhcg", true, &[]).unwrap(),
            owned(&[("job", "foo/bar")])
        );
    }

    #[test]
    fn base64_accepts_nonzero_trailing_bits_like_go() {
        // "YR" has non-zero trailing bits; Go decodes it as "a".
        assert_eq!(
            key("j", false, &["x@base64", "YR"]).unwrap(),
            owned(&[("job", "j"), ("x", "a")])
        );
    }

    #[test]
    fn invalid_base64() {
        assert_eq!(
            key("j", false, &["x@base64", "!!"]),
            Err(GroupingError::InvalidBase64 {
                label: "x".into(),
                value: "!!".into()
            })
        );
        assert!(matches!(
            key("%%%", true, &[]),
            Err(GroupingError::InvalidBase64 { .. })
        ));
    }

    #[test]
    fn empty_job_is_required() {
        assert_eq!(key("", false, &[]), Err(GroupingError::JobNameRequired));
        assert_eq!(key("=", true, &[]), Err(GroupingError::JobNameRequired));
    }

    #[test]
    fn odd_components() {
        assert_eq!(key("j", false, &["a"]), Err(GroupingError::OddComponents));
        assert_eq!(
            key("j", false, &["a", "b", "c"]),
            Err(GroupingError::OddComponents)
        );
    }

    #[test]
    fn improper_label_names() {
        for name in ["1a", "a-b", "__x", "", "é"] {
            assert_eq!(
                key("j", false, &[name, "v"]),
                Err(GroupingError::InvalidLabelName(name.to_string())),
                "{name}"
            );
        }
        assert!(key("j", false, &["_a", "v"]).is_ok());
    }

    #[test]
    fn path_job_overrides_job_label() {
        assert_eq!(
            key("real", false, &["job", "fake", "a", "1"]).unwrap(),
            owned(&[("job", "real"), ("a", "1")])
        );
    }

    #[test]
    fn empty_label_value_is_kept() {
        assert_eq!(
            key("j", false, &["instance", ""]).unwrap(),
            owned(&[("job", "j"), ("instance", "")])
        );
    }

    fn path(rest: &str) -> Option<Result<Vec<(String, String)>, GroupingError>> {
        parse_push_path(rest, false).map(|r| r.map(|k| k.labels().to_vec()))
    }

    #[test]
    fn push_paths() {
        let ok = |rest| path(rest).unwrap().unwrap().len();
        assert_eq!(ok("/metrics/job/j"), 1);
        assert_eq!(ok("/metrics/job/j/"), 1);
        assert_eq!(ok("/metrics/job/j/a/b"), 2);
        assert_eq!(ok("/metrics/job@base64/ag"), 1);
        assert_eq!(
            path("/metrics/job/j%2Fk/instance/a%2Fb").unwrap().unwrap(),
            vec![
                ("job".into(), "j/k".into()),
                ("instance".into(), "a/b".into())
            ],
            "%2F is a slash inside a value"
        );
        assert_eq!(ok("/metrics/jo%62/j"), 1, "a name may be encoded too");
        assert_eq!(path("/metrics/job%2Fj"), None);
        assert_eq!(path("/metrics"), None);
        let err = |rest| path(rest).unwrap().unwrap_err();
        assert_eq!(err("/metrics/job/j/a/b/"), GroupingError::OddComponents);
        assert_eq!(err("/metrics/job/j/a"), GroupingError::OddComponents);
        assert_eq!(err("/metrics/job/"), GroupingError::JobNameRequired);
        assert_eq!(err("/metrics/job"), GroupingError::JobNameRequired);
        assert_eq!(err("/metrics/job//a/b"), GroupingError::JobNameRequired);
        assert_eq!(
            path("/metrics/job/j/a/").unwrap().unwrap(),
            vec![("job".into(), "j".into()), ("a".into(), "".into())]
        );
        assert!(matches!(
            err("/metrics/job/j/1a/x"),
            GroupingError::InvalidLabelName(_)
        ));
        assert!(matches!(
            err("/metrics/job/j/a@base64/!"),
            GroupingError::InvalidBase64 { .. }
        ));
        // Not push paths at all.
        assert!(path("/metrics").is_none());
        assert!(path("/metrics/jobs/j").is_none());
        assert!(path("/metrics/job@base6/j").is_none());
    }
}
