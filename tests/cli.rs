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

fn shipped_conf_d() -> String {
    format!("{}/conf.d", env!("CARGO_MANIFEST_DIR"))
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

#[test]
fn sigterm_stops_cleanly_with_exit_zero() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        dir.path().join("pushkit.conf"),
        format!("[http_api]\nlisten = \"127.0.0.1:{port}\"\n[[inputs.pushgateway]]\n"),
    )
    .unwrap();
    let mut child = pushkit()
        .args(["--conf-dir"])
        .arg(dir.path())
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
