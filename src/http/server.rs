//! The connection side of the server: listeners (TCP, optionally TLS, and
//! a Unix socket), the connection limit and the timeouts, over hyper's
//! HTTP/1.1. warp is not in this path: routing is the service's.
//!
//! Contract:
//! - At most `max_connections` connections are held at once, over all
//!   listeners; past it, accepting waits, and new connections queue in
//!   the kernel's backlog. A failed accept (out of file descriptors) is
//!   retried after a pause, never in a busy loop.
//! - Each connection is in one phase: waiting for a request's headers
//!   (`read_header_timeout` from the first byte, or from accept or the
//!   TLS handshake's start), inside a request (its body must arrive within
//!   `read_timeout` of the headers, else 408 and close), or idle between
//!   requests (`idle_timeout`; writing a reply counts as activity). A
//!   connection past its phase's deadline is dropped.
//! - Each request carries its peer address (None on the Unix socket) in
//!   [`Request::peer`], as warp's `addr::remote` did.
//! - On shutdown, listeners stop accepting, idle connections close, and
//!   requests in flight finish before `serve` returns.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use super::tls::TlsReloader;
use super::{BodyError, BodyStream, Request, Service};
use crate::logging::LogGate;

/// How long accepting pauses after it failed (EMFILE and the like).
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// The connection options of `[http_api]`.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    pub read_header_timeout: Duration,
    pub read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// A socket the server accepts on.
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// Serves `service` on `listeners` until `shutdown` resolves; `tls`, when
/// given, wraps every TCP connection (the Unix socket stays plain: its
/// file mode is its access control).
pub async fn serve<S: Service>(
    listeners: Vec<Listener>,
    tls: Option<Arc<TlsReloader>>,
    limits: ConnLimits,
    service: Arc<S>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let limits = Arc::new(limits);
    let watcher = tls.as_ref().map(|t| t.watch());
    let mut accepting = Vec::new();
    for listener in listeners {
        let acceptor = Acceptor {
            tls: tls.clone(),
            limits: limits.clone(),
            slots: slots.clone(),
            stop: stop_rx.clone(),
        };
        accepting.push(tokio::spawn(acceptor.run(listener, service.clone())));
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    for task in accepting {
        let _ = task.await;
    }
    if let Some(w) = watcher {
        w.abort();
    }
    // Every connection holds a slot until it ends: all slots back means
    // every request in flight has finished.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// What each accept loop shares.
struct Acceptor {
    tls: Option<Arc<TlsReloader>>,
    limits: Arc<ConnLimits>,
    slots: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
}

impl Acceptor {
    async fn run<S: Service>(mut self, listener: Listener, service: Arc<S>) {
        let failed: LogGate<1> = LogGate::new(Duration::from_secs(60));
        loop {
            let slot = tokio::select! {
                slot = self.slots.clone().acquire_owned() => slot.expect("never closed"),
                _ = self.stop.changed() => return,
            };
            let accepted = tokio::select! {
                a = accept(&listener) => a,
                _ = self.stop.changed() => return,
            };
            let (stream, peer) = match accepted {
                Ok(s) => s,
                Err(e) => {
                    if let Some(n) = failed.pass(0, 1) {
                        tracing::error!("accepting a connection failed ({n} times): {e}");
                    }
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                    continue;
                }
            };
            let conn = Connection {
                limits: self.limits.clone(),
                stop: self.stop.clone(),
                peer,
            };
            let tls = match stream {
                Stream::Tcp(_) => self.tls.clone(),
                Stream::Unix(_) => None,
            };
            let service = service.clone();
            tokio::spawn(async move {
                conn.run(stream, tls, service).await;
                drop(slot);
            });
        }
    }
}

/// An accepted socket.
enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> std::io::Result<(Stream, Option<SocketAddr>)> {
    match listener {
        Listener::Tcp(l) => {
            let (s, addr) = l.accept().await?;
            let _ = s.set_nodelay(true);
            Ok((Stream::Tcp(s), Some(addr)))
        }
        Listener::Unix(l) => Ok((Stream::Unix(l.accept().await?.0), None)),
    }
}

/// One connection's settings.
struct Connection {
    limits: Arc<ConnLimits>,
    stop: watch::Receiver<bool>,
    peer: Option<SocketAddr>,
}

impl Connection {
    async fn run<S: Service>(self, stream: Stream, tls: Option<Arc<TlsReloader>>, service: Arc<S>) {
        let clock = Arc::new(Clock::new());
        match (stream, tls) {
            #[cfg(feature = "net")]
            (Stream::Tcp(s), Some(tls)) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
                let handshake = tokio::time::timeout(
                    self.limits.read_header_timeout,
                    acceptor.accept(Watched::new(s, clock.clone())),
                );
                match handshake.await {
                    Ok(Ok(s)) => self.serve_io(s, clock, service).await,
                    // A failed or slow handshake is the client's problem.
                    Ok(Err(e)) => tracing::debug!(peer = ?self.peer, "TLS handshake failed: {e}"),
                    Err(_) => tracing::debug!(peer = ?self.peer, "TLS handshake timed out"),
                }
            }
            #[cfg(not(feature = "net"))]
            (Stream::Tcp(_), Some(tls)) => match *tls {},
            (Stream::Tcp(s), None) => {
                self.serve_io(Watched::new(s, clock.clone()), clock, service)
                    .await
            }
            (Stream::Unix(s), _) => {
                self.serve_io(Watched::new(s, clock.clone()), clock, service)
                    .await
            }
        }
    }

    async fn serve_io<S, IO>(mut self, io: IO, clock: Arc<Clock>, service: Arc<S>)
    where
        S: Service,
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let peer = self.peer;
        let read_timeout = self.limits.read_timeout;
        let clock2 = clock.clone();
        let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let service = service.clone();
            let clock = clock2.clone();
            clock.set(Phase::Request);
            async move {
                let deadline = Instant::now() + read_timeout;
                let reply = service.call(request(req, peer, deadline)).await;
                let (mut parts, body) = reply.into_parts();
                if parts.status == hyper::StatusCode::REQUEST_TIMEOUT {
                    // Its body is still unread: the connection cannot go on.
                    parts
                        .headers
                        .insert(hyper::header::CONNECTION, "close".parse().unwrap());
                }
                clock.set(Phase::Idle);
                Ok::<_, std::convert::Infallible>(hyper::Response::from_parts(
                    parts,
                    Full::new(Bytes::from(body)),
                ))
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            // The clock below times headers, from their first byte.
            .header_read_timeout(None)
            .serve_connection(TokioIo::new(io), svc);
        let mut conn = std::pin::pin!(conn);
        let mut stopping = *self.stop.borrow();
        if stopping {
            conn.as_mut().graceful_shutdown();
        }
        loop {
            let deadline = clock.deadline(&self.limits);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = tokio::time::sleep_until(deadline) => {
                    if clock.deadline(&self.limits) <= Instant::now() {
                        tracing::debug!(peer = ?peer, phase = ?clock.phase(), "connection timed out");
                        return;
                    }
                }
                _ = self.stop.changed(), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// A hyper request as a [`Request`], its body bounded by `deadline`.
fn request(req: hyper::Request<Incoming>, peer: Option<SocketAddr>, deadline: Instant) -> Request {
    let (parts, body) = req.into_parts();
    let raw_path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or_default().to_string();
    let body: BodyStream = Box::pin(futures_util::stream::unfold(
        Some(body),
        move |body| async move {
            let mut body = body?;
            loop {
                match tokio::time::timeout_at(deadline, body.frame()).await {
                    Err(_) => return Some((Err(BodyError::TimedOut), None)),
                    Ok(None) => return None,
                    Ok(Some(Err(e))) => return Some((Err(BodyError::Read(e.to_string())), None)),
                    Ok(Some(Ok(frame))) => {
                        if let Ok(data) = frame.into_data() {
                            return Some((Ok(data), Some(body)));
                        }
                        // Trailers: nothing the API reads.
                    }
                }
            }
        },
    ));
    Request {
        method: parts.method,
        raw_path,
        query,
        headers: parts.headers,
        body,
        peer,
    }
}

/// What a connection is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A request's headers (from accept, or from the first byte after idle).
    Head = 0,
    /// The service is handling a request; its body has its own deadline.
    Request = 1,
    /// Between requests, or writing a reply.
    Idle = 2,
}

/// A connection's phase and when it began (or last made progress), shared
/// by its I/O, its service and its watchdog.
struct Clock {
    start: Instant,
    phase: AtomicU8,
    /// Milliseconds from `start`.
    since: AtomicU64,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            start: Instant::now(),
            phase: AtomicU8::new(Phase::Head as u8),
            since: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            0 => Phase::Head,
            1 => Phase::Request,
            _ => Phase::Idle,
        }
    }

    fn set(&self, phase: Phase) {
        self.since.store(self.now_ms(), Ordering::Relaxed);
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    /// Bytes read: the first byte after idle starts a request's headers.
    fn on_read(&self) {
        if self.phase() == Phase::Idle {
            self.set(Phase::Head);
        }
    }

    /// Bytes written: a reply going out is progress.
    fn on_write(&self) {
        if self.phase() == Phase::Idle {
            self.since.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// When the current phase runs out. Inside a request the body's own
    /// deadline rules, so the watchdog only looks again later.
    fn deadline(&self, limits: &ConnLimits) -> Instant {
        let since = self.start + Duration::from_millis(self.since.load(Ordering::Relaxed));
        match self.phase() {
            Phase::Head => since + limits.read_header_timeout,
            Phase::Idle => since + limits.idle_timeout,
            Phase::Request => Instant::now() + limits.idle_timeout,
        }
    }
}

/// An I/O stream that tells its connection's clock about progress.
struct Watched<IO> {
    io: IO,
    clock: Arc<Clock>,
}

impl<IO> Watched<IO> {
    fn new(io: IO, clock: Arc<Clock>) -> Self {
        Watched { io, clock }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.clock.on_read();
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.on_write();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.on_write();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
