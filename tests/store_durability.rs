//! The store with `persistence_dir`: what pushkit acknowledged survives
//! `kill -9`.
//!
//! Client threads PUT distinct groups as fast as they can; the agent is
//! killed (SIGKILL) while pushes are in flight, restarted on the same
//! directory, and every acknowledged push must be exposed at `/metrics`.
//! For each group the exposed value must be the last acknowledged one or
//! one pushed after it (an unacknowledged push may or may not have landed);
//! both families of a push must come from the same push. Three kill/restart
//! cycles in one test. Also: DELETE is durable, and so is group_ttl expiry.

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const TEXT: (&str, &str) = ("Content-Type", "text/plain; version=0.0.4");

fn conf(dir: &Path, extra: &str) -> AgentConf {
    let path = dir.to_str().expect("UTF-8 temp path");
    assert!(
        !path.contains(['"', '\\']),
        "temp path needs TOML escaping: {path}"
    );
    AgentConf {
        pushgateway: format!("persistence_dir = \"{path}\"\n{extra}"),
        ..AgentConf::default()
    }
}

fn store_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("pushkit-store-")
        .tempdir()
        .expect("temp dir")
}

/// `family{job=JOB,instance=…}` values of the exposition, by instance.
fn values_by_instance(text: &str, family: &str, job: &str) -> BTreeMap<String, Vec<f64>> {
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (name, labels, value) in parse_exposition(text) {
        if name == family && labels.get("job").map(String::as_str) == Some(job) {
            let instance = labels.get("instance").cloned().unwrap_or_default();
            out.entry(instance).or_default().push(value);
        }
    }
    out
}

