//! Fault injection on the HTTP sink: the agent in process, forwarding to
//! scripted in-process backends that fail in chosen ways (error statuses,
//! stalls past the sink's timeout, connections dropped without an answer, a
//! port nobody listens on yet, remote-write 400s) and record every request
//! they get. Every test counts exactly: each acknowledged push's points
//! arrive, and a point arrives twice only where the protocol allows it, in
//! which case the agent's possible-duplicates counter accounts for it.

use base64::Engine as _;
use prost::Message as _;
use pushkit::config::{
    BasicAuth, Config, Format, IoConfig, Overflow, Password, PushgatewayConfig, SinkConfig,
};
use pushkit::sink::remote_write::WriteRequest;
use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warp::http::{HeaderMap, Response};
use warp::Filter;

mod inprocess;
use inprocess::{start, Agent};

// ---------------------------------------------------------------------------
// The scripted backend

#[derive(Clone)]
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    /// Keep the body (as a real backend that wrote it would), then answer
    /// only after this long; longer than the sink's `timeout`, the sink gives
    /// up on a write the backend holds.
    stall: Option<Duration>,
}

fn answer(status: u16) -> Answer {
    Answer {
        status,
        headers: Vec::new(),
        body: String::new(),
        stall: None,
    }
}

/// Stores the request, then answers 204 after `d`.
fn stall(d: Duration) -> Answer {
    Answer {
        stall: Some(d),
        ..answer(204)
    }
}

#[derive(Clone, Debug)]
struct Received {
    at: Instant,
    path_and_query: String,
    content_encoding: Option<String>,
    content_type: Option<String>,
    headers: HeaderMap,
    /// Gunzipped when the request said gzip; for remote write (snappy), one
    /// line per sample: `name=value,... value timestamp_ms`.
    body: String,
    /// What the backend answered (or was going to, for a stall).
    status: u16,
    /// The backend kept the body: it answered 2xx, or stalled after
    /// keeping it.
    stored: bool,
}

struct Backend {
    script: Mutex<VecDeque<Answer>>,
    default: Answer,
    received: Mutex<Vec<Received>>,
    /// While set, every request is answered 503 (recorded, not stored): the
    /// backend is down but the sink can reach it.
    down: AtomicBool,
    /// While set, every request is kept and answered only after 2 s, as by
    /// [`stall`].
    stalling: AtomicBool,
    /// A request with a line containing this is answered 400 (as a remote
    /// write receiver fails a whole request for one bad sample).
    poison: Option<String>,
}

impl Backend {
    fn new(script: Vec<Answer>, default: Answer) -> Backend {
        Backend {
            script: Mutex::new(script.into()),
            default,
            received: Mutex::new(Vec::new()),
            down: AtomicBool::new(false),
            stalling: AtomicBool::new(false),
            poison: None,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Lines of the bodies the backend kept, in arrival order.
    fn delivered_lines(&self) -> Vec<String> {
        self.received()
            .iter()
            .filter(|r| r.stored)
            .flat_map(|r| r.body.lines().map(str::to_string).collect::<Vec<_>>())
            .collect()
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn set_stalling(&self, stalling: bool) {
        self.stalling.store(stalling, Ordering::SeqCst);
    }
}

/// Starts a backend answering from `script` in order, then `default`.
async fn start_backend(script: Vec<Answer>, default: Answer) -> (u16, Arc<Backend>) {
    start_backend_with(Backend::new(script, default)).await
}

async fn start_backend_with(backend: Backend) -> (u16, Arc<Backend>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = Arc::new(backend);
    serve_backend(listener, state.clone());
    (port, state)
}

/// Renders a remote write body as one line per sample.
fn remote_write_lines(body: &[u8]) -> String {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .expect("the sink sends snappy block format");
    let req = WriteRequest::decode(&raw[..]).expect("the sink sends a WriteRequest");
    let mut text = String::new();
    for ts in &req.timeseries {
        let labels: Vec<String> = ts
            .labels
            .iter()
            .map(|l| format!("{}={}", l.name, l.value))
            .collect();
        for s in &ts.samples {
            text.push_str(&format!(
                "{} {} {}\n",
                labels.join(","),
                s.value,
                s.timestamp
            ));
        }
    }
    text
}

fn serve_backend(listener: tokio::net::TcpListener, state: Arc<Backend>) {
    let s = state.clone();
    let route = warp::path::full()
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .then(
            move |path: warp::path::FullPath,
                  query: String,
                  headers: HeaderMap,
                  body: bytes::Bytes| {
                let s = s.clone();
                async move {
                    let header = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string)
                    };
                    let content_encoding = header("content-encoding");
                    let body = match content_encoding.as_deref() {
                        Some("gzip") => {
                            let mut text = String::new();
                            flate2::read::GzDecoder::new(&body[..])
                                .read_to_string(&mut text)
                                .expect("the sink sends valid gzip");
                            text
                        }
                        Some("snappy") => remote_write_lines(&body),
                        _ => String::from_utf8(body.to_vec()).unwrap(),
                    };
                    let a = if s.down.load(Ordering::SeqCst) {
                        answer(503)
                    } else if s.stalling.load(Ordering::SeqCst) {
                        stall(Duration::from_secs(2))
                    } else if s
                        .poison
                        .as_deref()
                        .is_some_and(|p| body.lines().any(|l| l.contains(p)))
                    {
                        Answer {
                            body: "out of order sample".into(),
                            ..answer(400)
                        }
                    } else {
                        s.script
                            .lock()
                            .unwrap()
                            .pop_front()
                            .unwrap_or_else(|| s.default.clone())
                    };
                    let path_and_query = if query.is_empty() {
                        path.as_str().to_string()
                    } else {
                        format!("{}?{query}", path.as_str())
                    };
                    s.received.lock().unwrap().push(Received {
                        at: Instant::now(),
                        path_and_query,
                        content_encoding,
                        content_type: header("content-type"),
                        headers: headers.clone(),
                        body,
                        status: a.status,
                        stored: (200..300).contains(&a.status),
                    });
                    if let Some(d) = a.stall {
                        // The body is kept; the sink may give up meanwhile.
                        tokio::time::sleep(d).await;
                    }
                    let mut r = Response::builder().status(a.status);
                    for (k, v) in &a.headers {
                        r = r.header(*k, v.as_str());
                    }
                    r.body(a.body.into_bytes()).unwrap()
                }
            },
        );
    tokio::spawn(warp::serve(route).incoming(listener).run());
}

// ---------------------------------------------------------------------------
// A raw TCP backend that can end a connection without answering

/// What the raw backend does with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// Keeps the body, then resets the connection (RST) without answering:
    /// the sink cannot know that the write happened.
    KeepThenReset,
    /// Closes the connection (FIN) without answering or keeping the body.
    Close,
    /// Keeps the body and answers 204.
    Answer,
}

#[derive(Clone, Debug)]
struct RawRequest {
    /// Gunzipped.
    body: String,
    fate: Fate,
}

