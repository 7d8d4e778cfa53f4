//! The sinks' disk-backed queue, used when `[io] queue_dir` is set. One
//! queue per agent, shared by every sink: a push's points are appended once
//! to the durable log (`crate::durable`) as one record and made durable
//! before the push is acknowledged; each sink reads them back at its own
//! pace through its own cursor. Memory holds an index of the records not
//! yet acknowledged by every sink (about 100 bytes per record, i.e. per
//! push) and a bounded cache of recent payloads (16 MiB); other points are
//! read back from the files (usually from the page cache), never under the
//! queue's lock.
//!
//! # Files
//!
//! In the directory (created 0700; files 0600): the log's segments
//! (`log-*`, records of kind `KIND_QUEUE`, payload in `codec`), the
//! cursors (`cursor-<sink>`, format in `cursors`; `.tmp` while replaced),
//! `SINKS` (the sinks placed so far), `*.corrupt-*` files moved aside, and
//! `LOCK`. A directory written by an
//! earlier release (`segment-*`, format 1) is migrated once at open: the
//! records some sink still needs are appended to the log, made durable, the
//! cursors rewritten, and only then are the old segments moved into
//! `format-1/` (see `migrate`).
//!
//! # Guarantees
//!
//! - A push is durable once [`DiskQueue::wait`] returns `Ok` for its
//!   ticket (the log's group commit: one fsync for every push waiting at
//!   that moment). Acknowledge only then.
//! - [`DiskQueue::append`] is all or nothing across sinks: if a sink with
//!   `drop_oldest = false` lacks room, nothing is written and no sink gets
//!   the push. Sinks with `drop_oldest` skip their own oldest records to
//!   make room and never refuse. A sink's budget counts the bytes of the
//!   records it has not acknowledged; a sink with nothing pending takes any
//!   push, however large. A down sink holds back no other sink, except by
//!   refusing pushes once its own budget is full.
//! - Delivery is at least once: a sink's cursor moves only when a batch is
//!   acknowledged ([`DiskQueue::ack`]), and is then written to its file in
//!   place, and fsynced within about a second (see `cursors`). After a
//!   crash, everything after the cursor on disk is delivered again
//!   ([`Opened::redelivered_points`] counts it): after a `kill -9`, only the
//!   batch in flight; after a power loss, up to a second of batches more.
//!   Cursors moved by `drop_oldest` are written within about a second; a
//!   crash before that re-delivers dropped points, which at-least-once
//!   allows.
//! - A segment is deleted once every sink's persisted cursor has passed it
//!   (the log's hold; never the segment being written). A sink no longer
//!   configured has its cursor file deleted at open and holds nothing back.
//!   A sink with no cursor file starts with the next push if it is new, and
//!   from the oldest record kept if the queue had placed it before (it is
//!   listed in `SINKS`, see `cursors`): its cursor was deleted.
//! - A failed write or fsync fails every push not yet durable, and later
//!   appends until the log recovers (see `durable`): their records leave
//!   the index before any later record is durable, so no sink reads them.
//!   What was durable is still delivered. A sink that has everything holds
//!   back no segment, so a full disk's segments go once delivered.
//! - Beside a journal on another filesystem (a log each), a push's record
//!   is held ([`DiskQueue::append_held`]): no sink reads it, nor anything
//!   after it, before the push's journal record is durable. If that one
//!   failed, the record leaves the index and is listed in the log's
//!   `FAILED` ([`DiskQueue::settle_holds`], before the push is refused;
//!   if that write fails, the cursor syncer tries again each second), so
//!   no sink ever sends it, not even after a restart.
//! - Damage on disk is the log's to recover from: a damaged record is lost
//!   alone and reported, later records are still delivered, and nothing
//!   found on disk makes `open` fail; only I/O errors do.

mod batch;
mod codec;
mod cursors;
mod migrate;
mod record_writer;
mod state;
#[cfg(test)]
mod tests;

use crate::durable::fsutil;
use crate::durable::{Io, Log, LogOptions, Payload, RealIo, KIND_QUEUE};
use crate::model::point::Point;
use cursors::{CursorFile, Pos};
use state::{Source, State, CACHE_MAX_RECORD};

pub use batch::{Body, Form};

pub use migrate::Prepared;
pub use record_writer::RecordWriter;

