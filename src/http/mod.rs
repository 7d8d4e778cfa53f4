//! The HTTP server's plumbing, and nothing of what it serves: it accepts
//! connections, hands each request to a [`Service`] as a [`Request`] (its
//! body still a stream, so that a service can refuse a push before reading
//! it), and sends the [`Reply`] back. Errors become JSON replies in
//! [`reply`]; bodies are read within limits in [`body`].
//!
//! Routing is the service's: the Pushgateway API lives in
//! `crate::pushgateway`, which builds on this module and is never imported
//! by it.

pub mod body;
pub mod error;
pub mod reply;

use bytes::{Buf, Bytes};
use futures_util::{Stream, StreamExt};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use warp::http::{HeaderMap, Method};
use warp::Filter;

pub use reply::Reply;

/// A request body as it arrives, chunk by chunk.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, warp::Error>> + Send>>;

/// One request, as a [`Service`] gets it.
pub struct Request {
    pub method: Method,
    /// The path as sent, not yet percent-decoded (see [`percent_decode`]).
    pub raw_path: String,
    /// The query string as sent, without its `?`; empty without one.
    pub query: String,
    pub headers: HeaderMap,
    pub body: BodyStream,
}

impl Request {
    /// A header's value, when it is present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What the server serves: every request goes to `call`, whatever its
/// path or method.
pub trait Service: Send + Sync + 'static {
    fn call(&self, req: Request) -> impl Future<Output = Reply> + Send;
}

/// Serves `service` on `listener` until `shutdown` resolves, then stops
/// accepting and lets requests in flight finish.
pub async fn serve<S: Service>(
    listener: tokio::net::TcpListener,
    service: Arc<S>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let route = warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(
            move |method: Method,
                  path: warp::path::FullPath,
                  query: String,
                  headers: HeaderMap,
                  body| {
                let service = service.clone();
                let body: BodyStream = Box::pin(body_bytes(body));
                let req = Request {
                    method,
                    raw_path: path.as_str().to_string(),
                    query,
                    headers,
                    body,
                };
                async move { service.call(req).await }
            },
        );
    warp::serve(route)
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
}

/// warp's body chunks as `Bytes` (no copy: they are `Bytes` already).
fn body_bytes<B: Buf>(
    body: impl Stream<Item = Result<B, warp::Error>> + Send,
) -> impl Stream<Item = Result<Bytes, warp::Error>> + Send {
    body.map(|chunk| chunk.map(|mut b| b.copy_to_bytes(b.remaining())))
}

/// Decodes `%XX` escapes (a whole path, as Go's URL.Path does, or one
/// segment of it). None for a malformed escape (`%zz`, `%2`), which Go
/// refuses too, or a result that is not UTF-8.
pub fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    // The crate passes a malformed escape through as it is.
    let malformed = bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    if malformed {
        return None;
    }
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("/a%2Fb").unwrap(), "/a/b");
        assert_eq!(percent_decode("/a%20b+c").unwrap(), "/a b+c");
        assert_eq!(percent_decode("/%C3%A9").unwrap(), "/é");
        assert_eq!(percent_decode("/plain").unwrap(), "/plain");
        assert!(percent_decode("/%ZZ").is_none());
        assert!(percent_decode("/%zz").is_none());
        assert!(percent_decode("/%C3").is_none());
        assert!(percent_decode("/%2").is_none());
        assert!(percent_decode("/a%").is_none());
    }
}
