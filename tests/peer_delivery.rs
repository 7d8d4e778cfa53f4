//! Delivery to a real VictoriaMetrics (Debian's `victoria-metrics`) over the
//! InfluxDB line protocol `/write` endpoint, through outages:
//!
//! - VictoriaMetrics stopped (SIGTERM) and started again on the same port
//!   and storage while pushes go on: every push is acknowledged and every
//!   one arrives.
//! - pushkit `kill -9`ed under load with `[io] queue_dir`, while the backend
//!   is not even running: after a restart on the same queue dir, every
//!   acknowledged push arrives.
//! - Two sinks, one of them a closed port: the other keeps receiving; with a
//!   tiny budget on the dead one, pushes are refused with 503 `queueFull`,
//!   all or nothing (a refused push reaches no sink).
//!
//! Every push carries one gauge sample `<job>_value` = i in its own group
//! `/metrics/job/<job>/instance/<i>`; with `keep_exist_metric_name = false`
//! VictoriaMetrics names it `<job>_value` again, so each push is one series
//! there, and counting is exact.
//!
//! `PUSHKIT_VICTORIA_METRICS` names the binary (default
//! /usr/bin/victoria-metrics).

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long a test waits for VictoriaMetrics to hold what it should.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(60);

const TEXT: (&str, &str) = ("Content-Type", "text/plain; version=0.0.4");

fn gauge_body(job: &str, value: usize) -> String {
    format!("# TYPE {job}_value gauge\n{job}_value {value}\n")
}

fn group_path(job: &str, i: usize) -> String {
    format!("/metrics/job/{job}/instance/{i}")
}

/// One push of value `i` to its own group; the response or the I/O error.
fn push_one(port: u16, job: &str, i: usize) -> std::io::Result<Response> {
    http(
        "PUT",
        &format!("http://127.0.0.1:{port}{}", group_path(job, i)),
        &[TEXT],
        gauge_body(job, i).as_bytes(),
    )
}

/// `<job>_value` in VictoriaMetrics: instance → the values of its samples.
fn values_by_instance(vm: &mut VictoriaMetrics, job: &str) -> BTreeMap<usize, Vec<f64>> {
    let exported = vm.export(&format!("{{__name__=\"{job}_value\"}}"));
    let mut out = BTreeMap::new();
    for (labels, samples) in exported {
        let want_keys: BTreeSet<&str> = ["__name__", "instance", "job"].into();
        let keys: BTreeSet<&str> = labels.keys().map(String::as_str).collect();
        assert_eq!(keys, want_keys, "labels of {labels:?}");
        assert_eq!(labels["job"], job, "job of {labels:?}");
        let instance: usize = labels["instance"]
            .parse()
            .unwrap_or_else(|_| panic!("instance of {labels:?}"));
        assert!(
            out.insert(instance, samples.iter().map(|s| s.1).collect::<Vec<_>>())
                .is_none(),
            "instance {instance} twice"
        );
    }
    out
}

/// Polls VictoriaMetrics until every instance in `want` has its series with
/// value = instance. Returns what it found (possibly more than `want`).
/// Panics with the missing and wrong ones after [`ARRIVAL_TIMEOUT`].
fn wait_all_arrived(
    vm: &mut VictoriaMetrics,
    agent: &Agent,
    job: &str,
    want: &BTreeSet<usize>,
) -> BTreeMap<usize, Vec<f64>> {
    let mut last = BTreeMap::new();
    let found = poll_until(ARRIVAL_TIMEOUT, Duration::from_millis(500), || {
        last = values_by_instance(vm, job);
        want.iter()
            .all(|i| last.contains_key(i))
            .then(|| last.clone())
    });
    match found {
        Some(got) => got,
        None => {
            let missing: Vec<&usize> = want.iter().filter(|i| !last.contains_key(i)).collect();
            panic!(
                "after {ARRIVAL_TIMEOUT:?} victoria-metrics lacks {} of {} acknowledged pushes: {missing:?}\nself metrics:\n{}\n{}\n{}",
                missing.len(),
                want.len(),
                agent.sink_metrics_text(),
                agent.stderr_text(),
                vm.log_text()
            )
        }
    }
}

/// Every sample of each instance must hold value = instance (duplicates of
/// the same sample are allowed: delivery is at least once).
fn assert_values(got: &BTreeMap<usize, Vec<f64>>) -> usize {
    let mut duplicates = 0;
    for (i, values) in got {
        assert!(!values.is_empty(), "instance {i} has no sample");
        assert!(
            values.iter().all(|v| *v == *i as f64),
            "instance {i} has values {values:?}, want {i}"
        );
        duplicates += values.len() - 1;
    }
    duplicates
}

