//! Property tests: what a client can send never panics the parsers, and
//! what pushkit exposes parses back to what was pushed.
//!
//! - The text parser, the delimited-protobuf decoder, the push-path parser
//!   and the body decoder (gzip, snappy) take arbitrary bytes and answer
//!   with a value or an error, never a panic.
//! - Families made of arbitrary names, labels (any UTF-8 in values) and
//!   values, written as the text exposition, parse back to themselves; so
//!   do they through delimited protobuf.

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
