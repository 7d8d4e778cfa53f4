//! Tests of the engine as its clients use it: append, wait, reopen.

use super::fsutil::testing::{append_bytes, assert_group_commit, mode, names};
use super::io::{FaultyIo, Io, RealIo};
use super::record::{self, Payload, FILE_HEADER_LEN, HEADER_LEN, KIND_QUEUE, KIND_STORE};
use super::snapshot::{self, SnapshotWriter};
use super::state::segment_name;
use super::writer::{Log, LogOptions};
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub(super) fn opts(segment_bytes: u64, holders: usize) -> LogOptions {
    LogOptions {
        segment_bytes,
        holders,
        what: "test log",
    }
}

/// Opens the log; returns it, the recovered `(seq, kind, payload)` and the
/// warnings.
pub(super) fn open_with(
    io: Arc<dyn Io>,
    dir: &Path,
    o: LogOptions,
) -> (Log, Vec<(u64, u8, String)>, Vec<String>) {
    let mut got = Vec::new();
    let opened = Log::open(io, dir, o, &mut |r| {
        got.push((
            r.seq,
            r.kind,
            String::from_utf8(r.payload.to_vec()).unwrap(),
        ))
    })
    .unwrap();
    (opened.log, got, opened.warnings)
}

pub(super) fn open(dir: &Path) -> (Log, Vec<(u64, u8, String)>, Vec<String>) {
    open_with(Arc::new(RealIo), dir, opts(64 << 20, 1))
}

pub(super) fn payloads(got: &[(u64, u8, String)]) -> Vec<&str> {
    got.iter().map(|(_, _, p)| p.as_str()).collect()
}

pub(super) fn append(log: &Log, kind: u8, s: &str) -> super::Ticket {
    log.append(Payload::new(kind, 1, s.as_bytes().to_vec()))
        .unwrap()
}

pub(super) fn append_all(log: &Log, items: &[&str]) {
    for s in items {
        let t = append(log, KIND_STORE, s);
        log.wait_blocking(t).unwrap();
    }
}

pub(super) fn segments(dir: &Path) -> Vec<PathBuf> {
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with("log-") && !n.contains("corrupt"))
        .map(|n| dir.join(n))
        .collect()
}

#[test]
fn records_come_back_in_order_with_their_kinds() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (log, got, w) = open(tmp.path());
        assert!(got.is_empty() && w.is_empty());
        append_all(&log, &["a", "b"]);
        let t = append(&log, KIND_QUEUE, "q");
        log.wait_blocking(t).unwrap();
        assert_eq!(log.read(t.seq()).unwrap(), (KIND_QUEUE, 1, b"q".to_vec()));
    }
    let (log, got, w) = open(tmp.path());
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(
        got,
        vec![
            (1, KIND_STORE, "a".into()),
            (2, KIND_STORE, "b".into()),
            (3, KIND_QUEUE, "q".into())
        ]
    );
    // Numbers go on; old records stay readable.
    let t = append(&log, KIND_STORE, "c");
    assert_eq!(t.seq(), 4);
    log.wait_blocking(t).unwrap();
    assert_eq!(log.read(2).unwrap().2, b"b");
    assert_eq!(log.read(4).unwrap().2, b"c");
    assert!(log.read(9).is_err());
}

#[test]
fn one_fsync_per_record_appended_one_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, _, _) = open(tmp.path());
    for i in 0..20 {
        append_all(&log, &[&format!("r{i}")]);
    }
    assert_eq!(log.fsync_count(), 20);
}

#[test]
fn concurrent_appends_share_fsyncs() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, _, _) = open(tmp.path());
    let log = Arc::new(log);
    assert_group_commit(
        &log,
        4,
        50,
        |l, t, i| append(l, KIND_STORE, &format!("{t}:{i}")),
        |l, t| l.wait_blocking(t).unwrap(),
        Log::fsync_count,
    );
    drop(log);
    let (_, got, w) = open(tmp.path());
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(got.len(), 4 * 50 + super::fsutil::testing::BURST);
    assert!(got.windows(2).all(|w| w[1].0 == w[0].0 + 1));
}

