//! `utf8_names` (Pushgateway 1.11's `--push.enable-utf8-names`) with the
//! release-style agent over HTTP: quoted names in text, any name in
//! protobuf, `U__`-escaped URL label names, exposition escaped as `Accept`
//! asks (underscores by default, quoted UTF-8 with
//! `escaping=allow-utf-8`, `U__` with `escaping=values`), and a name that
//! would expose like another refused. The cases follow a reading of the
//! Pushgateway 1.11 source and of prometheus/common's escaping code: no
//! Pushgateway 1.11 runs here (Debian ships 1.5.1).

mod common;

use common::*;

const TEXT: (&str, &str) = ("Content-Type", "text/plain; version=0.0.4");

fn agent(utf8: bool) -> Agent {
    Agent::start(&AgentConf {
        pushgateway: format!("utf8_names = {utf8}\n"),
        ..AgentConf::default()
    })
}

fn get(agent: &Agent, accept: Option<&str>) -> (String, String) {
    let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("Accept", *a)).collect();
    let r = agent.request("GET", "/metrics", &headers, b"");
    assert_eq!(r.status, 200);
    let ct = r.header("content-type").unwrap_or_default().to_string();
    (ct, r.text())
}

const BODY: &str = "# HELP \"my.c\" A counter with a dot.\n# TYPE \"my.c\" counter\n\
                    {\"my.c\",\"label.name\"=\"v\"} 3\n\
                    # TYPE \"t.h\" histogram\n\
                    {\"t.h_bucket\",le=\"1\"} 1\n{\"t.h_count\"} 1\n{\"t.h_sum\"} 0.5\n\
                    plain_gauge{\"ü\"=\"x\"} 5\n";

#[test]
fn utf8_names_in_and_out() {
    let mut agent = agent(true);
    let r = agent.request(
        "PUT",
        "/metrics/job/j/U__zone_2e_name/eu",
        &[TEXT],
        BODY.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());

    // Default: names escaped with underscores, and Content-Type says so.
    let (ct, text) = get(&agent, None);
    assert!(ct.ends_with("; escaping=underscores"), "{ct}");
    for line in [
        "# HELP my_c A counter with a dot.",
        "# TYPE my_c counter",
        "my_c{instance=\"\",job=\"j\",label_name=\"v\",zone_name=\"eu\"} 3",
        "t_h_bucket{instance=\"\",job=\"j\",zone_name=\"eu\",le=\"1\"} 1",
        "t_h_count{instance=\"\",job=\"j\",zone_name=\"eu\"} 1",
        // Escaped in place: labels keep the order of their UTF-8 names.
        "plain_gauge{instance=\"\",job=\"j\",zone_name=\"eu\",_=\"x\"} 5",
    ] {
        assert!(text.lines().any(|l| l == line), "{line}\nnot in\n{text}");
    }
    assert!(!text.contains("my.c"), "{text}");

    // allow-utf-8: quoted names where they are not legacy ones.
    let (ct, text) = get(
        &agent,
        Some("text/plain;version=0.0.4;escaping=allow-utf-8"),
    );
    assert!(ct.ends_with("; escaping=allow-utf-8"), "{ct}");
    for line in [
        "# HELP \"my.c\" A counter with a dot.",
        "# TYPE \"my.c\" counter",
        "{\"my.c\",instance=\"\",job=\"j\",\"label.name\"=\"v\",\"zone.name\"=\"eu\"} 3",
        "{\"t.h_bucket\",instance=\"\",job=\"j\",\"zone.name\"=\"eu\",le=\"1\"} 1",
        "plain_gauge{instance=\"\",job=\"j\",\"zone.name\"=\"eu\",\"ü\"=\"x\"} 5",
    ] {
        assert!(text.lines().any(|l| l == line), "{line}\nnot in\n{text}");
    }

    // values: the U__ form, in protobuf too.
    let proto = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
                 encoding=delimited;escaping=values";
    let r = agent.request("GET", "/metrics", &[("Accept", proto)], b"");
    let ct = r.header("content-type").unwrap_or_default().to_string();
    assert!(ct.starts_with("application/vnd.google.protobuf") && ct.ends_with("escaping=values"));
    let body = String::from_utf8_lossy(&r.body).to_string();
    assert!(
        body.contains("U__my_2e_c") && body.contains("U__zone_2e_name"),
        "{body}"
    );

    // The JSON API and the points keep the names as pushed.
    let json = agent.request("GET", "/api/v1/metrics", &[], b"").text();
    assert!(
        json.contains("\"my.c\"") && json.contains("\"zone.name\":\"eu\""),
        "{json}"
    );
    let lines = agent.wait_lines("the point of my.c", POINTS_TIMEOUT, |lines| {
        lines.iter().find(|l| l.contains("label.name=v")).cloned()
    });
    assert!(
        lines.contains("zone.name=eu") && lines.contains("my.c=3"),
        "{lines}"
    );
}

#[test]
fn names_that_expose_alike_are_refused() {
    let agent = agent(true);
    let put = |path: &str, body: &str| agent.request("PUT", path, &[TEXT], body.as_bytes());
    assert_eq!(put("/metrics/job/a", "foo_bar 1\n").status, 200);
    let r = put("/metrics/job/b", "{\"foo.bar\"} 2\n");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("inconsistentMetrics") && r.text().contains("foo_bar"));
    // And the other way round, and within one push.
    assert_eq!(put("/metrics/job/c", "{\"x.y\"} 1\n").status, 200);
    assert_eq!(put("/metrics/job/d", "x_y 1\n").status, 400);
    assert_eq!(
        put("/metrics/job/e", "{\"p.q\"} 1\n{\"p-q\"} 1\n").status,
        400
    );
    assert_eq!(
        put("/metrics/job/f", "m{\"a.b\"=\"1\",a_b=\"2\"} 1\n").status,
        400
    );
    // Once the first holder is gone, the other name is free.
    assert_eq!(
        agent.request("DELETE", "/metrics/job/c", &[], b"").status,
        202
    );
    assert_eq!(put("/metrics/job/d", "x_y 1\n").status, 200);
    // A PUT that replaces the group's own family is no collision.
    assert_eq!(put("/metrics/job/d", "{\"x.y\"} 1\n").status, 200);
}

