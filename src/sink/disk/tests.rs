//! The disk queue's tests: sinks, cursors, budgets, damage and failures.

use super::*;
use crate::durable::fsutil::testing::{append_bytes, assert_group_commit, mode, names, BURST};
use crate::durable::record::{FILE_HEADER_LEN, HEADER_LEN};
use crate::durable::{FaultyIo, Io};
use crate::model::family::MetricType;
use crate::model::point::{Field, SeriesSuffix};
use std::fs;
use std::sync::atomic::Ordering;

/// A commit marker's bytes: every group ends with one.
const MARKER: usize = HEADER_LEN + 8;

const BIG: u64 = 1 << 30;

fn spec(name: &str, max_disk_bytes: u64, drop_oldest: bool) -> SinkSpec {
    SinkSpec {
        name: name.into(),
        max_disk_bytes,
        drop_oldest,
    }
}

fn two_sinks() -> Vec<SinkSpec> {
    vec![spec("a", BIG, false), spec("b", BIG, false)]
}

fn open(dir: &Path, sinks: &[SinkSpec], segment_bytes: u64) -> Opened {
    DiskQueue::open(dir, sinks, segment_bytes).expect("open disk queue")
}

/// Push `push`, `n` points; point `i` has value `push * 1000 + i`.
pub(super) fn push(push: usize, n: usize) -> Vec<Point> {
    (0..n)
        .map(|i| Point {
            measurement: "m".into(),
            tags: vec![("push".into(), push.to_string().into())],
            fields: vec![Field {
                key: "f".into(),
                value: (push * 1000 + i) as f64,
                suffix: SeriesSuffix::None,
            }],
            time_ns: i as i64,
            family: Arc::from("fam"),
            kind: MetricType::Gauge,
            extra: None,
        })
        .collect()
}

/// The bytes a push of `points` takes on disk: its record.
fn frame_len(points: &[Point]) -> usize {
    HEADER_LEN + record_writer::encode(points, 0).len()
}

fn values(points: &[Point]) -> Vec<u64> {
    points.iter().map(|p| p.fields[0].value as u64).collect()
}

/// The values of pushes `pushes`, `n` points each.
fn expect(pushes: impl IntoIterator<Item = usize>, n: usize) -> Vec<u64> {
    pushes
        .into_iter()
        .flat_map(|p| (0..n).map(move |i| (p * 1000 + i) as u64))
        .collect()
}

fn append_wait(q: &DiskQueue, points: &[Point]) -> Vec<u64> {
    let (t, dropped) = q.append(points).unwrap();
    q.wait_blocking(t).unwrap();
    dropped
}

/// Takes `n` points for `sink` in batches of `max`, acking each if `ack`.
async fn take(q: &DiskQueue, sink: usize, n: u64, max: usize, ack: bool) -> Vec<u64> {
    let mut got = Vec::new();
    while (got.len() as u64) < n {
        let b = q
            .next_batch(sink, max, Duration::ZERO, Form::Points)
            .await
            .expect("a batch");
        assert!(b.points().len() <= max);
        got.extend(values(b.points()));
        if ack {
            q.ack(sink, &b).unwrap();
        }
    }
    assert_eq!(got.len() as u64, n);
    got
}

/// Everything left for every sink, after closing.
async fn drain(q: &DiskQueue, sinks: usize) -> Vec<Vec<u64>> {
    q.close();
    let mut out = Vec::new();
    for s in 0..sinks {
        let mut got = Vec::new();
        while let Some(b) = q
            .next_batch(s, 7, Duration::from_secs(60), Form::Points)
            .await
        {
            got.extend(values(b.points()));
            q.ack(s, &b).unwrap();
        }
        out.push(got);
    }
    out
}

fn segment_name(seq: u64) -> String {
    format!("log-{seq:020}")
}

fn segments(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with("log-") && !n.contains(".corrupt-"))
        .collect()
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(segment_name(seq))
}

#[test]
fn is_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<DiskQueue>();
    check::<DiskBatch>();
}

