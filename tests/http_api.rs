//! The HTTP API in process: `agent::run` on a loopback listener with the
//! line-protocol sink captured, driven with reqwest. Asserts exact line
//! protocol for every accepted encoding and exact error replies (status,
//! JSON `error_code`, nothing emitted) for every rejection.

use pushkit::config::{Config, HttpApiConfig, PushgatewayConfig};
use pushkit::expfmt::write_delimited;
use pushkit::model::family::{Family, Histogram, Metric, MetricType, Summary, Value};
use std::io::Write;
use std::time::Duration;

mod inprocess;
use inprocess::{start, Agent};

const PROTO_CT: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

fn pg_config(prefix: &str) -> Config {
    Config {
        pushgateway: Some(PushgatewayConfig {
            route_prefix: prefix.into(),
            measurement_name: None,
            job_as_measurement: false,
            keep_exist_metric_name: true,
            honor_timestamps: true,
            ..PushgatewayConfig::default()
        }),
        ..Config::default()
    }
}

const TEXT: &str = "\
# TYPE http_requests_total counter
http_requests_total{code=\"200\"} 5 1700000000000
# TYPE temp_celsius gauge
temp_celsius{room=\"a b\"} 21.5 1700000000000
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile=\"0.5\"} 0.05 1700000000000
rpc_duration_seconds{quantile=\"0.99\"} 0.2 1700000000000
rpc_duration_seconds_sum 12.5 1700000000000
rpc_duration_seconds_count 100 1700000000000
# TYPE req_size_bytes histogram
req_size_bytes_bucket{le=\"100\"} 3 1700000000000
req_size_bytes_bucket{le=\"1000\"} 7 1700000000000
req_size_bytes_bucket{le=\"+Inf\"} 9 1700000000000
req_size_bytes_sum 4200 1700000000000
req_size_bytes_count 9 1700000000000
";

const T: &str = "1700000000000000000";

fn expected_lines() -> String {
    [
        "http,code=200,instance=i1,job=j http_requests_total=5",
        "temp,instance=i1,job=j,room=a\\ b temp_celsius=21.5",
        "rpc,instance=i1,job=j rpc_duration_seconds_count=100,rpc_duration_seconds_sum=12.5",
        "rpc,instance=i1,job=j,quantile=0.5 rpc_duration_seconds=0.05",
        "rpc,instance=i1,job=j,quantile=0.99 rpc_duration_seconds=0.2",
        "req,instance=i1,job=j req_size_bytes_count=9,req_size_bytes_sum=4200",
        "req,instance=i1,job=j,le=100 req_size_bytes_bucket=3",
        "req,instance=i1,job=j,le=1000 req_size_bytes_bucket=7",
        "req,instance=i1,job=j,le=+Inf req_size_bytes_bucket=9",
    ]
    .iter()
    .map(|l| format!("{l} {T}\n"))
    .collect()
}

/// The same data as `TEXT`, as model families; the histogram has no +Inf
/// bucket, as the Go client sends it.
fn families() -> Vec<Family> {
    let ts = Some(1_700_000_000_000);
    let metric = |labels: &[(&str, &str)], value: Value| Metric {
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
        value,
        timestamp_ms: ts,
        exemplar: None,
    };
    vec![
        Family {
            name: "http_requests_total".into(),
            help: None,
            kind: MetricType::Counter,
            metrics: vec![metric(&[("code", "200")], Value::Simple(5.0))],
        },
        Family {
            name: "temp_celsius".into(),
            help: None,
            kind: MetricType::Gauge,
            metrics: vec![metric(&[("room", "a b")], Value::Simple(21.5))],
        },
        Family {
            name: "rpc_duration_seconds".into(),
            help: None,
            kind: MetricType::Summary,
            metrics: vec![metric(
                &[],
                Value::Summary(Summary {
                    sample_count: 100.0,
                    sample_sum: 12.5,
                    quantiles: vec![(0.5, 0.05), (0.99, 0.2)],
                }),
            )],
        },
        Family {
            name: "req_size_bytes".into(),
            help: None,
            kind: MetricType::Histogram,
            metrics: vec![metric(
                &[],
                Value::Histogram(Histogram {
                    sample_count: 9.0,
                    sample_sum: 4200.0,
                    buckets: vec![(100.0, 3.0), (1000.0, 7.0)],
                    native: None,
                    exemplars: None,
                }),
            )],
        },
    ]
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

fn delimited(fams: &[Family]) -> Vec<u8> {
    let mut out = Vec::new();
    write_delimited(fams, &mut out);
    out
}

const PATH: &str = "/metrics/job/j/instance/i1";

#[tokio::test(flavor = "multi_thread")]
async fn text_put_post_and_delete() {
    let agent = start(pg_config("")).await;
    let r = agent.put_text(PATH, TEXT).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(agent.take_output(), expected_lines());

    let r = agent.send("POST", PATH, &[], TEXT.into()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(agent.take_output(), expected_lines());

    let r = agent.send("DELETE", PATH, &[], Vec::new()).await;
    assert_eq!(r.status, 202, "{}", r.body);
    // A DELETE with a body still emits nothing.
    let r = agent.send("DELETE", PATH, &[], TEXT.into()).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(agent.take_output(), "");

    // Without a timestamp: arrival time.
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let r = agent.put_text(PATH, "x_y 3\n").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let after = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let out = agent.take_output();
    let prefix = "x,instance=i1,job=j x_y=3 ";
    assert!(out.starts_with(prefix), "{out}");
    assert!(out.ends_with('\n') && out.lines().count() == 1, "{out:?}");
    let ts: i64 = out[prefix.len()..].trim_end().parse().unwrap();
    assert!(before <= ts && ts <= after, "{before} <= {ts} <= {after}");

    assert_eq!(agent.stop().await, Ok(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn encodings_give_the_same_points() {
    let agent = start(pg_config("")).await;
    type Case = (&'static str, Vec<(&'static str, &'static str)>, Vec<u8>);
    let cases: Vec<Case> = vec![
        (
            "identity",
            vec![("Content-Encoding", "identity")],
            TEXT.into(),
        ),
        (
            "gzip",
            vec![("Content-Encoding", "gzip")],
            gzip(TEXT.as_bytes()),
        ),
        (
            "snappy",
            vec![("Content-Encoding", "snappy")],
            snappy(TEXT.as_bytes()),
        ),
        (
            "protobuf",
            vec![("Content-Type", PROTO_CT)],
            delimited(&families()),
        ),
        (
            "protobuf+gzip",
            vec![("Content-Type", PROTO_CT), ("Content-Encoding", "gzip")],
            gzip(&delimited(&families())),
        ),
        (
            "protobuf+snappy",
            vec![("Content-Type", PROTO_CT), ("Content-Encoding", "snappy")],
            snappy(&delimited(&families())),
        ),
    ];
    for (what, headers, body) in cases {
        let r = agent.send("PUT", PATH, &headers, body).await;
        assert_eq!(r.status, 200, "{what}: {}", r.body);
        assert_eq!(agent.take_output(), expected_lines(), "{what}");
    }
    assert_eq!(agent.stop().await, Ok(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn base64_grouping_and_route_prefix() {
    let agent = start(pg_config("/v1/pg")).await;
    // job "foo/bar", path "a/b".
    let r = agent
        .put_text(
            "/v1/pg/metrics/job@base64/Zm9vL2Jhcg/path@base64/YS9i",
            "up 1 1700000000000\n",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        agent.take_output(),
        format!("up,job=foo/bar,path=a/b up=1 {T}\n")
    );
    // Padded base64 too.
    let r = agent
        .put_text("/v1/pg/metrics/job/j/x@base64/YQ==", "up 2 1700000000000\n")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(agent.take_output(), format!("up,job=j,x=a up=2 {T}\n"));

    for path in ["/v1/pg/-/healthy", "/v1/pg/-/ready"] {
        assert_eq!(agent.get(path).await.status, 200, "{path}");
    }
    // Outside the prefix: nothing is routed.
    for path in ["/metrics/job/j", "/v1/pgx/metrics/job/j"] {
        let r = agent.put_text(path, "up 3 1700000000000\n").await;
        r.assert_error(404, "notFound", path);
    }
    r_404(&agent, "/-/healthy").await;
    assert_eq!(agent.output(), "");
    assert_eq!(agent.stop().await, Ok(0));
}

async fn r_404(agent: &Agent, path: &str) {
    agent.get(path).await.assert_error(404, "notFound", path);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_rejection_is_json_and_changes_nothing() {
    let agent = start(pg_config("")).await;
    let good = TEXT.as_bytes().to_vec();
    let gz = gzip(TEXT.as_bytes());
    let sn = snappy(TEXT.as_bytes());
    let mut dup_families = families();
    dup_families.push(families()[0].clone());

    struct Case<'a> {
        what: &'a str,
        method: &'a str,
        path: &'a str,
        headers: Vec<(&'a str, &'a str)>,
        body: Vec<u8>,
        status: u16,
        code: &'a str,
        message_has: Option<&'a str>,
    }
    let case = |what, method, path, headers, body, status, code| Case {
        what,
        method,
        path,
        headers,
        body,
        status,
        code,
        message_has: None,
    };
    let mut cases = vec![
        case(
            "empty job",
            "PUT",
            "/metrics/job/",
            vec![],
            good.clone(),
            400,
            "jobNameIsRequired",
        ),
        case(
            "empty base64 job",
            "PUT",
            "/metrics/job@base64/=",
            vec![],
            good.clone(),
            400,
            "jobNameIsRequired",
        ),
        case(
            "odd labels",
            "PUT",
            "/metrics/job/j/instance",
            vec![],
            good.clone(),
            400,
            "oddLabelComponents",
        ),
        case(
            "odd labels, trailing slash",
            "POST",
            "/metrics/job/j/a/b/",
            vec![],
            good.clone(),
            400,
            "oddLabelComponents",
        ),
        case(
            "label __x",
            "PUT",
            "/metrics/job/j/__x/v",
            vec![],
            good.clone(),
            400,
            "invalidLabelName",
        ),
        case(
            "label 1a",
            "PUT",
            "/metrics/job/j/1a/v",
            vec![],
            good.clone(),
            400,
            "invalidLabelName",
        ),
        case(
            "bad base64 label",
            "PUT",
            "/metrics/job/j/a@base64/!!",
            vec![],
            good.clone(),
            400,
            "invalidBase64",
        ),
        case(
            "bad base64 job",
            "PUT",
            "/metrics/job@base64/!!",
            vec![],
            good.clone(),
            400,
            "invalidBase64",
        ),
        case(
            "bad grouping on DELETE",
            "DELETE",
            "/metrics/job/j/1a/v",
            vec![],
            Vec::new(),
            400,
            "invalidLabelName",
        ),
        case(
            "duplicate family, text",
            "PUT",
            PATH,
            vec![],
            format!("{TEXT}http_requests_total{{code=\"500\"}} 1\n").into(),
            400,
            "duplicateMetricFamily",
        ),
        Case {
            message_has: Some("9223372036855"),
            ..case(
                "a timestamp after 2262, with honor_timestamps on",
                "PUT",
                PATH,
                vec![],
                // One millisecond past the last one whose nanoseconds fit
                // an i64 (accepted below).
                format!("{TEXT}# TYPE late gauge\nlate 1 9223372036855\n").into(),
                400,
                "timestampOutOfRange",
            )
        },
        case(
            "duplicate family, protobuf",
            "PUT",
            PATH,
            vec![("Content-Type", PROTO_CT)],
            delimited(&dup_families),
            400,
            "duplicateMetricFamily",
        ),
        case(
            "invalid protobuf",
            "PUT",
            PATH,
            vec![("Content-Type", PROTO_CT)],
            b"\x05abc".to_vec(),
            400,
            "invalidProtobuf",
        ),
        case(
            "protobuf valid then garbage",
            "PUT",
            PATH,
            vec![("Content-Type", PROTO_CT)],
            [delimited(&families()), b"\x05abc".to_vec()].concat(),
            400,
            "invalidProtobuf",
        ),
        case(
            "corrupt gzip",
            "PUT",
            PATH,
            vec![("Content-Encoding", "gzip")],
            good.clone(),
            400,
            "corruptBody",
        ),
        case(
            "truncated gzip",
            "PUT",
            PATH,
            vec![("Content-Encoding", "gzip")],
            gz[..gz.len() - 4].to_vec(),
            400,
            "corruptBody",
        ),
        case(
            "corrupt snappy",
            "PUT",
            PATH,
            vec![("Content-Encoding", "snappy")],
            good.clone(),
            400,
            "corruptBody",
        ),
        case(
            "truncated snappy",
            "PUT",
            PATH,
            vec![("Content-Encoding", "snappy")],
            sn[..sn.len() - 2].to_vec(),
            400,
            "corruptBody",
        ),
        case(
            "unknown encoding",
            "PUT",
            PATH,
            vec![("Content-Encoding", "br")],
            good.clone(),
            415,
            "unsupportedContentEncoding",
        ),
        case(
            "GET on a push path",
            "GET",
            PATH,
            vec![],
            Vec::new(),
            405,
            "methodNotAllowed",
        ),
        case(
            "PATCH on a push path",
            "PATCH",
            PATH,
            vec![],
            good.clone(),
            405,
            "methodNotAllowed",
        ),
        case(
            "POST on /-/healthy",
            "POST",
            "/-/healthy",
            vec![],
            good.clone(),
            405,
            "methodNotAllowed",
        ),
        case(
            "unknown path",
            "GET",
            "/nope",
            vec![],
            Vec::new(),
            404,
            "notFound",
        ),
        case(
            "PUT on /metrics/jobs",
            "PUT",
            "/metrics/jobs/j",
            vec![],
            good.clone(),
            404,
            "notFound",
        ),
    ];
    // The valid families come before the bad line: nothing may be emitted.
    cases.push(Case {
        message_has: Some("line 3"),
        ..case(
            "invalid text",
            "PUT",
            PATH,
            vec![],
            b"a_b 1 1700000000000\nc_d 2\ne_f x\n".to_vec(),
            400,
            "invalidTextFormat",
        )
    });

    for c in cases {
        let r = agent.send(c.method, c.path, &c.headers, c.body).await;
        let msg = r.assert_error(c.status, c.code, c.what);
        if let Some(s) = c.message_has {
            assert!(msg.contains(s), "{}: {msg}", c.what);
        }
        if c.status == 405 {
            assert!(r.headers.contains_key("allow"), "{}", c.what);
        }
        assert_eq!(agent.output(), "", "{}: emitted something", c.what);
    }
    // The agent still works afterwards.
    assert_eq!(agent.put_text(PATH, TEXT).await.status, 200);
    assert_eq!(agent.take_output(), expected_lines());
    // The last millisecond whose nanoseconds fit is taken as it is.
    let r = agent.put_text(PATH, "late 1 9223372036854\n").await;
    assert_eq!(r.status, 200);
    assert!(
        agent
            .take_output()
            .ends_with(" late=1 9223372036854000000\n"),
        "the timestamp is not clamped"
    );
    // 0 or below counts as no timestamp, as in DataKit: the arrival time,
    // for every point of the metric.
    for ts in ["0", "-5", "-9223372036855"] {
        let body = format!("# TYPE early summary\nearly_sum 1 {ts}\nearly_count 2 {ts}\n");
        assert_eq!(agent.put_text(PATH, &body).await.status, 200, "{ts}");
        let out = agent.take_output();
        let time: i64 = out.trim_end().rsplit(' ').next().unwrap().parse().unwrap();
        assert!(time > 1_700_000_000_000_000_000, "{ts}: {out}");
    }
    assert_eq!(agent.stop().await, Ok(0));
}

/// `OPTIONS` answers 200 with `Allow` and no body, as the Pushgateway's
/// router does (checked against 1.5.1: `DELETE, OPTIONS, POST, PUT` on a
/// push path, `GET, OPTIONS` on `/metrics`); a 405 lists `OPTIONS` too.
#[tokio::test(flavor = "multi_thread")]
async fn options_lists_the_methods_of_a_path() {
    let agent = start(pg_config("")).await;
    for (path, allow) in [
        ("/metrics/job/j", "DELETE, OPTIONS, POST, PUT"),
        ("/metrics/job/j/instance/i", "DELETE, OPTIONS, POST, PUT"),
        ("/metrics/job@base64/ag", "DELETE, OPTIONS, POST, PUT"),
        ("/metrics", "GET, OPTIONS"),
        ("/api/v1/metrics", "GET, OPTIONS"),
        ("/-/healthy", "GET, OPTIONS"),
        ("/-/quit", "OPTIONS, POST, PUT"),
    ] {
        let r = agent.send("OPTIONS", path, &[], Vec::new()).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.headers["allow"], allow, "{path}");
        assert!(r.body.is_empty(), "{path}: {:?}", r.body);
    }
    let r = agent.send("PATCH", "/metrics/job/j", &[], Vec::new()).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.headers["allow"], "DELETE, OPTIONS, POST, PUT");
    assert_eq!(agent.output(), "", "OPTIONS pushes nothing");
    assert_eq!(agent.stop().await, Ok(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn size_limits_are_413() {
    let mut config = pg_config("");
    config.http_api = HttpApiConfig {
        max_body_size: 1024,
        max_decompressed_size: 2048,
        ..HttpApiConfig::default()
    };
    let agent = start(config).await;

    // As sent: over max_body_size.
    let mut big = "# a comment that is long enough to pad the body\n".repeat(30);
    big.push_str("up 1 1700000000000\n");
    assert!(big.len() > 1024);
    let r = agent.put_text(PATH, &big).await;
    r.assert_error(413, "bodyTooLarge", "body over max_body_size");
    let r = agent
        .send(
            "PUT",
            PATH,
            &[("Content-Encoding", "gzip")],
            gzip(&[b'#'; 4000]),
        )
        .await;
    // Decompressed over max_decompressed_size though small as sent.
    r.assert_error(
        413,
        "decompressedBodyTooLarge",
        "gzip over max_decompressed_size",
    );
    let mut bomb = "#".repeat(3000);
    bomb.push('\n');
    let r = agent
        .send(
            "PUT",
            PATH,
            &[("Content-Encoding", "snappy")],
            snappy(bomb.as_bytes()),
        )
        .await;
    r.assert_error(
        413,
        "decompressedBodyTooLarge",
        "snappy over max_decompressed_size",
    );
    assert_eq!(agent.output(), "");

    // Just under the limits passes.
    let r = agent.put_text(PATH, "up 1 1700000000000\n").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        agent.take_output(),
        format!("up,instance=i1,job=j up=1 {T}\n")
    );
    assert_eq!(agent.stop().await, Ok(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_self_metrics() {
    let agent = start(pg_config("")).await;
    for path in ["/-/healthy", "/-/ready"] {
        let r = agent.get(path).await;
        assert_eq!(r.status, 200, "{path}");
    }
    assert_eq!(agent.put_text(PATH, TEXT).await.status, 200);
    agent
        .put_text("/metrics/job/", TEXT)
        .await
        .assert_error(400, "jobNameIsRequired", "bad push");
    let r = agent.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.body
            .contains("pushkit_pushes_total{method=\"PUT\",code=\"200\"} 1\n"),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("pushkit_pushes_total{method=\"PUT\",code=\"400\"} 1\n"),
        "{}",
        r.body
    );
    // One counter, one gauge, one summary, one histogram.
    assert!(
        r.body.contains("pushkit_samples_received_total 4\n"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("pushkit_points_emitted_total 9\n"),
        "{}",
        r.body
    );
    agent.take_output();
    assert_eq!(agent.stop().await, Ok(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_returns_ok_zero_and_stops_accepting() {
    let agent = start(pg_config("")).await;
    let base = agent.base.clone();
    assert_eq!(agent.put_text(PATH, TEXT).await.status, 200);
    assert_eq!(agent.stop().await, Ok(0));
    let r = reqwest::Client::new()
        .get(format!("{base}/-/healthy"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(r.is_err(), "still serving after shutdown: {r:?}");
}
