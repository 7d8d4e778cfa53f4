//! The durability rows: what `persistence_dir` and `[io] queue_dir`
//! together cost against the same agent in memory, both with a discarding
//! HTTP sink so that the disk queue is really written, and how many
//! fsyncs a push takes (from the agent's `pushkit_log_fsyncs_total`).
//!
//! Three runs of pushkit at 1,000 groups, each preloaded:
//! - in memory: the sink's memory queue, no persistence;
//! - durable: the store's journal and the disk queue (one shared log when
//!   both directories are on one filesystem, as here);
//! - durable, one push at a time: one connection, a bounded number of
//!   pushes, for fsyncs per push when nothing can share a group commit.

use crate::load::{self, LoadResult};
use crate::procs::{self, PushkitConf, SinkConf};
use crate::{
    counter_value, dir, finish, fmt_opt_dur, fmt_rate, measured, port, preload, report_run, Ctx,
    Results,
};
use std::net::SocketAddr;
use std::time::Duration;

/// Groups the durability rows push to.
pub const GROUPS: usize = 1_000;
/// Pushes of the one-at-a-time run.
const SEQUENTIAL_PUSHES: u64 = 200;

/// One run: its load result and the fsyncs the agent counted during it.
#[derive(Debug, Clone)]
pub struct Run {
    pub load: LoadResult,
    /// `pushkit_log_fsyncs_total` after the run minus before it; None when
    /// the agent does not expose it (an older binary).
    pub fsyncs: Option<f64>,
}

