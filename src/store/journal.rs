//! The store's durable log under `persistence_dir`: a journal with group
//! commit, compacted now and then into a snapshot. Records are opaque byte
//! strings; the store encodes and decodes them.
//!
//! # Files
//!
//! All files live directly in the directory (created 0700 if missing) and
//! are created 0600:
//! - `journal-<gen>` (eight or more decimal digits): records appended in
//!   generation `gen`.
//! - `snapshot-<gen>`: the full state as of the start of `journal-<gen>`.
//! - `snapshot-<gen>.tmp`: a snapshot being written; removed at open.
//! - `*.corrupt-<unix time>`: a damaged file moved aside; never read, never
//!   deleted by this module.
//! - `LOCK`: held with an exclusive lock while a process has the journal
//!   open, so that two agents cannot interleave writes.
//!
//! Every journal and snapshot starts with an 8-byte header: a magic
//! (`PKJ1` for journals, `PKS1` for snapshots) and a little-endian `u32`
//! format version (1). Then come frames:
//!
//! ```text
//! record:  len: u32 LE | crc: u32 LE | payload: len bytes
//! trailer: 0xFFFF_FFFF | count: u64 LE | crc: u32 LE       (snapshots only, last)
//! ```
//!
//! `crc` is CRC-32C over the 4 length bytes followed by the payload (for
//! the trailer: over the marker and the count). Covering the length means a
//! zero-filled region, which a crash can leave behind, never reads as a
//! valid empty record. The trailer makes a snapshot that lost its end
//! detectable even though its frames are all intact.
//!
//! # Recovery
//!
//! Take the newest snapshot that reads back whole (header, every frame and
//! a trailer whose count matches); a snapshot that does not is renamed to
//! `.corrupt-<unix time>` with an error log, and the next older one is
//! tried. Then replay every `journal-M` with `M >=` that snapshot's
//! generation (with no usable snapshot, every journal), in increasing
//! order. A bad frame in the newest journal is a torn write from a crash:
//! the file is truncated to the last good frame, with a warning naming the
//! file and the bytes dropped (if valid frames follow the bad one, it was
//! corruption rather than a torn write, and a copy of the whole file is
//! kept aside first). A bad frame in an older journal ends that file's
//! replay, with a warning; the later journals are still replayed.
//!
//! # Guarantees
//!
//! - A record is durable once its ticket's wait returns `Ok`: it was
//!   written and `fdatasync`ed, and its file was fsynced into the
//!   directory when it was created. Acknowledge only after the wait.
//! - Concurrent appends share fsyncs: one flusher thread writes whatever
//!   has accumulated while the previous fsync ran, then fsyncs once.
//! - After a kill -9 (or power loss) at any moment, recovery returns every
//!   acknowledged record, in append order, and no partially written one.
//! - A failed write or fsync fails every waiting and every later append:
//!   after a failed fsync the kernel may have dropped the dirty pages, so
//!   retrying could report durability that is not there. Only a restart
//!   (which re-reads what is really on disk) clears it.
//!
//! # Compaction
//!
//! [`Journal::start_snapshot`] cuts the journal: records appended before it
//! go to `journal-N`, later ones to `journal-(N+1)`. The caller must write,
//! into the returned writer, a state that reflects exactly the records
//! appended before the cut, e.g. by calling `append` and `start_snapshot`
//! under the same lock and copying its state under that lock.
//! [`SnapshotWriter::finish`] fsyncs `snapshot-(N+1).tmp`, renames it,
//! fsyncs the directory, and only then deletes older journals and
//! snapshots. A crash at any point before the rename leaves the old
//! snapshot and both journals, which recover the same state; a crash after
//! it leaves the new snapshot, which recovery prefers. (A record appended
//! just before the cut can reach the snapshot through the caller's state
//! even if its own fsync then fails; that is allowed, since it was never
//! acknowledged.)

use crate::durable::fsutil::{
    self, check_frame, check_header, corrupt_path, frame_after_bad, frame_header, move_aside,
    sync_dir, Failure, Header, FILE_HEADER_LEN, FRAME_HEADER_LEN,
};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use tokio::sync::watch;

const JOURNAL_MAGIC: [u8; 4] = *b"PKJ1";
const SNAPSHOT_MAGIC: [u8; 4] = *b"PKS1";
const FORMAT_VERSION: u32 = 1;
const TRAILER_MARK: u32 = u32::MAX;
const TRAILER_LEN: usize = 16;
/// Larger records are refused on append and read as corruption: a damaged
/// length field must not make recovery believe in a huge record.
pub const MAX_RECORD_LEN: usize = 256 << 20;
/// The generation of the first journal in an empty directory.
const FIRST_GEN: u64 = 1;

fn trailer(count: u64) -> [u8; TRAILER_LEN] {
    let mut t = [0u8; TRAILER_LEN];
    t[..4].copy_from_slice(&TRAILER_MARK.to_le_bytes());
    t[4..12].copy_from_slice(&count.to_le_bytes());
    let crc = crc32c::crc32c(&t[..12]);
    t[12..].copy_from_slice(&crc.to_le_bytes());
    t
}

fn file_header(magic: [u8; 4]) -> [u8; FILE_HEADER_LEN] {
    fsutil::file_header(magic, FORMAT_VERSION)
}

