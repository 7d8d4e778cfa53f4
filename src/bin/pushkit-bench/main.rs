//! `pushkit-bench`: pushkit and the Go Pushgateway side by side, on
//! loopback, with the same preload and the same load (issue 5).
//!
//! ```sh
//! apt-get install prometheus-pushgateway victoria-metrics
//! cargo run --release --bin pushkit-bench -- [--quick]
//! ```
//!
//! `cargo run --release --bin pushkit-bench` builds the `pushkit` binary
//! too (same package); the benchmark starts the `pushkit` found next to its
//! own executable. Progress goes to stderr, the results table (Markdown)
//! to stdout. See BENCHMARKS.md.

mod attacks;
mod contention;
mod durable;
mod edge;
mod http;
mod load;
mod payload;
mod procs;
mod steps;

use load::{LoadResult, LoadSpec};
use procs::{PushkitConf, SinkConf, TempDir};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: pushkit-bench [--quick] [--duration SECS] [--no-go] [--no-victoria]
                     [--only LIST] [--groups LIST] [--pushkit PATH]
                     [--store-dir DIR] [--connections N]

  --quick          3 s per run (20 s for the Go Pushgateway at 10,000 groups)
  --duration SECS  seconds per run (default 10; the Go Pushgateway at 10,000
                   groups gets 6 times as long, at least 20 s)
  --no-go          skip the Go Pushgateway
  --no-victoria    skip the VictoriaMetrics run of scenario e
  --only LIST      comma-separated parts to run: pushkit (scenarios a-d),
                   persist (the persistence row), go (scenarios a-d), e,
                   f (pushes during back-to-back GET /metrics, pushkit alone),
                   durable (1,000 groups with a discarding sink, in memory
                   and with persistence_dir and queue_dir; fsyncs per push),
                   edge (1,000 groups plain, with basic auth, a bearer token,
                   TLS, TLS and basic auth), attack (pushes at 500/s while
                   1,000 slowloris and 1,000 idle connections are held),
                   decode (a tiny push's latency while 32 gzip pushes decode)
  --groups LIST    comma-separated group counts of scenarios a-d
                   (default 10,1000,10000; the table shows those three)
  --pushkit PATH   the pushkit binary (default: next to this executable)
  --store-dir DIR  the durable rows put persistence_dir in a fresh directory
                   under DIR (default: beside queue_dir). On another
                   filesystem than the temporary directory, the store and
                   the sinks keep a log each: the two-log rows.
  --connections N  keep-alive connections of the load generator (default 8,
                   what the targets are set for)
";

/// Keep-alive connections of the load generator, unless `--connections`
/// says otherwise; the targets are set for this many.
const DEFAULT_CONNECTIONS: usize = 8;
static CONNECTIONS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// Keep-alive connections of the load generator (`--connections`).
fn connections() -> usize {
    *CONNECTIONS.get().unwrap_or(&DEFAULT_CONNECTIONS)
}
/// Group counts of scenarios a and b.
const GROUP_COUNTS: [usize; 3] = [10, 1_000, 10_000];
/// Series per push in scenarios a–d, and in scenario e.
const SERIES: usize = 100;
const E_SERIES: usize = 1_000;
/// Groups the 1,000-series pushes of scenario e go round.
const E_GROUPS: usize = 10;
/// No run sends more requests than this.
const MAX_REQUESTS: u64 = 5_000_000;

struct Opts {
    quick: bool,
    duration: Duration,
    go: bool,
    victoria: bool,
    pushkit: Option<PathBuf>,
    parts: Vec<String>,
    groups: Vec<usize>,
    store_dir: Option<PathBuf>,
}

const PARTS: [&str; 9] = [
    "pushkit", "persist", "go", "e", "f", "durable", "edge", "attack", "decode",
];
/// The parts whose rows go in the main table.
const MAIN_PARTS: [&str; 6] = ["pushkit", "persist", "go", "e", "f", "durable"];

impl Opts {
    fn runs(&self, part: &str) -> bool {
        self.parts.iter().any(|p| p == part)
    }
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        quick: false,
        duration: Duration::from_secs(10),
        go: true,
        victoria: true,
        pushkit: None,
        parts: PARTS.iter().map(|s| s.to_string()).collect(),
        groups: GROUP_COUNTS.to_vec(),
        store_dir: None,
    };
    let mut explicit_duration = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--no-go" => o.go = false,
            "--no-victoria" => o.victoria = false,
            "--duration" => {
                let v = args.next().ok_or("--duration needs a value")?;
                let secs: f64 = v
                    .parse()
                    .map_err(|_| format!("--duration {v:?}: not a number"))?;
                if !(0.5..=600.0).contains(&secs) {
                    return Err("--duration must be between 0.5 and 600 seconds".into());
                }
                o.duration = Duration::from_secs_f64(secs);
                explicit_duration = true;
            }
            "--only" => {
                let v = args.next().ok_or("--only needs a list")?;
                o.parts = v.split(',').map(|s| s.trim().to_string()).collect();
                if let Some(bad) = o.parts.iter().find(|p| !PARTS.contains(&p.as_str())) {
                    return Err(format!("--only: unknown part {bad:?}"));
                }
            }
            "--groups" => {
                let v = args.next().ok_or("--groups needs a list")?;
                o.groups = v
                    .split(',')
                    .map(|s| s.trim().replace('_', "").parse::<usize>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| format!("--groups {v:?}: not a list of numbers"))?;
                if o.groups.iter().any(|&g| g == 0 || g > 100_000) {
                    return Err("--groups: each count must be between 1 and 100000".into());
                }
            }
            "--pushkit" => o.pushkit = Some(args.next().ok_or("--pushkit needs a path")?.into()),
            "--connections" => {
                let v = args.next().ok_or("--connections needs a value")?;
                let n: usize = v
                    .parse()
                    .map_err(|_| format!("--connections {v:?}: not a number"))?;
                if !(1..=1_000).contains(&n) {
                    return Err("--connections must be between 1 and 1000".into());
                }
                let _ = CONNECTIONS.set(n);
            }
            "--store-dir" => {
                o.store_dir = Some(args.next().ok_or("--store-dir needs a path")?.into())
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.quick && !explicit_duration {
        o.duration = Duration::from_secs(3);
    }
    Ok(o)
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("pushkit-bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pushkit-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Everything a run needs.
struct Ctx {
    opts: Opts,
    pushkit: PathBuf,
    tmp: TempDir,
    body: Arc<Vec<u8>>,
    body_e: Arc<Vec<u8>>,
}

impl Ctx {
    fn spec(&self, addr: SocketAddr, groups: usize, duration: Duration) -> LoadSpec {
        LoadSpec {
            addr,
            connections: connections(),
            groups,
            first_group: 0,
            body: self.body.clone(),
            duration,
            max_requests: MAX_REQUESTS,
            request_timeout: Duration::from_secs(300),
            rate: None,
            job: "bench",
            headers: Vec::new(),
            tls: None,
        }
    }

    /// The Go Pushgateway at 10,000 groups manages well under one push per
    /// second: it runs longer so that there is something to count.
    fn slow_duration(&self) -> Duration {
        if self.opts.quick {
            Duration::from_secs(20)
        } else {
            (self.opts.duration * 6).max(Duration::from_secs(20))
        }
    }
}

/// Resident memory before and after the preload.
struct Rss {
    idle: u64,
    loaded: u64,
    series: usize,
    /// After the load run of scenario a, which churns the heap.
    after_load: Option<u64>,
}

impl Rss {
    fn per_series(&self) -> f64 {
        self.loaded.saturating_sub(self.idle) as f64 / self.series as f64
    }

    fn per_series_after_load(&self) -> Option<f64> {
        self.after_load
            .map(|a| a.saturating_sub(self.idle) as f64 / self.series as f64)
    }
}

/// `GET /metrics`: median time and size, plain and gzipped.
struct Scrape {
    /// The first plain scrape, which builds the exposition order's cache.
    first: Duration,
    plain: Duration,
    plain_bytes: usize,
    gzip: Duration,
    gzip_bytes: usize,
    reps: usize,
}

#[derive(Default)]
struct SystemResults {
    runs: BTreeMap<usize, LoadResult>,
    rss: BTreeMap<usize, Rss>,
    scrape: BTreeMap<usize, Scrape>,
    preload: BTreeMap<usize, Duration>,
}

/// Scenario e: one sink.
struct SinkRun {
    label: String,
    load: LoadResult,
    /// Points of the accepted pushes.
    expected: u64,
    /// pushkit's `pushkit_sink_points_delivered_total` at the end.
    delivered: u64,
    /// From the first push to the last point acknowledged by the sink.
    total: Duration,
    /// Points/s delivered after the load ended (the sink alone).
    drain_rate: Option<f64>,
    cross_check: String,
}

#[derive(Default)]
struct Results {
    pushkit: SystemResults,
    go: SystemResults,
    go_unchecked: Option<LoadResult>,
    persisted: Option<LoadResult>,
    /// What the persistence row ran with.
    persisted_with: String,
    sinks: Vec<SinkRun>,
    contention: Option<contention::Contention>,
    durability: durable::Rows,
    edge: edge::EdgeResults,
    /// Everything unexpected: errors, non-2xx answers, crashes, skips.
    notes: Vec<String>,
}

impl Results {
    fn note(&mut self, s: impl Into<String>) {
        let s = s.into();
        eprintln!("  NOTE: {s}");
        self.notes.push(s);
    }

    /// Notes the non-2xx answers and errors of a run.
    fn check_run(&mut self, what: &str, r: &LoadResult) {
        let p = r.problems();
        if !p.is_empty() {
            self.note(format!("{what}: {p}"));
        }
    }
}

async fn run(opts: Opts) -> Result<(), String> {
    let pushkit = match &opts.pushkit {
        Some(p) => p.clone(),
        None => {
            build_pushkit()?;
            std::env::current_exe()
                .map_err(|e| format!("cannot find this executable: {e}"))?
                .parent()
                .ok_or("this executable has no directory")?
                .join("pushkit")
        }
    };
    if !pushkit.is_file() {
        return Err(format!(
            "{} not found: build it first (cargo build --release), or run \
             cargo run --release --bin pushkit-bench, which builds both",
            pushkit.display()
        ));
    }
    let mut opts = opts;
    if opts.go && !Path::new(procs::PUSHGATEWAY_BIN).is_file() {
        eprintln!(
            "pushkit-bench: {} not found (apt-get install prometheus-pushgateway); \
             running pushkit alone",
            procs::PUSHGATEWAY_BIN
        );
        opts.go = false;
    }
    let ctx = Ctx {
        pushkit,
        tmp: TempDir::new("pushkit-bench").map_err(|e| format!("temp dir: {e}"))?,
        body: Arc::new(payload::counters(10, SERIES / 10).into_bytes()),
        body_e: Arc::new(payload::counters(10, E_SERIES / 10).into_bytes()),
        opts,
    };
    let started = Instant::now();
    print_header(&ctx);
    let mut res = Results::default();

    if ctx.opts.runs("pushkit") {
        for &g in &ctx.opts.groups {
            eprintln!("== pushkit, {g} groups");
            if let Err(e) = pushkit_round(&ctx, g, &mut res).await {
                res.note(format!("pushkit at {g} groups: {e}"));
            }
        }
    }
    if ctx.opts.runs("persist") {
        eprintln!("== pushkit, 1,000 groups, persistence on");
        if let Err(e) = persisted_round(&ctx, &mut res).await {
            res.note(format!("pushkit with persistence: {e}"));
        }
    }
    if ctx.opts.go && ctx.opts.runs("go") {
        for &g in &ctx.opts.groups {
            eprintln!("== Go Pushgateway, {g} groups");
            if let Err(e) = go_round(&ctx, g, &mut res).await {
                res.note(format!("Go Pushgateway at {g} groups: {e}"));
            }
        }
    }
    if ctx.opts.runs("e") {
        sink_rounds(&ctx, &mut res).await;
    }
    if ctx.opts.runs("f") {
        eprintln!(
            "== pushkit, {} groups, pushes to {} of them, quiet and during back-to-back scrapes",
            fmt_int(contention::GROUPS as f64),
            fmt_int(contention::PUSHED as f64)
        );
        match contention::round(&ctx, &mut res).await {
            Ok(c) => res.contention = Some(c),
            Err(e) => res.note(format!("scenario f: {e}")),
        }
    }
    if ctx.opts.runs("durable") {
        let stats = Arc::new(http::DiscardStats::default());
        match start_discard(stats) {
            Ok(sink) => durable::rounds(&ctx, sink, &mut res).await,
            Err(e) => res.note(format!(
                "durability rows: cannot start the discarding sink: {e}"
            )),
        }
    }
    if ctx.opts.runs("edge") {
        edge::setups(&ctx, &mut res).await;
    }
    if ctx.opts.runs("attack") {
        eprintln!(
            "== pushkit, {} groups, {} pushes/s, quiet and while {} slowloris and {} idle \
             connections are held",
            fmt_int(steps::GROUPS as f64),
            fmt_int(attacks::ATTACK_RATE),
            fmt_int(attacks::ATTACKERS as f64),
            fmt_int(attacks::ATTACKERS as f64)
        );
        match attacks::attack(&ctx, &mut res).await {
            Ok(a) => res.edge.attack = Some(a),
            Err(e) => res.note(format!("attack: {e}")),
        }
    }
    if ctx.opts.runs("decode") {
        eprintln!(
            "== pushkit, a tiny push at {}/s, quiet and while {} connections PUT gzip bodies",
            fmt_int(attacks::TINY_RATE),
            attacks::GZIP_CONNECTIONS
        );
        match attacks::decode(&ctx, &mut res).await {
            Ok(d) => res.edge.decode = Some(d),
            Err(e) => res.note(format!("decode: {e}")),
        }
    }
    eprintln!("== done in {:.0?}", started.elapsed());
    print_table(&ctx, &res);
    Ok(())
}

/// Under `cargo run`, builds the `pushkit` binary with the same profile
/// into the same target directory (`cargo run --bin pushkit-bench` builds
/// only this binary), so that the one command measures current sources.
fn build_pushkit() -> Result<(), String> {
    let (Some(cargo), Some(manifest)) = (
        std::env::var_os("CARGO"),
        std::env::var_os("CARGO_MANIFEST_PATH"),
    ) else {
        return Ok(());
    };
    if cfg!(debug_assertions) {
        eprintln!("pushkit-bench: a debug build; run it with --release for real numbers");
    }
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "--bin", "pushkit", "--manifest-path"])
        .arg(manifest);
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    eprintln!("pushkit-bench: building the pushkit binary");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run cargo build: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "cargo build of the pushkit binary failed ({status})"
        ))
    }
}

