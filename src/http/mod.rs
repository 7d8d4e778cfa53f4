//! The HTTP server's plumbing, and nothing of what it serves: it accepts
//! connections ([`server`], with TLS from [`tls`]), hands each request to
//! a [`Service`] as a [`Request`] (its body still a stream, so that a
//! service can refuse a push before reading it), and sends the [`Reply`]
//! back. Errors become JSON replies in [`reply`]; bodies are read within
//! limits in [`body`]; credentials are checked in [`auth`] and request
//! rates in [`rate_limit`], for whichever route classes the service has.
//!
//! Routing is the service's: the Pushgateway API lives in
//! `crate::pushgateway`, which builds on this module and is never imported
//! by it.

pub mod auth;
pub mod body;
pub mod error;
pub mod file_stamp;
pub mod inflight;
pub mod rate_limit;
pub mod reply;
pub mod server;
#[cfg(feature = "net")]
pub mod tls;

/// Without the `net` feature there is no TLS: the agent refuses to start
/// a listener that asks for it, so this type has no values.
#[cfg(not(feature = "net"))]
pub mod tls {
    pub enum TlsReloader {}

    impl TlsReloader {
        pub fn watch(self: &std::sync::Arc<Self>) -> tokio::task::JoinHandle<()> {
            match **self {}
        }
    }
}

use bytes::Bytes;
use futures_util::Stream;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use warp::http::{HeaderMap, Method};

pub use reply::Reply;
pub use server::{serve, ConnLimits, Listener};

/// Why a request body stopped short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The connection failed or the client sent a malformed body.
    Read(String),
    /// The body did not arrive within `read_timeout`.
    TimedOut,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Read(e) => f.write_str(e),
            BodyError::TimedOut => f.write_str("the body did not arrive within read_timeout"),
        }
    }
}

/// A request body as it arrives, chunk by chunk.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, BodyError>> + Send>>;

/// One request, as a [`Service`] gets it.
pub struct Request {
    pub method: Method,
    /// The path as sent, not yet percent-decoded (see [`percent_decode`]).
    pub raw_path: String,
    /// The query string as sent, without its `?`; empty without one.
    pub query: String,
    pub headers: HeaderMap,
    pub body: BodyStream,
    /// The connection's peer; None on the Unix socket.
    pub peer: Option<SocketAddr>,
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
