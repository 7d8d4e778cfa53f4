//! The official Go client (client_golang's push package, Debian's packaged
//! copy) against pushkit: samples/clients/go-pusher does a PUT (Push) and a
//! POST (Add) in delimited protobuf, then a DELETE, with a grouping value
//! containing `/` (sent as unpadded `path@base64/...`). The agent writes to
//! stdout; the test checks every point exactly. A second test does the
//! same with `Format(expfmt.FmtText)`, and both check the Content-Type the
//! client sent. Another sends the pushes and native histograms through
//! remote write to a real VictoriaMetrics and checks `/metrics` and
//! `/api/v1/metrics`; the last compares native histograms and exemplars
//! with the Go Pushgateway's.
//!
//! Built offline in GOPATH mode from /usr/share/gocode. `PUSHKIT_GO` names
//! the go binary (default: `go` on PATH).

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

const STAMP_MS: i64 = 1_700_000_000_123;

const TAGS: &str = "instance=node-a,job=go-batch";

#[test]
#[ignore = "needs golang-go + golang-github-prometheus-client-golang-dev: run via .ci/run"]
fn go_client_push_add_delete_protobuf() {
    go_client_push_add_delete(false);
}

/// The same pushes with `Format(expfmt.FmtText)`: the same points (the
/// text format carries the `+Inf` bucket the protobuf leaves out).
#[test]
#[ignore = "needs golang-go + golang-github-prometheus-client-golang-dev: run via .ci/run"]
fn go_client_push_add_delete_text() {
    go_client_push_add_delete(true);
}

fn go_client_push_add_delete(text: bool) {
    let build_dir = tempfile::Builder::new()
        .prefix("pushkit-go-")
        .tempdir()
        .expect("temp dir");
    let pusher = build_go_pusher(build_dir.path());
    let mut agent = Agent::start(&AgentConf::default());

    let before = now_ns();
    let mut cmd = Command::new(&pusher);
    cmd.arg("-url")
        .arg(agent.base_url())
        .arg("-stamp-ms")
        .arg(STAMP_MS.to_string());
    if text {
        cmd.arg("-text");
    }
    let (status, out, err) = run_bounded("go-pusher", cmd, Duration::from_secs(60));
    let after = now_ns();
    assert!(
        status.success(),
        "go-pusher failed ({status})\nstdout:\n{out}\nstderr:\n{err}\n{}",
        agent.stderr_text()
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["PUT 200", "POST 200", "DELETE 202"],
        "statuses seen by go-pusher; stderr:\n{err}"
    );
    let format = if text {
        "text/plain"
    } else {
        "application/vnd.google.protobuf"
    };
    for method in ["PUT", "POST"] {
        let line = format!("{method} Content-Type: {format}");
        assert!(err.lines().any(|l| l.starts_with(&line)), "{line}…\n{err}");
    }

    let p = |rest: &str| format!("demo,{TAGS},{rest}");
    let stamped = p("path=/srv/batch,region=eu-1 demo_stamped_value=42");
    let post = p("path=/srv/batch demo_go_add_marker=7");
    let want_put_unstamped = [
        p("path=/srv/batch,queue=high demo_go_jobs_processed_total=5"),
        p("path=/srv/batch,room=lab demo_go_temperature_celsius=19.25"),
        // room="" is an absent label: no room tag.
        p("path=/srv/batch demo_go_temperature_celsius=-4"),
        p("path=/srv/batch demo_go_request_seconds_count=3,demo_go_request_seconds_sum=1.5"),
        p("path=/srv/batch,quantile=0.5 demo_go_request_seconds=0.5"),
        p("path=/srv/batch,quantile=0.9 demo_go_request_seconds=0.5"),
        p("path=/srv/batch demo_go_batch_size_count=4,demo_go_batch_size_sum=68.75"),
        p("le=0.5,path=/srv/batch demo_go_batch_size_bucket=2"),
        p("le=1,path=/srv/batch demo_go_batch_size_bucket=2"),
        p("le=10,path=/srv/batch demo_go_batch_size_bucket=3"),
        // Not in the protobuf: added from the count; in the text, pushed.
        p("le=+Inf,path=/srv/batch demo_go_batch_size_bucket=4"),
    ];
    let mut want: Vec<&str> = want_put_unstamped.iter().map(String::as_str).collect();
    want.push(&stamped);
    want.push(&post);

    let got = agent.wait_lines("the go client's points", POINTS_TIMEOUT, |lines| {
        let got = lines_with_tag(lines, "job=go-batch");
        (got.len() >= want.len()).then_some(got)
    });
    std::thread::sleep(Duration::from_millis(500));
    let got_after = lines_with_tag(&agent.lines(), "job=go-batch");
    assert_eq!(got.len(), got_after.len(), "more points kept coming");
    assert_same_series(&got_after, &want);

    let time_of = |series: &str| {
        got_after
            .iter()
            .find(|l| l.series == series)
            .unwrap_or_else(|| panic!("no point {series}"))
            .time_ns
    };
    assert_eq!(
        time_of(&stamped),
        STAMP_MS * 1_000_000,
        "honor_timestamps: the sample's own time, in ns"
    );
    let put_times: Vec<i64> = got_after
        .iter()
        .filter(|l| want_put_unstamped.contains(&l.series))
        .map(|l| l.time_ns)
        .collect();
    assert!(
        put_times.iter().all(|&t| t == put_times[0]),
        "one PUT, one time: {put_times:?}"
    );
    let put_time = put_times[0];
    let post_time = time_of(&post);
    assert!(
        before <= put_time && put_time <= post_time && post_time <= after,
        "want {before} <= PUT {put_time} <= POST {post_time} <= {after}"
    );
    agent.assert_running();
}

