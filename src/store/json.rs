//! `GET P/api/v1/metrics`: the Pushgateway's JSON view of the groups.
//! Its shape: `{"status":"success","data":[group...]}`, each group with
//! `labels` (the grouping key), `last_push_successful`, and one member per
//! family named after it: `time_stamp` (RFC 3339), `type` (the protobuf
//! enum name), `help` (left out when empty) and `metrics`, whose values are
//! strings formatted as Go's `fmt.Sprint` formats them. A native histogram
//! shows its buckets as Pushgateway 1.8+ shows them (1.5.1 showed only its
//! classic buckets); see [`native_json`].

use super::sanitize::{
    group_series_labels, PUSH_FAILURE_TIME, PUSH_FAILURE_TIME_HELP, PUSH_TIME, PUSH_TIME_HELP,
};
use super::{Group, Store};
use crate::model::family::{Family, Histogram, Metric, MetricType, Value};
use crate::model::gofloat::format_go_g;
use crate::model::native::api_buckets;
use serde_json::{json, Map, Value as Json};

impl Store {
    /// The `data` array of `GET P/api/v1/metrics`, built from a
    /// [`Store::snapshot`], without the store lock.
    pub fn api_metrics(&self) -> Json {
        Json::Array(self.snapshot().groups().map(group_json).collect())
    }
}

fn group_json(g: &Group) -> Json {
    let mut obj = Map::new();
    let labels: Map<String, Json> = g
        .key
        .labels()
        .iter()
        .map(|(k, v)| (k.to_string(), Json::String(v.to_string())))
        .collect();
    obj.insert("labels".into(), Json::Object(labels));
    obj.insert(
        "last_push_successful".into(),
        Json::Bool(g.push_ns >= g.failure_ns),
    );
    for (name, family) in &g.families {
        let full = family.unpack(name, &g.labels);
        obj.insert(name.clone(), family_json(&full, family.pushed_ns));
    }
    let series = group_series_labels(&g.key);
    for (name, help, value, at) in [
        (PUSH_TIME, PUSH_TIME_HELP, g.push_ns, g.push_ns),
        (
            PUSH_FAILURE_TIME,
            PUSH_FAILURE_TIME_HELP,
            g.failure_ns,
            g.failure_ns.max(g.push_ns),
        ),
    ] {
        let gauge = Family {
            name: name.to_string(),
            help: Some(help.to_string()),
            kind: MetricType::Gauge,
            metrics: vec![Metric {
                labels: series.clone(),
                value: Value::Simple(value as f64 / 1e9),
                timestamp_ms: None,
                exemplar: None,
            }],
        };
        obj.insert(name.to_string(), family_json(&gauge, at));
    }
    Json::Object(obj)
}

fn family_json(f: &Family, at_ns: i64) -> Json {
    let mut obj = Map::new();
    obj.insert("time_stamp".into(), Json::String(rfc3339_nano(at_ns)));
    obj.insert("type".into(), Json::String(proto_type_name(f.kind).into()));
    if let Some(help) = f.help.as_deref().filter(|h| !h.is_empty()) {
        obj.insert("help".into(), Json::String(help.into()));
    }
    let metrics: Vec<Json> = f.metrics.iter().map(metric_json).collect();
    obj.insert("metrics".into(), Json::Array(metrics));
    Json::Object(obj)
}

fn metric_json(m: &Metric) -> Json {
    let labels: Map<String, Json> = m
        .labels
        .iter()
        .map(|(k, v)| (k.to_string(), Json::String(v.to_string())))
        .collect();
    match &m.value {
        Value::Simple(v) => json!({"labels": labels, "value": format_go_g(*v)}),
        Value::Summary(s) => {
            let quantiles: Map<String, Json> = s
                .quantiles
                .iter()
                .map(|(q, v)| (format_go_g(*q), Json::String(format_go_g(*v))))
                .collect();
            json!({"labels": labels, "quantiles": quantiles,
                   "count": format_count(s.sample_count), "sum": format_go_g(s.sample_sum)})
        }
        Value::Histogram(h) => {
            if let Some(native) = native_json(h) {
                let mut obj = native;
                obj.insert("labels".into(), Json::Object(labels));
                return Json::Object(obj);
            }
            let buckets: Map<String, Json> = h
                .buckets
                .iter()
                .map(|(ub, c)| (format_go_g(*ub), Json::String(format_count(*c))))
                .collect();
            json!({"labels": labels, "buckets": buckets,
                   "count": format_count(h.sample_count), "sum": format_go_g(h.sample_sum)})
        }
    }
}

