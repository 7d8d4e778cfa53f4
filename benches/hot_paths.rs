//! Criterion microbenchmarks of pushkit's hot paths (issue 5): text parse,
//! protobuf decode, mapping plus line-protocol encoding, exposition
//! encoding, and a store apply at 10 and at 10,000 groups.
//!
//! `cargo bench` runs them all (about two minutes); `cargo bench -- parse`
//! runs those whose name contains "parse". The payloads are those of the
//! side-by-side benchmark (`pushkit-bench`), from the same source file.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pushkit::convert::{convert, convert_into, Mapping, Naming};
use pushkit::expfmt::delimited::{parse_delimited, write_delimited};
use pushkit::expfmt::expose::{ExpositionFormat, ExpositionWriter};
use pushkit::expfmt::text::parse_text;
use pushkit::lineproto::LinesWriter;
use pushkit::lineproto::{encode_line_protocol, Dialect};
use pushkit::model::family::Family;
use pushkit::model::GroupingKey;
use pushkit::pushgateway::grouping::parse_grouping_key;
use pushkit::sink::disk::{DiskQueue, RecordWriter};
use pushkit::store::{Store, StoreOptions};
use std::hint::black_box;
use std::path::PathBuf;

/// The allocator the `pushkit` binary uses, so that the figures are the
/// binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::time::Duration;

#[path = "../src/bin/pushkit-bench/payload.rs"]
mod payload;

/// The benchmark payload: 10 counter families × 10 series.
fn bench_payload() -> String {
    payload::counters(10, 10)
}

/// The files of samples/payloads/, by name.
fn sample_payloads() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples/payloads");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "prom"))
                .filter_map(|p| {
                    let name = p.file_stem()?.to_string_lossy().into_owned();
                    Some((name, std::fs::read(&p).ok()?))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn key(group: usize) -> GroupingKey {
    let instance = format!("g{group}");
    parse_grouping_key("bench", false, &["instance", &instance], false)
        .expect("a valid grouping key")
}

/// The mapping with the input's defaults.
fn mapping() -> Mapping {
    Mapping {
        naming: Naming {
            measurement_name: None,
            job_as_measurement: false,
            keep_exist_metric_name: true,
        },
        honor_timestamps: true,
    }
}

fn store_with(groups: usize, families: &[Family]) -> Store {
    let store = Store::new(StoreOptions::in_memory());
    for g in 0..groups {
        let k = key(g);
        let f = families.to_vec();
        store
            .push(store.prepare(k, true, f, 1_700_000_000_000_000_000), || {
                Ok::<(), ()>(())
            })
            .expect("the preload is consistent");
    }
    store
}

fn configured() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

fn text_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_text");
    let bench = bench_payload();
    g.throughput(Throughput::Bytes(bench.len() as u64));
    g.bench_function("counters_100_series", |b| {
        b.iter(|| parse_text(black_box(bench.as_bytes())).expect("valid"))
    });
    let mixed = payload::mixed(10);
    g.throughput(Throughput::Bytes(mixed.len() as u64));
    g.bench_function("mixed", |b| {
        b.iter(|| parse_text(black_box(mixed.as_bytes())).expect("valid"))
    });
    let big = payload::counters(10, 100);
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("counters_1000_series", |b| {
        b.iter(|| parse_text(black_box(big.as_bytes())).expect("valid"))
    });
    for (name, body) in sample_payloads() {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(format!("samples/{name}"), |b| {
            b.iter(|| parse_text(black_box(&body)).expect("valid"))
        });
    }
    g.finish();
}

fn protobuf_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_delimited");
    let inputs = [
        ("counters_100_series", bench_payload()),
        ("mixed", payload::mixed(10)),
    ];
    for (name, text) in inputs {
        let families = parse_text(text.as_bytes()).expect("valid");
        let mut body = Vec::new();
        write_delimited(&families, &mut body);
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| parse_delimited(black_box(&body)).expect("valid"))
        });
    }
    g.finish();
}

