use super::*;
use crate::expfmt::parse_text;
use crate::lineproto::{encode_line_protocol, Dialect, LpDrops};
use crate::model::family::{Histogram, MetricType};
use crate::model::GroupingKey;

const NOW: i64 = 1_000_000_000_000;

/// The push converted to line protocol, written straight from the parts,
/// and what line protocol left out; the `Point`s built from the same push
/// (which keep everything) must encode to the same text and drops.
fn lines_and_drops(text: &str, pairs: &[&str], mapping: &Mapping) -> (String, LpDrops) {
    let families = parse_text(text.as_bytes()).unwrap();
    let group = GroupingKey::from_pairs("j", pairs);
    let mut direct = Converted::new(true, Some(Dialect::InfluxDb), 0);
    convert_into(&families, &group, mapping, NOW, &mut direct);
    let writer = direct.lines.unwrap();
    let (lines, drops) = (writer.lines, writer.drops);
    let points = direct.points.unwrap().points;
    assert_eq!(direct.count, points.len());
    assert_eq!(
        (lines.text.clone(), drops),
        encode_line_protocol(&points, Dialect::InfluxDb)
    );
    // As text: NaN is not equal to itself.
    let again = convert(&families, &group, mapping, NOW);
    assert_eq!(format!("{points:?}"), format!("{again:?}"));
    assert_eq!(
        lines.len(),
        lines.text.iter().filter(|&&b| b == b'\n').count()
    );
    (String::from_utf8(lines.text).unwrap(), drops)
}

fn lines(text: &str, pairs: &[&str], mapping: &Mapping) -> String {
    lines_and_drops(text, pairs, mapping).0
}

fn keep() -> Mapping {
    Mapping {
        naming: Naming {
            keep_exist_metric_name: true,
            ..Naming::default()
        },
        honor_timestamps: true,
    }
}

#[test]
fn counter_with_labels_and_grouping_tags() {
    let got = lines(
        "# TYPE etcd_writes_total counter\netcd_writes_total{disk=\"sda\"} 3\n",
        &["instance", "h1"],
        &keep(),
    );
    assert_eq!(
        got,
        "etcd,disk=sda,instance=h1,job=j etcd_writes_total=3 1000000000000\n"
    );
}

#[test]
fn keep_false_strips_the_measurement_prefix() {
    let mut m = keep();
    m.naming.keep_exist_metric_name = false;
    let got = lines("etcd_writes_total 3\n", &[], &m);
    assert_eq!(got, "etcd,job=j writes_total=3 1000000000000\n");
}

#[test]
fn url_label_wins_and_empty_tags_are_dropped() {
    let got = lines(
        "app_up{instance=\"from-body\",zone=\"\",job=\"body\"} 1\n",
        &["instance", "from-url"],
        &keep(),
    );
    assert_eq!(got, "app,instance=from-url,job=j app_up=1 1000000000000\n");
}

#[test]
fn empty_url_label_overrides_body_label_too() {
    // instance="" from the URL still takes the name: the body's instance
    // label is replaced by an empty one, which is then left out.
    let got = lines("app_up{instance=\"b\"} 1\n", &["instance", ""], &keep());
    assert_eq!(got, "app,job=j app_up=1 1000000000000\n");
}

#[test]
fn summary_points() {
    let text = "# TYPE rpc_seconds summary\n\
                rpc_seconds{quantile=\"0.5\"} 0.2\n\
                rpc_seconds{quantile=\"0.99\"} NaN\n\
                rpc_seconds_sum 12.5\n\
                rpc_seconds_count 40\n";
    assert_eq!(
        lines(text, &[], &keep()),
        "rpc,job=j rpc_seconds_count=40,rpc_seconds_sum=12.5 1000000000000\n\
         rpc,job=j,quantile=0.5 rpc_seconds=0.2 1000000000000\n"
    );
}

#[test]
fn histogram_points_with_go_formatted_bounds() {
    let text = "# TYPE req_bytes histogram\n\
                req_bytes_bucket{le=\"1e-05\"} 0\n\
                req_bytes_bucket{le=\"100000\"} 1\n\
                req_bytes_bucket{le=\"1000000\"} 2\n\
                req_bytes_bucket{le=\"+Inf\"} 3\n\
                req_bytes_sum 1.5e6\n\
                req_bytes_count 3\n";
    assert_eq!(
        lines(text, &[], &keep()),
        "req,job=j req_bytes_count=3,req_bytes_sum=1500000 1000000000000\n\
         req,job=j,le=1e-05 req_bytes_bucket=0 1000000000000\n\
         req,job=j,le=100000 req_bytes_bucket=1 1000000000000\n\
         req,job=j,le=1e+06 req_bytes_bucket=2 1000000000000\n\
         req,job=j,le=+Inf req_bytes_bucket=3 1000000000000\n"
    );
}

#[test]
fn histogram_without_inf_bucket_gets_one_from_its_count() {
    let family = Family {
        name: "lat_seconds".into(),
        help: None,
        kind: MetricType::Histogram,
        metrics: vec![Metric {
            labels: vec![],
            value: Value::Histogram(Histogram {
                sample_count: 7.0,
                sample_sum: 2.0,
                buckets: vec![(0.5, 4.0)],
                native: None,
                exemplars: None,
            }),
            timestamp_ms: None,
            exemplar: None,
        }],
    };
    let group = GroupingKey::from_pairs("j", &[]);
    let points = convert(&[family], &group, &keep(), NOW);
    assert_eq!(
        String::from_utf8(encode_line_protocol(&points, Dialect::InfluxDb).0).unwrap(),
        "lat,job=j lat_seconds_count=7,lat_seconds_sum=2 1000000000000\n\
         lat,job=j,le=0.5 lat_seconds_bucket=4 1000000000000\n\
         lat,job=j,le=+Inf lat_seconds_bucket=7 1000000000000\n"
    );
    assert_eq!(points[2].fields[0].suffix, SeriesSuffix::Bucket);
    assert_eq!(&*points[2].family, "lat_seconds");
}

