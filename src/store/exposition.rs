//! `GET P/metrics` from the store: every group's families merged by name,
//! one HELP and one TYPE per family, families sorted by name (the index
//! keeps them sorted, so nothing is re-sorted per scrape), each family's
//! series sorted by their labels as the Pushgateway sorts them (cached per
//! family, see `order`), the per-group push gauges, and the agent's own
//! metrics, among them the store's own: the longest hold of its lock
//! since the previous exposition.
//!
//! It is written from a [`Snapshot`], without the store lock: a scrape
//! holds up pushes only while the snapshot is taken (O(groups + family
//! names)), not while 1M series are written (about 0.35 s), and shows the
//! store as some sequence of whole mutations left it.

use super::order::{cmp_label_values, Holder, OrderCache};
use super::sanitize::{
    group_series_labels, PUSH_FAILURE_TIME, PUSH_FAILURE_TIME_HELP, PUSH_TIME, PUSH_TIME_HELP,
};
use super::series::StoredSeries;
use super::{Group, Snapshot, Store};
use crate::expfmt::expose::{ExpositionWriter, FamilyBuilder};
use crate::metrics::{
    CATALOG, STORE_GROUPS, STORE_LOCK_MAX_HOLD, STORE_MAX_GROUPS, STORE_MAX_SERIES, STORE_SERIES,
};
use crate::model::family::{Family, Metric, MetricType, Value};
use std::cmp::Ordering;
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
        write_merged(&snapshot, &self.orders, writer, own);
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
    write_merged(snapshot, &OrderCache::default(), writer, Vec::new());
}

/// The agent's own metrics alone, for when the store is off.
pub fn expose_own(writer: &mut ExpositionWriter, mut own: Vec<Family>) {
    own.sort_by(|a, b| a.name.cmp(&b.name));
    for f in &mut own {
        sort_series(&mut f.metrics);
    }
    for f in &own {
        writer.write_family(&f.name, f.help.as_deref(), f.kind, f.metrics.iter());
    }
}

/// Series looked up ahead of writing (see `write_merged`).
const WINDOW: usize = 32;

impl Group {
    /// Its series of `push_time_seconds` or `push_failure_time_seconds`.
    fn push_gauge(&self, name: &str) -> Metric {
        let ns = if name == PUSH_TIME {
            self.push_ns
        } else {
            self.failure_ns
        };
        Metric {
            labels: group_series_labels(&self.key),
            value: Value::Simple(ns as f64 / 1e9),
            timestamp_ms: None,
            exemplar: None,
        }
    }

    /// Its families with full label sets, and its two push gauges, as
    /// the exposition shows them: what an export sends.
    pub fn exposed_families(&self) -> Vec<Family> {
        let mut families: Vec<Family> = (self.families.iter())
            .map(|(name, f)| f.unpack(name, &self.labels))
            .collect();
        for (name, help) in [
            (PUSH_TIME, PUSH_TIME_HELP),
            (PUSH_FAILURE_TIME, PUSH_FAILURE_TIME_HELP),
        ] {
            families.push(Family {
                name: name.to_string(),
                help: Some(help.to_string()),
                kind: MetricType::Gauge,
                metrics: vec![self.push_gauge(name)],
            });
        }
        families
    }
}

/// Go's series order (see `order`) for metrics held in full.
fn sort_series(metrics: &mut [Metric]) {
    metrics.sort_by(|a, b| cmp_label_values(&a.labels, &b.labels));
}

/// One of the agent's own series, written among a stored family's.
fn write_own(family: &mut FamilyBuilder<'_>, m: &Metric) {
    let labels: Vec<(&str, &str)> = m
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    family.series(&labels, &m.value, m.exemplar.as_deref());
}

fn write_merged(
    snapshot: &Snapshot,
    orders: &OrderCache,
    writer: &mut ExpositionWriter,
    own: Vec<Family>,
) {
    let mut own: BTreeMap<String, Family> = own
        .into_iter()
        .map(|mut f| {
            sort_series(&mut f.metrics);
            (f.name.clone(), f)
        })
        .collect();
    let group = |id| snapshot.group(id);
    for (name, entry) in snapshot.families() {
        // Own metrics the index does not pin are written in order too.
        while own.keys().next().is_some_and(|n| n.as_str() < name) {
            let (_, f) = own.pop_first().expect("a first key exists");
            writer.write_family(&f.name, f.help.as_deref(), f.kind, f.metrics.iter());
        }
        if name == PUSH_TIME || name == PUSH_FAILURE_TIME {
            let mut gauges: Vec<Metric> = snapshot.groups().map(|g| g.push_gauge(name)).collect();
            sort_series(&mut gauges);
            writer.write_family(name, entry.pinned_help, MetricType::Gauge, gauges.iter());
            continue;
        }
        let holders: Vec<Holder<'_>> = entry
            .holders
            .iter()
            .filter_map(|&id| {
                let g = group(id);
                Some(Holder {
                    id,
                    labels: &g.labels,
                    family: g.families.get(name)?,
                })
            })
            .collect();
        let help = entry
            .pinned_help
            .or_else(|| holders.iter().find_map(|h| h.family.help.as_deref()));
        let order = orders.order(name, &holders);
        let mut family = writer.begin_family(name, help, entry.kind);
        // A pushed family may share a name with the agent's own: those
        // series go where they sort among the stored ones.
        let own_series = own.remove(name).map(|f| f.metrics).unwrap_or_default();
        let mut own_series = own_series.iter().peekable();
        let mut labels: Vec<(&str, &str)> = Vec::new();
        // Neighbours in this order are mostly series of other groups, each
        // a cache miss: look a window of them up before writing any, so
        // that their loads overlap instead of following one another.
        let mut ahead = order.series();
        let mut window: Vec<(&Holder<'_>, StoredSeries<'_>)> = Vec::with_capacity(WINDOW);
        loop {
            window.extend(ahead.by_ref().take(WINDOW).map(|(h, i)| {
                let h = &holders[h];
                let series = h.family.series_at(i);
                std::hint::black_box((series.first_byte(), h.labels.first_byte()));
                (h, series)
            }));
            if window.is_empty() {
                break;
            }
            for (h, series) in window.drain(..) {
                series.labels(h.labels, &mut labels);
                while let Some(m) =
                    own_series.next_if(|m| cmp_label_values(&m.labels, &labels) == Ordering::Less)
                {
                    write_own(&mut family, m);
                }
                family.series(&labels, series.value(), series.exemplar());
            }
        }
        for m in own_series {
            write_own(&mut family, m);
        }
    }
    for f in own.values() {
        writer.write_family(&f.name, f.help.as_deref(), f.kind, f.metrics.iter());
    }
    orders.retain(|name| snapshot.has_family(name));
}