enum Frame<'a> {
    Record(&'a [u8]),
    Trailer(u64),
    Bad(&'static str),
}

/// Reads the frame at the start of `data`; returns it and its length.
fn read_frame(data: &[u8]) -> (Frame<'_>, usize) {
    if data.len() >= FRAME_HEADER_LEN && data[..4] == TRAILER_MARK.to_le_bytes() {
        if data.len() < TRAILER_LEN {
            return (Frame::Bad("truncated trailer"), 0);
        }
        let stored = u32::from_le_bytes(data[12..16].try_into().unwrap());
        if crc32c::crc32c(&data[..12]) != stored {
            return (Frame::Bad("trailer checksum mismatch"), 0);
        }
        let count = u64::from_le_bytes(data[4..12].try_into().unwrap());
        return (Frame::Trailer(count), TRAILER_LEN);
    }
    match check_frame(data, 0..=MAX_RECORD_LEN) {
        Ok(payload) => (Frame::Record(payload), FRAME_HEADER_LEN + payload.len()),
        Err(why) => (Frame::Bad(why), 0),
    }
}

/// The records of a journal body (after the header): the valid prefix and,
/// if it stopped early, where (offset in `body`) and why.
fn parse_journal_body(body: &[u8]) -> (Vec<Vec<u8>>, Option<(usize, &'static str)>) {
    let mut records = Vec::new();
    let mut pos = 0;
    while pos < body.len() {
        match read_frame(&body[pos..]) {
            (Frame::Record(p), n) => {
                records.push(p.to_vec());
                pos += n;
            }
            (Frame::Trailer(_), _) => return (records, Some((pos, "unexpected snapshot trailer"))),
            (Frame::Bad(why), _) => return (records, Some((pos, why))),
        }
    }
    (records, None)
}

/// True if a valid record follows the bad frame at the start of `rest`,
/// i.e. the damage is in the middle of the file, not a torn tail.
fn valid_record_follows(rest: &[u8]) -> bool {
    frame_after_bad(rest, 0..=MAX_RECORD_LEN)
        .is_some_and(|next| matches!(read_frame(&rest[next..]).0, Frame::Record(_)))
}

/// A snapshot's records, or why it is unusable.
fn parse_snapshot(data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if check_header(data, &file_header(SNAPSHOT_MAGIC)) != Header::Valid {
        return Err("bad or missing header".into());
    }
    let mut records = Vec::new();
    let mut pos = FILE_HEADER_LEN;
    loop {
        if pos == data.len() {
            return Err("missing trailer (truncated file)".into());
        }
        match read_frame(&data[pos..]) {
            (Frame::Record(p), n) => {
                records.push(p.to_vec());
                pos += n;
            }
            (Frame::Trailer(count), n) => {
                if count != records.len() as u64 {
                    return Err(format!(
                        "trailer counts {count} records, file holds {}",
                        records.len()
                    ));
                }
                if pos + n != data.len() {
                    return Err(format!("{} bytes after the trailer", data.len() - pos - n));
                }
                return Ok(records);
            }
            (Frame::Bad(why), _) => return Err(format!("{why} at offset {pos}")),
        }
    }
}

// ---------------------------------------------------------------------------
// File helpers.

fn journal_name(gen: u64) -> String {
    format!("journal-{gen:08}")
}

fn snapshot_name(gen: u64) -> String {
    format!("snapshot-{gen:08}")
}

/// Creates `journal-<gen>` with its header, durable in the directory
/// before any record in it can be acknowledged.
fn create_journal(dir: &Path, gen: u64) -> io::Result<File> {
    fsutil::create_with_header(dir, &journal_name(gen), &file_header(JOURNAL_MAGIC))
}

/// Refuses a `what` record larger than [`MAX_RECORD_LEN`] (reading it back
/// would fail).
fn check_record_len(what: &str, payload: &[u8]) -> io::Result<()> {
    if payload.len() > MAX_RECORD_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{what} record of {} bytes exceeds {MAX_RECORD_LEN}",
                payload.len()
            ),
        ));
    }
    Ok(())
}

/// Records damage found at open, and logs it.
fn note(warnings: &mut Vec<String>, msg: String) {
    tracing::warn!("{msg}");
    warnings.push(msg);
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data stays consistent at every unlock, so a panic
    // elsewhere is no reason to stop.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn wait_on<'a, T>(cv: &Condvar, g: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    cv.wait(g).unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------
// Shared state.

enum Op {
    /// Frames to write to the current journal.
    Write(Vec<u8>),
    /// Make the current journal durable, then continue in `journal-<gen>`.
    Rotate(u64),
}

struct State {
    /// Queued work for the flusher, in order.
    ops: Vec<Op>,
    /// Sequence number of the last appended record (tickets count from 1).
    last_seq: u64,
    /// Generation that new appends go to.
    gen: u64,
    journal_bytes: u64,
    closing: bool,
    failed: Option<Failure>,
}

#[derive(Clone, Debug, Default)]
struct Durable {
    /// Every record with a sequence number up to this is on disk.
    seq: u64,
    failed: Option<Failure>,
}

struct Inner {
    dir: PathBuf,
    state: Mutex<State>,
    /// Wakes the flusher.
    work: Condvar,
    durable: Mutex<Durable>,
    /// Wakes blocking waiters.
    durable_cv: Condvar,
    /// Wakes async waiters; updated under `durable`, so it never goes back.
    durable_tx: watch::Sender<Durable>,
    fsyncs: AtomicU64,
    snapshot_busy: AtomicBool,
}

impl Inner {
    fn new(dir: &Path, gen: u64, journal_bytes: u64) -> Inner {
        let (durable_tx, _) = watch::channel(Durable::default());
        Inner {
            dir: dir.to_path_buf(),
            state: Mutex::new(State {
                ops: Vec::new(),
                last_seq: 0,
                gen,
                journal_bytes,
                closing: false,
                failed: None,
            }),
            work: Condvar::new(),
            durable: Mutex::new(Durable::default()),
            durable_cv: Condvar::new(),
            durable_tx,
            fsyncs: AtomicU64::new(0),
            snapshot_busy: AtomicBool::new(false),
        }
    }

    /// Marks the journal failed: pending and later appends all get `message`.
    fn fail(&self, st: &mut State, kind: io::ErrorKind, message: String) {
        let Some(failure) = Failure::set_first(&mut st.failed, kind, message) else {
            return;
        };
        st.ops.clear();
        let mut d = lock(&self.durable);
        d.failed = Some(failure);
        self.durable_tx.send_replace(d.clone());
        drop(d);
        self.durable_cv.notify_all();
    }

    fn publish(&self, seq: u64) {
        let mut d = lock(&self.durable);
        if seq > d.seq {
            d.seq = seq;
            self.durable_tx.send_replace(d.clone());
        }
        drop(d);
        self.durable_cv.notify_all();
    }

    fn check_open(st: &State) -> io::Result<()> {
        if let Some(f) = &st.failed {
            return Err(f.to_error());
        }
        if st.closing {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the journal is closed",
            ));
        }
        Ok(())
    }
}

