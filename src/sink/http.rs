//! Delivery of batches over HTTP, with retry: line protocol, or Prometheus
//! remote write.
//!
//! Network errors, timeouts, 429, 5xx and redirects to another origin
//! (which are not followed) are retried with exponential
//! backoff (`retry_base` doubling to `retry_max`) and jitter, honouring
//! `Retry-After`; the batch stays at the head until it is delivered, so
//! nothing is dropped for a backend outage (the queue's budget and overflow
//! policy decide what happens to new pushes). Any other non-2xx answer means
//! the data can never succeed: the batch is dropped, counted and logged
//! with the response body. For remote write, a 400 is first bisected: a
//! receiver such as Prometheus fails a whole request for one out-of-order
//! sample, so halves are retried until the rejected points are isolated,
//! and only those are dropped.

use super::disk::{Body, DiskBatch, DiskQueue, Form};
use super::drops;
use super::export::ExportTaken;
use super::lp_reply;
use super::queue::{Batch, BatchData, SinkQueue};
use super::remote_write;
use crate::lineproto::{encode_line_protocol, Dialect};
use crate::metrics::Metrics;
use crate::model::point::Point;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A `Retry-After` longer than this is capped, so a confused backend cannot
/// park a sink for hours.
#[cfg(feature = "net")]
const RETRY_AFTER_MAX: Duration = Duration::from_secs(300);

/// The wire format of a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    LineProtocol(Dialect),
    RemoteWrite,
}

/// The client a sink sends with (see `client`).
#[cfg(feature = "net")]
pub type Client = reqwest::Client;

/// Without the `net` feature there is no client, and this type has no
/// value: no `HttpSink` can be built (`SinkSet::start` refuses every sink).
#[cfg(not(feature = "net"))]
#[derive(Debug, Clone)]
pub enum Client {}

/// Exponential backoff bounds.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

pub struct HttpSink {
    pub name: String,
    pub url: String,
    pub gzip: bool,
    pub format: Format,
    pub backoff: Backoff,
    pub client: Client,
    /// The memory queue; unused when `disk` is set.
    pub queue: Arc<SinkQueue>,
    /// With `[io] queue_dir`: the shared disk queue and this sink's index.
    pub disk: Option<(Arc<DiskQueue>, usize)>,
    /// `max_disk_bytes`, for the 503 message.
    pub disk_budget: u64,
    pub metrics: Arc<Metrics>,
    /// What this sink sends that must never show (`client::sink_secrets`).
    pub secrets: Vec<String>,
}

/// How one attempt went. Without `net` no attempt is ever made.
#[cfg_attr(not(feature = "net"), allow(dead_code))]
enum Attempt {
    Delivered,
    Retry {
        after: Option<Duration>,
        why: String,
        /// The backend may have stored the batch (timeout, reset).
        maybe_stored: bool,
    },
    Rejected {
        status: u16,
        body: String,
    },
}

/// A batch from either queue.
enum Taken {
    Memory(Batch),
    Disk(DiskBatch),
}

/// Whose points a delivery carries: pushed points and store exports are
/// counted apart, and only pushes are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Push,
    Export,
}

/// Why a request body was not delivered.
enum Undelivered {
    /// The backend refused it: status and reply.
    Rejected(u16, String),
    /// An export's request failed in a way a push would retry: exports are
    /// sent once (the next one is due at the next interval).
    GaveUp,
}

impl HttpSink {
    /// Takes batches until the queue is closed and empty.
    pub async fn run(self: Arc<Self>, max_points: usize, flush_every: Duration) {
        let next = || async {
            match &self.disk {
                Some((disk, i)) => disk
                    .next_batch(*i, max_points, flush_every, self.disk_form())
                    .await
                    .map(Taken::Disk),
                None => self
                    .queue
                    .next_batch(max_points, flush_every)
                    .await
                    .map(Taken::Memory),
            }
        };
        // The wait for the next push batch lives across export batches, so
        // that an export never restarts a partial batch's flush interval.
        let mut pending = Box::pin(next());
        loop {
            // Pushes first: an export batch goes only while no push batch
            // is ready.
            let export_held = self.queue.export_held();
            let taken = tokio::select! {
                biased;
                taken = &mut pending => taken,
                () = std::future::ready(()), if export_held => {
                    self.send_export_batch(max_points).await;
                    continue;
                }
                () = self.queue.export_offered() => continue,
            };
            let Some(taken) = taken else { break };
            pending = Box::pin(next());
            self.handle(taken).await;
        }
    }

