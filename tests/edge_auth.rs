//! Credentials and rate limits, with the agent binary: every route class
//! with and without credentials (basic auth against a bcrypt hash, a
//! bearer token from a file that is reread), the probes always open, a
//! refused push changing nothing; the rate limit per client and class,
//! `X-Forwarded-For` from trusted proxies only, the exporter-toolkit web
//! config's one bucket, and the Unix socket.

mod common;

use common::*;
use std::io::{Read, Write};
use std::time::Duration;

/// bcrypt of "s3cret-push" at cost 4.
const HASH: &str = "$2b$04$isFOm4DC5eSoFgmG0QESLOPuwLBKrrwozU0uuor243PoF8.R90EbW";
const TEXT: (&str, &str) = ("Content-Type", "text/plain; version=0.0.4");

fn basic(user: &str, pw: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

fn auth_agent(tokens: &std::path::Path, routes: &str) -> Agent {
    Agent::start_closed(&AgentConf {
        http: format!(
            "[http_api.auth]\nbasic_auth_users = {{ alice = \"{HASH}\" }}\n\
             bearer_tokens_file = \"{}\"\n{routes}",
            tokens.display()
        ),
        pushgateway: "enable_admin_api = true\nenable_lifecycle = true\n".into(),
        ..AgentConf::default()
    })
}

fn send(agent: &Agent, method: &str, path: &str, auth: Option<&str>, body: &str) -> Response {
    let mut headers = vec![TEXT];
    if let Some(a) = auth {
        headers.push(("Authorization", a));
    }
    agent.request(method, path, &headers, body.as_bytes())
}

#[test]
fn every_route_class_needs_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "# CI\ntok-ci-1\n").unwrap();
    let agent = auth_agent(&tokens, "");
    let good_basic = basic("alice", "s3cret-push");
    let cases: [(&str, &str, &str); 7] = [
        ("PUT", "/metrics/job/a", "m 1\n"),
        ("POST", "/metrics/job/a", "m 2\n"),
        ("DELETE", "/metrics/job/a", ""),
        ("GET", "/metrics", ""),
        ("GET", "/api/v1/status", ""),
        ("GET", "/status", ""),
        ("PUT", "/api/v1/admin/wipe", ""),
    ];
    for (method, path, body) in cases {
        for bad in [
            None,
            Some(basic("alice", "wrong").as_str()),
            Some("Bearer nope"),
        ] {
            let r = send(&agent, method, path, bad, body);
            assert_eq!(r.status, 401, "{method} {path} with {bad:?}: {}", r.text());
            assert!(
                r.text().contains("\"error_code\":\"unauthorized\""),
                "{}",
                r.text()
            );
            let challenge = r.header("www-authenticate").unwrap_or_default();
            assert!(challenge.starts_with("Basic realm="), "{challenge}");
        }
        for good in [good_basic.as_str(), "Bearer tok-ci-1"] {
            let r = send(&agent, method, path, Some(good), body);
            assert!(
                r.status < 300,
                "{method} {path} with {good}: {} {}",
                r.status,
                r.text()
            );
        }
    }
    // The probes stay open.
    for path in ["/-/healthy", "/-/ready"] {
        assert_eq!(send(&agent, "GET", path, None, "").status, 200, "{path}");
    }
    // A refused push changed nothing: only the authorised ones are there.
    send(
        &agent,
        "PUT",
        "/metrics/job/b",
        Some(&good_basic),
        "kept 1\n",
    );
    let r = send(&agent, "PUT", "/metrics/job/b", None, "lost 1\n");
    assert_eq!(r.status, 401);
    let exposed = send(&agent, "GET", "/metrics", Some(&good_basic), "").text();
    assert!(exposed.contains("kept{"), "{exposed}");
    assert!(!exposed.contains("lost{"), "{exposed}");
    assert!(
        exposed.contains("pushkit_http_unauthorized_total{class=\"push\"}"),
        "{exposed}"
    );
    // Quit is admin too.
    assert_eq!(send(&agent, "PUT", "/-/quit", None, "").status, 401);
    // Nothing secret in the log.
    // The agent's own log (stderr_text also shows the conf file).
    let log = std::fs::read_to_string(agent.dir.path().join("agent.stderr.log")).unwrap();
    for secret in ["s3cret-push", "tok-ci-1", HASH] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
}

