//! Snapshots: a client's whole state as records in a file of its own, so
//! that the segments holding its older records can go.
//!
//! `snapshot-<S>` (S: 20 decimal digits) holds the client's state as of
//! every log record below sequence number `S`: a file header (magic `PKS2`,
//! `first_seq` = S), records numbered from 1 (the first, of kind
//! `KIND_SNAPSHOT_META`, names the log by its id, since a client may move
//! from one log to another), and a commit marker whose `seq` is their
//! count. A snapshot without that last marker (lost end),
//! or with any damage, is unusable: it is moved aside and the next older
//! one is tried. A snapshot is written to `snapshot-<S>.tmp`, fsynced,
//! renamed and the directory fsynced; older snapshots are deleted only
//! after that. Leftover `.tmp` files are removed when snapshots are loaded.

use super::fsutil;
use super::io::{Io, LogFile};
use super::record::{self, FileHeader, KIND_COMMIT, KIND_SNAPSHOT_META, SNAPSHOT_MAGIC};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const SNAPSHOT_PREFIX: &str = "snapshot-";
const BUFFER: usize = 1 << 20;

pub fn snapshot_name(cover: u64) -> String {
    format!("{SNAPSHOT_PREFIX}{cover:020}")
}

/// A loaded snapshot.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// It covers the log records below this...
    pub cover: u64,
    /// ... of the log of this id (0: of no log in particular; what a
    /// migration writes).
    pub log_id: u64,
    /// Kind, version and payload of each record, in order.
    pub records: Vec<(u8, u8, Vec<u8>)>,
}

/// A snapshot's records, or why it is unusable.
fn parse(data: &[u8], cover: u64) -> Result<Vec<(u8, u8, Vec<u8>)>, String> {
    match record::check_file_header(data, SNAPSHOT_MAGIC) {
        FileHeader::Valid(c) if c == cover => {}
        FileHeader::Valid(_) => return Err("header names another snapshot".into()),
        FileHeader::Creating | FileHeader::Bad(_) => return Err("bad or missing header".into()),
    }
    let mut out = Vec::new();
    let mut pos = record::FILE_HEADER_LEN;
    loop {
        if pos == data.len() {
            return Err("missing commit marker (truncated file)".into());
        }
        let f = record::parse(&data[pos..]).map_err(|why| format!("{why} at offset {pos}"))?;
        pos += f.frame_len();
        if f.kind == KIND_COMMIT {
            if f.seq != out.len() as u64 || f.commit_first() != Some(1) {
                return Err(format!(
                    "commit marker counts {} records, file holds {}",
                    f.seq,
                    out.len()
                ));
            }
            if pos != data.len() {
                return Err(format!(
                    "{} bytes after the commit marker",
                    data.len() - pos
                ));
            }
            return Ok(out);
        }
        if f.seq != out.len() as u64 + 1 {
            return Err(format!("unexpected sequence number at offset {pos}"));
        }
        out.push((f.kind, f.version, f.payload.to_vec()));
    }
}

/// Loads the newest usable snapshot in `dir`, moving unusable ones aside
/// (with a warning each) and removing unfinished `.tmp` files.
pub fn load_newest(
    io: &dyn Io,
    dir: &Path,
    what: &str,
) -> io::Result<(Option<Snapshot>, Vec<String>)> {
    let mut found: BTreeMap<u64, PathBuf> = BTreeMap::new();
    for (name, path) in io.list(dir)? {
        if let Some(c) = fsutil::parse_numbered20(&name, SNAPSHOT_PREFIX) {
            found.insert(c, path);
        } else if name.starts_with(SNAPSHOT_PREFIX)
            && name.ends_with(".tmp")
            && fsutil::parse_numbered20(name.trim_end_matches(".tmp"), SNAPSHOT_PREFIX).is_some()
        {
            // Unfinished: what it would replace is all still there.
            io.remove(&path)?;
        }
    }
    let mut warnings = Vec::new();
    for (&cover, path) in found.iter().rev() {
        let data = io.read(path)?;
        match parse(&data, cover) {
            Ok(mut records) => {
                // The first record names the log the cut refers to.
                let log_id = match records.first() {
                    Some((KIND_SNAPSHOT_META, 1, p)) if p.len() == 8 => {
                        u64::from_le_bytes(p[..].try_into().expect("8 bytes"))
                    }
                    _ => 0,
                };
                if records.first().is_some_and(|r| r.0 == KIND_SNAPSHOT_META) {
                    records.remove(0);
                }
                return Ok((
                    Some(Snapshot {
                        cover,
                        log_id,
                        records,
                    }),
                    warnings,
                ));
            }
            Err(why) => {
                let aside = fsutil::move_aside(dir, path)?;
                let msg = format!(
                    "{what}: snapshot {} is unreadable ({why}); moved to {}, recovering from older files",
                    path.display(),
                    aside.display()
                );
                tracing::error!("{msg}");
                warnings.push(msg);
            }
        }
    }
    Ok((None, warnings))
}

