//! Scenario f: pushes while `GET /metrics` runs back to back. pushkit
//! stores 10,000 groups × 100 series (1M series); the load pushes to 1,000
//! of them, first alone ("quiet"), then while one client scrapes
//! `GET /metrics` again and again. The pushes go on a fixed schedule
//! (1,000/s over 8 connections, well within what pushkit serves during
//! the scrapes), each timed from when it was due: pushed as fast as the
//! answers come, a lock held for a whole scrape would stall only the 8
//! pushes in flight, under 1 % of them, and the p99 would not show it
//! (coordinated omission). The push p99s are compared as a ratio within
//! the one run (on 2 cores the scrapes compete for CPU too, so absolute
//! figures move with the machine), beside the store lock's longest hold
//! during the scrapes, as pushkit reports it itself
//! (`pushkit_store_lock_max_hold_seconds`, reset by every scrape).
//!
//! The scrapes run twice: plain (98 MB each over loopback), then gzipped
//! (7.8 MB, as Prometheus asks for them), so that what the exposition's
//! CPU and the store cost pushes can be told from what moving 98 MB
//! through loopback TCP costs them. The lock's hold is read in the plain
//! run only: reading it from a gzipped body would mean inflating 98 MB
//! per scrape, CPU the scenario measures.

use crate::http::Conn;
use crate::load::{LoadResult, LoadSpec};
use crate::{fmt_dur, fmt_int, fmt_rate, Ctx, Results, SERIES};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Groups stored, and groups the load pushes to.
pub const GROUPS: usize = 10_000;
pub const PUSHED: usize = 1_000;
/// Pushes per second, over all connections.
pub const RATE: f64 = 1_000.0;
/// No run scrapes more often than this.
const MAX_SCRAPES: usize = 10_000;
/// The self metric pushkit reports its store lock's longest hold in.
const LOCK_GAUGE: &str = "pushkit_store_lock_max_hold_seconds";
/// The target for the lock's longest hold during the scrapes.
pub const HOLD_TARGET: Duration = Duration::from_millis(5);
/// The target for push p99 during the scrapes, as a multiple of quiet.
pub const RATIO_TARGET: f64 = 10.0;

/// One `GET /metrics` of the scraping run.
pub struct Scraped {
    pub took: Duration,
    pub bytes: usize,
    /// The lock's longest hold since the previous scrape, as reported in
    /// this one; None from a pushkit without the gauge.
    pub hold: Option<Duration>,
}

/// Pushes while a client scrapes back to back.
pub struct Scraping {
    pub gzip: bool,
    pub load: LoadResult,
    pub scrapes: Vec<Scraped>,
}

impl Scraping {
    fn median_scrape(&self) -> Option<Duration> {
        let mut t: Vec<Duration> = self.scrapes.iter().map(|s| s.took).collect();
        t.sort();
        t.get(t.len() / 2).copied()
    }

    fn what(&self) -> &'static str {
        if self.gzip {
            "during back-to-back gzipped scrapes"
        } else {
            "during back-to-back scrapes"
        }
    }
}

pub struct Contention {
    pub preload: Duration,
    pub quiet: LoadResult,
    pub plain: Scraping,
    pub gzip: Scraping,
    /// The lock's longest hold reported by the scrape between the runs:
    /// the preload and the quiet run.
    pub hold_before: Option<Duration>,
}

impl Contention {
    /// The longest hold any scrape of the plain scraping run reported.
    pub fn max_hold(&self) -> Option<Duration> {
        self.plain.scrapes.iter().filter_map(|s| s.hold).max()
    }

    /// Push p99 quiet and during `run`, and their ratio.
    pub fn p99s(&self, run: &Scraping) -> Option<(Duration, Duration, f64)> {
        let (q, s) = (self.quiet.quantile(0.99)?, run.load.quantile(0.99)?);
        Some((q, s, s.as_secs_f64() / q.as_secs_f64().max(1e-9)))
    }
}

/// The bytes kept of each scrape's body: the agent's own `pushkit_*`
/// families sort after the benchmark's `bench_*` families and the `push_*`
/// gauges, so they are at the end of the 100 MB body. Keeping the whole
/// body, or searching it, would take the CPU the scenario measures.
const TAIL: usize = 1 << 20;

/// The value of the unlabelled sample `name` in (the end of) a text
/// exposition.
fn tail_sample(body: &[u8], name: &str) -> Option<f64> {
    let tail = &body[body.len().saturating_sub(TAIL)..];
    tail.rsplit(|&b| b == b'\n').find_map(|line| {
        let rest = line.strip_prefix(name.as_bytes())?.strip_prefix(b" ")?;
        std::str::from_utf8(rest).ok()?.trim().parse().ok()
    })
}