pub use state::SinkSpec;
use std::collections::HashSet;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::time::Instant;

pub use crate::durable::Ticket;

/// Segment size used by the agent (`open` takes it as a parameter, so that
/// tests can use tiny segments).
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
/// Larger pushes are refused.
pub const MAX_RECORD_LEN: usize = crate::durable::MAX_PAYLOAD;
/// How often cursors moved by `drop_oldest` are persisted.
const CURSOR_SYNC_INTERVAL: Duration = Duration::from_secs(1);

fn unix_now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data is consistent at every unlock; a panic elsewhere is
    // no reason to stop.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What [`DiskQueue::open`] returns.
#[derive(Debug)]
pub struct Opened {
    pub queue: DiskQueue,
    /// Damage found on disk and what was done about it (also logged).
    pub warnings: Vec<String>,
    /// Per sink, in spec order: points read back from disk that the sink
    /// had not acknowledged. Some may have been delivered before a crash;
    /// count them as possible duplicates.
    pub redelivered_points: Vec<u64>,
}

/// Why a push was not queued.
#[derive(Debug)]
pub enum Refused {
    /// Sink `sink` (an index into the specs) has `drop_oldest = false` and
    /// no room: answer 503. Nothing was written.
    Full { sink: usize },
    /// [`DiskQueue::close`] was called.
    Closed,
    /// The queue failed (a write or fsync error; see the module docs), or
    /// the push is larger than [`MAX_RECORD_LEN`].
    Io(io::Error),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Full { sink } => write!(f, "the disk queue of sink #{sink} is full"),
            Refused::Closed => write!(f, "the disk queue is closed"),
            Refused::Io(e) => write!(f, "the disk queue cannot take pushes: {e}"),
        }
    }
}

impl std::error::Error for Refused {}

/// A push's queue record, encoded outside every lock by
/// [`DiskQueue::encode`], to append with [`DiskQueue::append_encoded`].
#[derive(Debug)]
pub struct EncodedPush {
    payload: Payload,
    points: u32,
    append_ns: i64,
    /// The payload again, for the cache, if small enough.
    body: Option<Arc<[u8]>>,
}

/// Points for one sink, handed out by [`DiskQueue::next_batch`]; give it
/// back to [`DiskQueue::ack`] once delivered (or dropped).
#[derive(Debug)]
pub struct DiskBatch {
    /// In push order, in the form asked for; never empty.
    pub body: Body,
    /// Points in this batch's range that could not be read back (a record
    /// damaged on disk since open; already logged as an error). Count them
    /// as dropped.
    pub lost_points: u64,
    /// The sink's cursor once the batch is acknowledged.
    end: Pos,
}

impl DiskBatch {
    /// The points of a batch read as [`Form::Points`].
    ///
    /// # Panics
    /// If the batch was read as lines.
    pub fn points(&self) -> &[Point] {
        match &self.body {
            Body::Points(p) => p,
            Body::Lines { .. } => panic!("this batch was read as line protocol"),
        }
    }
}

struct Inner {
    dir: PathBuf,
    log: Arc<Log>,
    /// The queue's holder number in the log.
    holder: usize,
    /// Closing the queue closes the log only if it is the queue's own.
    owns_log: bool,
    state: Mutex<State>,
    /// Each sink's cursor file; the lock serializes its writes.
    cursor_files: Vec<Mutex<CursorFile>>,
    /// Set at close: wakes workers waiting for records.
    closed_tx: watch::Sender<bool>,
    /// Set at close: stops the cursor syncer.
    stop: Mutex<bool>,
    stop_cv: Condvar,
    /// The log of the journal records that holds wait for (see
    /// [`DiskQueue::append_held`]), once a record was held.
    hold_log: std::sync::OnceLock<Arc<Log>>,
    /// Serializes listing revoked records in `FAILED`, so that a caller
    /// of [`DiskQueue::settle_holds`] returns only once its record is
    /// listed, even if another caller took it to list.
    revoking: Mutex<()>,
}

impl Inner {
    /// Writes sink `s`'s cursor file if it is behind.
    fn persist(&self, s: usize) -> io::Result<()> {
        let mut file = lock(&self.cursor_files[s]);
        let target = {
            let st = lock(&self.state);
            let sk = &st.sinks[s];
            if sk.acked == sk.persisted {
                return Ok(());
            }
            sk.acked
        };
        file.store(target)?;
        lock(&self.state).sinks[s].persisted = target;
        Ok(())
    }