#[tokio::test]
async fn append_wait_reopen_redelivers_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("q");
    let sinks = two_sinks();
    {
        let o = open(&dir, &sinks, DEFAULT_SEGMENT_BYTES);
        assert!(o.warnings.is_empty(), "{:?}", o.warnings);
        assert_eq!(o.redelivered_points, [0, 0]);
        for p in 0..20 {
            let (t, dropped) = o.queue.append(&push(p, 3)).unwrap();
            assert_eq!(dropped, [0, 0]);
            o.queue.wait(t).await.unwrap();
        }
        assert_eq!(o.queue.depth(0).0, 60);
        // Delivered but never acknowledged: comes back too.
        let b = o
            .queue
            .next_batch(0, 10, Duration::ZERO, Form::Points)
            .await
            .unwrap();
        assert_eq!(values(b.points()), expect(0..4, 3)[..10]);
    }
    let o = open(&dir, &sinks, DEFAULT_SEGMENT_BYTES);
    assert!(o.warnings.is_empty(), "{:?}", o.warnings);
    assert_eq!(o.redelivered_points, [60, 60]);
    assert_eq!(o.queue.depth(1).0, 60);
    let got = drain(&o.queue, 2).await;
    assert_eq!(got[0], expect(0..20, 3));
    assert_eq!(got[1], expect(0..20, 3));
}

#[tokio::test]
async fn sinks_resume_from_their_own_cursors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sinks = two_sinks();
    {
        let o = open(dir, &sinks, DEFAULT_SEGMENT_BYTES);
        for p in 0..10 {
            append_wait(&o.queue, &push(p, 4));
        }
        // Sink a: 3 whole pushes and 2 points of the fourth.
        assert_eq!(take(&o.queue, 0, 14, 7, true).await, expect(0..10, 4)[..14]);
        // Sink b: 5 pushes acknowledged, one more taken but not.
        assert_eq!(take(&o.queue, 1, 20, 4, true).await, expect(0..5, 4));
        take(&o.queue, 1, 4, 4, false).await;
        assert_eq!(o.queue.depth(0).0, 26);
        assert_eq!(o.queue.depth(1).0, 20);
    }
    let o = open(dir, &sinks, DEFAULT_SEGMENT_BYTES);
    assert_eq!(o.redelivered_points, [26, 20]);
    let got = drain(&o.queue, 2).await;
    assert_eq!(got[0], expect(0..10, 4)[14..]);
    assert_eq!(got[1], expect(5..10, 4));
}

#[tokio::test]
async fn acks_persist_across_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sinks = vec![spec("only", BIG, false)];
    {
        let o = open(dir, &sinks, DEFAULT_SEGMENT_BYTES);
        for p in 0..5 {
            append_wait(&o.queue, &push(p, 2));
        }
        take(&o.queue, 0, 10, 3, true).await;
        assert_eq!(o.queue.depth(0), (0, 0));
        assert_eq!(o.queue.oldest_age(0), None);
    }
    {
        let o = open(dir, &sinks, DEFAULT_SEGMENT_BYTES);
        assert_eq!(o.redelivered_points, [0]);
        assert!(o.warnings.is_empty());
        // Every segment but the new active one is gone.
        assert_eq!(segments(dir).len(), 1);
        append_wait(&o.queue, &push(7, 2));
        let got = drain(&o.queue, 1).await;
        assert_eq!(got[0], expect([7], 2));
    }
    let o = open(dir, &sinks, DEFAULT_SEGMENT_BYTES);
    assert_eq!(o.redelivered_points, [0]);
}

#[tokio::test]
async fn full_block_sink_refuses_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let one = frame_len(&push(0, 5)) as u64;
    let sinks = vec![spec("roomy", BIG, false), spec("small", one * 2, false)];
    {
        let o = open(dir, &sinks, DEFAULT_SEGMENT_BYTES);
        let q = &o.queue;
        append_wait(q, &push(0, 5));
        append_wait(q, &push(1, 5));
        assert_eq!(q.depth(1), (10, one * 2));
        let size = fs::metadata(segment_path(dir, 1)).unwrap().len();
        match q.append(&push(2, 5)) {
            Err(Refused::Full { sink: 1 }) => {}
            other => panic!("{other:?}"),
        }
        // Nobody got it, and nothing was written.
        assert_eq!(q.depth(0), (10, one * 2));
        assert_eq!(q.depth(1), (10, one * 2));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(fs::metadata(segment_path(dir, 1)).unwrap().len(), size);
        // Once the small sink catches up there is room again.
        take(q, 1, 5, 5, true).await;
        append_wait(q, &push(3, 5));
    }
    let o = open(dir, &sinks, DEFAULT_SEGMENT_BYTES);
    assert_eq!(o.redelivered_points, [15, 10]);
    let got = drain(&o.queue, 2).await;
    assert_eq!(got[0], expect([0, 1, 3], 5));
    assert_eq!(got[1], expect([1, 3], 5));
}

