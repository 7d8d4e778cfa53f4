//! The grouping key: the label set that names one group of pushed metrics,
//! `job` and whatever other labels the push's URL carried.
//!
//! Invariant: `job` comes first and is never empty; the other labels follow
//! sorted by name, each name once. Two URLs that name the same labels in
//! any order therefore give equal keys, and keys order and hash by value.

/// The labels of one group: `job` first, then the others sorted by name, so
/// that two URLs naming the same labels in any order give equal keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupingKey {
    labels: Vec<(String, String)>,
}

impl GroupingKey {
    /// A key of `job` and `labels`, which must not name `job` themselves;
    /// they are sorted here, so any order gives the same key.
    pub fn new(job: String, mut labels: Vec<(String, String)>) -> GroupingKey {
        debug_assert!(labels.iter().all(|(k, _)| k != "job"));
        labels.sort();
        labels.insert(0, ("job".to_string(), job));
        GroupingKey { labels }
    }

    /// A key of `job` and labels given flat, name then value, as a URL
    /// path lists them (`["zone", "eu", "instance", "a"]`). A `job` among
    /// them is ignored and a later name wins, as in a push's URL; names
    /// are not checked, so callers pass valid ones.
    pub fn from_pairs(job: &str, pairs: &[&str]) -> GroupingKey {
        let mut labels: Vec<(String, String)> = Vec::with_capacity(pairs.len() / 2);
        for pair in pairs.chunks_exact(2) {
            let (name, value) = (pair[0], pair[1]);
            if name == "job" {
                continue;
            }
            match labels.iter_mut().find(|(k, _)| k == name) {
                Some(slot) => slot.1 = value.to_string(),
                None => labels.push((name.to_string(), value.to_string())),
            }
        }
        GroupingKey::new(job.to_string(), labels)
    }

    pub fn labels(&self) -> &[(String, String)] {
        &self.labels
    }

    pub fn job(&self) -> &str {
        &self.labels[0].1
    }

    /// Rebuilds a key from labels read back from disk: `job` first, the
    /// rest sorted. None without a non-empty `job`.
    pub fn from_labels(mut labels: Vec<(String, String)>) -> Option<GroupingKey> {
        let job_at = labels
            .iter()
            .position(|(k, v)| k == "job" && !v.is_empty())?;
        let job = labels.remove(job_at);
        labels.sort();
        labels.insert(0, job);
        Some(GroupingKey { labels })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_pairs_sorts_skips_job_and_keeps_the_last_value() {
        let k = GroupingKey::from_pairs("j", &["zone", "eu", "job", "x", "a", "1", "zone", "us"]);
        let want: Vec<(String, String)> = [("job", "j"), ("a", "1"), ("zone", "us")]
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(k.labels(), want.as_slice());
        assert_eq!(k, GroupingKey::from_pairs("j", &["a", "1", "zone", "us"]));
    }
}
