//! The store exported to a real VictoriaMetrics (`export_interval`),
//! through remote write and through line protocol:
//! - a group pushed once stays queryable, with a fresh sample at each
//!   interval, named as the exposition names it (remote write) or mapped
//!   as pushes are (line protocol);
//! - a staleness alert, `time() - push_time_seconds > 3`, is quiet right
//!   after the push and fires once the group has not been pushed for
//!   longer, while the exports keep the series alive;
//! - after DELETE the group is no longer exported, and remote write sends
//!   one staleness marker per series, so that VictoriaMetrics, and
//!   Prometheus' remote-write receiver, stop showing it at once, not
//!   after their lookback.
//!
//! `PUSHKIT_VICTORIA_METRICS` and `PUSHKIT_PROMETHEUS` name the binaries
//! (default /usr/bin/victoria-metrics, /usr/bin/prometheus).

mod common;

use common::*;
use std::time::Duration;

const TEXT: (&str, &str) = ("Content-Type", "text/plain; version=0.0.4");

fn exporting_agent(vm: &VictoriaMetrics, format: &str, path: &str) -> Agent {
    exporting_agent_with(vm, format, path, "")
}

/// `io`: more `[io]` keys.
fn exporting_agent_with(vm: &VictoriaMetrics, format: &str, path: &str, io: &str) -> Agent {
    Agent::start_raw(
        free_port(),
        &format!(
            "[io]\nflush_interval = \"100ms\"\n{io}\n\
             [[sinks]]\nname = \"vm\"\nurl = \"{}\"\nformat = \"{format}\"\n\
             export_interval = \"1s\"\n\n\
             [[inputs.pushgateway]]\n",
            vm.url(path),
        ),
    )
}

/// VictoriaMetrics' instant query `promql`: each result's labels and value.
fn query(vm: &VictoriaMetrics, promql: &str) -> Vec<(Labels, f64)> {
    let flush = get(&vm.url("/internal/force_flush")).expect("force_flush");
    assert_eq!(flush.status, 200);
    let r =
        get(&vm.url(&format!("/api/v1/query?query={}", percent_encode(promql)))).expect("query");
    assert_eq!(r.status, 200, "{promql}: {}", r.text());
    let v: serde_json::Value = serde_json::from_str(&r.text()).expect("json");
    v["data"]["result"]
        .as_array()
        .expect("result")
        .iter()
        .map(|s| {
            let labels = s["metric"]
                .as_object()
                .expect("metric")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
            let value = s["value"][1]
                .as_str()
                .expect("value")
                .parse()
                .expect("float");
            (labels, value)
        })
        .collect()
}

/// Samples of `selector` at distinct timestamps, after at least `at_least`
/// exports have landed (waits up to 20 s).
fn wait_samples(vm: &mut VictoriaMetrics, selector: &str, at_least: usize) -> Vec<(i64, f64)> {
    wait_for(
        &format!("{at_least} samples of {selector}"),
        Duration::from_secs(20),
        || {
            let got = vm.export(selector);
            let samples: Vec<(i64, f64)> = got.into_values().flatten().collect();
            (samples.len() >= at_least).then_some(samples)
        },
    )
}