/// The delimited-protobuf exposition at `url`, decoded, with only the
/// families whose names start with `prefix`.
fn protobuf_families(url: &str, prefix: &str) -> Vec<pushkit::expfmt::proto::MetricFamily> {
    use prost::Message;
    let accept = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";
    let r = http("GET", url, &[("Accept", accept)], b"").expect("GET /metrics");
    assert_eq!(r.status, 200, "{url}: {}", r.text());
    let mut body = r.body.as_slice();
    let mut out = Vec::new();
    while !body.is_empty() {
        let f = pushkit::expfmt::proto::MetricFamily::decode_length_delimited(&mut body)
            .expect("a delimited MetricFamily");
        if f.name.as_deref().is_some_and(|n| n.starts_with(prefix)) {
            out.push(f);
        }
    }
    out
}

/// Native histograms (negative, zero and positive buckets; a mixed
/// classic-and-native one; one with no observation) and exemplars (on a
/// counter, a classic bucket and the native part) pushed by client_golang:
/// pushkit exposes them in protobuf field for field as the Go Pushgateway
/// does, and again after a restart from its journal.
#[test]
#[ignore = "needs golang-go + golang-github-prometheus-client-golang-dev + prometheus-pushgateway: run via .ci/run"]
fn go_native_histograms_and_exemplars_match_the_pushgateway() {
    let build_dir = tempfile::Builder::new()
        .prefix("pushkit-go-")
        .tempdir()
        .expect("temp dir");
    let pusher = build_go_pusher(build_dir.path());
    let data = tempfile::Builder::new()
        .prefix("pushkit-native-")
        .tempdir()
        .expect("temp dir");
    let conf = AgentConf {
        pushgateway: format!("persistence_dir = \"{}\"\n", data.path().display()),
        ..AgentConf::default()
    };
    let agent = Agent::start(&conf);
    let mut pgw = Pushgateway::start();

    let mut cmd = Command::new(&pusher);
    cmd.arg("-native")
        .arg("-url")
        .arg(format!("{},{}", agent.base_url(), pgw.url("")));
    let (status, out, err) = run_bounded("go-pusher -native", cmd, Duration::from_secs(60));
    assert!(
        status.success(),
        "go-pusher failed ({status})\nstdout:\n{out}\nstderr:\n{err}\n{}",
        agent.stderr_text()
    );
    assert_eq!(out.lines().collect::<Vec<_>>(), ["PUT 200", "PUT 200"]);
    pgw.assert_running();

    let want = protobuf_families(&pgw.url("/metrics"), "demo_native_");
    assert_eq!(want.len(), 4, "the Pushgateway's families: {want:#?}");
    let h = |name: &str| {
        want.iter()
            .find(|f| f.name.as_deref() == Some(name))
            .and_then(|f| f.metric[0].histogram.clone())
            .unwrap_or_else(|| panic!("{name} in {want:#?}"))
    };
    // What the comparison covers, so that it cannot pass on empty data.
    let wait = h("demo_native_wait_seconds");
    assert!(wait.schema.is_some() && !wait.positive_span.is_empty());
    assert!(!wait.negative_delta.is_empty() && wait.zero_count == Some(1));
    assert!(wait.bucket.iter().any(|b| b.exemplar.is_some()));
    let mixed = h("demo_native_mixed_bytes");
    assert!(mixed.bucket.len() >= 2 && mixed.schema.is_some());
    let got = protobuf_families(&agent.url("/metrics"), "demo_native_");
    assert_eq!(got, want, "pushkit (left) against the Pushgateway (right)");

    // The journal carries them too.
    drop(agent);
    let agent = Agent::start(&conf);
    let got = protobuf_families(&agent.url("/metrics"), "demo_native_");
    assert_eq!(
        got, want,
        "after a restart, pushkit (left) against the Pushgateway (right)"
    );
}

