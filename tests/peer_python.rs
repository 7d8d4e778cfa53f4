//! The official Python client (prometheus_client) against pushkit:
//! samples/clients/push.py does a PUT (push_to_gateway), a gzip-compressed
//! POST (pushadd_to_gateway) and a DELETE (delete_from_gateway), all with a
//! grouping value containing `/` (sent as `path@base64/...`). The agent writes
//! to stdout; the test checks every point exactly.
//!
//! The interpreter comes from `PUSHKIT_PYTHON`, else `.venv/bin/python3` in
//! the repository root (`.ci/run` creates it with prometheus-client).

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("PUSHKIT_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = repo_root().join(".venv/bin/python3");
    if venv.exists() {
        return venv;
    }
    panic!(
        "no Python interpreter for the prometheus_client peer test: set PUSHKIT_PYTHON, or create \
         {} with `python3 -m venv .venv && .venv/bin/pip install prometheus-client` (.ci/run does this)",
        venv.display()
    );
}

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