#[test]
fn torn_group_is_dropped_and_the_file_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let (log, _, _) = open(dir);
        append_all(&log, &["r0", "r1"]);
    }
    let seg = segments(dir).pop().unwrap();
    let good = fs::metadata(&seg).unwrap().len();
    // A whole valid record with no commit marker after it: its group
    // never finished (its fsync never returned), so it never counted.
    append_bytes(&seg, &record::frame(3, KIND_STORE, 1, b"uncommitted"));
    // Then half a record.
    append_bytes(&seg, &record::frame(4, KIND_STORE, 1, b"torn")[..10]);
    let (log, got, w) = open(dir);
    assert_eq!(payloads(&got), ["r0", "r1"]);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("never acknowledged"), "{}", w[0]);
    assert_eq!(fs::metadata(&seg).unwrap().len(), good);
    // Numbers are not reused: 3 was seen.
    let t = append(&log, KIND_STORE, "next");
    assert_eq!(t.seq(), 4);
    log.wait_blocking(t).unwrap();
    drop(log);
    let (_, got, w) = open(dir);
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(payloads(&got), ["r0", "r1", "next"]);
    assert!(!names(dir).iter().any(|n| n.contains("corrupt")));
}

#[test]
fn zeros_after_the_last_commit_are_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let (log, _, _) = open(dir);
        append_all(&log, &["a"]);
    }
    append_bytes(&segments(dir)[0], &[0u8; 64]);
    let (_, got, w) = open(dir);
    assert_eq!(payloads(&got), ["a"]);
    assert_eq!(w.len(), 1);
}

#[test]
fn damage_in_the_middle_loses_only_the_damaged_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let all: Vec<String> = (0..6).map(|i| format!("rec{i}")).collect();
    {
        let (log, _, _) = open(dir);
        append_all(&log, &all.iter().map(String::as_str).collect::<Vec<_>>());
    }
    {
        // A later open, so that the damaged segment is an older one.
        let (log, _, _) = open(dir);
        append_all(&log, &["later"]);
    }
    let seg = segments(dir)[0].clone();
    let mut data = fs::read(&seg).unwrap();
    // Each group is one record (24 + 4 bytes) and a marker (24 + 8).
    let group = HEADER_LEN + 4 + HEADER_LEN + 8;
    data[FILE_HEADER_LEN + 2 * group + HEADER_LEN + 1] ^= 0x40;
    fs::write(&seg, &data).unwrap();
    let damaged_before = super::damaged_bytes();
    let (_, got, w) = open(dir);
    assert_eq!(
        payloads(&got),
        ["rec0", "rec1", "rec3", "rec4", "rec5", "later"]
    );
    // Counted for the self metric (other tests may add theirs).
    assert!(super::damaged_bytes() >= damaged_before + (HEADER_LEN + 4) as u64);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("checksum mismatch"), "{}", w[0]);
    assert!(w[0].contains(&format!("offset {}", FILE_HEADER_LEN + 2 * group)));
}

#[test]
fn damage_in_the_newest_segment_keeps_a_copy_before_truncating() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let (log, _, _) = open(dir);
        append_all(&log, &["a", "b", "c"]);
        // An unfinished group after the last commit.
    }
    let seg = segments(dir)[0].clone();
    let mut data = fs::read(&seg).unwrap();
    data[FILE_HEADER_LEN + HEADER_LEN] ^= 1; // payload of "a"
    data.extend_from_slice(&record::frame(4, KIND_STORE, 1, b"d"));
    fs::write(&seg, &data).unwrap();
    let (_, got, w) = open(dir);
    assert_eq!(payloads(&got), ["b", "c"]);
    assert_eq!(w.len(), 2, "{w:?}");
    let copies: Vec<String> = names(dir)
        .into_iter()
        .filter(|n| n.contains(".corrupt-"))
        .collect();
    assert_eq!(copies.len(), 1);
    assert_eq!(fs::read(dir.join(&copies[0])).unwrap(), data);
}

#[test]
fn bad_header_is_moved_aside_and_half_created_segment_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let (log, _, _) = open(dir);
        append_all(&log, &["a"]);
    }
    {
        let (log, _, _) = open(dir);
        append_all(&log, &["b"]);
    }
    let segs = segments(dir);
    let mut data = fs::read(&segs[0]).unwrap();
    data[0] = b'X';
    fs::write(&segs[0], &data).unwrap();
    fs::write(dir.join(segment_name(50)), b"PK").unwrap();
    let (log, got, w) = open(dir);
    assert_eq!(payloads(&got), ["b"]);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("bad magic"), "{}", w[0]);
    // Replaced by the fresh segment of this open, the same name.
    assert_eq!(
        fs::metadata(dir.join(segment_name(50))).unwrap().len(),
        FILE_HEADER_LEN as u64
    );
    assert!(names(dir).iter().any(|n| n.contains(".corrupt-")));
    // The half-created segment's name still counts.
    assert_eq!(log.next_seq(), 50);
}

