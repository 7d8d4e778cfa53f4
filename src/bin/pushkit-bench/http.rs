//! A minimal HTTP/1.1 client over one keep-alive connection (TCP, or TLS
//! through rustls), and a discarding HTTP server for pushkit's sink. Just
//! enough of the protocol for loopback benchmarking: Content-Length and
//! chunked bodies, no redirects, no pipelining.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// Largest response head (status line and headers) accepted.
const MAX_HEAD: usize = 64 * 1024;

pub struct Response {
    pub status: u16,
    pub content_encoding: Option<String>,
    /// The body, or with [`Conn::request_tail`] only its end.
    pub body: Vec<u8>,
    /// The whole body's length.
    pub len: usize,
}

/// Where a response body goes: kept whole, or only its last `keep` bytes
/// (read through a small buffer, so a 100 MB body costs no 100 MB of
/// memory traffic beyond the kernel's copy).
struct Body {
    bytes: Vec<u8>,
    keep: Option<usize>,
    len: usize,
}

impl Body {
    fn push(&mut self, chunk: &[u8]) {
        self.len += chunk.len();
        self.bytes.extend_from_slice(chunk);
        if let Some(keep) = self.keep {
            // Trimmed at twice the size kept: each byte moves once at most.
            if self.bytes.len() > 2 * keep.max(1 << 16) {
                let cut = self.bytes.len() - keep;
                self.bytes.drain(..cut);
            }
        }
    }

    fn finish(mut self) -> (Vec<u8>, usize) {
        if let Some(keep) = self.keep {
            let cut = self.bytes.len().saturating_sub(keep);
            self.bytes.drain(..cut);
        }
        (self.bytes, self.len)
    }
}

/// What a client needs to speak TLS to the server under test: the
/// benchmark's own CA as the only root, and the name its certificate is for.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl TlsClient {
    /// Trusts the PEM certificates in `ca` only; expects `name` in the
    /// server's certificate.
    pub fn new(ca: &Path, name: &str) -> Result<TlsClient, String> {
        // The provider the agent itself uses, so both ends run the same code.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(ca)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{}: {e}", ca.display()))?;
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", ca.display()))?;
        }
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS versions: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(name.to_string())
            .map_err(|e| format!("server name {name:?}: {e}"))?;
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
            name,
        })
    }
}

/// A connection's byte stream: plain TCP or TLS over TCP.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// One keep-alive connection.
pub struct Conn {
    addr: SocketAddr,
    tls: Option<TlsClient>,
    reader: BufReader<Stream>,
    out: Vec<u8>,
    line: Vec<u8>,
    /// The server said `Connection: close`: reconnect before the next request.
    closed: bool,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> io::Result<Conn> {
        Conn::connect_with(addr, None).await
    }

