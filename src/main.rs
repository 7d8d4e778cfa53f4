//! The `pushkit` command: `pushkit [--conf-dir DIR]` runs the agent,
//! `pushkit check [--conf-dir DIR]` validates and prints the effective
//! configuration.

use pushkit::{agent, config, sink};
use std::path::PathBuf;
use std::process::ExitCode;

/// Every push allocates and frees many small strings (labels, points);
/// glibc's malloc took about 40 % of the CPU of a push in the profiles,
/// mimalloc's thread-local free lists far less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
usage: pushkit [run] [--conf-dir DIR] [--log-level LEVEL]
       pushkit check [--conf-dir DIR]
       pushkit --version

  --conf-dir DIR     directory of *.conf files (default: conf.d, or $PUSHKIT_CONF_DIR)
  --log-level LEVEL  error, warn, info, debug or trace (default: $RUST_LOG, else info)
";

struct Args {
    check: bool,
    version: bool,
    conf_dir: PathBuf,
    log_level: Option<String>,
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        check: false,
        version: false,
        conf_dir: std::env::var("PUSHKIT_CONF_DIR")
            .ok()
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("conf.d")),
        log_level: None,
    };
    let mut first = true;
    while let Some(arg) = argv.next() {
        let value = |argv: &mut dyn Iterator<Item = String>, name: &str| {
            argv.next().ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "run" if first => {}
            "check" if first => args.check = true,
            "--conf-dir" => args.conf_dir = PathBuf::from(value(&mut argv, "--conf-dir")?),
            "--log-level" => args.log_level = Some(value(&mut argv, "--log-level")?),
            s if s.starts_with("--conf-dir=") => {
                args.conf_dir = PathBuf::from(&s["--conf-dir=".len()..])
            }
            s if s.starts_with("--log-level=") => {
                args.log_level = Some(s["--log-level=".len()..].to_string())
            }
            "-h" | "--help" => return Err(String::new()),
            "-V" | "--version" => args.version = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
        first = false;
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("pushkit: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.version {
        println!("pushkit {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if let Err(e) = init_logging(args.log_level.as_deref()) {
        eprintln!("pushkit: {e}");
        return ExitCode::from(2);
    }
    let env = |name: &str| std::env::var(name).ok();
    let loaded = match config::load(&args.conf_dir, &env) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("pushkit: configuration error: {e}");
            return ExitCode::from(1);
        }
    };
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    if args.check {
        print!("{}", loaded.config.to_toml());
        for warning in held_locks(&loaded.config) {
            tracing::warn!("{warning}");
        }
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pushkit: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run(loaded.config))
}

/// For `pushkit check`: the data directories whose `LOCK` another process
/// holds. Not an error, since check runs beside a live agent, but worth
/// saying: an agent started on them would exit.
fn held_locks(config: &config::Config) -> Vec<String> {
    let dirs = [
        ("[io] queue_dir", config.io.queue_dir.as_deref()),
        (
            "persistence_dir",
            config
                .pushgateway
                .as_ref()
                .and_then(|p| p.persistence_dir.as_deref()),
        ),
    ];
    let mut out = Vec::new();
    for (key, dir) in dirs {
        let Some(dir) = dir else { continue };
        let path = std::path::Path::new(dir);
        match pushkit::durable::fsutil::lock_is_held(path) {
            Ok(true) => out.push(format!(
                "{key} = {dir:?}: {} is held by another process (a running agent?); an agent started on it would exit",
                path.join("LOCK").display()
            )),
            Ok(false) => {}
            Err(e) => out.push(format!("{key} = {dir:?}: cannot check its LOCK: {e}")),
        }
    }
    out
}

async fn run(config: config::Config) -> ExitCode {
    // Installed before "started" is logged, so that a signal sent as soon
    // as the agent says it is up stops it cleanly instead of killing it.
    let shutdown = match shutdown_signal() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let listen = config.http_api.listen.clone();
    let mut bound = Err(std::io::Error::other("no address to bind"));
    for addr in config.http_api.bind_addresses() {
        bound = tokio::net::TcpListener::bind(&addr).await;
        if bound.is_ok() {
            break;
        }
    }
    let listener = match bound {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("cannot listen on {listen}: {e}");
            return ExitCode::from(1);
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or(listen);
    let sinks: Vec<&str> = config.sinks.iter().map(|s| s.name.as_str()).collect();
    tracing::info!(
        listen = %addr,
        pushgateway = config.pushgateway.is_some(),
        sinks = ?sinks,
        "pushkit {} started{}",
        env!("CARGO_PKG_VERSION"),
        if sinks.is_empty() { ", writing points to stdout" } else { "" }
    );
    match agent::run(config, listener, sink::stdout::stdout(), shutdown).await {
        Ok(0) => {
            tracing::info!("stopped; every point was delivered");
            ExitCode::SUCCESS
        }
        Ok(undelivered) => {
            tracing::error!("stopped; {undelivered} points were not delivered");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(1)
        }
    }
}

/// SIGINT or SIGTERM (Kubernetes stops pods with SIGTERM). The handlers
/// are registered when this is called; the future resolves on a signal.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        }
    })
}

fn init_logging(level: Option<&str>) -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::try_new(l).map_err(|e| format!("--log-level {l:?}: {e}"))?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    Ok(())
}
