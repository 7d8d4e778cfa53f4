//! Shared harness for the integration tests: free loopback ports, a tiny
//! HTTP/1.1 client, bounded waiting, child processes killed on drop, and the
//! pushkit agent itself (conf dir in a temp dir, stdout lines collected);
//! in `peers`, the reference programs the peer tests compare with or
//! deliver to (Pushgateway, Prometheus, VictoriaMetrics).
//!
//! Everything talks to 127.0.0.1 only. Each test crate uses a different
//! subset of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tempfile::TempDir;

mod ca;
mod container;
mod native;
mod peers;
// Not every test crate runs a peer, nor pushes native histograms.
#[allow(unused_imports)]
pub use ca::*;
#[allow(unused_imports)]
pub use container::*;
#[allow(unused_imports)]
pub use native::*;
#[allow(unused_imports)]
pub use peers::*;

/// How long the agent gets to answer `/-/ready`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a test waits for points to come out of the agent.
pub const POINTS_TIMEOUT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// Ports, clocks, waiting

/// A loopback port that was free a moment ago: bind port 0, read the port the
/// kernel chose, close the socket.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

pub fn now_ns() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(d.as_nanos()).expect("time fits i64")
}

pub fn now_ms() -> i64 {
    now_ns() / 1_000_000
}

/// Calls `f` every `poll` until it returns `Some`, or `None` once `timeout`
/// has passed (after one last call).
pub fn poll_until<T>(
    timeout: Duration,
    poll: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return f();
        }
        thread::sleep(poll);
    }
}

/// Like [`poll_until`] with a 50 ms poll, panicking with `what` on timeout.
pub fn wait_for<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    poll_until(timeout, Duration::from_millis(50), f)
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

// ---------------------------------------------------------------------------
// HTTP client (HTTP/1.1, one request per connection, loopback only)

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request to `url` (`http://127.0.0.1:PORT/path?query`, already
/// percent-encoded) and reads the whole answer. Bodies sent chunked are
/// decoded.
pub fn http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("only http:// URLs: {url}"));
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    assert!(
        host == "127.0.0.1" || host == "localhost",
        "tests talk to loopback only, not {authority}"
    );
    let addr = authority
        .to_socket_addrs()?
        .find(|a| a.ip().is_loopback())
        .ok_or_else(|| std::io::Error::other(format!("no loopback address for {authority}")))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;

    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;

    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

pub fn get(url: &str) -> std::io::Result<Response> {
    http("GET", url, &[], &[])
}

fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let bad = |msg: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| bad("non-UTF-8 headers"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(&format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let rest = &raw[split + 4..];
    let chunked = resp
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    resp.body = if chunked {
        decode_chunked(rest).ok_or_else(|| bad("bad chunked body"))?
    } else if let Some(len) = resp.header("content-length") {
        let len: usize = len.parse().map_err(|_| bad("bad content-length"))?;
        rest.get(..len).ok_or_else(|| bad("short body"))?.to_vec()
    } else {
        rest.to_vec()
    };
    Ok(resp)
}

fn decode_chunked(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..eol]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Child processes

/// A child process that is killed (and reaped) on drop. When the drop happens
/// during a panic, the logs named in `logs` are printed to stderr.
pub struct ChildGuard {
    pub name: String,
    pub child: Child,
    pub logs: Vec<PathBuf>,
}

impl ChildGuard {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Panics (printing the logs) if the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited early with {status}\n{}",
                self.name,
                self.log_text()
            );
        }
    }

    /// Sends `signal` (as `kill` takes it: `-9`, `-TERM`) to the process;
    /// panics if `kill` fails.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().to_string();
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid}: {status}");
    }

    pub fn log_text(&self) -> String {
        let mut out = String::new();
        for path in &self.logs {
            let text = fs::read_to_string(path).unwrap_or_else(|e| format!("<unreadable: {e}>"));
            out.push_str(&format!(
                "----- {} {} -----\n{text}\n",
                self.name,
                path.display()
            ));
        }
        out
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("{}", self.log_text());
        }
    }
}

/// Spawns `cmd` with stdin closed and stdout/stderr appended to
/// `<dir>/<name>.log`.
pub fn spawn_logged(name: &str, mut cmd: Command, dir: &Path) -> ChildGuard {
    let log = dir.join(format!("{name}.log"));
    let out = File::create(&log).expect("create log file");
    let err = out.try_clone().expect("clone log file");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {name} ({cmd:?}): {e}"));
    ChildGuard {
        name: name.to_string(),
        child,
        logs: vec![log],
    }
}

