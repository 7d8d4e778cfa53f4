//! The agent assembled: sinks, inputs and the HTTP API, from a loaded
//! configuration, until a shutdown signal.

use crate::config::{Config, ConfigError, HttpApiConfig};
use crate::convert::{Mapping, Naming};
use crate::durable::{fsutil, Io, Log, LogOptions, RealIo};
use crate::http;
use crate::http::auth::Authenticator;
use crate::http::rate_limit::{Rate, RateLimiter};
use crate::metrics::Metrics;
use crate::pushgateway::export;
use crate::pushgateway::guard::Guard;
use crate::pushgateway::limits::PushLimits;
use crate::pushgateway::status_page::{SinkRow, StatusPage};
use crate::pushgateway::{Api, PushgatewayInput};
use crate::sink::disk::{self, DiskQueue};
use crate::sink::{stdout::LineOutput, SinkSet, StartError};
use crate::store::journal::{Journal, Recovered};
use crate::store::{Store, StoreOptions, DEFAULT_SNAPSHOT_AFTER_BYTES};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// Why the agent could not start.
#[derive(Debug, Error)]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Sinks(#[from] StartError),
    /// A fatal error after start, which stopped the agent (the store could
    /// not load its persisted state).
    #[error("{0}")]
    Fatal(String),
    /// The listener's TLS files, auth files or Unix socket are unusable.
    #[error("{0}")]
    Edge(String),
    #[error(
        "persistence_dir {pdir} and [io] queue_dir {qdir}: cannot open their shared log: {source}"
    )]
    SharedLog {
        pdir: String,
        qdir: String,
        source: std::io::Error,
    },
}

/// Runs the agent on `listener` until `shutdown` resolves; then stops
/// accepting, flushes the sinks within `[io] shutdown_timeout` and returns
/// the number of points not delivered.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    lines: LineOutput,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<usize, AgentError> {
    run_with_io(config, listener, lines, shutdown, Arc::new(RealIo)).await
}

/// [`run`], with the store's journal and the log it may share with the
/// disk queue written through `io`: tests inject faults with it (a failed
/// fsync, EIO) that no real filesystem gives on demand. A disk queue with
/// a log of its own is written through `io` too.
pub async fn run_with_io(
    config: Config,
    listener: tokio::net::TcpListener,
    lines: LineOutput,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    io: Arc<dyn Io>,
) -> Result<usize, AgentError> {
    // `load` has validated a config read from files; one built in code
    // is held to the same rules before anything starts.
    config.validate()?;
    let metrics = Arc::new(Metrics::default());
    // The door first: a bad certificate stops the start before anything
    // opens its data.
    let edge = Edge::from_config(&config.http_api, metrics.clone())?;
    let (shared_log, journal, queue) = match open_shared_log(&config, &io)? {
        Some(s) => (Some(s.log), Some(s.journal), Some(s.queue)),
        None => (None, None, own_disk_queue(&config, &io)?),
    };
    let sinks = SinkSet::start_with(&config.sinks, &config.io, lines, metrics.clone(), queue)?;
    // Beside a disk queue on a log of its own, the journal's records wait
    // for the queue's (see `Store::gate_journal_on`).
    let journal_gate = match (&shared_log, &journal) {
        (None, None) => sinks.disk_log().cloned(),
        _ => None,
    };
    let quit = Arc::new(tokio::sync::Notify::new());
    let fatal: Arc<std::sync::OnceLock<String>> = Arc::default();
    let store = match &config.pushgateway {
        Some(pg) if pg.store => Some(start_store(
            pg,
            (quit.clone(), fatal.clone()),
            journal,
            io.clone(),
            journal_gate,
        )),
        _ => None,
    };
    let mapping = config.pushgateway.as_ref().map(|pg| Mapping {
        naming: Naming {
            measurement_name: pg.measurement_name.clone(),
            job_as_measurement: pg.job_as_measurement,
            keep_exist_metric_name: pg.keep_exist_metric_name,
        },
        honor_timestamps: pg.honor_timestamps,
    });
    // `validate` allows an export_interval only beside a store.
    let exports = match (&store, &mapping) {
        (Some(store), Some(mapping)) => {
            let intervals: Vec<_> = config.sinks.iter().map(|s| s.export_interval).collect();
            export::spawn(&intervals, store.clone(), sinks.clone(), mapping.clone())
        }
        _ => Vec::new(),
    };
    let (prefix, pushgateway) = match (&config.pushgateway, mapping) {
        (Some(pg), Some(mapping)) => (
            pg.route_prefix.clone(),
            Some(Arc::new(PushgatewayInput {
                mapping,
                max_body_size: config.http_api.max_body_size,
                max_decompressed_size: config.http_api.max_decompressed_size,
                sinks: sinks.clone(),
                metrics: metrics.clone(),
                store: store.clone(),
                utf8_names: pg.utf8_names,
                inflight: crate::http::inflight::InflightBudget::new(
                    config.http_api.max_inflight_bytes,
                ),
                limits: PushLimits {
                    sample_limit: pg.sample_limit,
                    label_limit: pg.label_limit,
                    label_name_length_limit: pg.label_name_length_limit,
                    label_value_length_limit: pg.label_value_length_limit,
                },
            })),
        ),
        _ => (String::new(), None),
    };
    let pg = config.pushgateway.clone().unwrap_or_default();
    let api = Arc::new(Api {
        prefix,
        pushgateway,
        metrics,
        store: store.clone(),
        enable_admin_api: pg.enable_admin_api,
        enable_lifecycle: pg.enable_lifecycle,
        quit: quit.clone(),
        status: status_json(&config),
        data_dirs: data_dirs(&config),
        page: Arc::new(StatusPage::new(
            config
                .sinks
                .iter()
                .map(|s| SinkRow {
                    name: s.name.clone(),
                    url: crate::config::redact_secrets(&s.url),
                })
                .collect(),
            config.to_toml(),
            config.pushgateway.as_ref().map_or(0, |pg| pg.max_groups),
            config.pushgateway.as_ref().map_or(0, |pg| pg.max_series),
        )),
        guard: edge.guard,
    });
    let stop = async move {
        tokio::select! {
            () = shutdown => {}
            () = quit.notified() => {}
        }
    };
    let mut listeners = vec![http::Listener::Tcp(listener)];
    listeners.extend(edge.unix.map(http::Listener::Unix));
    http::serve(listeners, edge.tls, edge.limits, api, stop).await;
    tracing::info!("stopped accepting; flushing sinks");
    for export in exports {
        export.abort();
    }
    if let Some(store) = &store {
        if let Err(e) = store.close() {
            tracing::error!("closing the store's journal: {e}");
        }
    }
    let undelivered = sinks.shutdown(config.io.shutdown_timeout).await;
    if let Some(log) = shared_log {
        if let Err(e) = log.close() {
            tracing::error!("closing the log shared by the store and the disk queue: {e}");
        }
    }
    // A stop that a fatal error caused is a failure, not a clean stop.
    if let Some(why) = fatal.get() {
        return Err(AgentError::Fatal(why.clone()));
    }
    Ok(undelivered)
}

