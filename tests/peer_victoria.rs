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
use std::time::Duration;

/// Base64 with the URL-safe alphabet and no padding (RFC 4648 §5), as the
/// Go client sends grouping values.
fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
#[ignore = "needs victoria-metrics: run via .ci/run"]
fn pushes_land_in_victoria_metrics_exactly() {
    let mut vm = VictoriaMetrics::start();
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
    let want: WantSeries = vec![
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

    let receive_times = assert_series(&got, &want, (before_ms, after_ms));
    assert!(
        receive_times.iter().all(|&t| t == receive_times[0]),
        "one push, one receive time: {receive_times:?}"
    );
}
