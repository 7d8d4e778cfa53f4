//! The processes under test: pushkit, the Go Pushgateway and
//! VictoriaMetrics, each on a loopback port with its files in a temporary
//! directory. Every child is killed when its handle is dropped, so an error
//! or a panic leaves nothing running.

use crate::http;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PUSHGATEWAY_BIN: &str = "/usr/bin/prometheus-pushgateway";
pub const VICTORIA_BIN: &str = "/usr/bin/victoria-metrics";

/// A directory removed (with its contents) on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> io::Result<TempDir> {
        let path = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
        if path.exists() {
            fs::remove_dir_all(&path)?;
        }
        fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }

    /// A fresh subdirectory.
    pub fn sub(&self, name: &str) -> io::Result<PathBuf> {
        let p = self.0.join(name);
        if p.exists() {
            fs::remove_dir_all(&p)?;
        }
        fs::create_dir_all(&p)?;
        Ok(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// One running server process.
pub struct Proc {
    pub name: String,
    pub addr: SocketAddr,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &str, mut cmd: Command, addr: SocketAddr, log: PathBuf) -> Result<Proc, String> {
        let log_file = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        // The ENV overlay of pushkit's configuration must not leak in from
        // the caller's environment.
        for (k, _) in std::env::vars() {
            if k.starts_with("ENV_") || k == "PUSHKIT_CONF_DIR" || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        Ok(Proc {
            name: name.to_string(),
            addr,
            child,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size, from /proc/<pid>/status.
    pub fn rss_bytes(&self) -> Result<u64, String> {
        rss_of(self.pid())
    }

    /// The exit status, if the process has ended.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("unknown ({e})")),
        }
    }

    /// The last lines of its log (stderr), for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Counts log lines containing `needle` (e.g. "ERROR").
    pub fn log_count(&self, needle: &str) -> usize {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// SIGTERM, then waits up to `grace` for the exit (SIGKILL after).
    /// Returns the exit status, or an error if it had to be killed.
    pub fn terminate(&mut self, grace: Duration) -> Result<String, String> {
        if let Some(s) = self.exited() {
            return Err(format!("{} had already exited: {s}", self.name));
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < grace {
            if let Some(s) = self.exited() {
                return Ok(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err(format!(
            "{} did not exit within {grace:?} of SIGTERM; killed",
            self.name
        ))
    }

    /// Waits until GET `path` answers 200.
    pub async fn wait_ready(&mut self, path: &str, timeout: Duration) -> Result<Duration, String> {
        self.wait_ready_with(path, timeout, None).await
    }

    /// [`Proc::wait_ready`], over TLS when `tls` is given.
    pub async fn wait_ready_with(
        &mut self,
        path: &str,
        timeout: Duration,
        tls: Option<&http::TlsClient>,
    ) -> Result<Duration, String> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.exited() {
                return Err(format!(
                    "{} exited while starting ({s}); its log ends:\n{}",
                    self.name,
                    self.log_tail(20)
                ));
            }
            if let Ok(Ok(r)) = tokio::time::timeout(
                Duration::from_secs(5),
                http::once_with(self.addr, tls, "GET", path, &[], b""),
            )
            .await
            {
                if r.status == 200 {
                    return Ok(start.elapsed());
                }
            }
            if start.elapsed() > timeout {
                return Err(format!(
                    "{} not ready on {path} after {timeout:?}; its log ends:\n{}",
                    self.name,
                    self.log_tail(20)
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn rss_of(pid: u32) -> Result<u64, String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// CPU time (user + system, all threads) a process has used, in seconds;
/// `None` for this process. Linux reports it in ticks of 1/100 s.
pub fn cpu_seconds(pid: Option<u32>) -> Result<f64, String> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    stat_seconds(&path)
}

/// The CPU time of a process's threads, in seconds, summed by thread name
/// (`comm`: `tokio-rt-worker`, `log-flusher`, ...).
pub fn cpu_seconds_by_thread(pid: u32) -> Result<BTreeMap<String, f64>, String> {
    let dir = format!("/proc/{pid}/task");
    let mut by_name = BTreeMap::new();
    for entry in fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))? {
        let task = entry.map_err(|e| format!("{dir}: {e}"))?.path();
        // A thread that ended meanwhile is skipped.
        let (Ok(name), Ok(secs)) = (
            fs::read_to_string(task.join("comm")),
            stat_seconds(&task.join("stat").to_string_lossy()),
        ) else {
            continue;
        };
        *by_name.entry(name.trim().to_string()).or_insert(0.0) += secs;
    }
    Ok(by_name)
}

/// User + system time from a `stat` file of /proc.
fn stat_seconds(path: &str) -> Result<f64, String> {
    let stat = fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    // Fields after the command name, which is in parentheses and may
    // contain spaces: state is the first, utime the 12th, stime the 13th.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| format!("{path}: unexpected format"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => Ok((u + s) as f64 / 100.0),
        _ => Err(format!("{path}: unexpected format")),
    }
}

/// An HTTP sink of pushkit's configuration.
pub struct SinkConf {
    pub name: String,
    pub url: String,
    pub gzip: bool,
}

/// pushkit's configuration for one run.
#[derive(Default)]
pub struct PushkitConf {
    pub sinks: Vec<SinkConf>,
    pub persistence_dir: Option<PathBuf>,
    pub queue_dir: Option<PathBuf>,
    /// More `[http_api]` lines (`key = value`, each ending in a newline).
    pub http_api: String,
    /// Tables under `[http_api]` (`[http_api.tls]`, `[http_api.auth]`),
    /// written whole.
    pub http_tables: String,
}

/// Writes `pushkit.conf` into `conf_dir`.
pub fn write_pushkit_conf(conf_dir: &Path, port: u16, conf: &PushkitConf) -> io::Result<()> {
    let mut text = format!(
        "# Written by pushkit-bench.\n[http_api]\nlisten = \"127.0.0.1:{port}\"\n{}\n{}\n",
        conf.http_api, conf.http_tables
    );
    if let Some(q) = &conf.queue_dir {
        text.push_str(&format!(
            "[io]\nqueue_dir = {:?}\n\n",
            q.display().to_string()
        ));
    }
    text.push_str("[[inputs.pushgateway]]\nstore = true\nconsistency_check = true\n");
    if let Some(p) = &conf.persistence_dir {
        text.push_str(&format!(
            "persistence_dir = {:?}\n",
            p.display().to_string()
        ));
    }
    for s in &conf.sinks {
        text.push_str(&format!(
            "\n[[sinks]]\nname = {:?}\nurl = {:?}\ngzip = {}\n",
            s.name, s.url, s.gzip
        ));
    }
    fs::write(conf_dir.join("pushkit.conf"), text)
}

/// `pushkit check --conf-dir DIR`: Ok, or the line it printed.
pub fn pushkit_check(bin: &Path, conf_dir: &Path) -> Result<(), String> {
    let mut cmd = Command::new(bin);
    cmd.arg("check").arg("--conf-dir").arg(conf_dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("ENV_") || k == "PUSHKIT_CONF_DIR" {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

pub fn start_pushkit(bin: &Path, conf_dir: &Path, port: u16, log: PathBuf) -> Result<Proc, String> {
    let mut cmd = Command::new(bin);
    cmd.arg("--conf-dir")
        .arg(conf_dir)
        .arg("--log-level")
        .arg("warn");
    Proc::spawn("pushkit", cmd, loopback(port), log)
}

/// The Go Pushgateway on `port`, persisting to `file`.
pub fn start_pushgateway(
    port: u16,
    file: &Path,
    consistency_check: bool,
    log: PathBuf,
) -> Result<Proc, String> {
    let mut cmd = Command::new(PUSHGATEWAY_BIN);
    cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--persistence.file={}", file.display()))
        .arg("--log.level=warn");
    if !consistency_check {
        cmd.arg("--push.disable-consistency-check");
    }
    let name = if consistency_check {
        "Go Pushgateway"
    } else {
        "Go Pushgateway (check off)"
    };
    Proc::spawn(name, cmd, loopback(port), log)
}

pub fn start_victoria(port: u16, data: &Path, log: PathBuf) -> Result<Proc, String> {
    let mut cmd = Command::new(VICTORIA_BIN);
    cmd.arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg(format!("-storageDataPath={}", data.display()))
        .arg("-loggerLevel=ERROR");
    Proc::spawn("VictoriaMetrics", cmd, loopback(port), log)
}
