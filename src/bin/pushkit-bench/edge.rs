//! The edge rows (issue 14): what TLS and credentials cost a push, how a
//! normal client fares while slow and idle connections hold the agent, and
//! a tiny push's latency while big gzip pushes decode. Three parts:
//!
//! - `edge`: pushkit at 1,000 groups under scenario a's load (8 keep-alive
//!   connections, as fast as answered, the 100-series body) in five
//!   configurations: plain; basic auth (a cost-10 bcrypt hash, every
//!   request with the right password); a bearer token (a tokens file);
//!   TLS (a CA and a server certificate made with `openssl` at start);
//!   TLS with basic auth. The configurations alternate, round after round,
//!   because the shared machine moves more between minutes than they
//!   differ.
//! - `attack`: a normal client pushing on a fixed schedule, quiet, then
//!   while 1,000 slowloris connections (a request line and one header, then
//!   nothing) and 1,000 idle keep-alive connections are held.
//!   `read_header_timeout` is 60 s so that none is cut off during the run.
//! - `decode`: a one-series push on a fixed schedule on one connection,
//!   quiet, then while 32 connections PUT gzip bodies (about 70 KB, 2.85 MiB
//!   of text once inflated) back to back. The tiny pushes are sent from a
//!   thread of their own, so that the gzip client cannot delay them.

use crate::http::{Conn, TlsClient};
use crate::load::{self, LoadResult, LoadSpec};
use crate::procs::PushkitConf;
use crate::steps::{median, preload, start, GROUPS};
use crate::{dir, finish, fmt_dur, fmt_int, fmt_opt_dur, fmt_rate, measured};
use crate::{Ctx, Results};
use base64::Engine as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Rounds of the five configurations (one with `--quick`).
const ROUNDS: usize = 2;
const USER: &str = "bench";
const PASSWORD: &str = "s3cret-push";
/// The realistic cost (`htpasswd -nBC 10`).
const BCRYPT_COST: u32 = 10;
const TOKEN: &str = "pushkit-bench-3f9c1e7a52d84b6e9a0c";
/// The name the server certificate is for.
const TLS_NAME: &str = "localhost";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Setup {
    Plain,
    Basic,
    Bearer,
    Tls,
    TlsBasic,
}

pub const SETUPS: [Setup; 5] = [
    Setup::Plain,
    Setup::Basic,
    Setup::Bearer,
    Setup::Tls,
    Setup::TlsBasic,
];

impl Setup {
    pub fn label(self) -> &'static str {
        match self {
            Setup::Plain => "plain (no TLS, no auth)",
            Setup::Basic => "basic auth (bcrypt cost 10)",
            Setup::Bearer => "bearer token (tokens file)",
            Setup::Tls => "TLS",
            Setup::TlsBasic => "TLS + basic auth",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Setup::Plain => "plain",
            Setup::Basic => "basic",
            Setup::Bearer => "bearer",
            Setup::Tls => "tls",
            Setup::TlsBasic => "tls-basic",
        }
    }

    fn tls(self) -> bool {
        matches!(self, Setup::Tls | Setup::TlsBasic)
    }

    fn basic(self) -> bool {
        matches!(self, Setup::Basic | Setup::TlsBasic)
    }
}

/// One configuration's run of the `edge` part.
pub struct SetupRun {
    pub setup: Setup,
    pub load: LoadResult,
    /// The first and the second request on one fresh connection: with a
    /// password, the first pays for bcrypt and the second is served from
    /// the agent's cache.
    pub first_two: (Duration, Duration),
}

#[derive(Default)]
pub struct EdgeResults {
    pub setups: Vec<SetupRun>,
    /// The TLS version and cipher suite negotiated.
    pub tls_params: Option<String>,
    pub attack: Option<crate::attacks::Attack>,
    pub decode: Option<crate::attacks::Decode>,
}

impl EdgeResults {
    pub fn is_empty(&self) -> bool {
        self.setups.is_empty() && self.attack.is_none() && self.decode.is_none()
    }
}

/// The credentials and certificates of the `edge` part, made once.
struct Secrets {
    hash: String,
    tokens_file: PathBuf,
    /// The server's certificate and key, and a client trusting their CA;
    /// None when they could not be made.
    tls: Option<(PathBuf, PathBuf, TlsClient)>,
}

impl Secrets {
    fn make(ctx: &Ctx, res: &mut Results) -> Result<Secrets, String> {
        let d = dir(ctx, "edge-secrets")?;
        let started = Instant::now();
        let hash = bcrypt::hash(PASSWORD, BCRYPT_COST).map_err(|e| format!("bcrypt hash: {e}"))?;
        eprintln!(
            "  a bcrypt hash of cost {BCRYPT_COST} took {}",
            fmt_dur(started.elapsed())
        );
        let tokens_file = d.join("tokens");
        std::fs::write(&tokens_file, format!("# pushkit-bench\n{TOKEN}\n"))
            .map_err(|e| format!("{}: {e}", tokens_file.display()))?;
        let tls = match make_certs(&d) {
            Ok(()) => Some((
                d.join("tls.crt"),
                d.join("tls.key"),
                TlsClient::new(&d.join("ca.crt"), TLS_NAME)?,
            )),
            Err(e) => {
                res.note(format!(
                    "edge: no certificates ({e}); the TLS rows are skipped"
                ));
                None
            }
        };
        Ok(Secrets {
            hash,
            tokens_file,
            tls,
        })
    }