fn metrics_text(agent: &Agent) -> String {
    let r = agent.request("GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200, "GET /metrics: {}", r.text());
    r.text()
}

// ---------------------------------------------------------------------------
// Acknowledged pushes survive kill -9

const THREADS: usize = 4;
const MAX_PUSHES_PER_THREAD: u64 = 5_000;
/// Acknowledged pushes (in the cycle) after which the agent is killed.
const KILL_AFTER_ACKS: [usize; 3] = [20, 80, 200];

/// What a group may show after a restart.
#[derive(Debug, Clone)]
struct Expect {
    /// Values it may expose: the last acknowledged one and any attempted
    /// after it.
    values: BTreeSet<u64>,
    /// True while no push of the group has been acknowledged (or it was
    /// found absent after a restart where that was allowed).
    may_be_absent: bool,
}

#[derive(Debug)]
enum Event {
    Attempt(String, u64),
    Ack(String, u64),
    /// An answer other than 200 before the kill.
    Refused(String, u64, u16, String),
}

fn push_body(v: u64) -> String {
    format!(
        "# TYPE dur_value gauge\ndur_value {v}\n# TYPE dur_pushes_total counter\ndur_pushes_total {v}\n"
    )
}

/// One client thread: PUTs to its groups round-robin, strictly increasing
/// values, until told to stop, an I/O error (the agent is gone) or the
/// bound. Returns what happened, in order.
fn client(
    port: u16,
    thread_no: usize,
    cycle: usize,
    pause: Duration,
    stop: &AtomicBool,
    acks: &AtomicUsize,
) -> Vec<Event> {
    let groups = 3 + cycle as u64;
    let base = (cycle as u64 + 1) * 1_000_000;
    let mut events = Vec::new();
    for i in 0..MAX_PUSHES_PER_THREAD {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let group = format!("t{thread_no}g{}", i % groups);
        let v = base + i;
        events.push(Event::Attempt(group.clone(), v));
        let url = format!("http://127.0.0.1:{port}/metrics/job/dur/instance/{group}");
        match http("PUT", &url, &[TEXT], push_body(v).as_bytes()) {
            Ok(r) if r.status == 200 => {
                acks.fetch_add(1, Ordering::SeqCst);
                events.push(Event::Ack(group, v));
            }
            Ok(r) => {
                events.push(Event::Refused(group, v, r.status, r.text()));
                break;
            }
            Err(_) => break,
        }
        thread::sleep(pause);
    }
    events
}

/// Applies a client's events to `model` (a group's events are in order:
/// each group has one client). Returns (attempted, acknowledged, refusals).
fn apply_events(
    model: &mut BTreeMap<String, Expect>,
    events: impl IntoIterator<Item = Event>,
) -> (usize, usize, Vec<String>) {
    let (mut attempted, mut acked, mut refused) = (0, 0, Vec::new());
    for ev in events {
        match ev {
            Event::Attempt(g, v) => {
                attempted += 1;
                let e = model.entry(g).or_insert_with(|| Expect {
                    values: BTreeSet::new(),
                    may_be_absent: true,
                });
                e.values.insert(v);
            }
            Event::Ack(g, v) => {
                acked += 1;
                let e = model.get_mut(&g).expect("attempted before acked");
                e.values = BTreeSet::from([v]);
                e.may_be_absent = false;
            }
            Event::Refused(g, v, status, body) => {
                refused.push(format!("PUT group {g} value {v}: {status} {body:?}"))
            }
        }
    }
    (attempted, acked, refused)
}

/// Checks the restarted agent against `model`, then resets the model to
/// what it shows.
fn check_restored(agent: &Agent, model: &mut BTreeMap<String, Expect>, cycle: usize) {
    let text = metrics_text(agent);
    let values = values_by_instance(&text, "dur_value", "dur");
    let totals = values_by_instance(&text, "dur_pushes_total", "dur");
    let push_times = values_by_instance(&text, "push_time_seconds", "dur");
    let mut problems = Vec::new();
    let mut unacknowledged_landed = 0;
    for group in values.keys().chain(totals.keys()) {
        if !model.contains_key(group) {
            problems.push(format!("group {group} was never pushed"));
        }
    }
    for (group, want) in model.iter_mut() {
        let v = values.get(group).cloned().unwrap_or_default();
        let t = totals.get(group).cloned().unwrap_or_default();
        match (v.as_slice(), t.as_slice()) {
            ([], []) if want.may_be_absent => {
                want.values.clear();
            }
            ([], []) => problems.push(format!(
                "group {group} is gone; acknowledged value {:?} (or later {:?})",
                want.values.first(),
                want.values
            )),
            ([x], [y]) => {
                let ok = *x == *y && x.fract() == 0.0 && want.values.contains(&(*x as u64));
                if !ok {
                    problems.push(format!(
                        "group {group}: dur_value {x}, dur_pushes_total {y}; allowed: {:?}{}",
                        want.values,
                        if want.may_be_absent { " or absent" } else { "" }
                    ));
                }
                let pt = push_times.get(group).cloned().unwrap_or_default();
                if pt.len() != 1 || pt[0] <= 0.0 {
                    problems.push(format!(
                        "group {group}: push_time_seconds {pt:?}, want one non-zero"
                    ));
                }
                if want.values.first() != Some(&(*x as u64)) || want.may_be_absent {
                    unacknowledged_landed += 1;
                }
                want.values = BTreeSet::from([*x as u64]);
                want.may_be_absent = false;
            }
            _ => problems.push(format!(
                "group {group}: dur_value {v:?}, dur_pushes_total {t:?} (one each, from the same push)"
            )),
        }
    }
    assert!(
        problems.is_empty(),
        "after kill -9 and restart {}: {} problem(s):\n{}\n----- /metrics -----\n{text}",
        cycle + 1,
        problems.len(),
        problems.join("\n")
    );
    eprintln!(
        "restart {}: {} groups as expected ({unacknowledged_landed} show a push that was in flight at the kill)",
        cycle + 1,
        model.len()
    );
}

#[test]
fn acknowledged_pushes_survive_kill_9() {
    let dir = store_dir();
    let conf = conf(dir.path(), "");
    let mut agent = Agent::start(&conf);
    let mut model: BTreeMap<String, Expect> = BTreeMap::new();

    for (cycle, &kill_after) in KILL_AFTER_ACKS.iter().enumerate() {
        let stop = AtomicBool::new(false);
        let acks = AtomicUsize::new(0);
        let port = agent.port;
        let events: Vec<Vec<Event>> = thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (stop, acks) = (&stop, &acks);
                    s.spawn(move || client(port, t, cycle, Duration::ZERO, stop, acks))
                })
                .collect();
            let deadline = Instant::now() + Duration::from_secs(120);
            while acks.load(Ordering::SeqCst) < kill_after
                && Instant::now() < deadline
                && !handles.iter().all(|h| h.is_finished())
            {
                thread::sleep(Duration::from_millis(2));
            }
            // Pushes are in flight: the clients do not pause.
            agent.kill9();
            stop.store(true, Ordering::SeqCst);
            handles
                .into_iter()
                .map(|h| h.join().expect("client thread"))
                .collect()
        });

        let (attempted, acked, refused) = apply_events(&mut model, events.into_iter().flatten());
        assert!(
            refused.is_empty(),
            "cycle {}: pushes refused before the kill:\n{}",
            cycle + 1,
            refused.join("\n")
        );
        assert!(
            acked >= kill_after,
            "cycle {}: only {acked} of {attempted} pushes acknowledged before the kill (wanted {kill_after})",
            cycle + 1
        );
        eprintln!(
            "cycle {}: {attempted} pushes attempted, {acked} acknowledged, then kill -9",
            cycle + 1
        );

        drop(agent);
        agent = Agent::start(&conf);
        check_restored(&agent, &mut model, cycle);
    }
    agent.assert_running();
}