/// Runs `cmd` to completion with a deadline; returns (status, stdout,
/// stderr). Panics if it is still running after `timeout` (after killing it).
pub fn run_bounded(
    what: &str,
    mut cmd: Command,
    timeout: Duration,
) -> (std::process::ExitStatus, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what} ({cmd:?}): {e}"));
    let stdout = read_all_in_thread(child.stdout.take().expect("stdout piped"));
    let stderr = read_all_in_thread(child.stderr.take().expect("stderr piped"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait().expect("try_wait") {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                let out = stdout.join().unwrap_or_default();
                let err = stderr.join().unwrap_or_default();
                panic!("{what} still running after {timeout:?}; killed\nstdout:\n{out}\nstderr:\n{err}");
            }
            None => thread::sleep(Duration::from_millis(20)),
        }
    };
    let out = stdout.join().unwrap_or_default();
    let err = stderr.join().unwrap_or_default();
    (status, out, err)
}

fn read_all_in_thread(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Runs the pushkit binary once, as `pushkit <args> --conf-dir DIR`, on a
/// fresh conf dir whose `pushkit.conf` is `conf`: for what `check` and a
/// start refuse, or print, before any agent runs.
pub fn run_pushkit_once(args: &[&str], conf: &str) -> std::process::Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let conf_dir = dir.path().join("conf.d");
    fs::create_dir(&conf_dir).expect("create conf dir");
    fs::write(conf_dir.join("pushkit.conf"), conf).expect("write conf");
    Command::new(env!("CARGO_BIN_EXE_pushkit"))
        .args(args)
        .arg("--conf-dir")
        .arg(&conf_dir)
        .output()
        .unwrap_or_else(|e| panic!("run pushkit: {e}"))
}

/// The repository root (where Cargo.toml is).
const GOPATH: &str = "/usr/share/gocode";
/// Builds samples/clients/go-pusher with Debian's client_golang, offline,
/// into `dir`.
pub fn build_go_pusher(dir: &Path) -> std::path::PathBuf {
    let client = Path::new(GOPATH).join("src/github.com/prometheus/client_golang/prometheus/push");
    assert!(
        client.is_dir(),
        "{} is missing: install golang-go and golang-github-prometheus-client-golang-dev (.ci/run does)",
        client.display()
    );
    let go = std::env::var_os("PUSHKIT_GO").unwrap_or_else(|| "go".into());
    let out = dir.join("pusher");
    let mut cmd = Command::new(&go);
    cmd.arg("build")
        .arg("-o")
        .arg(&out)
        .arg(repo_root().join("samples/clients/go-pusher/main.go"))
        .current_dir(dir)
        .env("GO111MODULE", "off")
        .env("GOPATH", GOPATH)
        .env("GOCACHE", dir.join("gocache"))
        .env("GOFLAGS", "")
        .env("GOPROXY", "off")
        .env("CGO_ENABLED", "0");
    let (status, stdout, stderr) = run_bounded("go build", cmd, Duration::from_secs(300));
    assert!(
        status.success(),
        "go build of the pusher failed ({status}; go = {go:?})\n{stdout}\n{stderr}"
    );
    out
}

