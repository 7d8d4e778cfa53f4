//! What a push becomes before the store sees it: the grouping labels
//! forced onto every series, `instance=""` added where absent, labels
//! sorted by name, timestamps dropped, and the families the store keeps
//! itself (or that Go's parser would drop) left out.

use crate::model::family::{cmp_names, names_sorted, Family, LabelStr};
use crate::model::GroupingKey;

/// The per-group gauges the store maintains; a pushed family of the same
/// name is ignored by the store, as the Pushgateway overwrites it.
pub const PUSH_TIME: &str = "push_time_seconds";
pub const PUSH_FAILURE_TIME: &str = "push_failure_time_seconds";
pub const PUSH_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway succeeded.";
pub const PUSH_FAILURE_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway failed.";

/// Normalises `families` in place for storage under `key`. Only
/// [`super::Store::prepare`] calls it: the store sanitizes what it is
/// given itself.
pub(super) fn sanitize(key: &GroupingKey, families: &mut Vec<Family>) {
    // Go's text parser drops families without samples, so an empty family
    // neither replaces nor claims a name.
    families
        .retain(|f| !f.metrics.is_empty() && f.name != PUSH_TIME && f.name != PUSH_FAILURE_TIME);
    let forced = ForcedLabels::new(key.labels());
    for family in families.iter_mut() {
        for metric in &mut family.metrics {
            metric.timestamp_ms = None;
            force_labels(&mut metric.labels, &forced);
        }
    }
}

/// The labels every series of a group gets, sorted by name: the grouping
/// labels, which replace a body label of the same name, and, when the
/// grouping has no `instance`, a weak `instance=""` that only fills in for
/// a body without one. Built once per push.
pub struct ForcedLabels(Vec<Forced>);

struct Forced {
    name: LabelStr,
    value: LabelStr,
    /// False for the `instance=""` filled in: a body's instance wins.
    strong: bool,
}

impl ForcedLabels {
    pub fn new(grouping: &[(String, String)]) -> ForcedLabels {
        let mut forced: Vec<Forced> = grouping
            .iter()
            .map(|(k, v)| Forced {
                name: LabelStr::from(k.as_str()),
                value: LabelStr::from(v.as_str()),
                strong: true,
            })
            .collect();
        if !grouping.iter().any(|(k, _)| k == "instance") {
            forced.push(Forced {
                name: LabelStr::const_new("instance"),
                value: LabelStr::const_new(""),
                strong: false,
            });
        }
        forced.sort_by(|a, b| cmp_names(&a.name, &b.name));
        ForcedLabels(forced)
    }
}

/// Sets every grouping label (overwriting a body label of the same name),
/// adds `instance=""` when there is no instance label, and sorts by name.
/// Duplicate body labels are kept so that the consistency check sees them.
pub fn force_labels(labels: &mut Vec<(LabelStr, LabelStr)>, forced: &ForcedLabels) {
    let pair = |f: &Forced| (f.name.clone(), f.value.clone());
    // Clients write labels sorted (and once each): then one merge of two
    // sorted lists, with no search and no sort.
    if names_sorted(labels) {
        let mut merged = Vec::with_capacity(labels.len() + forced.0.len());
        let mut next = forced.0.iter().peekable();
        for (name, value) in labels.drain(..) {
            while let Some(f) = next.next_if(|f| cmp_names(&f.name, &name).is_lt()) {
                merged.push(pair(f));
            }
            match next.next_if(|f| f.name == name) {
                Some(f) if f.strong => merged.push(pair(f)),
                _ => merged.push((name, value)),
            }
        }
        merged.extend(next.map(pair));
        *labels = merged;
        return;
    }
    for f in &forced.0 {
        match labels.iter_mut().find(|(k, _)| *k == f.name) {
            Some(slot) if f.strong => slot.1 = f.value.clone(),
            Some(_) => {}
            None => labels.push(pair(f)),
        }
    }
    labels.sort_by(|a, b| cmp_names(&a.0, &b.0));
}

/// The labels of a group's own gauges: its grouping labels plus
/// `instance=""` when absent, sorted.
pub fn group_series_labels(key: &GroupingKey) -> Vec<(LabelStr, LabelStr)> {
    let mut labels = Vec::with_capacity(key.labels().len() + 1);
    force_labels(&mut labels, &ForcedLabels::new(key.labels()));
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expfmt::text::parse_text;
    use crate::model::GroupingKey;

    fn l(pairs: &[(&str, &str)]) -> Vec<(LabelStr, LabelStr)> {
        pairs
            .iter()
            .map(|(k, v)| (LabelStr::from(*k), LabelStr::from(*v)))
            .collect()
    }

    #[test]
    fn grouping_labels_win_and_instance_is_added() {
        let key = GroupingKey::from_pairs("j", &["zone", "eu"]);
        let mut fams = parse_text(
            b"a{job=\"other\",b=\"1\"} 1 1700000000000\n# TYPE empty counter\npush_time_seconds 3\n",
        )
        .unwrap();
        sanitize(&key, &mut fams);
        assert_eq!(fams.len(), 1, "empty family and push_time_seconds dropped");
        let m = &fams[0].metrics[0];
        assert_eq!(
            m.labels,
            l(&[("b", "1"), ("instance", ""), ("job", "j"), ("zone", "eu")])
        );
        assert_eq!(m.timestamp_ms, None);
    }

    #[test]
    fn body_instance_is_kept_unless_grouped() {
        let key = GroupingKey::from_pairs("j", &[]);
        let mut labels = l(&[("instance", "i1")]);
        force_labels(&mut labels, &ForcedLabels::new(key.labels()));
        assert_eq!(labels, l(&[("instance", "i1"), ("job", "j")]));
        let key = GroupingKey::from_pairs("j", &["instance", "g"]);
        let mut labels = l(&[("instance", "i1")]);
        force_labels(&mut labels, &ForcedLabels::new(key.labels()));
        assert_eq!(labels, l(&[("instance", "g"), ("job", "j")]));
        assert_eq!(
            group_series_labels(&key),
            l(&[("instance", "g"), ("job", "j")])
        );
    }

    #[test]
    fn sorted_and_unsorted_bodies_give_the_same_labels() {
        let key = GroupingKey::from_pairs("j", &["zone", "eu", "b", "2"]);
        let want = l(&[
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("instance", ""),
            ("job", "j"),
            ("zone", "eu"),
        ]);
        for body in [
            &[("a", "1"), ("b", "x"), ("c", "3")][..],
            &[("c", "3"), ("a", "1"), ("b", "x")],
        ] {
            let mut labels = l(body);
            force_labels(&mut labels, &ForcedLabels::new(key.labels()));
            assert_eq!(labels, want, "{body:?}");
        }
        // A repeated name is kept, for the check to refuse.
        let mut labels = l(&[("a", "1"), ("a", "2")]);
        force_labels(&mut labels, &ForcedLabels::new(key.labels()));
        assert_eq!(labels.iter().filter(|(k, _)| k == "a").count(), 2);
    }
}