// ---------------------------------------------------------------------------
// Across a snapshot (the journal is compacted past 64 MiB, README)

const SNAP_SERIES: usize = 1_000;
/// Big pushes at most per round (about 1.2 MB each: 130 are well past
/// 64 MiB of journal).
const MAX_BIG_PUSHES: u64 = 130;

fn big_body(v: u64, pad: &str) -> String {
    let mut body = String::from("# TYPE snap_fill gauge\n");
    for i in 0..SNAP_SERIES {
        body.push_str(&format!("snap_fill{{i=\"{i}\",pad=\"{pad}\"}} {i}\n"));
    }
    body.push_str(&format!("# TYPE snap_marker gauge\nsnap_marker {v}\n"));
    body
}

/// PUTs the big group until stopped, an I/O error or the bound.
fn big_client(port: u16, round: usize, stop: &AtomicBool) -> Vec<Event> {
    let pad = "p".repeat(1_200);
    let url = format!("http://127.0.0.1:{port}/metrics/job/snap");
    let mut events = Vec::new();
    for i in 0..MAX_BIG_PUSHES {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let v = (round as u64 + 1) * 1_000_000 + i;
        events.push(Event::Attempt("snap".to_string(), v));
        match http("PUT", &url, &[TEXT], big_body(v, &pad).as_bytes()) {
            Ok(r) if r.status == 200 => events.push(Event::Ack("snap".to_string(), v)),
            Ok(r) => {
                events.push(Event::Refused("snap".to_string(), v, r.status, r.text()));
                break;
            }
            Err(_) => break,
        }
    }
    events
}

/// Names of the snapshot files (finished or being written) in `dir`.
fn snapshot_files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .expect("read persistence_dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("snapshot"))
        .collect()
}

fn check_big_group(agent: &Agent, want: &mut Expect, round: usize) {
    let text = metrics_text(agent);
    let marker = values_by_instance(&text, "snap_marker", "snap");
    let fill = values_by_instance(&text, "snap_fill", "snap");
    let marker: Vec<f64> = marker.into_values().flatten().collect();
    let fill = fill.into_values().flatten().count();
    match marker.as_slice() {
        [] if want.may_be_absent && fill == 0 => want.values.clear(),
        [x] if want.values.contains(&(*x as u64)) && fill == SNAP_SERIES => {
            want.values = BTreeSet::from([*x as u64]);
            want.may_be_absent = false;
        }
        _ => panic!(
            "round {}: the big group shows snap_marker {marker:?} and {fill} snap_fill series; \
             allowed markers {:?}{}, with {SNAP_SERIES} series",
            round + 1,
            want.values,
            if want.may_be_absent { " or absent" } else { "" }
        ),
    }
}

