//! The reference programs the peer tests run next to pushkit, each from
//! Debian's package: Prometheus' Pushgateway, Prometheus and
//! VictoriaMetrics. Each one runs on a free loopback port with its state in
//! its own temp dir; its output goes to a log there, printed if the test
//! panics (see [`ChildGuard`]). An environment variable names each binary,
//! and a missing binary fails the test with a message saying what to
//! install.

use super::*;
use serde_json::Value as Json;

/// A series' labels, `__name__` included.
pub type Labels = BTreeMap<String, String>;

/// A series' labels (`__name__` included) → its samples as (ms, value).
pub type Exported = BTreeMap<Labels, Vec<(i64, f64)>>;

/// The binary `env` names, else `default`; panics with a clear message if
/// it does not exist. `package` is the Debian package that installs it.
pub fn peer_binary(env: &str, default: &str, package: &str) -> PathBuf {
    let bin = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        bin.exists(),
        "{} not found: install Debian's {package} (.ci/run does), or set {env}",
        bin.display()
    );
    bin
}

/// A temp dir for one peer's state and logs.
fn peer_dir(prefix: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir")
}

/// Polls `url` every `poll` until it answers 200; panics with the peer's
/// logs if the peer exits or `timeout` passes first.
fn wait_ready(proc: &mut ChildGuard, url: &str, timeout: Duration, poll: Duration) {
    let ready = poll_until(timeout, poll, || {
        proc.assert_running();
        get(url).ok().filter(|r| r.status == 200).map(|_| ())
    });
    if ready.is_none() {
        panic!(
            "{} not ready on {url} after {timeout:?}\n{}",
            proc.name,
            proc.log_text()
        );
    }
}

/// `name` with its labels (`pairs`), as the receivers' APIs name a series.
pub fn labels(name: &str, pairs: &[(&str, &str)]) -> Labels {
    let mut m: Labels = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    m.insert("__name__".to_string(), name.to_string());
    m
}

/// The series a receiver must hold: labels, value, and timestamp (`None`:
/// the push's receive time, within a window around the push).
pub type WantSeries = Vec<(Labels, f64, Option<i64>)>;

/// Asserts that `got` holds exactly the series of `want`, one sample each,
/// with their values and timestamps (a receive time within `window`, both
/// ends in ms included). Returns the receive times, in `want`'s order.
pub fn assert_series(got: &Exported, want: &WantSeries, window: (i64, i64)) -> Vec<i64> {
    let got_keys: Vec<_> = got.keys().cloned().collect();
    let want_keys: Vec<_> = want.iter().map(|(l, _, _)| l.clone()).collect();
    assert_eq!(
        sorted(&got_keys),
        sorted(&want_keys),
        "series names and labels"
    );
    let mut receive_times = Vec::new();
    for (key, value, ts) in want {
        let samples = &got[key];
        assert_eq!(samples.len(), 1, "one sample for {key:?}: {samples:?}");
        let (t, v) = samples[0];
        assert_eq!(v, *value, "value of {key:?}");
        match ts {
            Some(ts) => assert_eq!(t, *ts, "explicit timestamp of {key:?}"),
            None => {
                assert!(
                    window.0 <= t && t <= window.1,
                    "receive time of {key:?}: {t} not in {window:?}"
                );
                receive_times.push(t);
            }
        }
    }
    receive_times
}

// ---------------------------------------------------------------------------
// Prometheus' Pushgateway

/// Debian's Pushgateway (`PUSHKIT_PUSHGATEWAY`, default
/// /usr/bin/prometheus-pushgateway), its state in memory only.
pub struct Pushgateway {
    proc: ChildGuard,
    pub port: u16,
    // Last: the process goes before its dir.
    _dir: TempDir,
}

