//! The limits on one push, with Prometheus' scrape-limit names
//! (`sample_limit`, `label_limit`, `label_name_length_limit`,
//! `label_value_length_limit`): checked after parsing and before anything
//! is stored or forwarded, so that a push over one is refused (400) and
//! changes nothing. The store's own limits (`max_groups`, `max_series`)
//! are checked by the store, under its lock.
//!
//! As Prometheus counts them: a series' labels include its name
//! (`__name__`), the grouping labels the store forces onto it, and the
//! `le` or `quantile` of its bucket and quantile lines; the metric name is
//! held to the label-value length limit, as `__name__` is. A push's samples
//! are the lines its text exposition has: one per counter, gauge or untyped
//! series, one per quantile or bucket plus `_sum` and `_count` (and the
//! `+Inf` bucket a histogram is given when it has none).

use crate::http::error::{ApiError, ErrorCode};
use crate::model::family::{Family, MetricType, Value};
use crate::model::GroupingKey;

/// The push limits; 0 means none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushLimits {
    pub sample_limit: u64,
    pub label_limit: u64,
    pub label_name_length_limit: u64,
    pub label_value_length_limit: u64,
}

fn over(limit: u64, n: usize) -> bool {
    limit > 0 && n as u64 > limit
}

impl PushLimits {
    /// Refuses a push over one of the limits, naming the limit, the value
    /// and what exceeded it.
    pub fn check(&self, families: &[Family], group: &GroupingKey) -> Result<(), ApiError> {
        let label_error =
            |message: String| Err(ApiError::new(ErrorCode::LabelLimitExceeded, message));
        for (name, value) in group.labels() {
            if over(self.label_name_length_limit, name.len()) {
                return label_error(format!(
                    "grouping label name {:?}… is {} bytes, more than label_name_length_limit = {}",
                    prefix(name),
                    name.len(),
                    self.label_name_length_limit
                ));
            }
            if over(self.label_value_length_limit, value.len()) {
                return label_error(format!(
                    "grouping label {name}'s value {:?}… is {} bytes, more than label_value_length_limit = {}",
                    prefix(value),
                    value.len(),
                    self.label_value_length_limit
                ));
            }
        }
        // Every push pays this loop: limits of 0 become "never", labels
        // are counted exactly only when their upper bound is over, and
        // samples only when there is a sample limit.
        let max = |limit: u64| {
            if limit == 0 {
                usize::MAX
            } else {
                usize::try_from(limit).unwrap_or(usize::MAX)
            }
        };
        let (label_max, name_max, value_max) = (
            max(self.label_limit),
            max(self.label_name_length_limit),
            max(self.label_value_length_limit),
        );
        let count_samples = self.sample_limit > 0;
        let group_labels = group.labels().len();
        let mut samples = 0usize;
        for family in families {
            if family.name.len() > value_max {
                return label_error(format!(
                    "metric name {:?}… is {} bytes, more than label_value_length_limit = {}",
                    prefix(&family.name),
                    family.name.len(),
                    self.label_value_length_limit
                ));
            }
            // `le` or `quantile` on the lines that carry one.
            let special = usize::from(matches!(
                family.kind,
                MetricType::Summary | MetricType::Histogram | MetricType::GaugeHistogram
            ));
            for m in &family.metrics {
                if count_samples {
                    samples += match &m.value {
                        Value::Simple(_) => 1,
                        Value::Summary(s) => s.quantiles.len() + 2,
                        Value::Histogram(h) => {
                            let inf = h.buckets.iter().any(|&(le, _)| le == f64::INFINITY);
                            h.buckets.len() + 2 + usize::from(!inf)
                        }
                    };
                }
                if 1 + m.labels.len() + group_labels + special > label_max {
                    let own = m
                        .labels
                        .iter()
                        .filter(|(k, _)| group.get(k).is_none())
                        .count();
                    let labels = 1 + own + group_labels + special;
                    if labels > label_max {
                        return label_error(format!(
                            "a series of {:?} has {labels} labels (its name and grouping labels \
                             included), more than label_limit = {}",
                            family.name, self.label_limit
                        ));
                    }
                }
                for (k, v) in &m.labels {
                    if k.len() > name_max || v.len() > value_max {
                        return label_error(self.label_length_message(&family.name, k, v));
                    }
                }
            }
        }
        if over(self.sample_limit, samples) {
            return Err(ApiError::new(
                ErrorCode::SampleLimitExceeded,
                format!(
                    "the push has {samples} samples, more than sample_limit = {}",
                    self.sample_limit
                ),
            ));
        }
        Ok(())
    }
}

