//! A sink's in-memory queue: points waiting to be sent, bounded by an
//! estimate of their line-protocol size.
//!
//! Contract: all methods are safe to call concurrently. Pushes enter whole
//! (`admit` is all or nothing for one sink; [`super::SinkSet`] makes it all
//! or nothing across sinks by locking every queue before admitting). The
//! queue keeps arrival order; one worker takes batches from its head.

use crate::point::Point;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// What a sink does when a push does not fit in its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Refuse the push (503 with Retry-After); nothing is dropped.
    Block,
    /// Drop the oldest queued points to make room, counting them.
    DropOldest,
}

impl Overflow {
    pub fn from_config(s: &str) -> Overflow {
        match s {
            "drop_oldest" => Overflow::DropOldest,
            _ => Overflow::Block,
        }
    }
}

/// Estimated line-protocol bytes of a point: what the budget counts.
pub fn point_cost(p: &Point) -> u64 {
    let tags: usize = p.tags.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let fields: usize = p.fields.iter().map(|f| f.key.len() + 20).sum();
    (p.measurement.len() + tags + fields + 21) as u64
}

/// A run of points from one push, shared between the sinks' queues.
struct Chunk {
    points: Arc<Vec<Point>>,
    start: usize,
    /// When the push was admitted, for the age of the oldest point.
    at: Instant,
}

#[derive(Default)]
pub struct QueueState {
    chunks: VecDeque<Chunk>,
    queued_points: usize,
    queued_bytes: u64,
    inflight_points: usize,
    inflight_bytes: u64,
    /// When the oldest point of the batch in flight was admitted.
    inflight_since: Option<Instant>,
    closed: bool,
}

impl QueueState {
    /// Points waiting plus the batch in flight.
    pub fn depth_points(&self) -> usize {
        self.queued_points + self.inflight_points
    }

    pub fn depth_bytes(&self) -> u64 {
        self.queued_bytes + self.inflight_bytes
    }

    /// How long the oldest point waiting (or in flight) has been queued.
    pub fn oldest_age(&self) -> Option<Duration> {
        self.inflight_since
            .or_else(|| self.chunks.front().map(|c| c.at))
            .map(|at| at.elapsed())
    }
}

/// A batch taken from the queue: the worker owns it until it calls
/// [`SinkQueue::finish`].
pub struct Batch {
    pub points: Vec<Point>,
    pub bytes: u64,
}

pub struct SinkQueue {
    state: Mutex<QueueState>,
    wake: Notify,
    pub max_bytes: u64,
    pub overflow: Overflow,
}

