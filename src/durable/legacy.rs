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

use super::fsutil;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

/// Length of [`file_header`].
const FILE_HEADER_LEN: usize = 8;
/// Length of a frame's `len | crc` header.
const FRAME_HEADER_LEN: usize = 8;

// ---------------------------------------------------------------------------
// File headers.

/// The header a data file starts with: `magic`, then `version` as u32 LE.
fn file_header(magic: [u8; 4], version: u32) -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[..4].copy_from_slice(&magic);
    h[4..].copy_from_slice(&version.to_le_bytes());
    h
}

/// What the start of a file says about its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Header {
    /// The expected header.
    Valid,
    /// Only a prefix of it (possibly empty), and nothing else: the process
    /// crashed while creating the file, before it could hold a record.
    Creating,
    /// Anything else.
    Bad,
}

/// Checks that `data` (a whole file) starts with `header`.
fn check_header(data: &[u8], header: &[u8; FILE_HEADER_LEN]) -> Header {
    if data.len() < FILE_HEADER_LEN && header.starts_with(data) {
        Header::Creating
    } else if data.len() < FILE_HEADER_LEN || data[..FILE_HEADER_LEN] != header[..] {
        Header::Bad
    } else {
        Header::Valid
    }
}

// ---------------------------------------------------------------------------
// Frames.

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("4 bytes"))
}

#[cfg(test)] // written by the old code only
/// The `len | crc` header of a frame holding `payload`.
fn frame_header(payload: &[u8]) -> [u8; FRAME_HEADER_LEN] {
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len), payload).to_le_bytes();
    let mut h = [0u8; FRAME_HEADER_LEN];
    h[..4].copy_from_slice(&len);
    h[4..].copy_from_slice(&crc);
    h
}

/// Checks the frame at the start of `data`, whose payload length must lie
/// in `lens`; returns its payload (the frame is `FRAME_HEADER_LEN +
/// payload.len()` bytes) or why it is not a valid frame.
fn check_frame(data: &[u8], lens: RangeInclusive<usize>) -> Result<&[u8], &'static str> {
    if data.len() < FRAME_HEADER_LEN {
        return Err("truncated frame header");
    }
    let len = le_u32(data) as usize;
    if !lens.contains(&len) {
        return Err("record length out of range");
    }
    if data.len() - FRAME_HEADER_LEN < len {
        return Err("truncated record");
    }
    let payload = &data[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len];
    if crc32c::crc32c_append(crc32c::crc32c(&data[..4]), payload) != le_u32(&data[4..]) {
        return Err("checksum mismatch");
    }
    Ok(payload)
}

/// Where the frame after a bad one at the start of `data` would start,
/// trusting its length field (which must lie in `lens`), if that leaves room
/// for another frame header.
fn frame_after_bad(data: &[u8], lens: RangeInclusive<usize>) -> Option<usize> {
    if data.len() < FRAME_HEADER_LEN {
        return None;
    }
    let len = le_u32(data) as usize;
    if !lens.contains(&len) {
        return None;
    }
    let next = FRAME_HEADER_LEN + len;
    (next + FRAME_HEADER_LEN <= data.len()).then_some(next)
}

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
    if check_header(data, &file_header(SNAPSHOT_MAGIC, 1)) != Header::Valid {
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
    let header = file_header(JOURNAL_MAGIC, 1);
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
    let header = file_header(QUEUE_MAGIC, 1);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        [&frame_header(payload)[..], payload].concat()
    }

    #[test]
    fn headers() {
        let h = file_header(*b"PKX1", 1);
        assert_eq!(h, *b"PKX1\x01\0\0\0");
        assert_eq!(check_header(&h, &h), Header::Valid);
        assert_eq!(check_header(&[&h[..], b"more"].concat(), &h), Header::Valid);
        assert_eq!(check_header(b"", &h), Header::Creating);
        assert_eq!(check_header(b"PKX", &h), Header::Creating);
        assert_eq!(check_header(b"PKY", &h), Header::Bad);
        assert_eq!(check_header(&file_header(*b"PKX1", 2), &h), Header::Bad);
    }

    #[test]
    fn frames_round_trip_and_damage_is_named() {
        let f = frame(b"hello");
        assert_eq!(&f[..4], &5u32.to_le_bytes());
        assert_eq!(check_frame(&f, 0..=100), Ok(&b"hello"[..]));
        // Trailing bytes belong to the next frame.
        let two = [frame(b"hello"), frame(b"")].concat();
        assert_eq!(check_frame(&two, 0..=100), Ok(&b"hello"[..]));
        assert_eq!(check_frame(&two[f.len()..], 0..=100), Ok(&b""[..]));

        assert_eq!(check_frame(&f[..7], 0..=100), Err("truncated frame header"));
        assert_eq!(check_frame(&f, 0..=4), Err("record length out of range"));
        assert_eq!(check_frame(&f, 6..=100), Err("record length out of range"));
        assert_eq!(check_frame(&f[..12], 0..=100), Err("truncated record"));
        let mut bad = f.clone();
        bad[10] ^= 1;
        assert_eq!(check_frame(&bad, 0..=100), Err("checksum mismatch"));
        // Zeros are not an empty record.
        assert_eq!(check_frame(&[0u8; 16], 0..=100), Err("checksum mismatch"));
    }

    #[test]
    fn frame_after_a_bad_one() {
        let mut bad = frame(b"hello");
        bad[9] ^= 1;
        let data = [bad.clone(), frame(b"next")].concat();
        assert_eq!(frame_after_bad(&data, 0..=100), Some(bad.len()));
        assert_eq!(check_frame(&data[bad.len()..], 0..=100), Ok(&b"next"[..]));
        // No room for another frame header after it.
        assert_eq!(frame_after_bad(&bad, 0..=100), None);
        assert_eq!(
            frame_after_bad(&[&bad[..], &[0u8; 7]].concat(), 0..=100),
            None
        );
        // A length out of range cannot be trusted.
        assert_eq!(frame_after_bad(&data, 0..=4), None);
        assert_eq!(frame_after_bad(&data[..7], 0..=100), None);
    }
}
