//! Finding and parsing the `*.conf` files of a config directory.
//!
//! Files are found recursively and read in sorted path order so the result
//! never depends on directory listing order. Hidden entries (".name") are
//! skipped: editors' swap files, `.git`, and Kubernetes ConfigMap mounts'
//! `..data` / `..<timestamp>` directories, which would otherwise make every
//! file appear twice.
//!
//! Imports `error` only.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::error::{one_line, ConfigError};

/// All `*.conf` files under `dir`, sorted by path. Symlinks are followed,
/// but a real directory or file reached twice is read once (first path in
/// sorted order).
pub(crate) fn conf_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let mut files = Vec::new();
    let mut seen_dirs = HashSet::new();
    walk(dir, &mut files, &mut seen_dirs)?;
    files.sort();
    let mut seen_files = HashSet::new();
    files.retain(|f| seen_files.insert(fs::canonicalize(f).unwrap_or_else(|_| f.clone())));
    Ok(files)
}

fn walk(
    dir: &Path,
    files: &mut Vec<PathBuf>,
    seen_dirs: &mut HashSet<PathBuf>,
) -> Result<(), ConfigError> {
    let cannot = |e: std::io::Error| ConfigError::io(dir, "cannot read directory", e);
    if !seen_dirs.insert(fs::canonicalize(dir).map_err(cannot)?) {
        return Ok(());
    }
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).map_err(cannot)? {
        let entry = entry.map_err(cannot)?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            entries.push(entry.path());
        }
    }
    entries.sort();
    for path in entries {
        let is_conf = path.extension().is_some_and(|e| e == "conf");
        let meta = match fs::metadata(&path) {
            Ok(meta) => meta,
            // Gone since it was listed, or a dangling link: only a .conf
            // file matters. A data directory under conf.d (a queue_dir)
            // renames temporary files while the agent runs.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !is_conf => continue,
            Err(e) => return Err(ConfigError::io(&path, "cannot read", e)),
        };
        if meta.is_dir() {
            walk(&path, files, seen_dirs)?;
        } else if meta.is_file() && is_conf {
            files.push(path);
        }
    }
    Ok(())
}

/// Reads and parses one file. `shown` is the path as it appears in errors.
pub(crate) fn read_toml(path: &Path, shown: &str) -> Result<toml::Table, ConfigError> {
    let text = fs::read_to_string(path).map_err(|e| ConfigError::Io {
        path: shown.to_string(),
        what: "cannot read",
        error: one_line(&e.to_string()),
    })?;
    parse_toml(&text, shown)
}

/// Parses TOML text; a syntax error becomes one line with file, line and
/// column (toml's own message spans several lines with a source excerpt).
pub(crate) fn parse_toml(text: &str, shown: &str) -> Result<toml::Table, ConfigError> {
    toml::from_str::<toml::Table>(text).map_err(|e| {
        let (line, column) = match e.span() {
            Some(span) => {
                let (line, column) = line_column(text, span.start);
                (Some(line), column)
            }
            None => (None, 0),
        };
        ConfigError::Syntax {
            file: shown.to_string(),
            line,
            column,
            message: one_line(e.message()),
        }
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_conf_files_recursively_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("b/inner")).unwrap();
        fs::create_dir_all(root.join("..data")).unwrap();
        for f in [
            "z.conf",
            "a.conf",
            "b/inner/c.conf",
            "b/a.conf",
            "x.conf.sample",
            "y.toml",
            ".hidden.conf",
            "..data/a.conf",
        ] {
            fs::write(root.join(f), "").unwrap();
        }
        let found: Vec<String> = conf_files(root)
            .unwrap()
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(found, ["a.conf", "b/a.conf", "b/inner/c.conf", "z.conf"]);
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("real")).unwrap();
        fs::write(root.join("real/a.conf"), "").unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("link")).unwrap();
        std::os::unix::fs::symlink(root.join("real/a.conf"), root.join("top.conf")).unwrap();
        std::os::unix::fs::symlink(root, root.join("real/loop")).unwrap();
        let found = conf_files(root).unwrap();
        assert_eq!(found, [root.join("link/a.conf")]);
    }

    /// A file that is gone between listing and reading (here: a dangling
    /// link) is skipped unless it is a .conf file.
    #[cfg(unix)]
    #[test]
    fn vanished_entries_matter_only_as_conf_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("a.conf"), "").unwrap();
        std::os::unix::fs::symlink(root.join("gone"), root.join("SINKS.tmp")).unwrap();
        assert_eq!(conf_files(root).unwrap(), [root.join("a.conf")]);
        std::os::unix::fs::symlink(root.join("gone"), root.join("b.conf")).unwrap();
        let err = conf_files(root).unwrap_err().to_string();
        assert!(err.contains("b.conf: cannot read"), "{err}");
    }

    #[test]
    fn missing_dir_is_one_line_error() {
        let err = conf_files(Path::new("/nonexistent/conf.d"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/nonexistent/conf.d: cannot read directory: "),
            "{err}"
        );
        assert!(!err.contains('\n'));
    }

    #[test]
    fn syntax_errors_name_file_line_and_column() {
        let err = parse_toml(
            "[io]\nflush_interval = \"10s\"\nmax_cache_count = = 3\n",
            "conf.d/x.conf",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("conf.d/x.conf: TOML syntax error at line 3, column "),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");

        let err = parse_toml("[io]\n[io]\n", "conf.d/y.conf")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("conf.d/y.conf: TOML syntax error at line 2"),
            "{err}"
        );
    }

    #[test]
    fn line_column_counts_characters() {
        assert_eq!(line_column("ab\ncµd", 6), (2, 3));
        assert_eq!(line_column("ab\ncµd", 5), (2, 2));
        assert_eq!(line_column("", 0), (1, 1));
    }
}
