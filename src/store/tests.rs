//! The store's group semantics, driven directly (no HTTP).

use super::*;
use crate::expfmt::expose::{ExpositionFormat, ExpositionWriter};
use crate::expfmt::text::parse_text;
use crate::model::GroupingKey;

fn key(job: &str, pairs: &[&str]) -> GroupingKey {
    GroupingKey::from_pairs(job, pairs)
}

fn options() -> StoreOptions {
    StoreOptions::in_memory()
}

/// Pushes `text` as PUT (`replace`) or POST at time `at` seconds.
fn push(store: &Store, k: &GroupingKey, replace: bool, text: &str, at: i64) -> Result<(), String> {
    let families = parse_text(text.as_bytes()).unwrap();
    let prepared = store.prepare(k.clone(), replace, families, at * 1_000_000_000);
    match store.push(prepared, || Ok::<(), ()>(())) {
        Ok(_) => Ok(()),
        Err(PushRefused::Inconsistent { message, .. }) => Err(message),
        Err(e) => panic!("{e:?}"),
    }
}

/// The exposition's sample lines, without the agent's own metrics (the
/// store adds its own).
fn samples(store: &Store) -> Vec<String> {
    let mut w = ExpositionWriter::new(ExpositionFormat::Text);
    store.expose(&mut w, Vec::new());
    String::from_utf8(w.finish())
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("pushkit_store_"))
        .map(str::to_string)
        .collect()
}

fn has(store: &Store, line: &str) -> bool {
    samples(store).iter().any(|l| l == line)
}

#[test]
fn put_replaces_the_group_and_post_only_the_pushed_families() {
    let store = Store::new(options());
    let k = key("j", &[]);
    push(&store, &k, true, "a 1\nb 2\n", 10).unwrap();
    push(&store, &k, false, "b 3\nc 4\n", 11).unwrap();
    let s = samples(&store);
    assert!(
        s.contains(&"a{instance=\"\",job=\"j\"} 1".to_string()),
        "{s:?}"
    );
    assert!(s.contains(&"b{instance=\"\",job=\"j\"} 3".to_string()));
    assert!(s.contains(&"c{instance=\"\",job=\"j\"} 4".to_string()));
    push(&store, &k, true, "c 5\n", 12).unwrap();
    let s = samples(&store);
    assert!(
        !s.iter().any(|l| l.starts_with("a{") || l.starts_with("b{")),
        "{s:?}"
    );
    assert!(has(&store, "c{instance=\"\",job=\"j\"} 5"));
    assert!(has(&store, "push_time_seconds{instance=\"\",job=\"j\"} 12"));
    assert!(has(
        &store,
        "push_failure_time_seconds{instance=\"\",job=\"j\"} 0"
    ));
}

/// The store sanitizes a push itself: the caller hands over families as
/// parsed.
#[test]
fn the_store_sanitizes_what_it_is_given() {
    let store = Store::new(options());
    let k = key("j", &["zone", "eu"]);
    push(
        &store,
        &k,
        true,
        "a{zone=\"us\",job=\"other\",b=\"1\"} 1 1700000000000\npush_time_seconds 3\n",
        10,
    )
    .unwrap();
    assert_eq!(
        samples(&store),
        [
            "a{b=\"1\",instance=\"\",job=\"j\",zone=\"eu\"} 1",
            "push_failure_time_seconds{instance=\"\",job=\"j\",zone=\"eu\"} 0",
            "push_time_seconds{instance=\"\",job=\"j\",zone=\"eu\"} 10",
        ]
    );
}

#[test]
fn delete_removes_only_its_own_group() {
    let store = Store::new(options());
    let x = key("x", &[]);
    let xy = key("x", &["instance", "y"]);
    push(&store, &x, true, "a 1\n", 1).unwrap();
    push(&store, &xy, true, "a 2\n", 1).unwrap();
    store.delete(x.clone()).unwrap();
    assert!(!has(&store, "a{instance=\"\",job=\"x\"} 1"));
    assert!(has(&store, "a{instance=\"y\",job=\"x\"} 2"));
    assert_eq!(store.group_count(), 1);
    // Absent groups are fine.
    store.delete(x).unwrap();
    assert_eq!(store.series_count(), 1);
}

