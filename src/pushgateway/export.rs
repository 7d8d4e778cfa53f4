//! The store exported to the sinks (`export_interval`): a TSDB that is not
//! a Prometheus scraping pushkit still sees the Pushgateway's "the last
//! push holds until it is deleted". Every interval, each exporting sink is
//! offered the whole store as it is then: every stored series with its
//! value, and each group's `push_time_seconds` and
//! `push_failure_time_seconds`, all stamped with the export time. Line
//! protocol maps them as pushes are mapped; remote write names them as
//! the exposition does.
//!
//! - The store's lock is held only for its snapshot, O(groups + family
//!   names); the points are made from the snapshot a batch at a time, as
//!   the sink's worker asks for them (`sink::export`).
//! - A group gone since the previous export (deleted, wiped or expired),
//!   a family gone from a group, or a series gone from a family gets one
//!   staleness marker per series (Prometheus' stale NaN), at the head of
//!   the next export, to remote-write sinks: queries stop showing it at
//!   once. Markers ride on that one export: if it is skipped or cut, the
//!   backend's own staleness covers those series. A native histogram's
//!   markers go on its count, sum and classic buckets only.
//! - Exports are offered only while the store is ready (loaded).
//! - Memory: an export holds its snapshot until it is sent, and a
//!   remote-write exporter keeps the previous one until the next export,
//!   for the markers. Groups pushed in between are then held twice: at
//!   worst, with every group re-pushed each interval, the store's size
//!   again.

use crate::convert::{convert_into, Converted, Mapping};
use crate::lineproto::Lines;
use crate::model::family::{Family, Histogram, Metric, Summary, Value};
use crate::model::point::now_ns;
use crate::model::GroupingKey;
use crate::sink::export::{ExportBatch, ExportSource};
use crate::sink::http::Format;
use crate::sink::queue::{point_cost, BatchData};
use crate::sink::SinkSet;
use crate::store::{Group, Store};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Prometheus' staleness marker: a NaN no computation yields
/// (`value.StaleNaN`), which remote-write receivers know.
pub const STALE_NAN: f64 = f64::from_bits(0x7ff0_0000_0000_0002);

/// Line-protocol bytes per series assumed until an export has measured
/// its own (a counter with a few labels).
const FIRST_BYTES_PER_SERIES: u64 = 120;

/// Starts one exporter per sink with an `export_interval`, in
/// configuration order of `intervals`. Each runs until it is aborted.
pub fn spawn(
    intervals: &[Duration],
    store: Arc<Store>,
    sinks: Arc<SinkSet>,
    mapping: Mapping,
) -> Vec<JoinHandle<()>> {
    intervals
        .iter()
        .enumerate()
        .filter(|(_, every)| !every.is_zero())
        .map(|(i, &every)| {
            let (store, sinks, mapping) = (store.clone(), sinks.clone(), mapping.clone());
            tokio::spawn(async move { export_every(i, every, store, sinks, mapping).await })
        })
        .collect()
}

/// Offers sink `i` the store every `every`.
async fn export_every(
    i: usize,
    every: Duration,
    store: Arc<Store>,
    sinks: Arc<SinkSet>,
    mapping: Mapping,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let format = sinks.format(i);
    // The groups the previous export sent, for staleness markers.
    let mut previous: Option<Vec<Arc<Group>>> = None;
    loop {
        ticks.tick().await;
        if !store.is_ready() {
            continue;
        }
        let groups = store.snapshot().into_groups();
        // Only remote write has markers to send. Holding the groups keeps
        // the versions of them that pushes replace until the next export.
        let keep = (format == Format::RemoteWrite).then(|| groups.clone());
        let export = StoreExport::new(groups, previous.as_deref(), format, &mapping, now_ns());
        sinks.offer_export(i, Box::new(export));
        previous = keep;
    }
}

/// One export of the store, made a group at a time (see the module doc).
pub struct StoreExport {
    /// Groups still to make, first to last.
    groups: std::vec::IntoIter<Arc<Group>>,
    /// Staleness markers still to make, by group.
    stale: std::vec::IntoIter<(GroupingKey, Vec<Family>)>,
    mapping: Mapping,
    time_ns: i64,
    /// Made and not yet handed out.
    made: Converted,
    /// Lines of `made` already handed out (points are drained instead).
    lines_out: usize,
    /// Series not made yet, and the line-protocol bytes each took so far.
    series_left: u64,
    bytes_per_series: u64,
    made_series: u64,
    made_bytes: u64,
}

