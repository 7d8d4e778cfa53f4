//! Measurement mapping: pushed families → points, with DataKit's rules.
//!
//! Counter, gauge and untyped samples give one point each. Summaries and
//! histograms give one point with `<field>_count` and `<field>_sum`, plus one
//! point per quantile (tag `quantile`, field `<field>`) or per bucket (tag
//! `le`, field `<field>_bucket`). Where pushkit has to choose, it chooses so
//! that text and protobuf pushes of the same data give the same points: a
//! histogram without a `+Inf` bucket (the Go client's protobuf) gets one from
//! its count. A histogram's native part and exemplars ride on its points
//! (`PointExtra`) for the sinks that carry them (remote write).

pub mod naming;

use crate::lineproto::{Dialect, LinesWriter};
use crate::model::family::{
    cmp_names, names_sorted, Exemplar, Family, LabelStr, Metric, MetricType, NativeHistogram, Value,
};
use crate::model::gofloat::format_go_g;
use crate::model::point::{Field, Point, PointExtra, SeriesSuffix};
use crate::model::GroupingKey;
pub use naming::Naming;
use std::sync::Arc;

/// Everything the mapping needs besides the push itself.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mapping {
    pub naming: Naming,
    pub honor_timestamps: bool,
}

/// One point as the mapping produces it, before it is built or written;
/// its measurement and field name are its family's (see
/// [`EmitPoints::family`]).
pub struct PointParts<'a> {
    /// Sorted by name, unique, no empty values, `extra` aside.
    tags: &'a [(&'a str, &'a str)],
    /// `quantile` or `le`: set in its sorted place, replacing a tag of
    /// that name.
    extra: Option<(&'a str, &'a str)>,
    /// Each value's field key is the field name plus its suffix; never
    /// empty. NaN, ±Inf and a field keyed like a tag are here too: remote
    /// write carries them, and line protocol leaves them out, counted
    /// (`lineproto::LpDrops`).
    pub values: &'a [(SeriesSuffix, f64)],
    pub time_ns: i64,
    /// A histogram's native part, on its `_count`/`_sum` point.
    pub native: Option<&'a NativeHistogram>,
    /// Exemplars of the point's main series (see `PointExtra`).
    pub exemplars: &'a [Exemplar],
}

impl<'a> PointParts<'a> {
    /// The tags, sorted by name.
    pub fn tags(&self) -> TagsWithExtra<'a> {
        TagsWithExtra {
            tags: self.tags,
            extra: self.extra,
        }
    }
}

/// Sorted tags with one more set in its place (see [`PointParts::tags`]).
#[derive(Clone)]
pub struct TagsWithExtra<'a> {
    tags: &'a [(&'a str, &'a str)],
    extra: Option<(&'a str, &'a str)>,
}

impl<'a> Iterator for TagsWithExtra<'a> {
    type Item = (&'a str, &'a str);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if let Some(extra) = self.extra {
            match self.tags.split_first() {
                Some((&tag, rest)) if cmp_names(tag.0, extra.0).is_lt() => {
                    self.tags = rest;
                    return Some(tag);
                }
                Some((&tag, rest)) if tag.0 == extra.0 => self.tags = rest,
                _ => {}
            }
            self.extra = None;
            return Some(extra);
        }
        let (&tag, rest) = self.tags.split_first()?;
        self.tags = rest;
        Some(tag)
    }
}

/// Where converted points go. Sinks take `Point`s ([`PointsBuilder`]) or
/// line protocol ([`LinesWriter`]); writing line protocol straight from
/// the parts saves building a `Point` for every sample.
pub trait EmitPoints {
    /// Called before the points of each family, with their measurement
    /// and field name.
    fn family(&mut self, family: &Family, measurement: &str, field: &str);
    fn point(&mut self, p: &PointParts<'_>);
}

/// Builds `Point`s.
#[derive(Default)]
pub struct PointsBuilder {
    pub points: Vec<Point>,
    /// The current family's name (shared by its points), type,
    /// measurement and field name.
    family: Option<(Arc<str>, MetricType, LabelStr, LabelStr)>,
}

impl EmitPoints for PointsBuilder {
    fn family(&mut self, family: &Family, measurement: &str, field: &str) {
        let name = Arc::from(family.name.as_str());
        self.family = Some((name, family.kind, measurement.into(), field.into()));
    }