impl PushLimits {
    /// Why label `k="v"` of family `family` is over a length limit.
    #[cold]
    fn label_length_message(&self, family: &str, k: &str, v: &str) -> String {
        if over(self.label_name_length_limit, k.len()) {
            format!(
                "label name {:?}… of {family:?} is {} bytes, more than label_name_length_limit = {}",
                prefix(k),
                k.len(),
                self.label_name_length_limit
            )
        } else {
            format!(
                "label {k:?} of {family:?} has a value of {} bytes, more than label_value_length_limit = {}",
                v.len(),
                self.label_value_length_limit
            )
        }
    }
}

/// The first characters of a long text, for a message.
fn prefix(s: &str) -> &str {
    let mut end = s.len().min(40);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expfmt::text::parse_text;

    fn check(limits: PushLimits, text: &str, pairs: &[&str]) -> Result<(), String> {
        let families = parse_text(text.as_bytes()).unwrap();
        let group = GroupingKey::from_pairs("j", pairs);
        limits
            .check(&families, &group)
            .map_err(|e| format!("{} {}", e.code.as_str(), e.message))
    }

    #[test]
    fn each_limit_and_its_message() {
        let none = PushLimits::default();
        let body = "# TYPE h histogram\nh_bucket{le=\"1\",a=\"x\"} 1\nh_sum{a=\"x\"} 1\nh_count{a=\"x\"} 1\nc{b=\"yy\"} 2\n";
        assert_eq!(check(none, body, &["instance", "i"]), Ok(()));
        // Samples: bucket, +Inf, sum, count, and c.
        let samples = |n| PushLimits {
            sample_limit: n,
            ..none
        };
        assert_eq!(check(samples(5), body, &[]), Ok(()));
        let e = check(samples(4), body, &[]).unwrap_err();
        assert!(
            e.starts_with("sampleLimitExceeded") && e.contains("5 samples"),
            "{e}"
        );
        // Labels of h's lines: __name__, a, le, job, instance.
        let labels = |n| PushLimits {
            label_limit: n,
            ..none
        };
        assert_eq!(check(labels(5), body, &["instance", "i"]), Ok(()));
        let e = check(labels(4), body, &["instance", "i"]).unwrap_err();
        assert!(
            e.starts_with("labelLimitExceeded") && e.contains("5 labels"),
            "{e}"
        );
        // A label the group forces is not counted twice.
        assert_eq!(check(labels(3), "m{job=\"x\",a=\"1\"} 1\n", &[]), Ok(()));
        // `job` is 3 bytes.
        let names = PushLimits {
            label_name_length_limit: 3,
            ..none
        };
        let e = check(names, "m{abcd=\"1\"} 1\n", &[]).unwrap_err();
        assert!(
            e.contains("label name \"abcd\"") && e.contains("4 bytes"),
            "{e}"
        );
        let values = PushLimits {
            label_value_length_limit: 2,
            ..none
        };
        assert_eq!(check(values, "mm{a=\"xy\"} 1\n", &[]), Ok(()));
        let e = check(values, "mmm 1\n", &[]).unwrap_err();
        assert!(e.contains("metric name \"mmm\""), "{e}");
        let e = check(values, "m{a=\"xyz\"} 1\n", &[]).unwrap_err();
        assert!(e.contains("3 bytes"), "{e}");
        let e = check(values, "m 1\n", &["zone", "abc"]).unwrap_err();
        assert!(e.contains("grouping label zone"), "{e}");
    }
}