impl StoreExport {
    /// The export of `groups` for a sink of `format` at `time_ns`, with
    /// staleness markers (remote write only) for what `previous` held and
    /// `groups` does not.
    pub fn new(
        groups: Vec<Arc<Group>>,
        previous: Option<&[Arc<Group>]>,
        format: Format,
        mapping: &Mapping,
        time_ns: i64,
    ) -> StoreExport {
        let stale = match (format, previous) {
            (Format::RemoteWrite, Some(previous)) => stale_series(previous, &groups),
            _ => Vec::new(),
        };
        let series_left = stale
            .iter()
            .flat_map(|(_, fs)| fs.iter().map(|f| f.metrics.len() as u64))
            .chain(groups.iter().map(|g| {
                let stored: usize = g.families.values().map(|f| f.series_count()).sum();
                stored as u64 + 2
            }))
            .sum();
        let made = match format {
            Format::RemoteWrite => Converted::new(true, None, 0),
            Format::LineProtocol(dialect) => Converted::new(false, Some(dialect), 0),
        };
        StoreExport {
            groups: groups.into_iter(),
            stale: stale.into_iter(),
            mapping: mapping.clone(),
            time_ns,
            made,
            lines_out: 0,
            series_left,
            bytes_per_series: FIRST_BYTES_PER_SERIES,
            made_series: 0,
            made_bytes: 0,
        }
    }

    /// Points made and not handed out.
    fn ready(&self) -> usize {
        match (&self.made.points, &self.made.lines) {
            (Some(p), _) => p.points.len(),
            (None, Some(l)) => l.lines.len() - self.lines_out,
            (None, None) => 0,
        }
    }

    /// Makes the next group's points (or its markers); false when all are
    /// made.
    fn make_more(&mut self) -> bool {
        let (key, families) = if let Some(stale) = self.stale.next() {
            stale
        } else if let Some(group) = self.groups.next() {
            (group.key.clone(), group.exposed_families())
        } else {
            return false;
        };
        self.compact_lines();
        let (bytes_before, points_before) = (self.line_bytes(), self.ready());
        convert_into(&families, &key, &self.mapping, self.time_ns, &mut self.made);
        let series: u64 = families.iter().map(|f| f.metrics.len() as u64).sum();
        self.series_left = self.series_left.saturating_sub(series);
        self.made_series += series;
        self.made_bytes += match &self.made.points {
            Some(p) => p.points[points_before..].iter().map(point_cost).sum(),
            None => (self.line_bytes() - bytes_before) as u64,
        };
        if let Some(per) = self.made_bytes.checked_div(self.made_series) {
            self.bytes_per_series = per;
        }
        true
    }

    fn line_bytes(&self) -> usize {
        self.made.lines.as_ref().map_or(0, |l| l.lines.text.len())
    }

    /// Drops the lines already handed out, before more are written.
    fn compact_lines(&mut self) {
        let Some(writer) = &mut self.made.lines else {
            return;
        };
        if self.lines_out == 0 {
            return;
        }
        let lines = &mut writer.lines;
        let cut = lines.start(self.lines_out);
        lines.text.drain(..cut);
        lines.ends.drain(..self.lines_out);
        let cut = u32::try_from(cut).expect("lines are cut below 4 GiB");
        for end in &mut lines.ends {
            *end -= cut;
        }
        self.lines_out = 0;
    }

    /// Hands out `n` of the points made.
    fn take(&mut self, n: usize) -> ExportBatch {
        if let Some(p) = &mut self.made.points {
            let points: Vec<_> = p.points.drain(..n).collect();
            return ExportBatch {
                data: BatchData::Points(points),
                points: n,
                left_out: 0,
            };
        }
        let writer = self.made.lines.as_mut().expect("points or lines are made");
        let lines: &Lines = &writer.lines;
        let text = lines.range(self.lines_out, self.lines_out + n).to_vec();
        self.lines_out += n;
        let left_out = std::mem::take(&mut writer.drops).total();
        ExportBatch {
            data: BatchData::Lines(text),
            points: n,
            left_out,
        }
    }
}

