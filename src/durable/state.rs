//! The log's shared state: what appends queue for the flusher, the status
//! waiters read, and the bookkeeping both sides keep under one lock. Used
//! by `writer` (the public API) and `flusher` (the thread that writes);
//! the one job here is to hold it consistent.

use super::fsutil::Failure;
use super::io::{Io, LogFile};
use super::ledger::Ledger;
use super::reader::{self, SPARE_FILES};
use super::record::{self, SEGMENT_MAGIC};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A file of this many bytes is kept in the log's directory
/// ([`RESERVE_FILE`]) and given up when a full disk leaves no room to
/// start a segment: the room a log needs to heal.
pub const RESERVE_BYTES: u64 = 64 << 10;
/// The reserve's name.
pub const RESERVE_FILE: &str = "RESERVE";
/// After a failure with the disk full, the log waits this long before it
/// starts a fresh segment and takes appends again.
pub(super) const FULL_DISK_RETRY: Duration = Duration::from_secs(1);
/// Failed ranges kept for tickets still to be waited on.
pub(super) const FAILED_RANGES_KEPT: usize = 4096;

/// Group-commit fsyncs of every log in the process.
pub(super) static TOTAL_FSYNCS: AtomicU64 = AtomicU64::new(0);

/// What the flusher is doing, so that appends and group ends wake it only
/// when it waits for them (a wake-up is a syscall, and a context switch
/// when the flusher goes back to sleep).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flusher {
    Busy,
    /// For records to commit.
    WaitsForOps,
    /// For the groups of this slot of `State::groups` to end.
    WaitsForGroups(usize),
    /// Failed, for the time to try again (and for every group to end).
    WaitsToRecover,
}

pub(super) fn segment_name(first_seq: u64) -> String {
    format!("{}{first_seq:020}", reader::SEGMENT_PREFIX)
}

pub(super) enum Op {
    Record {
        seq: u64,
        header: [u8; record::HEADER_LEN],
        payload: Vec<u8>,
        /// A record of the companion log (see [`Log::gate_on`]) that must
        /// be durable before this one is written.
        ///
        /// [`Log::gate_on`]: super::writer::Log::gate_on
        after: Option<Ticket>,
    },
    /// Commit what is written, then continue in the segment of this name.
    Rotate(u64),
}

pub(super) struct State {
    pub(super) ops: Vec<Op>,
    pub(super) next_seq: u64,
    /// Name of the segment appends go to, and its size with what is queued.
    pub(super) active: u64,
    pub(super) active_bytes: u64,
    pub(super) ledger: Ledger,
    /// [`CommitGroup`]s alive, by generation (`group_gen % 2`): the flusher
    /// waits for those of the current generation to end, so that what they
    /// append shares one fsync. It starts a new generation as it begins to
    /// wait, and never waits for that one: a stream of overlapping groups
    /// cannot hold commits back for ever.
    pub(super) groups: [usize; 2],
    pub(super) group_gen: u64,
    pub(super) flusher: Flusher,
    pub(super) closing: bool,
    /// Set while appends are refused: from a failed write or fsync until
    /// the flusher has started a fresh segment (see [`Log::epoch`]).
    pub(super) failed: Option<Failure>,
    /// When the flusher tries to recover from `failed`.
    pub(super) retry_at: Option<Instant>,
    /// Failures so far, and the first sequence number each failed.
    pub(super) epoch: u64,
    pub(super) failures: std::collections::VecDeque<(u64, u64)>,
    /// The `groups` slot of the commit groups open when the last group
    /// failed: recovery waits for them only (a group opened later had its
    /// appends refused, so it cannot straddle the failure).
    pub(super) recovery_slot: usize,
    /// The ranges of failed records listed in `FAILED` (and those to add
    /// at the next recovery), so that replay ignores them.
    pub(super) failed_on_disk: Vec<(u64, u64)>,
}

/// Records that failed together: every record appended but not durable
/// when a write or fsync failed.
#[derive(Clone, Debug)]
pub(super) struct FailedRange {
    pub(super) first: u64,
    pub(super) last: u64,
    pub(super) failure: Failure,
}

#[derive(Clone, Debug, Default)]
pub(super) struct Status {
    /// Every record up to this sequence number is on disk, except those
    /// in `failed_ranges`.
    pub(super) durable: u64,
    /// The latest failures, newest last; shared, as a status is cloned
    /// at every commit.
    pub(super) failed_ranges: Arc<Vec<FailedRange>>,
    /// While set, appends are refused.
    pub(super) failed: Option<Failure>,
    pub(super) closed: bool,
}