    /// Connects, with the TLS handshake done when `tls` is given.
    pub async fn connect_with(addr: SocketAddr, tls: Option<&TlsClient>) -> io::Result<Conn> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let stream = match tls {
            None => Stream::Plain(tcp),
            Some(t) => Stream::Tls(Box::new(t.connector.connect(t.name.clone(), tcp).await?)),
        };
        Ok(Conn {
            addr,
            tls: tls.cloned(),
            reader: BufReader::with_capacity(64 * 1024, stream),
            out: Vec::with_capacity(16 * 1024),
            line: Vec::with_capacity(256),
            closed: false,
        })
    }

    /// The TLS version and cipher suite negotiated, for TLS connections.
    pub fn tls_params(&self) -> Option<String> {
        match self.reader.get_ref() {
            Stream::Plain(_) => None,
            Stream::Tls(s) => {
                let c = s.get_ref().1;
                Some(format!(
                    "{:?}, {:?}",
                    c.protocol_version()?,
                    c.negotiated_cipher_suite()?.suite()
                ))
            }
        }
    }

    /// Sends one request and reads the whole response.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        self.send(method, path, headers, body).await?;
        self.read_response(method == "HEAD", None).await
    }

    /// As [`Conn::request`], keeping only the last `keep` bytes of the
    /// response body.
    pub async fn request_tail(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        keep: usize,
    ) -> io::Result<Response> {
        self.send(method, path, headers, b"").await?;
        self.read_response(method == "HEAD", Some(keep)).await
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<()> {
        if self.closed {
            *self = Conn::connect_with(self.addr, self.tls.as_ref()).await?;
        }
        self.out.clear();
        self.out.extend_from_slice(method.as_bytes());
        self.out.push(b' ');
        self.out.extend_from_slice(path.as_bytes());
        self.out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        self.out.extend_from_slice(self.addr.to_string().as_bytes());
        self.out.extend_from_slice(b"\r\n");
        for (k, v) in headers {
            self.out.extend_from_slice(k.as_bytes());
            self.out.extend_from_slice(b": ");
            self.out.extend_from_slice(v.as_bytes());
            self.out.extend_from_slice(b"\r\n");
        }
        if !body.is_empty() || method == "PUT" || method == "POST" {
            self.out.extend_from_slice(b"Content-Length: ");
            self.out
                .extend_from_slice(body.len().to_string().as_bytes());
            self.out.extend_from_slice(b"\r\n");
        }
        self.out.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(body);
        let stream = self.reader.get_mut();
        stream.write_all(&self.out).await?;
        // TLS may keep the last record in rustls until flushed.
        stream.flush().await
    }

    async fn read_line(&mut self) -> io::Result<&[u8]> {
        self.line.clear();
        let n = (&mut self.reader)
            .take(MAX_HEAD as u64)
            .read_until(b'\n', &mut self.line)
            .await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed by the server",
            ));
        }
        if self.line.last() != Some(&b'\n') {
            return Err(bad("response line too long"));
        }
        let mut end = self.line.len() - 1;
        if end > 0 && self.line[end - 1] == b'\r' {
            end -= 1;
        }
        Ok(&self.line[..end])
    }

    async fn read_response(
        &mut self,
        head_only: bool,
        keep: Option<usize>,
    ) -> io::Result<Response> {
        let status_line = self.read_line().await?;
        let status = std::str::from_utf8(status_line)
            .ok()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| bad("bad status line"))?;
        let mut length: Option<usize> = None;
        let mut chunked = false;
        let mut content_encoding = None;
        let mut close = false;
        loop {
            let line = self.read_line().await?;
            if line.is_empty() {
                break;
            }
            let line = String::from_utf8_lossy(line);
            let Some((name, value)) = line.split_once(':') else {
                return Err(bad("bad header line"));
            };
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => {
                    length = Some(value.parse().map_err(|_| bad("bad Content-Length"))?)
                }
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "content-encoding" => content_encoding = Some(value.to_string()),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        let mut body = Body {
            bytes: Vec::new(),
            keep,
            len: 0,
        };
        let no_body = head_only || status == 204 || status == 304 || (100..200).contains(&status);
        if no_body {
        } else if chunked {
            loop {
                let size_line = self.read_line().await?;
                let size = std::str::from_utf8(size_line)
                    .ok()
                    .map(|s| s.split(';').next().unwrap_or("").trim())
                    .and_then(|s| usize::from_str_radix(s, 16).ok())
                    .ok_or_else(|| bad("bad chunk size"))?;
                if size == 0 {
                    // Trailers, then the empty line.
                    while !self.read_line().await?.is_empty() {}
                    break;
                }
                self.read_into(size, &mut body).await?;
                if !self.read_line().await?.is_empty() {
                    return Err(bad("chunk not followed by CRLF"));
                }
            }
        } else if let Some(n) = length {
            self.read_into(n, &mut body).await?;
        } else {
            // Delimited by the end of the connection.
            let mut rest = Vec::new();
            self.reader.read_to_end(&mut rest).await?;
            body.push(&rest);
            close = true;
        }
        self.closed = close;
        let (body, len) = body.finish();
        Ok(Response {
            status,
            content_encoding,
            body,
            len,
        })
    }

    /// Reads `n` body bytes into `body`: whole in one read when it keeps
    /// everything, else through a 256 KiB buffer.
    async fn read_into(&mut self, mut n: usize, body: &mut Body) -> io::Result<()> {
        if body.keep.is_none() {
            let start = body.bytes.len();
            body.bytes.resize(start + n, 0);
            body.len += n;
            return self
                .reader
                .read_exact(&mut body.bytes[start..])
                .await
                .map(drop);
        }
        let mut buf = vec![0u8; n.min(256 * 1024)];
        while n > 0 {
            let take = n.min(buf.len());
            self.reader.read_exact(&mut buf[..take]).await?;
            body.push(&buf[..take]);
            n -= take;
        }
        Ok(())
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// A one-shot request on a fresh connection.
pub async fn once(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    once_with(addr, None, method, path, headers, body).await
}

/// [`once`], over TLS when `tls` is given.
pub async fn once_with(
    addr: SocketAddr,
    tls: Option<&TlsClient>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let mut conn = Conn::connect_with(addr, tls).await?;
    conn.request(method, path, headers, body).await
}

/// What the discarding server has received.
#[derive(Default)]
pub struct DiscardStats {
    pub requests: AtomicU64,
    pub body_bytes: AtomicU64,
    /// Newlines in bodies that were not compressed: line-protocol points.
    pub lines: AtomicU64,
}

/// Serves on `listener` until the process ends: reads every request whole
/// and answers 204, keeping counts only. Runs on its own runtime.
pub async fn serve_discard(listener: TcpListener, stats: Arc<DiscardStats>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let stats = stats.clone();
        tokio::spawn(async move {
            let _ = discard_connection(stream, &stats).await;
        });
    }
}