fn hold_of(body: &[u8]) -> Option<Duration> {
    tail_sample(body, LOCK_GAUGE)
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(Duration::from_secs_f64)
}

/// Scrapes `addr` back to back on one keep-alive connection until `stop`
/// is set, [`MAX_SCRAPES`] are done or `limit` has passed. It runs on a
/// thread and a runtime of its own, so that reading 100 MB bodies does not
/// delay the load generator's requests or its clock.
fn start_scraper(
    addr: SocketAddr,
    gzip: bool,
    stop: Arc<AtomicBool>,
    limit: Duration,
) -> std::thread::JoinHandle<Result<Vec<Scraped>, String>> {
    let headers: &'static [(&str, &str)] = if gzip {
        &[("Accept", "text/plain"), ("Accept-Encoding", "gzip")]
    } else {
        &[("Accept", "text/plain")]
    };
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("scraper runtime: {e}"))?;
        rt.block_on(async move {
            let started = Instant::now();
            let mut conn = Conn::connect(addr)
                .await
                .map_err(|e| format!("scraper: connect: {e}"))?;
            let mut out = Vec::new();
            while !stop.load(Ordering::Relaxed)
                && out.len() < MAX_SCRAPES
                && started.elapsed() < limit
            {
                let t = Instant::now();
                let r = tokio::time::timeout(
                    Duration::from_secs(600),
                    conn.request_tail("GET", "/metrics", headers, TAIL),
                )
                .await
                .map_err(|_| "scraper: GET /metrics: no answer within 600 s".to_string())?
                .map_err(|e| format!("scraper: GET /metrics: {e}"))?;
                let took = t.elapsed();
                if r.status != 200 {
                    return Err(format!("scraper: GET /metrics answered {}", r.status));
                }
                out.push(Scraped {
                    took,
                    bytes: r.len,
                    hold: if gzip { None } else { hold_of(&r.body) },
                });
            }
            Ok(out)
        })
    })
}

/// Runs scenario f on a fresh pushkit.
pub async fn round(ctx: &Ctx, res: &mut Results) -> Result<Contention, String> {
    let d = crate::dir(ctx, "pushkit-f")?;
    let port = crate::port()?;
    crate::procs::write_pushkit_conf(&d, port, &crate::procs::PushkitConf::default())
        .map_err(|e| e.to_string())?;
    crate::procs::pushkit_check(&ctx.pushkit, &d)?;
    let mut p = crate::procs::start_pushkit(&ctx.pushkit, &d, port, d.join("pushkit.log"))?;
    p.wait_ready("/-/ready", Duration::from_secs(30)).await?;
    let preload = crate::preload(ctx, p.addr, GROUPS).await?;
    eprintln!("  preloaded {GROUPS} groups in {preload:.2?}");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let spec = LoadSpec {
        rate: Some(RATE),
        ..ctx.spec(p.addr, PUSHED, ctx.opts.duration)
    };
    let quiet = crate::measured(&p, spec.clone()).await;
    report("quiet", &quiet);
    res.check_run("scenario f, quiet", &quiet);

    // This scrape checks the store and resets the lock's high-water mark,
    // so that the scraping run reports only its own holds.
    let (_, first) = crate::get_metrics(p.addr, false).await?;
    let seen = crate::groups_exposed(&first.body);
    if seen != GROUPS {
        return Err(format!(
            "GET /metrics shows {seen} groups, {GROUPS} were pushed"
        ));
    }
    let hold_before = hold_of(&first.body);
    drop(first);

    let plain = scraping(ctx, &p, &spec, false, res).await?;
    let gzip = scraping(ctx, &p, &spec, true, res).await?;
    let c = Contention {
        preload,
        quiet,
        plain,
        gzip,
        hold_before,
    };
    for run in [&c.plain, &c.gzip] {
        eprintln!(
            "  {}: {} scrapes, median {}; p99 ratio {}",
            run.what(),
            run.scrapes.len(),
            run.median_scrape()
                .map(fmt_dur)
                .unwrap_or_else(|| "–".into()),
            c.p99s(run)
                .map(|(_, _, r)| format!("{r:.2}"))
                .unwrap_or_else(|| "–".into())
        );
    }
    eprintln!(
        "  the store lock's longest hold during the plain scrapes: {}",
        c.max_hold()
            .map(fmt_dur)
            .unwrap_or_else(|| "not reported".into()),
    );
    crate::finish(res, "scenario f", &mut p);
    Ok(c)
}

