//! The writer: appends, group commit, tickets, the failure latch, segment
//! rotation, and reading durable records back. See the module docs of
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
use tokio::sync::watch;

/// The flusher writes through a buffer of this size.
const WRITE_BUFFER: usize = 1 << 20;
/// The file naming a log: its id, so that a snapshot can tell which log
/// its cut refers to.
pub const LOG_ID_FILE: &str = "LOGID";

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
        let wake = st.groups[slot] == 0 && st.flusher == Flusher::WaitsForGroups(slot);
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

/// Identifies an appended record; wait on it before acknowledging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[must_use = "a record is only durable once its ticket has been waited on"]
pub struct Ticket(u64);

impl Ticket {
    /// A ticket that is always durable (nothing was appended).
    pub const DURABLE: Ticket = Ticket(0);

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
    failed: Option<Failure>,
}

#[derive(Clone, Debug, Default)]
struct Status {
    /// Every record up to this sequence number is on disk.
    durable: u64,
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
}

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

    /// Latches the first failure: queued and later appends all get it.
    fn fail(&self, st: &mut State, kind: io::ErrorKind, message: String) {
        let Some(failure) = Failure::set_first(&mut st.failed, kind, message) else {
            return;
        };
        st.ops.clear();
        self.update_status(|s| s.failed = Some(failure));
    }

    fn check_open(&self, st: &State) -> io::Result<()> {
        if let Some(f) = &st.failed {
            return Err(f.to_error());
        }
        if st.closing {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("the {} is closed", self.opts.what),
            ));
        }
        Ok(())
    }

    fn create_segment(&self, name: u64) -> io::Result<Arc<dyn LogFile>> {
        let file = self.io.create_new(&self.dir.join(segment_name(name)))?;
        file.append(&record::file_header(SEGMENT_MAGIC, name))?;
        file.sync_data()?;
        self.io.sync_dir(&self.dir)?;
        Ok(file)
    }
}

fn resolve(s: &Status, t: Ticket) -> Option<io::Result<()>> {
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

/// The segment being written: its name, file, and length on disk.
struct Active {
    name: u64,
    file: Arc<dyn LogFile>,
    len: u64,
    /// Length when the last group was committed: a failed group is cut
    /// back to it.
    committed: u64,
}

fn run_flusher(inner: Arc<Inner>, mut active: Active) {
    let _exit = FlusherExit(&inner);
    loop {
        let (ops, target) = {
            let mut st = lock(&inner.state);
            loop {
                if st.failed.is_some() {
                    return;
                }
                if !st.ops.is_empty() {
                    let open = (st.group_gen % 2) as usize;
                    if st.groups[open] > 0 && !st.closing {
                        // Wait for the groups open now; those opened
                        // meanwhile count in the next generation, whose
                        // slot is empty (its groups ended before the
                        // previous commit), and are not waited for.
                        st.group_gen += 1;
                        while st.groups[open] > 0 && !st.closing && st.failed.is_none() {
                            st.flusher = Flusher::WaitsForGroups(open);
                            st = inner.work.wait(st).unwrap_or_else(|p| p.into_inner());
                        }
                        st.flusher = Flusher::Busy;
                        if st.failed.is_some() {
                            return;
                        }
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
            (std::mem::take(&mut st.ops), st.next_seq - 1)
        };
        match write_ops(&inner, &mut active, ops) {
            Ok(()) => inner.update_status(|s| s.durable = s.durable.max(target)),
            Err(e) => {
                // Best effort: cut off the group that did not commit, so
                // that a restart does not replay what was never
                // acknowledged (it may still, which is allowed).
                let _ = active.file.set_len(active.committed);
                let message = format!(
                    "{} {}: write or fsync failed: {e}; appends are refused until restart",
                    inner.opts.what,
                    inner.dir.join(segment_name(active.name)).display()
                );
                let mut st = lock(&inner.state);
                inner.fail(&mut st, e.kind(), message);
                return;
            }
        }
    }
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
            }),
            work: Condvar::new(),
            status: Mutex::new(Status {
                durable: next_seq - 1,
                ..Status::default()
            }),
            status_cv: Condvar::new(),
            status_tx,
            fsyncs: AtomicU64::new(0),
        });
        inner.update_status(|s| s.durable = next_seq - 1);
        // A fresh segment at every open: the old ones are only read.
        let file = inner.create_segment(next_seq)?;
        lock(&inner.state).ledger.add_segment(
            next_seq,
            dir.join(segment_name(next_seq)),
            Some(file.clone()),
        );
        let len = FILE_HEADER_LEN as u64;
        let active = Active {
            name: next_seq,
            file,
            len,
            committed: len,
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

    /// The latched failure, if any.
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
