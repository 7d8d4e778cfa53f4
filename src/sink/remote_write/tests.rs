use super::*;
use crate::convert::{convert, Mapping, Naming};
use crate::expfmt::text::parse_text;
use crate::model::family::MetricType;
use crate::model::point::Field;
use crate::model::GroupingKey;
use prost::Message;
use std::sync::Arc;

const NOW_NS: i64 = 1_700_000_000_123_456_789;
const NOW_MS: i64 = 1_700_000_000_123;

/// Points from a text push under job `j`, with the measurement prefix
/// stripped from field keys (so names cannot come from the field key).
fn points(text: &str, pairs: &[&str]) -> Vec<Point> {
    let families = parse_text(text.as_bytes()).unwrap();
    let group = GroupingKey::from_pairs("j", pairs);
    let mapping = Mapping {
        naming: Naming {
            keep_exist_metric_name: false,
            ..Naming::default()
        },
        honor_timestamps: true,
    };
    convert(&families, &group, &mapping, NOW_NS)
}

fn point(family: &str, tags: &[(&str, &str)], time_ns: i64, value: f64) -> Point {
    Point {
        measurement: "m".into(),
        tags: tags
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
        fields: vec![Field {
            key: "f".into(),
            value,
            suffix: SeriesSuffix::None,
        }],
        time_ns,
        family: Arc::from(family),
        kind: MetricType::Gauge,
        extra: None,
    }
}

/// A series as `name{k="v",...}` with its labels in wire order, and its
/// samples as (ms, value).
fn render(req: &WriteRequest) -> Vec<(String, Vec<(i64, f64)>)> {
    req.timeseries
        .iter()
        .map(|ts| {
            let labels: Vec<String> = ts
                .labels
                .iter()
                .map(|l| format!("{}={}", l.name, l.value))
                .collect();
            let samples = ts.samples.iter().map(|s| (s.timestamp, s.value)).collect();
            (labels.join(","), samples)
        })
        .collect()
}

fn series(labels: &str, samples: &[(i64, f64)]) -> (String, Vec<(i64, f64)>) {
    (labels.to_string(), samples.to_vec())
}

/// The encoder's bytes are prost's bytes for `write_request`, and the
/// snappy body decodes back to it.
fn check_wire(points: &[Point]) {
    let want = write_request(points);
    assert_eq!(protobuf(points), want.encode_to_vec());
    let body = encode(points);
    let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
    assert_eq!(WriteRequest::decode(raw.as_slice()).unwrap(), want);
}

#[test]
fn counter() {
    let pts = points(
        "# TYPE http_requests_total counter\n\
         http_requests_total{method=\"get\"} 7 1700000000999\n",
        &["instance", "h1"],
    );
    assert_eq!(pts[0].fields[0].key, "requests_total");
    assert_eq!(
        render(&write_request(&pts)),
        vec![series(
            "__name__=http_requests_total,instance=h1,job=j,method=get",
            &[(1_700_000_000_999, 7.0)]
        )]
    );
    assert_eq!(sample_count(&pts), 1);
    check_wire(&pts);
}

#[test]
fn gauge_with_tags() {
    let pts = points(
        "# TYPE node_temp_celsius gauge\n\
         node_temp_celsius{zone=\"cpu\",chip=\"a\"} 41.5\n\
         node_temp_celsius{zone=\"gpu\",chip=\"a\"} -3\n",
        &["rack", "r1"],
    );
    assert_eq!(
        render(&write_request(&pts)),
        vec![
            series(
                "__name__=node_temp_celsius,chip=a,job=j,rack=r1,zone=cpu",
                &[(NOW_MS, 41.5)]
            ),
            series(
                "__name__=node_temp_celsius,chip=a,job=j,rack=r1,zone=gpu",
                &[(NOW_MS, -3.0)]
            ),
        ]
    );
    check_wire(&pts);
}