    fn point(&mut self, p: &PointParts<'_>) {
        let (family, kind, measurement, field) = self.family.as_ref().expect("family() first");
        self.points.push(Point {
            measurement: measurement.clone(),
            tags: p.tags().map(|(k, v)| (k.into(), v.into())).collect(),
            fields: p
                .values
                .iter()
                .map(|&(suffix, value)| {
                    let mut key = field.clone();
                    key.push_str(suffix.as_str());
                    Field { key, value, suffix }
                })
                .collect(),
            time_ns: p.time_ns,
            family: family.clone(),
            kind: *kind,
            extra: (p.native.is_some() || !p.exemplars.is_empty()).then(|| {
                Box::new(PointExtra {
                    native: p.native.cloned(),
                    exemplars: p.exemplars.to_vec(),
                })
            }),
        });
    }
}

impl EmitPoints for LinesWriter {
    fn family(&mut self, _: &Family, measurement: &str, field: &str) {
        self.set_names(measurement, field);
    }

    fn point(&mut self, p: &PointParts<'_>) {
        let values = p.values.iter().map(|&(suffix, v)| (suffix.as_str(), v));
        // What it leaves out is counted in `drops`.
        let _written = self.write(p.tags(), values, p.time_ns);
        self.drops.native_buckets += u64::from(p.native.is_some());
        self.drops.exemplars += p.exemplars.len() as u64;
    }
}

/// What a push converts to, in the forms the sinks asked for.
#[derive(Default)]
pub struct Converted {
    pub points: Option<PointsBuilder>,
    pub lines: Option<LinesWriter>,
    /// Points converted (in either form).
    pub count: usize,
}

impl Converted {
    /// `lines`: the dialect to write line protocol in, if wanted;
    /// `line_bytes`: room to reserve for it.
    pub fn new(points: bool, lines: Option<Dialect>, line_bytes: usize) -> Converted {
        Converted {
            points: points.then(PointsBuilder::default),
            lines: lines.map(|d| LinesWriter::with_capacity(d, line_bytes)),
            count: 0,
        }
    }
}

impl EmitPoints for Converted {
    fn family(&mut self, family: &Family, measurement: &str, field: &str) {
        if let Some(b) = &mut self.points {
            b.family(family, measurement, field);
        }
        if let Some(l) = &mut self.lines {
            l.family(family, measurement, field);
        }
    }