/// The Python interpreter with prometheus_client: `PUSHKIT_PYTHON`, else
/// `.venv/bin/python3` in the repository root (`.ci/run` creates it).
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("PUSHKIT_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = repo_root().join(".venv/bin/python3");
    if venv.exists() {
        return venv;
    }
    panic!(
        "no Python interpreter for the prometheus_client peer test: set PUSHKIT_PYTHON, or create \
         {} with `python3 -m venv .venv && .venv/bin/pip install prometheus-client` (.ci/run does this)",
        venv.display()
    );
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------
// The agent

/// One `[[sinks]]` entry.
#[derive(Debug, Clone)]
pub struct Sink {
    pub name: String,
    pub url: String,
    pub gzip: bool,
}

/// What goes into the agent's conf dir. The listen address is always a free
/// loopback port chosen by [`Agent::start`].
#[derive(Debug, Clone)]
pub struct AgentConf {
    /// Empty: points go to stdout as line protocol.
    pub sinks: Vec<Sink>,
    /// The body of `[[inputs.pushgateway]]`, TOML lines.
    pub pushgateway: String,
    pub flush_interval: String,
    /// More TOML lines of `[http_api]` (its sub-tables included).
    pub http: String,
}

impl Default for AgentConf {
    fn default() -> Self {
        AgentConf {
            sinks: Vec::new(),
            pushgateway: "keep_exist_metric_name = true\nhonor_timestamps = true\n".to_string(),
            flush_interval: "100ms".to_string(),
            http: String::new(),
        }
    }
}

impl AgentConf {
    pub fn render(&self, port: u16) -> String {
        let mut s = format!(
            "[http_api]\nlisten = \"127.0.0.1:{port}\"\n{}\n\n\
             [io]\nmax_cache_count = 1000\nflush_interval = \"{}\"\nshutdown_timeout = \"5s\"\n\n",
            self.http, self.flush_interval
        );
        for sink in &self.sinks {
            s.push_str(&format!(
                "[[sinks]]\nname = \"{}\"\nurl = \"{}\"\ngzip = {}\n\n",
                sink.name, sink.url, sink.gzip
            ));
        }
        s.push_str("[[inputs.pushgateway]]\n");
        s.push_str(&self.pushgateway);
        s
    }
}

/// A running `pushkit --conf-dir DIR`. Stdout lines are collected by a
/// thread; stderr goes to `agent.stderr.log` in the temp dir and is printed
/// if the test panics. Killed on drop.
pub struct Agent {
    // Field order matters: the process goes before its temp dir.
    proc: ChildGuard,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    pub port: u16,
    pub dir: TempDir,
}

impl Agent {
    pub fn start(conf: &AgentConf) -> Agent {
        let port = free_port();
        Agent::launch(port, &conf.render(port), true)
    }

    /// Like `start`, for an agent that plain HTTP cannot ask whether it
    /// is ready (TLS, credentials): waits only until its port accepts.
    pub fn start_closed(conf: &AgentConf) -> Agent {
        let port = free_port();
        Agent::launch(port, &conf.render(port), false)
    }

    /// Writes `text` as `pushkit.conf` in a fresh conf dir, starts pushkit
    /// on it and waits until it is ready on `port` (which `text` must name):
    /// `/-/ready` answers 200 over plain HTTP, or without `http_ready`, the
    /// port accepts connections.
    fn launch(port: u16, text: &str, http_ready: bool) -> Agent {
        let dir = tempfile::Builder::new()
            .prefix("pushkit-agent-")
            .tempdir()
            .expect("temp dir");
        let conf_dir = dir.path().join("conf.d");
        fs::create_dir(&conf_dir).expect("create conf dir");
        fs::write(conf_dir.join("pushkit.conf"), text).expect("write conf");

        let stderr_path = dir.path().join("agent.stderr.log");
        let stderr = File::create(&stderr_path).expect("create stderr log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pushkit"));
        cmd.arg("--conf-dir").arg(&conf_dir);
        // ENV_* variables override the conf files: keep the test's own.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ENV_") {
                cmd.env_remove(&key);
            }
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn pushkit: {e}"));

        let stdout = child.stdout.take().expect("stdout piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let reader = thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf);
                        let line = line.trim_end_matches(['\n', '\r']).to_string();
                        sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                    }
                }
            }
        });

        let mut proc = ChildGuard {
            name: "pushkit".to_string(),
            child,
            logs: vec![stderr_path],
        };
        proc.logs.push(conf_dir.join("pushkit.conf"));
        let mut agent = Agent {
            proc,
            lines,
            reader: Some(reader),
            port,
            dir,
        };
        if http_ready {
            agent.wait_ready();
        } else {
            agent.wait_listening();
        }
        agent
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            self.proc.assert_running();
            assert!(
                Instant::now() < deadline,
                "pushkit not listening on {} after {READY_TIMEOUT:?}\n{}",
                self.port,
                self.proc.log_text()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_ready(&mut self) {
        let url = self.url("/-/ready");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.proc.assert_running();
            let last = match get(&url) {
                Ok(r) if r.status == 200 => return,
                Ok(r) => format!("status {} body {:?}", r.status, r.text()),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                panic!(
                    "pushkit not ready on {url} after {READY_TIMEOUT:?} (last: {last})\n{}",
                    self.proc.log_text()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn base_url(&self) -> String {
        self.url("")
    }

    /// A snapshot of the stdout lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until `f(lines)` gives `Some`; panics with the lines and the
    /// agent's stderr on timeout.
    pub fn wait_lines<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&[String]) -> Option<T>,
    ) -> T {
        let found = poll_until(timeout, Duration::from_millis(50), || {
            let lines = self.lines();
            f(&lines)
        });
        match found {
            Some(v) => v,
            None => panic!(
                "timed out after {timeout:?} waiting for {what}; stdout lines:\n{}\n{}",
                self.lines().join("\n"),
                self.proc.log_text()
            ),
        }
    }

    pub fn stderr_text(&self) -> String {
        self.proc.log_text()
    }

    pub fn assert_running(&mut self) {
        self.proc.assert_running();
    }

    /// Sends a push (or any request) to the agent; panics on I/O errors.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let url = self.url(path);
        http(method, &url, headers, body)
            .unwrap_or_else(|e| panic!("{method} {url}: {e}\n{}", self.proc.log_text()))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("----- pushkit stdout -----\n{}", self.lines().join("\n"));
        }
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

// ---------------------------------------------------------------------------
// Line protocol

/// One stdout line split into its series part (measurement, tags, fields:
/// everything before the last space) and its timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub series: String,
    pub time_ns: i64,
}

