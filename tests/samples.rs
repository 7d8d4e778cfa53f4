//! The shipped Kubernetes manifest configures pushkit only through ENV:
//! every ENV it sets must load, with the shipped conf.d, into the
//! configuration it means. The systemd unit passes `systemd-analyze
//! verify` and its offline security review, and its environment loads.

use std::collections::HashMap;
use std::path::Path;

/// `- name: ENV_...` followed by `value: "..."`, comments skipped.
fn manifest_env() -> HashMap<String, String> {
    let text = include_str!("../samples/kubernetes/daemonset.yaml");
    let mut env = HashMap::new();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.starts_with('#'));
    while let Some(line) = lines.next() {
        let Some(name) = line.strip_prefix("- name: ") else {
            continue;
        };
        if !name.starts_with("ENV_") {
            continue;
        }
        let value = lines
            .next()
            .and_then(|l| l.strip_prefix("value: "))
            .unwrap_or_else(|| panic!("{name} has no value line"));
        env.insert(name.to_string(), value.trim_matches('"').to_string());
    }
    env
}

#[test]
fn daemonset_env_loads() {
    let env = manifest_env();
    assert!(env.len() >= 8, "{env:?}");
    let conf_d = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf.d");
    let loaded = pushkit::config::load(&conf_d, &|k| env.get(k).cloned())
        .unwrap_or_else(|e| panic!("the manifest's ENV does not load: {e}"));
    let c = loaded.config;
    assert_eq!(c.http_api.listen, "0.0.0.0:9529");
    assert_eq!(c.io.queue_dir.as_deref(), Some("/var/lib/pushkit/queue"));
    assert_eq!(c.sinks.len(), 1);
    assert!(c.sinks[0]
        .url
        .ends_with("/v1/write/metric?token=tkn_xxxxxxxxxxxxxxxxxxxxxxxx"));
    let pg = c.pushgateway.expect("the pushgateway input is enabled");
    assert_eq!(
        pg.persistence_dir.as_deref(),
        Some("/var/lib/pushkit/store")
    );
    assert_eq!(pg.group_ttl, std::time::Duration::from_secs(86_400));
    assert!(pg.store && pg.consistency_check);
}

/// samples/systemd/pushkit.service, with this build's binary in place of
/// /usr/local/bin/pushkit (verify checks that the binaries exist):
/// `systemd-analyze verify` accepts it, `systemd-analyze security` rates
/// its sandbox "OK" or better, and the configuration it starts with loads.
#[test]
#[ignore = "needs systemd (systemd-analyze): run via .ci/run"]
fn systemd_unit_verifies() {
    use std::process::Command;
    let unit = include_str!("../samples/systemd/pushkit.service");
    for line in [
        "DynamicUser=yes",
        "StateDirectory=pushkit",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ExecStart=/usr/local/bin/pushkit run --conf-dir /etc/pushkit/conf.d",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pushkit.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/pushkit", env!("CARGO_BIN_EXE_pushkit")),
    )
    .unwrap();
    let analyze = |args: &[&str]| {
        let out = Command::new("systemd-analyze")
            .args(args)
            .arg(&path)
            .output()
            .expect("systemd-analyze (Debian's systemd; .ci/run installs it)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = analyze(&["verify"]);
    assert!(
        ok && text.trim().is_empty(),
        "systemd-analyze verify:\n{text}"
    );
    let (_, text) = analyze(&["security", "--offline=yes"]);
    let level: f64 = text
        .lines()
        .find_map(|l| l.split("exposure level for pushkit.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in\n{text}"));
    assert!(level <= 2.0, "exposure {level}:\n{text}");

    // What ExecStartPre checks: the shipped conf.d with the unit's
    // Environment= lines.
    let env: HashMap<String, String> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let conf_d = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf.d");
    let loaded = pushkit::config::load(&conf_d, &|k| env.get(k).cloned())
        .unwrap_or_else(|e| panic!("the unit's environment does not load: {e}"));
    let pg = loaded.config.pushgateway.expect("the pushgateway input");
    assert_eq!(
        pg.persistence_dir.as_deref(),
        Some("/var/lib/pushkit/store")
    );
}