    /// The `[http_api.*]` tables of `setup`.
    fn tables(&self, setup: Setup) -> String {
        let mut t = String::new();
        if let (true, Some((cert, key, _))) = (setup.tls(), &self.tls) {
            t.push_str(&format!(
                "[http_api.tls]\ncert = {:?}\nprivkey = {:?}\n",
                cert.display().to_string(),
                key.display().to_string()
            ));
        }
        if setup.basic() {
            t.push_str(&format!(
                "[http_api.auth]\nbasic_auth_users = {{ {USER} = {:?} }}\n",
                self.hash
            ));
        } else if setup == Setup::Bearer {
            t.push_str(&format!(
                "[http_api.auth]\nbearer_tokens_file = {:?}\n",
                self.tokens_file.display().to_string()
            ));
        }
        t
    }

    fn client(&self, setup: Setup) -> Option<TlsClient> {
        setup
            .tls()
            .then(|| self.tls.as_ref().map(|(_, _, c)| c.clone()))
            .flatten()
    }
}

/// The credentials every request of `setup` sends.
fn auth_headers(setup: Setup) -> Vec<(String, String)> {
    if setup.basic() {
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
        vec![("Authorization".into(), format!("Basic {pair}"))]
    } else if setup == Setup::Bearer {
        vec![("Authorization".into(), format!("Bearer {TOKEN}"))]
    } else {
        Vec::new()
    }
}

/// A CA and a server certificate for `localhost` and 127.0.0.1 signed by
/// it (P-256, valid two days), in `d`: `ca.crt`, `tls.crt`, `tls.key`.
fn make_certs(d: &Path) -> Result<(), String> {
    std::fs::write(
        d.join("server.ext"),
        "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n\
         extendedKeyUsage = serverAuth\nsubjectAltName = DNS:localhost, IP:127.0.0.1\n",
    )
    .map_err(|e| format!("server.ext: {e}"))?;
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    openssl(
        d,
        &format!(
            "req -x509 {ec} -keyout ca.key -out ca.crt -days 2 -subj /CN=pushkit-bench-CA \
             -addext basicConstraints=critical,CA:TRUE \
             -addext keyUsage=critical,keyCertSign,cRLSign"
        ),
    )?;
    openssl(
        d,
        &format!("req {ec} -keyout tls.key -out tls.csr -subj /CN=localhost"),
    )?;
    openssl(
        d,
        "x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
         -out tls.crt -extfile server.ext",
    )
}

