//! The group store against Prometheus' own Pushgateway (Debian's
//! `prometheus-pushgateway` 1.5.1, consistency check on, its default).
//!
//! The differential test sends the same random sequence of PUT, POST and
//! DELETE requests to both, over several groups of two jobs,
//! with families shared across groups, every metric type, and pushes that
//! the consistency check must refuse: a type that differs from another
//! group's, a series another group already exposes, `_count`/`_sum`/`_bucket`
//! names colliding with a summary or histogram, duplicate series in one push.
//! Bodies are text, and one push in eight is delimited protobuf with
//! families of their own: native and mixed histograms (integer and float,
//! every schema) and exemplars on counters, classic buckets and native
//! histograms.
//! After every step it compares:
//! - the status codes;
//! - `GET /metrics` as text: self metrics dropped, the push timestamps
//!   reduced to zero/non-zero, HELP ignored, TYPE per family, and the
//!   sorted samples (name, labels, value as f64);
//! - `GET /metrics` as delimited protobuf, family by family (decoded with
//!   pushkit's copy of `metrics.proto`; HELP, label order and push-time
//!   values left out);
//! - `GET /api/v1/metrics` group by group: labels, last_push_successful,
//!   each family's type, help and metrics with the value strings as the
//!   Pushgateway writes them;
//! - each agent's push timestamps against its own previous step: an
//!   accepted push moves the group's push_time_seconds (never backwards), a
//!   refused one sets push_failure_time_seconds, no other group changes.
//!
//! The sequence comes from a seeded PRNG: `PUSHKIT_DIFF_SEED` replays a
//! seed (printed at the start of every run), `PUSHKIT_DIFF_STEPS` sets the
//! number of steps (default 300), `PUSHKIT_DIFF_VERBOSE` prints every step
//! of the generator test. `PUSHKIT_PUSHGATEWAY` names the binary
//! (default /usr/bin/prometheus-pushgateway).
//!
//! Left out of the JSON comparison by name ([`json_deviates`]): native
//! histograms with spans, which pushkit shows as Pushgateway 1.8+ does and
//! 1.5.1 does not. Their text and protobuf expositions are compared.
//!
//! Never generated, because pushkit deliberately answers differently: pushes
//! with the consistency check off, a family named twice in one push, an
//! empty job, samples with timestamps. No pushed family name is one either
//! agent uses itself.

mod common;

use common::*;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

const TEXT: (&str, &str) = ("Content-Type", "text/plain; version=0.0.4");

const PUSH_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway succeeded.";
const PUSH_FAILURE_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway failed.";

// ---------------------------------------------------------------------------
// pushkit

/// pushkit with `[[inputs.pushgateway]]` at its defaults (store and
/// consistency check on), no sinks: points go to stdout, which the harness
/// reads continuously.
fn start_pushkit() -> Agent {
    Agent::start(&AgentConf {
        pushgateway: String::new(),
        ..AgentConf::default()
    })
}

// ---------------------------------------------------------------------------
// PRNG (splitmix64)

struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `pct` percent.
    fn chance(&mut self, pct: usize) -> bool {
        self.below(100) < pct
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

fn seed_from_env() -> u64 {
    match std::env::var("PUSHKIT_DIFF_SEED") {
        Ok(s) => {
            let s = s.trim();
            let parsed = match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            parsed.unwrap_or_else(|e| panic!("PUSHKIT_DIFF_SEED={s:?}: {e}"))
        }
        Err(_) => now_ns() as u64,
    }
}

fn steps_from_env() -> usize {
    std::env::var("PUSHKIT_DIFF_STEPS")
        .ok()
        .map(|s| {
            s.trim()
                .parse()
                .unwrap_or_else(|e| panic!("PUSHKIT_DIFF_STEPS={s:?}: {e}"))
        })
        .unwrap_or(300)
}

// ---------------------------------------------------------------------------
// The generator

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Untyped,
    Histogram,
    Summary,
}

impl Kind {
    fn type_name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Untyped => "untyped",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
        }
    }
}

type LabelSet = &'static [(&'static str, &'static str)];

/// A family a push may carry. Two families with the same `base` never go
/// into one push (that would be one family named twice, or a `_count` line
/// that the text parser folds into the summary pushed with it).
struct Fam {
    name: &'static str,
    kind: Kind,
    base: &'static str,
    /// Label sets of the series (body labels, before grouping labels).
    series: &'static [LabelSet],
}

/// The families as most pushes carry them.
const USUAL: &[Fam] = &[
    Fam {
        name: "app_requests_total",
        kind: Kind::Counter,
        base: "req",
        series: &[&[], &[("code", "200")], &[("code", "500")]],
    },
    Fam {
        name: "app_temperature",
        kind: Kind::Gauge,
        base: "temp",
        series: &[
            &[("room", "a")],
            &[("room", "b")],
            &[("room", "q\"uote")],
            &[("room", "back\\slash")],
            &[("room", "new\nline")],
            &[("room", "küche ☀")],
        ],
    },
    Fam {
        name: "app_untyped",
        kind: Kind::Untyped,
        base: "untyped",
        series: &[&[], &[("kind", "x")]],
    },
    Fam {
        name: "app_info",
        kind: Kind::Gauge,
        base: "info",
        series: &[&[("version", "1.0")], &[("version", "2.0")]],
    },
    Fam {
        name: "app_jobs_count",
        kind: Kind::Gauge,
        base: "jobs",
        series: &[&[], &[("queue", "q1")]],
    },
    Fam {
        name: "app_latency_seconds",
        kind: Kind::Histogram,
        base: "lat",
        series: &[&[], &[("route", "/a")]],
    },
    Fam {
        name: "app_rpc_seconds",
        kind: Kind::Summary,
        base: "rpc",
        series: &[&[], &[("method", "get")]],
    },
];

/// Families that conflict with the usual ones when both are in the store:
/// other types, and names ending in `_count`/`_sum`/`_bucket` next to a
/// summary or histogram (`app_rpc_seconds_bucket` is fine next to the
/// summary, not next to a histogram of that name).
const ODD: &[Fam] = &[
    Fam {
        name: "app_requests_total",
        kind: Kind::Gauge,
        base: "req",
        series: &[&[], &[("code", "200")]],
    },
    Fam {
        name: "app_temperature",
        kind: Kind::Counter,
        base: "temp",
        series: &[&[("room", "a")], &[("room", "c")]],
    },
    Fam {
        name: "app_untyped",
        kind: Kind::Gauge,
        base: "untyped",
        series: &[&[], &[("kind", "x")]],
    },
    Fam {
        name: "app_info",
        kind: Kind::Untyped,
        base: "info",
        series: &[&[("version", "1.0")], &[("version", "3.0")]],
    },
    Fam {
        name: "app_latency_seconds",
        kind: Kind::Summary,
        base: "lat",
        series: &[&[]],
    },
    Fam {
        name: "app_rpc_seconds",
        kind: Kind::Histogram,
        base: "rpc",
        series: &[&[], &[("method", "get")]],
    },
    Fam {
        name: "app_latency_seconds_bucket",
        kind: Kind::Untyped,
        base: "lat",
        series: &[&[]],
    },
    Fam {
        name: "app_latency_seconds_count",
        kind: Kind::Counter,
        base: "lat",
        series: &[&[], &[("route", "/a")]],
    },
    Fam {
        name: "app_rpc_seconds_sum",
        kind: Kind::Gauge,
        base: "rpc",
        series: &[&[]],
    },
    Fam {
        name: "app_rpc_seconds_bucket",
        kind: Kind::Untyped,
        base: "rpc",
        series: &[&[], &[("le", "1")]],
    },
    Fam {
        name: "app_jobs",
        kind: Kind::Summary,
        base: "jobs",
        series: &[&[]],
    },
    Fam {
        name: "app_jobs",
        kind: Kind::Histogram,
        base: "jobs",
        series: &[&[("queue", "q1")]],
    },
];

