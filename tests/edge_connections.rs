//! Connections that hold the agent: 1,000 slowloris clients dribbling
//! their headers, 1,000 idle keep-alive connections, a body that never
//! ends and an `Expect: 100-continue` with no body. Meanwhile a normal
//! client's pushes all succeed, and every bad connection is closed once
//! its timeout has passed (the bounds leave seconds of slack: they check
//! that the timeouts act, not how fast). `max_connections` makes new
//! connections wait, not fail.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
const READ_TIMEOUT: Duration = Duration::from_secs(2);
const IDLE_TIMEOUT: Duration = Duration::from_secs(2);
/// Slack for a loaded 2-core machine.
const SLACK: Duration = Duration::from_secs(8);

/// Raises this process's open-file limit to its hard limit.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    #[allow(unsafe_code)]
    // SAFETY: getrlimit and setrlimit only read and write `lim`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(SLACK + IDLE_TIMEOUT)).unwrap();
    s
}

/// Reads until the server closes; returns what came and when it closed.
fn until_closed(s: &mut TcpStream) -> (String, Instant) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("not closed: {e} after {:?}", String::from_utf8_lossy(&got)),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), Instant::now())
}

#[test]
fn slow_idle_and_endless_clients_are_cut_off_while_pushes_go_on() {
    raise_fd_limit();
    let agent = Agent::start(&AgentConf {
        http: format!(
            "read_header_timeout = \"{}s\"\nread_timeout = \"{}s\"\nidle_timeout = \"{}s\"\n",
            HEADER_TIMEOUT.as_secs(),
            READ_TIMEOUT.as_secs(),
            IDLE_TIMEOUT.as_secs()
        ),
        ..AgentConf::default()
    });
    let port = agent.port;
    let started = Instant::now();

    // 1,000 slowloris: a request line and one header, then nothing.
    let mut slow: Vec<TcpStream> = (0..1000)
        .map(|i| {
            let mut s = connect(port);
            write!(s, "PUT /metrics/job/slow{i} HTTP/1.1\r\nHost: x\r\n").unwrap();
            s
        })
        .collect();
    // 1,000 idle: one whole request each, kept alive.
    let mut idle: Vec<TcpStream> = (0..1000)
        .map(|_| {
            let mut s = connect(port);
            s.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut buf = [0u8; 256];
            let n = s.read(&mut buf).unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
            s
        })
        .collect();
    let idle_since = Instant::now();
    // A body that never ends, and a 100-continue that never sends one.
    let mut endless = connect(port);
    endless
        .write_all(
            b"PUT /metrics/job/endless HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nm 1\n",
        )
        .unwrap();
    let mut expect = connect(port);
    expect
        .write_all(b"PUT /metrics/job/expect HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    let bodies_since = Instant::now();

    // The normal client's pushes all succeed meanwhile.
    for i in 0..20 {
        let r = agent.request(
            "PUT",
            &format!("/metrics/job/normal/i/{i}"),
            &[("Content-Type", "text/plain")],
            b"normal 1\n",
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }

    let (reply, at) = until_closed(&mut endless);
    assert!(reply.contains(" 408 "), "{reply}");
    assert!(reply.contains("requestTimeout"), "{reply}");
    assert!(at - bodies_since < READ_TIMEOUT + SLACK);
    let (reply, at) = until_closed(&mut expect);
    assert!(reply.contains(" 408 "), "{reply}");
    assert!(at - bodies_since < READ_TIMEOUT + SLACK);
    for s in &mut slow {
        let (reply, at) = until_closed(s);
        assert_eq!(reply, "", "a slowloris got an answer");
        assert!(at - started < HEADER_TIMEOUT + SLACK);
    }
    for s in &mut idle {
        let (reply, at) = until_closed(s);
        assert_eq!(reply, "");
        assert!(at - idle_since < IDLE_TIMEOUT + SLACK);
    }
    // None of the slow pushes reached the store.
    let exposed = agent.request("GET", "/metrics", &[], b"").text();
    assert!(!exposed.contains("slow"), "a slowloris push was stored");
    assert!(
        !exposed.contains("job=\"endless\""),
        "an unfinished push was stored"
    );
}

#[test]
fn past_max_connections_new_ones_wait_for_a_slot() {
    let agent = Agent::start(&AgentConf {
        http: "max_connections = 4\nread_header_timeout = \"1s\"\n".into(),
        ..AgentConf::default()
    });
    // Agent::start's readiness check used a connection; let it go.
    std::thread::sleep(Duration::from_millis(200));
    let held: Vec<TcpStream> = (0..4).map(|_| connect(agent.port)).collect();
    std::thread::sleep(Duration::from_millis(100));
    let asked = Instant::now();
    let r = agent.request("GET", "/-/healthy", &[], b"");
    assert_eq!(r.status, 200);
    // It was served only once a held connection timed out.
    assert!(
        asked.elapsed() >= Duration::from_millis(500),
        "served at once: {:?}",
        asked.elapsed()
    );
    drop(held);
}