#[test]
fn empty_bodies() {
    let store = Store::new(options());
    let k = key("j", &[]);
    push(&store, &k, true, "a 1\n", 5).unwrap();
    push(&store, &k, false, "", 6).unwrap();
    assert!(
        has(&store, "a{instance=\"\",job=\"j\"} 1"),
        "empty POST keeps families"
    );
    assert!(has(&store, "push_time_seconds{instance=\"\",job=\"j\"} 6"));
    push(&store, &k, true, "", 7).unwrap();
    assert!(
        !has(&store, "a{instance=\"\",job=\"j\"} 1"),
        "empty PUT empties"
    );
    assert!(has(&store, "push_time_seconds{instance=\"\",job=\"j\"} 7"));
    let fresh = key("new", &[]);
    push(&store, &fresh, true, "", 8).unwrap();
    assert!(has(
        &store,
        "push_time_seconds{instance=\"\",job=\"new\"} 8"
    ));
}

#[test]
fn a_refused_push_records_only_its_failure_time() {
    let store = Store::new(options());
    push(&store, &key("a", &[]), true, "# TYPE m counter\nm 1\n", 1).unwrap();
    let b = key("b", &[]);
    let err = push(&store, &b, true, "# TYPE m gauge\nm 2\nother 3\n", 2).unwrap_err();
    assert!(err.contains("\"m\""), "{err}");
    let s = samples(&store);
    assert!(
        !s.iter()
            .any(|l| l.contains("job=\"b\"") && !l.starts_with("push_")),
        "{s:?}"
    );
    assert!(has(&store, "push_time_seconds{instance=\"\",job=\"b\"} 0"));
    assert!(has(
        &store,
        "push_failure_time_seconds{instance=\"\",job=\"b\"} 2"
    ));
    assert!(!store.api_metrics()[1]["last_push_successful"]
        .as_bool()
        .unwrap());
}

#[test]
fn a_failed_reservation_changes_nothing() {
    let store = Store::new(options());
    let k = key("j", &[]);
    let families = parse_text(b"a 1\n").unwrap();
    let r = store.push(store.prepare(k, true, families, 1), || Err::<(), _>("full"));
    assert!(matches!(r, Err(PushRefused::Reserve("full"))));
    assert_eq!(store.group_count(), 0);
    assert!(samples(&store).is_empty());
}

#[test]
fn with_the_check_off_anything_goes() {
    let store = Store::new(StoreOptions {
        consistency_check: false,
        utf8_names: false,
        max_groups: 0,
        max_series: 0,
        ..options()
    });
    push(&store, &key("a", &[]), true, "# TYPE m counter\nm 1\n", 1).unwrap();
    push(&store, &key("b", &[]), true, "# TYPE m gauge\nm 2\n", 1).unwrap();
    assert_eq!(store.series_count(), 2);
}

#[test]
fn families_merge_by_name_with_one_help_and_type() {
    let store = Store::new(options());
    push(
        &store,
        &key("a", &[]),
        true,
        "# HELP m first\n# TYPE m counter\nm 1\nz 1\n",
        1,
    )
    .unwrap();
    push(
        &store,
        &key("b", &[]),
        true,
        "# HELP m second\n# TYPE m counter\nm 2\nb 1\n",
        1,
    )
    .unwrap();
    let mut w = ExpositionWriter::new(ExpositionFormat::Text);
    store.expose(&mut w, Vec::new());
    let text = String::from_utf8(w.finish()).unwrap();
    assert_eq!(text.matches("# TYPE m counter").count(), 1, "{text}");
    assert_eq!(text.matches("# HELP m ").count(), 1, "{text}");
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    // Reparses as valid text with both series.
    let fams = parse_text(text.as_bytes()).unwrap();
    let m = fams.iter().find(|f| f.name == "m").unwrap();
    assert_eq!(m.metrics.len(), 2);
}

#[test]
fn own_metrics_are_merged_and_pinned() {
    let store = Store::new(options());
    let own = parse_text(b"# HELP pushkit_samples_received_total Own.\n# TYPE pushkit_samples_received_total counter\npushkit_samples_received_total 7\n").unwrap();
    let k = key("j", &[]);
    assert!(push(
        &store,
        &k,
        true,
        "# TYPE pushkit_samples_received_total gauge\npushkit_samples_received_total 1\n",
        1
    )
    .is_err());
    push(
        &store,
        &k,
        true,
        "# TYPE pushkit_samples_received_total counter\npushkit_samples_received_total 1\n",
        1,
    )
    .unwrap();
    let mut w = ExpositionWriter::new(ExpositionFormat::Text);
    store.expose(&mut w, own);
    let text = String::from_utf8(w.finish()).unwrap();
    assert_eq!(
        text.matches("# TYPE pushkit_samples_received_total")
            .count(),
        1,
        "{text}"
    );
    assert!(
        text.contains("pushkit_samples_received_total 7\n"),
        "{text}"
    );
    assert!(
        text.contains("pushkit_samples_received_total{instance=\"\",job=\"j\"} 1\n"),
        "{text}"
    );
}