/// Without a shared log, the disk queue (if `[io] queue_dir` is set and
/// there are sinks) in a log of its own, through `io` like the journal,
/// so that tests can inject faults under either.
fn own_disk_queue(
    config: &Config,
    io: &Arc<dyn Io>,
) -> Result<Option<crate::sink::disk::Opened>, AgentError> {
    match (&config.io.queue_dir, config.sinks.is_empty()) {
        (Some(dir), false) => Ok(Some(crate::sink::open_disk(
            dir,
            &config.sinks,
            io.clone(),
        )?)),
        _ => Ok(None),
    }
}

/// The log the store's journal and the sinks' disk queue share, and their
/// two clients on it.
struct SharedLog {
    log: Arc<Log>,
    journal: (Journal, Recovered),
    queue: disk::Opened,
}

/// With `persistence_dir` and `[io] queue_dir` both in use and on one
/// filesystem, opens one log in `queue_dir` for the store's mutations and
/// the sinks' points, so that a push is made durable by one fsync; the
/// store's snapshots stay in `persistence_dir` (which names the log in its
/// `LOG` file). On two filesystems one fsync cannot cover both: `None`,
/// and each keeps a log of its own.
fn open_shared_log(config: &Config, io: &Arc<dyn Io>) -> Result<Option<SharedLog>, AgentError> {
    let pdir = match &config.pushgateway {
        Some(pg) if pg.store => pg.persistence_dir.clone(),
        _ => None,
    };
    let (Some(pdir), Some(qdir)) = (pdir, config.io.queue_dir.clone()) else {
        return Ok(None);
    };
    if config.sinks.is_empty() {
        return Ok(None);
    }
    let (p, q) = (Path::new(&pdir), Path::new(&qdir));
    let err = |source| AgentError::SharedLog {
        pdir: pdir.clone(),
        qdir: qdir.clone(),
        source,
    };
    fsutil::create_private_dir(p).map_err(err)?;
    fsutil::create_private_dir(q).map_err(err)?;
    let device = |d: &Path| std::fs::metadata(d).map(|m| std::os::unix::fs::MetadataExt::dev(&m));
    if device(p).map_err(err)? != device(q).map_err(err)? {
        tracing::info!(
            "persistence_dir {pdir} and [io] queue_dir {qdir} are on different filesystems: one fsync cannot cover both, so the store and the sinks keep a log each (two fsyncs per push, the queue's first)"
        );
        return Ok(None);
    }
    let io = io.clone();
    let q_lock = fsutil::lock_dir(q, "agent").map_err(err)?;
    let same_dir = p.canonicalize().map_err(err)? == q.canonicalize().map_err(err)?;
    let p_lock = match same_dir {
        true => None,
        false => Some(fsutil::lock_dir(p, "agent").map_err(err)?),
    };
    let mut journal = Journal::prepare(&io, p, p_lock).map_err(err)?;
    let mut queue = DiskQueue::prepare(q, &crate::sink::disk_specs(&config.sinks)).map_err(err)?;
    let opened = Log::open_locked(
        io,
        q,
        LogOptions {
            segment_bytes: disk::DEFAULT_SEGMENT_BYTES,
            holders: 2,
            what: "log",
        },
        q_lock,
        &mut |r| {
            journal.visit(r);
            queue.visit(r);
        },
    )
    .map_err(err)?;
    let log = Arc::new(opened.log);
    let journal = Journal::attach(log.clone(), 0, false, journal).map_err(err)?;
    let queue = DiskQueue::attach(log.clone(), 1, false, queue).map_err(err)?;
    tracing::info!(
        "the store's journal and the disk queue share one log in {qdir}: one fsync per group commit"
    );
    Ok(Some(SharedLog {
        log,
        journal,
        queue,
    }))
}

