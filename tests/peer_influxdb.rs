//! Tag values with the bytes line protocol treats specially, pushed once
//! and read back from real InfluxDB 1.6 (Debian's `influxdb`, started by
//! the test) and from VictoriaMetrics, each through its sink's
//! `lp_dialect`. Every value must come back as pushed, or as the README's
//! documented replacement: a newline becomes a space in both; in InfluxDB,
//! a backslash run before an escaped byte or at the end of a value is
//! dropped.
//!
//! `PUSHKIT_INFLUXD` and `PUSHKIT_VICTORIA_METRICS` name the binaries.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::time::Duration;

/// (case, pushed value, as InfluxDB holds it, as VictoriaMetrics holds it)
const CASES: &[(&str, &str, &str, &str)] = &[
    ("plain", "plain", "plain", "plain"),
    (
        "windows_path",
        r"C:\Windows\Temp",
        r"C:\Windows\Temp",
        r"C:\Windows\Temp",
    ),
    ("trailing_backslash", r"D:\", "D:", r"D:\"),
    ("two_backslashes", r"a\\b", r"a\\b", r"a\\b"),
    ("backslash_before_comma", r"a\,b", "a,b", r"a\,b"),
    ("newline", "line1\nline2", "line1 line2", "line1 line2"),
    ("separators", "a,b=c d", "a,b=c d", "a,b=c d"),
    ("quotes", r#"say "hi""#, r#"say "hi""#, r#"say "hi""#),
    (
        "non_ascii",
        "héllo 🙂 中文",
        "héllo 🙂 中文",
        "héllo 🙂 中文",
    ),
];

/// A label value in the text exposition format.
fn text_escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

#[test]
#[ignore = "needs influxdb and victoria-metrics: run via .ci/run"]
fn tag_values_arrive_as_pushed_or_as_documented() {
    let mut influx = InfluxDb::start();
    influx.query(None, "CREATE DATABASE pushkit");
    let mut vm = VictoriaMetrics::start();
    let port = free_port();
    let agent = Agent::start_raw(
        port,
        &format!(
            "[io]\nflush_interval = \"100ms\"\n\n\
             [[sinks]]\nname = \"influx\"\nurl = \"{}\"\nlp_dialect = \"influxdb\"\n\n\
             [[sinks]]\nname = \"vm\"\nurl = \"{}\"\nlp_dialect = \"victoriametrics\"\n\n\
             [[inputs.pushgateway]]\nkeep_exist_metric_name = true\n",
            influx.url("/write?db=pushkit"),
            vm.url("/write"),
        ),
    );

    let mut body = String::from("# TYPE esc_value gauge\n");
    for (i, (case, value, _, _)) in CASES.iter().enumerate() {
        body.push_str(&format!(
            "esc_value{{case=\"{case}\",v=\"{}\"}} {i}\n",
            text_escape(value)
        ));
    }
    let r = agent.request(
        "PUT",
        "/metrics/job/esc",
        &[("Content-Type", "text/plain; version=0.0.4")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "PUT: {}", r.text());

    // InfluxDB: measurement `esc`, field `esc_value`, tags `case` and `v`.
    let rows = wait_for("every case in InfluxDB", Duration::from_secs(30), || {
        let rows = influx.select("pushkit", r#"SELECT "esc_value", "case", "v" FROM "esc""#);
        (rows.len() == CASES.len()).then_some(rows)
    });
    let in_influx: BTreeMap<String, String> = rows
        .iter()
        .map(|row| {
            let s = |k: &str| row[k].as_str().unwrap_or_else(|| panic!("{k} in {row:?}"));
            (s("case").to_string(), s("v").to_string())
        })
        .collect();

    // VictoriaMetrics: `<measurement>_<field>`, labels `case` and `v`.
    let exported = wait_for(
        "every case in VictoriaMetrics",
        Duration::from_secs(30),
        || {
            let e = vm.export(r#"{__name__="esc_esc_value"}"#);
            (e.len() == CASES.len()).then_some(e)
        },
    );
    let in_vm: BTreeMap<String, String> = exported
        .keys()
        .map(|labels| (labels["case"].clone(), labels["v"].clone()))
        .collect();

    for (case, pushed, want_influx, want_vm) in CASES {
        assert_eq!(
            in_influx.get(*case).map(String::as_str),
            Some(*want_influx),
            "InfluxDB, case {case}: pushed {pushed:?}\n{}",
            influx.log_text()
        );
        assert_eq!(
            in_vm.get(*case).map(String::as_str),
            Some(*want_vm),
            "VictoriaMetrics, case {case}: pushed {pushed:?}"
        );
    }
    // Nothing was refused on the way.
    for sink in ["influx", "vm"] {
        assert_eq!(
            agent.self_metric(
                "pushkit_sink_points_dropped_total",
                &[("sink", sink), ("reason", "rejected")]
            ),
            None,
            "{sink} rejected points"
        );
    }
}