#[test]
#[ignore = "needs victoria-metrics: run via .ci/run"]
fn remote_write_exports_keep_a_group_fresh_until_it_is_deleted() {
    let mut vm = VictoriaMetrics::start();
    let agent = exporting_agent(&vm, "remote-write", "/api/v1/write");
    let pushed_ms = now_ms();
    let r = agent.request(
        "PUT",
        "/metrics/job/backup/instance/db1",
        &[TEXT],
        b"# TYPE backup_size_bytes gauge\nbackup_size_bytes{disk=\"a\"} 42\n\
          # TYPE backup_runs_total counter\nbackup_runs_total 7\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());

    // One push, then a fresh sample each second: named as the exposition
    // names them, with the push's value and the grouping labels.
    let samples = wait_samples(&mut vm, "backup_size_bytes{job=\"backup\"}", 4);
    assert!(samples.iter().all(|(_, v)| *v == 42.0), "{samples:?}");
    let times: Vec<i64> = samples.iter().map(|(t, _)| *t).collect();
    assert!(
        times.windows(2).all(|w| w[1] - w[0] >= 500),
        "one sample per export: {times:?}"
    );
    let push_time = wait_samples(&mut vm, "push_time_seconds{job=\"backup\"}", 1);
    let pushed_s = push_time[0].1;
    assert!(
        (pushed_s * 1000.0 - pushed_ms as f64).abs() < 5_000.0,
        "push_time_seconds {pushed_s} against the push at {pushed_ms} ms"
    );
    let both = query(&vm, "backup_runs_total{instance=\"db1\"}");
    assert_eq!(both.len(), 1, "{both:?}");
    assert_eq!(both[0].1, 7.0);

    // The staleness alert: quiet while the push is fresh, firing once it
    // is older than 3 s, although the series itself is fresh in the TSDB.
    let alert = "time() - push_time_seconds{job=\"backup\"} > 3";
    let since_push = now_ms() - pushed_ms;
    if since_push < 2_500 {
        assert!(
            query(&vm, alert).is_empty(),
            "fired {since_push} ms after the push"
        );
    }
    std::thread::sleep(Duration::from_millis(
        4_500u64.saturating_sub(u64::try_from(now_ms() - pushed_ms).unwrap_or(0)),
    ));
    let fired = wait_for("the alert to fire", Duration::from_secs(10), || {
        let r = query(&vm, alert);
        (!r.is_empty()).then_some(r)
    });
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].0.get("instance").map(String::as_str), Some("db1"));
    assert!(!query(&vm, "backup_size_bytes").is_empty());

    // DELETE: the next export sends staleness markers and stops; the
    // series vanish from instant queries at once.
    let r = agent.request("DELETE", "/metrics/job/backup/instance/db1", &[], b"");
    assert_eq!(r.status, 202, "{}", r.text());
    wait_for("the series to go stale", Duration::from_secs(10), || {
        (query(&vm, "backup_size_bytes").is_empty()
            && query(&vm, "push_time_seconds{job=\"backup\"}").is_empty())
        .then_some(())
    });
    let before: Vec<(i64, f64)> = vm
        .export("backup_size_bytes")
        .into_values()
        .flatten()
        .collect();
    std::thread::sleep(Duration::from_millis(2_500));
    let after: Vec<(i64, f64)> = vm
        .export("backup_size_bytes")
        .into_values()
        .flatten()
        .collect();
    assert_eq!(
        before.len(),
        after.len(),
        "samples arrived after the DELETE's markers"
    );
    // One marker (VictoriaMetrics exports it as null), last.
    let markers = after.iter().filter(|(_, v)| v.is_nan()).count();
    assert_eq!(markers, 1, "{after:?}");
    assert!(after.last().is_some_and(|(_, v)| v.is_nan()), "{after:?}");

    // Counted apart from pushed points.
    let exports = agent
        .self_metric(
            "pushkit_sink_exports_total",
            &[("sink", "vm"), ("outcome", "queued")],
        )
        .unwrap_or(0.0);
    assert!(exports >= 4.0, "{exports}");
    let delivered = agent
        .self_metric(
            "pushkit_sink_export_points_total",
            &[("sink", "vm"), ("outcome", "delivered")],
        )
        .unwrap_or(0.0);
    assert!(delivered >= 16.0, "{delivered}");
    let pushed = agent
        .self_metric("pushkit_sink_points_delivered_total", &[("sink", "vm")])
        .unwrap_or(0.0);
    assert_eq!(pushed, 2.0, "the push's own points only");
}

