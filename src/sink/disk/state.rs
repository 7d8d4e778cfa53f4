//! The queue's index of the records some sink has not acknowledged, and
//! each sink's positions in it: budgets, `drop_oldest`, batches, and the
//! small cache of recent payloads. Pure bookkeeping under the queue's
//! lock; no I/O.

use super::cursors::Pos;
use crate::durable::{Slot, SlotState};
use std::collections::VecDeque;
use std::sync::Arc;

/// Record payloads kept in memory for the workers, at most (record bytes).
pub const CACHE_BYTES: u64 = 16 << 20;
/// Larger records are never cached.
pub const CACHE_MAX_RECORD: u64 = CACHE_BYTES / 8;

// ---------------------------------------------------------------------------
// Shared state.

/// One record not yet acknowledged by every sink.
pub struct Rec {
    pub seq: u64,
    /// Record length, header included: what budgets count.
    pub len: u64,
    pub points: u32,
    pub append_ns: i64,
    /// Points and bytes of all records before this one since open, so that
    /// the amount between two positions is a subtraction.
    pub cum_points: u64,
    pub cum_bytes: u64,
    /// The record's payload, while cached.
    pub body: Option<Arc<[u8]>>,
}

/// A sink as the queue sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkSpec {
    /// Names its cursor file; unique.
    pub name: String,
    /// Bytes of records not yet acknowledged by this sink, at most (a sink
    /// with nothing pending takes any push).
    pub max_disk_bytes: u64,
    /// `overflow = "drop_oldest"`; otherwise "block".
    pub drop_oldest: bool,
}

pub struct SinkState {
    pub name: String,
    pub max_bytes: u64,
    pub drop_oldest: bool,
    /// Everything before is acknowledged (or dropped).
    pub acked: Pos,
    /// The next point to hand out; `acked..read` is in flight (up to
    /// `inflight_end`) or dropped (after it).
    pub read: Pos,
    /// End of the last batch handed out and not yet acknowledged.
    pub inflight_end: Option<Pos>,
    /// What the cursor file says.
    pub persisted: Pos,
}

#[derive(Default)]
pub struct State {
    /// Records from the oldest any sink has not acknowledged, in order of
    /// their sequence numbers (which other clients of the log leave gaps
    /// in).
    pub index: VecDeque<Rec>,
    /// Points and bytes of every record since open (the `cum_*` of the end).
    pub total_points: u64,
    pub total_bytes: u64,
    /// Above every queue record's sequence number: the end position.
    pub next_seq: u64,
    pub sinks: Vec<SinkState>,
    /// Sequence numbers of cached records, oldest first.
    cache_order: VecDeque<u64>,
    cache_bytes: u64,
    pub closing: bool,
    /// Records that go with a journal record in another log, oldest
    /// first, and where that record goes: no sink reads past the first
    /// until it is durable; one whose journal record failed leaves the
    /// index (see [`State::resolve_holds`]).
    pub holds: VecDeque<(u64, Slot)>,
    /// Records taken out of the index for a failed journal record, still
    /// to be listed in the log's `FAILED`.
    pub revoked: Vec<u64>,
}

impl State {
    pub fn end(&self) -> Pos {
        Pos {
            seq: self.next_seq,
            point: 0,
        }
    }

    pub fn find(&self, seq: u64) -> Result<usize, usize> {
        self.index.binary_search_by_key(&seq, |r| r.seq)
    }

    /// The record a position is in and the point in it, or `None` at the end.
    pub fn locate(&self, p: Pos) -> Option<(usize, u32)> {
        match self.find(p.seq) {
            Ok(i) if p.point < self.index[i].points => Some((i, p.point)),
            Ok(i) => self.locate(self.pos_at(i + 1)),
            Err(i) if i < self.index.len() => Some((i, 0)),
            Err(_) => None,
        }
    }

    /// The start of the `i`-th indexed record, or the end.
    pub fn pos_at(&self, i: usize) -> Pos {
        match self.index.get(i) {
            Some(r) => Pos {
                seq: r.seq,
                point: 0,
            },
            None => self.end(),
        }
    }

    pub fn normalize(&self, p: Pos) -> Pos {
        if p.seq >= self.next_seq {
            return self.end();
        }
        match self.locate(p) {
            Some((i, point)) => Pos {
                seq: self.index[i].seq,
                point,
            },
            None => self.end(),
        }
    }

    /// Points before `p` since open.
    pub fn points_at(&self, p: Pos) -> u64 {
        match self.locate(p) {
            Some((i, point)) => self.index[i].cum_points + point as u64,
            None => self.total_points,
        }
    }