#[test]
fn histogram_names_come_from_the_family() {
    // No +Inf bucket: the mapping adds one from the count.
    let pts = points(
        "# TYPE req_bytes histogram\n\
         req_bytes_bucket{le=\"100\"} 3\n\
         req_bytes_bucket{le=\"1e+06\"} 5\n\
         req_bytes_sum 4200\n\
         req_bytes_count 6\n",
        &[],
    );
    // The field keys lost the `req_` prefix; the series names did not.
    let keys: Vec<&str> = pts
        .iter()
        .flat_map(|p| p.fields.iter().map(|f| f.key.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            "bytes_count",
            "bytes_sum",
            "bytes_bucket",
            "bytes_bucket",
            "bytes_bucket"
        ]
    );
    assert_eq!(
        render(&write_request(&pts)),
        vec![
            series("__name__=req_bytes_count,job=j", &[(NOW_MS, 6.0)]),
            series("__name__=req_bytes_sum,job=j", &[(NOW_MS, 4200.0)]),
            series("__name__=req_bytes_bucket,job=j,le=100", &[(NOW_MS, 3.0)]),
            series("__name__=req_bytes_bucket,job=j,le=1e+06", &[(NOW_MS, 5.0)]),
            series("__name__=req_bytes_bucket,job=j,le=+Inf", &[(NOW_MS, 6.0)]),
        ]
    );
    assert_eq!(sample_count(&pts), 5);
    check_wire(&pts);
}

#[test]
fn summary() {
    let pts = points(
        "# TYPE rpc_duration_seconds summary\n\
         rpc_duration_seconds{quantile=\"0.5\",op=\"r\"} 0.25\n\
         rpc_duration_seconds{quantile=\"0.99\",op=\"r\"} 0.9\n\
         rpc_duration_seconds_sum{op=\"r\"} 12.5\n\
         rpc_duration_seconds_count{op=\"r\"} 40\n",
        &[],
    );
    assert_eq!(
        render(&write_request(&pts)),
        vec![
            series(
                "__name__=rpc_duration_seconds_count,job=j,op=r",
                &[(NOW_MS, 40.0)]
            ),
            series(
                "__name__=rpc_duration_seconds_sum,job=j,op=r",
                &[(NOW_MS, 12.5)]
            ),
            series(
                "__name__=rpc_duration_seconds,job=j,op=r,quantile=0.5",
                &[(NOW_MS, 0.25)]
            ),
            series(
                "__name__=rpc_duration_seconds,job=j,op=r,quantile=0.99",
                &[(NOW_MS, 0.9)]
            ),
        ]
    );
    check_wire(&pts);
}

#[test]
fn labels_sorted_byte_wise() {
    // Lower-case names sort after `__name__`; `_a` and upper-case names
    // sort before it, as in Prometheus.
    let p = point(
        "x",
        &[("Zone", "z"), ("_a", "1"), ("a", "2"), ("b", "3")],
        0,
        1.0,
    );
    let req = write_request(std::slice::from_ref(&p));
    let names: Vec<&str> = req.timeseries[0]
        .labels
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(names, ["Zone", "__name__", "_a", "a", "b"]);
    let p = point("x", &[("a", "2"), ("job", "j")], 0, 1.0);
    let req = write_request(&[p]);
    assert_eq!(req.timeseries[0].labels[0].name, "__name__");
    assert!(req.timeseries[0]
        .labels
        .windows(2)
        .all(|w| w[0].name < w[1].name));
}

#[test]
fn bad_tags_are_cleaned() {
    // Unsorted, repeated, empty-valued and `__name__` tags; the same
    // series as clean tags.
    let messy = point(
        "x",
        &[
            ("b", "3"),
            ("__name__", "other"),
            ("a", "1"),
            ("e", ""),
            ("a", "9"),
        ],
        1_000_000,
        1.0,
    );
    let clean = point("x", &[("a", "1"), ("b", "3")], 2_000_000, 2.0);
    let pts = [messy, clean];
    assert_eq!(
        render(&write_request(&pts)),
        vec![series("__name__=x,a=1,b=3", &[(1, 1.0), (2, 2.0)])]
    );
    check_wire(&pts);
}

#[test]
fn samples_sorted_by_time() {
    let tags = [("job", "j")];
    let pts = [
        point("x", &tags, 3_000_000_000, 3.0),
        point("x", &tags, 1_000_000_000, 1.0),
        point("y", &tags, 5_000_000_000, 5.0),
        point("x", &tags, 2_000_000_000, 2.0),
    ];
    assert_eq!(
        render(&write_request(&pts)),
        vec![
            series("__name__=x,job=j", &[(1000, 1.0), (2000, 2.0), (3000, 3.0)]),
            series("__name__=y,job=j", &[(5000, 5.0)]),
        ]
    );
    check_wire(&pts);
}

#[test]
fn duplicate_timestamp_keeps_the_last() {
    let tags = [("job", "j")];
    let pts = [
        point("x", &tags, 2_000_000_000, 1.0),
        point("x", &tags, 1_000_000_000, 7.0),
        // Same millisecond as the first point.
        point("x", &tags, 2_000_999_999, 2.0),
        point("x", &tags, 2_000_000_000, 3.0),
    ];
    assert_eq!(
        render(&write_request(&pts)),
        vec![series("__name__=x,job=j", &[(1000, 7.0), (2000, 3.0)])]
    );
    // Counted as pushed, so that halves add up.
    assert_eq!(sample_count(&pts), 4);
    check_wire(&pts);
}

