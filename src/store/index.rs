//! The consistency index: which groups hold each family name (and with
//! which type), and which group owns each series. The Pushgateway checks a
//! push by re-gathering everything it stores, O(total series); checking
//! against this index touches only the push's own families and series, so
//! a push costs the same with 10 groups stored as with 10,000.

use super::series::{series_id, IdHasher};
use crate::model::family::{Family, LabelStr, MetricType};
use crate::model::names::{escape_underscores, NameKind};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::Arc;

/// A slot in the store's group table.
pub type GroupId = u32;

/// One family name across the store. Cloned into every
/// [`super::Snapshot`]: the holders are shared with it, and copied only
/// when they change while a snapshot holds them.
#[derive(Debug, Clone)]
pub struct FamilyEntry {
    /// The type every holder agrees on (with the check on; with it off, the
    /// type of the first holder).
    pub kind: MetricType,
    /// Groups holding a family of this name, in id order (the exposition
    /// merges them in this order).
    pub holders: Arc<BTreeSet<GroupId>>,
    /// The agent's own metrics and the per-group push gauges: always
    /// present, with a fixed HELP.
    pub pinned_help: Option<&'static str>,
}

#[derive(Debug, Default)]
pub struct Index {
    /// Sorted by name, which is the exposition order. Names are shared
    /// with snapshots.
    families: BTreeMap<Arc<str>, FamilyEntry>,
    /// Series identity (family name + sorted labels, hashed) → owner.
    series: HashMap<SeriesKey, GroupId, BuildHasherDefault<IdHasher>>,
    /// Family names that underscore escaping changes (only `utf8_names`
    /// lets one in), by their escaped form.
    escaped: HashMap<String, Arc<str>>,
}

/// A series id as two u32 halves: with the u32 owner, a map entry takes
/// 12 bytes instead of the 16 a (u64, u32) pair pads to, a quarter of the
/// index's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SeriesKey([u32; 2]);

impl SeriesKey {
    fn new(id: u64) -> SeriesKey {
        SeriesKey([id as u32, (id >> 32) as u32])
    }
}

impl std::hash::Hash for SeriesKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(u64::from(self.0[0]) | (u64::from(self.0[1]) << 32));
    }
}

/// What the check needs to know of the pushing group.
pub struct Pusher<'a> {
    /// None when the group does not exist yet.
    pub id: Option<GroupId>,
    /// True when the group's own family of this name is gone once the push
    /// is applied (every family for PUT, the pushed names for POST).
    pub replaces: &'a dyn Fn(&str) -> bool,
}

/// A push's series ids, family by family, as [`family_ids`] computes them;
/// `None` for a family its group already holds with exactly the pushed
/// series: those were checked when stored and are indexed as its own, so
/// they are neither hashed, checked nor re-indexed.
pub type PushIds = [Option<Vec<u64>>];

