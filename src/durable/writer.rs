//! The writer: appends, group commit, tickets, failure and recovery,
//! segment rotation, and reading durable records back. See the module docs of
//! `durable` for the guarantees.

use super::fsutil::{self, Failure};
use super::io::{Io, LogFile};
use super::ledger::{Ledger, Place};
use super::reader::{self, Recovery, Visit};
use super::record::{self, Payload, FILE_HEADER_LEN, MAX_PAYLOAD, SEGMENT_MAGIC};
use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The flusher writes through a buffer of this size.
const WRITE_BUFFER: usize = 1 << 20;
/// The file naming a log: its id, so that a snapshot can tell which log
/// its cut refers to.
pub const LOG_ID_FILE: &str = "LOGID";

/// A file of this many bytes is kept in the log's directory
/// ([`RESERVE_FILE`]) and given up when a full disk leaves no room to
/// start a segment: the room a log needs to heal.
pub const RESERVE_BYTES: u64 = 64 << 10;
/// The reserve's name.
pub const RESERVE_FILE: &str = "RESERVE";
/// After a failure with the disk full, the log waits this long before it
/// starts a fresh segment and takes appends again.
const FULL_DISK_RETRY: Duration = Duration::from_secs(1);
/// Failed ranges kept for tickets still to be waited on.
const FAILED_RANGES_KEPT: usize = 4096;

/// Group-commit fsyncs of every log in the process.
static TOTAL_FSYNCS: AtomicU64 = AtomicU64::new(0);

/// Group-commit fsyncs of every log in the process so far (for the
/// agent's self metrics and the benchmark).
pub fn total_fsyncs() -> u64 {
    TOTAL_FSYNCS.load(Ordering::Relaxed)
}

/// While alive, the flusher does not start a group commit: records
/// appended meanwhile (by any client) go to disk together, under one
/// fsync. Hold it only across appends, never across a wait.
#[must_use = "the group lasts as long as this guard"]
pub struct CommitGroup<'a> {
    log: &'a Log,
    /// The generation it was opened in (see `State::groups`).
    gen: u64,
}

impl Drop for CommitGroup<'_> {
    fn drop(&mut self) {
        let slot = (self.gen % 2) as usize;
        let mut st = lock(&self.log.inner.state);
        st.groups[slot] -= 1;
        // Only the last group the flusher waits for wakes it.
        let wake = st.groups[slot] == 0
            && (st.flusher == Flusher::WaitsForGroups(slot)
                || (st.flusher == Flusher::WaitsToRecover && slot == st.recovery_slot));
        drop(st);
        if wake {
            self.log.inner.work.notify_one();
        }
    }
}

/// What the flusher is doing, so that appends and group ends wake it only
/// when it waits for them (a wake-up is a syscall, and a context switch
/// when the flusher goes back to sleep).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flusher {
    Busy,
    /// For records to commit.
    WaitsForOps,
    /// For the groups of this slot of `State::groups` to end.
    WaitsForGroups(usize),
    /// Failed, for the time to try again (and for every group to end).
    WaitsToRecover,
}

/// Reads the log id in `dir`, creating it (tmp file, fsync, rename,
/// directory fsync) if missing or unreadable.
fn log_id(io: &dyn Io, dir: &Path) -> io::Result<u64> {
    let path = dir.join(LOG_ID_FILE);
    if let Ok(data) = io.read(&path) {
        if let Some(id) = parse_log_id(&data) {
            return Ok(id);
        }
    }
    // Unique enough: the clock, the process and a counter.
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let seed = [
        nanos.to_le_bytes(),
        u64::from(std::process::id()).to_le_bytes(),
        N.fetch_add(1, Ordering::Relaxed).to_le_bytes(),
    ]
    .concat();
    let id = (u64::from(record::crc(&seed)) << 32 | u64::from(record::crc(&seed[4..]))).max(1);
    let tmp = dir.join(format!("{LOG_ID_FILE}.tmp"));
    let _ = io.remove(&tmp);
    let f = io.create_new(&tmp)?;
    f.append(format!("{id:016x}\n").as_bytes())?;
    f.sync_data()?;
    io.rename(&tmp, &path)?;
    io.sync_dir(dir)?;
    Ok(id)
}

fn parse_log_id(data: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(data).ok()?.trim();
    (s.len() == 16).then_some(())?;
    u64::from_str_radix(s, 16).ok().filter(|&id| id != 0)
}

/// The id of the log in `dir`, if it has one.
pub fn read_log_id(io: &dyn Io, dir: &Path) -> Option<u64> {
    parse_log_id(&io.read(&dir.join(LOG_ID_FILE)).ok()?)
}

/// Where a record is about to go: the log, the epoch its content was
/// checked at, and the sequence number it will get. Something released
/// only once that record is durable (a push's points in a memory queue,
/// beside a journal) holds one and asks [`Slot::state`].
#[derive(Clone)]
pub struct Slot {
    pub log: Arc<Log>,
    pub epoch: u64,
    pub seq: u64,
}

/// What became of a [`Slot`]'s record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    Durable,
    /// Not yet durable (or not yet appended).
    Pending,
    /// Its group failed, or it was never appended because the log was
    /// failing or closed: it will never be durable.
    Failed,
}

