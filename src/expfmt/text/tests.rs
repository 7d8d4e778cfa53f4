use super::*;

fn parse(s: &str) -> Vec<Family> {
    match parse_text(s.as_bytes()) {
        Ok(f) => f,
        Err(e) => panic!("unexpected error for {s:?}: {e}"),
    }
}

/// Asserts an error on `line` whose message contains `fragment`.
#[test]
fn utf8_names_quoted_as_pushgateway_1_11_reads_them() {
    let text = "# HELP \"my.c\" help text\n# TYPE \"my.c\" counter\n\
                {\"my.c\",\"label.name\"=\"v\",job=\"j\"} 3\n\
                \"q.name\"{a=\"b\"} 1\n\
                \"bare.name\" 2\n\
                {\"only.name\"} 4\n\
                # TYPE \"t.h\" histogram\n\
                {\"t.h_bucket\",le=\"1\"} 1\n{\"t.h_count\"} 1\n{\"t.h_sum\"} 0.5\n\
                plain{\"ü\"=\"x\"} 5\n";
    let fams = parse_text_names(text.as_bytes(), true).unwrap();
    let names: Vec<&str> = fams.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["my.c", "q.name", "bare.name", "only.name", "t.h", "plain"]
    );
    assert_eq!(fams[0].help.as_deref(), Some("help text"));
    assert_eq!(fams[0].kind, MetricType::Counter);
    assert_eq!(
        fams[0].metrics[0].labels,
        labels(&[("label.name", "v"), ("job", "j")])
    );
    assert_eq!(fams[0].metrics[0].value, Value::Simple(3.0));
    assert_eq!(fams[3].metrics[0].labels, labels(&[]));
    assert_eq!(
        fams[4].metrics[0].value,
        Value::Histogram(Histogram {
            sample_count: 1.0,
            sample_sum: 0.5,
            buckets: vec![(1.0, 1.0)],
            native: None,
            exemplars: None,
        })
    );
    assert_eq!(fams[5].metrics[0].labels, labels(&[("ü", "x")]));

    let err = |text: &str, fragment: &str| {
        let e = parse_text_names(text.as_bytes(), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains(fragment), "{text:?}: {e}");
    };
    err("{\"a\",\"b\"} 1\n", "multiple metric names");
    err("{\"a.b\" 1\n", "unexpected end of metric name");
    err("m{a.b=\"1\"} 1\n", "expected '=' after label name");
    err("{\"a\nb\"} 1\n", "unescaped new-line");
    err("{\"a\\\"b\"} 1\n", "escape sequences");
    err("{\"\"} 1\n", "invalid metric name");
    err("m{\"\"=\"x\"} 1\n", "invalid label name");
    err("m{\"__name__\"=\"x\"} 1\n", "reserved");
    // A quoted name that ends the input: an error, not a panic (found by
    // the fuzzer; the unquoted name ends the same way).
    err("# HELP \"a\"", "unexpected end of input");
    err("# TYPE \"a\"", "unexpected end of input");
    assert!(parse_text(b"# HELP a").is_err());
    // Without utf8_names, as the 1.5.1 parser: quotes are an error.
    for text in ["{\"my.c\"} 1\n", "\"my_c\" 1\n", "m{\"a\"=\"1\"} 1\n"] {
        assert!(parse_text(text.as_bytes()).is_err(), "{text}");
    }
}

fn parse_err(s: &str, line: usize, fragment: &str) {
    parse_bytes_err(s.as_bytes(), line, fragment)
}