impl Index {
    /// An index in which `pinned` names always exist, held by no group.
    pub fn new(pinned: &[(&str, MetricType, &'static str)]) -> Index {
        let mut index = Index::default();
        for (name, kind, help) in pinned {
            index.families.insert(
                Arc::from(*name),
                FamilyEntry {
                    kind: *kind,
                    holders: Arc::default(),
                    pinned_help: Some(help),
                },
            );
        }
        index
    }

    pub fn families(&self) -> impl Iterator<Item = (&Arc<str>, &FamilyEntry)> {
        self.families.iter()
    }

    pub fn family_count(&self) -> usize {
        self.families.len()
    }

    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// The type the name has outside what the push replaces, if any.
    fn type_elsewhere(&self, name: &str, pusher: &Pusher<'_>) -> Option<MetricType> {
        let entry = self.families.get(name)?;
        if entry.pinned_help.is_some() {
            return Some(entry.kind);
        }
        let mine = pusher.id.is_some_and(|id| entry.holders.contains(&id));
        let gone = mine && (pusher.replaces)(name);
        (entry.holders.len() > usize::from(gone)).then_some(entry.kind)
    }

    /// Checks that storing `push` (sanitized: grouping labels forced,
    /// labels sorted) keeps the exposition valid against what is stored:
    /// types, `_count`/`_sum`/`_bucket` collisions, series of other
    /// groups. Touches only the push's families and series (and of those
    /// only the ones `ids` has). The error says what collides and with
    /// what.
    pub fn check(&self, pusher: &Pusher<'_>, push: &[Family], ids: &PushIds) -> Result<(), String> {
        let pushed: HashMap<&str, MetricType> =
            push.iter().map(|f| (f.name.as_str(), f.kind)).collect();
        let type_of = |name: &str| {
            pushed
                .get(name)
                .copied()
                .or_else(|| self.type_elsewhere(name, pusher))
        };
        for (family, ids) in push.iter().zip(ids) {
            let name = family.name.as_str();
            if let Some(kind) = self.type_elsewhere(name, pusher) {
                if kind != family.kind {
                    return Err(format!(
                        "metric family {name:?} is pushed as {} but already exists as {}",
                        family.kind.as_str(),
                        kind.as_str()
                    ));
                }
            }
            check_suffixes(name, family.kind, &type_of)?;
            let Some(ids) = ids else {
                continue;
            };
            for (metric, id) in family.metrics.iter().zip(ids) {
                if let Some(owner) = self.series.get(&SeriesKey::new(*id)) {
                    if Some(*owner) != pusher.id {
                        return Err(format!(
                            "series {} is already pushed by another group",
                            describe(name, &metric.labels)
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// With UTF-8 names: refuses a pushed family whose name exposes, under
    /// the default (underscore) escaping, as another family's that stays
    /// stored or comes in the same push (`foo.bar` beside `foo_bar`), and
    /// a series with two label names that escape alike. Pushgateway 1.11
    /// takes both and then exposes two families (or labels) of one name.
    pub fn check_escaped_names(&self, pusher: &Pusher<'_>, push: &[Family]) -> Result<(), String> {
        let mut pushed: HashMap<Cow<'_, str>, &str> = HashMap::new();
        let collision = |name: &str, other: &str, escaped: &str| {
            Err(format!(
                "metric family {name:?} would be exposed as {escaped:?}, as {other:?} is, \
                 to a scraper that does not ask for UTF-8 names"
            ))
        };
        for family in push {
            let name = family.name.as_str();
            let escaped = escape_underscores(name, NameKind::Metric);
            if let Some(other) = pushed.insert(escaped.clone(), name) {
                if other != name {
                    return collision(name, other, &escaped);
                }
            }
            // A stored name that is the escaped form itself, or escapes to
            // it, other than this one.
            let stored = [
                Some(escaped.as_ref()),
                self.escaped.get(escaped.as_ref()).map(|raw| &**raw),
            ];
            for other in stored.into_iter().flatten() {
                if other != name && self.type_elsewhere(other, pusher).is_some() {
                    return collision(name, other, &escaped);
                }
            }
            for metric in &family.metrics {
                let mut seen: HashMap<Cow<'_, str>, &str> = HashMap::new();
                for (label, _) in &metric.labels {
                    let e = escape_underscores(label, NameKind::Label);
                    if let Some(other) = seen.insert(e.clone(), label) {
                        return Err(format!(
                            "label names {other:?} and {label:?} of series {} would both be \
                             exposed as {e:?} to a scraper that does not ask for UTF-8 names",
                            describe(name, &metric.labels)
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Records that group `id` now holds the family `name` with the
    /// series `ids` (see [`series_id`]).
    pub fn add(
        &mut self,
        id: GroupId,
        name: &str,
        kind: MetricType,
        ids: impl Iterator<Item = u64>,
    ) {
        if !self.families.contains_key(name) {
            self.families.insert(
                Arc::from(name),
                FamilyEntry {
                    kind,
                    holders: Arc::default(),
                    pinned_help: None,
                },
            );
        }
        let entry = self.families.get_mut(name).expect("inserted above");
        if entry.holders.is_empty() && entry.pinned_help.is_none() {
            entry.kind = kind;
        }
        if let Cow::Owned(escaped) = escape_underscores(name, NameKind::Metric) {
            if !self.escaped.contains_key(&escaped) {
                let (raw, _) = self.families.get_key_value(name).expect("inserted above");
                self.escaped.insert(escaped, raw.clone());
            }
        }
        let entry = self.families.get_mut(name).expect("inserted above");
        // Copies the holders only if a snapshot shares them and they change.
        if !entry.holders.contains(&id) {
            Arc::make_mut(&mut entry.holders).insert(id);
        }
        for sid in ids {
            self.series.insert(SeriesKey::new(sid), id);
        }
    }

    /// Records that group `id` no longer holds the family `name` with the
    /// series `ids`.
    pub fn remove(&mut self, id: GroupId, name: &str, ids: impl Iterator<Item = u64>) {
        for sid in ids {
            // With the check off another group may have taken the series.
            let sid = SeriesKey::new(sid);
            if self.series.get(&sid) == Some(&id) {
                self.series.remove(&sid);
            }
        }
        if let Some(entry) = self.families.get_mut(name) {
            if entry.holders.contains(&id) {
                Arc::make_mut(&mut entry.holders).remove(&id);
            }
            if entry.holders.is_empty() && entry.pinned_help.is_none() {
                self.families.remove(name);
                if let Cow::Owned(escaped) = escape_underscores(name, NameKind::Metric) {
                    if self.escaped.get(&escaped).is_some_and(|raw| &**raw == name) {
                        self.escaped.remove(&escaped);
                    }
                }
            }
        }
    }

    /// Forgets every group, keeping the pinned names.
    pub fn clear(&mut self) {
        self.series.clear();
        self.escaped.clear();
        self.families.retain(|_, e| {
            e.holders = Arc::default();
            e.pinned_help.is_some()
        });
    }
}

/// The series ids of a sanitized family.
pub fn family_ids(f: &Family) -> Vec<u64> {
    f.metrics
        .iter()
        .map(|m| metric_id(&f.name, &m.labels))
        .collect()
}

/// The checks that need nothing stored: unique, unreserved label names,
/// no explicit `quantile`/`le`, no series twice in the push. Only the
/// families `ids` has are checked.
pub fn check_alone(push: &[Family], ids: &PushIds) -> Result<(), String> {
    let total = ids.iter().flatten().map(Vec::len).sum();
    let mut seen: HashSet<u64, BuildHasherDefault<IdHasher>> =
        HashSet::with_capacity_and_hasher(total, BuildHasherDefault::default());
    for (family, ids) in push.iter().zip(ids) {
        let Some(ids) = ids else {
            continue;
        };
        for (metric, id) in family.metrics.iter().zip(ids) {
            check_labels(&family.name, family.kind, &metric.labels)?;
            if !seen.insert(*id) {
                return Err(format!(
                    "series {} appears twice in the push",
                    describe(&family.name, &metric.labels)
                ));
            }
        }
    }
    Ok(())
}

/// The `_count`, `_sum` and `_bucket` series of summaries and histograms
/// must not collide with another family, in either direction.
fn check_suffixes(
    name: &str,
    kind: MetricType,
    type_of: &dyn Fn(&str) -> Option<MetricType>,
) -> Result<(), String> {
    let collision = |other: &str| {
        Err(format!(
            "metric family {name:?} collides with the series of family {other:?}"
        ))
    };
    for suffix in ["_count", "_sum", "_bucket"] {
        if let Some(base) = name.strip_suffix(suffix) {
            match type_of(base) {
                Some(MetricType::Summary) if suffix != "_bucket" => return collision(base),
                Some(t) if t.is_histogram() => return collision(base),
                _ => {}
            }
        }
    }
    let suffixes: &[&str] = match kind {
        MetricType::Summary => &["_count", "_sum"],
        t if t.is_histogram() => &["_count", "_sum", "_bucket"],
        _ => &[],
    };
    for suffix in suffixes {
        let other = format!("{name}{suffix}");
        if type_of(&other).is_some() {
            return collision(&other);
        }
    }
    Ok(())
}

/// Unique label names, none reserved (`__`); no `quantile` on summaries nor `le` on
/// histograms (those labels are the exposition's own). Labels are sorted.
fn check_labels(
    name: &str,
    kind: MetricType,
    labels: &[(LabelStr, LabelStr)],
) -> Result<(), String> {
    for (i, (label, _)) in labels.iter().enumerate() {
        // The syntax of every name was checked where it entered: by the
        // text parser, the protobuf decoder or the grouping key's parser.
        if label.starts_with("__") {
            return Err(format!(
                "metric {name:?} has an invalid label name {label:?}"
            ));
        }
        if i > 0 && labels[i - 1].0 == *label {
            return Err(format!("metric {name:?} has the label {label:?} twice"));
        }
        let reserved = match kind {
            MetricType::Summary => label == "quantile",
            t if t.is_histogram() => label == "le",
            _ => false,
        };
        if reserved {
            return Err(format!(
                "{} metric {name:?} must not have an explicit {label:?} label",
                kind.as_str()
            ));
        }
    }
    Ok(())
}

/// The identity of a metric of a sanitized push.
fn metric_id(name: &str, labels: &[(LabelStr, LabelStr)]) -> u64 {
    series_id(name, labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn describe(name: &str, labels: &[(LabelStr, LabelStr)]) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expfmt::text::parse_text;

    /// Every family's ids: a push the store holds nothing of.
    fn push_ids(push: &[Family]) -> Vec<Option<Vec<u64>>> {
        push.iter().map(|f| Some(family_ids(f))).collect()
    }

    fn fams(text: &str) -> Vec<Family> {
        let mut f = parse_text(text.as_bytes()).unwrap();
        for fam in &mut f {
            for m in &mut fam.metrics {
                m.labels.sort();
            }
        }
        f
    }

    fn index_with(groups: &[(GroupId, &str)]) -> Index {
        let mut index = Index::new(&[("self_total", MetricType::Counter, "help")]);
        for (id, text) in groups {
            for f in fams(text) {
                let ids: Vec<u64> = f
                    .metrics
                    .iter()
                    .map(|m| metric_id(&f.name, &m.labels))
                    .collect();
                index.add(*id, &f.name, f.kind, ids.into_iter());
            }
        }
        index
    }

    fn check(
        index: &Index,
        id: Option<GroupId>,
        replace_all: bool,
        text: &str,
    ) -> Result<(), String> {
        let push = fams(text);
        let names: Vec<String> = push.iter().map(|f| f.name.clone()).collect();
        let replaces = move |n: &str| replace_all || names.iter().any(|x| x == n);
        let ids = push_ids(&push);
        check_alone(&push, &ids)?;
        index.check(
            &Pusher {
                id,
                replaces: &replaces,
            },
            &push,
            &ids,
        )
    }

    #[test]
    fn type_conflicts() {
        let index = index_with(&[(1, "# TYPE a counter\na{job=\"x\"} 1\n")]);
        assert!(check(&index, Some(2), true, "# TYPE a gauge\na{job=\"y\"} 1\n").is_err());
        assert!(check(&index, Some(2), true, "# TYPE a counter\na{job=\"y\"} 1\n").is_ok());
        // The only holder replaces its own family: any type goes.
        assert!(check(&index, Some(1), false, "# TYPE a gauge\na{job=\"x\"} 1\n").is_ok());
        // Pinned names keep their type.
        assert!(check(
            &index,
            None,
            true,
            "# TYPE self_total gauge\nself_total 1\n"
        )
        .is_err());
        assert!(check(
            &index,
            None,
            true,
            "# TYPE self_total counter\nself_total{job=\"q\"} 1\n"
        )
        .is_ok());
    }

    #[test]
    fn series_owned_by_another_group() {
        let index = index_with(&[(1, "a{instance=\"i\",job=\"x\"} 1\n")]);
        assert!(check(&index, Some(2), true, "a{instance=\"i\",job=\"x\"} 2\n").is_err());
        assert!(check(&index, Some(1), true, "a{instance=\"i\",job=\"x\"} 2\n").is_ok());
        assert!(check(&index, Some(2), true, "a{instance=\"j\",job=\"x\"} 2\n").is_ok());
    }

    #[test]
    fn suffix_collisions() {
        let index = index_with(&[(
            1,
            "# TYPE s summary\ns_sum{job=\"x\"} 1\ns_count{job=\"x\"} 1\n",
        )]);
        assert!(check(&index, Some(2), true, "s_count{job=\"y\"} 1\n").is_err());
        assert!(check(&index, Some(2), true, "s_bucket{job=\"y\"} 1\n").is_ok());
        let index = index_with(&[(1, "h_bucket{job=\"x\"} 1\n")]);
        assert!(check(
            &index,
            Some(2),
            true,
            "# TYPE h histogram\nh_bucket{job=\"y\",le=\"+Inf\"} 1\nh_sum{job=\"y\"} 1\nh_count{job=\"y\"} 1\n"
        )
        .is_err());
        // POST by the holder that keeps h_bucket collides; PUT replaces it.
        let h = "# TYPE h histogram\nh_bucket{job=\"x\",le=\"+Inf\"} 1\nh_sum{job=\"x\"} 1\nh_count{job=\"x\"} 1\n";
        assert!(check(&index, Some(1), false, h).is_err());
        assert!(check(&index, Some(1), true, h).is_ok());
        // Within one push too.
        let index = index_with(&[]);
        let mut push = fams(h);
        push.extend(fams("# TYPE h_count gauge\nh_count 2\n"));
        let all = |_: &str| true;
        let pusher = Pusher {
            id: None,
            replaces: &all,
        };
        assert!(index.check(&pusher, &push, &push_ids(&push)).is_err());
    }

    #[test]
    fn labels_within_the_push() {
        let index = index_with(&[]);
        assert!(check(&index, None, true, "a{job=\"x\"} 1\na{job=\"x\"} 2\n").is_err());
        let push = vec![Family {
            name: "s".into(),
            help: None,
            kind: MetricType::Summary,
            metrics: vec![crate::model::family::Metric {
                labels: vec![("quantile".into(), "0.5".into())],
                value: crate::model::family::Value::Summary(Default::default()),
                timestamp_ms: None,
                exemplar: None,
            }],
        }];
        let none = |_: &str| true;
        let pusher = Pusher {
            id: None,
            replaces: &none,
        };
        let both = |p: &[Family]| {
            let ids = push_ids(p);
            check_alone(p, &ids).and_then(|()| index.check(&pusher, p, &ids))
        };
        assert!(both(&push).unwrap_err().contains("quantile"));
        let mut dup = push.clone();
        dup[0].kind = MetricType::Untyped;
        dup[0].metrics[0].value = crate::model::family::Value::Simple(1.0);
        dup[0].metrics[0].labels = vec![("a".into(), "1".into()), ("a".into(), "2".into())];
        assert!(both(&dup).unwrap_err().contains("twice"));
        dup[0].metrics[0].labels = vec![("__a".into(), "1".into())];
        assert!(both(&dup).unwrap_err().contains("invalid"));
    }

    #[test]
    fn removal_frees_names_and_series() {
        let mut index = index_with(&[(1, "# TYPE a counter\na{job=\"x\"} 1\n")]);
        for f in fams("# TYPE a counter\na{job=\"x\"} 1\n") {
            let ids: Vec<u64> = f
                .metrics
                .iter()
                .map(|m| metric_id(&f.name, &m.labels))
                .collect();
            index.remove(1, &f.name, ids.into_iter());
        }
        assert_eq!(index.series_count(), 0);
        assert!(check(&index, Some(2), true, "# TYPE a gauge\na{job=\"x\"} 1\n").is_ok());
        index.clear();
        assert_eq!(index.families().count(), 1, "pinned names stay");
    }
}
