//! pushkit → vmagent → two VictoriaMetrics nodes (Debian's
//! `victoria-metrics` package, which ships vmagent 1.79): the sharding tier
//! of `samples/sharding/vmagent`, with its relabel configs as shipped.
//! - Every pushed series lands on exactly one node, and the two nodes
//!   together hold every point; both get a share.
//! - With one node down for 30 s while pushes go on, vmagent's queue and
//!   pushkit's hold everything: once it is back, nothing acknowledged is
//!   missing.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

/// vmagent sharding to `nodes` with the sample's relabel configs.
struct VmAgent {
    _proc: ChildGuard,
    port: u16,
    _dir: tempfile::TempDir,
}

impl VmAgent {
    fn start(nodes: [&VictoriaMetrics; 2]) -> VmAgent {
        let bin = peer_binary("PUSHKIT_VMAGENT", "/usr/bin/vmagent", "victoria-metrics");
        let dir = tempfile::Builder::new()
            .prefix("pushkit-vmagent-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let samples = repo_root().join("samples/sharding/vmagent");
        let mut cmd = Command::new(bin);
        cmd.arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!(
                "-remoteWrite.tmpDataPath={}",
                dir.path().join("queue").display()
            ))
            .arg("-remoteWrite.flushInterval=100ms")
            .arg("-loggerLevel=INFO");
        for (i, node) in nodes.iter().enumerate() {
            cmd.arg(format!("-remoteWrite.url={}", node.url("/api/v1/write")))
                .arg(format!(
                    "-remoteWrite.urlRelabelConfig={}",
                    samples.join(format!("shard-{i}.yml")).display()
                ));
        }
        let proc = spawn_logged("vmagent", cmd, dir.path());
        let health = format!("http://127.0.0.1:{port}/health");
        wait_for("vmagent up", Duration::from_secs(30), || {
            get(&health).ok().filter(|r| r.status == 200).map(|_| ())
        });
        VmAgent {
            _proc: proc,
            port,
            _dir: dir,
        }
    }
}

/// The `seq` labels of the series each node holds.
fn seqs(vm: &mut VictoriaMetrics) -> BTreeSet<u64> {
    let exported = vm.export("{__name__=\"shard_value\"}");
    for labels in exported.keys() {
        // The shard label is vmagent's own; it does not reach the nodes.
        assert!(!labels.keys().any(|k| k.starts_with("__tmp")), "{labels:?}");
    }
    exported
        .keys()
        .filter_map(|labels| labels.get("seq")?.parse().ok())
        .collect()
}

#[test]
#[ignore = "needs victoria-metrics and vmagent: run via .ci/run"]
fn vmagent_shards_every_series_onto_exactly_one_node_and_loses_nothing() {
    let mut nodes = [VictoriaMetrics::start(), VictoriaMetrics::start()];
    let vmagent = VmAgent::start([&nodes[0], &nodes[1]]);
    let queue = tempfile::tempdir().unwrap();
    let agent = Agent::start_raw(
        free_port(),
        &format!(
            "[io]\nflush_interval = \"100ms\"\nqueue_dir = {:?}\n\n\
             [[sinks]]\nname = \"vmagent\"\nurl = \"http://127.0.0.1:{}/api/v1/write\"\n\
             format = \"remote-write\"\nretry_base = \"100ms\"\nretry_max = \"1s\"\n\n\
             [[inputs.pushgateway]]\n",
            queue.path().join("q").display().to_string(),
            vmagent.port
        ),
    );
    // Each push its own group and series: 200 of them.
    let push = |seq: u64| {
        let body = format!("shard_value{{seq=\"{seq}\"}} {seq}\n");
        let r = agent.request(
            "PUT",
            &format!("/metrics/job/shard/instance/i{seq}"),
            &[],
            body.as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    };
    for seq in 0..200 {
        push(seq);
    }
    let want: BTreeSet<u64> = (0..200).collect();
    let (a, b) = wait_for("every series on a node", Duration::from_secs(60), || {
        let (a, b) = (seqs(&mut nodes[0]), seqs(&mut nodes[1]));
        (a.len() + b.len() >= want.len()).then_some((a, b))
    });
    assert!(
        a.is_disjoint(&b),
        "on both nodes: {:?}",
        a.intersection(&b).collect::<Vec<_>>()
    );
    assert_eq!(a.union(&b).copied().collect::<BTreeSet<_>>(), want);
    assert!(
        a.len() > 40 && b.len() > 40,
        "a share each: {} and {}",
        a.len(),
        b.len()
    );

    // One node down for 30 s while pushes go on.
    nodes[1].stop();
    let down = std::time::Instant::now();
    let mut seq = 200;
    while down.elapsed() < Duration::from_secs(30) {
        push(seq);
        seq += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    nodes[1].restart();
    let want: BTreeSet<u64> = (0..seq).collect();
    let (a, b) = wait_for(
        "everything after the outage",
        Duration::from_secs(120),
        || {
            let (a, b) = (seqs(&mut nodes[0]), seqs(&mut nodes[1]));
            (a.len() + b.len() >= want.len()).then_some((a, b))
        },
    );
    assert!(a.is_disjoint(&b));
    assert_eq!(
        a.union(&b).copied().collect::<BTreeSet<_>>(),
        want,
        "nothing acknowledged lost"
    );
    // The node that was down got its share of what came meanwhile.
    assert!(
        b.iter().any(|&s| s >= 200),
        "node 1 got nothing pushed while it was down"
    );
}
