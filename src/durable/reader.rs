//! Recovery: reads the segments back at open, hands every committed record
//! to the caller, and repairs what a crash left behind.
//!
//! Segments are read in order of their names. In each, a record must carry
//! a sequence number above every one before it (and no lower than the
//! segment's name, below the next segment's name). Records are handed out
//! when their group's commit marker is read.
//!
//! - Damage (a bad checksum, length or sequence number) is skipped by
//!   resyncing to the next valid record; the bytes skipped are reported.
//!   With nothing valid after it, the rest of the file is skipped.
//! - In the newest segment, whatever follows the last commit marker is a
//!   group whose fsync never completed (never acknowledged): it is dropped
//!   and the file truncated there, with a warning. If damage was skipped in
//!   that file, a copy is kept aside first.
//! - In an older segment, intact records after its last commit marker, up
//!   to its intact end, are a group whose write or fsync failed (the writer
//!   moved on to a fresh segment, and its cut did not happen): refused,
//!   never acknowledged, and ignored, with a warning. When damage follows
//!   the last marker, the records before the damage are handed out all the
//!   same: the marker may have been lost to the damage.
//! - A segment written over a reused file (see `Inner::create_segment`)
//!   ends where a record with a sequence number below its name starts:
//!   that is the file's earlier life, never written in this one (records
//!   are written in order, and the fsync of a group completes before its
//!   records count), and nothing there is damage. Right after a commit
//!   marker, the bytes up to the next such record are the rest of an old
//!   one; within a group, they are its torn end (a crash), after the last
//!   commit marker. The flusher cuts a reused segment to its records when
//!   it leaves it, so this matters for the one written at a crash. The
//!   spare itself is read too: sequence numbers go on above its records
//!   and its name, so that it never holds a number taken again.
//! - A segment whose header is damaged is moved aside; one with only part
//!   of a header (the process died creating it) is removed.
//! - Records in a range listed in `FAILED` are ignored wherever they are:
//!   their group failed (a failed fsync may still have left its commit
//!   marker on disk), the writer said so in that file before it took
//!   appends again, and they were never acknowledged.

use super::fsutil;
use super::io::{Io, LogFile};
use super::record::{self, FileHeader, KIND_COMMIT, SEGMENT_MAGIC};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bytes of data files found damaged and skipped since the process
/// started, over every log ([`damaged_bytes`]).
static DAMAGED_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Bytes found damaged and skipped (their records lost) by every recovery
/// since the process started: skipped runs, the rest of a file after
/// damage with nothing valid behind it, whole unreadable segments.
pub fn damaged_bytes() -> u64 {
    DAMAGED_BYTES.load(std::sync::atomic::Ordering::Relaxed)
}

fn count_damage(n: usize) {
    DAMAGED_BYTES.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
}

pub const SEGMENT_PREFIX: &str = "log-";

/// Released segments kept to be written over as later ones (see
/// `Inner::create_segment`): at most these two. Two, because the store
/// releases segments in pairs when one snapshot covers both, and a log
/// that keeps only one starts every other segment afresh.
pub const SPARE_FILES: [&str; 2] = ["SPARE", "SPARE-2"];

/// One committed record, as recovery hands it out.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    pub seq: u64,
    pub kind: u8,
    pub version: u8,
    pub payload: &'a [u8],
}

/// Called with every committed record, in sequence order.
pub type Visit<'a> = dyn FnMut(RecordRef<'_>) + 'a;

pub struct RecoveredSegment {
    pub name: u64,
    pub path: PathBuf,
    pub file: Option<Arc<dyn LogFile>>,
    /// (seq, offset, len) of its committed records.
    pub records: Vec<(u64, u64, u64)>,
}

pub struct Recovery {
    /// Above every sequence number on disk.
    pub next_seq: u64,
    /// The segments kept, in order.
    pub segments: Vec<RecoveredSegment>,
    pub warnings: Vec<String>,
}

fn note(warnings: &mut Vec<String>, msg: String) {
    tracing::warn!("{msg}");
    warnings.push(msg);
}

