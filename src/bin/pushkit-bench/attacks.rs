//! The attack rows of the edge (issue 14), split from `edge`: a normal
//! client pushing on a fixed schedule, quiet and then while 1,000
//! slowloris and 1,000 idle connections are held (`attack`); and a tiny
//! push's latency, quiet and then while 32 connections PUT gzip bodies
//! back to back (`decode`). `edge::print` prints their tables.

use crate::load::{self, LoadResult, LoadSpec};
use crate::procs::{self, PushkitConf};
use crate::steps::{due, p50_p99_max, preload, report, start, GROUPS};
use crate::{finish, fmt_bytes, fmt_dur, fmt_int, fmt_opt_dur, fmt_rate, measured};
use crate::{Ctx, Results};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Connections of each kind the attack holds.
pub const ATTACKERS: usize = 1_000;
/// The normal client's pushes per second during the attack part.
pub const ATTACK_RATE: f64 = 500.0;
/// Long enough that no slowloris connection is cut off during the run.
const ATTACK_HEADER_TIMEOUT_SECS: u64 = 60;

/// Connections PUTting gzip bodies in the decode part.
pub const GZIP_CONNECTIONS: usize = 32;
/// Series of each gzip body: 2.85 MiB of text, so that 32 of them stay well
/// inside the default `max_inflight_bytes` and 704,000 series inside
/// `max_series`.
const GZIP_SERIES: usize = 22_000;
/// The tiny push's rate, on one connection.
pub const TINY_RATE: f64 = 200.0;

/// The `attack` part.
pub struct Attack {
    /// Pushes due in each run.
    pub due: u64,
    pub quiet: LoadResult,
    pub attacked: LoadResult,
    /// False when this pushkit does not know `read_header_timeout`.
    pub header_timeout: bool,
    /// Slowloris and idle connections opened, and still open at the end.
    pub opened: (usize, usize),
    pub open_at_end: (usize, usize),
    pub open_took: Duration,
    /// The server's RSS before the connections were opened, and with them.
    pub rss: (u64, u64),
}

/// The `decode` part.
pub struct Decode {
    /// The gzip body: bytes sent, bytes once inflated.
    pub gzip_len: usize,
    pub text_len: usize,
    /// Tiny pushes due in each run.
    pub due: u64,
    pub quiet: LoadResult,
    pub loaded: LoadResult,
    pub gzip: LoadResult,
    /// Server CPU seconds during the loaded run.
    pub server_cpu: Option<f64>,
}

/// Raises this process's open-file soft limit to its hard limit (children
/// inherit it); returns the limit now in force.
fn raise_nofile_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    #[allow(unsafe_code)]
    // SAFETY: getrlimit and setrlimit only read and write `lim`, a valid
    // rlimit on this stack frame.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return None;
            }
        }
    }
    Some(lim.rlim_cur)
}

/// Opens `n` connections that each send a request line and one header,
/// then nothing; stops at the first failure.
fn open_slowloris(addr: SocketAddr, n: usize) -> Result<Vec<TcpStream>, (Vec<TcpStream>, String)> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let opened =
            TcpStream::connect_timeout(&addr, Duration::from_secs(10)).and_then(|mut s| {
                s.set_write_timeout(Some(Duration::from_secs(10)))?;
                write!(
                    s,
                    "PUT /metrics/job/slow/instance/s{i} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                )?;
                Ok(s)
            });
        match opened {
            Ok(s) => out.push(s),
            Err(e) => return Err((out, format!("slowloris connection {i}: {e}"))),
        }
    }
    Ok(out)
}