const HELPS: &[&str] = &[
    "Help one.",
    "Another help text.",
    "Help with a \\\\ backslash and a \\n newline.",
];

#[derive(Debug, Clone)]
struct Step {
    method: &'static str,
    path: String,
    /// The grouping labels the path names.
    group: BTreeMap<String, String>,
    /// The text body, or a description of the protobuf one.
    body: String,
    /// A delimited-protobuf body (native histograms, exemplars), sent
    /// instead of `body`.
    proto: Option<Vec<u8>>,
}

impl Step {
    fn content_type(&self) -> (&'static str, &'static str) {
        if self.proto.is_some() {
            ("Content-Type", DELIMITED)
        } else {
            TEXT
        }
    }

    fn bytes(&self) -> &[u8] {
        self.proto.as_deref().unwrap_or(self.body.as_bytes())
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        if self.method != "DELETE" {
            if self.body.is_empty() {
                write!(f, " (empty body)")?;
            } else {
                write!(f, "\n{}", self.body)?;
            }
        }
        Ok(())
    }
}

/// A group: job j1, j2 (or j/3), with no other label, instance i1, i2, a/b
/// or ü, zone z1, or instance i1 and zone z1 (named in either order in the
/// path).
fn gen_group(rng: &mut Rng) -> (String, BTreeMap<String, String>) {
    // Now and then a value that needs base64 (`/`) or percent-encoding.
    let job = if rng.chance(5) {
        "j/3"
    } else {
        *rng.pick(&["j1", "j2"])
    };
    let extra: Vec<(&str, &str)> = match rng.below(8) {
        0 => vec![],
        1 => vec![("instance", "i1")],
        2 => vec![("instance", "i2")],
        3 => vec![("zone", "z1")],
        4 => vec![("instance", "i1"), ("zone", "z1")],
        5 => vec![("zone", "z1"), ("instance", "i1")],
        6 => vec![("instance", "a/b")],
        _ => vec![("instance", "ü")],
    };
    let mut path = "/metrics".to_string();
    let mut labels = BTreeMap::new();
    for (k, v) in std::iter::once(("job", job)).chain(extra) {
        // Sometimes the value in base64url, padded or not.
        match (v.contains('/'), rng.below(12)) {
            (true, 0..=5) | (false, 0) => {
                path.push_str(&format!("/{k}@base64/{}", base64_url(v, true)))
            }
            (true, _) | (false, 1) => {
                path.push_str(&format!("/{k}@base64/{}", base64_url(v, false)))
            }
            _ => path.push_str(&format!("/{k}/{}", percent_encode(v))),
        }
        labels.insert(k.to_string(), v.to_string());
    }
    (path, labels)
}

/// Base64 with the URL-safe alphabet (RFC 4648 §5).
fn base64_url(s: &str, pad: bool) -> String {
    use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
    use base64::Engine as _;
    if pad {
        URL_SAFE.encode(s.as_bytes())
    } else {
        URL_SAFE_NO_PAD.encode(s.as_bytes())
    }
}

fn escape_label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v}")
    }
}

/// Most lines look like `name{a="1",b="2"} 3`; some are spelled in other
/// ways the text format allows: `name{}`, a trailing comma, blanks around
/// the tokens, a tab before the value, exponent notation.
fn sample_line(rng: &mut Rng, name: &str, labels: &[(String, String)], value: f64) -> String {
    let odd = rng.chance(8);
    let mut s = name.to_string();
    if !labels.is_empty() || (odd && rng.chance(30)) {
        s.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            if odd && rng.chance(30) {
                let _ = write!(s, " {k} = \"{}\" ", escape_label_value(v));
            } else {
                let _ = write!(s, "{k}=\"{}\"", escape_label_value(v));
            }
        }
        if odd && !labels.is_empty() && rng.chance(30) {
            s.push(',');
        }
        s.push('}');
    }
    let value = if odd && value.is_finite() && value != 0.0 && rng.chance(30) {
        format!("{value:e}")
    } else {
        fmt_value(value)
    };
    let sep = if odd && rng.chance(30) { "\t" } else { " " };
    let _ = writeln!(s, "{sep}{value}");
    s
}

fn gen_counter_value(rng: &mut Rng) -> f64 {
    match rng.below(10) {
        0 => 1e6,
        1 => 0.0025,
        2 => 0.0,
        _ => rng.below(1000) as f64,
    }
}

fn gen_gauge_value(rng: &mut Rng) -> f64 {
    match rng.below(40) {
        0 => f64::NAN,
        1 => f64::INFINITY,
        2 => f64::NEG_INFINITY,
        3..=6 => -(rng.below(100) as f64) - 0.5,
        7..=9 => 1.5e9,
        10..=14 => rng.below(1000) as f64 / 8.0,
        _ => rng.below(1000) as f64,
    }
}

/// The body labels of one series: the family's set plus, sometimes, a label
/// that another group has as a grouping label (`instance`, `zone`, `job`).
fn gen_series_labels(rng: &mut Rng, base: LabelSet) -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = base
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let add = |labels: &mut Vec<(String, String)>, k: &str, v: &str| {
        if !labels.iter().any(|(n, _)| n == k) {
            labels.push((k.to_string(), v.to_string()));
        }
    };
    if rng.chance(12) {
        let v = *rng.pick(&["i1", "i2", "i3"]);
        add(&mut labels, "instance", v);
    }
    if rng.chance(6) {
        add(&mut labels, "zone", "z1");
    }
    if rng.chance(3) {
        let v = *rng.pick(&["j1", "j2"]);
        add(&mut labels, "job", v);
    }
    labels
}

