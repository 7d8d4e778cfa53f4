//! Replay: the store rebuilt from its snapshot and journal at start.
//!
//! Records are applied in order, without checks (they were checked when
//! pushed). A journal record of a push, a failure time or a delete links
//! to its group's previous record (`record`); replay follows those links
//! so that damage never builds a state no client pushed:
//! - a link of 0 says the group did not exist: if it does here, the
//!   record that removed it was lost, so it is removed first;
//! - a link below the snapshot's cut, or [`FROM_SNAPSHOT`], says the
//!   record changed the state the snapshot holds;
//! - any other link must name the group's last record applied. If it does
//!   not, a record of the group was lost to damage. A PUT or a delete does
//!   not depend on what came before and is applied; a POST or a failure
//!   time would change a state that never existed, so the group is
//!   dropped (logged), and stays dropped until a PUT, a delete or a
//!   record linked to nothing brings it back.

use super::journal::Recovered;
use super::record::Mutation;
use super::Inner;
use crate::model::GroupingKey;
use std::collections::HashSet;
use std::path::Path;

/// The link of a group loaded from a snapshot, whose last record is not
/// known (a snapshot's cut may be 1, leaving no number below it).
pub(super) const FROM_SNAPSHOT: u64 = u64::MAX;

impl Inner {
    /// Applies what the journal recovered; returns warnings (records that
    /// could not be read, groups dropped for a lost record).
    pub(super) fn replay(&mut self, recovered: &Recovered, dir: &Path) -> Vec<String> {
        let mut warnings = Vec::new();
        let cover = recovered.cover;
        let snapshot_end = recovered.snapshot_records;
        let mut dropped: HashSet<GroupingKey> = HashSet::new();
        for (i, bytes) in recovered.records.iter().enumerate() {
            if i == snapshot_end {
                self.link_to_snapshot();
            }
            let (m, link) = match Mutation::decode_linked(bytes) {
                Ok(decoded) => decoded,
                Err(e) => {
                    warnings.push(format!(
                        "store record {i} in {} skipped: {e}",
                        dir.display()
                    ));
                    continue;
                }
            };
            self.note_size(&m, bytes.len());
            let seq = (i >= snapshot_end)
                .then(|| recovered.seqs.get(i - snapshot_end).copied())
                .flatten();
            let key = m.key().cloned();
            let (Some(seq), Some(prev), Some(key)) = (seq, link, key.clone()) else {
                self.apply(m);
                // A record from before links: what the next one links to.
                if let (Some(seq), Some(key)) = (seq, key) {
                    self.link(&key, seq);
                }
                continue;
            };
            if !self.follows(&key, prev, cover) || dropped.contains(&key) {
                let whole = matches!(
                    m,
                    Mutation::Push { replace: true, .. } | Mutation::Delete { .. }
                ) || prev == 0;
                if !whole {
                    self.remove_group(&key);
                    if dropped.insert(key.clone()) {
                        warnings.push(format!(
                            "store group {key:?} in {}: a journal record before record {seq} was lost to damage, and record {seq} changes the state it left; the group is dropped rather than rebuilt as no client pushed it",
                            dir.display()
                        ));
                    }
                    continue;
                }
                dropped.remove(&key);
            }
            if prev == 0 {
                // Pushed to a group that did not exist: a lost delete.
                self.remove_group(&key);
            }
            self.apply(m);
            self.link(&key, seq);
        }
        if recovered.records.len() == snapshot_end {
            self.link_to_snapshot();
        }
        warnings
    }

    /// Whether a record linked to `prev` changes the state replay holds
    /// for group `key`.
    fn follows(&self, key: &GroupingKey, prev: u64, cover: u64) -> bool {
        let last = self.journal_seq_of(key);
        let exists = self.by_key.contains_key(key);
        match prev {
            0 => true,
            p if p == FROM_SNAPSHOT || p < cover => exists && last == FROM_SNAPSHOT,
            p => exists && last == p,
        }
    }

    /// Groups restored from the snapshot: their next record links to it.
    fn link_to_snapshot(&mut self) {
        let keys: Vec<GroupingKey> = self.by_key.keys().cloned().collect();
        for key in keys {
            self.link(&key, FROM_SNAPSHOT);
        }
    }

    /// Whole groups are what the room for a snapshot is sized by (see
    /// `room`).
    fn note_size(&mut self, m: &Mutation, bytes: usize) {
        let series = match m {
            Mutation::Restore(s) => s.families.iter().map(|(f, _)| f.metrics.len()).sum(),
            Mutation::Push { families, .. } => families.iter().map(|f| f.metrics.len()).sum(),
            _ => return,
        };
        self.note_record(bytes, series);
    }
}