fn sink_conf(name: &str, url: &str, extra: &str) -> String {
    format!(
        "[[sinks]]\nname = \"{name}\"\nurl = \"{url}\"\ngzip = true\n\
         retry_base = \"100ms\"\nretry_max = \"1s\"\n{extra}\n"
    )
}

fn io_conf(extra: &str) -> String {
    format!(
        "[io]\nmax_cache_count = 1000\nflush_interval = \"200ms\"\nshutdown_timeout = \"5s\"\n{extra}\n"
    )
}

const INPUT: &str = "[[inputs.pushgateway]]\nkeep_exist_metric_name = false\n";

// ---------------------------------------------------------------------------

#[test]
#[ignore = "needs victoria-metrics: run via .ci/run"]
fn victoria_restarted_while_pushes_go_on() {
    const N: usize = 300;
    const JOB: &str = "restart";
    let mut vm = VictoriaMetrics::start();
    let agent = Agent::start_raw(
        free_port(),
        &format!(
            "{}{}{INPUT}",
            io_conf(""),
            sink_conf("vm", &vm.url("/write"), "")
        ),
    );

    // The pusher pushes 0..N in order, pausing a little between pushes. It
    // waits at N/3 until VictoriaMetrics is down and at 2N/3 until it is up
    // again, so the middle third is pushed during the outage.
    let stage = Arc::new(AtomicUsize::new(0)); // 1: VM down, 2: VM up again
    let acked = Arc::new(AtomicUsize::new(0));
    let pusher = {
        let (stage, acked, port) = (stage.clone(), acked.clone(), agent.port);
        thread::spawn(move || -> Result<Vec<(usize, u32)>, String> {
            let mut refusals = Vec::new();
            for i in 0..N {
                let need = if i >= 2 * N / 3 {
                    2
                } else if i >= N / 3 {
                    1
                } else {
                    0
                };
                let deadline = Instant::now() + Duration::from_secs(120);
                while stage.load(Ordering::SeqCst) < need {
                    if Instant::now() > deadline {
                        return Err(format!("push {i}: waited 120 s for stage {need}"));
                    }
                    thread::sleep(Duration::from_millis(10));
                }
                // Retry on 503 (queue full), bounded.
                let mut tries = 0u32;
                loop {
                    let r = push_one(port, JOB, i).map_err(|e| format!("push {i}: {e}"))?;
                    match r.status {
                        200 => break,
                        503 if tries < 100 => {
                            tries += 1;
                            thread::sleep(Duration::from_millis(100));
                        }
                        s => return Err(format!("push {i}: status {s}: {}", r.text())),
                    }
                }
                if tries > 0 {
                    refusals.push((i, tries));
                }
                acked.fetch_add(1, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(5));
            }
            Ok(refusals)
        })
    };

    let wait_acked = |n: usize| {
        wait_for(
            &format!("{n} acknowledged pushes"),
            Duration::from_secs(60),
            || (acked.load(Ordering::SeqCst) >= n || pusher.is_finished()).then_some(()),
        )
    };
    wait_acked(N / 3);
    vm.stop();
    stage.store(1, Ordering::SeqCst);
    let down_since = Instant::now();
    wait_acked(2 * N / 3);
    // Let pushkit retry against the dead port for a while.
    thread::sleep(Duration::from_secs(3).saturating_sub(down_since.elapsed()));
    let retried_while_down = agent
        .self_metric("pushkit_sink_points_retried_total", &[("sink", "vm")])
        .unwrap_or(0.0);
    let queued_while_down = agent
        .self_metric("pushkit_sink_queue_points", &[("sink", "vm")])
        .unwrap_or(0.0);
    assert!(
        queued_while_down > 0.0,
        "nothing queued for the stopped backend\n{}",
        agent.sink_metrics_text()
    );
    vm.restart();
    stage.store(2, Ordering::SeqCst);

    let refusals = pusher
        .join()
        .expect("pusher panicked")
        .unwrap_or_else(|e| panic!("{e}\n{}", agent.stderr_text()));
    assert_eq!(acked.load(Ordering::SeqCst), N);

    let want: BTreeSet<usize> = (0..N).collect();
    let got = wait_all_arrived(&mut vm, &agent, JOB, &want);
    let extra: Vec<&usize> = got.keys().filter(|i| !want.contains(i)).collect();
    assert!(extra.is_empty(), "series nobody pushed: {extra:?}");
    let duplicates = assert_values(&got);

    let retried = agent
        .self_metric("pushkit_sink_points_retried_total", &[("sink", "vm")])
        .unwrap_or(0.0);
    assert!(
        retried > 0.0,
        "pushkit_sink_points_retried_total{{sink=\"vm\"}} = {retried} after an outage\n{}",
        agent.sink_metrics_text()
    );
    // Everything queued during the outage left the queue.
    let left = wait_for("the vm queue to drain", Duration::from_secs(30), || {
        let q = agent
            .self_metric("pushkit_sink_queue_points", &[("sink", "vm")])
            .unwrap_or(-1.0);
        (q == 0.0).then_some(q)
    });
    assert_eq!(left, 0.0);
    let delivered = agent
        .self_metric("pushkit_sink_points_delivered_total", &[("sink", "vm")])
        .unwrap_or(0.0);
    assert!(
        delivered >= N as f64,
        "pushkit_sink_points_delivered_total{{sink=\"vm\"}} = {delivered} < {N}"
    );
    eprintln!(
        "restart: {N} pushes acknowledged, {} series in victoria-metrics, {duplicates} duplicate samples; \
         while down: {queued_while_down} points queued, {retried_while_down} retried; \
         in the end {retried} retried, {delivered} delivered; pushes refused with 503: {refusals:?}",
        got.len()
    );
}

