//! The `pushkit` command line: `check`, bad configuration, SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn pushkit() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pushkit"));
    // The test's own environment must not leak into the agent's overlay.
    for (k, _) in std::env::vars() {
        if k.starts_with("ENV_") || k == "PUSHKIT_CONF_DIR" || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c
}

/// A loopback port free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `pushkit --conf-dir DIR` and waits (at most 20 s) until it logs
/// that it started; returns it with its stderr, read up to that line.
fn start_agent(
    dir: &std::path::Path,
) -> (std::process::Child, BufReader<std::process::ChildStderr>) {
    let mut child = pushkit()
        .args(["--conf-dir"])
        .arg(dir)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut line = String::new();
    while Instant::now() < deadline {
        line.clear();
        if stderr.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if line.contains("started") {
            break;
        }
    }
    assert!(line.contains("started"), "agent did not start: {line}");
    (child, stderr)
}

fn shipped_conf_d() -> String {
    format!("{}/conf.d", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn version_prints_the_version() {
    for flag in ["--version", "-V"] {
        let out = pushkit().arg(flag).output().unwrap();
        assert!(out.status.success(), "{flag}");
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("pushkit {}\n", env!("CARGO_PKG_VERSION")),
            "{flag}"
        );
    }
}

#[test]
fn check_prints_the_effective_configuration() {
    let out = pushkit()
        .args(["check", "--conf-dir", &shipped_conf_d()])
        .env("ENV_IO_FLUSH_INTERVAL", "1m30s")
        .env("ENV_DATAWAY", "https://openway.example?token=tkn_secret")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let parsed: toml::Table = text.parse().expect("check prints TOML");
    assert_eq!(parsed["io"]["flush_interval"].as_str(), Some("1m30s"));
    assert_eq!(
        parsed["http_api"]["listen"].as_str(),
        Some("localhost:9529")
    );
    assert!(parsed["inputs"]["pushgateway"].is_array());
    assert!(!text.contains("tkn_secret"), "{text}");
    assert!(text.contains("/v1/write/metric"), "{text}");
}

#[test]
fn bad_env_value_is_one_line_naming_the_variable() {
    let out = pushkit()
        .args(["check", "--conf-dir", &shipped_conf_d()])
        .env("ENV_INPUT_PUSHGATEWAY_HONOR_TIMESTAMPS", "yes")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("ENV_INPUT_PUSHGATEWAY_HONOR_TIMESTAMPS"),
        "{err}"
    );
    assert!(err.contains("\"yes\""), "{err}");
}

#[test]
fn bad_file_value_names_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.conf"),
        "[io]\nflush_interval = \"10x\"\n",
    )
    .unwrap();
    let out = pushkit()
        .args(["check", "--conf-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("a.conf") && err.contains("io.flush_interval") && err.contains("10x"),
        "{err}"
    );
}

/// `listen = ":PORT"`, as DataKit's configs write it: every interface, so
/// both loopbacks answer (::1 only where the machine has IPv6).
#[test]
fn a_listen_address_without_host_is_every_interface() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("pushkit.conf"),
        format!("[http_api]\nlisten = \":{port}\"\n[[inputs.pushgateway]]\n"),
    )
    .unwrap();
    let mut child = pushkit()
        .args(["--conf-dir"])
        .arg(dir.path())
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let ready = |addr: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut s) = std::net::TcpStream::connect(addr) {
                use std::io::{Read, Write};
                s.write_all(b"GET /-/healthy HTTP/1.0\r\n\r\n").unwrap();
                let mut reply = String::new();
                let _ = s.read_to_string(&mut reply);
                return reply;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        String::new()
    };
    let v4 = ready(&format!("127.0.0.1:{port}"));
    let v6 = std::net::TcpListener::bind("[::1]:0")
        .is_ok()
        .then(|| ready(&format!("[::1]:{port}")));
    let _ = child.kill();
    let _ = child.wait();
    assert!(v4.starts_with("HTTP/1.0 200"), "127.0.0.1: {v4:?}");
    if let Some(v6) = v6 {
        assert!(v6.starts_with("HTTP/1.0 200"), "::1: {v6:?}");
    }
}