    /// Delivers one push batch and records it done.
    async fn handle(&self, mut taken: Taken) {
        self.update_depth();
        match &mut taken {
            Taken::Memory(Batch {
                data: BatchData::Lines(text),
                points,
                ..
            }) => {
                self.deliver_lines(std::mem::take(text), *points, Purpose::Push)
                    .await;
            }
            Taken::Memory(Batch {
                data: BatchData::Points(points),
                ..
            }) => {
                self.deliver(points, Purpose::Push).await;
            }
            Taken::Disk(DiskBatch {
                body: Body::Points(points),
                ..
            }) => {
                self.deliver(points, Purpose::Push).await;
            }
            Taken::Disk(DiskBatch {
                body:
                    Body::Lines {
                        text,
                        points,
                        drops,
                    },
                ..
            }) => {
                drops::note_lp(&self.metrics, &self.name, *drops);
                if *points > 0 {
                    self.deliver_lines(std::mem::take(text), *points, Purpose::Push)
                        .await;
                }
            }
        }
        if let Taken::Disk(b) = &taken {
            if b.lost_points > 0 {
                self.count_dropped(b.lost_points as usize, "corrupt");
            }
        }
        match taken {
            Taken::Memory(b) => self.queue.finish(&b),
            Taken::Disk(b) => {
                let (disk, i) = self.disk.clone().expect("disk batches come from disk");
                // Recording the cursor fsyncs: keep it off the async workers.
                let acked = tokio::task::spawn_blocking(move || disk.ack(i, &b)).await;
                if let Ok(Err(e)) = acked {
                    // The points went out; a lost cursor only means they
                    // are sent again after a restart.
                    tracing::error!(sink = %self.name, "cannot record delivery in the disk queue: {e}");
                }
            }
        }
        self.update_depth();
    }

    /// Sends the next batch of the export waiting, if one is. A request
    /// that fails ends the export (counted cut).
    async fn send_export_batch(&self, max_points: usize) {
        let (taken, cut) = self.queue.take_export(max_points);
        let m = &self.metrics;
        if cut > 0 {
            m.sink_exports.with(&[&self.name, "cut"]).add(cut as f64);
        }
        let batch = match taken {
            ExportTaken::Nothing => return,
            ExportTaken::Done => {
                m.sink_exports.with(&[&self.name, "sent"]).add(1.0);
                return;
            }
            ExportTaken::Batch(b) => b,
        };
        if batch.left_out > 0 {
            (m.sink_export_points.with(&[&self.name, "left_out"])).add(batch.left_out as f64);
        }
        let sent = match batch.data {
            BatchData::Lines(text) if batch.points > 0 => {
                self.deliver_lines(text, batch.points, Purpose::Export)
                    .await
            }
            BatchData::Lines(_) => true,
            BatchData::Points(points) => self.deliver(&points, Purpose::Export).await,
        };
        if !sent && self.queue.cut_export() {
            m.sink_exports.with(&[&self.name, "cut"]).add(1.0);
        }
    }

    /// How this sink reads the disk queue: line protocol straight from the
    /// records, or points for remote write.
    fn disk_form(&self) -> Form {
        match self.format {
            Format::LineProtocol(dialect) => Form::Lines(dialect),
            Format::RemoteWrite => Form::Points,
        }
    }

    /// Points and bytes waiting, the batch in flight included, and the age
    /// of the oldest.
    pub fn depth(&self) -> (u64, u64, Option<Duration>) {
        match &self.disk {
            Some((disk, i)) => {
                let (p, b) = disk.depth(*i);
                (p, b, disk.oldest_age(*i))
            }
            None => {
                let s = self.queue.lock();
                (s.depth_points() as u64, s.depth_bytes(), s.oldest_age())
            }
        }
    }

    pub fn update_depth(&self) {
        let (points, bytes, age) = self.depth();
        let m = &self.metrics;
        m.sink_queue_points.with(&[&self.name]).set(points as f64);
        m.sink_queue_bytes.with(&[&self.name]).set(bytes as f64);
        let age = age.map_or(0.0, |a| a.as_secs_f64());
        m.sink_queue_oldest_age.with(&[&self.name]).set(age);
    }