fn gen_family(rng: &mut Rng, fam: &Fam, group: &BTreeMap<String, String>, out: &mut String) {
    if rng.chance(50) {
        let _ = writeln!(out, "# HELP {} {}", fam.name, rng.pick(HELPS));
    }
    if fam.kind != Kind::Untyped || rng.chance(50) {
        let _ = writeln!(out, "# TYPE {} {}", fam.name, fam.kind.type_name());
    }
    // Distinct label sets, in random order.
    let mut sets: Vec<LabelSet> = fam.series.to_vec();
    for i in (1..sets.len()).rev() {
        let j = rng.below(i + 1);
        sets.swap(i, j);
    }
    let n = 1 + rng.below(sets.len().min(3));
    let mut series: Vec<Vec<(String, String)>> = sets[..n]
        .iter()
        .map(|set| gen_series_labels(rng, set))
        .collect();
    let simple = matches!(fam.kind, Kind::Counter | Kind::Gauge | Kind::Untyped);
    if simple && rng.chance(5) {
        // The same series twice in one push.
        series.push(series[0].clone());
    }
    if simple && group.contains_key("instance") && rng.chance(4) {
        // Two series that differ only in a label the grouping key sets:
        // both become the same series.
        let mut a: Vec<(String, String)> = fam.series[0]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut b = a.clone();
        a.push(("instance".to_string(), "x1".to_string()));
        b.push(("instance".to_string(), "x2".to_string()));
        series = vec![a, b];
    }
    for labels in &series {
        match fam.kind {
            Kind::Counter => {
                let v = gen_counter_value(rng);
                out.push_str(&sample_line(rng, fam.name, labels, v))
            }
            Kind::Gauge | Kind::Untyped => {
                let v = gen_gauge_value(rng);
                out.push_str(&sample_line(rng, fam.name, labels, v))
            }
            Kind::Histogram => {
                let mut count = 0u64;
                // Bounds as a float parser reads them: "1.0" is "1".
                let mut bounds = vec![
                    *rng.pick(&["0.5", "0.50", ".5"]),
                    *rng.pick(&["1", "1", "1.0", "1e0"]),
                    "2.5",
                ];
                if !rng.chance(15) {
                    bounds.push(*rng.pick(&["+Inf", "+Inf", "+inf", "Inf"]));
                }
                for le in bounds {
                    count += rng.below(5) as u64;
                    let mut l = labels.clone();
                    l.push(("le".to_string(), le.to_string()));
                    let name = format!("{}_bucket", fam.name);
                    out.push_str(&sample_line(rng, &name, &l, count as f64));
                }
                let sum = rng.below(400) as f64 / 4.0;
                let name = format!("{}_sum", fam.name);
                out.push_str(&sample_line(rng, &name, labels, sum));
                let name = format!("{}_count", fam.name);
                out.push_str(&sample_line(rng, &name, labels, count as f64));
            }
            Kind::Summary => {
                if !rng.chance(15) {
                    for q in ["0.5", "0.9", "0.99"] {
                        let q = match q {
                            "0.5" => *rng.pick(&["0.5", "0.5", "0.50", "5e-1"]),
                            q => q,
                        };
                        let mut l = labels.clone();
                        l.push(("quantile".to_string(), q.to_string()));
                        let v = rng.below(1000) as f64 / 100.0;
                        out.push_str(&sample_line(rng, fam.name, &l, v));
                    }
                }
                let sum = rng.below(10_000) as f64 / 10.0;
                let count = rng.below(500) as f64;
                let name = format!("{}_sum", fam.name);
                out.push_str(&sample_line(rng, &name, labels, sum));
                let name = format!("{}_count", fam.name);
                out.push_str(&sample_line(rng, &name, labels, count));
            }
        }
    }
}

fn gen_body(rng: &mut Rng, group: &BTreeMap<String, String>) -> String {
    if rng.chance(8) {
        return String::new();
    }
    let mut body = String::new();
    let mut bases: Vec<&str> = Vec::new();
    let wanted = 1 + rng.below(3);
    for _ in 0..wanted * 3 {
        if bases.len() == wanted {
            break;
        }
        let fam = if rng.chance(16) {
            rng.pick(ODD)
        } else {
            rng.pick(USUAL)
        };
        if bases.contains(&fam.base) {
            continue;
        }
        bases.push(fam.base);
        if rng.chance(5) {
            let filler = *rng.pick(&["# just a comment\n", "\n", "#\n"]);
            body.push_str(filler);
        }
        gen_family(rng, fam, group, &mut body);
    }
    body
}

fn gen_step(rng: &mut Rng) -> Step {
    let (path, group) = gen_group(rng);
    let method = match rng.below(10) {
        0..=3 => "PUT",
        4..=7 => "POST",
        _ => "DELETE",
    };
    let mut proto = None;
    let body = if method == "DELETE" {
        String::new()
    } else if rng.chance(12) {
        let (bytes, description) = gen_native_body(rng);
        proto = Some(bytes);
        description
    } else {
        gen_body(rng, &group)
    };
    Step {
        method,
        path,
        group,
        body,
        proto,
    }
}

/// Families only protobuf pushes carry, under names of their own:
/// native (and mixed classic-and-native) histograms, integer and float,
/// and exemplars on counters, classic buckets and native histograms.
/// The JSON API shows a native histogram with spans as Pushgateway 1.8+
/// does, which 1.5.1 does not: [`JSON_DEVIATES`] names those families.
const NATIVE_PREFIX: &str = "diffnative_";

/// Families whose `GET /api/v1/metrics` entry pushkit writes as
/// Pushgateway 1.8+ does, not as the reference 1.5.1: left out of the
/// JSON comparison only.
fn json_deviates(name: &str) -> bool {
    name.starts_with(NATIVE_PREFIX) && name.ends_with("_seconds")
}

fn gen_exemplar(rng: &mut Rng) -> pushkit::expfmt::proto::Exemplar {
    use pushkit::expfmt::proto::{Exemplar, LabelPair, Timestamp};
    Exemplar {
        label: vec![LabelPair {
            name: Some(rng.pick(&["trace_id", "span_id"]).to_string()),
            value: Some(format!("{:x}", rng.next_u64())),
        }],
        value: Some(rng.below(1000) as f64 / 8.0),
        timestamp: rng.chance(80).then(|| Timestamp {
            seconds: 1_700_000_000 + rng.below(1_000_000) as i64,
            nanos: *rng.pick(&[0, 5, 123_000_000]),
        }),
    }
}

/// Spans and deltas (or absolute counts when `float`) of one sign; the
/// total count of its buckets.
fn gen_native_side(
    rng: &mut Rng,
    float: bool,
) -> (
    Vec<pushkit::expfmt::proto::BucketSpan>,
    Vec<i64>,
    Vec<f64>,
    f64,
) {
    use pushkit::expfmt::proto::BucketSpan;
    let mut spans = Vec::new();
    let (mut deltas, mut counts, mut total) = (Vec::new(), Vec::new(), 0.0);
    let mut running = 0i64;
    for i in 0..rng.below(3) {
        let length = 1 + rng.below(3) as u32;
        let offset = if i == 0 {
            rng.below(9) as i32 - 4
        } else {
            rng.below(3) as i32
        };
        spans.push(BucketSpan {
            offset: Some(offset),
            length: Some(length),
        });
        for _ in 0..length {
            let c = rng.below(6) as i64;
            total += c as f64;
            if float {
                counts.push(c as f64 + 0.5);
                total += 0.5;
            } else {
                deltas.push(c - running);
                running = c;
            }
        }
    }
    (spans, deltas, counts, total)
}

