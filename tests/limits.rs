//! The push and store limits over HTTP, with the agent binary: each is
//! refused with its error code and changes nothing (not the store, not
//! stdout, not the failure time); a push that only replaces its group's
//! series is never refused for `max_groups`, and for `max_series` only if
//! it grows the total; the store's counts and limits are self metrics.

mod common;

use common::*;
use std::time::Duration;

const TEXT: (&str, &str) = ("Content-Type", "text/plain; version=0.0.4");

fn agent() -> Agent {
    Agent::start(&AgentConf {
        pushgateway: "sample_limit = 6\nlabel_limit = 5\nlabel_name_length_limit = 8\n\
                      label_value_length_limit = 12\nmax_groups = 2\nmax_series = 5\n"
            .into(),
        ..AgentConf::default()
    })
}

fn put(agent: &Agent, path: &str, body: &str) -> (u16, String) {
    let r = agent.request("PUT", path, &[TEXT], body.as_bytes());
    (r.status, r.text())
}

fn series(n: usize) -> String {
    (0..n).map(|i| format!("m{{k=\"{i}\"}} {i}\n")).collect()
}

#[test]
fn limits_refuse_and_change_nothing() {
    let mut agent = agent();
    assert_eq!(put(&agent, "/metrics/job/a", &series(3)).0, 200);
    agent.wait_lines("a's points", POINTS_TIMEOUT, |l| {
        (l.len() >= 3).then_some(())
    });
    let before = agent.request("GET", "/metrics", &[], b"").text();
    let lines_before = agent.lines().len();

    for (path, body, status, code) in [
        // 7 samples.
        ("/metrics/job/a", series(7), 400, "sampleLimitExceeded"),
        // __name__, 4 own labels, job, instance: 7 labels.
        (
            "/metrics/job/a",
            "m{a=\"1\",b=\"2\",c=\"3\",d=\"4\"} 1\n".into(),
            400,
            "labelLimitExceeded",
        ),
        (
            "/metrics/job/a",
            "m{abcdefghi=\"1\"} 1\n".into(),
            400,
            "labelLimitExceeded",
        ),
        (
            "/metrics/job/a",
            "m{a=\"1234567890123\"} 1\n".into(),
            400,
            "labelLimitExceeded",
        ),
        (
            "/metrics/job/a",
            "metric_name_too_long 1\n".into(),
            400,
            "labelLimitExceeded",
        ),
        (
            "/metrics/job/a/zone/1234567890123",
            "m 1\n".into(),
            400,
            "labelLimitExceeded",
        ),
        // a holds 3 series; b would add 3: 6 > max_series.
        ("/metrics/job/b", series(3), 429, "storeFull"),
    ] {
        let (got, text) = put(&agent, path, &body);
        assert_eq!(got, status, "{path} {body}: {text}");
        assert!(
            text.contains(&format!("\"error_code\":\"{code}\"")),
            "{text}"
        );
    }
    assert_eq!(put(&agent, "/metrics/job/b", &series(2)).0, 200);
    // Two groups: a third is refused, however small.
    let (status, text) = put(&agent, "/metrics/job/c", "x 1\n");
    assert_eq!(status, 429, "{text}");
    assert!(text.contains("max_groups = 2"), "{text}");
    // Replacing a's series keeps the total: allowed in a full store, and
    // so is shrinking it; growing it is not.
    assert_eq!(put(&agent, "/metrics/job/a", &series(3)).0, 200);
    assert_eq!(put(&agent, "/metrics/job/a", &series(1)).0, 200);
    assert_eq!(put(&agent, "/metrics/job/a", &series(3)).0, 200);
    assert_eq!(put(&agent, "/metrics/job/a", &series(4)).0, 429);

    // Nothing of the refused pushes: no series, no failure time, no point.
    let after = agent.request("GET", "/metrics", &[], b"").text();
    let groups = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("push_failure_time_seconds{"))
            .map(|l| l.to_string())
            .collect()
    };
    assert!(groups(&after).iter().all(|l| l.ends_with(" 0")), "{after}");
    assert!(!after.contains("job=\"c\""), "{after}");
    assert!(!before.contains("zone="), "{before}");
    std::thread::sleep(Duration::from_millis(300));
    let new_lines: Vec<String> = agent.lines()[lines_before..].to_vec();
    assert!(
        new_lines
            .iter()
            .all(|l| !l.contains("metric_name_too_long") && !l.contains(",d=4")),
        "{new_lines:?}"
    );
    for (name, want) in [
        ("pushkit_store_groups", 2.0),
        ("pushkit_store_series", 5.0),
        ("pushkit_store_max_groups", 2.0),
        ("pushkit_store_max_series", 5.0),
    ] {
        assert_eq!(agent.self_metric(name, &[]), Some(want), "{name}");
    }
}
