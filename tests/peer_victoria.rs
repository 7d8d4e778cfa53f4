//! pushkit → VictoriaMetrics (Debian's `victoria-metrics`, 1.79) over the
//! InfluxDB line protocol `/write` endpoint, gzip on. Pushes text with a
//! counter, a gauge with labels, a summary and a histogram (some samples with
//! explicit timestamps), plus a push whose grouping value contains `/`
//! (`@base64`), then reads everything back from `/api/v1/export` and checks
//! names, labels, values and timestamps exactly.
//!
//! VictoriaMetrics names an Influx field `<measurement>_<field>`. With
//! `keep_exist_metric_name = false` the field is the part after the first
//! `_`, so the names in VictoriaMetrics are the pushed Prometheus names.
//!
//! `PUSHKIT_VICTORIA_METRICS` names the binary (default
//! /usr/bin/victoria-metrics).

mod common;

use common::*;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

struct Victoria {
    proc: ChildGuard,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Victoria {
    fn start() -> Victoria {
        let bin = std::env::var_os("PUSHKIT_VICTORIA_METRICS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/victoria-metrics"));
        assert!(
            bin.exists(),
            "{} not found: install Debian's victoria-metrics (.ci/run does), or set PUSHKIT_VICTORIA_METRICS",
            bin.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("pushkit-vm-")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let mut cmd = Command::new(&bin);
        cmd.arg(format!(
            "-storageDataPath={}",
            dir.path().join("data").display()
        ))
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        // Read back what was just written: no latency offset, no cache.
        .arg("-search.latencyOffset=0s")
        .arg("-search.disableCache")
        .arg("-memory.allowedPercent=10")
        .arg("-loggerLevel=WARN");
        let mut proc = spawn_logged("victoria-metrics", cmd, dir.path());
        let health = format!("http://127.0.0.1:{port}/health");
        let ready = poll_until(Duration::from_secs(20), Duration::from_millis(50), || {
            proc.assert_running();
            get(&health).ok().filter(|r| r.status == 200).map(|_| ())
        });
        if ready.is_none() {
            panic!(
                "victoria-metrics not healthy on {health}\n{}",
                proc.log_text()
            );
        }
        Victoria {
            proc,
            port,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// All samples of the series matching `selector`, keyed by the series'
    /// labels (`__name__` included), each as (timestamp ms, value).
    fn export(&mut self, selector: &str) -> BTreeMap<BTreeMap<String, String>, Vec<(i64, f64)>> {
        self.proc.assert_running();
        // Make just-ingested rows searchable.
        let flush = get(&self.url("/internal/force_flush")).expect("force_flush");
        assert_eq!(flush.status, 200, "force_flush: {}", flush.text());
        let url = self.url(&format!(
            "/api/v1/export?match[]={}",
            percent_encode(selector)
        ));
        let resp = get(&url).expect("export");
        assert_eq!(resp.status, 200, "export: {}", resp.text());
        let mut out = BTreeMap::new();
        for line in resp.text().lines().filter(|l| !l.trim().is_empty()) {
            let v: Json =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("export line {line:?}: {e}"));
            let labels: BTreeMap<String, String> = v["metric"]
                .as_object()
                .expect("metric object")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("label string").to_string()))
                .collect();
            let values = v["values"].as_array().expect("values");
            let times = v["timestamps"].as_array().expect("timestamps");
            assert_eq!(values.len(), times.len(), "{line}");
            let samples = times
                .iter()
                .zip(values)
                .map(|(t, v)| {
                    (
                        t.as_i64().expect("integer timestamp"),
                        v.as_f64().expect("numeric value"),
                    )
                })
                .collect();
            out.insert(labels, samples);
        }
        out
    }
}

fn labels(name: &str, pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    m.insert("__name__".to_string(), name.to_string());
    m
}