// ---------------------------------------------------------------------------

#[test]
#[ignore = "needs victoria-metrics: run via .ci/run"]
fn kill_9_under_load_with_queue_dir() {
    const JOB: &str = "crash";
    const PUSHERS: usize = 4;
    const PER_PUSHER: usize = 1000;
    // Checked before anything is queued for a backend that never comes.
    VictoriaMetrics::binary();
    let vm_port = free_port();
    let queue = tempfile::Builder::new()
        .prefix("pushkit-queue-")
        .tempdir()
        .expect("temp dir");
    let queue_dir = queue.path().join("queue");
    let conf = format!(
        "{}{}{INPUT}",
        io_conf(&format!("queue_dir = \"{}\"\n", queue_dir.display())),
        sink_conf("vm", &format!("http://127.0.0.1:{vm_port}/write"), "")
    );
    let agent_port = free_port();
    let mut agent = Agent::start_raw(agent_port, &conf);

    // Pushers: pusher k pushes i = k, k + PUSHERS, ... until told to stop or
    // the agent is gone; each records what every push got.
    #[derive(Debug)]
    enum Outcome {
        Acked,
        Status(u16),
        Io(String),
    }
    impl Outcome {
        fn describe(&self) -> String {
            match self {
                Outcome::Acked => "200".to_string(),
                Outcome::Status(s) => format!("status {s}"),
                Outcome::Io(e) => format!("I/O error: {e}"),
            }
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let outcomes: Arc<Mutex<BTreeMap<usize, Outcome>>> = Arc::default();
    let pushers: Vec<_> = (0..PUSHERS)
        .map(|k| {
            let (stop, acked, outcomes) = (stop.clone(), acked.clone(), outcomes.clone());
            thread::spawn(move || {
                for j in 0..PER_PUSHER {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let i = j * PUSHERS + k;
                    let outcome = match push_one(agent_port, JOB, i) {
                        Ok(r) if r.status == 200 => {
                            acked.fetch_add(1, Ordering::SeqCst);
                            Outcome::Acked
                        }
                        Ok(r) => Outcome::Status(r.status),
                        Err(e) => Outcome::Io(e.to_string()),
                    };
                    let gone = matches!(outcome, Outcome::Io(_));
                    outcomes.lock().unwrap().insert(i, outcome);
                    if gone {
                        break;
                    }
                }
            })
        })
        .collect();

    wait_for("200 acknowledged pushes", Duration::from_secs(60), || {
        (acked.load(Ordering::SeqCst) >= 200).then_some(())
    });
    let in_flight = pushers.iter().filter(|p| !p.is_finished()).count();
    let queued_before = agent
        .self_metric("pushkit_sink_queue_points", &[("sink", "vm")])
        .unwrap_or(0.0);
    agent.kill9();
    stop.store(true, Ordering::SeqCst);
    for p in pushers {
        p.join().expect("pusher panicked");
    }
    assert!(
        in_flight > 0,
        "every pusher had finished before the kill: push more"
    );
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let acked_set: BTreeSet<usize> = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Acked))
        .map(|(i, _)| *i)
        .collect();
    let others: Vec<(&usize, &Outcome)> = outcomes
        .iter()
        .filter(|(_, o)| !matches!(o, Outcome::Acked))
        .collect();
    let bad_status: Vec<(usize, String)> = others
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Status(_)))
        .map(|(i, o)| (**i, o.describe()))
        .collect();
    let unacked: Vec<(usize, String)> = others.iter().map(|(i, o)| (**i, o.describe())).collect();
    assert!(
        bad_status.is_empty(),
        "pushes answered with an error before the kill: {bad_status:?}\n{}",
        agent.stderr_text()
    );
    let stderr_before = agent.stderr_text();
    drop(agent);

    let mut vm = VictoriaMetrics::start_on(vm_port);
    let agent = Agent::start_raw(agent_port, &conf);
    let got = wait_all_arrived(&mut vm, &agent, JOB, &acked_set);
    let pushed: BTreeSet<usize> = outcomes.keys().copied().collect();
    let extra: Vec<&usize> = got.keys().filter(|i| !pushed.contains(i)).collect();
    assert!(extra.is_empty(), "series nobody pushed: {extra:?}");
    let duplicates = assert_values(&got);
    let unacked_arrived = got.keys().filter(|i| !acked_set.contains(i)).count();
    let resend_log: Vec<String> = agent
        .stderr_text()
        .lines()
        .filter(|l| l.contains("disk queue"))
        .map(str::to_string)
        .collect();

    let restart_dups = agent
        .self_metric(
            "pushkit_sink_points_possible_duplicates_total",
            &[("sink", "vm"), ("reason", "restart")],
        )
        .unwrap_or_else(|| {
            panic!(
                "no pushkit_sink_points_possible_duplicates_total{{sink=\"vm\",reason=\"restart\"}} after re-reading the queue\n{}\n{}",
                agent.sink_metrics_text(),
                agent.stderr_text()
            )
        });
    // At most the batch in flight at the crash (max_cache_count = 1000) can
    // have been delivered before the kill; every re-read point up to that
    // bound is counted.
    assert!(
        restart_dups >= acked_set.len().min(1000) as f64 && restart_dups <= 1000.0,
        "possible duplicates (restart) = {restart_dups}, but {} acknowledged points were re-read from the queue (bound: one batch of 1000)\n{}",
        acked_set.len(),
        agent.stderr_text()
    );
    eprintln!(
        "kill -9: {} pushes acknowledged, {} not ({} of those arrived anyway), {in_flight} pushers in flight at the kill, \
         {queued_before} points queued before it; after the restart {} series in victoria-metrics, {duplicates} duplicate samples, \
         possible duplicates (restart) = {restart_dups}\nnot acknowledged: {unacked:?}\nfirst run: {}\nsecond run: {resend_log:?}",
        acked_set.len(),
        others.len(),
        unacked_arrived,
        got.len(),
        stderr_before
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .count()
            .to_string()
            + " WARN/ERROR lines"
    );
}

