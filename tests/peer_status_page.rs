//! The status page in real headless Chromium (Debian's `chromium`, driven
//! by `playwright-core` from tests/node): groups pushed and refused show up
//! as rows with their counts and the failure highlighted; the filter
//! narrows them as one types; a group's metrics open; its Delete button
//! removes it from the page and from `/metrics`. The screenshot goes to
//! target/artefacts/status-page.png, for CI to keep.
//!
//! `PUSHKIT_NODE` and `PUSHKIT_CHROMIUM` name the binaries (defaults
//! /usr/bin/node and /usr/bin/chromium).

mod common;

use common::*;
use serde_json::Value as Json;
use std::process::Command;
use std::time::Duration;

const TEXT: (&str, &str) = ("Content-Type", "text/plain; version=0.0.4");

#[test]
#[ignore = "needs chromium and playwright-core (npm): run via .ci/run"]
fn the_status_page_in_chromium() {
    let node = peer_binary("PUSHKIT_NODE", "/usr/bin/node", "nodejs");
    peer_binary("PUSHKIT_CHROMIUM", "/usr/bin/chromium", "chromium");
    let script = repo_root().join("tests/node/status_page.js");
    assert!(
        repo_root()
            .join("tests/node/node_modules/playwright-core")
            .is_dir(),
        "playwright-core is not installed: run `npm ci --prefix tests/node` (.ci/run does)"
    );
    let agent = Agent::start(&AgentConf {
        pushgateway: "enable_admin_api = true\n".into(),
        sinks: vec![Sink {
            name: "vm".into(),
            // Nothing listens there: the page shows the sink's errors.
            url: format!("http://127.0.0.1:{}/write", free_port()),
            gzip: false,
        }],
        ..AgentConf::default()
    });
    let put = |path: &str, body: &str| agent.request("PUT", path, &[TEXT], body.as_bytes()).status;
    assert_eq!(
        put(
            "/metrics/job/batch-1/instance/a",
            "# TYPE done gauge\ndone 1\n# TYPE rows counter\nrows{t=\"x\"} 5\nrows{t=\"y\"} 6\n"
        ),
        200
    );
    assert_eq!(
        put("/metrics/job/batch-2", "# TYPE done gauge\ndone 0\n"),
        200
    );
    // Refused by the consistency check: batch-3's row is marked failed.
    assert_eq!(
        put("/metrics/job/batch-3", "# TYPE done counter\ndone 2\n"),
        400
    );

    let artefacts = repo_root().join("target/artefacts");
    std::fs::create_dir_all(&artefacts).unwrap();
    let shot = artefacts.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let mut cmd = Command::new(node);
    cmd.arg(&script).arg(agent.base_url()).arg(&shot);
    let (status, out, err) = run_bounded("status_page.js", cmd, Duration::from_secs(120));
    assert!(
        status.success(),
        "status_page.js: {status}\n{out}\n{err}\n{}",
        agent.stderr_text()
    );
    let seen: Json = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));

    assert_eq!(seen["title"], "pushkit");
    assert_eq!(seen["errors"], serde_json::json!([]), "page errors");
    assert!(
        seen["summary"]
            .as_str()
            .unwrap()
            .starts_with("3 groups · 4 series"),
        "{seen}"
    );
    let row = |rows: &Json, job: &str| -> Json {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| {
                r["labels"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("job=\"{job}\""))
            })
            .cloned()
            .unwrap_or(Json::Null)
    };
    let b1 = row(&seen["rows"], "batch-1");
    assert_eq!(
        (b1["families"].as_u64(), b1["series"].as_u64()),
        (Some(2), Some(3)),
        "{seen}"
    );
    assert_eq!(b1["failed"], false);
    assert_eq!(b1["lastFailure"], "never");
    let b3 = row(&seen["rows"], "batch-3");
    assert_eq!(b3["failed"], true, "{seen}");
    assert!(
        b3["lastFailure"].as_str().unwrap().ends_with("s ago"),
        "{seen}"
    );
    assert_eq!(seen["sinks"], serde_json::json!(["vm"]));
    // Its sink cannot be reached: the page says so.
    assert!(
        seen["sinkErrors"][0].as_str().unwrap().contains("retrying"),
        "{seen}"
    );
    // The filter, as one types.
    assert_eq!(seen["filtered"].as_array().unwrap().len(), 1, "{seen}");
    assert_eq!(seen["shown"], "1");
    // A group's metrics.
    assert_eq!(seen["metricsVisible"], true);
    assert!(
        seen["metricsText"]
            .as_str()
            .unwrap()
            .contains("rows{instance=\"a\",job=\"batch-1\",t=\"y\"} 6"),
        "{seen}"
    );
    // Deleted from the page and from /metrics.
    assert_eq!(row(&seen["afterDelete"], "batch-2"), Json::Null, "{seen}");
    assert_eq!(seen["afterDelete"].as_array().unwrap().len(), 2);
    let metrics = agent.request("GET", "/metrics", &[], b"").text();
    assert!(!metrics.contains("job=\"batch-2\""), "{metrics}");
    assert!(metrics.contains("job=\"batch-1\""));

    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
}