#[test]
fn groups_expire_after_their_ttl() {
    let store = Store::new(StoreOptions {
        group_ttl: Duration::from_secs(10),
        ..options()
    });
    push(&store, &key("old", &[]), true, "a 1\n", 100).unwrap();
    push(&store, &key("new", &[]), true, "b 1\n", 105).unwrap();
    // A failed push does not refresh the old group.
    let _ = push(
        &store,
        &key("old", &[]),
        true,
        "# TYPE b gauge\nb{x=\"1\"} 1\n",
        108,
    );
    assert_eq!(store.expire(111 * 1_000_000_000).unwrap().0, 1);
    assert_eq!(store.group_count(), 1);
    assert!(has(&store, "b{instance=\"\",job=\"new\"} 1"));
}

fn persistent(dir: &std::path::Path, snapshot_after_bytes: u64) -> Store {
    let store = Store::new(StoreOptions {
        persistence_dir: Some(dir.to_path_buf()),
        snapshot_after_bytes,
        ..options()
    });
    assert!(!store.is_ready());
    let warnings = store.load().unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(store.is_ready());
    store
}

fn push_durably(store: &Store, k: &GroupingKey, replace: bool, text: &str, at: i64) {
    let families = parse_text(text.as_bytes()).unwrap();
    let prepared = store.prepare(k.clone(), replace, families, at * 1_000_000_000);
    let (ticket, ()) = store.push(prepared, || Ok::<(), ()>(())).unwrap();
    store
        .journal
        .get()
        .unwrap()
        .wait_blocking(ticket.unwrap())
        .unwrap();
}

#[test]
fn the_journal_restores_every_mutation() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let store = persistent(dir.path(), DEFAULT_SNAPSHOT_AFTER_BYTES);
        push_durably(
            &store,
            &key("a", &[]),
            true,
            "# HELP m M.\n# TYPE m counter\nm 1\n",
            1,
        );
        push_durably(&store, &key("b", &["instance", "i"]), true, "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n", 2);
        push_durably(&store, &key("c", &[]), true, "x 1\n", 3);
        push_durably(&store, &key("a", &[]), false, "y 2\n", 4);
        let _ = push(&store, &key("d", &[]), true, "# TYPE m gauge\nm 9\n", 5);
        store.delete(key("c", &[])).unwrap();
        let t = store.delete(key("c", &[])).unwrap();
        store.wait_blocking_for_tests(t);
        store.close().unwrap();
        samples(&store)
    };
    let store = persistent(dir.path(), DEFAULT_SNAPSHOT_AFTER_BYTES);
    assert_eq!(samples(&store), before);
    assert!(before
        .iter()
        .any(|l| l == "push_failure_time_seconds{instance=\"\",job=\"d\"} 5"));
    // The index is rebuilt too: the check still sees group a's counter.
    assert!(push(&store, &key("e", &[]), true, "# TYPE m gauge\nm 1\n", 6).is_err());
    let t = store.wipe().unwrap();
    store.wait_blocking_for_tests(t);
    store.close().unwrap();
    drop(store);
    let store = persistent(dir.path(), DEFAULT_SNAPSHOT_AFTER_BYTES);
    assert_eq!(store.group_count(), 0);
}

#[test]
fn snapshots_compact_the_journal_without_losing_state() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let store = persistent(dir.path(), 2_000);
        for i in 0..300 {
            let k = key(&format!("j{}", i % 17), &[]);
            push_durably(
                &store,
                &k,
                i % 3 != 0,
                &format!("a{} {i}\nb {i}\n", i % 5),
                i,
            );
            if i % 50 == 49 {
                store.delete(key("j3", &[])).unwrap();
            }
        }
        // Let a snapshot in progress finish.
        for _ in 0..200 {
            if !store.snapshotting.load(Ordering::Acquire) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        store.close().unwrap();
        samples(&store)
    };
    let snapshots = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("snapshot")
        })
        .count();
    assert!(snapshots >= 1, "a snapshot was written");
    let store = persistent(dir.path(), 2_000);
    assert_eq!(samples(&store), before);
}

