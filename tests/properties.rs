//! Property tests: what a client can send never panics the parsers, and
//! what pushkit exposes parses back to what was pushed.
//!
//! - The text parser, the delimited-protobuf decoder, the push-path parser
//!   and the body decoder (gzip, snappy) take arbitrary bytes and answer
//!   with a value or an error, never a panic.
//! - Families made of arbitrary names, labels (any UTF-8 in values) and
//!   values, written as the text exposition, parse back to themselves; so
//!   do they through delimited protobuf.
//! - Line protocol with commas, spaces, `=`, backslashes, quotes,
//!   newlines, NULs and non-ASCII in every name and value reads back, with
//!   each backend's own unescaping (InfluxDB's and VictoriaMetrics'), as
//!   exactly what was pushed or its documented replacement.

use proptest::prelude::*;
use pushkit::expfmt::expose::{ExpositionFormat, ExpositionWriter};
use pushkit::expfmt::{parse_delimited, parse_text};
use pushkit::model::family::{Family, LabelStr, Metric, MetricType, Value};
use pushkit::pushgateway::body::decode_content;
use pushkit::pushgateway::grouping::parse_push_path;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        ..ProptestConfig::default()
    }
}

/// Bytes that look like a text push more often than noise does.
fn texty() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        "(# (HELP|TYPE) [a-z_]{1,6} [a-z ]{0,12}\n|[a-z_:]{1,8}(\\{[a-z]{1,3}=\"[^\"\\n]{0,6}\"(,[a-z]{1,3}=\"[^\"\\n]{0,6}\"){0,2}\\})? -?[0-9.eE+]{1,8}( [0-9]{1,13})?\n){0,8}"
            .prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_text_parser_never_panics(body in texty()) {
        let _ = parse_text(&body);
    }

    #[test]
    fn the_protobuf_decoder_never_panics(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_delimited(&body);
    }

    #[test]
    fn the_push_path_parser_never_panics(
        path in "(/metrics/job(@base64)?(/[a-zA-Z0-9_@=%./ -]{0,10}){0,6}|[ -~]{0,40})",
        utf8 in any::<bool>(),
    ) {
        let _ = parse_push_path(&path, utf8);
    }

    #[test]
    fn the_body_decoder_never_panics(
        body in proptest::collection::vec(any::<u8>(), 0..300),
        encoding in prop_oneof![Just("gzip"), Just("snappy"), Just("identity"), Just("br")],
    ) {
        let _ = decode_content(Some(encoding), &body, 1 << 20);
    }

    #[test]
    fn text_exposition_parses_back(families in families()) {
        let mut w = ExpositionWriter::new(ExpositionFormat::Text);
        for f in &families {
            w.write_family(&f.name, f.help.as_deref(), f.kind, f.metrics.iter());
        }
        let text = w.finish();
        let back = parse_text(&text)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{}", String::from_utf8_lossy(&text))))?;
        prop_assert_eq!(canonical(back), canonical(families));
    }

    #[test]
    fn protobuf_exposition_parses_back(families in families()) {
        let mut w = ExpositionWriter::new(ExpositionFormat::Delimited);
        for f in &families {
            w.write_family(&f.name, f.help.as_deref(), f.kind, f.metrics.iter());
        }
        let back = parse_delimited(&w.finish()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(canonical(back), canonical(families));
    }
}

/// Gauges and counters with distinct names, each with distinct label
/// sets; any UTF-8 in label values and HELP, any finite value.
fn families() -> impl Strategy<Value = Vec<Family>> {
    let value = prop_oneof![any::<i32>().prop_map(f64::from), (-1e6f64..1e6), Just(0.5),];
    let metric = (
        proptest::collection::btree_map("[a-z][a-z0-9_]{0,5}", "\\PC{0,8}", 0..3),
        value,
    );
    let family = (
        prop_oneof![
            Just(MetricType::Gauge),
            Just(MetricType::Counter),
            Just(MetricType::Untyped)
        ],
        proptest::option::of("[ -~]{1,20}"),
        proptest::collection::vec(metric, 1..4),
    );
    proptest::collection::btree_map("[a-z][a-z0-9_]{0,8}", family, 1..4).prop_map(|families| {
        families
            .into_iter()
            .map(|(name, (kind, help, metrics))| {
                let mut seen = std::collections::BTreeSet::new();
                let metrics = metrics
                    .into_iter()
                    // One series per label set; `le`/`quantile` never appear.
                    .filter(|(labels, _)| seen.insert(labels.clone()))
                    .map(|(labels, v)| Metric {
                        labels: labels
                            .into_iter()
                            .map(|(k, v)| (LabelStr::from(k), LabelStr::from(v)))
                            .collect(),
                        value: Value::Simple(v),
                        timestamp_ms: None,
                        exemplar: None,
                    })
                    .collect();
                Family {
                    name,
                    help: help.map(|h| h.trim().to_string()).filter(|h| !h.is_empty()),
                    kind,
                    metrics,
                }
            })
            .collect()
    })
}

/// Families as comparable text: the parser keeps push order, and an
/// untyped family comes back untyped.
fn canonical(families: Vec<Family>) -> Vec<String> {
    families.iter().map(|f| format!("{f:?}")).collect()
}

