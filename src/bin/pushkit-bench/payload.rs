//! The benchmark's push bodies, in text format 0.0.4. Shared by the
//! side-by-side benchmark and the criterion benches (which include this
//! file with `#[path]`), so both measure the same bytes.

use std::fmt::Write as _;

/// `families` counter families of `series` series each. With 10 × 10 this
/// is the benchmark payload: 100 series, about 7.6 KB. Every group
/// can push the same body: the grouping labels make the series distinct.
pub fn counters(families: usize, series: usize) -> String {
    let mut out = String::with_capacity(families * (90 + series * 70));
    for f in 0..families {
        let name = format!("bench_requests_{f}_total");
        let _ = writeln!(out, "# HELP {name} Requests of family {f}.");
        let _ = writeln!(out, "# TYPE {name} counter");
        for s in 0..series {
            let code = if s % 10 == 9 { "500" } else { "200" };
            let method = if s % 2 == 0 { "GET" } else { "POST" };
            let value = (f as u64 + 1) * 100_000 + s as u64 * 37;
            let _ = writeln!(
                out,
                "{name}{{code=\"{code}\",method=\"{method}\",shard=\"{s:03}\"}} {value}"
            );
        }
    }
    out
}

/// A bigger mixed body: counters, gauges with float values, histograms of
/// 11 buckets and summaries of 5 quantiles, with several labels per series,
/// escaped label values and timestamps on some lines.
#[allow(dead_code)] // used by benches/hot_paths.rs
pub fn mixed(scale: usize) -> String {
    let mut out = String::new();
    for f in 0..scale {
        let name = format!("mixed_ops_{f}_total");
        let _ = writeln!(out, "# HELP {name} Operations of kind {f}.");
        let _ = writeln!(out, "# TYPE {name} counter");
        for s in 0..20 {
            let _ = writeln!(
                out,
                "{name}{{cluster=\"eu-west-1\",node=\"node-{s:03}\",op=\"write\",path=\"C:\\\\data\\\\{s}\"}} {} 1700000000{s:03}",
                s * 1013 + f
            );
        }
        let name = format!("mixed_temperature_{f}_celsius");
        let _ = writeln!(out, "# HELP {name} A gauge with \"quoted\" help.");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for s in 0..20 {
            let _ = writeln!(
                out,
                "{name}{{sensor=\"s{s}\",room=\"r{}\",floor=\"{}\"}} {}.{}e-1",
                s % 4,
                s % 3,
                s * 7 + 200,
                s + 1
            );
        }
        let name = format!("mixed_latency_{f}_seconds");
        let _ = writeln!(out, "# HELP {name} Request latency.");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let bounds = [
            "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf",
        ];
        for s in 0..5 {
            for (i, le) in bounds.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{name}_bucket{{handler=\"/api/v{s}\",method=\"GET\",le=\"{le}\"}} {}",
                    (i + 1) * 10 + s
                );
            }
            let _ = writeln!(
                out,
                "{name}_sum{{handler=\"/api/v{s}\",method=\"GET\"}} {}.25",
                40 + s
            );
            let _ = writeln!(
                out,
                "{name}_count{{handler=\"/api/v{s}\",method=\"GET\"}} {}",
                110 + s
            );
        }
        let name = format!("mixed_rpc_{f}_seconds");
        let _ = writeln!(out, "# HELP {name} RPC durations.");
        let _ = writeln!(out, "# TYPE {name} summary");
        for s in 0..5 {
            for q in ["0.5", "0.9", "0.95", "0.99", "0.999"] {
                let _ = writeln!(
                    out,
                    "{name}{{service=\"svc-{s}\",quantile=\"{q}\"}} 0.0{}{s}",
                    q.len()
                );
            }
            let _ = writeln!(out, "{name}_sum{{service=\"svc-{s}\"}} 1234.5");
            let _ = writeln!(out, "{name}_count{{service=\"svc-{s}\"}} 9876");
        }
    }
    out
}