fn print_header(ctx: &Ctx) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!("# pushkit-bench");
    println!();
    println!(
        "- machine: {cores} cores, {cpu}; loopback; load generator: {} keep-alive \
         HTTP/1.1 connections on one thread",
        connections()
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!(
        "- load average at the start: {} (other work on the machine skews the numbers)",
        load.join(" ")
    );
    println!(
        "- push body: {} bytes ({SERIES} series, 10 counter families); scenario e: {} bytes \
         ({E_SERIES} series)",
        ctx.body.len(),
        ctx.body_e.len()
    );
    println!(
        "- runs: {:?} each{}",
        ctx.opts.duration,
        if ctx.opts.go {
            format!(
                ", the Go Pushgateway at 10,000 groups {:?}",
                ctx.slow_duration()
            )
        } else {
            String::new()
        }
    );
    println!();
}

/// PUTs every group once, on 8 connections.
async fn preload(ctx: &Ctx, addr: SocketAddr, groups: usize) -> Result<Duration, String> {
    let started = Instant::now();
    let mut spec = ctx.spec(addr, groups, Duration::from_secs(1800));
    spec.max_requests = groups as u64;
    let r = load::run(spec).await;
    if r.ok != groups as u64 {
        return Err(format!(
            "preload: {} of {groups} pushes succeeded: {}",
            r.ok,
            r.problems()
        ));
    }
    Ok(started.elapsed())
}

