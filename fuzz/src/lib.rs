//! The fuzz targets' drivers: one function per target, taking the raw
//! input. A driver panics only on a bug: a panic inside pushkit, or one of
//! the invariants it checks broken. Every other outcome (an input refused
//! with an error) is a pass.
//!
//! `fuzz_targets/*.rs` call these, and the root crate's
//! `tests/fuzz_regressions.rs` includes this file by path to replay the
//! saved inputs through the same code under plain `cargo test`. So this
//! file uses only `pushkit` (built here without `net`), `tokio`, `base64`
//! and `std`, all of which the root crate's tests have too.
//!
//! Input formats (`fuzz/README.md` has examples):
//! - `text_parser`, `protobuf_decoder`: the body.
//! - `grouping_key`: the URL path after the route prefix.
//! - `body_decoder`: the `Content-Encoding` value, `\n`, the body (without
//!   a `\n`, the whole input is the body and the header is absent).
//! - `push_path`: see [`push_path`].

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use pushkit::config::IoConfig;
use pushkit::convert::{Mapping, Naming};
use pushkit::expfmt::expose::{ExpositionFormat, ExpositionWriter, NameEscaping};
use pushkit::expfmt::{parse_delimited_names, parse_text_names, write_delimited};
use pushkit::http::error::ErrorCode;
use pushkit::http::inflight::InflightBudget;
use pushkit::metrics::Metrics;
use pushkit::model::family::{duplicate_series, Family, MetricType};
use pushkit::model::names::{escape_values, is_valid_label_name_with, unescape_values, NameKind};
use pushkit::model::GroupingKey;
use pushkit::pushgateway::body::{decode_content, parse_families};
use pushkit::pushgateway::grouping::parse_push_path;
use pushkit::pushgateway::limits::PushLimits;
use pushkit::pushgateway::push::{grouping_error, PushMethod, PushRequest, PushgatewayInput};
use pushkit::sink::stdout::LineOutput;
use pushkit::sink::SinkSet;
use pushkit::store::{Store, StoreOptions, DEFAULT_SNAPSHOT_AFTER_BYTES};
use std::collections::HashSet;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A target's driver: it panics on a bug, and only then.
pub type Driver = fn(&[u8]);

/// Every target by name, as the directories under `fuzz/seeds/` and
/// `fuzz/regressions/` are named.
pub const TARGETS: &[(&str, Driver)] = &[
    ("text_parser", text_parser),
    ("protobuf_decoder", protobuf_decoder),
    ("grouping_key", grouping_key),
    ("body_decoder", body_decoder),
    ("push_path", push_path),
];

/// The `Content-Type` of a delimited-protobuf push.
pub const PROTOBUF: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// The decompression cap the drivers use (the agent's default is larger;
/// a smaller one keeps a decompression bomb from slowing the fuzzer).
const MAX_DECOMPRESSED: u64 = 1 << 20;