impl ExportSource for StoreExport {
    fn next_batch(&mut self, max_points: usize) -> Option<ExportBatch> {
        let max_points = max_points.max(1);
        while self.ready() < max_points && self.make_more() {}
        match self.ready() {
            0 => {
                // Line protocol may have left out every sample made last.
                let left_out =
                    (self.made.lines.as_mut()).map_or(0, |w| std::mem::take(&mut w.drops).total());
                (left_out > 0).then(|| ExportBatch {
                    data: BatchData::Lines(Vec::new()),
                    points: 0,
                    left_out,
                })
            }
            ready => Some(self.take(ready.min(max_points))),
        }
    }

    fn remaining_bytes(&self) -> u64 {
        let made = match (&self.made.points, &self.made.lines) {
            (Some(p), _) => p.points.iter().map(point_cost).sum(),
            (None, Some(l)) => (l.lines.text.len() - l.lines.start(self.lines_out)) as u64,
            (None, None) => 0,
        };
        made + self.series_left * self.bytes_per_series
    }
}

/// The series of `previous` that `now` no longer has, each with a
/// staleness marker for its every sample, by group.
fn stale_series(previous: &[Arc<Group>], now: &[Arc<Group>]) -> Vec<(GroupingKey, Vec<Family>)> {
    let by_key: HashMap<&GroupingKey, &Arc<Group>> = now.iter().map(|g| (&g.key, g)).collect();
    let mut stale = Vec::new();
    for old in previous {
        let gone: Vec<Family> = match by_key.get(&old.key) {
            None => old.exposed_families(),
            Some(new) if Arc::ptr_eq(old, new) => continue,
            Some(new) => gone_series(old, new),
        };
        let gone: Vec<Family> = gone
            .into_iter()
            .filter(|f| !f.metrics.is_empty())
            .map(mark_stale)
            .collect();
        if !gone.is_empty() {
            stale.push((old.key.clone(), gone));
        }
    }
    stale
}

/// The series of the families of `old` that `new` (the same group, later)
/// no longer has.
fn gone_series(old: &Group, new: &Group) -> Vec<Family> {
    let mut gone = Vec::new();
    for (name, family) in &old.families {
        match new.families.get(name) {
            Some(now) if now.same_series(family) => {}
            Some(now) => {
                let kept: HashSet<Vec<(String, String)>> = now
                    .unpack(name, &new.labels)
                    .metrics
                    .iter()
                    .map(label_key)
                    .collect();
                let mut f = family.unpack(name, &old.labels);
                f.metrics.retain(|m| !kept.contains(&label_key(m)));
                gone.push(f);
            }
            None => gone.push(family.unpack(name, &old.labels)),
        }
    }
    gone
}

