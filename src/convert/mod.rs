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

use crate::expfmt::model::{cmp_names, names_sorted, Family, LabelStr, Metric, Value};
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

/// Converts a push's families to points. `received_ns` is the push's arrival
/// time, used for samples without a timestamp (or all samples when
/// `honor_timestamps` is off).
pub fn convert(
    families: &[Family],
    group: &GroupingKey,
    mapping: &Mapping,
    received_ns: i64,
) -> Vec<Point> {
    let mut points = Vec::new();
    // The grouping labels once per push, sorted, as every point carries
    // them.
    let mut group_tags: Vec<(LabelStr, LabelStr)> = group
        .labels()
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (LabelStr::from(k.as_str()), LabelStr::from(v.as_str())))
        .collect();
    group_tags.sort_unstable_by(|a, b| cmp_names(&a.0, &b.0));
    for family in families {
        let (measurement, field) = mapping
            .naming
            .measurement_and_field(&family.name, group.job());
        let ctx = FamilyContext {
            family,
            name: Arc::from(family.name.as_str()),
            measurement: measurement.into(),
            field: field.into(),
        };
        for metric in &family.metrics {
            let time_ns = match metric.timestamp_ms {
                Some(ms) if mapping.honor_timestamps => ms.saturating_mul(1_000_000),
                _ => received_ns,
            };
            let tags = merge_tags(&group_tags, group, metric);
            ctx.emit(metric, tags, time_ns, &mut points);
        }
    }
    points
}

struct FamilyContext<'a> {
    family: &'a Family,
    name: Arc<str>,
    measurement: LabelStr,
    field: LabelStr,
}

impl FamilyContext<'_> {
    fn emit(
        &self,
        metric: &Metric,
        tags: Vec<(LabelStr, LabelStr)>,
        time_ns: i64,
        out: &mut Vec<Point>,
    ) {
        match &metric.value {
            Value::Simple(v) => {
                self.push(out, tags, vec![self.field(SeriesSuffix::None, *v)], time_ns);
            }
            Value::Summary(s) => {
                let fields = vec![
                    self.field(SeriesSuffix::Count, s.sample_count),
                    self.field(SeriesSuffix::Sum, s.sample_sum),
                ];
                self.push(out, tags.clone(), fields, time_ns);
                for &(q, v) in &s.quantiles {
                    let tags = with_tag(&tags, "quantile", naming::format_go_g(q));
                    self.push(out, tags, vec![self.field(SeriesSuffix::None, v)], time_ns);
                }
            }
            Value::Histogram(h) => {
                let fields = vec![
                    self.field(SeriesSuffix::Count, h.sample_count),
                    self.field(SeriesSuffix::Sum, h.sample_sum),
                ];
                self.push(out, tags.clone(), fields, time_ns);
                let has_inf = h.buckets.iter().any(|&(le, _)| le == f64::INFINITY);
                let native_only = h.has_native && h.buckets.is_empty();
                let inf_bucket =
                    (!has_inf && !native_only).then_some((f64::INFINITY, h.sample_count));
                for (le, count) in h.buckets.iter().copied().chain(inf_bucket) {
                    let tags = with_tag(&tags, "le", naming::format_go_g(le));
                    let fields = vec![self.field(SeriesSuffix::Bucket, count)];
                    self.push(out, tags, fields, time_ns);
                }
            }
        }
    }

    fn field(&self, suffix: SeriesSuffix, value: f64) -> Field {
        let key = match suffix {
            SeriesSuffix::None => self.field.clone(),
            s => {
                let mut key = self.field.clone();
                key.push_str(s.as_str());
                key
            }
        };
        Field { key, value, suffix }
    }

    /// Leaves out NaN/±Inf values and fields named like a tag; a point left
    /// with no field is not emitted.
    fn push(
        &self,
        out: &mut Vec<Point>,
        tags: Vec<(LabelStr, LabelStr)>,
        mut fields: Vec<Field>,
        time_ns: i64,
    ) {
        fields.retain(|f| f.value.is_finite() && !tags.iter().any(|(k, _)| *k == f.key));
        if fields.is_empty() {
            return;
        }
        out.push(Point {
            measurement: self.measurement.clone(),
            tags,
            fields,
            time_ns,
            family: self.name.clone(),
            kind: self.family.kind,
        });
    }
}

/// Grouping labels plus the metric's own, the grouping label winning on a
/// shared name; empty values are dropped (an empty Prometheus label is an
/// absent one). Sorted by key. `group_tags` are the grouping labels with a
/// value, sorted.
fn merge_tags(
    group_tags: &[(LabelStr, LabelStr)],
    group: &GroupingKey,
    metric: &Metric,
) -> Vec<(LabelStr, LabelStr)> {
    let mut tags = Vec::with_capacity(group_tags.len() + metric.labels.len() + 1);
    let own = metric
        .labels
        .iter()
        .filter(|(k, v)| !v.is_empty() && group.get(k).is_none());
    if names_sorted(&metric.labels) {
        // Merge the two sorted lists.
        let mut next = 0;
        for (k, v) in own {
            while next < group_tags.len() && cmp_names(&group_tags[next].0, k).is_lt() {
                tags.push(group_tags[next].clone());
                next += 1;
            }
            tags.push((k.clone(), v.clone()));
        }
        tags.extend_from_slice(&group_tags[next..]);
    } else {
        tags.extend_from_slice(group_tags);
        tags.extend(own.cloned());
        tags.sort_unstable_by(|a, b| cmp_names(&a.0, &b.0));
    }
    tags
}

/// `tags` with `key=value` set, kept sorted; replaces a tag of that name.
fn with_tag(
    tags: &[(LabelStr, LabelStr)],
    key: &'static str,
    value: String,
) -> Vec<(LabelStr, LabelStr)> {
    let mut out = tags.to_vec();
    let value = LabelStr::from(value);
    match out.binary_search_by(|(k, _)| k.as_str().cmp(key)) {
        Ok(i) => out[i].1 = value,
        Err(i) => out.insert(i, (LabelStr::const_new(key), value)),
    }
    out
}

#[cfg(test)]
mod tests;
