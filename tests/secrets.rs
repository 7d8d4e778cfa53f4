//! A sink's secrets never show: a backend that echoes its request in a
//! 400 answer (as some do) puts the sink's URL token, its headers and its
//! credentials in that answer, and pushkit logs and shows refusals. The
//! fake backend here (an in-process echo, a fault to inject) answers every
//! request with its request head; pushkit's log, `/metrics`,
//! `/api/v1/status` and the status page must hold none of the secrets.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::Duration;

const URL_TOKEN: &str = "urltok-7f3a9c51e2";
const HEADER_SECRET: &str = "hdrsecret-81c0d2";
const BEARER: &str = "bearer-5e1f0a77c3";
const PASSWORD: &str = "pw-2b9d4c6e";

/// A backend that answers every request 400 with the request's head.
fn echo_backend() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut head = String::new();
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                        head.push_str(&line);
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let reply = format!("bad request, you sent:\n{head}");
                    let mut s = &stream;
                    let _ = write!(
                        s,
                        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{reply}",
                        reply.len()
                    );
                }
            });
        }
    });
    port
}

#[test]
fn secrets_never_show() {
    let port = echo_backend();
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, PASSWORD).unwrap();
    let agent = Agent::start_raw(
        free_port(),
        &format!(
            "[io]\nflush_interval = \"100ms\"\n\n\
             [[sinks]]\nname = \"bearer\"\nurl = \"http://127.0.0.1:{port}/write?db=x&token={URL_TOKEN}\"\n\
             bearer_token = \"{BEARER}\"\nheaders = {{ X-Api-Key = \"{HEADER_SECRET}\" }}\n\n\
             [[sinks]]\nname = \"basic\"\nurl = \"http://127.0.0.1:{port}/write\"\n\
             basic_auth = {{ username = \"agent\", password_file = \"{}\" }}\n\n\
             [[inputs.pushgateway]]\nenable_admin_api = true\n",
            password_file.display()
        ),
    );
    let r = agent.request("PUT", "/metrics/job/s", &[], b"m 1\n");
    assert_eq!(r.status, 200, "{}", r.text());
    // Both sinks had their batch refused, and said so.
    wait_for("both refusals in the log", Duration::from_secs(15), || {
        let log = agent.stderr_text();
        (log.matches("rejected a batch").count() >= 2).then_some(())
    });
    let basic = base64_standard(&format!("agent:{PASSWORD}"));
    // The log alone (stderr_text also shows the conf file, secrets and all).
    let log = std::fs::read_to_string(agent.dir.path().join("agent.stderr.log")).unwrap();
    let shown = [
        ("the log", log),
        (
            "/metrics",
            agent.request("GET", "/metrics", &[], b"").text(),
        ),
        (
            "/api/v1/status",
            agent.request("GET", "/api/v1/status", &[], b"").text(),
        ),
        (
            "the status page",
            agent.request("GET", "/status", &[], b"").text(),
        ),
    ];
    // What the backend echoed did reach them, redacted.
    assert!(shown[0].1.contains("you sent"), "{}", shown[0].1);
    assert!(shown[3].1.contains("you sent"), "{}", shown[3].1);
    for (place, text) in &shown {
        for secret in [URL_TOKEN, HEADER_SECRET, BEARER, PASSWORD, basic.as_str()] {
            assert!(!text.contains(secret), "{secret} in {place}:\n{text}");
        }
    }
}

fn base64_standard(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// bcrypt of "s3cret-push" at cost 4.
const USER_HASH: &str = "$2b$04$isFOm4DC5eSoFgmG0QESLOPuwLBKrrwozU0uuor243PoF8.R90EbW";
const USER_PASSWORD: &str = "s3cret-push";
const LISTENER_TOKEN: &str = "listener-tok-9a7e31";

/// The listener's own secrets (the users' hashes, the bearer tokens and
/// the passwords clients send, right or wrong) show nowhere either: not
/// in the log, `/metrics`, `/api/v1/status`, the status page, a 401's
/// body or `pushkit check`.
#[test]
fn listener_credentials_never_show() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{LISTENER_TOKEN}\n")).unwrap();
    let auth = format!(
        "[http_api.auth]\nbasic_auth_users = {{ alice = \"{USER_HASH}\" }}\nbearer_tokens_file = \"{}\"\n",
        tokens.display()
    );
    let agent = Agent::start_closed(&AgentConf {
        http: auth.clone(),
        ..AgentConf::default()
    });
    let good = ("Authorization", format!("Bearer {LISTENER_TOKEN}"));
    let wrong = format!(
        "Basic {}",
        base64_standard(&format!("alice:{USER_PASSWORD}-wrong"))
    );
    let refused = agent.request(
        "PUT",
        "/metrics/job/s",
        &[("Authorization", &wrong)],
        b"m 1\n",
    );
    assert_eq!(refused.status, 401);
    let right = format!(
        "Basic {}",
        base64_standard(&format!("alice:{USER_PASSWORD}"))
    );
    let pushed = agent.request(
        "PUT",
        "/metrics/job/s",
        &[("Authorization", &right)],
        b"m 1\n",
    );
    assert_eq!(pushed.status, 200, "{}", pushed.text());
    let get = |path: &str| {
        agent
            .request("GET", path, &[(good.0, good.1.as_str())], b"")
            .text()
    };
    // `pushkit check` on the same conf dir.
    let check = run_pushkit_once(&["check"], &format!("[http_api]\n{auth}"));
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let check_text = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        check_text.contains(r#"basic_auth_users = { "alice" = "REDACTED" }"#),
        "{check_text}"
    );
    let log = std::fs::read_to_string(agent.dir.path().join("agent.stderr.log")).unwrap();
    let shown = [
        ("the log", log),
        ("/metrics", get("/metrics")),
        ("/api/v1/status", get("/api/v1/status")),
        ("the status page", get("/status")),
        ("a 401", refused.text()),
        ("pushkit check", check_text),
    ];
    for (place, text) in &shown {
        for secret in [
            USER_HASH,
            USER_PASSWORD,
            LISTENER_TOKEN,
            right.as_str(),
            wrong.as_str(),
        ] {
            assert!(!text.contains(secret), "{secret} in {place}:\n{text}");
        }
    }
}
