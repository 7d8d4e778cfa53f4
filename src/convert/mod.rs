//! Measurement mapping: pushed families → points, with DataKit's rules.
//!
//! Counter, gauge and untyped samples give one point each. Summaries and
//! histograms give one point with `<field>_count` and `<field>_sum`, plus one
//! point per quantile (tag `quantile`, field `<field>`) or per bucket (tag
//! `le`, field `<field>_bucket`). Where pushkit has to choose, it chooses so
//! that text and protobuf pushes of the same data give the same points: a
//! histogram without a `+Inf` bucket (the Go client's protobuf) gets one from
//! its count. Native histogram buckets are not forwarded.

pub mod naming;

use crate::expfmt::model::{cmp_names, names_sorted, Family, LabelStr, Metric, MetricType, Value};
use crate::lineproto::{self, FieldKey, Lines};
use crate::point::{Field, Point, SeriesSuffix};
use crate::pushgateway::grouping::GroupingKey;
pub use naming::Naming;
use std::sync::Arc;

/// Everything the mapping needs besides the push itself.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mapping {
    pub naming: Naming,
    pub honor_timestamps: bool,
}

/// One point as the mapping produces it, before it is built or written.
pub struct PointParts<'a> {
    pub measurement: &'a str,
    /// Sorted by name, unique, no empty values, `extra` aside.
    tags: &'a [(&'a str, &'a str)],
    /// `quantile` or `le`: set in its sorted place, replacing a tag of
    /// that name.
    extra: Option<(&'a str, &'a str)>,
    /// The family's field name; each value's key adds its suffix.
    pub field: &'a str,
    /// Finite, and none keyed like a tag; never empty.
    pub values: &'a [(SeriesSuffix, f64)],
    pub time_ns: i64,
}

impl<'a> PointParts<'a> {
    /// The tags, sorted by name.
    pub fn tags(&self) -> TagsWithExtra<'a> {
        TagsWithExtra {
            tags: self.tags,
            extra: self.extra,
        }
    }

    pub fn fields(&self) -> impl Iterator<Item = (FieldKey<'a>, f64)> + 'a {
        let base = self.field;
        self.values.iter().map(move |&(suffix, v)| {
            let key = FieldKey {
                base,
                suffix: suffix.as_str(),
            };
            (key, v)
        })
    }
}

/// Sorted tags with one more set in its place (see [`PointParts::tags`]).
pub struct TagsWithExtra<'a> {
    tags: &'a [(&'a str, &'a str)],
    extra: Option<(&'a str, &'a str)>,
}

impl<'a> Iterator for TagsWithExtra<'a> {
    type Item = (&'a str, &'a str);

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
/// line protocol ([`Lines`]); writing line protocol straight from the
/// parts saves building a `Point` for every sample.
pub trait EmitPoints {
    /// Called before the points of each family.
    fn family(&mut self, family: &Family);
    fn point(&mut self, p: &PointParts<'_>);
}

/// Builds `Point`s.
#[derive(Default)]
pub struct PointsBuilder {
    pub points: Vec<Point>,
    /// The current family's name, shared by its points.
    family: Option<(Arc<str>, MetricType)>,
}

impl EmitPoints for PointsBuilder {
    fn family(&mut self, family: &Family) {
        self.family = Some((Arc::from(family.name.as_str()), family.kind));
    }

    fn point(&mut self, p: &PointParts<'_>) {
        let (family, kind) = self.family.clone().expect("family() comes first");
        self.points.push(Point {
            measurement: p.measurement.into(),
            tags: p.tags().map(|(k, v)| (k.into(), v.into())).collect(),
            fields: p
                .values
                .iter()
                .map(|&(suffix, value)| {
                    let mut key = LabelStr::from(p.field);
                    key.push_str(suffix.as_str());
                    Field { key, value, suffix }
                })
                .collect(),
            time_ns: p.time_ns,
            family,
            kind,
        });
    }
}

impl EmitPoints for Lines {
    fn family(&mut self, _: &Family) {}