/// Opens `n` keep-alive connections that each complete one request and
/// then stay idle; stops at the first failure.
fn open_idle(addr: SocketAddr, n: usize) -> Result<Vec<TcpStream>, (Vec<TcpStream>, String)> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let opened =
            TcpStream::connect_timeout(&addr, Duration::from_secs(10)).and_then(|mut s| {
                s.set_write_timeout(Some(Duration::from_secs(10)))?;
                s.set_read_timeout(Some(Duration::from_secs(10)))?;
                s.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")?;
                // The answer is a few dozen bytes: one read takes it whole.
                let mut buf = [0u8; 1024];
                let got = s.read(&mut buf)?;
                if !buf[..got].starts_with(b"HTTP/1.1 200") {
                    return Err(std::io::Error::other(format!(
                        "GET /-/healthy answered {:?}",
                        String::from_utf8_lossy(&buf[..got.min(40)])
                    )));
                }
                Ok(s)
            });
        match opened {
            Ok(s) => out.push(s),
            Err(e) => return Err((out, format!("idle connection {i}: {e}"))),
        }
    }
    Ok(out)
}

/// Connections the server has neither closed nor answered.
fn still_open(conns: &[TcpStream]) -> usize {
    let mut buf = [0u8; 1];
    conns
        .iter()
        .filter(|s| {
            s.set_nonblocking(true).is_ok()
                && matches!(s.peek(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        })
        .count()
}

pub async fn attack(ctx: &Ctx, res: &mut Results) -> Result<Attack, String> {
    match raise_nofile_limit() {
        Some(n) if n < (2 * ATTACKERS + 256) as u64 => res.note(format!(
            "attack: the open-file limit is {n}, too low for {} connections",
            2 * ATTACKERS
        )),
        Some(_) => {}
        None => res.note("attack: could not read or raise RLIMIT_NOFILE"),
    }
    let mut conf = PushkitConf {
        http_api: format!("read_header_timeout = \"{ATTACK_HEADER_TIMEOUT_SECS}s\"\n"),
        ..PushkitConf::default()
    };
    let mut header_timeout = true;
    let mut p = match start(ctx, "pushkit-attack", &conf, None).await {
        Ok(p) => p,
        Err(e) if e.contains("read_header_timeout") => {
            res.note("attack: this pushkit has no read_header_timeout; it runs with its defaults");
            header_timeout = false;
            conf.http_api.clear();
            start(ctx, "pushkit-attack", &conf, None).await?
        }
        Err(e) => return Err(e),
    };
    let took = crate::preload(ctx, p.addr, GROUPS).await?;
    eprintln!("  preloaded {GROUPS} groups in {took:.2?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let spec = LoadSpec {
        rate: Some(ATTACK_RATE),
        ..ctx.spec(p.addr, GROUPS, ctx.opts.duration)
    };
    let quiet = measured(&p, spec.clone()).await;
    report("quiet", &quiet);
    res.check_run("attack, quiet", &quiet);

    let rss_before = p.rss_bytes()?;
    let started = Instant::now();
    let addr = p.addr;
    let (slow, idle, problem) = tokio::task::spawn_blocking(move || {
        let (slow, e1) = match open_slowloris(addr, ATTACKERS) {
            Ok(v) => (v, None),
            Err((v, e)) => (v, Some(e)),
        };
        let (idle, e2) = match open_idle(addr, ATTACKERS) {
            Ok(v) => (v, None),
            Err((v, e)) => (v, Some(e)),
        };
        (slow, idle, e1.or(e2))
    })
    .await
    .map_err(|e| format!("opening the attack's connections: {e}"))?;
    let open_took = started.elapsed();
    if let Some(e) = problem {
        res.note(format!("attack: {e}"));
    }
    eprintln!(
        "  opened {} slowloris and {} idle connections in {open_took:.2?}",
        slow.len(),
        idle.len()
    );
    if header_timeout
        && open_took + ctx.opts.duration > Duration::from_secs(ATTACK_HEADER_TIMEOUT_SECS - 5)
    {
        res.note(
            "attack: the run may outlast read_header_timeout; some connections may be cut off",
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_during = p.rss_bytes()?;
    let attacked = measured(&p, spec).await;
    report("during the attack", &attacked);
    res.check_run("attack, during the attack", &attacked);
    let open_at_end = (still_open(&slow), still_open(&idle));
    eprintln!(
        "  still open at the end: {} slowloris, {} idle",
        open_at_end.0, open_at_end.1
    );
    let opened = (slow.len(), idle.len());
    drop(slow);
    drop(idle);
    finish(res, "attack", &mut p);
    Ok(Attack {
        due: due(ATTACK_RATE, ctx.opts.duration),
        quiet,
        attacked,
        header_timeout,
        opened,
        open_at_end,
        open_took,
        rss: (rss_before, rss_during),
    })
}

// ---------------------------------------------------------------------------
// The `decode` part

/// `series` counter series in 10 families, with the long, repetitive
/// labels of a real exporter, so that gzip shrinks them about 43 times.
fn decode_text(series: usize) -> String {
    use std::fmt::Write as _;
    let per = series / 10;
    let mut out = String::with_capacity(series * 140);
    for f in 0..10 {
        let name = format!("bench_decode_{f}_bytes_total");
        let _ = writeln!(out, "# HELP {name} Bytes of family {f}.");
        let _ = writeln!(out, "# TYPE {name} counter");
        for s in 0..per {
            let _ = writeln!(
                out,
                "{name}{{namespace=\"production\",pod=\"web-frontend-7d9c8b6f5d\",\
                 container=\"app\",path=\"/api/v1/items\",shard=\"{s:06}\"}} {}",
                s % 100
            );
        }
    }
    out
}

fn gzip(text: &[u8]) -> Result<Vec<u8>, String> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(text).map_err(|e| format!("gzip: {e}"))?;
    enc.finish().map_err(|e| format!("gzip: {e}"))
}

/// Runs `spec` on a thread and a runtime of its own.
async fn on_own_thread(spec: LoadSpec) -> Result<LoadResult, String> {
    let handle = std::thread::Builder::new()
        .name("tiny-pushes".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            rt.block_on(load::run(spec))
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    tokio::task::spawn_blocking(move || handle.join())
        .await
        .map_err(|e| format!("tiny pushes: {e}"))?
        .map_err(|_| "the tiny pushes' thread panicked".to_string())
}

pub async fn decode(ctx: &Ctx, res: &mut Results) -> Result<Decode, String> {
    let text = decode_text(GZIP_SERIES);
    let gz = gzip(text.as_bytes())?;
    eprintln!(
        "  gzip body: {} bytes, {} bytes inflated ({GZIP_SERIES} series)",
        gz.len(),
        text.len()
    );
    let mut p = start(ctx, "pushkit-decode", &PushkitConf::default(), None).await?;
    let tiny = LoadSpec {
        connections: 1,
        groups: 1,
        job: "tiny",
        body: Arc::new(b"# TYPE bench_tiny gauge\nbench_tiny 1\n".to_vec()),
        rate: Some(TINY_RATE),
        ..ctx.spec(p.addr, 1, ctx.opts.duration)
    };
    let heavy = LoadSpec {
        connections: GZIP_CONNECTIONS,
        groups: GZIP_CONNECTIONS,
        job: "decode",
        body: Arc::new(gz.clone()),
        headers: vec![("Content-Encoding".into(), "gzip".into())],
        // Runs a little longer than the tiny pushes, on both sides.
        duration: ctx.opts.duration + Duration::from_secs(1),
        ..ctx.spec(p.addr, GZIP_CONNECTIONS, ctx.opts.duration)
    };
    // The store holds the gzip groups before the runs, as it will during.
    let took = preload(&heavy).await?;
    eprintln!("  preloaded {GZIP_CONNECTIONS} gzip groups in {took:.2?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let quiet = on_own_thread(tiny.clone()).await?;
    report("tiny pushes, quiet", &quiet);
    res.check_run("decode, tiny pushes quiet", &quiet);

    let cpu_before = procs::cpu_seconds(Some(p.pid()));
    let (gzip_r, loaded) = tokio::join!(load::run(heavy), async {
        // The gzip load starts first and is running when the tiny pushes do.
        tokio::time::sleep(Duration::from_millis(500)).await;
        on_own_thread(tiny).await
    });
    let cpu_after = procs::cpu_seconds(Some(p.pid()));
    let loaded = loaded?;
    report("tiny pushes, during the gzip pushes", &loaded);
    report("the gzip pushes", &gzip_r);
    res.check_run("decode, tiny pushes during the gzip pushes", &loaded);
    res.check_run("decode, the gzip pushes", &gzip_r);
    finish(res, "decode", &mut p);
    Ok(Decode {
        gzip_len: gz.len(),
        text_len: text.len(),
        due: due(TINY_RATE, ctx.opts.duration),
        quiet,
        loaded,
        gzip: gzip_r,
        server_cpu: match (cpu_before, cpu_after) {
            (Ok(a), Ok(b)) => Some(b - a),
            _ => None,
        },
    })
}

pub(crate) fn print_attack(a: &Attack) {
    println!(
        "The normal client: {} pushes/s on a fixed schedule over {} keep-alive connections to \
         {} groups, each timed from when it was due:",
        fmt_int(ATTACK_RATE),
        crate::connections(),
        fmt_int(GROUPS as f64)
    );
    println!();
    println!("| run | pushes answered (due) | p50 / p99 / max | server CPU per push |");
    println!("|---|---|---|---|");
    for (what, r) in [
        ("quiet".to_string(), &a.quiet),
        (
            format!(
                "while {} slowloris and {} idle keep-alive connections are held",
                fmt_int(a.opened.0 as f64),
                fmt_int(a.opened.1 as f64)
            ),
            &a.attacked,
        ),
    ] {
        println!(
            "| {what} | {} ({}) | {} | {} |",
            r.ok,
            a.due,
            p50_p99_max(r),
            fmt_opt_dur(r.server_cpu_per_push())
        );
    }
    println!();
    println!(
        "- still open after the run: {} of {} slowloris, {} of {} idle ({}); opened in {}; \
         server RSS {} before them, {} with them",
        a.open_at_end.0,
        a.opened.0,
        a.open_at_end.1,
        a.opened.1,
        if a.header_timeout {
            format!("read_header_timeout = \"{ATTACK_HEADER_TIMEOUT_SECS}s\"")
        } else {
            "this pushkit has no read_header_timeout".to_string()
        },
        fmt_dur(a.open_took),
        fmt_bytes(a.rss.0 as usize),
        fmt_bytes(a.rss.1 as usize)
    );
    println!();
}

pub(crate) fn print_decode(d: &Decode) {
    println!(
        "A tiny push (one series), {} pushes/s on a fixed schedule on one connection, each \
         timed from when it was due:",
        fmt_int(TINY_RATE)
    );
    println!();
    println!("| run | tiny pushes answered (due) | p50 / p99 / max |");
    println!("|---|---|---|");
    println!(
        "| quiet | {} ({}) | {} |",
        d.quiet.ok,
        d.due,
        p50_p99_max(&d.quiet)
    );
    println!(
        "| while {} connections PUT gzip bodies back to back | {} ({}) | {} |",
        GZIP_CONNECTIONS,
        d.loaded.ok,
        d.due,
        p50_p99_max(&d.loaded)
    );
    println!();
    let secs = d.gzip.elapsed.as_secs_f64().max(1e-9);
    println!(
        "- the gzip pushes: {} bytes each, {} inflated ({} series); {} answered 200 in {} \
         = {}/s, {:.0} MB/s inflated; p50 / p99 / max {}{}",
        fmt_int(d.gzip_len as f64),
        fmt_bytes(d.text_len),
        fmt_int(GZIP_SERIES as f64),
        d.gzip.ok,
        fmt_dur(d.gzip.elapsed),
        fmt_rate(d.gzip.rate()),
        d.gzip.ok as f64 * d.text_len as f64 / secs / 1e6,
        p50_p99_max(&d.gzip),
        d.server_cpu
            .map(|c| format!("; server CPU {c:.2} s over the run"))
            .unwrap_or_default()
    );
    let other = d.gzip.problems();
    if !other.is_empty() {
        println!("- the gzip pushes not answered 200: {other}");
    }
    println!();
}
