//! Reading the format-1 files that releases up to 57b122d (code up to
//! d93fda2) wrote, so that an upgraded node keeps what it had: the store's
//! journal (`journal-<gen>`, `PKJ1`) and snapshots (`snapshot-<gen>`,
//! `PKS1`), and the disk queue's segments (`segment-<seq>`, `PKQ1`) and
//! cursors (`cursor-<sink>`, `PKC1`).
//!
//! ```text
//! file header: magic: 4 | version: u32 LE (1)
//! frame:       len: u32 LE | crc: u32 LE | payload: len bytes
//! trailer:     0xFFFF_FFFF | count: u64 LE | crc: u32 LE   (snapshots, last)
//! ```
//!
//! `crc` is CRC-32C over the 4 length bytes followed by the payload (the
//! trailer's over the marker and the count). Clients migrate once at open:
//! they read the old files with this module, write what they hold in the
//! new format, make that durable, and only then move the old files into
//! [`MIGRATED_DIR`] (kept, never deleted by pushkit).

use super::fsutil::{
    self, check_frame, check_header, frame_after_bad, Header, FILE_HEADER_LEN, FRAME_HEADER_LEN,
};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Where migrated format-1 files are moved, inside the data directory.
pub const MIGRATED_DIR: &str = "format-1";

const JOURNAL_MAGIC: [u8; 4] = *b"PKJ1";
const SNAPSHOT_MAGIC: [u8; 4] = *b"PKS1";
const TRAILER_MARK: u32 = u32::MAX;
const TRAILER_LEN: usize = 16;
const MAX_RECORD_LEN: usize = 256 << 20;

fn note(warnings: &mut Vec<String>, msg: String) {
    tracing::warn!("{msg}");
    warnings.push(msg);
}

/// Old names: a prefix and 8 to 16 digits (the new format uses 20).
fn old_numbered(name: &str, prefix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?;
    (digits.len() < 20).then_some(())?;
    fsutil::parse_numbered(name, prefix)
}

enum Frame<'a> {
    Record(&'a [u8]),
    Trailer(u64),
    Bad(&'static str),
}

fn read_frame(data: &[u8]) -> (Frame<'_>, usize) {
    if data.len() >= FRAME_HEADER_LEN && data[..4] == TRAILER_MARK.to_le_bytes() {
        if data.len() < TRAILER_LEN {
            return (Frame::Bad("truncated trailer"), 0);
        }
        let stored = u32::from_le_bytes(data[12..16].try_into().expect("4 bytes"));
        if crc32c::crc32c(&data[..12]) != stored {
            return (Frame::Bad("trailer checksum mismatch"), 0);
        }
        let count = u64::from_le_bytes(data[4..12].try_into().expect("8 bytes"));
        return (Frame::Trailer(count), TRAILER_LEN);
    }
    match check_frame(data, 0..=MAX_RECORD_LEN) {
        Ok(p) => (Frame::Record(p), FRAME_HEADER_LEN + p.len()),
        Err(why) => (Frame::Bad(why), 0),
    }
}

fn parse_snapshot(data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if check_header(data, &fsutil::file_header(SNAPSHOT_MAGIC, 1)) != Header::Valid {
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
            (Frame::Trailer(count), n)
                if count == records.len() as u64 && pos + n == data.len() =>
            {
                return Ok(records)
            }
            (Frame::Trailer(_), _) => return Err("bad trailer".into()),
            (Frame::Bad(why), _) => return Err(format!("{why} at offset {pos}")),
        }
    }
}

/// The format-1 store files found in a directory, and what they hold.
#[derive(Debug, Default)]
pub struct OldJournal {
    /// In replay order: the newest usable snapshot's records, then the
    /// journals' from that generation on.
    pub records: Vec<Vec<u8>>,
    /// Every format-1 file (and leftover `.tmp`) found.
    pub files: Vec<PathBuf>,
    pub warnings: Vec<String>,
}

/// Reads the format-1 journal and snapshots in `dir`, as the old code
/// recovered them (damage ends a file's replay, with a warning), without
/// changing any file. `None` if there are none.
pub fn read_journal(dir: &Path) -> io::Result<Option<OldJournal>> {
    let mut out = OldJournal::default();
    let mut snapshots = BTreeMap::new();
    let mut journals = BTreeMap::new();
    for (name, path) in fsutil::list_dir(dir)? {
        if let Some(g) = old_numbered(&name, "snapshot-") {
            snapshots.insert(g, path.clone());
        } else if let Some(g) = old_numbered(&name, "journal-") {
            journals.insert(g, path.clone());
        } else if !(name.ends_with(".tmp")
            && old_numbered(name.trim_end_matches(".tmp"), "snapshot-").is_some())
        {
            continue;
        }
        out.files.push(path);
    }
    if out.files.is_empty() {
        return Ok(None);
    }
    let mut base = None;
    for (&gen, path) in snapshots.iter().rev() {
        match parse_snapshot(&fs::read(path)?) {
            Ok(records) => {
                out.records = records;
                base = Some(gen);
                break;
            }
            Err(why) => note(
                &mut out.warnings,
                format!(
                    "format-1 snapshot {} is unreadable ({why}); trying older files",
                    path.display()
                ),
            ),
        }
    }
    let header = fsutil::file_header(JOURNAL_MAGIC, 1);
    for (gen, path) in journals.range(base.unwrap_or(0)..) {
        let data = fs::read(path)?;
        match check_header(&data, &header) {
            Header::Creating => continue,
            Header::Bad => {
                note(
                    &mut out.warnings,
                    format!(
                        "format-1 journal {} has a bad header; not replayed",
                        path.display()
                    ),
                );
                continue;
            }
            Header::Valid => {}
        }
        let mut pos = FILE_HEADER_LEN;
        while pos < data.len() {
            match read_frame(&data[pos..]) {
                (Frame::Record(p), n) => {
                    out.records.push(p.to_vec());
                    pos += n;
                }
                (Frame::Trailer(_), _) | (Frame::Bad(_), _) => {
                    let why = match read_frame(&data[pos..]).0 {
                        Frame::Bad(why) => why,
                        _ => "unexpected snapshot trailer",
                    };
                    let corrupt =
                        frame_after_bad(&data[pos..], 0..=MAX_RECORD_LEN).is_some_and(|next| {
                            matches!(read_frame(&data[pos + next..]).0, Frame::Record(_))
                        });
                    let is_last = journals.keys().next_back() == Some(gen);
                    if corrupt || !is_last {
                        note(
                            &mut out.warnings,
                            format!(
                                "format-1 journal {}: {why} at offset {pos}; {} bytes after it not replayed",
                                path.display(),
                                data.len() - pos
                            ),
                        );
                    } else {
                        note(
                            &mut out.warnings,
                            format!(
                                "format-1 journal {}: {why} at offset {pos}; dropped {} bytes (a write torn by a crash, never acknowledged)",
                                path.display(),
                                data.len() - pos
                            ),
                        );
                    }
                    break;
                }
            }
        }
    }
    Ok(Some(out))
}