impl Slot {
    pub fn state(&self) -> SlotState {
        // An append refused after the slot was taken leaves a failure
        // since its epoch that covers the sequence number, so a later
        // record taking the same number is never mistaken for it.
        // Durable read first: if no group failed since the slot's epoch by
        // the time that is checked, the record truly is durable.
        let durable = self.log.durable() >= self.seq;
        if self
            .log
            .failed_since(self.epoch)
            .is_some_and(|first| self.seq >= first)
        {
            return SlotState::Failed;
        }
        if durable {
            return SlotState::Durable;
        }
        if self.log.is_closed() {
            return SlotState::Failed;
        }
        SlotState::Pending
    }
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Slot(epoch {}, seq {})", self.epoch, self.seq)
    }
}

/// Identifies an appended record; wait on it before acknowledging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[must_use = "a record is only durable once its ticket has been waited on"]
pub struct Ticket(u64);

impl Ticket {
    /// A ticket that is always durable (nothing was appended).
    pub const DURABLE: Ticket = Ticket(0);

    /// A ticket for every record below `seq`: waiting on it waits until
    /// they are all durable, and fails if the last of them failed (a
    /// failure fails every record not yet durable, so an earlier one
    /// failed only if that one did too).
    pub fn below(seq: u64) -> Ticket {
        Ticket(seq.saturating_sub(1))
    }

    /// The record's sequence number.
    pub fn seq(self) -> u64 {
        self.0
    }

    /// The later of two tickets: waiting on it waits for both.
    pub fn max(self, other: Ticket) -> Ticket {
        Ticket(self.0.max(other.0))
    }
}

#[derive(Debug, Clone)]
pub struct LogOptions {
    /// A new segment is started when the current one would grow past this.
    pub segment_bytes: u64,
    /// How many clients hold segments back ([`Log::release`]).
    pub holders: usize,
    /// Names the log in messages ("journal", "disk queue").
    pub what: &'static str,
}

pub(super) fn segment_name(first_seq: u64) -> String {
    format!("{}{first_seq:020}", reader::SEGMENT_PREFIX)
}

enum Op {
    Record {
        seq: u64,
        header: [u8; record::HEADER_LEN],
        payload: Vec<u8>,
    },
    /// Commit what is written, then continue in the segment of this name.
    Rotate(u64),
}

struct State {
    ops: Vec<Op>,
    next_seq: u64,
    /// Name of the segment appends go to, and its size with what is queued.
    active: u64,
    active_bytes: u64,
    ledger: Ledger,
    /// [`CommitGroup`]s alive, by generation (`group_gen % 2`): the flusher
    /// waits for those of the current generation to end, so that what they
    /// append shares one fsync. It starts a new generation as it begins to
    /// wait, and never waits for that one: a stream of overlapping groups
    /// cannot hold commits back for ever.
    groups: [usize; 2],
    group_gen: u64,
    flusher: Flusher,
    closing: bool,
    /// Set while appends are refused: from a failed write or fsync until
    /// the flusher has started a fresh segment (see [`Log::epoch`]).
    failed: Option<Failure>,
    /// When the flusher tries to recover from `failed`.
    retry_at: Option<Instant>,
    /// Failures so far, and the first sequence number each failed.
    epoch: u64,
    failures: std::collections::VecDeque<(u64, u64)>,
    /// The `groups` slot of the commit groups open when the last group
    /// failed: recovery waits for them only (a group opened later had its
    /// appends refused, so it cannot straddle the failure).
    recovery_slot: usize,
    /// The ranges of failed records listed in `FAILED` (and those to add
    /// at the next recovery), so that replay ignores them.
    failed_on_disk: Vec<(u64, u64)>,
}

/// Records that failed together: every record appended but not durable
/// when a write or fsync failed.
#[derive(Clone, Debug)]
struct FailedRange {
    first: u64,
    last: u64,
    failure: Failure,
}

#[derive(Clone, Debug, Default)]
struct Status {
    /// Every record up to this sequence number is on disk, except those
    /// in `failed_ranges`.
    durable: u64,
    /// The latest failures, newest last; shared, as a status is cloned
    /// at every commit.
    failed_ranges: Arc<Vec<FailedRange>>,
    /// While set, appends are refused.
    failed: Option<Failure>,
    closed: bool,
}

struct Inner {
    dir: PathBuf,
    id: u64,
    io: Arc<dyn Io>,
    opts: LogOptions,
    state: Mutex<State>,
    work: Condvar,
    status: Mutex<Status>,
    status_cv: Condvar,
    status_tx: watch::Sender<Status>,
    fsyncs: AtomicU64,
    /// Mirrors `State::epoch`, read without the lock.
    epoch: AtomicU64,
    /// Told the last durable sequence number when a group fails, before
    /// any later record can be durable (see [`Log::on_failure`]).
    on_failure: Mutex<Vec<FailureHook>>,
    /// Run before each try to recover (see [`Log::on_retry`]).
    on_retry: Mutex<Vec<Box<dyn Fn() + Send + Sync>>>,
    /// Set while appends are refused for a full disk.
    full: std::sync::atomic::AtomicBool,
    /// Set while appends are refused for any reason (`State::failed`).
    refusing: std::sync::atomic::AtomicBool,
}

