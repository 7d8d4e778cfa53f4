//! TLS on the listener, with the agent binary and certificates made here
//! (rcgen): HTTPS works with the CA; plain HTTP to the TLS port gets no
//! HTTP answer; with `client_ca`, a client without a certificate is
//! refused and one with a certificate served; `min_version = "1.3"`
//! refuses TLS 1.2; a Secret-style rotation (the directory's `..data`
//! symlink swapped) is served without a restart, and a bad one keeps the
//! old certificate.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The name the server's certificates are for; resolved to loopback.
const HOST: &str = "pushkit.test";

/// Writes a Kubernetes-style Secret volume: `dir/..data` a symlink to a
/// timestamped directory, and `tls.crt`, `tls.key` symlinks through it.
fn write_secret(dir: &Path, generation: u32, files: &[(&str, &str)]) {
    let real = dir.join(format!("..gen{generation}"));
    std::fs::create_dir_all(&real).unwrap();
    for (name, text) in files {
        std::fs::write(real.join(name), text).unwrap();
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), &link).unwrap();
        }
    }
    // The swap: a new symlink renamed over the old, as the kubelet does.
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("..gen{generation}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
}

fn client(agent: &Agent, ca: &Ca, identity: Option<(&str, &str)>) -> reqwest::Client {
    let addr: SocketAddr = ([127, 0, 0, 1], agent.port).into();
    let mut b = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap()])
        .resolve(HOST, addr)
        .timeout(Duration::from_secs(10));
    if let Some((cert, key)) = identity {
        b = b.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
    }
    b.build().unwrap()
}

fn url(agent: &Agent, path: &str) -> String {
    format!("https://{HOST}:{}{path}", agent.port)
}

fn tls_agent(dir: &Path, extra: &str) -> Agent {
    Agent::start_closed(&AgentConf {
        http: format!(
            "[http_api.tls]\ncert = \"{}\"\nprivkey = \"{}\"\n{extra}",
            dir.join("tls.crt").display(),
            dir.join("tls.key").display()
        ),
        ..AgentConf::default()
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn https_serves_pushes_and_plain_http_gets_nothing() {
    let secret = tempfile::tempdir().unwrap();
    let ca = Ca::new("ca-1");
    let (cert, key) = ca.leaf(HOST, false);
    write_secret(secret.path(), 1, &[("tls.crt", &cert), ("tls.key", &key)]);
    let agent = tls_agent(secret.path(), "");
    let rt = runtime();
    rt.block_on(async {
        let c = client(&agent, &ca, None);
        let r = c
            .put(url(&agent, "/metrics/job/tls"))
            .body("over_tls 1\n")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let text = c
            .get(url(&agent, "/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.contains("over_tls{"), "{text}");
        // A client that does not trust the CA is refused.
        let untrusting = client(&agent, &Ca::new("other"), None);
        assert!(untrusting
            .get(url(&agent, "/-/healthy"))
            .send()
            .await
            .is_err());
    });

    // Plain HTTP to the TLS port: no HTTP reply, only a TLS alert or a close.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(
        !got.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn mutual_tls_refuses_clients_without_a_certificate() {
    let secret = tempfile::tempdir().unwrap();
    let ca = Ca::new("ca-m");
    let (cert, key) = ca.leaf(HOST, false);
    let (client_cert, client_key) = ca.leaf("client-1", true);
    write_secret(
        secret.path(),
        1,
        &[("tls.crt", &cert), ("tls.key", &key), ("ca.crt", &ca.pem())],
    );
    let agent = tls_agent(
        secret.path(),
        &format!(
            "client_ca = \"{}\"\n",
            secret.path().join("ca.crt").display()
        ),
    );
    runtime().block_on(async {
        let anonymous = client(&agent, &ca, None);
        assert!(anonymous
            .get(url(&agent, "/-/healthy"))
            .send()
            .await
            .is_err());
        // A certificate from another CA is refused too.
        let stranger = Ca::new("stranger");
        let (sc, sk) = stranger.leaf("client-2", true);
        let wrong = client(&agent, &ca, Some((&sc, &sk)));
        assert!(wrong.get(url(&agent, "/-/healthy")).send().await.is_err());
        let known = client(&agent, &ca, Some((&client_cert, &client_key)));
        let r = known.get(url(&agent, "/-/healthy")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    });
}

#[test]
fn min_version_13_refuses_tls_12() {
    let secret = tempfile::tempdir().unwrap();
    let ca = Ca::new("ca-v");
    let (cert, key) = ca.leaf(HOST, false);
    write_secret(secret.path(), 1, &[("tls.crt", &cert), ("tls.key", &key)]);
    let agent = tls_agent(secret.path(), "min_version = \"1.3\"\n");
    let addr: SocketAddr = ([127, 0, 0, 1], agent.port).into();
    runtime().block_on(async {
        let only_12 = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap()])
            .resolve(HOST, addr)
            .tls_version_max(reqwest::tls::Version::TLS_1_2)
            .build()
            .unwrap();
        assert!(only_12.get(url(&agent, "/-/healthy")).send().await.is_err());
        let r = client(&agent, &ca, None)
            .get(url(&agent, "/-/healthy"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    });
}

#[test]
fn a_rotated_certificate_is_served_without_a_restart() {
    let secret = tempfile::tempdir().unwrap();
    let old_ca = Ca::new("ca-old");
    let (cert, key) = old_ca.leaf(HOST, false);
    write_secret(secret.path(), 1, &[("tls.crt", &cert), ("tls.key", &key)]);
    let mut agent = tls_agent(secret.path(), "");
    let rt = runtime();
    let new_ca = Ca::new("ca-new");
    let serves = |ca: &Ca, agent: &Agent| {
        rt.block_on(async {
            client(agent, ca, None)
                .get(url(agent, "/-/healthy"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
    };
    assert!(serves(&old_ca, &agent));
    assert!(!serves(&new_ca, &agent));

    // A bad rotation (a key that is not PEM) keeps the old certificate.
    let (new_cert, new_key) = new_ca.leaf(HOST, false);
    write_secret(
        secret.path(),
        2,
        &[("tls.crt", &new_cert), ("tls.key", "not a key\n")],
    );
    wait_for("the bad files to be read", Duration::from_secs(10), || {
        agent
            .stderr_text()
            .contains("do not load, so the old ones stay")
            .then_some(())
    });
    assert!(serves(&old_ca, &agent));

    // A good one is served, by the same process.
    write_secret(
        secret.path(),
        3,
        &[("tls.crt", &new_cert), ("tls.key", &new_key)],
    );
    wait_for("the new certificate", Duration::from_secs(10), || {
        serves(&new_ca, &agent).then_some(())
    });
    assert!(!serves(&old_ca, &agent));
    agent.assert_running();
}

#[test]
fn unusable_tls_files_stop_the_start_with_the_reason() {
    let out = run_pushkit_once(
        &[],
        &format!(
            "[http_api]\nlisten = \"127.0.0.1:{}\"\n[http_api.tls]\ncert = \"/nonexistent/tls.crt\"\nprivkey = \"/nonexistent/tls.key\"\n",
            free_port()
        ),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[http_api.tls] cert /nonexistent/tls.crt"),
        "{err}"
    );
}
