//! What a push becomes before the store sees it: the grouping labels
//! forced onto every series, `instance=""` added where absent, labels
//! sorted by name, timestamps dropped, and the families the store keeps
//! itself (or that Go's parser would drop) left out.

use crate::expfmt::model::{cmp_names, names_sorted, Family, LabelStr};
use crate::pushgateway::grouping::GroupingKey;

/// The per-group gauges the store maintains; a pushed family of the same
/// name is ignored by the store, as the Pushgateway overwrites it.
pub const PUSH_TIME: &str = "push_time_seconds";
pub const PUSH_FAILURE_TIME: &str = "push_failure_time_seconds";
pub const PUSH_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway succeeded.";
pub const PUSH_FAILURE_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway failed.";

/// Normalises `families` in place for storage under `key`.
pub fn sanitize(key: &GroupingKey, families: &mut Vec<Family>) {
    // Go's text parser drops families without samples, so an empty family
    // neither replaces nor claims a name.
    families
        .retain(|f| !f.metrics.is_empty() && f.name != PUSH_TIME && f.name != PUSH_FAILURE_TIME);
    for family in families.iter_mut() {
        for metric in &mut family.metrics {
            metric.timestamp_ms = None;
            force_labels(&mut metric.labels, key.labels());
        }
    }
}

/// Sets every grouping label (overwriting a body label of the same name),
/// adds `instance=""` when there is no instance label, and sorts by name.
/// Duplicate body labels are kept so that the consistency check sees them.
pub fn force_labels(labels: &mut Vec<(LabelStr, LabelStr)>, grouping: &[(String, String)]) {
    // Clients write labels sorted: then each forced label goes where it
    // sorts, with no sort afterwards.
    if names_sorted(labels) {
        for (name, value) in grouping {
            match labels.binary_search_by(|(k, _)| cmp_names(k, name)) {
                Ok(i) => labels[i].1 = LabelStr::from(value.as_str()),
                Err(i) => labels.insert(
                    i,
                    (
                        LabelStr::from(name.as_str()),
                        LabelStr::from(value.as_str()),
                    ),
                ),
            }
        }
        if let Err(i) = labels.binary_search_by(|(k, _)| cmp_names(k, "instance")) {
            labels.insert(
                i,
                (LabelStr::const_new("instance"), LabelStr::const_new("")),
            );
        }
        return;
    }
    for (name, value) in grouping {
        match labels.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = LabelStr::from(value.as_str()),
            None => labels.push((
                LabelStr::from(name.as_str()),
                LabelStr::from(value.as_str()),
            )),
        }
    }
    if !labels.iter().any(|(k, _)| k == "instance") {
        labels.push((LabelStr::const_new("instance"), LabelStr::const_new("")));
    }
    labels.sort_by(|a, b| cmp_names(&a.0, &b.0));
}

/// The labels of a group's own gauges: its grouping labels plus
/// `instance=""` when absent, sorted.
pub fn group_series_labels(key: &GroupingKey) -> Vec<(LabelStr, LabelStr)> {
    let mut labels = Vec::with_capacity(key.labels().len() + 1);
    force_labels(&mut labels, key.labels());
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expfmt::text::parse_text;
    use crate::pushgateway::grouping::parse_grouping_key;

    fn l(pairs: &[(&str, &str)]) -> Vec<(LabelStr, LabelStr)> {
        pairs
            .iter()
            .map(|(k, v)| (LabelStr::from(*k), LabelStr::from(*v)))
            .collect()
    }

    #[test]
    fn grouping_labels_win_and_instance_is_added() {
        let key = parse_grouping_key("j", false, &["zone", "eu"]).unwrap();
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
        let key = parse_grouping_key("j", false, &[]).unwrap();
        let mut labels = l(&[("instance", "i1")]);
        force_labels(&mut labels, key.labels());
        assert_eq!(labels, l(&[("instance", "i1"), ("job", "j")]));
        let key = parse_grouping_key("j", false, &["instance", "g"]).unwrap();
        let mut labels = l(&[("instance", "i1")]);
        force_labels(&mut labels, key.labels());
        assert_eq!(labels, l(&[("instance", "g"), ("job", "j")]));
        assert_eq!(
            group_series_labels(&key),
            l(&[("instance", "g"), ("job", "j")])
        );
    }

    #[test]
    fn sorted_and_unsorted_bodies_give_the_same_labels() {
        let key = parse_grouping_key("j", false, &["zone", "eu", "b", "2"]).unwrap();
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
            force_labels(&mut labels, key.labels());
            assert_eq!(labels, want, "{body:?}");
        }
        // A repeated name is kept, for the check to refuse.
        let mut labels = l(&[("a", "1"), ("a", "2")]);
        force_labels(&mut labels, key.labels());
        assert_eq!(labels.iter().filter(|(k, _)| k == "a").count(), 2);
    }
}