/// Base64 with the URL-safe alphabet and no padding (RFC 4648 §5), as the
/// Go client sends grouping values.
fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
#[ignore = "needs victoria-metrics: run via .ci/run"]
fn pushes_land_in_victoria_metrics_exactly() {
    let mut vm = Victoria::start();
    let agent = Agent::start(&AgentConf {
        sinks: vec![Sink {
            name: "vm".to_string(),
            url: vm.url("/write"),
            gzip: true,
        }],
        pushgateway: "keep_exist_metric_name = false\nhonor_timestamps = true\n".to_string(),
        ..AgentConf::default()
    });

    // Explicit timestamps well inside VictoriaMetrics' default retention,
    // deliberately not whole seconds.
    let ts_counter = now_ms() - 3_600_000 - 123;
    let ts_summary = now_ms() - 1_800_000 + 7;
    let ts_path = now_ms() - 600_000 + 45;
    let body = format!(
        "# HELP vmt_requests_total Requests.\n\
         # TYPE vmt_requests_total counter\n\
         vmt_requests_total{{code=\"200\"}} 1027 {ts_counter}\n\
         vmt_requests_total{{code=\"500\"}} 3 {ts_counter}\n\
         # TYPE vmt_temperature_celsius gauge\n\
         vmt_temperature_celsius{{room=\"lab\",floor=\"\"}} 21.5\n\
         # TYPE vmt_rpc_seconds summary\n\
         vmt_rpc_seconds{{quantile=\"0.5\"}} 0.25 {ts_summary}\n\
         vmt_rpc_seconds{{quantile=\"0.99\"}} 1.5 {ts_summary}\n\
         vmt_rpc_seconds_sum 42.75 {ts_summary}\n\
         vmt_rpc_seconds_count 100 {ts_summary}\n\
         # TYPE vmt_size_bytes histogram\n\
         vmt_size_bytes_bucket{{le=\"0.1\"}} 1\n\
         vmt_size_bytes_bucket{{le=\"1.0\"}} 4\n\
         vmt_size_bytes_bucket{{le=\"+Inf\"}} 5\n\
         vmt_size_bytes_sum 7.5\n\
         vmt_size_bytes_count 5\n"
    );
    let before_ms = now_ms();
    let r = agent.request(
        "PUT",
        "/metrics/job/vmtest/instance/i-1",
        &[("Content-Type", "text/plain; version=0.0.4")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "PUT: {}", r.text());

    // A grouping value with '/' (and base64url's '-' and '_'), unpadded.
    let path_value = "/tmp/>>>?";
    assert_eq!(base64_url(path_value.as_bytes()), "L3RtcC8-Pj4_");
    let path = format!(
        "/metrics/job/vmtest/path@base64/{}",
        base64_url(path_value.as_bytes())
    );
    let r = agent.request(
        "POST",
        &path,
        &[("Content-Type", "text/plain; version=0.0.4")],
        format!("# TYPE vmt_disk_free_bytes gauge\nvmt_disk_free_bytes 12345 {ts_path}\n")
            .as_bytes(),
    );
    assert_eq!(r.status, 200, "POST: {}", r.text());
    let after_ms = now_ms();

    let group = [("instance", "i-1"), ("job", "vmtest")];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
        group.iter().chain(extra).copied().collect()
    };
    // None: the push's receive time, checked against a window below.
    let want: Vec<(BTreeMap<String, String>, f64, Option<i64>)> = vec![
        (
            labels("vmt_requests_total", &with(&[("code", "200")])),
            1027.0,
            Some(ts_counter),
        ),
        (
            labels("vmt_requests_total", &with(&[("code", "500")])),
            3.0,
            Some(ts_counter),
        ),
        // floor="" is an absent label.
        (
            labels("vmt_temperature_celsius", &with(&[("room", "lab")])),
            21.5,
            None,
        ),
        (
            labels("vmt_rpc_seconds_count", &group),
            100.0,
            Some(ts_summary),
        ),
        (
            labels("vmt_rpc_seconds_sum", &group),
            42.75,
            Some(ts_summary),
        ),
        (
            labels("vmt_rpc_seconds", &with(&[("quantile", "0.5")])),
            0.25,
            Some(ts_summary),
        ),
        (
            labels("vmt_rpc_seconds", &with(&[("quantile", "0.99")])),
            1.5,
            Some(ts_summary),
        ),
        (labels("vmt_size_bytes_count", &group), 5.0, None),
        (labels("vmt_size_bytes_sum", &group), 7.5, None),
        (
            labels("vmt_size_bytes_bucket", &with(&[("le", "0.1")])),
            1.0,
            None,
        ),
        (
            labels("vmt_size_bytes_bucket", &with(&[("le", "1")])),
            4.0,
            None,
        ),
        (
            labels("vmt_size_bytes_bucket", &with(&[("le", "+Inf")])),
            5.0,
            None,
        ),
        (
            labels(
                "vmt_disk_free_bytes",
                &[("job", "vmtest"), ("path", path_value)],
            ),
            12345.0,
            Some(ts_path),
        ),
    ];

    let selector = r#"{__name__=~"vmt_.*"}"#;
    let got = poll_until(Duration::from_secs(30), Duration::from_millis(250), || {
        let got = vm.export(selector);
        (got.len() >= want.len()).then_some(got)
    })
    .unwrap_or_else(|| {
        panic!(
            "victoria-metrics has {:#?}\nwant {} series\n{}",
            vm.export(selector),
            want.len(),
            agent.stderr_text()
        )
    });

    let want_keys: Vec<_> = want.iter().map(|(l, _, _)| l.clone()).collect();
    let got_keys: Vec<_> = got.keys().cloned().collect();
    assert_eq!(
        sorted(&got_keys),
        sorted(&want_keys),
        "series names and labels in victoria-metrics"
    );

    let mut receive_times = Vec::new();
    for (key, value, ts) in &want {
        let samples = &got[key];
        assert_eq!(samples.len(), 1, "one sample for {key:?}: {samples:?}");
        let (t, v) = samples[0];
        assert_eq!(v, *value, "value of {key:?}");
        match ts {
            Some(ts) => assert_eq!(t, *ts, "explicit timestamp of {key:?}"),
            None => {
                assert!(
                    before_ms <= t && t <= after_ms,
                    "receive time of {key:?}: {t} not in [{before_ms}, {after_ms}]"
                );
                receive_times.push(t);
            }
        }
    }
    assert!(
        receive_times.iter().all(|&t| t == receive_times[0]),
        "one push, one receive time: {receive_times:?}"
    );
}
