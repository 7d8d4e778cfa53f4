//! The Pushgateway API's routes, served by `crate::http`. Routing is by
//! hand, not by warp filters, so that 404 and 405 are exact (warp's
//! rejection merging makes them hard).
//!
//! Routes, under the pushgateway input's prefix P:
//! - `PUT|POST|DELETE P/metrics/job/<job>{/<name>/<value>}` (and `job@base64`)
//! - `GET P/metrics`: the stored groups and the agent's own metrics, text
//!   or delimited protobuf, gzipped when the client allows it
//! - `GET P/api/v1/metrics`, `GET P/api/v1/status`: the Pushgateway's JSON API
//! - `PUT P/api/v1/admin/wipe` (with `enable_admin_api`)
//! - `PUT|POST P/-/quit` (with `enable_lifecycle`)
//! - `GET P/-/healthy`, `GET P/-/ready` (503 while the store loads)
//! - `GET P/`, `GET P/status`: the status page; `POST P/status/delete` and
//!   `POST P/status/wipe` (with `enable_admin_api`): its forms

use super::grouping::parse_push_path;
use super::guard::{class_of, Guard};
use super::push::{PushMethod, PushgatewayInput};
use super::status_page::{group_of_path, parse_form, PageInput, PageQuery, StatusPage};
use crate::expfmt::expose::ExpositionWriter;
use crate::expfmt::negotiate::{self, NameEscaping};
use crate::http::error::{ApiError, ErrorCode};
use crate::http::reply::{
    error_reply, json_reply, method_not_allowed, not_found, only_get, status_reply, text_reply,
    Reply,
};
use crate::http::{percent_decode, Request, Service};
use crate::metrics::Metrics;
use crate::store::Store;
use std::sync::Arc;
use std::time::Instant;
use warp::http::{HeaderMap, Method, Response, StatusCode};

/// About what one series takes in an exposition (the benchmark's take 98
/// bytes); capacity beyond what is written is never touched.
const BYTES_PER_SERIES: usize = 128;

/// The API as the agent configured it.
pub struct Api {
    /// Normalised: "" or "/a/b".
    pub prefix: String,
    /// None when no pushgateway input is configured: push paths are 404.
    pub pushgateway: Option<Arc<PushgatewayInput>>,
    pub metrics: Arc<Metrics>,
    /// The pushgateway input's group store, when it has one.
    pub store: Option<Arc<Store>>,
    pub enable_admin_api: bool,
    pub enable_lifecycle: bool,
    /// Notified by `P/-/quit`; the agent shuts down as on SIGTERM.
    pub quit: Arc<tokio::sync::Notify>,
    /// `data` of `GET P/api/v1/status`.
    pub status: serde_json::Value,
    /// The data directories (`persistence_dir`, `queue_dir`) by key, for
    /// the free-bytes self metric.
    pub data_dirs: Vec<(&'static str, std::path::PathBuf)>,
    pub page: Arc<StatusPage>,
    /// Rate limits and credentials per route class.
    pub guard: Guard,
}

impl Service for Api {
    async fn call(&self, req: Request) -> Reply {
        self.route(req).await
    }
}

impl Api {
    async fn route(&self, mut req: Request) -> Reply {
        let started = Instant::now();
        let Some(path) = percent_decode(&req.raw_path) else {
            return error_reply(&ApiError::new(
                ErrorCode::InvalidPath,
                "the URL path does not percent-decode to UTF-8",
            ));
        };
        let Some(rest) = strip_prefix(&path, &self.prefix) else {
            return not_found(&path);
        };
        // Push paths are split before they are decoded (`%2F` stays inside
        // a value). A prefix sent percent-encoded is matched decoded; its
        // rest is then taken as decoded, `%` escaped so it stays as it is.
        let raw_rest = match strip_prefix(&req.raw_path, &self.prefix) {
            Some(raw) => std::borrow::Cow::Borrowed(raw),
            None => std::borrow::Cow::Owned(rest.replace('%', "%25")),
        };
        let utf8 = self.pushgateway.as_ref().is_some_and(|pg| pg.utf8_names);
        let push = match &self.pushgateway {
            Some(pg) => parse_push_path(&raw_rest, utf8).map(|group| (pg, group)),
            None => None,
        };
        if let Some(class) = class_of(rest, push.is_some()) {
            if let Err(refused) = self.guard.admit(class, &mut req).await {
                return refused;
            }
        }
        if let Some((pg, group)) = push {
            let Some(push_method) = PushMethod::from_http(req.method.as_str()) else {
                return method_not_allowed(&req.method, "PUT, POST, DELETE");
            };
            let method = req.method.clone();
            let reply = pg.serve(push_method, group, req).await;
            let code = reply.status().as_u16().to_string();
            let m = method.as_str();
            self.metrics.pushes.with(&[m, &code]).add(1.0);
            self.metrics
                .push_duration
                .with(&[m])
                .observe(started.elapsed().as_secs_f64());
            return reply;
        }
        let method = &req.method;
        match rest {
            "/-/healthy" => only_get(method, || text_reply(StatusCode::OK, "OK\n")),
            "/-/ready" => only_get(method, || match self.not_ready() {
                None => text_reply(StatusCode::OK, "OK\n"),
                Some(why) => text_reply(StatusCode::SERVICE_UNAVAILABLE, &format!("{why}\n")),
            }),
            "/metrics" | "/api/v1/metrics" if method != Method::GET && method != Method::HEAD => {
                method_not_allowed(method, "GET")
            }
            "/metrics" => {
                self.note_data_health();
                let (metrics, store) = (self.metrics.clone(), self.store.clone());
                let utf8 = self.pushgateway.as_ref().is_some_and(|pg| pg.utf8_names);
                let headers = req.headers;
                off_worker(move || exposition(&metrics, store.as_deref(), &headers, utf8)).await
            }
            "/api/v1/metrics" => {
                let data = match self.store.clone() {
                    Some(store) => off_worker(move || store.api_metrics()).await,
                    None => serde_json::Value::Array(Vec::new()),
                };
                json_reply(&serde_json::json!({"status": "success", "data": data}))
            }
            "" | "/" | "/status" => {
                if method != Method::GET && method != Method::HEAD {
                    return method_not_allowed(method, "GET");
                }
                self.status_page(&req.query).await
            }
            "/status/delete" | "/status/wipe" if self.enable_admin_api => {
                if method != Method::POST {
                    return method_not_allowed(method, "POST");
                }
                self.page_form(rest == "/status/wipe", req).await
            }
            "/api/v1/status" => only_get(method, || {
                json_reply(&serde_json::json!({"status": "success", "data": self.status}))
            }),
            "/api/v1/admin/wipe" if self.enable_admin_api => {
                if method != Method::PUT {
                    return method_not_allowed(method, "PUT");
                }
                self.wipe().await
            }
            "/-/quit" => {
                if method != Method::PUT && method != Method::POST {
                    return method_not_allowed(method, "PUT, POST");
                }
                if !self.enable_lifecycle {
                    return error_reply(&ApiError::new(
                        ErrorCode::LifecycleDisabled,
                        "the lifecycle API is not enabled (enable_lifecycle = false)",
                    ));
                }
                tracing::info!("shutdown requested through /-/quit");
                self.quit.notify_one();
                text_reply(StatusCode::OK, "Requesting termination... Goodbye!\n")
            }
            _ => not_found(&path),
        }
    }