#[test]
#[ignore = "needs victoria-metrics: run via .ci/run"]
fn line_protocol_exports_are_mapped_as_pushes_and_stop_at_delete() {
    let mut vm = VictoriaMetrics::start();
    let agent = exporting_agent(&vm, "line-protocol", "/write");
    let r = agent.request(
        "PUT",
        "/metrics/job/nightly",
        &[TEXT],
        b"# TYPE nightly_rows gauge\nnightly_rows{table=\"t\"} 12\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // DataKit's mapping: measurement `nightly`, field `nightly_rows`;
    // VictoriaMetrics names the series <measurement>_<field>.
    let samples = wait_samples(&mut vm, "nightly_nightly_rows{table=\"t\"}", 3);
    assert!(samples.iter().all(|(_, v)| *v == 12.0), "{samples:?}");
    // push_time_seconds maps as any pushed family would: measurement
    // `push`, field `push_time_seconds`.
    let push_time = wait_samples(&mut vm, "push_push_time_seconds{job=\"nightly\"}", 2);
    assert!(push_time.iter().all(|(_, v)| *v > 1.0e9), "{push_time:?}");

    let r = agent.request("DELETE", "/metrics/job/nightly", &[], b"");
    assert_eq!(r.status, 202);
    // Let an export that was under way land, then nothing more comes.
    std::thread::sleep(Duration::from_millis(1_500));
    let before = vm
        .export("nightly_nightly_rows")
        .into_values()
        .flatten()
        .count();
    std::thread::sleep(Duration::from_millis(3_000));
    let after = vm
        .export("nightly_nightly_rows")
        .into_values()
        .flatten()
        .count();
    assert_eq!(before, after, "exported after the DELETE");
}

/// With `[io] queue_dir` pushes go through the disk queue, and exports
/// still only through memory, taking turns with them on one worker.
#[test]
#[ignore = "needs victoria-metrics: run via .ci/run"]
fn exports_flow_beside_a_disk_queue() {
    let mut vm = VictoriaMetrics::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let io = format!("queue_dir = \"{}\"\n", dir.path().display());
    let agent = exporting_agent_with(&vm, "remote-write", "/api/v1/write", &io);
    for round in 0..3 {
        let body = format!("# TYPE disk_rows gauge\ndisk_rows {round}\n");
        let r = agent.request("PUT", "/metrics/job/disk", &[TEXT], body.as_bytes());
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let samples = wait_samples(&mut vm, "disk_rows{job=\"disk\"}", 4);
    // The pushes' own values, then exports of the last one.
    assert!(samples.iter().any(|(_, v)| *v == 0.0), "{samples:?}");
    assert!(
        samples.iter().filter(|(_, v)| *v == 2.0).count() >= 2,
        "{samples:?}"
    );
    let pushed = agent
        .self_metric("pushkit_sink_points_delivered_total", &[("sink", "vm")])
        .unwrap_or(0.0);
    assert_eq!(pushed, 3.0);
    let exported = agent
        .self_metric(
            "pushkit_sink_export_points_total",
            &[("sink", "vm"), ("outcome", "delivered")],
        )
        .unwrap_or(0.0);
    assert!(exported >= 3.0, "{exported}");
}

/// Pushes that trickle in below a batch wait for `flush_interval`; an
/// export meanwhile must not wait behind them, only behind batches that
/// are ready to go.
#[test]
#[ignore = "needs victoria-metrics: run via .ci/run"]
fn exports_are_not_starved_by_pushes_waiting_for_their_flush() {
    let vm = VictoriaMetrics::start();
    let agent = Agent::start_raw(
        free_port(),
        &format!(
            "[io]\nflush_interval = \"30s\"\n\n\
             [[sinks]]\nname = \"vm\"\nurl = \"{}\"\nformat = \"remote-write\"\n\
             export_interval = \"1s\"\n\n\
             [[inputs.pushgateway]]\n",
            vm.url("/api/v1/write"),
        ),
    );
    let started = std::time::Instant::now();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(5) {
        let body = format!("trickle {i}\n");
        let r = agent.request("PUT", "/metrics/job/trickle", &[TEXT], body.as_bytes());
        assert_eq!(r.status, 200, "{}", r.text());
        i += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    // The pushes still wait for their 30 s flush; the exports went.
    let pushed = agent
        .self_metric("pushkit_sink_points_delivered_total", &[("sink", "vm")])
        .unwrap_or(0.0);
    assert_eq!(pushed, 0.0, "the pushes' batch is not due yet");
    let exported = agent
        .self_metric(
            "pushkit_sink_export_points_total",
            &[("sink", "vm"), ("outcome", "delivered")],
        )
        .unwrap_or(0.0);
    assert!(
        exported >= 3.0,
        "exports delivered while pushes waited: {exported}"
    );
}

/// Prometheus' remote-write receiver takes the staleness markers: an
/// instant query stops returning a deleted group's series at once, where
/// without a marker it would return the last sample for its 5-minute
/// lookback.
#[test]
#[ignore = "needs prometheus: run via .ci/run"]
fn prometheus_honours_the_staleness_markers() {
    let mut prom = Prometheus::start(
        "global:\n  evaluation_interval: 1m\n",
        &["--web.enable-remote-write-receiver", "--log.level=info"],
    );
    let agent = Agent::start_raw(
        free_port(),
        &format!(
            "[io]\nflush_interval = \"100ms\"\n\n\
             [[sinks]]\nname = \"prom\"\nurl = \"{}\"\nformat = \"remote-write\"\n\
             export_interval = \"1s\"\n\n\
             [[inputs.pushgateway]]\n",
            prom.url("/api/v1/write"),
        ),
    );
    let r = agent.request(
        "PUT",
        "/metrics/job/cleanup",
        &[TEXT],
        b"# TYPE cleanup_files gauge\ncleanup_files{dir=\"/tmp\"} 9\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let fresh = wait_for("two exports in Prometheus", Duration::from_secs(20), || {
        let r = prom.query("count_over_time(cleanup_files[1m])", "", "vector");
        let n = r
            .first()
            .map(|(_, s)| s["value"][1].as_str().unwrap_or("0").to_string());
        n.filter(|n| n.parse::<f64>().unwrap_or(0.0) >= 2.0)
    });
    assert!(!fresh.is_empty());
    assert_eq!(prom.query("cleanup_files", "", "vector").len(), 1);

    let r = agent.request("DELETE", "/metrics/job/cleanup", &[], b"");
    assert_eq!(r.status, 202, "{}", r.text());
    // Within a few export intervals, far inside the 5-minute lookback.
    wait_for(
        "the marker to end the series",
        Duration::from_secs(10),
        || {
            (prom.query("cleanup_files", "", "vector").is_empty()
                && prom
                    .query("push_time_seconds{job=\"cleanup\"}", "", "vector")
                    .is_empty())
            .then_some(())
        },
    );
}