/// Splits a line-protocol line at its last space. `None` for lines that do
/// not end in an integer timestamp.
pub fn split_line(line: &str) -> Option<Line> {
    let (series, ts) = line.rsplit_once(' ')?;
    let time_ns = ts.parse().ok()?;
    Some(Line {
        series: series.to_string(),
        time_ns,
    })
}

/// The lines that carry the tag `tag` (`key=value`, e.g. `job=py-batch`).
pub fn lines_with_tag(lines: &[String], tag: &str) -> Vec<Line> {
    let (key, value) = tag.split_once('=').expect("tag as key=value");
    lines
        .iter()
        .filter(|l| {
            parse_point(l).is_some_and(|p| p.tags.get(key).map(String::as_str) == Some(value))
        })
        .filter_map(|l| split_line(l))
        .collect()
}

/// Sorted copy, for comparing sets of lines regardless of order.
pub fn sorted<T: Ord + Clone>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// Asserts that `got` and `want` hold the same series strings (as
/// multisets), printing a readable diff otherwise.
pub fn assert_same_series(got: &[Line], want: &[&str]) {
    let got_s: Vec<String> = sorted(&got.iter().map(|l| l.series.clone()).collect::<Vec<_>>());
    let want_s: Vec<String> = sorted(&want.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    if got_s != want_s {
        let missing: Vec<&String> = want_s.iter().filter(|w| !got_s.contains(w)).collect();
        let extra: Vec<&String> = got_s.iter().filter(|g| !want_s.contains(g)).collect();
        panic!(
            "series differ\nmissing: {missing:#?}\nunexpected: {extra:#?}\ngot ({}): {got_s:#?}\nwant ({}): {want_s:#?}",
            got_s.len(),
            want_s.len()
        );
    }
}

/// A line-protocol point taken apart, escapes undone.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedPoint {
    pub measurement: String,
    pub tags: BTreeMap<String, String>,
    pub fields: Vec<(String, f64)>,
    pub time_ns: i64,
}

/// Splits `s` at each `sep` not preceded by a backslash (escapes kept).
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