#[tokio::test]
async fn an_empty_sink_takes_an_oversize_push() {
    let tmp = tempfile::tempdir().unwrap();
    let o = open(tmp.path(), &[spec("tiny", 1, false)], 1 << 20);
    append_wait(&o.queue, &push(0, 100));
    assert!(matches!(
        o.queue.append(&push(1, 1)),
        Err(Refused::Full { sink: 0 })
    ));
}

#[tokio::test]
async fn drop_oldest_drops_and_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let one = frame_len(&push(0, 2)) as u64;
    let sinks = vec![spec("keep", BIG, false), spec("lossy", one * 2, true)];
    {
        let o = open(dir, &sinks, DEFAULT_SEGMENT_BYTES);
        let q = &o.queue;
        assert_eq!(append_wait(q, &push(0, 2)), [0, 0]);
        assert_eq!(append_wait(q, &push(1, 2)), [0, 0]);
        // Push 0 makes room for push 2.
        assert_eq!(append_wait(q, &push(2, 2)), [0, 2]);
        assert_eq!(q.depth(1), (4, one * 2));
        // Part of push 1 in flight: it stays (and its record keeps
        // taking space); the rest of push 1 and push 2 are dropped.
        let b = q
            .next_batch(1, 1, Duration::ZERO, Form::Points)
            .await
            .unwrap();
        assert_eq!(values(b.points()), expect([1], 2)[..1]);
        assert_eq!(append_wait(q, &push(3, 2)), [0, 3]);
        assert_eq!(q.depth(1), (3, one * 2));
        q.ack(1, &b).unwrap();
        // Acking the batch passes what was dropped after it.
        assert_eq!(q.depth(1).0, 2);
        assert_eq!(take(q, 1, 2, 10, true).await, expect([3], 2));
        assert_eq!(q.depth(0).0, 8);
    }
    let o = open(dir, &sinks, DEFAULT_SEGMENT_BYTES);
    assert_eq!(o.redelivered_points, [8, 0]);
}

#[tokio::test]
async fn dropped_points_are_persisted_by_the_cursor_syncer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sinks = vec![spec("down", 1, true)];
    {
        let o = open(dir, &sinks, 1);
        for p in 0..5 {
            append_wait(&o.queue, &push(p, 1));
        }
        // Each push dropped the one before: the cursor moved without an
        // ack, and the segments behind it go once it is persisted.
        std::thread::sleep(CURSOR_SYNC_INTERVAL + Duration::from_millis(200));
        append_wait(&o.queue, &push(5, 1));
        std::thread::sleep(Duration::from_millis(100));
        assert!(segments(dir).len() <= 3, "{:?}", segments(dir));
    }
    let o = open(dir, &sinks, 1);
    assert_eq!(o.redelivered_points, [1]);
    assert_eq!(drain(&o.queue, 1).await[0], expect([5], 1));
}

#[tokio::test]
async fn torn_tail_is_truncated_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sinks = two_sinks();
    {
        let o = open(dir, &sinks, DEFAULT_SEGMENT_BYTES);
        for p in 0..4 {
            append_wait(&o.queue, &push(p, 2));
        }
    }
    let path = segment_path(dir, 1);
    let good_len = fs::metadata(&path).unwrap().len();
    // The start of a frame: a header and part of its payload.
    let mut torn = 200u32.to_le_bytes().to_vec();
    torn.extend_from_slice(&[7u8; 40]);
    append_bytes(&path, &torn);
    {
        let o = open(dir, &sinks, DEFAULT_SEGMENT_BYTES);
        assert_eq!(o.warnings.len(), 1, "{:?}", o.warnings);
        let w = &o.warnings[0];
        assert!(w.contains(&segment_name(1)), "{w}");
        assert!(
            w.contains("dropped 44 bytes") && w.contains("never acknowledged"),
            "{w}"
        );
        assert_eq!(fs::metadata(&path).unwrap().len(), good_len);
        assert_eq!(o.redelivered_points, [8, 8]);
        append_wait(&o.queue, &push(4, 2));
    }
    let o = open(dir, &sinks, DEFAULT_SEGMENT_BYTES);
    assert!(o.warnings.is_empty(), "{:?}", o.warnings);
    let got = drain(&o.queue, 2).await;
    assert_eq!(got[0], expect(0..5, 2));
    assert_eq!(got[1], expect(0..5, 2));
}