/// Creates the group store; loads its persisted state in the background
/// (the API answers 503 meanwhile) from `journal` if given (opened on the
/// shared log) or from its own, and starts its expiry task. A journal
/// that cannot be loaded stops the agent.
fn start_store(
    pg: &crate::config::PushgatewayConfig,
    (quit, fatal): (Arc<tokio::sync::Notify>, Arc<std::sync::OnceLock<String>>),
    journal: Option<(Journal, Recovered)>,
    io: Arc<dyn Io>,
    journal_gate: Option<Arc<Log>>,
) -> Arc<Store> {
    let store = Arc::new(Store::new(StoreOptions {
        consistency_check: pg.consistency_check,
        utf8_names: pg.utf8_names,
        max_groups: pg.max_groups,
        max_series: pg.max_series,
        persistence_dir: pg.persistence_dir.as_ref().map(Into::into),
        group_ttl: pg.group_ttl,
        snapshot_after_bytes: DEFAULT_SNAPSHOT_AFTER_BYTES,
    }));
    if let Some(queue_log) = journal_gate {
        store.gate_journal_on(queue_log);
    }
    if let Some(dir) = &pg.persistence_dir {
        let dir = dir.clone();
        let loading = store.clone();
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let loaded = match journal {
                Some((journal, recovered)) => Ok(loading.load_from(journal, recovered)),
                None => loading.load_with(io),
            };
            match loaded {
                Ok(warnings) => {
                    loading.heal_on_retry();
                    for w in warnings {
                        tracing::warn!("{w}");
                    }
                    tracing::info!(
                        groups = loading.group_count(),
                        series = loading.series_count(),
                        "store loaded from {dir} in {:?}",
                        started.elapsed()
                    );
                }
                Err(e) => {
                    let why = format!("cannot load the store from persistence_dir {dir}: {e}");
                    tracing::error!("{why}; stopping");
                    let _ = fatal.set(why);
                    quit.notify_one();
                }
            }
        });
    }
    if !pg.group_ttl.is_zero() {
        let expiring = Arc::downgrade(&store);
        let period = (pg.group_ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(10));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let Some(store) = expiring.upgrade() else {
                    return;
                };
                if !store.is_ready() {
                    continue;
                }
                let now = crate::model::point::now_ns();
                let failed = match store.expire(now) {
                    Ok((0, _)) => None,
                    Ok((n, ticket)) => {
                        tracing::info!("{n} group(s) expired after group_ttl");
                        store.wait(ticket).await.err()
                    }
                    Err(e) => Some(e),
                };
                // A failed journal fails every tick: a line a minute.
                if let Some(e) = failed {
                    if let Some(n) = EXPIRY_FAILURES.pass(0, 1) {
                        tracing::error!(
                            "store journal: {e} ({n} expiry rounds failed so since the last line)"
                        );
                    }
                }
            }
        });
    }
    store
}

/// The data directories in use, by key, for the free-bytes self metric.
fn data_dirs(config: &Config) -> Vec<(&'static str, std::path::PathBuf)> {
    let mut dirs = Vec::new();
    if let Some(dir) = config
        .pushgateway
        .as_ref()
        .filter(|pg| pg.store)
        .and_then(|pg| pg.persistence_dir.as_ref())
    {
        dirs.push(("persistence_dir", dir.into()));
    }
    if let Some(dir) = &config.io.queue_dir {
        if !config.sinks.is_empty() {
            dirs.push(("queue_dir", dir.into()));
        }
    }
    dirs
}

