//! The store's journal: its mutations as records of the durable log
//! (`crate::durable`), compacted now and then into a snapshot. Records are
//! opaque byte strings; the store encodes and decodes them
//! (`store::record`).
//!
//! The log may be the store's alone (`persistence_dir`) or shared with the
//! sinks' disk queue (see `agent`); either way the store sees only its own
//! records (kind [`KIND_STORE`]).
//!
//! # Guarantees
//!
//! - A record is durable once its ticket's wait returns `Ok`: acknowledge
//!   only after it. Concurrent appends share fsyncs (group commit).
//! - After a kill -9 (or power loss) at any moment, [`Journal::open`]
//!   returns every acknowledged record, in append order, and no partially
//!   written one: the newest usable snapshot's records first, then the
//!   log's store records from the snapshot's cut on.
//! - A failed write or fsync fails every record not yet durable, and
//!   appends until the engine has recovered (a fresh segment; on a full
//!   disk, once one can be started); the store undoes what the failed
//!   records changed (`store::undo`).
//! - A directory written by releases up to 57b122d (format 1: `journal-*`,
//!   `snapshot-*` with 8 digits) is migrated once at open: its records are
//!   written into a new snapshot, made durable, and the old files are then
//!   moved into `format-1/` (see `durable::legacy`).
//!
//! # Compaction
//!
//! [`Journal::start_snapshot`] cuts the log at its next sequence number:
//! the caller must write into the returned writer a state that reflects
//! exactly the store records appended before the cut, e.g. by calling
//! `append` and `start_snapshot` under the same lock and copying its state
//! under that lock. [`SnapshotWriter::finish`] makes the snapshot durable
//! (tmp file, fsync, rename, directory fsync) and only then releases the
//! segments before the cut. A crash at any point before the rename leaves
//! the old snapshot and every segment it needs. (A record appended just
//! before the cut can reach the snapshot through the caller's state even if
//! its own fsync then fails; that is allowed, since it was never
//! acknowledged.)

use crate::durable::fsutil;
use crate::durable::legacy;
use crate::durable::reader;
use crate::durable::snapshot::{self, SnapshotWriter as RawSnapshot};
use crate::durable::{read_log_id, Io, Log, LogOptions, Payload, RealIo, Snapshot, KIND_STORE};
use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

pub use crate::durable::Ticket;

/// Larger records are refused on append.
pub const MAX_RECORD_LEN: usize = crate::durable::MAX_PAYLOAD;
/// Payload version of the store's records (`store::record`'s encoding).
const RECORD_VERSION: u8 = 1;
/// Segment size of a log that is the store's alone.
const SEGMENT_BYTES: u64 = 64 << 20;

/// The file in `persistence_dir` that names the directory of the log the
/// store's records go to, when that is not `persistence_dir` itself (the
/// log shared with the disk queue): where to look for them if the
/// configuration changes.
pub const LOG_POINTER: &str = "LOG";

/// The journal. `Send + Sync`; share it through an `Arc`.
pub struct Journal {
    log: Arc<Log>,
    /// The journal's holder number in the log.
    holder: usize,
    /// Closing the journal closes the log only if it is the journal's own.
    owns_log: bool,
    /// `persistence_dir`: the snapshots.
    dir: PathBuf,
    /// Bytes of store records appended since the last cut.
    bytes: Arc<AtomicU64>,
    snapshot_busy: Arc<AtomicBool>,
    /// `persistence_dir`'s lock, when the log (which holds its own
    /// directory's) is elsewhere.
    _lock: Option<File>,
}

/// What [`Journal::open`] found on disk.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Snapshot records first, then journal records, in append order.
    pub records: Vec<Vec<u8>>,
    /// How many of `records` came from the snapshot.
    pub snapshot_records: usize,
    /// The log sequence number of each record after the snapshot's (in
    /// order, `records.len() - snapshot_records` of them): what a record's
    /// link to its group's previous one names. Empty when the records came
    /// from another log and are all covered by a new snapshot.
    pub seqs: Vec<u64>,
    /// The snapshot's cut: records below it are in the snapshot.
    pub cover: u64,
    /// Damage found and what was done about it (also logged).
    pub warnings: Vec<String>,
}

