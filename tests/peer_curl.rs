//! Plain curl against the agent binary, as a user's shell script would
//! push: a grouping value with `/` in it, sent as `%2F` (as Node's
//! `prom-client` sends `groupings: {instance: 'a/b'}`), lands as one value
//! and is deleted by the same URL.
//!
//! `PUSHKIT_CURL` names the binary (default /usr/bin/curl).

mod common;

use common::*;
use std::process::Command;

fn curl(args: &[&str]) -> (String, String) {
    let bin = peer_binary("PUSHKIT_CURL", "/usr/bin/curl", "curl");
    let out = Command::new(bin)
        .args(["--silent", "--show-error", "--write-out", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let (body, code) = text.rsplit_once('\n').expect("status line");
    (code.to_string(), body.to_string())
}

#[test]
#[ignore = "needs curl: run via .ci/run"]
fn an_encoded_slash_in_a_grouping_value_works_with_curl() {
    let agent = Agent::start(&AgentConf::default());
    let url = agent.url("/metrics/job/backup/instance/a%2Fb");
    let (code, body) = curl(&["-X", "PUT", "--data-binary", "backup_ok 1\n", &url]);
    assert_eq!(code, "200", "{body}");
    let (code, text) = curl(&[&agent.url("/metrics")]);
    assert_eq!(code, "200");
    assert!(
        text.lines()
            .any(|l| l == r#"backup_ok{instance="a/b",job="backup"} 1"#),
        "{text}"
    );
    let (code, body) = curl(&["-X", "DELETE", &url]);
    assert_eq!(code, "202", "{body}");
    let (_, text) = curl(&[&agent.url("/metrics")]);
    assert!(!text.contains("backup_ok{"), "{text}");
}