/// The load of `spec` while a client scrapes back to back.
async fn scraping(
    ctx: &Ctx,
    p: &crate::procs::Proc,
    spec: &LoadSpec,
    gzip: bool,
    res: &mut Results,
) -> Result<Scraping, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = start_scraper(
        p.addr,
        gzip,
        stop.clone(),
        ctx.opts.duration + Duration::from_secs(60),
    );
    let load = crate::measured(p, spec.clone()).await;
    stop.store(true, Ordering::Relaxed);
    let scrapes = tokio::task::spawn_blocking(move || scraper.join())
        .await
        .map_err(|e| format!("scraper: {e}"))?
        .map_err(|_| "the scraper thread panicked".to_string())??;
    let run = Scraping {
        gzip,
        load,
        scrapes,
    };
    report(run.what(), &run.load);
    res.check_run(&format!("scenario f, {}", run.what()), &run.load);
    Ok(run)
}

fn report(what: &str, r: &LoadResult) {
    eprintln!(
        "  {what}: {} pushes in {:.2?} = {:.1}/s, p50 {}, p99 {}{}",
        r.ok,
        r.elapsed,
        r.rate(),
        crate::fmt_opt_dur(r.quantile(0.5)),
        crate::fmt_opt_dur(r.quantile(0.99)),
        r.server_cpu_per_push()
            .map(|c| format!(", server CPU {} per push", fmt_dur(c)))
            .unwrap_or_default()
    );
}

/// The scenario's rows: (what, pushkit's cell, target, met).
pub fn rows(c: &Contention) -> Vec<(String, String, String, Option<bool>)> {
    let mut rows = Vec::new();
    let series = fmt_int((GROUPS * SERIES) as f64);
    for run in [&c.plain, &c.gzip] {
        let Some((quiet, during, ratio)) = c.p99s(run) else {
            continue;
        };
        let what = if run.gzip {
            "during back-to-back gzipped GET /metrics (as Prometheus asks)"
        } else {
            "during back-to-back GET /metrics"
        };
        rows.push((
            format!(
                "f: push p99 to {} of {} groups ({series} series), quiet / {what}",
                fmt_int(PUSHED as f64),
                fmt_int(GROUPS as f64)
            ),
            format!(
                "{} / {} (×{ratio:.2}; {})",
                fmt_dur(quiet),
                fmt_dur(during),
                scrapes_cell(run)
            ),
            format!("during ≤ {RATIO_TARGET:.0} × quiet"),
            Some(ratio <= RATIO_TARGET),
        ));
    }
    let (cell, ok) = match c.max_hold() {
        Some(h) => (fmt_dur(h), Some(h <= HOLD_TARGET)),
        None => ("not reported by this pushkit".to_string(), None),
    };
    rows.push((
        "f: the store lock's longest hold during the plain scrapes".to_string(),
        cell,
        format!("≤ {} (not a scrape's duration)", fmt_dur(HOLD_TARGET)),
        ok,
    ));
    rows
}

/// "N scrapes of B, median T".
fn scrapes_cell(run: &Scraping) -> String {
    format!(
        "{} scrapes of {}, median {}",
        run.scrapes.len(),
        crate::fmt_bytes(run.scrapes.last().map_or(0, |s| s.bytes)),
        run.median_scrape()
            .map(fmt_dur)
            .unwrap_or_else(|| "–".into())
    )
}

/// The scenario's lines of details.
pub fn details(c: &Contention) -> Vec<String> {
    let run = |what: &str, r: &LoadResult| {
        format!(
            "scenario f, {what}: {} pushes in {} ({} pushes/s, {} due), p50 {}, p99.9 {}, max {}{}",
            r.ok,
            fmt_dur(r.elapsed),
            fmt_rate(r.rate()),
            fmt_rate(RATE),
            crate::fmt_opt_dur(r.quantile(0.5)),
            crate::fmt_opt_dur(r.quantile(0.999)),
            crate::fmt_opt_dur(r.quantile(1.0)),
            crate::cpu_detail(r)
        )
    };
    vec![
        format!(
            "scenario f: preload of {} groups took {}; the lock's longest hold reported \
             before the scrapes (preload and quiet run): {}",
            GROUPS,
            fmt_dur(c.preload),
            c.hold_before
                .map(fmt_dur)
                .unwrap_or_else(|| "not reported".into())
        ),
        run("quiet", &c.quiet),
        run(c.plain.what(), &c.plain.load),
        run(c.gzip.what(), &c.gzip.load),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gauge_is_found_at_the_end() {
        let body = b"a 1\npushkit_store_lock_max_hold_seconds_x 9\npushkit_store_lock_max_hold_seconds 0.0025\nz 2\n";
        assert_eq!(tail_sample(body, LOCK_GAUGE), Some(0.0025));
        assert_eq!(tail_sample(b"a 1\n", LOCK_GAUGE), None);
    }
}
