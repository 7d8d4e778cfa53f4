//! What the edge parts (`edge`, and `attacks`) share: starting pushkit,
//! preloading its groups, and the figures of their tables.

use crate::http::TlsClient;
use crate::load::{self, LoadResult, LoadSpec};
use crate::procs::{self, Proc, PushkitConf};
use crate::{dir, fmt_dur, fmt_opt_dur, port, Ctx};
use std::time::{Duration, Instant};

/// Groups the `edge` and `attack` parts push to (scenario a's 1,000).
pub const GROUPS: usize = 1_000;

/// Starts pushkit with `conf`; `Err` when `pushkit check` refuses it.
pub(crate) async fn start(
    ctx: &Ctx,
    name: &str,
    conf: &PushkitConf,
    tls: Option<&TlsClient>,
) -> Result<Proc, String> {
    let d = dir(ctx, name)?;
    let port = port()?;
    procs::write_pushkit_conf(&d, port, conf).map_err(|e| e.to_string())?;
    procs::pushkit_check(&ctx.pushkit, &d)?;
    let mut p = procs::start_pushkit(&ctx.pushkit, &d, port, d.join("pushkit.log"))?;
    p.wait_ready_with("/-/ready", Duration::from_secs(30), tls)
        .await?;
    Ok(p)
}

/// PUTs every group of `spec` once.
pub(crate) async fn preload(spec: &LoadSpec) -> Result<Duration, String> {
    let started = Instant::now();
    let spec = LoadSpec {
        duration: Duration::from_secs(1800),
        max_requests: spec.groups as u64,
        rate: None,
        ..spec.clone()
    };
    let r = load::run(spec.clone()).await;
    if r.ok != spec.groups as u64 {
        return Err(format!(
            "preload: {} of {} pushes succeeded: {}",
            r.ok,
            spec.groups,
            r.problems()
        ));
    }
    Ok(started.elapsed())
}

/// Requests a fixed schedule starts within `d`. A request still waiting
/// for its connection when the run ends is never sent: fewer answered than
/// due means the server held the client up for that long.
pub(crate) fn due(rate: f64, d: Duration) -> u64 {
    (rate * d.as_secs_f64()).ceil() as u64
}

pub(crate) fn report(what: &str, r: &LoadResult) {
    eprintln!(
        "  {what}: {} pushes in {:.2?} = {:.1}/s, p50 {}, p99 {}, max {}{}",
        r.ok,
        r.elapsed,
        r.rate(),
        fmt_opt_dur(r.quantile(0.5)),
        fmt_opt_dur(r.quantile(0.99)),
        fmt_opt_dur(r.quantile(1.0)),
        r.server_cpu_per_push()
            .map(|c| format!(", server CPU {} per push", fmt_dur(c)))
            .unwrap_or_default()
    );
}

pub(crate) fn p50_p99_max(r: &LoadResult) -> String {
    format!(
        "{} / {} / {}",
        fmt_opt_dur(r.quantile(0.5)),
        fmt_opt_dur(r.quantile(0.99)),
        fmt_opt_dur(r.quantile(1.0))
    )
}

pub(crate) fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}
