//! Real clients against a locked-down agent (TLS with a CA made here, and
//! credentials): Python's `push_to_gateway` with `basic_auth_handler` over
//! https, Go's `push.New(...).BasicAuth(...)` with a client trusting the
//! CA, and curl with `--cacert` and a bearer token. Each is also refused
//! without its credentials.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// bcrypt of "s3cret-push" at cost 4.
const HASH: &str = "$2b$04$isFOm4DC5eSoFgmG0QESLOPuwLBKrrwozU0uuor243PoF8.R90EbW";
const GOPATH: &str = "/usr/share/gocode";

/// A CA, a server certificate for 127.0.0.1, a token file, and an agent
/// serving HTTPS with basic auth and bearer tokens, forwarding to `sinks`.
fn locked_agent(dir: &Path) -> (Agent, PathBuf) {
    locked_agent_to(dir, Vec::new())
}

fn locked_agent_to(dir: &Path, sinks: Vec<Sink>) -> (Agent, PathBuf) {
    let ca = Ca::new("peer-ca");
    let (cert, key) = ca.leaf("127.0.0.1", false);
    let ca_file = dir.join("ca.crt");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    std::fs::write(dir.join("tls.crt"), cert).unwrap();
    std::fs::write(dir.join("tls.key"), key).unwrap();
    std::fs::write(dir.join("tokens"), "tok-curl\n").unwrap();
    let agent = Agent::start_closed(&AgentConf {
        http: format!(
            "[http_api.tls]\ncert = \"{d}/tls.crt\"\nprivkey = \"{d}/tls.key\"\n\
             [http_api.auth]\nbasic_auth_users = {{ alice = \"{HASH}\" }}\n\
             bearer_tokens_file = \"{d}/tokens\"\n",
            d = dir.display()
        ),
        sinks,
        ..AgentConf::default()
    });
    (agent, ca_file)
}

fn https(agent: &Agent) -> String {
    format!("https://127.0.0.1:{}", agent.port)
}

/// `GET /metrics` through curl with the CA and the token.
fn exposed(agent: &Agent, ca: &Path) -> String {
    read(agent, ca, "/metrics")
}

/// A GET of `path` through curl with the CA and the token.
fn read(agent: &Agent, ca: &Path, path: &str) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--fail", "--cacert"])
        .arg(ca)
        .args(["-H", "Authorization: Bearer tok-curl"])
        .arg(format!("{}{path}", https(agent)));
    let (status, out, err) = run_bounded("curl", cmd, Duration::from_secs(30));
    assert!(status.success(), "{err}");
    out
}

#[test]
#[ignore = "needs curl: run via .ci/run"]
fn curl_pushes_over_https_with_a_bearer_token() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, ca) = locked_agent(dir.path());
    let curl = |auth: Option<&str>| {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&ca)
            .args(["--data-binary", "curl_pushed 3\n"]);
        if let Some(a) = auth {
            cmd.args(["-H", a]);
        }
        cmd.arg(format!("{}/metrics/job/curl", https(&agent)));
        let (status, out, err) = run_bounded("curl", cmd, Duration::from_secs(30));
        assert!(status.success(), "{err}");
        out
    };
    assert_eq!(curl(None), "401");
    assert_eq!(curl(Some("Authorization: Bearer wrong")), "401");
    assert_eq!(curl(Some("Authorization: Bearer tok-curl")), "200");
    assert!(exposed(&agent, &ca).contains("curl_pushed{instance=\"\",job=\"curl\"} 3"));
}

#[test]
#[ignore = "needs python prometheus_client, curl and victoria-metrics: run via .ci/run"]
fn python_pushes_over_https_with_basic_auth() {
    let python = std::env::var_os("PUSHKIT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python3"));
    let dir = tempfile::tempdir().unwrap();
    let mut vm = VictoriaMetrics::start();
    let (agent, ca) = locked_agent_to(
        dir.path(),
        vec![Sink {
            name: "vm".into(),
            url: vm.url("/write"),
            gzip: false,
        }],
    );
    let script = r#"
