//! An upgraded node keeps what the release before the durable engine
//! (57b122d; code at d93fda2) left on its disk: the store's journal and
//! snapshot, the disk queue's segments and cursors. The fixtures were
//! written by that code (tests/fixtures/d93fda2/README.md).

include!("fixtures/d93fda2/content.rs");

use pushkit::sink::disk::{DiskQueue, Form, SinkSpec};
use pushkit::store::{Store, StoreOptions};
use std::path::Path;
use std::time::Duration;

/// A copy of fixture folder `name` in a fresh temporary directory.
fn fixture_copy(name: &str) -> tempfile::TempDir {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/d93fda2")
        .join(name);
    let tmp = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), tmp.path().join(e.file_name())).unwrap();
    }
    tmp
}

fn options(dir: Option<&Path>) -> StoreOptions {
    StoreOptions {
        consistency_check: true,
        utf8_names: false,
        max_groups: 0,
        max_series: 0,
        persistence_dir: dir.map(Path::to_path_buf),
        group_ttl: Duration::ZERO,
        snapshot_after_bytes: 64 << 20,
    }
}

/// Each group as text: key, times, families (Debug, so NaN compares).
fn dump(store: &Store) -> Vec<String> {
    let snapshot = store.snapshot();
    {
        let mut out: Vec<String> = snapshot
            .groups()
            .map(|g| {
                let families: Vec<String> = g
                    .families
                    .iter()
                    .map(|(name, f)| format!("{:?} at {}", f.unpack(name, &g.labels), f.pushed_ns))
                    .collect();
                format!(
                    "{:?} push={} failure={} created={} {families:?}",
                    g.key, g.push_ns, g.failure_ns, g.created_ns
                )
            })
            .collect();
        out.sort();
        out
    }
}

#[test]
fn the_store_journal_of_d93fda2_is_read_and_migrated_once() {
    // What the fixture's mutations give, applied in memory.
    let expected = Store::new(options(None));
    for (key, replace, families, at) in fixture_store_pushes() {
        let p = expected.prepare(key, replace, families, at);
        assert!(expected.push(p, || Ok::<(), ()>(())).is_ok());
    }
    let _ = expected.delete(fixture_key("gone", &[("x", "y")])).unwrap();
    let mut want = dump(&expected);
    // The failed push only set beta's failure time.
    let beta = want.iter_mut().find(|g| g.contains("\"beta\"")).unwrap();
    *beta = beta.replace("failure=0", &format!("failure={FIXTURE_FAILURE_AT_NS}"));

    let tmp = fixture_copy("store");
    let dir = tmp.path();
    for round in 0..2 {
        let store = Store::new(options(Some(dir)));
        let warnings = store.load().unwrap();
        assert_eq!(dump(&store), want, "round {round}");
        assert_eq!(store.group_count(), 2);
        if round == 0 {
            // A push after the upgrade is journaled in the new format.
            let (key, replace, families, at) = fixture_store_pushes().remove(1);
            let p = store.prepare(key, replace, families, at + 1);
            let (t, ()) = store.push(p, || Ok::<(), ()>(())).ok().unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(store.wait(t)).unwrap();
            let beta = want.iter_mut().find(|g| g.contains("\"beta\"")).unwrap();
            let (key, replace, families, at) = fixture_store_pushes().remove(1);
            let redo = Store::new(options(None));
            let p = redo.prepare(key, replace, families, at + 1);
            assert!(redo.push(p, || Ok::<(), ()>(())).is_ok());
            let fresh = dump(&redo).remove(0);
            let fams = fresh
                .split_once(" created=")
                .unwrap()
                .1
                .split_once(' ')
                .unwrap()
                .1;
            let head = beta.split_once(" push=").unwrap().0.to_string();
            let created = beta
                .split_once(" created=")
                .unwrap()
                .1
                .split_once(' ')
                .unwrap()
                .0;
            *beta = format!(
                "{head} push={} failure={FIXTURE_FAILURE_AT_NS} created={created} {fams}",
                at + 1
            );
        } else {
            assert!(warnings.is_empty(), "{warnings:?}");
        }
        store.close().unwrap();
    }
    // The old files were kept aside, not deleted.
    let kept = dir.join("format-1");
    assert!(kept.join("journal-00000002").exists());
    assert!(kept.join("snapshot-00000002").exists());
    assert!(!dir.join("journal-00000002").exists());
}

fn sink_specs() -> Vec<SinkSpec> {
    FIXTURE_SINKS
        .iter()
        .map(|n| SinkSpec {
            name: n.to_string(),
            max_disk_bytes: 1 << 30,
            drop_oldest: false,
        })
        .collect()
}

/// Everything sink `sink` gets, acknowledging each batch.
async fn drain(q: &DiskQueue, sink: usize) -> Vec<String> {
    let mut got = Vec::new();
    while q.depth(sink).0 > 0 {
        let b = q
            .next_batch(sink, 4, Duration::from_millis(1), Form::Points)
            .await
            .unwrap();
        assert_eq!(b.lost_points, 0);
        got.extend(b.points().iter().map(|p| format!("{p:?}")));
        q.ack(sink, &b).unwrap();
    }
    got
}

#[test]
fn the_disk_queue_of_d93fda2_is_delivered_from_its_cursors() {
    let pushes = fixture_queue_pushes();
    let all = |from_push: usize, skip: usize| -> Vec<String> {
        pushes[from_push..]
            .iter()
            .flatten()
            .skip(skip)
            .map(|p| format!("{p:?}"))
            .collect()
    };
    let tmp = fixture_copy("queue");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    {
        let opened = DiskQueue::open(tmp.path(), &sink_specs(), 64 << 20).unwrap();
        let total: usize = pushes.iter().map(Vec::len).sum();
        assert_eq!(
            opened.redelivered_points,
            [(total - 5) as u64, (total - 4) as u64]
        );
        let q = opened.queue;
        rt.block_on(async {
            assert_eq!(drain(&q, 0).await, all(2, 0));
            // b acknowledged 2 of push 1's 3 points.
            let want_b: Vec<String> = [&pushes[1][2..], &pushes[2..].concat()[..]]
                .concat()
                .iter()
                .map(|p| format!("{p:?}"))
                .collect();
            assert_eq!(drain(&q, 1).await, want_b);
        });
        // The old segments were kept aside; the cursors are rewritten.
        let kept = tmp.path().join("format-1");
        assert!(kept.join("segment-0000000000000003").exists());
        assert!(!tmp.path().join("segment-0000000000000003").exists());
        // A push after the upgrade reaches both.
        let (t, _) = q.append(&pushes[0]).unwrap();
        q.wait_blocking(t).unwrap();
        q.close();
    }
    let opened = DiskQueue::open(tmp.path(), &sink_specs(), 64 << 20).unwrap();
    assert!(opened.warnings.is_empty(), "{:?}", opened.warnings);
    let q = opened.queue;
    rt.block_on(async {
        let want = all(0, 0)[..2].to_vec();
        assert_eq!(drain(&q, 0).await, want);
        assert_eq!(drain(&q, 1).await, want);
    });
}