fn mapping_and_line_protocol(c: &mut Criterion) {
    let mut g = c.benchmark_group("convert_line_protocol");
    let m = mapping();
    let group = key(0);
    for (name, text) in [
        ("counters_100_series", bench_payload()),
        ("mixed", payload::mixed(10)),
    ] {
        let families = parse_text(text.as_bytes()).expect("valid");
        let points = convert(&families, &group, &m, 1_700_000_000_000_000_000);
        g.throughput(Throughput::Elements(points.len() as u64));
        // What line-protocol sinks and stdout take: written straight from
        // the mapping, no `Point` built.
        g.bench_function(format!("{name}/convert_to_lines"), |b| {
            b.iter(|| {
                let mut lines = LinesWriter::default();
                let now = 1_700_000_000_000_000_000;
                convert_into(black_box(&families), &group, &m, now, &mut lines);
                lines
            })
        });
        // What remote write and the disk queue take: `Point`s.
        g.bench_function(format!("{name}/convert_to_points+encode"), |b| {
            b.iter(|| {
                let points = convert(black_box(&families), &group, &m, 1_700_000_000_000_000_000);
                encode_line_protocol(&points, Dialect::InfluxDb)
            })
        });
        // The disk queue's record: written straight from the mapping, as
        // pushes are, and from `Point`s built first, as before 424a352.
        g.bench_function(format!("{name}/convert_to_queue_record"), |b| {
            b.iter(|| {
                let mut w = RecordWriter::new(0, 4096);
                let now = 1_700_000_000_000_000_000;
                convert_into(black_box(&families), &group, &m, now, &mut w);
                DiskQueue::seal(w)
            })
        });
        g.bench_function(format!("{name}/convert_to_points+queue_record"), |b| {
            b.iter(|| {
                let points = convert(black_box(&families), &group, &m, 1_700_000_000_000_000_000);
                DiskQueue::encode(&points)
            })
        });
        g.bench_function(format!("{name}/encode_points"), |b| {
            b.iter(|| encode_line_protocol(black_box(&points), Dialect::InfluxDb))
        });
    }
    g.finish();
}

fn exposition(c: &mut Criterion) {
    let families = parse_text(bench_payload().as_bytes()).expect("valid");
    for groups in [1_000usize, 10_000] {
        // Built on first use, so that a filter that skips these benches
        // skips the preload too.
        let mut store: Option<Store> = None;
        let mut g = c.benchmark_group(format!("expose_{groups}_groups_x_100_series"));
        g.sample_size(10);
        g.throughput(Throughput::Elements(groups as u64 * 100));
        for (name, format) in [
            ("text", ExpositionFormat::Text),
            ("protobuf", ExpositionFormat::Delimited),
        ] {
            let mut size = 0;
            g.bench_function(name, |b| {
                let store = store.get_or_insert_with(|| store_with(groups, &families));
                b.iter(|| {
                    let mut w = ExpositionWriter::with_capacity(format, size);
                    store.expose(&mut w, Vec::new());
                    let out = w.finish();
                    size = out.len();
                    out
                })
            });
        }
        g.finish();
    }
}

/// The store exported to a sink (`export_interval`): made from a snapshot
/// in batches of 1,000 points, as a remote-write sink encodes them (protobuf
/// and snappy) and as line protocol writes them.
fn export(c: &mut Criterion) {
    use pushkit::lineproto::Dialect;
    use pushkit::pushgateway::export::StoreExport;
    use pushkit::sink::export::ExportSource;
    use pushkit::sink::http::Format;
    use pushkit::sink::queue::BatchData;
    let families = parse_text(bench_payload().as_bytes()).expect("valid");
    for groups in [1_000usize, 10_000] {
        let mut store: Option<Store> = None;
        let mut g = c.benchmark_group(format!("export_{groups}_groups_x_100_series"));
        g.sample_size(10);
        g.throughput(Throughput::Elements(groups as u64 * 100));
        for (name, format) in [
            ("remote_write", Format::RemoteWrite),
            ("line_protocol", Format::LineProtocol(Dialect::InfluxDb)),
        ] {
            g.bench_function(name, |b| {
                let store = store.get_or_insert_with(|| store_with(groups, &families));
                b.iter(|| {
                    let snapshot = store.snapshot().into_groups();
                    let mut export = StoreExport::new(snapshot, None, format, &mapping(), 1);
                    let mut bytes = 0;
                    while let Some(batch) = export.next_batch(1_000) {
                        bytes += match batch.data {
                            BatchData::Points(p) => pushkit::sink::remote_write::encode(&p).len(),
                            BatchData::Lines(t) => t.len(),
                        };
                    }
                    bytes
                })
            });
        }
        g.finish();
    }
}

fn store_apply(c: &mut Criterion) {
    let families = parse_text(bench_payload().as_bytes()).expect("valid");
    let mut g = c.benchmark_group("store_push_100_series");
    g.throughput(Throughput::Elements(100));
    for groups in [10usize, 10_000] {
        let mut store: Option<Store> = None;
        let keys: Vec<GroupingKey> = (0..groups).map(key).collect();
        let mut next = 0usize;
        let mut at = 1_700_000_001_000_000_000i64;
        g.bench_function(format!("{groups}_groups"), |b| {
            let store = store.get_or_insert_with(|| store_with(groups, &families));
            b.iter_batched(
                || {
                    // Round-robin over the stored groups, so every push
                    // replaces one, as scenario a does.
                    let k = keys[next % groups].clone();
                    next += 1;
                    (k, families.clone())
                },
                |(k, f)| {
                    // prepare sanitizes, as it does for the handler.
                    at += 1;
                    store
                        .push(store.prepare(k, true, f, at), || Ok::<(), ()>(()))
                        .expect("consistent")
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = configured();
    targets = text_parse, protobuf_decode, mapping_and_line_protocol, exposition, export, store_apply
}
criterion_main!(benches);
