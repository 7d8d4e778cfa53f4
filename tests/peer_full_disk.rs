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
use std::collections::{BTreeMap, BTreeSet};
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
    let agent = restarted(&conf);
    assert_eq!(stored_instances(&agent), acknowledged);
}

/// A journal in a log of its own (`persistence_dir` alone, as beside
/// memory queues, or on another filesystem than `queue_dir`) that fills
/// its disk by itself: the same few groups pushed again and again, so the
/// store stays small while its journal grows. Nothing frees room but a
/// compaction, which must happen by itself: each push refused for the
/// full disk is taken again within seconds, with no restart and no room
/// given back by anyone.
#[test]
#[ignore = "needs root to mount a tmpfs: run via .ci/run"]
fn a_journal_that_fills_its_own_disk_compacts_and_goes_on() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let fs = Tmpfs::mount(&tmp.path().join("fs"), "1m");
    let conf = format!(
        "[[inputs.pushgateway]]\npersistence_dir = {:?}\n",
        fs.path.join("store").display().to_string()
    );
    let agent = Agent::start_raw(free_port(), &conf);
    let mut last = BTreeMap::new();
    let mut refusals = 0;
    // About 8 KB of journal a push: some three times the disk in all.
    for i in 0..400u64 {
        let group = i % 5;
        let path = format!("/metrics/job/fill/instance/{group}");
        let body = fill_body().replace("pad=", &format!("push=\"{i}\",pad="));
        wait_for(
            &format!("push {i} taken (after {refusals} refusals)"),
            Duration::from_secs(15),
            || {
                let r = agent.request("PUT", &path, &[], body.as_bytes());
                if r.status != 200 {
                    assert_eq!(r.status, 503, "{}", r.text());
                    refusals += 1;
                    return None;
                }
                Some(())
            },
        );
        last.insert(group, i);
    }
    assert!(
        refusals > 0,
        "the disk never filled: the test proves nothing"
    );
    let log = std::fs::read_to_string(agent.dir.path().join("agent.stderr.log")).unwrap();
    assert!(
        log.contains("compacting the store's journal"),
        "no compaction for space:\n{log}"
    );
    let stored = |agent: &Agent| -> BTreeMap<u64, u64> {
        let text = agent.request("GET", "/metrics", &[], b"").text();
        text.lines()
            .filter(|l| l.starts_with("fill_value{"))
            .map(|l| (label(l, "instance"), label(l, "push")))
            .collect()
    };
    assert_eq!(stored(&agent), last);
    drop(agent);
    // A restart replays exactly that.
    let agent = restarted(&conf);
    assert_eq!(stored(&agent), last);
}

