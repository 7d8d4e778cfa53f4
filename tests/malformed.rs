//! A corpus of malformed requests, each with the status and `error_code`
//! it must get: paths, methods, text and protobuf bodies, encodings,
//! sizes and limits. Every one is refused with the JSON error shape and
//! changes nothing: the stored groups and their push times stay as they
//! were, no point reaches stdout, and the agent stays up. The one
//! documented exception is a push refused by the consistency check, which
//! records its group's `push_failure_time_seconds` (as the Pushgateway
//! does); such cases push to their own job and are left out of the
//! comparison by that job.

mod common;

use common::*;
use std::io::Write as _;
use std::time::Duration;

const TEXT: &str = "text/plain; version=0.0.4";
const PROTO: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

struct Case {
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    encoding: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    /// Part of the message, where the code alone says too little.
    says: Option<&'static str>,
}

fn case(method: &'static str, path: &str, body: &[u8], status: u16, code: &'static str) -> Case {
    Case {
        method,
        path: path.to_string(),
        content_type: Some(TEXT),
        encoding: None,
        body: body.to_vec(),
        status,
        code,
        says: None,
    }
}

fn saying(c: Case, says: &'static str) -> Case {
    Case {
        says: Some(says),
        ..c
    }
}

fn text(body: &str, code: &'static str) -> Case {
    case("PUT", "/metrics/job/bad", body.as_bytes(), 400, code)
}

fn proto(body: Vec<u8>, code: &'static str) -> Case {
    Case {
        content_type: Some(PROTO),
        ..case("PUT", "/metrics/job/bad", &body, 400, code)
    }
}

