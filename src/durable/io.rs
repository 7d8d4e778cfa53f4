//! The file operations the engine makes, behind a trait so that tests can
//! inject faults ([`FaultyIo`]): a failed or short write, a failed fsync.
//! [`RealIo`] is the one used outside tests.
//!
//! Contract: [`LogFile::append`] writes all of `buf` at the file's write
//! position and moves it on, or returns an error (a short write reports an
//! error too, and may have left a prefix behind, as a crash can). The
//! position starts at the end of a file created or opened, at 0 in one
//! reused ([`Io::reuse`], whose old bytes past it stay until written
//! over), and moves to `len` at [`LogFile::set_len`].
//! [`LogFile::sync_data`] returns `Ok` only once everything appended
//! before it is on stable storage.

use super::fsutil;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// An open data file: appended to by one writer, read at offsets by any.
pub trait LogFile: Send + Sync {
    fn append(&self, buf: &[u8]) -> io::Result<()>;
    fn sync_data(&self) -> io::Result<()>;
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
}

/// The directory-level operations.
pub trait Io: Send + Sync + fmt::Debug + 'static {
    /// Creates `path` (which must not exist), mode 0600, for reading and
    /// appending.
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn LogFile>>;
    /// Opens an existing file for reading and appending.
    fn open(&self, path: &Path) -> io::Result<Arc<dyn LogFile>>;
    /// Opens an existing file for reading and for writing over it from
    /// its start; its length stays until [`LogFile::set_len`]. Writing over
    /// blocks a file already has changes no metadata, so its `fdatasync`
    /// is one data write and a cache flush, where a growing file's adds
    /// an inode write.
    fn reuse(&self, path: &Path) -> io::Result<Arc<dyn LogFile>>;
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Fsyncs a directory: creations, renames and removals in it.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// The UTF-8 names in `dir`, with their paths.
    fn list(&self, dir: &Path) -> io::Result<Vec<(String, PathBuf)>>;
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealIo;

/// A file and its write position (positional writes, not `O_APPEND`: a
/// reused file is written over from its start).
struct RealFile {
    file: File,
    /// Only the one writer moves it.
    pos: AtomicU64,
}

impl RealFile {
    fn at(file: File, pos: u64) -> Arc<dyn LogFile> {
        Arc::new(RealFile {
            file,
            pos: AtomicU64::new(pos),
        })
    }
}

impl LogFile for RealFile {
    fn append(&self, buf: &[u8]) -> io::Result<()> {
        let pos = self.pos.load(Ordering::Relaxed);
        self.file.write_all_at(buf, pos)?;
        self.pos.store(pos + buf.len() as u64, Ordering::Relaxed);
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.pos.store(len, Ordering::Relaxed);
        Ok(())
    }
}

impl Io for RealIo {
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn LogFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(fsutil::FILE_MODE)
            .open(path)?;
        Ok(RealFile::at(f, 0))
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn LogFile>> {
        let f = OpenOptions::new().read(true).write(true).open(path)?;
        let end = f.metadata()?.len();
        Ok(RealFile::at(f, end))
    }
    fn reuse(&self, path: &Path) -> io::Result<Arc<dyn LogFile>> {
        let f = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(RealFile::at(f, 0))
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        fsutil::sync_dir(dir)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
        fsutil::list_dir(dir)
    }
}

/// Makes `path` a file of `bytes` zeros, real blocks (not a sparse
/// length), growing it if it is smaller, if the disk has room for the
/// growth and `keep_free` more: room kept for a full disk, given up by
/// deleting the file. Fails, leaving no partial file, if a write does.
pub fn hold_room(io: &dyn Io, path: &Path, bytes: u64, keep_free: u64) -> io::Result<()> {
    let have = std::fs::metadata(path).map_or(0, |m| m.len());
    if have >= bytes {
        return Ok(());
    }
    let growth = bytes - have;
    let dir = path.parent().unwrap_or(Path::new("."));
    if fsutil::free_bytes(dir).is_ok_and(|free| free < growth + keep_free) {
        return Err(io::Error::new(
            io::ErrorKind::StorageFull,
            "no room to hold more room",
        ));
    }
    let file = match have {
        0 => {
            let _ = io.remove(path);
            io.create_new(path)
        }
        _ => io.open(path),
    };
    let zeros = vec![0u8; 1 << 20];
    let grown = file.and_then(|f| {
        let mut left = growth;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            f.append(&zeros[..n])?;
            left -= n as u64;
        }
        f.sync_data()
    });
    if grown.is_err() {
        let _ = io.remove(path);
    }
    grown
}

/// Faults to inject through [`FaultyIo`]; shared, so a test can arm them
/// while the engine runs.
#[derive(Debug, Default)]
pub struct Faults {
    /// Every append fails with ENOSPC after writing half its bytes.
    pub short_writes: AtomicBool,
    /// Every `sync_data` fails with EIO.
    pub failing_syncs: AtomicBool,
    /// Every `set_len` (the cut of a failed group) fails with EIO.
    pub failing_set_len: AtomicBool,
    /// Every append fails with EIO, writing nothing.
    pub failing_writes: AtomicBool,
    /// `sync_data` calls that succeeded.
    pub syncs: AtomicU64,
}

/// [`RealIo`] with the [`Faults`] it is given.
#[derive(Debug, Clone, Default)]
pub struct FaultyIo {
    pub faults: Arc<Faults>,
    /// If set, only files under this directory get the faults (two logs
    /// on two filesystems, one failing).
    pub only_under: Option<PathBuf>,
}

struct FaultyFile {
    file: Arc<dyn LogFile>,
    faults: Arc<Faults>,
}

impl LogFile for FaultyFile {
    fn append(&self, buf: &[u8]) -> io::Result<()> {
        if self.faults.failing_writes.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected: write failed (EIO)"));
        }
        if self.faults.short_writes.load(Ordering::SeqCst) {
            self.file.append(&buf[..buf.len() / 2])?;
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "injected: no space left on device",
            ));
        }
        self.file.append(buf)
    }
    fn sync_data(&self) -> io::Result<()> {
        if self.faults.failing_syncs.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected: fsync failed (EIO)"));
        }
        self.file.sync_data()?;
        self.faults.syncs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        if self.faults.failing_set_len.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected: truncate failed (EIO)"));
        }
        self.file.set_len(len)
    }
}

impl FaultyIo {
    fn wrap(&self, path: &Path, file: Arc<dyn LogFile>) -> Arc<dyn LogFile> {
        if self
            .only_under
            .as_ref()
            .is_some_and(|d| !path.starts_with(d))
        {
            return file;
        }
        Arc::new(FaultyFile {
            file,
            faults: self.faults.clone(),
        })
    }
}

impl Io for FaultyIo {
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn LogFile>> {
        Ok(self.wrap(path, RealIo.create_new(path)?))
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn LogFile>> {
        Ok(self.wrap(path, RealIo.open(path)?))
    }
    fn reuse(&self, path: &Path) -> io::Result<Arc<dyn LogFile>> {
        Ok(self.wrap(path, RealIo.reuse(path)?))
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        RealIo.read(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        RealIo.sync_dir(dir)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        RealIo.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealIo.rename(from, to)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
        RealIo.list(dir)
    }
}
