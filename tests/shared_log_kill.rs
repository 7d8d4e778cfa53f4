//! The log shared by the store's journal and the sinks' disk queue keeps
//! what it acknowledged through `kill -9`: after each restart every
//! acknowledged push is in the store (its last acknowledged value or a
//! later one that was in flight) and its point is still queued for the
//! sink, whose backend is down throughout.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

const THREADS: usize = 4;
const KILL_AFTER_ACKS: [usize; 2] = [40, 120];

fn conf(pdir: &Path, qdir: &Path) -> String {
    format!(
        "[io]\nmax_cache_count = 1000\nflush_interval = \"100ms\"\nshutdown_timeout = \"1s\"\nqueue_dir = \"{}\"\n\n\
         [[sinks]]\nname = \"down\"\nurl = \"http://127.0.0.1:9/write\"\n\n\
         [[inputs.pushgateway]]\npersistence_dir = \"{}\"\n",
        qdir.display(),
        pdir.display()
    )
}

/// Per group: the last acknowledged value and the last attempted one.
type Model = BTreeMap<String, (Option<u64>, u64)>;

fn client(port: u16, t: usize, base: u64, stop: &AtomicBool, acks: &AtomicUsize) -> Model {
    let mut model = Model::new();
    for i in 0.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let group = format!("t{t}g{}", i % 3);
        let v = base + i;
        let e = model.entry(group.clone()).or_insert((None, v));
        e.1 = v;
        let url = format!("http://127.0.0.1:{port}/metrics/job/shared/instance/{group}");
        match http("PUT", &url, &[], format!("shared_value {v}\n").as_bytes()) {
            Ok(r) if r.status == 200 => {
                e.0 = Some(v);
                acks.fetch_add(1, Ordering::SeqCst);
            }
            _ => break,
        }
    }
    model
}

#[test]
fn acknowledged_pushes_survive_kill_9_on_the_shared_log() {
    let tmp = tempfile::tempdir().unwrap();
    let (pdir, qdir) = (tmp.path().join("store"), tmp.path().join("queue"));
    let port = free_port();
    let mut agent = Agent::start_raw(port, &conf(&pdir, &qdir));
    let mut acked_total = 0usize;
    let mut expected: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (cycle, &kill_after) in KILL_AFTER_ACKS.iter().enumerate() {
        let stop = AtomicBool::new(false);
        let acks = AtomicUsize::new(0);
        let models: Vec<Model> = thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (stop, acks) = (&stop, &acks);
                    let base = (cycle as u64 + 1) * 1_000_000;
                    s.spawn(move || client(port, t, base, stop, acks))
                })
                .collect();
            while acks.load(Ordering::SeqCst) < kill_after {
                thread::sleep(Duration::from_millis(2));
            }
            // Killed while pushes are in flight.
            agent.kill9();
            stop.store(true, Ordering::SeqCst);
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        acked_total += acks.load(Ordering::SeqCst);
        for m in models {
            for (group, (acked, attempted)) in m {
                match acked {
                    Some(a) => {
                        expected.insert(group, (a, attempted));
                    }
                    // Only an unacknowledged push this cycle: the earlier
                    // value or this one.
                    None => {
                        if let Some(e) = expected.get_mut(&group) {
                            e.1 = attempted;
                        }
                    }
                }
            }
        }

        agent = Agent::start_raw(port, &conf(&pdir, &qdir));
        let samples = agent.self_metrics();
        let mut problems = Vec::new();
        for (group, (acked, attempted)) in &expected {
            let got = sample_value(
                &samples,
                "shared_value",
                &[("job", "shared"), ("instance", group)],
            );
            match got {
                Some(v) if v as u64 >= *acked && v as u64 <= *attempted => {}
                other => problems.push(format!(
                    "group {group}: {other:?}, acknowledged {acked}, attempted up to {attempted}"
                )),
            }
        }
        assert!(problems.is_empty(), "cycle {cycle}: {problems:?}");
        // One point per push; the backend never took any.
        let queued = agent
            .self_metric("pushkit_sink_queue_points", &[("sink", "down")])
            .unwrap_or(0.0);
        assert!(
            queued as usize >= acked_total,
            "cycle {cycle}: {queued} points queued, {acked_total} pushes acknowledged"
        );
        eprintln!(
            "cycle {cycle}: {} groups restored, {queued} points queued for {acked_total} acknowledged pushes",
            expected.len()
        );
    }
    let names: Vec<String> = std::fs::read_dir(&pdir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.contains(&"LOG".to_string()), "{names:?}");
}
