//! The Kubernetes samples, run as written: samples/kubernetes is read with
//! a YAML parser (Debian's PyYAML; kustomize v2 has nothing to render but
//! the resource list), its names are checked against pushkit (every ENV
//! name one pushkit reads, the image build.sh tags, the port, the probe
//! paths), and then the DaemonSet's container spec runs against the built
//! image as the pod would run it: its user, its ENV, its volumes, on a
//! read-only root (bubblewrap over `buildah mount`'s tree). Its probes
//! must answer 200; the CronJob's script and the client Deployment's
//! script (once) push into it, and their points must reach a real
//! VictoriaMetrics.
//!
//! The token Secret the samples ask for is a file made here, bound where
//! the pod mounts it. What cannot be the pod's here: `ENV_HTTP_LISTEN` moves to a free
//! loopback port (the hostPort 9529 may be taken), `ENV_DATAWAY` names the
//! local VictoriaMetrics instead of the sample's Dataway, and the scripts'
//! `$(NODE_IP)` is 127.0.0.1.

mod common;

use common::*;
use serde_json::Value as Json;
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

/// Every document of a YAML file, as JSON.
fn yaml_documents(name: &str) -> Vec<Json> {
    let path = repo_root().join("samples/kubernetes").join(name);
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg("import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))")
        .arg(&path)
        .output()
        .expect("python3 (Debian's, with python3-yaml; .ci/run installs it)");
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from PyYAML")
}

fn kind<'a>(docs: &'a [Json], kind: &str) -> &'a Json {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {docs:#?}"))
}

