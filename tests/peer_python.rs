//! The official Python client (prometheus_client) against pushkit:
//! samples/clients/push.py does a PUT (push_to_gateway), a gzip-compressed
//! POST (pushadd_to_gateway) and a DELETE (delete_from_gateway), all with a
//! grouping value containing `/` (sent as `path@base64/...`). The agent writes
//! to stdout; the test checks every point exactly. A second test pushes to
//! a group with an empty grouping value and a `/` in another, and checks
//! `/metrics`, `/api/v1/metrics` and a VictoriaMetrics behind remote write.
//!
//! The interpreter comes from `PUSHKIT_PYTHON`, else `.venv/bin/python3` in
//! the repository root (`.ci/run` creates it with prometheus-client).

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

const TAGS: &str = "instance=host-1,job=py-batch";

#[test]
#[ignore = "needs python prometheus_client: run via .ci/run"]
fn python_client_push_pushadd_delete() {
    let python = python();
    let mut agent = Agent::start(&AgentConf::default());

    let before = now_ns();
    let mut cmd = Command::new(&python);
    cmd.arg(repo_root().join("samples/clients/push.py"))
        .arg(agent.base_url())
        .env("PROMETHEUS_DISABLE_CREATED_SERIES", "true");
    let (status, out, err) = run_bounded("push.py", cmd, Duration::from_secs(60));
    let after = now_ns();
    assert!(
        status.success(),
        "push.py failed ({status}) with {}\nstdout:\n{out}\nstderr:\n{err}\n{}",
        python.display(),
        agent.stderr_text()
    );
    // The script prints each request's status; it already fails on a wrong
    // one, this makes the contract visible here too.
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["PUT 200", "POST 200", "DELETE 202"],
        "statuses seen by push.py; stderr:\n{err}"
    );

    let p = |rest: &str| format!("demo,{TAGS},{rest}");
    let want_put = [
        p("path=/var/data,queue=high demo_jobs_processed_total=3"),
        p("path=/var/data,room=kitchen demo_temperature_celsius=21.5"),
        // room="" is an absent label: no room tag.
        p("path=/var/data demo_temperature_celsius=-3"),
        p("path=/var/data demo_request_seconds_count=2,demo_request_seconds_sum=1"),
        p("path=/var/data demo_batch_size_count=3,demo_batch_size_sum=30"),
        // The client writes le="1.0", "5.0", "10.0": pushkit writes Go's 'g'.
        p("le=1,path=/var/data demo_batch_size_bucket=0"),
        p("le=5,path=/var/data demo_batch_size_bucket=1"),
        p("le=10,path=/var/data demo_batch_size_bucket=2"),
        p("le=+Inf,path=/var/data demo_batch_size_bucket=3"),
    ];
    let want_post = p("path=/var/data demo_add_marker=9");
    let mut want: Vec<&str> = want_put.iter().map(String::as_str).collect();
    want.push(&want_post);

    let got = agent.wait_lines("the python client's points", POINTS_TIMEOUT, |lines| {
        let got = lines_with_tag(lines, "job=py-batch");
        (got.len() >= want.len()).then_some(got)
    });
    // Give a late duplicate or a stray point (e.g. from the DELETE) a few
    // flush intervals to show up.
    std::thread::sleep(Duration::from_millis(500));
    let got_after = lines_with_tag(&agent.lines(), "job=py-batch");
    assert_eq!(got.len(), got_after.len(), "more points kept coming");
    assert_same_series(&got_after, &want);

    // Times: the push's receive time, the same for every point of one push.
    let put_times: Vec<i64> = got_after
        .iter()
        .filter(|l| l.series != want_post)
        .map(|l| l.time_ns)
        .collect();
    let post_time = got_after
        .iter()
        .find(|l| l.series == want_post)
        .expect("POST point")
        .time_ns;
    assert!(
        put_times.iter().all(|&t| t == put_times[0]),
        "one PUT, one time: {put_times:?}"
    );
    let put_time = put_times[0];
    assert!(
        before <= put_time && put_time <= post_time && post_time <= after,
        "want {before} <= PUT {put_time} <= POST {post_time} <= {after}"
    );
    agent.assert_running();
}

/// The Python client's grouping edge cases: an empty value (sent as
/// `instance@base64/=`) and a value with `/` (sent in base64), through
/// `push_to_gateway`, `pushadd_to_gateway` and `delete_from_gateway`. The
/// group must show in `/metrics` and `/api/v1/metrics` with exactly those
/// labels, reach a real VictoriaMetrics over remote write, and go away on
/// delete.
#[test]
#[ignore = "needs python prometheus_client and victoria-metrics: run via .ci/run"]
fn python_client_empty_and_slashed_grouping_values() {
    let python = python();
    let mut vm = VictoriaMetrics::start();
    let agent = vm.remote_write_agent();
    let script = r#"
import sys
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, pushadd_to_gateway, delete_from_gateway
url, mode = sys.argv[1], sys.argv[2]
key = {"instance": "", "path": "a/b"}
r = CollectorRegistry()
Gauge("py_edge_value", "A value.", registry=r).set(7)
if mode == "push":
    push_to_gateway(url, job="py-edge", registry=r, grouping_key=key)
    r2 = CollectorRegistry()
    Gauge("py_edge_added", "Added.", registry=r2).set(8)
    pushadd_to_gateway(url, job="py-edge", registry=r2, grouping_key=key)
else:
    delete_from_gateway(url, job="py-edge", grouping_key=key)
print("ok")
"#;
    let run = |mode: &str| {
        let mut cmd = Command::new(&python);
        cmd.arg("-c")
            .arg(script)
            .arg(agent.base_url())
            .arg(mode)
            .env("PROMETHEUS_DISABLE_CREATED_SERIES", "true");
        let (status, out, err) = run_bounded("python", cmd, Duration::from_secs(60));
        assert!(
            status.success(),
            "{mode}: {out}{err}\n{}",
            agent.stderr_text()
        );
    };
    run("push");
    let exposition = agent.request("GET", "/metrics", &[], b"").text();
    for want in [
        r#"py_edge_value{instance="",job="py-edge",path="a/b"} 7"#,
        r#"py_edge_added{instance="",job="py-edge",path="a/b"} 8"#,
    ] {
        assert!(
            exposition.lines().any(|l| l == want),
            "{want} not in\n{exposition}"
        );
    }
    let api: serde_json::Value =
        serde_json::from_str(&agent.request("GET", "/api/v1/metrics", &[], b"").text()).unwrap();
    let labels_seen: Vec<&serde_json::Value> = api["data"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| &g["labels"])
        .collect();
    assert!(
        labels_seen
            .iter()
            .any(|l| l["job"] == "py-edge" && l["path"] == "a/b" && l["instance"] == ""),
        "{labels_seen:?}"
    );
    // An empty label is an absent one in Prometheus' data model: the
    // series arrives without `instance`.
    let exported = wait_for(
        "py_edge_* in VictoriaMetrics",
        Duration::from_secs(30),
        || {
            let e = vm.export(r#"{__name__=~"py_edge_.*"}"#);
            (e.len() == 2).then_some(e)
        },
    );
    let want_value = labels("py_edge_value", &[("job", "py-edge"), ("path", "a/b")]);
    assert_eq!(
        exported.get(&want_value).map(|s| s[0].1),
        Some(7.0),
        "{exported:#?}"
    );
    run("delete");
    let exposition = agent.request("GET", "/metrics", &[], b"").text();
    assert!(!exposition.contains("py_edge_value{"), "{exposition}");
}