#[test]
fn acknowledged_pushes_survive_kill_9_around_a_snapshot() {
    let dir = store_dir();
    let conf = conf(dir.path(), "");
    let mut agent = Agent::start(&conf);
    let mut small: BTreeMap<String, Expect> = BTreeMap::new();
    let mut big = Expect {
        values: BTreeSet::new(),
        may_be_absent: true,
    };

    // Round 1: killed as soon as a snapshot file shows up (likely while
    // it is being written). Round 2: killed once a newer snapshot is
    // there and more pushes were acknowledged after it.
    for round in 0..2 {
        let before = snapshot_files(dir.path());
        let stop = AtomicBool::new(false);
        let acks = AtomicUsize::new(0);
        let port = agent.port;
        let mut seen = BTreeSet::new();
        let (small_events, big_events) = thread::scope(|s| {
            let smalls: Vec<_> = (0..2)
                .map(|t| {
                    let (stop, acks) = (&stop, &acks);
                    let pause = Duration::from_millis(5);
                    s.spawn(move || client(port, t, round, pause, stop, acks))
                })
                .collect();
            let bigs = s.spawn(|| big_client(port, round, &stop));
            let deadline = Instant::now() + Duration::from_secs(600);
            let mut acks_at_snapshot = None;
            while Instant::now() < deadline && !bigs.is_finished() {
                seen = snapshot_files(dir.path());
                let new: Vec<&String> = seen.difference(&before).collect();
                let done = match round {
                    0 => !new.is_empty(),
                    _ => {
                        if acks_at_snapshot.is_none() && new.iter().any(|n| !n.ends_with(".tmp")) {
                            acks_at_snapshot = Some(acks.load(Ordering::SeqCst));
                        }
                        acks_at_snapshot.is_some_and(|a| acks.load(Ordering::SeqCst) >= a + 20)
                    }
                };
                if done {
                    break;
                }
                thread::sleep(Duration::from_millis(1));
            }
            agent.kill9();
            stop.store(true, Ordering::SeqCst);
            let small_events: Vec<Event> = smalls
                .into_iter()
                .flat_map(|h| h.join().expect("client thread"))
                .collect();
            (small_events, bigs.join().expect("big client thread"))
        });
        let new: Vec<&String> = seen.difference(&before).collect();
        assert!(
            !new.is_empty(),
            "round {}: no new snapshot file in {} after up to {MAX_BIG_PUSHES} pushes of ~1.2 MB \
             (the README says the journal is compacted past 64 MiB); files: {seen:?}",
            round + 1,
            dir.path().display()
        );
        let (s_att, s_ack, s_ref) = apply_events(&mut small, small_events);
        let mut one = BTreeMap::from([("snap".to_string(), big.clone())]);
        let (b_att, b_ack, b_ref) = apply_events(&mut one, big_events);
        big = one.remove("snap").expect("big group");
        let refused: Vec<String> = s_ref.into_iter().chain(b_ref).collect();
        assert!(
            refused.is_empty(),
            "round {}: pushes refused before the kill:\n{}",
            round + 1,
            refused.join("\n")
        );
        eprintln!(
            "round {}: small pushes {s_att} attempted, {s_ack} acknowledged; big pushes {b_att} \
             attempted, {b_ack} acknowledged; kill -9 with snapshot files {seen:?}",
            round + 1
        );

        drop(agent);
        agent = Agent::start(&conf);
        check_restored(&agent, &mut small, round);
        check_big_group(&agent, &mut big, round);
    }
    agent.assert_running();
}

// ---------------------------------------------------------------------------
// DELETE and expiry are durable too