/// One delimited-protobuf push of [`NATIVE_PREFIX`] families, and its
/// description for failure messages.
fn gen_native_body(rng: &mut Rng) -> (Vec<u8>, String) {
    use prost::Message as _;
    use pushkit::expfmt::proto::{
        Bucket, Counter, Histogram, LabelPair, Metric, MetricFamily, MetricType,
    };
    let shards = |rng: &mut Rng| -> Vec<LabelPair> {
        vec![LabelPair {
            name: Some("shard".into()),
            value: Some(rng.pick(&["a", "b", "c"]).to_string()),
        }]
    };
    let mut families = Vec::new();
    for name in ["a_seconds", "b_seconds"] {
        if !rng.chance(70) {
            continue;
        }
        let mut metric = Vec::new();
        let mut seen = Vec::new();
        for _ in 0..1 + rng.below(2) {
            let label = shards(rng);
            if seen.contains(&label) {
                continue;
            }
            seen.push(label.clone());
            let float = rng.chance(30);
            let (negative_span, negative_delta, negative_count, neg) = gen_native_side(rng, float);
            let (positive_span, positive_delta, positive_count, pos) = gen_native_side(rng, float);
            let zero = rng.below(4) as f64;
            let count = zero + neg + pos;
            let mut h = Histogram {
                sample_sum: Some(rng.below(10_000) as f64 / 16.0),
                schema: Some(rng.below(13) as i32 - 4),
                zero_threshold: Some(*rng.pick(&[0.0, 1e-128, 0.001, 2.938735877055719e-39])),
                negative_span,
                negative_delta,
                negative_count,
                positive_span,
                positive_delta,
                positive_count,
                ..Histogram::default()
            };
            if float {
                h.sample_count_float = Some(count);
                h.zero_count_float = Some(zero);
            } else {
                h.sample_count = Some(count as u64);
                h.zero_count = Some(zero as u64);
            }
            if rng.chance(40) {
                // Mixed: classic buckets too, one with an exemplar.
                h.bucket = vec![
                    Bucket {
                        cumulative_count: Some((count / 2.0) as u64),
                        upper_bound: Some(0.5),
                        exemplar: rng.chance(50).then(|| gen_exemplar(rng)),
                        ..Bucket::default()
                    },
                    Bucket {
                        cumulative_count: Some(count as u64),
                        upper_bound: Some(f64::INFINITY),
                        exemplar: rng.chance(50).then(|| gen_exemplar(rng)),
                        ..Bucket::default()
                    },
                ];
            }
            metric.push(Metric {
                label,
                histogram: Some(h),
                ..Metric::default()
            });
        }
        families.push(MetricFamily {
            name: Some(format!("{NATIVE_PREFIX}{name}")),
            help: Some("A native histogram.".into()),
            r#type: Some(MetricType::Histogram as i32),
            metric,
            unit: None,
        });
    }
    if families.is_empty() || rng.chance(50) {
        families.push(MetricFamily {
            name: Some(format!("{NATIVE_PREFIX}c_total")),
            help: None,
            r#type: Some(MetricType::Counter as i32),
            metric: vec![Metric {
                label: shards(rng),
                counter: Some(Counter {
                    value: Some(rng.below(100) as f64),
                    exemplar: rng.chance(70).then(|| gen_exemplar(rng)),
                    created_timestamp: None,
                }),
                ..Metric::default()
            }],
            unit: None,
        });
    }
    let mut bytes = Vec::new();
    for f in &families {
        f.encode_length_delimited(&mut bytes).expect("encode");
    }
    (bytes, format!("(protobuf) {families:#?}"))
}

// ---------------------------------------------------------------------------
// Normalized expositions

fn is_self_metric(name: &str) -> bool {
    ["go_", "process_", "pushgateway_", "promhttp_", "pushkit_"]
        .iter()
        .any(|p| name.starts_with(p))
}

fn is_push_time(name: &str) -> bool {
    name == "push_time_seconds" || name == "push_failure_time_seconds"
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct NormSample {
    name: String,
    labels: Vec<(String, String)>,
    /// `format!("{:?}")` of the f64 (NaN as "NaN"); for the push
    /// timestamps only "zero" or "non-zero".
    value: String,
}

impl std::fmt::Display for NormSample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{{", self.name)?;
        for (i, (k, v)) in self.labels.iter().enumerate() {
            if i > 0 {
                write!(f, ",")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        write!(f, "}} {}", self.value)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Norm {
    /// Family name → every TYPE given for it (more than one is a bug).
    types: BTreeMap<String, Vec<String>>,
    samples: Vec<NormSample>,
    /// Each sample's name and label values, in exposition order: the
    /// Pushgateway sorts a family's series by their label values.
    order: Vec<String>,
}

fn value_key(name: &str, v: f64) -> String {
    if is_push_time(name) {
        if v == 0.0 { "zero" } else { "non-zero" }.to_string()
    } else if v.is_nan() {
        "NaN".to_string()
    } else {
        format!("{v:?}")
    }
}

fn normalize(text: &str) -> Result<Norm, String> {
    let mut types: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let (Some(name), Some(ty), None) = (it.next(), it.next(), it.next()) else {
                return Err(format!("bad TYPE line {line:?}"));
            };
            if !is_self_metric(name) {
                types
                    .entry(name.to_string())
                    .or_default()
                    .push(ty.to_string());
            }
        }
    }
    let parsed = catch_unwind(AssertUnwindSafe(|| parse_exposition(text))).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unparsable exposition".to_string())
    })?;
    let mut samples: Vec<NormSample> = parsed
        .into_iter()
        .filter(|(name, _, _)| !is_self_metric(name))
        .map(|(name, labels, v)| NormSample {
            value: value_key(&name, v),
            labels: labels.into_iter().collect(),
            name,
        })
        .collect();
    let order = samples
        .iter()
        .map(|s| {
            let values: Vec<&str> = s.labels.iter().map(|(_, v)| v.as_str()).collect();
            format!("{} {values:?}", s.name)
        })
        .collect();
    samples.sort();
    Ok(Norm {
        types,
        samples,
        order,
    })
}

/// Empty when equal; otherwise a readable diff.
fn diff_norms(pgw: &Norm, pk: &Norm) -> String {
    let mut out = String::new();
    let names: std::collections::BTreeSet<&String> =
        pgw.types.keys().chain(pk.types.keys()).collect();
    for name in names {
        let a = pgw.types.get(name);
        let b = pk.types.get(name);
        if a != b {
            let _ = writeln!(
                out,
                "TYPE {name}: pushgateway {:?}, pushkit {:?}",
                a.map(|v| v.as_slice()).unwrap_or(&[]),
                b.map(|v| v.as_slice()).unwrap_or(&[])
            );
        }
    }
    // Multiset difference of two sorted lists.
    let (mut i, mut j) = (0, 0);
    let (mut only_pgw, mut only_pk) = (Vec::new(), Vec::new());
    while i < pgw.samples.len() || j < pk.samples.len() {
        match (pgw.samples.get(i), pk.samples.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                only_pgw.push(a);
                i += 1;
            }
            (Some(_), Some(b)) => {
                only_pk.push(b);
                j += 1;
            }
            (Some(a), None) => {
                only_pgw.push(a);
                i += 1;
            }
            (None, Some(b)) => {
                only_pk.push(b);
                j += 1;
            }
            (None, None) => unreachable!(),
        }
    }
    for s in only_pgw {
        let _ = writeln!(out, "- only in the pushgateway: {s}");
    }
    for s in only_pk {
        let _ = writeln!(out, "+ only in pushkit:         {s}");
    }
    // The same samples, in another order.
    if out.is_empty() {
        if let Some(i) = (0..pgw.order.len()).find(|&i| pgw.order.get(i) != pk.order.get(i)) {
            let _ = writeln!(
                out,
                "sample {i} in exposition order: pushgateway {}, pushkit {}",
                pgw.order[i],
                pk.order.get(i).map_or("nothing", |s| s.as_str())
            );
        }
    }
    out
}