async fn discard_connection(stream: TcpStream, stats: &DiscardStats) -> io::Result<()> {
    let mut reader = BufReader::with_capacity(256 * 1024, stream);
    let mut line = Vec::with_capacity(256);
    let mut body = vec![0u8; 256 * 1024];
    loop {
        // Request line; a clean end of the connection ends the loop.
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let mut length = 0usize;
        let mut chunked = false;
        let mut compressed = false;
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line).await? == 0 {
                return Ok(());
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end();
            if text.is_empty() {
                break;
            }
            if let Some((name, value)) = text.split_once(':') {
                let value = value.trim();
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = value.parse().unwrap_or(0),
                    "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                    "content-encoding" => compressed = !value.eq_ignore_ascii_case("identity"),
                    _ => {}
                }
            }
        }
        let mut total = 0u64;
        let mut lines = 0u64;
        if chunked {
            loop {
                line.clear();
                reader.read_until(b'\n', &mut line).await?;
                let size = std::str::from_utf8(&line)
                    .ok()
                    .map(|s| s.trim().split(';').next().unwrap_or("").to_string())
                    .and_then(|s| usize::from_str_radix(&s, 16).ok())
                    .ok_or_else(|| bad("bad chunk size"))?;
                if size == 0 {
                    loop {
                        line.clear();
                        reader.read_until(b'\n', &mut line).await?;
                        if line == b"\r\n" || line == b"\n" || line.is_empty() {
                            break;
                        }
                    }
                    break;
                }
                let (g, nl) = read_counted(&mut reader, size, &mut body).await?;
                total += g;
                lines += nl;
                line.clear();
                reader.read_until(b'\n', &mut line).await?;
            }
        } else {
            let (g, nl) = read_counted(&mut reader, length, &mut body).await?;
            total += g;
            lines += nl;
        }
        stats.requests.fetch_add(1, Ordering::Relaxed);
        stats.body_bytes.fetch_add(total, Ordering::Relaxed);
        if !compressed {
            stats.lines.fetch_add(lines, Ordering::Relaxed);
        }
        reader
            .get_mut()
            .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
            .await?;
    }
}

/// Reads `n` body bytes into `buf` piece by piece; returns the bytes read
/// and the newlines among them.
async fn read_counted(
    reader: &mut BufReader<TcpStream>,
    mut n: usize,
    buf: &mut [u8],
) -> io::Result<(u64, u64)> {
    let mut got = 0u64;
    let mut newlines = 0u64;
    while n > 0 {
        let take = n.min(buf.len());
        reader.read_exact(&mut buf[..take]).await?;
        newlines += buf[..take].iter().filter(|&&b| b == b'\n').count() as u64;
        got += take as u64;
        n -= take;
    }
    Ok((got, newlines))
}
