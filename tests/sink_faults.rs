//! Fault injection on the HTTP sink: the agent in process, forwarding to a
//! scripted in-process backend (warp on 127.0.0.1) that fails in chosen
//! ways, and records every request it gets.

use pushkit::config::{Config, IoConfig, PushgatewayConfig, SinkConfig};
use std::collections::VecDeque;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
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
}

fn answer(status: u16) -> Answer {
    Answer {
        status,
        headers: Vec::new(),
        body: String::new(),
    }
}

#[derive(Clone, Debug)]
struct Received {
    at: Instant,
    path_and_query: String,
    content_encoding: Option<String>,
    content_type: Option<String>,
    /// Gunzipped when the request said gzip.
    body: String,
    /// What the backend answered.
    status: u16,
}

struct Backend {
    script: Mutex<VecDeque<Answer>>,
    default: Answer,
    received: Mutex<Vec<Received>>,
}

impl Backend {
    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Lines of the bodies the backend accepted (2xx).
    fn delivered_lines(&self) -> Vec<String> {
        self.received()
            .iter()
            .filter(|r| (200..300).contains(&r.status))
            .flat_map(|r| r.body.lines().map(str::to_string).collect::<Vec<_>>())
            .collect()
    }
}

/// Starts a backend answering from `script` in order, then `default`.
async fn start_backend(script: Vec<Answer>, default: Answer) -> (u16, Arc<Backend>) {
    let state = Arc::new(Backend {
        script: Mutex::new(script.into()),
        default,
        received: Mutex::new(Vec::new()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let s = state.clone();
    let route = warp::path::full()
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .map(
            move |path: warp::path::FullPath,
                  query: String,
                  headers: HeaderMap,
                  body: bytes::Bytes| {
                let header = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                let content_encoding = header("content-encoding");
                let body = if content_encoding.as_deref() == Some("gzip") {
                    let mut text = String::new();
                    flate2::read::GzDecoder::new(&body[..])
                        .read_to_string(&mut text)
                        .expect("the sink sends valid gzip");
                    text
                } else {
                    String::from_utf8(body.to_vec()).unwrap()
                };
                let a = s
                    .script
                    .lock()
                    .unwrap()
                    .pop_front()
                    .unwrap_or_else(|| s.default.clone());
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
                    body,
                    status: a.status,
                });
                let mut r = Response::builder().status(a.status);
                for (k, v) in &a.headers {
                    r = r.header(*k, v.as_str());
                }
                r.body(a.body.into_bytes()).unwrap()
            },
        );
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (port, state)
}

// ---------------------------------------------------------------------------
// The agent

fn config(port: u16, max_cache_count: usize, sink: SinkConfig) -> Config {
    Config {
        pushgateway: Some(PushgatewayConfig::default()),
        io: IoConfig {
            max_cache_count,
            flush_interval: Duration::from_millis(50),
            shutdown_timeout: Duration::from_secs(1),
            ..IoConfig::default()
        },
        sinks: vec![SinkConfig {
            name: "flaky".into(),
            url: format!("http://127.0.0.1:{port}/write?db=x"),
            ..sink
        }],
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
            .expect("agent task");
        (r, started.elapsed())
    }
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

#[tokio::test(flavor = "multi_thread")]
async fn client_errors_drop_the_batch_and_count_it() {
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
    let (port, backend) = start_backend(vec![], answer(204)).await;
    let agent = start(config(port, 100, SinkConfig::default())).await;
    let (text, want) = gauges(2, 0);
    assert_eq!(agent.push(&text).await.status(), 200);
    wait_for_lines(&backend, 2, Duration::from_secs(10)).await;
    let r = &backend.received()[0];
    assert_eq!(r.path_and_query, "/write?db=x");
    assert_eq!(r.content_encoding.as_deref(), Some("gzip"));
    assert_eq!(r.content_type.as_deref(), Some("text/plain; charset=utf-8"));
    assert_eq!(r.body, format!("{}\n", want.join("\n")));
    assert_eq!(agent.stop_timed().await.0, Ok(0));

    // gzip = false: the body as is, no Content-Encoding.
    let (port, backend) = start_backend(vec![], answer(204)).await;
    let agent = start(config(
        port,
        100,
        SinkConfig {
            gzip: false,
            ..SinkConfig::default()
        },
    ))
    .await;
    assert_eq!(agent.push(&text).await.status(), 200);
    wait_for_lines(&backend, 2, Duration::from_secs(10)).await;
    let r = &backend.received()[0];
    assert_eq!(r.path_and_query, "/write?db=x");
    assert_eq!(r.content_encoding, None);
    assert_eq!(r.body, format!("{}\n", want.join("\n")));
    assert_eq!(agent.stop_timed().await.0, Ok(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn full_queue_with_block_refuses_pushes_with_503() {
    let (port, backend) = start_backend(vec![], answer(500)).await;
    let agent = start(config(
        port,
        100,
        SinkConfig {
            max_queue_bytes: 200,
            overflow: "block".into(),
            ..SinkConfig::default()
        },
    ))
    .await;
    let (first, _) = gauges(4, 0);
    assert_eq!(agent.push(&first).await.status(), 200);
    let (second, _) = gauges(4, 4);
    let r = agent.push(&second).await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some(
            pushkit::sink::QUEUE_FULL_RETRY_AFTER_SECS
                .to_string()
                .as_str()
        )
    );
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["error_code"], "queueFull", "{v}");
    let m = agent.self_metrics().await;
    assert!(
        m.contains("pushkit_pushes_total{method=\"PUT\",code=\"503\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("pushkit_sink_queue_points{sink=\"flaky\"} 4\n"),
        "{m}"
    );
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
    agent
        .wait_for_metric(
            "pushkit_sink_requests_total{sink=\"flaky\",outcome=\"retry\"} ",
            Duration::from_secs(5),
        )
        .await;
    let (r, took) = agent.stop_timed().await;
    assert_eq!(r, Ok(5));
    // shutdown_timeout is 1 s.
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    assert!(took >= Duration::from_millis(900), "shutdown took {took:?}");
}