fn parse_bytes_err(s: &[u8], line: usize, fragment: &str) {
    match parse_text(s) {
        Ok(f) => panic!("expected error for {s:?}, got {f:?}"),
        Err(e) => {
            assert_eq!(e.line, Some(line), "line of {e} for {s:?}");
            assert!(
                e.message.contains(fragment),
                "error {e:?} for {s:?} lacks {fragment:?}"
            );
        }
    }
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(LabelStr, LabelStr)> {
    pairs
        .iter()
        .map(|(n, v)| (LabelStr::from(*n), LabelStr::from(*v)))
        .collect()
}

fn simple(pairs: &[(&str, &str)], value: f64, ts: Option<i64>) -> Metric {
    Metric {
        labels: labels(pairs),
        value: Value::Simple(value),
        timestamp_ms: ts,
        exemplar: None,
    }
}

fn single_value(s: &str) -> f64 {
    let fams = parse(s);
    match &fams[0].metrics[0].value {
        Value::Simple(v) => *v,
        other => panic!("not simple: {other:?}"),
    }
}

// ---- valid input --------------------------------------------------

#[test]
fn empty_and_blank_bodies() {
    assert!(parse("").is_empty());
    assert!(parse("\n\n").is_empty());
    assert!(parse("  \t\n").is_empty());
    // A last line of only blanks needs no newline (Go accepts it).
    assert!(parse("   ").is_empty());
    assert_eq!(parse("a 1\n  \t").len(), 1);
}

#[test]
fn counter_gauge_untyped() {
    let fams = parse(
        "# HELP c A counter.\n# TYPE c counter\nc{a=\"1\"} 3\nc{a=\"2\"} 4\n\
         # TYPE g gauge\ng -1.5\nu 7\n",
    );
    assert_eq!(
        fams,
        vec![
            Family {
                name: "c".into(),
                help: Some("A counter.".into()),
                kind: MetricType::Counter,
                metrics: vec![
                    simple(&[("a", "1")], 3.0, None),
                    simple(&[("a", "2")], 4.0, None)
                ],
            },
            Family {
                name: "g".into(),
                help: None,
                kind: MetricType::Gauge,
                metrics: vec![simple(&[], -1.5, None)],
            },
            Family {
                name: "u".into(),
                help: None,
                kind: MetricType::Untyped,
                metrics: vec![simple(&[], 7.0, None)],
            },
        ]
    );
}

#[test]
fn type_keyword_case_and_spelling() {
    for (word, kind) in [
        ("counter", MetricType::Counter),
        ("GAUGE", MetricType::Gauge),
        ("Summary", MetricType::Summary),
        ("uNtYpEd", MetricType::Untyped),
        ("histogram", MetricType::Histogram),
        ("gauge_histogram", MetricType::GaugeHistogram),
        ("GAUGE_HISTOGRAM", MetricType::GaugeHistogram),
        // Go's strings.ToUpper maps these two non-ASCII letters to ASCII.
        ("ſummary", MetricType::Summary),
        ("hıstogram", MetricType::Histogram),
        // Go drops backslashes from the TYPE keyword.
        ("S\\UMMARY", MetricType::Summary),
        ("\\counter\\", MetricType::Counter),
    ] {
        let body = format!("# TYPE x {word}\nx 1\n");
        let fams = parse(&body);
        assert_eq!(fams[0].kind, kind, "{word}");
    }
}

#[test]
fn samples_after_type_only() {
    let fams = parse("# TYPE x gauge\nx 1\n");
    assert_eq!(fams[0].kind, MetricType::Gauge);
    assert_eq!(fams[0].help, None);
}

#[test]
fn help_escapes_and_trailing_space() {
    let fams = parse("# HELP x a\\\\b\\nc \"q\"  \nx 1\n");
    assert_eq!(fams[0].help.as_deref(), Some("a\\b\nc \"q\"  "));
    // UTF-8 help text is fine.
    let fams = parse("# HELP x héllo\nx 1\n");
    assert_eq!(fams[0].help.as_deref(), Some("héllo"));
    // Tabs separate the keyword and the name too; the help may come first
    // or after TYPE.
    let fams = parse("#\tTYPE\tx\tcounter\n#HELP x  text\nx 1\n");
    assert_eq!(fams[0].help.as_deref(), Some("text"));
    assert_eq!(fams[0].kind, MetricType::Counter);
}

#[test]
fn comments_ignored() {
    let fams = parse(
        "# just a comment\n#\n# \n#foo bar baz\n# HELP\n# TYPE\n# HELP x\n\
         # TYPE x\n# HELP x   \n  # indented comment\nx 1\n# trailing {}\"\\ stuff\n",
    );
    assert_eq!(fams.len(), 1);
    assert_eq!(fams[0].help, None);
    assert_eq!(fams[0].kind, MetricType::Untyped);
    // Comment keywords are case-sensitive: lowercase help is a comment.
    let fams = parse("# help x foo\n# type x counter\nx 1\n");
    assert_eq!(fams[0].help, None);
    assert_eq!(fams[0].kind, MetricType::Untyped);
}

#[test]
fn families_without_samples_dropped() {
    let fams = parse("# HELP a foo\n# TYPE a counter\n# TYPE b gauge\nc 1\n");
    assert_eq!(fams.len(), 1);
    assert_eq!(fams[0].name, "c");
}

#[test]
fn whitespace_variants() {
    let expected = simple(&[("a", "x"), ("b", "y")], 1.0, None);
    for body in [
        "m{a=\"x\",b=\"y\"} 1\n",
        "  m{a=\"x\",b=\"y\"} 1\n",
        "\tm {a=\"x\",b=\"y\"}\t1\n",
        "m{ a = \"x\" , b = \"y\" } 1\n",
        "m{\ta\t=\t\"x\"\t,\tb=\"y\"\t}\t1\n",
        "m{a=\"x\",b=\"y\",} 1\n",
        "m{a=\"x\",b=\"y\" , } 1\n",
        "m{a=\"x\",b=\"y\"}1\n",
        "m   {a=\"x\",b=\"y\"}    1\n",
    ] {
        let fams = parse(body);
        assert_eq!(fams[0].metrics, vec![expected.clone()], "{body:?}");
    }
    let fams = parse("m{} 1\nm { } 2\nm{}3\n");
    assert_eq!(
        fams[0].metrics,
        vec![
            simple(&[], 1.0, None),
            simple(&[], 2.0, None),
            simple(&[], 3.0, None)
        ]
    );
}

#[test]
fn label_value_escapes() {
    let fams = parse("m{a=\"q\\\"b\\\\s\\nn\",b=\"\",c=\"ü{},=\"} 1\n");
    assert_eq!(
        fams[0].metrics[0].labels,
        labels(&[("a", "q\"b\\s\nn"), ("b", ""), ("c", "ü{},=")])
    );
}

#[test]
fn names_with_colons_and_underscores() {
    let fams = parse("a:b_c:9 1\n_x{_l1=\"v\"} 2\n:y 3\n");
    let names: Vec<_> = fams.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["a:b_c:9", "_x", ":y"]);
    assert_eq!(fams[1].metrics[0].labels, labels(&[("_l1", "v")]));
}