/// `pushkit check` beside a running agent: the agent's queue_dir LOCK is
/// held, which check reports as a warning (exit 0); once the agent is
/// gone, nothing is reported.
#[test]
fn check_warns_about_a_lock_held_by_a_running_agent() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let queue = dir.path().join("queue");
    std::fs::write(
        dir.path().join("pushkit.conf"),
        format!(
            "[http_api]\nlisten = \"127.0.0.1:{port}\"\n[io]\nqueue_dir = {:?}\n\
             [[sinks]]\nurl = \"http://127.0.0.1:9/write\"\n[[inputs.pushgateway]]\n",
            queue.display().to_string()
        ),
    )
    .unwrap();
    let check = || {
        let out = pushkit()
            .args(["check", "--conf-dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stderr).unwrap()
    };
    let (mut child, _stderr) = start_agent(dir.path());
    let warned = check();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        warned.contains("queue_dir") && warned.contains("LOCK is held by another process"),
        "{warned}"
    );
    let quiet = check();
    assert!(!quiet.contains("LOCK"), "{quiet}");
}

#[test]
fn sigterm_stops_cleanly_with_exit_zero() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("pushkit.conf"),
        format!("[http_api]\nlisten = \"127.0.0.1:{port}\"\n[[inputs.pushgateway]]\n"),
    )
    .unwrap();
    let (mut child, mut stderr) = start_agent(dir.path());
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{rest}");
    assert!(rest.contains("SIGTERM received"), "{rest}");
}