/// A container's ENV as (name, value) pairs; `valueFrom` ones left out.
fn env_of(container: &Json) -> Vec<(String, String)> {
    container["env"]
        .as_array()
        .map(|env| {
            env.iter()
                .filter_map(|e| {
                    Some((
                        e["name"].as_str()?.to_string(),
                        e["value"].as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The script of a `["/bin/sh", "-c"]` container.
fn script_of(container: &Json) -> String {
    assert_eq!(container["command"], serde_json::json!(["/bin/sh", "-c"]));
    container["args"][0].as_str().expect("a script").to_string()
}

#[test]
#[ignore = "needs buildah, bubblewrap, python3-yaml and victoria-metrics: run via .ci/run"]
fn the_samples_run_as_written() {
    let kustomization = yaml_documents("kustomization.yaml");
    let resources: Vec<String> = kustomization[0]["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    assert_eq!(resources, ["daemonset.yaml", "service.yaml", "client.yaml"]);
    let docs: Vec<Json> = resources.iter().flat_map(|r| yaml_documents(r)).collect();

    // The Service keeps each pod on its node's agent, and the PodMonitor
    // (applied apart: it needs the operator's CRDs) keeps pushed labels.
    let ds_labels = &kind(&docs, "DaemonSet")["spec"]["template"]["metadata"]["labels"];
    let svc = kind(&docs, "Service");
    assert_eq!(svc["spec"]["internalTrafficPolicy"], "Local");
    assert_eq!(&svc["spec"]["selector"], ds_labels);
    assert_eq!(svc["spec"]["ports"][0]["port"], 9529);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http");
    let monitors = yaml_documents("podmonitor.yaml");
    let pm = kind(&monitors, "PodMonitor");
    assert_eq!(&pm["spec"]["selector"]["matchLabels"], ds_labels);
    let endpoint = &pm["spec"]["podMetricsEndpoints"][0];
    assert_eq!(endpoint["honorLabels"], true);
    assert_eq!(endpoint["path"], "/metrics");
    assert_eq!(endpoint["port"], "http");

    let ds = kind(&docs, "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    // The names the spec uses are pushkit's.
    assert_eq!(container["image"], IMAGE.replace(":test", ":dev"));
    assert!(
        container.get("args").is_none(),
        "the image's entrypoint runs it"
    );
    assert_eq!(container["ports"][0]["containerPort"], 9529);
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/-/ready");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/-/healthy");
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    let env = env_of(container);
    let known: BTreeSet<String> = pushkit::config::reference()
        .into_iter()
        .filter_map(|d| d.env)
        .chain([
            pushkit::config::ENV_DEFAULT_ENABLED_INPUTS.to_string(),
            "RUST_LOG".to_string(),
        ])
        .collect();
    for (name, _) in &env {
        assert!(
            known.contains(name),
            "{name} is not an ENV name pushkit reads"
        );
    }
    let mounts: Vec<(String, String)> = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().into(),
                m["mountPath"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        mounts,
        [
            ("conf".to_string(), "/etc/pushkit/conf.d".to_string()),
            ("data".to_string(), "/var/lib/pushkit".to_string()),
            ("auth".to_string(), "/etc/pushkit/auth".to_string())
        ]
    );
    // Locked down: pushes need a token from the Secret, and the rate limit
    // is on.
    let env_value = |name: &str| env.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    assert_eq!(
        env_value("ENV_HTTP_AUTH_BEARER_TOKENS_FILE").as_deref(),
        Some("/etc/pushkit/auth/tokens")
    );
    assert!(env_value("ENV_REQUEST_RATE_LIMIT").is_some());
    let secret = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "auth")
        .expect("the auth volume");
    assert_eq!(secret["secret"]["secretName"], "pushkit-tokens");

    // The image, and the pod's container run on it.
    let dir = tempfile::Builder::new()
        .prefix("pushkit-manifests-")
        .tempdir()
        .expect("temp dir");
    let buildah = Buildah::new(dir.path());
    buildah.build_image(env!("CARGO_BIN_EXE_pushkit"));
    let ctr = buildah.run(&["from", IMAGE]);
    let tree = buildah.run(&["mount", &ctr]);
    let mut vm = VictoriaMetrics::start();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let marker = format!("ENV_HTTP_LISTEN={listen}");
    let _reaper = Reaper(marker.clone());
    let conf = dir.path().join("conf");
    let data = dir.path().join("data");
    let auth = dir.path().join("auth");
    std::fs::create_dir(&conf).unwrap();
    std::fs::create_dir(&data).unwrap();
    std::fs::create_dir(&auth).unwrap();
    // The Secret's one key, as `kubectl create secret` makes it.
    const TOKEN: &str = "manifest-test-token-5d1c";
    std::fs::write(auth.join("tokens"), TOKEN).unwrap();
    let mut bwrap = Command::new(peer_binary("PUSHKIT_BWRAP", "/usr/bin/bwrap", "bubblewrap"));
    bwrap
        .args(["--ro-bind", &tree, "/", "--dev", "/dev", "--proc", "/proc"])
        .arg("--bind")
        .arg(&conf)
        .arg("/etc/pushkit/conf.d")
        .arg("--bind")
        .arg(&data)
        .arg("/var/lib/pushkit")
        .arg("--ro-bind")
        .arg(&auth)
        .arg("/etc/pushkit/auth")
        .args([
            "--unshare-user",
            "--uid",
            "65532",
            "--gid",
            "65532",
            "--clearenv",
        ]);
    for (name, value) in &env {
        let value = match name.as_str() {
            "ENV_HTTP_LISTEN" => listen.clone(),
            "ENV_DATAWAY" => vm.url("/write"),
            _ => value.clone(),
        };
        bwrap.args(["--setenv", name, &value]);
    }
    bwrap.args(ENTRYPOINT);
    let mut guard = spawn_logged("pod", bwrap, dir.path());
    for probe in ["/-/ready", "/-/healthy"] {
        let url = format!("http://{listen}{probe}");
        wait_for(
            &format!("{probe} to answer 200"),
            Duration::from_secs(60),
            || {
                guard.assert_running();
                get(&url).ok().filter(|r| r.status == 200)
            },
        );
    }

    // Without the token, a push is refused.
    let refused = http(
        "PUT",
        &format!("http://{listen}/metrics/job/anonymous"),
        &[],
        b"m 1\n",
    )
    .unwrap();
    assert_eq!(refused.status, 401, "{}", refused.text());

    // The CronJob's script and the client's, once each.
    let script_env = |container: &Json| -> Vec<(String, String)> {
        env_of(container)
            .into_iter()
            .map(|(k, v)| (k, v.replace("$(NODE_IP):9529", &listen)))
            .collect()
    };
    let cron = kind(&docs, "CronJob");
    let backup = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    let client = &kind(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    for (name, container) in [("backup", backup), ("client", client)] {
        let mut sh = Command::new("/bin/sh");
        sh.arg("-c")
            .arg(script_of(container))
            .env("NODE_IP", "127.0.0.1")
            .env("POD_NAME", format!("{name}-pod"))
            .env("ONCE", "1")
            .env("PUSHKIT_TOKEN", TOKEN)
            .envs(script_env(container));
        let (status, out, err) = run_bounded(name, sh, Duration::from_secs(60));
        assert!(
            status.success(),
            "{name}'s script: {status}\n{out}\n{err}\n{}",
            guard.log_text()
        );
    }

    // Their points, in VictoriaMetrics (the sample flushes every 10 s).
    let want = [
        "backup_backup_duration_seconds",
        "backup_backup_running",
        "client_client_pushes_total",
    ];
    let got = wait_for(
        "the samples' points in VictoriaMetrics",
        Duration::from_secs(60),
        || {
            guard.assert_running();
            let e = vm.export(r#"{__name__=~"(backup|client)_.*"}"#);
            let names: BTreeSet<String> = e.keys().map(|l| l["__name__"].clone()).collect();
            want.iter().all(|w| names.contains(*w)).then_some(e)
        },
    );
    let instances: BTreeSet<&str> = got
        .keys()
        .filter_map(|l| l.get("instance").map(String::as_str))
        .collect();
    assert_eq!(instances, BTreeSet::from(["backup-pod", "client-pod"]));
    // The store and the queue went to the data volume.
    for sub in ["store", "queue"] {
        assert!(data.join(sub).is_dir(), "no {sub} in the data volume");
    }
    drop(guard);
    buildah.run(&["umount", &ctr]);
    buildah.run(&["rm", &ctr]);
}
