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
