//! Sinks: where points go. Each configured sink has its own queue, budget
//! and worker, so a slow or down sink holds back only itself (and, with
//! `overflow = "block"`, new pushes once its budget is full). With no sink
//! configured, points are written to stdout as line protocol.

pub mod client;
pub mod http;
pub mod queue;
pub mod remote_write;
pub mod stdout;

use crate::config::{IoConfig, SinkConfig};
use crate::metrics::{self, Metrics};
use crate::point::Point;
use queue::{point_cost, Overflow, SinkQueue};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Seconds a client is asked to wait when a sink's queue is full.
pub const QUEUE_FULL_RETRY_AFTER_SECS: u64 = 5;

/// A push refused because a sink with `overflow = "block"` has no room.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueFull {
    pub sink: String,
    pub max_bytes: u64,
}

pub struct SinkSet {
    http: Vec<Arc<http::HttpSink>>,
    /// Used when no HTTP sink is configured.
    lines: stdout::LineOutput,
    metrics: Arc<Metrics>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl SinkSet {
    /// Builds the sinks and starts one worker per HTTP sink. Must run inside
    /// a tokio runtime.
    pub fn start(
        sinks: &[SinkConfig],
        io: &IoConfig,
        lines: stdout::LineOutput,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<SinkSet>, String> {
        let mut http_sinks = Vec::new();
        for cfg in sinks {
            let client = client::build_client(cfg)?;
            http_sinks.push(Arc::new(http::HttpSink {
                name: cfg.name.clone(),
                url: cfg.url.clone(),
                gzip: cfg.gzip,
                client,
                queue: Arc::new(SinkQueue::new(
                    cfg.max_queue_bytes,
                    Overflow::from_config(&cfg.overflow),
                )),
                metrics: metrics.clone(),
            }));
        }
        let workers = http_sinks
            .iter()
            .map(|s| {
                metrics.set(metrics::SINK_QUEUE_POINTS, &[&s.name], 0.0);
                metrics.set(metrics::SINK_QUEUE_BYTES, &[&s.name], 0.0);
                tokio::spawn(s.clone().run(io.max_cache_count, io.flush_interval))
            })
            .collect();
        Ok(Arc::new(SinkSet {
            http: http_sinks,
            lines,
            metrics,
            workers: Mutex::new(workers),
        }))
    }

    /// Hands a push's points to every sink, all or nothing: if a sink with
    /// `overflow = "block"` has no room, no sink gets them.
    pub fn enqueue(&self, points: Vec<Point>) -> Result<(), QueueFull> {
        if points.is_empty() {
            return Ok(());
        }
        if self.http.is_empty() {
            // A closed stdout loses the points; this debugging sink has no
            // queue to keep them in, so say how many.
            if let Err(e) = stdout::write_points(&self.lines, &points) {
                tracing::error!(
                    "writing points to stdout failed, {} points lost: {e}",
                    points.len()
                );
            }
            return Ok(());
        }
        let cost: u64 = points.iter().map(point_cost).sum();
        let points = Arc::new(points);
        // Lock every queue, in configuration order (so two pushes cannot
        // deadlock), before deciding: the check and the admit are one step.
        let mut guards: Vec<_> = self.http.iter().map(|s| s.queue.lock()).collect();
        for (sink, state) in self.http.iter().zip(&guards) {
            if sink.queue.overflow == Overflow::Block && !sink.queue.has_room(state, cost) {
                return Err(QueueFull {
                    sink: sink.name.clone(),
                    max_bytes: sink.queue.max_bytes,
                });
            }
        }
        let mut depths = Vec::with_capacity(self.http.len());
        for (sink, state) in self.http.iter().zip(guards.iter_mut()) {
            let dropped = sink.queue.admit(state, points.clone(), cost);
            if dropped > 0 {
                tracing::warn!(sink = %sink.name, dropped, "queue full: dropped the oldest points (overflow = drop_oldest)");
                self.metrics.add(
                    metrics::SINK_DROPPED,
                    &[&sink.name, "queue_full"],
                    dropped as f64,
                );
            }
            depths.push((state.depth_points(), state.depth_bytes()));
        }
        drop(guards);
        for (sink, (p, b)) in self.http.iter().zip(depths) {
            self.metrics
                .set(metrics::SINK_QUEUE_POINTS, &[&sink.name], p as f64);
            self.metrics
                .set(metrics::SINK_QUEUE_BYTES, &[&sink.name], b as f64);
        }
        Ok(())
    }

    /// Closes the queues and lets the workers send what they hold, for at
    /// most `timeout`. Returns the number of points not delivered, which
    /// are counted as dropped with reason `shutdown`.
    pub async fn shutdown(&self, timeout: Duration) -> usize {
        for s in &self.http {
            s.queue.close();
        }
        let workers: Vec<_> = std::mem::take(&mut *self.workers.lock().unwrap());
        let aborts: Vec<_> = workers.iter().map(|w| w.abort_handle()).collect();
        let all = futures_util::future::join_all(workers);
        if tokio::time::timeout(timeout, all).await.is_err() {
            for a in aborts {
                a.abort();
            }
        }
        let mut undelivered = 0;
        for s in &self.http {
            let left = s.queue.lock().depth_points();
            if left > 0 {
                tracing::error!(sink = %s.name, points = left, "shutdown_timeout reached: points not delivered");
                self.metrics
                    .add(metrics::SINK_DROPPED, &[&s.name, "shutdown"], left as f64);
            }
            undelivered += left;
        }
        undelivered
    }
}