/// What the journal reads before its log opens (the snapshot, a format-1
/// directory), and the store records the opening log hands it. See
/// [`Journal::prepare`].
pub struct Prepared {
    io: Arc<dyn Io>,
    dir: PathBuf,
    snapshot: Option<Snapshot>,
    /// Store records of the opening log the snapshot may not cover, with
    /// their sequence numbers.
    log_records: Vec<Vec<u8>>,
    log_seqs: Vec<u64>,
    warnings: Vec<String>,
    lock: Option<File>,
}

impl Prepared {
    /// Feeds one record of the opening log.
    pub fn visit(&mut self, r: crate::durable::RecordRef<'_>) {
        let cover = self.snapshot.as_ref().map_or(0, |s| s.cover);
        if r.kind == KIND_STORE && r.seq >= cover {
            self.log_records.push(r.payload.to_vec());
            self.log_seqs.push(r.seq);
        }
    }
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir`, in a log of its
    /// own, and recovers its records. Damage is repaired as the durable
    /// engine's docs say and reported in [`Recovered::warnings`]; I/O
    /// errors are returned.
    pub fn open(dir: &Path) -> io::Result<(Journal, Recovered)> {
        Journal::open_with(Arc::new(RealIo), dir)
    }

    /// [`Journal::open`] through `io` (tests inject faults with it).
    pub fn open_with(io: Arc<dyn Io>, dir: &Path) -> io::Result<(Journal, Recovered)> {
        fsutil::create_private_dir(dir)?;
        let lock = fsutil::lock_dir(dir, "journal")?;
        let mut prepared = Journal::prepare(&io, dir, None)?;
        let opened = Log::open_locked(
            io,
            dir,
            LogOptions {
                segment_bytes: SEGMENT_BYTES,
                holders: 1,
                what: "journal",
            },
            lock,
            &mut |r| prepared.visit(r),
        )?;
        prepared.warnings.extend(opened.warnings);
        Journal::attach(Arc::new(opened.log), 0, true, prepared)
    }

    /// Before the log opens: migrates a format-1 `dir` and loads the
    /// newest snapshot. `lock` is `dir`'s lock when the log is elsewhere
    /// (the journal keeps it); when the log is in `dir`, the log holds it.
    pub fn prepare(io: &Arc<dyn Io>, dir: &Path, lock: Option<File>) -> io::Result<Prepared> {
        let mut warnings = migrate(io, dir)?;
        let (snapshot, w) = snapshot::load_newest(&**io, dir, "journal")?;
        warnings.extend(w);
        Ok(Prepared {
            io: io.clone(),
            dir: dir.to_path_buf(),
            snapshot,
            log_records: Vec::new(),
            log_seqs: Vec::new(),
            warnings,
            lock,
        })
    }

    /// The journal on an open log (its own, or one shared with the disk
    /// queue) as holder `holder`, once `prepared` has seen its records.
    ///
    /// If the newest snapshot's cut is not in this log (the store moved
    /// from its own log to the shared one or back, or it has no snapshot
    /// yet), the records after the cut are read from the log it names
    /// (`persistence_dir`'s own, or the one [`LOG_POINTER`] names), and a
    /// new snapshot of everything is written, cut at this log's next
    /// record, before the journal takes appends. The store records this
    /// log holds from before are then stale and skipped. Fails, changing
    /// nothing, if that log cannot be found.
    pub fn attach(
        log: Arc<Log>,
        holder: usize,
        owns_log: bool,
        prepared: Prepared,
    ) -> io::Result<(Journal, Recovered)> {
        let Prepared {
            io,
            dir,
            snapshot,
            log_records,
            log_seqs,
            mut warnings,
            lock,
        } = prepared;
        let mut seqs = Vec::new();
        let (cover, log_id, mut records) = match snapshot {
            Some(s) => (
                s.cover,
                Some(s.log_id),
                s.records.into_iter().map(|r| r.2).collect::<Vec<_>>(),
            ),
            None => (0, None, Vec::new()),
        };
        let snapshot_records = records.len();
        let in_this_log = log_id == Some(log.id());
        // What the log holds since the snapshot counts towards the next
        // compaction, as if appended now: on a full disk, a compaction is
        // what frees it.
        let mut log_bytes = 0;
        match log_id {
            Some(id) if id == log.id() => {
                log_bytes = frame_bytes(&log_records);
                records.extend(log_records);
                seqs = log_seqs;
            }
            Some(0) | None => {
                if log_id.is_none() && log.oldest_segment() > 1 {
                    let msg = format!(
                        "journal {}: no usable snapshot, and the log starts at record {}: the state compacted before it is lost",
                        log.dir().display(),
                        log.oldest_segment()
                    );
                    tracing::warn!("{msg}");
                    warnings.push(msg);
                }
                log_bytes = frame_bytes(&log_records);
                records.extend(log_records);
                seqs = log_seqs;
            }
            Some(id) => {
                let prev = find_log(&*io, &dir, id, log.dir()).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!(
                            "journal {}: the store's records since its last snapshot are in a log (id {id:016x}) found neither there nor where {LOG_POINTER} points; restore that directory, or move the snapshots away to start empty",
                            dir.display()
                        ),
                    )
                })?;
                reader::read_only(&*io, &prev, &mut |r| {
                    if r.kind == KIND_STORE && r.seq >= cover {
                        records.push(r.payload.to_vec());
                    }
                })?;
                tracing::info!(
                    "journal {}: the store's log moved from {} to {}; {} records carried over in a new snapshot",
                    dir.display(),
                    prev.display(),
                    log.dir().display(),
                    records.len()
                );
            }
        }
        let journal = Journal {
            log,
            holder,
            owns_log,
            dir,
            bytes: Arc::new(AtomicU64::new(log_bytes)),
            snapshot_busy: Arc::new(AtomicBool::new(false)),
            _lock: lock,
        };
        if in_this_log {
            journal.log.release(holder, cover);
        } else {
            // The cut is not in this log: write one that is.
            let mut w = journal.start_snapshot()?;
            for r in &records {
                w.write_record(r)?;
            }
            w.finish()?;
        }
        journal.point_to_log()?;
        // Records carried over from another log are all in the new
        // snapshot now: none is checked against its group's chain.
        let (snapshot_records, seqs, cover) = match in_this_log || log_id.is_none_or(|id| id == 0) {
            true => (snapshot_records, seqs, cover),
            false => (records.len(), Vec::new(), 0),
        };
        let recovered = Recovered {
            records,
            snapshot_records,
            seqs,
            cover,
            warnings,
        };
        Ok((journal, recovered))
    }

    /// Keeps [`LOG_POINTER`] naming the log when it is elsewhere, and
    /// removes `persistence_dir`'s own old segments and spare once the
    /// store's records have moved out of them (their last ones are in a
    /// durable snapshot by now).
    fn point_to_log(&self) -> io::Result<()> {
        let pointer = self.dir.join(LOG_POINTER);
        if self.log.dir() == self.dir {
            match std::fs::remove_file(&pointer) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            return fsutil::sync_dir(&self.dir);
        }
        let target = self.log.dir().canonicalize()?;
        let text = format!("{}\n", target.display());
        if std::fs::read_to_string(&pointer).ok().as_deref() != Some(text.as_str()) {
            let tmp = self.dir.join(format!("{LOG_POINTER}.tmp"));
            let mut f = fsutil::create_private(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &pointer)?;
        }
        for (name, path) in fsutil::list_dir(&self.dir)? {
            if fsutil::parse_numbered20(&name, reader::SEGMENT_PREFIX).is_some()
                || name == crate::durable::writer::LOG_ID_FILE
                || crate::durable::writer::SPARE_FILES.contains(&name.as_str())
            {
                std::fs::remove_file(path)?;
            }
        }
        fsutil::sync_dir(&self.dir)
    }

    /// Queues one record; cheap, never blocks on I/O. Returns the ticket
    /// to wait on. Fails once the journal has failed or is closed.
    pub fn append(&self, payload: &[u8]) -> io::Result<Ticket> {
        self.append_in(self.log.epoch(), payload)
    }

    /// Refuses a record too large for the log, before anything is done
    /// for it.
    pub fn check_size(&self, len: usize) -> io::Result<()> {
        if len > crate::durable::MAX_PAYLOAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a journal record of {len} bytes exceeds the limit of {}",
                    crate::durable::MAX_PAYLOAD
                ),
            ));
        }
        Ok(())
    }

    /// [`Journal::append`], refused if a group of the log has failed since
    /// `epoch` ([`crate::durable::Log::append_in`]).
    pub fn append_in(&self, epoch: u64, payload: &[u8]) -> io::Result<Ticket> {
        self.append_after(epoch, payload, None)
    }

    /// [`Journal::append_in`], written only once `after`, a record of the
    /// log's companion ([`Log::gate_on`]), is durable.
    pub fn append_after(
        &self,
        epoch: u64,
        payload: &[u8],
        after: Option<Ticket>,
    ) -> io::Result<Ticket> {
        let p = Payload::new(KIND_STORE, RECORD_VERSION, payload.to_vec());
        let len = p.frame_len();
        let t = self.log.append_after(epoch, p, after)?;
        self.bytes.fetch_add(len, Ordering::Relaxed);
        Ok(t)
    }

    /// Waits until the record is durable (or the journal failed).
    pub async fn wait(&self, t: Ticket) -> io::Result<()> {
        self.log.wait(t).await
    }

    /// Blocking form of [`Journal::wait`], for threads outside the runtime.
    pub fn wait_blocking(&self, t: Ticket) -> io::Result<()> {
        self.log.wait_blocking(t)
    }

    /// True if only the journal keeps a segment of its log on disk: a
    /// snapshot would let it go.
    pub fn pins_segments(&self) -> bool {
        self.log.pinned_by(self.holder)
    }

    /// The log the journal writes to.
    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// Bytes of records appended since the last cut (the caller snapshots
    /// when this grows past a threshold).
    pub fn current_journal_bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The log's group-commit fsyncs (the disk queue's too, when shared).
    pub fn fsync_count(&self) -> u64 {
        self.log.fsync_count()
    }

    /// Cuts the journal: records appended after this call are not in the
    /// snapshot. Write the state as of the cut into the returned writer,
    /// then `finish` it. Does no I/O, so it may be called under the
    /// caller's lock. One snapshot at a time.
    pub fn start_snapshot(&self) -> io::Result<SnapshotWriter> {
        self.start_snapshot_at(self.log.epoch())
    }

    /// [`Journal::start_snapshot`] of a state settled at the log's
    /// `epoch`: if a group failed since, the state may hold what it
    /// refused, and `finish` drops the snapshot.
    pub fn start_snapshot_at(&self, epoch: u64) -> io::Result<SnapshotWriter> {
        if self.snapshot_busy.swap(true, Ordering::AcqRel) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "a snapshot is already in progress",
            ));
        }
        // Allowed while the log refuses appends: on a full disk, a snapshot
        // is what lets the segments the store pins go.
        let cover = self.log.next_seq();
        let bytes_at_cut = self.bytes.load(Ordering::Relaxed);
        Ok(SnapshotWriter {
            raw: Some(RawSnapshot::new(
                self.log.io().clone(),
                &self.dir,
                cover,
                self.log.id(),
            )),
            log: self.log.clone(),
            holder: self.holder,
            busy: self.snapshot_busy.clone(),
            epoch,
            journal_bytes: self.bytes.clone(),
            bytes_at_cut,
        })
    }

    /// Flushes and fsyncs what is queued; closes the log if it is the
    /// journal's own (blocking until then; later appends fail). Returns the
    /// log's failure, if it failed.
    pub fn close(&self) -> io::Result<()> {
        if self.owns_log {
            self.log.close()
        } else {
            match self.log.failure() {
                Some(e) => Err(e),
                None => Ok(()),
            }
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
        f.debug_struct("Journal").field("log", &self.log).finish()
    }
}

/// Writes one snapshot; see [`Journal::start_snapshot`].
pub struct SnapshotWriter {
    raw: Option<RawSnapshot>,
    log: Arc<Log>,
    holder: usize,
    busy: Arc<AtomicBool>,
    /// The log's epoch at the cut.
    epoch: u64,
    /// The journal's bytes since the last cut, and their count at this
    /// cut: taken off once this snapshot is whole, so that a snapshot that
    /// fails is tried again.
    journal_bytes: Arc<AtomicU64>,
    bytes_at_cut: u64,
}

impl SnapshotWriter {
    pub fn write_record(&mut self, payload: &[u8]) -> io::Result<()> {
        match &mut self.raw {
            Some(w) => w.write_record(KIND_STORE, RECORD_VERSION, payload),
            None => Err(io::Error::other("snapshot already finished")),
        }
    }

    /// Makes the snapshot durable, then lets the log delete the segments
    /// it covers.
    pub fn finish(mut self) -> io::Result<()> {
        let raw = self.raw.take().expect("finish runs once");
        let cover = raw.cover();
        // The state written may hold mutations not yet durable when the
        // cut was made; if their group failed, they were undone in memory
        // and this snapshot must not keep them. (A failure known before
        // the cut was undone before the state was copied.)
        let _ = self.log.wait_blocking(Ticket::below(cover));
        if self
            .log
            .failed_since(self.epoch)
            .is_some_and(|first| first < cover)
        {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "a group commit below the snapshot's cut failed; the snapshot is dropped",
            ));
        }
        raw.finish()?;
        self.journal_bytes
            .fetch_sub(self.bytes_at_cut, Ordering::Relaxed);
        self.log.release(self.holder, cover);
        Ok(())
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.raw.as_ref().map_or(0, RawSnapshot::bytes)
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        self.busy.store(false, Ordering::Release);
    }
}

/// Bytes the records `payloads` take in the log, headers included.
fn frame_bytes(payloads: &[Vec<u8>]) -> u64 {
    let header = crate::durable::record::HEADER_LEN as u64;
    payloads.iter().map(|p| p.len() as u64 + header).sum()
}

/// The directory of the log `id` among `dir` itself and where
/// [`LOG_POINTER`] points, but not `current`.
fn find_log(io: &dyn Io, dir: &Path, id: u64, current: &Path) -> Option<PathBuf> {
    let mut candidates = vec![dir.to_path_buf()];
    if let Ok(text) = std::fs::read_to_string(dir.join(LOG_POINTER)) {
        candidates.push(PathBuf::from(text.trim_end_matches('\n')));
    }
    candidates
        .into_iter()
        .filter(|c| c != current)
        .find(|c| read_log_id(io, c) == Some(id))
}

/// Migrates a format-1 directory: its records become a snapshot that
/// names no log (id 0; [`Journal::attach`] replaces it at once with one
/// that does), durable before the old files are moved aside. A directory that already holds new files only has old
/// files left over from a migration that was interrupted after its
/// snapshot was durable: they are moved aside.
fn migrate(io: &Arc<dyn Io>, dir: &Path) -> io::Result<Vec<String>> {
    let Some(old) = legacy::read_journal(dir)? else {
        return Ok(Vec::new());
    };
    let mut warnings = old.warnings;
    let has_new = io.list(dir)?.iter().any(|(name, _)| {
        fsutil::parse_numbered20(name, snapshot::SNAPSHOT_PREFIX).is_some()
            || fsutil::parse_numbered20(name, crate::durable::reader::SEGMENT_PREFIX).is_some()
    });
    if !has_new {
        let mut w = RawSnapshot::new(io.clone(), dir, 1, 0);
        for r in &old.records {
            w.write_record(KIND_STORE, RECORD_VERSION, r)?;
        }
        w.finish()?;
    }
    let to = legacy::move_migrated(dir, &old.files)?;
    let msg = format!(
        "journal {}: migrated {} records from the format-1 journal; the old files are kept in {}",
        dir.display(),
        old.records.len(),
        to.display()
    );
    tracing::info!("{msg}");
    if !has_new {
        warnings.push(msg);
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durable::fsutil::testing::{assert_group_commit, mode, names, BURST};
    use std::fs::{self, OpenOptions};

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

    fn snapshots(dir: &Path) -> Vec<String> {
        names(dir)
            .into_iter()
            .filter(|n| n.starts_with("snapshot-"))
            .collect()
    }

    #[test]
    fn append_reopen_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let (j, rec) = open(tmp.path());
            assert!(rec.records.is_empty() && rec.warnings.is_empty());
            append_all(&j, &["one", "two", ""]);
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let t = j.append(b"three").unwrap();
            rt.block_on(j.wait(t)).unwrap();
            assert_eq!(j.fsync_count(), 4, "one fsync per record waited for alone");
        }
        let (_j, rec) = open(tmp.path());
        assert!(rec.warnings.is_empty(), "{:?}", rec.warnings);
        assert_eq!(strings(&rec.records), ["one", "two", "", "three"]);
        assert_eq!(rec.snapshot_records, 0);
    }

    #[test]
    fn concurrent_appends_share_fsyncs_and_keep_order() {
        const THREADS: usize = 4;
        const PER_THREAD: usize = 50;
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
    fn snapshot_then_journal() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        {
            let (j, _) = open(dir);
            append_all(&j, &["a", "b", "c"]);
            let cut = j.current_journal_bytes();
            assert!(cut > 0);
            let mut w = j.start_snapshot().unwrap();
            assert!(j.start_snapshot().is_err(), "one snapshot at a time");
            // Appends during the snapshot are not in it.
            append_all(&j, &["d"]);
            w.write_record(b"state-1").unwrap();
            w.write_record(b"state-2").unwrap();
            let during = j.current_journal_bytes() - cut;
            w.finish().unwrap();
            // Once it is whole, only what came after the cut counts.
            assert_eq!(j.current_journal_bytes(), during);
            append_all(&j, &["e"]);
            assert_eq!(snapshots(dir).len(), 1);
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
        assert_eq!(snapshots(dir).len(), 1);
        let (_j, rec) = open(dir);
        assert_eq!(strings(&rec.records), ["state-3", "f"]);
        assert_eq!(rec.snapshot_records, 1);
    }

    #[test]
    fn snapshots_let_old_segments_go() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        for i in 0..3 {
            let (j, _) = open(dir);
            append_all(&j, &[&format!("r{i}")]);
        }
        let segments = |d: &Path| names(d).iter().filter(|n| n.starts_with("log-")).count();
        let (j, rec) = open(dir);
        assert_eq!(strings(&rec.records), ["r0", "r1", "r2"]);
        assert_eq!(segments(dir), 4);
        let mut w = j.start_snapshot().unwrap();
        w.write_record(b"all").unwrap();
        w.finish().unwrap();
        assert_eq!(segments(dir), 1);
        drop(j);
        let (_j, rec) = open(dir);
        assert_eq!(strings(&rec.records), ["all"]);
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
            w.write_record(&vec![b'h'; 2 << 20]).unwrap();
            // The crash: finish never runs; the tmp file stays.
            std::mem::forget(w);
            append_all(&j, &["c"]);
        }
        assert!(names(dir).iter().any(|n| n.ends_with(".tmp")));
        let (j, rec) = open(dir);
        assert!(rec.warnings.is_empty(), "{:?}", rec.warnings);
        assert_eq!(strings(&rec.records), ["a", "b", "c"]);
        assert!(!names(dir).iter().any(|n| n.ends_with(".tmp")));
        let mut w = j.start_snapshot().unwrap();
        w.write_record(b"abc").unwrap();
        w.finish().unwrap();
        drop(j);
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
        }
        {
            // In a later segment, so that the snapshot lets "a"'s go.
            let (j, _) = open(dir);
            let mut w = j.start_snapshot().unwrap();
            w.write_record(b"s1").unwrap();
            w.write_record(b"s2").unwrap();
            w.finish().unwrap();
            append_all(&j, &["c"]);
        }
        let snap = dir.join(&snapshots(dir)[0]);
        let mut data = fs::read(&snap).unwrap();
        let n = data.len();
        data[n - 40] ^= 0xFF; // inside the last record
        fs::write(&snap, &data).unwrap();

        let (_j, rec) = open(dir);
        assert!(!snap.exists());
        let aside: Vec<String> = names(dir)
            .into_iter()
            .filter(|n| n.starts_with("snapshot-") && n.contains(".corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(fs::read(dir.join(&aside[0])).unwrap(), data);
        // No older snapshot: only what the log still has.
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
    fn files_are_private_and_the_directory_locked() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a").join("b");
        let (j, _) = open(&dir);
        append_all(&j, &["x"]);
        let mut w = j.start_snapshot().unwrap();
        w.write_record(b"x").unwrap();
        w.finish().unwrap();
        append_all(&j, &["y"]);
        assert_eq!(mode(&dir), 0o700);
        for name in names(&dir) {
            assert_eq!(mode(&dir.join(&name)), 0o600, "{name}");
        }
        let err = Journal::open(&dir).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        j.close().unwrap();
        let (_j, rec) = open(&dir);
        assert_eq!(strings(&rec.records), ["x", "y"]);
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
    fn torn_tail_is_dropped_with_a_warning() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        {
            let (j, _) = open(dir);
            append_all(&j, &["r0", "r1"]);
        }
        let seg = names(dir)
            .into_iter()
            .rfind(|n| n.starts_with("log-"))
            .unwrap();
        let path = dir.join(&seg);
        let len = fs::metadata(&path).unwrap().len();
        // Cut inside the last group's commit marker.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let (_j, rec) = open(dir);
        assert_eq!(strings(&rec.records), ["r0"]);
        assert_eq!(rec.warnings.len(), 1, "{:?}", rec.warnings);
        assert!(rec.warnings[0].contains(&seg), "{}", rec.warnings[0]);
    }

    /// The journal on a log in `qdir` shared with another client (holder
    /// 1), its snapshots in `pdir`.
    fn open_shared(pdir: &Path, qdir: &Path) -> (Journal, Recovered) {
        let io: Arc<dyn Io> = Arc::new(RealIo);
        fsutil::create_private_dir(pdir).unwrap();
        let lock = fsutil::lock_dir(pdir, "journal").unwrap();
        let mut prepared = Journal::prepare(&io, pdir, Some(lock)).unwrap();
        let opened = Log::open(
            io,
            qdir,
            LogOptions {
                segment_bytes: 1 << 20,
                holders: 2,
                what: "shared log",
            },
            &mut |r| prepared.visit(r),
        )
        .unwrap();
        Journal::attach(Arc::new(opened.log), 0, false, prepared).unwrap()
    }

    #[test]
    fn the_store_moves_between_its_own_log_and_a_shared_one() {
        let tmp = tempfile::tempdir().unwrap();
        let (pdir, qdir) = (tmp.path().join("p"), tmp.path().join("q"));
        {
            let (j, _) = open(&pdir);
            append_all(&j, &["a", "b"]);
        }
        {
            let (j, rec) = open_shared(&pdir, &qdir);
            assert_eq!(strings(&rec.records), ["a", "b"]);
            assert!(pdir.join(LOG_POINTER).exists());
            assert!(!names(&pdir).iter().any(|n| n.starts_with("log-")));
            append_all(&j, &["c"]);
            // The other client's records are not the store's.
            let t = j
                .log()
                .append(Payload::new(crate::durable::KIND_QUEUE, 2, b"q".to_vec()))
                .unwrap();
            j.wait_blocking(t).unwrap();
        }
        {
            let (_j, rec) = open_shared(&pdir, &qdir);
            assert_eq!(strings(&rec.records), ["a", "b", "c"]);
        }
        {
            // Back to a log of its own: the records come from the shared
            // one, found through the pointer.
            let (j, rec) = open(&pdir);
            assert_eq!(strings(&rec.records), ["a", "b", "c"]);
            assert!(!pdir.join(LOG_POINTER).exists());
            append_all(&j, &["d"]);
        }
        {
            // The shared log's old "c" is stale now: not replayed twice.
            let (j, rec) = open_shared(&pdir, &qdir);
            assert_eq!(strings(&rec.records), ["a", "b", "c", "d"]);
            append_all(&j, &["e"]);
        }
        let (_j, rec) = open_shared(&pdir, &qdir);
        assert!(rec.warnings.is_empty(), "{:?}", rec.warnings);
        assert_eq!(strings(&rec.records), ["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn a_missing_log_is_an_error_not_a_loss() {
        let tmp = tempfile::tempdir().unwrap();
        let (pdir, qdir) = (tmp.path().join("p"), tmp.path().join("q"));
        {
            let (j, _) = open_shared(&pdir, &qdir);
            append_all(&j, &["a"]);
        }
        fs::remove_dir_all(&qdir).unwrap();
        let err = Journal::open(&pdir).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("restore"), "{err}");
    }
}