#[tokio::test]
async fn corrupt_middle_segment_is_skipped_and_later_ones_delivered() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sinks = two_sinks();
    {
        // One record per segment.
        let o = open(dir, &sinks, 1);
        for p in 0..5 {
            append_wait(&o.queue, &push(p, 3));
        }
    }
    assert_eq!(segments(dir).len(), 5);
    // Damage the only record of segment 3 (push 2).
    let path = segment_path(dir, 3);
    let mut data = fs::read(&path).unwrap();
    let at = FILE_HEADER_LEN + HEADER_LEN + 10;
    data[at] ^= 0x40;
    fs::write(&path, &data).unwrap();

    let o = open(dir, &sinks, 1);
    assert_eq!(o.warnings.len(), 1, "{:?}", o.warnings);
    let w = &o.warnings[0];
    assert!(w.contains(&segment_name(3)), "{w}");
    assert!(w.contains("checksum mismatch"), "{w}");
    assert!(w.contains("lost"), "{w}");
    assert_eq!(o.redelivered_points, [12, 12]);
    let got = drain(&o.queue, 2).await;
    assert_eq!(got[0], expect([0, 1, 3, 4], 3));
    assert_eq!(got[1], got[0]);
    drop(o);
    // Every sink has passed it now: gone, and no more warnings.
    let o = open(dir, &sinks, 1);
    assert!(o.warnings.is_empty(), "{:?}", o.warnings);
    assert!(!path.exists());
}

#[tokio::test]
async fn damaged_records_inside_a_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sinks = two_sinks();
    let frame = frame_len(&push(0, 2));
    {
        // Three records per segment: 1..=3, 4..=6, 7..=9 (commit
        // markers do not count against the segment size).
        let o = open(dir, &sinks, (FILE_HEADER_LEN + 3 * frame) as u64);
        for p in 0..9 {
            append_wait(&o.queue, &push(p, 2));
        }
    }
    assert_eq!(segments(dir).len(), 3);
    // Segment 1: a payload byte of its second record (length intact).
    let p1 = segment_path(dir, 1);
    let mut data = fs::read(&p1).unwrap();
    data[FILE_HEADER_LEN + frame + MARKER + HEADER_LEN + 3] ^= 1;
    fs::write(&p1, &data).unwrap();
    // Segment 4: the length of its second record. The reader resyncs
    // on the next record header: only that record is lost.
    let p4 = segment_path(dir, 4);
    let mut data = fs::read(&p4).unwrap();
    data[FILE_HEADER_LEN + frame + MARKER + 5] ^= 0x10;
    fs::write(&p4, &data).unwrap();

    let o = open(dir, &sinks, 1 << 20);
    assert_eq!(o.warnings.len(), 2, "{:?}", o.warnings);
    assert!(o.warnings[0].contains(&segment_name(1)));
    assert!(o.warnings[0].contains("checksum mismatch"));
    assert!(o.warnings[1].contains(&segment_name(4)));
    assert!(
        o.warnings[1].contains("record length out of range")
            || o.warnings[1].contains("truncated record"),
        "{}",
        o.warnings[1]
    );
    let got = drain(&o.queue, 2).await;
    assert_eq!(got[0], expect([0, 2, 3, 5, 6, 7, 8], 2));
}

#[tokio::test]
async fn bad_header_segment_is_moved_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sinks = two_sinks();
    {
        let o = open(dir, &sinks, 1);
        for p in 0..3 {
            append_wait(&o.queue, &push(p, 1));
        }
    }
    fs::write(segment_path(dir, 2), b"garbage!garbage!").unwrap();
    let o = open(dir, &sinks, 1);
    assert_eq!(o.warnings.len(), 1, "{:?}", o.warnings);
    assert!(
        o.warnings[0].contains("unreadable") && o.warnings[0].contains("lost"),
        "{}",
        o.warnings[0]
    );
    assert!(names(dir)
        .iter()
        .any(|n| n.starts_with(&format!("{}.corrupt-", segment_name(2)))));
    assert_eq!(drain(&o.queue, 2).await[0], expect([0, 2], 1));
}

