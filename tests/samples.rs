//! The shipped Kubernetes manifest configures pushkit only through ENV:
//! every ENV it sets must load, with the shipped conf.d, into the
//! configuration it means.

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
