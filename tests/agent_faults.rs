//! Faults no real filesystem gives on demand (a failed fsync, EIO at a
//! write, and ENOSPC at a chosen moment), injected under the agent's journal and the
//! log it shares with the disk queue, with the agent in process and a
//! recording backend. For each fault the test counts what was
//! acknowledged, what was refused, what the backend received and what the
//! store holds, and asserts: every acknowledged push delivered, no refused
//! one delivered or stored, each group holding its last acknowledged push,
//! the same after a restart, and pushes taken again without one. With
//! `persistence_dir` and `queue_dir` on two filesystems (a log each), the
//! faults hit one of the two logs.
//! (The real filesystem that fills is `peer_full_disk`.)

use pushkit::config::{Config, IoConfig, PushgatewayConfig, SinkConfig};
use pushkit::durable::FaultyIo;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use warp::Filter;

mod inprocess;
use inprocess::{start_with_io, Agent};

/// A line-protocol backend that records every `seq` tag it is sent.
async fn recording_backend() -> (u16, Arc<Mutex<BTreeSet<u64>>>) {
    let got: Arc<Mutex<BTreeSet<u64>>> = Arc::default();
    let seen = got.clone();
    let route = warp::post()
        .and(warp::path("write"))
        .and(warp::body::bytes())
        .map(move |body: bytes::Bytes| {
            let text = String::from_utf8_lossy(&body);
            let mut got = seen.lock().unwrap();
            for line in text.lines() {
                if let Some(at) = line.find("seq=") {
                    let digits: String = line[at + 4..]
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    got.insert(digits.parse().unwrap());
                }
            }
            warp::reply::with_status("", warp::http::StatusCode::NO_CONTENT)
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (port, got)
}

/// Where the agent keeps its data, and which of it fails.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `persistence_dir` and `queue_dir` on one filesystem: one log.
    SharedLog,
    /// The journal beside memory queues.
    MemoryQueues,
    /// `persistence_dir` on a tmpfs (`/dev/shm`) and `queue_dir` on the
    /// disk, a log each, the faults under the journal's only.
    TwoLogsJournalFails,
    /// The same, the faults under the disk queue's only.
    TwoLogsQueueFails,
}

/// The data directories of a round: `store` and `queue` under `disk`, or
/// `store` under `shm` (another filesystem) for two logs.
struct Dirs {
    disk: tempfile::TempDir,
    shm: tempfile::TempDir,
}

impl Dirs {
    fn new() -> Dirs {
        Dirs {
            disk: tempfile::tempdir().unwrap(),
            // A tmpfs on every Linux this runs on; failing here is right:
            // the two-log rounds need a second filesystem.
            shm: tempfile::tempdir_in("/dev/shm").expect("a tmpfs at /dev/shm"),
        }
    }

    fn store(&self, layout: Layout) -> std::path::PathBuf {
        match layout {
            Layout::TwoLogsJournalFails | Layout::TwoLogsQueueFails => {
                self.shm.path().join("store")
            }
            _ => self.disk.path().join("store"),
        }
    }

    fn queue(&self) -> std::path::PathBuf {
        self.disk.path().join("queue")
    }

    /// The faults, armed under the directory the layout says fails.
    fn io(&self, layout: Layout) -> FaultyIo {
        FaultyIo {
            only_under: match layout {
                Layout::TwoLogsJournalFails => Some(self.store(layout)),
                Layout::TwoLogsQueueFails => Some(self.queue()),
                _ => None,
            },
            ..FaultyIo::default()
        }
    }
}

fn config(dirs: &Dirs, port: u16, layout: Layout) -> Config {
    Config {
        pushgateway: Some(PushgatewayConfig {
            persistence_dir: Some(dirs.store(layout).to_string_lossy().into_owned()),
            ..PushgatewayConfig::default()
        }),
        io: IoConfig {
            max_cache_count: 1000,
            flush_interval: Duration::from_millis(20),
            shutdown_timeout: Duration::from_millis(500),
            queue_dir: (layout != Layout::MemoryQueues)
                .then(|| dirs.queue().to_string_lossy().into_owned()),
        },
        sinks: vec![SinkConfig {
            name: "rec".into(),
            url: format!("http://127.0.0.1:{port}/write"),
            gzip: false,
            retry_base: Duration::from_millis(20),
            retry_max: Duration::from_millis(200),
            ..SinkConfig::default()
        }],
        ..Config::default()
    }
}

/// The pushes the faults are armed for.
const FAULTY: std::ops::Range<u64> = 10..15;

/// The group of push `seq`: one of five, or one of its own for a push the
/// faults are armed for, so that a refused push the store kept shows
/// (a later push to its group would hide it).
fn group_of(seq: u64) -> String {
    match FAULTY.contains(&seq) {
        true => format!("f{seq}"),
        false => format!("g{}", seq % 5),
    }
}

/// Push `seq` to its group.
async fn push(agent: &Agent, seq: u64) -> u16 {
    let body = format!("fault_value{{seq=\"{seq}\"}} {seq}\n");
    let path = format!("/metrics/job/faults/instance/{}", group_of(seq));
    agent.put_text(&path, &body).await.status
}

/// Group → the seq its series holds, from the exposition.
async fn stored(agent: &Agent) -> BTreeMap<String, u64> {
    let text = agent.get("/metrics").await.body;
    text.lines()
        .filter(|l| l.starts_with("fault_value{"))
        .map(|l| {
            let group = l
                .split("instance=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            let seq = l.split("seq=\"").nth(1).unwrap().split('"').next().unwrap();
            (group.to_string(), seq.parse().unwrap())
        })
        .collect()
}

#[derive(Default)]
struct Outcomes {
    acked: Vec<u64>,
    refused: Vec<(u64, u16)>,
}

impl Outcomes {
    fn last_per_group(&self) -> BTreeMap<String, u64> {
        self.acked.iter().map(|&s| (group_of(s), s)).collect()
    }
}

/// Pushes `seqs` one at a time, with `fault` armed for those in `faulty`.
async fn run_pushes(
    agent: &Agent,
    seqs: std::ops::Range<u64>,
    fault: &AtomicBool,
    faulty: std::ops::Range<u64>,
    out: &mut Outcomes,
) {
    for seq in seqs {
        fault.store(faulty.contains(&seq), Ordering::SeqCst);
        match push(agent, seq).await {
            200 => out.acked.push(seq),
            status => out.refused.push((seq, status)),
        }
    }
    fault.store(false, Ordering::SeqCst);
}

async fn fault_round(layout: Layout, which: fn(&FaultyIo) -> &AtomicBool, want_status: u16) {
    let dirs = Dirs::new();
    let (port, got) = recording_backend().await;
    let io = dirs.io(layout);
    let agent = start_with_io(config(&dirs, port, layout), Arc::new(io.clone())).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while agent.get("/-/ready").await.status != 200 {
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut out = Outcomes::default();
    run_pushes(&agent, 0..20, which(&io), FAULTY, &mut out).await;
    // Taken again with no restart, within seconds.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seq = 1_000;
    while push(&agent, seq).await != 200 {
        out.refused.push((seq, 0));
        assert!(Instant::now() < deadline, "pushes never taken again");
        tokio::time::sleep(Duration::from_millis(50)).await;
        seq += 1;
    }
    out.acked.push(seq);
    run_pushes(&agent, 2_000..2_010, which(&io), 0..0, &mut out).await;

    assert!(
        out.refused
            .iter()
            .any(|&(s, status)| FAULTY.contains(&s) && status == want_status),
        "{:?}",
        out.refused
    );
    // Every acknowledged push arrives; no refused one does, nor is stored.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let delivered = got.lock().unwrap().clone();
        if out.acked.iter().all(|s| delivered.contains(s)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "undelivered: {:?}",
            out.acked
                .iter()
                .filter(|s| !delivered.contains(s))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let delivered = got.lock().unwrap().clone();
    let refused_delivered: Vec<u64> = out
        .refused
        .iter()
        .map(|r| r.0)
        .filter(|s| delivered.contains(s))
        .collect();
    assert!(
        refused_delivered.is_empty(),
        "refused and delivered: {refused_delivered:?}"
    );
    assert_eq!(stored(&agent).await, out.last_per_group());
    agent.stop().await.unwrap();

    // A restart replays exactly what was acknowledged.
    let agent = start_with_io(
        config(&dirs, port, layout),
        Arc::new(pushkit::durable::RealIo),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while agent.get("/-/ready").await.status != 200 {
        assert!(Instant::now() < deadline, "never ready after the restart");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(stored(&agent).await, out.last_per_group());
    agent.stop().await.unwrap();
}

fn fsync(io: &FaultyIo) -> &AtomicBool {
    &io.faults.failing_syncs
}

fn enospc(io: &FaultyIo) -> &AtomicBool {
    &io.faults.short_writes
}

fn eio(io: &FaultyIo) -> &AtomicBool {
    &io.faults.failing_writes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eio_at_write_on_the_shared_log_refuses_cleanly_and_heals() {
    fault_round(Layout::SharedLog, eio, 500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eio_at_write_under_the_journal_with_memory_queues() {
    fault_round(Layout::MemoryQueues, eio, 500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_on_the_shared_log_refuses_cleanly_and_heals() {
    fault_round(Layout::SharedLog, fsync, 500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enospc_on_the_shared_log_refuses_cleanly_and_heals() {
    fault_round(Layout::SharedLog, enospc, 503).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_under_the_journal_with_memory_queues() {
    fault_round(Layout::MemoryQueues, fsync, 500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enospc_under_the_journal_with_memory_queues() {
    fault_round(Layout::MemoryQueues, enospc, 503).await;
}

// `persistence_dir` and `queue_dir` on two filesystems: a log each, the
// queue's record committed first. Whichever fails, the push is refused
// and neither the store nor the backend keeps it.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eio_under_the_journal_on_two_logs_forwards_nothing_refused() {
    fault_round(Layout::TwoLogsJournalFails, eio, 500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_under_the_journal_on_two_logs() {
    fault_round(Layout::TwoLogsJournalFails, fsync, 500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enospc_under_the_journal_on_two_logs() {
    fault_round(Layout::TwoLogsJournalFails, enospc, 503).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eio_under_the_disk_queue_on_two_logs_stores_nothing_refused() {
    fault_round(Layout::TwoLogsQueueFails, eio, 500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_under_the_disk_queue_on_two_logs() {
    fault_round(Layout::TwoLogsQueueFails, fsync, 500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enospc_under_the_disk_queue_on_two_logs() {
    fault_round(Layout::TwoLogsQueueFails, enospc, 503).await;
}