impl Store {
    fn wait_blocking_for_tests(&self, ticket: Option<Ticket>) {
        if let (Some(j), Some(t)) = (self.journal.get(), ticket) {
            j.wait_blocking(t).unwrap();
        }
    }
}

/// A family pushed again with the same series keeps the index as it was:
/// its series stay owned (another group may not take them), and a change
/// of series or of type still re-indexes.
#[test]
fn repushing_the_same_series_keeps_ownership_and_types() {
    let store = Store::new(options());
    let owner = key("j", &[]);
    let other = key("j", &["instance", "i"]);
    let body = "# TYPE a counter\na{instance=\"i\",x=\"1\"} 1\n";
    push(&store, &owner, true, body, 1).unwrap();
    push(&store, &owner, true, body, 2).unwrap();
    push(&store, &owner, false, body, 3).unwrap();
    assert_eq!(store.series_count(), 1);
    let taken = push(&store, &other, true, "# TYPE a counter\na{x=\"1\"} 5\n", 4);
    assert!(taken.unwrap_err().contains("another group"));

    // Same series, another type: the index follows the new type.
    push(
        &store,
        &owner,
        true,
        "# TYPE a gauge\na{instance=\"i\",x=\"1\"} 1\n",
        5,
    )
    .unwrap();
    assert!(push(&store, &other, true, "# TYPE a counter\na{x=\"2\"} 1\n", 6).is_err());
    assert!(push(&store, &other, true, "# TYPE a gauge\na{x=\"2\"} 1\n", 7).is_ok());

    // Another series in place of the first: the first is free again.
    push(
        &store,
        &owner,
        true,
        "# TYPE a gauge\na{instance=\"i\",x=\"3\"} 1\n",
        8,
    )
    .unwrap();
    assert!(push(&store, &other, true, "# TYPE a gauge\na{x=\"1\"} 1\n", 9).is_ok());
    assert_eq!(store.series_count(), 2);
    assert!(has(&store, "a{instance=\"i\",job=\"j\",x=\"1\"} 1"));
    assert!(has(&store, "a{instance=\"i\",job=\"j\",x=\"3\"} 1"));
}

/// The store's own gauge: its lock's longest hold since the previous
/// exposition, which reads and resets it.
#[test]
fn the_exposition_reports_and_resets_the_longest_lock_hold() {
    let store = Store::new(options());
    push(&store, &key("j", &[]), true, "a 1\n", 1).unwrap();
    let held = store.lock_max_hold();
    assert!(held > Duration::ZERO, "the push held the lock");
    let mut w = ExpositionWriter::new(ExpositionFormat::Text);
    store.expose(&mut w, Vec::new());
    let text = String::from_utf8(w.finish()).unwrap();
    // The push's hold, or the exposition's own snapshot if that held the
    // lock longer (it is counted too): at least the push's.
    let reported: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("pushkit_store_lock_max_hold_seconds "))
        .unwrap_or_else(|| panic!("no lock hold in\n{text}"))
        .parse()
        .unwrap();
    assert!(
        reported >= held.as_secs_f64(),
        "{reported} < {held:?}\n{text}"
    );
    assert_eq!(
        text.matches("# TYPE pushkit_store_lock_max_hold_seconds gauge")
            .count(),
        1
    );
    // The exposition took the lock itself after the reset; nothing since.
    store.take_lock_max_hold();
    assert_eq!(store.lock_max_hold(), Duration::ZERO);
}

/// A snapshot keeps the state it was taken in: later pushes, deletes and
/// wipes copy what it shares instead of changing it.
#[test]
fn a_snapshot_is_not_changed_by_later_mutations() {
    let store = Store::new(options());
    let (a, b) = (key("a", &[]), key("b", &[]));
    push(&store, &a, true, "# TYPE m counter\nm 1\nn 1\n", 1).unwrap();
    push(&store, &b, true, "# TYPE m counter\nm 2\n", 1).unwrap();
    let text = |snapshot: &Snapshot| {
        let mut w = ExpositionWriter::new(ExpositionFormat::Text);
        super::exposition::write_snapshot(snapshot, &mut w);
        String::from_utf8(w.finish()).unwrap()
    };
    let before = store.snapshot();
    let want = text(&before);
    push(&store, &a, false, "# TYPE m counter\nm 10\n", 2).unwrap();
    push(&store, &a, true, "o 3\n", 3).unwrap();
    push(&store, &key("c", &[]), true, "# TYPE m counter\nm 4\n", 4).unwrap();
    store.delete(b.clone()).unwrap();
    assert_eq!(text(&before), want);
    let after = store.snapshot();
    store.wipe().unwrap();
    assert_eq!(text(&before), want);
    assert!(text(&after).contains("o{instance=\"\",job=\"a\"} 3\n"));
    assert!(!text(&after).contains("job=\"b\""));
    assert!(want.contains("m{instance=\"\",job=\"b\"} 2\n"), "{want}");
    assert!(!text(&store.snapshot()).contains("job="));
}