/// The client matrix's row for the Go client: its PUT and POST (protobuf,
/// a grouping value with `/`) and a `Gatherer` of native histograms reach
/// a real VictoriaMetrics over remote write with the pushed names and
/// values, the group shows in `/metrics` and `/api/v1/metrics`, and the
/// client's DELETE removes it.
#[test]
#[ignore = "needs golang-go + golang-github-prometheus-client-golang-dev + victoria-metrics: run via .ci/run"]
fn go_client_to_victoria_metrics() {
    let build_dir = tempfile::Builder::new()
        .prefix("pushkit-go-")
        .tempdir()
        .expect("temp dir");
    let pusher = build_go_pusher(build_dir.path());
    let mut vm = VictoriaMetrics::start();
    let agent = vm.remote_write_agent();
    let run = |args: &[&str]| {
        let mut cmd = Command::new(&pusher);
        cmd.arg("-url").arg(agent.base_url()).args(args);
        let (status, out, err) = run_bounded("go-pusher", cmd, Duration::from_secs(60));
        assert!(
            status.success(),
            "go-pusher {args:?}: {status}\n{out}\n{err}"
        );
        out
    };
    assert_eq!(
        run(&["-no-delete"]).lines().collect::<Vec<_>>(),
        ["PUT 200", "POST 200"]
    );
    assert_eq!(run(&["-native"]).trim(), "PUT 200");

    let exposition = agent.request("GET", "/metrics", &[], b"").text();
    for want in [
        r#"demo_go_jobs_processed_total{instance="node-a",job="go-batch",path="/srv/batch",queue="high"} 5"#,
        r#"demo_go_add_marker{instance="node-a",job="go-batch",path="/srv/batch"} 7"#,
        r#"demo_native_requests_total{instance="node-n",job="go-native"} 3"#,
    ] {
        assert!(
            exposition.lines().any(|l| l == want),
            "{want} not in\n{exposition}"
        );
    }
    let api: serde_json::Value =
        serde_json::from_str(&agent.request("GET", "/api/v1/metrics", &[], b"").text()).unwrap();
    let groups: Vec<&serde_json::Value> = api["data"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| &g["labels"])
        .collect();
    assert!(
        groups
            .iter()
            .any(|l| l["job"] == "go-batch" && l["path"] == "/srv/batch"),
        "{groups:?}"
    );

    let want = [
        ("demo_go_jobs_processed_total", vec![("queue", "high")], 5.0),
        ("demo_go_temperature_celsius", vec![("room", "lab")], 19.25),
        ("demo_go_request_seconds_count", vec![], 3.0),
        ("demo_go_batch_size_bucket", vec![("le", "+Inf")], 4.0),
        ("demo_go_add_marker", vec![], 7.0),
    ];
    let series_of = |name: &str, extra: &[(&'static str, &'static str)]| {
        let mut pairs = vec![
            ("instance", "node-a"),
            ("job", "go-batch"),
            ("path", "/srv/batch"),
        ];
        pairs.extend_from_slice(extra);
        labels(name, &pairs)
    };
    // The PUT and the POST reach VictoriaMetrics in batches of their own:
    // wait for the series of both, not only for a count the PUT alone
    // can reach.
    let exported = wait_for(
        "the Go client's series in VictoriaMetrics",
        Duration::from_secs(30),
        || {
            let e = vm.export(r#"{job="go-batch"}"#);
            let all = want
                .iter()
                .all(|(name, extra, _)| e.contains_key(&series_of(name, extra)));
            (e.len() >= 12 && all).then_some(e)
        },
    );
    for (name, extra, value) in want {
        let series = series_of(name, &extra);
        assert_eq!(
            exported.get(&series).map(|s| s.last().unwrap().1),
            Some(value),
            "{name}: {exported:#?}"
        );
    }
    // The native histograms' classic side: VictoriaMetrics 1.79 keeps no
    // native histograms (Prometheus does: peer_remote_write.rs).
    let native = wait_for(
        "demo_native_* in VictoriaMetrics",
        Duration::from_secs(30),
        || {
            let e = vm.export(r#"{__name__="demo_native_wait_seconds_count"}"#);
            (!e.is_empty()).then_some(e)
        },
    );
    assert_eq!(
        native.values().next().map(|s| s[0].1),
        Some(8.0),
        "{native:#?}"
    );

    // The client's own DELETE (the pusher's default last step).
    assert_eq!(run(&[]).lines().last(), Some("DELETE 202"));
    let exposition = agent.request("GET", "/metrics", &[], b"").text();
    assert!(!exposition.contains("job=\"go-batch\""), "{exposition}");
}
