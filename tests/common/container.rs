//! The container image's tests' helpers: buildah with its storage in a
//! temp dir, the image built by samples/container/build.sh, and finding
//! (and reaping) the pushkit that runs inside it.

use super::{peer_binary, repo_root, run_bounded};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub const IMAGE: &str = "pushkit:test";
pub const ENTRYPOINT: &[&str] = &[
    "/usr/local/bin/pushkit",
    "run",
    "--conf-dir",
    "/etc/pushkit/conf.d",
];

/// buildah (`PUSHKIT_BUILDAH`, default /usr/bin/buildah) with its
/// storage in a temp dir.
pub struct Buildah {
    bin: PathBuf,
    root: PathBuf,
    run: PathBuf,
}

impl Buildah {
    pub fn new(dir: &Path) -> Buildah {
        Buildah {
            bin: peer_binary("PUSHKIT_BUILDAH", "/usr/bin/buildah", "buildah"),
            root: dir.join("storage"),
            run: dir.join("runroot"),
        }
    }

    /// The command line: buildah and its global flags.
    pub fn argv(&self) -> Vec<String> {
        vec![
            self.bin.display().to_string(),
            "--root".into(),
            self.root.display().to_string(),
            "--runroot".into(),
            self.run.display().to_string(),
            "--storage-driver".into(),
            "vfs".into(),
        ]
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let argv = self.argv();
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).args(args);
        cmd
    }

    /// Builds [`IMAGE`] with samples/container/build.sh from `binary`.
    pub fn build_image(&self, binary: &str) {
        let mut cmd = Command::new("bash");
        cmd.arg(repo_root().join("samples/container/build.sh"))
            .env("PUSHKIT_BIN", binary)
            .env("PUSHKIT_IMAGE", IMAGE)
            .env("BUILDAH", self.argv().join(" "));
        let (status, out, err) = run_bounded("build.sh", cmd, Duration::from_secs(300));
        assert!(status.success(), "build.sh: {status}\n{out}\n{err}");
    }

    /// Runs `args`; panics on failure; returns stdout, trimmed.
    pub fn run(&self, args: &[&str]) -> String {
        let (status, out, err) = run_bounded(
            &format!("buildah {args:?}"),
            self.cmd(args),
            Duration::from_secs(300),
        );
        assert!(status.success(), "buildah {args:?}: {status}\n{out}\n{err}");
        out.trim().to_string()
    }
}

/// The pid of the process whose command line starts with the image's
/// entrypoint and whose environment holds `marker` (its listen address):
/// the pushkit that `buildah run` or `bwrap` started.
pub fn pushkit_pid(marker: &str) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        if args.first() == Some(&ENTRYPOINT[0].as_bytes())
            && environ.split(|&b| b == 0).any(|e| e == marker.as_bytes())
        {
            return Some(pid);
        }
    }
    None
}

/// Its real, effective, saved and filesystem uids.
pub fn uids(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Kills the pushkit found by [`pushkit_pid`] when dropped, whatever
/// became of the wrapper that started it.
pub struct Reaper(pub String);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(pid) = pushkit_pid(&self.0) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}