impl Pushgateway {
    pub fn start() -> Pushgateway {
        let bin = peer_binary(
            "PUSHKIT_PUSHGATEWAY",
            "/usr/bin/prometheus-pushgateway",
            "prometheus-pushgateway",
        );
        let dir = peer_dir("pushkit-pgw-");
        let port = free_port();
        let mut cmd = Command::new(&bin);
        cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // Debian's build persists to /var/lib/prometheus by default:
            // keep this instance's state in memory, apart from any other.
            .arg("--persistence.file=")
            .arg("--log.level=warn");
        let mut proc = spawn_logged("pushgateway", cmd, dir.path());
        let ready = format!("http://127.0.0.1:{port}/-/ready");
        wait_ready(
            &mut proc,
            &ready,
            Duration::from_secs(20),
            Duration::from_millis(50),
        );
        Pushgateway {
            proc,
            port,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Panics (printing its log) if it has exited.
    pub fn assert_running(&mut self) {
        self.proc.assert_running();
    }

    /// Sends a request to it; panics (with its log) if it has exited or on
    /// I/O errors.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        self.proc.assert_running();
        let url = self.url(path);
        http(method, &url, headers, body)
            .unwrap_or_else(|e| panic!("{method} {url}: {e}\n{}", self.proc.log_text()))
    }
}

// ---------------------------------------------------------------------------
// Prometheus

/// Debian's Prometheus (`PUSHKIT_PROMETHEUS`, default /usr/bin/prometheus)
/// with its TSDB in its temp dir.
pub struct Prometheus {
    proc: ChildGuard,
    pub port: u16,
    // Last: the process goes before its storage.
    _dir: TempDir,
}

impl Prometheus {
    /// Starts with `config` as its `prometheus.yml` (logged with its
    /// output) and `args` added to its command line (e.g. `--log.level`);
    /// waits (at most 60 s) until it is ready.
    pub fn start(config: &str, args: &[&str]) -> Prometheus {
        let bin = peer_binary("PUSHKIT_PROMETHEUS", "/usr/bin/prometheus", "prometheus");
        let dir = peer_dir("pushkit-prom-");
        let config_path = dir.path().join("prometheus.yml");
        fs::write(&config_path, config).expect("write prometheus.yml");
        let port = free_port();
        let mut cmd = Command::new(&bin);
        cmd.arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(args);
        let mut proc = spawn_logged("prometheus", cmd, dir.path());
        proc.logs.push(config_path);
        let ready = format!("http://127.0.0.1:{port}/-/ready");
        wait_ready(
            &mut proc,
            &ready,
            Duration::from_secs(60),
            Duration::from_millis(100),
        );
        Prometheus {
            proc,
            port,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Its log and config.
    pub fn log_text(&self) -> String {
        self.proc.log_text()
    }

    /// `GET path` on its HTTP API: panics unless it answers 200 with JSON
    /// whose `status` is `success`; returns that JSON.
    pub fn api(&mut self, path: &str) -> Json {
        self.proc.assert_running();
        let url = self.url(path);
        let r = get(&url).unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert_eq!(r.status, 200, "GET {url}: {}", r.text());
        let v: Json = serde_json::from_str(&r.text())
            .unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {}", r.text()));
        assert_eq!(v["status"], "success", "GET {url}: {v}");
        v
    }

    /// Runs the query `promql` (`params`, e.g. `&time=...`, appended to
    /// the URL) and checks that its result is a `result_type` (`vector`,
    /// `matrix`); returns each series' labels (`__name__` included) with
    /// its entry of the result.
    pub fn query(&mut self, promql: &str, params: &str, result_type: &str) -> Vec<(Labels, Json)> {
        let v = self.api(&format!(
            "/api/v1/query?query={}{params}",
            percent_encode(promql)
        ));
        assert_eq!(v["data"]["resultType"], result_type, "{promql}: {v}");
        v["data"]["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{promql}: no result array: {v}"))
            .iter()
            .map(|s| {
                let labels = s["metric"]
                    .as_object()
                    .unwrap_or_else(|| panic!("{promql}: no metric object in {s}"))
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().expect("label").to_string()))
                    .collect();
                (labels, s.clone())
            })
            .collect()
    }
}

/// A sample as Prometheus' HTTP API writes it, `[<unix seconds>,
/// "<value>"]`, as (ms, value).
pub fn api_sample(pair: &Json) -> (i64, f64) {
    let t = pair[0]
        .as_f64()
        .unwrap_or_else(|| panic!("no time in {pair}"));
    let v: f64 = pair[1]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("bad value in {pair}"));
    ((t * 1000.0).round() as i64, v)
}

// ---------------------------------------------------------------------------
// VictoriaMetrics

/// Debian's VictoriaMetrics (`PUSHKIT_VICTORIA_METRICS`, default
/// /usr/bin/victoria-metrics) on a loopback port with its own storage dir;
/// it can be stopped and started again on the same port and storage.
pub struct VictoriaMetrics {
    proc: Option<ChildGuard>,
    bin: PathBuf,
    pub port: u16,
    starts: usize,
    // Last: the process goes before its storage.
    dir: TempDir,
}

