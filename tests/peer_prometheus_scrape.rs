//! Prometheus (Debian's `prometheus`) scrapes pushkit's `/metrics` as it
//! scrapes a Pushgateway: `honor_labels: true`, so the pushed `job` and
//! `instance` labels win over the target's. A counter with labels and a
//! histogram pushed to `/metrics/job/scrape_test/instance/inst1` must show
//! up in Prometheus' query API with exactly the pushed labels and values,
//! and the scrape target must be healthy.
//!
//! `PUSHKIT_PROMETHEUS` names the binary (default /usr/bin/prometheus).

mod common;

use common::*;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::time::Duration;

const SCRAPE_JOB: &str = "pushkit-store";
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// Prometheus scraping pushkit on `target_port` every second, as it
/// scrapes a Pushgateway (`honor_labels: true`).
fn start_prometheus(target_port: u16) -> Prometheus {
    Prometheus::start(
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: {SCRAPE_JOB}\n    honor_labels: true\n    \
             scrape_interval: 1s\n    scrape_timeout: 1s\n    metrics_path: /metrics\n    \
             static_configs:\n      - targets: [\"127.0.0.1:{target_port}\"]\n"
        ),
        &["--log.level=warn"],
    )
}

/// An instant query: every series' labels (`__name__` included) → value.
fn query(prom: &mut Prometheus, promql: &str) -> BTreeMap<Labels, f64> {
    prom.query(promql, "", "vector")
        .into_iter()
        .map(|(labels, s)| (labels, api_sample(&s["value"]).1))
        .collect()
}

/// Polls `promql` until it returns exactly `want`; panics with the last
/// answer and the logs after [`QUERY_TIMEOUT`].
fn wait_query(prom: &mut Prometheus, promql: &str, want: &BTreeMap<Labels, f64>) {
    let mut last = BTreeMap::new();
    let found = poll_until(QUERY_TIMEOUT, Duration::from_millis(500), || {
        last = query(prom, promql);
        (last == *want).then_some(())
    });
    if found.is_none() {
        panic!(
            "after {QUERY_TIMEOUT:?} Prometheus answers {promql}\nwith {last:#?}\nwant {want:#?}\n{}",
            prom.log_text()
        );
    }
}

fn series(pairs: &[(&str, &str)], value: f64) -> (Labels, f64) {
    (
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        value,
    )
}

