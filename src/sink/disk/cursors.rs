//! Cursor files: where each sink is in the queue, persisted after every
//! acknowledged batch.
//!
//! `cursor-<sink>` is 20 bytes: a magic, `seq: u64`, `point: u32`, and a
//! CRC-32C of those 16 bytes. It means: every queue record before log
//! record `seq`, and the first `point` points of record `seq`, are
//! acknowledged by the sink. The magic is `PKC2` (sequence numbers of the
//! durable log); `PKC1` cursors count the records of a format-1 queue and
//! are read only by the migration. The sink name is kept to ASCII letters,
//! digits, `-` and `_`; every other byte is written `%XX`.

use crate::durable::fsutil;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

pub const CURSOR_PREFIX: &str = "cursor-";
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

/// Replaces a sink's cursor file atomically: tmp file, fsync, rename,
/// directory fsync.
pub fn write(dir: &Path, sink: &str, pos: Pos) -> io::Result<()> {
    let name = cursor_name(sink);
    let path = dir.join(&name);
    let tmp = dir.join(format!("{name}.tmp"));
    let mut buf = [0u8; FILE_LEN];
    buf[..4].copy_from_slice(&MAGIC);
    buf[4..12].copy_from_slice(&pos.seq.to_le_bytes());
    buf[12..16].copy_from_slice(&pos.point.to_le_bytes());
    let crc = crc32c::crc32c(&buf[..16]);
    buf[16..].copy_from_slice(&crc.to_le_bytes());
    let mut file = fsutil::create_private(&tmp)?;
    file.write_all(&buf)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, &path)?;
    fsutil::sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