/// Outcome of waiting for `t` given the durable state, if decided.
fn resolve(d: &Durable, t: Ticket) -> Option<io::Result<()>> {
    if d.seq >= t.0 {
        Some(Ok(()))
    } else {
        d.failed.as_ref().map(|f| Err(f.to_error()))
    }
}

// ---------------------------------------------------------------------------
// The flusher thread.

fn run_flusher(inner: Arc<Inner>, file: File, gen: u64) {
    let _exit = FlusherExit(&inner);
    let mut file = file;
    let mut gen = gen;
    loop {
        let (ops, target) = {
            let mut st = lock(&inner.state);
            loop {
                if st.failed.is_some() {
                    return;
                }
                if !st.ops.is_empty() {
                    break;
                }
                if st.closing {
                    return;
                }
                st = wait_on(&inner.work, st);
            }
            // Everything queued while the last fsync ran goes out together.
            (std::mem::take(&mut st.ops), st.last_seq)
        };
        match write_batch(&inner, &mut file, &mut gen, ops) {
            Ok(()) => inner.publish(target),
            Err(e) => {
                let message = format!(
                    "journal {}: write or fsync failed: {e}; the journal refuses further appends until restart",
                    inner.dir.join(journal_name(gen)).display()
                );
                let mut st = lock(&inner.state);
                inner.fail(&mut st, e.kind(), message);
                return;
            }
        }
    }
}

fn write_batch(inner: &Inner, file: &mut File, gen: &mut u64, ops: Vec<Op>) -> io::Result<()> {
    let mut dirty = false;
    for op in ops {
        match op {
            Op::Write(buf) => {
                file.write_all(&buf)?;
                dirty = true;
            }
            Op::Rotate(next) => {
                if dirty {
                    file.sync_data()?;
                    inner.fsyncs.fetch_add(1, Ordering::Relaxed);
                    dirty = false;
                }
                *file = create_journal(&inner.dir, next)?;
                *gen = next;
            }
        }
    }
    if dirty {
        file.sync_data()?;
        inner.fsyncs.fetch_add(1, Ordering::Relaxed);
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
        let pending = lock(&inner.durable).seq < st.last_seq;
        if st.failed.is_none() && (pending || !st.closing) {
            inner.fail(
                &mut st,
                io::ErrorKind::Other,
                "journal flusher stopped unexpectedly; records not acknowledged".into(),
            );
        }
        st.closing = true;
    }
}

// ---------------------------------------------------------------------------
// Public API.

/// The durable log. `Send + Sync`; share it through an `Arc`.
pub struct Journal {
    inner: Arc<Inner>,
    flusher: Mutex<Option<JoinHandle<()>>>,
    /// Holds the directory's exclusive lock until close.
    lock_file: Mutex<Option<File>>,
}

/// What [`Journal::open`] found on disk.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Snapshot records first, then journal records, in append order.
    pub records: Vec<Vec<u8>>,
    /// How many of `records` came from the snapshot.
    pub snapshot_records: usize,
    /// Damage found and what was done about it (also logged).
    pub warnings: Vec<String>,
}

/// Identifies an appended record; wait on it before acknowledging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[must_use = "a record is only durable once its ticket has been waited on"]
pub struct Ticket(u64);

impl Journal {
    /// Opens (creating if needed) the journal in `dir` and recovers its
    /// records. Damage is repaired as described in the module docs and
    /// reported in [`Recovered::warnings`]; I/O errors are returned.
    pub fn open(dir: &Path) -> io::Result<(Journal, Recovered)> {
        fsutil::create_private_dir(dir)?;
        let lock_file = fsutil::lock_dir(dir, "journal")?;
        let mut rec = Recovered::default();

        let (snapshots, journals) = scan_dir(dir)?;

        // Newest snapshot that reads back whole.
        let mut base = None;
        for (&gen, path) in snapshots.iter().rev() {
            let data = fs::read(path)?;
            match parse_snapshot(&data) {
                Ok(records) => {
                    rec.records = records;
                    base = Some(gen);
                    break;
                }
                Err(why) => {
                    let aside = move_aside(dir, path)?;
                    let msg = format!(
                        "snapshot {} is unreadable ({why}); moved to {}, recovering from older files",
                        path.display(),
                        aside.display()
                    );
                    tracing::error!("{msg}");
                    rec.warnings.push(msg);
                }
            }
        }
        rec.snapshot_records = rec.records.len();

        let replay: Vec<(u64, PathBuf)> = journals
            .range(base.unwrap_or(0)..)
            .map(|(g, p)| (*g, p.clone()))
            .collect();
        check_continuity(base, &snapshots, &replay, &mut rec.warnings);

        let mut active: Option<(u64, File, u64)> = None;
        for (i, (gen, path)) in replay.iter().enumerate() {
            let last = i + 1 == replay.len();
            if let Some(found) = replay_journal(dir, *gen, path, last, &mut rec)? {
                active = Some(found);
            }
        }
        let (gen, file, journal_bytes) = match active {
            Some(a) => a,
            None => {
                let gen = base.unwrap_or(FIRST_GEN);
                (gen, create_journal(dir, gen)?, 0)
            }
        };

        let inner = Arc::new(Inner::new(dir, gen, journal_bytes));
        let journal = Journal::start(inner, file, gen, Some(lock_file))?;
        Ok((journal, rec))
    }