fn exposition(url: &str, who: &str) -> String {
    let r = get(url).unwrap_or_else(|e| panic!("GET {url} ({who}): {e}"));
    assert_eq!(r.status, 200, "GET {url} ({who}): {}", r.text());
    r.text()
}

/// Whether the exposition still shows the group (its push_time_seconds).
fn shows_group(norm: &Norm, group: &BTreeMap<String, String>) -> bool {
    let want: Vec<(String, String)> = group.clone().into_iter().collect();
    norm.samples
        .iter()
        .any(|s| s.name == "push_time_seconds" && s.labels == want)
}

type GroupKey = Vec<(String, String)>;

/// push_time_seconds and push_failure_time_seconds of every group (by its
/// labels, empty ones dropped), raw values.
type PushTimes = BTreeMap<GroupKey, (Option<f64>, Option<f64>)>;

fn push_times(text: &str) -> PushTimes {
    let mut out = PushTimes::new();
    for (name, labels, v) in parse_exposition(text) {
        let key: GroupKey = labels.into_iter().collect();
        match name.as_str() {
            "push_time_seconds" => out.entry(key).or_default().0 = Some(v),
            "push_failure_time_seconds" => out.entry(key).or_default().1 = Some(v),
            _ => {}
        }
    }
    out
}

/// What one step may do to the push timestamps: a successful push sets the
/// group's push_time_seconds (never backwards) and keeps its failure time
/// (0 for a new group); a refused one sets push_failure_time_seconds and
/// keeps push_time_seconds (0 for a new group); a DELETE removes the
/// group; no other group changes.
fn check_push_times(prev: &PushTimes, now: &PushTimes, step: &Step, status: u16) -> Vec<String> {
    let mut problems = Vec::new();
    let target: GroupKey = step.group.clone().into_iter().collect();
    for key in prev.keys().chain(now.keys()) {
        if *key != target && prev.get(key) != now.get(key) {
            problems.push(format!(
                "group {key:?}, not the one of the step, changed from {:?} to {:?}",
                prev.get(key),
                now.get(key)
            ));
        }
    }
    let before = prev.get(&target);
    let (old_pt, old_ft) = before.map_or((0.0, 0.0), |(p, f)| (p.unwrap_or(0.0), f.unwrap_or(0.0)));
    match (step.method, status, now.get(&target)) {
        ("DELETE", _, None) => {}
        ("DELETE", _, Some(t)) => problems.push(format!("deleted group still has {t:?}")),
        (_, _, None) => problems.push("the group has no push timestamps".to_string()),
        (_, _, Some((None, _) | (_, None))) => problems.push(format!(
            "the group lacks a push timestamp: {:?}",
            now.get(&target)
        )),
        (_, 200, Some(&(Some(pt), Some(ft)))) => {
            if !(pt > 0.0 && pt >= old_pt && ft == old_ft) {
                problems.push(format!(
                    "after an accepted push: push_time_seconds {old_pt} → {pt}, push_failure_time_seconds {old_ft} → {ft}"
                ));
            }
        }
        (_, _, Some(&(Some(pt), Some(ft)))) => {
            if !(pt == old_pt && ft > 0.0 && ft >= old_ft) {
                problems.push(format!(
                    "after a refused push: push_time_seconds {old_pt} → {pt}, push_failure_time_seconds {old_ft} → {ft}"
                ));
            }
        }
    }
    problems
}

/// Whether a 400 is the consistency check's (not a parse error).
fn is_check_refusal(body: &str) -> bool {
    body.contains("inconsistent with existing metrics")
}

#[derive(Default)]
struct Tally {
    by_method: BTreeMap<(&'static str, u16), usize>,
}

impl Tally {
    fn add(&mut self, method: &'static str, status: u16) {
        *self.by_method.entry((method, status)).or_default() += 1;
    }

    fn pushes(&self, status: u16) -> usize {
        self.by_method
            .iter()
            .filter(|((m, s), _)| *m != "DELETE" && *s == status)
            .map(|(_, n)| n)
            .sum()
    }

    fn all_pushes(&self) -> usize {
        self.by_method
            .iter()
            .filter(|((m, _), _)| *m != "DELETE")
            .map(|(_, n)| n)
            .sum()
    }