fn encoded(encoding: &'static str, body: Vec<u8>, status: u16, code: &'static str) -> Case {
    Case {
        encoding: Some(encoding),
        ..case("PUT", "/metrics/job/bad", &body, status, code)
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A delimited message of raw protobuf bytes.
fn delimited(message: &[u8]) -> Vec<u8> {
    let mut out = vec![message.len() as u8];
    out.extend_from_slice(message);
    out
}

/// `MetricFamily { name, type, metric: [Metric { gauge: {value} } or counter] }`
/// encoded by hand: field 1 name, 3 type, 4 metric (2 gauge / 3 counter).
fn family(name: &str, kind: u8, value_field: u8) -> Vec<u8> {
    let mut m = vec![0x0a, name.len() as u8];
    m.extend_from_slice(name.as_bytes());
    m.extend_from_slice(&[3 << 3, kind]);
    // metric { <value_field> { value: 1.0 } }
    let value = [9u8, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f];
    let mut inner = vec![(value_field << 3) | 2, value.len() as u8];
    inner.extend_from_slice(&value);
    m.push((4 << 3) | 2);
    m.push(inner.len() as u8);
    m.extend_from_slice(&inner);
    m
}

fn corpus() -> Vec<Case> {
    let many_samples: String = (0..1001).map(|i| format!("s{{i=\"{i}\"}} 1\n")).collect();
    let many_labels: String = format!(
        "m{{{}}} 1\n",
        (0..70)
            .map(|i| format!("l{i}=\"v\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut cases = vec![
        // The path.
        case("PUT", "/metrics/job/", b"m 1\n", 400, "jobNameIsRequired"),
        case(
            "PUT",
            "/metrics/job@base64/",
            b"m 1\n",
            400,
            "jobNameIsRequired",
        ),
        case("DELETE", "/metrics/job/", b"", 400, "jobNameIsRequired"),
        case(
            "PUT",
            "/metrics/job/j/a",
            b"m 1\n",
            400,
            "oddLabelComponents",
        ),
        case(
            "PUT",
            "/metrics/job/j/a/b/c",
            b"m 1\n",
            400,
            "oddLabelComponents",
        ),
        case("DELETE", "/metrics/job/j/a", b"", 400, "oddLabelComponents"),
        case(
            "PUT",
            "/metrics/job/j/1a/v",
            b"m 1\n",
            400,
            "invalidLabelName",
        ),
        case(
            "PUT",
            "/metrics/job/j/__x/v",
            b"m 1\n",
            400,
            "invalidLabelName",
        ),
        case(
            "PUT",
            "/metrics/job/j/a-b/v",
            b"m 1\n",
            400,
            "invalidLabelName",
        ),
        case(
            "PUT",
            "/metrics/job/j/a.b/v",
            b"m 1\n",
            400,
            "invalidLabelName",
        ),
        case(
            "PUT",
            "/metrics/job/j/a@base64/!!!",
            b"m 1\n",
            400,
            "invalidBase64",
        ),
        case(
            "PUT",
            "/metrics/job@base64/_w",
            b"m 1\n",
            400,
            "invalidBase64",
        ),
        case("PUT", "/metrics/job/%zz", b"m 1\n", 400, "invalidPath"),
        case("PUT", "/metrics/job/%ff", b"m 1\n", 400, "invalidPath"),
        case(
            "POST",
            "/metrics/job/j/instance/%2",
            b"m 1\n",
            400,
            "invalidPath",
        ),
        // Methods and routes.
        case("GET", "/metrics/job/j", b"", 405, "methodNotAllowed"),
        case("PATCH", "/metrics/job/j", b"m 1\n", 405, "methodNotAllowed"),
        case("POST", "/metrics", b"m 1\n", 405, "methodNotAllowed"),
        case("DELETE", "/api/v1/metrics", b"", 405, "methodNotAllowed"),
        case("POST", "/status", b"", 405, "methodNotAllowed"),
        case("GET", "/nope", b"", 404, "notFound"),
        case("PUT", "/metrics/jobs/j", b"m 1\n", 404, "notFound"),
        case("PUT", "/api/v1/admin/wipe", b"", 404, "notFound"),
        case("POST", "/status/delete", b"token=x", 404, "notFound"),
        case("POST", "/-/quit", b"", 403, "lifecycleDisabled"),
        // Text bodies.
        text("a b\n", "invalidTextFormat"),
        text("a 1 2 3\n", "invalidTextFormat"),
        text("a{b=\"c} 1\n", "invalidTextFormat"),
        text("a{b=c} 1\n", "invalidTextFormat"),
        text("a{b=\"c\" 1\n", "invalidTextFormat"),
        text("a{1b=\"c\"} 1\n", "invalidTextFormat"),
        text("# TYPE a nonsense\na 1\n", "invalidTextFormat"),
        text(
            "# TYPE a counter\n# TYPE a gauge\na 1\n",
            "invalidTextFormat",
        ),
        text("# HELP a x\n# HELP a y\na 1\n", "invalidTextFormat"),
        text("a{__name__=\"x\"} 1\n", "invalidTextFormat"),
        text("a{b=\"1\",b=\"2\"} 1\n", "invalidTextFormat"),
        text("a{b=\"\\q\"} 1\n", "invalidTextFormat"),
        text("a 1 99999999999999999999\n", "invalidTextFormat"),
        text(
            "# TYPE s summary\ns{quantile=\"x\"} 1\n",
            "invalidTextFormat",
        ),
        text(
            "# TYPE h histogram\nh_bucket{le=\"x\"} 1\n",
            "invalidTextFormat",
        ),
        text("{\"a.b\"} 1\n", "invalidTextFormat"),
        text("a 1\nb 1\na 2\n", "duplicateMetricFamily"),
        text("a 1 9999999999999999\n", "timestampOutOfRange"),
        text(&many_samples, "sampleLimitExceeded"),
        text(&many_labels, "labelLimitExceeded"),
        text(
            &format!("m{{a=\"{}\"}} 1\n", "v".repeat(20_000)),
            "labelLimitExceeded",
        ),
        text(
            &format!("m{{{}=\"v\"}} 1\n", "l".repeat(300)),
            "labelLimitExceeded",
        ),
        case(
            "PUT",
            "/metrics/job/bad",
            b"\xff 1\n",
            400,
            "invalidTextFormat",
        ),
        case(
            "PUT",
            "/metrics/job/bad",
            b"a{b=\"\xff\"} 1\n",
            400,
            "invalidTextFormat",
        ),
        // Protobuf bodies.
        proto(b"\x05abc".to_vec(), "invalidProtobuf"),
        proto(vec![0xff; 8], "invalidProtobuf"),
        proto(delimited(&[0x0a, 0x10, b'x']), "invalidProtobuf"),
        proto(delimited(&[0x18, 0x01]), "invalidProtobuf"),
        saying(
            proto(delimited(&family("1a", 1, 2)), "invalidProtobuf"),
            "invalid metric name",
        ),
        saying(
            proto(delimited(&family("m", 99, 2)), "invalidProtobuf"),
            "unknown metric type",
        ),
        saying(
            proto(delimited(&family("m", 1, 3)), "invalidProtobuf"),
            "has no gauge value",
        ),
        proto(
            [delimited(&family("m", 1, 2)), delimited(&family("m", 1, 2))].concat(),
            "duplicateMetricFamily",
        ),
        proto(b"m 1\n".to_vec(), "invalidProtobuf"),
        // Encodings and sizes.
        encoded("gzip", b"m 1\n".to_vec(), 400, "corruptBody"),
        encoded("gzip", gzip(b"m 1\n")[..10].to_vec(), 400, "corruptBody"),
        encoded("snappy", b"garbage".to_vec(), 400, "corruptBody"),
        encoded("br", b"m 1\n".to_vec(), 415, "unsupportedContentEncoding"),
        encoded(
            "gzip",
            gzip(&vec![b'#'; 300_000]),
            413,
            "decompressedBodyTooLarge",
        ),
        case(
            "PUT",
            "/metrics/job/bad",
            &vec![b'#'; 70_000],
            413,
            "bodyTooLarge",
        ),
        // The consistency check (its own job: it records a failure time).
        case(
            "PUT",
            "/metrics/job/inconsistent",
            b"a{b=\"1\"} 1\na{b=\"1\"} 2\n",
            400,
            "inconsistentMetrics",
        ),
        case(
            "PUT",
            "/metrics/job/inconsistent",
            b"# TYPE base counter\nbase 1\n",
            400,
            "inconsistentMetrics",
        ),
    ];
    for c in &mut cases {
        if c.method == "GET" || c.method == "HEAD" || c.method == "DELETE" {
            c.content_type = None;
        }
    }
    cases
}

#[test]
fn malformed_requests_are_refused_and_change_nothing() {
    let agent = Agent::start_raw(
        free_port(),
        "max_body_size = \"64KiB\"\nmax_decompressed_size = \"256KiB\"\n\n\
         [[inputs.pushgateway]]\nsample_limit = 1000\n",
    );
    let r = agent.request(
        "PUT",
        "/metrics/job/base/instance/i",
        &[("Content-Type", TEXT)],
        b"# TYPE base gauge\nbase{k=\"v\"} 1\n",
    );
    assert_eq!(r.status, 200);
    let lines = wait_for("the baseline's point", Duration::from_secs(10), || {
        let l = agent.lines();
        (!l.is_empty()).then_some(l.len())
    });
    let state = |agent: &Agent| -> Vec<String> {
        agent
            .request("GET", "/metrics", &[], b"")
            .text()
            .lines()
            .filter(|l| !l.starts_with("pushkit_") && !l.starts_with("# "))
            .filter(|l| !l.contains("job=\"inconsistent\""))
            .map(str::to_string)
            .collect()
    };
    let before = state(&agent);
    assert!(
        before
            .iter()
            .any(|l| l == "base{instance=\"i\",job=\"base\",k=\"v\"} 1"),
        "{before:?}"
    );

    let cases = corpus();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    for c in &cases {
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(ct) = c.content_type {
            headers.push(("Content-Type", ct));
        }
        if let Some(e) = c.encoding {
            headers.push(("Content-Encoding", e));
        }
        let r = agent.request(c.method, &c.path, &headers, &c.body);
        let shown = String::from_utf8_lossy(&c.body[..c.body.len().min(80)]).into_owned();
        assert_eq!(
            r.status,
            c.status,
            "{} {} {shown:?}: {}",
            c.method,
            c.path,
            r.text()
        );
        if c.method != "HEAD" {
            let reply: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| {
                panic!(
                    "{} {} {shown:?}: not JSON ({e}): {}",
                    c.method,
                    c.path,
                    r.text()
                )
            });
            assert_eq!(
                reply["error_code"], c.code,
                "{} {} {shown:?}: {reply}",
                c.method, c.path
            );
            let message = reply["message"].as_str().unwrap_or_default();
            assert!(!message.is_empty(), "{} {}: {reply}", c.method, c.path);
            if let Some(says) = c.says {
                assert!(message.contains(says), "{} {}: {reply}", c.method, c.path);
            }
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(state(&agent), before, "the store changed");
    assert_eq!(
        agent.lines().len(),
        lines,
        "points went out: {:?}",
        &agent.lines()[lines..]
    );
    let r = agent.request("GET", "/-/healthy", &[], b"");
    assert_eq!(r.status, 200);
}