impl Run {
    pub fn fsyncs_per_push(&self) -> Option<f64> {
        let f = self.fsyncs?;
        (self.load.ok > 0).then(|| f / self.load.ok as f64)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Rows {
    pub memory: Option<Run>,
    pub durable: Option<Run>,
    pub sequential: Option<Run>,
}

/// Runs the three rows against a discarding sink at `sink`.
pub async fn rounds(ctx: &Ctx, sink: SocketAddr, res: &mut Results) {
    for durable in [false, true] {
        let what = if durable { "durable" } else { "in memory" };
        eprintln!("== pushkit, {GROUPS} groups, discarding HTTP sink, {what}");
        if let Err(e) = round(ctx, sink, durable, res).await {
            res.note(format!("durability rows, {what}: {e}"));
        }
    }
}

async fn round(
    ctx: &Ctx,
    sink: SocketAddr,
    durable: bool,
    res: &mut Results,
) -> Result<(), String> {
    let d = dir(ctx, &format!("pushkit-durable-{durable}"))?;
    let port = port()?;
    let conf = PushkitConf {
        sinks: vec![SinkConf {
            name: "discard".into(),
            url: format!("http://{sink}/write"),
            gzip: false,
        }],
        persistence_dir: durable.then(|| match &ctx.opts.store_dir {
            Some(dir) => dir.join(format!("pushkit-bench-store-{}", std::process::id())),
            None => d.join("store"),
        }),
        queue_dir: durable.then(|| d.join("queue")),
        ..PushkitConf::default()
    };
    procs::write_pushkit_conf(&d, port, &conf).map_err(|e| e.to_string())?;
    procs::pushkit_check(&ctx.pushkit, &d)?;
    let mut p = procs::start_pushkit(&ctx.pushkit, &d, port, d.join("pushkit.log"))?;
    p.wait_ready("/-/ready", Duration::from_secs(60)).await?;
    preload(ctx, p.addr, GROUPS).await?;

    let before = fsyncs(p.addr).await;
    let threads_before = procs::cpu_seconds_by_thread(p.pid());
    let r = measured(&p, ctx.spec(p.addr, GROUPS, ctx.opts.duration)).await;
    let threads = threads_before.and_then(|t0| {
        let t1 = procs::cpu_seconds_by_thread(p.pid())?;
        Ok(t1
            .into_iter()
            .map(|(name, s)| {
                let spent = s - t0.get(&name).copied().unwrap_or(0.0);
                (name, spent)
            })
            .filter(|&(_, spent)| spent > 0.0)
            .collect::<Vec<_>>())
    });
    let run = Run {
        fsyncs: delta(before, fsyncs(p.addr).await),
        load: r,
    };
    let label = if durable { "durable" } else { "in memory" };
    report_run(&format!("pushkit ({label}, sink)"), GROUPS, &run.load);
    report_fsyncs(&run);
    report_threads(&run, threads);
    res.check_run(&format!("pushkit {label} with a sink"), &run.load);
    if durable {
        res.durability.durable = Some(run);
        let mut spec = ctx.spec(p.addr, GROUPS, ctx.opts.duration);
        spec.connections = 1;
        spec.max_requests = SEQUENTIAL_PUSHES;
        let before = fsyncs(p.addr).await;
        let r = load::run(spec).await;
        let run = Run {
            fsyncs: delta(before, fsyncs(p.addr).await),
            load: r,
        };
        report_run("pushkit (durable, one at a time)", GROUPS, &run.load);
        report_fsyncs(&run);
        res.check_run("pushkit durable, one push at a time", &run.load);
        res.durability.sequential = Some(run);
    } else {
        res.durability.memory = Some(run);
    }
    finish(res, &format!("pushkit {label} with a sink"), &mut p);
    if let (Some(store), Some(_)) = (&conf.persistence_dir, &ctx.opts.store_dir) {
        let _ = std::fs::remove_dir_all(store);
    }
    Ok(())
}

/// The agent's count of group-commit fsyncs, if it exposes one.
async fn fsyncs(addr: SocketAddr) -> Option<f64> {
    let r = crate::http::once(addr, "GET", "/metrics", &[], b"")
        .await
        .ok()?;
    counter_value(&r.body, "pushkit_log_fsyncs_total")
}

fn delta(before: Option<f64>, after: Option<f64>) -> Option<f64> {
    Some(after? - before?)
}

fn report_fsyncs(run: &Run) {
    if let (Some(f), Some(per)) = (run.fsyncs, run.fsyncs_per_push()) {
        eprintln!(
            "  fsyncs: {f:.0} for {} pushes = {per:.3} per push",
            run.load.ok
        );
    }
}

/// The server's CPU per push by thread name (where a durable push's CPU
/// goes: the async workers, or the log's flusher and its fsyncs).
fn report_threads(run: &Run, threads: Result<Vec<(String, f64)>, String>) {
    match threads {
        Ok(threads) if run.load.ok > 0 => {
            let per_push: Vec<String> = threads
                .iter()
                .map(|(name, s)| {
                    let us = s * 1e6 / run.load.ok as f64;
                    format!("{name} {us:.0} µs")
                })
                .collect();
            eprintln!("  CPU per push by thread: {}", per_push.join(", "));
        }
        Ok(_) => {}
        Err(e) => eprintln!("  CPU by thread: {e}"),
    }
}

/// The table's rows: (what, pushkit's cell, target, met).
pub fn rows(r: &Rows) -> Vec<(String, String, String, Option<bool>)> {
    let mut rows = Vec::new();
    let cell = |run: &Run| {
        format!(
            "{} (p99 {}, CPU {} per push)",
            fmt_rate(run.load.rate()),
            fmt_opt_dur(run.load.quantile(0.99)),
            fmt_opt_dur(run.load.server_cpu_per_push())
        )
    };
    if let Some(m) = &r.memory {
        rows.push((
            format!("durable: pushes/s, {GROUPS} groups, discarding sink, in memory"),
            cell(m),
            String::new(),
            None,
        ));
    }
    if let Some(d) = &r.durable {
        let share = r.memory.as_ref().map(|m| d.load.rate() / m.load.rate());
        rows.push((
            format!(
                "durable: pushes/s, {GROUPS} groups, discarding sink, persistence_dir and queue_dir"
            ),
            match share {
                Some(s) => format!("{} = {:.0} % of in memory", cell(d), 100.0 * s),
                None => cell(d),
            },
            "≥ 2/3 of in memory".into(),
            share.map(|s| s >= 2.0 / 3.0),
        ));
        rows.push((
            "durable: fsyncs per push, 8 connections".into(),
            fsyncs_cell(d),
            "≤ 1 (one per group commit)".into(),
            d.fsyncs_per_push().map(|f| f <= 1.0),
        ));
    }
    if let Some(s) = &r.sequential {
        rows.push((
            format!("durable: fsyncs per push, one at a time ({SEQUENTIAL_PUSHES} pushes)"),
            fsyncs_cell(s),
            "exactly 1".into(),
            s.fsyncs_per_push().map(|f| f == 1.0),
        ));
    }
    rows
}

fn fsyncs_cell(run: &Run) -> String {
    match (run.fsyncs, run.fsyncs_per_push()) {
        (Some(f), Some(per)) => format!("{per:.3} ({f:.0} for {} pushes)", run.load.ok),
        _ => "not reported by this pushkit".into(),
    }
}
