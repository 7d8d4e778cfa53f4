//! A refused push changes nothing: faults injected under the journal.

use super::super::journal::Journal;
use super::super::{PushRefused, Store, StoreOptions, DEFAULT_SNAPSHOT_AFTER_BYTES};
use crate::durable::{FaultyIo, Io};
use crate::expfmt::text::parse_text;
use crate::model::GroupingKey;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn open(dir: &std::path::Path, io: Arc<dyn Io>) -> Store {
    let store = Store::new(StoreOptions {
        consistency_check: true,
        utf8_names: false,
        max_groups: 0,
        max_series: 0,
        persistence_dir: Some(dir.to_path_buf()),
        group_ttl: Duration::ZERO,
        snapshot_after_bytes: DEFAULT_SNAPSHOT_AFTER_BYTES,
    });
    let (journal, recovered) = Journal::open_with(io, dir).unwrap();
    store.load_from(journal, recovered);
    store
}

/// Pushes and waits as the handler does: a failed wait settles the
/// store before the caller hears of it.
fn push(store: &Store, job: &str, replace: bool, text: &str) -> Result<(), String> {
    let families = parse_text(text.as_bytes()).unwrap();
    let prepared = store.prepare(GroupingKey::from_pairs(job, &[]), replace, families, 1);
    let ticket = match store.push(prepared, || Ok::<(), ()>(())) {
        Ok((t, ())) => t,
        Err(PushRefused::Journal(e)) => return Err(e.to_string()),
        Err(PushRefused::Inconsistent { message, .. }) => return Err(message),
        Err(e) => panic!("{e:?}"),
    };
    let waited = match ticket {
        Some(t) => store.journal.get().unwrap().wait_blocking(t),
        None => Ok(()),
    };
    waited.map_err(|e| {
        store.settle();
        e.to_string()
    })
}

/// The stored samples, agent metrics and push times left out.
fn stored(store: &Store) -> Vec<String> {
    let snap = store.snapshot();
    let mut out: Vec<String> = snap
        .groups()
        .flat_map(|g| {
            g.families.iter().map(move |(name, f)| {
                let fam = f.unpack(name, &g.labels);
                format!("{}/{name}={:?}", g.key.job(), fam.metrics[0].value)
            })
        })
        .collect();
    out.sort();
    out
}

fn until_taken_again(store: &Store) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.failure().is_some() {
        assert!(Instant::now() < deadline, "the journal did not recover");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_push_refused_by_a_full_disk_leaves_the_store_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::default();
    let store = open(dir.path(), Arc::new(io.clone()));
    push(&store, "a", true, "m 1\nn 1\n").unwrap();
    let before = stored(&store);
    io.faults.short_writes.store(true, Ordering::SeqCst);
    // A PUT that drops a family, a POST to a new group, a delete: all
    // refused, none visible.
    let err = push(&store, "a", true, "m 2\n").unwrap_err();
    assert!(err.contains("no space"), "{err}");
    assert_eq!(stored(&store), before);
    assert!(push(&store, "b", false, "m 3\n").is_err());
    assert_eq!(stored(&store), before);
    assert_eq!(store.group_count(), 1);
    // Room again: taken again without a restart.
    io.faults.short_writes.store(false, Ordering::SeqCst);
    until_taken_again(&store);
    push(&store, "c", true, "m 4\n").unwrap();
    let after = stored(&store);
    assert!(after.iter().any(|s| s.starts_with("c/m=")), "{after:?}");
    assert_eq!(after.len(), before.len() + 1, "{after:?}");
    drop(store);
    // Replay holds exactly what was acknowledged.
    let reopened = open(dir.path(), Arc::new(crate::durable::RealIo));
    assert_eq!(stored(&reopened), after);
}

#[test]
fn a_failed_fsync_undoes_every_mutation_not_yet_durable() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::default();
    let store = open(dir.path(), Arc::new(io.clone()));
    push(&store, "a", true, "m 1\n").unwrap();
    let before = stored(&store);
    io.faults.failing_syncs.store(true, Ordering::SeqCst);
    // Three mutations under one failing commit: each one checked against
    // the one before it, all undone together, newest first.
    let families = |t: &str| parse_text(t.as_bytes()).unwrap();
    let key = |j: &str| GroupingKey::from_pairs(j, &[]);
    let p1 = store.prepare(key("a"), true, families("m 2\nx 1\n"), 2);
    let p2 = store.prepare(key("b"), true, families("x 5\n"), 3);
    let journal = store.journal.get().unwrap();
    let group = journal.log().group();
    let (t1, ()) = store.push(p1, || Ok::<(), ()>(())).unwrap();
    let (t2, ()) = store.push(p2, || Ok::<(), ()>(())).unwrap();
    let t3 = store.delete(key("a")).unwrap();
    drop(group);
    for t in [t1, t2, t3] {
        assert!(journal.wait_blocking(t.unwrap()).is_err());
    }
    store.settle();
    assert_eq!(stored(&store), before);
    // The index was restored too: a conflicting type is still refused.
    io.faults.failing_syncs.store(false, Ordering::SeqCst);
    until_taken_again(&store);
    let refused = push(&store, "c", true, "# TYPE m counter\nm 1\n").unwrap_err();
    assert!(refused.contains("type"), "{refused}");
    push(&store, "c", true, "m 7\n").unwrap();
    let after = stored(&store);
    drop(store);
    let reopened = open(dir.path(), Arc::new(crate::durable::RealIo));
    assert_eq!(stored(&reopened), after);
}

