//! A file's identity as seen through its path, to notice that it changed:
//! replaced (a new inode, as a Kubernetes Secret's symlink swap makes),
//! rewritten (size, modification time) or gone.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Device, inode, size and modification time; None when the path does
/// not resolve.
pub type FileStamp = Option<(u64, u64, u64, i64, i64)>;

/// The stamp of whatever `path` resolves to now.
pub fn file_stamp(path: &Path) -> FileStamp {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}