type FailureHook = Box<dyn Fn(u64) + Send + Sync>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data is consistent at every unlock; a panic elsewhere is
    // no reason to stop.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    fn update_status(&self, f: impl FnOnce(&mut Status)) {
        let mut s = lock(&self.status);
        f(&mut s);
        self.status_tx.send_replace(s.clone());
        drop(s);
        self.status_cv.notify_all();
    }

    /// Latches the first failure for good (the flusher is gone): queued
    /// and later appends all get it.
    fn fail(&self, st: &mut State, kind: io::ErrorKind, message: String) {
        let Some(failure) = Failure::set_first(&mut st.failed, kind, message) else {
            return;
        };
        st.ops.clear();
        st.retry_at = None;
        self.refusing.store(true, Ordering::Release);
        self.update_status(|s| s.failed = Some(failure));
    }

    fn check_open(&self, st: &State) -> io::Result<()> {
        if st.closing {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("the {} is closed", self.opts.what),
            ));
        }
        if let Some(f) = &st.failed {
            return Err(f.to_error());
        }
        Ok(())
    }

    fn create_segment(&self, name: u64) -> io::Result<Arc<dyn LogFile>> {
        let path = self.dir.join(segment_name(name));
        let file = self.io.create_new(&path)?;
        let written = file
            .append(&record::file_header(SEGMENT_MAGIC, name))
            .and_then(|()| file.sync_data())
            .and_then(|()| self.io.sync_dir(&self.dir));
        if let Err(e) = written {
            // Half made: gone, so that a later try can create it again.
            let _ = self.io.remove(&path);
            return Err(e);
        }
        Ok(file)
    }

    /// Creates the reserve if it is missing and the disk has room for it
    /// and as much again. Best effort: a log works without it.
    fn keep_reserve(&self) {
        let path = self.dir.join(RESERVE_FILE);
        let _ = super::io::hold_room(&*self.io, &path, RESERVE_BYTES, RESERVE_BYTES);
    }

    /// Gives the reserve up; true if there was one.
    fn release_reserve(&self) -> bool {
        let gone = self.io.remove(&self.dir.join(RESERVE_FILE)).is_ok();
        if gone {
            let _ = self.io.sync_dir(&self.dir);
        }
        gone
    }
}

fn resolve(s: &Status, t: Ticket) -> Option<io::Result<()>> {
    if let Some(r) = s
        .failed_ranges
        .iter()
        .rev()
        .find(|r| (r.first..=r.last).contains(&t.0))
    {
        return Some(Err(r.failure.to_error()));
    }
    if s.durable >= t.0 {
        Some(Ok(()))
    } else if let Some(f) = &s.failed {
        Some(Err(f.to_error()))
    } else if s.closed {
        Some(Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "the log closed before the record was written",
        )))
    } else {
        None
    }
}

// ---------------------------------------------------------------------------
// The flusher thread.

/// Stands for the segment a log started on a full disk could not create;
/// never written (the log refuses appends until it has a real one).
struct NoFile;

impl LogFile for NoFile {
    fn append(&self, _: &[u8]) -> io::Result<()> {
        Err(io::Error::other("no segment"))
    }
    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }
    fn read_exact_at(&self, _: &mut [u8], _: u64) -> io::Result<()> {
        Err(io::Error::other("no segment"))
    }
    fn set_len(&self, _: u64) -> io::Result<()> {
        Ok(())
    }
}

/// The segment being written: its name, file, and length on disk.
struct Active {
    name: u64,
    file: Arc<dyn LogFile>,
    len: u64,
    /// Length when the last group was committed: a failed group is cut
    /// back to it.
    committed: u64,
    /// A failed fsync, or a failed cut, hit it: never written again.
    poisoned: bool,
}

fn run_flusher(inner: Arc<Inner>, mut active: Active) {
    let _exit = FlusherExit(&inner);
    loop {
        let taken = {
            let mut st = lock(&inner.state);
            loop {
                if st.failed.is_some() {
                    if st.closing {
                        // Said on disk before the process goes: a failed
                        // fsync may have left the group's commit marker.
                        let ranges = st.failed_on_disk.clone();
                        drop(st);
                        let _ = reader::write_failed_ranges(&*inner.io, &inner.dir, &ranges);
                        return;
                    }
                    // Recover only once no commit group is open: a group
                    // that appended before the failure must not append
                    // its next record after it (see `Log::epoch`).
                    let now = Instant::now();
                    let due = st.retry_at.is_none_or(|t| now >= t);
                    if due && st.groups[st.recovery_slot] == 0 {
                        break;
                    }
                    let wait = match st.retry_at {
                        Some(t) if t > now => t - now,
                        _ => Duration::from_millis(10),
                    };
                    st.flusher = Flusher::WaitsToRecover;
                    st = inner
                        .work
                        .wait_timeout(st, wait)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                    st.flusher = Flusher::Busy;
                    continue;
                }
                if !st.ops.is_empty() {
                    let open = (st.group_gen % 2) as usize;
                    if st.groups[open] > 0 && !st.closing {
                        // Wait for the groups open now; those opened
                        // meanwhile count in the next generation, whose
                        // slot is empty (its groups ended before the
                        // previous commit), and are not waited for.
                        st.group_gen += 1;
                        while st.groups[open] > 0 && !st.closing {
                            st.flusher = Flusher::WaitsForGroups(open);
                            st = inner.work.wait(st).unwrap_or_else(|p| p.into_inner());
                        }
                        st.flusher = Flusher::Busy;
                    }
                    break;
                }
                if st.closing {
                    return;
                }
                st.flusher = Flusher::WaitsForOps;
                st = inner.work.wait(st).unwrap_or_else(|p| p.into_inner());
                st.flusher = Flusher::Busy;
            }
            // Everything queued while the last fsync ran goes out together.
            (st.failed.is_none()).then(|| (std::mem::take(&mut st.ops), st.next_seq - 1))
        };
        let Some((ops, target)) = taken else {
            recover(&inner, &mut active);
            continue;
        };
        match write_ops(&inner, &mut active, ops) {
            Ok(()) => inner.update_status(|s| s.durable = s.durable.max(target)),
            Err(e) => fail_group(&inner, &mut active, e),
        }
    }
}

