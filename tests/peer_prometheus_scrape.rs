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
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const SCRAPE_JOB: &str = "pushkit-store";
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

struct Prometheus {
    proc: ChildGuard,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target_port: u16) -> Prometheus {
        let bin = std::env::var_os("PUSHKIT_PROMETHEUS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus"));
        assert!(
            bin.exists(),
            "{} not found: install Debian's prometheus (.ci/run does), or set PUSHKIT_PROMETHEUS",
            bin.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("pushkit-prom-")
            .tempdir()
            .expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: {SCRAPE_JOB}\n    honor_labels: true\n    \
                 scrape_interval: 1s\n    scrape_timeout: 1s\n    metrics_path: /metrics\n    \
                 static_configs:\n      - targets: [\"127.0.0.1:{target_port}\"]\n"
            ),
        )
        .expect("write prometheus.yml");
        let port = free_port();
        let mut cmd = Command::new(&bin);
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn");
        let mut proc = spawn_logged("prometheus", cmd, dir.path());
        proc.logs.push(config);
        let ready = format!("http://127.0.0.1:{port}/-/ready");
        if poll_until(Duration::from_secs(60), Duration::from_millis(100), || {
            proc.assert_running();
            get(&ready).ok().filter(|r| r.status == 200)
        })
        .is_none()
        {
            panic!("prometheus not ready on {ready}\n{}", proc.log_text());
        }
        Prometheus {
            proc,
            port,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn api(&mut self, path: &str) -> Json {
        self.proc.assert_running();
        let url = self.url(path);
        let r = get(&url).unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert_eq!(r.status, 200, "GET {url}: {}", r.text());
        let v: Json = serde_json::from_str(&r.text())
            .unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {}", r.text()));
        assert_eq!(v["status"], "success", "GET {url}: {v}");
        v
    }

    /// An instant query: every series' labels (`__name__` included) → value.
    fn query(&mut self, promql: &str) -> BTreeMap<BTreeMap<String, String>, f64> {
        let v = self.api(&format!("/api/v1/query?query={}", percent_encode(promql)));
        assert_eq!(v["data"]["resultType"], "vector", "{promql}: {v}");
        v["data"]["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{promql}: no result array: {v}"))
            .iter()
            .map(|s| {
                let labels = s["metric"]
                    .as_object()
                    .expect("metric object")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().expect("label").to_string()))
                    .collect();
                let value: f64 = s["value"][1]
                    .as_str()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or_else(|| panic!("{promql}: bad value in {s}"));
                (labels, value)
            })
            .collect()
    }

    /// Polls `promql` until it returns exactly `want`; panics with the last
    /// answer and the logs after [`QUERY_TIMEOUT`].
    fn wait_query(&mut self, promql: &str, want: &BTreeMap<BTreeMap<String, String>, f64>) {
        let mut last = BTreeMap::new();
        let found = poll_until(QUERY_TIMEOUT, Duration::from_millis(500), || {
            last = self.query(promql);
            (last == *want).then_some(())
        });
        if found.is_none() {
            panic!(
                "after {QUERY_TIMEOUT:?} Prometheus answers {promql}\nwith {last:#?}\nwant {want:#?}\n{}",
                self.proc.log_text()
            );
        }
    }
}

fn series(pairs: &[(&str, &str)], value: f64) -> (BTreeMap<String, String>, f64) {
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

    let mut prom = Prometheus::start(agent.port);
    let group = [("job", "scrape_test"), ("instance", "inst1")];
    let with = |name: &str, extra: &[(&str, &str)], v: f64| {
        let mut pairs = vec![("__name__", name)];
        pairs.extend_from_slice(&group);
        pairs.extend_from_slice(extra);
        series(&pairs, v)
    };

    // The counter, with the pushed job/instance (not the target's).
    prom.wait_query(
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
    prom.wait_query(
        "scrape_latency_seconds_bucket",
        &BTreeMap::from([
            with("scrape_latency_seconds_bucket", &[("le", "0.1")], 5.0),
            with("scrape_latency_seconds_bucket", &[("le", "1")], 9.0),
            with("scrape_latency_seconds_bucket", &[("le", "+Inf")], 10.0),
        ]),
    );
    prom.wait_query(
        "{__name__=~\"scrape_latency_seconds_(sum|count)\"}",
        &BTreeMap::from([
            with("scrape_latency_seconds_sum", &[], 4.5),
            with("scrape_latency_seconds_count", &[], 10.0),
        ]),
    );
    // Nothing renamed to exported_job/exported_instance.
    let exported = prom.query("{exported_job!=\"\"} or {exported_instance!=\"\"}");
    assert!(exported.is_empty(), "exported_* labels: {exported:#?}");

    // The group's push time came along too.
    let push_time = prom.query("push_time_seconds{job=\"scrape_test\",instance=\"inst1\"}");
    let now = now_ns() as f64 / 1e9;
    assert!(
        push_time.len() == 1 && push_time.values().all(|v| (v - now).abs() < 600.0),
        "push_time_seconds: {push_time:#?} (now {now})"
    );

    // The target: up, no scrape error. `up` keeps the target's labels.
    let target = format!("127.0.0.1:{}", agent.port);
    prom.wait_query(
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
