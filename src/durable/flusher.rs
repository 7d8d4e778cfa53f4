//! The flusher thread: group commit (everything appended while the last
//! fsync ran goes out together, under one commit marker and one fsync),
//! segment rotation, and what a failed write or fsync starts: the failed
//! group and every record not yet durable fail, and the log recovers by
//! itself (see invariant 5 in `durable`).

use super::fsutil::Failure;
use super::io::LogFile;
use super::reader;
use super::record::{self, FILE_HEADER_LEN};
use super::state::{
    lock, segment_name, FailedRange, Flusher, Inner, Op, State, FAILED_RANGES_KEPT,
    FULL_DISK_RETRY, RESERVE_BYTES, TOTAL_FSYNCS,
};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The flusher writes through a buffer of this size.
const WRITE_BUFFER: usize = 1 << 20;

/// Stands for the segment a log started on a full disk could not create;
/// never written (the log refuses appends until it has a real one).
pub(super) struct NoFile;

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
pub(super) struct Active {
    pub(super) name: u64,
    pub(super) file: Arc<dyn LogFile>,
    pub(super) len: u64,
    /// Length when the last group was committed: a failed group is cut
    /// back to it.
    pub(super) committed: u64,
    /// A failed fsync, or a failed cut, hit it: never written again.
    pub(super) poisoned: bool,
    /// The last group failed before it was written (for its companion):
    /// recovery goes on in this file.
    pub(super) resumable: bool,
}

pub(super) fn run_flusher(inner: Arc<Inner>, mut active: Active) {
    let _exit = FlusherExit(&inner);
    let raised = raise_priority();
    loop {
        let taken = {
            let mut st = lock(&inner.state);
            loop {
                if st.failed.is_some() {
                    if st.closing {
                        // Said on disk before the process goes: a failed
                        // fsync may have left the group's commit marker.
                        drop(st);
                        let _file = lock(&inner.failed_file);
                        let ranges = lock(&inner.state).failed_on_disk.clone();
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
                if st.closing && st.ops.iter().all(|op| matches!(op, Op::Rotate(_))) {
                    // Nothing left to write. A rotation that `one_segment`
                    // moved after the last batch is not worth a segment
                    // (nor a failure, if it could not be made) at close:
                    // the next open starts a fresh one anyway.
                    st.ops.clear();
                    st.ledger.forget_unmade();
                    drop(st);
                    cut_old_life(&active);
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
                        while st.groups[open] > 0 && !st.closing {
                            st.flusher = Flusher::WaitsForGroups(open);
                            st = inner.work.wait(st).unwrap_or_else(|p| p.into_inner());
                        }
                        st.flusher = Flusher::Busy;
                    }
                    break;
                }
                st.flusher = Flusher::WaitsForOps;
                st = inner.work.wait(st).unwrap_or_else(|p| p.into_inner());
                st.flusher = Flusher::Busy;
            }
            // Everything queued while the last fsync ran goes out together.
            (st.failed.is_none()).then(|| {
                let ops = std::mem::take(&mut st.ops);
                let ops = one_segment(&inner, &mut st, ops, active.name);
                (ops, st.next_seq - 1)
            })
        };
        let Some((ops, target)) = taken else {
            recover(&inner, &mut active, raised);
            continue;
        };
        if let Err(e) = companion_gate(&inner, &ops) {
            fail_group(&inner, &mut active, e, Cause::Companion, raised);
            continue;
        }
        match write_ops(&inner, &mut active, ops) {
            Ok(()) => inner.update_status(|s| s.durable = s.durable.max(target)),
            Err(e) => fail_group(&inner, &mut active, e, Cause::Io, raised),
        }
    }
}

/// The nice value the flusher asks for: a larger share of the CPU than
/// the async workers' (0) when both want it.
const FLUSHER_NICE: i32 = -20;

/// Raises the calling thread's scheduling priority to [`FLUSHER_NICE`], or
/// as far towards it as `RLIMIT_NICE` lets an unprivileged process (by
/// default not at all: nothing changes). The flusher uses little CPU, but
/// every push waits for it: when an fsync returns while the async workers
/// keep every core busy, the flusher at the workers' priority waits its
/// turn before it can mark the group durable and wake its pushes.
/// Measured in BENCHMARKS.md. Best effort: a log works the same without
/// it. Returns the nice value it got, if it raised it.
fn raise_priority() -> Option<i32> {
    #[cfg(target_os = "linux")]
    {
        if set_nice(FLUSHER_NICE) {
            return Some(FLUSHER_NICE);
        }
        // An unprivileged process may go down to 20 - RLIMIT_NICE.
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one `rlimit` into the struct it is
        // given, which lives for the call.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::getrlimit(libc::RLIMIT_NICE, &mut limit) };
        let floor = 20 - i32::try_from(limit.rlim_cur.min(40)).unwrap_or(0);
        if rc == 0 && floor < 0 && set_nice(floor.max(FLUSHER_NICE)) {
            return Some(floor.max(FLUSHER_NICE));
        }
        tracing::debug!("the log's flusher keeps its priority (no CAP_SYS_NICE)");
    }
    None
}

/// Runs `f` (clients' hooks, which may start threads: a store snapshot)
/// at the default priority if the flusher raised its own, so that what it
/// starts does not inherit the flusher's.
fn at_normal_priority(raised: Option<i32>, f: impl FnOnce()) {
    #[cfg(target_os = "linux")]
    if let Some(nice) = raised {
        set_nice(0);
        f();
        set_nice(nice);
        return;
    }
    let _ = raised;
    f();
}

/// Sets the calling thread's nice value; true if it was set.
#[cfg(target_os = "linux")]
fn set_nice(nice: i32) -> bool {
    // SAFETY: gettid takes no arguments and cannot fail.
    #[allow(unsafe_code)]
    let tid = unsafe { libc::gettid() };
    // SAFETY: setpriority reads its three integer arguments only; a thread
    // id is a valid `who` for PRIO_PROCESS on Linux.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) };
    rc == 0
}

/// Keeps a batch in one segment, so that it takes one fsync (fsync works
/// per file): a rotation that appends named after some of the batch's
/// records (a push's two records may sit on either side of it) is moved
/// to just after the batch, and the segment it named is renamed after the
/// batch's last record. The current segment then passes `segment_bytes`
/// by at most that batch (what was appended while the last fsync ran).
/// Done under the state's lock, before anything of the batch is written,
/// so that the ledger never says a record is in the segment after the one
/// it is written to. If every holder has already released the current
/// segment and it left the ledger, the batch is written as appends named
/// it (two fsyncs): records moved into a segment the ledger no longer
/// lists could not be read back.
fn one_segment(inner: &Inner, st: &mut State, mut ops: Vec<Op>, current: u64) -> Vec<Op> {
    let Some(first_record) = ops.iter().position(|op| matches!(op, Op::Record { .. })) else {
        return ops;
    };
    let is_rotation = |op: &Op| matches!(op, Op::Rotate(_));
    if !ops[first_record..].iter().any(is_rotation) || !st.ledger.has(current) {
        return ops;
    }
    let (moved, records): (Vec<Op>, Vec<Op>) = ops
        .split_off(first_record)
        .into_iter()
        .partition(is_rotation);
    for op in moved {
        if let Op::Rotate(name) = op {
            st.ledger.forget(name);
        }
    }
    ops.extend(records);
    // Nothing is queued after the batch yet (it was just taken): appends
    // from now on go to the segment named after it.
    let name = st.next_seq;
    let path = inner.dir.join(segment_name(name));
    st.ledger.add_segment(name, path, None);
    st.ops.push(Op::Rotate(name));
    st.active = name;
    st.active_bytes = FILE_HEADER_LEN as u64;
    ops
}

/// Why a group failed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// Its write or fsync: the file may be poisoned.
    Io,
    /// A companion record it goes with failed; nothing was written.
    Companion,
}