fn unescape_lp(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses one line as pushkit writes it: float fields only, a timestamp.
/// `None` if the line is not of that shape.
pub fn parse_point(line: &str) -> Option<ParsedPoint> {
    let sections = split_unescaped(line, ' ');
    let [key, fields, time] = sections.as_slice() else {
        return None;
    };
    let mut key_parts = split_unescaped(key, ',').into_iter();
    let measurement = unescape_lp(key_parts.next()?);
    let mut tags = BTreeMap::new();
    for tag in key_parts {
        let kv = split_unescaped(tag, '=');
        let [k, v] = kv.as_slice() else { return None };
        tags.insert(unescape_lp(k), unescape_lp(v));
    }
    let mut parsed_fields = Vec::new();
    for field in split_unescaped(fields, ',') {
        let kv = split_unescaped(field, '=');
        let [k, v] = kv.as_slice() else { return None };
        parsed_fields.push((unescape_lp(k), v.parse().ok()?));
    }
    Some(ParsedPoint {
        measurement,
        tags,
        fields: parsed_fields,
        time_ns: time.parse().ok()?,
    })
}

/// One sample of the Prometheus text format: name, labels (empty values
/// dropped: an empty label is an absent one), value.
pub type Sample = (String, BTreeMap<String, String>, f64);

fn bad_line(line: &str) -> ! {
    panic!("cannot parse exposition line {line:?}")
}

/// Parses the samples of a text-format exposition (as a Pushgateway's
/// `/metrics` serves it). Comment lines are skipped. Panics on lines it
/// cannot read.
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or_else(|| bad_line(line));
        let name = line[..name_end].to_string();
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let mut end = None;
            loop {
                // label name up to '=' (or '}' closing the set)
                let mut key = String::new();
                for (i, c) in chars.by_ref() {
                    match c {
                        '=' => break,
                        '}' => {
                            end = Some(i);
                            break;
                        }
                        ',' | ' ' => {}
                        c => key.push(c),
                    }
                }
                if end.is_some() {
                    break;
                }
                if chars.next().map(|(_, c)| c) != Some('"') {
                    bad_line(line);
                }
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, c)) => value.push(c),
                            None => bad_line(line),
                        },
                        Some((_, '"')) => break,
                        Some((_, c)) => value.push(c),
                        None => bad_line(line),
                    }
                }
                if !value.is_empty() {
                    labels.insert(key, value);
                }
            }
            rest = &body[end.unwrap_or_else(|| bad_line(line)) + 1..];
        }
        let value_text = rest
            .split_whitespace()
            .next()
            .unwrap_or_else(|| bad_line(line));
        let value: f64 = value_text.parse().unwrap_or_else(|_| bad_line(line));
        out.push((name, labels, value));
    }
    out
}

// ---------------------------------------------------------------------------
// Abrupt ends (the store's durability tests)

impl Agent {
    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// `kill -9` the agent and reap it. Panics (with the logs) if it had
    /// already exited on its own.
    pub fn kill9(&mut self) {
        self.proc.assert_running();
        self.proc.signal("-9");
        let _ = self.proc.child.wait();
    }
}

// ---------------------------------------------------------------------------
// Raw conf text and self metrics (peer_delivery, peer_remote_write)

impl Agent {
    /// Starts pushkit on a conf dir whose `pushkit.conf` is
    /// `[http_api] listen = "127.0.0.1:<port>"` followed by `body`, verbatim:
    /// for what [`AgentConf`] cannot say (`[io] queue_dir`, a sink's
    /// `format`, budgets, retry delays). `body` must not have `[http_api]`.
    /// Passing the port lets a test restart an agent on the same address.
    pub fn start_raw(port: u16, body: &str) -> Agent {
        Agent::launch(
            port,
            &format!("[http_api]\nlisten = \"127.0.0.1:{port}\"\n\n{body}"),
            true,
        )
    }

    /// The agent's own metrics, parsed from `GET /metrics`.
    pub fn self_metrics(&self) -> Vec<Sample> {
        let r = self.request("GET", "/metrics", &[], b"");
        assert_eq!(r.status, 200, "GET /metrics: {}", r.text());
        parse_exposition(&r.text())
    }

    /// The value of the sample `name` whose labels include `labels`, from
    /// `GET /metrics`; `None` if there is no such sample.
    pub fn self_metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        sample_value(&self.self_metrics(), name, labels)
    }

    /// Polls [`Agent::self_metric`] until it is `Some(want)`; panics with
    /// the last value, the agent's metrics and stderr after `timeout`.
    pub fn wait_self_metric(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        want: f64,
        timeout: Duration,
    ) {
        let mut last = None;
        let found = poll_until(timeout, Duration::from_millis(50), || {
            last = self.self_metric(name, labels);
            (last == Some(want)).then_some(())
        });
        if found.is_none() {
            panic!(
                "{name} {labels:?} is {last:?} after {timeout:?}, want {want}\n{}\n{}",
                self.sink_metrics_text(),
                self.stderr_text()
            );
        }
    }

    /// The `pushkit_sink_*` samples of the agent's `/metrics` (durations
    /// left out), one a line, for messages.
    pub fn sink_metrics_text(&self) -> String {
        self.self_metrics()
            .iter()
            .filter(|(n, _, _)| n.starts_with("pushkit_sink_") && !n.contains("duration"))
            .map(|(n, l, v)| format!("{n}{l:?} {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The value of the sample `name` whose labels include `labels`. Panics if
/// more than one sample matches.
pub fn sample_value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| *v)
        .collect();
    assert!(
        matching.len() <= 1,
        "{name} {labels:?} matches {} samples: {matching:?}",
        matching.len()
    );
    matching.first().copied()
}