#[test]
fn float_values() {
    for (text, value) in [
        ("1", 1.0),
        ("-1", -1.0),
        ("+1", 1.0),
        ("1.5", 1.5),
        ("1.", 1.0),
        (".5", 0.5),
        ("-.5e-3", -0.0005),
        ("1e3", 1000.0),
        ("1E+3", 1000.0),
        ("00012", 12.0),
        ("123456789012345678901234567890", 1.2345678901234568e29),
        ("1e-400", 0.0), // underflow is not an error in Go
        ("0e999999", 0.0),
        ("+Inf", f64::INFINITY),
        ("-Inf", f64::NEG_INFINITY),
        ("Inf", f64::INFINITY),
        ("inf", f64::INFINITY),
        ("iNfInItY", f64::INFINITY),
        ("-infinity", f64::NEG_INFINITY),
    ] {
        assert_eq!(single_value(&format!("x {text}\n")), value, "{text}");
    }
    for nan in ["NaN", "nan", "NAN"] {
        assert!(single_value(&format!("x {nan}\n")).is_nan());
    }
}

#[test]
fn timestamps() {
    let fams = parse("x 1 1234567890123\ny 2 -5\nz 3 +7\nw{a=\"b\"} 4\t\t0\n");
    assert_eq!(fams[0].metrics[0].timestamp_ms, Some(1234567890123));
    assert_eq!(fams[1].metrics[0].timestamp_ms, Some(-5));
    assert_eq!(fams[2].metrics[0].timestamp_ms, Some(7));
    assert_eq!(fams[3].metrics[0].timestamp_ms, Some(0));
    let fams = parse("x 1 9223372036854775807\ny 1 -9223372036854775808\n");
    assert_eq!(fams[0].metrics[0].timestamp_ms, Some(i64::MAX));
    assert_eq!(fams[1].metrics[0].timestamp_ms, Some(i64::MIN));
}

#[test]
fn summary() {
    let fams = parse(
        "# HELP rpc RPC latency.\n# TYPE rpc summary\n\
         rpc{svc=\"a\",quantile=\"0.5\"} 1.5\n\
         rpc{quantile=\"0.9\",svc=\"a\"} 2.5\n\
         rpc_sum{svc=\"a\"} 100\n\
         rpc_count{svc=\"a\"} 42.9\n\
         rpc{svc=\"b\",quantile=\"0.5\"} 3\n\
         rpc_count{svc=\"b\"} 1\n",
    );
    assert_eq!(fams.len(), 1);
    let f = &fams[0];
    assert_eq!(f.name, "rpc");
    assert_eq!(f.help.as_deref(), Some("RPC latency."));
    assert_eq!(f.kind, MetricType::Summary);
    assert_eq!(
        f.metrics,
        vec![
            Metric {
                labels: labels(&[("svc", "a")]),
                value: Value::Summary(Summary {
                    sample_count: 42.0,
                    sample_sum: 100.0,
                    quantiles: vec![(0.5, 1.5), (0.9, 2.5)],
                }),
                timestamp_ms: None,
                exemplar: None,
            },
            Metric {
                labels: labels(&[("svc", "b")]),
                value: Value::Summary(Summary {
                    sample_count: 1.0,
                    sample_sum: 0.0,
                    quantiles: vec![(0.5, 3.0)],
                }),
                timestamp_ms: None,
                exemplar: None,
            },
        ]
    );
}