/// Writes one snapshot; see the module docs. Dropped without
/// [`SnapshotWriter::finish`], it leaves a `.tmp` file that the next load
/// removes.
pub struct SnapshotWriter {
    io: Arc<dyn Io>,
    dir: PathBuf,
    cover: u64,
    tmp: PathBuf,
    file: Option<Arc<dyn LogFile>>,
    buf: Vec<u8>,
    count: u64,
    /// Bytes written so far.
    bytes: u64,
    finished: bool,
}

impl Drop for SnapshotWriter {
    /// A snapshot given up leaves no temporary file taking room.
    fn drop(&mut self) {
        if !self.finished && self.file.is_some() {
            let _ = self.io.remove(&self.tmp);
        }
    }
}

impl SnapshotWriter {
    /// A snapshot of the state as of every record below `cover` of the log
    /// `log_id` (0: none in particular). Does no I/O: the file is created
    /// by the first flush or by `finish`.
    pub fn new(io: Arc<dyn Io>, dir: &Path, cover: u64, log_id: u64) -> SnapshotWriter {
        let mut buf = record::file_header(SNAPSHOT_MAGIC, cover).to_vec();
        buf.extend_from_slice(&record::frame(
            1,
            KIND_SNAPSHOT_META,
            1,
            &log_id.to_le_bytes(),
        ));
        SnapshotWriter {
            tmp: dir.join(format!("{}.tmp", snapshot_name(cover))),
            io,
            dir: dir.to_path_buf(),
            cover,
            file: None,
            buf,
            count: 1,
            bytes: 0,
            finished: false,
        }
    }

    /// The file's size so far (what is buffered included).
    pub fn bytes(&self) -> u64 {
        self.bytes + self.buf.len() as u64
    }

    pub fn cover(&self) -> u64 {
        self.cover
    }

    fn file(&mut self) -> io::Result<Arc<dyn LogFile>> {
        if let Some(f) = &self.file {
            return Ok(f.clone());
        }
        match self.io.remove(&self.tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let f = self.io.create_new(&self.tmp)?;
        self.file = Some(f.clone());
        Ok(f)
    }

    fn flush(&mut self) -> io::Result<()> {
        let f = self.file()?;
        f.append(&self.buf)?;
        self.bytes += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    pub fn write_record(&mut self, kind: u8, version: u8, payload: &[u8]) -> io::Result<()> {
        if payload.len() > record::MAX_PAYLOAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a snapshot record of {} bytes exceeds the limit",
                    payload.len()
                ),
            ));
        }
        self.count += 1;
        self.buf
            .extend_from_slice(&record::frame(self.count, kind, version, payload));
        if self.buf.len() >= BUFFER {
            self.flush()?;
        }
        Ok(())
    }

    /// Ends the file, makes it durable under its final name, and deletes
    /// older snapshots.
    pub fn finish(mut self) -> io::Result<()> {
        let marker = record::commit_marker(1, self.count);
        self.buf.extend_from_slice(&marker);
        self.flush()?;
        self.file()?.sync_data()?;
        let path = self.dir.join(snapshot_name(self.cover));
        self.io.rename(&self.tmp, &path)?;
        self.finished = true;
        self.io.sync_dir(&self.dir)?;
        for (name, old) in self.io.list(&self.dir)? {
            if fsutil::parse_numbered20(&name, SNAPSHOT_PREFIX).is_some_and(|c| c < self.cover) {
                self.io.remove(&old)?;
            }
        }
        self.io.sync_dir(&self.dir)
    }
}