    /// Bytes of the records wholly before `p`.
    pub fn bytes_at(&self, p: Pos) -> u64 {
        match self.locate(p) {
            Some((i, _)) => self.index[i].cum_bytes,
            None => self.total_bytes,
        }
    }

    /// Bytes of the records before `p` and of the one `p` is inside: a
    /// record partly acknowledged (or in flight) still takes its space.
    pub fn bytes_through(&self, p: Pos) -> u64 {
        match self.locate(p) {
            Some((i, 0)) => self.index[i].cum_bytes,
            Some((i, _)) => self.index[i].cum_bytes + self.index[i].len,
            None => self.total_bytes,
        }
    }

    /// The position after the last record durable at `durable`.
    pub fn durable_end(&self, durable: u64) -> Pos {
        self.normalize(Pos {
            seq: durable.saturating_add(1),
            point: 0,
        })
    }

    /// What sink `s` has not acknowledged and not dropped: the batch in
    /// flight and what follows its read position.
    pub fn depth(&self, s: usize) -> (u64, u64) {
        let sk = &self.sinks[s];
        let e = sk.inflight_end.unwrap_or(sk.acked);
        let points = self.points_at(e).saturating_sub(self.points_at(sk.acked))
            + self.total_points.saturating_sub(self.points_at(sk.read));
        let bytes = self
            .bytes_through(e)
            .saturating_sub(self.bytes_at(sk.acked))
            + self.total_bytes.saturating_sub(self.bytes_through(sk.read));
        (points, bytes)
    }

    pub fn has_room(&self, s: usize, cost: u64) -> bool {
        let (_, bytes) = self.depth(s);
        bytes == 0 || bytes.saturating_add(cost) <= self.sinks[s].max_bytes
    }

    /// Skips sink `s`'s oldest records not in flight until `cost` more
    /// bytes fit. Returns the points dropped.
    pub fn drop_oldest(&mut self, s: usize, cost: u64) -> u64 {
        let mut dropped = 0;
        while !self.has_room(s, cost) {
            let Some((i, point)) = self.locate(self.sinks[s].read) else {
                break;
            };
            dropped += (self.index[i].points - point) as u64;
            let next = self.pos_at(i + 1);
            let sk = &mut self.sinks[s];
            sk.read = next;
            if sk.inflight_end.is_none() {
                sk.acked = next;
            }
        }
        dropped
    }

    /// Forgets records every sink has acknowledged.
    pub fn trim(&mut self) {
        let min = self
            .sinks
            .iter()
            .map(|s| s.acked.seq)
            .min()
            .unwrap_or(self.next_seq);
        while self.index.front().is_some_and(|r| r.seq < min) {
            let r = self.index.pop_front().expect("front exists");
            if r.body.is_some() {
                self.cache_bytes -= r.len;
            }
        }
        let first = self.index.front().map_or(self.next_seq, |r| r.seq);
        while self.cache_order.front().is_some_and(|&s| s < first) {
            self.cache_order.pop_front();
        }
    }

    pub fn evict(&mut self) {
        while self.cache_bytes > CACHE_BYTES {
            let Some(seq) = self.cache_order.pop_front() else {
                break;
            };
            if let Ok(i) = self.find(seq) {
                if self.index[i].body.take().is_some() {
                    self.cache_bytes -= self.index[i].len;
                }
            }
        }
    }

    /// Up to `max_points` durable points for sink `s` from its read
    /// position, and the position after them. Changes nothing: the caller
    /// commits with [`State::commit`] once it has the points.
    pub fn plan(&self, s: usize, max_points: u64, durable: u64) -> (Vec<Item>, Pos) {
        let mut items = Vec::new();
        let mut pos = self.sinks[s].read;
        let mut want = max_points;
        if let Some((mut i, mut from)) = self.locate(pos) {
            while want > 0 && i < self.index.len() && self.index[i].seq <= durable {
                let r = &self.index[i];
                let n = ((r.points - from) as u64).min(want) as u32;
                if n > 0 {
                    let src = match &r.body {
                        Some(body) => Source::Cached(body.clone()),
                        None => Source::Log,
                    };
                    items.push(Item {
                        seq: r.seq,
                        from,
                        to: from + n,
                        src,
                    });
                    want -= n as u64;
                }
                if from + n >= r.points {
                    i += 1;
                    from = 0;
                    pos = self.pos_at(i);
                } else {
                    from += n;
                    pos = Pos {
                        seq: r.seq,
                        point: from,
                    };
                }
            }
        }
        (items, pos)
    }