/// A native histogram as the Pushgateway (1.8+) shows one that has spans:
/// `count`, `sum`, and `buckets` as Prometheus' query API lists them,
/// `[boundaries, lower, upper, count]` with all but the first as strings.
/// `None` for any other histogram, shown the classic way.
fn native_json(h: &Histogram) -> Option<Map<String, Json>> {
    let n = h.native.as_deref()?;
    if n.negative.spans.is_empty() && n.positive.spans.is_empty() {
        return None;
    }
    // The Pushgateway's rule for a float histogram; the model keeps the
    // float count itself only, so a float zero bucket or float bucket
    // counts stand for it.
    let float = n.is_float();
    let buckets = api_buckets(n, float)?;
    let count = |c: f64| {
        if float {
            format_go_g(c)
        } else {
            (c as u64).to_string()
        }
    };
    let buckets: Vec<Json> = buckets
        .iter()
        .map(|b| {
            json!([
                b.boundaries(),
                format_go_g(b.lower),
                format_go_g(b.upper),
                count(b.count)
            ])
        })
        .collect();
    let mut obj = Map::new();
    obj.insert("buckets".into(), Json::Array(buckets));
    obj.insert("count".into(), Json::String(count(h.sample_count)));
    obj.insert("sum".into(), Json::String(format_go_g(h.sample_sum)));
    Some(obj)
}

/// Counts are integers in the Pushgateway's protobuf model.
fn format_count(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e18 {
        format!("{}", v as i64)
    } else {
        format_go_g(v)
    }
}

/// The enum names of `io.prometheus.client.MetricType`.
fn proto_type_name(kind: MetricType) -> &'static str {
    match kind {
        MetricType::Counter => "COUNTER",
        MetricType::Gauge => "GAUGE",
        MetricType::Summary => "SUMMARY",
        MetricType::Untyped => "UNTYPED",
        MetricType::Histogram => "HISTOGRAM",
        MetricType::GaugeHistogram => "GAUGE_HISTOGRAM",
    }
}

/// RFC 3339 in UTC with as many fraction digits as needed, as Go's
/// `time.Time` marshals (`2026-11-24T09:15:13.5Z`).
pub fn rfc3339_nano(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    );
    if frac != 0 {
        let digits = format!("{frac:09}");
        s.push('.');
        s.push_str(digits.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_as_go_marshals_them() {
        assert_eq!(rfc3339_nano(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_nano(1_764_000_000_500_000_000),
            "2025-11-24T16:00:00.5Z"
        );
        assert_eq!(
            rfc3339_nano(951_782_400_000_000_001),
            "2000-02-29T00:00:00.000000001Z"
        );
    }

    #[test]
    fn native_histograms_as_pushgateway_1_8_shows_them() {
        use crate::model::family::{NativeBuckets, NativeHistogram};
        // The Pushgateway's api_test.go case.
        let native = NativeHistogram {
            sample_count: None,
            sample_count_float: None,
            schema: Some(1),
            zero_threshold: Some(0.001),
            zero_count: Some(0),
            zero_count_float: None,
            negative: NativeBuckets {
                spans: vec![(1, 1)],
                deltas: vec![2],
                counts: vec![],
            },
            positive: NativeBuckets {
                spans: vec![(1, 1)],
                deltas: vec![2],
                counts: vec![],
            },
        };
        let m = Metric {
            labels: vec![("job".into(), "j".into())],
            value: Value::Histogram(Histogram {
                sample_count: 20.0,
                sample_sum: 99.23,
                buckets: vec![(250_000.0, 3.0), (500_000.0, 17.0)],
                native: Some(Box::new(native.clone())),
                exemplars: None,
            }),
            timestamp_ms: None,
            exemplar: None,
        };
        assert_eq!(
            metric_json(&m),
            json!({"buckets": [[1, "-1.414213562373095", "-1", "2"], [0, "1", "1.414213562373095", "2"]],
                   "count": "20", "labels": {"job": "j"}, "sum": "99.23"})
        );
        // Without spans (a native histogram with no observation yet), the
        // classic shape.
        let mut empty = m.clone();
        if let Value::Histogram(h) = &mut empty.value {
            h.native = Some(Box::new(NativeHistogram {
                negative: NativeBuckets::default(),
                positive: NativeBuckets::default(),
                ..native
            }));
        }
        assert_eq!(
            metric_json(&empty),
            json!({"buckets": {"250000": "3", "500000": "17"}, "count": "20",
                   "labels": {"job": "j"}, "sum": "99.23"})
        );
    }

    #[test]
    fn counts_and_values() {
        assert_eq!(format_count(3.0), "3");
        assert_eq!(format_count(2.5), "2.5");
        assert_eq!(format_go_g(1e6), "1e+06");
    }
}