#[test]
fn summary_grouping_ignores_label_order_and_interleaving() {
    let fams = parse(
        "# TYPE s summary\n\
         s{a=\"1\",b=\"2\",quantile=\"0.1\"} 1\n\
         s{a=\"3\",b=\"4\",quantile=\"0.1\"} 2\n\
         s_sum{b=\"2\",a=\"1\"} 5\n\
         s_sum{b=\"4\",a=\"3\"} 6\n",
    );
    let m = &fams[0].metrics;
    assert_eq!(m.len(), 2);
    // Labels keep the order of the metric's first line.
    assert_eq!(m[0].labels, labels(&[("a", "1"), ("b", "2")]));
    assert_eq!(
        m[0].value,
        Value::Summary(Summary {
            sample_count: 0.0,
            sample_sum: 5.0,
            quantiles: vec![(0.1, 1.0)]
        })
    );
    assert_eq!(
        m[1].value,
        Value::Summary(Summary {
            sample_count: 0.0,
            sample_sum: 6.0,
            quantiles: vec![(0.1, 2.0)]
        })
    );
}

#[test]
fn summary_edge_cases() {
    // No quantile: the metric exists (as in Go) but the value is dropped.
    // A NaN quantile is dropped too. `le` is an ordinary label here.
    let fams = parse(
        "# TYPE s summary\ns 5\ns{quantile=\"NaN\"} 6\ns{le=\"1\",quantile=\"+Inf\"} 7\n\
         s_count -3\n",
    );
    let m = &fams[0].metrics;
    assert_eq!(m.len(), 2);
    assert_eq!(
        m[0],
        Metric {
            labels: vec![],
            value: Value::Summary(Summary::default()),
            timestamp_ms: None,
            exemplar: None
        }
    );
    assert_eq!(m[1].labels, labels(&[("le", "1")]));
    assert_eq!(
        m[1].value,
        Value::Summary(Summary {
            quantiles: vec![(f64::INFINITY, 7.0)],
            ..Summary::default()
        })
    );
    // The count of the first metric is uint64(-3), i.e. 0 here.
    let fams = parse("# TYPE s summary\ns_count{a=\"b\"} NaN\ns_count 1e30\n");
    let m = &fams[0].metrics;
    match (&m[0].value, &m[1].value) {
        (Value::Summary(a), Value::Summary(b)) => {
            assert_eq!(a.sample_count, 0.0);
            assert_eq!(b.sample_count, u64::MAX as f64);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn histogram() {
    let fams = parse(
        "# HELP h Sizes.\n# TYPE h histogram\n\
         h_bucket{le=\"0.1\"} 1\n\
         h_bucket{le=\"1\"} 2.7\n\
         h_bucket{le=\"+Inf\"} 3\n\
         h_sum 1.25\n\
         h_count 3\n\
         h_bucket{path=\"/x\",le=\"1\"} 5\n",
    );
    assert_eq!(fams.len(), 1);
    assert_eq!(fams[0].kind, MetricType::Histogram);
    assert_eq!(
        fams[0].metrics,
        vec![
            Metric {
                labels: vec![],
                value: Value::Histogram(Histogram {
                    sample_count: 3.0,
                    sample_sum: 1.25,
                    buckets: vec![(0.1, 1.0), (1.0, 2.0), (f64::INFINITY, 3.0)],
                    native: None,
                    exemplars: None,
                }),
                timestamp_ms: None,
                exemplar: None,
            },
            Metric {
                labels: labels(&[("path", "/x")]),
                value: Value::Histogram(Histogram {
                    buckets: vec![(1.0, 5.0)],
                    ..Histogram::default()
                }),
                timestamp_ms: None,
                exemplar: None,
            },
        ]
    );
}

#[test]
fn histogram_edge_cases() {
    // `h{le=..}` also adds a bucket (Go does the same); no le: dropped;
    // `quantile` is an ordinary label on a histogram.
    let fams = parse(
        "# TYPE h histogram\nh{le=\"5\"} 1\nh_bucket 9\nh_bucket{quantile=\"x\",le=\"1\"} 2\n",
    );
    let m = &fams[0].metrics;
    assert_eq!(m.len(), 2);
    assert_eq!(
        m[0].value,
        Value::Histogram(Histogram {
            buckets: vec![(5.0, 1.0)],
            ..Histogram::default()
        })
    );
    assert_eq!(m[1].labels, labels(&[("quantile", "x")]));
}

#[test]
fn gauge_histogram() {
    let fams = parse(
        "# TYPE q gauge_histogram\nq_bucket{le=\"1\"} 1\nq_bucket{le=\"+Inf\"} 2\n\
         q_sum 3\nq_count 2\n",
    );
    assert_eq!(fams.len(), 1);
    assert_eq!(fams[0].kind, MetricType::GaugeHistogram);
    assert_eq!(
        fams[0].metrics[0].value,
        Value::Histogram(Histogram {
            sample_count: 2.0,
            sample_sum: 3.0,
            buckets: vec![(1.0, 1.0), (f64::INFINITY, 2.0)],
            native: None,
            exemplars: None,
        })
    );
}

#[test]
fn suffixes_without_matching_family_are_own_families() {
    // x is untyped, so x_count and x_sum are families of their own; a
    // summary does not take _bucket lines.
    let fams = parse("x 1\nx_count 2\nx_sum 3\n# TYPE s summary\ns_bucket 1\n");
    let names: Vec<_> = fams.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["x", "x_count", "x_sum", "s_bucket"]);
    assert!(fams.iter().all(|f| f.kind == MetricType::Untyped));
    // Before its TYPE line, a summary's family does not take _sum lines.
    let fams = parse("y_sum 1\n# TYPE y summary\ny_count 1\n");
    let names: Vec<_> = fams.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["y_sum", "y"]);
    // Bare suffixes are names, not suffixes.
    let fams = parse("_count 1\n_sum 1\n_bucket 1\n");
    assert_eq!(fams.len(), 3);
}

#[test]
fn help_and_type_through_suffix_names() {
    // As in Go, a HELP for s_count lands on the summary s.
    let fams = parse("# TYPE s summary\n# HELP s_count Via count.\ns_count 1\n");
    assert_eq!(fams.len(), 1);
    assert_eq!(fams[0].help.as_deref(), Some("Via count."));
}

#[test]
fn summary_and_histogram_timestamps() {
    let fams = parse(
        "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2 100\ns_count 3 200\n\
         # TYPE h histogram\nh_bucket{le=\"1\"} 1 50\nh_count 1 60\n",
    );
    assert_eq!(fams[0].metrics[0].timestamp_ms, Some(100));
    assert_eq!(fams[1].metrics[0].timestamp_ms, Some(50));
}

#[test]
fn family_order_and_metric_order() {
    let fams = parse("b 1\na{x=\"2\"} 1\na{x=\"1\"} 1\nc 1\n");
    let names: Vec<_> = fams.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["b", "a", "c"]);
    assert_eq!(fams[1].metrics[0].labels, labels(&[("x", "2")]));
    // Duplicate samples are kept (as Go does).
    assert_eq!(parse("a 1\na 2\n")[0].metrics.len(), 2);
}

