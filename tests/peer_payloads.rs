//! The sample payloads in samples/payloads/, pushed both to Prometheus' own
//! Pushgateway (Debian's `prometheus-pushgateway`, the reference) and to
//! pushkit (stdout sink, keep_exist_metric_name = true). Every Prometheus
//! series the Pushgateway serves for the group must come out of pushkit as
//! exactly one field, named like the series, with the same labels as tags
//! and the same value, in the measurement named by the text before the
//! first `_`; and nothing else may come out.
//!
//! `PUSHKIT_PUSHGATEWAY` names the binary (default
//! /usr/bin/prometheus-pushgateway).

mod common;

use common::*;
use std::collections::BTreeMap;
use std::time::Duration;

type Series = (String, BTreeMap<String, String>);

/// `(payload file, grouping path after /metrics, job, number of points
/// pushkit must emit)`.
const PAYLOADS: &[(&str, &str, &str, usize)] = &[
    (
        "counter.prom",
        "/job/pl-counter/instance/db1",
        "pl-counter",
        4,
    ),
    ("gauge.prom", "/job/pl-gauge/instance/db1", "pl-gauge", 4),
    // 2 services × (count/sum point + 3 quantile points)
    ("summary.prom", "/job/pl-summary", "pl-summary", 8),
    // count/sum point + 5 bucket points
    (
        "histogram.prom",
        "/job/pl-histogram/instance/worker-3",
        "pl-histogram",
        6,
    ),
    ("many-series.prom", "/job/pl-fleet", "pl-fleet", 100),
];

#[test]
#[ignore = "needs prometheus-pushgateway: run via .ci/run"]
fn sample_payloads_map_like_the_reference_pushgateway() {
    let mut pgw = Pushgateway::start();
    let mut agent = Agent::start(&AgentConf::default());
    let dir = repo_root().join("samples/payloads");

    for &(file, group, job, points) in PAYLOADS {
        let body = std::fs::read(dir.join(file)).expect("read payload");
        let path = format!("/metrics{group}");
        let headers = [("Content-Type", "text/plain; version=0.0.4")];

        let reference = pgw.request("PUT", &path, &headers, &body);
        assert_eq!(
            reference.status,
            200,
            "the reference Pushgateway rejects {file}: {}",
            reference.text()
        );
        let r = agent.request("PUT", &path, &headers, &body);
        assert_eq!(r.status, 200, "pushkit rejects {file}: {}", r.text());

        // What the reference serves for this group, minus its own series.
        let exposition = pgw.request("GET", "/metrics", &[], b"");
        let mut want: BTreeMap<Series, f64> = BTreeMap::new();
        for (name, labels, value) in parse_exposition(&exposition.text()) {
            if labels.get("job").map(String::as_str) != Some(job)
                || name == "push_time_seconds"
                || name == "push_failure_time_seconds"
            {
                continue;
            }
            assert!(
                want.insert((name.clone(), labels), value).is_none(),
                "duplicate series {name} in the reference"
            );
        }
        assert!(!want.is_empty(), "the reference has nothing for {job}");

        let tag = format!("job={job}");
        let lines = agent.wait_lines(&format!("points of {file}"), POINTS_TIMEOUT, |lines| {
            let got = lines_with_tag(lines, &tag);
            (got.len() >= points).then_some(got)
        });
        assert_eq!(lines.len(), points, "points of {file}");

        let mut got: BTreeMap<Series, f64> = BTreeMap::new();
        for line in &lines {
            let raw = format!("{} {}", line.series, line.time_ns);
            let p = parse_point(&raw).unwrap_or_else(|| panic!("unparsable line {raw:?}"));
            for (field, value) in &p.fields {
                let prefix = field.split('_').next().unwrap_or_default();
                assert_eq!(p.measurement, prefix, "measurement of {raw}");
                let key = (field.clone(), p.tags.clone());
                assert!(
                    got.insert(key, *value).is_none(),
                    "series {field} {:?} twice",
                    p.tags
                );
            }
        }
        assert_eq!(
            got, want,
            "{file}: pushkit (left) vs the reference Pushgateway (right)"
        );
    }

    // Nothing more arrives later (e.g. a duplicate flush).
    std::thread::sleep(Duration::from_millis(500));
    let total: usize = PAYLOADS.iter().map(|p| p.3).sum();
    let all: usize = PAYLOADS
        .iter()
        .map(|p| lines_with_tag(&agent.lines(), &format!("job={}", p.2)).len())
        .sum();
    assert_eq!(all, total, "points after all pushes");
    agent.assert_running();
}