#[test]
fn segments_rotate_and_go_once_every_holder_released_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (log, _, _) = open_with(Arc::new(RealIo), dir, opts(200, 2));
    for i in 0..10 {
        append_all(&log, &[&format!("record number {i:03} padded to be long")]);
    }
    let before = segments(dir).len();
    assert!(before >= 4, "{before} segments");
    assert_eq!(log.segment_count(), before);
    log.release(0, 11);
    assert_eq!(segments(dir).len(), before, "holder 1 still needs them");
    log.release(1, 6);
    let after = segments(dir).len();
    assert!(after < before);
    assert!(log.read(9).is_ok());
    log.release(1, 11);
    assert_eq!(segments(dir).len(), 1);
    drop(log);
    // Holds are the clients' to restate at every open: the newest
    // segment's records come back.
    let (_, got, _) = open_with(Arc::new(RealIo), dir, opts(200, 2));
    assert!(!got.is_empty() && got.iter().all(|r| r.0 > 6), "{got:?}");
}

/// Waits (up to 5 s) until the log takes appends again.
pub(super) fn until_recovered(log: &Log) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while log.failure().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the log did not recover"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn a_failed_fsync_fails_its_group_and_the_log_goes_on_in_a_fresh_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let io = FaultyIo::default();
    let faults = io.faults.clone();
    let hooked = Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let (log, _, _) = open_with(Arc::new(io.clone()), dir, opts(64 << 20, 1));
        let seen = hooked.clone();
        log.on_failure(move |durable| seen.lock().unwrap().push(durable));
        append_all(&log, &["ok"]);
        let epoch = log.epoch();
        faults.failing_syncs.store(true, Ordering::SeqCst);
        // The cut fails too, so the refused group stays in the file.
        faults.failing_set_len.store(true, Ordering::SeqCst);
        let t = append(&log, KIND_STORE, "refused");
        let err = log.wait_blocking(t).unwrap_err();
        assert!(err.to_string().contains("fsync failed"), "{err}");
        assert_eq!(*hooked.lock().unwrap(), [1], "told the last durable record");
        assert_eq!(log.failed_since(epoch), Some(t.seq()));
        assert_eq!(log.epoch(), epoch + 1);
        faults.failing_syncs.store(false, Ordering::SeqCst);
        faults.failing_set_len.store(false, Ordering::SeqCst);
        // No restart: the next appends go to a fresh segment.
        until_recovered(&log);
        assert!(log
            .append_in(epoch, Payload::new(KIND_STORE, 1, b"x".to_vec()))
            .is_err());
        append_all(&log, &["after"]);
        // A late wait on the refused record still fails.
        assert!(log.wait_blocking(t).is_err());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(rt.block_on(log.wait(t)).is_err());
        assert_eq!(segments(dir).len(), 2, "a fresh segment");
        log.close().unwrap();
    }
    let (_, got, w) = open_with(Arc::new(io), dir, opts(64 << 20, 1));
    assert_eq!(payloads(&got), ["ok", "after"]);
    assert!(w.iter().any(|w| w.contains("ignored 1 record")), "{w:?}");
}

#[test]
fn a_full_disk_refuses_its_group_and_appends_resume_when_room_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let io = FaultyIo::default();
    {
        let (log, _, _) = open_with(Arc::new(io.clone()), dir, opts(64 << 20, 1));
        append_all(&log, &["ok"]);
        io.faults.short_writes.store(true, Ordering::SeqCst);
        let t = append(&log, KIND_STORE, "half written");
        let err = log.wait_blocking(t).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::StorageFull, "{err}");
        // Refused while the disk is full, with the same kind of error.
        let refused = log.append(Payload::new(KIND_STORE, 1, vec![])).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::StorageFull);
        io.faults.short_writes.store(false, Ordering::SeqCst);
        until_recovered(&log);
        append_all(&log, &["after"]);
        assert!(log.wait_blocking(t).is_err());
    }
    let (_, got, _) = open(dir);
    assert_eq!(payloads(&got), ["ok", "after"]);
}