/// A write or fsync failed: every record appended and not yet durable
/// fails with it, and appends are refused until [`recover`] has run.
fn fail_group(inner: &Inner, active: &mut Active, e: io::Error) {
    // Cut off the group that did not commit, so that a restart does not
    // replay what was never acknowledged. If the cut fails, recovery still
    // leaves the file for a fresh one, and the reader ignores a last group
    // without its commit marker in any segment.
    let cut = active.file.set_len(active.committed).is_ok();
    active.len = active.committed;
    let full = is_disk_full(&e);
    active.poisoned = !cut || !full;
    let path = inner.dir.join(segment_name(active.name));
    let message = if full {
        format!(
            "{} {}: the disk is full ({e}); pushes are refused until there is room",
            inner.opts.what,
            path.display()
        )
    } else {
        format!(
            "{} {}: write or fsync failed: {e}; the file is left, and appends go on in a fresh one",
            inner.opts.what,
            path.display()
        )
    };
    let failure = Failure::new(e.kind(), message);
    let first = lock(&inner.status).durable + 1;
    let mut st = lock(&inner.state);
    let last = st.next_seq - 1;
    st.ops.clear();
    // Segments a cleared rotation named but never created.
    st.ledger.forget_unmade();
    st.epoch += 1;
    inner.epoch.store(st.epoch, Ordering::Release);
    // Groups opened from now on count in the other slot; recovery waits
    // for this one's.
    st.recovery_slot = (st.group_gen % 2) as usize;
    st.group_gen += 1;
    let epoch = st.epoch;
    st.failures.push_back((epoch, first));
    if st.failures.len() > FAILED_RANGES_KEPT {
        st.failures.pop_front();
    }
    if first <= last {
        st.failed_on_disk.push((first, last));
    }
    st.failed = Some(failure.clone());
    st.retry_at = Some(
        Instant::now()
            + if full {
                FULL_DISK_RETRY
            } else {
                Duration::ZERO
            },
    );
    inner.full.store(full, Ordering::Release);
    inner.refusing.store(true, Ordering::Release);
    drop(st);
    tracing::error!("{}", failure.message);
    // Clients forget the failed records before any later one can become
    // durable; hooks may take the clients' own locks.
    for hook in lock(&inner.on_failure).iter() {
        hook(first - 1);
    }
    inner.update_status(|s| {
        let mut ranges = Vec::with_capacity(s.failed_ranges.len() + 1);
        let keep = s.failed_ranges.len().saturating_sub(FAILED_RANGES_KEPT - 1);
        ranges.extend(s.failed_ranges[keep..].iter().cloned());
        if first <= last {
            ranges.push(FailedRange {
                first,
                last,
                failure: failure.clone(),
            });
        }
        s.failed_ranges = Arc::new(ranges);
        s.failed = Some(failure);
    });
}

/// ENOSPC or EDQUOT: waiting (or deleting) can cure it.
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// After a failure, once no commit group is open: continues in a fresh
/// segment (the failed one may be poisoned by a failed fsync, or be the
/// one that filled the disk and can only be deleted once it is not
/// written any more), giving the reserve up if that is what it takes.
/// Then appends are taken again; if the disk is still full, the next
/// group fails as the last one did.
fn recover(inner: &Inner, active: &mut Active) {
    for hook in lock(&inner.on_retry).iter() {
        hook();
    }
    let (name, ranges) = {
        let mut st = lock(&inner.state);
        // Ranges below every segment kept name nothing on disk.
        let oldest = st.ledger.oldest().unwrap_or(0).min(active.name);
        st.failed_on_disk.retain(|&(_, last)| last >= oldest);
        (st.next_seq, st.failed_on_disk.clone())
    };
    if !write_failed_list(inner, &ranges) {
        return;
    }
    // An unpoisoned segment holding no record (the disk filled at its
    // first group) is kept: starting another would only add files.
    if !active.poisoned && active.len == FILE_HEADER_LEN as u64 {
        resume(inner, None);
        return;
    }
    let mut made = inner.create_segment(name);
    if matches!(&made, Err(e) if is_disk_full(e)) && inner.release_reserve() {
        tracing::warn!(
            "{} {}: the disk is full; gave up the reserved {RESERVE_BYTES} bytes to start a segment",
            inner.opts.what,
            inner.dir.display()
        );
        made = inner.create_segment(name);
    }
    match made {
        Ok(file) => {
            let len = FILE_HEADER_LEN as u64;
            *active = Active {
                name,
                file: file.clone(),
                len,
                committed: len,
                poisoned: false,
            };
            resume(inner, Some((name, file)));
        }
        Err(e) => {
            // Still failing: try again in a while.
            tracing::debug!("{}: cannot start a fresh segment yet: {e}", inner.opts.what);
            lock(&inner.state).retry_at = Some(Instant::now() + FULL_DISK_RETRY);
        }
    }
}

