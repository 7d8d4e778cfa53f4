//! The order in which `GET /metrics` writes a family's series: by their
//! labels, as the Go Pushgateway's gatherer sorts them (client_golang's
//! `metricSorter`): fewer labels first, then the label values position by
//! position, in byte order. Series alike in every value (they differ in
//! label names only) keep holder order, then push order; Go leaves their
//! order to its unstable sort.
//!
//! Sorting every family at every scrape would cost about 0.3 s at 1M
//! stored series (as byte keys; comparing label by label took 1.1 s),
//! against scenario d's 0.5 s for the whole scrape. A
//! family's order changes only when the series of a holder change, not
//! when their values do, and re-pushing the same series is the common case.
//! So each family's order is cached, 4 bytes a series, with the holders
//! and shapes (`StoredFamily::shape`) it was built from. A scrape compares those, O(holders), and sorts again only a
//! family whose holders or their series changed.
//!
//! Invariant: an order is used only for exactly the holders, shapes and
//! series counts it was built from, so every run indexes series that
//! exist.

use super::index::GroupId;
use super::series::{GroupLabels, StoredFamily};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Go's `metricSorter` on two label sets: fewer labels first, then the
/// values by position.
pub fn cmp_label_values<K1, V1, K2, V2>(a: &[(K1, V1)], b: &[(K2, V2)]) -> Ordering
where
    V1: AsRef<str>,
    V2: AsRef<str>,
{
    a.len()
        .cmp(&b.len())
        .then_with(|| (a.iter().map(|(_, v)| v.as_ref())).cmp(b.iter().map(|(_, v)| v.as_ref())))
}

/// One holder of a family, as the exposition reads it.
pub struct Holder<'a> {
    pub id: GroupId,
    pub labels: &'a GroupLabels,
    pub family: &'a StoredFamily,
}

/// What an order was built from, holder by holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Built {
    id: GroupId,
    shape: u64,
    series: usize,
}

impl Built {
    fn of(h: &Holder<'_>) -> Built {
        Built {
            id: h.id,
            shape: h.family.shape(),
            series: h.family.series_count(),
        }
    }
}

/// One family's series, in exposition order: each series by its index
/// among all the holders' series (the first holder's first, then the
/// second's), 4 bytes a series.
#[derive(Debug)]
pub struct FamilyOrder {
    built: Vec<Built>,
    /// Where each holder's series start in that numbering, and the total.
    starts: Vec<u32>,
    /// The series count of every holder, when they all have the same
    /// (many instances pushing one job's families): a division then finds
    /// a series' holder, not a binary search.
    uniform: Option<u32>,
    order: Box<[u32]>,
}

impl FamilyOrder {
    /// The series in order, each as (holder, index among its series).
    pub fn series(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let mut holder = 0;
        self.order.iter().map(move |&at| {
            if let Some(n) = self.uniform {
                return ((at / n) as usize, (at % n) as usize);
            }
            // Consecutive series often share a holder: look further only
            // when this one is not in the last one's.
            if !(self.starts[holder]..self.starts[holder + 1]).contains(&at) {
                holder = self.starts.partition_point(|&s| s <= at) - 1;
            }
            (holder, (at - self.starts[holder]) as usize)
        })
    }