import sys
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway
from prometheus_client.exposition import basic_auth_handler

def handler(url, method, timeout, headers, data):
    return basic_auth_handler(url, method, timeout, headers, data, "alice", sys.argv[2])

reg = CollectorRegistry()
Gauge("py_tls_pushed", "Pushed over TLS.", registry=reg).set(7)
try:
    push_to_gateway(sys.argv[1], job="py-tls", registry=reg, handler=handler)
    print("authorised ok")
except Exception as e:
    print("authorised failed", e)
try:
    push_to_gateway(sys.argv[1], job="py-anon", registry=reg)
    print("anonymous ok")
except Exception as e:
    print("anonymous failed", e)
"#;
    let run = |password: &str| {
        let mut cmd = Command::new(&python);
        cmd.arg("-c")
            .arg(script)
            .arg(https(&agent))
            .arg(password)
            // urllib's default context trusts this CA file.
            .env("SSL_CERT_FILE", &ca);
        let (status, out, err) = run_bounded("python", cmd, Duration::from_secs(60));
        assert!(status.success(), "{out}\n{err}");
        out
    };
    let out = run("s3cret-push");
    assert!(out.contains("authorised ok"), "{out}");
    assert!(out.contains("anonymous failed HTTP Error 401"), "{out}");
    let out = run("wrong");
    assert!(out.contains("authorised failed HTTP Error 401"), "{out}");
    let text = exposed(&agent, &ca);
    assert!(
        text.contains("py_tls_pushed{instance=\"\",job=\"py-tls\"} 7"),
        "{text}"
    );
    assert!(!text.contains("py-anon"), "{text}");
    let api = read(&agent, &ca, "/api/v1/metrics");
    assert!(api.contains("\"py_tls_pushed\""), "{api}");
    assert!(!api.contains("py-anon"), "{api}");
    // The authorised push reached VictoriaMetrics; the refused ones did not.
    let got = wait_for(
        "the point in VictoriaMetrics",
        Duration::from_secs(30),
        || {
            let e = vm.export(r#"{__name__=~".*py_tls_pushed"}"#);
            (!e.is_empty()).then_some(e)
        },
    );
    for (labels, samples) in &got {
        assert_eq!(labels["job"], "py-tls", "{labels:?}");
        assert!(samples.iter().all(|(_, v)| *v == 7.0), "{samples:?}");
    }
}

#[test]
#[ignore = "needs golang-go + golang-github-prometheus-client-golang-dev and curl: run via .ci/run"]
fn go_pushes_over_https_with_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, ca) = locked_agent(dir.path());
    let bin = dir.path().join("go-auth");
    let mut cmd = Command::new(std::env::var_os("PUSHKIT_GO").unwrap_or_else(|| "go".into()));
    cmd.arg("build")
        .arg("-o")
        .arg(&bin)
        .arg(repo_root().join("samples/clients/go-auth/main.go"))
        .current_dir(dir.path())
        .env("GO111MODULE", "off")
        .env("GOPATH", GOPATH)
        .env("GOCACHE", dir.path().join("gocache"))
        .env("GOFLAGS", "")
        .env("GOPROXY", "off")
        .env("CGO_ENABLED", "0");
    let (status, out, err) = run_bounded("go build", cmd, Duration::from_secs(300));
    assert!(status.success(), "{out}\n{err}");
    let push = |password: &str| {
        let mut cmd = Command::new(&bin);
        cmd.arg("-url")
            .arg(https(&agent))
            .arg("-ca")
            .arg(&ca)
            .args(["-user", "alice", "-password", password]);
        run_bounded("go-auth", cmd, Duration::from_secs(60))
    };
    let (status, out, err) = push("s3cret-push");
    assert!(status.success(), "{out}\n{err}");
    assert_eq!(out.trim(), "PUT 200");
    let (status, _, err) = push("wrong");
    assert!(!status.success());
    assert!(err.contains("401"), "{err}");
    let text = exposed(&agent, &ca);
    assert!(
        text.contains("go_auth_pushed{instance=\"\",job=\"go-auth\"} 11"),
        "{text}"
    );
}