    fn start(
        inner: Arc<Inner>,
        file: File,
        gen: u64,
        lock_file: Option<File>,
    ) -> io::Result<Journal> {
        let thread_inner = inner.clone();
        let handle = std::thread::Builder::new()
            .name("journal-flusher".into())
            .spawn(move || run_flusher(thread_inner, file, gen))?;
        Ok(Journal {
            inner,
            flusher: Mutex::new(Some(handle)),
            lock_file: Mutex::new(lock_file),
        })
    }

    /// Buffers one record; cheap, never blocks on I/O. Returns the ticket
    /// to wait on. Fails once the journal has failed or is closed.
    pub fn append(&self, payload: &[u8]) -> io::Result<Ticket> {
        check_record_len("journal", payload)?;
        // Checksum outside the lock: appenders only contend for the copy.
        let header = frame_header(payload);
        let mut st = lock(&self.inner.state);
        Inner::check_open(&st)?;
        let frame_len = FRAME_HEADER_LEN + payload.len();
        if !matches!(st.ops.last(), Some(Op::Write(_))) {
            st.ops
                .push(Op::Write(Vec::with_capacity(frame_len.max(4096))));
        }
        if let Some(Op::Write(buf)) = st.ops.last_mut() {
            buf.extend_from_slice(&header);
            buf.extend_from_slice(payload);
        }
        st.last_seq += 1;
        st.journal_bytes += frame_len as u64;
        let ticket = Ticket(st.last_seq);
        drop(st);
        self.inner.work.notify_one();
        Ok(ticket)
    }

    /// Waits until the record is durable (or the journal failed).
    pub async fn wait(&self, t: Ticket) -> io::Result<()> {
        if let Some(r) = resolve(&lock(&self.inner.durable), t) {
            return r;
        }
        let mut rx = self.inner.durable_tx.subscribe();
        let result = match rx.wait_for(|d| resolve(d, t).is_some()).await {
            Ok(d) => resolve(&d, t),
            Err(_) => None,
        };
        result.unwrap_or_else(|| Err(io::Error::other("journal status channel closed")))
    }

    /// Blocking form of [`Journal::wait`], for threads outside the runtime.
    pub fn wait_blocking(&self, t: Ticket) -> io::Result<()> {
        let mut d = lock(&self.inner.durable);
        loop {
            if let Some(r) = resolve(&d, t) {
                return r;
            }
            d = wait_on(&self.inner.durable_cv, d);
        }
    }

    /// Bytes of records appended to the current journal generation (the
    /// caller snapshots when this grows past a threshold).
    pub fn current_journal_bytes(&self) -> u64 {
        lock(&self.inner.state).journal_bytes
    }

    /// How many times the flusher fsynced journal data; far fewer than the
    /// appends when they arrive concurrently.
    pub fn fsync_count(&self) -> u64 {
        self.inner.fsyncs.load(Ordering::Relaxed)
    }

    /// Cuts the journal: appends made after this call go to the next
    /// generation. Write the state as of the cut into the returned writer,
    /// then `finish` it. Does no I/O, so it may be called under the
    /// caller's lock. One snapshot at a time.
    pub fn start_snapshot(&self) -> io::Result<SnapshotWriter> {
        if self.inner.snapshot_busy.swap(true, Ordering::AcqRel) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "a snapshot is already in progress",
            ));
        }
        let gen = {
            let mut st = lock(&self.inner.state);
            if let Err(e) = Inner::check_open(&st) {
                self.inner.snapshot_busy.store(false, Ordering::Release);
                return Err(e);
            }
            // The flusher creates the new journal; records acknowledged after
            // this are in it, records before are in the old one until the
            // snapshot replaces it.
            st.gen += 1;
            st.journal_bytes = 0;
            let gen = st.gen;
            st.ops.push(Op::Rotate(gen));
            gen
        };
        self.inner.work.notify_one();
        Ok(SnapshotWriter {
            tmp_path: self.inner.dir.join(format!("{}.tmp", snapshot_name(gen))),
            inner: self.inner.clone(),
            gen,
            out: None,
            records: 0,
            done: false,
        })
    }

    /// Flushes and fsyncs what is buffered and stops the flusher thread.
    /// Blocks until then; later appends fail. Returns the journal's
    /// failure, if it failed.
    pub fn close(&self) -> io::Result<()> {
        {
            let mut st = lock(&self.inner.state);
            st.closing = true;
        }
        self.inner.work.notify_all();
        let handle = lock(&self.flusher).take();
        if let Some(h) = handle {
            if h.join().is_err() {
                tracing::error!("journal flusher thread panicked");
            }
        }
        lock(&self.lock_file).take();
        match &lock(&self.inner.state).failed {
            Some(f) => Err(f.to_error()),
            None => Ok(()),
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // Errors were logged when they happened.
        let _ = self.close();
    }
}

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.inner.state);
        f.debug_struct("Journal")
            .field("dir", &self.inner.dir)
            .field("gen", &st.gen)
            .field("last_seq", &st.last_seq)
            .field("failed", &st.failed.as_ref().map(|f| &f.message))
            .finish()
    }
}

type Gens = BTreeMap<u64, PathBuf>;

/// Lists snapshots and journals by generation; removes stale `.tmp` files.
fn scan_dir(dir: &Path) -> io::Result<(Gens, Gens)> {
    let mut snapshots = BTreeMap::new();
    let mut journals = BTreeMap::new();
    for (name, path) in fsutil::list_dir(dir)? {
        if let Some(g) = fsutil::parse_numbered(&name, "snapshot-") {
            snapshots.insert(g, path);
        } else if let Some(g) = fsutil::parse_numbered(&name, "journal-") {
            journals.insert(g, path);
        } else if name.ends_with(".tmp")
            && (name.starts_with("snapshot-") || name.starts_with("journal-"))
        {
            // An unfinished snapshot: the files it would replace are all
            // still there.
            fs::remove_file(&path)?;
            tracing::info!("removed unfinished {}", path.display());
        }
    }
    Ok((snapshots, journals))
}

