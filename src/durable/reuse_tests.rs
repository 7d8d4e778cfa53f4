//! Tests of the spare segment: a released segment written over as the
//! next one, and a reader that tells its new records from its old ones.

use super::fsutil::testing::names;
use super::io::{FaultyIo, RealIo};
use super::record::{self, FILE_HEADER_LEN, KIND_STORE};
use super::state::SPARE_FILE;
use super::tests::{
    append, append_all, open, open_with, opts, payloads, segments, until_recovered,
};
use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

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
        let p = format!("record {i:04} with some padding to fill segments");
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
        assert!(names(dir).contains(&SPARE_FILE.to_string()));
        appended.last().unwrap().clone()
    };
    // The newest segment was reused, and its old records lie past its new
    // ones: the file is longer than what the reader takes.
    let newest = segments(dir).pop().unwrap();
    let data = fs::read(&newest).unwrap();
    let old = record::frame(1, KIND_STORE, 1, b"x")[..4].to_vec();
    assert!(
        data.windows(4)
            .skip(FILE_HEADER_LEN + 200)
            .any(|w| w == old),
        "no old records behind the new ones"
    );
    // Reopened: only what was not released, no warning, and the file is
    // left as it is (a clean end is not a torn one).
    let len = data.len() as u64;
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
    let dir = tmp.path();
    let kept = {
        let (log, _, _) = open_with(Arc::new(RealIo), dir, opts(1024, 1));
        let (appended, reused) = churn(&log, dir, 60, 0);
        assert!(reused);
        // The last one is kept: nothing released after it.
        append_all(&log, &["kept"]);
        appended
    };
    let newest = segments(dir).pop().unwrap();
    let data = fs::read(&newest).unwrap();
    // Where the new records end: past the last commit marker of a group
    // naming the newest segment's records.
    let name: u64 = newest.file_name().unwrap().to_str().unwrap()[4..]
        .parse()
        .unwrap();
    let mut end = FILE_HEADER_LEN;
    while let Ok(f) = record::parse(&data[end..]) {
        if f.seq < name {
            break;
        }
        end += f.frame_len();
    }
    assert!(
        end < data.len(),
        "the newest segment has no old records behind its new ones"
    );
    // A crash tore the next group: some of it written over the old bytes.
    let torn = &record::frame(10_000, KIND_STORE, 1, b"torn group")[..12];
    OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap()
        .write_all_at(torn, end as u64)
        .unwrap();
    let (_, got, w) = open(dir);
    assert_eq!(payloads(&got).last().copied(), Some("kept"));
    assert!(!payloads(&got).contains(&kept[0].as_str()));
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("after the last commit"), "{}", w[0]);
    assert_eq!(fs::metadata(&newest).unwrap().len(), end as u64);
}

#[test]
fn a_full_disk_gives_the_spare_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let io = FaultyIo::default();
    let (log, _, _) = open_with(Arc::new(io.clone()), dir, opts(1024, 1));
    churn(&log, dir, 30, 0);
    assert!(names(dir).contains(&SPARE_FILE.to_string()));
    io.faults.short_writes.store(true, Ordering::SeqCst);
    let t = append(&log, KIND_STORE, "half written");
    assert!(log.wait_blocking(t).is_err());
    assert!(
        !names(dir).contains(&SPARE_FILE.to_string()),
        "{:?}",
        names(dir)
    );
    io.faults.short_writes.store(false, Ordering::SeqCst);
    until_recovered(&log);
    append_all(&log, &["after"]);
    // No spare is kept from segments released while the disk was full,
    // and one is again once it is not.
    churn(&log, dir, 30, 100);
    assert!(names(dir).contains(&SPARE_FILE.to_string()));
}