    /// Makes every cursor written since the last call durable.
    fn sync_cursors(&self) {
        for (s, file) in self.cursor_files.iter().enumerate() {
            if let Err(e) = lock(file).sync() {
                let name = lock(&self.state).sinks[s].name.clone();
                tracing::error!(sink = %name, "disk queue: cannot sync the cursor: {e}");
            }
        }
    }

    /// Persists cursors moved without an ack (by `drop_oldest`).
    fn persist_dirty(&self) {
        let dirty: Vec<usize> = {
            let st = lock(&self.state);
            (0..st.sinks.len())
                .filter(|&i| st.sinks[i].acked != st.sinks[i].persisted)
                .collect()
        };
        if dirty.is_empty() {
            return;
        }
        for s in dirty {
            if let Err(e) = self.persist(s) {
                let name = lock(&self.state).sinks[s].name.clone();
                tracing::error!(sink = %name, "disk queue: cannot persist the cursor: {e}");
            }
        }
        self.collect_garbage();
    }

    /// Settles the holds (see [`DiskQueue::append_held`]) and lists the
    /// records whose journal record failed in the log's `FAILED`, so that
    /// a restart does not send them either. On error they stay to list at
    /// the next call (the syncer's, each second).
    fn settle_holds(&self) -> io::Result<()> {
        let _one = lock(&self.revoking);
        let revoked = {
            let mut st = lock(&self.state);
            st.resolve_holds();
            std::mem::take(&mut st.revoked)
        };
        if revoked.is_empty() {
            return Ok(());
        }
        match self.log.revoke(&revoked) {
            Ok(()) => {
                tracing::warn!(
                    records = revoked.len(),
                    "disk queue: points of pushes whose journal record failed are dropped unsent"
                );
                Ok(())
            }
            Err(e) => {
                lock(&self.state).revoked.splice(0..0, revoked);
                Err(e)
            }
        }
    }

    /// Lets the log delete the segments every sink's persisted cursor has
    /// passed.
    fn collect_garbage(&self) {
        let min = {
            let st = lock(&self.state);
            let end = st.end();
            // A sink that has everything needs no record appended so far:
            // records of failed groups, and other clients' records on a
            // shared log, must not hold a segment back from it.
            let caught_up = self.log.next_seq();
            st.sinks
                .iter()
                .map(|s| match s.persisted >= end {
                    true => caught_up,
                    false => s.persisted.seq,
                })
                .min()
                .unwrap_or(caught_up)
        };
        self.log.release(self.holder, min);
    }
}

/// Every second, and once more at close: persists cursors moved by
/// `drop_oldest`, and fsyncs the cursor files written since.
fn run_syncer(inner: Arc<Inner>) {
    let mut stop = lock(&inner.stop);
    loop {
        stop = inner
            .stop_cv
            .wait_timeout(stop, CURSOR_SYNC_INTERVAL)
            .unwrap_or_else(|p| p.into_inner())
            .0;
        let stopping = *stop;
        drop(stop);
        inner.persist_dirty();
        inner.sync_cursors();
        if let Err(e) = inner.settle_holds() {
            tracing::error!("disk queue: cannot list the points of refused pushes in FAILED yet (a restart now would send them): {e}");
        }
        // Segments a full disk left behind go once the log has moved on.
        inner.collect_garbage();
        if stopping {
            return;
        }
        stop = lock(&inner.stop);
    }
}

/// The disk-backed queue shared by all sinks. `Send + Sync`; share it
/// through an `Arc`.
pub struct DiskQueue {
    inner: Arc<Inner>,
    syncer: Mutex<Option<JoinHandle<()>>>,
}

impl DiskQueue {
    /// Opens (creating if needed) the queue in `dir` for these sinks, in a
    /// log of its own, reads back what the sinks have not acknowledged, and
    /// starts. Damage is repaired as the module docs describe and reported
    /// in [`Opened::warnings`]; only I/O errors (and duplicate sink names)
    /// fail. `segment_bytes` is [`DEFAULT_SEGMENT_BYTES`] outside tests.
    pub fn open(dir: &Path, sinks: &[SinkSpec], segment_bytes: u64) -> io::Result<Opened> {
        DiskQueue::open_with(Arc::new(RealIo), dir, sinks, segment_bytes)
    }