    fn point(&mut self, p: &PointParts<'_>) {
        self.count += 1;
        if let Some(b) = &mut self.points {
            b.point(p);
        }
        if let Some(l) = &mut self.lines {
            l.point(p);
        }
    }
}

/// Converts a push's families to `Point`s; see [`convert_into`].
pub fn convert(
    families: &[Family],
    group: &GroupingKey,
    mapping: &Mapping,
    received_ns: i64,
) -> Vec<Point> {
    let mut b = PointsBuilder::default();
    convert_into(families, group, mapping, received_ns, &mut b);
    b.points
}

/// Converts a push's families to points, handed to `out`. `received_ns`
/// is the push's arrival time, used for samples without a timestamp (or
/// all samples when `honor_timestamps` is off).
pub fn convert_into(
    families: &[Family],
    group: &GroupingKey,
    mapping: &Mapping,
    received_ns: i64,
    out: &mut impl EmitPoints,
) {
    // The grouping labels once per push, sorted, as every point carries
    // them.
    let mut group_labels: Vec<(&str, &str)> = group
        .labels()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    group_labels.sort_unstable_by(|a, b| cmp_names(a.0, b.0));
    let mut tags = Vec::new();
    for family in families {
        let (measurement, field) = mapping
            .naming
            .measurement_and_field(&family.name, group.job());
        out.family(family, &measurement, &field);
        for metric in &family.metrics {
            let time_ns = match metric.timestamp_ms {
                // As DataKit has it, 0 or below is no timestamp at all.
                // `check_timestamps` refused a push whose product overflows.
                Some(ms) if mapping.honor_timestamps && ms > 0 => ms.saturating_mul(1_000_000),
                _ => received_ns,
            };
            merge_tags(&group_labels, group, metric, &mut tags);
            emit(metric, &tags, time_ns, out);
        }
    }
}

/// With `honor_timestamps` on, a sample's timestamp above 0 becomes the
/// points' time in nanoseconds, an `i64` as line protocol has it:
/// refuses, naming the first, a push with a timestamp that does not fit
/// (after 2262), rather than clamping it. One of 0 or below counts as
/// absent (see `convert_into`).
pub fn check_timestamps(families: &[Family], mapping: &Mapping) -> Result<(), String> {
    if !mapping.honor_timestamps {
        return Ok(());
    }
    for family in families {
        for metric in &family.metrics {
            if let Some(ms) = metric.timestamp_ms.filter(|&ms| ms > 0) {
                if ms.checked_mul(1_000_000).is_none() {
                    return Err(format!(
                        "metric family {:?}: timestamp {ms} ms is after what line protocol's \
                         nanoseconds hold (the year 2262)",
                        family.name
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The points of one metric.
fn emit<E: EmitPoints>(metric: &Metric, tags: &[(&str, &str)], time_ns: i64, out: &mut E) {
    let point = |extra: Option<(&str, &str)>,
                 values: &[(SeriesSuffix, f64)],
                 native: Option<&NativeHistogram>,
                 exemplars: &[Exemplar],
                 out: &mut E| {
        out.point(&PointParts {
            tags,
            extra,
            values,
            time_ns,
            native,
            exemplars,
        })
    };
    match &metric.value {
        Value::Simple(v) => {
            let exemplars = metric.exemplar.as_deref().map(std::slice::from_ref);
            let values = [(SeriesSuffix::None, *v)];
            point(None, &values, None, exemplars.unwrap_or_default(), out)
        }
        Value::Summary(s) => {
            let totals = [
                (SeriesSuffix::Count, s.sample_count),
                (SeriesSuffix::Sum, s.sample_sum),
            ];
            point(None, &totals, None, &[], out);
            for &(q, v) in &s.quantiles {
                let q = format_go_g(q);
                point(
                    Some(("quantile", &q)),
                    &[(SeriesSuffix::None, v)],
                    None,
                    &[],
                    out,
                );
            }
        }
        Value::Histogram(h) => {
            let totals = [
                (SeriesSuffix::Count, h.sample_count),
                (SeriesSuffix::Sum, h.sample_sum),
            ];
            let exemplars = h.exemplars.as_deref();
            let native = h.native.as_deref();
            // Native exemplars belong to the native series: without a
            // native part there is no series to carry them.
            let native_exemplars = match (native, exemplars) {
                (Some(_), Some(e)) => e.native.as_slice(),
                _ => &[],
            };
            point(None, &totals, native, native_exemplars, out);
            let has_inf = h.buckets.iter().any(|&(le, _)| le == f64::INFINITY);
            let native_only = native.is_some() && h.buckets.is_empty();
            let inf_bucket = (!has_inf && !native_only).then_some((f64::INFINITY, h.sample_count));
            for (i, (le, count)) in h.buckets.iter().copied().chain(inf_bucket).enumerate() {
                let le = format_go_g(le);
                let exemplar = exemplars.and_then(|e| e.of_bucket(i));
                point(
                    Some(("le", &le)),
                    &[(SeriesSuffix::Bucket, count)],
                    None,
                    exemplar.map(std::slice::from_ref).unwrap_or_default(),
                    out,
                );
            }
        }
    }
}

/// Grouping labels plus the metric's own into `tags`, the grouping label
/// winning on a shared name; empty values are dropped (an empty Prometheus
/// label is an absent one). Sorted by name. `group_labels` are all the
/// grouping labels, sorted, empty values included: an empty one still
/// shadows the metric's label of that name.
fn merge_tags<'a>(
    group_labels: &[(&'a str, &'a str)],
    group: &GroupingKey,
    metric: &'a Metric,
    tags: &mut Vec<(&'a str, &'a str)>,
) {
    tags.clear();
    let present = |&(_, v): &(&str, &str)| !v.is_empty();
    if !names_sorted(&metric.labels) {
        tags.extend(group_labels.iter().copied().filter(present));
        let own = metric
            .labels
            .iter()
            .filter(|(k, v)| !v.is_empty() && group.get(k).is_none());
        tags.extend(own.map(|(k, v)| (k.as_str(), v.as_str())));
        tags.sort_unstable_by(|a, b| cmp_names(a.0, b.0));
        return;
    }
    // Merge the two sorted lists; a name in both is the grouping label's.
    let mut next = 0;
    for (k, v) in &metric.labels {
        while let Some(&g) = group_labels.get(next).filter(|g| cmp_names(g.0, k).is_lt()) {
            if present(&g) {
                tags.push(g);
            }
            next += 1;
        }
        if group_labels.get(next).is_some_and(|g| g.0 == k.as_str()) || v.is_empty() {
            continue;
        }
        tags.push((k.as_str(), v.as_str()));
    }
    tags.extend(group_labels[next..].iter().copied().filter(present));
}

#[cfg(test)]
mod tests;