    /// Sets the self metrics of the data's health before a scrape reads
    /// them: whether the journal or the disk queue failed, the bytes free
    /// where they live, and the bytes recovery found damaged.
    fn note_data_health(&self) {
        let m = &self.metrics;
        if let Some(store) = &self.store {
            let failed = store.failure().is_some();
            m.data_failed
                .with(&["journal"])
                .set(f64::from(u8::from(failed)));
        }
        if let Some(pg) = &self.pushgateway {
            if self.data_dirs.iter().any(|(k, _)| *k == "queue_dir") {
                let failed = pg.sinks.failure().is_some();
                m.data_failed
                    .with(&["disk_queue"])
                    .set(f64::from(u8::from(failed)));
            }
        }
        for (key, dir) in &self.data_dirs {
            if let Ok(free) = crate::durable::fsutil::free_bytes(dir) {
                m.data_dir_free_bytes.with(&[key]).set(free as f64);
            }
        }
        m.log_damaged_bytes
            .set_total(crate::durable::damaged_bytes() as f64);
    }

    /// Why pushes cannot be accepted now, for `/-/ready`: the store still
    /// loading, or its journal or the disk queue refusing appends after a
    /// failed write (until there is room, or a fresh file is started).
    /// `/-/healthy` stays 200 meanwhile, so that an orchestrator takes the
    /// agent out of service instead of restarting it into the same fault.
    fn not_ready(&self) -> Option<String> {
        if let Some(store) = &self.store {
            if !store.is_ready() {
                return Some("store is loading".into());
            }
            if let Some(why) = store.failure() {
                return Some(format!("the store's journal refuses appends: {why}"));
            }
        }
        let pg = self.pushgateway.as_ref()?;
        let why = pg.sinks.failure()?;
        Some(format!("the disk queue refuses appends: {why}"))
    }

    /// The status page, rendered off the async workers (it walks the
    /// store's groups).
    async fn status_page(&self, query: &str) -> Reply {
        let query = PageQuery::parse(query);
        let not_ready = self.not_ready();
        let (page, store, metrics) = (self.page.clone(), self.store.clone(), self.metrics.clone());
        let (prefix, admin) = (self.prefix.clone(), self.enable_admin_api);
        let html = off_worker(move || {
            page.render(&PageInput {
                store: store.as_deref(),
                metrics: &metrics,
                prefix: &prefix,
                admin,
                not_ready,
                query: &query,
            })
        })
        .await;
        let mut r = Response::new(html.into_bytes());
        let headers = r.headers_mut();
        headers.insert("Content-Type", "text/html; charset=utf-8".parse().unwrap());
        headers.insert("Cache-Control", "no-store".parse().unwrap());
        // Not to be framed by another site (clickjacking the buttons).
        headers.insert("X-Frame-Options", "DENY".parse().unwrap());
        headers.insert(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'"
                .parse()
                .unwrap(),
        );
        r
    }