    fn summary(&self) -> String {
        let pushes = self.all_pushes().max(1);
        let mut s = format!(
            "PUT/POST: {} → 200: {} ({:.0}%), 400: {} ({:.0}%); by (method, status): ",
            self.all_pushes(),
            self.pushes(200),
            100.0 * self.pushes(200) as f64 / pushes as f64,
            self.pushes(400),
            100.0 * self.pushes(400) as f64 / pushes as f64,
        );
        for ((m, st), n) in &self.by_method {
            let _ = write!(s, "{m} {st}: {n}; ");
        }
        s
    }
}

// ---------------------------------------------------------------------------
// Tests

#[test]
#[ignore = "needs prometheus-pushgateway: run via .ci/run"]
fn random_pushes_match_the_reference_pushgateway() {
    let seed = seed_from_env();
    let steps = steps_from_env();
    eprintln!("peer_store_diff: PUSHKIT_DIFF_SEED={seed} PUSHKIT_DIFF_STEPS={steps}");
    let mut rng = Rng(seed);
    let mut pgw = Pushgateway::start();
    let mut agent = start_pushkit();
    let mut tally = Tally::default();
    let mut empty_pushes = 0;
    let mut prev_times = (PushTimes::new(), PushTimes::new());
    // Samples compared after each step (pushed ones and push timestamps).
    let (mut compared, mut most) = (0usize, 0usize);
    // Families compared in the protobuf exposition.
    let mut proto_compared = 0usize;
    // Protobuf pushes (native histograms, exemplars) both accepted.
    let mut native_accepted = 0usize;

    for step_no in 0..steps {
        let step = gen_step(&mut rng);
        if step.method != "DELETE" && step.body.is_empty() {
            empty_pushes += 1;
        }
        let a = pgw.request(
            step.method,
            &step.path,
            &[step.content_type()],
            step.bytes(),
        );
        let b = agent.request(
            step.method,
            &step.path,
            &[step.content_type()],
            step.bytes(),
        );
        tally.add(step.method, a.status);
        let fail = |what: &str| -> ! {
            panic!(
                "pushkit differs from the Pushgateway: {what}\n\
                 seed {seed} (replay: PUSHKIT_DIFF_SEED={seed}), step {step_no} of {steps}:\n{step}\n\
                 pushgateway answered {} {:?}\npushkit answered {} {:?}",
                a.status,
                a.text(),
                b.status,
                b.text()
            )
        };
        if a.status != b.status {
            fail("status codes differ");
        }
        native_accepted += usize::from(step.proto.is_some() && a.status == 200);

        // The Pushgateway applies a DELETE after answering 202: wait
        // (bounded) until the group is gone before comparing. Any other
        // difference gets the same short grace period.
        let mut last = (None, None, String::new());
        let mut texts = (String::new(), String::new());
        let settled = poll_until(Duration::from_secs(3), Duration::from_millis(50), || {
            let ta = exposition(&pgw.url("/metrics"), "pushgateway");
            let tb = exposition(&agent.url("/metrics"), "pushkit");
            let na = normalize(&ta)
                .unwrap_or_else(|e| fail(&format!("the Pushgateway's exposition: {e}\n{ta}")));
            let nb = normalize(&tb)
                .unwrap_or_else(|e| fail(&format!("pushkit's exposition: {e}\n{tb}")));
            let deleting = step.method == "DELETE"
                && (shows_group(&na, &step.group) || shows_group(&nb, &step.group));
            let mut diff = diff_norms(&na, &nb);
            if diff.is_empty() {
                let ja = api_metrics(&pgw.url("/api/v1/metrics"), "pushgateway");
                let jb = api_metrics(&agent.url("/api/v1/metrics"), "pushkit");
                let d = diff_json(&ja, &jb);
                if !d.is_empty() {
                    diff = format!("GET /api/v1/metrics differs:\n{d}");
                }
            }
            if diff.is_empty() {
                let pa = proto_exposition(&pgw.url("/metrics"), "pushgateway")
                    .unwrap_or_else(|e| fail(&e));
                let pb = proto_exposition(&agent.url("/metrics"), "pushkit")
                    .unwrap_or_else(|e| fail(&e));
                let d = diff_proto(&pa, &pb);
                proto_compared += pa.len();
                if !d.is_empty() {
                    diff = format!("GET /metrics in protobuf differs:\n{d}");
                }
            }
            let done = !deleting && diff.is_empty();
            if done {
                compared += na.samples.len();
                most = most.max(na.samples.len());
            }
            last = (Some(na), Some(nb), diff);
            texts = (ta, tb);
            done.then_some(())
        });
        if settled.is_none() {
            let (na, _, diff) = &last;
            if step.method == "DELETE" && diff.is_empty() {
                fail(&format!(
                    "both still show the deleted group {:?} after 3 s",
                    step.group
                ));
            }
            let reference: Vec<String> = na
                .as_ref()
                .map(|n| n.samples.iter().map(|s| s.to_string()).collect())
                .unwrap_or_default();
            fail(&format!(
                "GET /metrics (text or protobuf) or /api/v1/metrics differs:\n{diff}\nthe Pushgateway's samples after the step:\n{}",
                reference.join("\n")
            ));
        }
        // The push timestamps themselves: each agent against its own
        // previous step.
        for (who, text, prev) in [
            ("the Pushgateway", &texts.0, &mut prev_times.0),
            ("pushkit", &texts.1, &mut prev_times.1),
        ] {
            let now = push_times(text);
            let problems = check_push_times(prev, &now, &step, a.status);
            if !problems.is_empty() {
                fail(&format!(
                    "push timestamps of {who}:\n{}\n{who}'s push timestamps before: {prev:?}\nafter: {now:?}",
                    problems.join("\n")
                ));
            }
            *prev = now;
        }
        agent.assert_running();
        pgw.assert_running();
    }

    eprintln!(
        "peer_store_diff: seed {seed}: {steps} steps, {empty_pushes} empty pushes, \
         {compared} samples compared (at most {most} after one step), \
         {proto_compared} protobuf families compared, {native_accepted} protobuf pushes \
         of native histograms and exemplars accepted; {}",
        tally.summary()
    );
    assert!(
        steps < 100 || native_accepted > 0,
        "seed {seed}: no push of native histograms was accepted"
    );
    assert!(
        most > 0 && proto_compared > 0,
        "seed {seed}: nothing was ever compared"
    );
    // A run that never exercises the check (or never accepts) proves
    // little: insist on a mix.
    let pushes = tally.all_pushes();
    assert!(
        tally.pushes(200) * 10 >= pushes * 3 && tally.pushes(400) * 100 >= pushes * 8,
        "seed {seed}: too few accepted or refused pushes: {}",
        tally.summary()
    );
}

/// The generator alone, against the Pushgateway alone, over a few seeds:
/// every 400 must come from the consistency check (never from the parser),
/// and both accepted and refused pushes must be frequent.
#[test]
#[ignore = "needs prometheus-pushgateway: run via .ci/run"]
fn generator_mixes_accepted_and_refused_pushes() {
    let base = seed_from_env();
    let steps = steps_from_env();
    let mut total = Tally::default();
    for k in 0..3u64 {
        let seed = base.wrapping_add(k);
        let mut rng = Rng(seed);
        let mut pgw = Pushgateway::start();
        let mut tally = Tally::default();
        for step_no in 0..steps {
            let step = gen_step(&mut rng);
            let r = pgw.request(
                step.method,
                &step.path,
                &[step.content_type()],
                step.bytes(),
            );
            let want: &[u16] = if step.method == "DELETE" {
                &[202]
            } else {
                &[200, 400]
            };
            assert!(
                want.contains(&r.status) && (r.status != 400 || is_check_refusal(&r.text())),
                "seed {seed} step {step_no}: unexpected answer {} {:?} to\n{step}",
                r.status,
                r.text()
            );
            tally.add(step.method, r.status);
            total.add(step.method, r.status);
            if std::env::var_os("PUSHKIT_DIFF_VERBOSE").is_some() {
                eprintln!("step {step_no}: {step}\n→ {} {}", r.status, r.text());
            }
        }
        eprintln!("generator: seed {seed}: {steps} steps; {}", tally.summary());
    }
    eprintln!("generator: all seeds: {}", total.summary());
    let pushes = total.all_pushes();
    assert!(
        total.pushes(200) * 10 >= pushes * 3 && total.pushes(400) * 100 >= pushes * 8,
        "too few accepted or refused pushes: {}",
        total.summary()
    );
}

/// The HELP of the two push timestamps, word for word as the Pushgateway
/// writes them (dashboards and alerts match on these families).
#[test]
fn push_time_families_have_the_pushgateway_help() {
    let agent = start_pushkit();
    let r = agent.request(
        "PUT",
        "/metrics/job/helpcheck/instance/h1",
        &[TEXT],
        b"# TYPE help_check_total counter\nhelp_check_total 1\n",
    );
    assert_eq!(r.status, 200, "PUT: {}", r.text());
    let text = exposition(&agent.url("/metrics"), "pushkit");
    for (name, help) in [
        ("push_time_seconds", PUSH_TIME_HELP),
        ("push_failure_time_seconds", PUSH_FAILURE_TIME_HELP),
    ] {
        let helps: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("# HELP {name} ")))
            .collect();
        assert_eq!(helps, [help], "HELP of {name} in:\n{text}");
        let types: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("# TYPE {name} ")))
            .collect();
        assert_eq!(types, ["gauge"], "TYPE of {name} in:\n{text}");
    }
    let samples = parse_exposition(&text);
    let push_time: Vec<f64> = samples
        .iter()
        .filter(|(n, l, _)| {
            n == "push_time_seconds"
                && l.get("job").map(String::as_str) == Some("helpcheck")
                && l.get("instance").map(String::as_str) == Some("h1")
        })
        .map(|(_, _, v)| *v)
        .collect();
    let now = now_ns() as f64 / 1e9;
    assert!(
        push_time.len() == 1 && (push_time[0] - now).abs() < 600.0,
        "push_time_seconds of the group should be about now ({now}): {push_time:?}\n{text}"
    );
}

