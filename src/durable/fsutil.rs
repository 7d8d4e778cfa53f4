//! File handling for the engine and its clients: private directories and
//! files, the exclusive `LOCK` file, directory fsyncs, moving damaged files
//! aside, numbered file names, and the [`Failure`] a log keeps once a write
//! or fsync has failed.
//!
//! Unix only, like the rest of the crate: modes are set at creation.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Mode of every file created in a data directory.
pub const FILE_MODE: u32 = 0o600;
/// Mode of a data directory created by [`create_private_dir`].
pub const DIR_MODE: u32 = 0o700;
/// The file [`lock_dir`] locks.
pub const LOCK_FILE: &str = "LOCK";

// ---------------------------------------------------------------------------
// Directories and files.

/// Creates `dir` and any missing parents with mode 0700 (an existing
/// directory is left as it is).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
}

/// Takes the exclusive lock on `dir/LOCK` (created 0600 if missing, never
/// truncated) without waiting. Held until the returned file is dropped. If
/// another process (or another open in this one) holds it, the error is
/// `WouldBlock`, naming the directory as in use by another `holder`.
pub fn lock_dir(dir: &Path, holder: &str) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(dir.join(LOCK_FILE))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("{} is in use by another {holder}", dir.display()),
        )),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Whether another process (or another open in this one) holds `dir`'s
/// lock now, without creating anything: false when there is no `LOCK`.
/// For `pushkit check`, which runs beside a live agent.
pub fn lock_is_held(dir: &Path) -> io::Result<bool> {
    let file = match File::open(dir.join(LOCK_FILE)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    match file.try_lock() {
        // Dropping the file releases the lock at once.
        Ok(()) => Ok(false),
        Err(fs::TryLockError::WouldBlock) => Ok(true),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Fsyncs a directory, making the creations, renames and removals in it
/// durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates (or truncates) `path` for writing, mode 0600: a file that is
/// written whole, then fsynced and renamed into place.
pub fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)
}

/// Creates `dir/name` (which must not exist), mode 0600, opened for reading
/// and appending; writes `header`, fsyncs the file and then the directory,
/// so that the file is durable before any record in it can be acknowledged.
pub fn create_with_header(dir: &Path, name: &str, header: &[u8]) -> io::Result<File> {
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(dir.join(name))?;
    file.write_all(header)?;
    file.sync_all()?;
    sync_dir(dir)?;
    Ok(file)
}

/// The entries of `dir` whose names are UTF-8 (no other name is one of
/// ours), with their paths, in no particular order.
pub fn list_dir(dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Ok(name) = entry.file_name().into_string() {
            out.push((name, entry.path()));
        }
    }
    Ok(out)
}

/// The number in a file name made of `prefix` and decimal digits only.
pub fn parse_numbered(name: &str, prefix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The number in a name of the engine's files: `prefix` and exactly 20
/// decimal digits (the format-1 files had fewer).
pub fn parse_numbered20(name: &str, prefix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?;
    (digits.len() == 20).then_some(())?;
    parse_numbered(name, prefix)
}

fn unix_now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A free `<name>.corrupt-<unix time>[-n]` path next to `path`: never one
/// that exists already, so an earlier casualty is never overwritten.
pub fn corrupt_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ts = unix_now_secs();
    let mut n = 0u32;
    loop {
        let candidate = if n == 0 {
            path.with_file_name(format!("{name}.corrupt-{ts}"))
        } else {
            path.with_file_name(format!("{name}.corrupt-{ts}-{n}"))
        };
        if fs::symlink_metadata(&candidate).is_err() {
            return candidate;
        }
        n += 1;
    }
}

/// Renames a damaged file in `dir` to its [`corrupt_path`] (it is evidence:
/// never delete it) and fsyncs the directory. Returns the new path.
pub fn move_aside(dir: &Path, path: &Path) -> io::Result<PathBuf> {
    let aside = corrupt_path(path);
    fs::rename(path, &aside)?;
    sync_dir(dir)?;
    Ok(aside)
}

/// A failed write or fsync, kept and handed to every waiting and every later
/// caller: after a failed fsync the kernel may have dropped the dirty pages,
/// so a retry could report durability that is not there. Only a restart
/// (which re-reads what is really on disk) clears it.
#[derive(Clone, Debug)]
pub struct Failure {
    pub kind: io::ErrorKind,
    pub message: Arc<str>,
}

impl Failure {
    pub fn new(kind: io::ErrorKind, message: String) -> Failure {
        Failure {
            kind,
            message: message.into(),
        }
    }

    /// Keeps the first failure: if `slot` is empty, logs `message` as an
    /// error, stores the failure and returns it; otherwise changes nothing
    /// and returns `None`.
    pub fn set_first(
        slot: &mut Option<Failure>,
        kind: io::ErrorKind,
        message: String,
    ) -> Option<Failure> {
        if slot.is_some() {
            return None;
        }
        tracing::error!("{message}");
        let failure = Failure::new(kind, message);
        *slot = Some(failure.clone());
        Some(failure)
    }

    /// A fresh error (`io::Error` is not `Clone`) of the same kind and message.
    pub fn to_error(&self) -> io::Error {
        io::Error::new(self.kind, self.message.to_string())
    }
}

/// Bytes an unprivileged writer may still use on the filesystem holding
/// `path` (statvfs's `f_bavail` × `f_frsize`).
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the path"))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call,
    // and `stat` points to writable memory of the struct's size; statvfs
    // writes nothing else.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled the struct.
    #[allow(unsafe_code)]
    let stat = unsafe { stat.assume_init() };
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Helpers for the tests of the modules that keep data files.
#[cfg(test)]
pub(crate) mod testing {
    use std::fs::{self, OpenOptions};
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::sync::Arc;

