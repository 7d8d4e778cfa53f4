//! Writes the seed corpus, `fuzz/seeds/<target>/`, from small real inputs:
//! text expositions as clients push them, their delimited-protobuf form
//! written by pushkit's own encoder (plus a native histogram with
//! exemplars, as client_golang sends it), gzip and snappy bodies, push
//! paths, and push sequences in the `push_path` target's input format.
//!
//! Run from `fuzz/`: `cargo run --example make_seeds`. It replaces the
//! seed files it names and leaves others alone; the output is the same
//! on every run (gzip without a timestamp).

use prost::Message as _;
use pushkit::expfmt::proto::{
    Bucket, BucketSpan, Counter, Exemplar, Histogram, LabelPair, Metric, MetricFamily, MetricType,
    Timestamp,
};
use pushkit::expfmt::{parse_text_names, write_delimited};
use std::io::Write;
use std::path::Path;

const COUNTER_GAUGE: &str = "\
# HELP http_requests_total Requests served, by method and code.
# TYPE http_requests_total counter
http_requests_total{method=\"get\",code=\"200\"} 1027 1395066363000
http_requests_total{method=\"post\",code=\"400\"} 3 1395066363000
# HELP job_last_success_unixtime Last time the batch job succeeded.
# TYPE job_last_success_unixtime gauge
job_last_success_unixtime 1.7e+09
";

const HISTOGRAM: &str = "\
# HELP request_seconds Request latency.
# TYPE request_seconds histogram
request_seconds_bucket{path=\"/a\",le=\"0.05\"} 24054
request_seconds_bucket{path=\"/a\",le=\"0.1\"} 33444
request_seconds_bucket{path=\"/a\",le=\"1\"} 100392
request_seconds_bucket{path=\"/a\",le=\"+Inf\"} 144320
request_seconds_sum{path=\"/a\"} 53423
request_seconds_count{path=\"/a\"} 144320
# TYPE queue_depth gauge_histogram
queue_depth_bucket{le=\"10\"} 3
queue_depth_bucket{le=\"+Inf\"} 4
queue_depth_sum 40
queue_depth_count 4
";

const SUMMARY: &str = "\
# HELP rpc_duration_seconds RPC latency.
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile=\"0.01\"} 3102
rpc_duration_seconds{quantile=\"0.5\"} 4773
rpc_duration_seconds{quantile=\"0.99\"} NaN
rpc_duration_seconds_sum 1.7560473e+07
rpc_duration_seconds_count 2693
";

const ESCAPES: &str = "\
# HELP msdos_file_access_time_seconds Escaped \\\\ and \\n in help.
# TYPE msdos_file_access_time_seconds untyped
msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9
metric_without_timestamp_and_labels 12.47
something_weird{problem=\"division by zero\"} +Inf -3982045
neg_inf -Inf
utf8_value{v=\"h\u{e9}llo \u{2603} \u{1f600}\"} 1e-3
empty_value{a=\"\",b=\"x\"} 1e-300
";

const UTF8_NAMES: &str = "\
# HELP \"my.metric.total\" A counter with a dotted name.
# TYPE \"my.metric.total\" counter
{\"my.metric.total\",\"label.name\"=\"v\",zone=\"eu\"} 3
\"my.metric.total\"{\"label.name\"=\"w\"} 4
# TYPE plain gauge
plain{\"\u{e9}t\u{e9}\"=\"summer\"} 1
";

const TEXTS: &[(&str, &str)] = &[
    ("counter_gauge", COUNTER_GAUGE),
    ("histogram", HISTOGRAM),
    ("summary", SUMMARY),
    ("escapes", ESCAPES),
    ("utf8_names", UTF8_NAMES),
];

const PROTOBUF_CT: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

fn main() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = seeds.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };

    for (name, text) in TEXTS {
        write("text_parser", &format!("{name}.txt"), text.as_bytes());
        write("protobuf_decoder", &format!("{name}.pb"), &delimited(text));
    }
    write("protobuf_decoder", "native_exemplars.pb", &native());

    let body = COUNTER_GAUGE.as_bytes();
    write("body_decoder", "absent", body);
    write("body_decoder", "identity", &[b"identity\n", body].concat());
    write(
        "body_decoder",
        "gzip",
        &[b"gzip\n", &gzip(body)[..]].concat(),
    );
    let two_members = [gzip(b"a 1\n"), gzip(b"b 2\n")].concat();
    write(
        "body_decoder",
        "gzip_two_members",
        &[b"GZip \n", &two_members[..]].concat(),
    );
    write(
        "body_decoder",
        "snappy",
        &[b"snappy\n", &snappy(body)[..]].concat(),
    );
    write("body_decoder", "unsupported", b"br\nxyz");

    let paths = [
        ("job", "/metrics/job/batch"),
        ("labels", "/metrics/job/batch/instance/a/zone/eu"),
        ("base64", "/metrics/job/x/a@base64/Zm9v"),
        (
            "job_base64",
            "/metrics/job@base64/Zm9vL2Jhcg/path@base64/L3Zhci90bXA=",
        ),
        ("empty_value", "/metrics/job/x/empty@base64/=/other@base64/"),
        ("percent", "/metrics/job/x/instance/a%2Fb%20c"),
        (
            "utf8_name",
            "/metrics/job/x/U__label_2e_name/v/U__caf_e9_@base64/w6k",
        ),
        ("repeated", "/metrics/job/x/a/1/b/2/a/3/job/ignored"),
        ("odd", "/metrics/job/x/a/"),
        ("no_job", "/metrics/job/"),
        ("reserved", "/metrics/job/x/__name__/v"),
    ];
    for (name, path) in paths {
        write("grouping_key", name, path.as_bytes());
    }

    let text = |b: &'static str| b.as_bytes().to_vec();
    let pushes: &[(&str, u8, Vec<Push>)] = &[
        (
            "put_post_delete",
            0,
            vec![
                push(
                    PUT,
                    "/metrics/job/batch/instance/a",
                    "",
                    "",
                    text(COUNTER_GAUGE),
                ),
                push(
                    POST,
                    "/metrics/job/batch/instance/a",
                    "",
                    "",
                    text(HISTOGRAM),
                ),
                push(PUT, "/metrics/job/other", "", "", text(SUMMARY)),
                push(DELETE, "/metrics/job/batch/instance/a", "", "", vec![]),
            ],
        ),
        (
            "protobuf_gzip",
            0,
            vec![push(
                PUT,
                "/metrics/job/x/a@base64/Zm9v",
                PROTOBUF_CT,
                "gzip",
                gzip(&delimited(HISTOGRAM)),
            )],
        ),
        (
            "native_snappy",
            0,
            vec![push(
                POST,
                "/metrics/job/x",
                PROTOBUF_CT,
                "snappy",
                snappy(&native()),
            )],
        ),
        (
            "inconsistent",
            0,
            vec![
                push(PUT, "/metrics/job/a", "", "", text("# TYPE m gauge\nm 1\n")),
                push(
                    PUT,
                    "/metrics/job/b",
                    "",
                    "",
                    text("# TYPE m counter\nm 1\n"),
                ),
                push(PUT, "/metrics/job/a", "", "", text("m{job=\"a\"} 2\nm 3\n")),
            ],
        ),
        (
            "utf8_names",
            0b0000_0001,
            vec![
                push(
                    PUT,
                    "/metrics/job/x/U__zone_2e_id/1",
                    "",
                    "",
                    text(UTF8_NAMES),
                ),
                push(
                    PUT,
                    "/metrics/job/x/U__zone_2e_id/1",
                    PROTOBUF_CT,
                    "",
                    delimited(UTF8_NAMES),
                ),
            ],
        ),
        (
            "timestamps_naming",
            0b0011_1100,
            vec![push(PUT, "/metrics/job/cron", "", "", text(COUNTER_GAUGE))],
        ),
        (
            "limits",
            0b0100_0000,
            vec![
                push(PUT, "/metrics/job/l", "", "", text(HISTOGRAM)),
                push(
                    PUT,
                    "/metrics/job/l/a/1/b/2/c/3/d/4/e/5/f/6/g/7",
                    "",
                    "",
                    text("m 1\n"),
                ),
            ],
        ),
        (
            "forwarder_unchecked",
            0b1000_0010,
            vec![
                push(PUT, "/metrics/job/f", "", "", text(ESCAPES)),
                push(POST, "/metrics/job/f", "", "", text("m{a=\"\"} 1\nm 2\n")),
            ],
        ),
    ];
    for (name, options, pushes) in pushes {
        let mut input = vec![*options];
        for p in pushes {
            input.extend_from_slice(&p.0);
        }
        write("push_path", name, &input);
    }
}

const PUT: u8 = 0;
const POST: u8 = 1;
const DELETE: u8 = 2;

/// One push in the `push_path` input format.
struct Push(Vec<u8>);

fn push(method: u8, path: &str, content_type: &str, encoding: &str, body: Vec<u8>) -> Push {
    let mut b = vec![method];
    for line in [path, content_type, encoding] {
        b.extend_from_slice(line.as_bytes());
        b.push(b'\n');
    }
    let len = u16::try_from(body.len()).expect("a seed body under 64 KiB");
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(&body);
    Push(b)
}

/// `text` as a delimited-protobuf push, by pushkit's own encoder.
fn delimited(text: &str) -> Vec<u8> {
    let families = parse_text_names(text.as_bytes(), true).expect("a seed parses");
    let mut out = Vec::new();
    write_delimited(&families, &mut out);
    out
}

/// A native histogram with classic buckets, exemplars and no `+Inf`
/// bucket, as client_golang pushes one; and a counter with an exemplar.
fn native() -> Vec<u8> {
    let label = |n: &str, v: &str| LabelPair {
        name: Some(n.into()),
        value: Some(v.into()),
    };
    let exemplar = |v: f64| Exemplar {
        label: vec![label("trace_id", "4bf92f3577b34da6")],
        value: Some(v),
        timestamp: Some(Timestamp {
            seconds: 1_700_000_000,
            nanos: 5,
        }),
    };
    let histogram = MetricFamily {
        name: Some("rpc_latency_seconds".into()),
        help: Some("RPC latency.".into()),
        r#type: Some(MetricType::Histogram as i32),
        metric: vec![Metric {
            label: vec![label("service", "api")],
            histogram: Some(Histogram {
                sample_count: Some(12),
                sample_sum: Some(3.5),
                bucket: vec![
                    Bucket {
                        cumulative_count: Some(4),
                        upper_bound: Some(0.1),
                        exemplar: Some(exemplar(0.07)),
                        ..Default::default()
                    },
                    Bucket {
                        cumulative_count: Some(10),
                        upper_bound: Some(1.0),
                        ..Default::default()
                    },
                ],
                schema: Some(3),
                zero_threshold: Some(1e-128),
                zero_count: Some(1),
                positive_span: vec![
                    BucketSpan {
                        offset: Some(-2),
                        length: Some(2),
                    },
                    BucketSpan {
                        offset: Some(3),
                        length: Some(1),
                    },
                ],
                positive_delta: vec![3, -1, 4],
                negative_span: vec![BucketSpan {
                    offset: Some(0),
                    length: Some(1),
                }],
                negative_delta: vec![1],
                exemplars: vec![exemplar(0.3)],
                ..Default::default()
            }),
            ..Default::default()
        }],
        unit: None,
    };
    let counter = MetricFamily {
        name: Some("jobs_total".into()),
        help: None,
        r#type: Some(MetricType::Counter as i32),
        metric: vec![Metric {
            counter: Some(Counter {
                value: Some(7.0),
                exemplar: Some(exemplar(1.0)),
                created_timestamp: None,
            }),
            timestamp_ms: Some(1_700_000_000_123),
            ..Default::default()
        }],
        unit: None,
    };
    let mut out = Vec::new();
    for mf in [histogram, counter] {
        mf.encode_length_delimited(&mut out).unwrap();
    }
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn snappy(data: &[u8]) -> Vec<u8> {
    let mut e = snap::write::FrameEncoder::new(Vec::new());
    e.write_all(data).unwrap();
    e.into_inner().unwrap()
}
