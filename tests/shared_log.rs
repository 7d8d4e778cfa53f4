//! With `persistence_dir` and `[io] queue_dir` on one filesystem, the
//! store's journal and the sinks' disk queue share one log: a push is made
//! durable by one fsync (exactly one when pushes arrive one at a time). On
//! two filesystems each keeps its own log: two fsyncs per push. One test
//! per binary: it reads the process-wide fsync counter.

mod inprocess;

use inprocess::{start, Agent};
use pushkit::config::{Config, IoConfig, PushgatewayConfig, SinkConfig};
use std::path::Path;
use std::time::{Duration, Instant};

fn config(pdir: &Path, qdir: &Path) -> Config {
    Config {
        pushgateway: Some(PushgatewayConfig {
            persistence_dir: Some(pdir.to_string_lossy().into_owned()),
            ..PushgatewayConfig::default()
        }),
        io: IoConfig {
            queue_dir: Some(qdir.to_string_lossy().into_owned()),
            flush_interval: Duration::from_millis(50),
            shutdown_timeout: Duration::from_millis(200),
            ..IoConfig::default()
        },
        // Nothing listens there: the points stay queued.
        sinks: vec![SinkConfig {
            name: "down".into(),
            url: "http://127.0.0.1:9/write".into(),
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(5),
            ..SinkConfig::default()
        }],
        ..Config::default()
    }
}

async fn ready(agent: &Agent) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = agent
            .client
            .get(format!("{}/-/ready", agent.base))
            .send()
            .await;
        if r.is_ok_and(|r| r.status() == 200) {
            return;
        }
        assert!(Instant::now() < deadline, "the agent never got ready");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Pushes groups `j0..jn` one at a time; returns the fsyncs they took.
async fn push_one_at_a_time(agent: &Agent, n: usize) -> u64 {
    let before = pushkit::durable::total_fsyncs();
    for i in 0..n {
        let r = agent
            .client
            .put(format!("{}/metrics/job/j{i}", agent.base))
            .body(format!("shared_log_value {i}\n"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    pushkit::durable::total_fsyncs() - before
}

async fn stop(mut agent: Agent) {
    agent.stop.take().unwrap().send(()).unwrap();
    agent.handle.await.unwrap().unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_fsync_per_push_on_one_filesystem_two_on_two() {
    const PUSHES: usize = 20;
    let tmp = tempfile::tempdir().unwrap();
    let (pdir, qdir) = (tmp.path().join("store"), tmp.path().join("queue"));

    let agent = start(config(&pdir, &qdir)).await;
    ready(&agent).await;
    let fsyncs = push_one_at_a_time(&agent, PUSHES).await;
    assert_eq!(fsyncs, PUSHES as u64, "one fsync per push");
    stop(agent).await;
    // The log is in queue_dir; persistence_dir has the snapshots and
    // names the log.
    assert!(names(&qdir).iter().any(|n| n.starts_with("log-")));
    assert!(!names(&pdir).iter().any(|n| n.starts_with("log-")));
    assert!(pdir.join("LOG").exists());

    // After a restart the store has every push, and the sink still has
    // every point.
    let agent = start(config(&pdir, &qdir)).await;
    ready(&agent).await;
    let text = agent
        .client
        .get(format!("{}/metrics", agent.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for i in 0..PUSHES {
        let line = format!("shared_log_value{{instance=\"\",job=\"j{i}\"}} {i}");
        assert!(text.contains(&line), "{line} missing in:\n{text}");
    }
    assert!(
        text.contains(&format!(
            "pushkit_sink_queue_points{{sink=\"down\"}} {PUSHES}"
        )),
        "{text}"
    );
    // The self metric reads the same process-wide count the test does.
    let total = pushkit::durable::total_fsyncs();
    let line = text
        .lines()
        .find(|l| l.starts_with("pushkit_log_fsyncs_total "))
        .unwrap_or_else(|| panic!("no pushkit_log_fsyncs_total in:\n{text}"));
    let shown: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        shown >= PUSHES as u64 && shown <= total,
        "{line}, {total} counted"
    );
    stop(agent).await;

    // The store's persistence_dir on another filesystem: a log each.
    let shm = Path::new("/dev/shm");
    let device = |d: &Path| std::os::unix::fs::MetadataExt::dev(&std::fs::metadata(d).unwrap());
    if !shm.is_dir() || device(shm) == device(tmp.path()) {
        eprintln!("no second filesystem at /dev/shm: the two-log case is not checked");
        return;
    }
    let other = tempfile::tempdir_in(shm).unwrap();
    let pdir2 = other.path().join("store");
    let agent = start(config(&pdir2, &qdir)).await;
    ready(&agent).await;
    let fsyncs = push_one_at_a_time(&agent, PUSHES).await;
    assert_eq!(fsyncs, 2 * PUSHES as u64, "two logs, two fsyncs per push");
    stop(agent).await;
}