impl SinkQueue {
    pub fn new(max_bytes: u64, overflow: Overflow) -> Self {
        SinkQueue {
            state: Mutex::new(QueueState::default()),
            wake: Notify::new(),
            max_bytes,
            overflow,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap()
    }

    /// Would `cost` more bytes fit? An empty queue takes any push, so that
    /// a push bigger than the budget is not refused forever.
    pub fn has_room(&self, state: &QueueState, cost: u64) -> bool {
        state.depth_bytes() == 0 || state.depth_bytes() + cost <= self.max_bytes
    }

    /// Appends a push under a lock the caller holds. Returns the number of
    /// old points dropped to make room (only with `DropOldest`).
    pub fn admit(&self, state: &mut QueueState, points: Arc<Vec<Point>>, cost: u64) -> usize {
        let mut dropped = 0;
        if self.overflow == Overflow::DropOldest {
            while !self.has_room(state, cost) && state.queued_points > 0 {
                let Some(chunk) = state.chunks.front_mut() else {
                    break;
                };
                let p = &chunk.points[chunk.start];
                state.queued_bytes -= point_cost(p);
                state.queued_points -= 1;
                chunk.start += 1;
                dropped += 1;
                if chunk.start == chunk.points.len() {
                    state.chunks.pop_front();
                }
            }
        }
        state.queued_points += points.len();
        state.queued_bytes += cost;
        state.chunks.push_back(Chunk {
            points,
            start: 0,
            at: Instant::now(),
        });
        self.wake.notify_one();
        dropped
    }

    /// Waits for a batch: `max_points` points, or whatever is queued when
    /// `flush_every` elapses or the queue is closed. `None` once the queue
    /// is closed and empty.
    pub async fn next_batch(&self, max_points: usize, flush_every: Duration) -> Option<Batch> {
        // The flush interval runs from the first point waiting, so an idle
        // queue sleeps until a push arrives instead of spinning.
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let notified = self.wake.notified();
            {
                let mut state = self.lock();
                if state.queued_points > 0 && deadline.is_none() {
                    deadline = Some(tokio::time::Instant::now() + flush_every);
                }
                let timed_out = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
                if state.queued_points >= max_points
                    || (state.queued_points > 0 && (timed_out || state.closed))
                {
                    return Some(take(&mut state, max_points));
                }
                if state.closed {
                    return None;
                }
            }
            match deadline {
                Some(d) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep_until(d) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// The worker is done with a batch (delivered or dropped).
    pub fn finish(&self, batch: &Batch) {
        let mut state = self.lock();
        state.inflight_points -= batch.points.len();
        state.inflight_bytes -= batch.bytes;
        state.inflight_since = None;
    }

    /// No more pushes: the worker sends what is left without waiting.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }
}

fn take(state: &mut QueueState, max_points: usize) -> Batch {
    let mut points = Vec::with_capacity(max_points.min(state.queued_points));
    let mut bytes = 0;
    state.inflight_since = state.chunks.front().map(|c| c.at);
    while points.len() < max_points {
        let Some(chunk) = state.chunks.front_mut() else {
            break;
        };
        let want = max_points - points.len();
        let whole = chunk.start == 0 && chunk.points.len() <= want;
        if whole && Arc::strong_count(&chunk.points) == 1 {
            // This sink alone holds the push: move its points, no copies.
            let chunk = state.chunks.pop_front().expect("front exists");
            let owned = Arc::try_unwrap(chunk.points).unwrap_or_else(|shared| (*shared).clone());
            bytes += owned.iter().map(point_cost).sum::<u64>();
            points.extend(owned);
            continue;
        }
        let end = (chunk.start + want).min(chunk.points.len());
        for p in &chunk.points[chunk.start..end] {
            bytes += point_cost(p);
            points.push(p.clone());
        }
        chunk.start = end;
        if chunk.start == chunk.points.len() {
            state.chunks.pop_front();
        }
    }
    state.queued_points -= points.len();
    state.queued_bytes -= bytes;
    state.inflight_points += points.len();
    state.inflight_bytes += bytes;
    Batch { points, bytes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expfmt::model::MetricType;
    use crate::point::{Field, SeriesSuffix};

    fn points(n: usize) -> Arc<Vec<Point>> {
        Arc::new(
            (0..n)
                .map(|i| Point {
                    measurement: "m".into(),
                    tags: vec![],
                    fields: vec![Field {
                        key: "f".into(),
                        value: i as f64,
                        suffix: SeriesSuffix::None,
                    }],
                    time_ns: i as i64,
                    family: Arc::from("m_f"),
                    kind: MetricType::Gauge,
                })
                .collect(),
        )
    }

    fn cost(p: &Arc<Vec<Point>>) -> u64 {
        p.iter().map(point_cost).sum()
    }

    #[tokio::test]
    async fn batches_split_across_chunks_in_order() {
        let q = SinkQueue::new(1 << 20, Overflow::Block);
        for _ in 0..3 {
            let p = points(4);
            let c = cost(&p);
            q.admit(&mut q.lock(), p, c);
        }
        let b = q.next_batch(5, Duration::from_secs(60)).await.unwrap();
        let values: Vec<f64> = b.points.iter().map(|p| p.fields[0].value).collect();
        assert_eq!(values, [0.0, 1.0, 2.0, 3.0, 0.0]);
        assert_eq!(q.lock().depth_points(), 12);
        q.finish(&b);
        assert_eq!(q.lock().depth_points(), 7);
        q.close();
        let b = q.next_batch(5, Duration::from_secs(60)).await.unwrap();
        assert_eq!(b.points.len(), 5);
        q.finish(&b);
        let b = q.next_batch(5, Duration::from_secs(60)).await.unwrap();
        assert_eq!(b.points.len(), 2);
        q.finish(&b);
        assert!(q.next_batch(5, Duration::from_secs(60)).await.is_none());
        assert_eq!(q.lock().depth_bytes(), 0);
    }

    #[tokio::test]
    async fn partial_batch_goes_out_after_the_flush_interval() {
        let q = SinkQueue::new(1 << 20, Overflow::Block);
        let p = points(2);
        let c = cost(&p);
        q.admit(&mut q.lock(), p, c);
        let b = q.next_batch(1000, Duration::from_millis(20)).await.unwrap();
        assert_eq!(b.points.len(), 2);
    }

    #[test]
    fn budget_and_drop_oldest() {
        let one = cost(&points(1));
        let q = SinkQueue::new(one * 3, Overflow::Block);
        let p = points(3);
        q.admit(&mut q.lock(), p, one * 3);
        assert!(!q.has_room(&q.lock(), one));

        let q = SinkQueue::new(one * 3, Overflow::DropOldest);
        q.admit(&mut q.lock(), points(3), one * 3);
        let dropped = q.admit(&mut q.lock(), points(2), one * 2);
        assert_eq!(dropped, 2);
        assert_eq!(q.lock().depth_points(), 3);
    }

    #[test]
    fn an_empty_queue_takes_an_oversize_push() {
        let q = SinkQueue::new(1, Overflow::Block);
        assert!(q.has_room(&q.lock(), 1000));
    }
}
