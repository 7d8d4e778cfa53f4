//! DataKit's naming rules: which measurement and field a family name maps
//! to, and how `le`/`quantile` bounds are written.

/// The mapping options of the pushgateway input that decide names.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Naming {
    pub measurement_name: Option<String>,
    pub job_as_measurement: bool,
    pub keep_exist_metric_name: bool,
}

impl Naming {
    /// Measurement and field for the family `name` pushed under `job`.
    pub fn measurement_and_field(&self, name: &str, job: &str) -> (String, String) {
        if let Some(m) = &self.measurement_name {
            return (m.clone(), name.to_string());
        }
        if self.job_as_measurement {
            return (job.to_string(), name.to_string());
        }
        split_first_underscore(name, self.keep_exist_metric_name)
    }
}

/// The first-underscore rule, applied after dropping leading `_`s.
pub fn split_first_underscore(name: &str, keep_exist_metric_name: bool) -> (String, String) {
    let trimmed = name.trim_start_matches('_');
    if trimmed.len() <= 1 {
        return ("unknown".to_string(), "unknown".to_string());
    }
    match trimmed.find('_') {
        None => (trimmed.to_string(), trimmed.to_string()),
        Some(i) if i == trimmed.len() - 1 => {
            let m = &trimmed[..i];
            (m.to_string(), m.to_string())
        }
        Some(i) => {
            let field = if keep_exist_metric_name {
                trimmed
            } else {
                &trimmed[i + 1..]
            };
            (trimmed[..i].to_string(), field.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_table_from_the_readme() {
        let rows: &[(&str, Option<bool>, &str, &str)] = &[
            (
                "etcd_write_bytes_total",
                Some(true),
                "etcd",
                "etcd_write_bytes_total",
            ),
            (
                "etcd_write_bytes_total",
                Some(false),
                "etcd",
                "write_bytes_total",
            ),
            (
                "___etcd_write_bytes_total",
                Some(false),
                "etcd",
                "write_bytes_total",
            ),
            ("pushgateway_count", Some(false), "pushgateway", "count"),
            ("etcd_", None, "etcd", "etcd"),
            ("_etcd", None, "etcd", "etcd"),
            ("_", None, "unknown", "unknown"),
            ("__", None, "unknown", "unknown"),
            ("a", None, "unknown", "unknown"),
            ("_a", None, "unknown", "unknown"),
            ("up", None, "up", "up"),
        ];
        for &(name, keep, m, f) in rows {
            let keeps: &[bool] = match keep {
                Some(true) => &[true],
                Some(false) => &[false],
                None => &[true, false],
            };
            for &k in keeps {
                assert_eq!(
                    split_first_underscore(name, k),
                    (m.to_string(), f.to_string()),
                    "{name} keep={k}"
                );
            }
        }
    }

    #[test]
    fn keep_true_keeps_the_trimmed_name() {
        assert_eq!(
            split_first_underscore("___etcd_write_bytes_total", true),
            ("etcd".into(), "etcd_write_bytes_total".into())
        );
    }

    #[test]
    fn measurement_name_wins_then_job() {
        let n = Naming {
            measurement_name: Some("batch".into()),
            job_as_measurement: true,
            keep_exist_metric_name: false,
        };
        assert_eq!(
            n.measurement_and_field("etcd_x", "j"),
            ("batch".into(), "etcd_x".into())
        );
        let n = Naming {
            measurement_name: None,
            job_as_measurement: true,
            keep_exist_metric_name: false,
        };
        assert_eq!(
            n.measurement_and_field("etcd_x", "myjob"),
            ("myjob".into(), "etcd_x".into())
        );
    }
}
