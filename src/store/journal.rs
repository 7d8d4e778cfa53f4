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
//! - A failed write or fsync fails every waiting and every later append
//!   until restart (the engine's failure latch).
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
use crate::durable::snapshot::{self, SnapshotWriter as RawSnapshot};
use crate::durable::{Io, Log, LogOptions, Payload, RealIo, KIND_STORE};
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

pub use crate::durable::Ticket;

/// Larger records are refused on append.
pub const MAX_RECORD_LEN: usize = crate::durable::MAX_PAYLOAD;
/// Payload version of the store's records (`store::record`'s encoding).
const RECORD_VERSION: u8 = 1;
/// Segment size of a log that is the store's alone.
const SEGMENT_BYTES: u64 = 64 << 20;

/// The journal. `Send + Sync`; share it through an `Arc`.
pub struct Journal {
    log: Arc<Log>,
    /// The journal's holder number in the log.
    holder: usize,
    /// Closing the journal closes the log only if it is the journal's own.
    owns_log: bool,
    /// Bytes of store records appended since the last cut.
    bytes: AtomicU64,
    snapshot_busy: Arc<AtomicBool>,
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

/// What the journal needs to read before its log opens: the snapshot and
/// the records of a format-1 directory. See [`Journal::prepare`].
pub struct Prepared {
    recovered: Recovered,
    /// Store records below this are in the snapshot.
    cover: u64,
}

impl Prepared {
    /// Feeds one record of the opening log: keeps the store's records the
    /// snapshot does not cover.
    pub fn visit(&mut self, r: crate::durable::RecordRef<'_>) {
        if r.kind == KIND_STORE && r.seq >= self.cover {
            self.recovered.records.push(r.payload.to_vec());
        }
    }
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir`, in a log of its
    /// own, and recovers its records. Damage is repaired as the durable
    /// engine's docs say and reported in [`Recovered::warnings`]; I/O
    /// errors are returned.
    pub fn open(dir: &Path) -> io::Result<(Journal, Recovered)> {
        let io: Arc<dyn Io> = Arc::new(RealIo);
        fsutil::create_private_dir(dir)?;
        let lock = fsutil::lock_dir(dir, "journal")?;
        let mut prepared = Journal::prepare(&io, dir)?;
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
        let (journal, mut recovered) = Journal::attach(Arc::new(opened.log), 0, true, prepared);
        recovered.warnings.extend(opened.warnings);
        Ok((journal, recovered))
    }

    /// Before the log in `dir` opens (its lock held): migrates a format-1
    /// directory and loads the newest snapshot.
    pub fn prepare(io: &Arc<dyn Io>, dir: &Path) -> io::Result<Prepared> {
        let mut warnings = migrate(io, dir)?;
        let (snap, w) = snapshot::load_newest(&**io, dir, "journal")?;
        warnings.extend(w);
        let (cover, records) = match snap {
            Some(s) => (s.cover, s.records.into_iter().map(|r| r.2).collect()),
            None => (0, Vec::new()),
        };
        let snapshot_records = records.len();
        Ok(Prepared {
            recovered: Recovered {
                records,
                snapshot_records,
                warnings,
            },
            cover,
        })
    }

    /// The journal on an open log (its own, or one shared with the disk
    /// queue), as holder `holder`, once `prepared` has seen its records.
    pub fn attach(
        log: Arc<Log>,
        holder: usize,
        owns_log: bool,
        prepared: Prepared,
    ) -> (Journal, Recovered) {
        let Prepared {
            mut recovered,
            cover,
        } = prepared;
        if cover == 0 && log.oldest_segment() > 1 {
            let msg = format!(
                "journal {}: no usable snapshot, and the log starts at record {}: the state compacted before it is lost",
                log.dir().display(),
                log.oldest_segment()
            );
            tracing::warn!("{msg}");
            recovered.warnings.push(msg);
        }
        log.release(holder, cover);
        let journal = Journal {
            log,
            holder,
            owns_log,
            bytes: AtomicU64::new(0),
            snapshot_busy: Arc::new(AtomicBool::new(false)),
        };
        (journal, recovered)
    }

    /// Queues one record; cheap, never blocks on I/O. Returns the ticket
    /// to wait on. Fails once the journal has failed or is closed.
    pub fn append(&self, payload: &[u8]) -> io::Result<Ticket> {
        let p = Payload::new(KIND_STORE, RECORD_VERSION, payload.to_vec());
        let len = p.frame_len();
        let t = self.log.append(p)?;
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
        if self.snapshot_busy.swap(true, Ordering::AcqRel) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "a snapshot is already in progress",
            ));
        }
        if let Some(e) = self.log.failure() {
            self.snapshot_busy.store(false, Ordering::Release);
            return Err(e);
        }
        let cover = self.log.next_seq();
        self.bytes.store(0, Ordering::Relaxed);
        Ok(SnapshotWriter {
            raw: Some(RawSnapshot::new(
                self.log.io().clone(),
                self.log.dir(),
                cover,
            )),
            log: self.log.clone(),
            holder: self.holder,
            busy: self.snapshot_busy.clone(),
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
        raw.finish()?;
        self.log.release(self.holder, cover);
        Ok(())
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        self.busy.store(false, Ordering::Release);
    }
}

/// Migrates a format-1 directory: its records become a snapshot that
/// covers nothing of the new log (cut 1), durable before the old files are
/// moved aside. A directory that already holds new files only has old
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
        let mut w = RawSnapshot::new(io.clone(), dir, 1);
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
            assert!(j.current_journal_bytes() > 0);
            let mut w = j.start_snapshot().unwrap();
            assert_eq!(j.current_journal_bytes(), 0);
            assert!(j.start_snapshot().is_err(), "one snapshot at a time");
            // Appends during the snapshot are not in it.
            append_all(&j, &["d"]);
            w.write_record(b"state-1").unwrap();
            w.write_record(b"state-2").unwrap();
            w.finish().unwrap();
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
}