pub(super) struct Inner {
    pub(super) dir: PathBuf,
    pub(super) id: u64,
    pub(super) io: Arc<dyn Io>,
    pub(super) opts: LogOptions,
    pub(super) state: Mutex<State>,
    pub(super) work: Condvar,
    pub(super) status: Mutex<Status>,
    pub(super) status_cv: Condvar,
    pub(super) status_tx: watch::Sender<Status>,
    pub(super) fsyncs: AtomicU64,
    /// Mirrors `State::epoch`, read without the lock.
    pub(super) epoch: AtomicU64,
    /// Told the last durable sequence number when a group fails, before
    /// any later record can be durable (see [`Log::on_failure`]).
    pub(super) on_failure: Mutex<Vec<FailureHook>>,
    /// Run before each try to recover (see [`Log::on_retry`]).
    pub(super) on_retry: Mutex<Vec<Box<dyn Fn() + Send + Sync>>>,
    /// Set while appends are refused for a full disk.
    pub(super) full: std::sync::atomic::AtomicBool,
    /// Set while appends are refused for any reason (`State::failed`).
    pub(super) refusing: std::sync::atomic::AtomicBool,
    /// The log whose records this one's wait for (see `Log::gate_on`).
    pub(super) companion: std::sync::OnceLock<Arc<Inner>>,
    /// Serializes writes of `FAILED` (the flusher's, and `Log::revoke`'s).
    pub(super) failed_file: Mutex<()>,
    /// Which of [`SPARE_FILES`] exist; held while one is made or taken,
    /// which a release (any thread) and a rotation (the flusher) may do at
    /// once.
    pub(super) spare: Mutex<[bool; SPARE_FILES.len()]>,
}