struct RawBackend {
    script: Mutex<VecDeque<Fate>>,
    got: Mutex<Vec<RawRequest>>,
}

impl RawBackend {
    fn got(&self) -> Vec<RawRequest> {
        self.got.lock().unwrap().clone()
    }

    /// Lines of the bodies kept, in arrival order.
    fn stored_lines(&self) -> Vec<String> {
        self.got()
            .iter()
            .filter(|r| r.fate != Fate::Close)
            .flat_map(|r| r.body.lines().map(str::to_string).collect::<Vec<_>>())
            .collect()
    }
}

/// A minimal HTTP/1.1 server (Content-Length bodies, keep-alive) whose
/// requests meet `script` in order, then [`Fate::Answer`].
async fn start_raw_backend(script: Vec<Fate>) -> (u16, Arc<RawBackend>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = Arc::new(RawBackend {
        script: Mutex::new(script.into()),
        got: Mutex::new(Vec::new()),
    });
    let s = state.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(raw_connection(stream, s.clone()));
        }
    });
    (port, state)
}

async fn raw_connection(mut stream: tokio::net::TcpStream, state: Arc<RawBackend>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let header = |name: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(|v| v.trim().to_string())
        };
        let len: usize = header("content-length")
            .expect("the sink sends Content-Length")
            .parse()
            .unwrap();
        let gzip = header("content-encoding").as_deref() == Some("gzip");
        while buf.len() < head_end + len {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let raw: Vec<u8> = buf.drain(..head_end + len).skip(head_end).collect();
        let body = if gzip {
            let mut text = String::new();
            flate2::read::GzDecoder::new(&raw[..])
                .read_to_string(&mut text)
                .expect("the sink sends valid gzip");
            text
        } else {
            String::from_utf8(raw).unwrap()
        };
        let fate = state
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Fate::Answer);
        state.got.lock().unwrap().push(RawRequest { body, fate });
        match fate {
            Fate::Answer => {
                if stream
                    .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Fate::KeepThenReset => {
                // SO_LINGER 0: dropping the socket sends RST at once (it
                // cannot block, which is why tokio deprecates the general
                // method).
                #[allow(deprecated)]
                let _ = stream.set_linger(Some(Duration::ZERO));
                return;
            }
            Fate::Close => return,
        }
    }
}

// ---------------------------------------------------------------------------
// The agent

/// An agent with one sink `flaky` writing to `/write?db=x` on `port` with
/// the default retry delays, a 1 s shutdown timeout, no disk queue.
fn config(port: u16, max_cache_count: usize, sink: SinkConfig) -> Config {
    let flaky = SinkConfig {
        name: "flaky".into(),
        url: format!("http://127.0.0.1:{port}/write?db=x"),
        ..sink
    };
    let mut config = agent_config(vec![flaky], max_cache_count, None);
    config.io.shutdown_timeout = Duration::from_secs(1);
    config
}

/// A sink named `name` writing to the backend on `port`, retrying fast
/// (20 ms doubling to 200 ms).
fn sink_to(name: &str, port: u16, sink: SinkConfig) -> SinkConfig {
    SinkConfig {
        name: name.into(),
        url: format!("http://127.0.0.1:{port}/write"),
        retry_base: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
        ..sink
    }
}

/// An agent with these sinks, 50 ms flushes, a short shutdown, and a disk
/// queue in `queue_dir` if given.
fn agent_config(
    sinks: Vec<SinkConfig>,
    max_cache_count: usize,
    queue_dir: Option<&std::path::Path>,
) -> Config {
    Config {
        pushgateway: Some(PushgatewayConfig::default()),
        io: IoConfig {
            max_cache_count,
            flush_interval: Duration::from_millis(50),
            shutdown_timeout: Duration::from_millis(300),
            queue_dir: queue_dir.map(|d| d.to_string_lossy().into_owned()),
        },
        sinks,
        ..Config::default()
    }
}

impl Agent {
    async fn push(&self, body: &str) -> reqwest::Response {
        self.client
            .put(format!("{}/metrics/job/j", self.base))
            .body(body.to_string())
            .send()
            .await
            .expect("push")
    }

    async fn self_metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Polls `GET /metrics` until it contains `line`, for at most `timeout`.
    async fn wait_for_metric(&self, line: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.self_metrics().await;
            if text.contains(line) {
                return text;
            }
            assert!(Instant::now() < deadline, "no {line:?} in:\n{text}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (5 s at most) until sink `sink` has retried a request.
    async fn wait_retrying(&self, sink: &str) {
        let line = format!("pushkit_sink_requests_total{{sink=\"{sink}\",outcome=\"retry\"}} ");
        self.wait_for_metric(&line, Duration::from_secs(5)).await;
    }

    /// Waits until sink `sink` holds no point, for at most `timeout`.
    async fn wait_drained(&self, sink: &str, timeout: Duration) {
        let line = format!("pushkit_sink_queue_points{{sink=\"{sink}\"}} 0\n");
        self.wait_for_metric(&line, timeout).await;
    }

    /// Stops the agent; returns `run`'s result and how long it took.
    async fn stop_timed(mut self) -> (Result<usize, String>, Duration) {
        assert!(
            self.out.lock().unwrap().is_empty(),
            "points went to stdout though a sink is configured"
        );
        drop(self.client);
        let started = Instant::now();
        let _ = self.stop.take().unwrap().send(());
        let r = tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("agent::run returns after shutdown")
            .expect("agent task")
            .map_err(|e| e.to_string());
        (r, started.elapsed())
    }
}

/// The value of the series `series` (name and labels, as rendered) in a
/// text exposition; None if absent.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Asserts the value of each series (name and labels, as rendered) in a
/// text exposition.
fn assert_metrics(text: &str, want: &[(&str, f64)]) {
    for &(series, v) in want {
        assert_eq!(metric(text, series), Some(v), "{series} in:\n{text}");
    }
}

/// Asserts that `r` refuses a push because sink `sink`'s queue is full:
/// 503 with the agent's Retry-After and a JSON `queueFull` error naming
/// the sink.
async fn assert_queue_full(r: reqwest::Response, sink: &str) {
    assert_eq!(r.status(), 503);
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(
        header("retry-after"),
        Some(pushkit::sink::QUEUE_FULL_RETRY_AFTER_SECS.to_string())
    );
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
    let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["error_code"], "queueFull", "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains(&format!("sink {sink}")),
        "{v}"
    );
}

/// `n` gauges with explicit timestamps, and the lines they become.
fn gauges(n: usize, offset: usize) -> (String, Vec<String>) {
    let mut text = String::from("# TYPE g_v gauge\n");
    let mut lines = Vec::new();
    for i in offset..offset + n {
        text.push_str(&format!("g_v{{i=\"{i}\"}} {i} 1700000000000\n"));
        lines.push(format!("g,i={i},job=j g_v={i} 1700000000000000000"));
    }
    (text, lines)
}

/// Gauges `g_v{i="0"}`..`g_v{i="n-1"}` at step `step`: value `step`,
/// timestamp `step` seconds after 1700000000 s; and the lines they become.
fn gauges_at_step(n: usize, step: usize) -> (String, Vec<String>) {
    let ms = 1_700_000_000_000u64 + step as u64 * 1000;
    let mut text = String::from("# TYPE g_v gauge\n");
    let mut lines = Vec::new();
    for i in 0..n {
        text.push_str(&format!("g_v{{i=\"{i}\"}} {step} {ms}\n"));
        lines.push(format!("g,i={i},job=j g_v={step} {}", ms * 1_000_000));
    }
    (text, lines)
}

async fn wait_for_lines(backend: &Backend, n: usize, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let lines = backend.delivered_lines();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} lines delivered: {:?}",
            lines.len(),
            backend.received()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assert_exactly_once(mut got: Vec<String>, mut want: Vec<String>) {
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

/// How many times each line was seen.
fn copies(lines: &[String]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for l in lines {
        *m.entry(l.clone()).or_insert(0) += 1;
    }
    m
}

/// Lines seen more than once, each named once.
fn duplicated(lines: &[String]) -> Vec<String> {
    copies(lines)
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(l, _)| l)
        .collect()
}

/// Asserts every line of `want` is in `got` at least once and nothing else
/// is; returns the distinct lines seen more than once.
fn assert_at_least_once(got: &[String], want: &[String]) -> Vec<String> {
    let mut distinct: Vec<String> = copies(got).into_keys().collect();
    let mut want = want.to_vec();
    want.sort();
    distinct.sort();
    assert_eq!(distinct, want, "delivered lines (distinct) differ");
    duplicated(got)
}

// ---------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_are_retried_and_everything_arrives_once() {
    let (port, backend) =
        start_backend(vec![answer(500), answer(500), answer(500)], answer(204)).await;
    let agent = start(config(port, 2, SinkConfig::default())).await;
    let (text, want) = gauges(5, 0);
    assert_eq!(agent.push(&text).await.status(), 200);