    /// Delivers `points`, retrying pushes until they are accepted or
    /// rejected. A 400 that refuses the batch whole is bisected down to the
    /// refused points; a line-protocol partial write is counted, never
    /// re-sent. False when an export's request failed (see [`Undelivered`]).
    async fn deliver(&self, points: &[Point], purpose: Purpose) -> bool {
        let mut refused = Refused::default();
        let mut pending = vec![points];
        let mut sent = true;
        while let Some(part) = pending.pop() {
            let body = match self.encode(part, purpose) {
                Ok(body) => body,
                Err(e) => {
                    self.encode_failed(part.len(), e, purpose);
                    continue;
                }
            };
            if body.is_empty() {
                continue;
            }
            match self.send(body, part.len(), purpose).await {
                Ok(()) => {}
                Err(Undelivered::GaveUp) => {
                    sent = false;
                    break;
                }
                Err(Undelivered::Rejected(status, reply)) => {
                    if let Some(refused) = self.partial_write(part.len(), status, &reply) {
                        self.count_partial_write(part.len(), refused, &reply, purpose);
                    } else if status == 400 && part.len() > 1 {
                        let (a, b) = remote_write::halves(part);
                        pending.push(b);
                        pending.push(a);
                    } else {
                        refused.add(part.len(), status, reply);
                    }
                }
            }
        }
        self.rejected(refused, purpose);
        sent
    }

    /// Delivers `points` points already written as line protocol, one per
    /// line, as [`HttpSink::deliver`] does points.
    async fn deliver_lines(&self, text: Vec<u8>, points: usize, purpose: Purpose) -> bool {
        let mut refused = Refused::default();
        let mut pending = vec![(0..text.len(), points)];
        let mut sent = true;
        while let Some((range, n)) = pending.pop() {
            let part = &text[range.clone()];
            let body = match self.compress(part) {
                Ok(body) => body,
                Err(e) => {
                    self.encode_failed(n, e, purpose);
                    continue;
                }
            };
            match self.send(body, n, purpose).await {
                Ok(()) => {}
                Err(Undelivered::GaveUp) => {
                    sent = false;
                    break;
                }
                Err(Undelivered::Rejected(status, reply)) => {
                    if let Some(refused) = self.partial_write(n, status, &reply) {
                        self.count_partial_write(n, refused, &reply, purpose);
                    } else if status == 400 && n > 1 {
                        let half = n.div_ceil(2);
                        let mid = range.start + lp_reply::after_line(part, half);
                        pending.push((mid..range.end, n - half));
                        pending.push((range.start..mid, half));
                    } else {
                        refused.add(n, status, reply);
                    }
                }
            }
        }
        self.rejected(refused, purpose);
        sent
    }

    /// The lines of a batch of `points` a line-protocol backend says it
    /// refused in a partial write (at most `points`), or None.
    fn partial_write(&self, points: usize, status: u16, reply: &str) -> Option<usize> {
        if status != 400 || self.format == Format::RemoteWrite {
            return None;
        }
        let refused = lp_reply::partial_write_dropped(reply)?;
        Some(usize::try_from(refused).unwrap_or(usize::MAX).min(points))
    }

    /// A partial write stored every line but `refused`: those are dropped
    /// (rejected), the rest delivered; none is sent again.
    fn count_partial_write(&self, points: usize, refused: usize, reply: &str, purpose: Purpose) {
        let why = format!(
            "stored a batch but {refused} of its {points} points (partial write), dropped: {}",
            self.one_line(reply)
        );
        tracing::error!(sink = %self.name, points, refused, "sink {why}");
        self.metrics.note_sink_error(&self.name, why);
        self.count_rejected(refused, purpose);
        self.count_delivered(points - refused, purpose);
    }

    fn count_delivered(&self, points: usize, purpose: Purpose) {
        let m = &self.metrics;
        let counter = match purpose {
            Purpose::Push => m.sink_delivered.with(&[&self.name]),
            Purpose::Export => m.sink_export_points.with(&[&self.name, "delivered"]),
        };
        counter.add(points as f64);
    }

    fn count_rejected(&self, points: usize, purpose: Purpose) {
        match purpose {
            Purpose::Push => self.count_dropped(points, "rejected"),
            Purpose::Export => (self.metrics.sink_export_points)
                .with(&[&self.name, "rejected"])
                .add(points as f64),
        }
    }

    /// Drops and logs what a batch's delivery had refused: one line for
    /// the whole batch, however many requests bisecting it took.
    fn rejected(&self, refused: Refused, purpose: Purpose) {
        let Some((status, reply)) = refused.first else {
            return;
        };
        let why = format!(
            "rejected a batch ({status}), dropped: {}",
            self.one_line(&reply)
        );
        tracing::error!(
            sink = %self.name,
            status,
            points = refused.points,
            requests = refused.requests,
            "sink {why}"
        );
        self.metrics.note_sink_error(&self.name, why);
        self.count_rejected(refused.points, purpose);
    }