/// Runs `openssl` in `d` with `args` (split at whitespace).
fn openssl(d: &Path, args: &str) -> Result<(), String> {
    let args: Vec<&str> = args.split_whitespace().collect();
    let out = Command::new("openssl")
        .args(&args)
        .current_dir(d)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {} failed: {}",
            args[0],
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

// ---------------------------------------------------------------------------
// The `edge` part

/// Runs the five configurations, [`ROUNDS`] times, alternating.
pub async fn setups(ctx: &Ctx, res: &mut Results) {
    let secrets = match Secrets::make(ctx, res) {
        Ok(s) => s,
        Err(e) => {
            res.note(format!("edge: {e}"));
            return;
        }
    };
    let rounds = if ctx.opts.quick { 1 } else { ROUNDS };
    for round in 1..=rounds {
        for setup in SETUPS {
            if setup.tls() && secrets.tls.is_none() {
                continue;
            }
            eprintln!(
                "== pushkit, {GROUPS} groups, {} (round {round} of {rounds})",
                setup.label()
            );
            match setup_round(ctx, &secrets, setup, round, res).await {
                Ok(run) => res.edge.setups.push(run),
                Err(e) => res.note(format!("edge, {}: {e}", setup.label())),
            }
        }
    }
}

async fn setup_round(
    ctx: &Ctx,
    secrets: &Secrets,
    setup: Setup,
    round: usize,
    res: &mut Results,
) -> Result<SetupRun, String> {
    let tls = secrets.client(setup);
    let conf = PushkitConf {
        http_tables: secrets.tables(setup),
        ..PushkitConf::default()
    };
    let name = format!("pushkit-edge-{}-{round}", setup.slug());
    let mut p = start(ctx, &name, &conf, tls.as_ref()).await?;
    let headers = auth_headers(setup);
    let (first_two, params) = first_two(p.addr, tls.as_ref(), &headers, &ctx.body).await?;
    if params.is_some() {
        res.edge.tls_params = params;
    }
    let spec = LoadSpec {
        headers,
        tls,
        ..ctx.spec(p.addr, GROUPS, ctx.opts.duration)
    };
    let took = preload(&spec).await?;
    eprintln!("  preloaded {GROUPS} groups in {took:.2?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = measured(&p, spec).await;
    crate::report_run(setup.label(), GROUPS, &r);
    res.check_run(&format!("edge, {}", setup.label()), &r);
    finish(res, &format!("edge, {}", setup.label()), &mut p);
    Ok(SetupRun {
        setup,
        load: r,
        first_two,
    })
}

/// Times the first two PUTs on one fresh connection (the connection, and
/// its TLS handshake, not counted); with TLS, what was negotiated.
async fn first_two(
    addr: SocketAddr,
    tls: Option<&TlsClient>,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<((Duration, Duration), Option<String>), String> {
    let limit = Duration::from_secs(30);
    let mut conn = tokio::time::timeout(limit, Conn::connect_with(addr, tls))
        .await
        .map_err(|_| "connect: timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    let mut h: Vec<(&str, &str)> = vec![("Content-Type", "text/plain; version=0.0.4")];
    h.extend(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut times = [Duration::ZERO; 2];
    for t in &mut times {
        let started = Instant::now();
        let r = tokio::time::timeout(
            limit,
            conn.request("PUT", &load::group_path("bench", 0), &h, body),
        )
        .await
        .map_err(|_| "first requests: no answer within 30 s".to_string())?
        .map_err(|e| format!("first requests: {e}"))?;
        *t = started.elapsed();
        if r.status != 200 {
            return Err(format!(
                "first requests: HTTP {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
            ));
        }
    }
    Ok(((times[0], times[1]), conn.tls_params()))
}

// ---------------------------------------------------------------------------
// The `attack` part

// ---------------------------------------------------------------------------
// The tables

/// Prints the parts' tables and details (Markdown).
pub fn print(e: &EdgeResults) {
    if e.is_empty() {
        return;
    }
    println!("### The edge: auth, TLS, attacks (issue 14)");
    println!();
    if !e.setups.is_empty() {
        print_setups(e);
    }
    if let Some(a) = &e.attack {
        crate::attacks::print_attack(a);
    }
    if let Some(d) = &e.decode {
        crate::attacks::print_decode(d);
    }
}

fn print_setups(e: &EdgeResults) {
    let cpu_us = |r: &SetupRun| r.load.server_cpu_per_push().map(|d| d.as_secs_f64() * 1e6);
    let median_cpu = |s: Setup| {
        median(
            e.setups
                .iter()
                .filter(|r| r.setup == s)
                .filter_map(cpu_us)
                .collect(),
        )
    };
    let plain = median_cpu(Setup::Plain);
    println!(
        "pushkit at {} groups, scenario a's load ({} keep-alive connections, as fast as \
         answered); each round's figure, in the order run:",
        fmt_int(GROUPS as f64),
        crate::connections()
    );
    println!();
    println!(
        "| configuration | pushes/s | server CPU per push | p50 / p99 | CPU per push (median) vs plain |"
    );
    println!("|---|---|---|---|---|");
    for s in SETUPS {
        let runs: Vec<&SetupRun> = e.setups.iter().filter(|r| r.setup == s).collect();
        if runs.is_empty() {
            continue;
        }
        let join = |f: &dyn Fn(&SetupRun) -> String| {
            runs.iter().map(|r| f(r)).collect::<Vec<_>>().join("; ")
        };
        let vs = match (median_cpu(s), plain) {
            (Some(m), Some(p)) if s != Setup::Plain => {
                format!(
                    "{m:.0} µs, {:+.0} % ({:+.0} µs)",
                    100.0 * (m / p - 1.0),
                    m - p
                )
            }
            (Some(m), _) => format!("{m:.0} µs"),
            _ => "–".into(),
        };
        println!(
            "| {} | {} | {} | {} | {} |",
            s.label(),
            join(&|r| fmt_rate(r.load.rate())),
            join(&|r| fmt_opt_dur(r.load.server_cpu_per_push())),
            join(&|r| format!(
                "{} / {}",
                fmt_opt_dur(r.load.quantile(0.5)),
                fmt_opt_dur(r.load.quantile(0.99))
            )),
            vs
        );
    }
    println!();
    println!("Details:");
    for s in SETUPS {
        let runs: Vec<&SetupRun> = e.setups.iter().filter(|r| r.setup == s).collect();
        if runs.is_empty() {
            continue;
        }
        let firsts: Vec<String> = runs
            .iter()
            .map(|r| format!("{} then {}", fmt_dur(r.first_two.0), fmt_dur(r.first_two.1)))
            .collect();
        let counts: Vec<String> = runs
            .iter()
            .map(|r| {
                format!(
                    "{} pushes in {}{}",
                    r.load.ok,
                    fmt_dur(r.load.elapsed),
                    crate::cpu_detail(&r.load)
                )
            })
            .collect();
        println!(
            "- {}: the first two pushes on a fresh connection took {}; {}",
            s.label(),
            firsts.join(", "),
            counts.join("; ")
        );
    }
    if let Some(p) = &e.tls_params {
        println!("- TLS negotiated: {p} (rustls with aws-lc-rs at both ends; a P-256 certificate)");
    }
    println!();
}
