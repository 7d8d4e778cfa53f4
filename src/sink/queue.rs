//! A sink's in-memory queue: points waiting to be sent, in the form the
//! sink sends (line protocol, or `Point`s for remote write), bounded by
//! their line-protocol size (exact for lines, estimated for `Point`s).
//!
//! Contract: all methods are safe to call concurrently. Pushes enter whole
//! (`admit` is all or nothing for one sink; [`super::SinkSet`] makes it all
//! or nothing across sinks by locking every queue before admitting). The
//! queue keeps arrival order; one worker takes batches from its head.
//!
//! A push stored beside a journal enters with the [`Slot`] of its journal
//! record: the worker takes it only once that record is durable, and
//! drops it, unsent, if the record failed (the push was refused). What
//! comes after it waits for it, so order is kept.
//!
//! Beside the pushes it may hold one store export (`export`), counted in
//! the budget until a push needs its room.

use super::export::{ExportSlot, ExportSource, ExportTaken};
pub use super::form::{point_cost, BatchData, Payload};
use crate::durable::{Slot, SlotState};
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How often a worker whose head waits for its journal record looks again
/// without being told.
const JOURNAL_POLL: Duration = Duration::from_millis(20);

/// What a sink does when a push does not fit in its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Refuse the push (503 with Retry-After); nothing is dropped.
    Block,
    /// Drop the oldest queued points to make room, counting them.
    DropOldest,
}

/// A run of points from one push.
struct Chunk {
    payload: Payload,
    start: usize,
    /// When the push was admitted, for the age of the oldest point.
    at: Instant,
    /// The journal record it waits for; `None` once durable, or without
    /// a journal.
    slot: Option<Slot>,
}

#[derive(Default)]
pub struct QueueState {
    chunks: VecDeque<Chunk>,
    queued_points: usize,
    queued_bytes: u64,
    inflight_points: usize,
    inflight_bytes: u64,
    /// Bytes held for pushes being parsed (see [`Reservation`]).
    reserved_bytes: u64,
    /// When the oldest point of the batch in flight was admitted.
    inflight_since: Option<Instant>,
    closed: bool,
    /// The store export waiting beside the pushes, if any (see `export`).
    pub(super) export: ExportSlot,
}

impl QueueState {
    /// Points waiting plus the batch in flight.
    pub fn depth_points(&self) -> usize {
        self.queued_points + self.inflight_points
    }

    pub fn depth_bytes(&self) -> u64 {
        self.queued_bytes + self.inflight_bytes
    }

