//! The delimited protobuf format: a sequence of `MetricFamily` messages, each
//! preceded by its length as a varint, as Go's `pbutil.WriteDelimited` writes
//! it and client_golang's push sends it (`Content-Type:
//! application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily;
//! encoding=delimited`).
//!
//! Stricter than Pushgateway 1.5.1 on purpose: Go stops silently at a length
//! prefix cut short or followed by nothing, and lets a later family of the
//! same name replace an earlier one; both are errors here.

use std::collections::HashSet;

use prost::Message;

use super::expose::encode_delimited_family;
use super::proto::{family_from_proto_names, MetricFamily};
use super::ParseError;
use crate::model::family::Family;

/// Longest length prefix accepted, in bytes: Go's `pbutil.ReadDelimited`
/// reads at most `binary.MaxVarintLen32` bytes of varint.
const MAX_PREFIX_LEN: usize = 5;

/// Parses a body of varint-length-prefixed `MetricFamily` messages into
/// validated families (see [`family_from_proto`]), in body order. Families
/// without metrics are left out, as the text parser leaves them out. An empty
/// body gives no families.
pub fn parse_delimited(body: &[u8]) -> Result<Vec<Family>, ParseError> {
    parse_delimited_names(body, false)
}

/// [`parse_delimited`], taking any UTF-8 metric and label name when
/// `utf8` (`utf8_names`).
pub fn parse_delimited_names(body: &[u8], utf8: bool) -> Result<Vec<Family>, ParseError> {
    let mut families = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut pos = 0;
    let mut index = 0;
    while pos < body.len() {
        index += 1;
        let (len, prefix_len) = read_prefix(&body[pos..]).map_err(|what| {
            ParseError::protobuf(format!(
                "message {index} at byte {pos}: length prefix {what}"
            ))
        })?;
        pos += prefix_len;
        let left = body.len() - pos;
        if len > left as u64 {
            return Err(ParseError::protobuf(format!(
                "message {index} at byte {pos}: truncated message: length prefix says {len} bytes, \
                 only {left} left"
            )));
        }
        let end = pos + len as usize;
        let mf = MetricFamily::decode(&body[pos..end])
            .map_err(|e| ParseError::protobuf(format!("message {index} at byte {pos}: {e}")))?;
        pos = end;
        let family = family_from_proto_names(mf, utf8)?;
        if !seen.insert(family.name.clone()) {
            return Err(ParseError::protobuf(format!(
                "metric family {:?} appears twice",
                family.name
            ))
            .as_duplicate_family());
        }
        // As in the text format, a family without metrics is left out.
        if !family.metrics.is_empty() {
            families.push(family);
        }
    }
    Ok(families)
}

const OVERSIZE: &str = "is oversize (a varint of more than 5 bytes)";