    /// The names of the entries in `dir`, sorted.
    pub fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    /// Appends `bytes` to the file at `path` (e.g. a torn write).
    pub fn append_bytes(path: &Path, bytes: &[u8]) {
        OpenOptions::new()
            .append(true)
            .open(path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
    }

    /// The permission bits of `path`.
    pub fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// Records of one burst in [`assert_group_commit`].
    pub const BURST: usize = 100;

    /// Checks group commit on a log `q`: `threads` threads each append
    /// `per_thread` records, waiting for each before the next; then one
    /// burst of [`BURST`] appends, waited for only afterwards. There must be
    /// fewer fsyncs than appends, and fewer than half as many for the burst.
    /// `append(q, t, i)` appends record `i` of thread `t` (`t == threads`
    /// for the burst) and returns its ticket.
    pub fn assert_group_commit<Q, T>(
        q: &Arc<Q>,
        threads: usize,
        per_thread: usize,
        append: fn(&Q, usize, usize) -> T,
        wait: fn(&Q, T),
        fsync_count: fn(&Q) -> u64,
    ) where
        Q: Send + Sync + 'static,
        T: 'static,
    {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let q = q.clone();
                std::thread::spawn(move || {
                    for i in 0..per_thread {
                        wait(&q, append(&q, t, i));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let syncs = fsync_count(q);
        let total = (threads * per_thread) as u64;
        assert!(
            syncs < total,
            "{syncs} fsyncs for {total} appends: no group commit"
        );

        // Appends that do not wait in between share one or a few fsyncs.
        let before = fsync_count(q);
        let tickets: Vec<T> = (0..BURST).map(|i| append(q, threads, i)).collect();
        for t in tickets {
            wait(q, t);
        }
        let burst = fsync_count(q) - before;
        assert!(
            burst < BURST as u64 / 2,
            "{burst} fsyncs for a burst of {BURST} appends"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{mode, names};
    use super::*;

    #[test]
    fn private_dir_and_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a").join("b");
        create_private_dir(&dir).unwrap();
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);

        let mut f = create_with_header(&dir, "seg-1", b"HEAD").unwrap();
        f.write_all(b"tail").unwrap();
        assert_eq!(fs::read(dir.join("seg-1")).unwrap(), b"HEADtail");
        assert_eq!(mode(&dir.join("seg-1")), 0o600);
        let err = create_with_header(&dir, "seg-1", b"HEAD").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);

        let tmp_file = dir.join("x.tmp");
        create_private(&tmp_file)
            .unwrap()
            .write_all(b"long")
            .unwrap();
        create_private(&tmp_file).unwrap().write_all(b"ab").unwrap();
        assert_eq!(fs::read(&tmp_file).unwrap(), b"ab");
        assert_eq!(mode(&tmp_file), 0o600);
        sync_dir(&dir).unwrap();
    }

    #[test]
    fn lock_dir_is_exclusive_until_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let held = lock_dir(tmp.path(), "widget").unwrap();
        let err = lock_dir(tmp.path(), "widget").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(
            err.to_string().contains("in use by another widget"),
            "{err}"
        );
        assert_eq!(mode(&tmp.path().join(LOCK_FILE)), 0o600);
        drop(held);
        lock_dir(tmp.path(), "widget").unwrap();
    }

    #[test]
    fn numbered_names() {
        assert_eq!(parse_numbered("journal-00000042", "journal-"), Some(42));
        assert_eq!(parse_numbered("journal-", "journal-"), None);
        assert_eq!(parse_numbered("journal-1.tmp", "journal-"), None);
        assert_eq!(parse_numbered("journal-+1", "journal-"), None);
        assert_eq!(parse_numbered("snapshot-1", "journal-"), None);
        // The engine's names have exactly 20 digits; format 1's had fewer.
        assert_eq!(
            parse_numbered20("log-00000000000000000042", "log-"),
            Some(42)
        );
        assert_eq!(parse_numbered20("snapshot-00000002", "snapshot-"), None);
    }

    #[test]
    fn moved_aside_files_never_overwrite_each_other() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let mut asides = Vec::new();
        for content in ["one", "two", "three"] {
            let path = dir.join("seg");
            fs::write(&path, content).unwrap();
            let aside = move_aside(dir, &path).unwrap();
            assert!(!path.exists());
            assert_eq!(fs::read_to_string(&aside).unwrap(), content);
            let name = aside.file_name().unwrap().to_str().unwrap().to_string();
            assert!(name.starts_with("seg.corrupt-"), "{name}");
            asides.push(aside);
        }
        asides.sort();
        asides.dedup();
        assert_eq!(asides.len(), 3);
        assert_eq!(names(dir).len(), 3);
        let mut listed = list_dir(dir).unwrap();
        listed.sort();
        assert_eq!(
            listed,
            asides
                .iter()
                .map(|p| (
                    p.file_name().unwrap().to_str().unwrap().to_string(),
                    p.clone()
                ))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn failures_repeat_as_fresh_errors() {
        let mut slot = None;
        let f = Failure::set_first(&mut slot, io::ErrorKind::StorageFull, "fsync failed".into())
            .unwrap();
        assert!(Failure::set_first(&mut slot, io::ErrorKind::Other, "later".into()).is_none());
        assert_eq!(&*slot.unwrap().message, "fsync failed");
        for _ in 0..2 {
            let e = f.to_error();
            assert_eq!(e.kind(), io::ErrorKind::StorageFull);
            assert_eq!(e.to_string(), "fsync failed");
        }
    }
}