#[test]
fn a_log_keeps_a_reserve_of_real_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, _, _) = open(tmp.path());
    let reserve = tmp.path().join(super::writer::RESERVE_FILE);
    let meta = fs::metadata(&reserve).unwrap();
    assert_eq!(meta.len(), super::writer::RESERVE_BYTES);
    use std::os::unix::fs::MetadataExt;
    assert!(
        meta.blocks() * 512 >= super::writer::RESERVE_BYTES,
        "not sparse"
    );
    drop(log);
}

#[test]
fn oversized_payload_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, _, _) = open(tmp.path());
    let big = vec![0u8; record::MAX_PAYLOAD + 1];
    let err = log.append(Payload::new(KIND_STORE, 1, big)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    append_all(&log, &["still fine"]);
}

#[test]
fn files_are_private_and_the_directory_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a").join("b");
    let (log, _, _) = open(&dir);
    append_all(&log, &["x"]);
    let err = Log::open(Arc::new(RealIo), &dir, opts(1 << 20, 1), &mut |_| {}).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    let mut w = SnapshotWriter::new(Arc::new(RealIo), &dir, 2, 7);
    w.write_record(KIND_STORE, 1, b"s").unwrap();
    w.finish().unwrap();
    assert_eq!(mode(&dir), 0o700);
    for name in names(&dir) {
        assert_eq!(mode(&dir.join(&name)), 0o600, "{name}");
    }
    log.close().unwrap();
    let (_log, _, _) = open(&dir);
}

#[test]
fn snapshots_round_trip_and_fall_back_when_damaged() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::create_dir_all(dir).unwrap();
    let io: Arc<dyn Io> = Arc::new(RealIo);
    let (s, w) = snapshot::load_newest(&*io, dir, "t").unwrap();
    assert!(s.is_none() && w.is_empty());

    let mut sw = SnapshotWriter::new(io.clone(), dir, 5, 7);
    sw.write_record(KIND_STORE, 1, b"five-a").unwrap();
    sw.write_record(KIND_STORE, 2, b"five-b").unwrap();
    sw.finish().unwrap();
    // An empty snapshot is valid, and replaces the older one.
    SnapshotWriter::new(io.clone(), dir, 9, 7).finish().unwrap();
    assert_eq!(names(dir), [snapshot::snapshot_name(9)]);
    let (s, _) = snapshot::load_newest(&*io, dir, "t").unwrap();
    let s = s.unwrap();
    assert_eq!((s.cover, s.log_id, s.records.len()), (9, 7, 0));

    // Keep a copy of 9, write 12, then damage 12's end: 9 is used.
    let keep = fs::read(dir.join(snapshot::snapshot_name(9))).unwrap();
    let mut sw = SnapshotWriter::new(io.clone(), dir, 12, 7);
    sw.write_record(KIND_STORE, 1, b"twelve").unwrap();
    sw.finish().unwrap();
    fs::write(dir.join(snapshot::snapshot_name(9)), keep).unwrap();
    let p12 = dir.join(snapshot::snapshot_name(12));
    let len = fs::metadata(&p12).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&p12)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    // An unfinished one is removed.
    drop(SnapshotWriter::new(io.clone(), dir, 20, 7));
    fs::write(
        dir.join(format!("{}.tmp", snapshot::snapshot_name(30))),
        b"x",
    )
    .unwrap();
    let (s, w) = snapshot::load_newest(&*io, dir, "t").unwrap();
    assert_eq!(s.unwrap().cover, 9);
    assert_eq!(w.len(), 1);
    assert!(w[0].contains("truncated record"), "{}", w[0]);
    assert!(!p12.exists());
    assert!(names(dir).iter().all(|n| !n.ends_with(".tmp")));
}

#[test]
fn records_are_read_back_from_rotated_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, _, _) = open_with(Arc::new(RealIo), tmp.path(), opts(100, 1));
    // One at a time: a batch stays in one segment (see
    // `a_group_that_straddles_a_rotation_still_takes_one_fsync`).
    let tickets: Vec<_> = (0..8)
        .map(|i| {
            let t = append(&log, KIND_QUEUE, &format!("payload {i} with some length"));
            log.wait_blocking(t).unwrap();
            t
        })
        .collect();
    for (i, t) in tickets.iter().enumerate() {
        let (_, _, p) = log.read(t.seq()).unwrap();
        assert_eq!(p, format!("payload {i} with some length").as_bytes());
    }
    assert!(log.segment_count() >= 4);
}