/// Waits until the companion records that `ops` go with (see
/// `Log::gate_on`) are durable; the first that failed fails the group.
/// Records without one wait for nothing.
fn companion_gate(inner: &Inner, ops: &[Op]) -> io::Result<()> {
    let Some(companion) = inner.companion.get() else {
        return Ok(());
    };
    for op in ops {
        if let Op::Record { after: Some(t), .. } = op {
            companion.wait_blocking(*t).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("the {} it goes with failed: {e}", companion.opts.what),
                )
            })?;
        }
    }
    Ok(())
}

/// A write or fsync failed: every record appended and not yet durable
/// fails with it, and appends are refused until [`recover`] has run.
fn fail_group(inner: &Inner, active: &mut Active, e: io::Error, cause: Cause, raised: Option<i32>) {
    // Cut off the group that did not commit, so that a restart does not
    // replay what was never acknowledged. If the cut fails, recovery still
    // leaves the file for a fresh one, and the reader ignores a last group
    // without its commit marker in any segment. A group failed for its
    // companion wrote nothing: its file is as good as before.
    let companion = cause == Cause::Companion;
    let full = !companion && is_disk_full(&e);
    if !companion {
        let cut = active.file.set_len(active.committed).is_ok();
        active.len = active.committed;
        active.poisoned = !cut || !full;
    }
    active.resumable = companion && !active.poisoned;
    let path = inner.dir.join(segment_name(active.name));
    let message = if companion {
        format!(
            "{} {}: a group commit is refused: {e}",
            inner.opts.what,
            path.display()
        )
    } else if full {
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
    if active.poisoned {
        st.ledger.poison(active.name);
    }
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
    if full {
        inner.drop_spare();
    }
    tracing::error!("{}", failure.message);
    // Clients forget the failed records before any later one can become
    // durable; hooks may take the clients' own locks.
    at_normal_priority(raised, || {
        for hook in lock(&inner.on_failure).iter() {
            hook(first - 1);
        }
    });
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
fn recover(inner: &Inner, active: &mut Active, raised: Option<i32>) {
    at_normal_priority(raised, || {
        for hook in lock(&inner.on_retry).iter() {
            hook();
        }
    });
    let name = {
        let mut st = lock(&inner.state);
        // Ranges below every segment kept name nothing on disk.
        let oldest = st.ledger.oldest().unwrap_or(0).min(active.name);
        st.failed_on_disk.retain(|&(_, last)| last >= oldest);
        st.next_seq
    };
    if !write_failed_list(inner) {
        return;
    }
    // An unpoisoned segment holding no record (the disk filled at its
    // first group), or one whose group failed for its companion and was
    // never written, is kept: starting another would only add files.
    if !active.poisoned && (active.resumable || active.len == FILE_HEADER_LEN as u64) {
        active.resumable = false;
        resume(inner, None, active.len);
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
                resumable: false,
            };
            resume(inner, Some((name, file)), len);
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
fn write_failed_list(inner: &Inner) -> bool {
    let _file = lock(&inner.failed_file);
    // Taken under the file's lock, so that a `Log::revoke` running
    // meanwhile is not written over by an older list.
    let ranges = lock(&inner.state).failed_on_disk.clone();
    match write_failed_file(inner, &ranges) {
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

/// Writes `ranges` as `FAILED`, giving the reserve up if the disk is
/// full. The caller holds `Inner::failed_file`.
pub(super) fn write_failed_file(inner: &Inner, ranges: &[(u64, u64)]) -> io::Result<()> {
    let mut listed = reader::write_failed_ranges(&*inner.io, &inner.dir, ranges);
    if matches!(&listed, Err(e) if is_disk_full(e)) && inner.release_reserve() {
        listed = reader::write_failed_ranges(&*inner.io, &inner.dir, ranges);
    }
    listed
}

/// Takes appends again, in `fresh` (name and file) if given, else in the
/// segment being written; `len` is the length of the one appends go to.
fn resume(inner: &Inner, fresh: Option<(u64, Arc<dyn LogFile>)>, len: u64) {
    let was_full = inner.full.load(Ordering::Acquire);
    let mut st = lock(&inner.state);
    let fresh = fresh.map(|(name, file)| {
        st.ledger
            .add_segment(name, inner.dir.join(segment_name(name)), Some(file));
        st.active = name;
    });
    // `len`: the segment appends go on in, as long as it is (the failed
    // group's bytes were cut off, or never written), so that it rotates
    // when it should.
    st.active_bytes = len;
    st.failed = None;
    st.retry_at = None;
    inner.full.store(false, Ordering::Release);
    inner.refusing.store(false, Ordering::Release);
    drop(st);
    inner.update_status(|s| s.failed = None);
    if fresh.is_some() {
        // The failed one, if released already, goes now (on a full disk,
        // that is the room the next appends need, so it is not kept as
        // the spare).
        inner.collect_segments();
        if was_full {
            inner.drop_spare();
        }
    }
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
                after: _,
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
                cut_old_life(active);
                let len = FILE_HEADER_LEN as u64;
                *active = Active {
                    name,
                    file,
                    len,
                    committed: len,
                    poisoned: false,
                    resumable: false,
                };
                // Once the flusher let go of the old file, which may then
                // be kept as the spare.
                inner.collect_segments();
            }
        }
    }
    if let Some(g) = group {
        commit(inner, active, &mut buf, g)?;
    }
    Ok(())
}

/// Cuts a segment the flusher leaves (at a rotation or close) to its
/// records, dropping what is left of a reused file's earlier life, so that
/// a reader finds its clean end without telling old bytes from new (see
/// `reader`). Not fsynced: after a crash either length reads the same.
fn cut_old_life(active: &Active) {
    if !active.poisoned {
        let _ = active.file.set_len(active.len);
    }
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The calling thread's nice value.
    fn nice() -> i32 {
        // SAFETY: gettid takes no arguments and cannot fail; getpriority
        // reads its integer arguments only.
        #[allow(unsafe_code)]
        unsafe {
            libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t)
        }
    }

    #[test]
    #[ignore = "needs root (CAP_SYS_NICE) to raise a priority: run via .ci/run"]
    fn the_flusher_raises_its_priority_and_runs_hooks_at_the_default() {
        std::thread::spawn(|| {
            let raised = raise_priority();
            assert_eq!(raised, Some(FLUSHER_NICE));
            assert_eq!(nice(), FLUSHER_NICE);
            // A thread a hook starts does not inherit it.
            let mut inside = None;
            at_normal_priority(raised, || {
                inside = Some(std::thread::spawn(nice).join().unwrap());
            });
            assert_eq!(inside, Some(0));
            assert_eq!(nice(), FLUSHER_NICE);
            assert_eq!(std::thread::spawn(nice).join().unwrap(), FLUSHER_NICE);
        })
        .join()
        .unwrap();
    }
}