#[tokio::test]
async fn segments_are_deleted_once_every_sink_passed_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sinks = two_sinks();
    let o = open(dir, &sinks, 1);
    let q = &o.queue;
    for p in 0..5 {
        append_wait(q, &push(p, 2));
    }
    assert_eq!(segments(dir).len(), 5);
    take(q, 0, 10, 4, true).await;
    // Sink b holds them all back.
    assert_eq!(segments(dir).len(), 5);
    take(q, 1, 4, 4, true).await;
    assert_eq!(
        segments(dir),
        [segment_name(3), segment_name(4), segment_name(5)]
    );
    take(q, 1, 6, 4, true).await;
    // The last one is still being appended to.
    assert_eq!(segments(dir), [segment_name(5)]);
    // Released already: it goes as soon as the log moves on from it.
    append_wait(q, &push(5, 2));
    assert_eq!(segments(dir), [segment_name(6)]);
    take(q, 0, 2, 4, true).await;
    take(q, 1, 2, 4, true).await;
    assert_eq!(segments(dir), [segment_name(6)]);
}

#[test]
fn concurrent_appends_share_fsyncs() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 100;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sinks = two_sinks();
    {
        let o = open(dir, &sinks, 64 << 10);
        let q = Arc::new(o.queue);
        assert_group_commit(
            &q,
            THREADS,
            PER_THREAD,
            |q, t, i| {
                let points = if t == THREADS {
                    push(900 + i, 1)
                } else {
                    push(t * 100 + i, 2)
                };
                q.append(&points).unwrap().0
            },
            |q, ticket| q.wait_blocking(ticket).unwrap(),
            DiskQueue::fsync_count,
        );
    }
    let o = open(dir, &sinks, 64 << 10);
    assert!(o.warnings.is_empty(), "{:?}", o.warnings);
    let total = (THREADS * PER_THREAD * 2 + BURST) as u64;
    assert_eq!(o.redelivered_points, [total, total]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let got = rt.block_on(drain(&o.queue, 2));
    for sink in got {
        assert_eq!(sink.len() as u64, total);
        // Each thread's pushes in its own order, each push whole.
        let mut next = [0usize; THREADS];
        for pair in sink[..THREADS * PER_THREAD * 2].chunks(2) {
            let push = pair[0] as usize / 1000;
            assert_eq!(pair[1], pair[0] + 1);
            assert_eq!(push % 100, next[push / 100]);
            next[push / 100] += 1;
        }
        assert_eq!(next, [PER_THREAD; THREADS]);
    }
}

/// A sink the queue knew (listed in `SINKS`) whose cursor file is gone
/// starts again from the oldest record kept, counted as redelivered and
/// logged; a sink never seen before starts with the next push.
#[tokio::test]
async fn a_deleted_cursor_restarts_from_the_oldest_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sinks = two_sinks();
    {
        let o = open(dir, &sinks, DEFAULT_SEGMENT_BYTES);
        for p in 0..3 {
            append_wait(&o.queue, &push(p, 1));
        }
        take(&o.queue, 0, 2, 2, true).await;
        take(&o.queue, 1, 3, 10, true).await;
    }
    fs::remove_file(dir.join("cursor-b")).unwrap();
    let mut with_new = sinks.clone();
    with_new.push(spec("c", BIG, false));
    let o = open(dir, &with_new, DEFAULT_SEGMENT_BYTES);
    assert_eq!(o.warnings.len(), 1, "{:?}", o.warnings);
    assert!(
        o.warnings[0].contains("cursor-b") && o.warnings[0].contains("missing"),
        "{}",
        o.warnings[0]
    );
    assert_eq!(o.redelivered_points, [1, 3, 0]);
    let got = drain(&o.queue, 3).await;
    assert_eq!(got[1], expect(0..3, 1), "b gets everything kept again");
    assert!(got[2].is_empty(), "c is new: {:?}", got[2]);
}

#[tokio::test]
async fn files_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a").join("b");
    {
        let o = open(&dir, &two_sinks(), 1);
        for p in 0..3 {
            append_wait(&o.queue, &push(p, 1));
        }
        take(&o.queue, 0, 1, 1, true).await;
    }
    assert_eq!(mode(&dir), 0o700);
    let all = names(&dir);
    assert!(all.contains(&"cursor-a".to_string()) && all.contains(&"cursor-b".to_string()));
    assert!(all.len() >= 5, "{all:?}");
    for name in all {
        assert_eq!(mode(&dir.join(&name)), 0o600, "{name}");
    }
}

