#![allow(dead_code)] // each test crate uses a different part of the harness
//! The agent in process for integration tests: `agent::run` on a free
//! loopback port, with the line-protocol sink captured in memory.

use pushkit::config::Config;
use pushkit::sink::stdout::LineOutput;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A `Write` that appends to a shared buffer.
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub struct Agent {
    pub base: String,
    pub out: Arc<Mutex<Vec<u8>>>,
    pub stop: Option<oneshot::Sender<()>>,
    pub handle: JoinHandle<Result<usize, pushkit::agent::AgentError>>,
    pub client: reqwest::Client,
}

/// Starts the agent in process on a free loopback port, its line-protocol
/// output captured.
pub async fn start(config: Config) -> Agent {
    start_with_io(config, Arc::new(pushkit::durable::RealIo)).await
}

/// [`start`], with the journal (and a log shared with the disk queue)
/// written through `io`, which can inject faults.
pub async fn start_with_io(config: Config, io: Arc<dyn pushkit::durable::Io>) -> Agent {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let out = Arc::new(Mutex::new(Vec::new()));
    let lines: LineOutput = Arc::new(Mutex::new(Box::new(Capture(out.clone()))));
    let (tx, rx) = oneshot::channel::<()>();
    let shutdown = async {
        let _ = rx.await;
    };
    let handle = tokio::spawn(pushkit::agent::run_with_io(
        config, listener, lines, shutdown, io,
    ));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    Agent {
        base,
        out,
        stop: Some(tx),
        handle,
        client,
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    /// Asserts a JSON error reply with this status and code; returns the message.
    pub fn assert_error(&self, status: u16, code: &str, what: &str) -> String {
        assert_eq!(self.status, status, "{what}: {}", self.body);
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{what}"
        );
        let v: serde_json::Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{what}: body is not JSON ({e}): {}", self.body));
        assert_eq!(v["error_code"], code, "{what}: {}", self.body);
        let msg = v["message"].as_str().expect("message is a string");
        assert!(!msg.is_empty(), "{what}");
        msg.to_string()
    }
}

impl Agent {
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path))
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn put_text(&self, path: &str, body: &str) -> Reply {
        self.send("PUT", path, &[], body.as_bytes().to_vec()).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, &[], Vec::new()).await
    }

    /// Everything emitted so far, then cleared.
    pub fn take_output(&self) -> String {
        let mut out = self.out.lock().unwrap();
        String::from_utf8(std::mem::take(&mut *out)).unwrap()
    }

    pub fn output(&self) -> String {
        String::from_utf8(self.out.lock().unwrap().clone()).unwrap()
    }

    pub async fn stop(mut self) -> Result<usize, String> {
        drop(self.client);
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("agent::run returns after shutdown")
            .expect("agent task")
            .map_err(|e| e.to_string())
    }
}