#[test]
fn a_log_keeps_its_id() {
    let tmp = tempfile::tempdir().unwrap();
    let id = {
        let (log, _, _) = open(tmp.path());
        log.id()
    };
    assert_ne!(id, 0);
    let (log, _, _) = open(tmp.path());
    assert_eq!(log.id(), id);
    assert_eq!(super::read_log_id(&RealIo, tmp.path()), Some(id));
    let other = tempfile::tempdir().unwrap();
    let (log2, _, _) = open(other.path());
    assert_ne!(log2.id(), log.id());
}

#[test]
fn a_commit_group_shares_one_fsync() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, _, _) = open(tmp.path());
    for i in 0..10 {
        let g = log.group();
        let a = append(&log, KIND_STORE, &format!("store {i}"));
        // Give the flusher every chance to take the first record alone.
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = append(&log, KIND_QUEUE, &format!("queue {i}"));
        drop(g);
        log.wait_blocking(a.max(b)).unwrap();
        log.wait_blocking(a).unwrap();
    }
    assert_eq!(log.fsync_count(), 10);
    assert!(super::total_fsyncs() >= 10);
}

#[test]
fn overlapping_commit_groups_do_not_hold_commits_back() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, _, _) = open(tmp.path());
    let log = Arc::new(log);
    // Two threads keep a group open at every moment, one taking over
    // before the other lets go; an append waited for must still commit.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let holders: Vec<_> = (0..2)
        .map(|i| {
            let (log, stop) = (log.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let g = log.group();
                    std::thread::sleep(std::time::Duration::from_micros(300 + 100 * i));
                    drop(g);
                }
            })
        })
        .collect();
    for i in 0..20 {
        let t = append(&log, KIND_STORE, &format!("r{i}"));
        log.wait_blocking(t).unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    for h in holders {
        h.join().unwrap();
    }
}

#[test]
fn a_damaged_commit_marker_loses_nothing_when_later_groups_committed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let (log, _, _) = open(dir);
        append_all(&log, &["a", "b", "c"]);
    }
    let seg = segments(dir)[0].clone();
    let mut data = fs::read(&seg).unwrap();
    // The first group's marker follows its 25-byte record.
    let marker = FILE_HEADER_LEN + HEADER_LEN + 1;
    data[marker + 10] ^= 1;
    fs::write(&seg, &data).unwrap();
    let (_, got, w) = open(dir);
    // "b"'s marker commits "a" too; only the damaged bytes are reported.
    assert_eq!(payloads(&got), ["a", "b", "c"]);
    assert_eq!(w.len(), 1, "{w:?}");
}

/// A failed group cut off its file leaves its sequence numbers only in
/// `FAILED`; a later open must not hand them out again, or the records
/// taking them would be ignored as failed at the open after.
#[test]
fn sequence_numbers_of_failed_groups_are_never_reused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let io = FaultyIo::default();
    {
        let (log, _, _) = open_with(Arc::new(io.clone()), dir, opts(64 << 20, 1));
        io.faults.short_writes.store(true, Ordering::SeqCst);
        let t = append(&log, KIND_STORE, "refused");
        assert!(log.wait_blocking(t).is_err());
        io.faults.short_writes.store(false, Ordering::SeqCst);
        until_recovered(&log);
        log.close().unwrap();
    }
    {
        let (log, got, _) = open(dir);
        assert!(got.is_empty());
        let t = append(&log, KIND_STORE, "acknowledged");
        assert!(t.seq() > 1, "seq {} reused", t.seq());
        log.wait_blocking(t).unwrap();
    }
    let (_, got, w) = open(dir);
    assert_eq!(payloads(&got), ["acknowledged"], "{w:?}");
}