pub(super) type FailureHook = Box<dyn Fn(u64) + Send + Sync>;

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data is consistent at every unlock; a panic elsewhere is
    // no reason to stop.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    pub(super) fn update_status(&self, f: impl FnOnce(&mut Status)) {
        let mut s = lock(&self.status);
        f(&mut s);
        self.status_tx.send_replace(s.clone());
        drop(s);
        self.status_cv.notify_all();
    }

    /// Latches the first failure for good (the flusher is gone): queued
    /// and later appends all get it.
    pub(super) fn fail(&self, st: &mut State, kind: io::ErrorKind, message: String) {
        let Some(failure) = Failure::set_first(&mut st.failed, kind, message) else {
            return;
        };
        st.ops.clear();
        st.retry_at = None;
        self.refusing.store(true, Ordering::Release);
        self.update_status(|s| s.failed = Some(failure));
    }

    /// Blocks until `t`'s record is durable (or failed, or the log
    /// closed).
    pub(super) fn wait_blocking(&self, t: Ticket) -> io::Result<()> {
        let mut s = lock(&self.status);
        loop {
            if let Some(r) = resolve(&s, t) {
                return r;
            }
            s = self.status_cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    pub(super) fn check_open(&self, st: &State) -> io::Result<()> {
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

    /// Starts segment `name` (the spare, if there is one): its header
    /// fsynced, and the file fsynced into the directory, before any record
    /// is written to it.
    pub(super) fn create_segment(&self, name: u64) -> io::Result<Arc<dyn LogFile>> {
        if let Some(file) = self.reuse_spare(name) {
            return Ok(file);
        }
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

    /// Makes a spare segment `name`, if there is one: its header is
    /// written over and fsynced before it takes the name, so that a
    /// `log-` file never carries another segment's header. Its old
    /// records stay behind what is written, until written over; the
    /// reader tells them by their sequence numbers, all below `name`.
    /// Appends into its blocks fsync without an inode write (see
    /// [`Io::reuse`]), the point of keeping it. `None` if there is no
    /// spare or it cannot be used (it is then removed).
    fn reuse_spare(&self, name: u64) -> Option<Arc<dyn LogFile>> {
        let mut spare = lock(&self.spare);
        let slot = spare.iter().position(|&kept| kept)?;
        let from = self.dir.join(SPARE_FILES[slot]);
        let to = self.dir.join(segment_name(name));
        if to.exists() {
            // Left for `create_new` to refuse, as it would without a spare.
            return None;
        }
        spare[slot] = false;
        // The spare's name durable first: a segment renamed to it must not
        // come back under its old name with the new header.
        let made = self
            .io
            .sync_dir(&self.dir)
            .and_then(|()| self.io.reuse(&from))
            .and_then(|file| {
                file.append(&record::file_header(SEGMENT_MAGIC, name))?;
                file.sync_data()?;
                self.io.rename(&from, &to)?;
                self.io.sync_dir(&self.dir)?;
                Ok(file)
            });
        match made {
            Ok(file) => Some(file),
            Err(e) => {
                tracing::debug!("{}: cannot reuse {}: {e}", self.opts.what, from.display());
                let _ = self.io.remove(&to);
                let _ = self.io.remove(&from);
                None
            }
        }
    }

    /// Deletes the segments every holder has released (never the one being
    /// written), but keeps them as spares while there are fewer than
    /// [`SPARE_FILES`] and the disk has room (see
    /// [`Inner::room_for_spare`]). Run at each release, and when a segment
    /// is started: a release that came while the segment it freed was
    /// still being written frees it only then.
    pub(super) fn collect_segments(&self) {
        let doomed = lock(&self.state).ledger.take_released();
        for seg in doomed {
            if self.keep_as_spare(&seg) {
                continue;
            }
            let path = seg.path;
            match self.io.remove(&path) {
                Ok(()) => tracing::debug!("{}: removed {}", self.opts.what, path.display()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!("{}: cannot remove {}: {e}", self.opts.what, path.display())
                }
            }
        }
        if self.full.load(Ordering::Acquire) {
            self.drop_spare();
        }
        // Given back one at a time, as long as the disk is short; the free
        // space is asked for only while there is a spare to give back (a
        // release comes with every batch a sink acknowledges).
        while self.has_spare() && !self.room_for_spare() && self.drop_one_spare() {}
    }

    /// True while the disk has `segment_bytes` free besides the spares: a
    /// spare is room the log keeps for itself, given back on a disk that
    /// runs short, before it is full.
    fn room_for_spare(&self) -> bool {
        super::fsutil::free_bytes(&self.dir).is_ok_and(|free| free >= self.opts.segment_bytes)
    }

    /// Renames a released segment to a free name of [`SPARE_FILES`] if
    /// there is one, the disk has room for it, no write into it failed,
    /// and nothing holds its file any more (the flusher still finishing
    /// it, a sink reading a batch from it): out of the ledger, no one can
    /// take it again. Not fsynced into the directory here (`reuse_spare`
    /// does before it writes): after a crash either name is fine, since a
    /// released segment that comes back is read again and skipped by its
    /// holders, as one whose removal was lost.
    fn keep_as_spare(&self, seg: &super::ledger::Segment) -> bool {
        let unheld = seg.file.as_ref().is_some_and(|f| Arc::strong_count(f) == 1);
        let mut spare = lock(&self.spare);
        let Some(slot) = spare.iter().position(|&kept| !kept) else {
            return false;
        };
        if !seg.reusable || !unheld || self.full.load(Ordering::Acquire) || !self.room_for_spare() {
            return false;
        }
        spare[slot] = self
            .io
            .rename(&seg.path, &self.dir.join(SPARE_FILES[slot]))
            .is_ok();
        spare[slot]
    }

    /// True if at least one of [`SPARE_FILES`] is kept.
    fn has_spare(&self) -> bool {
        lock(&self.spare).contains(&true)
    }

    /// Removes the spares: room for a full disk.
    pub(super) fn drop_spare(&self) {
        while self.drop_one_spare() {}
    }

    /// Removes one spare; false if there was none.
    fn drop_one_spare(&self) -> bool {
        let mut spare = lock(&self.spare);
        let Some(slot) = spare.iter().rposition(|&kept| kept) else {
            return false;
        };
        spare[slot] = false;
        let _ = self.io.remove(&self.dir.join(SPARE_FILES[slot]));
        true
    }

    /// Creates the reserve if it is missing and the disk has room for it
    /// and as much again. Best effort: a log works without it.
    pub(super) fn keep_reserve(&self) {
        let path = self.dir.join(RESERVE_FILE);
        let _ = super::io::hold_room(&*self.io, &path, RESERVE_BYTES, RESERVE_BYTES);
    }

    /// Gives the reserve up; true if there was one.
    pub(super) fn release_reserve(&self) -> bool {
        let gone = self.io.remove(&self.dir.join(RESERVE_FILE)).is_ok();
        if gone {
            let _ = self.io.sync_dir(&self.dir);
        }
        gone
    }
}

pub(super) fn resolve(s: &Status, t: Ticket) -> Option<io::Result<()>> {
    if let Some(r) = s
        .failed_ranges
        .iter()
        .rev()
        .find(|r| (r.first..=r.last).contains(&t.seq()))
    {
        return Some(Err(r.failure.to_error()));
    }
    if s.durable >= t.seq() {
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

/// Identifies an appended record; wait on it before acknowledging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[must_use = "a record is only durable once its ticket has been waited on"]
pub struct Ticket(pub(super) u64);

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
