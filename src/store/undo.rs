//! Undoing what a failed group commit refused.
//!
//! A push is checked and applied under the store lock and its journal
//! record appended there, in the order of the state it leaves; the reply
//! waits for the record's fsync. If that group commit fails, the push is
//! refused (503 `diskFull`, or 500), and the store must show nothing of
//! it. So every journaled mutation not yet known durable keeps, in
//! [`Undo`], the groups it changed as they were before (reference counts:
//! O(groups changed)). When the journal's log reports a failure (its
//! epoch moved), the mutations from the first failed record on are undone
//! newest first. The log fails every record not yet durable at once, so
//! the state left is exactly the one its durable records describe, and no
//! mutation that depended on a failed one survives it.
//!
//! Invariants:
//! - `Inner::pending` is in journal order, and holds only mutations whose
//!   record is not known durable when last settled.
//! - Every path that takes the lock to mutate or to snapshot settles first,
//!   and appends with the epoch it settled at (`Log::append_in`), so no
//!   record is checked against state that a failure has undone.
//! - Readers see only what is durable: a snapshot shows each group with
//!   a pending mutation as its oldest pending entry remembers it, that is,
//!   as the last durable record left it (`show_committed`). So a push is
//!   visible once its commit is, never before, and never if it failed.

use super::index::{FamilyEntry, GroupId};
use super::{Group, Inner, Store};
use crate::durable::Ticket;
use crate::model::GroupingKey;
use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A group a pending mutation changed: the id it has now, if any, and its
/// state as the last durable record left it (`None`: absent).
pub(super) type Committed = (Option<GroupId>, Option<Arc<Group>>);

/// How to undo one journaled mutation: the groups it changed, as they
/// were before (`None`: the group did not exist).
pub(super) struct Undo {
    pub seq: u64,
    pub before: Vec<(GroupingKey, Option<Arc<Group>>)>,
}

impl Store {
    /// Where the journal record of the push [`Store::push`] is storing
    /// will go; `None` without a journal. Call it only from `push`'s
    /// `reserve`, which runs under the store lock between the check and
    /// the append. It is right only when the journal's log is its own (no
    /// other client appends to it): then a memory queue, or a disk queue
    /// on another log, releases the push's points once that record is
    /// durable, and drops them if it failed. On a log shared with the
    /// disk queue the queue's own record takes that number; the sinks
    /// ignore a slot on their own log.
    pub fn upcoming_slot(&self) -> Option<crate::durable::Slot> {
        let journal = self.journal.get()?;
        Some(crate::durable::Slot {
            log: journal.log().clone(),
            epoch: self.seen_epoch.load(Ordering::Acquire),
            seq: journal.log().next_seq(),
        })
    }

    /// Undoes the journaled mutations whose group commit failed, if any
    /// did: call it when a wait on a ticket fails, before replying, so
    /// that a refused push is gone from the store before its client hears
    /// of it. (Every mutation and every snapshot does it too.)
    pub fn settle(&self) {
        let mut inner = self.lock();
        let settled = self.settle_locked(&mut inner);
        drop(inner);
        drop(settled);
    }

    /// See [`Store::settle`]. Returns what it dropped, for the caller to
    /// free after releasing the lock.
    pub(super) fn settle_locked(&self, inner: &mut Inner) -> Vec<Undo> {
        let Some(journal) = self.journal.get() else {
            return Vec::new();
        };
        let log = journal.log();
        // Durable read before the epoch: if no group failed by the time
        // the epoch is read, everything up to `durable` truly is.
        let durable = log.durable();
        let epoch = log.epoch();
        let mut dropped = Vec::new();
        if epoch != inner.seen_epoch {
            if let Some(first) = log.failed_since(inner.seen_epoch) {
                let at = inner.pending.partition_point(|u| u.seq < first);
                let failed: Vec<Undo> = inner.pending.drain(at..).collect();
                if !failed.is_empty() {
                    tracing::warn!(
                        "store: undid {} mutation(s) whose journal commit failed (from record {first})",
                        failed.len()
                    );
                }
                for undo in failed.into_iter().rev() {
                    for (key, before) in undo.before.into_iter().rev() {
                        // The group as it is now is freed after the lock.
                        if let Some(now) = inner.restore_group(&key, before) {
                            dropped.push(Undo {
                                seq: 0,
                                before: vec![(key, Some(now))],
                            });
                        }
                    }
                }
            }
            inner.seen_epoch = epoch;
            self.seen_epoch.store(epoch, Ordering::Release);
        }
        let done = inner.pending.partition_point(|u| u.seq <= durable);
        dropped.extend(inner.pending.drain(..done));
        // Pushes are refused while the disk is full, so compaction for
        // space starts from here (see `room`); otherwise the mutation
        // that follows checks for a snapshot itself.
        if log.refuses_for_space() {
            self.maybe_snapshot(inner);
        }
        dropped
    }
}

