//! Cursor files: where each sink is in the queue, written after every
//! acknowledged batch.
//!
//! A cursor file is created atomically ([`write`]: tmp file, fsync,
//! rename, directory fsync) and from then on overwritten in place by a
//! [`CursorFile`]: one 20-byte `pwrite` per acknowledged batch, which a
//! `kill -9` cannot undo, and an fsync at most once per sync interval. A
//! power loss can therefore bring back a cursor up to one interval old:
//! those batches are delivered again, which at-least-once allows. A write
//! torn by the power loss fails the checksum, and the sink starts again
//! from the oldest record on disk; nothing acknowledged is lost either way.
//!
//! `cursor-<sink>` is 20 bytes: a magic, `seq: u64`, `point: u32`, and a
//! CRC-32C of those 16 bytes. It means: every queue record before log
//! record `seq`, and the first `point` points of record `seq`, are
//! acknowledged by the sink. The magic is `PKC2` (sequence numbers of the
//! durable log); `PKC1` cursors count the records of a format-1 queue and
//! are read only by the migration. The sink name is kept to ASCII letters,
//! digits, `-` and `_`; every other byte is written `%XX`.

use crate::durable::fsutil;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub const CURSOR_PREFIX: &str = "cursor-";
/// The sinks the queue has placed, one encoded name a line: a configured
/// sink listed here without a cursor file lost its cursor (and starts
/// again from the oldest record), one not listed is new.
pub const SINKS_FILE: &str = "SINKS";
/// Cursors in log sequence numbers.
pub const MAGIC: [u8; 4] = *b"PKC2";
/// Cursors of a format-1 queue.
pub const MAGIC_V1: [u8; 4] = *b"PKC1";
const FILE_LEN: usize = 20;

/// A position in the queue: the next point to deliver is point `point` of
/// record `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub seq: u64,
    pub point: u32,
}

pub fn encode_sink_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn decode_sink_name(enc: &str) -> Option<String> {
    let b = enc.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else if b[i].is_ascii_alphanumeric() || b[i] == b'-' || b[i] == b'_' {
            out.push(b[i]);
            i += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

pub fn cursor_name(sink: &str) -> String {
    format!("{CURSOR_PREFIX}{}", encode_sink_name(sink))
}

/// Reads a cursor file; `Ok((magic, pos))`.
pub fn read(path: &Path) -> Result<([u8; 4], Pos), String> {
    let data = fs::read(path).map_err(|e| e.to_string())?;
    if data.len() != FILE_LEN {
        return Err(format!("{} bytes, expected {FILE_LEN}", data.len()));
    }
    let magic: [u8; 4] = data[..4].try_into().expect("4 bytes");
    if magic != MAGIC && magic != MAGIC_V1 {
        return Err("bad magic".into());
    }
    let le_u32 = |b: &[u8]| u32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
    if crc32c::crc32c(&data[..16]) != le_u32(&data[16..]) {
        return Err("checksum mismatch".into());
    }
    Ok((
        magic,
        Pos {
            seq: u64::from_le_bytes(data[4..12].try_into().expect("8 bytes")),
            point: le_u32(&data[12..]),
        },
    ))
}

fn encode(pos: Pos) -> [u8; FILE_LEN] {
    let mut buf = [0u8; FILE_LEN];
    buf[..4].copy_from_slice(&MAGIC);
    buf[4..12].copy_from_slice(&pos.seq.to_le_bytes());
    buf[12..16].copy_from_slice(&pos.point.to_le_bytes());
    let crc = crc32c::crc32c(&buf[..16]);
    buf[16..].copy_from_slice(&crc.to_le_bytes());
    buf
}

/// Replaces a sink's cursor file atomically: tmp file, fsync, rename,
/// directory fsync.
pub fn write(dir: &Path, sink: &str, pos: Pos) -> io::Result<()> {
    let name = cursor_name(sink);
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = fsutil::create_private(&tmp)?;
    file.write_all(&encode(pos))?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, dir.join(&name))?;
    fsutil::sync_dir(dir)
}

/// The sink names in `dir`'s [`SINKS_FILE`]; None if there is none (a
/// queue from before the file existed) or it cannot be read.
pub fn read_sinks(dir: &Path) -> Option<Vec<String>> {
    let text = fs::read_to_string(dir.join(SINKS_FILE)).ok()?;
    Some(text.lines().filter_map(decode_sink_name).collect())
}

/// Replaces `dir`'s [`SINKS_FILE`] atomically with `names`; writes
/// nothing if it already says that (an agent restarted on a full disk
/// needs no room for it).
pub fn write_sinks(dir: &Path, names: &[&str]) -> io::Result<()> {
    if read_sinks(dir).is_some_and(|have| have.iter().map(String::as_str).eq(names.iter().copied()))
    {
        return Ok(());
    }
    let tmp = dir.join(format!("{SINKS_FILE}.tmp"));
    let mut file = fsutil::create_private(&tmp)?;
    for name in names {
        writeln!(file, "{}", encode_sink_name(name))?;
    }
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, dir.join(SINKS_FILE))?;
    fsutil::sync_dir(dir)
}

/// One sink's cursor file, kept open: see the module docs for what is
/// written when.
#[derive(Debug)]
pub struct CursorFile {
    dir: PathBuf,
    sink: String,
    /// Open once the file has been created by [`write`] in this process.
    file: Option<File>,
    /// Written since the last fsync.
    dirty: bool,
}