fn label_key(m: &Metric) -> Vec<(String, String)> {
    m.labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The family with every sample value a staleness marker.
fn mark_stale(mut family: Family) -> Family {
    for m in &mut family.metrics {
        m.exemplar = None;
        m.value = match &m.value {
            Value::Simple(_) => Value::Simple(STALE_NAN),
            Value::Summary(s) => Value::Summary(Summary {
                sample_count: STALE_NAN,
                sample_sum: STALE_NAN,
                quantiles: s.quantiles.iter().map(|&(q, _)| (q, STALE_NAN)).collect(),
            }),
            Value::Histogram(h) => Value::Histogram(Histogram {
                sample_count: STALE_NAN,
                sample_sum: STALE_NAN,
                buckets: h.buckets.iter().map(|&(le, _)| (le, STALE_NAN)).collect(),
                native: None,
                exemplars: None,
            }),
        };
    }
    family
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expfmt::text::parse_text;
    use crate::lineproto::Dialect;
    use crate::model::point::Point;
    use crate::pushgateway::grouping::parse_grouping_key;
    use crate::store::StoreOptions;

    fn put(store: &Store, instance: &str, text: &str) {
        let key = parse_grouping_key("j", false, &["instance", instance], false).unwrap();
        let families = parse_text(text.as_bytes()).unwrap();
        store
            .push(store.prepare(key, true, families, 5_000_000_000), || {
                Ok::<(), ()>(())
            })
            .unwrap();
    }

    /// Every point of an export, in batches of `max`.
    fn all_points(export: &mut StoreExport, max: usize) -> Vec<Point> {
        let mut out = Vec::new();
        while let Some(b) = export.next_batch(max) {
            assert!(b.points <= max);
            match b.data {
                BatchData::Points(p) => out.extend(p),
                BatchData::Lines(_) => panic!("remote write takes points"),
            }
        }
        out
    }

    fn names(points: &[Point]) -> Vec<String> {
        let mut n: Vec<String> = points
            .iter()
            .map(|p| {
                let instance = p.tags.iter().find(|(k, _)| k == "instance");
                let stale = p
                    .fields
                    .iter()
                    .all(|f| f.value.to_bits() == STALE_NAN.to_bits());
                format!(
                    "{}@{}{}",
                    p.family,
                    instance.map_or("", |(_, v)| v.as_str()),
                    if stale { " stale" } else { "" }
                )
            })
            .collect();
        n.sort();
        n
    }

    #[test]
    fn an_export_holds_every_series_and_the_push_times_stamped_now() {
        let store = Store::new(StoreOptions::in_memory());
        put(&store, "a", "x{k=\"1\"} 1\nx{k=\"2\"} 2\n");
        put(&store, "b", "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n");
        let groups = store.snapshot().into_groups();
        let mut export =
            StoreExport::new(groups, None, Format::RemoteWrite, &Mapping::default(), 9);
        assert!(export.remaining_bytes() > 0);
        let points = all_points(&mut export, 2);
        assert_eq!(
            names(&points),
            [
                // A histogram: its count and sum, and one point a bucket.
                "h@b",
                "h@b",
                "h@b",
                "push_failure_time_seconds@a",
                "push_failure_time_seconds@b",
                "push_time_seconds@a",
                "push_time_seconds@b",
                "x@a",
                "x@a"
            ]
        );
        assert!(points.iter().all(|p| p.time_ns == 9));
        let push_time = points
            .iter()
            .find(|p| &*p.family == "push_time_seconds")
            .unwrap();
        assert_eq!(push_time.fields[0].value, 5.0);
        assert_eq!(export.remaining_bytes(), 0);
    }

    #[test]
    fn gone_groups_families_and_series_get_one_staleness_marker() {
        let store = Store::new(StoreOptions::in_memory());
        put(&store, "a", "x{k=\"1\"} 1\nx{k=\"2\"} 2\ny 1\n");
        put(&store, "b", "x{k=\"3\"} 3\n");
        put(&store, "c", "z 1\n");
        let first = store.snapshot().into_groups();
        // a loses a series and a family, b is deleted, c is unchanged.
        put(&store, "a", "x{k=\"1\"} 5\n");
        let b = parse_grouping_key("j", false, &["instance", "b"], false).unwrap();
        store.delete(b).unwrap();
        let now = store.snapshot().into_groups();
        let mut export = StoreExport::new(
            now.clone(),
            Some(&first),
            Format::RemoteWrite,
            &Mapping::default(),
            9,
        );
        let stale: Vec<String> = names(&all_points(&mut export, 100))
            .into_iter()
            .filter(|n| n.ends_with(" stale"))
            .collect();
        assert_eq!(
            stale,
            [
                "push_failure_time_seconds@b stale",
                "push_time_seconds@b stale",
                "x@a stale",
                "x@b stale",
                "y@a stale",
            ]
        );
        // Once: the next export has none.
        let mut next = StoreExport::new(
            now.clone(),
            Some(&now),
            Format::RemoteWrite,
            &Mapping::default(),
            10,
        );
        assert!(!names(&all_points(&mut next, 100))
            .iter()
            .any(|n| n.ends_with(" stale")));
        // Line protocol has no markers.
        let mut lp = StoreExport::new(
            now,
            Some(&first),
            Format::LineProtocol(Dialect::InfluxDb),
            &Mapping::default(),
            9,
        );
        let mut text = Vec::new();
        while let Some(b) = lp.next_batch(3) {
            let BatchData::Lines(t) = b.data else {
                panic!("line protocol takes lines")
            };
            assert_eq!(t.iter().filter(|&&c| c == b'\n').count(), b.points);
            text.extend(t);
        }
        let text = String::from_utf8(text).unwrap();
        assert_eq!(text.lines().count(), 1 + 1 + 2 * 2, "{text}");
        assert!(!text.contains("NaN"), "{text}");
    }
}