/// Scrapes while other threads push: every scrape shows each group as one
/// whole push left it (all its series carry the value of one push).
#[test]
fn scrapes_see_whole_pushes() {
    let store = Arc::new(Store::new(options()));
    let groups: Vec<GroupingKey> = (0..4).map(|i| key("j", &["g", &i.to_string()])).collect();
    let body = |v: i64| format!("# TYPE a counter\na{{x=\"1\"}} {v}\na{{x=\"2\"}} {v}\nb {v}\n");
    for k in &groups {
        push(&store, k, true, &body(0), 0).unwrap();
    }
    let pushers: Vec<_> = groups
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, k)| {
            let store = store.clone();
            std::thread::spawn(move || {
                for v in 1..=300 {
                    // PUT and POST by turns; a POST replaces both families.
                    push(&store, &k, (v + i as i64) % 2 == 0, &body(v), v).unwrap();
                }
            })
        })
        .collect();
    let mut seen = 0;
    while seen < 50 || !pushers.iter().all(|p| p.is_finished()) {
        seen += 1;
        let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in samples(&store) {
            if line.starts_with("push_") {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            let g = series
                .split("g=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            values
                .entry(g.to_string())
                .or_default()
                .push(value.to_string());
        }
        assert_eq!(values.len(), groups.len());
        for (g, v) in &values {
            assert_eq!(v.len(), 3, "group {g}: {v:?}");
            assert!(v.iter().all(|x| *x == v[0]), "group {g} half pushed: {v:?}");
        }
    }
    for p in pushers {
        p.join().unwrap();
    }
    assert!(has(&store, "b{g=\"0\",instance=\"\",job=\"j\"} 300"));
}

/// A PUT that keeps one family's series, changes another's, adds one and
/// leaves one out: the index follows each (kept series stay owned, the
/// others are free again), and the exposition shows the new state.
#[test]
fn a_put_keeps_changes_adds_and_drops_families() {
    let store = Store::new(options());
    let owner = key("j", &[]);
    let other = key("j", &["instance", "i"]);
    let first = "# TYPE a counter\na{instance=\"i\",x=\"1\"} 1\n# TYPE b gauge\nb{instance=\"i\"} 1\n# TYPE c counter\nc{instance=\"i\"} 1\n";
    push(&store, &owner, true, first, 1).unwrap();
    let second = "# TYPE a counter\na{instance=\"i\",x=\"1\"} 2\n# TYPE b gauge\nb{instance=\"i\",y=\"2\"} 3\n# TYPE d counter\nd{instance=\"i\"} 4\n";
    push(&store, &owner, true, second, 2).unwrap();
    assert_eq!(store.series_count(), 3);
    // b's old series and c are free; a's and d's are still the owner's.
    push(
        &store,
        &other,
        true,
        "# TYPE b gauge\nb 5\n# TYPE c counter\nc 6\n",
        3,
    )
    .unwrap();
    assert!(push(&store, &other, false, "# TYPE a counter\na{x=\"1\"} 7\n", 4).is_err());
    assert!(push(&store, &other, false, "# TYPE d counter\nd 7\n", 5).is_err());
    assert_eq!(store.series_count(), 5);
    let s: Vec<String> = samples(&store)
        .into_iter()
        .filter(|l| !l.starts_with("push_"))
        .collect();
    assert_eq!(
        s,
        [
            "a{instance=\"i\",job=\"j\",x=\"1\"} 2",
            // Fewer labels first, whichever group holds them.
            "b{instance=\"i\",job=\"j\"} 5",
            "b{instance=\"i\",job=\"j\",y=\"2\"} 3",
            "c{instance=\"i\",job=\"j\"} 6",
            "d{instance=\"i\",job=\"j\"} 4",
        ]
    );
}