    /// Writing gzip into memory does not fail in practice; if it does, the
    /// batch cannot be sent at all.
    fn encode_failed(&self, points: usize, e: std::io::Error, purpose: Purpose) {
        tracing::error!(sink = %self.name, points, "could not encode a batch, dropped: {e}");
        match purpose {
            Purpose::Push => self.count_dropped(points, "encode"),
            Purpose::Export => self.count_rejected(points, purpose),
        }
    }

    /// Sends one request body of `points` points until it is delivered (Ok)
    /// or rejected; an export's body is tried once.
    async fn send(
        &self,
        body: bytes::Bytes,
        points: usize,
        purpose: Purpose,
    ) -> Result<(), Undelivered> {
        let mut retries: u32 = 0;
        let mut maybe_duplicated = false;
        loop {
            let started = Instant::now();
            let attempt = self.attempt(body.clone()).await;
            self.metrics
                .sink_request_duration
                .with(&[&self.name])
                .observe(started.elapsed().as_secs_f64());
            match attempt {
                Attempt::Delivered => {
                    let n = points as f64;
                    self.metrics
                        .sink_requests
                        .with(&[&self.name, "success"])
                        .add(1.0);
                    self.count_delivered(points, purpose);
                    if maybe_duplicated {
                        self.metrics
                            .sink_duplicates
                            .with(&[&self.name, "timeout"])
                            .add(n);
                    }
                    if retries > 0 {
                        tracing::info!(sink = %self.name, retries, "sink recovered, batch delivered");
                    }
                    return Ok(());
                }
                Attempt::Rejected { status, body } => {
                    self.metrics
                        .sink_requests
                        .with(&[&self.name, "rejected"])
                        .add(1.0);
                    return Err(Undelivered::Rejected(status, body));
                }
                Attempt::Retry { why, .. } if purpose == Purpose::Export => {
                    self.metrics
                        .sink_requests
                        .with(&[&self.name, "retry"])
                        .add(1.0);
                    tracing::warn!(sink = %self.name, points, "export request failed, the rest of this export is skipped: {why}");
                    return Err(Undelivered::GaveUp);
                }
                Attempt::Retry {
                    after,
                    why,
                    maybe_stored,
                } => {
                    maybe_duplicated |= maybe_stored;
                    self.metrics
                        .sink_requests
                        .with(&[&self.name, "retry"])
                        .add(1.0);
                    self.metrics
                        .sink_retried
                        .with(&[&self.name])
                        .add(points as f64);
                    let wait = after.unwrap_or_else(|| backoff(self.backoff, retries));
                    tracing::warn!(
                        sink = %self.name,
                        points,
                        retry_in_ms = wait.as_millis() as u64,
                        "sink write failed, will retry: {why}"
                    );
                    self.metrics
                        .note_sink_error(&self.name, format!("write failed, retrying: {why}"));
                    retries = retries.saturating_add(1);
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    fn encode(&self, points: &[Point], purpose: Purpose) -> std::io::Result<bytes::Bytes> {
        match self.format {
            // Snappy is part of the remote-write protocol; gzip does not apply.
            Format::RemoteWrite => Ok(remote_write::encode(points).into()),
            Format::LineProtocol(dialect) => {
                let (text, left_out) = encode_line_protocol(points, dialect);
                match purpose {
                    Purpose::Push => drops::note_lp(&self.metrics, &self.name, left_out),
                    Purpose::Export => (self.metrics.sink_export_points)
                        .with(&[&self.name, "left_out"])
                        .add(left_out.total() as f64),
                }
                if text.is_empty() {
                    // Nothing line protocol can carry: nothing to send.
                    return Ok(bytes::Bytes::new());
                }
                self.compress(&text)
            }
        }
    }

    /// A line-protocol body, gzipped when the sink is configured so.
    fn compress(&self, text: &[u8]) -> std::io::Result<bytes::Bytes> {
        if !self.gzip {
            return Ok(bytes::Bytes::copy_from_slice(text));
        }
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(text.len() / 4),
            flate2::Compression::fast(),
        );
        gz.write_all(text)?;
        Ok(gz.finish()?.into())
    }

    #[cfg(not(feature = "net"))]
    async fn attempt(&self, _body: bytes::Bytes) -> Attempt {
        match self.client {}
    }

    #[cfg(feature = "net")]
    async fn attempt(&self, body: bytes::Bytes) -> Attempt {
        let mut req = self.client.post(&self.url).body(body);
        match self.format {
            Format::RemoteWrite => {
                for (k, v) in remote_write::HEADERS {
                    req = req.header(*k, *v);
                }
            }
            Format::LineProtocol(_) => {
                req = req.header("Content-Type", "text/plain; charset=utf-8");
                if self.gzip {
                    req = req.header("Content-Encoding", "gzip");
                }
            }
        }
        let resp = match req.send().await {
            Ok(resp) => resp,
            Err(e) => {
                return Attempt::Retry {
                    after: None,
                    // A request that never connected cannot have been stored.
                    maybe_stored: !e.is_connect(),
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
        let location = resp
            .headers()
            .get("Location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.text().await.unwrap_or_default();
        // Enough for a partial write's every `unable to parse` clause.
        let body: String = body.chars().take(REPLY_MAX_CHARS).collect();
        if status.is_redirection() {
            // Not followed (see `client`): kept and retried, as the URL
            // may be fixed or the redirect may go; never dropped.
            let to = location.as_deref().map(crate::config::redact_secrets);
            return Attempt::Retry {
                after: retry_after,
                maybe_stored: false,
                why: format!(
                    "HTTP {}: a redirect to another origin ({}) is not followed",
                    status.as_u16(),
                    to.as_deref().unwrap_or("no Location")
                ),
            };
        }
        if status.as_u16() == 429 || status.is_server_error() {
            Attempt::Retry {
                after: retry_after,
                maybe_stored: false,
                why: format!("HTTP {}: {}", status.as_u16(), self.one_line(&body)),
            }
        } else {
            Attempt::Rejected {
                status: status.as_u16(),
                body,
            }
        }
    }

    fn count_dropped(&self, points: usize, reason: &str) {
        self.metrics
            .sink_dropped
            .with(&[&self.name, reason])
            .add(points as f64);
    }
}

/// What the backend refused while one batch was delivered.
#[derive(Default)]
struct Refused {
    points: usize,
    /// Requests whose points were dropped.
    requests: usize,
    /// The first refusal's status and reply, for the log.
    first: Option<(u16, String)>,
}

impl Refused {
    fn add(&mut self, points: usize, status: u16, reply: String) {
        self.points += points;
        self.requests += 1;
        self.first.get_or_insert((status, reply));
    }
}

/// The most of a refusing reply that is read.
#[cfg(feature = "net")]
const REPLY_MAX_CHARS: usize = 1 << 20;
/// The most of a reply that goes into one log line.
const LOG_MAX_CHARS: usize = 1024;

/// A backend's reply body as one log line: trimmed, newlines as spaces,
/// secrets redacted (a backend may echo a token), cut at 1,024 characters.
impl HttpSink {
    /// A backend's answer as one line for the log and the status page:
    /// this sink's own secrets and anything that looks like one redacted,
    /// cut to [`LOG_MAX_CHARS`].
    fn one_line(&self, body: &str) -> String {
        let mut line = body.split_whitespace().collect::<Vec<_>>().join(" ");
        for secret in &self.secrets {
            if line.contains(secret.as_str()) {
                line = line.replace(secret.as_str(), "REDACTED");
            }
        }
        crate::config::redact_secrets(&line)
            .chars()
            .take(LOG_MAX_CHARS)
            .collect()
    }
}

#[cfg(feature = "net")]
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
pub fn backoff(bounds: Backoff, retries: u32) -> Duration {
    let exp = bounds.base.saturating_mul(1u32 << retries.min(16));
    let capped = exp.min(bounds.max);
    // Jitter needs no cryptographic quality.
    let jitter = 0.75 + 0.5 * fastrand::f64();
    capped.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: Backoff = Backoff {
        base: Duration::from_millis(500),
        max: Duration::from_secs(30),
    };

    #[test]
    fn backoff_grows_and_is_capped() {
        for r in 0..40 {
            let d = backoff(BOUNDS, r);
            let nominal = BOUNDS
                .base
                .saturating_mul(1u32 << r.min(16))
                .min(BOUNDS.max);
            assert!(
                d >= nominal.mul_f64(0.75) && d <= nominal.mul_f64(1.25),
                "{r}: {d:?}"
            );
        }
        assert!(backoff(BOUNDS, 0) < Duration::from_secs(1));
        assert!(backoff(BOUNDS, 30) <= BOUNDS.max.mul_f64(1.25));
    }
}