    let got = wait_for_lines(&backend, 5, Duration::from_secs(15)).await;
    // Anything sent twice would show up now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_exactly_once(backend.delivered_lines(), want.clone());
    assert_eq!(got.len(), 5);
    let received = backend.received();
    let statuses: Vec<u16> = received.iter().map(|r| r.status).collect();
    // 5 points in batches of 2: the first batch fails 3 times.
    assert_eq!(statuses, [500, 500, 500, 204, 204, 204], "{received:?}");
    // The retried batch is the same batch each time.
    assert_eq!(received[0].body, received[3].body);

    let m = agent.self_metrics().await;
    for line in [
        "pushkit_sink_requests_total{sink=\"flaky\",outcome=\"retry\"} 3\n",
        "pushkit_sink_requests_total{sink=\"flaky\",outcome=\"success\"} 3\n",
        "pushkit_sink_points_delivered_total{sink=\"flaky\"} 5\n",
        "pushkit_sink_queue_points{sink=\"flaky\"} 0\n",
    ] {
        assert!(m.contains(line), "no {line:?} in:\n{m}");
    }
    assert!(!m.contains("pushkit_sink_points_dropped_total{"), "{m}");
    assert_eq!(agent.stop_timed().await.0, Ok(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn too_many_requests_honours_retry_after() {
    let mut busy = answer(429);
    busy.headers.push(("Retry-After", "1".into()));
    let (port, backend) = start_backend(vec![busy], answer(204)).await;
    let agent = start(config(port, 100, SinkConfig::default())).await;
    let (text, want) = gauges(3, 0);
    assert_eq!(agent.push(&text).await.status(), 200);

    wait_for_lines(&backend, 3, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_exactly_once(backend.delivered_lines(), want);
    let received = backend.received();
    assert_eq!(received.len(), 2, "{received:?}");
    // Backoff alone would wait at most 625 ms.
    let gap = received[1].at - received[0].at;
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
    agent
        .wait_for_metric(
            "pushkit_sink_requests_total{sink=\"flaky\",outcome=\"retry\"} 1\n",
            Duration::from_secs(2),
        )
        .await;
    assert_eq!(agent.stop_timed().await.0, Ok(0));
}

/// A 400 refusing every line: the batch of 3 is bisected down to single
/// points (3, then 2 and 1, then 1 and 1: 5 requests), each refused, all
/// dropped and none retried.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_batch_is_bisected_down_to_its_points() {
    let mut bad = answer(400);
    bad.body = "unable to parse 'g,i=0': bad timestamp".into();
    let (port, backend) = start_backend(vec![], bad).await;
    let agent = start(config(port, 100, SinkConfig::default())).await;
    let (text, _) = gauges(3, 0);
    assert_eq!(agent.push(&text).await.status(), 200);
    let m = agent
        .wait_for_metric(
            "pushkit_sink_points_dropped_total{sink=\"flaky\",reason=\"rejected\"} 3\n",
            Duration::from_secs(10),
        )
        .await;
    assert!(
        m.contains("pushkit_sink_requests_total{sink=\"flaky\",outcome=\"rejected\"} 5\n"),
        "{m}"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let sizes: Vec<usize> = backend
        .received()
        .iter()
        .map(|r| r.body.lines().count())
        .collect();
    assert_eq!(sizes, [3, 2, 1, 1, 1], "halves, the first half first");
    assert!(!agent.self_metrics().await.contains("outcome=\"retry\""));
    assert_eq!(agent.stop_timed().await.0, Ok(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn client_errors_drop_the_batch_and_count_it() {
    let mut bad = answer(403);
    bad.body = "forbidden".into();
    let (port, backend) = start_backend(vec![], bad).await;
    let agent = start(config(port, 100, SinkConfig::default())).await;
    let (text, _) = gauges(3, 0);
    assert_eq!(agent.push(&text).await.status(), 200);

    let m = agent
        .wait_for_metric(
            "pushkit_sink_points_dropped_total{sink=\"flaky\",reason=\"rejected\"} 3\n",
            Duration::from_secs(10),
        )
        .await;
    assert!(
        m.contains("pushkit_sink_requests_total{sink=\"flaky\",outcome=\"rejected\"} 1\n"),
        "{m}"
    );
    // Not retried.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(backend.received().len(), 1, "{:?}", backend.received());
    let m = agent.self_metrics().await;
    assert!(
        m.contains("pushkit_sink_queue_points{sink=\"flaky\"} 0\n"),
        "{m}"
    );
    assert!(!m.contains("outcome=\"retry\""), "{m}");
    // Nothing left to deliver at shutdown.
    assert_eq!(agent.stop_timed().await.0, Ok(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn url_query_and_gzip_header_reach_the_backend() {
    let (text, want) = gauges(2, 0);
    // gzip (the default), then gzip = false: the body as is, no
    // Content-Encoding.
    for gzip in [true, false] {
        let (port, backend) = start_backend(vec![], answer(204)).await;
        let sink = SinkConfig {
            gzip,
            ..SinkConfig::default()
        };
        let agent = start(config(port, 100, sink)).await;
        assert_eq!(agent.push(&text).await.status(), 200);
        wait_for_lines(&backend, 2, Duration::from_secs(10)).await;
        let r = &backend.received()[0];
        assert_eq!(r.path_and_query, "/write?db=x");
        assert_eq!(r.content_encoding.as_deref(), gzip.then_some("gzip"));
        assert_eq!(r.content_type.as_deref(), Some("text/plain; charset=utf-8"));
        assert_eq!(r.body, format!("{}\n", want.join("\n")));
        assert_eq!(agent.stop_timed().await.0, Ok(0));
    }
}

/// An agent whose one sink, answering 500 to everything, has a memory
/// queue of `max_queue_bytes` with `overflow = "block"`.
async fn start_blocking_on_a_dead_sink(max_queue_bytes: u64) -> (Agent, Arc<Backend>) {
    let (port, backend) = start_backend(vec![], answer(500)).await;
    let agent = start(config(
        port,
        100,
        SinkConfig {
            max_queue_bytes,
            overflow: Overflow::Block,
            ..SinkConfig::default()
        },
    ))
    .await;
    (agent, backend)
}

#[tokio::test(flavor = "multi_thread")]
async fn full_queue_with_block_refuses_pushes_with_503() {
    // Each point takes 38 bytes of line protocol: the first push (152)
    // fits, the second (304 in all) does not.
    let (agent, backend) = start_blocking_on_a_dead_sink(160).await;
    let (first, _) = gauges(4, 0);
    assert_eq!(agent.push(&first).await.status(), 200);
    let (second, _) = gauges(4, 4);
    assert_queue_full(agent.push(&second).await, "flaky").await;
    let m = agent.self_metrics().await;
    assert!(
        m.contains("pushkit_pushes_total{method=\"PUT\",code=\"503\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("pushkit_sink_queue_points{sink=\"flaky\"} 4\n"),
        "{m}"
    );
    // A full queue refuses before the body is parsed: a malformed push
    // gets 503 too (and its 400 once there is room).
    assert_queue_full(agent.push("not { valid\n").await, "flaky").await;
    // The refused push never reached the backend.
    assert!(
        backend.received().iter().all(|r| !r.body.contains("i=4")),
        "{:?}",
        backend.received()
    );
    // The first push's points are still held at shutdown.
    let (r, took) = agent.stop_timed().await;
    assert_eq!(r, Ok(4));
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
}

/// Sends `request` on `stream` and reads one answer: its status line and
/// body (by Content-Length). Errs when the connection is closed first.
async fn exchange(
    stream: &mut tokio::net::TcpStream,
    request: &[u8],
) -> std::io::Result<(String, String)> {
    stream.write_all(request).await?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if raw.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&raw[end + 4..end + 4 + length]).to_string();
                return Ok((head.lines().next().unwrap_or("").to_string(), body));
            }
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

/// A push refused before its body is parsed (503, the queue full) has its
/// body read and dropped, so the client's connection stays open for the
/// next request.
#[tokio::test(flavor = "multi_thread")]
async fn a_push_refused_unparsed_leaves_its_connection_open() {
    let (agent, _backend) = start_blocking_on_a_dead_sink(160).await;
    let (first, _) = gauges(4, 0);
    assert_eq!(agent.push(&first).await.status(), 200);
    let addr = agent.base.strip_prefix("http://").unwrap().to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // Bigger than what hyper reads at once, so that it would be left
    // unread if it were not read on purpose.
    let second = "# filler\n".repeat(100_000);
    let put = format!(
        "PUT /metrics/job/j HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n{second}",
        second.len()
    );
    let (status, body) = exchange(&mut stream, put.as_bytes()).await.unwrap();
    assert_eq!(status, "HTTP/1.1 503 Service Unavailable", "{body}");
    assert!(body.contains("queueFull"), "{body}");
    let get = format!("GET /-/healthy HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let (status, _) = exchange(&mut stream, get.as_bytes())
        .await
        .expect("the same connection answers the next request");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let _ = agent.stop_timed().await;
}

/// A push that finds a blocking queue full waits for the sink to finish a
/// batch (up to 1 s) and is then admitted, instead of being refused at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_push_at_a_full_queue_waits_for_room() {
    // The backend holds each write 300 ms; one push (152 bytes) fills the
    // 160-byte budget until its batch is delivered.
    let (port, backend) = start_backend(vec![], stall(Duration::from_millis(300))).await;
    let agent = start(config(
        port,
        100,
        SinkConfig {
            max_queue_bytes: 160,
            overflow: Overflow::Block,
            ..SinkConfig::default()
        },
    ))
    .await;
    let (first, lines_1) = gauges(4, 0);
    assert_eq!(agent.push(&first).await.status(), 200);
    let (second, lines_2) = gauges(4, 4);
    assert_eq!(agent.push(&second).await.status(), 200);
    let delivered = wait_for_lines(&backend, 8, Duration::from_secs(5)).await;
    assert_eq!(delivered, [lines_1, lines_2].concat());
    let m = agent.self_metrics().await;
    assert!(!m.contains("code=\"503\""), "no push was refused:\n{m}");
    let _ = agent.stop_timed().await;
}

/// Before parsing, a push is expected to take its body's size times what
/// the last admitted push took per body byte: a body that fits the room
/// left byte for byte but not once expanded is refused unparsed (503, even
/// when malformed), and a smaller one is parsed (400 when malformed).
#[tokio::test(flavor = "multi_thread")]
async fn early_refusal_expects_a_push_to_expand_as_the_last_one_did() {
    let (agent, _backend) = start_blocking_on_a_dead_sink(1000).await;
    // 10 points of 38 bytes of line protocol each from a 287-byte body:
    // 1.32 bytes per body byte, 380 of the 1,000 bytes taken.
    let (first, _) = gauges(10, 0);
    assert_eq!(first.len(), 287);
    assert_eq!(agent.push(&first).await.status(), 200);
    // 500 bytes would fit as they are (880), not expanded (1,042).
    let garbage = |n: usize| "x{".repeat(n / 2);
    assert_queue_full(agent.push(&garbage(500)).await, "flaky").await;
    // 100 bytes fit expanded too (512): parsed, and refused as malformed.
    assert_eq!(agent.push(&garbage(100)).await.status(), 400);
    let _ = agent.stop_timed().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_with_backend_down_reports_undelivered_points() {
    // A port nobody listens on: connection refused.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let agent = start(config(port, 100, SinkConfig::default())).await;
    let (text, _) = gauges(3, 0);
    assert_eq!(agent.push(&text).await.status(), 200);
    let (text, _) = gauges(2, 3);
    assert_eq!(agent.push(&text).await.status(), 200);
    agent.wait_retrying("flaky").await;
    let (r, took) = agent.stop_timed().await;
    assert_eq!(r, Ok(5));
    // shutdown_timeout is 1 s.
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    assert!(took >= Duration::from_millis(900), "shutdown took {took:?}");
}

// ---------------------------------------------------------------------------
// Slowness, resets, outages

#[tokio::test(flavor = "multi_thread")]
async fn stalls_past_the_timeout_are_retried_and_counted_as_possible_duplicates() {
    // The backend keeps the body of the first, second and fourth requests
    // and answers them only after the sink has given up (timeout 300 ms).
    // In batches of 2 of 5 points: A = i0,i1 stalls twice then succeeds,
    // B = i2,i3 stalls once then succeeds, C = i4 succeeds at once.
    let long = Duration::from_secs(2);
    let (port, backend) = start_backend(
        vec![stall(long), stall(long), answer(204), stall(long)],
        answer(204),
    )
    .await;
    let slow = SinkConfig {
        timeout: Duration::from_millis(300),
        ..SinkConfig::default()
    };
    let agent = start(agent_config(vec![sink_to("slow", port, slow)], 2, None)).await;
    let (text, want) = gauges(5, 0);
    assert_eq!(agent.push(&text).await.status(), 200);

    agent
        .wait_for_metric(
            "pushkit_sink_points_delivered_total{sink=\"slow\"} 5\n",
            Duration::from_secs(15),
        )
        .await;
    // Anything sent once more would show up now.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let got = backend.delivered_lines();
    let twice = assert_at_least_once(&got, &want);
    let kept: Vec<usize> = copies(&got).into_values().collect();
    assert_eq!(kept, [3, 3, 2, 2, 1], "{:?}", backend.received());
    assert_eq!(twice.len(), 4);

    let m = agent.self_metrics().await;
    // Every point the backend holds more than once is counted, once.
    assert_metrics(
        &m,
        &[
            (
                "pushkit_sink_points_possible_duplicates_total{sink=\"slow\",reason=\"timeout\"}",
                twice.len() as f64,
            ),
            (
                "pushkit_sink_requests_total{sink=\"slow\",outcome=\"retry\"}",
                3.0,
            ),
            (
                "pushkit_sink_requests_total{sink=\"slow\",outcome=\"success\"}",
                3.0,
            ),
            ("pushkit_sink_points_retried_total{sink=\"slow\"}", 6.0),
            ("pushkit_sink_points_delivered_total{sink=\"slow\"}", 5.0),
            ("pushkit_sink_queue_points{sink=\"slow\"}", 0.0),
        ],
    );
    assert!(!m.contains("pushkit_sink_points_dropped_total{"), "{m}");
    assert_eq!(agent.stop_timed().await.0, Ok(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_ended_without_an_answer_are_retried_and_counted() {
    // In batches of 2 of 5 points: A = i0,i1 is kept and the connection
    // reset, then A succeeds; B = i2,i3 is read but not kept and the
    // connection closed, then B succeeds; C = i4 succeeds at once.
    let (port, backend) =
        start_raw_backend(vec![Fate::KeepThenReset, Fate::Answer, Fate::Close]).await;
    let agent = start(agent_config(
        vec![sink_to("reset", port, SinkConfig::default())],
        2,
        None,
    ))
    .await;
    let (text, want) = gauges(5, 0);
    assert_eq!(agent.push(&text).await.status(), 200);

    agent
        .wait_for_metric(
            "pushkit_sink_points_delivered_total{sink=\"reset\"} 5\n",
            Duration::from_secs(15),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let got = backend.got();
    let fates: Vec<Fate> = got.iter().map(|r| r.fate).collect();
    assert_eq!(
        fates,
        [
            Fate::KeepThenReset,
            Fate::Answer,
            Fate::Close,
            Fate::Answer,
            Fate::Answer
        ],
        "{got:?}"
    );
    // Each retry resends the same batch.
    assert_eq!(got[0].body, got[1].body);
    assert_eq!(got[2].body, got[3].body);

    let stored = backend.stored_lines();
    let twice = assert_at_least_once(&stored, &want);
    // The sink cannot tell a reset after the write from one before it: it
    // counts every point of a batch retried after a connection ended
    // without an answer, and the backend's real duplicates are among them.
    let unanswered: Vec<String> = copies(
        &got.iter()
            .filter(|r| r.fate != Fate::Answer)
            .flat_map(|r| r.body.lines().map(str::to_string).collect::<Vec<_>>())
            .collect::<Vec<_>>(),
    )
    .into_keys()
    .collect();
    assert_eq!(unanswered.len(), 4);
    assert_eq!(twice.len(), 2, "{stored:?}");
    assert!(twice.iter().all(|l| unanswered.contains(l)), "{twice:?}");

    let m = agent.self_metrics().await;
    assert_metrics(
        &m,
        &[
            (
                "pushkit_sink_points_possible_duplicates_total{sink=\"reset\",reason=\"timeout\"}",
                unanswered.len() as f64,
            ),
            (
                "pushkit_sink_requests_total{sink=\"reset\",outcome=\"retry\"}",
                2.0,
            ),
            (
                "pushkit_sink_requests_total{sink=\"reset\",outcome=\"success\"}",
                3.0,
            ),
            ("pushkit_sink_points_delivered_total{sink=\"reset\"}", 5.0),
        ],
    );
    assert!(!m.contains("pushkit_sink_points_dropped_total{"), "{m}");
    assert_eq!(agent.stop_timed().await.0, Ok(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn backend_down_then_up_gets_everything_once_in_order() {
    // The port is bound but not listening: connections are refused until
    // the backend starts listening on it.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    let agent = start(agent_config(
        vec![sink_to("late", port, SinkConfig::default())],
        3,
        None,
    ))
    .await;
    let mut want = Vec::new();
    let mut push = |step| {
        let (text, lines) = gauges_at_step(4, step);
        want.extend(lines);
        text
    };
    for step in 0..2 {
        assert_eq!(agent.push(&push(step)).await.status(), 200);
    }
    agent.wait_retrying("late").await;
    for step in 2..4 {
        assert_eq!(agent.push(&push(step)).await.status(), 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let backend = Arc::new(Backend::new(vec![], answer(204)));
    serve_backend(socket.listen(64).unwrap(), backend.clone());
    assert_eq!(agent.push(&push(4)).await.status(), 200);
    wait_for_lines(&backend, 20, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = backend.delivered_lines();
    assert_exactly_once(got.clone(), want);
    // Per series, the pushes arrive in the order they were made.
    for i in 0..4 {
        let prefix = format!("g,i={i},job=j g_v=");
        let steps: Vec<usize> = got
            .iter()
            .filter_map(|l| l.strip_prefix(&prefix))
            .map(|rest| rest.split(' ').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(steps, [0, 1, 2, 3, 4], "series {i}: {got:?}");
    }

    let m = agent.self_metrics().await;
    let retried = metric(&m, "pushkit_sink_points_retried_total{sink=\"late\"}");
    assert!(retried.is_some_and(|v| v > 0.0), "{m}");
    assert_metrics(
        &m,
        &[("pushkit_sink_points_delivered_total{sink=\"late\"}", 20.0)],
    );
    // A refused connection cannot have delivered anything.
    assert!(
        !m.contains("pushkit_sink_points_possible_duplicates_total{"),
        "{m}"
    );
    assert!(!m.contains("pushkit_sink_points_dropped_total{"), "{m}");
    assert_eq!(agent.stop_timed().await.0, Ok(0));
}

// ---------------------------------------------------------------------------
// Headers and authentication

/// The headers of a request as a sorted map, names lower-cased.
fn header_map(h: &HeaderMap) -> BTreeMap<String, String> {
    h.iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap().to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn headers_and_auth_reach_each_backend_exactly() {
    let (pa, a) = start_backend(vec![], answer(204)).await;
    let (pb, b) = start_backend(vec![], answer(204)).await;
    let (pc, c) = start_backend(vec![], answer(204)).await;
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "from-file\n").unwrap();
    let sinks = vec![
        sink_to(
            "tenant",
            pa,
            SinkConfig {
                headers: [("X-Scope-OrgID".to_string(), "t".to_string())].into(),
                bearer_token: Some("tok-123".into()),
                ..SinkConfig::default()
            },
        ),
        sink_to(
            "basic",
            pb,
            SinkConfig {
                basic_auth: Some(BasicAuth {
                    username: "alice".to_string(),
                    password: Password::Inline("s3cret".to_string()),
                }),
                ..SinkConfig::default()
            },
        ),
        sink_to(
            "basicfile",
            pc,
            SinkConfig {
                gzip: false,
                headers: [
                    ("X-Team".to_string(), "ops".to_string()),
                    ("X-Scope-OrgID".to_string(), "u".to_string()),
                ]
                .into(),
                basic_auth: Some(BasicAuth {
                    username: "bob".to_string(),
                    password: Password::File(password_file.to_string_lossy().into_owned()),
                }),
                ..SinkConfig::default()
            },
        ),
    ];
    let agent = start(agent_config(sinks, 100, None)).await;
    let (text, want) = gauges(3, 0);
    assert_eq!(agent.push(&text).await.status(), 200);
    for backend in [&a, &b, &c] {
        wait_for_lines(backend, 3, Duration::from_secs(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let basic = |userpass: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(userpass)
        )
    };
    let expected = |extra: &[(&str, String)], gzip: bool, port: u16| {
        let mut m: BTreeMap<String, String> = [
            ("accept", "*/*".to_string()),
            ("content-type", "text/plain; charset=utf-8".to_string()),
            ("host", format!("127.0.0.1:{port}")),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
        if gzip {
            m.insert("content-encoding".into(), "gzip".into());
        }
        for (k, v) in extra {
            m.insert(k.to_string(), v.clone());
        }
        m
    };
    let cases = [
        (
            &a,
            expected(
                &[
                    ("authorization", "Bearer tok-123".into()),
                    ("x-scope-orgid", "t".into()),
                ],
                true,
                pa,
            ),
        ),
        (
            &b,
            expected(&[("authorization", basic("alice:s3cret"))], true, pb),
        ),
        (
            &c,
            expected(
                &[
                    ("authorization", basic("bob:from-file")),
                    ("x-scope-orgid", "u".into()),
                    ("x-team", "ops".into()),
                ],
                false,
                pc,
            ),
        ),
    ];
    for (backend, want_headers) in cases {
        let received = backend.received();
        assert_eq!(received.len(), 1, "{received:?}");
        let mut got = header_map(&received[0].headers);
        // The body's length is the transport's business.
        assert!(got.remove("content-length").is_some());
        assert_eq!(got, want_headers);
        assert_exactly_once(backend.delivered_lines(), want.clone());
    }
    assert_eq!(agent.stop_timed().await.0, Ok(0));
}

// ---------------------------------------------------------------------------
// Remote write

#[tokio::test(flavor = "multi_thread")]
async fn remote_write_400_is_bisected_down_to_the_poisoned_point() {
    let (port, backend) = start_backend_with(Backend {
        poison: Some("bad=1".into()),
        ..Backend::new(vec![], answer(204))
    })
    .await;
    let rw = SinkConfig {
        format: Format::RemoteWrite,
        ..SinkConfig::default()
    };
    let agent = start(agent_config(vec![sink_to("rw", port, rw)], 100, None)).await;
    // 20 good points and, between them, one the receiver rejects.
    let mut text = String::from("# TYPE g_v gauge\n");
    let mut want = Vec::new();
    for i in 0..10 {
        text.push_str(&format!("g_v{{i=\"{i}\"}} {i} 1700000000000\n"));
        want.push(format!("__name__=g_v,i={i},job=j {i} 1700000000000"));
    }
    text.push_str("# TYPE poison_v gauge\npoison_v{bad=\"1\"} 1 1700000000000\n");
    text.push_str("# TYPE h_v gauge\n");
    for i in 10..20 {
        text.push_str(&format!("h_v{{i=\"{i}\"}} {i} 1700000000000\n"));
        want.push(format!("__name__=h_v,i={i},job=j {i} 1700000000000"));
    }
    let poisoned = "__name__=poison_v,bad=1,job=j 1 1700000000000";
    assert_eq!(agent.push(&text).await.status(), 200);

    let m = agent
        .wait_for_metric(
            "pushkit_sink_points_dropped_total{sink=\"rw\",reason=\"rejected\"} 1\n",
            Duration::from_secs(10),
        )
        .await;
    assert_metrics(
        &m,
        &[("pushkit_sink_points_delivered_total{sink=\"rw\"}", 20.0)],
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_exactly_once(backend.delivered_lines(), want);

    let received = backend.received();
    for r in &received {
        assert_eq!(r.path_and_query, "/write");
        assert_eq!(r.content_encoding.as_deref(), Some("snappy"));
        assert_eq!(r.content_type.as_deref(), Some("application/x-protobuf"));
        assert_eq!(
            r.headers
                .get("x-prometheus-remote-write-version")
                .and_then(|v| v.to_str().ok()),
            Some("0.1.0")
        );
    }
    // The first request is the whole batch.
    assert_eq!(received[0].body.lines().count(), 21, "{received:?}");
    assert_eq!(received[0].status, 400);
    let rejected: Vec<&Received> = received.iter().filter(|r| r.status == 400).collect();
    let accepted = received.iter().filter(|r| r.status == 204).count();
    assert_eq!(rejected.len() + accepted, received.len(), "{received:?}");
    assert!(rejected.iter().all(|r| r.body.contains(poisoned)));
    // Halving: every split of a rejected part yields one rejected and one
    // accepted half, until the poisoned point is alone.
    assert_eq!(rejected.len(), accepted + 1, "{received:?}");
    assert!(accepted <= 5, "{} requests for 21 points", received.len());
    assert_eq!(rejected.last().unwrap().body, format!("{poisoned}\n"));

    let m = agent.self_metrics().await;
    assert_metrics(
        &m,
        &[
            (
                "pushkit_sink_requests_total{sink=\"rw\",outcome=\"rejected\"}",
                rejected.len() as f64,
            ),
            (
                "pushkit_sink_requests_total{sink=\"rw\",outcome=\"success\"}",
                accepted as f64,
            ),
            ("pushkit_sink_queue_points{sink=\"rw\"}", 0.0),
        ],
    );
    assert!(!m.contains("outcome=\"retry\""), "{m}");
    assert_eq!(agent.stop_timed().await.0, Ok(0));
}

// ---------------------------------------------------------------------------
// The disk queue

/// Starts an agent on a `queue_dir` that an in-process agent used until its
/// `run` returned. That must work at once: `run` returns only after its
/// sink workers (and with them the disk queue and its `LOCK`) are gone, even
/// when shutdown had to abort them (backend down at `shutdown_timeout`).
async fn start_after_restart(config: Config) -> Agent {
    let agent = start(config).await;
    loop {
        assert!(
            !agent.handle.is_finished(),
            "the agent stopped at once: {:?}",
            agent.handle.await.unwrap()
        );
        let up = agent
            .client
            .get(format!("{}/metrics", agent.base))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if up {
            return agent;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Starts the agent again on `config` (see [`start_after_restart`]) once
/// `backend` holds `delivered`, and stops it after 400 ms: sink `sink`'s
/// disk queue must be empty, nothing counted as a possible duplicate and
/// nothing sent again.
async fn assert_restart_resends_nothing(
    config: Config,
    sink: &str,
    backend: &Backend,
    delivered: Vec<String>,
) {
    let agent = start_after_restart(config).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let m = agent.self_metrics().await;
    assert!(
        !m.contains("pushkit_sink_points_possible_duplicates_total{"),
        "{m}"
    );
    let queue = format!("pushkit_sink_queue_points{{sink=\"{sink}\"}}");
    assert_metrics(&m, &[(&queue, 0.0)]);
    assert_eq!(agent.stop_timed().await.0, Ok(0));
    assert_exactly_once(backend.delivered_lines(), delivered);
}

#[tokio::test(flavor = "multi_thread")]
async fn disk_queue_delivers_acknowledged_points_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (port, backend) = start_backend(vec![], answer(204)).await;
    let cfg = || {
        agent_config(
            vec![sink_to("disk", port, SinkConfig::default())],
            100,
            Some(dir.path()),
        )
    };
    let agent = start(cfg()).await;
    let (p1, l1) = gauges(3, 0);
    assert_eq!(agent.push(&p1).await.status(), 200);
    wait_for_lines(&backend, 3, Duration::from_secs(10)).await;
    agent.wait_drained("disk", Duration::from_secs(5)).await;

    backend.set_down(true);
    let (p2, l2) = gauges(4, 3);
    assert_eq!(agent.push(&p2).await.status(), 200);
    let (p3, l3) = gauges(2, 7);
    assert_eq!(agent.push(&p3).await.status(), 200);
    agent.wait_retrying("disk").await;
    // Nothing is lost: the undelivered points stay on disk.
    let (r, took) = agent.stop_timed().await;
    assert_eq!(r, Ok(0));
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    assert_exactly_once(backend.delivered_lines(), l1.clone());

    backend.set_down(false);
    // (This shutdown aborted the worker: see start_after_restart.)
    let agent = start_after_restart(cfg()).await;
    wait_for_lines(&backend, 9, Duration::from_secs(10)).await;
    agent.wait_drained("disk", Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all: Vec<String> = [l1.clone(), l2, l3].concat();
    assert_exactly_once(backend.delivered_lines(), all.clone());
    let m = agent.self_metrics().await;
    // Everything read back is counted: the agent cannot know whether a
    // crash came between delivery and the record of it.
    assert_metrics(
        &m,
        &[
            (
                "pushkit_sink_points_possible_duplicates_total{sink=\"disk\",reason=\"restart\"}",
                6.0,
            ),
            ("pushkit_sink_points_delivered_total{sink=\"disk\"}", 6.0),
        ],
    );
    assert!(!m.contains("reason=\"timeout\""), "{m}");
    assert!(!m.contains("pushkit_sink_points_dropped_total{"), "{m}");
    assert_eq!(agent.stop_timed().await.0, Ok(0));

    // Delivered and recorded: a third start sends nothing again. Its
    // workers all finished, so this shutdown released the directory.
    assert_restart_resends_nothing(cfg(), "disk", &backend, all).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn disk_queue_resends_a_write_that_timed_out_before_a_restart_and_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let (port, backend) = start_backend(vec![], answer(204)).await;
    // The backend writes every request but answers after the sink's
    // timeout: the sink never learns that the batch arrived.
    backend.set_stalling(true);
    let cfg = || {
        let slow = SinkConfig {
            timeout: Duration::from_millis(300),
            ..SinkConfig::default()
        };
        agent_config(vec![sink_to("disk", port, slow)], 100, Some(dir.path()))
    };
    let agent = start(cfg()).await;
    let (p1, l1) = gauges(3, 0);
    assert_eq!(agent.push(&p1).await.status(), 200);
    wait_for_lines(&backend, 3, Duration::from_secs(10)).await;
    agent.wait_retrying("disk").await;
    assert_eq!(agent.stop_timed().await.0, Ok(0));
    // A request cut by the shutdown could still be in the backend's hands.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let attempts = backend.received().len();
    assert!(attempts >= 1);

    backend.set_stalling(false);
    // (This shutdown aborted the worker: see start_after_restart.)
    let agent = start_after_restart(cfg()).await;
    agent.wait_drained("disk", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = backend.delivered_lines();
    let twice = assert_at_least_once(&got, &l1);
    // Each point: once per attempt before the restart, once after.
    let kept: Vec<usize> = copies(&got).into_values().collect();
    assert_eq!(kept, vec![attempts + 1; 3], "{:?}", backend.received());
    // Every point the backend holds twice is among those counted.
    assert_eq!(twice.len(), 3);
    let m = agent.self_metrics().await;
    assert_metrics(
        &m,
        &[(
            "pushkit_sink_points_possible_duplicates_total{sink=\"disk\",reason=\"restart\"}",
            3.0,
        )],
    );
    assert_eq!(agent.stop_timed().await.0, Ok(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn full_disk_queue_with_block_refuses_pushes_and_keeps_nothing_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let (port, backend) = start_backend(vec![], answer(204)).await;
    backend.set_down(true);
    let tiny = SinkConfig {
        max_disk_bytes: 1,
        overflow: Overflow::Block,
        ..SinkConfig::default()
    };
    let cfg = || {
        agent_config(
            vec![sink_to("disk", port, tiny.clone())],
            100,
            Some(dir.path()),
        )
    };
    let agent = start(cfg()).await;
    // A sink with nothing pending takes any push.
    let (p1, l1) = gauges(3, 0);
    assert_eq!(agent.push(&p1).await.status(), 200);
    let (p2, _) = gauges(3, 3);
    assert_queue_full(agent.push(&p2).await, "disk").await;
    agent.wait_retrying("disk").await;

    backend.set_down(false);
    wait_for_lines(&backend, 3, Duration::from_secs(10)).await;
    agent.wait_drained("disk", Duration::from_secs(5)).await;
    // Room again.
    let (p3, l3) = gauges(2, 6);
    assert_eq!(agent.push(&p3).await.status(), 200);
    wait_for_lines(&backend, 5, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let want: Vec<String> = [l1, l3].concat();
    assert_exactly_once(backend.delivered_lines(), want.clone());
    let m = agent.self_metrics().await;
    assert_metrics(
        &m,
        &[("pushkit_pushes_total{method=\"PUT\",code=\"503\"}", 1.0)],
    );
    assert!(!m.contains("pushkit_sink_points_dropped_total{"), "{m}");
    assert_eq!(agent.stop_timed().await.0, Ok(0));

    // The refused push was not written: a restart has nothing to resend.
    assert_restart_resends_nothing(cfg(), "disk", &backend, want).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn full_disk_queue_with_drop_oldest_never_refuses_and_counts_drops() {
    let dir = tempfile::tempdir().unwrap();
    let (port, backend) = start_backend(vec![], answer(204)).await;
    backend.set_down(true);
    let lossy = SinkConfig {
        max_disk_bytes: 1,
        overflow: Overflow::DropOldest,
        ..SinkConfig::default()
    };
    let agent = start(agent_config(
        vec![sink_to("lossy", port, lossy)],
        100,
        Some(dir.path()),
    ))
    .await;
    let pushes: Vec<(String, Vec<String>)> = (0..6).map(|k| gauges(2, 2 * k)).collect();
    assert_eq!(agent.push(&pushes[0].0).await.status(), 200);
    // Push 0 is in flight (retried); it cannot be dropped.
    agent.wait_retrying("lossy").await;
    // Each later push drops the ones queued before it (but not in flight).
    for (text, _) in &pushes[1..] {
        assert_eq!(agent.push(text).await.status(), 200);
    }
    let m = agent.self_metrics().await;
    assert_metrics(
        &m,
        &[
            (
                "pushkit_sink_points_dropped_total{sink=\"lossy\",reason=\"queue_full\"}",
                8.0,
            ),
            ("pushkit_sink_queue_points{sink=\"lossy\"}", 4.0),
        ],
    );

    backend.set_down(false);
    wait_for_lines(&backend, 4, Duration::from_secs(10)).await;
    agent.wait_drained("lossy", Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let want: Vec<String> = [pushes[0].1.clone(), pushes[5].1.clone()].concat();
    assert_exactly_once(backend.delivered_lines(), want);
    let m = agent.self_metrics().await;
    assert!(!m.contains("code=\"503\""), "{m}");
    assert_metrics(
        &m,
        &[
            (
                "pushkit_sink_points_dropped_total{sink=\"lossy\",reason=\"queue_full\"}",
                8.0,
            ),
            ("pushkit_sink_points_delivered_total{sink=\"lossy\"}", 4.0),
        ],
    );
    assert_eq!(agent.stop_timed().await.0, Ok(0));
}

// ---------------------------------------------------------------------------
// One sink down, another up

async fn one_sink_down_does_not_hold_back_the_other(queue_dir: Option<&std::path::Path>) {
    let (pd, down) = start_backend(vec![], answer(204)).await;
    down.set_down(true);
    let (pu, up) = start_backend(vec![], answer(204)).await;
    let small = SinkConfig {
        max_queue_bytes: 200,
        max_disk_bytes: 1,
        overflow: Overflow::Block,
        ..SinkConfig::default()
    };
    let agent = start(agent_config(
        vec![
            sink_to("down", pd, small),
            sink_to("up", pu, SinkConfig::default()),
        ],
        100,
        queue_dir,
    ))
    .await;
    let (p1, l1) = gauges(4, 0);
    assert_eq!(agent.push(&p1).await.status(), 200);
    // The up sink gets the push while the down one is still retrying it.
    wait_for_lines(&up, 4, Duration::from_secs(10)).await;
    agent.wait_retrying("down").await;
    assert!(down.delivered_lines().is_empty());
    assert!(down.received().iter().all(|r| r.status == 503));

    // The down sink's budget is full: the push is refused for both.
    let (p2, _) = gauges(4, 4);
    assert_queue_full(agent.push(&p2).await, "down").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_exactly_once(up.delivered_lines(), l1.clone());

    down.set_down(false);
    wait_for_lines(&down, 4, Duration::from_secs(10)).await;
    agent.wait_drained("down", Duration::from_secs(5)).await;
    let (p3, l3) = gauges(2, 8);
    assert_eq!(agent.push(&p3).await.status(), 200);
    wait_for_lines(&up, 6, Duration::from_secs(10)).await;
    wait_for_lines(&down, 6, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let want: Vec<String> = [l1, l3].concat();
    assert_exactly_once(up.delivered_lines(), want.clone());
    assert_exactly_once(down.delivered_lines(), want);
    let m = agent.self_metrics().await;
    assert_metrics(
        &m,
        &[("pushkit_pushes_total{method=\"PUT\",code=\"503\"}", 1.0)],
    );
    assert!(!m.contains("pushkit_sink_points_dropped_total{"), "{m}");
    assert!(
        !m.contains("pushkit_sink_points_possible_duplicates_total{"),
        "{m}"
    );
    assert_eq!(agent.stop_timed().await.0, Ok(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn one_sink_down_does_not_hold_back_the_other_in_memory() {
    one_sink_down_does_not_hold_back_the_other(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_sink_down_does_not_hold_back_the_other_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    one_sink_down_does_not_hold_back_the_other(Some(dir.path())).await;
}

/// A sink does not follow a redirect to another origin: a 307 elsewhere
/// would have the batch, with the sink's credentials, re-posted wherever
/// it points. The batch is retried against the configured URL instead (no
/// point is lost), and delivered once that answers.
#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_to_another_origin_is_not_followed() {
    let (other_port, other) = start_backend(vec![], answer(204)).await;
    let mut moved = answer(307);
    moved
        .headers
        .push(("Location", format!("http://127.0.0.1:{other_port}/write")));
    let (port, backend) = start_backend(vec![moved.clone(), moved], answer(204)).await;
    let agent = start(config(port, 100, SinkConfig::default())).await;
    let (text, want) = gauges(3, 0);
    assert_eq!(agent.push(&text).await.status(), 200);

    wait_for_lines(&backend, 3, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_exactly_once(backend.delivered_lines(), want);
    assert!(other.received().is_empty(), "{:?}", other.received());
    let statuses: Vec<u16> = backend.received().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [307, 307, 204]);
    let m = agent.self_metrics().await;
    assert!(
        m.contains("pushkit_sink_requests_total{sink=\"flaky\",outcome=\"retry\"} 2\n"),
        "{m}"
    );
    assert_eq!(agent.stop_timed().await.0, Ok(0));
}