#[test]
fn same_series_from_two_pushes() {
    // Separate pushes have separate family `Arc`s: grouped by content.
    let mut pts = points("a_b{k=\"v\"} 1 1000\n", &[]);
    pts.extend(points("a_b{k=\"v\"} 2 2000\n", &[]));
    assert!(!Arc::ptr_eq(&pts[0].family, &pts[1].family));
    assert_eq!(
        render(&write_request(&pts)),
        vec![series(
            "__name__=a_b,job=j,k=v",
            &[(1000, 1.0), (2000, 2.0)]
        )]
    );
}

#[test]
fn wire_edge_values() {
    // Zero, negative zero and a zero timestamp are left out the way
    // prost leaves them out; negative and huge values round-trip.
    let pts = [
        point("z", &[], 0, 0.0),
        point("n", &[], -5_000_000, -0.0),
        point("v", &[("k", "ü")], i64::MAX, f64::MAX),
        point("w", &[], -1, f64::NAN),
    ];
    assert_eq!(protobuf(&pts), write_request(&pts).encode_to_vec());
    let req = write_request(&pts);
    assert_eq!(req.timeseries[1].samples[0].timestamp, -5);
    assert_eq!(req.timeseries[2].samples[0].timestamp, i64::MAX / 1_000_000);
    // Rounded down, not toward zero.
    assert_eq!(req.timeseries[3].samples[0].timestamp, -1);
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&encode(&pts))
        .unwrap();
    let back = WriteRequest::decode(raw.as_slice()).unwrap();
    assert_eq!(back.timeseries[2], req.timeseries[2]);
    assert!(back.timeseries[3].samples[0].value.is_nan());
}

#[test]
fn snappy_round_trip_of_a_mixed_batch() {
    let mut pts = points(
        "# TYPE req_bytes histogram\n\
         req_bytes_bucket{le=\"1\"} 1\n\
         req_bytes_bucket{le=\"+Inf\"} 2\n\
         req_bytes_sum 3\n\
         req_bytes_count 2\n\
         # TYPE up gauge\n\
         up{instance=\"h\"} 1\n",
        &["zone", "eu"],
    );
    // Enough series to need multi-byte lengths.
    for i in 0..300 {
        pts.push(point(
            "many",
            &[("i", &i.to_string()), ("pad", &"p".repeat(i))],
            i as i64 * 1_000_000,
            i as f64,
        ));
    }
    check_wire(&pts);
    let body = encode(&pts);
    assert!(body.len() < protobuf(&pts).len());
    assert!(encode(&[]).len() <= 1);
    assert_eq!(write_request(&[]), WriteRequest::default());
}

#[test]
fn halves_split_by_points() {
    let p = |t| point("x", &[], t, 1.0);
    let empty: &[Point] = &[];
    assert_eq!(halves(empty), (empty, empty));
    let one = [p(1)];
    assert_eq!(halves(&one), (&one[..], empty));
    let two = [p(1), p(2)];
    assert_eq!(halves(&two), (&two[..1], &two[1..]));
    let five = [p(1), p(2), p(3), p(4), p(5)];
    let (a, b) = halves(&five);
    assert_eq!((a.len(), b.len()), (3, 2));
    assert_eq!([a, b].concat(), five.to_vec());
    assert_eq!(sample_count(a) + sample_count(b), sample_count(&five));
}

#[test]
fn headers() {
    let get = |name: &str| HEADERS.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    assert_eq!(get("Content-Encoding"), Some("snappy"));
    assert_eq!(get("Content-Type"), Some("application/x-protobuf"));
    assert_eq!(get("X-Prometheus-Remote-Write-Version"), Some("0.1.0"));
}

#[test]
fn varint_lengths() {
    for v in [0u64, 1, 127, 128, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
        let mut buf = Vec::new();
        put_varint(&mut buf, v);
        assert_eq!(buf.len(), varint_len(v), "{v}");
        assert_eq!(buf.len(), prost::length_delimiter_len(v as usize), "{v}");
    }
}

