//! A store journal on a real filesystem that fills: a 512 KiB tmpfs the
//! test mounts (root only; `.ci/run` runs as root, and the test fails,
//! never skips, if it cannot mount). Once a write fails, the journal
//! refuses every push until a restart, and the agent must say so:
//! `/-/ready` answers 503 with the reason, while `/-/healthy` stays 200 so
//! that an orchestrator takes the agent out of service instead of
//! restarting it into the same full disk. Its log says so once, not once
//! per refused push.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

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

#[test]
#[ignore = "needs root to mount a tmpfs: run via .ci/run"]
fn a_failed_journal_makes_the_agent_unready_but_healthy() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let fs = Tmpfs::mount(&tmp.path().join("fs"), "512k");
    let store = fs.path.join("store");
    let agent = Agent::start_raw(
        free_port(),
        &format!(
            "[[inputs.pushgateway]]\npersistence_dir = {:?}\n",
            store.display().to_string()
        ),
    );
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
    assert!(free.is_some_and(|f| f > 256.0 * 1024.0), "{free:?}");

    // About 8 KB a push: the tmpfs is full after some 60 of them.
    let mut body = String::from("# TYPE fill_value gauge\n");
    for i in 0..100 {
        body.push_str(&format!(
            "fill_value{{n=\"{i}\",pad=\"{}\"}} {i}\n",
            "x".repeat(40)
        ));
    }
    let mut refused = None;
    for i in 0..2_000 {
        let r = agent.request(
            "PUT",
            &format!("/metrics/job/fill/instance/{i}"),
            &[],
            body.as_bytes(),
        );
        if r.status != 200 {
            refused = Some((i, r.status, r.text()));
            break;
        }
    }
    let (at, status, text) = refused.expect("the tmpfs never filled");
    assert!(at > 0, "the first push was refused: {text}");
    assert_eq!(status, 500, "{text}");
    assert!(text.contains("journalFailed"), "{text}");

    let ready = agent.request("GET", "/-/ready", &[], b"");
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert!(ready.text().contains("journal failed"), "{}", ready.text());
    let healthy = agent.request("GET", "/-/healthy", &[], b"");
    assert_eq!(healthy.status, 200, "{}", healthy.text());
    // Reads still work, and the self metrics say what happened.
    let metrics = agent.request("GET", "/metrics", &[], b"");
    assert_eq!(metrics.status, 200);
    let (failed, free) = health(&agent);
    assert_eq!(failed, Some(1.0));
    assert!(free.is_some_and(|f| f < 64.0 * 1024.0), "{free:?}");

    // Every refused push is answered, but the log is not flooded: one
    // line for the fault, then at most one a minute with the count.
    for i in 0..200 {
        let r = agent.request(
            "PUT",
            &format!("/metrics/job/more/instance/{i}"),
            &[],
            body.as_bytes(),
        );
        assert_eq!(r.status, 500);
    }
    let log = std::fs::read_to_string(agent.dir.path().join("agent.stderr.log")).unwrap();
    let lines = log.lines().filter(|l| l.contains("store journal")).count();
    assert!(
        (1..=2).contains(&lines),
        "{lines} lines about the journal:\n{log}"
    );
    drop(agent);
}
