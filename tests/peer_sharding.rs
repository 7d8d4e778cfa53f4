//! Sharding gateways through a real proxy: Debian's nginx, started on a
//! loopback port with `samples/sharding/nginx/nginx.conf` (its upstream
//! addresses and listen port rewritten to the test's), in front of three
//! pushkit replicas with `persistence_dir`. The official Python client
//! pushes 300 groups through it, and the Go client 100 more; a Prometheus
//! scrapes the three replicas with the sample's scrape config.
//! - Each group lives on exactly one replica, and every replica gets some.
//! - A DELETE through the proxy reaches the owner.
//! - The spelling rule: the same group spelled two ways (padded and
//!   unpadded base64, as the Python and Go clients send it) can land on
//!   two replicas, which then both expose it.
//! - Prometheus scraping all three sees each series once.
//! - No failover: with one replica down, pushes of its groups fail and
//!   the others' keep working; restarted, it has its groups back, and no
//!   group is exposed twice.

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

const PUSHER: &str = r#"
import sys
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, delete_from_gateway
url, action, first, last = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for k in range(first, last):
    if action == "push":
        r = CollectorRegistry()
        Gauge("sharded_value", "a value per group", registry=r).set(k)
        push_to_gateway(url, job="shard", grouping_key={"instance": f"i{k}"}, registry=r)
    elif action == "push-slashed":
        r = CollectorRegistry()
        Gauge("slashed_value", "a value per group", registry=r).set(k)
        push_to_gateway(url, job="slash", grouping_key={"path": f"/srv/{k}/x"}, registry=r)
    else:
        delete_from_gateway(url, job="shard", grouping_key={"instance": f"i{k}"})
"#;

/// nginx with the sample's config, sending to `replicas`.
struct Nginx {
    proc: ChildGuard,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(replicas: &[u16]) -> Nginx {
        let bin = peer_binary("PUSHKIT_NGINX", "/usr/sbin/nginx", "nginx");
        let dir = tempfile::Builder::new()
            .prefix("pushkit-nginx-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let mut conf =
            std::fs::read_to_string(repo_root().join("samples/sharding/nginx/nginx.conf"))
                .unwrap()
                .replace("listen 9529;", &format!("listen 127.0.0.1:{port};"))
                .replace("worker_processes auto;", "worker_processes 1;");
        for (i, p) in replicas.iter().enumerate() {
            conf = conf.replace(
                &format!("server pushkit-{i}:9529 "),
                &format!("server 127.0.0.1:{p} "),
            );
        }
        assert!(
            !conf.contains("pushkit-"),
            "every upstream rewritten:\n{conf}"
        );
        // Everything nginx writes stays in the test's directory.
        let prefix = dir.path().display().to_string();
        conf = conf.replace(
            "http {",
            &format!(
                "pid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\nhttp {{\n    access_log {prefix}/access.log;\n    \
                 client_body_temp_path {prefix}/body;\n    proxy_temp_path {prefix}/proxy;\n    \
                 fastcgi_temp_path {prefix}/fastcgi;\n    uwsgi_temp_path {prefix}/uwsgi;\n    scgi_temp_path {prefix}/scgi;"
            ),
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&path)
            .arg("-g")
            .arg("daemon off;");
        let proc = spawn_logged("nginx", cmd, dir.path());
        wait_for("nginx listening", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(|_| ())
        });
        Nginx {
            proc,
            port,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn run_python(script: &std::path::Path, args: &[String]) -> (bool, String) {
    let mut cmd = Command::new(python());
    cmd.arg(script).args(args);
    let (status, out, err) = run_bounded("python pusher", cmd, Duration::from_secs(120));
    (status.success(), format!("{out}{err}"))
}

/// The groups (their label sets) each replica holds, by the JSON API.
fn groups_of(agent: &Agent) -> BTreeSet<BTreeMap<String, String>> {
    let r = agent.request("GET", "/api/v1/metrics", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            g["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect()
        })
        .collect()
}

fn replica_conf(dir: &std::path::Path) -> String {
    format!(
        "[[inputs.pushgateway]]\npersistence_dir = {:?}\n",
        dir.display().to_string()
    )
}

#[test]
#[ignore = "needs nginx and python prometheus_client: run via .ci/run"]
fn nginx_hashing_the_uri_gives_each_group_one_replica() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut replicas: Vec<Option<Agent>> = (0..3)
        .map(|i| Some(Agent::start_raw(ports[i], &replica_conf(dirs[i].path()))))
        .collect();
    let nginx = Nginx::start(&ports);
    let script_dir = tempfile::tempdir().unwrap();
    let script = script_dir.path().join("pusher.py");
    std::fs::write(&script, PUSHER).unwrap();
    let args = |action: &str, first: u64, last: u64| {
        vec![
            nginx.url(),
            action.to_string(),
            first.to_string(),
            last.to_string(),
        ]
    };

    // 300 groups through the proxy: each on exactly one replica.
    let (ok, out) = run_python(&script, &args("push", 0, 300));
    assert!(ok, "{out}");
    let owner = |replicas: &[Option<Agent>]| -> BTreeMap<String, Vec<usize>> {
        let mut owner: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, r) in replicas.iter().enumerate() {
            for g in groups_of(r.as_ref().unwrap()) {
                if g["job"] == "shard" {
                    owner.entry(g["instance"].clone()).or_default().push(i);
                }
            }
        }
        owner
    };
    let owners = owner(&replicas);
    assert_eq!(owners.len(), 300);
    assert!(
        owners.values().all(|o| o.len() == 1),
        "a group on two replicas"
    );
    let per_replica: Vec<usize> = (0..3)
        .map(|i| owners.values().filter(|o| o[0] == i).count())
        .collect();
    assert!(per_replica.iter().all(|&n| n >= 50), "{per_replica:?}");
    // The Go client's groups too.
    let go_dir = tempfile::tempdir().unwrap();
    let pusher = build_go_pusher(go_dir.path());
    let mut cmd = Command::new(&pusher);
    cmd.arg("-url").arg(nginx.url()).arg("-groups").arg("100");
    let (status, out, err) = run_bounded("go pusher", cmd, Duration::from_secs(120));
    assert!(status.success(), "{out}{err}");
    let mut go_owner: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, r) in replicas.iter().enumerate() {
        for g in groups_of(r.as_ref().unwrap()) {
            if g["job"] == "go-shard" {
                go_owner.entry(g["instance"].clone()).or_default().push(i);
            }
        }
    }
    assert_eq!(go_owner.len(), 100);
    assert!(
        go_owner.values().all(|o| o.len() == 1),
        "a Go group on two replicas"
    );