// ---------------------------------------------------------------------------

#[test]
#[ignore = "needs victoria-metrics: run via .ci/run"]
fn one_sink_down_another_keeps_receiving() {
    const M: usize = 50;
    let mut vm = VictoriaMetrics::start();
    // Never listened on.
    let dead = free_port();
    let vm_write = vm.url("/write");
    let two_sinks = |down_budget: &str| {
        format!(
            "{}{}{}{INPUT}",
            io_conf(""),
            sink_conf(
                "up",
                &vm_write,
                "overflow = \"block\"\nmax_queue_bytes = \"64MiB\"\n"
            ),
            sink_conf(
                "down",
                &format!("http://127.0.0.1:{dead}/write"),
                &format!("overflow = \"block\"\nmax_queue_bytes = {down_budget}\n")
            ),
        )
    };

    // Run 1: a generous budget on "down".
    {
        const JOB: &str = "updown";
        let agent = Agent::start_raw(free_port(), &two_sinks("\"64MiB\""));
        for i in 0..M {
            let r = push_one(agent.port, JOB, i).expect("push");
            assert_eq!(r.status, 200, "push {i}: {}", r.text());
        }
        let want: BTreeSet<usize> = (0..M).collect();
        let got = wait_all_arrived(&mut vm, &agent, JOB, &want);
        assert_eq!(
            got.keys().copied().collect::<BTreeSet<_>>(),
            want,
            "series in victoria-metrics"
        );
        assert_eq!(assert_values(&got), 0, "duplicate samples: {got:?}");
        let down_queue = agent.self_metric("pushkit_sink_queue_points", &[("sink", "down")]);
        assert_eq!(
            down_queue,
            Some(M as f64),
            "pushkit_sink_queue_points{{sink=\"down\"}}\n{}",
            agent.sink_metrics_text()
        );
        agent.wait_self_metric(
            "pushkit_sink_points_delivered_total",
            &[("sink", "up")],
            M as f64,
            Duration::from_secs(10),
        );
        let down_delivered = agent
            .self_metric("pushkit_sink_points_delivered_total", &[("sink", "down")])
            .unwrap_or(0.0);
        assert_eq!(down_delivered, 0.0, "{}", agent.sink_metrics_text());
        let down_retried = agent
            .self_metric("pushkit_sink_points_retried_total", &[("sink", "down")])
            .unwrap_or(0.0);
        assert!(down_retried > 0.0, "{}", agent.sink_metrics_text());
        eprintln!(
            "one sink down: {M} pushes, {} series in victoria-metrics, down queue {down_queue:?}, down retried {down_retried}",
            got.len()
        );
    }

    // Run 2: "down" holds at most 1000 bytes; an empty queue takes any
    // push, so a few pushes fit, then the agent must refuse with 503.
    {
        const JOB: &str = "full";
        let agent = Agent::start_raw(free_port(), &two_sinks("1000"));
        let mut acked = BTreeSet::new();
        let mut refused = BTreeSet::new();
        let mut first_refusal = None;
        for i in 0..500 {
            let r = push_one(agent.port, JOB, i).expect("push");
            match r.status {
                200 => {
                    assert!(
                        refused.is_empty(),
                        "push {i} accepted after a refusal, but \"down\" never drains\n{}",
                        agent.sink_metrics_text()
                    );
                    acked.insert(i);
                }
                503 => {
                    refused.insert(i);
                    first_refusal.get_or_insert(r);
                    if refused.len() == 5 {
                        break;
                    }
                }
                s => panic!("push {i}: status {s}: {}", r.text()),
            }
        }
        let r = first_refusal.unwrap_or_else(|| {
            panic!(
                "500 pushes accepted with max_queue_bytes = 1000 on a dead sink\n{}",
                agent.sink_metrics_text()
            )
        });
        let retry_after = r
            .header("Retry-After")
            .unwrap_or_else(|| panic!("503 without Retry-After: {:?} {}", r.headers, r.text()));
        let secs: u64 = retry_after
            .parse()
            .unwrap_or_else(|_| panic!("Retry-After {retry_after:?}"));
        assert!(secs > 0, "Retry-After {secs}");
        let body: serde_json::Value = serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("503 body not JSON ({e}): {}", r.text()));
        assert_eq!(body["error_code"], "queueFull", "{body}");
        assert!(
            body["message"].as_str().is_some_and(|m| m.contains("down")),
            "the message names the sink: {body}"
        );
        assert!(!acked.is_empty(), "the empty queue refused the first push");

        let got = wait_all_arrived(&mut vm, &agent, JOB, &acked);
        // Give a refused push every chance to show up, had it been sent.
        thread::sleep(Duration::from_secs(2));
        let got_after = values_by_instance(&mut vm, JOB);
        assert_eq!(
            got_after.keys().copied().collect::<BTreeSet<_>>(),
            acked,
            "victoria-metrics must hold exactly the acknowledged pushes (refused: {refused:?})"
        );
        assert_eq!(assert_values(&got_after), 0, "duplicates: {got_after:?}");
        let down_queue = agent.self_metric("pushkit_sink_queue_points", &[("sink", "down")]);
        assert_eq!(down_queue, Some(acked.len() as f64));
        let codes: Vec<(String, f64)> = agent
            .self_metrics()
            .into_iter()
            .filter(|(n, l, _)| {
                n == "pushkit_pushes_total" && l.get("method").map(String::as_str) == Some("PUT")
            })
            .map(|(_, l, v)| (l.get("code").cloned().unwrap_or_default(), v))
            .collect();
        eprintln!(
            "tiny budget: {} acknowledged, {} refused (first at push {:?}, Retry-After {secs}), {} series in victoria-metrics; pushes by code {codes:?}",
            acked.len(),
            refused.len(),
            refused.first(),
            got.len()
        );
    }
}
