//! A push of native histograms and exemplars, built with pushkit's own
//! protobuf messages, for the tests that follow such data into Prometheus.

use pushkit::expfmt::proto::{
    Bucket, BucketSpan, Counter, Exemplar, Histogram, LabelPair, Metric, MetricFamily, MetricType,
    Timestamp,
};

/// The native histogram's count, sum and buckets as Prometheus' query API
/// shows them: (lower, upper, count), negative buckets first, then the
/// zero bucket, then the positive ones.
pub const NATIVE_COUNT: f64 = 6.0;
pub const NATIVE_SUM: f64 = 10.5;
pub const NATIVE_BUCKETS: [(f64, f64, f64); 4] = [
    (-2.0, -1.0, 2.0),
    (-0.001, 0.001, 1.0),
    (0.5, 1.0, 2.0),
    (1.0, 2.0, 1.0),
];
/// The counter's value and its exemplar's value and `trace_id`.
pub const EXEMPLIFIED_COUNTER: f64 = 7.0;
pub const EXEMPLAR_VALUE: f64 = 1.0;
pub const EXEMPLAR_TRACE_ID: &str = "4bf92f3577b34da6";

fn label(name: &str, value: &str) -> LabelPair {
    LabelPair {
        name: Some(name.into()),
        value: Some(value.into()),
    }
}

/// A delimited-protobuf body: `demo_native_seconds{path="/a"}`, a native
/// histogram with schema 0, a zero bucket and buckets of both signs (plus
/// one classic bucket with an exemplar), and `demo_native_requests_total`,
/// a counter with an exemplar stamped `exemplar_s` (Unix seconds).
pub fn native_push_body(exemplar_s: i64) -> Vec<u8> {
    use prost::Message;
    let exemplar = |v: f64| Exemplar {
        label: vec![label("trace_id", EXEMPLAR_TRACE_ID)],
        value: Some(v),
        timestamp: Some(Timestamp {
            seconds: exemplar_s,
            nanos: 0,
        }),
    };
    let histogram = MetricFamily {
        name: Some("demo_native_seconds".into()),
        help: Some("A native histogram.".into()),
        r#type: Some(MetricType::Histogram as i32),
        metric: vec![Metric {
            label: vec![label("path", "/a")],
            histogram: Some(Histogram {
                sample_count: Some(NATIVE_COUNT as u64),
                sample_sum: Some(NATIVE_SUM),
                bucket: vec![Bucket {
                    cumulative_count: Some(3),
                    upper_bound: Some(1.0),
                    exemplar: Some(exemplar(0.75)),
                    ..Bucket::default()
                }],
                schema: Some(0),
                zero_threshold: Some(0.001),
                zero_count: Some(1),
                negative_span: vec![BucketSpan {
                    offset: Some(1),
                    length: Some(1),
                }],
                negative_delta: vec![2],
                positive_span: vec![BucketSpan {
                    offset: Some(0),
                    length: Some(2),
                }],
                positive_delta: vec![2, -1],
                ..Histogram::default()
            }),
            ..Metric::default()
        }],
        unit: None,
    };
    let counter = MetricFamily {
        name: Some("demo_native_requests_total".into()),
        help: None,
        r#type: Some(MetricType::Counter as i32),
        metric: vec![Metric {
            counter: Some(Counter {
                value: Some(EXEMPLIFIED_COUNTER),
                exemplar: Some(exemplar(EXEMPLAR_VALUE)),
                created_timestamp: None,
            }),
            ..Metric::default()
        }],
        unit: None,
    };
    let mut body = Vec::new();
    for f in [histogram, counter] {
        f.encode_length_delimited(&mut body).expect("encode");
    }
    body
}

/// The Content-Type of [`native_push_body`].
pub const DELIMITED: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// Polls Prometheus until `selector` (one series) answers; asserts that it
/// is [`native_push_body`]'s native histogram, bucket for bucket.
pub fn assert_native_histogram_in(
    prom: &mut super::Prometheus,
    selector: &str,
    timeout: std::time::Duration,
) {
    let found = super::poll_until(timeout, std::time::Duration::from_millis(500), || {
        prom.query(selector, "", "vector").pop()
    });
    let (_, entry) = found.unwrap_or_else(|| panic!("no {selector}\n{}", prom.log_text()));
    let h = &entry["histogram"][1];
    assert_eq!(h["count"], NATIVE_COUNT.to_string(), "{entry}");
    assert_eq!(h["sum"], NATIVE_SUM.to_string(), "{entry}");
    let buckets: Vec<(f64, f64, f64)> = h["buckets"]
        .as_array()
        .unwrap_or_else(|| panic!("no buckets in {entry}"))
        .iter()
        .map(|b| {
            let f = |i: usize| b[i].as_str().and_then(|s| s.parse().ok()).expect("number");
            (f(1), f(2), f(3))
        })
        .collect();
    assert_eq!(buckets, NATIVE_BUCKETS, "{entry}");
}

/// Polls Prometheus' exemplar API until `demo_native_requests_total` has
/// an exemplar; asserts that it is [`native_push_body`]'s, stamped
/// `exemplar_s`, and returns its series' entry.
pub fn wait_native_exemplar(
    prom: &mut super::Prometheus,
    exemplar_s: i64,
    timeout: std::time::Duration,
) -> serde_json::Value {
    let path = format!(
        "/api/v1/query_exemplars?query=demo_native_requests_total&start={}&end={}",
        exemplar_s - 600,
        exemplar_s + 600
    );
    let found = super::poll_until(timeout, std::time::Duration::from_millis(500), || {
        let v = prom.api(&path);
        v["data"]
            .as_array()
            .and_then(|series| series.first().cloned())
    });
    let series = found.unwrap_or_else(|| panic!("no exemplar\n{}", prom.log_text()));
    let ex = &series["exemplars"][0];
    assert_eq!(ex["labels"]["trace_id"], EXEMPLAR_TRACE_ID, "{series}");
    assert_eq!(ex["value"], EXEMPLAR_VALUE.to_string(), "{series}");
    assert_eq!(
        ex["timestamp"].as_f64(),
        Some(exemplar_s as f64),
        "{series}"
    );
    series
}