impl Inner {
    /// The groups pending mutations changed, as they were before the
    /// oldest of them (reference counts, O(pending)).
    pub(super) fn committed_states(&self) -> Vec<Committed> {
        let mut seen: HashSet<&GroupingKey> = HashSet::new();
        let mut out = Vec::new();
        for undo in &self.pending {
            for (key, before) in &undo.before {
                if seen.insert(key) {
                    out.push((self.by_key.get(key).copied(), before.clone()));
                }
            }
        }
        out
    }

    /// Notes how to undo the mutation journaled as `t`: the groups of
    /// `keys` as they are now (reference counts, O(keys)).
    pub(super) fn remember(&mut self, t: Ticket, keys: &[GroupingKey]) {
        let before = keys
            .iter()
            .map(|k| {
                let group = self
                    .by_key
                    .get(k)
                    .and_then(|id| self.groups[*id as usize].clone());
                (k.clone(), group)
            })
            .collect();
        self.pending.push(Undo {
            seq: t.seq(),
            before,
        });
    }

    /// Puts group `key` back as `before` was (or removes it), index
    /// included; returns the group it replaced.
    pub(super) fn restore_group(
        &mut self,
        key: &GroupingKey,
        before: Option<Arc<Group>>,
    ) -> Option<Arc<Group>> {
        let now = self
            .by_key
            .get(key)
            .and_then(|id| self.groups[*id as usize].clone());
        self.remove_group(key);
        if let Some(group) = before {
            let id = self.group_id(key, group.created_ns);
            for (name, family) in &group.families {
                let ids = family.series_ids(name, &group.labels);
                self.index.add(id, name, family.kind, ids);
            }
            self.groups[id as usize] = Some(group);
        }
        now
    }
}

/// Rewrites a snapshot's copy of the groups and family holders to show
/// `committed` in place of what pending mutations made of them.
pub(super) fn show_committed(
    groups: &mut Vec<Option<Arc<Group>>>,
    families: &mut Vec<(Arc<str>, FamilyEntry)>,
    committed: Vec<Committed>,
) {
    for (id, state) in committed {
        let slot = match (id, &state) {
            (Some(id), _) => id,
            (None, None) => continue,
            // Deleted by a pending mutation: shown at an id of its own.
            (None, Some(_)) => {
                groups.push(None);
                (groups.len() - 1) as GroupId
            }
        };
        if let Some(now) = groups[slot as usize].take() {
            for name in now.families.keys() {
                if !state
                    .as_ref()
                    .is_some_and(|s| s.families.contains_key(name))
                {
                    remove_holder(families, name, slot);
                }
            }
        }
        if let Some(s) = &state {
            for (name, family) in &s.families {
                add_holder(families, name, slot, family.kind);
            }
        }
        groups[slot as usize] = state;
    }
}

fn remove_holder(families: &mut Vec<(Arc<str>, FamilyEntry)>, name: &str, id: GroupId) {
    let Ok(i) = families.binary_search_by(|(n, _)| (**n).cmp(name)) else {
        return;
    };
    let entry = &mut families[i].1;
    if entry.holders.contains(&id) {
        Arc::make_mut(&mut entry.holders).remove(&id);
    }
    if entry.holders.is_empty() && entry.pinned_help.is_none() {
        families.remove(i);
    }
}

fn add_holder(
    families: &mut Vec<(Arc<str>, FamilyEntry)>,
    name: &str,
    id: GroupId,
    kind: crate::model::family::MetricType,
) {
    match families.binary_search_by(|(n, _)| (**n).cmp(name)) {
        Ok(i) => {
            let entry = &mut families[i].1;
            if !entry.holders.contains(&id) {
                Arc::make_mut(&mut entry.holders).insert(id);
            }
        }
        Err(i) => families.insert(
            i,
            (
                Arc::from(name),
                FamilyEntry {
                    kind,
                    holders: Arc::new(BTreeSet::from([id])),
                    pinned_help: None,
                },
            ),
        ),
    }
}

#[cfg(test)]
#[path = "undo_tests.rs"]
mod tests;