#[tokio::test]
async fn large_push_is_split_across_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let o = open(tmp.path(), &two_sinks(), DEFAULT_SEGMENT_BYTES);
    let q = &o.queue;
    append_wait(q, &push(0, 10));
    append_wait(q, &push(1, 1));
    let b = q
        .next_batch(0, 4, Duration::ZERO, Form::Points)
        .await
        .unwrap();
    assert_eq!(values(b.points()), expect([0], 10)[..4]);
    q.ack(0, &b).unwrap();
    assert_eq!(q.depth(0).0, 7);
    let b = q
        .next_batch(0, 4, Duration::ZERO, Form::Points)
        .await
        .unwrap();
    q.ack(0, &b).unwrap();
    let b = q
        .next_batch(0, 4, Duration::ZERO, Form::Points)
        .await
        .unwrap();
    let mut want = expect([0], 10)[8..].to_vec();
    want.extend(expect([1], 1));
    assert_eq!(values(b.points()), want);
    q.ack(0, &b).unwrap();
    assert_eq!(q.depth(0), (0, 0));
    assert_eq!(q.depth(1).0, 11);
}

#[test]
fn cancelled_next_batch_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let o = open(dir, &two_sinks(), DEFAULT_SEGMENT_BYTES);
        append_wait(&o.queue, &push(0, 3));
    }
    // After a reopen nothing is cached: the batch is read from disk on
    // the blocking pool, whose only thread is kept busy, so the first
    // poll is pending for sure.
    let o = open(dir, &two_sinks(), DEFAULT_SEGMENT_BYTES);
    let q = &o.queue;
    let rt = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (release, busy) = std::sync::mpsc::channel::<()>();
        let occupant = tokio::task::spawn_blocking(move || busy.recv());
        let mut fut = Box::pin(q.next_batch(0, 10, Duration::ZERO, Form::Points));
        let polled = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(std::future::Future::poll(fut.as_mut(), cx))
        })
        .await;
        assert!(polled.is_pending());
        drop(fut);
        release.send(()).unwrap();
        occupant.await.unwrap().unwrap();
        assert_eq!(take(q, 0, 3, 10, true).await, expect([0], 3));
    });
}

#[tokio::test]
async fn batches_wait_for_the_flush_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let o = open(tmp.path(), &two_sinks(), DEFAULT_SEGMENT_BYTES);
    let q = Arc::new(o.queue);
    append_wait(&q, &push(0, 2));
    let started = std::time::Instant::now();
    let b = q
        .next_batch(0, 100, Duration::from_millis(50), Form::Points)
        .await
        .unwrap();
    assert_eq!(b.points().len(), 2);
    assert!(started.elapsed() >= Duration::from_millis(45));
    q.ack(0, &b).unwrap();
    // A full batch goes at once.
    append_wait(&q, &push(1, 5));
    let b = q
        .next_batch(0, 5, Duration::from_secs(60), Form::Points)
        .await
        .unwrap();
    assert_eq!(b.points().len(), 5);
    q.ack(0, &b).unwrap();
    // A worker waiting on an empty queue wakes for a push.
    let waiter = {
        let q = q.clone();
        tokio::spawn(async move {
            q.next_batch(0, 3, Duration::from_secs(60), Form::Points)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (t, _) = q.append(&push(2, 3)).unwrap();
    q.wait(t).await.unwrap();
    let b = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(values(b.points()), expect([2], 3));
}

#[tokio::test]
async fn close_drains_then_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let o = open(tmp.path(), &two_sinks(), DEFAULT_SEGMENT_BYTES);
    let q = Arc::new(o.queue);
    // Not waited on: close still writes it.
    let (t, _) = q.append(&push(0, 3)).unwrap();
    let waiter = {
        let q = q.clone();
        tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(b) = q
                .next_batch(1, 100, Duration::from_secs(60), Form::Points)
                .await
            {
                got.extend(values(b.points()));
                q.ack(1, &b).unwrap();
            }
            got
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    q.close();
    q.wait(t).await.unwrap();
    assert!(matches!(q.append(&push(1, 1)), Err(Refused::Closed)));
    let got = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, expect([0], 3));
    assert_eq!(q.depth(1), (0, 0));
    assert_eq!(q.depth(0).0, 3);
}

#[tokio::test]
async fn oldest_age_and_depth() {
    let tmp = tempfile::tempdir().unwrap();
    let o = open(tmp.path(), &two_sinks(), DEFAULT_SEGMENT_BYTES);
    let q = &o.queue;
    assert_eq!(q.oldest_age(0), None);
    append_wait(q, &push(0, 2));
    std::thread::sleep(Duration::from_millis(300));
    append_wait(q, &push(1, 2));
    let age = q.oldest_age(0).unwrap();
    assert!(age >= Duration::from_millis(300), "{age:?}");
    let b = q
        .next_batch(0, 2, Duration::ZERO, Form::Points)
        .await
        .unwrap();
    // In flight still counts.
    assert_eq!(q.depth(0).0, 4);
    assert!(q.oldest_age(0).unwrap() >= Duration::from_millis(300));
    q.ack(0, &b).unwrap();
    assert_eq!(q.depth(0).0, 2);
    assert!(q.oldest_age(0).unwrap() < Duration::from_millis(300));
}

#[tokio::test]
async fn new_sink_starts_at_the_end_and_removed_sink_holds_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let o = open(dir, &two_sinks(), 1);
        for p in 0..3 {
            append_wait(&o.queue, &push(p, 1));
        }
        take(&o.queue, 0, 3, 10, true).await;
    }
    // Sink b is gone, sink c is new.
    let sinks = vec![spec("a", BIG, false), spec("c", BIG, false)];
    let o = open(dir, &sinks, 1);
    assert_eq!(o.redelivered_points, [0, 0]);
    assert!(!dir.join("cursor-b").exists());
    assert!(dir.join("cursor-c").exists());
    // Nothing holds the old segments back any more.
    assert_eq!(segments(dir), [segment_name(4)]);
    append_wait(&o.queue, &push(9, 1));
    let got = drain(&o.queue, 2).await;
    assert_eq!(got[0], expect([9], 1));
    assert_eq!(got[1], expect([9], 1));
}

