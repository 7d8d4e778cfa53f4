//! Tests of the spare segment: a released segment written over as the
//! next one, and a reader that tells its new records from its old ones.

use super::fsutil::testing::names;
use super::io::{FaultyIo, RealIo};
use super::reader::SPARE_FILES;
use super::record::{self, FILE_HEADER_LEN, KIND_STORE};
use super::tests::{
    append, append_all, open, open_with, opts, payloads, segments, until_recovered,
};
use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A copy of the log's files as they are now, while it is open: what a
/// `kill -9` would leave (everything waited for is written and fsynced).
fn crash_image(dir: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for name in names(dir) {
        if name != "LOCK" {
            fs::copy(dir.join(&name), copy.path().join(&name)).unwrap();
        }
    }
    copy
}

fn has_spare(dir: &Path) -> bool {
    SPARE_FILES.iter().any(|name| dir.join(name).exists())
}

/// The number in a segment's file name.
fn segment_number(path: &Path) -> u64 {
    path.file_name().unwrap().to_str().unwrap()[4..]
        .parse()
        .unwrap()
}

/// Each segment's inode, by name.
fn inodes(dir: &Path) -> HashMap<String, u64> {
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with("log-"))
        .map(|n| {
            let ino = fs::metadata(dir.join(&n)).unwrap().ino();
            (n, ino)
        })
        .collect()
}

/// Appends `n` records one at a time on 1 KiB segments, releasing all but
/// the last after each, so that released segments become the spare and
/// the spare the next segment. Returns the payloads appended and whether
/// some segment was seen under a second name (a reuse).
fn churn(log: &super::Log, dir: &Path, n: usize, first: usize) -> (Vec<String>, bool) {
    let mut seen: HashMap<u64, String> = HashMap::new();
    let mut reused = false;
    let mut appended = Vec::new();
    for i in first..first + n {
        // Sizes vary, so that a new life rarely ends where an old record
        // does.
        let pad = "#".repeat(i * 37 % 90);
        let p = format!("record {i:04} {pad}");
        let t = append(log, KIND_STORE, &p);
        log.wait_blocking(t).unwrap();
        log.release(0, t.seq());
        appended.push(p);
        for (name, ino) in inodes(dir) {
            match seen.get(&ino) {
                Some(old) if *old != name => reused = true,
                _ => {}
            }
            seen.insert(ino, name);
        }
    }
    (appended, reused)
}

#[test]
fn a_released_segment_is_written_over_and_its_old_records_are_not_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let last = {
        let (log, _, _) = open_with(Arc::new(RealIo), dir, opts(1024, 1));
        let (appended, reused) = churn(&log, dir, 60, 0);
        assert!(reused, "no segment was reused: {:?}", names(dir));
        assert!(has_spare(dir));
        // Killed now: the segment being written still has its old life
        // behind its records.
        let image = crash_image(dir);
        let newest = segments(image.path()).pop().unwrap();
        let name = segment_number(&newest);
        let old = fs::read(&newest).unwrap();
        let (_, got, w) = open(image.path());
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            payloads(&got).last().copied(),
            appended.last().map(|p| p.as_str())
        );
        assert!(
            (FILE_HEADER_LEN..old.len())
                .any(|at| record::parse(&old[at..]).is_ok_and(|f| f.seq < name)),
            "the newest segment had no old records behind its new ones"
        );
        appended.last().unwrap().clone()
    };
    // Closed: the flusher cut the segment it left to its own records.
    let newest = segments(dir).pop().unwrap();
    let len = fs::metadata(&newest).unwrap().len();
    let (log, got, w) = open_with(Arc::new(RealIo), dir, opts(1024, 1));
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(payloads(&got).last().copied(), Some(last.as_str()));
    assert!(got.windows(2).all(|p| p[0].0 < p[1].0), "{got:?}");
    assert_eq!(fs::metadata(&newest).unwrap().len(), len);
    // And it goes on reusing after the reopen.
    let (more, _) = churn(&log, dir, 40, 60);
    drop(log);
    let (_, got, w) = open(dir);
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(
        payloads(&got).last().copied(),
        Some(more.last().unwrap().as_str())
    );
}

#[test]
fn a_torn_group_over_old_records_is_dropped_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, _, _) = open_with(Arc::new(RealIo), tmp.path(), opts(1024, 1));
    let (appended, reused) = churn(&log, tmp.path(), 60, 0);
    assert!(reused);
    // Nothing released after it.
    append_all(&log, &["kept"]);
    let image = crash_image(tmp.path());
    let dir = image.path();
    let newest = segments(dir).pop().unwrap();
    let name = segment_number(&newest);
    let data = fs::read(&newest).unwrap();
    // Where the new records end.
    let mut end = FILE_HEADER_LEN;
    while let Ok(f) = record::parse(&data[end..]) {
        if f.seq < name {
            break;
        }
        end += f.frame_len();
    }
    assert!(
        end < data.len(),
        "the newest segment has no old bytes behind its new ones"
    );
    // A crash tore the next group: its first record whole, the next one
    // cut short, over the old bytes.
    let mut torn = record::frame(10_000, KIND_STORE, 1, b"whole, never committed");
    torn.extend_from_slice(&record::frame(10_001, KIND_STORE, 1, b"torn record")[..12]);
    OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap()
        .write_all_at(&torn, end as u64)
        .unwrap();
    let (_, got, w) = open(dir);
    assert_eq!(payloads(&got).last().copied(), Some("kept"));
    assert!(!payloads(&got).contains(&appended[0].as_str()));
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("after the last commit"), "{}", w[0]);
    assert_eq!(fs::metadata(&newest).unwrap().len(), end as u64);
}