impl VictoriaMetrics {
    /// The binary; panics with a clear message if it is missing.
    pub fn binary() -> PathBuf {
        peer_binary(
            "PUSHKIT_VICTORIA_METRICS",
            "/usr/bin/victoria-metrics",
            "victoria-metrics",
        )
    }

    /// Starts on a free loopback port.
    pub fn start() -> VictoriaMetrics {
        Self::start_on(free_port())
    }

    /// Starts on `port` (e.g. one reserved earlier with [`free_port`]).
    pub fn start_on(port: u16) -> VictoriaMetrics {
        let mut vm = VictoriaMetrics {
            proc: None,
            bin: Self::binary(),
            port,
            starts: 0,
            dir: peer_dir("pushkit-vm-"),
        };
        vm.launch();
        vm
    }

    fn launch(&mut self) {
        assert!(self.proc.is_none(), "victoria-metrics is already running");
        self.starts += 1;
        let mut cmd = Command::new(&self.bin);
        cmd.arg(format!(
            "-storageDataPath={}",
            self.dir.path().join("data").display()
        ))
        .arg(format!("-httpListenAddr=127.0.0.1:{}", self.port))
        // Read back what was just written: no latency offset, no cache.
        .arg("-search.latencyOffset=0s")
        .arg("-search.disableCache")
        .arg("-memory.allowedPercent=10")
        .arg("-loggerLevel=INFO");
        let name = format!("victoria-metrics-{}", self.starts);
        let mut proc = spawn_logged(&name, cmd, self.dir.path());
        wait_ready(
            &mut proc,
            &self.url("/health"),
            Duration::from_secs(30),
            Duration::from_millis(50),
        );
        self.proc = Some(proc);
    }

    /// SIGTERM, then waits (at most 60 s) for a clean exit.
    pub fn stop(&mut self) {
        let mut proc = self.proc.take().expect("victoria-metrics is running");
        proc.assert_running();
        proc.signal("-TERM");
        let exited = poll_until(Duration::from_secs(60), Duration::from_millis(50), || {
            proc.child.try_wait().expect("try_wait")
        });
        match exited {
            Some(s) => assert!(
                s.success(),
                "victoria-metrics exited with {s} after SIGTERM\n{}",
                proc.log_text()
            ),
            None => panic!(
                "victoria-metrics still running 60 s after SIGTERM\n{}",
                proc.log_text()
            ),
        }
    }

    /// An agent whose one sink (`vm`) sends remote write here, flushing
    /// every 100 ms, with the pushgateway input at its defaults.
    pub fn remote_write_agent(&self) -> Agent {
        Agent::start_raw(
            free_port(),
            &format!(
                "[io]\nflush_interval = \"100ms\"\n\n\
                 [[sinks]]\nname = \"vm\"\nurl = \"{}\"\nformat = \"remote-write\"\n\n\
                 [[inputs.pushgateway]]\n",
                self.url("/api/v1/write"),
            ),
        )
    }

    /// Starts again on the same port and storage dir.
    pub fn restart(&mut self) {
        self.launch();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Its log files so far.
    pub fn log_text(&self) -> String {
        let mut out = String::new();
        for i in 1..=self.starts {
            let path = self.dir.path().join(format!("victoria-metrics-{i}.log"));
            let text = fs::read_to_string(&path).unwrap_or_else(|e| format!("<unreadable: {e}>"));
            out.push_str(&format!("----- {} -----\n{text}\n", path.display()));
        }
        out
    }

    /// Every sample of the series matching `selector`, all time, after
    /// `/internal/force_flush` (which makes just-ingested rows searchable).
    pub fn export(&mut self, selector: &str) -> Exported {
        let proc = self.proc.as_mut().expect("victoria-metrics is running");
        proc.assert_running();
        let flush = get(&self.url("/internal/force_flush")).expect("force_flush");
        assert_eq!(flush.status, 200, "force_flush: {}", flush.text());
        let url = self.url(&format!(
            "/api/v1/export?match[]={}",
            percent_encode(selector)
        ));
        let resp = get(&url).expect("export");
        assert_eq!(resp.status, 200, "export: {}", resp.text());
        let mut out = Exported::new();
        for line in resp.text().lines().filter(|l| !l.trim().is_empty()) {
            let v: Json =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("export line {line:?}: {e}"));
            let labels: Labels = v["metric"]
                .as_object()
                .expect("metric object")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("label string").to_string()))
                .collect();
            let values = v["values"].as_array().expect("values");
            let times = v["timestamps"].as_array().expect("timestamps");
            assert_eq!(values.len(), times.len(), "{line}");
            let samples = times
                .iter()
                .zip(values)
                .map(|(t, v)| {
                    (
                        t.as_i64().expect("integer timestamp"),
                        // A staleness marker comes back as null.
                        if v.is_null() {
                            f64::NAN
                        } else {
                            v.as_f64()
                                .unwrap_or_else(|| panic!("a value that is not a number: {line}"))
                        },
                    )
                })
                .collect();
            // One series may come in several lines (one per block).
            out.entry(labels).or_default().extend::<Vec<_>>(samples);
        }
        for samples in out.values_mut() {
            samples.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        }
        out
    }
}