/// A log gated on a companion: a record goes only after its companion
/// record is durable, and fails, with nothing written, if that one
/// failed. The log then goes on in the same segment, still knowing how
/// full it is, so that it rotates when it should.
#[test]
fn a_gated_record_fails_with_its_companion_and_the_segment_keeps_its_size() {
    let tmp = tempfile::tempdir().unwrap();
    let faults = FaultyIo::default();
    let (queue, _, _) = open_with(
        Arc::new(faults.clone()),
        &tmp.path().join("q"),
        opts(64 << 20, 1),
    );
    let queue = Arc::new(queue);
    let dir = tmp.path().join("j");
    let (journal, _, _) = open_with(Arc::new(RealIo), &dir, opts(4096, 1));
    journal.gate_on(queue.clone());
    let gated = |s: &str, after| {
        journal.append_after(
            journal.epoch(),
            Payload::new(KIND_STORE, 1, s.as_bytes().to_vec()),
            Some(after),
        )
    };
    let kb = "x".repeat(1000);
    // Three records of 1 KB, each after a durable companion record.
    for _ in 0..3 {
        let after = append(&queue, KIND_QUEUE, "q");
        journal.wait_blocking(gated(&kb, after).unwrap()).unwrap();
    }
    assert_eq!(segments(&dir).len(), 1);
    // The companion's write fails: so does the record gated on it.
    faults.faults.failing_writes.store(true, Ordering::SeqCst);
    let after = append(&queue, KIND_QUEUE, "q");
    let refused = gated("refused", after).unwrap();
    assert!(journal.wait_blocking(refused).is_err());
    faults.faults.failing_writes.store(false, Ordering::SeqCst);
    until_recovered(&queue);
    until_recovered(&journal);
    assert_eq!(
        segments(&dir).len(),
        1,
        "nothing was written: no fresh segment"
    );
    // Two more records of 1 KB pass 4 KB: the segment rotates.
    for _ in 0..2 {
        let after = append(&queue, KIND_QUEUE, "q");
        journal.wait_blocking(gated(&kb, after).unwrap()).unwrap();
    }
    assert_eq!(segments(&dir).len(), 2, "the segment kept its size");
    drop(journal);
    let (_, got, _) = open_with(Arc::new(RealIo), &dir, opts(4096, 1));
    assert_eq!(got.len(), 5);
    assert!(!payloads(&got).contains(&"refused"));
}

#[test]
fn a_group_that_straddles_a_rotation_still_takes_one_fsync() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, _, _) = open_with(Arc::new(RealIo), tmp.path(), opts(4096, 1));
    let before = log.fsync_count();
    let record = "x".repeat(700);
    for _ in 0..40 {
        let group = log.group();
        let a = append(&log, KIND_STORE, &record);
        let b = append(&log, KIND_QUEUE, &record);
        drop(group);
        log.wait_blocking(a).unwrap();
        log.wait_blocking(b).unwrap();
    }
    assert!(
        segments(tmp.path()).len() > 5,
        "the pushes crossed rotations"
    );
    assert_eq!(log.fsync_count() - before, 40, "one fsync per group");
    // Every record is where the ledger says, now and after a reopen.
    for seq in 1..=80 {
        assert_eq!(log.read(seq).unwrap().2.len(), 700, "record {seq}");
    }
    drop(log);
    let (_, got, warnings) = open_with(Arc::new(RealIo), tmp.path(), opts(4096, 1));
    assert!(warnings.is_empty(), "{warnings:?}");
    let seqs: Vec<u64> = got.iter().map(|r| r.0).collect();
    assert_eq!(seqs, (1..=80).collect::<Vec<_>>());
}

#[test]
fn a_failed_batch_that_straddles_a_rotation_fails_whole_and_the_log_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let io = FaultyIo::default();
    let faults = io.faults.clone();
    let record = "x".repeat(700);
    {
        let (log, _, _) = open_with(Arc::new(io.clone()), dir, opts(4096, 1));
        // Four frames of 724 bytes after the 20-byte header: the next two
        // records fall on either side of a rotation.
        let kept = ["a", "b", "c", "d"].map(|p| format!("{p}{record}"));
        append_all(&log, &kept.iter().map(String::as_str).collect::<Vec<_>>());
        let epoch = log.epoch();
        faults.failing_syncs.store(true, Ordering::SeqCst);
        let group = log.group();
        let a = append(&log, KIND_STORE, &record);
        let b = append(&log, KIND_QUEUE, &record);
        drop(group);
        assert!(log.wait_blocking(a).is_err());
        assert!(log.wait_blocking(b).is_err());
        assert_eq!(log.failed_since(epoch), Some(a.seq()));
        faults.failing_syncs.store(false, Ordering::SeqCst);
        until_recovered(&log);
        append_all(&log, &["after"]);
        log.close().unwrap();
    }
    let (_, got, _) = open_with(Arc::new(io), dir, opts(4096, 1));
    let firsts: Vec<&str> = payloads(&got).iter().map(|p| &p[..1]).collect();
    assert_eq!(firsts, ["a", "b", "c", "d", "a"]);
    assert_eq!(payloads(&got).last(), Some(&"after"));
}