/// Failed expiry rounds, logged a line a minute.
static EXPIRY_FAILURES: crate::logging::LogGate<1> =
    crate::logging::LogGate::new(Duration::from_secs(60));

/// `data` of `GET P/api/v1/status`, in the Pushgateway's shape: the
/// effective options as `flags`, `start_time`, `build_information`.
fn status_json(config: &Config) -> serde_json::Value {
    let flags: serde_json::Map<String, serde_json::Value> = config
        .flags()
        .into_iter()
        .map(|(k, v)| (k, v.into()))
        .collect();
    serde_json::json!({
        "flags": flags,
        "start_time": crate::store::json::rfc3339_nano(crate::model::point::now_ns()),
        "build_information": {
            "version": env!("CARGO_PKG_VERSION"),
            "program": "pushkit",
        },
    })
}

/// What `[http_api]` puts at the door: TLS, the Unix socket, connection
/// limits, and the guard (rate limits and credentials).
struct Edge {
    tls: Option<Arc<http::tls::TlsReloader>>,
    unix: Option<tokio::net::UnixListener>,
    limits: http::ConnLimits,
    guard: Guard,
}

impl Edge {
    /// Reads the files `[http_api]` names and binds its Unix socket; each
    /// error names the key and file.
    fn from_config(http: &HttpApiConfig, metrics: Arc<Metrics>) -> Result<Edge, AgentError> {
        let tls = tls_reloader(http)?;
        let auth = if http.auth.is_on() {
            let auth = Authenticator::new(
                http.auth.basic_auth_users.clone(),
                http.auth.bearer_tokens_file.clone().map(Into::into),
            )
            .map_err(|e| AgentError::Edge(format!("[http_api.auth] {e}")))?;
            Some(auth)
        } else {
            None
        };
        let per_client = (http.request_rate_limit > 0.0).then(|| Rate {
            per_second: http.request_rate_limit,
            burst: http.effective_burst(),
        });
        let global = http.global_rate_limit.map(|(interval, burst)| Rate {
            per_second: 1.0 / interval.as_secs_f64(),
            burst,
        });
        let unix =
            match &http.listen_socket {
                Some(path) => Some(bind_unix(path).map_err(|e| {
                    AgentError::Edge(format!("[http_api] listen_socket {path}: {e}"))
                })?),
                None => None,
            };
        Ok(Edge {
            tls,
            unix,
            limits: http::ConnLimits {
                read_header_timeout: http.read_header_timeout,
                read_timeout: http.effective_read_timeout(),
                idle_timeout: http.effective_idle_timeout(),
                max_connections: http.max_connections,
            },
            guard: Guard {
                auth,
                auth_routes: http.auth.routes.clone(),
                limiter: RateLimiter::new(per_client, global),
                trusted_proxies: http.trusted_proxies.clone(),
                metrics,
            },
        })
    }
}

/// The listener's TLS, from `[http_api.tls]`: its files read now (an error
/// stops the start) and watched from then on.
#[cfg(feature = "net")]
fn tls_reloader(http: &HttpApiConfig) -> Result<Option<Arc<http::tls::TlsReloader>>, AgentError> {
    if !http.tls.is_on() {
        return Ok(None);
    }
    let files = http::tls::TlsFiles {
        cert: http.tls.cert.clone().unwrap_or_default().into(),
        key: http.tls.privkey.clone().unwrap_or_default().into(),
        client_ca: http.tls.client_ca.clone().map(Into::into),
        min_version: match http.tls.min_version {
            crate::config::TlsVersion::Tls12 => http::tls::MinVersion::Tls12,
            crate::config::TlsVersion::Tls13 => http::tls::MinVersion::Tls13,
        },
    };
    http::tls::TlsReloader::new(files)
        .map(Some)
        .map_err(|e| AgentError::Edge(format!("[http_api.tls] {e}")))
}

/// Without the `net` feature, a listener that asks for TLS cannot start.
#[cfg(not(feature = "net"))]
fn tls_reloader(http: &HttpApiConfig) -> Result<Option<Arc<http::tls::TlsReloader>>, AgentError> {
    if http.tls.is_on() {
        return Err(AgentError::Edge(
            "[http_api.tls] is set, but this pushkit was built without the net feature: no TLS"
                .into(),
        ));
    }
    Ok(None)
}

/// Binds a Unix socket at `path` with mode 0660, replacing a stale socket
/// left by a previous run (never any other kind of file).
fn bind_unix(path: &str) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(std::io::Error::other(
                "exists and is not a socket; not replacing it",
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(listener)
}