#[test]
#[ignore = "needs prometheus: run via .ci/run"]
fn prometheus_scrapes_pushed_groups_with_honor_labels() {
    let agent = Agent::start(&AgentConf {
        pushgateway: String::new(),
        ..AgentConf::default()
    });
    let body = "# HELP scrape_requests_total Requests served.\n\
                # TYPE scrape_requests_total counter\n\
                scrape_requests_total{code=\"200\",method=\"get\"} 1027\n\
                scrape_requests_total{code=\"500\",method=\"get\"} 3\n\
                # TYPE scrape_latency_seconds histogram\n\
                scrape_latency_seconds_bucket{le=\"0.1\"} 5\n\
                scrape_latency_seconds_bucket{le=\"1\"} 9\n\
                scrape_latency_seconds_bucket{le=\"+Inf\"} 10\n\
                scrape_latency_seconds_sum 4.5\n\
                scrape_latency_seconds_count 10\n";
    let r = agent.request(
        "PUT",
        "/metrics/job/scrape_test/instance/inst1",
        &[("Content-Type", "text/plain; version=0.0.4")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "PUT: {}", r.text());

    let mut prom = start_prometheus(agent.port);
    let group = [("job", "scrape_test"), ("instance", "inst1")];
    let with = |name: &str, extra: &[(&str, &str)], v: f64| {
        let mut pairs = vec![("__name__", name)];
        pairs.extend_from_slice(&group);
        pairs.extend_from_slice(extra);
        series(&pairs, v)
    };

    // The counter, with the pushed job/instance (not the target's).
    wait_query(
        &mut prom,
        "scrape_requests_total",
        &BTreeMap::from([
            with(
                "scrape_requests_total",
                &[("code", "200"), ("method", "get")],
                1027.0,
            ),
            with(
                "scrape_requests_total",
                &[("code", "500"), ("method", "get")],
                3.0,
            ),
        ]),
    );
    // The histogram's buckets, sum and count.
    wait_query(
        &mut prom,
        "scrape_latency_seconds_bucket",
        &BTreeMap::from([
            with("scrape_latency_seconds_bucket", &[("le", "0.1")], 5.0),
            with("scrape_latency_seconds_bucket", &[("le", "1")], 9.0),
            with("scrape_latency_seconds_bucket", &[("le", "+Inf")], 10.0),
        ]),
    );
    wait_query(
        &mut prom,
        "{__name__=~\"scrape_latency_seconds_(sum|count)\"}",
        &BTreeMap::from([
            with("scrape_latency_seconds_sum", &[], 4.5),
            with("scrape_latency_seconds_count", &[], 10.0),
        ]),
    );
    // Nothing renamed to exported_job/exported_instance.
    let exported = query(
        &mut prom,
        "{exported_job!=\"\"} or {exported_instance!=\"\"}",
    );
    assert!(exported.is_empty(), "exported_* labels: {exported:#?}");

    // The group's push time came along too.
    let push_time = query(
        &mut prom,
        "push_time_seconds{job=\"scrape_test\",instance=\"inst1\"}",
    );
    let now = now_ns() as f64 / 1e9;
    assert!(
        push_time.len() == 1 && push_time.values().all(|v| (v - now).abs() < 600.0),
        "push_time_seconds: {push_time:#?} (now {now})"
    );

    // The target: up, no scrape error. `up` keeps the target's labels.
    let target = format!("127.0.0.1:{}", agent.port);
    wait_query(
        &mut prom,
        &format!("up{{job=\"{SCRAPE_JOB}\"}}"),
        &BTreeMap::from([series(
            &[
                ("__name__", "up"),
                ("job", SCRAPE_JOB),
                ("instance", &target),
            ],
            1.0,
        )]),
    );
    let targets = prom.api("/api/v1/targets?state=active");
    let active = targets["data"]["activeTargets"]
        .as_array()
        .unwrap_or_else(|| panic!("no activeTargets: {targets}"));
    let ours: Vec<&Json> = active
        .iter()
        .filter(|t| t["scrapePool"] == SCRAPE_JOB)
        .collect();
    assert_eq!(ours.len(), 1, "targets: {targets}");
    assert_eq!(ours[0]["health"], "up", "target: {}", ours[0]);
    assert_eq!(ours[0]["lastError"], "", "target: {}", ours[0]);
    assert_eq!(ours[0]["scrapeUrl"], format!("http://{target}/metrics"));
}

/// The alerts of the Prometheus docs' "When to use the Pushgateway":
/// `time() - my_batch_job_last_success_unixtime > 3600` fires for the job
/// whose last success is two hours old and not for the one a minute old,
/// and one on `push_time_seconds` sees both groups as recently pushed.
#[test]
#[ignore = "needs prometheus: run via .ci/run"]
fn alert_expressions_on_pushed_groups_evaluate_as_expected() {
    let agent = Agent::start(&AgentConf {
        pushgateway: String::new(),
        ..AgentConf::default()
    });
    let now_s = now_ns() / 1_000_000_000;
    for (instance, age) in [("stale", 7_200), ("fresh", 60)] {
        let body = format!(
            "# TYPE my_batch_job_last_success_unixtime gauge\n\
             my_batch_job_last_success_unixtime {}\n",
            now_s - age
        );
        let r = agent.request(
            "PUT",
            &format!("/metrics/job/alert_test/instance/{instance}"),
            &[],
            body.as_bytes(),
        );
        assert_eq!(r.status, 200, "PUT: {}", r.text());
    }
    let mut prom = start_prometheus(agent.port);
    // Wait for a scrape to bring both groups in.
    wait_query(
        &mut prom,
        "count(my_batch_job_last_success_unixtime{job=\"alert_test\"})",
        &BTreeMap::from([series(&[], 2.0)]),
    );
    let firing = query(
        &mut prom,
        "time() - my_batch_job_last_success_unixtime{job=\"alert_test\"} > 3600",
    );
    let instances: Vec<&str> = firing.keys().map(|l| l["instance"].as_str()).collect();
    assert_eq!(instances, ["stale"], "{firing:#?}");
    let age = firing.values().next().copied().unwrap_or_default();
    assert!((7_100.0..7_400.0).contains(&age), "age {age}");
    // Both groups were pushed moments ago: no push-age alert, both young.
    let old_pushes = query(
        &mut prom,
        "time() - push_time_seconds{job=\"alert_test\"} > 3600",
    );
    assert!(old_pushes.is_empty(), "{old_pushes:#?}");
    let young = query(
        &mut prom,
        "count(time() - push_time_seconds{job=\"alert_test\"} < 600)",
    );
    assert_eq!(young, BTreeMap::from([series(&[], 2.0)]));
}

/// Prometheus 2.42 with native histograms and exemplar storage on scrapes
/// pushkit in protobuf: a pushed native histogram comes back from its query
/// API as a histogram, bucket for bucket, and a pushed counter's exemplar
/// from its exemplar API.
#[test]
#[ignore = "needs prometheus: run via .ci/run"]
fn prometheus_scrapes_native_histograms_and_exemplars() {
    let agent = Agent::start(&AgentConf::default());
    let now_s = now_ns() / 1_000_000_000;
    let r = agent.request(
        "PUT",
        "/metrics/job/native_test/instance/n1",
        &[("Content-Type", DELIMITED)],
        &native_push_body(now_s),
    );
    assert_eq!(r.status, 200, "PUT: {}", r.text());
    let mut prom = Prometheus::start(
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: {SCRAPE_JOB}\n    honor_labels: true\n    \
             static_configs:\n      - targets: [\"127.0.0.1:{}\"]\n",
            agent.port
        ),
        &[
            "--log.level=warn",
            "--enable-feature=native-histograms,exemplar-storage",
        ],
    );
    let selector = "demo_native_seconds{job=\"native_test\",instance=\"n1\",path=\"/a\"}";
    assert_native_histogram_in(&mut prom, selector, QUERY_TIMEOUT);
    let series = wait_native_exemplar(&mut prom, now_s, QUERY_TIMEOUT);
    assert_eq!(series["seriesLabels"]["job"], "native_test", "{series}");
}