#[test]
fn duplicate_quantile_label_last_wins() {
    // Go only checks real labels for duplicates; quantile and le are not.
    let fams = parse("# TYPE s summary\ns{quantile=\"0.1\",quantile=\"0.2\"} 1\n");
    assert_eq!(
        fams[0].metrics[0].value,
        Value::Summary(Summary {
            quantiles: vec![(0.2, 1.0)],
            ..Summary::default()
        })
    );
}

#[test]
fn many_label_sets_in_one_histogram() {
    let mut body = String::from("# TYPE h histogram\n");
    for i in 0..50 {
        body.push_str(&format!("h_bucket{{i=\"{i}\",le=\"1\"}} {i}\n"));
    }
    for i in 0..50 {
        body.push_str(&format!("h_count{{i=\"{i}\"}} {i}\n"));
    }
    let fams = parse(&body);
    assert_eq!(fams[0].metrics.len(), 50);
    for (i, m) in fams[0].metrics.iter().enumerate() {
        assert_eq!(m.labels, labels(&[("i", &i.to_string())]));
        match &m.value {
            Value::Histogram(h) => {
                assert_eq!(h.sample_count, i as f64);
                assert_eq!(h.buckets, vec![(1.0, i as f64)]);
            }
            other => panic!("{other:?}"),
        }
    }
}