#[test]
fn native_only_histogram_gives_count_and_sum_only() {
    let family = Family {
        name: "lat_seconds".into(),
        help: None,
        kind: MetricType::Histogram,
        metrics: vec![Metric {
            labels: vec![],
            value: Value::Histogram(Histogram {
                sample_count: 7.0,
                sample_sum: 2.0,
                buckets: vec![],
                native: Some(Box::default()),
                exemplars: None,
            }),
            timestamp_ms: None,
            exemplar: None,
        }],
    };
    let group = GroupingKey::from_pairs("j", &[]);
    let points = convert(&[family], &group, &keep(), NOW);
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].fields.len(), 2);
}

#[test]
fn non_finite_values_are_left_out_of_lines_but_not_points() {
    let text = "a_x NaN\na_y +Inf\na_z -Inf\n";
    let (got, drops) = lines_and_drops(text, &[], &keep());
    assert_eq!(got, "");
    assert_eq!(drops.non_finite, 3);
    let families = parse_text(text.as_bytes()).unwrap();
    let points = convert(&families, &GroupingKey::from_pairs("j", &[]), &keep(), NOW);
    let values: Vec<f64> = points.iter().map(|p| p.fields[0].value).collect();
    assert!(values[0].is_nan());
    assert_eq!(values[1..], [f64::INFINITY, f64::NEG_INFINITY]);
}

#[test]
fn field_named_like_a_tag_is_left_out_of_lines_but_not_points() {
    let mut m = keep();
    m.naming.measurement_name = Some("m".into());
    // The field would be "job", which is also a tag: no line.
    let (got, drops) = lines_and_drops("job 1\n", &[], &m);
    assert_eq!(got, "");
    assert_eq!(drops.field_is_tag, 1);
    // A StateSet, as the Python client's Enum pushes it.
    let text = "# TYPE job_state gauge\njob_state{job_state=\"running\"} 1\njob_state{job_state=\"done\"} 0\n";
    let (got, drops) = lines_and_drops(text, &[], &keep());
    assert_eq!((got.as_str(), drops.field_is_tag), ("", 2));
    let families = parse_text(text.as_bytes()).unwrap();
    let points = convert(&families, &GroupingKey::from_pairs("j", &[]), &keep(), NOW);
    assert_eq!(points.len(), 2, "remote write gets the StateSet");
}

#[test]
fn timestamps_honoured_or_not() {
    let text = "app_up 1 1700000000123\n";
    assert_eq!(
        lines(text, &[], &keep()),
        "app,job=j app_up=1 1700000000123000000\n"
    );
    let mut m = keep();
    m.honor_timestamps = false;
    assert_eq!(lines(text, &[], &m), "app,job=j app_up=1 1000000000000\n");
}

#[test]
fn job_as_measurement_uses_the_job_value() {
    let mut m = keep();
    m.naming.job_as_measurement = true;
    assert_eq!(
        lines("etcd_up 1\n", &[], &m),
        "j,job=j etcd_up=1 1000000000000\n"
    );
}

#[test]
fn newline_in_tag_value_becomes_a_space() {
    assert_eq!(
        lines("app_up{msg=\"a\\nb\"} 1\n", &[], &keep()),
        "app,job=j,msg=a\\ b app_up=1 1000000000000\n"
    );
}

/// Sorted and unsorted label orders give the same tags, with grouping
/// labels that sort before, between and after the metric's own, and win
/// over them.
#[test]
fn tags_are_merged_in_order_whatever_the_label_order() {
    let pairs = ["a", "g1", "m", "g2", "z", "g3", "k", "g4"];
    let want = "app,a=g1,b=1,job=j,k=g4,m=g2,n=2,z=g3 app_m=1 1000000000000\n";
    for body in [
        "app_m{b=\"1\",k=\"own\",n=\"2\"} 1\n",
        "app_m{n=\"2\",k=\"own\",b=\"1\"} 1\n",
        "app_m{k=\"own\",b=\"1\",n=\"2\",e=\"\"} 1\n",
        "app_m{b=\"1\",e=\"\",n=\"2\"} 1\n",
    ] {
        assert_eq!(lines(body, &pairs, &keep()), want, "{body}");
    }
}

#[test]
fn field_keys_join_their_parts() {
    // A tag keyed like the field name plus a suffix, or a prefix of it,
    // or another name: only the exact key is a conflict.
    let body = "# TYPE req summary\nreq_count{req_coun=\"a\",req=\"b\",rex_count=\"c\"} 1\nreq_sum{req_coun=\"a\",req=\"b\",rex_count=\"c\"} 2\n";
    let (got, drops) = lines_and_drops(body, &[], &keep());
    assert_eq!(drops, LpDrops::default(), "{got}");
    let body = "# TYPE req summary\nreq_count{req_count=\"a\"} 1\nreq_sum{req_count=\"a\"} 2\n";
    let (got, drops) = lines_and_drops(body, &[], &keep());
    assert_eq!(got, "req,job=j,req_count=a req_sum=2 1000000000000\n");
    assert_eq!(drops.field_is_tag, 1);
}
