//! The HTTP edge: one warp filter that reads the request, routes it by
//! hand (so that 404 and 405 are exact, which warp's rejection merging
//! makes hard) and turns stage errors into JSON replies.
//!
//! Routes, under the pushgateway input's prefix P:
//! - `PUT|POST|DELETE P/metrics/job/<job>{/<name>/<value>}` (and `job@base64`)
//! - `GET P/metrics`: the stored groups and the agent's own metrics, text
//!   or delimited protobuf, gzipped when the client allows it
//! - `GET P/api/v1/metrics`, `GET P/api/v1/status`: the Pushgateway's JSON API
//! - `PUT P/api/v1/admin/wipe` (with `enable_admin_api`)
//! - `PUT|POST P/-/quit` (with `enable_lifecycle`)
//! - `GET P/-/healthy`, `GET P/-/ready` (503 while the store loads)

pub mod error;

use crate::expfmt::expose::{self, ExpositionWriter};
use crate::metrics::{self, Metrics};
use crate::pushgateway::handler::{PushMethod, PushRequest, PushgatewayInput};
use crate::store::Store;
use bytes::Buf;
use error::{ApiError, ErrorCode};
use futures_util::{Stream, StreamExt};
use std::sync::Arc;
use std::time::Instant;
use warp::http::{HeaderMap, Method, Response, StatusCode};
use warp::Filter;

/// About what one series takes in an exposition (the benchmark's take 98
/// bytes); capacity beyond what is written is never touched.
const BYTES_PER_SERIES: usize = 128;

pub struct Api {
    /// Normalised: "" or "/a/b".
    pub prefix: String,
    pub pushgateway: Option<Arc<PushgatewayInput>>,
    pub metrics: Arc<Metrics>,
    pub max_body_size: u64,
    /// The pushgateway input's group store, when it has one.
    pub store: Option<Arc<Store>>,
    pub enable_admin_api: bool,
    pub enable_lifecycle: bool,
    /// Notified by `P/-/quit`; the agent shuts down as on SIGTERM.
    pub quit: Arc<tokio::sync::Notify>,
    /// `data` of `GET P/api/v1/status`.
    pub status: serde_json::Value,
}

/// Serves until `shutdown` resolves, then stops accepting and lets
/// requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    api: Arc<Api>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let route = warp::method()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(
            move |method: Method, path: warp::path::FullPath, headers: HeaderMap, body| {
                let api = api.clone();
                async move { api.handle(method, path.as_str(), &headers, body).await }
            },
        );
    warp::serve(route)
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
}

type Reply = Response<Vec<u8>>;