fn put_value(agent: &Agent, group: &str, v: f64) {
    let r = agent.request(
        "PUT",
        &format!("/metrics/job/deltest/instance/{group}"),
        &[TEXT],
        format!("# TYPE del_value gauge\ndel_value {v}\n").as_bytes(),
    );
    assert_eq!(r.status, 200, "PUT {group}: {}", r.text());
}

fn delete(agent: &Agent, group: &str) {
    let r = agent.request(
        "DELETE",
        &format!("/metrics/job/deltest/instance/{group}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 202, "DELETE {group}: {}", r.text());
}

fn assert_groups(agent: &Agent, want: &[(&str, f64)], when: &str) {
    let text = metrics_text(agent);
    let got = values_by_instance(&text, "del_value", "deltest");
    let want: BTreeMap<String, Vec<f64>> = want
        .iter()
        .map(|(g, v)| (g.to_string(), vec![*v]))
        .collect();
    assert_eq!(got, want, "{when}: del_value by instance\n{text}");
    let groups: BTreeSet<String> = values_by_instance(&text, "push_time_seconds", "deltest")
        .into_keys()
        .collect();
    assert_eq!(
        groups,
        want.keys().cloned().collect::<BTreeSet<_>>(),
        "{when}: groups (push_time_seconds)\n{text}"
    );
}

#[test]
fn delete_survives_kill_9() {
    let dir = store_dir();
    let conf = conf(dir.path(), "");
    let mut agent = Agent::start(&conf);
    put_value(&agent, "a", 1.0);
    put_value(&agent, "b", 2.0);
    put_value(&agent, "c", 3.0);
    delete(&agent, "a");
    delete(&agent, "c");
    put_value(&agent, "c", 4.0);
    assert_groups(&agent, &[("b", 2.0), ("c", 4.0)], "before the kill");

    agent.kill9();
    drop(agent);
    let mut agent = Agent::start(&conf);
    assert_groups(
        &agent,
        &[("b", 2.0), ("c", 4.0)],
        "after kill -9 and restart",
    );

    // A DELETE right before the kill.
    delete(&agent, "b");
    agent.kill9();
    drop(agent);
    let agent = Agent::start(&conf);
    assert_groups(&agent, &[("c", 4.0)], "after a DELETE, kill -9 and restart");
}

#[test]
fn group_ttl_expiry_survives_kill_9() {
    let dir = store_dir();
    let conf_ttl = conf(dir.path(), "group_ttl = \"1s\"\n");
    let mut agent = Agent::start(&conf_ttl);
    let pushed = Instant::now();
    let r = agent.request(
        "PUT",
        "/metrics/job/ttltest/instance/t1",
        &[TEXT],
        b"# TYPE ttl_value gauge\nttl_value 7\n",
    );
    assert_eq!(r.status, 200, "PUT: {}", r.text());
    let shown = |agent: &Agent| {
        let text = metrics_text(agent);
        let v = values_by_instance(&text, "ttl_value", "ttltest");
        let p = values_by_instance(&text, "push_time_seconds", "ttltest");
        (!v.is_empty() || !p.is_empty()).then_some(text)
    };
    // Shown at first (unless this machine took the whole TTL to ask).
    let first = shown(&agent);
    if pushed.elapsed() < Duration::from_millis(900) {
        assert!(first.is_some(), "the group is missing right after its push");
    }
    wait_for("the group to expire", Duration::from_secs(30), || {
        shown(&agent).is_none().then_some(())
    });

    agent.kill9();
    drop(agent);
    let mut agent = Agent::start(&conf_ttl);
    // Not even briefly, before some sweep.
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        if let Some(text) = shown(&agent) {
            panic!("the expired group is back after kill -9 and restart:\n{text}");
        }
        thread::sleep(Duration::from_millis(100));
    }

    // Expiry is a deletion: it stays even when the restarted agent keeps
    // groups forever.
    agent.kill9();
    drop(agent);
    let agent = Agent::start(&conf(dir.path(), "group_ttl = \"0s\"\n"));
    if let Some(text) = shown(&agent) {
        panic!("the expired group is back after a restart with group_ttl = \"0s\":\n{text}");
    }
}