// ---- errors -------------------------------------------------------

#[test]
fn missing_final_newline() {
    parse_err("a 1", 1, "unexpected end of input stream");
    parse_err("a 1\nb 2", 2, "unexpected end of input stream");
    parse_err("a 1 2", 1, "unexpected end of input stream");
    parse_err("a", 1, "unexpected end of input stream");
    parse_err("a{", 1, "unexpected end of input stream");
    parse_err("a{b", 1, "unexpected end of input stream");
    parse_err("a{b=", 1, "unexpected end of input stream");
    parse_err("a{b=\"c", 1, "unexpected end of input stream");
    parse_err("a{b=\"c\\", 1, "unexpected end of input stream");
    parse_err("a{b=\"c\"", 1, "unexpected end of input stream");
    parse_err("a{b=\"c\"}", 1, "unexpected end of input stream");
    parse_err("a{b=\"c\"} ", 1, "unexpected end of input stream");
    parse_err("#", 1, "unexpected end of input stream");
    parse_err("# ", 1, "unexpected end of input stream");
    parse_err("# comment", 1, "unexpected end of input stream");
    parse_err("# comment and more", 1, "unexpected end of input stream");
    parse_err("# HELP", 1, "unexpected end of input stream");
    parse_err("# HELP x", 1, "unexpected end of input stream");
    parse_err("# HELP x ", 1, "unexpected end of input stream");
    parse_err("# HELP x text", 1, "unexpected end of input stream");
    parse_err("# TYPE x counter", 1, "unexpected end of input stream");
    parse_err("\n\nx 1\n\n# TYPE x", 5, "unexpected end of input stream");
}

#[test]
fn invalid_metric_names() {
    parse_err("1a 1\n", 1, "invalid metric name");
    parse_err("ok 1\n{a=\"b\"} 1\n", 2, "invalid metric name");
    parse_err("-x 1\n", 1, "invalid metric name");
    parse_err("é 1\n", 1, "invalid metric name");
    // The name stops at the first bad byte, which is then read as value.
    parse_err("a-b 1\n", 1, "expected float as value, got \"-b\"");
    parse_err("a.b 1\n", 1, "expected float as value, got \".b\"");
    parse_err("# HELP 1x foo\n", 1, "invalid metric name in comment");
    parse_err("# TYPE x-y counter\n", 1, "invalid metric name in comment");
    parse_err("# TYPE x{} counter\n", 1, "invalid metric name in comment");
}

#[test]
fn second_help_and_type() {
    parse_err(
        "# HELP x a\n# HELP x b\nx 1\n",
        2,
        "second HELP line for metric name \"x\"",
    );
    parse_err(
        "# TYPE x gauge\n# TYPE x counter\n",
        2,
        "second TYPE line for metric name \"x\", or TYPE reported after samples",
    );
    // The implicit untyped of a sample counts as a TYPE.
    parse_err("x 1\n# TYPE x counter\n", 2, "second TYPE line");
    // Through a suffix resolution, too.
    parse_err(
        "# TYPE s summary\n# TYPE s_sum gauge\n",
        2,
        "second TYPE line for metric name \"s\"",
    );
    parse_err(
        "# TYPE s summary\n# HELP s a\n# HELP s_count b\n",
        3,
        "second HELP line",
    );
}

#[test]
fn unknown_types() {
    for t in [
        "gaugehistogram",
        "counter ",
        "counters",
        "int",
        "gauge\t",
        "info",
        "stateset",
        "unknown",
        "histogrammm",
        "cöunter",
    ] {
        parse_err(&format!("# TYPE x {t}\n"), 1, "unknown metric type");
    }
    parse_bytes_err(b"# TYPE x gau\xffge\n", 1, "unknown metric type");
}

#[test]
fn help_escape_errors() {
    parse_err("# HELP x a\\tb\n", 1, "invalid escape sequence '\\t'");
    parse_err("x 1\n# HELP y a\\\"\n", 2, "invalid escape sequence '\\\"'");
    // A backslash right before the newline escapes the newline: invalid.
    parse_err("# HELP x a\\\n", 1, "invalid escape sequence");
    // An invalid escape is reported before the missing final newline.
    parse_err("# HELP x a\\q", 1, "invalid escape sequence '\\q'");
    parse_bytes_err(b"# HELP x \xff\xfe\nx 1\n", 1, "UTF-8");
}