#[tokio::test]
async fn unreadable_cursor_restarts_from_the_oldest_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sinks = two_sinks();
    {
        let o = open(dir, &sinks, DEFAULT_SEGMENT_BYTES);
        for p in 0..3 {
            append_wait(&o.queue, &push(p, 1));
        }
        take(&o.queue, 0, 2, 2, true).await;
        take(&o.queue, 1, 3, 10, true).await;
    }
    fs::write(dir.join("cursor-b"), b"nonsense").unwrap();
    let o = open(dir, &sinks, DEFAULT_SEGMENT_BYTES);
    assert_eq!(o.warnings.len(), 1);
    assert!(o.warnings[0].contains("cursor-b"), "{}", o.warnings[0]);
    assert_eq!(o.redelivered_points, [1, 3]);
}

#[test]
fn directory_is_locked_while_open() {
    let tmp = tempfile::tempdir().unwrap();
    let o = open(tmp.path(), &two_sinks(), DEFAULT_SEGMENT_BYTES);
    let err = DiskQueue::open(tmp.path(), &two_sinks(), DEFAULT_SEGMENT_BYTES).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    drop(o);
    open(tmp.path(), &two_sinks(), DEFAULT_SEGMENT_BYTES);
}

#[test]
fn duplicate_sink_names_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let err = DiskQueue::open(
        tmp.path(),
        &[spec("x", 1, false), spec("x", 1, true)],
        DEFAULT_SEGMENT_BYTES,
    )
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn write_failure_fails_waiters_and_later_appends() {
    let tmp = tempfile::tempdir().unwrap();
    let io = FaultyIo::default();
    let o = DiskQueue::open_with(
        Arc::new(io.clone()) as Arc<dyn Io>,
        tmp.path(),
        &two_sinks(),
        DEFAULT_SEGMENT_BYTES,
    )
    .unwrap();
    let q = &o.queue;
    append_wait(q, &push(0, 1));
    // The next write fails (ENOSPC after half of it).
    io.faults.short_writes.store(true, Ordering::SeqCst);
    let (t, _) = q.append(&push(1, 1)).unwrap();
    let err = q.wait_blocking(t).unwrap_err();
    assert!(err.to_string().contains("the disk is full"), "{err}");
    assert!(matches!(q.append(&push(2, 1)), Err(Refused::Io(_))));
    // What was durable is still there for the sinks; the failed push is
    // not.
    assert_eq!(q.depth(0).0, 1);
    // Room again: appends resume without a reopen.
    io.faults.short_writes.store(false, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while q.log().failure().is_some() {
        assert!(std::time::Instant::now() < deadline, "not recovered");
        std::thread::sleep(Duration::from_millis(10));
    }
    append_wait(q, &push(3, 1));
    assert_eq!(q.depth(0).0, 2);
}

/// A journal's log in `dir`, as on another filesystem than the queue.
fn journal_beside(dir: &Path, io: Arc<dyn Io>) -> Arc<Log> {
    let opts = LogOptions {
        segment_bytes: DEFAULT_SEGMENT_BYTES,
        holders: 1,
        what: "journal",
    };
    Arc::new(Log::open(io, dir, opts, &mut |_| {}).unwrap().log)
}

/// Where `journal`'s next record goes.
fn next_slot(journal: &Arc<Log>) -> crate::durable::Slot {
    crate::durable::Slot {
        log: journal.clone(),
        epoch: journal.epoch(),
        seq: journal.next_seq(),
    }
}

/// A journal of its own beside the queue (two filesystems): records held
/// for journal records are read only once those are durable, and the
/// record of a failed one is never read, not even after a reopen.
#[tokio::test]
async fn held_records_wait_for_their_journal_record_and_a_failed_one_is_revoked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("q");
    let io = FaultyIo::default();
    let journal = journal_beside(&tmp.path().join("journal"), Arc::new(io.clone()));
    let slot = || next_slot(&journal);
    let journal_record = || journal.append(Payload::new(crate::durable::KIND_STORE, 1, vec![1]));
    // Sink b reads nothing: after the reopen it starts before push 1.
    let sinks = two_sinks();
    {
        let o = open(&dir, &sinks, DEFAULT_SEGMENT_BYTES);
        let q = &o.queue;
        let held = |p: usize, s| {
            let (t, _) = q
                .append_held(DiskQueue::encode(&push(p, 2)).unwrap(), Some(s))
                .unwrap();
            q.wait_blocking(t).unwrap();
        };
        // Push 0: its journal record durable.
        held(0, slot());
        journal.wait_blocking(journal_record().unwrap()).unwrap();
        // Push 1: its journal record's write fails.
        held(1, slot());
        io.faults.failing_writes.store(true, Ordering::SeqCst);
        let failed = journal_record().unwrap();
        assert!(journal.wait_blocking(failed).is_err());
        io.faults.failing_writes.store(false, Ordering::SeqCst);
        while journal.refusal().is_some() {
            std::thread::sleep(Duration::from_millis(5));
        }
        // Push 2: its journal record not yet appended.
        held(2, slot());
        assert_eq!(take(q, 0, 2, 100, true).await, expect([0], 2));
        let waiting = tokio::time::timeout(
            Duration::from_millis(200),
            q.next_batch(0, 100, Duration::ZERO, Form::Points),
        )
        .await;
        assert!(
            waiting.is_err(),
            "push 2 was read before its journal record was durable"
        );
        journal.wait_blocking(journal_record().unwrap()).unwrap();
        // Woken by the journal: push 1 is gone, push 2 follows push 0.
        let b = tokio::time::timeout(
            Duration::from_secs(5),
            q.next_batch(0, 100, Duration::ZERO, Form::Points),
        )
        .await
        .expect("woken when the journal record became durable")
        .unwrap();
        assert_eq!(values(b.points()), expect([2], 2));
        assert_eq!(q.depth(0).0, 2, "push 1's points are not counted");
        // Not acknowledged: a reopen hands push 2 out again, never push 1.
        q.settle_holds().unwrap();
    }
    let o = open(&dir, &sinks, DEFAULT_SEGMENT_BYTES);
    assert_eq!(
        drain(&o.queue, 2).await,
        [expect([2], 2), expect([0, 2], 2)]
    );
}

