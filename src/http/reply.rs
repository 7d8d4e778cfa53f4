//! Building replies: plain text, JSON, and the JSON error body of
//! [`ApiError`], with the headers each needs (`Allow` on a 405,
//! `Retry-After` when the error names one).

use super::error::{ApiError, ErrorCode};
use warp::http::{Method, Response, StatusCode};

/// Every reply is built whole in memory before it is sent.
pub type Reply = Response<Vec<u8>>;

/// An empty reply with `status`.
pub fn status_reply(status: StatusCode) -> Reply {
    let mut r = Response::new(Vec::new());
    *r.status_mut() = status;
    r
}

pub fn text_reply(status: StatusCode, text: &str) -> Reply {
    let mut r = Response::new(text.as_bytes().to_vec());
    *r.status_mut() = status;
    r
}

pub fn json_reply(v: &serde_json::Value) -> Reply {
    let mut r = Response::new(v.to_string().into_bytes());
    r.headers_mut()
        .insert("Content-Type", "application/json".parse().unwrap());
    r
}

/// `reply()` for GET (and HEAD), a 405 for any other method.
pub fn only_get(method: &Method, reply: impl FnOnce() -> Reply) -> Reply {
    if method == Method::GET || method == Method::HEAD {
        reply()
    } else {
        method_not_allowed(method, "GET")
    }
}

pub fn not_found(path: &str) -> Reply {
    error_reply(&ApiError::new(
        ErrorCode::NotFound,
        format!("no route for path {path:?}"),
    ))
}

/// A 405 that lists the methods the path takes in `Allow`; to `OPTIONS`,
/// a 200 with the same `Allow` and no body, as the Pushgateway's router
/// answers. `allowed` is a comma-separated list of methods; `Allow` adds
/// `OPTIONS` and sorts them, as Go's `httprouter` does.
pub fn method_not_allowed(method: &Method, allowed: &str) -> Reply {
    let mut methods: Vec<&str> = allowed.split(',').map(str::trim).collect();
    methods.push("OPTIONS");
    methods.sort_unstable();
    methods.dedup();
    let allow = methods.join(", ");
    let mut r = if method == Method::OPTIONS {
        let mut r = Response::new(Vec::new());
        *r.status_mut() = StatusCode::OK;
        r
    } else {
        error_reply(&ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!("method {method} is not allowed here; use {allowed}"),
        ))
    };
    r.headers_mut()
        .insert("Allow", allow.parse().expect("method names"));
    r
}

pub fn error_reply(e: &ApiError) -> Reply {
    let mut r = Response::new(e.json_body().into_bytes());
    *r.status_mut() = StatusCode::from_u16(e.code.status()).expect("valid status");
    r.headers_mut()
        .insert("Content-Type", "application/json".parse().unwrap());
    if let Some(secs) = e.retry_after_secs {
        r.headers_mut().insert("Retry-After", secs.into());
    }
    r
}
