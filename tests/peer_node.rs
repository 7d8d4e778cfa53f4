//! Node.js' `prom-client` (npm, pinned in tests/node/package.json; `.ci/run`
//! installs it with `npm ci`) pushing to the agent binary: `pushAdd`
//! (POST), `push` (PUT) and a gzipped `push`, then `delete`, with a
//! grouping value holding `/`, which prom-client sends as `%2F`. The group
//! must show in `/metrics` and `/api/v1/metrics` with `instance="a/b"`,
//! the points must reach a real VictoriaMetrics over remote write with the
//! pushed names, and the DELETE must remove the group.
//!
//! `PUSHKIT_NODE` names the node binary (default /usr/bin/node).

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn node_dir() -> PathBuf {
    repo_root().join("tests/node")
}

/// Runs tests/node/push.js against `url` in `mode`.
fn run_client(url: &str, mode: &str) {
    let node = peer_binary("PUSHKIT_NODE", "/usr/bin/node", "nodejs");
    assert!(
        node_dir().join("node_modules/prom-client").exists(),
        "prom-client is not installed: run `npm ci --prefix tests/node` (.ci/run does)"
    );
    let out = Command::new(node)
        .arg(node_dir().join("push.js"))
        .args([url, mode])
        .current_dir(node_dir())
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "node push.js {mode}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "needs node with prom-client and victoria-metrics: run via .ci/run"]
fn prom_client_pushes_and_deletes() {
    let mut vm = VictoriaMetrics::start();
    let agent = vm.remote_write_agent();
    run_client(&agent.base_url(), "push");

    let exposition = agent.request("GET", "/metrics", &[], b"").text();
    for want in [
        r#"node_jobs_total{instance="a/b",job="nodejob",kind="nightly"} 3"#,
        r#"node_last_success_unixtime{instance="a/b",job="nodejob"} 1.7e+09"#,
        r#"node_jobs_total{instance="gz",job="nodejob",kind="nightly"} 3"#,
    ] {
        assert!(
            exposition.lines().any(|l| l == want),
            "{want} not in\n{exposition}"
        );
    }
    let api = agent.request("GET", "/api/v1/metrics", &[], b"").text();
    let api: serde_json::Value = serde_json::from_str(&api).expect("JSON");
    let groups = api["data"].as_array().expect("groups");
    let group_labels: Vec<&serde_json::Value> = groups.iter().map(|g| &g["labels"]).collect();
    assert!(
        group_labels
            .iter()
            .any(|l| l["job"] == "nodejob" && l["instance"] == "a/b"),
        "{group_labels:?}"
    );

    // Each push is forwarded: the POST (2), the PUT (3), the gzipped PUT (3).
    let exported = wait_for(
        "node_jobs_total in VictoriaMetrics",
        Duration::from_secs(30),
        || {
            let e = vm.export(r#"{__name__="node_jobs_total"}"#);
            let samples: usize = e.values().map(Vec::len).sum();
            (samples >= 3).then_some(e)
        },
    );
    let values = |instance: &str| -> Vec<f64> {
        let l = labels(
            "node_jobs_total",
            &[
                ("instance", instance),
                ("job", "nodejob"),
                ("kind", "nightly"),
            ],
        );
        exported
            .get(&l)
            .map(|s| s.iter().map(|&(_, v)| v).collect())
            .unwrap_or_default()
    };
    assert_eq!(values("a/b"), [2.0, 3.0], "{exported:#?}");
    assert_eq!(values("gz"), [3.0], "{exported:#?}");

    run_client(&agent.base_url(), "delete");
    let exposition = agent.request("GET", "/metrics", &[], b"").text();
    assert!(!exposition.contains("node_jobs_total{"), "{exposition}");
}
