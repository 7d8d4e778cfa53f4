//! `GET P/metrics` from the store: every group's families merged by name,
//! one HELP and one TYPE per family, families sorted by name (the index
//! keeps them sorted, so nothing is re-sorted per scrape), the per-group
//! push gauges, and the agent's own metrics, among them the store's own:
//! the longest hold of its lock since the previous exposition.
//!
//! It is written from a [`Snapshot`], without the store lock: a scrape
//! holds up pushes only while the snapshot is taken (O(groups + family
//! names)), not while 1M series are written (about 0.35 s), and shows the
//! store as some sequence of whole mutations left it. For the same state
//! the bytes are those written under the lock before: the same families in
//! the same order, holders in id order.

use super::sanitize::{group_series_labels, PUSH_FAILURE_TIME, PUSH_TIME};
use super::{Snapshot, Store};
use crate::expfmt::expose::ExpositionWriter;
use crate::metrics::{
    CATALOG, STORE_GROUPS, STORE_LOCK_MAX_HOLD, STORE_MAX_GROUPS, STORE_MAX_SERIES, STORE_SERIES,
};
use crate::model::family::{Family, Metric, MetricType, Value};
use std::collections::BTreeMap;

impl Store {
    /// Writes the whole exposition; `own` are the agent's own metrics, to
    /// which the store adds its lock's longest hold since the previous
    /// exposition (and resets it).
    pub fn expose(&self, writer: &mut ExpositionWriter, mut own: Vec<Family>) {
        let snapshot = self.snapshot();
        // After the snapshot, so that its own hold is counted in it.
        let held = self.take_lock_max_hold();
        set_gauge(&mut own, STORE_LOCK_MAX_HOLD, held.as_secs_f64());
        let groups = snapshot.groups().count();
        let series: usize = snapshot
            .groups()
            .flat_map(|g| g.families.values())
            .map(|f| f.series_count())
            .sum();
        set_gauge(&mut own, STORE_GROUPS, groups as f64);
        set_gauge(&mut own, STORE_SERIES, series as f64);
        set_gauge(&mut own, STORE_MAX_GROUPS, self.options.max_groups as f64);
        set_gauge(&mut own, STORE_MAX_SERIES, self.options.max_series as f64);
        write_merged(&snapshot, writer, own);
    }
}

/// Gives the own gauge `name` (of the catalog) the one value `v`.
fn set_gauge(own: &mut Vec<Family>, name: &'static str, v: f64) {
    let metric = Metric {
        labels: Vec::new(),
        value: Value::Simple(v),
        timestamp_ms: None,
        exemplar: None,
    };
    match own.iter_mut().find(|f| f.name == name) {
        Some(f) => f.metrics = vec![metric],
        None => own.push(Family {
            name: name.to_string(),
            help: CATALOG
                .iter()
                .find(|d| d.name == name)
                .map(|d| d.help.to_string()),
            kind: MetricType::Gauge,
            metrics: vec![metric],
        }),
    }
}

/// The stored groups of `snapshot` alone, without own metrics.
#[cfg(test)]
pub(super) fn write_snapshot(snapshot: &Snapshot, writer: &mut ExpositionWriter) {
    write_merged(snapshot, writer, Vec::new());
}

/// The agent's own metrics alone, for when the store is off.
pub fn expose_own(writer: &mut ExpositionWriter, mut own: Vec<Family>) {
    own.sort_by(|a, b| a.name.cmp(&b.name));
    for f in &own {
        writer.write_family(&f.name, f.help.as_deref(), f.kind, f.metrics.iter());
    }
}

fn write_merged(snapshot: &Snapshot, writer: &mut ExpositionWriter, own: Vec<Family>) {
    let mut own: BTreeMap<String, Family> = own.into_iter().map(|f| (f.name.clone(), f)).collect();
    let group = |id| snapshot.group(id);
    for (name, entry) in snapshot.families() {
        // Own metrics the index does not pin are written in order too.
        while own.keys().next().is_some_and(|n| n.as_str() < name) {
            let (_, f) = own.pop_first().expect("a first key exists");
            writer.write_family(&f.name, f.help.as_deref(), f.kind, f.metrics.iter());
        }
        if name == PUSH_TIME || name == PUSH_FAILURE_TIME {
            let gauges: Vec<Metric> = snapshot
                .groups()
                .map(|g| Metric {
                    labels: group_series_labels(&g.key),
                    value: Value::Simple(
                        if name == PUSH_TIME {
                            g.push_ns
                        } else {
                            g.failure_ns
                        } as f64
                            / 1e9,
                    ),
                    timestamp_ms: None,
                    exemplar: None,
                })
                .collect();
            writer.write_family(name, entry.pinned_help, MetricType::Gauge, gauges.iter());
            continue;
        }
        let help = entry.pinned_help.or_else(|| {
            entry
                .holders
                .iter()
                .find_map(|id| group(*id).families.get(name)?.help.as_deref())
        });
        let mut family = writer.begin_family(name, help, entry.kind);
        if let Some(f) = own.remove(name) {
            let mut labels: Vec<(&str, &str)> = Vec::new();
            for m in &f.metrics {
                labels.clear();
                labels.extend(m.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                family.series(&labels, &m.value, m.exemplar.as_deref());
            }
        }
        let mut labels: Vec<(&str, &str)> = Vec::new();
        for id in entry.holders.iter() {
            let g = group(*id);
            let Some(stored) = g.families.get(name) else {
                continue;
            };
            for series in stored.series() {
                series.labels(&g.labels, &mut labels);
                family.series(&labels, series.value(), series.exemplar());
            }
        }
    }
    for f in own.values() {
        writer.write_family(&f.name, f.help.as_deref(), f.kind, f.metrics.iter());
    }
}