/// Warns when the files to replay do not chain up, i.e. history is lost.
fn check_continuity(
    base: Option<u64>,
    snapshots: &Gens,
    replay: &[(u64, PathBuf)],
    warnings: &mut Vec<String>,
) {
    let first = replay.first().map(|(g, _)| *g);
    match (base, first) {
        (Some(b), Some(f)) if f != b => note(
            warnings,
            format!(
                "{} is missing; records of generations {b}..{f} are lost",
                journal_name(b)
            ),
        ),
        (None, Some(f)) if f > FIRST_GEN => note(
            warnings,
            format!(
                "no usable snapshot before {}; the state compacted before it is lost",
                journal_name(f)
            ),
        ),
        (None, None) if !snapshots.is_empty() => note(
            warnings,
            "no usable snapshot and no journal; starting empty".into(),
        ),
        _ => {}
    }
    for w in replay.windows(2) {
        if w[1].0 != w[0].0 + 1 {
            note(
                warnings,
                format!(
                    "journals between {} and {} are missing; their records are lost",
                    journal_name(w[0].0),
                    journal_name(w[1].0)
                ),
            );
        }
    }
}

/// Replays one journal into `rec`. For the newest (`last`), repairs its
/// tail and returns it opened for appending, with its record bytes.
fn replay_journal(
    dir: &Path,
    gen: u64,
    path: &Path,
    last: bool,
    rec: &mut Recovered,
) -> io::Result<Option<(u64, File, u64)>> {
    let data = fs::read(path)?;
    let header = file_header(JOURNAL_MAGIC);
    let check = check_header(&data, &header);
    if check == Header::Creating {
        // Crashed while being created: it never held a record.
        if !last {
            return Ok(None);
        }
        let mut file = OpenOptions::new().append(true).open(path)?;
        file.set_len(0)?;
        file.write_all(&header)?;
        file.sync_all()?;
        return Ok(Some((gen, file, 0)));
    }
    if check == Header::Bad {
        let aside = move_aside(dir, path)?;
        let msg = format!(
            "journal {} has a bad header; moved to {} ({} bytes not replayed)",
            path.display(),
            aside.display(),
            data.len()
        );
        tracing::error!("{msg}");
        rec.warnings.push(msg);
        return Ok(if last {
            Some((gen, create_journal(dir, gen)?, 0))
        } else {
            None
        });
    }
    let body = &data[FILE_HEADER_LEN..];
    let (records, stop) = parse_journal_body(body);
    rec.records.extend(records);
    let good = stop.map(|(at, _)| at).unwrap_or(body.len());
    if let Some((at, why)) = stop {
        let dropped = body.len() - at;
        let offset = FILE_HEADER_LEN + at;
        if !last {
            note(
                &mut rec.warnings,
                format!(
                    "journal {}: {why} at offset {offset}; {dropped} bytes after it not replayed",
                    path.display()
                ),
            );
        } else {
            let mut msg = format!(
                "journal {}: {why} at offset {offset}; dropped {dropped} bytes (a write torn by a crash, never acknowledged) and truncated the file",
                path.display()
            );
            if valid_record_follows(&body[at..]) {
                // Valid records after the bad one: the file was damaged,
                // not torn. Keep the evidence before truncating.
                let copy = corrupt_path(path);
                fs::copy(path, &copy)?;
                File::open(&copy)?.sync_all()?;
                msg = format!(
                    "journal {}: {why} at offset {offset} with valid records after it (corruption, not a torn write); dropped {dropped} bytes, kept a copy of the file as {} and truncated it",
                    path.display(),
                    copy.display()
                );
            }
            note(&mut rec.warnings, msg);
        }
    }
    if !last {
        return Ok(None);
    }
    let file = OpenOptions::new().append(true).open(path)?;
    if good < body.len() {
        // New records must follow the last good one, or the next recovery
        // would stop at the garbage in between.
        file.set_len((FILE_HEADER_LEN + good) as u64)?;
        file.sync_all()?;
    }
    Ok(Some((gen, file, good as u64)))
}

/// Writes one snapshot; see [`Journal::start_snapshot`]. Dropping it
/// without [`finish`](SnapshotWriter::finish) abandons the snapshot; the
/// journals still hold everything.
pub struct SnapshotWriter {
    inner: Arc<Inner>,
    gen: u64,
    tmp_path: PathBuf,
    /// Opened on first use, so that `start_snapshot` does no I/O.
    out: Option<BufWriter<File>>,
    records: u64,
    done: bool,
}

impl SnapshotWriter {
    fn out(&mut self) -> io::Result<&mut BufWriter<File>> {
        if self.out.is_none() {
            let file = fsutil::create_private(&self.tmp_path)?;
            let mut out = BufWriter::with_capacity(1 << 16, file);
            out.write_all(&file_header(SNAPSHOT_MAGIC))?;
            self.out = Some(out);
        }
        Ok(self.out.as_mut().expect("opened above"))
    }

    pub fn write_record(&mut self, payload: &[u8]) -> io::Result<()> {
        check_record_len("snapshot", payload)?;
        let header = frame_header(payload);
        let out = self.out()?;
        out.write_all(&header)?;
        out.write_all(payload)?;
        self.records += 1;
        Ok(())
    }

    /// Makes the snapshot durable under its final name, then deletes the
    /// journals and snapshots it replaces.
    pub fn finish(mut self) -> io::Result<()> {
        let records = self.records;
        self.out()?.write_all(&trailer(records))?;
        let out = self.out.take().expect("opened above");
        let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        drop(file);
        let dir = self.inner.dir.clone();
        let final_path = dir.join(snapshot_name(self.gen));
        fs::rename(&self.tmp_path, &final_path)?;
        self.done = true;
        sync_dir(&dir)?;
        // Only now is the old state redundant. Failing to delete is not a
        // durability problem: recovery prefers the newest snapshot.
        let (snapshots, journals) = scan_dir(&dir)?;
        for (g, path) in snapshots
            .range(..self.gen)
            .chain(journals.range(..self.gen))
        {
            if let Err(e) = fs::remove_file(path) {
                tracing::warn!(
                    "cannot remove obsolete {} (generation {g}): {e}",
                    path.display()
                );
            }
        }
        sync_dir(&dir)?;
        Ok(())
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        if !self.done {
            self.out.take();
            let _ = fs::remove_file(&self.tmp_path);
        }
        self.inner.snapshot_busy.store(false, Ordering::Release);
    }
}

