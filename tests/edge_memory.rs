//! Memory bounded by config, not by luck: the three attacks that got a
//! 512 MiB pod OOM-killed before `max_inflight_bytes` existed, run against
//! an agent with the default limits. It must survive each, serve a small
//! push afterwards, and its peak RSS (`VmHWM`) stay under 512 MiB.
//!
//! 1. Three gzip pushes of ~60 KB, each a 60 MiB metric name: refused by
//!    `label_value_length_limit`, which counts the name as `__name__`.
//! 2. Eight concurrent ~10 MB gzip bombs: each stopped at
//!    `max_decompressed_size` (413) or by the budget (503).
//! 3. 33 connections that each send 15 MiB of a 16 MiB body and stall.

mod common;

use common::*;
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

const MIB: usize = 1 << 20;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

fn small_push_works(agent: &Agent, n: usize) {
    let r = agent.request(
        "PUT",
        &format!("/metrics/job/small/n/{n}"),
        &[("Content-Type", "text/plain")],
        b"small 1\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn three_attacks_leave_it_alive_and_under_512_mib() {
    let mut agent = Agent::start(&AgentConf::default());
    let pid = agent.pid();

    // 1. A 60 MiB metric name, three times in a row.
    let mut body = vec![b'a'; 60 * MIB];
    body.extend_from_slice(b" 1\n");
    let name_bomb = gzip(&body);
    drop(body);
    assert!(name_bomb.len() < 100 << 10, "{}", name_bomb.len());
    for _ in 0..3 {
        let r = agent.request(
            "PUT",
            "/metrics/job/names",
            &[("Content-Type", "text/plain"), ("Content-Encoding", "gzip")],
            &name_bomb,
        );
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(r.text().contains("labelLimitExceeded"), "{}", r.text());
    }
    agent.assert_running();
    small_push_works(&agent, 1);
    eprintln!(
        "VmHWM after the name attack: {} MiB",
        vm_hwm_kib(pid) / 1024
    );

    // 2. Eight concurrent gzip bombs: one 65 MiB member of zeros repeated
    // to about 10 MB (a multi-member gzip reads them one after another).
    let member = gzip(&vec![0u8; 65 * MIB]);
    let mut bomb = Vec::new();
    while bomb.len() + member.len() < 10_000_000 {
        bomb.extend_from_slice(&member);
    }
    let bomb = std::sync::Arc::new(bomb);
    let url = agent.url("/metrics/job/bomb");
    let statuses: Vec<u16> = (0..8)
        .map(|_| {
            let (bomb, url) = (bomb.clone(), url.clone());
            std::thread::spawn(move || {
                http(
                    "PUT",
                    &url,
                    &[("Content-Type", "text/plain"), ("Content-Encoding", "gzip")],
                    &bomb,
                )
                .map(|r| r.status)
                .unwrap_or(0)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    for s in &statuses {
        assert!([413, 503].contains(s), "{statuses:?}");
    }
    agent.assert_running();
    small_push_works(&agent, 2);
    eprintln!("VmHWM after the gzip bombs: {} MiB", vm_hwm_kib(pid) / 1024);

    // 3. 33 connections, each 15 MiB into a 16 MiB body, then silence.
    let chunk = vec![b'x'; MIB];
    let port = agent.port;
    let writers: Vec<_> = (0..33)
        .map(|i| {
            let chunk = chunk.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
                write!(
                    s,
                    "PUT /metrics/job/stall/i/{i} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                    16 * MIB
                )
                .unwrap();
                for _ in 0..15 {
                    if s.write_all(&chunk).is_err() {
                        break;
                    }
                }
                s
            })
        })
        .collect();
    let stalled: Vec<TcpStream> = writers.into_iter().map(|t| t.join().unwrap()).collect();
    // The stalled bodies hold at most three quarters of the budget: a
    // large push is refused for room (503, its body drained, so the
    // connection goes on), and a small one still gets in.
    let large = vec![b'y'; 10 * MIB];
    let r = agent.request(
        "PUT",
        "/metrics/job/large",
        &[("Content-Type", "text/plain")],
        &large,
    );
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("inflightFull"), "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    agent.assert_running();
    small_push_works(&agent, 3);

    let peak_mib = vm_hwm_kib(pid) / 1024;
    eprintln!("peak RSS (VmHWM) after the three attacks: {peak_mib} MiB");
    assert!(peak_mib < 512, "VmHWM {peak_mib} MiB");
    drop(stalled);
}
