//! Delivery of line-protocol batches over HTTP, with retry.
//!
//! Network errors, timeouts, 429 and 5xx are retried with exponential
//! backoff and jitter, honouring `Retry-After`; the batch stays at the head
//! until it is delivered, so nothing is dropped for a backend outage (the
//! queue's budget and overflow policy decide what happens to new pushes).
//! Any other non-2xx answer means the data can never succeed: the batch is
//! dropped, counted and logged with the response body.

use super::queue::{Batch, SinkQueue};
use crate::metrics::{self, Metrics};
use crate::point::encode_line_protocol;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Backoff bounds; the first retry waits about `BACKOFF_BASE`.
pub const BACKOFF_BASE: Duration = Duration::from_millis(500);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A `Retry-After` longer than this is capped, so a confused backend cannot
/// park a sink for hours.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(300);

pub struct HttpSink {
    pub name: String,
    pub url: String,
    pub gzip: bool,
    pub client: reqwest::Client,
    pub queue: Arc<SinkQueue>,
    pub metrics: Arc<Metrics>,
}

/// How one attempt went.
enum Attempt {
    Delivered,
    Retry {
        after: Option<Duration>,
        why: String,
    },
    Rejected {
        status: u16,
        body: String,
    },
}

impl HttpSink {
    /// Takes batches until the queue is closed and empty.
    pub async fn run(self: Arc<Self>, max_points: usize, flush_every: Duration) {
        while let Some(batch) = self.queue.next_batch(max_points, flush_every).await {
            self.update_depth();
            self.deliver(&batch).await;
            self.queue.finish(&batch);
            self.update_depth();
        }
    }

    fn update_depth(&self) {
        let (points, bytes) = {
            let s = self.queue.lock();
            (s.depth_points(), s.depth_bytes())
        };
        self.metrics
            .set(metrics::SINK_QUEUE_POINTS, &[&self.name], points as f64);
        self.metrics
            .set(metrics::SINK_QUEUE_BYTES, &[&self.name], bytes as f64);
    }

    async fn deliver(&self, batch: &Batch) {
        let body = match self.encode(batch) {
            Ok(body) => bytes::Bytes::from(body),
            Err(e) => {
                // Writing gzip into memory does not fail in practice; if it
                // does, the batch cannot be sent at all.
                tracing::error!(sink = %self.name, points = batch.points.len(), "could not gzip a batch, dropped: {e}");
                self.count_dropped(batch, "encode");
                return;
            }
        };
        let mut retries: u32 = 0;
        loop {
            let started = Instant::now();
            let attempt = self.attempt(body.clone()).await;
            self.metrics.observe(
                metrics::SINK_REQUEST_DURATION,
                &[&self.name],
                started.elapsed().as_secs_f64(),
            );
            match attempt {
                Attempt::Delivered => {
                    self.metrics
                        .add(metrics::SINK_REQUESTS, &[&self.name, "success"], 1.0);
                    self.metrics.add(
                        metrics::SINK_DELIVERED,
                        &[&self.name],
                        batch.points.len() as f64,
                    );
                    if retries > 0 {
                        tracing::info!(sink = %self.name, retries, "sink recovered, batch delivered");
                    }
                    return;
                }
                Attempt::Rejected { status, body } => {
                    self.metrics
                        .add(metrics::SINK_REQUESTS, &[&self.name, "rejected"], 1.0);
                    tracing::error!(
                        sink = %self.name,
                        status,
                        points = batch.points.len(),
                        "sink rejected a batch, dropped: {body}"
                    );
                    self.count_dropped(batch, "rejected");
                    return;
                }
                Attempt::Retry { after, why } => {
                    self.metrics
                        .add(metrics::SINK_REQUESTS, &[&self.name, "retry"], 1.0);
                    let wait = after.unwrap_or_else(|| backoff(retries));
                    tracing::warn!(
                        sink = %self.name,
                        points = batch.points.len(),
                        retry_in_ms = wait.as_millis() as u64,
                        "sink write failed, will retry: {why}"
                    );
                    retries = retries.saturating_add(1);
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    fn encode(&self, batch: &Batch) -> std::io::Result<Vec<u8>> {
        let text = encode_line_protocol(&batch.points);
        if !self.gzip {
            return Ok(text.into_bytes());
        }
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(text.len() / 4),
            flate2::Compression::fast(),
        );
        gz.write_all(text.as_bytes())?;
        gz.finish()
    }

    async fn attempt(&self, body: bytes::Bytes) -> Attempt {
        let mut req = self
            .client
            .post(&self.url)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(body);
        if self.gzip {
            req = req.header("Content-Encoding", "gzip");
        }
        let resp = match req.send().await {
            Ok(resp) => resp,
            Err(e) => {
                return Attempt::Retry {
                    after: None,
                    // reqwest's error text includes the URL; keep only the kind.
                    why: describe_error(&e),
                };
            }
        };
        let status = resp.status();
        if status.is_success() {
            return Attempt::Delivered;
        }
        let retry_after = resp
            .headers()
            .get("Retry-After")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s).min(RETRY_AFTER_MAX));
        let body = resp.text().await.unwrap_or_default();
        let body: String = body.chars().take(1024).collect();
        if status.as_u16() == 429 || status.is_server_error() {
            Attempt::Retry {
                after: retry_after,
                why: format!("HTTP {}: {}", status.as_u16(), body.trim()),
            }
        } else {
            Attempt::Rejected {
                status: status.as_u16(),
                body,
            }
        }
    }

    fn count_dropped(&self, batch: &Batch, reason: &str) {
        self.metrics.add(
            metrics::SINK_DROPPED,
            &[&self.name, reason],
            batch.points.len() as f64,
        );
    }
}

fn describe_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_request() {
        "request failed"
    } else {
        "network error"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}

/// Exponential backoff with ±25 % jitter, so that many agents behind one
/// recovering backend do not retry in step.
pub fn backoff(retries: u32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << retries.min(16));
    let capped = exp.min(BACKOFF_MAX);
    let jitter = 0.75 + 0.5 * unit_random();
    capped.mul_f64(jitter)
}

/// A cheap random number in [0, 1): jitter needs no cryptographic quality.
fn unit_random() -> f64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0x9e37_79b9_7f4a_7c15)
                | 1,
        );
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for r in 0..40 {
            let d = backoff(r);
            let nominal = BACKOFF_BASE
                .saturating_mul(1u32 << r.min(16))
                .min(BACKOFF_MAX);
            assert!(
                d >= nominal.mul_f64(0.75) && d <= nominal.mul_f64(1.25),
                "{r}: {d:?}"
            );
        }
        assert!(backoff(0) < Duration::from_secs(1));
        assert!(backoff(30) <= BACKOFF_MAX.mul_f64(1.25));
    }
}