/// Reads a varint length prefix: `(length, bytes used)`, or what is wrong.
fn read_prefix(buf: &[u8]) -> Result<(u64, usize), &'static str> {
    let mut value = 0u64;
    for (i, &b) in buf.iter().enumerate() {
        if i == MAX_PREFIX_LEN {
            return Err(OVERSIZE);
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    if buf.len() >= MAX_PREFIX_LEN {
        Err(OVERSIZE)
    } else {
        Err("is truncated")
    }
}

/// Appends `families` to `out` in the delimited format: the bytes prost
/// writes for [`family_to_proto`](super::proto::family_to_proto) of each, encoded straight from the model
/// (the store's journal writes every push through here, and building the
/// message structs cloned every label).
pub fn write_delimited(families: &[Family], out: &mut Vec<u8>) {
    let mut scratch = Vec::new();
    for f in families {
        encode_delimited_family(
            out,
            &mut scratch,
            &f.name,
            f.help.as_deref(),
            f.kind,
            f.metrics.iter(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::proto::{self, LabelPair};
    use super::*;
    use crate::model::family::{Histogram, Metric, MetricType, Summary, Value};

    fn families() -> Vec<Family> {
        vec![
            Family {
                name: "a".into(),
                help: Some("Help of a.".into()),
                kind: MetricType::Counter,
                metrics: vec![
                    Metric {
                        labels: vec![("x".into(), "1".into())],
                        value: Value::Simple(1.0),
                        timestamp_ms: None,
                        exemplar: None,
                    },
                    Metric {
                        labels: vec![("x".into(), "2".into())],
                        value: Value::Simple(2.0),
                        timestamp_ms: Some(99),
                        exemplar: None,
                    },
                ],
            },
            Family {
                name: "s".into(),
                help: None,
                kind: MetricType::Summary,
                metrics: vec![Metric {
                    labels: vec![],
                    value: Value::Summary(Summary {
                        sample_count: 3.0,
                        sample_sum: 4.5,
                        quantiles: vec![(0.5, 1.0)],
                    }),
                    timestamp_ms: None,
                    exemplar: None,
                }],
            },
            Family {
                name: "h".into(),
                help: None,
                kind: MetricType::Histogram,
                metrics: vec![Metric {
                    labels: vec![("le_not".into(), "x".into())],
                    value: Value::Histogram(Histogram {
                        sample_count: 2.0,
                        sample_sum: 0.5,
                        buckets: vec![(0.25, 1.0), (1.0, 2.0)],
                        native: None,
                        exemplars: None,
                    }),
                    timestamp_ms: None,
                    exemplar: None,
                }],
            },
        ]
    }

    fn encoded(families: &[Family]) -> Vec<u8> {
        let mut out = Vec::new();
        write_delimited(families, &mut out);
        out
    }

    fn proto_message(name: &str) -> Vec<u8> {
        proto::MetricFamily {
            name: Some(name.into()),
            help: None,
            r#type: Some(proto::MetricType::Gauge as i32),
            metric: vec![proto::Metric {
                label: vec![LabelPair {
                    name: Some("l".into()),
                    value: Some("v".into()),
                }],
                gauge: Some(proto::Gauge { value: Some(1.0) }),
                ..proto::Metric::default()
            }],
            unit: None,
        }
        .encode_length_delimited_to_vec()
    }

    fn err_message(body: &[u8]) -> String {
        let e = parse_delimited(body).unwrap_err();
        assert_eq!(e.line, None);
        e.message
    }

    #[test]
    fn writes_what_prost_writes_for_the_messages() {
        let mut fams = families();
        fams.push(Family {
            name: "float_counts".into(),
            help: Some(String::new()),
            kind: MetricType::GaugeHistogram,
            metrics: vec![Metric {
                labels: vec![("a".into(), "é".into()), ("b".into(), "".into())],
                value: Value::Histogram(Histogram {
                    sample_count: 2.5,
                    sample_sum: f64::NAN,
                    buckets: vec![(f64::NEG_INFINITY, 1.5), (f64::INFINITY, 2.5)],
                    native: None,
                    exemplars: None,
                }),
                timestamp_ms: Some(-5),
                exemplar: None,
            }],
        });
        fams.push(Family {
            name: "u".into(),
            help: None,
            kind: MetricType::Untyped,
            metrics: vec![Metric {
                labels: vec![],
                value: Value::Simple(-0.0),
                timestamp_ms: None,
                exemplar: None,
            }],
        });
        fams.push(Family {
            name: "empty".into(),
            help: None,
            kind: MetricType::Gauge,
            metrics: vec![],
        });
        let mut want = Vec::new();
        for f in &fams {
            proto::family_to_proto(f)
                .encode_length_delimited(&mut want)
                .unwrap();
        }
        assert_eq!(encoded(&fams), want);
    }

    #[test]
    fn round_trip() {
        let fams = families();
        let body = encoded(&fams);
        assert_eq!(parse_delimited(&body).unwrap(), fams);
    }

    #[test]
    fn empty_body() {
        assert!(parse_delimited(b"").unwrap().is_empty());
        let mut out = vec![7];
        write_delimited(&[], &mut out);
        assert_eq!(out, vec![7]);
    }

    #[test]
    fn appends_to_out() {
        let fams = families();
        let mut out = encoded(&fams[..1]);
        write_delimited(&fams[1..], &mut out);
        assert_eq!(out, encoded(&fams));
    }

    #[test]
    fn length_prefix_is_a_varint() {
        // A message longer than 127 bytes needs a two-byte prefix.
        let fam = Family {
            name: "long".into(),
            help: Some("x".repeat(300)),
            kind: MetricType::Gauge,
            metrics: vec![Metric {
                labels: vec![],
                value: Value::Simple(0.0),
                timestamp_ms: None,
                exemplar: None,
            }],
        };
        let body = encoded(std::slice::from_ref(&fam));
        assert!(body[0] & 0x80 != 0);
        assert_eq!(parse_delimited(&body).unwrap(), vec![fam]);
    }

    #[test]
    fn truncated_message() {
        let fams = families();
        let body = encoded(&fams);
        let first = encoded(&fams[..1]).len();
        for cut in [1, first + 1, first + 3, body.len() - 1] {
            let msg = err_message(&body[..cut]);
            assert!(msg.contains("truncated"), "cut at {cut}: {msg}");
        }
        // A prefix and nothing after it.
        assert!(err_message(&[5]).contains("truncated message"));
    }

    #[test]
    fn truncated_prefix() {
        let mut body = proto_message("a");
        body.push(0x80); // a varint that never ends
        let msg = err_message(&body);
        assert!(msg.contains("message 2"), "{msg}");
        assert!(msg.contains("length prefix is truncated"), "{msg}");
    }

    #[test]
    fn oversize_prefix() {
        let msg = err_message(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(msg.contains("oversize"), "{msg}");
        let msg = err_message(&[0xff, 0xff, 0xff, 0xff, 0xff]);
        assert!(msg.contains("oversize"), "{msg}");
        // Five bytes are allowed, but this length exceeds the body.
        let msg = err_message(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0x00]);
        assert!(msg.contains("truncated message"), "{msg}");
    }

    #[test]
    fn bad_protobuf() {
        // Field 1 (name) as a length-delimited string running past the end.
        let msg = err_message(&[0x03, 0x0a, 0x05, b'a']);
        assert!(msg.contains("message 1"), "{msg}");
        // Invalid UTF-8 in the name.
        let msg = err_message(&[0x03, 0x0a, 0x01, 0xff]);
        assert!(msg.contains("message 1"), "{msg}");
        // Wire type 7 does not exist.
        let mut body = proto_message("a");
        body.extend_from_slice(&[0x01, 0x0f]);
        let msg = err_message(&body);
        assert!(msg.contains("message 2"), "{msg}");
    }

    #[test]
    fn invalid_family_is_an_error() {
        // A zero-length message is a family without a name.
        let msg = err_message(&[0x00]);
        assert!(msg.contains("without a name"), "{msg}");
        let msg = err_message(&proto_message("bad-name"));
        assert!(msg.contains("invalid metric name"), "{msg}");
    }

    #[test]
    fn families_without_metrics_are_dropped() {
        let mut body = proto::MetricFamily {
            name: Some("empty".into()),
            ..proto::MetricFamily::default()
        }
        .encode_length_delimited_to_vec();
        body.extend(proto_message("x"));
        let fams = parse_delimited(&body).unwrap();
        assert_eq!(fams.len(), 1);
        assert_eq!(fams[0].name, "x");
    }

    #[test]
    fn duplicate_family() {
        let mut body = proto_message("x");
        body.extend(proto_message("y"));
        body.extend(proto_message("x"));
        let e = parse_delimited(&body).unwrap_err();
        assert_eq!(e.message, "metric family \"x\" appears twice");
        assert_eq!(
            e.to_string(),
            "invalid protobuf: metric family \"x\" appears twice"
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        // Field 15 (varint) is not in MetricFamily; proto2 parsers skip it.
        let mut msg = proto::MetricFamily {
            name: Some("x".into()),
            metric: vec![proto::Metric {
                counter: Some(proto::Counter::default()),
                ..proto::Metric::default()
            }],
            ..proto::MetricFamily::default()
        }
        .encode_to_vec();
        msg.extend_from_slice(&[0x78, 0x01]);
        let mut body = vec![msg.len() as u8];
        body.extend(msg);
        let fams = parse_delimited(&body).unwrap();
        assert_eq!(fams[0].name, "x");
        assert_eq!(fams[0].kind, MetricType::Counter);
    }
}