/// A held record that `drop_oldest` skipped before its journal record
/// failed is listed in `FAILED` all the same: a cursor not yet persisted
/// would otherwise send it after a crash.
#[tokio::test]
async fn a_dropped_held_record_is_still_revoked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("q");
    let journal = journal_beside(
        &tmp.path().join("journal"),
        Arc::new(crate::durable::RealIo),
    );
    let small = push(0, 2);
    // Room for one push: the second drops the first.
    let sinks = [spec("a", frame_len(&small) as u64, true)];
    let o = open(&dir, &sinks, DEFAULT_SEGMENT_BYTES);
    let q = &o.queue;
    let (held, _) = q
        .append_held(
            DiskQueue::encode(&small).unwrap(),
            Some(next_slot(&journal)),
        )
        .unwrap();
    q.wait_blocking(held).unwrap();
    let dropped = append_wait(q, &push(1, 2));
    assert_eq!(dropped, [2], "push 0 dropped for push 1");
    // Its journal record never comes: the journal closes.
    journal.close().unwrap();
    q.settle_holds().unwrap();
    let failed = crate::durable::reader::failed_ranges(&crate::durable::RealIo, &dir);
    assert!(
        failed.iter().any(|&(a, b)| (a..=b).contains(&held.seq())),
        "{failed:?} does not list {}",
        held.seq()
    );
}