/// InfluxDB 1.x (Debian's `influxdb`, 1.6), its HTTP API on a free
/// loopback port, its RPC port on another, reporting and the internal
/// monitor off, all state in its temp dir.
pub struct InfluxDb {
    proc: ChildGuard,
    pub port: u16,
    // Last: the process goes before its storage.
    dir: TempDir,
}

impl InfluxDb {
    pub fn start() -> InfluxDb {
        let bin = peer_binary("PUSHKIT_INFLUXD", "/usr/bin/influxd", "influxdb");
        let dir = peer_dir("pushkit-influxdb-");
        let port = free_port();
        let d = dir.path().display();
        let config = format!(
            "reporting-disabled = true\n\
             bind-address = \"127.0.0.1:{rpc}\"\n\
             [meta]\n  dir = \"{d}/meta\"\n\
             [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
             [http]\n  enabled = true\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n\
             [monitor]\n  store-enabled = false\n\
             [continuous_queries]\n  enabled = false\n\
             [subscriber]\n  enabled = false\n",
            rpc = free_port(),
        );
        let conf = dir.path().join("influxdb.conf");
        fs::write(&conf, config).expect("write influxdb.conf");
        let mut cmd = Command::new(bin);
        cmd.arg("run").arg("-config").arg(&conf);
        let mut proc = spawn_logged("influxd", cmd, dir.path());
        // `/ping` answers 204 (1.6 has no `verbose`); a query answers 200.
        wait_ready(
            &mut proc,
            &format!("http://127.0.0.1:{port}/query?q=SHOW%20DATABASES"),
            Duration::from_secs(30),
            Duration::from_millis(50),
        );
        InfluxDb { proc, port, dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Runs InfluxQL `q` (in database `db`, if given) and returns the JSON
    /// answer; panics on an HTTP or InfluxQL error.
    pub fn query(&mut self, db: Option<&str>, q: &str) -> Json {
        self.proc.assert_running();
        let mut url = self.url(&format!("/query?q={}", percent_encode(q)));
        if let Some(db) = db {
            url.push_str(&format!("&db={}", percent_encode(db)));
        }
        let r = http("POST", &url, &[], b"").expect("influxdb query");
        assert_eq!(r.status, 200, "{q}: {}", r.text());
        let v: Json = serde_json::from_str(&r.text()).expect("influxdb JSON");
        if let Some(e) = v["results"][0]["error"].as_str() {
            panic!("{q}: {e}");
        }
        v
    }

    /// The rows of `SELECT ...` as column name → value, one map per row.
    pub fn select(&mut self, db: &str, q: &str) -> Vec<BTreeMap<String, Json>> {
        let v = self.query(Some(db), q);
        let mut rows = Vec::new();
        for series in v["results"][0]["series"].as_array().into_iter().flatten() {
            let columns: Vec<String> = series["columns"]
                .as_array()
                .expect("columns")
                .iter()
                .map(|c| c.as_str().expect("column name").to_string())
                .collect();
            for values in series["values"].as_array().expect("values") {
                let values = values.as_array().expect("row");
                rows.push(
                    columns
                        .iter()
                        .cloned()
                        .zip(values.iter().cloned())
                        .collect(),
                );
            }
        }
        rows
    }

    pub fn log_text(&self) -> String {
        self.proc.log_text()
    }
}
