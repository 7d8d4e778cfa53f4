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
    pub handle: JoinHandle<Result<usize, String>>,
    pub client: reqwest::Client,
}

/// Starts the agent in process on a free loopback port, its line-protocol
/// output captured.
pub async fn start(config: Config) -> Agent {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let out = Arc::new(Mutex::new(Vec::new()));
    let lines: LineOutput = Arc::new(Mutex::new(Box::new(Capture(out.clone()))));
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(pushkit::agent::run(config, listener, lines, async {
        let _ = rx.await;
    }));
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
