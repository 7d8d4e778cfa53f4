//! A store journal on a real filesystem that fills: a 512 KiB tmpfs the
//! test mounts (root only; `.ci/run` runs as root, and the test fails,
//! never skips, if it cannot mount). A push the full disk refuses gets
//! 503 `diskFull` with `Retry-After` and changes nothing: not the store,
//! not what a restart replays. While the journal refuses, `/-/ready`
//! answers 503 with the reason and `/-/healthy` stays 200, so that an
//! orchestrator takes the agent out of service instead of restarting it
//! into the same full disk. Once room returns, pushes are taken again
//! within seconds, with no restart. The log says so a few times, not once
//! per refused push.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
/// A tmpfs mounted for the test's lifetime.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs at {} (the test needs root; .ci/run runs as root): {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            path: path.to_path_buf(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// 100 series of about 80 bytes: some 8 KB of journal a push.
fn fill_body() -> String {
    let mut body = String::from("# TYPE fill_value gauge\n");
    for i in 0..100 {
        body.push_str(&format!(
            "fill_value{{n=\"{i}\",pad=\"{}\"}} {i}\n",
            "x".repeat(40)
        ));
    }
    body
}

/// The instances of job `fill` the store holds, by the JSON API.
fn stored_instances(agent: &Agent) -> Vec<u64> {
    let r = agent.request("GET", "/api/v1/metrics", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let mut got: Vec<u64> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["labels"]["job"] == "fill")
        .map(|g| g["labels"]["instance"].as_str().unwrap().parse().unwrap())
        .collect();
    got.sort_unstable();
    got
}

#[test]
#[ignore = "needs root to mount a tmpfs: run via .ci/run"]
fn a_full_disk_refuses_pushes_cleanly_and_heals_when_room_returns() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let fs = Tmpfs::mount(&tmp.path().join("fs"), "512k");
    // Room the test gives back later, as an operator deleting files would.
    let ballast = fs.path.join("ballast");
    std::fs::write(&ballast, vec![1u8; 96 << 10]).unwrap();
    let store = fs.path.join("store");
    let conf = format!(
        "[[inputs.pushgateway]]\npersistence_dir = {:?}\n",
        store.display().to_string()
    );
    let agent = Agent::start_raw(free_port(), &conf);
    let ready = agent.request("GET", "/-/ready", &[], b"");
    assert_eq!(ready.status, 200, "{}", ready.text());
    let health = |agent: &Agent| {
        (
            agent.self_metric("pushkit_data_failed", &[("data", "journal")]),
            agent.self_metric("pushkit_data_dir_free_bytes", &[("dir", "persistence_dir")]),
        )
    };
    let (failed, free) = health(&agent);
    assert_eq!(failed, Some(0.0));
    assert!(free.is_some_and(|f| f > 128.0 * 1024.0), "{free:?}");

    let body = fill_body();
    let put = |agent: &Agent, i: u64| {
        agent.request(
            "PUT",
            &format!("/metrics/job/fill/instance/{i}"),
            &[],
            body.as_bytes(),
        )
    };
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for i in 0..2_000 {
        let r = put(&agent, i);
        if r.status == 200 {
            acknowledged.push(i);
            continue;
        }
        refused = Some((i, r));
        break;
    }
    let (at, r) = refused.expect("the tmpfs never filled");
    assert!(at > 0, "the first push was refused: {}", r.text());
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("diskFull"), "{}", r.text());
    assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
    // Refused, so not stored, and answered as not ready right away.
    let ready = agent.request("GET", "/-/ready", &[], b"");
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert!(ready.text().contains("journal"), "{}", ready.text());
    assert_eq!(health(&agent).0, Some(1.0));
    assert_eq!(stored_instances(&agent), acknowledged);
    let healthy = agent.request("GET", "/-/healthy", &[], b"");
    assert_eq!(healthy.status, 200, "{}", healthy.text());
    let metrics = agent.request("GET", "/metrics", &[], b"");
    assert_eq!(metrics.status, 200);
    assert!(!metrics.text().contains(&format!("instance=\"{at}\"")));

    // Every refused push is answered, and changes nothing; the log is not
    // flooded: a line per failed commit at most, about one a second.
    let mut refused_more = 0;
    for i in 10_000..10_200 {
        match put(&agent, i) {
            r if r.status == 200 => acknowledged.push(i),
            r => {
                assert_eq!(r.status, 503, "{}", r.text());
                refused_more += 1;
            }
        }
    }
    assert!(refused_more > 150, "{refused_more} of 200 refused");
    assert_eq!(stored_instances(&agent), acknowledged);
    let log = std::fs::read_to_string(agent.dir.path().join("agent.stderr.log")).unwrap();
    let lines = log.lines().filter(|l| l.contains("disk is full")).count();
    assert!((1..=10).contains(&lines), "{lines} lines:\n{log}");

    // Room comes back: pushes are taken again, with no restart.
    std::fs::remove_file(&ballast).unwrap();
    wait_for("a push taken again", Duration::from_secs(10), || {
        let r = put(&agent, 20_000);
        (r.status == 200).then_some(())
    });
    acknowledged.push(20_000);
    let ready = agent.request("GET", "/-/ready", &[], b"");
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(stored_instances(&agent), acknowledged);
    drop(agent);

    // A restart replays exactly what was acknowledged.
    let agent = Agent::start_raw(free_port(), &conf);
    wait_for("the store loaded", Duration::from_secs(10), || {
        (agent.request("GET", "/-/ready", &[], b"").status == 200).then_some(())
    });
    assert_eq!(stored_instances(&agent), acknowledged);
}