/// One family of one group in `GET /api/v1/metrics`: type, help, and each
/// metric as canonical JSON (keys sorted; `labels`, `value`, or `buckets`/
/// `quantiles`/`count`/`sum`, all strings as the Pushgateway formats them).
/// The push timestamps' values are reduced to "zero"/"non-zero"; the
/// families' `time_stamp` is left out.
#[derive(Debug, Clone, PartialEq, Eq)]
struct JsonFamily {
    ty: String,
    help: Option<String>,
    metrics: Vec<String>,
}

/// One group of `GET /api/v1/metrics`: grouping labels,
/// last_push_successful, families by name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct JsonGroup {
    labels: BTreeMap<String, String>,
    ok: Option<bool>,
    families: BTreeMap<String, JsonFamily>,
}

/// The value with every object's keys sorted.
fn canonical(v: &Json) -> Json {
    match v {
        Json::Object(m) => {
            let sorted: BTreeMap<&String, Json> =
                m.iter().map(|(k, v)| (k, canonical(v))).collect();
            Json::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Json::Array(a) => Json::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

fn json_groups(text: &str, who: &str) -> Result<Vec<JsonGroup>, String> {
    let v: Json = serde_json::from_str(text)
        .map_err(|e| format!("{who}: /api/v1/metrics is not JSON ({e}): {text}"))?;
    if v["status"] != "success" {
        return Err(format!("{who}: status is not success: {text}"));
    }
    let data = v["data"]
        .as_array()
        .ok_or_else(|| format!("{who}: data is not an array: {text}"))?;
    let mut out = Vec::new();
    for g in data {
        let obj = g
            .as_object()
            .ok_or_else(|| format!("{who}: a group is not an object: {g}"))?;
        let labels: BTreeMap<String, String> = serde_json::from_value(g["labels"].clone())
            .map_err(|e| format!("{who}: group labels ({e}): {g}"))?;
        let mut families = BTreeMap::new();
        for (name, fam) in obj {
            if name == "labels" || name == "last_push_successful" || json_deviates(name) {
                continue;
            }
            let ty = fam["type"]
                .as_str()
                .ok_or_else(|| format!("{who}: {name} has no type: {fam}"))?
                .to_string();
            let help = fam.get("help").and_then(Json::as_str).map(str::to_string);
            let mut metrics = Vec::new();
            for m in fam["metrics"]
                .as_array()
                .ok_or_else(|| format!("{who}: {name} has no metrics: {fam}"))?
            {
                let mut m = m.clone();
                if is_push_time(name) {
                    let v: f64 = m["value"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| format!("{who}: {name}: bad value in {m}"))?;
                    m["value"] = Json::from(if v == 0.0 { "zero" } else { "non-zero" });
                }
                metrics.push(canonical(&m).to_string());
            }
            metrics.sort();
            families.insert(name.clone(), JsonFamily { ty, help, metrics });
        }
        out.push(JsonGroup {
            labels,
            ok: g["last_push_successful"].as_bool(),
            families,
        });
    }
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(out)
}

/// Empty when equal; otherwise what differs, group by group.
fn diff_json(pgw: &[JsonGroup], pk: &[JsonGroup]) -> String {
    let mut out = String::new();
    let by = |gs: &[JsonGroup]| -> BTreeMap<BTreeMap<String, String>, Vec<JsonGroup>> {
        let mut m: BTreeMap<_, Vec<JsonGroup>> = BTreeMap::new();
        for g in gs {
            m.entry(g.labels.clone()).or_default().push(g.clone());
        }
        m
    };
    let (a, b) = (by(pgw), by(pk));
    for key in a
        .keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        match (a.get(key).map(Vec::as_slice), b.get(key).map(Vec::as_slice)) {
            (Some([ga]), Some([gb])) => {
                if ga.ok != gb.ok {
                    let _ = writeln!(
                        out,
                        "group {key:?}: last_push_successful pushgateway {:?}, pushkit {:?}",
                        ga.ok, gb.ok
                    );
                }
                for name in ga
                    .families
                    .keys()
                    .chain(gb.families.keys())
                    .collect::<std::collections::BTreeSet<_>>()
                {
                    let (fa, fb) = (ga.families.get(name), gb.families.get(name));
                    if fa != fb {
                        let _ = writeln!(
                            out,
                            "group {key:?} family {name}:\n  pushgateway {fa:?}\n  pushkit     {fb:?}"
                        );
                    }
                }
            }
            (x, y) => {
                let _ = writeln!(
                    out,
                    "group {key:?}: pushgateway has {} such group(s), pushkit {}",
                    x.map_or(0, <[_]>::len),
                    y.map_or(0, <[_]>::len)
                );
            }
        }
    }
    out
}

const PROTO_ACCEPT: &str =
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";

/// `GET /metrics` in delimited protobuf, decoded (with pushkit's copy of
/// `metrics.proto`), self metrics dropped, HELP cleared, each metric's
/// labels and the metrics sorted, push timestamps reduced to 0/1: family
/// name → its Debug text.
fn proto_exposition(url: &str, who: &str) -> Result<BTreeMap<String, String>, String> {
    use prost::Message as _;
    use pushkit::expfmt::proto::MetricFamily;
    let r = http("GET", url, &[("Accept", PROTO_ACCEPT)], b"")
        .map_err(|e| format!("{who}: GET {url} (protobuf): {e}"))?;
    if r.status != 200 {
        return Err(format!(
            "{who}: GET {url} (protobuf): {} {}",
            r.status,
            r.text()
        ));
    }
    let ct = r.header("content-type").unwrap_or_default();
    if !(ct.contains("application/vnd.google.protobuf") && ct.contains("encoding=delimited")) {
        return Err(format!("{who}: protobuf asked for, Content-Type {ct:?}"));
    }
    let mut buf = r.body.as_slice();
    let mut out = BTreeMap::new();
    while !buf.is_empty() {
        let mut mf = MetricFamily::decode_length_delimited(&mut buf)
            .map_err(|e| format!("{who}: undecodable protobuf exposition: {e}"))?;
        let name = mf.name.clone().unwrap_or_default();
        if is_self_metric(&name) {
            continue;
        }
        mf.help = None;
        let mut metrics: Vec<String> = mf
            .metric
            .drain(..)
            .map(|mut m| {
                m.label
                    .sort_by(|a, b| (&a.name, &a.value).cmp(&(&b.name, &b.value)));
                if is_push_time(&name) {
                    if let Some(g) = &mut m.gauge {
                        g.value = g.value.map(|v| if v == 0.0 { 0.0 } else { 1.0 });
                    }
                }
                format!("{m:?}")
            })
            .collect();
        metrics.sort();
        let text = format!("{mf:?}\n    {}", metrics.join("\n    "));
        if out.insert(name.clone(), text).is_some() {
            return Err(format!(
                "{who}: family {name} twice in the protobuf exposition"
            ));
        }
    }
    Ok(out)
}

fn diff_proto(pgw: &BTreeMap<String, String>, pk: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for name in pgw
        .keys()
        .chain(pk.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (a, b) = (pgw.get(name), pk.get(name));
        if a != b {
            let _ = writeln!(
                out,
                "family {name}:\n  pushgateway {}\n  pushkit     {}",
                a.map_or("(none)", String::as_str),
                b.map_or("(none)", String::as_str)
            );
        }
    }
    out
}

fn api_metrics(url: &str, who: &str) -> Vec<JsonGroup> {
    let r = get(url).unwrap_or_else(|e| panic!("GET {url} ({who}): {e}"));
    assert_eq!(r.status, 200, "GET {url} ({who}): {}", r.text());
    json_groups(&r.text(), who).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
#[ignore = "needs prometheus-pushgateway: run via .ci/run"]
fn json_api_matches_the_reference_pushgateway() {
    let mut pgw = Pushgateway::start();
    let agent = start_pushkit();
    let pushes: &[(&str, &str)] = &[
        (
            "/metrics/job/jsontest/instance/x1",
            "# HELP json_requests_total Requests.\n# TYPE json_requests_total counter\n\
             json_requests_total{code=\"200\"} 1\njson_requests_total{code=\"500\"} 1027\n",
        ),
        (
            "/metrics/job/jsontest",
            "# TYPE json_requests_total counter\njson_requests_total{code=\"200\"} 2.5\n",
        ),
    ];
    for (path, body) in pushes {
        let a = pgw.request("PUT", path, &[TEXT], body.as_bytes());
        assert_eq!(a.status, 200, "pushgateway PUT {path}: {}", a.text());
        let b = agent.request("PUT", path, &[TEXT], body.as_bytes());
        assert_eq!(b.status, 200, "pushkit PUT {path}: {}", b.text());
    }
    // A refused push: the group exists with last_push_successful false.
    let bad = (
        "/metrics/job/jsontest/instance/x2",
        "# TYPE json_requests_total gauge\njson_requests_total 3\n",
    );
    let a = pgw.request("PUT", bad.0, &[TEXT], bad.1.as_bytes());
    assert_eq!(a.status, 400, "pushgateway PUT {}: {}", bad.0, a.text());
    let b = agent.request("PUT", bad.0, &[TEXT], bad.1.as_bytes());
    assert_eq!(b.status, 400, "pushkit PUT {}: {}", bad.0, b.text());

    let ga = api_metrics(&pgw.url("/api/v1/metrics"), "pushgateway");
    let gb = api_metrics(&agent.url("/api/v1/metrics"), "pushkit");
    assert_eq!(ga.len(), 3, "pushgateway groups: {ga:#?}");
    let diff = diff_json(&ga, &gb);
    assert!(
        diff.is_empty(),
        "GET /api/v1/metrics differs:\n{diff}\npushgateway: {ga:#?}\npushkit: {gb:#?}"
    );
    // Not vacuous: the counter's values and the failed push are there.
    let values: Vec<&String> = gb
        .iter()
        .filter_map(|g| g.families.get("json_requests_total"))
        .flat_map(|f| &f.metrics)
        .collect();
    assert_eq!(values.len(), 3, "{gb:#?}");
    assert!(
        values.iter().any(|m| m.contains("\"value\":\"1027\""))
            && values.iter().any(|m| m.contains("\"value\":\"2.5\"")),
        "{values:#?}"
    );
    let failed: Vec<&JsonGroup> = gb.iter().filter(|g| g.ok == Some(false)).collect();
    assert!(
        failed.len() == 1 && failed[0].labels.get("instance").map(String::as_str) == Some("x2"),
        "exactly the refused group has last_push_successful false: {gb:#?}"
    );

    // The reference's HELP strings are the ones pushkit must use.
    let text = get(&pgw.url("/metrics"))
        .expect("GET pushgateway /metrics")
        .text();
    assert!(
        text.contains(&format!("# HELP push_time_seconds {PUSH_TIME_HELP}\n"))
            && text.contains(&format!(
                "# HELP push_failure_time_seconds {PUSH_FAILURE_TIME_HELP}\n"
            )),
        "the Pushgateway's HELP strings changed:\n{text}"
    );
}

/// The comparison itself: equal values spelled differently are equal,
/// self metrics and push-time values are left out (but not whether a push
/// time is zero), and a different value, label, type or a missing series
/// shows in the diff.
#[test]
fn normalized_comparison_catches_what_matters() {
    let reference = "# HELP go_goroutines Number of goroutines.\n# TYPE go_goroutines gauge\n\
                     go_goroutines 12\n# TYPE m counter\nm{instance=\"\",job=\"j1\"} 1e+06\n\
                     # TYPE push_time_seconds gauge\npush_time_seconds{instance=\"\",job=\"j1\"} 1.7e+09\n\
                     push_time_seconds{job=\"j2\"} 0\n";
    let same = "# TYPE pushkit_pushes_total counter\npushkit_pushes_total 3\n\
                # HELP m Another help.\n# TYPE m counter\nm{job=\"j1\"} 1000000\n\
                # HELP push_time_seconds x\n# TYPE push_time_seconds gauge\n\
                push_time_seconds{job=\"j1\"} 1.8e+09\npush_time_seconds{job=\"j2\"} 0\n";
    let a = normalize(reference).expect("reference parses");
    let b = normalize(same).expect("same parses");
    assert_eq!(diff_norms(&a, &b), "", "{a:?}\n{b:?}");
    assert_eq!(a.samples.len(), 3, "{a:?}");

    for (what, other) in [
        ("value", same.replace("1000000", "1000001")),
        ("label", same.replace("m{job=\"j1\"}", "m{job=\"j2\"}")),
        ("type", same.replace("TYPE m counter", "TYPE m gauge")),
        ("zero push time", same.replace("1.8e+09", "0")),
        (
            "missing series",
            same.replace("push_time_seconds{job=\"j2\"} 0\n", ""),
        ),
        ("extra series", format!("{same}m{{job=\"j1\",x=\"y\"}} 1\n")),
        (
            "series order",
            same.replace(
                "push_time_seconds{job=\"j1\"} 1.8e+09\npush_time_seconds{job=\"j2\"} 0\n",
                "push_time_seconds{job=\"j2\"} 0\npush_time_seconds{job=\"j1\"} 1.8e+09\n",
            ),
        ),
    ] {
        let b = normalize(&other).expect("variant parses");
        assert_ne!(diff_norms(&a, &b), "", "a different {what} went unnoticed");
    }
}