/// One `GET /metrics`: time to the last byte, the body as received.
async fn get_metrics(addr: SocketAddr, gzip: bool) -> Result<(Duration, http::Response), String> {
    let headers: &[(&str, &str)] = if gzip {
        &[("Accept", "text/plain"), ("Accept-Encoding", "gzip")]
    } else {
        &[("Accept", "text/plain")]
    };
    let started = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(600),
        http::once(addr, "GET", "/metrics", headers, b""),
    )
    .await
    .map_err(|_| "GET /metrics: no answer within 600 s".to_string())?
    .map_err(|e| format!("GET /metrics: {e}"))?;
    let took = started.elapsed();
    if r.status != 200 {
        return Err(format!(
            "GET /metrics answered {}: {}",
            r.status,
            String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
        ));
    }
    if gzip && r.content_encoding.as_deref() != Some("gzip") {
        return Err("GET /metrics with Accept-Encoding: gzip was not gzipped".into());
    }
    Ok((took, r))
}

/// Groups in an exposition: its `push_time_seconds` series.
fn groups_exposed(body: &[u8]) -> usize {
    body.split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"push_time_seconds{"))
        .count()
}

/// Scrapes `reps` times plain and gzipped; checks that `groups` are there.
async fn scrape(addr: SocketAddr, groups: usize, reps: usize) -> Result<Scrape, String> {
    let mut plain = Vec::new();
    let mut gzip = Vec::new();
    let (mut plain_bytes, mut gzip_bytes) = (0, 0);
    for i in 0..reps {
        let (t, r) = get_metrics(addr, false).await?;
        if i == 0 {
            let seen = groups_exposed(&r.body);
            if seen != groups {
                return Err(format!(
                    "GET /metrics shows {seen} groups, {groups} were pushed"
                ));
            }
        }
        plain.push(t);
        plain_bytes = r.body.len();
        let (t, r) = get_metrics(addr, true).await?;
        gzip.push(t);
        gzip_bytes = r.body.len();
    }
    Ok(Scrape {
        first: plain[0],
        plain: median(&mut plain),
        plain_bytes,
        gzip: median(&mut gzip),
        gzip_bytes,
        reps,
    })
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// After a preload of `g` groups: the RSS, and the `GET /metrics` figures
/// (kept from 1,000 groups up).
async fn measure_loaded(
    ctx: &Ctx,
    side: &mut SystemResults,
    p: &procs::Proc,
    g: usize,
    idle: u64,
) -> Result<(), String> {
    let loaded = p.rss_bytes()?;
    side.rss.insert(
        g,
        Rss {
            idle,
            loaded,
            series: g * SERIES,
            after_load: None,
        },
    );
    let reps = if g >= 1_000 { scrape_reps(ctx, g) } else { 1 };
    let s = scrape(p.addr, g, reps).await?;
    eprintln!(
        "  GET /metrics: {:.2?} for {} bytes, gzipped {:.2?}",
        s.plain, s.plain_bytes, s.gzip
    );
    if g >= 1_000 {
        side.scrape.insert(g, s);
    }
    Ok(())
}

fn scrape_reps(ctx: &Ctx, groups: usize) -> usize {
    match (ctx.opts.quick, groups >= 10_000) {
        (true, _) => 1,
        (false, true) => 3,
        (false, false) => 5,
    }
}

fn dir(ctx: &Ctx, name: &str) -> Result<PathBuf, String> {
    ctx.tmp.sub(name).map_err(|e| format!("{name}: {e}"))
}

fn port() -> Result<u16, String> {
    procs::free_port().map_err(|e| format!("no free port: {e}"))
}

/// Checks a process is still up after a run, and stops it.
fn finish(res: &mut Results, what: &str, p: &mut procs::Proc) {
    if let Some(status) = p.exited() {
        res.note(format!(
            "{what}: {} exited during the run ({status}); its log ends:\n{}",
            p.name,
            p.log_tail(20)
        ));
        return;
    }
    let errors = p.log_count("ERROR") + p.log_count("level=error");
    if errors > 0 {
        res.note(format!(
            "{what}: {} logged {errors} error line(s); the log ends:\n{}",
            p.name,
            p.log_tail(5)
        ));
    }
    if let Err(e) = p.terminate(Duration::from_secs(300)) {
        res.note(format!("{what}: {e}"));
    }
}

async fn pushkit_round(ctx: &Ctx, g: usize, res: &mut Results) -> Result<(), String> {
    let d = dir(ctx, &format!("pushkit-{g}"))?;
    let port = port()?;
    procs::write_pushkit_conf(&d, port, &PushkitConf::default()).map_err(|e| e.to_string())?;
    procs::pushkit_check(&ctx.pushkit, &d)?;
    let mut p = procs::start_pushkit(&ctx.pushkit, &d, port, d.join("pushkit.log"))?;
    p.wait_ready("/-/ready", Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = p.rss_bytes()?;
    let took = preload(ctx, p.addr, g).await?;
    eprintln!("  preloaded {g} groups in {took:.2?}");
    res.pushkit.preload.insert(g, took);
    tokio::time::sleep(Duration::from_millis(500)).await;
    measure_loaded(ctx, &mut res.pushkit, &p, g, idle).await?;
    let r = measured(&p, ctx.spec(p.addr, g, ctx.opts.duration)).await;
    report_run("pushkit", g, &r);
    res.check_run(&format!("pushkit at {g} groups"), &r);
    res.pushkit.runs.insert(g, r);
    if let (Some(rss), Ok(now)) = (res.pushkit.rss.get_mut(&g), p.rss_bytes()) {
        rss.after_load = Some(now);
    }
    finish(res, &format!("pushkit at {g} groups"), &mut p);
    Ok(())
}

/// Runs the load, measuring the CPU time of the server and of this process.
async fn measured(p: &procs::Proc, spec: LoadSpec) -> LoadResult {
    let before = (procs::cpu_seconds(Some(p.pid())), procs::cpu_seconds(None));
    let mut r = load::run(spec).await;
    let after = (procs::cpu_seconds(Some(p.pid())), procs::cpu_seconds(None));
    if let ((Ok(s0), Ok(l0)), (Ok(s1), Ok(l1))) = (before, after) {
        r.cpu = Some((s1 - s0, l1 - l0));
    }
    r
}

fn report_run(who: &str, g: usize, r: &LoadResult) {
    eprintln!(
        "  {who} at {g} groups: {} pushes in {:.2?} = {:.1}/s, p50 {}, p99 {}",
        r.ok,
        r.elapsed,
        r.rate(),
        fmt_opt_dur(r.quantile(0.5)),
        fmt_opt_dur(r.quantile(0.99))
    );
    if let Some((server, loadgen)) = r.cpu {
        eprintln!(
            "  CPU: server {server:.2} s ({} per push), load generator {loadgen:.2} s",
            fmt_opt_dur(r.server_cpu_per_push())
        );
    }
}

async fn persisted_round(ctx: &Ctx, res: &mut Results) -> Result<(), String> {
    let g = 1_000;
    let d = dir(ctx, "pushkit-persisted")?;
    let port = port()?;
    let mut conf = PushkitConf {
        persistence_dir: Some(d.join("store")),
        queue_dir: Some(d.join("queue")),
        ..PushkitConf::default()
    };
    procs::write_pushkit_conf(&d, port, &conf).map_err(|e| e.to_string())?;
    if let Err(e) = procs::pushkit_check(&ctx.pushkit, &d) {
        res.note(format!(
            "pushkit check rejects [io] queue_dir ({e}); the persistence row runs with \
             persistence_dir only"
        ));
        conf.queue_dir = None;
        procs::write_pushkit_conf(&d, port, &conf).map_err(|e| e.to_string())?;
        procs::pushkit_check(&ctx.pushkit, &d)?;
    }
    res.persisted_with = match conf.queue_dir {
        Some(_) => "persistence_dir and [io] queue_dir".into(),
        None => "persistence_dir only".into(),
    };
    let mut p = procs::start_pushkit(&ctx.pushkit, &d, port, d.join("pushkit.log"))?;
    p.wait_ready("/-/ready", Duration::from_secs(60)).await?;
    let took = preload(ctx, p.addr, g).await?;
    eprintln!("  preloaded {g} groups in {took:.2?}");
    let r = measured(&p, ctx.spec(p.addr, g, ctx.opts.duration)).await;
    report_run("pushkit (persisted)", g, &r);
    res.check_run("pushkit with persistence", &r);
    res.persisted = Some(r);
    finish(res, "pushkit with persistence", &mut p);
    Ok(())
}

/// The Go Pushgateway: preloaded with its check off and persisted to a
/// file, then restarted on that file with its check on.
async fn go_round(ctx: &Ctx, g: usize, res: &mut Results) -> Result<(), String> {
    let d = dir(ctx, &format!("pgw-{g}"))?;
    let file = d.join("pushgateway.state");
    let mut p = procs::start_pushgateway(port()?, &file, false, d.join("preload.log"))?;
    p.wait_ready("/-/ready", Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = p.rss_bytes()?;
    let started = Instant::now();
    preload(ctx, p.addr, g).await?;
    // With the check off, pushes are queued (202): wait until all are in.
    loop {
        let (_, r) = get_metrics(p.addr, false).await?;
        let seen = groups_exposed(&r.body);
        if seen == g {
            break;
        }
        if started.elapsed() > Duration::from_secs(900) {
            return Err(format!(
                "preload: {seen} of {g} groups visible after {:?}",
                started.elapsed()
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let pushed_in = started.elapsed();
    eprintln!("  preloaded {g} groups (check off) in {pushed_in:.2?}");
    if g == 1_000 {
        let r = measured(&p, ctx.spec(p.addr, g, ctx.opts.duration)).await;
        report_run("Go Pushgateway (check off)", g, &r);
        res.check_run("Go Pushgateway, check off, at 1,000 groups", &r);
        res.go_unchecked = Some(r);
    }
    if let Some(s) = p.exited() {
        return Err(format!("exited during the preload ({s})"));
    }
    let stopping = Instant::now();
    p.terminate(Duration::from_secs(600))?;
    let size = std::fs::metadata(&file)
        .map_err(|e| format!("no persistence file after SIGTERM: {e}"))?
        .len();
    let mut p = procs::start_pushgateway(port()?, &file, true, d.join("run.log"))?;
    let ready = p.wait_ready("/-/ready", Duration::from_secs(900)).await?;
    let took = pushed_in + stopping.elapsed();
    eprintln!(
        "  stopped, restarted with the check on ({size} bytes of state) in {ready:.2?}; \
         preload {took:.2?} in all"
    );
    res.go.preload.insert(g, took);
    tokio::time::sleep(Duration::from_secs(1)).await;
    measure_loaded(ctx, &mut res.go, &p, g, idle).await?;
    let duration = if g >= 10_000 {
        ctx.slow_duration()
    } else {
        ctx.opts.duration
    };
    let r = measured(&p, ctx.spec(p.addr, g, duration)).await;
    report_run("Go Pushgateway", g, &r);
    res.check_run(&format!("Go Pushgateway at {g} groups"), &r);
    res.go.runs.insert(g, r);
    if let (Some(rss), Ok(now)) = (res.go.rss.get_mut(&g), p.rss_bytes()) {
        rss.after_load = Some(now);
    }
    finish(res, &format!("Go Pushgateway at {g} groups"), &mut p);
    Ok(())
}

/// Scenario e: 1,000-series pushes, points to an HTTP sink.
async fn sink_rounds(ctx: &Ctx, res: &mut Results) {
    let stats = Arc::new(http::DiscardStats::default());
    let discard = match start_discard(stats.clone()) {
        Ok(a) => a,
        Err(e) => {
            res.note(format!("scenario e: cannot start the discarding sink: {e}"));
            return;
        }
    };
    for gzip in [false, true] {
        let label = format!(
            "discarding HTTP sink{}",
            if gzip { ", gzip" } else { ", no gzip" }
        );
        eprintln!("== pushkit, 1,000-series pushes, {label}");
        let before = stats.lines.load(Ordering::Relaxed);
        let sink = SinkConf {
            name: "discard".into(),
            url: format!("http://{discard}/write"),
            gzip,
        };
        match sink_round(ctx, &label, sink, res).await {
            Ok(mut run) => {
                if !gzip {
                    let lines = stats.lines.load(Ordering::Relaxed) - before;
                    run.cross_check = format!("the sink counted {lines} lines");
                }
                res.sinks.push(run);
            }
            Err(e) => res.note(format!("scenario e, {label}: {e}")),
        }
    }
    if !ctx.opts.victoria {
        return;
    }
    if !Path::new(procs::VICTORIA_BIN).is_file() {
        res.note(format!(
            "scenario e: {} not found (apt-get install victoria-metrics); skipped",
            procs::VICTORIA_BIN
        ));
        return;
    }
    eprintln!("== pushkit, 1,000-series pushes, VictoriaMetrics with gzip");
    if let Err(e) = victoria_round(ctx, res).await {
        res.note(format!("scenario e, VictoriaMetrics: {e}"));
    }
}

async fn victoria_round(ctx: &Ctx, res: &mut Results) -> Result<(), String> {
    let d = dir(ctx, "victoria")?;
    let mut vm = procs::start_victoria(port()?, &d.join("data"), d.join("vm.log"))?;
    vm.wait_ready("/health", Duration::from_secs(60)).await?;
    let sink = SinkConf {
        name: "vm".into(),
        url: format!("http://{}/write", vm.addr),
        gzip: true,
    };
    let mut run = sink_round(ctx, "VictoriaMetrics (/write, gzip)", sink, res).await?;
    let rows = http::once(vm.addr, "GET", "/metrics", &[], b"")
        .await
        .ok()
        .and_then(|r| counter_value(&r.body, "vm_rows_inserted_total{type=\"influx\"}"));
    if let Some(rows) = rows {
        run.cross_check = format!("VictoriaMetrics counted {rows:.0} rows inserted");
    }
    res.sinks.push(run);
    finish(res, "VictoriaMetrics", &mut vm);
    Ok(())
}

/// A discarding HTTP server on its own thread and runtime.
fn start_discard(stats: Arc<http::DiscardStats>) -> Result<SocketAddr, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    std::thread::Builder::new()
        .name("discard-sink".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            rt.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                http::serve_discard(listener, stats).await;
            });
        })
        .map_err(|e| e.to_string())?;
    Ok(addr)
}

/// The value of the sample line starting with `series ` in an exposition.
fn counter_value(body: &[u8], series: &str) -> Option<f64> {
    let text = std::str::from_utf8(body).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

async fn sink_round(
    ctx: &Ctx,
    label: &str,
    sink: SinkConf,
    res: &mut Results,
) -> Result<SinkRun, String> {
    let name = sink.name.clone();
    let d = dir(ctx, &format!("pushkit-e-{name}-{}", sink.gzip))?;
    let port = port()?;
    let conf = PushkitConf {
        sinks: vec![sink],
        ..PushkitConf::default()
    };
    procs::write_pushkit_conf(&d, port, &conf).map_err(|e| e.to_string())?;
    procs::pushkit_check(&ctx.pushkit, &d)?;
    let mut p = procs::start_pushkit(&ctx.pushkit, &d, port, d.join("pushkit.log"))?;
    p.wait_ready("/-/ready", Duration::from_secs(30)).await?;
    let mut spec = ctx.spec(p.addr, E_GROUPS, ctx.opts.duration);
    spec.body = ctx.body_e.clone();
    let started = Instant::now();
    let r = measured(&p, spec).await;
    let expected = r.ok * E_SERIES as u64;
    let series = format!("pushkit_sink_points_delivered_total{{sink=\"{name}\"}}");
    let at_load_end = match get_metrics(p.addr, false).await {
        Ok((_, m)) => counter_value(&m.body, &series).unwrap_or(0.0) as u64,
        Err(_) => 0,
    };
    let load_end = started.elapsed();
    let mut delivered = at_load_end;
    while started.elapsed() < ctx.opts.duration + Duration::from_secs(120) {
        if let Ok((_, m)) = get_metrics(p.addr, false).await {
            delivered = counter_value(&m.body, &series).unwrap_or(0.0) as u64;
            if delivered >= expected {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = started.elapsed();
    let drain = total.saturating_sub(load_end);
    let drain_rate = (drain > Duration::from_millis(200))
        .then(|| (delivered - at_load_end.min(delivered)) as f64 / drain.as_secs_f64());
    eprintln!(
        "  {at_load_end} points delivered when the load ended; the rest drained at {} points/s",
        drain_rate.map(fmt_int).unwrap_or_else(|| "–".into())
    );
    eprintln!(
        "  {} pushes accepted in {:.2?} ({:.0} points/s in); {delivered} of {expected} points \
         delivered after {total:.2?} = {:.0} points/s",
        r.ok,
        r.elapsed,
        expected as f64 / r.elapsed.as_secs_f64(),
        delivered as f64 / total.as_secs_f64()
    );
    if delivered < expected {
        res.note(format!(
            "scenario e, {label}: only {delivered} of {expected} points delivered within 120 s \
             of the end of the load"
        ));
    }
    let refused = r.statuses.get(&503).copied().unwrap_or(0);
    if refused > 0 {
        eprintln!("  {refused} pushes refused with 503 (sink queue full: back-pressure)");
    }
    let others = LoadResult {
        statuses: r
            .statuses
            .iter()
            .filter(|(s, _)| **s != 503)
            .map(|(s, n)| (*s, *n))
            .collect(),
        ..r.clone()
    };
    res.check_run(&format!("scenario e, {label}"), &others);
    finish(res, &format!("scenario e, {label}"), &mut p);
    Ok(SinkRun {
        label: label.to_string(),
        load: r,
        expected,
        delivered,
        total,
        drain_rate,
        cross_check: String::new(),
    })
}

// ---------------------------------------------------------------------------
// The table

fn fmt_int(n: f64) -> String {
    let s = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn fmt_rate(n: f64) -> String {
    if n >= 100.0 {
        fmt_int(n)
    } else {
        format!("{n:.2}")
    }
}

fn fmt_dur(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 0.001 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}

fn fmt_opt_dur(d: Option<Duration>) -> String {
    d.map(fmt_dur).unwrap_or_else(|| "–".into())
}

fn fmt_bytes(n: usize) -> String {
    let n = n as f64;
    if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} KB", n / 1e3)
    } else {
        format!("{n:.0} B")
    }
}

/// `a / b` as "×N", for "pushkit is N times better".
fn ratio(better: f64, worse: f64) -> String {
    if worse <= 0.0 || better <= 0.0 || !better.is_finite() || !worse.is_finite() {
        return "–".into();
    }
    let r = better / worse;
    if r >= 100.0 {
        format!("×{}", fmt_int(r))
    } else if r >= 10.0 {
        format!("×{r:.0}")
    } else {
        format!("×{r:.2}")
    }
}

fn met(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "–",
    }
}

struct Table {
    rows: Vec<[String; 6]>,
}

impl Table {
    fn row(&mut self, what: String, pk: String, go: String, adv: String, target: &str, ok: &str) {
        self.rows
            .push([what, pk, go, adv, target.to_string(), ok.to_string()]);
    }

    fn print(&self) {
        println!("| scenario | pushkit | Go Pushgateway 1.5.1 | pushkit's advantage | target | |");
        println!("|---|---|---|---|---|---|");
        for r in &self.rows {
            println!("| {} |", r.join(" | "));
        }
    }
}

/// "p50 / p99", with the count when few pushes are behind them.
fn latency_cell(r: &LoadResult) -> String {
    let n = r.latencies_ns.len();
    let mut s = format!(
        "{} / {}",
        fmt_opt_dur(r.quantile(0.5)),
        fmt_opt_dur(r.quantile(0.99))
    );
    if n < 1_000 {
        s.push_str(&format!(" (on {n} pushes)"));
    }
    s
}

/// "; CPU: server …, load generator …" when measured.
fn cpu_detail(r: &LoadResult) -> String {
    match r.cpu {
        Some((server, loadgen)) => {
            format!("; CPU used: server {server:.2} s, load generator {loadgen:.2} s")
        }
        None => String::new(),
    }
}

/// "100k" or "1M": the series stored with `groups` groups.
fn series_label(groups: usize) -> String {
    let n = groups * SERIES;
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

fn print_table(ctx: &Ctx, res: &Results) {
    let mut t = Table { rows: Vec::new() };
    let pk = &res.pushkit;
    let go = &res.go;
    let none = || "–".to_string();
    let p99 = |r: &LoadResult| r.quantile(0.99).map(|d| d.as_secs_f64());
    for g in GROUP_COUNTS {
        let (a, b) = (pk.runs.get(&g), go.runs.get(&g));
        let rate = |r: Option<&LoadResult>| r.map(|r| r.rate());
        let pk_rate = rate(a);
        let go_rate = rate(b);
        let target_ok = pk_rate.map(|r| r >= 10_000.0);
        let (target, ok) = if g == 1_000 {
            let vs_go = match (pk_rate, go_rate) {
                (Some(p), Some(q)) => Some(p >= 2_800.0 * q),
                _ => None,
            };
            (
                "≥ 10,000/s and ≥ ×2,800",
                match (target_ok, vs_go) {
                    (Some(x), Some(y)) => Some(x && y),
                    (x, None) => x,
                    (None, y) => y,
                },
            )
        } else {
            ("≥ 10,000/s", target_ok)
        };
        t.row(
            format!("a: pushes/s, {} groups", fmt_int(g as f64)),
            pk_rate.map(fmt_rate).unwrap_or_else(none),
            go_rate.map(fmt_rate).unwrap_or_else(none),
            match (pk_rate, go_rate) {
                (Some(p), Some(q)) => ratio(p, q),
                _ => none(),
            },
            target,
            met(ok),
        );
        t.row(
            format!("a: samples/s, {} groups", fmt_int(g as f64)),
            pk_rate
                .map(|r| fmt_int(r * SERIES as f64))
                .unwrap_or_else(none),
            go_rate
                .map(|r| fmt_rate(r * SERIES as f64))
                .unwrap_or_else(none),
            "".into(),
            "≥ 1,000,000/s",
            met(pk_rate.map(|r| r * SERIES as f64 >= 1e6)),
        );
        let cpu = |r: Option<&LoadResult>| r.and_then(|r| r.server_cpu_per_push());
        t.row(
            format!("a: server CPU per push, {} groups", fmt_int(g as f64)),
            cpu(a).map(fmt_dur).unwrap_or_else(none),
            cpu(b).map(fmt_dur).unwrap_or_else(none),
            match (cpu(a), cpu(b)) {
                (Some(p), Some(q)) => ratio(q.as_secs_f64(), p.as_secs_f64()),
                _ => none(),
            },
            "",
            "–",
        );
        let b_ok = if g == 10_000 {
            match (pk.runs.get(&10).and_then(p99), a.and_then(p99)) {
                (Some(p10), Some(p10k)) => Some(p10k <= 1.5 * p10),
                _ => None,
            }
        } else {
            None
        };
        t.row(
            format!("b: p50 / p99, {} groups", fmt_int(g as f64)),
            a.map(latency_cell).unwrap_or_else(none),
            b.map(latency_cell).unwrap_or_else(none),
            match (a.and_then(p99), b.and_then(p99)) {
                (Some(p), Some(q)) => format!("p99 {}", ratio(q, p)),
                _ => none(),
            },
            if g == 10_000 {
                "p99 ≤ 1.5 × p99 at 10 groups"
            } else {
                ""
            },
            met(b_ok),
        );
    }
    if let (Some(p), Some(q)) = (pk.runs.get(&1_000), &res.go_unchecked) {
        t.row(
            "a: pushes/s, 1,000 groups, Go's check off (pushkit's on)".into(),
            fmt_rate(p.rate()),
            format!("{} (p50 / p99 {})", fmt_rate(q.rate()), latency_cell(q)),
            ratio(p.rate(), q.rate()),
            "≥ ×3",
            met(Some(p.rate() >= 3.0 * q.rate())),
        );
    }
    if let Some(r) = &res.persisted {
        t.row(
            format!("a: pushes/s, 1,000 groups, {} (fsync)", res.persisted_with),
            format!("{} (p50 / p99 {})", fmt_rate(r.rate()), latency_cell(r)),
            none(),
            none(),
            "",
            "–",
        );
    }
    for g in [1_000usize, 10_000] {
        let (a, b) = (pk.rss.get(&g), go.rss.get(&g));
        let cell = |r: Option<&Rss>| {
            r.map(|r| {
                let mut c = format!(
                    "{:.0} B ({} − {} idle)",
                    r.per_series(),
                    fmt_bytes(r.loaded as usize),
                    fmt_bytes(r.idle as usize)
                );
                if let Some(after) = r.per_series_after_load() {
                    c.push_str(&format!("; {after:.0} B after the load run"));
                }
                c
            })
            .unwrap_or_else(none)
        };
        let ok = match (a, b) {
            (Some(p), Some(q)) => {
                Some(p.per_series() <= 200.0 && p.per_series() * 8.0 <= q.per_series())
            }
            (Some(p), None) => Some(p.per_series() <= 200.0),
            _ => None,
        };
        t.row(
            format!("c: RSS per stored series, {}", series_label(g)),
            cell(a),
            cell(b),
            match (a, b) {
                (Some(p), Some(q)) => ratio(q.per_series(), p.per_series()),
                _ => none(),
            },
            "≤ 200 B and ≥ ×8",
            met(ok),
        );
    }
    // What one more stored series costs: the growth from 100k to 1M series,
    // in which the fixed costs of a process that has served pushes (code
    // pages touched, allocator and connection buffers) cancel out.
    let marginal = |m: &BTreeMap<usize, Rss>| {
        let (small, big) = (m.get(&1_000)?, m.get(&10_000)?);
        let grown = big.loaded as f64 - small.loaded as f64;
        Some(grown / (big.series - small.series) as f64)
    };
    let (a, b) = (marginal(&pk.rss), marginal(&go.rss));
    if a.is_some() || b.is_some() {
        let cell = |v: Option<f64>| v.map(|v| format!("{v:.0} B")).unwrap_or_else(none);
        t.row(
            "c: RSS per series added between 100k and 1M stored".to_string(),
            cell(a),
            cell(b),
            match (a, b) {
                (Some(p), Some(q)) => ratio(q, p),
                _ => none(),
            },
            "",
            "–",
        );
    }
    for (g, limit) in [(1_000usize, 0.05), (10_000, 0.5)] {
        let (a, b) = (pk.scrape.get(&g), go.scrape.get(&g));
        let cell = |s: Option<&Scrape>| {
            s.map(|s| format!("{} ({})", fmt_dur(s.plain), fmt_bytes(s.plain_bytes)))
                .unwrap_or_else(|| {
                    if g == 10_000
                        && ctx.opts.go
                        && ctx.opts.runs("go")
                        && !go.scrape.contains_key(&g)
                    {
                        "not measured (see the notes)".into()
                    } else {
                        none()
                    }
                })
        };
        let series = series_label(g);
        t.row(
            format!("d: GET /metrics, {series} series"),
            cell(a),
            cell(b),
            match (a, b) {
                (Some(p), Some(q)) => ratio(q.plain.as_secs_f64(), p.plain.as_secs_f64()),
                _ => none(),
            },
            if g == 1_000 { "≤ 50 ms" } else { "≤ 0.5 s" },
            met(a.map(|s| s.plain.as_secs_f64() <= limit)),
        );
        let gz = |s: Option<&Scrape>| {
            s.map(|s| format!("{} ({})", fmt_dur(s.gzip), fmt_bytes(s.gzip_bytes)))
                .unwrap_or_else(none)
        };
        t.row(
            format!("d: GET /metrics gzipped, {series} series"),
            gz(a),
            gz(b),
            match (a, b) {
                (Some(p), Some(q)) => ratio(q.gzip.as_secs_f64(), p.gzip.as_secs_f64()),
                _ => none(),
            },
            "",
            "–",
        );
    }
    for s in &res.sinks {
        let rate = s.delivered as f64 / s.total.as_secs_f64();
        let refused = s.load.statuses.get(&503).copied().unwrap_or(0);
        let mut cell = format!(
            "{} points/s ({} pushes/s accepted",
            fmt_int(rate),
            fmt_rate(s.load.rate())
        );
        if refused > 0 {
            cell.push_str(&format!(", {refused} refused 503"));
        }
        if let Some(d) = s.drain_rate {
            cell.push_str(&format!("; after the load: {} points/s", fmt_int(d)));
        }
        cell.push(')');
        let discard = s.label.starts_with("discarding");
        t.row(
            format!("e: {}", s.label),
            cell,
            "n/a".into(),
            none(),
            if discard {
                "≥ 2,000,000/s"
            } else {
                "as measured"
            },
            if discard {
                met(Some(rate >= 2e6))
            } else {
                "–"
            },
        );
    }
    if let Some(c) = &res.contention {
        for (what, cell, target, ok) in contention::rows(c) {
            t.row(what, cell, "n/a".into(), none(), &target, met(ok));
        }
    }
    for (what, cell, target, ok) in durable::rows(&res.durability) {
        t.row(what, cell, "n/a".into(), none(), &target, met(ok));
    }
    println!("## Results");
    println!();
    println!(
        "Load average at the end: {}.",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!();
    // Only the edge parts ran: their own tables say it all.
    let main_ran = MAIN_PARTS.iter().any(|p| ctx.opts.runs(p));
    if main_ran {
        t.print();
        println!();
    }
    let mut details = Vec::new();
    for (who, sys) in [("pushkit", pk), ("Go Pushgateway", go)] {
        for (g, d) in &sys.preload {
            details.push(format!("{who}: preload of {g} groups took {}", fmt_dur(*d)));
        }
        for (g, r) in &sys.runs {
            details.push(format!(
                "{who} at {g} groups: {} pushes in {} ({} answered){}",
                r.ok,
                fmt_dur(r.elapsed),
                r.statuses.values().sum::<u64>(),
                cpu_detail(r)
            ));
        }
        for (g, s) in &sys.scrape {
            details.push(format!(
                "{who}: GET /metrics at {} series, median of {} scrape(s); the first took {}",
                series_label(*g),
                s.reps,
                fmt_dur(s.first)
            ));
        }
    }
    if let Some(r) = &res.go_unchecked {
        details.push(format!(
            "Go Pushgateway, check off, at 1000 groups: {} pushes in {}{}",
            r.ok,
            fmt_dur(r.elapsed),
            cpu_detail(r)
        ));
    }
    if let Some(r) = &res.persisted {
        details.push(format!(
            "pushkit with {} at 1000 groups: {} pushes in {}{}",
            res.persisted_with,
            r.ok,
            fmt_dur(r.elapsed),
            cpu_detail(r)
        ));
    }
    for s in &res.sinks {
        details.push(format!(
            "scenario e, {}: {} of {} points delivered in {} from the first push{}; {}",
            s.label,
            s.delivered,
            s.expected,
            fmt_dur(s.total),
            cpu_detail(&s.load),
            s.cross_check
        ));
    }
    if let Some(c) = &res.contention {
        details.extend(contention::details(c));
    }
    if main_ran {
        println!("Details:");
        for d in details {
            println!("- {d}");
        }
        println!();
    }
    edge::print(&res.edge);
    if !res.notes.is_empty() {
        println!("Notes (errors, non-2xx answers, skipped parts):");
        for n in &res.notes {
            println!("- {}", n.replace('\n', "\n  "));
        }
    }
}