#[test]
fn a_snapshot_whose_cut_covers_a_failed_group_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::default();
    let (journal, _) = Journal::open_with(Arc::new(io.clone()), dir.path()).unwrap();
    let ok = journal.append(b"durable").unwrap();
    journal.wait_blocking(ok).unwrap();
    io.faults.failing_syncs.store(true, Ordering::SeqCst);
    let group = journal.log().group();
    let t = journal.append(b"refused").unwrap();
    // The state copied at this cut holds the refused mutation.
    let mut w = journal.start_snapshot().unwrap();
    drop(group);
    assert!(journal.wait_blocking(t).is_err());
    io.faults.failing_syncs.store(false, Ordering::SeqCst);
    w.write_record(b"state with the refused mutation").unwrap();
    let err = w.finish().unwrap_err();
    assert!(
        err.to_string().contains("below the snapshot's cut failed"),
        "{err}"
    );
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // Only the snapshot the journal wrote when it was created.
    let snapshots: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("snapshot-"))
        .collect();
    assert_eq!(snapshots, ["snapshot-00000000000000000001"], "{names:?}");
}

/// Flips a byte inside the first journal record holding `needle`.
fn damage_record_holding(dir: &std::path::Path, needle: &[u8]) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("log-") {
            continue;
        }
        let mut data = std::fs::read(&path).unwrap();
        if let Some(at) = data.windows(needle.len()).position(|w| w == needle) {
            data[at] ^= 0x55;
            std::fs::write(&path, &data).unwrap();
            return;
        }
    }
    panic!("no record holds {needle:?}");
}

#[test]
fn replay_drops_a_group_whose_change_lost_the_record_before_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path(), Arc::new(crate::durable::RealIo));
        push(&store, "a", true, "first 1\n").unwrap();
        push(&store, "a", false, "lost_family 2\n").unwrap();
        push(&store, "a", false, "later 3\n").unwrap();
        push(&store, "b", true, "x 1\n").unwrap();
        push(&store, "b", false, "y 2\n").unwrap();
        // A PUT does not depend on what came before it.
        push(&store, "c", true, "z 1\n").unwrap();
        push(&store, "c", false, "c_lost 1\n").unwrap();
        push(&store, "c", true, "z 2\n").unwrap();
        store.close().unwrap();
    }
    damage_record_holding(dir.path(), b"lost_family");
    damage_record_holding(dir.path(), b"c_lost");
    let store = Store::new(StoreOptions {
        consistency_check: true,
        utf8_names: false,
        max_groups: 0,
        max_series: 0,
        persistence_dir: Some(dir.path().to_path_buf()),
        group_ttl: Duration::ZERO,
        snapshot_after_bytes: DEFAULT_SNAPSHOT_AFTER_BYTES,
    });
    let (journal, recovered) = Journal::open(dir.path()).unwrap();
    let warnings = store.load_from(journal, recovered);
    // Group a is never shown as {first, later}, which no client pushed.
    assert_eq!(
        stored(&store),
        ["b/x=Simple(1.0)", "b/y=Simple(2.0)", "c/z=Simple(2.0)"],
        "{warnings:?}"
    );
    let dropped: Vec<&String> = warnings
        .iter()
        .filter(|w| w.contains("is dropped"))
        .collect();
    assert_eq!(dropped.len(), 1, "{warnings:?}");
    assert!(dropped[0].contains("\"a\""), "{dropped:?}");
}

#[test]
fn readers_see_a_push_only_once_its_commit_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Arc::new(crate::durable::RealIo));
    push(&store, "a", true, "kept 1\nother 1\n").unwrap();
    push(&store, "gone", true, "g 1\n").unwrap();
    let before = stored(&store);
    let journal = store.journal.get().unwrap();
    // While this group lives, the flusher commits nothing.
    let group = journal.log().group();
    let families = |t: &str| parse_text(t.as_bytes()).unwrap();
    let key = |j: &str| GroupingKey::from_pairs(j, &[]);
    // A PUT that drops a family, a new group, and a delete.
    let (t1, ()) = store
        .push(
            store.prepare(key("a"), true, families("kept 2\n"), 2),
            || Ok::<(), ()>(()),
        )
        .unwrap();
    let (t2, ()) = store
        .push(
            store.prepare(key("new"), true, families("n 1\n"), 3),
            || Ok::<(), ()>(()),
        )
        .unwrap();
    let t3 = store.delete(key("gone")).unwrap();
    assert_eq!(stored(&store), before, "nothing shown before the commit");
    let text = {
        let mut w = crate::expfmt::expose::ExpositionWriter::new(
            crate::expfmt::expose::ExpositionFormat::Text,
        );
        store.expose(&mut w, Vec::new());
        String::from_utf8(w.finish()).unwrap()
    };
    assert!(text.contains("other{instance=\"\",job=\"a\"} 1"), "{text}");
    assert!(!text.contains("job=\"new\""), "{text}");
    assert!(text.contains("g{instance=\"\",job=\"gone\"} 1"), "{text}");
    drop(group);
    for t in [t1, t2, t3] {
        journal.wait_blocking(t.unwrap()).unwrap();
    }
    let after = stored(&store);
    assert_eq!(after, ["a/kept=Simple(2.0)", "new/n=Simple(1.0)"]);
}
