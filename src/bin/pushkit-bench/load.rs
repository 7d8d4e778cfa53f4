//! The load generator: N keep-alive connections, each sending `PUT`s of one
//! body round-robin over G groups, as fast as the server answers (or, with
//! a `rate`, on a fixed schedule), until a time limit or a request count is
//! reached. Every request's latency is recorded (first byte sent to last
//! byte read; on a schedule, from the time it was due if it went late
//! because every connection was waiting on the server).

use crate::http::{Conn, TlsClient};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct LoadSpec {
    pub addr: SocketAddr,
    pub connections: usize,
    pub groups: usize,
    /// The first request goes to group `first_group`, then round-robin.
    pub first_group: u64,
    pub body: Arc<Vec<u8>>,
    /// No request starts after this long.
    pub duration: Duration,
    /// No more requests than this in total.
    pub max_requests: u64,
    /// A request not answered within this is counted as an error.
    pub request_timeout: Duration,
    /// Requests per second over all connections, on a fixed schedule;
    /// None: as fast as the server answers. As fast as it answers, a server
    /// that stalls every request for a while shows it in few latencies,
    /// since no request is sent during the stall; on a schedule, the
    /// requests due during the stall count it from when they were due.
    pub rate: Option<f64>,
    /// The grouping key's job: the paths are `/metrics/job/<job>/instance/g<i>`.
    pub job: &'static str,
    /// Sent with every request, after `Content-Type` (credentials,
    /// `Content-Encoding`).
    pub headers: Vec<(String, String)>,
    /// Set: every connection speaks TLS.
    pub tls: Option<TlsClient>,
}

/// The path of group `g` of `job`: `job=<job>`, `instance=g<g>`.
pub fn group_path(job: &str, g: u64) -> String {
    format!("/metrics/job/{job}/instance/g{g}")
}

#[derive(Debug, Default, Clone)]
pub struct LoadResult {
    /// Requests answered 200 or 202.
    pub ok: u64,
    /// Every answered request, by status.
    pub statuses: BTreeMap<u16, u64>,
    /// One body per unexpected status, shortened.
    pub sample_bodies: BTreeMap<u16, String>,
    /// Requests that failed without an answer (I/O error or timeout).
    pub io_errors: u64,
    pub first_io_error: Option<String>,
    /// From the first request sent to the last answer read.
    pub elapsed: Duration,
    /// Latencies of the successful requests, in ns, sorted.
    pub latencies_ns: Vec<u64>,
    /// CPU seconds the server and the load generator used during the run,
    /// when measured.
    pub cpu: Option<(f64, f64)>,
}

impl LoadResult {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The q-quantile (0 < q ≤ 1) of the successful requests' latencies,
    /// nearest rank.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let n = self.latencies_ns.len();
        if n == 0 {
            return None;
        }
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        Some(Duration::from_nanos(self.latencies_ns[rank - 1]))
    }

    /// Server CPU time per successful push.
    pub fn server_cpu_per_push(&self) -> Option<std::time::Duration> {
        let (server, _) = self.cpu?;
        (self.ok > 0).then(|| std::time::Duration::from_secs_f64(server / self.ok as f64))
    }

    /// Non-success answers and I/O errors, one line; empty when none.
    pub fn problems(&self) -> String {
        let mut parts = Vec::new();
        for (status, n) in &self.statuses {
            if *status != 200 && *status != 202 {
                let body = self.sample_bodies.get(status).cloned().unwrap_or_default();
                parts.push(format!("{n} × HTTP {status} ({body})"));
            }
        }
        if self.io_errors > 0 {
            parts.push(format!(
                "{} request(s) without an answer (first: {})",
                self.io_errors,
                self.first_io_error.clone().unwrap_or_default()
            ));
        }
        parts.join("; ")
    }
}

/// Runs the load; returns when every connection has finished its last
/// request.
pub async fn run(spec: LoadSpec) -> LoadResult {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + spec.duration;
    let mut tasks = Vec::with_capacity(spec.connections);
    for _ in 0..spec.connections {
        let spec = spec.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            worker(spec, next, start, deadline).await
        }));
    }
    let mut total = LoadResult::default();
    for t in tasks {
        let r = t.await.expect("load worker panicked");
        total.ok += r.ok;
        for (s, n) in r.statuses {
            *total.statuses.entry(s).or_default() += n;
        }
        for (s, b) in r.sample_bodies {
            total.sample_bodies.entry(s).or_insert(b);
        }
        total.io_errors += r.io_errors;
        if total.first_io_error.is_none() {
            total.first_io_error = r.first_io_error;
        }
        total.latencies_ns.extend(r.latencies_ns);
    }
    total.elapsed = start.elapsed();
    total.latencies_ns.sort_unstable();
    total
}

async fn worker(
    spec: LoadSpec,
    next: Arc<AtomicU64>,
    start: Instant,
    deadline: Instant,
) -> LoadResult {
    let mut r = LoadResult::default();
    let mut conn: Option<Conn> = None;
    let mut path = String::with_capacity(64);
    let mut headers: Vec<(&str, &str)> = vec![("Content-Type", "text/plain; version=0.0.4")];
    headers.extend(spec.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    loop {
        if Instant::now() >= deadline {
            break;
        }
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= spec.max_requests {
            break;
        }
        // On a schedule: a request due later is sent when due and timed
        // from then (the timer's lateness is the generator's, not the
        // server's); one already overdue is sent at once and timed from
        // when it was due.
        let due = spec
            .rate
            .map(|r| start + Duration::from_secs_f64(i as f64 / r));
        let overdue = match due {
            Some(due) if due >= deadline => break,
            Some(due) if due > Instant::now() => {
                tokio::time::sleep_until(due.into()).await;
                None
            }
            due => due,
        };
        let group = (spec.first_group + i) % spec.groups as u64;
        path.clear();
        path.push_str(&group_path(spec.job, group));
        if conn.is_none() {
            let connect = Conn::connect_with(spec.addr, spec.tls.as_ref());
            match tokio::time::timeout(spec.request_timeout, connect).await {
                Ok(Ok(c)) => conn = Some(c),
                Ok(Err(e)) => {
                    io_error(&mut r, format!("connect: {e}"));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                Err(_) => {
                    io_error(&mut r, "connect: timed out".to_string());
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected above");
        let sent = overdue.unwrap_or_else(Instant::now);
        let answer = tokio::time::timeout(
            spec.request_timeout,
            c.request("PUT", &path, &headers, &spec.body),
        )
        .await;
        let took = sent.elapsed();
        match answer {
            Ok(Ok(resp)) => {
                *r.statuses.entry(resp.status).or_default() += 1;
                if resp.status == 200 || resp.status == 202 {
                    r.ok += 1;
                    r.latencies_ns.push(took.as_nanos() as u64);
                } else {
                    r.sample_bodies.entry(resp.status).or_insert_with(|| {
                        let text = String::from_utf8_lossy(&resp.body);
                        text.chars().take(200).collect()
                    });
                }
            }
            Ok(Err(e)) => {
                io_error(&mut r, e.to_string());
                conn = None;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(_) => {
                io_error(
                    &mut r,
                    format!("no answer within {:?}", spec.request_timeout),
                );
                conn = None;
            }
        }
    }
    r
}

fn io_error(r: &mut LoadResult, what: String) {
    r.io_errors += 1;
    if r.first_io_error.is_none() {
        r.first_io_error = Some(what);
    }
}