    /// A status page form: delete one group, or all. Refused (403) without
    /// the page's token or when the browser says it comes from another
    /// site; answered with a redirect back to the page.
    async fn page_form(&self, wipe: bool, mut req: Request) -> Reply {
        let cross_site = req
            .header("sec-fetch-site")
            .is_some_and(|s| s != "same-origin" && s != "none")
            || match (req.header("origin"), req.header("host")) {
                (Some(origin), Some(host)) => {
                    origin.split_once("://").map(|(_, h)| h) != Some(host)
                }
                _ => false,
            };
        let body = match crate::http::body::read_body(
            crate::http::body::declared_length(&req.headers),
            &mut req.body,
            64 << 10,
        )
        .await
        {
            Ok(b) => b,
            Err(e) => return error_reply(&e),
        };
        let form = parse_form(&String::from_utf8_lossy(&body));
        if cross_site || form.get("token") != Some(&self.page.token) {
            return error_reply(&ApiError::new(
                ErrorCode::Forbidden,
                "the status page's forms need the page's token, from the page's own origin",
            ));
        }
        if wipe {
            let reply = self.wipe().await;
            if !reply.status().is_success() {
                return reply;
            }
        } else {
            let utf8 = self.pushgateway.as_ref().is_some_and(|pg| pg.utf8_names);
            let Some(key) = form.get("group").and_then(|p| group_of_path(p, utf8)) else {
                return error_reply(&ApiError::new(
                    ErrorCode::InvalidPath,
                    "the form's group is not a group's push path",
                ));
            };
            if let Some(store) = &self.store {
                let done = match store.delete(key) {
                    Ok(ticket) => store.wait(ticket).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = done {
                    return error_reply(&ApiError::new(
                        ErrorCode::JournalFailed,
                        format!("the store's journal failed: {e}"),
                    ));
                }
            }
        }
        let mut r = Response::new(Vec::new());
        *r.status_mut() = StatusCode::SEE_OTHER;
        r.headers_mut().insert(
            "Location",
            format!("{}/status", self.prefix).parse().unwrap(),
        );
        r
    }

    async fn wipe(&self) -> Reply {
        if let Some(store) = &self.store {
            let done = match store.wipe() {
                Ok(ticket) => store.wait(ticket).await,
                Err(e) => Err(e),
            };
            if let Err(e) = done {
                tracing::error!("store journal: {e}");
                return error_reply(&ApiError::new(
                    ErrorCode::JournalFailed,
                    format!("the store's journal failed: {e}"),
                ));
            }
            tracing::info!("all groups wiped through the admin API");
        }
        status_reply(StatusCode::ACCEPTED)
    }
}

/// `GET P/metrics`, in the format and encoding the client accepts. With
/// `utf8_names`, names are escaped as `Accept` asks (underscores unless it
/// says otherwise), and `Content-Type` says how, as in Pushgateway 1.11;
/// without, nothing is escaped (no stored name needs it) and the
/// `Content-Type` is 1.5.1's.
fn exposition(
    metrics: &Metrics,
    store: Option<&Store>,
    headers: &HeaderMap,
    utf8_names: bool,
) -> Reply {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (format, escaping) = negotiate::negotiate_with_escaping(header("accept"));
    let names = if utf8_names {
        escaping
    } else {
        NameEscaping::AsStored
    };
    metrics
        .log_fsyncs
        .set_total(crate::durable::total_fsyncs() as f64);
    let own = metrics.families();
    // Sized for the store up front: growing a buffer of a million
    // series by doubling copies it whole several times over.
    let capacity = store.map_or(0, |s| s.series_count()) * BYTES_PER_SERIES;
    let mut writer = ExpositionWriter::with_capacity(format, capacity).with_names(names);
    match store {
        Some(store) => store.expose(&mut writer, own),
        None => crate::store::exposition::expose_own(&mut writer, own),
    }
    let mut body = writer.finish();
    let gzip = negotiate::accepts_gzip(header("accept-encoding"));
    if gzip {
        body = negotiate::gzip(&body);
    }
    let mut r = Response::new(body);
    let content_type = match names.as_param() {
        Some(e) => format!("{}; escaping={e}", format.content_type()),
        None => format.content_type().to_string(),
    };
    r.headers_mut()
        .insert("Content-Type", content_type.parse().unwrap());
    if gzip {
        r.headers_mut()
            .insert("Content-Encoding", "gzip".parse().unwrap());
    }
    r
}

/// Runs CPU work that grows with the store (an exposition of 1M series
/// takes about 0.4 s) on the blocking pool: run inline, it held up the
/// pushes queued on its worker for as long.
async fn off_worker<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// The path after the prefix, or None when the path is outside it.
fn strip_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(strip_prefix("/metrics", ""), Some("/metrics"));
        assert_eq!(strip_prefix("/v1/pg/metrics", "/v1/pg"), Some("/metrics"));
        assert_eq!(strip_prefix("/v1/pgx/metrics", "/v1/pg"), None);
        assert_eq!(strip_prefix("/metrics", "/v1/pg"), None);
    }
}