/// Moves format-1 `files` of `dir` into `dir/`[`MIGRATED_DIR`] once their
/// content is durable in the new format, and fsyncs both directories.
pub fn move_migrated(dir: &Path, files: &[PathBuf]) -> io::Result<PathBuf> {
    let to = dir.join(MIGRATED_DIR);
    fsutil::create_private_dir(&to)?;
    for f in files {
        if let Some(name) = f.file_name() {
            match fs::rename(f, to.join(name)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    fsutil::sync_dir(&to)?;
    fsutil::sync_dir(dir)?;
    Ok(to)
}

const QUEUE_MAGIC: [u8; 4] = *b"PKQ1";
/// `seq` and `append_ns` end a format-1 queue record's payload.
const QUEUE_TRAILER_LEN: usize = 16;

/// A record of a format-1 disk queue.
#[derive(Debug, Clone, Copy)]
pub struct OldQueueRecord<'a> {
    /// Its number in the old queue (what its cursors count).
    pub seq: u64,
    pub append_ns: i64,
    /// The point body: a version byte (1), a count, the points.
    pub body: &'a [u8],
}

/// The format-1 queue segments in `dir` (`segment-` and 16 digits), in
/// order.
pub fn old_queue_segments(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = BTreeMap::new();
    for (name, path) in fsutil::list_dir(dir)? {
        if let Some(seq) = old_numbered(&name, "segment-") {
            found.insert(seq, path);
        }
    }
    Ok(found.into_values().collect())
}

fn check_queue_frame(data: &[u8]) -> Result<(OldQueueRecord<'_>, usize), &'static str> {
    let payload = check_frame(data, 1 + 4 + QUEUE_TRAILER_LEN..=MAX_RECORD_LEN)?;
    let n = payload.len();
    let trailer = &payload[n - QUEUE_TRAILER_LEN..];
    Ok((
        OldQueueRecord {
            seq: u64::from_le_bytes(trailer[..8].try_into().expect("8 bytes")),
            append_ns: i64::from_le_bytes(trailer[8..].try_into().expect("8 bytes")),
            body: &payload[..n - QUEUE_TRAILER_LEN],
        },
        FRAME_HEADER_LEN + n,
    ))
}

/// Hands every readable record of the format-1 queue `segments` with a
/// sequence number of at least `from` to `f`, in order, as the old code
/// recovered them: a damaged record is skipped when its length still leads
/// to a valid record, otherwise the rest of its file is. Changes no file;
/// returns warnings.
pub fn read_old_queue(
    segments: &[PathBuf],
    from: u64,
    f: &mut dyn FnMut(OldQueueRecord<'_>),
) -> io::Result<Vec<String>> {
    let mut warnings = Vec::new();
    let header = fsutil::file_header(QUEUE_MAGIC, 1);
    let mut last = 0u64;
    for path in segments {
        let data = fs::read(path)?;
        match check_header(&data, &header) {
            Header::Creating => continue,
            Header::Bad => {
                note(
                    &mut warnings,
                    format!(
                        "format-1 queue segment {} has a bad header; its records are lost",
                        path.display()
                    ),
                );
                continue;
            }
            Header::Valid => {}
        }
        let mut pos = FILE_HEADER_LEN;
        while pos < data.len() {
            match check_queue_frame(&data[pos..]) {
                Ok((r, n)) if r.seq > last => {
                    last = r.seq;
                    if r.seq >= from {
                        f(r);
                    }
                    pos += n;
                }
                bad => {
                    let why = match bad {
                        Err(why) => why,
                        Ok(_) => "unexpected sequence number",
                    };
                    let next =
                        frame_after_bad(&data[pos..], 1 + 4 + QUEUE_TRAILER_LEN..=MAX_RECORD_LEN)
                            .filter(|&next| {
                                check_queue_frame(&data[pos + next..])
                                    .is_ok_and(|(r, _)| r.seq > last)
                            });
                    note(
                        &mut warnings,
                        format!(
                            "format-1 queue segment {}: {why} at offset {pos}; {}",
                            path.display(),
                            if next.is_some() {
                                "skipped the damaged record"
                            } else {
                                "skipped the rest of the file"
                            }
                        ),
                    );
                    match next {
                        Some(next) => pos += next,
                        None => break,
                    }
                }
            }
        }
    }
    Ok(warnings)
}