impl CursorFile {
    /// The cursor of `sink` in `dir`. A whole cursor file already there
    /// (the queue's open writes one for every sink) is written in place
    /// from the first store on: saving a cursor never needs room, not even
    /// on a disk that is full when the agent starts.
    pub fn new(dir: &Path, sink: &str) -> CursorFile {
        let path = dir.join(cursor_name(sink));
        let file = (read(&path).is_ok())
            .then(|| OpenOptions::new().write(true).open(&path).ok())
            .flatten();
        CursorFile {
            dir: dir.to_path_buf(),
            sink: sink.to_string(),
            file,
            dirty: false,
        }
    }

    /// Records `pos`: the first time atomically and durably, afterwards in
    /// place, durable at the next [`CursorFile::sync`].
    pub fn store(&mut self, pos: Pos) -> io::Result<()> {
        match &self.file {
            Some(f) => {
                f.write_all_at(&encode(pos), 0)?;
                self.dirty = true;
            }
            None => {
                write(&self.dir, &self.sink, pos)?;
                let path = self.dir.join(cursor_name(&self.sink));
                self.file = Some(OpenOptions::new().write(true).open(path)?);
            }
        }
        Ok(())
    }

    /// Makes the last [`CursorFile::store`] durable, if it is not yet.
    pub fn sync(&mut self) -> io::Result<()> {
        if let (true, Some(f)) = (self.dirty, &self.file) {
            f.sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// After a restart, saving a cursor or the sink list needs no new
    /// file: on a full disk neither could be created.
    #[test]
    fn a_restart_saves_cursors_in_place_and_rewrites_nothing_unchanged() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write(dir, "vm", Pos { seq: 3, point: 0 }).unwrap();
        write_sinks(dir, &["vm"]).unwrap();
        let inode = |name: &str| fs::metadata(dir.join(name)).unwrap().ino();
        let (cursor, sinks) = (inode(&cursor_name("vm")), inode(SINKS_FILE));
        let mut file = CursorFile::new(dir, "vm");
        file.store(Pos { seq: 9, point: 2 }).unwrap();
        file.sync().unwrap();
        write_sinks(dir, &["vm"]).unwrap();
        assert_eq!(inode(&cursor_name("vm")), cursor, "written in place");
        assert_eq!(inode(SINKS_FILE), sinks, "not rewritten");
        assert_eq!(
            read(&dir.join(cursor_name("vm"))).unwrap().1,
            Pos { seq: 9, point: 2 }
        );
        write_sinks(dir, &["vm", "influx"]).unwrap();
        assert_eq!(read_sinks(dir).unwrap(), ["vm", "influx"]);
    }

    #[test]
    fn sink_names_are_safe_file_names() {
        for name in ["vm", "a/b", "../x", "x.tmp", "", "é %", "sink-1_2"] {
            let enc = encode_sink_name(name);
            assert!(enc
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_%".contains(&b)));
            assert_eq!(decode_sink_name(&enc).as_deref(), Some(name));
        }
        assert_eq!(encode_sink_name("a/b"), "a%2Fb");
        assert_eq!(decode_sink_name("a.tmp"), None);
    }

    #[test]
    fn cursors_round_trip_and_damage_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let pos = Pos { seq: 42, point: 7 };
        write(tmp.path(), "a/b", pos).unwrap();
        let path = tmp.path().join(cursor_name("a/b"));
        assert_eq!(read(&path), Ok((MAGIC, pos)));
        let mut data = fs::read(&path).unwrap();
        data[5] ^= 1;
        fs::write(&path, &data).unwrap();
        assert_eq!(read(&path), Err("checksum mismatch".into()));
        fs::write(&path, b"short").unwrap();
        assert!(read(&path).unwrap_err().contains("expected 20"));
    }

    #[test]
    fn the_sinks_file_round_trips_any_name() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(read_sinks(tmp.path()), None, "no file yet");
        let names = ["vm", "a/b", "é %", ""];
        write_sinks(tmp.path(), &names).unwrap();
        assert_eq!(read_sinks(tmp.path()).unwrap(), names);
        write_sinks(tmp.path(), &["vm"]).unwrap();
        assert_eq!(read_sinks(tmp.path()).unwrap(), ["vm"]);
    }

    #[test]
    fn a_cursor_file_is_created_then_overwritten_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(cursor_name("vm"));
        let mut f = CursorFile::new(tmp.path(), "vm");
        f.sync().unwrap();
        assert!(!path.exists(), "nothing stored, nothing written");
        let first = Pos { seq: 3, point: 1 };
        f.store(first).unwrap();
        assert_eq!(read(&path), Ok((MAGIC, first)));
        assert!(!f.dirty, "the first store is durable at once");
        let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
        let before = inode(&path);
        let second = Pos { seq: 9, point: 0 };
        f.store(second).unwrap();
        assert_eq!(read(&path), Ok((MAGIC, second)));
        assert_eq!(inode(&path), before, "later stores write in place");
        assert!(f.dirty);
        f.sync().unwrap();
        assert!(!f.dirty);
        assert!(!tmp
            .path()
            .join(format!("{}.tmp", cursor_name("vm")))
            .exists());
    }
}