    fn point(&mut self, p: &PointParts<'_>) {
        lineproto::write_line(
            &mut self.text,
            p.measurement,
            p.tags(),
            p.fields(),
            p.time_ns,
        );
        self.end_line();
    }
}

/// What a push converts to, in the forms the sinks asked for.
#[derive(Default)]
pub struct Converted {
    pub points: Option<PointsBuilder>,
    pub lines: Option<Lines>,
    /// Points converted (in either form).
    pub count: usize,
}

impl Converted {
    pub fn new(points: bool, lines: bool) -> Converted {
        Converted {
            points: points.then(PointsBuilder::default),
            lines: lines.then(Lines::default),
            count: 0,
        }
    }
}

impl EmitPoints for Converted {
    fn family(&mut self, family: &Family) {
        if let Some(b) = &mut self.points {
            b.family(family);
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
    let mut group_tags: Vec<(&str, &str)> = group
        .labels()
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    group_tags.sort_unstable_by(|a, b| cmp_names(a.0, b.0));
    let mut tags = Vec::new();
    for family in families {
        out.family(family);
        let (measurement, field) = mapping
            .naming
            .measurement_and_field(&family.name, group.job());
        let ctx = FamilyContext {
            measurement: &measurement,
            field: &field,
        };
        for metric in &family.metrics {
            let time_ns = match metric.timestamp_ms {
                Some(ms) if mapping.honor_timestamps => ms.saturating_mul(1_000_000),
                _ => received_ns,
            };
            merge_tags(&group_tags, group, metric, &mut tags);
            ctx.emit(metric, &tags, time_ns, out);
        }
    }
}

struct FamilyContext<'a> {
    measurement: &'a str,
    field: &'a str,
}

impl FamilyContext<'_> {
    fn emit(
        &self,
        metric: &Metric,
        tags: &[(&str, &str)],
        time_ns: i64,
        out: &mut impl EmitPoints,
    ) {
        let point = |extra: Option<(&str, &str)>, values: &[(SeriesSuffix, f64)], out: &mut _| {
            self.point(tags, extra, values, time_ns, out)
        };
        match &metric.value {
            Value::Simple(v) => point(None, &[(SeriesSuffix::None, *v)], out),
            Value::Summary(s) => {
                let totals = [
                    (SeriesSuffix::Count, s.sample_count),
                    (SeriesSuffix::Sum, s.sample_sum),
                ];
                point(None, &totals, out);
                for &(q, v) in &s.quantiles {
                    let q = naming::format_go_g(q);
                    point(Some(("quantile", &q)), &[(SeriesSuffix::None, v)], out);
                }
            }
            Value::Histogram(h) => {
                let totals = [
                    (SeriesSuffix::Count, h.sample_count),
                    (SeriesSuffix::Sum, h.sample_sum),
                ];
                point(None, &totals, out);
                let has_inf = h.buckets.iter().any(|&(le, _)| le == f64::INFINITY);
                let native_only = h.has_native && h.buckets.is_empty();
                let inf_bucket =
                    (!has_inf && !native_only).then_some((f64::INFINITY, h.sample_count));
                for (le, count) in h.buckets.iter().copied().chain(inf_bucket) {
                    let le = naming::format_go_g(le);
                    point(Some(("le", &le)), &[(SeriesSuffix::Bucket, count)], out);
                }
            }
        }
    }

    /// Leaves out NaN/±Inf values and fields named like a tag; a point left
    /// with no field is not emitted.
    fn point(
        &self,
        tags: &[(&str, &str)],
        extra: Option<(&str, &str)>,
        values: &[(SeriesSuffix, f64)],
        time_ns: i64,
        out: &mut impl EmitPoints,
    ) {
        let mut parts = PointParts {
            measurement: self.measurement,
            tags,
            extra,
            field: self.field,
            values: &[],
            time_ns,
        };
        let mut kept = [(SeriesSuffix::None, 0.0); 2];
        let mut n = 0;
        for &(suffix, v) in values {
            let key = FieldKey {
                base: self.field,
                suffix: suffix.as_str(),
            };
            if v.is_finite() && !parts.tags().any(|(k, _)| key.is(k)) {
                kept[n] = (suffix, v);
                n += 1;
            }
        }
        if n == 0 {
            return;
        }
        parts.values = &kept[..n];
        out.point(&parts);
    }
}

/// Grouping labels plus the metric's own into `tags`, the grouping label
/// winning on a shared name; empty values are dropped (an empty Prometheus
/// label is an absent one). Sorted by name. `group_tags` are the grouping
/// labels with a value, sorted.
fn merge_tags<'a>(
    group_tags: &[(&'a str, &'a str)],
    group: &GroupingKey,
    metric: &'a Metric,
    tags: &mut Vec<(&'a str, &'a str)>,
) {
    tags.clear();
    let own = metric
        .labels
        .iter()
        .filter(|(k, v)| !v.is_empty() && group.get(k).is_none())
        .map(|(k, v)| (k.as_str(), v.as_str()));
    if names_sorted(&metric.labels) {
        // Merge the two sorted lists.
        let mut next = 0;
        for (k, v) in own {
            while next < group_tags.len() && cmp_names(group_tags[next].0, k).is_lt() {
                tags.push(group_tags[next]);
                next += 1;
            }
            tags.push((k, v));
        }
        tags.extend_from_slice(&group_tags[next..]);
    } else {
        tags.extend_from_slice(group_tags);
        tags.extend(own);
        tags.sort_unstable_by(|a, b| cmp_names(a.0, b.0));
    }
}

#[cfg(test)]
mod tests;
