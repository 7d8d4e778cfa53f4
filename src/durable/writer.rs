//! The log's public API: open (recovery, then a fresh segment), appends,
//! commit groups, tickets and waits, slots, reading durable records back,
//! releasing segments, close. The flusher thread (`flusher`) does the
//! writing; `state` holds what both share. See the module docs of
//! `durable` for the guarantees.

pub use super::flusher::is_disk_full;
use super::flusher::{run_flusher, Active, NoFile};
use super::fsutil::{self, Failure};
use super::io::{Io, LogFile};
use super::ledger::{Ledger, Place};
pub use super::reader::SPARE_FILES;
use super::reader::{self, Recovery, Visit};
use super::record::{self, Payload, FILE_HEADER_LEN, MAX_PAYLOAD};
use super::state::{
    lock, resolve, segment_name, Flusher, Inner, Op, State, Status, FULL_DISK_RETRY, TOTAL_FSYNCS,
};
pub use super::state::{LogOptions, Ticket, RESERVE_BYTES, RESERVE_FILE};
use std::fmt;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::sync::watch;

/// The file naming a log: its id, so that a snapshot can tell which log
/// its cut refers to.
pub const LOG_ID_FILE: &str = "LOGID";

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
        // Closed read before durable: a log found closed had made its
        // last commit, so a record not durable then never will be.
        let closed = self.log.is_closed();
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
        if closed {
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
            companion: std::sync::OnceLock::new(),
            failed_file: Mutex::new(()),
            spare: Mutex::new(SPARE_FILES.map(|name| dir.join(name).is_file())),
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
                    resumable: false,
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
                    resumable: false,
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
        self.append_checked(p, None, None)
    }

    /// [`Log::append`], refused if a group has failed since `epoch` was
    /// read from [`Log::epoch`]: a client whose records depend on its
    /// earlier ones (the store's, checked against the state they left)
    /// appends this way, after it has undone what failed.
    pub fn append_in(&self, epoch: u64, p: Payload) -> io::Result<Ticket> {
        self.append_checked(p, Some(epoch), None)
    }

    /// [`Log::append_in`] for a record that goes with `after`, a record of
    /// the companion log ([`Log::gate_on`]): it is written only once that
    /// one is durable, and fails (with every record not yet durable, as a
    /// failed write would) if that one failed. `None` gates nothing.
    pub fn append_after(
        &self,
        epoch: u64,
        p: Payload,
        after: Option<Ticket>,
    ) -> io::Result<Ticket> {
        debug_assert!(
            after.is_none() || self.inner.companion.get().is_some(),
            "a gated record on a log with no companion"
        );
        self.append_checked(p, Some(epoch), after)
    }

    /// Makes `companion` this log's companion: a record appended with
    /// [`Log::append_after`] is written only after its companion record is
    /// durable, so that two logs on two filesystems commit a pair of
    /// records in a known order (the store's journal after the disk
    /// queue: a journal record is never durable when its push's queue
    /// record failed). Set once, before such appends.
    pub fn gate_on(&self, companion: Arc<Log>) {
        let _ = self.inner.companion.set(companion.inner.clone());
    }

    /// Lists `seqs` in `FAILED`, so that recovery never hands those records
    /// out: records a client appended and then gave up, because what they
    /// went with failed elsewhere (a queue record whose journal record
    /// failed). Their tickets resolve as before; readers of the live log
    /// are the client's to keep away from them. Blocking I/O (a small file
    /// written, fsynced and renamed), giving the reserve up if the disk is
    /// full.
    pub fn revoke(&self, seqs: &[u64]) -> io::Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        let _file = lock(&self.inner.failed_file);
        let ranges = {
            let mut st = lock(&self.inner.state);
            if st.closing {
                // The directory's lock goes with the log: another process
                // may own `FAILED` now.
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    format!("the {} is closed", self.inner.opts.what),
                ));
            }
            // Ranges below every segment kept name nothing on disk.
            let oldest = st.ledger.oldest().unwrap_or(0).min(st.active);
            st.failed_on_disk.retain(|&(_, last)| last >= oldest);
            for &seq in seqs {
                if st
                    .failed_on_disk
                    .iter()
                    .any(|&(a, b)| (a..=b).contains(&seq))
                {
                    // Listed by an earlier try whose write failed.
                    continue;
                }
                match st.failed_on_disk.last_mut() {
                    Some((_, last)) if *last + 1 == seq => *last = seq,
                    _ => st.failed_on_disk.push((seq, seq)),
                }
            }
            st.failed_on_disk.clone()
        };
        super::flusher::write_failed_file(&self.inner, &ranges)
    }

    fn append_checked(
        &self,
        p: Payload,
        epoch: Option<u64>,
        after: Option<Ticket>,
    ) -> io::Result<Ticket> {
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
            after,
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
        self.inner.wait_blocking(t)
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
        lock(&self.inner.state).ledger.release(holder, below);
        self.inner.collect_segments();
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