fn lossy(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// `families` written as `GET /metrics` writes them (with `utf8`, names
/// that are not legacy names quoted, as `escaping=allow-utf-8` asks).
fn expose(families: &[Family], format: ExpositionFormat, utf8: bool) -> Vec<u8> {
    let mut w = ExpositionWriter::new(format).with_names(escaping(utf8));
    for f in families {
        w.write_family(&f.name, f.help.as_deref(), f.kind, f.metrics.iter());
    }
    w.finish()
}

/// Whether pushkit's text parser can read these names back from a text
/// exposition. Two kinds of name, which only pushes with `utf8_names`
/// bring in, it cannot:
/// - a name with `\`, `"` or a newline (protobuf pushes only): the parser
///   refuses escape sequences in quoted names, which Prometheus reads;
/// - a label name with `:`: the writer quotes a label name only when it is
///   not a legacy *metric* name, as Go's `writeName` does, so `a:b` goes
///   out bare, which no parser reads as a label name (reported).
fn names_read_back_as_text(families: &[Family]) -> bool {
    let plain = |n: &str| !n.contains(['\\', '"', '\n']);
    families.iter().all(|f| {
        plain(&f.name)
            && f.metrics
                .iter()
                .all(|m| m.labels.iter().all(|(k, _)| plain(k) && !k.contains(':')))
    })
}

/// A family named as a line of another one's exposition (`x_sum` beside
/// the histogram or summary `x`), if any. The text parser takes such a
/// body, as Go's does, but its exposition then holds lines of one name in
/// two places, which the parser refuses ("appears twice").
fn suffix_collision(families: &[Family]) -> Option<String> {
    let names: HashSet<&str> = families.iter().map(|f| f.name.as_str()).collect();
    families.iter().find_map(|f| {
        let suffixes: &[&str] = match f.kind {
            MetricType::Summary => &["_sum", "_count"],
            MetricType::Histogram | MetricType::GaugeHistogram => &["_bucket", "_sum", "_count"],
            _ => &[],
        };
        suffixes
            .iter()
            .map(|s| format!("{}{s}", f.name))
            .find(|n| names.contains(n.as_str()))
    })
}

fn escaping(utf8: bool) -> NameEscaping {
    if utf8 {
        NameEscaping::AllowUtf8
    } else {
        NameEscaping::AsStored
    }
}

/// The text parser, with and without `utf8_names`. What it accepts, once
/// written as an exposition, parses back, and writes as the same bytes
/// again: a scrape of what was pushed is valid, and stable (unless its
/// names collide, `suffix_collision`, or cannot be read back,
/// `names_read_back_as_text`).
pub fn text_parser(data: &[u8]) {
    for utf8 in [false, true] {
        let Ok(families) = parse_text_names(data, utf8) else {
            continue;
        };
        if suffix_collision(&families).is_some() || !names_read_back_as_text(&families) {
            continue;
        }
        let once = expose(&families, ExpositionFormat::Text, utf8);
        let again = parse_text_names(&once, utf8).unwrap_or_else(|e| {
            panic!(
                "utf8={utf8}: the exposition of a parsed body does not parse: {e}\n{}",
                lossy(&once)
            )
        });
        let twice = expose(&again, ExpositionFormat::Text, utf8);
        assert!(
            once == twice,
            "utf8={utf8}: exposing what the exposition parses to changed it:\n{}\n---\n{}",
            lossy(&once),
            lossy(&twice)
        );
    }
}

/// The delimited-protobuf decoder, as the push path chooses and calls it
/// (`parse_families` with the protobuf `Content-Type`), with and without
/// `utf8_names`. What it accepts, written back as delimited protobuf (as
/// the store's journal writes it) decodes again to the same bytes; and,
/// when it holds no series twice (the store refuses those), no colliding
/// names (`suffix_collision`) and no name the text parser cannot read
/// (`names_read_back_as_text`), its text exposition parses.
pub fn protobuf_decoder(data: &[u8]) {
    for utf8 in [false, true] {
        let Ok(families) = parse_families(Some(PROTOBUF), data, utf8) else {
            continue;
        };
        let mut once = Vec::new();
        write_delimited(&families, &mut once);
        let again = parse_delimited_names(&once, utf8).unwrap_or_else(|e| {
            panic!("utf8={utf8}: the delimited form of a decoded body does not decode: {e}")
        });
        let mut twice = Vec::new();
        write_delimited(&again, &mut twice);
        assert!(
            once == twice,
            "utf8={utf8}: re-encoding what the encoding decodes to changed it"
        );
        if duplicate_series(&families).is_none()
            && suffix_collision(&families).is_none()
            && names_read_back_as_text(&families)
        {
            let text = expose(&families, ExpositionFormat::Text, utf8);
            if let Err(e) = parse_text_names(&text, utf8) {
                panic!(
                    "utf8={utf8}: the text exposition of a protobuf push does not parse: {e}\n{}",
                    lossy(&text)
                );
            }
        }
    }
}

/// The grouping-key parser (`parse_push_path`, which splits, percent-
/// decodes and calls `parse_grouping_key`), with and without
/// `utf8_names`. A key it returns keeps `GroupingKey`'s invariant (a
/// non-empty `job` first, then unique valid names in order, none reserved),
/// and the key written back as a path, every value in `@base64`, parses to
/// itself.
pub fn grouping_key(data: &[u8]) {
    let path = lossy(data);
    for utf8 in [false, true] {
        let Some(Ok(key)) = parse_push_path(&path, utf8) else {
            continue;
        };
        check_key(&key, utf8);
        if let Some(written) = key_path(&key, utf8) {
            let back = parse_push_path(&written, utf8);
            assert!(
                back == Some(Ok(key.clone())),
                "utf8={utf8}: {path:?} gave {key:?}, written back as {written:?}, which gives {back:?}"
            );
        }
    }
}

fn check_key(key: &GroupingKey, utf8: bool) {
    let labels = key.labels();
    assert!(
        labels[0].0 == "job" && !labels[0].1.is_empty(),
        "no job first: {key:?}"
    );
    for (name, _) in &labels[1..] {
        assert!(
            name != "job" && !name.starts_with("__") && is_valid_label_name_with(name, utf8),
            "label name {name:?} in {key:?}"
        );
    }
    assert!(
        labels[1..].windows(2).all(|w| w[0].0 < w[1].0),
        "labels not sorted or not unique: {key:?}"
    );
}

/// The push path of `key`, every value in `@base64`. None when a name does
/// not survive the `U__` escaping itself: a legacy name that starts with
/// `U__` is sent as it is and read back unescaped, in Prometheus too.
fn key_path(key: &GroupingKey, utf8: bool) -> Option<String> {
    // A lone `=` is the empty value: an empty segment would end the path.
    let b64 = |v: &str| {
        if v.is_empty() {
            "=".to_string()
        } else {
            URL_SAFE_NO_PAD.encode(v)
        }
    };
    let mut path = format!("/metrics/job@base64/{}", b64(key.job()));
    for (name, value) in &key.labels()[1..] {
        let escaped = if utf8 {
            escape_values(name, NameKind::Label)
        } else {
            name.into()
        };
        if utf8 && unescape_values(&escaped) != name.as_str() {
            return None;
        }
        path.push_str(&format!("/{escaped}@base64/{}", b64(value)));
    }
    Some(path)
}

/// The body decoder (`decode_content`: identity, gzip, snappy, anything
/// else refused). A body it decodes is within the cap, and the cap is
/// exact: the same body under a cap of its decoded size decodes the same,
/// and under one byte less is refused as too large. An identity body is
/// the input itself. A refusal is the client's fault (4xx).
pub fn body_decoder(data: &[u8]) {
    let (encoding, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (Some(&data[..i]), &data[i + 1..]),
        None => (None, data),
    };
    // A header value that is not UTF-8 never reaches the decoder.
    let encoding = match encoding.map(std::str::from_utf8) {
        Some(Err(_)) => return,
        Some(Ok(e)) => Some(e),
        None => None,
    };
    let decoded = match decode_content(encoding, body, MAX_DECOMPRESSED) {
        Ok(d) => d,
        Err(e) => {
            assert!(
                (400..500).contains(&e.code.status()),
                "{encoding:?}: {:?} {e}",
                e.code
            );
            return;
        }
    };
    assert!(decoded.len() as u64 <= MAX_DECOMPRESSED);
    let identity = encoding
        .map(str::trim)
        .is_none_or(|e| e.is_empty() || e.eq_ignore_ascii_case("identity"));
    if identity {
        assert_eq!(decoded, body, "identity changed the body");
    }
    let n = decoded.len() as u64;
    let exact = decode_content(encoding, body, n).map_err(|e| e.to_string());
    assert!(
        exact.as_ref() == Ok(&decoded),
        "{encoding:?}: {n} bytes under a cap of {n}: {exact:?}"
    );
    if n > 0 {
        let e = decode_content(encoding, body, n - 1).expect_err("over the cap");
        assert_eq!(
            e.code,
            ErrorCode::DecompressedBodyTooLarge,
            "{encoding:?}: {n} bytes under a cap of {}: {e}",
            n - 1
        );
    }
}

/// At most this many pushes run per input.
const MAX_PUSHES: usize = 8;

/// The push path in process: a fresh agent's pushgateway input (store and
/// stdout sink, no network) takes a sequence of pushes, each handled as
/// `PushgatewayInput::serve` hands a request on once its body is read:
/// route (`parse_push_path`) → decode → parse → limits → convert →
/// the store's prepare and push (its consistency check) → points out.
///
/// Input: one byte of options, then up to [`MAX_PUSHES`] pushes, each one
/// byte of method (`% 3`: PUT, POST, DELETE), the path, `\n`, the
/// `Content-Type`, `\n`, the `Content-Encoding`, `\n` (an empty header is
/// absent), the body's length (u16, little-endian) and the body (cut
/// short where the input ends). Option bits, from bit 0: `utf8_names`;
/// consistency check off; `honor_timestamps`; `job_as_measurement`;
/// `keep_exist_metric_name`; `measurement_name = "pm"`; small push and
/// store limits; store off (a pure forwarder).
///
/// Invariants, after every push:
/// - PUT and POST answer 200, DELETE 202, or a 4xx error (nothing here
///   can be the agent's fault: no disk, no sink).
/// - A refused push changes nothing stored (one refused by the
///   consistency check records only its failure time) and emits no point.
/// - An accepted push's group is stored with this push's time (DELETE:
///   gone), and no more lines are written than points counted.
/// - With the consistency check on: the store's exposition parses back
///   with no series twice, as delimited protobuf, and as text when its
///   names can be read back as text (`names_read_back_as_text`); the
///   index's series and group counts agree with the groups.
pub fn push_path(data: &[u8]) {
    let mut input = Input(data);
    let options = input.byte().unwrap_or(0);
    let bit = |n: u8| options & (1 << n) != 0;
    let utf8 = bit(0);
    let checked = !bit(1);
    let limited = bit(6);
    let store = (!bit(7)).then(|| {
        Arc::new(Store::new(StoreOptions {
            consistency_check: checked,
            utf8_names: utf8,
            max_groups: if limited { 4 } else { 0 },
            max_series: if limited { 64 } else { 0 },
            persistence_dir: None,
            group_ttl: Duration::ZERO,
            snapshot_after_bytes: DEFAULT_SNAPSHOT_AFTER_BYTES,
        }))
    });
    let out = Arc::new(Mutex::new(Vec::new()));
    let lines: LineOutput = Arc::new(Mutex::new(Box::new(Capture(out.clone()))));
    let metrics = Arc::new(Metrics::default());
    let sinks = SinkSet::start(&[], &IoConfig::default(), lines, metrics.clone())
        .expect("the stdout sink starts");
    let agent = PushgatewayInput {
        mapping: Mapping {
            naming: Naming {
                measurement_name: bit(5).then(|| "pm".to_string()),
                job_as_measurement: bit(3),
                keep_exist_metric_name: bit(4),
            },
            honor_timestamps: bit(2),
        },
        max_body_size: MAX_DECOMPRESSED,
        max_decompressed_size: MAX_DECOMPRESSED,
        sinks,
        metrics: metrics.clone(),
        store: store.clone(),
        utf8_names: utf8,
        limits: if limited {
            PushLimits {
                sample_limit: 64,
                label_limit: 8,
                label_name_length_limit: 32,
                label_value_length_limit: 64,
            }
        } else {
            PushLimits::default()
        },
        // Unused: `handle` holds no permit (`serve` does, at the HTTP edge).
        inflight: InflightBudget::new(MAX_DECOMPRESSED),
    };
    for i in 0..MAX_PUSHES {
        let Some(method) = input.byte() else { break };
        let method = [PushMethod::Put, PushMethod::Post, PushMethod::Delete][method as usize % 3];
        let path = lossy(input.line()).into_owned();
        let content_type = header(input.line());
        let content_encoding = header(input.line());
        let len = u16::from_le_bytes([input.byte().unwrap_or(0), input.byte().unwrap_or(0)]);
        let body = input.take(len.into());
        let key = match parse_push_path(&path, utf8) {
            None => continue,
            Some(Err(e)) => {
                let e = grouping_error(e);
                assert!((400..500).contains(&e.code.status()), "{path:?}: {e}");
                continue;
            }
            Some(Ok(key)) => key,
        };
        let received_ns = 1_700_000_000_000_000_000 + i as i64 * 1_000_000_000;
        let before = store.as_deref().map(stored_groups);
        let (lines_before, points_before) =
            (out.lock().unwrap().len(), metrics.points_emitted.get());
        let result = block_on(agent.handle(PushRequest {
            method,
            group: key.clone(),
            room: None,
            content_type,
            content_encoding,
            body,
            received_ns,
        }));
        let new_lines = out.lock().unwrap()[lines_before..]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        let points = metrics.points_emitted.get() - points_before;
        let what = format!("push {i} ({method:?} {path:?})");
        match &result {
            Ok(status) => {
                let want = if method == PushMethod::Delete {
                    202
                } else {
                    200
                };
                assert_eq!(status.as_u16(), want, "{what}");
                assert!(
                    new_lines as f64 <= points,
                    "{what}: {new_lines} lines for {points} points"
                );
            }
            Err(e) => {
                assert!(
                    (400..500).contains(&e.code.status()),
                    "{what}: {:?} {e}",
                    e.code
                );
                assert_eq!(new_lines, 0, "{what}: refused, yet points went out");
            }
        }
        let Some(store) = &store else { continue };
        let before = before.expect("taken with the store");
        let after = stored_groups(store);
        match &result {
            // Its failure time is recorded, on a new group too.
            Err(e) if e.code == ErrorCode::InconsistentMetrics => assert!(
                with_data(&before) == with_data(&after),
                "{what}: refused ({e}), yet the store changed"
            ),
            Err(e) => assert!(
                before == after,
                "{what}: refused ({e}), yet the store changed"
            ),
            Ok(_) => {
                let push_ns = after.iter().find(|g| g.key == key).map(|g| g.push_ns);
                if method == PushMethod::Delete {
                    assert_eq!(push_ns, None, "{what}: the group is still stored");
                } else {
                    assert_eq!(
                        push_ns,
                        Some(received_ns),
                        "{what}: the group is not stored"
                    );
                }
            }
        }
        if checked {
            check_store(store, utf8, &what);
        }
    }
}

/// The store's exposition parses back, each series once (as text when
/// its names can be read back as text); its counts agree with its groups.
fn check_store(store: &Store, utf8: bool, what: &str) {
    let families = parse_exposition(store, ExpositionFormat::Delimited, utf8, what);
    if names_read_back_as_text(&families) {
        parse_exposition(store, ExpositionFormat::Text, utf8, what);
    }
    let snapshot = store.snapshot();
    let groups = snapshot.groups().count();
    let series: usize = snapshot
        .groups()
        .flat_map(|g| g.families.values())
        .map(|f| f.series_count())
        .sum();
    assert_eq!(store.group_count(), groups, "{what}: groups counted");
    assert_eq!(store.series_count(), series, "{what}: series counted");
}

/// The store's exposition in `format`, as `GET /metrics` writes it, parsed
/// back; panics if it does not parse or holds a series twice.
fn parse_exposition(
    store: &Store,
    format: ExpositionFormat,
    utf8: bool,
    what: &str,
) -> Vec<Family> {
    let mut w = ExpositionWriter::new(format).with_names(escaping(utf8));
    store.expose(&mut w, Vec::new());
    let body = w.finish();
    let parsed = match format {
        ExpositionFormat::Text => parse_text_names(&body, utf8),
        ExpositionFormat::Delimited => parse_delimited_names(&body, utf8),
    };
    let families = parsed.unwrap_or_else(|e| {
        panic!(
            "{what}: the store's {format:?} exposition does not parse: {e}\n{}",
            lossy(&body)
        )
    });
    if let Some(series) = duplicate_series(&families) {
        panic!("{what}: the store exposes {series} twice\n{}", lossy(&body));
    }
    families
}

/// One stored group, comparable: its families as delimited protobuf, so
/// that NaN values compare equal.
#[derive(PartialEq)]
struct StoredGroup {
    key: GroupingKey,
    push_ns: i64,
    failure_ns: i64,
    families: Vec<u8>,
}

/// Every group the store holds, by key.
fn stored_groups(store: &Store) -> Vec<StoredGroup> {
    let snapshot = store.snapshot();
    let mut groups: Vec<StoredGroup> = snapshot
        .groups()
        .map(|g| {
            let families: Vec<Family> = g
                .families
                .iter()
                .map(|(name, f)| f.unpack(name, &g.labels))
                .collect();
            let mut bytes = Vec::new();
            write_delimited(&families, &mut bytes);
            StoredGroup {
                key: g.key.clone(),
                push_ns: g.push_ns,
                failure_ns: g.failure_ns,
                families: bytes,
            }
        })
        .collect();
    groups.sort_by(|a, b| a.key.cmp(&b.key));
    groups
}

/// The groups with pushed data, without their last failure times.
fn with_data(groups: &[StoredGroup]) -> Vec<(&GroupingKey, i64, &[u8])> {
    groups
        .iter()
        .filter(|g| g.push_ns > 0 || !g.families.is_empty())
        .map(|g| (&g.key, g.push_ns, &g.families[..]))
        .collect()
}

/// A header line: absent when empty, or not UTF-8 (the server gives a
/// handler no such value).
fn header(line: &[u8]) -> Option<&str> {
    std::str::from_utf8(line).ok().filter(|s| !s.is_empty())
}

/// Reads the push path's input.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    /// Up to the next `\n` (dropped) or the end.
    fn line(&mut self) -> &'a [u8] {
        let end = self.0.iter().position(|&b| b == b'\n');
        let line = &self.0[..end.unwrap_or(self.0.len())];
        self.0 = &self.0[end.map_or(self.0.len(), |e| e + 1)..];
        line
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }
}

/// The stdout sink's writer, captured.
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

thread_local! {
    /// One runtime per thread for all inputs: building one per input would
    /// cost more than most pushes.
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    RUNTIME.with(|rt| rt.block_on(f))
}