    /// Hands out the batch `start..end` planned for sink `s`, unless the
    /// sink's read position moved meanwhile (points dropped, or another
    /// call took them); then the caller plans again.
    pub fn commit(&mut self, s: usize, start: Pos, end: Pos) -> bool {
        let sk = &mut self.sinks[s];
        if sk.read != start {
            return false;
        }
        sk.read = end;
        sk.inflight_end = Some(end);
        true
    }
}

/// Points of one record for a batch, and where to get them.
pub struct Item {
    pub seq: u64,
    pub from: u32,
    pub to: u32,
    pub src: Source,
}

pub enum Source {
    /// The payload, cached at append.
    Cached(Arc<[u8]>),
    /// Read back through the log.
    Log,
}

impl State {
    /// Indexes a record appended (or recovered) with sequence number
    /// `seq`, caching its payload if given.
    pub fn push(
        &mut self,
        seq: u64,
        len: u64,
        points: u32,
        append_ns: i64,
        body: Option<Arc<[u8]>>,
    ) {
        let cached = body.is_some();
        self.index.push_back(Rec {
            seq,
            len,
            points,
            append_ns,
            cum_points: self.total_points,
            cum_bytes: self.total_bytes,
            body,
        });
        self.total_points += points as u64;
        self.total_bytes += len;
        self.next_seq = self.next_seq.max(seq + 1);
        if cached {
            self.cache_bytes += len;
            self.cache_order.push_back(seq);
            self.evict();
        }
    }

    /// Settles the holds whose journal record's fate is known, oldest
    /// first: a durable one lets its record be read; a failed one takes
    /// its record out of the index (and into `revoked`), so no sink ever
    /// reads it. Stops at the first still pending.
    pub fn resolve_holds(&mut self) {
        while let Some((seq, slot)) = self.holds.front() {
            match slot.state() {
                SlotState::Pending => return,
                SlotState::Durable => {}
                SlotState::Failed => {
                    // Listed even if no longer indexed (`drop_oldest` may
                    // have passed it): a cursor not yet persisted would
                    // send it again after a crash.
                    let seq = *seq;
                    self.remove(seq);
                    self.revoked.push(seq);
                }
            }
            self.holds.pop_front();
        }
    }

    /// The last sequence number sinks may read up to: durable, and before
    /// the first record still held.
    pub fn readable(&self, durable: u64) -> u64 {
        match self.holds.front() {
            Some((seq, _)) => durable.min(seq - 1),
            None => durable,
        }
    }

    /// Takes record `seq` out of the index, as if it had never been
    /// appended: the records after it count its points and bytes no more.
    /// Positions stay valid (they name records by sequence number); no
    /// sink has read it, since it was held. Nothing if it is not indexed.
    fn remove(&mut self, seq: u64) {
        let Ok(i) = self.find(seq) else {
            return;
        };
        let r = self.index.remove(i).expect("found");
        for later in self.index.iter_mut().skip(i) {
            later.cum_points -= r.points as u64;
            later.cum_bytes -= r.len;
        }
        self.total_points -= r.points as u64;
        self.total_bytes -= r.len;
        if r.body.is_some() {
            self.cache_bytes -= r.len;
            self.cache_order.retain(|&s| s != seq);
        }
    }

    /// Forgets the records past `durable`: the log failed before writing
    /// them, and they were never acknowledged.
    pub fn rollback(&mut self, durable: u64) {
        while self.holds.back().is_some_and(|(seq, _)| *seq > durable) {
            self.holds.pop_back();
        }
        while self.index.back().is_some_and(|r| r.seq > durable) {
            let r = self.index.pop_back().expect("back exists");
            self.total_points = r.cum_points;
            self.total_bytes = r.cum_bytes;
            if r.body.is_some() {
                self.cache_bytes -= r.len;
            }
        }
        let end = Pos {
            seq: self.next_seq.min(durable.saturating_add(1)),
            point: 0,
        };
        self.next_seq = end.seq;
        for sk in &mut self.sinks {
            sk.acked = sk.acked.min(end);
            sk.read = sk.read.min(end);
            sk.inflight_end = sk.inflight_end.map(|e| e.min(end));
        }
    }
}

impl SinkState {
    /// A sink placed at `pos`, its cursor file saying so.
    pub fn new(spec: &SinkSpec, pos: Pos) -> SinkState {
        SinkState {
            name: spec.name.clone(),
            max_bytes: spec.max_disk_bytes,
            drop_oldest: spec.drop_oldest,
            acked: pos,
            read: pos,
            inflight_end: None,
            persisted: pos,
        }
    }
}