impl Api {
    async fn handle<S, B>(
        self: &Arc<Self>,
        method: Method,
        raw_path: &str,
        headers: &HeaderMap,
        body: S,
    ) -> Reply
    where
        S: Stream<Item = Result<B, warp::Error>> + Unpin,
        B: Buf,
    {
        let started = Instant::now();
        let path = match percent_decode(raw_path) {
            Some(p) => p,
            None => {
                return error_reply(&ApiError::new(
                    ErrorCode::InvalidPath,
                    "the URL path does not percent-decode to UTF-8",
                ))
            }
        };
        let Some(rest) = strip_prefix(&path, &self.prefix) else {
            return not_found(&path);
        };
        if let Some(job_path) = rest
            .strip_prefix("/metrics/job@base64")
            .map(|p| (p, true))
            .or_else(|| rest.strip_prefix("/metrics/job").map(|p| (p, false)))
            .filter(|(p, _)| p.is_empty() || p.starts_with('/'))
        {
            if let Some(pg) = &self.pushgateway {
                let reply = self.push(pg, &method, job_path, headers, body).await;
                let code = reply.status().as_u16().to_string();
                let m = method.as_str();
                self.metrics.add(metrics::PUSHES, &[m, &code], 1.0);
                self.metrics.observe(
                    metrics::PUSH_DURATION,
                    &[m],
                    started.elapsed().as_secs_f64(),
                );
                return reply;
            }
        }
        match rest {
            "/-/healthy" => only_get(&method, || text_reply(StatusCode::OK, "OK\n")),
            "/-/ready" => only_get(&method, || {
                if self.store.as_ref().is_none_or(|s| s.is_ready()) {
                    text_reply(StatusCode::OK, "OK\n")
                } else {
                    text_reply(StatusCode::SERVICE_UNAVAILABLE, "store is loading\n")
                }
            }),
            "/metrics" | "/api/v1/metrics" if method != Method::GET && method != Method::HEAD => {
                method_not_allowed(&method, "GET")
            }
            "/metrics" => {
                let (api, headers) = (self.clone(), headers.clone());
                off_worker(move || api.exposition(&headers)).await
            }
            "/api/v1/metrics" => {
                let data = match self.store.clone() {
                    Some(store) => off_worker(move || store.api_metrics()).await,
                    None => serde_json::Value::Array(Vec::new()),
                };
                json_reply(&serde_json::json!({"status": "success", "data": data}))
            }
            "/api/v1/status" => only_get(&method, || {
                json_reply(&serde_json::json!({"status": "success", "data": self.status}))
            }),
            "/api/v1/admin/wipe" if self.enable_admin_api => {
                if method != Method::PUT {
                    return method_not_allowed(&method, "PUT");
                }
                self.wipe().await
            }
            "/-/quit" => {
                if method != Method::PUT && method != Method::POST {
                    return method_not_allowed(&method, "PUT, POST");
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

    /// `GET P/metrics`, in the format and encoding the client accepts.
    fn exposition(&self, headers: &HeaderMap) -> Reply {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let format = expose::negotiate(header("accept"));
        let own = crate::expfmt::text::parse_text(self.metrics.render().as_bytes())
            .expect("the agent's own metrics are valid text format");
        // Sized for the store up front: growing a buffer of a million
        // series by doubling copies it whole several times over.
        let capacity = self.store.as_ref().map_or(0, |s| s.series_count()) * BYTES_PER_SERIES;
        let mut writer = ExpositionWriter::with_capacity(format, capacity);
        match &self.store {
            Some(store) => store.expose(&mut writer, own),
            None => crate::store::exposition::expose_own(&mut writer, own),
        }
        let mut body = writer.finish();
        let gzip = expose::accepts_gzip(header("accept-encoding"));
        if gzip {
            body = expose::gzip(&body);
        }
        let mut r = Response::new(body);
        r.headers_mut()
            .insert("Content-Type", format.content_type().parse().unwrap());
        if gzip {
            r.headers_mut()
                .insert("Content-Encoding", "gzip".parse().unwrap());
        }
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
        let mut r = Response::new(Vec::new());
        *r.status_mut() = StatusCode::ACCEPTED;
        r
    }

    async fn push<S, B>(
        &self,
        pg: &PushgatewayInput,
        method: &Method,
        (job_path, job_base64): (&str, bool),
        headers: &HeaderMap,
        body: S,
    ) -> Reply
    where
        S: Stream<Item = Result<B, warp::Error>> + Unpin,
        B: Buf,
    {
        let Some(push_method) = PushMethod::from_http(method.as_str()) else {
            return method_not_allowed(method, "PUT, POST, DELETE");
        };
        let received_ns = crate::model::point::now_ns();
        let declared = declared_length(headers);
        let (group, room) = match pg
            .before_body(push_method, job_path, job_base64, declared)
            .await
        {
            Ok(admitted) => admitted,
            Err(e) => {
                // Read what the client sends anyway (up to the limit):
                // replying before the body is read makes hyper close the
                // connection, and a close with unread data resets it,
                // which can lose the reply.
                if declared.is_none_or(|n| n <= self.max_body_size) {
                    discard_body(body, self.max_body_size).await;
                }
                return error_reply(&e);
            }
        };
        let body = if push_method == PushMethod::Delete {
            Vec::new()
        } else {
            match read_body(declared, body, self.max_body_size).await {
                Ok(b) => b,
                Err(e) => return error_reply(&e),
            }
        };
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let req = PushRequest {
            method: push_method,
            group,
            room,
            content_type: header("content-type"),
            content_encoding: header("content-encoding"),
            body: &body,
            received_ns,
        };
        match pg.handle(req).await {
            Ok(status) => {
                let mut r = Response::new(Vec::new());
                *r.status_mut() = StatusCode::from_u16(status).expect("200 or 202");
                r
            }
            Err(e) => {
                tracing::debug!(method = %method, path = job_path, "push rejected: {e}");
                error_reply(&e)
            }
        }
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Reads the body, refusing it as soon as it is known to exceed `max`:
/// from its `declared` length before reading, or while streaming.
async fn read_body<S, B>(declared: Option<u64>, mut body: S, max: u64) -> Result<Vec<u8>, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let too_large = || {
        ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("request body exceeds max_body_size ({max} bytes)"),
        )
    };
    if declared.is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let mut buf = Vec::with_capacity(declared.unwrap_or(0).min(max) as usize);
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| {
            ApiError::new(
                ErrorCode::CorruptBody,
                format!("reading the request body failed: {e}"),
            )
        })?;
        if (buf.len() + chunk.remaining()) as u64 > max {
            return Err(too_large());
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            buf.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(buf)
}

/// Reads a body to its end without keeping it, giving up past `max` bytes.
async fn discard_body<S, B>(mut body: S, max: u64)
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let mut read = 0u64;
    while let Some(Ok(chunk)) = body.next().await {
        read += chunk.remaining() as u64;
        if read > max {
            break;
        }
    }
}

/// The path after the prefix, or None when the path is outside it.
fn strip_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// Decodes `%XX` escapes as Go's URL.Path does before routing, so that
/// `%2F` separates path segments as it does in the Pushgateway.
pub fn percent_decode(raw: &str) -> Option<String> {
    if !raw.contains('%') {
        return Some(raw.to_string());
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let s = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(s, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Runs CPU work that grows with the store (an exposition of 1M series
/// takes about 0.4 s) on the blocking pool: run inline, it held up the
/// pushes queued on its worker for as long.
async fn off_worker<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

fn only_get(method: &Method, reply: impl FnOnce() -> Reply) -> Reply {
    if method == Method::GET || method == Method::HEAD {
        reply()
    } else {
        method_not_allowed(method, "GET")
    }
}

fn text_reply(status: StatusCode, text: &str) -> Reply {
    let mut r = Response::new(text.as_bytes().to_vec());
    *r.status_mut() = status;
    r
}

fn json_reply(v: &serde_json::Value) -> Reply {
    let mut r = Response::new(v.to_string().into_bytes());
    r.headers_mut()
        .insert("Content-Type", "application/json".parse().unwrap());
    r
}

fn not_found(path: &str) -> Reply {
    error_reply(&ApiError::new(
        ErrorCode::NotFound,
        format!("no route for path {path:?}"),
    ))
}

fn method_not_allowed(method: &Method, allowed: &str) -> Reply {
    let mut r = error_reply(&ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("method {method} is not allowed here; use {allowed}"),
    ));
    r.headers_mut()
        .insert("Allow", allowed.parse().expect("static header value"));
    r
}

pub fn error_reply(e: &ApiError) -> Reply {
    let mut r = Response::new(e.json_body().into_bytes());
    *r.status_mut() = StatusCode::from_u16(e.code.status()).expect("valid status");
    r.headers_mut()
        .insert("Content-Type", "application/json".parse().unwrap());
    if e.code == ErrorCode::QueueFull || e.code == ErrorCode::StoreLoading {
        r.headers_mut().insert(
            "Retry-After",
            crate::sink::QUEUE_FULL_RETRY_AFTER_SECS
                .to_string()
                .parse()
                .unwrap(),
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("/a%2Fb").unwrap(), "/a/b");
        assert_eq!(percent_decode("/a%20b+c").unwrap(), "/a b+c");
        assert_eq!(percent_decode("/%C3%A9").unwrap(), "/é");
        assert!(percent_decode("/%ZZ").is_none());
        assert!(percent_decode("/%C3").is_none());
        assert!(percent_decode("/%2").is_none());
    }

    #[test]
    fn prefixes() {
        assert_eq!(strip_prefix("/metrics", ""), Some("/metrics"));
        assert_eq!(strip_prefix("/v1/pg/metrics", "/v1/pg"), Some("/metrics"));
        assert_eq!(strip_prefix("/v1/pgx/metrics", "/v1/pg"), None);
        assert_eq!(strip_prefix("/metrics", "/v1/pg"), None);
    }
}