impl fmt::Debug for SnapshotWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotWriter")
            .field("path", &self.tmp_path)
            .field("records", &self.records)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durable::fsutil::testing::{append_bytes, assert_group_commit, mode, names, BURST};

    fn open(dir: &Path) -> (Journal, Recovered) {
        Journal::open(dir).expect("open journal")
    }

    fn append_all(j: &Journal, records: &[&str]) {
        for r in records {
            let t = j.append(r.as_bytes()).unwrap();
            j.wait_blocking(t).unwrap();
        }
    }

    fn strings(records: &[Vec<u8>]) -> Vec<String> {
        records
            .iter()
            .map(|r| String::from_utf8(r.clone()).unwrap())
            .collect()
    }

    fn journal_path(dir: &Path, gen: u64) -> PathBuf {
        dir.join(journal_name(gen))
    }

    #[test]
    fn journal_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<Journal>();
        check::<SnapshotWriter>();
    }

    #[test]
    fn append_wait_reopen_recovers_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        let want: Vec<String> = (0..100).map(|i| format!("record-{i}")).collect();
        {
            let (j, rec) = open(&dir);
            assert!(rec.records.is_empty() && rec.warnings.is_empty());
            for r in &want {
                let t = j.append(r.as_bytes()).unwrap();
                j.wait_blocking(t).unwrap();
            }
            // An empty payload is a record too.
            let t = j.append(b"").unwrap();
            j.wait_blocking(t).unwrap();
            assert!(j.current_journal_bytes() > 0);
            j.close().unwrap();
            assert!(j.append(b"late").is_err());
        }
        let (j, rec) = open(&dir);
        assert!(rec.warnings.is_empty(), "{:?}", rec.warnings);
        assert_eq!(rec.snapshot_records, 0);
        let mut got = strings(&rec.records);
        assert_eq!(got.pop().as_deref(), Some(""));
        assert_eq!(got, want);
        // Appends continue in the same journal.
        append_all(&j, &["more"]);
        drop(j);
        let (_j, rec) = open(&dir);
        assert_eq!(rec.records.len(), 102);
        assert_eq!(rec.records[101], b"more");
        assert_eq!(names(&dir), vec!["LOCK".to_string(), journal_name(1)]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn async_wait() {
        let tmp = tempfile::tempdir().unwrap();
        let (j, _) = open(tmp.path());
        let j = Arc::new(j);
        let mut tasks = Vec::new();
        for i in 0..50 {
            let j = j.clone();
            tasks.push(tokio::spawn(async move {
                let t = j.append(format!("a{i}").as_bytes()).unwrap();
                j.wait(t).await.unwrap();
                // Already durable: returns at once.
                j.wait(t).await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        drop(j);
        let (_j, rec) = open(tmp.path());
        assert_eq!(rec.records.len(), 50);
    }

    #[test]
    fn concurrent_appends_share_fsyncs() {
        const THREADS: usize = 8;
        const PER_THREAD: usize = 200;
        let tmp = tempfile::tempdir().unwrap();
        let (j, _) = open(tmp.path());
        let j = Arc::new(j);
        assert_group_commit(
            &j,
            THREADS,
            PER_THREAD,
            |j, t, i| {
                let record = if t == THREADS {
                    format!("burst{i}")
                } else {
                    format!("{t}:{i}")
                };
                j.append(record.as_bytes()).unwrap()
            },
            |j, ticket| j.wait_blocking(ticket).unwrap(),
            Journal::fsync_count,
        );
        drop(j);

        let (_j, rec) = open(tmp.path());
        assert!(rec.warnings.is_empty());
        let got = strings(&rec.records);
        assert_eq!(got.len(), THREADS * PER_THREAD + BURST);
        // Each thread's records in its own order.
        let mut next = [0usize; THREADS];
        for r in got.iter().filter(|r| !r.starts_with("burst")) {
            let (t, i) = r.split_once(':').unwrap();
            let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
            assert_eq!(i, next[t]);
            next[t] += 1;
        }
        assert_eq!(next, [PER_THREAD; THREADS]);
    }

    #[test]
    fn torn_tail_is_truncated_and_appends_follow() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        {
            let (j, _) = open(dir);
            append_all(&j, &["r0", "r1", "r2", "r3"]);
        }
        let path = journal_path(dir, 1);
        let good_len = fs::metadata(&path).unwrap().len();
        // Half a frame: the header of a 100-byte record and 10 bytes of it.
        let mut torn = frame_header(&[7u8; 100]).to_vec();
        torn.extend_from_slice(&[7u8; 10]);
        append_bytes(&path, &torn);

        let (j, rec) = open(dir);
        assert_eq!(strings(&rec.records), ["r0", "r1", "r2", "r3"]);
        assert_eq!(rec.warnings.len(), 1, "{:?}", rec.warnings);
        assert!(
            rec.warnings[0].contains("journal-00000001"),
            "{}",
            rec.warnings[0]
        );
        assert!(rec.warnings[0].contains(&format!("dropped {} bytes", torn.len())));
        assert_eq!(fs::metadata(&path).unwrap().len(), good_len);
        append_all(&j, &["r4"]);
        drop(j);

        // Cut in the middle of the last record instead.
        let len = fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 1)
            .unwrap();
        let (j, rec) = open(dir);
        assert_eq!(strings(&rec.records), ["r0", "r1", "r2", "r3"]);
        assert_eq!(rec.warnings.len(), 1);
        append_all(&j, &["r5"]);
        drop(j);

        // Garbage (zeros, as a crash can leave) after the last record.
        append_bytes(&path, &[0u8; 64]);
        let (j, rec) = open(dir);
        assert_eq!(strings(&rec.records), ["r0", "r1", "r2", "r3", "r5"]);
        assert_eq!(rec.warnings.len(), 1);
        drop(j);
        let (_j, rec) = open(dir);
        assert!(rec.warnings.is_empty(), "{:?}", rec.warnings);
        assert_eq!(rec.records.len(), 5);
        assert!(!names(dir).iter().any(|n| n.contains("corrupt")));
    }

    #[test]
    fn corrupt_record_in_middle_of_last_journal() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let all: Vec<String> = (0..10).map(|i| format!("rec{i}")).collect();
        {
            let (j, _) = open(dir);
            append_all(&j, &all.iter().map(String::as_str).collect::<Vec<_>>());
        }
        let path = journal_path(dir, 1);
        let mut data = fs::read(&path).unwrap();
        // Each frame is 8 + 4 bytes; flip a payload byte of record 5.
        let at = FILE_HEADER_LEN + 5 * 12 + FRAME_HEADER_LEN + 1;
        data[at] ^= 0x40;
        fs::write(&path, &data).unwrap();

        let (j, rec) = open(dir);
        assert_eq!(strings(&rec.records), all[..5]);
        assert_eq!(rec.warnings.len(), 1);
        assert!(
            rec.warnings[0].contains("checksum mismatch"),
            "{}",
            rec.warnings[0]
        );
        assert!(
            rec.warnings[0].contains("corruption"),
            "{}",
            rec.warnings[0]
        );
        // The damaged file was kept aside before truncating.
        let copies: Vec<String> = names(dir)
            .into_iter()
            .filter(|n| n.contains(".corrupt-"))
            .collect();
        assert_eq!(copies.len(), 1);
        assert_eq!(fs::read(dir.join(&copies[0])).unwrap(), data);
        append_all(&j, &["after"]);
        drop(j);
        let (_j, rec) = open(dir);
        assert!(rec.warnings.is_empty());
        let mut want = all[..5].to_vec();
        want.push("after".into());
        assert_eq!(strings(&rec.records), want);
    }

    #[test]
    fn corrupt_record_in_older_journal_skips_rest_of_that_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        {
            let (j, _) = open(dir);
            append_all(&j, &["a0", "a1", "a2"]);
            // Abandoned snapshot: leaves journal-1 and journal-2.
            drop(j.start_snapshot().unwrap());
            append_all(&j, &["b0", "b1"]);
        }
        let path = journal_path(dir, 1);
        let mut data = fs::read(&path).unwrap();
        data[FILE_HEADER_LEN + 10 + 4] ^= 1; // crc of a1 (frames are 10 bytes)
        fs::write(&path, &data).unwrap();
        let (_j, rec) = open(dir);
        assert_eq!(strings(&rec.records), ["a0", "b0", "b1"]);
        assert_eq!(rec.warnings.len(), 1);
        assert!(rec.warnings[0].contains("journal-00000001"));
        assert!(rec.warnings[0].contains("20 bytes"), "{}", rec.warnings[0]);
        // Older journals are left alone (the next snapshot deletes them).
        assert_eq!(fs::read(&path).unwrap(), data);
    }

    #[test]
    fn snapshot_then_journal() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        {
            let (j, _) = open(dir);
            append_all(&j, &["a", "b", "c"]);
            let bytes = j.current_journal_bytes();
            assert_eq!(bytes, 3 * 9);
            let mut w = j.start_snapshot().unwrap();
            assert_eq!(j.current_journal_bytes(), 0);
            assert!(j.start_snapshot().is_err(), "one snapshot at a time");
            // Appends during the snapshot go to the next generation.
            append_all(&j, &["d"]);
            w.write_record(b"state-1").unwrap();
            w.write_record(b"state-2").unwrap();
            w.finish().unwrap();
            append_all(&j, &["e"]);
            assert_eq!(
                names(dir),
                vec!["LOCK".to_string(), journal_name(2), snapshot_name(2)]
            );
        }
        let (j, rec) = open(dir);
        assert!(rec.warnings.is_empty(), "{:?}", rec.warnings);
        assert_eq!(rec.snapshot_records, 2);
        assert_eq!(strings(&rec.records), ["state-1", "state-2", "d", "e"]);
        // A second round replaces the first.
        let mut w = j.start_snapshot().unwrap();
        w.write_record(b"state-3").unwrap();
        w.finish().unwrap();
        append_all(&j, &["f"]);
        drop(j);
        assert_eq!(
            names(dir),
            vec!["LOCK".to_string(), journal_name(3), snapshot_name(3)]
        );
        let (_j, rec) = open(dir);
        assert_eq!(strings(&rec.records), ["state-3", "f"]);
        assert_eq!(rec.snapshot_records, 1);
    }

    #[test]
    fn empty_snapshot_is_valid() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        {
            let (j, _) = open(dir);
            append_all(&j, &["gone"]);
            j.start_snapshot().unwrap().finish().unwrap();
        }
        let (_j, rec) = open(dir);
        assert!(rec.records.is_empty() && rec.warnings.is_empty(), "{rec:?}");
    }

    #[test]
    fn crash_between_start_snapshot_and_finish() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        {
            let (j, _) = open(dir);
            append_all(&j, &["a", "b"]);
            let mut w = j.start_snapshot().unwrap();
            w.write_record(b"half").unwrap();
            w.out.as_mut().unwrap().flush().unwrap();
            // Simulate the crash: the tmp file stays, finish never runs.
            let tmp_path = w.tmp_path.clone();
            let kept = tmp_path.with_extension("keep");
            fs::copy(&tmp_path, &kept).unwrap();
            drop(w);
            fs::rename(&kept, &tmp_path).unwrap();
            append_all(&j, &["c"]);
        }
        assert!(names(dir).contains(&format!("{}.tmp", snapshot_name(2))));
        let (j, rec) = open(dir);
        assert!(rec.warnings.is_empty(), "{:?}", rec.warnings);
        assert_eq!(strings(&rec.records), ["a", "b", "c"]);
        assert_eq!(
            names(dir),
            vec!["LOCK".to_string(), journal_name(1), journal_name(2)]
        );
        // The next snapshot works and cleans up both journals.
        let mut w = j.start_snapshot().unwrap();
        w.write_record(b"abc").unwrap();
        w.finish().unwrap();
        drop(j);
        assert_eq!(
            names(dir),
            vec!["LOCK".to_string(), journal_name(3), snapshot_name(3)]
        );
        let (_j, rec) = open(dir);
        assert_eq!(strings(&rec.records), ["abc"]);
    }

    #[test]
    fn corrupt_snapshot_is_moved_aside() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        {
            let (j, _) = open(dir);
            append_all(&j, &["a"]);
            let mut w = j.start_snapshot().unwrap();
            w.write_record(b"s1").unwrap();
            w.write_record(b"s2").unwrap();
            w.finish().unwrap();
            append_all(&j, &["c"]);
        }
        let snap = dir.join(snapshot_name(2));
        let mut data = fs::read(&snap).unwrap();
        let n = data.len();
        data[n - 20] ^= 0xFF; // inside the last record
        fs::write(&snap, &data).unwrap();

        let (_j, rec) = open(dir);
        assert!(!snap.exists());
        let aside: Vec<String> = names(dir)
            .into_iter()
            .filter(|n| n.starts_with("snapshot-00000002.corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(fs::read(dir.join(&aside[0])).unwrap(), data);
        // No older snapshot: only what the journal still has.
        assert_eq!(strings(&rec.records), ["c"]);
        assert_eq!(rec.snapshot_records, 0);
        assert!(
            rec.warnings.iter().any(|w| w.contains("unreadable")),
            "{:?}",
            rec.warnings
        );
        assert!(
            rec.warnings.iter().any(|w| w.contains("lost")),
            "{:?}",
            rec.warnings
        );
    }

    #[test]
    fn corrupt_snapshot_falls_back_to_older_snapshot() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("s");
        let saved = tmp.path().join("saved");
        fs::create_dir(&saved).unwrap();
        {
            let (j, _) = open(&dir);
            append_all(&j, &["a"]);
            let mut w = j.start_snapshot().unwrap();
            w.write_record(b"A").unwrap();
            w.finish().unwrap();
            append_all(&j, &["b"]);
            let mut w = j.start_snapshot().unwrap();
            // As if the previous finish had died before deleting: keep
            // snapshot-2 and journal-2 (complete: "b" was acknowledged).
            for name in [snapshot_name(2), journal_name(2)] {
                fs::copy(dir.join(&name), saved.join(&name)).unwrap();
            }
            w.write_record(b"A").unwrap();
            w.write_record(b"B").unwrap();
            w.finish().unwrap();
            append_all(&j, &["c"]);
        }
        for name in [snapshot_name(2), journal_name(2)] {
            fs::copy(saved.join(&name), dir.join(&name)).unwrap();
        }
        // Truncated: the trailer is gone.
        let snap3 = dir.join(snapshot_name(3));
        let len = fs::metadata(&snap3).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&snap3)
            .unwrap()
            .set_len(len - TRAILER_LEN as u64)
            .unwrap();

        let (_j, rec) = open(&dir);
        assert_eq!(strings(&rec.records), ["A", "b", "c"]);
        assert_eq!(rec.snapshot_records, 1);
        assert_eq!(rec.warnings.len(), 1, "{:?}", rec.warnings);
        assert!(rec.warnings[0].contains("missing trailer"));
        assert!(!snap3.exists());
        assert!(names(&dir)
            .iter()
            .any(|n| n.starts_with("snapshot-00000003.corrupt-")));
    }

    #[test]
    fn files_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a").join("b");
        {
            let (j, _) = open(&dir);
            append_all(&j, &["x"]);
            let mut w = j.start_snapshot().unwrap();
            w.write_record(b"x").unwrap();
            w.finish().unwrap();
            append_all(&j, &["y"]);
        }
        assert_eq!(mode(&dir), 0o700);
        for name in names(&dir) {
            assert_eq!(mode(&dir.join(&name)), 0o600, "{name}");
        }
        assert!(dir.join(journal_name(2)).exists() && dir.join(snapshot_name(2)).exists());
    }

    #[test]
    fn directory_is_locked_while_open() {
        let tmp = tempfile::tempdir().unwrap();
        let (j, _) = open(tmp.path());
        let err = Journal::open(tmp.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        j.close().unwrap();
        let (_j, _) = open(tmp.path());
    }

    #[test]
    fn half_created_journal_is_reset() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(journal_path(tmp.path(), 1), &JOURNAL_MAGIC[..2]).unwrap();
        let (j, rec) = open(tmp.path());
        assert!(rec.records.is_empty() && rec.warnings.is_empty());
        append_all(&j, &["x"]);
        drop(j);
        let (_j, rec) = open(tmp.path());
        assert_eq!(strings(&rec.records), ["x"]);
    }

    #[test]
    fn oversized_record_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (j, _) = open(tmp.path());
        let big = vec![0u8; MAX_RECORD_LEN + 1];
        assert_eq!(
            j.append(&big).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        append_all(&j, &["still fine"]);
    }

    #[test]
    fn write_failure_fails_waiters_and_later_appends() {
        let tmp = tempfile::tempdir().unwrap();
        // A journal whose file rejects every write (ENOSPC).
        let full = OpenOptions::new().write(true).open("/dev/full").unwrap();
        let inner = Arc::new(Inner::new(tmp.path(), 1, 0));
        let j = Journal::start(inner, full, 1, None).unwrap();
        let t1 = j.append(b"one").unwrap();
        let err = j.wait_blocking(t1).unwrap_err();
        assert!(err.to_string().contains("refuses further appends"), "{err}");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(rt.block_on(j.wait(t1)).is_err());
        assert!(j.append(b"two").is_err());
        assert!(j.start_snapshot().is_err());
        assert!(j.close().is_err());
    }
}