    // A DELETE through the proxy reaches the owner.
    let (ok, out) = run_python(&script, &args("delete", 0, 10));
    assert!(ok, "{out}");
    let owners = owner(&replicas);
    assert_eq!(owners.len(), 290);
    assert!((0..10).all(|k| !owners.contains_key(&format!("i{k}"))));

    // The spelling rule: Python pads its base64, Go does not. The same
    // group spelled both ways is two URIs to the proxy.
    let (ok, out) = run_python(&script, &args("push-slashed", 0, 20));
    assert!(ok, "{out}");
    for k in 0..20 {
        use base64::Engine as _;
        let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("/srv/{k}/x"));
        let r = http(
            "PUT",
            &format!("{}/metrics/job/slash/path@base64/{value}", nginx.url()),
            &[],
            format!("# TYPE slashed_value gauge\nslashed_value {k}\n").as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let twice = (0..20)
        .filter(|k| {
            let path = format!("/srv/{k}/x");
            replicas
                .iter()
                .filter(|r| {
                    groups_of(r.as_ref().unwrap())
                        .iter()
                        .any(|g| g.get("path") == Some(&path))
                })
                .count()
                == 2
        })
        .count();
    assert!(twice > 0, "mixing spellings never split a group (20 tries)");

    // Prometheus scraping every replica (the sample's scrape config, its
    // targets rewritten) sees each pushed series once.
    let scrape = std::fs::read_to_string(repo_root().join("samples/sharding/prometheus.yml"))
        .unwrap()
        .replace(
            "[\"pushkit-0:9529\", \"pushkit-1:9529\", \"pushkit-2:9529\"]",
            &format!(
                "[\"127.0.0.1:{}\", \"127.0.0.1:{}\", \"127.0.0.1:{}\"]",
                ports[0], ports[1], ports[2]
            ),
        )
        .replace(
            "scrape_configs:",
            "global:\n  scrape_interval: 1s\nscrape_configs:",
        );
    assert!(scrape.contains("127.0.0.1"), "{scrape}");
    let mut prom = Prometheus::start(&scrape, &["--log.level=warn"]);
    let counts = |prom: &mut Prometheus, q: &str| -> Vec<f64> {
        prom.query(q, "", "vector")
            .into_iter()
            .map(|(_, s)| api_sample(&s["value"]).1)
            .collect()
    };
    wait_for("every series scraped", Duration::from_secs(60), || {
        let n = counts(&mut prom, "count(sharded_value) + count(go_sharded_value)");
        (n == [390.0]).then_some(())
    });
    // Each series from one target only.
    let per_series = counts(
        &mut prom,
        "max(count by (job, instance) ({__name__=~\"(go_)?sharded_value\"}))",
    );
    assert_eq!(per_series, [1.0]);

    // No failover: replica 1 down, its groups' pushes fail, the others' do not.
    let owners = owner(&replicas);
    let of = |i: usize| -> Vec<u64> {
        owners
            .iter()
            .filter(|(_, o)| o[0] == i)
            .map(|(inst, _)| inst[1..].parse().unwrap())
            .collect()
    };
    let (down, up) = (of(1), of(0));
    replicas[1].take().unwrap().kill9();
    for &k in down.iter().take(5) {
        let (ok, _) = run_python(&script, &args("push", k, k + 1));
        assert!(!ok, "a push of group i{k} succeeded with its replica down");
    }
    for &k in up.iter().take(5) {
        let (ok, out) = run_python(&script, &args("push", k, k + 1));
        assert!(ok, "{out}");
    }
    // Restarted on its persistence_dir: its groups are back, none twice.
    replicas[1] = Some(Agent::start_raw(ports[1], &replica_conf(dirs[1].path())));
    let owners = owner(&replicas);
    assert_eq!(owners.len(), 290);
    assert!(
        owners.values().all(|o| o.len() == 1),
        "a group on two replicas after the restart"
    );
    for &k in down.iter().take(5) {
        let (ok, out) = run_python(&script, &args("push", k, k + 1));
        assert!(ok, "{out}");
    }
    drop(nginx.proc);
}