    /// [`DiskQueue::open`] through `io` (tests inject faults with it).
    pub fn open_with(
        io: Arc<dyn Io>,
        dir: &Path,
        sinks: &[SinkSpec],
        segment_bytes: u64,
    ) -> io::Result<Opened> {
        fsutil::create_private_dir(dir)?;
        let lock_file = fsutil::lock_dir(dir, "disk queue")?;
        let mut prepared = DiskQueue::prepare(dir, sinks)?;
        let opened = Log::open_locked(
            io,
            dir,
            LogOptions {
                segment_bytes,
                holders: 1,
                what: "disk queue",
            },
            lock_file,
            &mut |r| prepared.visit(r),
        )?;
        prepared.warnings.extend(opened.warnings);
        DiskQueue::attach(Arc::new(opened.log), 0, true, prepared)
    }

    /// Before the log in `dir` opens (its lock held by the caller): reads
    /// the sinks' cursors. Feed the log's records to the result's
    /// [`Prepared::visit`], then [`DiskQueue::attach`] it.
    pub fn prepare(dir: &Path, sinks: &[SinkSpec]) -> io::Result<Prepared> {
        let mut seen = HashSet::new();
        for s in sinks {
            if !seen.insert(s.name.as_str()) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("two sinks are named {:?}", s.name),
                ));
            }
        }
        Prepared::read_cursors(dir, sinks)
    }

    /// The queue on an open log (its own, or one shared with the store's
    /// journal), as holder `holder`, once `prepared` has seen its records:
    /// migrates a format-1 queue, places each sink and starts the cursor
    /// syncer. Closing the queue closes the log only if `owns_log`.
    pub fn attach(
        log: Arc<Log>,
        holder: usize,
        owns_log: bool,
        prepared: Prepared,
    ) -> io::Result<Opened> {
        let (st, warnings, redelivered_points) = prepared.finish(&log)?;
        let (closed_tx, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            dir: log.dir().to_path_buf(),
            cursor_files: st
                .sinks
                .iter()
                .map(|sk| Mutex::new(CursorFile::new(log.dir(), &sk.name)))
                .collect(),
            log,
            holder,
            owns_log,
            state: Mutex::new(st),
            closed_tx,
            stop: Mutex::new(false),
            stop_cv: Condvar::new(),
            hold_log: std::sync::OnceLock::new(),
            revoking: Mutex::new(()),
        });
        inner.collect_garbage();
        // A failed group: its records leave the index before any later
        // record can be durable, so no sink ever reads them.
        let failed = Arc::downgrade(&inner);
        inner.log.on_failure(move |durable| {
            if let Some(inner) = failed.upgrade() {
                lock(&inner.state).rollback(durable);
            }
        });
        let thread_inner = inner.clone();
        let handle = std::thread::Builder::new()
            .name("disk-queue-cursors".into())
            .spawn(move || run_syncer(thread_inner))?;
        Ok(Opened {
            queue: DiskQueue {
                inner,
                syncer: Mutex::new(Some(handle)),
            },
            warnings,
            redelivered_points,
        })
    }

    /// Queues a push for every sink, all or nothing: if a sink with
    /// `drop_oldest = false` lacks room, `Err(Full)` and nothing is written;
    /// otherwise the record is appended for every sink (sinks with
    /// `drop_oldest` first skip their oldest records not in flight, as
    /// needed) and the points each sink dropped are returned, in spec
    /// order, for the caller to count and log. The check and the append are
    /// one step under the queue's lock, so the caller needs no lock of its
    /// own. Never blocks on I/O: wait on the ticket before acknowledging
    /// the push. An empty push is not written (its ticket is already
    /// durable).
    pub fn append(&self, points: &[Point]) -> Result<(Ticket, Vec<u64>), Refused> {
        self.append_encoded(DiskQueue::encode(points)?)
    }

    /// The first half of [`DiskQueue::append`], which needs no lock:
    /// encodes and checksums a push's record. Refuses a push larger than
    /// [`MAX_RECORD_LEN`].
    pub fn encode(points: &[Point]) -> Result<EncodedPush, Refused> {
        DiskQueue::seal(RecordWriter::of_points(unix_now_ns(), points))
    }

    /// [`DiskQueue::encode`] for a record written point by point (the
    /// mapping writes a push's points straight into a [`RecordWriter`]).
    pub fn seal(w: RecordWriter) -> Result<EncodedPush, Refused> {
        let points = w.count();
        let append_ns = w.append_ns();
        let bytes = if points == 0 { Vec::new() } else { w.finish() };
        // A push of u32::MAX points (which the count saturates at) is
        // refused here too: each takes several bytes.
        if bytes.len() > MAX_RECORD_LEN {
            return Err(Refused::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a push of {} bytes exceeds the disk queue's record limit of {MAX_RECORD_LEN}",
                    bytes.len()
                ),
            )));
        }
        let payload = Payload::new(KIND_QUEUE, codec::VERSION, bytes);
        let body: Option<Arc<[u8]>> =
            (payload.frame_len() <= CACHE_MAX_RECORD).then(|| Arc::from(&payload.bytes[..]));
        Ok(EncodedPush {
            payload,
            points,
            append_ns,
            body,
        })
    }

    /// The second half of [`DiskQueue::append`]: queues a record from
    /// [`DiskQueue::encode`].
    pub fn append_encoded(&self, push: EncodedPush) -> Result<(Ticket, Vec<u64>), Refused> {
        self.append_held(push, None)
    }

    /// [`DiskQueue::append_encoded`] for a push whose journal record goes
    /// to another log, at `hold` (the store's journal on another
    /// filesystem): no sink reads the record before that one is durable,
    /// and if it fails the record is dropped unsent and listed in the
    /// log's `FAILED` ([`DiskQueue::settle_holds`]). Records after a held
    /// one wait behind it, so order is kept.
    pub fn append_held(
        &self,
        push: EncodedPush,
        hold: Option<crate::durable::Slot>,
    ) -> Result<(Ticket, Vec<u64>), Refused> {
        if push.points == 0 {
            let sinks = lock(&self.inner.state).sinks.len();
            return Ok((Ticket::DURABLE, vec![0; sinks]));
        }
        let cost = push.payload.frame_len();
        let log = &self.inner.log;
        let mut st = lock(&self.inner.state);
        if st.closing {
            return Err(Refused::Closed);
        }
        if let Some(e) = log.failure() {
            st.rollback(log.durable());
            return Err(Refused::Io(e));
        }
        for s in 0..st.sinks.len() {
            if !st.sinks[s].drop_oldest && !st.has_room(s, cost) {
                return Err(Refused::Full { sink: s });
            }
        }
        let mut dropped = vec![0; st.sinks.len()];
        for (s, d) in dropped.iter_mut().enumerate() {
            if st.sinks[s].drop_oldest {
                *d = st.drop_oldest(s, cost);
            }
        }
        if let Some(slot) = &hold {
            // Before the record can be durable: a worker that finds it
            // held must find the log to wait on too.
            let _ = self.inner.hold_log.set(slot.log.clone());
        }
        let ticket = log.append(push.payload).map_err(Refused::Io)?;
        st.push(ticket.seq(), cost, push.points, push.append_ns, push.body);
        if let Some(slot) = hold {
            st.holds.push_back((ticket.seq(), slot));
        }
        if dropped.iter().any(|&d| d > 0) {
            st.trim();
        }
        Ok((ticket, dropped))
    }

    /// True while a record is held or a revocation is still to be listed
    /// (see [`DiskQueue::settle_holds`]).
    pub fn has_holds(&self) -> bool {
        let st = lock(&self.inner.state);
        !st.holds.is_empty() || !st.revoked.is_empty()
    }

    /// Settles the holds whose journal records' fate is known: the
    /// records of failed ones leave the queue and are listed in `FAILED`
    /// before this returns (blocking I/O, when there are some). Call it
    /// before refusing a push whose record was held, so that the refusal
    /// holds across a restart; the syncer also calls it each second.
    pub fn settle_holds(&self) -> io::Result<()> {
        self.inner.settle_holds()
    }

    /// Waits until the push is on disk (or the queue failed).
    pub async fn wait(&self, t: Ticket) -> io::Result<()> {
        self.inner.log.wait(t).await
    }

    /// Blocking form of [`DiskQueue::wait`], for threads outside a runtime.
    pub fn wait_blocking(&self, t: Ticket) -> io::Result<()> {
        self.inner.log.wait_blocking(t)
    }

    /// The next batch for sink `sink`: up to `max_points` points (at least
    /// one), waiting up to `flush_every` for that many. A record larger than
    /// `max_points` is split across batches. If `flush_every` passes with
    /// nothing to send, the wait starts again when the first point arrives,
    /// so points are batched for `flush_every` even on an idle sink. Only
    /// durable records are handed out, in `form` (line-protocol sinks take
    /// lines written straight from the records). `None` once the queue is closed and
    /// the sink has everything. One batch in flight per sink: ack it before
    /// asking for the next. Reads come from the page cache or the disk,
    /// without the queue's lock, on tokio's blocking pool. Cancel-safe: the
    /// batch is handed out only when this returns it.
    pub async fn next_batch(
        &self,
        sink: usize,
        max_points: usize,
        flush_every: Duration,
        form: Form,
    ) -> Option<DiskBatch> {
        let max_points = max_points.max(1) as u64;
        let mut deadline = Some(Instant::now() + flush_every);
        let mut lost_before = 0;
        let log = &self.inner.log;
        // Whether to wait on the hold log too: only while a record is
        // held, so that its commits wake no worker otherwise.
        let mut watch_holds = false;
        loop {
            let mut rx = log.subscribe();
            let mut closed_rx = self.inner.closed_tx.subscribe();
            let mut hold_rx = match watch_holds {
                true => self.inner.hold_log.get().map(|l| l.subscribe()),
                false => None,
            };
            let taken = {
                let mut st = lock(&self.inner.state);
                st.resolve_holds();
                if !st.holds.is_empty() && hold_rx.is_none() && self.inner.hold_log.get().is_some()
                {
                    // Subscribe first, then look again: no wake-up lost.
                    watch_holds = true;
                    continue;
                }
                watch_holds = !st.holds.is_empty();
                let durable = st.readable(log.durable());
                let available = st
                    .points_at(st.durable_end(durable))
                    .saturating_sub(st.points_at(st.sinks[sink].read));
                let now = Instant::now();
                if available == 0 && deadline.is_some_and(|d| now >= d) {
                    deadline = None;
                }
                if available > 0 && deadline.is_none() {
                    deadline = Some(now + flush_every);
                }
                let timed_out = deadline.is_some_and(|d| now >= d);
                let all_written =
                    st.index.back().is_none_or(|r| r.seq <= durable) || log.failure().is_some();
                if available >= max_points || (available > 0 && (timed_out || st.closing)) {
                    let start = st.sinks[sink].read;
                    let (items, end) = st.plan(sink, max_points, durable);
                    Some((items, start, end))
                } else if available == 0 && st.closing && all_written {
                    if lost_before > 0 {
                        tracing::error!(sink = %st.sinks[sink].name, points = lost_before, "disk queue: points lost to damaged records");
                    }
                    return None;
                } else {
                    None
                }
            };
            if let Some((items, start, end)) = taken {
                // Read without the lock; nothing is handed out until the
                // points are here, so cancelling this future loses nothing.
                let needs_disk = items.iter().any(|i| matches!(i.src, Source::Log));
                let (body, lost) = if needs_disk {
                    let log = log.clone();
                    match tokio::task::spawn_blocking(move || batch::load(items, &log, form)).await
                    {
                        Ok(loaded) => loaded,
                        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                        // The runtime is shutting down.
                        Err(_) => return None,
                    }
                } else {
                    batch::load(items, log, form)
                };
                if !lock(&self.inner.state).commit(sink, start, end) {
                    continue;
                }
                let batch = DiskBatch {
                    body,
                    lost_points: lost_before + lost,
                    end,
                };
                if !batch.body.is_empty() {
                    return Some(batch);
                }
                // Every point in range was unreadable (and logged): move
                // past them and report the count with the next batch.
                lost_before = batch.lost_points;
                if let Err(e) = self.ack(sink, &batch) {
                    tracing::error!("disk queue: cannot persist a cursor: {e}");
                }
                continue;
            }
            let held = async {
                // A journal record held for became durable or failed.
                let changed = match hold_rx.as_mut() {
                    Some(rx) => rx.changed().await.is_ok(),
                    None => false,
                };
                if !changed {
                    std::future::pending::<()>().await;
                }
            };
            let woken = async {
                tokio::select! {
                    r = rx.changed() => r.is_ok(),
                    r = closed_rx.changed() => r.is_ok(),
                    () = held => true,
                }
            };
            match deadline {
                Some(d) => {
                    tokio::select! {
                        ok = woken => if !ok { return None },
                        _ = tokio::time::sleep_until(d) => {}
                    }
                }
                None => {
                    if !woken.await {
                        return None;
                    }
                }
            }
        }
    }

    /// The batch was delivered (or dropped as rejected): moves sink `sink`'s
    /// cursor past it and persists it (a small write, an fsync and a rename:
    /// blocking I/O), then lets the log delete the segments no sink needs
    /// any more. The cursor moves in memory even if persisting fails; the
    /// cursor syncer retries.
    pub fn ack(&self, sink: usize, batch: &DiskBatch) -> io::Result<()> {
        {
            let mut st = lock(&self.inner.state);
            let end = st.end();
            let batch_end = batch.end.min(end);
            let sk = &mut st.sinks[sink];
            if batch_end > sk.acked {
                sk.acked = batch_end;
            }
            if sk.inflight_end.is_some_and(|e| batch_end >= e) {
                // Nothing else in flight: what was dropped meanwhile is
                // passed too.
                sk.inflight_end = None;
                sk.acked = sk.read;
            }
            st.trim();
        }
        self.inner.persist(sink)?;
        self.inner.collect_garbage();
        Ok(())
    }

    /// Points and record bytes sink `sink` has not acknowledged (the batch
    /// in flight included, dropped records excluded).
    pub fn depth(&self, sink: usize) -> (u64, u64) {
        lock(&self.inner.state).depth(sink)
    }

    /// Age of the oldest point sink `sink` has not acknowledged, by the
    /// time its push was appended.
    pub fn oldest_age(&self, sink: usize) -> Option<Duration> {
        let st = lock(&self.inner.state);
        let sk = &st.sinks[sink];
        let e = sk.inflight_end.unwrap_or(sk.acked);
        let oldest = if sk.acked < e { sk.acked } else { sk.read };
        let (i, _) = st.locate(oldest)?;
        let age = unix_now_ns().saturating_sub(st.index[i].append_ns);
        Some(Duration::from_nanos(age.max(0) as u64))
    }

    /// The log the queue writes to.
    pub fn log(&self) -> &Arc<Log> {
        &self.inner.log
    }

    /// The log's group-commit fsyncs (the store's too, when shared); far
    /// fewer than the appends when they arrive concurrently.
    pub fn fsync_count(&self) -> u64 {
        self.inner.log.fsync_count()
    }

    /// No more appends; makes what is queued durable (closing the log if it
    /// is the queue's own), persists cursors and stops the cursor syncer
    /// (blocking until then). Workers drain what is left and then get
    /// `None`; acks keep working.
    pub fn close(&self) {
        lock(&self.inner.state).closing = true;
        let log = &self.inner.log;
        // Revocations are written while the directory is still locked.
        if let Err(e) = self.inner.settle_holds() {
            tracing::error!("disk queue: cannot list the points of refused pushes in FAILED (a restart may send them): {e}");
        }
        if self.inner.owns_log {
            // Errors were logged when they happened.
            let _ = log.close();
        }
        if log.failure().is_some() {
            lock(&self.inner.state).rollback(log.durable());
        }
        *lock(&self.inner.stop) = true;
        self.inner.stop_cv.notify_all();
        let handle = lock(&self.syncer).take();
        if let Some(h) = handle {
            if h.join().is_err() {
                tracing::error!("disk queue cursor thread panicked");
            }
        }
        self.inner.closed_tx.send_replace(true);
    }
}

impl Drop for DiskQueue {
    fn drop(&mut self) {
        self.close();
    }
}

impl fmt::Debug for DiskQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.inner.state);
        f.debug_struct("DiskQueue")
            .field("dir", &self.inner.dir)
            .field("next_seq", &st.next_seq)
            .field("records", &st.index.len())
            .field("log", &self.inner.log)
            .finish()
    }
}