#[test]
fn url_label_names_unescape_only_with_utf8_names() {
    let mut on = agent(true);
    let mut off = agent(false);
    let body = b"m 1\n";
    for (utf8, path, want) in [
        (true, "/metrics/job/j/U__a_2e_b@base64/Yg", "a.b=b"),
        (true, "/metrics/job/j/U__foo_zz_bar/v", "U__foo_zz_bar=v"),
        (false, "/metrics/job/j/U__a_2e_b/v", "U__a_2e_b=v"),
    ] {
        let agent = if utf8 { &mut on } else { &mut off };
        let r = agent.request("PUT", path, &[TEXT], body);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        agent.wait_lines(want, POINTS_TIMEOUT, |lines| {
            lines.iter().find(|l| l.contains(want)).cloned()
        });
    }
    for (agent, path) in [
        (&on, "/metrics/job/j/U_____5f_x/v"),
        (&on, "/metrics/job/j/U__/v"),
        (&off, "/metrics/job/j/a.b/v"),
    ] {
        let r = agent.request("PUT", path, &[TEXT], body);
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert!(r.text().contains("invalidLabelName"), "{}", r.text());
    }
    // Without utf8_names, quoted names are refused as in 1.5.1, and the
    // exposition carries no escaping parameter.
    let r = off.request("PUT", "/metrics/job/q", &[TEXT], b"{\"my.c\"} 1\n");
    assert_eq!(r.status, 400, "{}", r.text());
    let (ct, _) = get(&off, None);
    assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
}

/// Any name in protobuf with `utf8_names`; a 400 without, as in 1.5.1.
#[test]
fn protobuf_names_with_and_without_utf8_names() {
    use prost::Message;
    use pushkit::expfmt::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};
    let family = MetricFamily {
        name: Some("proto.metric".into()),
        help: None,
        r#type: Some(MetricType::Gauge as i32),
        metric: vec![Metric {
            label: vec![LabelPair {
                name: Some("a.b".into()),
                value: Some("v".into()),
            }],
            gauge: Some(Gauge { value: Some(2.0) }),
            ..Metric::default()
        }],
        unit: None,
    };
    let mut body = Vec::new();
    family.encode_length_delimited(&mut body).unwrap();
    let ct = ("Content-Type", DELIMITED);
    let on = agent(true);
    let r = on.request("PUT", "/metrics/job/p", &[ct], &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let (_, text) = get(&on, Some("text/plain;escaping=allow-utf-8"));
    assert!(
        text.lines()
            .any(|l| l == "{\"proto.metric\",\"a.b\"=\"v\",instance=\"\",job=\"p\"} 2"),
        "{text}"
    );
    let off = agent(false);
    let r = off.request("PUT", "/metrics/job/p", &[ct], &body);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("invalid metric name"), "{}", r.text());
}

/// A label name with `:` is a legal metric name but not a legal label
/// name. Go's `writeName` tests label names against the metric-name rule,
/// so it would write `a:b="v"` bare, which no parser reads back. pushkit
/// escapes and quotes label names by the label-name rule instead.
#[test]
fn label_names_with_colons_expose_parsably() {
    let agent = agent(true);
    let r = agent.request("PUT", "/metrics/job/j", &[TEXT], b"m{\"a:b\"=\"v\"} 1\n");
    assert_eq!(r.status, 200, "{}", r.text());
    let want = [
        (None, "m{\"a:b\"=\"v\",instance=\"\",job=\"j\"} 1", false),
        (None, "m{a_b=\"v\",instance=\"\",job=\"j\"} 1", true),
        (
            Some("text/plain;version=0.0.4;escaping=allow-utf-8"),
            "m{\"a:b\"=\"v\",instance=\"\",job=\"j\"} 1",
            true,
        ),
        (
            Some("text/plain;version=0.0.4;escaping=values"),
            "m{U__a_3a_b=\"v\",instance=\"\",job=\"j\"} 1",
            true,
        ),
        (
            Some("text/plain;version=0.0.4;escaping=dots"),
            "m{a__b=\"v\",instance=\"\",job=\"j\"} 1",
            true,
        ),
    ];
    for (accept, line, present) in want {
        let (_, text) = get(&agent, accept);
        assert_eq!(
            text.lines().any(|l| l == line),
            present,
            "{accept:?}: {line}\n{text}"
        );
        // Whatever the escaping, the scrape parses.
        let utf8 = accept.is_some_and(|a| a.contains("allow-utf-8"));
        pushkit::expfmt::text::parse_text_names(text.as_bytes(), utf8)
            .unwrap_or_else(|e| panic!("{accept:?}: {e}\n{text}"));
    }
    // `a:b` and `a_b` would expose alike under the default escaping.
    let r = agent.request(
        "PUT",
        "/metrics/job/k",
        &[TEXT],
        b"m{\"a:b\"=\"1\",a_b=\"2\"} 1\n",
    );
    assert_eq!(r.status, 400, "{}", r.text());
}