/// The second fault: `queue_dir` (here shared with the journal)
/// fills while the backend is down. Ten groups are pushed over and over,
/// as cron jobs do, so the disk fills with the log, not the store. Pushes
/// are refused cleanly; a restart on the full disk comes up; once the
/// backend is back, the store compacts into the room it held, the
/// delivered segments are deleted while the disk is still full, and
/// pushes are taken again, with no restart. The backend holds every
/// acknowledged push and no refused one, and the store the last
/// acknowledged push of each group.
#[test]
#[ignore = "needs root to mount a tmpfs, and victoria-metrics: run via .ci/run"]
fn a_full_queue_dir_drains_and_takes_pushes_again() {
    VictoriaMetrics::binary();
    let tmp = tempfile::tempdir().expect("temp dir");
    let fs = Tmpfs::mount(&tmp.path().join("fs"), "2m");
    let vm_port = free_port();
    let conf = format!(
        "[io]\nflush_interval = \"100ms\"\nshutdown_timeout = \"1s\"\nqueue_dir = {:?}\n\n\
         [[sinks]]\nname = \"vm\"\nurl = \"http://127.0.0.1:{vm_port}/write\"\n\
         retry_base = \"100ms\"\nretry_max = \"500ms\"\n\n\
         [[inputs.pushgateway]]\nkeep_exist_metric_name = false\npersistence_dir = {:?}\n",
        fs.path.join("queue").display().to_string(),
        fs.path.join("store").display().to_string(),
    );
    let port = free_port();
    let mut agent = Agent::start_raw(port, &conf);
    let put = |agent: &Agent, i: u64| {
        let mut body = String::from("# TYPE cron_value gauge\n");
        for n in 0..100 {
            body.push_str(&format!("cron_value{{n=\"{n}\",push=\"{i}\"}} {n}\n"));
        }
        agent.request(
            "PUT",
            &format!("/metrics/job/cron/instance/{}", i % 10),
            &[],
            body.as_bytes(),
        )
    };
    // Pushes from `from` on until 20 are refused for a full disk.
    let fill = |agent: &Agent, from: u64, acknowledged: &mut Vec<u64>, refused: &mut Vec<u64>| {
        let mut n = 0;
        for i in from..from + 5_000 {
            let r = put(agent, i);
            match r.status {
                200 => acknowledged.push(i),
                503 if r.text().contains("diskFull") => {
                    assert!(r.header("retry-after").is_some());
                    refused.push(i);
                    n += 1;
                    if n == 20 {
                        return;
                    }
                }
                _ => panic!("push {i}: {} {}", r.status, r.text()),
            }
        }
        panic!("the tmpfs never filled");
    };
    // What the store holds: the push label of each instance's series.
    let stored = |agent: &Agent| -> BTreeMap<u64, u64> {
        let text = agent.request("GET", "/metrics", &[], b"").text();
        text.lines()
            .filter(|l| l.starts_with("cron_value{") && l.contains("n=\"0\""))
            .map(|l| (label(l, "instance"), label(l, "push")))
            .collect()
    };
    let last_of = |acknowledged: &[u64]| -> BTreeMap<u64, u64> {
        acknowledged.iter().map(|&i| (i % 10, i)).collect()
    };
    // The backend is down: the queue fills the disk.
    let mut acknowledged = Vec::new();
    let mut refused = Vec::new();
    fill(&agent, 0, &mut acknowledged, &mut refused);
    assert!(
        acknowledged.len() > 20,
        "{} acknowledged",
        acknowledged.len()
    );
    assert_eq!(stored(&agent), last_of(&acknowledged));

    // A restart on the full disk comes up, and refuses pushes once what
    // room it found is gone.
    agent.kill9();
    drop(agent);
    // Whatever a cut-back group left free is taken too: the disk is full
    // to the last block when the agent starts.
    let mut ballast = std::fs::File::create(fs.path.join("ballast")).unwrap();
    let block = vec![7u8; 4096];
    while std::io::Write::write_all(&mut ballast, &block).is_ok() {}
    assert_eq!(free_bytes(&fs.path), 0);
    let agent = Agent::start_raw(port, &conf);
    wait_for("the store loaded", Duration::from_secs(10), || {
        let r = agent.request("GET", "/-/ready", &[], b"");
        (r.status == 200 || r.text().contains("refuses appends")).then_some(())
    });
    assert_eq!(stored(&agent), last_of(&acknowledged));
    assert_eq!(agent.request("GET", "/-/healthy", &[], b"").status, 200);
    fill(&agent, 100_000, &mut acknowledged, &mut refused);
    let free_when_full = free_bytes(&fs.path);

    // The backend comes back: the queue drains, the store compacts, the
    // delivered segments go while the disk is still full, and pushes are
    // taken again: many of them, not only what a cut-back group freed.
    let mut vm = VictoriaMetrics::start_on(vm_port);
    wait_for("room back", Duration::from_secs(30), || {
        (free_bytes(&fs.path) > free_when_full + 512 * 1024).then_some(())
    });
    wait_for("pushes taken again", Duration::from_secs(10), || {
        (agent.request("GET", "/-/ready", &[], b"").status == 200).then_some(())
    });
    for i in 200_000..200_050 {
        let r = put(&agent, i);
        assert_eq!(r.status, 200, "{}", r.text());
        acknowledged.push(i);
    }
    assert_eq!(agent.request("GET", "/-/ready", &[], b"").status, 200);
    assert_eq!(stored(&agent), last_of(&acknowledged));
    let delivered = wait_for(
        "every acknowledged push delivered",
        Duration::from_secs(30),
        || {
            let exported = vm.export("{__name__=~\"cron_value.*\"}");
            let got: BTreeSet<u64> = exported
                .keys()
                .filter_map(|labels| labels.get("push")?.parse().ok())
                .collect();
            (got.len() >= acknowledged.len()).then_some(got)
        },
    );
    let want: BTreeSet<u64> = acknowledged.iter().copied().collect();
    assert_eq!(delivered, want, "refused: {refused:?}");
}

/// The agent started again on `conf`, once its store has loaded.
fn restarted(conf: &str) -> Agent {
    let agent = Agent::start_raw(free_port(), conf);
    wait_for("the store loaded", Duration::from_secs(10), || {
        (agent.request("GET", "/-/ready", &[], b"").status == 200).then_some(())
    });
    agent
}

/// The value of label `name` in an exposition line, as a number.
fn label(line: &str, name: &str) -> u64 {
    let at = line.find(&format!("{name}=\"")).expect("label") + name.len() + 2;
    line[at..]
        .split('"')
        .next()
        .unwrap()
        .parse()
        .expect("a number")
}

/// Bytes free on the filesystem of `path`.
fn free_bytes(path: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .expect("df");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df's figure")
}