#[test]
fn routes_choose_the_classes_and_tokens_are_reread() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "tok-a\n").unwrap();
    let agent = auth_agent(&tokens, "routes = [\"push\"]\n");
    // Reads are open, pushes need credentials.
    assert_eq!(send(&agent, "GET", "/metrics", None, "").status, 200);
    assert_eq!(
        send(&agent, "PUT", "/metrics/job/a", None, "m 1\n").status,
        401
    );
    assert_eq!(
        send(
            &agent,
            "PUT",
            "/metrics/job/a",
            Some("Bearer tok-a"),
            "m 1\n"
        )
        .status,
        200
    );
    // The token file is replaced: the new token works, the old does not.
    std::fs::write(dir.path().join("next"), "tok-b\n").unwrap();
    std::fs::rename(dir.path().join("next"), &tokens).unwrap();
    wait_for("the new token", Duration::from_secs(10), || {
        (send(
            &agent,
            "PUT",
            "/metrics/job/a",
            Some("Bearer tok-b"),
            "m 1\n",
        )
        .status
            == 200)
            .then_some(())
    });
    assert_eq!(
        send(
            &agent,
            "PUT",
            "/metrics/job/a",
            Some("Bearer tok-a"),
            "m 1\n"
        )
        .status,
        401
    );
}

#[test]
fn the_rate_limit_is_per_client_and_class() {
    let agent = Agent::start(&AgentConf {
        http: "request_rate_limit = 1\nrequest_rate_limit_burst = 3\n\
               trusted_proxies = [\"127.0.0.1\"]\n"
            .into(),
        ..AgentConf::default()
    });
    let push = |xff: &str| {
        agent.request(
            "PUT",
            "/metrics/job/r",
            &[TEXT, ("X-Forwarded-For", xff)],
            b"m 1\n",
        )
    };
    for _ in 0..3 {
        assert_eq!(push("10.0.0.1").status, 200);
    }
    let r = push("10.0.0.1");
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.text().contains("\"error_code\":\"rateLimited\""));
    assert_eq!(r.header("retry-after"), Some("1"));
    // Another client behind the same proxy, and another class, have their own.
    assert_eq!(push("10.0.0.2").status, 200);
    let read = agent.request(
        "GET",
        "/api/v1/status",
        &[("X-Forwarded-For", "10.0.0.1")],
        b"",
    );
    assert_eq!(read.status, 200);
    // A forged X-Forwarded-For before the proxy's own entry is not believed:
    // the proxy appends the real client last.
    assert_eq!(push("10.0.0.9, 10.0.0.1").status, 429);
    // The bucket refills.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(push("10.0.0.1").status, 200);
    let metrics = agent.request("GET", "/metrics", &[], b"").text();
    assert!(
        metrics.contains("pushkit_http_rate_limited_total{class=\"push\"} 2"),
        "{metrics}"
    );
}

#[test]
fn an_untrusted_peer_cannot_pick_its_bucket() {
    let agent = Agent::start(&AgentConf {
        http: "request_rate_limit = 1\nrequest_rate_limit_burst = 2\n".into(),
        ..AgentConf::default()
    });
    let push = |xff: &str| {
        agent
            .request(
                "PUT",
                "/metrics/job/r",
                &[TEXT, ("X-Forwarded-For", xff)],
                b"m 1\n",
            )
            .status
    };
    assert_eq!(push("10.0.0.1"), 200);
    assert_eq!(push("10.0.0.2"), 200);
    assert_eq!(push("10.0.0.3"), 429);
}

#[test]
fn the_web_config_file_of_the_pushgateway_works_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!("basic_auth_users:\n  alice: {HASH}\nrate_limit:\n  interval: 1s\n  burst: 4\n"),
    )
    .unwrap();
    let agent = Agent::start_closed(&AgentConf {
        http: format!("web_config_file = \"{}\"\n", web.display()),
        ..AgentConf::default()
    });
    let good = basic("alice", "s3cret-push");
    assert_eq!(
        send(&agent, "PUT", "/metrics/job/w", None, "m 1\n").status,
        401
    );
    assert_eq!(
        send(&agent, "PUT", "/metrics/job/w", Some(&good), "m 1\n").status,
        200
    );
    // One bucket for all: reads and pushes share it.
    assert_eq!(send(&agent, "GET", "/metrics", Some(&good), "").status, 200);
    assert_eq!(send(&agent, "GET", "/metrics", Some(&good), "").status, 200);
    assert_eq!(
        send(&agent, "PUT", "/metrics/job/w", Some(&good), "m 1\n").status,
        429
    );

    // A key the toolkit has and pushkit does not is refused at start.
    std::fs::write(
        &web,
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n",
    )
    .unwrap();
    let out = run_pushkit_once(
        &["check"],
        &format!("[http_api]\nweb_config_file = \"{}\"\n", web.display()),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("http_server_config.headers = {...}: expected it absent"),
        "{err}"
    );
}

#[test]
fn the_unix_socket_serves_the_same_api() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("pushkit.sock");
    let agent = Agent::start(&AgentConf {
        http: format!("listen_socket = \"{}\"\n", sock.display()),
        ..AgentConf::default()
    });
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = "over_unix 1\n";
    write!(
        s,
        "PUT /metrics/job/sidecar HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let exposed = agent.request("GET", "/metrics", &[], b"").text();
    assert!(exposed.contains("over_unix{"), "{exposed}");
}