    /// Bytes held for pushes being parsed.
    pub fn reserved_bytes(&self) -> u64 {
        self.reserved_bytes
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
    pub data: BatchData,
    /// Points in the batch.
    pub points: usize,
    pub bytes: u64,
}

pub struct SinkQueue {
    state: Mutex<QueueState>,
    wake: Notify,
    /// Notified when an export is offered.
    pub(super) export_wake: Notify,
    /// Notified when a batch is done and its bytes leave the budget.
    room: Notify,
    pub max_bytes: u64,
    pub overflow: Overflow,
}

impl SinkQueue {
    pub fn new(max_bytes: u64, overflow: Overflow) -> Self {
        SinkQueue {
            state: Mutex::new(QueueState::default()),
            wake: Notify::new(),
            export_wake: Notify::new(),
            room: Notify::new(),
            max_bytes,
            overflow,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap()
    }

    /// Would `cost` more bytes fit beside what is queued and reserved? An
    /// empty queue takes any push, so that a push bigger than the budget is
    /// not refused forever. An export held makes way for it if it must.
    pub fn has_room(&self, state: &mut QueueState, cost: u64) -> bool {
        let taken = state.depth_bytes() + state.reserved_bytes;
        let with_export = taken + state.export.bytes;
        if with_export == 0 || with_export + cost <= self.max_bytes {
            return true;
        }
        make_room_for_push(state, taken, cost, self.max_bytes)
    }

    /// Holds `bytes` for a push about to be parsed.
    pub fn reserve(&self, state: &mut QueueState, bytes: u64) {
        state.reserved_bytes += bytes;
    }

    /// Gives back what [`SinkQueue::reserve`] held, and lets a waiting
    /// push look again.
    pub fn release(&self, state: &mut QueueState, bytes: u64) {
        state.reserved_bytes -= bytes;
        self.room.notify_one();
    }

    /// Appends a push under a lock the caller holds, to be sent once
    /// `slot`'s record is durable (at once without one). Returns the
    /// number of old points dropped to make room (only with `DropOldest`).
    pub fn admit(
        &self,
        state: &mut QueueState,
        payload: Payload,
        cost: u64,
        slot: Option<Slot>,
    ) -> usize {
        let mut dropped = 0;
        if self.overflow == Overflow::DropOldest {
            while !self.has_room(state, cost) && state.queued_points > 0 {
                let Some(chunk) = state.chunks.front_mut() else {
                    break;
                };
                state.queued_bytes -= chunk.payload.cost(chunk.start, chunk.start + 1);
                state.queued_points -= 1;
                chunk.start += 1;
                dropped += 1;
                if chunk.start == chunk.payload.len() {
                    state.chunks.pop_front();
                }
            }
        }
        state.queued_points += payload.len();
        state.queued_bytes += cost;
        state.chunks.push_back(Chunk {
            payload,
            start: 0,
            at: Instant::now(),
            slot,
        });
        self.wake.notify_one();
        dropped
    }

    /// A journal record a queued push waits for was resolved: the worker
    /// looks again.
    pub fn recheck(&self) {
        self.wake.notify_one();
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
            let waiting_on_journal;
            {
                let mut state = self.lock();
                let ready = self.ready_points(&mut state, max_points);
                if ready == 0 {
                    deadline = None;
                } else if deadline.is_none() {
                    deadline = Some(tokio::time::Instant::now() + flush_every);
                }
                // Points queued, none sendable: the head waits for its
                // journal record, which the pushing task may never report
                // (it was cancelled), so look again soon.
                waiting_on_journal = ready == 0 && state.queued_points > 0;
                let timed_out = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
                if ready >= max_points || (ready > 0 && (timed_out || state.closed)) {
                    return Some(take(&mut state, ready.min(max_points)));
                }
                if state.closed && state.queued_points == 0 {
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
                None if waiting_on_journal => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep(JOURNAL_POLL) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Points at the head that may be sent (up to `max_points` counted):
    /// those of pushes whose journal record is durable. Pushes whose record
    /// failed are taken out, unsent and uncounted: they were refused.
    fn ready_points(&self, state: &mut QueueState, max_points: usize) -> usize {
        let mut ready = 0;
        let mut i = 0;
        while i < state.chunks.len() && ready < max_points {
            let chunk = &mut state.chunks[i];
            match chunk.slot.as_ref().map(Slot::state) {
                None => {}
                Some(SlotState::Durable) => chunk.slot = None,
                Some(SlotState::Pending) => break,
                Some(SlotState::Failed) => {
                    let chunk = state.chunks.remove(i).expect("in range");
                    let (from, len) = (chunk.start, chunk.payload.len());
                    state.queued_points -= len - from;
                    state.queued_bytes -= chunk.payload.cost(from, len);
                    self.room.notify_one();
                    continue;
                }
            }
            ready += chunk.payload.len() - chunk.start;
            i += 1;
        }
        ready
    }

    /// The worker is done with a batch (delivered or dropped).
    pub fn finish(&self, batch: &Batch) {
        {
            let mut state = self.lock();
            state.inflight_points -= batch.points;
            state.inflight_bytes -= batch.bytes;
            state.inflight_since = None;
        }
        // One waiter at a time: a batch frees room for about one push,
        // and waking every waiter would have all but one parse their
        // push only to be refused.
        self.room.notify_one();
    }

    /// Resolves at a [`SinkQueue::finish`] after it is enabled, for one
    /// waiter per finish.
    pub fn room_freed(&self) -> tokio::sync::futures::Notified<'_> {
        self.room.notified()
    }

    /// No more pushes: the worker sends what is left without waiting.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        // An export is made again at any time: none delays a shutdown.
        state.export.drop_held();
        drop(state);
        self.wake.notify_one();
    }
}

/// Store exports beside the pushes (see `export` for the contract).
impl SinkQueue {
    /// Offers an export (see the module doc): true if it is queued, false
    /// if it did not fit in the room the budget has free. One not yet sent
    /// whole is replaced (cut, counted by the worker).
    pub fn offer_export(&self, source: Box<dyn ExportSource>) -> bool {
        let bytes = source.remaining_bytes();
        let mut state = self.lock();
        state.export.cut();
        let taken = state.depth_bytes() + state.reserved_bytes();
        if taken.saturating_add(bytes) > self.max_bytes {
            return false;
        }
        let slot = &mut state.export;
        slot.source = Some(source);
        slot.held = true;
        slot.bytes = bytes;
        drop(state);
        self.export_wake.notify_one();
        true
    }

    /// True while an export waits to be sent (or its batch is made).
    pub fn export_held(&self) -> bool {
        self.lock().export.held
    }

    /// Resolves once an export was offered after the last call (or one is
    /// pending from before), for the worker to wait on beside its pushes.
    pub async fn export_offered(&self) {
        self.export_wake.notified().await;
    }

    /// The next batch of the export held, made without the queue's lock;
    /// and how many exports were cut since the last call, for the worker
    /// to count.
    pub fn take_export(&self, max_points: usize) -> (ExportTaken, u64) {
        let (mut source, generation, cut_before) = {
            let mut state = self.lock();
            let slot = &mut state.export;
            let cut = std::mem::take(&mut slot.cut);
            match slot.source.take() {
                Some(source) => (source, slot.generation, cut),
                None => return (ExportTaken::Nothing, cut),
            }
        };
        let batch = source.next_batch(max_points);
        let mut state = self.lock();
        let slot = &mut state.export;
        let cut = cut_before + std::mem::take(&mut slot.cut);
        if slot.generation != generation {
            // Cut meanwhile, for a push or a newer export: this batch goes
            // with it.
            return (ExportTaken::Nothing, cut);
        }
        match batch {
            None => {
                slot.held = false;
                slot.bytes = 0;
                slot.generation += 1;
                (ExportTaken::Done, cut)
            }
            Some(batch) => {
                slot.bytes = source.remaining_bytes();
                slot.source = Some(source);
                (ExportTaken::Batch(batch), cut)
            }
        }
    }

    /// Drops the export held (its request failed); true if there was one,
    /// for the caller to count.
    pub fn cut_export(&self) -> bool {
        self.lock().export.drop_held()
    }
}

/// Whether a push of `cost` bytes fits beside the use `taken` of the
/// budget without the export held, which does not fit with it: if so,
/// the export makes way (cut, counted).
fn make_room_for_push(state: &mut QueueState, taken: u64, cost: u64, max_bytes: u64) -> bool {
    let fits = taken == 0 || taken + cost <= max_bytes;
    if fits {
        state.export.cut();
    }
    fits
}

fn take(state: &mut QueueState, max_points: usize) -> Batch {
    let mut data: Option<BatchData> = None;
    let mut taken = 0;
    let mut bytes = 0;
    state.inflight_since = state.chunks.front().map(|c| c.at);
    while taken < max_points {
        let Some(chunk) = state.chunks.front_mut() else {
            break;
        };
        let (from, len) = (chunk.start, chunk.payload.len());
        let end = (from + (max_points - taken)).min(len);
        let out = data.get_or_insert_with(|| BatchData::empty_like(&chunk.payload));
        if !out.same_form(&chunk.payload) {
            // One sink queues one form; a batch never mixes them.
            break;
        }
        bytes += chunk.payload.cost(from, end);
        taken += end - from;
        if from == 0 && end == len && out.is_empty() && chunk.payload.held_alone() {
            // This sink alone holds the push and takes it whole: move it.
            let chunk = state.chunks.pop_front().expect("front exists");
            *out = BatchData::from_payload(chunk.payload);
            continue;
        }
        match (out, &chunk.payload) {
            (BatchData::Points(out), Payload::Points(points)) => {
                out.extend_from_slice(&points[from..end]);
            }
            (BatchData::Lines(out), Payload::Lines(lines)) => {
                out.extend_from_slice(lines.range(from, end));
            }
            _ => unreachable!("same_form checked"),
        }
        chunk.start = end;
        if end == len {
            state.chunks.pop_front();
        }
    }
    state.queued_points -= taken;
    state.queued_bytes -= bytes;
    state.inflight_points += taken;
    state.inflight_bytes += bytes;
    Batch {
        data: data.unwrap_or(BatchData::Points(Vec::new())),
        points: taken,
        bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineproto::Lines;
    use crate::model::family::MetricType;
    use crate::model::point::Point;
    use crate::model::point::{Field, SeriesSuffix};
    use std::sync::Arc;

    fn points(n: usize) -> Payload {
        Payload::Points(Arc::new(
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
                    extra: None,
                })
                .collect(),
        ))
    }

    fn cost(p: &Payload) -> u64 {
        p.cost(0, p.len())
    }

    fn values(b: &Batch) -> Vec<f64> {
        let BatchData::Points(points) = &b.data else {
            panic!("a batch of points")
        };
        points.iter().map(|p| p.fields[0].value).collect()
    }

    fn lines(texts: &[&str]) -> Payload {
        let mut l = Lines::default();
        for t in texts {
            l.text.extend_from_slice(t.as_bytes());
            l.end_line();
        }
        Payload::Lines(Arc::new(l))
    }

    fn text(b: &Batch) -> &str {
        let BatchData::Lines(text) = &b.data else {
            panic!("a batch of lines")
        };
        std::str::from_utf8(text).unwrap()
    }

    #[tokio::test]
    async fn batches_split_across_chunks_in_order() {
        let q = SinkQueue::new(1 << 20, Overflow::Block);
        for _ in 0..3 {
            let p = points(4);
            let c = cost(&p);
            q.admit(&mut q.lock(), p, c, None);
        }
        let b = q.next_batch(5, Duration::from_secs(60)).await.unwrap();
        assert_eq!(values(&b), [0.0, 1.0, 2.0, 3.0, 0.0]);
        assert_eq!(q.lock().depth_points(), 12);
        q.finish(&b);
        assert_eq!(q.lock().depth_points(), 7);
        q.close();
        let b = q.next_batch(5, Duration::from_secs(60)).await.unwrap();
        assert_eq!(values(&b).len(), 5);
        q.finish(&b);
        let b = q.next_batch(5, Duration::from_secs(60)).await.unwrap();
        assert_eq!(b.points, 2);
        assert_eq!(values(&b).len(), 2);
        q.finish(&b);
        assert!(q.next_batch(5, Duration::from_secs(60)).await.is_none());
        assert_eq!(q.lock().depth_bytes(), 0);
    }

    #[tokio::test]
    async fn partial_batch_goes_out_after_the_flush_interval() {
        let q = SinkQueue::new(1 << 20, Overflow::Block);
        let p = points(2);
        let c = cost(&p);
        q.admit(&mut q.lock(), p, c, None);
        let b = q.next_batch(1000, Duration::from_millis(20)).await.unwrap();
        assert_eq!(b.points, 2);
        assert_eq!(values(&b).len(), 2);
    }

    #[test]
    fn budget_and_drop_oldest() {
        let one = cost(&points(1));
        let q = SinkQueue::new(one * 3, Overflow::Block);
        let p = points(3);
        q.admit(&mut q.lock(), p, one * 3, None);
        assert!(!q.has_room(&mut q.lock(), one));

        let q = SinkQueue::new(one * 3, Overflow::DropOldest);
        q.admit(&mut q.lock(), points(3), one * 3, None);
        let dropped = q.admit(&mut q.lock(), points(2), one * 2, None);
        assert_eq!(dropped, 2);
        assert_eq!(q.lock().depth_points(), 3);
    }

    #[tokio::test]
    async fn lines_are_batched_by_point_and_counted_exactly() {
        let q = SinkQueue::new(1 << 20, Overflow::Block);
        let first = lines(&["a 1 1\n", "bb 2 2\n", "c 3 3\n"]);
        // A second queue holds the same push, so it is copied, not moved.
        let shared = first.clone();
        q.admit(&mut q.lock(), first, 19, None);
        q.admit(&mut q.lock(), lines(&["d 4 4\n"]), 6, None);
        assert_eq!(q.lock().depth_bytes(), 25);
        let b = q.next_batch(2, Duration::from_secs(60)).await.unwrap();
        assert_eq!((text(&b), b.points, b.bytes), ("a 1 1\nbb 2 2\n", 2, 13));
        q.finish(&b);
        let b = q.next_batch(2, Duration::from_secs(60)).await.unwrap();
        assert_eq!((text(&b), b.points, b.bytes), ("c 3 3\nd 4 4\n", 2, 12));
        q.finish(&b);
        assert_eq!(q.lock().depth_bytes(), 0);
        assert_eq!(shared.len(), 3);

        let q = SinkQueue::new(14, Overflow::DropOldest);
        q.admit(&mut q.lock(), lines(&["a 1 1\n", "bb 2 2\n"]), 13, None);
        let dropped = q.admit(&mut q.lock(), lines(&["e 5 5\n"]), 6, None);
        assert_eq!(dropped, 1);
        let b = q.next_batch(10, Duration::from_millis(1)).await.unwrap();
        assert_eq!(text(&b), "bb 2 2\ne 5 5\n");
    }

    /// A push held for its journal record goes once the record is durable,
    /// never if it failed, and what follows it waits for it.
    #[tokio::test(flavor = "multi_thread")]
    async fn pushes_wait_for_their_journal_record_and_go_only_if_it_held() {
        use crate::durable::{FaultyIo, Io, Log, LogOptions, Payload, KIND_STORE};
        let tmp = tempfile::tempdir().unwrap();
        let io = FaultyIo::default();
        let opts = LogOptions {
            segment_bytes: 1 << 20,
            holders: 1,
            what: "journal",
        };
        let io_dyn: Arc<dyn Io> = Arc::new(io.clone());
        let log = Arc::new(
            Log::open(io_dyn, tmp.path(), opts, &mut |_| {})
                .unwrap()
                .log,
        );
        // A record appended, and its slot; the flusher holds it until the
        // group (the caller's) ends.
        fn record(log: &Arc<Log>) -> (Slot, crate::durable::Ticket) {
            let slot = Slot {
                log: log.clone(),
                epoch: log.epoch(),
                seq: log.next_seq(),
            };
            let t = log
                .append(Payload::new(KIND_STORE, 1, b"r".to_vec()))
                .unwrap();
            (slot, t)
        }
        let q = SinkQueue::new(1 << 20, Overflow::Block);
        // Held while its record is not durable.
        let group = log.group();
        let (slot, t) = record(&log);
        q.admit(&mut q.lock(), points(2), cost(&points(2)), Some(slot));
        assert_eq!(q.ready_points(&mut q.lock(), 100), 0);
        drop(group);
        log.wait(t).await.unwrap();
        let b = q.next_batch(100, Duration::from_millis(1)).await.unwrap();
        assert_eq!(b.points, 2);
        q.finish(&b);
        // A refused one is dropped unsent; the one after it goes.
        io.faults
            .failing_syncs
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let group = log.group();
        let (slot, t) = record(&log);
        q.admit(&mut q.lock(), points(3), cost(&points(3)), Some(slot));
        drop(group);
        assert!(log.wait(t).await.is_err());
        io.faults
            .failing_syncs
            .store(false, std::sync::atomic::Ordering::SeqCst);
        while log.failure().is_some() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let group = log.group();
        let (slot, t) = record(&log);
        q.admit(&mut q.lock(), points(1), cost(&points(1)), Some(slot));
        drop(group);
        log.wait(t).await.unwrap();
        let b = q.next_batch(100, Duration::from_millis(1)).await.unwrap();
        assert_eq!(values(&b), [0.0], "only the push whose record held");
        q.finish(&b);
        assert_eq!(q.lock().depth_points(), 0);
    }

    #[test]
    fn an_empty_queue_takes_an_oversize_push() {
        let q = SinkQueue::new(1, Overflow::Block);
        assert!(q.has_room(&mut q.lock(), 1000));
    }
}

#[cfg(test)]
#[path = "queue_export_tests.rs"]
mod export_tests;
