//! Plain curl against the agent binary, as a user's shell script would
//! push: a grouping value with `/` in it, sent as `%2F` (as Node's
//! `prom-client` sends `groupings: {instance: 'a/b'}`), lands as one value
//! and is deleted by the same URL. The README's demo is run from the
//! README itself, and must print what the README shows.
//!
//! `PUSHKIT_CURL` names the binary (default /usr/bin/curl).

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

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

/// The README's 30-second demo, taken from the README: its shell block is
/// run with bash (the agent's start line left out, `localhost:9529`
/// pointed at this test's agent), the points must be the ones the README
/// shows (times aside), and its DELETE example must answer 202.
#[test]
#[ignore = "needs curl: run via .ci/run"]
fn the_readme_demo_runs_as_written() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let demo = readme
        .split("## 30-second demo")
        .nth(1)
        .expect("a 30-second demo section");
    let mut blocks = demo.split("```").skip(1).step_by(2);
    let script = blocks.next().expect("the demo's shell block");
    let script = script.strip_prefix("sh\n").expect("a sh block");
    let shown = blocks.next().expect("the output block");

    let mut agent = Agent::start(&AgentConf::default());
    let address = agent.base_url();
    let address = address.strip_prefix("http://").expect("http");
    let script: String = script
        .lines()
        .filter(|l| !l.starts_with("cargo run"))
        .map(|l| l.replace("localhost:9529", address) + "\n")
        .collect();
    let bash = peer_binary("PUSHKIT_BASH", "/bin/bash", "bash");
    let out = Command::new(bash)
        .arg("-c")
        .arg(&script)
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let without_time = |l: &str| l.rsplit_once(' ').map(|(p, _)| p.to_string()).unwrap();
    let want: Vec<String> = shown
        .lines()
        .filter(|l| !l.is_empty())
        .map(without_time)
        .collect();
    assert!(!want.is_empty(), "the README shows the points");
    let got = agent.wait_lines("the demo's points", Duration::from_secs(10), |lines| {
        (lines.len() >= want.len()).then(|| lines.to_vec())
    });
    let got: Vec<String> = got.iter().map(|l| without_time(l)).collect();
    assert_eq!(got, want);

    let delete = demo
        .split('`')
        .find(|s| s.starts_with("curl -X DELETE"))
        .expect("the DELETE example");
    let args: Vec<String> = delete
        .replace("localhost:9529", address)
        .split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, body) = curl(&args);
    assert_eq!(code, "202", "{body}");
}