    fn fits(&self, holders: &[Holder<'_>]) -> bool {
        self.built.len() == holders.len()
            && self
                .built
                .iter()
                .zip(holders)
                .all(|(b, h)| *b == Built::of(h))
    }
}
/// The orders of the families scraped last, by name. Scrapes share it;
/// its lock is held for a lookup or an insert, never for a sort.
#[derive(Debug, Default)]
pub struct OrderCache {
    families: Mutex<HashMap<Box<str>, Arc<FamilyOrder>>>,
}

impl OrderCache {
    /// The order of family `name`'s series across `holders` (in the
    /// index's holder order): the cached one if it was built from exactly
    /// these holders and shapes, else a new one, cached.
    pub fn order(&self, name: &str, holders: &[Holder<'_>]) -> Arc<FamilyOrder> {
        let cached = self.lock().get(name).cloned();
        if let Some(order) = cached.filter(|o| o.fits(holders)) {
            return order;
        }
        let order = Arc::new(sort(holders));
        self.lock().insert(name.into(), order.clone());
        order
    }

    /// Forgets the families `keep` refuses: those no longer stored.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.lock().retain(|name, _| keep(name));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Arc<FamilyOrder>>> {
        // The map holds no invariant a panic could break half-way.
        self.families.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Sorts the series of `holders` (see the module doc).
fn sort(holders: &[Holder<'_>]) -> FamilyOrder {
    let mut starts = Vec::with_capacity(holders.len() + 1);
    let mut total = 0u32;
    for h in holders {
        starts.push(total);
        let n = u32::try_from(h.family.series_count()).expect("far fewer than 4G series");
        total = total.checked_add(n).expect("far fewer than 4G series");
    }
    starts.push(total);
    // Every series' sort key, one after another in one buffer, so that a
    // comparison is one memcmp over memory read in order.
    let mut keys: Vec<u8> = Vec::with_capacity(total as usize * 32);
    let mut ends: Vec<usize> = Vec::with_capacity(total as usize);
    let mut labels = Vec::new();
    for holder in holders {
        for series in holder.family.series() {
            series.labels(holder.labels, &mut labels);
            push_key(&mut keys, &labels);
            ends.push(keys.len());
        }
    }
    let key = |i: u32| {
        let i = i as usize;
        &keys[if i == 0 { 0 } else { ends[i - 1] }..ends[i]]
    };
    let mut order: Vec<u32> = (0..total).collect();
    // Equal keys keep holder order, then push order.
    order.sort_unstable_by(|&a, &b| key(a).cmp(key(b)).then(a.cmp(&b)));
    let first = starts.get(1).copied().unwrap_or(0);
    let uniform = (first > 0 && starts.windows(2).all(|w| w[1] - w[0] == first)).then_some(first);
    FamilyOrder {
        built: holders.iter().map(Built::of).collect(),
        starts,
        uniform,
        order: order.into_boxed_slice(),
    }
}

/// Appends the sort key of a series whose labels are `labels`: bytes
/// that compare as [`cmp_label_values`] compares label sets. The label
/// count comes first (big-endian); each value follows, its NUL bytes
/// written as `00 01` and closed by `00 00`, so that a value sorts before
/// every longer value it starts.
fn push_key(out: &mut Vec<u8>, labels: &[(&str, &str)]) {
    let count = u32::try_from(labels.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_be_bytes());
    for (_, v) in labels {
        let v = v.as_bytes();
        if v.contains(&0) {
            for &b in v {
                if b == 0 {
                    out.extend_from_slice(&[0, 1]);
                } else {
                    out.push(b);
                }
            }
        } else {
            out.extend_from_slice(v);
        }
        out.extend_from_slice(&[0, 0]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expfmt::text::parse_text;
    use crate::model::GroupingKey;
    use crate::store::sanitize::sanitize;

    fn pack(instance: &str, text: &str) -> (GroupLabels, StoredFamily) {
        let key = GroupingKey::from_pairs("j", &["instance", instance]);
        let mut families = parse_text(text.as_bytes()).unwrap();
        sanitize(&key, &mut families);
        let labels = GroupLabels::new(&key);
        let family = StoredFamily::pack(&families[0], &labels, 1);
        (labels, family)
    }

    /// Holders of `parts`, with ids by position.
    fn holders_of<'a>(parts: &[&'a (GroupLabels, StoredFamily)]) -> Vec<Holder<'a>> {
        (parts.iter().enumerate())
            .map(|(id, (labels, family))| Holder {
                id: id as GroupId,
                labels,
                family,
            })
            .collect()
    }

    /// The series of `holders` in the order's order, as `label=value`
    /// lists.
    fn written(order: &FamilyOrder, holders: &[Holder<'_>]) -> Vec<String> {
        let mut out = Vec::new();
        let mut labels = Vec::new();
        for (h, i) in order.series() {
            let h = &holders[h];
            let s = h.family.series_range(i..i + 1).next().unwrap();
            s.labels(h.labels, &mut labels);
            let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push(l.join(","));
        }
        out
    }

    #[test]
    fn series_interleave_across_groups_by_label_values() {
        let b = pack("b", "m{code=\"500\"} 1\nm{code=\"200\"} 2\n");
        let a = pack("a", "m{code=\"404\"} 1\nm{code=\"200\"} 2\nm 3\n");
        let holders = holders_of(&[&b, &a]);
        let cache = OrderCache::default();
        let order = cache.order("m", &holders);
        assert_eq!(
            written(&order, &holders),
            [
                // Fewer labels first.
                "instance=a,job=j",
                "code=200,instance=a,job=j",
                "code=200,instance=b,job=j",
                "code=404,instance=a,job=j",
                "code=500,instance=b,job=j",
            ]
        );
        // The same holders and shapes: the cached order itself.
        assert!(Arc::ptr_eq(&order, &cache.order("m", &holders)));
        // New values, same series: still the cached order.
        let a2 = pack("a", "m{code=\"404\"} 7\nm{code=\"200\"} 8\nm 9\n");
        let again = holders_of(&[&b, &a2]);
        assert!(Arc::ptr_eq(&order, &cache.order("m", &again)));
        // Other series: sorted again.
        let a3 = pack("a", "m{code=\"100\"} 1\n");
        let changed = holders_of(&[&b, &a3]);
        let order = cache.order("m", &changed);
        assert_eq!(
            written(&order, &changed),
            [
                "code=100,instance=a,job=j",
                "code=200,instance=b,job=j",
                "code=500,instance=b,job=j",
            ]
        );
        // The same family bytes in a group of other labels (an id reused
        // after a delete) is another shape.
        let c = pack("0", "m{code=\"404\"} 1\nm{code=\"200\"} 2\nm 3\n");
        assert_ne!(c.1.shape(), a.1.shape());
        cache.retain(|n| n != "m");
        assert!(cache.lock().is_empty());
    }

    /// The byte keys order label sets exactly as Go's rule does, NUL
    /// bytes and prefixes included.
    #[test]
    fn keys_compare_as_the_rule() {
        let sets: Vec<Vec<(&str, &str)>> = [
            &["a"][..],
            &["a\0"],
            &["a\0b"],
            &["a\u{1}"],
            &["ab"],
            &["b"],
            &[""],
            &["", ""],
            &["", "a"],
            &["a", ""],
            &["a\0", ""],
            &["a", "\0"],
            &["ü", "a"],
            &["z", "z", "z"],
        ]
        .iter()
        .map(|vs| vs.iter().map(|v| ("k", *v)).collect())
        .collect();
        let key = |l: &[(&str, &str)]| {
            let mut k = Vec::new();
            push_key(&mut k, l);
            k
        };
        for a in &sets {
            for b in &sets {
                assert_eq!(
                    key(a).cmp(&key(b)),
                    cmp_label_values(a, b),
                    "{a:?} against {b:?}"
                );
            }
        }
    }

    #[test]
    fn metric_sorter_rule() {
        fn l<'a>(v: &[&'a str]) -> Vec<(&'static str, &'a str)> {
            v.iter().map(|v| ("k", *v)).collect()
        }
        assert_eq!(
            cmp_label_values(&l(&["z"]), &l(&["a", "a"])),
            Ordering::Less
        );
        assert_eq!(
            cmp_label_values(&l(&["a", "b"]), &l(&["a", "a"])),
            Ordering::Greater
        );
        assert_eq!(cmp_label_values(&l(&["B"]), &l(&["a"])), Ordering::Less);
        assert_eq!(cmp_label_values(&l(&["a"]), &l(&["a"])), Ordering::Equal);
    }
}