/// Runs `pushkit <args>` on `conf` (file name, text) with `env`, for at most
/// 20 s: (exit code, stderr). A run that has not stopped by then is killed
/// and reported as `None`: it started.
fn run_on(args: &[&str], conf: &[(&str, &str)], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    // A port of its own, should the agent start after all.
    std::fs::write(
        dir.path().join("0-listen.conf"),
        "[http_api]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    for (name, text) in conf {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let mut child = pushkit()
        .args(args)
        .arg("--conf-dir")
        .arg(dir.path())
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let shown = format!("{}/", dir.path().display());
    (code, stderr.replace(&shown, "conf.d/"))
}

/// `pushkit check` refuses every config that `pushkit run` refuses, with
/// the same one line: both load through one loader and one validate(),
/// including the rules between keys that used to run only at agent start.
#[test]
fn check_refuses_what_run_refuses_with_the_same_message() {
    const SINK: &str = "[[sinks]]\nurl = \"http://127.0.0.1:9/write\"\n";
    let with_sink = |extra: &str| format!("{SINK}{extra}");
    /// Files (name, text), ENV, and the start of the message.
    type Case<'a> = (Vec<(&'a str, String)>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("a.conf", "[io]\nflush_interval = \"10x\"\n".into())],
            vec![],
            r#"conf.d/a.conf: io.flush_interval = "10x": expected a duration"#,
        ),
        (
            vec![],
            vec![("ENV_DEFAULT_ENABLED_INPUTS", "pushgateway"), ("ENV_INPUT_PUSHGATEWAY_HONOR_TIMESTAMPS", "yes")],
            r#"ENV_INPUT_PUSHGATEWAY_HONOR_TIMESTAMPS = "yes": expected a bool"#,
        ),
        (
            vec![("a.conf", "[io]\nmax_cache_count = 10\n".into())],
            vec![("ENV_IO_MAX_CACHE_COUNT", "0")],
            r#"ENV_IO_MAX_CACHE_COUNT = "0": expected a whole number of at least 1"#,
        ),
        (
            vec![("s.conf", with_sink("cert_file = \"/etc/pushkit/client.pem\"\n"))],
            vec![],
            r#"conf.d/s.conf: sinks[0].cert_file = "/etc/pushkit/client.pem": expected key_file with it"#,
        ),
        (
            vec![("s.conf", with_sink("key_file = \"/k.pem\"\n"))],
            vec![],
            r#"conf.d/s.conf: sinks[0].key_file = "/k.pem": expected cert_file with it"#,
        ),
        (
            vec![("s.conf", with_sink("bearer_token = \"t\"\nbearer_token_file = \"/t\"\n"))],
            vec![],
            r#"conf.d/s.conf: sinks[0].bearer_token_file = "/t": expected either bearer_token or bearer_token_file, not both"#,
        ),
        (
            vec![(
                "s.conf",
                with_sink("bearer_token_file = \"/t\"\nbasic_auth = { username = \"u\", password = \"p\" }\n"),
            )],
            vec![],
            "conf.d/s.conf: sinks[0].basic_auth = {...}: expected either a bearer token or basic_auth, not both",
        ),
        (
            vec![(
                "s.conf",
                with_sink("bearer_token = \"t\"\nheaders = { Authorization = \"Token x\" }\n"),
            )],
            vec![],
            "conf.d/s.conf: sinks[0].headers = {...}: expected no Authorization header",
        ),
        (
            vec![("s.conf", with_sink("headers = { \"Bad Name\" = \"v\" }\n"))],
            vec![],
            r#"conf.d/s.conf: sinks[0].headers."Bad Name" = "REDACTED": expected a header name"#,
        ),
        (
            vec![("s.conf", with_sink("basic_auth = { username = \"u\" }\n"))],
            vec![],
            "conf.d/s.conf: sinks[0].basic_auth = {...}: expected a TOML table with username and one of password, password_file",
        ),
        (
            vec![("s.conf", with_sink("overflow = \"drop-oldest\"\n"))],
            vec![],
            r#"conf.d/s.conf: sinks[0].overflow = "drop-oldest": expected "block" or "drop_oldest""#,
        ),
        (
            vec![("s.conf", with_sink("format = \"influx\"\n"))],
            vec![],
            r#"conf.d/s.conf: sinks[0].format = "influx": expected "line-protocol" or "remote-write""#,
        ),
        (
            vec![("s.conf", "[[sinks]]\nname = \"vm\"\n".into())],
            vec![],
            "conf.d/s.conf: sinks[0].url is missing: expected an http:// or https:// URL",
        ),
        (
            vec![
                ("a.conf", with_sink("name = \"vm\"\n")),
                ("b.conf", with_sink("name = \"vm\"\n")),
            ],
            vec![],
            r#"conf.d/b.conf: sinks[0].name = "vm": expected a unique sink name; conf.d/a.conf: sinks[0] already has it"#,
        ),
        (
            // A file is checked whatever the ENV, replaced sinks included.
            vec![("s.conf", with_sink("cert_file = \"/c.pem\"\n"))],
            vec![("ENV_DATAWAY", "http://127.0.0.1:9/write")],
            r#"conf.d/s.conf: sinks[0].cert_file = "/c.pem": expected key_file with it"#,
        ),
        (
            vec![],
            vec![("ENV_DATAWAY", "openway.example?token=s3cret")],
            r#"ENV_DATAWAY = "openway.example?token=REDACTED": expected comma-separated"#,
        ),
        (
            vec![("a.conf", "[io]\nflush = \"1s\"\n".into())],
            vec![],
            r#"conf.d/a.conf: unknown key "io.flush": expected one of max_cache_count,"#,
        ),
        (
            vec![("a.conf", "[[inputs.pushgateway]]\nstores = true\n".into())],
            vec![],
            r#"conf.d/a.conf: unknown key "inputs.pushgateway[0].stores": expected one of route_prefix,"#,
        ),
    ];
    for (files, env, want) in &cases {
        let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
        let (check_code, check_err) = run_on(&["check"], &files, env);
        let (run_code, run_err) = run_on(&["run"], &files, env);
        assert_eq!(check_code, Some(1), "check: {want}: {check_err}");
        assert_eq!(run_code, Some(1), "run: {want}: {run_err}");
        assert_eq!(check_err, run_err, "{want}");
        assert_eq!(check_err.trim_end().lines().count(), 1, "{check_err}");
        let message = check_err
            .trim_end()
            .strip_prefix("pushkit: configuration error: ")
            .unwrap_or_else(|| panic!("{check_err}"));
        assert!(message.starts_with(want), "want {want}\n got {message}");
        assert!(!message.contains("s3cret"), "{message}");
    }
}

/// A fatal error after start (the store cannot load its persisted state:
/// here `persistence_dir` lies under a regular file) stops the agent with
/// a non-zero exit, which Kubernetes and systemd read as a failure; it
/// used to exit 0, as a clean stop.
#[test]
fn a_store_that_cannot_load_exits_non_zero() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let dir = format!("{}/store", file.path().display());
    let (code, stderr) = run_on(
        &[],
        &[(
            "p.conf",
            &format!("[[inputs.pushgateway]]\npersistence_dir = \"{dir}\"\n"),
        )],
        &[],
    );
    assert!(stderr.contains("cannot load the store"), "{stderr}");
    assert_eq!(code, Some(1), "{stderr}");
}