/// What reading one segment's body found.
struct Scan<'a> {
    /// Committed records and their offsets.
    records: Vec<(usize, record::Frame<'a>)>,
    /// Records after the last commit marker.
    pending: Vec<(usize, record::Frame<'a>)>,
    /// End of the last commit marker.
    committed_end: usize,
    /// Damage skipped: offset, bytes, why.
    skipped: Vec<(usize, usize, &'static str)>,
    /// Where reading stopped on damage with nothing valid after it (or
    /// only an earlier life's records).
    stop: Option<(usize, &'static str)>,
    /// Where the segment's bytes end: the file's end, or where the records
    /// of a reused file's earlier life start.
    end: usize,
    /// The highest sequence number read.
    last_seq: u64,
}

/// Reads the records of a segment body; `floor` is the highest sequence
/// number seen before it, `limit` the next segment's name.
fn scan(data: &[u8], name: u64, floor: u64, limit: Option<u64>) -> Scan<'_> {
    let mut s = Scan {
        records: Vec::new(),
        pending: Vec::new(),
        committed_end: record::FILE_HEADER_LEN,
        skipped: Vec::new(),
        stop: None,
        end: data.len(),
        last_seq: floor,
    };
    let mut pos = record::FILE_HEADER_LEN;
    while pos < data.len() {
        let last = s.last_seq;
        let fits = |seq: u64| seq > last && seq >= name && limit.is_none_or(|l| seq < l);
        let why = match record::parse(&data[pos..]) {
            // Intact, and older than the segment: where it was reused.
            Ok(f) if f.seq < name => {
                s.end = pos;
                break;
            }
            // A marker commits every record before it: the writer starts a
            // group only after the previous one's fsync succeeded, so
            // records whose own marker was damaged committed too.
            Ok(f) if f.kind == KIND_COMMIT => match f.commit_first() {
                Some(first) if first <= f.seq && s.pending.iter().all(|(_, p)| p.seq <= f.seq) => {
                    s.records.append(&mut s.pending);
                    pos += f.frame_len();
                    s.committed_end = pos;
                    continue;
                }
                _ => "commit marker does not match its group",
            },
            Ok(f) if fits(f.seq) => {
                s.last_seq = f.seq;
                s.pending.push((pos, f));
                pos += f.frame_len();
                continue;
            }
            Ok(_) => "unexpected sequence number",
            Err(why) => why,
        };
        let last = s.last_seq;
        let fits = |seq: u64| seq > last && seq >= name && limit.is_none_or(|l| seq < l);
        match record::resync(data, pos, |seq| fits(seq) || seq == last || seq < name) {
            Some(next) if record::parse(&data[next..]).is_ok_and(|f| f.seq < name) => {
                if s.pending.is_empty() {
                    // Right after a commit marker: the middle of one of
                    // the earlier life's records, the clean end.
                    s.end = pos;
                } else {
                    // Inside a group: its torn end.
                    s.stop = Some((pos, why));
                    s.end = next;
                }
                break;
            }
            Some(next) => {
                s.skipped.push((pos, next - pos, why));
                pos = next;
            }
            None => {
                s.stop = Some((pos, why));
                break;
            }
        }
    }
    s
}

/// The file listing the sequence numbers of failed groups.
pub const FAILED_FILE: &str = "FAILED";

/// The failed ranges listed in `dir`'s [`FAILED_FILE`] (first and last
/// sequence number, inclusive); none if it is missing or unreadable.
pub fn failed_ranges(io: &dyn Io, dir: &Path) -> Vec<(u64, u64)> {
    let Ok(data) = io.read(&dir.join(FAILED_FILE)) else {
        return Vec::new();
    };
    String::from_utf8_lossy(&data)
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_once(' ')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect()
}

/// Writes `ranges` as `dir`'s [`FAILED_FILE`]: a temporary file, fsynced,
/// renamed over it, and the directory fsynced.
pub fn write_failed_ranges(io: &dyn Io, dir: &Path, ranges: &[(u64, u64)]) -> io::Result<()> {
    let text: String = ranges.iter().map(|(a, b)| format!("{a} {b}\n")).collect();
    let tmp = dir.join(format!("{FAILED_FILE}.tmp"));
    let _ = io.remove(&tmp);
    let f = io.create_new(&tmp)?;
    f.append(text.as_bytes())
        .and_then(|()| f.sync_data())
        .and_then(|()| io.rename(&tmp, &dir.join(FAILED_FILE)))
        .and_then(|()| io.sync_dir(dir))
        .inspect_err(|_| {
            let _ = io.remove(&tmp);
        })
}

/// Recovers the log in `dir` (which the caller has locked).
pub fn recover(io: &dyn Io, dir: &Path, what: &str, visit: &mut Visit<'_>) -> io::Result<Recovery> {
    let failed = failed_ranges(io, dir);
    let is_failed = |seq: u64| failed.iter().any(|&(a, b)| (a..=b).contains(&seq));
    let mut names = BTreeMap::new();
    for (name, path) in io.list(dir)? {
        if let Some(n) = fsutil::parse_numbered20(&name, SEGMENT_PREFIX) {
            names.insert(n, path);
        }
    }
    let mut rec = Recovery {
        next_seq: names.keys().next_back().copied().unwrap_or(1).max(1),
        segments: Vec::new(),
        warnings: Vec::new(),
    };
    let keys: Vec<u64> = names.keys().copied().collect();
    let mut floor = 0u64;
    for (i, &name) in keys.iter().enumerate() {
        let path = &names[&name];
        let newest = i + 1 == keys.len();
        let limit = keys.get(i + 1).copied();
        let data = io.read(path)?;
        match record::check_file_header(&data, SEGMENT_MAGIC) {
            FileHeader::Creating => {
                io.remove(path)?;
                continue;
            }
            FileHeader::Valid(first) if first == name => {}
            FileHeader::Valid(_) | FileHeader::Bad(_) => {
                let why = match record::check_file_header(&data, SEGMENT_MAGIC) {
                    FileHeader::Bad(why) => why,
                    _ => "header names another segment",
                };
                let aside = fsutil::move_aside(dir, path)?;
                count_damage(data.len());
                note(
                    &mut rec.warnings,
                    format!(
                        "{what}: segment {} is unreadable ({why}); moved to {}; its records are lost",
                        path.display(),
                        aside.display()
                    ),
                );
                continue;
            }
        }
        let mut s = scan(&data, name, floor, limit);
        floor = s.last_seq;
        rec.next_seq = rec.next_seq.max(s.last_seq + 1);
        for &(at, n, why) in &s.skipped {
            count_damage(n);
            note(
                &mut rec.warnings,
                format!(
                    "{what}: segment {}: {why} at offset {at}; skipped {n} damaged bytes, the records in them are lost",
                    path.display()
                ),
            );
        }
        if newest && s.committed_end < s.end {
            if !s.skipped.is_empty() {
                let copy = fsutil::corrupt_path(path);
                std::fs::copy(path, &copy)?;
                std::fs::File::open(&copy)?.sync_all()?;
            }
            let file = io.open(path)?;
            file.set_len(s.committed_end as u64)?;
            file.sync_data()?;
            let why = match s.stop {
                Some((_, why)) => format!(" ({why})"),
                None => String::new(),
            };
            note(
                &mut rec.warnings,
                format!(
                    "{what}: segment {}: dropped {} bytes after the last commit{why}: a group commit a crash interrupted, never acknowledged; truncated the file",
                    path.display(),
                    s.end - s.committed_end
                ),
            );
            s.pending.clear();
        } else if !newest
            && !s.pending.is_empty()
            && s.stop.is_none()
            && s.skipped.iter().all(|&(at, _, _)| at < s.committed_end)
        {
            note(
                &mut rec.warnings,
                format!(
                    "{what}: segment {}: ignored {} record(s) after the last commit: a group whose write or fsync failed, refused and never acknowledged",
                    path.display(),
                    s.pending.len()
                ),
            );
            s.pending.clear();
        } else if let Some((at, why)) = s.stop {
            count_damage(s.end - at);
            note(
                &mut rec.warnings,
                format!(
                    "{what}: segment {}: {why} at offset {at}; skipped the rest of the file ({} bytes), the records in it are lost",
                    path.display(),
                    s.end - at
                ),
            );
        }
        s.records.append(&mut s.pending);
        let before = s.records.len();
        s.records.retain(|(_, f)| !is_failed(f.seq));
        if s.records.len() < before {
            note(
                &mut rec.warnings,
                format!(
                    "{what}: segment {}: ignored {} record(s) of failed groups (listed in {FAILED_FILE}), never acknowledged",
                    path.display(),
                    before - s.records.len()
                ),
            );
        }
        if s.records.is_empty() {
            if s.skipped.is_empty() && s.stop.is_none() {
                io.remove(path)?;
            } else if !newest {
                fsutil::move_aside(dir, path)?;
            } else {
                io.remove(path)?;
            }
            continue;
        }
        let mut places = Vec::with_capacity(s.records.len());
        for (at, f) in &s.records {
            visit(RecordRef {
                seq: f.seq,
                kind: f.kind,
                version: f.version,
                payload: f.payload,
            });
            places.push((f.seq, *at as u64, f.frame_len() as u64));
        }
        rec.segments.push(RecoveredSegment {
            name,
            path: path.clone(),
            file: Some(io.open(path)?),
            records: places,
        });
    }
    // A spare's records, and the name a reuse interrupted by a crash gave
    // it, are never numbers of new records: its old records would be read
    // as theirs once it is reused. An unreadable spare is removed.
    for name in SPARE_FILES {
        let spare = dir.join(name);
        if let Ok(data) = io.read(&spare) {
            match record::check_file_header(&data, SEGMENT_MAGIC) {
                FileHeader::Valid(first) => {
                    let s = scan(&data, first, 0, None);
                    rec.next_seq = rec.next_seq.max(first).max(s.last_seq + 1);
                }
                _ => io.remove(&spare)?,
            }
        }
    }
    // Sequence numbers of failed groups are never handed out again, even
    // when no file holds them any more (their group was cut off): a record
    // taking one would be ignored as failed at the next open.
    for &(_, last) in &failed {
        rec.next_seq = rec.next_seq.max(last + 1);
    }
    if !rec.segments.is_empty() || !keys.is_empty() {
        io.sync_dir(dir)?;
    }
    Ok(rec)
}

/// Hands the committed records of the log in `dir` to `visit` without
/// changing any file, for a log that another client may be appending to
/// (its uncommitted tail is left alone, damage is only skipped).
pub fn read_only(io: &dyn Io, dir: &Path, visit: &mut Visit<'_>) -> io::Result<()> {
    let failed = failed_ranges(io, dir);
    let is_failed = |seq: u64| failed.iter().any(|&(a, b)| (a..=b).contains(&seq));
    let mut names = BTreeMap::new();
    for (name, path) in io.list(dir)? {
        if let Some(n) = fsutil::parse_numbered20(&name, SEGMENT_PREFIX) {
            names.insert(n, path);
        }
    }
    let keys: Vec<u64> = names.keys().copied().collect();
    let mut floor = 0u64;
    for (i, &name) in keys.iter().enumerate() {
        let data = io.read(&names[&name])?;
        if record::check_file_header(&data, SEGMENT_MAGIC) != FileHeader::Valid(name) {
            continue;
        }
        let mut s = scan(&data, name, floor, keys.get(i + 1).copied());
        floor = s.last_seq;
        if i + 1 < keys.len() {
            s.records.append(&mut s.pending);
        }
        for (_, f) in &s.records {
            if is_failed(f.seq) {
                continue;
            }
            visit(RecordRef {
                seq: f.seq,
                kind: f.kind,
                version: f.version,
                payload: f.payload,
            });
        }
    }
    Ok(())
}