/// Lists the failed ranges in `FAILED`, giving the reserve up if that is
/// what it takes; on failure, schedules the next try and returns false.
/// Said on disk before anything else is appended: a failed fsync may
/// have left the group's commit marker behind.
fn write_failed_list(inner: &Inner, ranges: &[(u64, u64)]) -> bool {
    let mut listed = reader::write_failed_ranges(&*inner.io, &inner.dir, ranges);
    if matches!(&listed, Err(e) if is_disk_full(e)) && inner.release_reserve() {
        listed = reader::write_failed_ranges(&*inner.io, &inner.dir, ranges);
    }
    match listed {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(
                "{}: cannot list the failed records yet: {e}",
                inner.opts.what
            );
            lock(&inner.state).retry_at = Some(Instant::now() + FULL_DISK_RETRY);
            false
        }
    }
}

/// Takes appends again, in `fresh` (name and file) if given, else in the
/// segment being written.
fn resume(inner: &Inner, fresh: Option<(u64, Arc<dyn LogFile>)>) {
    let mut st = lock(&inner.state);
    if let Some((name, file)) = fresh {
        st.ledger
            .add_segment(name, inner.dir.join(segment_name(name)), Some(file));
        st.active = name;
    }
    // The failed group's bytes were cut off (or left in a file not
    // written again).
    st.active_bytes = FILE_HEADER_LEN as u64;
    st.failed = None;
    st.retry_at = None;
    inner.full.store(false, Ordering::Release);
    inner.refusing.store(false, Ordering::Release);
    drop(st);
    inner.update_status(|s| s.failed = None);
    tracing::info!(
        "{} {}: appends are taken again",
        inner.opts.what,
        inner.dir.display()
    );
    inner.keep_reserve();
}

/// Records written since the last commit, to commit.
struct Group {
    first: u64,
    last: u64,
    /// (seq, offset, len) for the ledger once committed.
    places: Vec<(u64, u64, u64)>,
}

fn write_ops(inner: &Inner, active: &mut Active, ops: Vec<Op>) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    let mut group: Option<Group> = None;
    for op in ops {
        match op {
            Op::Record {
                seq,
                header,
                payload,
            } => {
                let len = (header.len() + payload.len()) as u64;
                let offset = active.len + buf.len() as u64;
                let g = group.get_or_insert(Group {
                    first: seq,
                    last: seq,
                    places: Vec::new(),
                });
                g.last = seq;
                g.places.push((seq, offset, len));
                if buf.len() + len as usize > WRITE_BUFFER && !buf.is_empty() {
                    flush(active, &mut buf)?;
                }
                buf.extend_from_slice(&header);
                if payload.len() >= WRITE_BUFFER {
                    flush(active, &mut buf)?;
                    active.file.append(&payload)?;
                    active.len += payload.len() as u64;
                } else {
                    buf.extend_from_slice(&payload);
                }
            }
            Op::Rotate(name) => {
                if let Some(g) = group.take() {
                    commit(inner, active, &mut buf, g)?;
                }
                let file = inner.create_segment(name)?;
                lock(&inner.state).ledger.set_file(name, file.clone());
                let len = FILE_HEADER_LEN as u64;
                *active = Active {
                    name,
                    file,
                    len,
                    committed: len,
                    poisoned: false,
                };
            }
        }
    }
    if let Some(g) = group {
        commit(inner, active, &mut buf, g)?;
    }
    Ok(())
}

fn flush(active: &mut Active, buf: &mut Vec<u8>) -> io::Result<()> {
    if !buf.is_empty() {
        active.file.append(buf)?;
        active.len += buf.len() as u64;
        buf.clear();
    }
    Ok(())
}

/// Closes a group with its commit marker, writes it and fsyncs once.
fn commit(inner: &Inner, active: &mut Active, buf: &mut Vec<u8>, g: Group) -> io::Result<()> {
    buf.extend_from_slice(&record::commit_marker(g.first, g.last));
    flush(active, buf)?;
    active.file.sync_data()?;
    inner.fsyncs.fetch_add(1, Ordering::Relaxed);
    TOTAL_FSYNCS.fetch_add(1, Ordering::Relaxed);
    active.committed = active.len;
    let mut st = lock(&inner.state);
    for (seq, offset, len) in g.places {
        st.ledger.record(active.name, seq, offset, len);
    }
    drop(st);
    // Durable now, even if a later group of the same batch fails.
    inner.update_status(|s| s.durable = s.durable.max(g.last));
    Ok(())
}

/// However the flusher ends (close, failure, panic), no waiter may be left
/// hanging and no later append may be accepted.
struct FlusherExit<'a>(&'a Inner);

impl Drop for FlusherExit<'_> {
    fn drop(&mut self) {
        let inner = self.0;
        let mut st = lock(&inner.state);
        if st.failed.is_none() && (!st.closing || !st.ops.is_empty()) {
            let what = inner.opts.what;
            inner.fail(
                &mut st,
                io::ErrorKind::Other,
                format!("{what} flusher stopped unexpectedly; records not acknowledged"),
            );
        }
        st.closing = true;
        drop(st);
        inner.update_status(|s| s.closed = true);
    }
}