#[test]
fn label_errors() {
    parse_err(
        "x{__name__=\"y\"} 1\n",
        1,
        "label name \"__name__\" is reserved",
    );
    parse_err(
        "x{a=\"1\",a=\"2\"} 1\n",
        1,
        "duplicate label names for metric \"x\"",
    );
    parse_err("x{a=\"1\",b=\"2\",a=\"1\"} 1\n", 1, "duplicate label names");
    parse_err(
        "# TYPE s summary\ns{a=\"1\",a=\"1\",quantile=\"0.5\"} 1\n",
        2,
        "duplicate label names",
    );
    parse_err("x{1a=\"1\"} 1\n", 1, "invalid label name for metric \"x\"");
    parse_err("x{,} 1\n", 1, "invalid label name");
    parse_err("x{a=\"1\",,} 1\n", 1, "invalid label name");
    parse_err(
        "x{a:b=\"1\"} 1\n",
        1,
        "expected '=' after label name, found ':'",
    );
    parse_err("x{a} 1\n", 1, "expected '=' after label name");
    parse_err("x{a b=\"1\"} 1\n", 1, "expected '=' after label name");
    parse_err(
        "x{a=1} 1\n",
        1,
        "expected '\"' at start of label value, found '1'",
    );
    parse_err("x{a='1'} 1\n", 1, "expected '\"' at start of label value");
    parse_err(
        "x{a=\"1\" b=\"2\"} 1\n",
        1,
        "unexpected end of label value \"1\"",
    );
    parse_err("x{a=\"1\"x} 1\n", 1, "unexpected end of label value");
    parse_err("x{a=\"1\\t\"} 1\n", 1, "invalid escape sequence '\\t'");
    parse_err(
        "x 1\nx{a=\"1\n\"} 1\n",
        2,
        "label value \"1\" contains unescaped new-line",
    );
    parse_err("x{a=\"\\\\\n\"} 1\n", 1, "contains unescaped new-line");
    parse_bytes_err(b"x{a=\"\xff\"} 1\n", 1, "invalid label value");
    parse_bytes_err(b"x{a=\"\\n\xc3\"} 1\n", 1, "invalid label value");
}

#[test]
fn quantile_and_le_must_be_floats() {
    parse_err(
        "# TYPE s summary\ns{quantile=\"high\"} 1\n",
        2,
        "expected float as value for 'quantile' label, got \"high\"",
    );
    parse_err(
        "# TYPE h histogram\nh_bucket{le=\"1_0\"} 1\n",
        2,
        "expected float as value for 'le' label",
    );
    parse_err(
        "# TYPE h gauge_histogram\nh_bucket{le=\"\"} 1\n",
        2,
        "expected float as value for 'le' label",
    );
    // On other types they are plain labels.
    assert_eq!(
        parse("g{le=\"x\",quantile=\"y\"} 1\n")[0].metrics[0]
            .labels
            .len(),
        2
    );
}

#[test]
fn value_errors() {
    for v in [
        "", "abc", "1x", "0x10", "0x1p3", "1p3", "1P3", "1_000", "+nan", "-NaN", "nan1", "infin",
        "info", "++1", "1e", "1e+", ".", "-", "e5", "1.2.3", "1e400", "-1e400", "1,5", "\"1\"",
    ] {
        parse_err(&format!("x {v}\n"), 1, "expected float as value");
    }
    parse_err("x\n", 1, "expected float as value, got \"\"");
    parse_err("x{}\n", 1, "expected float as value, got \"\"");
    parse_err("x 1\r\n", 1, "expected float as value, got \"1\\r\"");
}

#[test]
fn timestamp_errors() {
    parse_err("x 1 \n", 1, "expected integer as timestamp, got \"\"");
    parse_err("x 1\t\n", 1, "expected integer as timestamp, got \"\"");
    for ts in [
        "1.5",
        "1e3",
        "abc",
        "1_000",
        "9223372036854775808",
        "--1",
        "+",
        "0x10",
    ] {
        parse_err(&format!("x 1 {ts}\n"), 1, "expected integer as timestamp");
    }
    parse_err("x 1 2 \n", 1, "spurious string after timestamp: \" \"");
    parse_err("x 1 2 3\n", 1, "spurious string after timestamp: \" 3\"");
    parse_err("x 1 2\t#c\n", 1, "spurious string after timestamp");
    parse_err("x 1 2 \\\n", 1, "spurious string after timestamp: \" \"");
}