// ---------------------------------------------------------------------------
// Line protocol, read back as each backend reads it

use pushkit::lineproto::{write_line, Dialect, LpDrops};

/// Names and values with the bytes line protocol escapes or replaces:
/// comma, space, `=`, backslash, quote, newline, carriage return, NUL, and
/// non-ASCII. A letter first, so that nothing is left empty.
fn lp_text() -> impl Strategy<Value = String> {
    (
        "[a-z]",
        proptest::collection::vec(
            prop_oneof![
                "[a-zA-Z0-9_]",
                Just(",".to_string()),
                Just(" ".to_string()),
                Just("=".to_string()),
                Just("\\".to_string()),
                Just("\"".to_string()),
                Just("\n".to_string()),
                Just("\r".to_string()),
                Just("\0".to_string()),
                Just("ü".to_string()),
            ],
            0..8,
        ),
    )
        .prop_map(|(first, rest)| format!("{first}{}", rest.concat()))
}

/// What a backend of `dialect` stores for `s`, as the README documents it:
/// a newline or carriage return becomes a space and a NUL is dropped; the
/// InfluxDB dialect also drops a run of backslashes before a byte it
/// escapes (`specials`) or at the end.
fn stored_as(s: &str, dialect: Dialect, specials: &[char]) -> String {
    let text: Vec<char> = s
        .chars()
        .filter(|&c| c != '\0')
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    if dialect == Dialect::VictoriaMetrics {
        return text.into_iter().collect();
    }
    let mut out = String::new();
    let mut i = 0;
    while i < text.len() {
        if text[i] == '\\' {
            let run = text[i..].iter().take_while(|&&c| c == '\\').count();
            let next = text.get(i + run);
            if next.is_some_and(|n| !specials.contains(n)) {
                out.extend(&text[i..i + run]);
            }
            i += run;
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

/// Reads one token up to an unescaped byte of `ends`, as InfluxDB and
/// VictoriaMetrics read line protocol: a backslash always hides the byte
/// after it; `\,`, `\ ` and `\=` (those in `unescape`) lose it, and so
/// does `\\` for VictoriaMetrics; every other backslash stays.
fn read_token<'a>(
    line: &'a str,
    ends: &[char],
    unescape: &[char],
    dialect: Dialect,
) -> (String, &'a str) {
    let mut out = String::new();
    let mut chars = line.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if ends.contains(&c) {
            return (out, &line[at..]);
        }
        if c == '\\' {
            match chars.peek() {
                Some(&(_, n))
                    if unescape.contains(&n)
                        || (n == '\\' && dialect == Dialect::VictoriaMetrics) =>
                {
                    out.push(n);
                    chars.next();
                }
                Some(&(_, n)) => {
                    out.push('\\');
                    out.push(n);
                    chars.next();
                }
                None => out.push('\\'),
            }
            continue;
        }
        out.push(c);
    }
    (out, "")
}

/// `measurement,k=v,... f=1 time` → (measurement, tags, field key).
fn read_line(line: &str, dialect: Dialect) -> (String, Vec<(String, String)>, String) {
    let (measurement, mut rest) = read_token(line, &[',', ' '], &[',', ' '], dialect);
    let mut tags = Vec::new();
    while let Some(after) = rest.strip_prefix(',') {
        let (k, r) = read_token(after, &['='], &[',', ' ', '='], dialect);
        let (v, r) = read_token(&r[1..], &[',', ' '], &[',', ' ', '='], dialect);
        tags.push((k, v));
        rest = r;
    }
    let (field, _) = read_token(&rest[1..], &['='], &[',', ' ', '='], dialect);
    (measurement, tags, field)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn line_protocol_reads_back_as_documented(
        measurement in lp_text(),
        tags in proptest::collection::btree_map(lp_text(), lp_text(), 0..3),
        field in lp_text(),
        victoria in any::<bool>(),
    ) {
        let dialect = if victoria { Dialect::VictoriaMetrics } else { Dialect::InfluxDb };
        // A field keyed like a tag is left out of line protocol (counted).
        prop_assume!(!tags.contains_key(&field));
        let mut out = Vec::new();
        let written = write_line(
            &mut out,
            dialect,
            &measurement,
            tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            [(field.as_str(), 1.5)],
            1_700_000_000_000_000_000,
            &mut LpDrops::default(),
        );
        prop_assert!(written);
        let line = String::from_utf8(out).unwrap();
        prop_assert!(line.ends_with(" 1700000000000000000\n") && line.matches('\n').count() == 1, "{line:?}");
        let (m, t, f) = read_line(&line, dialect);
        prop_assert_eq!(m, stored_as(&measurement, dialect, &[',', ' ']), "{:?}", line);
        let want: Vec<(String, String)> = tags
            .iter()
            .map(|(k, v)| (stored_as(k, dialect, &[',', ' ', '=']), stored_as(v, dialect, &[',', ' ', '='])))
            .collect();
        prop_assert_eq!(t, want, "{:?}", line);
        prop_assert_eq!(f, stored_as(&field, dialect, &[',', ' ', '=']), "{:?}", line);
    }
}