// ---------------------------------------------------------------------------
// Public API.

/// What [`Log::open`] found.
#[derive(Debug)]
pub struct Opened {
    pub log: Log,
    /// Damage found on disk and what was done about it (also logged).
    pub warnings: Vec<String>,
}

/// The log. `Send + Sync`; share it through an `Arc`.
pub struct Log {
    inner: Arc<Inner>,
    flusher: Mutex<Option<JoinHandle<()>>>,
    /// Holds the directory's exclusive lock while the log exists.
    lock_file: Mutex<Option<File>>,
}

impl Log {
    /// Opens (creating if needed) the log in `dir`, hands every committed
    /// record to `visit` in sequence order, and starts the flusher in a
    /// fresh segment. Damage is repaired as the module docs say and
    /// reported in [`Opened::warnings`]; only I/O errors fail.
    pub fn open(
        io: Arc<dyn Io>,
        dir: &Path,
        opts: LogOptions,
        visit: &mut Visit<'_>,
    ) -> io::Result<Opened> {
        fsutil::create_private_dir(dir)?;
        let lock_file = fsutil::lock_dir(dir, opts.what)?;
        Log::open_locked(io, dir, opts, lock_file, visit)
    }

    /// [`Log::open`] for a caller that already holds `dir`'s lock
    /// ([`fsutil::lock_dir`]), e.g. to migrate older files first.
    pub fn open_locked(
        io: Arc<dyn Io>,
        dir: &Path,
        opts: LogOptions,
        lock_file: File,
        visit: &mut Visit<'_>,
    ) -> io::Result<Opened> {
        let id = log_id(&*io, dir)?;
        let Recovery {
            next_seq,
            segments,
            warnings,
        } = reader::recover(&*io, dir, opts.what, visit)?;
        let mut ledger = Ledger::new(opts.holders);
        for s in segments {
            let name = s.name;
            ledger.add_segment(name, s.path, s.file);
            for (seq, offset, len) in s.records {
                ledger.record(name, seq, offset, len);
            }
        }
        let (status_tx, _) = watch::channel(Status::default());
        let io_for_ranges = io.clone();
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            id,
            io,
            opts,
            state: Mutex::new(State {
                ops: Vec::new(),
                next_seq,
                active: next_seq,
                active_bytes: FILE_HEADER_LEN as u64,
                ledger,
                groups: [0, 0],
                group_gen: 0,
                flusher: Flusher::Busy,
                closing: false,
                failed: None,
                retry_at: None,
                epoch: 0,
                failures: std::collections::VecDeque::new(),
                recovery_slot: 0,
                failed_on_disk: reader::failed_ranges(&*io_for_ranges, dir),
            }),
            work: Condvar::new(),
            status: Mutex::new(Status {
                durable: next_seq - 1,
                ..Status::default()
            }),
            status_cv: Condvar::new(),
            status_tx,
            fsyncs: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            on_failure: Mutex::new(Vec::new()),
            on_retry: Mutex::new(Vec::new()),
            full: std::sync::atomic::AtomicBool::new(false),
            refusing: std::sync::atomic::AtomicBool::new(false),
        });
        inner.update_status(|s| s.durable = next_seq - 1);
        // A fresh segment at every open: the old ones are only read.
        let mut made = inner.create_segment(next_seq);
        if matches!(&made, Err(e) if is_disk_full(e)) && inner.release_reserve() {
            made = inner.create_segment(next_seq);
        }
        let len = FILE_HEADER_LEN as u64;
        let active = match made {
            Ok(file) => {
                lock(&inner.state).ledger.add_segment(
                    next_seq,
                    dir.join(segment_name(next_seq)),
                    Some(file.clone()),
                );
                inner.keep_reserve();
                Active {
                    name: next_seq,
                    file,
                    len,
                    committed: len,
                    poisoned: false,
                }
            }
            // Started on a full disk: what is on disk is read and served,
            // appends are refused until the flusher can start a segment.
            Err(e) if is_disk_full(&e) => {
                let failure = Failure::new(
                    e.kind(),
                    format!(
                        "{} {}: the disk is full ({e}); pushes are refused until there is room",
                        inner.opts.what,
                        dir.display()
                    ),
                );
                tracing::error!("{}", failure.message);
                let mut st = lock(&inner.state);
                st.failed = Some(failure.clone());
                st.retry_at = Some(Instant::now() + FULL_DISK_RETRY);
                inner.full.store(true, Ordering::Release);
                inner.refusing.store(true, Ordering::Release);
                drop(st);
                inner.update_status(|s| s.failed = Some(failure));
                Active {
                    name: next_seq,
                    file: Arc::new(NoFile),
                    len,
                    committed: len,
                    poisoned: true,
                }
            }
            Err(e) => return Err(e),
        };
        let thread_inner = inner.clone();
        let handle = std::thread::Builder::new()
            .name(format!("{}-flusher", inner.opts.what.replace(' ', "-")))
            .spawn(move || run_flusher(thread_inner, active))?;
        Ok(Opened {
            log: Log {
                inner,
                flusher: Mutex::new(Some(handle)),
                lock_file: Mutex::new(Some(lock_file)),
            },
            warnings,
        })
    }

    /// Queues one record; never blocks on I/O. Records are written in
    /// the order of their sequence numbers, which this assigns: a caller
    /// that needs its records in the order of its own state appends under
    /// its own lock. Fails once the log failed or closed, or if the
    /// payload is larger than [`MAX_PAYLOAD`].
    pub fn append(&self, p: Payload) -> io::Result<Ticket> {
        self.append_checked(p, None)
    }

    /// [`Log::append`], refused if a group has failed since `epoch` was
    /// read from [`Log::epoch`]: a client whose records depend on its
    /// earlier ones (the store's, checked against the state they left)
    /// appends this way, after it has undone what failed.
    pub fn append_in(&self, epoch: u64, p: Payload) -> io::Result<Ticket> {
        self.append_checked(p, Some(epoch))
    }

    fn append_checked(&self, p: Payload, epoch: Option<u64>) -> io::Result<Ticket> {
        if p.bytes.len() > MAX_PAYLOAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a {} record of {} bytes exceeds the limit of {MAX_PAYLOAD}",
                    self.inner.opts.what,
                    p.bytes.len()
                ),
            ));
        }
        let mut st = lock(&self.inner.state);
        self.inner.check_open(&st)?;
        if epoch.is_some_and(|e| e != st.epoch) {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                format!(
                    "the {} failed a group meanwhile; what depended on it is undone",
                    self.inner.opts.what
                ),
            ));
        }
        let len = p.frame_len();
        let header_len = FILE_HEADER_LEN as u64;
        if st.active_bytes > header_len && st.active_bytes + len > self.inner.opts.segment_bytes {
            let name = st.next_seq;
            let path = self.inner.dir.join(segment_name(name));
            st.ledger.add_segment(name, path, None);
            st.ops.push(Op::Rotate(name));
            st.active = name;
            st.active_bytes = header_len;
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        st.active_bytes += len;
        st.ops.push(Op::Record {
            seq,
            header: p.header(seq),
            payload: p.bytes,
        });
        let wake = st.flusher == Flusher::WaitsForOps;
        drop(st);
        if wake {
            self.inner.work.notify_one();
        }
        Ok(Ticket(seq))
    }

    /// Starts a [`CommitGroup`]: the records appended while it lives are
    /// made durable by one fsync (e.g. a push's store record and its
    /// queue record, appended by two clients).
    pub fn group(&self) -> CommitGroup<'_> {
        let mut st = lock(&self.inner.state);
        let gen = st.group_gen;
        st.groups[(gen % 2) as usize] += 1;
        CommitGroup { log: self, gen }
    }

    /// How many groups have failed so far: a client that appends records
    /// which depend on its earlier ones compares it with the value it last
    /// saw, undoes what failed ([`Log::failed_since`]) and appends with
    /// [`Log::append_in`].
    pub fn epoch(&self) -> u64 {
        self.inner.epoch.load(Ordering::Acquire)
    }

    /// The first sequence number failed by the groups that failed after
    /// `epoch` (every record from it up to the failure failed); `None` if
    /// none did. `Some(0)` if so many failed since that the first is no
    /// longer known.
    pub fn failed_since(&self, epoch: u64) -> Option<u64> {
        let st = lock(&self.inner.state);
        if st.epoch == epoch {
            return None;
        }
        let first = st
            .failures
            .iter()
            .find(|(e, _)| *e > epoch)
            .map(|(_, f)| *f);
        match first {
            Some(f) if st.failures.front().is_some_and(|(e, _)| *e <= epoch + 1) => Some(f),
            _ => Some(0),
        }
    }

    /// Runs `hook` with the last durable sequence number whenever a group
    /// fails, on the flusher thread, before any later record can be
    /// durable: a client drops what it keeps of the failed records there.
    /// The hook may take the client's locks, never the log's.
    pub fn on_failure(&self, hook: impl Fn(u64) + Send + Sync + 'static) {
        lock(&self.inner.on_failure).push(Box::new(hook));
    }

    /// Why appends are refused now, if they are; cheap when they are not
    /// (an atomic load), so a client can ask before every append.
    pub fn refusal(&self) -> Option<io::Error> {
        if !self.inner.refusing.load(Ordering::Acquire) {
            return None;
        }
        self.failure()
    }

    /// True while appends are refused for a full disk: a client that pins
    /// segments (the store, until a snapshot covers its records) should
    /// compact now, into room of its own (see `store::room`).
    pub fn refuses_for_space(&self) -> bool {
        self.inner.full.load(Ordering::Acquire)
    }

    /// Runs `hook` on the flusher thread before each try to recover from
    /// a failure (each second while the disk is full): a client that can
    /// free room (the store, by compacting) does so there, even when no
    /// append comes to tell it. The hook may take the client's locks,
    /// never the log's.
    pub fn on_retry(&self, hook: impl Fn() + Send + Sync + 'static) {
        lock(&self.inner.on_retry).push(Box::new(hook));
    }

    /// The log's id (see [`LOG_ID_FILE`]).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Waits until the record is durable (or the log failed or closed).
    pub async fn wait(&self, t: Ticket) -> io::Result<()> {
        if let Some(r) = resolve(&lock(&self.inner.status), t) {
            return r;
        }
        let mut rx = self.inner.status_tx.subscribe();
        let result = match rx.wait_for(|s| resolve(s, t).is_some()).await {
            Ok(s) => resolve(&s, t),
            Err(_) => None,
        };
        result.unwrap_or_else(|| Err(io::Error::other("log status channel closed")))
    }

    /// Blocking form of [`Log::wait`], for threads outside a runtime.
    pub fn wait_blocking(&self, t: Ticket) -> io::Result<()> {
        let mut s = lock(&self.inner.status);
        loop {
            if let Some(r) = resolve(&s, t) {
                return r;
            }
            s = self
                .inner
                .status_cv
                .wait(s)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// A receiver that changes whenever records become durable, the log
    /// fails or it closes (for readers waiting on new records).
    pub fn subscribe(&self) -> watch::Receiver<impl Sized + use<>> {
        self.inner.status_tx.subscribe()
    }

    /// Every record up to this sequence number is durable.
    pub fn durable(&self) -> u64 {
        lock(&self.inner.status).durable
    }

    /// The sequence number the next append gets.
    pub fn next_seq(&self) -> u64 {
        lock(&self.inner.state).next_seq
    }

    /// Why appends are refused now, if they are: a failure the log has
    /// not recovered from yet (or for good, once its flusher is gone).
    pub fn failure(&self) -> Option<io::Error> {
        lock(&self.inner.state)
            .failed
            .as_ref()
            .map(Failure::to_error)
    }

    /// True once [`Log::close`] ran (or the flusher stopped).
    pub fn is_closed(&self) -> bool {
        lock(&self.inner.status).closed
    }

    /// Reads back durable record `seq`: its kind, version and payload.
    /// Without the log's lock (from the page cache or the disk).
    pub fn read(&self, seq: u64) -> Result<(u8, u8, Vec<u8>), String> {
        let (place, file) = lock(&self.inner.state)
            .ledger
            .find(seq)
            .ok_or_else(|| format!("record {seq} is not in the log"))?;
        let file = file.ok_or("segment file is not open")?;
        read_at(&*file, place, seq)
    }

    /// Holder `holder` needs no record below `below` any more: deletes the
    /// segments no holder needs (blocking I/O).
    pub fn release(&self, holder: usize, below: u64) {
        let doomed = {
            let mut st = lock(&self.inner.state);
            st.ledger.release(holder, below);
            st.ledger.collect()
        };
        for path in doomed {
            match self.inner.io.remove(&path) {
                Ok(()) => tracing::debug!("{}: removed {}", self.inner.opts.what, path.display()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(
                    "{}: cannot remove {}: {e}",
                    self.inner.opts.what,
                    path.display()
                ),
            }
        }
    }

    /// True if holder `holder` alone keeps a segment on disk (see
    /// [`Log::refuses_for_space`]).
    pub fn pinned_by(&self, holder: usize) -> bool {
        lock(&self.inner.state).ledger.pinned_by(holder)
    }

    /// The name (first possible sequence number) of the oldest segment.
    pub fn oldest_segment(&self) -> u64 {
        lock(&self.inner.state).ledger.oldest().unwrap_or(1)
    }

    /// Segments on disk (the one being written included).
    pub fn segment_count(&self) -> usize {
        lock(&self.inner.state).ledger.segment_count()
    }

    /// Group-commit fsyncs so far: one per group of records made durable
    /// together (segment creations and directory fsyncs not counted).
    pub fn fsync_count(&self) -> u64 {
        self.inner.fsyncs.load(Ordering::Relaxed)
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub fn io(&self) -> &Arc<dyn Io> {
        &self.inner.io
    }

    /// No more appends: writes and fsyncs what is queued, stops the
    /// flusher (blocking until then) and releases the directory's lock.
    /// Returns the latched failure, if any. Idempotent.
    pub fn close(&self) -> io::Result<()> {
        lock(&self.inner.state).closing = true;
        self.inner.work.notify_all();
        let handle = lock(&self.flusher).take();
        if let Some(h) = handle {
            if h.join().is_err() {
                tracing::error!("{} flusher thread panicked", self.inner.opts.what);
            }
        }
        self.inner.update_status(|s| s.closed = true);
        lock(&self.lock_file).take();
        match self.failure() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Reads and checks the record at `place`.
fn read_at(file: &dyn LogFile, place: Place, seq: u64) -> Result<(u8, u8, Vec<u8>), String> {
    let mut buf = vec![0u8; place.len as usize];
    file.read_exact_at(&mut buf, place.offset)
        .map_err(|e| e.to_string())?;
    let f = record::parse(&buf).map_err(str::to_string)?;
    if f.seq != seq || f.frame_len() != buf.len() {
        return Err("a different record is at its place".into());
    }
    let (kind, version) = (f.kind, f.version);
    buf.drain(..record::HEADER_LEN);
    Ok((kind, version, buf))
}

impl Drop for Log {
    fn drop(&mut self) {
        // Errors were logged when they happened.
        let _ = self.close();
    }
}

impl fmt::Debug for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.inner.state);
        f.debug_struct("Log")
            .field("dir", &self.inner.dir)
            .field("next_seq", &st.next_seq)
            .field("failed", &st.failed.as_ref().map(|f| &f.message))
            .finish()
    }
}