#[test]
fn non_contiguous_families() {
    parse_err(
        "a 1\nb 1\na 2\n",
        3,
        "metric family \"a\" appears twice: its lines must be contiguous",
    );
    parse_err(
        "# HELP a x\nb 1\n# TYPE a gauge\n",
        3,
        "metric family \"a\" appears twice",
    );
    parse_err(
        "# HELP a x\nb 1\na 1\n",
        3,
        "metric family \"a\" appears twice",
    );
    // Lines of x_sum/x_count/x_bucket belong to x.
    parse_err(
        "# TYPE s summary\ns_sum 1\nb 1\ns_count 1\n",
        4,
        "metric family \"s\" appears twice",
    );
    parse_err(
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nb 1\nh_bucket{le=\"2\"} 1\n",
        4,
        "metric family \"h\" appears twice",
    );
    // ... but only when x is a summary or histogram.
    parse_err(
        "x 1\nx_count 1\nx 2\n",
        3,
        "metric family \"x\" appears twice",
    );
    // Comments and blank lines do not interrupt a family.
    let fams = parse("a 1\n\n# other comment\n# HELP\na 2\n");
    assert_eq!(fams[0].metrics.len(), 2);
    // A HELP line with only a name creates no family and so ends none.
    let fams = parse("a 1\n# HELP b\na 2\n");
    assert_eq!(fams.len(), 1);
}

#[test]
fn error_line_numbers_count_blank_and_comment_lines() {
    parse_err("\n# c\n  \n\nx{a=1} 1\n", 5, "expected '\"'");
    parse_err("a 1\nb 2\nc 3\nd ?\n", 4, "expected float");
}

#[test]
fn parse_float_matches_go_grammar() {
    assert!(is_decimal_float(b"1"));
    assert!(is_decimal_float(b"1.e5"));
    assert!(is_decimal_float(b".5E-1"));
    assert!(!is_decimal_float(b""));
    assert!(!is_decimal_float(b"."));
    assert!(!is_decimal_float(b".e1"));
    assert!(!is_decimal_float(b"1e"));
    assert!(!is_decimal_float(b"1e-"));
    assert_eq!(parse_float(b"1.e1"), Some(10.0));
    assert_eq!(parse_float(b"999999999999999"), Some(999_999_999_999_999.0));
    assert_eq!(parse_float(b"1e308"), Some(1e308));
    assert_eq!(parse_float(b"1.8e308"), None);
    assert_eq!(parse_float(b"-0"), Some(0.0));
    assert!(parse_float(b"-0").unwrap().is_sign_negative());
    assert!(parse_float(b"-0.0").unwrap().is_sign_negative());
}

#[test]
fn short_decimal_fast_path_agrees_with_full_conversion() {
    let mut cases: Vec<String> = [
        "0",
        "1",
        "-1",
        "+1",
        "0.1",
        "0.2",
        "0.3",
        "1.",
        ".5",
        "-.5",
        "0.005",
        "2.5",
        "123456789012345",
        "1234567.89012345",
        ".000000000000001",
        "9007199254740993",
        "0.30000000000000004",
        "999999999999999",
        "-0.000123",
        "00000000000001.5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // A deterministic spread of digit strings and dot positions.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let digits = (x % 15 + 1) as usize;
        let mut s: String = (0..digits)
            .map(|i| char::from(b'0' + ((x >> (i * 4)) % 10) as u8))
            .collect();
        let dot = (x >> 60) as usize % (digits + 1);
        s.insert(dot, '.');
        cases.push(s);
    }
    for case in cases {
        let full: Option<f64> = case.parse().ok();
        let fast = parse_short_decimal(case.as_bytes());
        if let Some(fast) = fast {
            assert_eq!(Some(fast.to_bits()), full.map(f64::to_bits), "{case}");
        }
        assert_eq!(
            parse_float(case.as_bytes()).map(f64::to_bits),
            full.map(f64::to_bits),
            "{case}"
        );
    }
    assert_eq!(parse_short_decimal(b"1e5"), None);
    assert_eq!(parse_short_decimal(b"."), None);
    assert_eq!(parse_short_decimal(b"1.2.3"), None);
    assert_eq!(parse_short_decimal(b"1234567890123456"), None);
}