#[test]
fn numbers_go_on_above_the_spare() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let (log, _, _) = open_with(Arc::new(RealIo), dir, opts(1024, 1));
        churn(&log, dir, 60, 0);
    }
    let spare_max = SPARE_FILES
        .iter()
        .filter_map(|name| fs::read(dir.join(name)).ok())
        .flat_map(|spare| {
            (FILE_HEADER_LEN..spare.len())
                .filter_map(|at| record::parse(&spare[at..]).ok().map(|f| f.seq))
                .collect::<Vec<_>>()
        })
        .max()
        .unwrap();
    // A crash left the spares and no segment (every segment was released,
    // the one being written renamed to the spare before the next one's
    // name was durable).
    for seg in segments(dir) {
        fs::remove_file(seg).unwrap();
    }
    let (log, got, _) = open(dir);
    assert!(got.is_empty(), "{got:?}");
    let t = append(&log, KIND_STORE, "new");
    assert!(
        t.seq() > spare_max,
        "{} is a number the spare holds",
        t.seq()
    );
    log.wait_blocking(t).unwrap();
    // Killed now: the segment written over the spare holds "new" and the
    // spare's old records behind it.
    let image = crash_image(dir);
    let (_, got, w) = open(image.path());
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(payloads(&got), ["new"]);
}

#[test]
fn a_full_disk_gives_the_spare_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let io = FaultyIo::default();
    let (log, _, _) = open_with(Arc::new(io.clone()), dir, opts(1024, 1));
    churn(&log, dir, 30, 0);
    assert!(has_spare(dir));
    io.faults.short_writes.store(true, Ordering::SeqCst);
    let t = append(&log, KIND_STORE, "half written");
    assert!(log.wait_blocking(t).is_err());
    assert!(!has_spare(dir), "{:?}", names(dir));
    // Everything is delivered meanwhile: the full segment goes once the
    // log has left it, as room, not as the spare.
    log.release(0, u64::MAX);
    io.faults.short_writes.store(false, Ordering::SeqCst);
    until_recovered(&log);
    assert!(!has_spare(dir), "{:?}", names(dir));
    append_all(&log, &["after"]);
    // No spare is kept from segments released while the disk was full,
    // and one is again once it is not.
    churn(&log, dir, 30, 100);
    assert!(has_spare(dir));
}

#[test]
fn a_segment_whose_fsync_failed_is_never_the_spare() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let io = FaultyIo::default();
    let (log, _, _) = open_with(Arc::new(io.clone()), dir, opts(1024, 1));
    append_all(&log, &["before"]);
    let failed = segments(dir).pop().unwrap();
    io.faults.failing_syncs.store(true, Ordering::SeqCst);
    let t = append(&log, KIND_STORE, "lost");
    assert!(log.wait_blocking(t).is_err());
    io.faults.failing_syncs.store(false, Ordering::SeqCst);
    until_recovered(&log);
    append_all(&log, &["after"]);
    assert!(segments(dir).len() >= 2, "{:?}", names(dir));
    // Released: the failed file is deleted, not kept to be written again.
    log.release(0, u64::MAX);
    assert!(!failed.exists());
    assert!(!has_spare(dir), "{:?}", names(dir));
}

#[test]
fn segments_released_together_are_both_kept_and_written_over() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (log, _, _) = open_with(Arc::new(RealIo), dir, opts(1024, 1));
    let record = |i: usize| format!("record {i:04} {}", "#".repeat(60));
    let mut i = 0;
    while segments(dir).len() < 3 {
        append_all(&log, &[&record(i)]);
        i += 1;
    }
    let active = segments(dir).pop().unwrap();
    let released: Vec<u64> = segments(dir)[..2]
        .iter()
        .map(|p| fs::metadata(p).unwrap().ino())
        .collect();
    // As the store does when one snapshot covers both.
    let t = append(&log, KIND_STORE, &record(i));
    log.wait_blocking(t).unwrap();
    log.release(0, t.seq());
    assert_eq!(
        segments(dir),
        std::slice::from_ref(&active),
        "{:?}",
        names(dir)
    );
    let mut spares: Vec<u64> = SPARE_FILES
        .iter()
        .map(|name| fs::metadata(dir.join(name)).map(|m| m.ino()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}: {:?}", names(dir)));
    spares.sort_unstable();
    let mut want = released.clone();
    want.sort_unstable();
    assert_eq!(spares, want);
    // The next two segments are the two spares, written over.
    let mut reused = Vec::new();
    while reused.len() < 2 {
        i += 1;
        append_all(&log, &[&record(i)]);
        for (name, ino) in inodes(dir) {
            if dir.join(&name) != active && !reused.contains(&ino) {
                reused.push(ino);
            }
        }
    }
    reused.sort_unstable();
    assert_eq!(reused, want, "{:?}", names(dir));
    assert!(!has_spare(dir), "{:?}", names(dir));
}