/// A counter's exemplar goes on its series; a histogram's native part is
/// the family's own series, beside `_count`, `_sum` and `_bucket`, with its
/// native exemplars; a classic bucket's exemplar goes on its `_bucket`.
#[test]
fn native_histograms_and_exemplars_go_in_their_fields() {
    use crate::model::family::{
        Exemplar, Family, Histogram, HistogramExemplars, Metric, NativeBuckets, NativeHistogram,
        Value,
    };
    let ex = |v: f64, ts: Option<(i64, i32)>| Exemplar {
        labels: vec![("trace_id".into(), format!("t{v}").into())],
        value: v,
        timestamp: ts,
    };
    let native = NativeHistogram {
        sample_count: None,
        sample_count_float: None,
        schema: Some(1),
        zero_threshold: Some(0.01),
        zero_count: Some(1),
        zero_count_float: None,
        negative: NativeBuckets::default(),
        positive: NativeBuckets {
            spans: vec![(0, 2)],
            deltas: vec![1, 1],
            counts: vec![],
        },
    };
    let families = vec![
        Family {
            name: "c_total".into(),
            help: None,
            kind: MetricType::Counter,
            metrics: vec![Metric {
                labels: vec![],
                value: Value::Simple(4.0),
                timestamp_ms: Some(1_700_000_000_000),
                exemplar: Some(Box::new(ex(1.0, Some((1_699_999_999, 500_000_000))))),
            }],
        },
        Family {
            name: "h".into(),
            help: None,
            kind: MetricType::Histogram,
            metrics: vec![Metric {
                labels: vec![],
                value: Value::Histogram(Histogram {
                    sample_count: 4.0,
                    sample_sum: 3.5,
                    buckets: vec![(1.0, 2.0)],
                    native: Some(Box::new(native)),
                    exemplars: Some(Box::new(HistogramExemplars {
                        buckets: vec![(0, ex(0.5, None))],
                        native: vec![ex(2.0, None)],
                    })),
                }),
                timestamp_ms: Some(1_700_000_000_000),
                exemplar: None,
            }],
        },
    ];
    let group = GroupingKey::from_pairs("j", &[]);
    let mapping = Mapping {
        naming: Naming::default(),
        honor_timestamps: true,
    };
    let pts = convert(&families, &group, &mapping, NOW_NS);
    check_wire(&pts);
    let req = write_request(&pts);
    let by_name = |name: &str, le: Option<&str>| {
        req.timeseries
            .iter()
            .find(|ts| {
                ts.labels
                    .iter()
                    .any(|l| l.name == "__name__" && l.value == name)
                    && le.is_none_or(|le| ts.labels.iter().any(|l| l.name == "le" && l.value == le))
            })
            .unwrap_or_else(|| panic!("no {name} in {req:#?}"))
    };
    let t = 1_700_000_000_000;
    let c = by_name("c_total", None);
    assert_eq!(
        c.samples,
        vec![Sample {
            value: 4.0,
            timestamp: t
        }]
    );
    assert_eq!(c.exemplars.len(), 1);
    assert_eq!(
        (c.exemplars[0].value, c.exemplars[0].timestamp),
        (1.0, 1_699_999_999_500)
    );
    let h = by_name("h", None);
    assert!(h.samples.is_empty());
    assert_eq!(h.histograms.len(), 1);
    let native = &h.histograms[0];
    assert_eq!(native.count_int, Some(4));
    assert_eq!((native.sum, native.schema, native.timestamp), (3.5, 1, t));
    assert_eq!(native.positive_deltas, vec![1, 1]);
    assert_eq!(h.exemplars.len(), 1);
    assert_eq!((h.exemplars[0].value, h.exemplars[0].timestamp), (2.0, t));
    let b = by_name("h_bucket", Some("1"));
    assert_eq!(
        b.samples,
        vec![Sample {
            value: 2.0,
            timestamp: t
        }]
    );
    assert_eq!(b.exemplars.len(), 1);
    assert_eq!(b.exemplars[0].value, 0.5);
    assert!(by_name("h_bucket", Some("+Inf")).exemplars.is_empty());
    assert_eq!(by_name("h_count", None).samples[0].value, 4.0);
    assert_eq!(by_name("h_sum", None).samples[0].value, 3.5);
    // Two pushes of one histogram in a batch: one sample per timestamp,
    // the later one kept.
    let mut twice = pts.clone();
    let mut later = pts.clone();
    for p in &mut later {
        if let Some(x) = &mut p.extra {
            if let Some(n) = &mut x.native {
                n.zero_count = Some(9);
            }
        }
    }
    twice.extend(later);
    check_wire(&twice);
    let req = write_request(&twice);
    let h = req
        .timeseries
        .iter()
        .find(|ts| !ts.histograms.is_empty())
        .unwrap();
    assert_eq!(h.histograms.len(), 1);
    assert_eq!(h.histograms[0].zero_count_int, Some(9));
}
