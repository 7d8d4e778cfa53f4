//! The store's state changed under its lock: the series ids a push adds
//! to the index, the limits and the consistency check it must pass, and
//! applying each kind of mutation (a push, a failure time, a delete, a
//! wipe, a group restored whole). Callers hold the store lock; nothing
//! here does I/O.

use super::index::{self, GroupId, PushIds, Pusher};
use super::record::Mutation;
use super::series::{GroupLabels, StoredFamily};
use super::{pack_families, Group, Inner, Prepared, Replaced, StoreOptions};
use crate::model::family::Family;
use crate::model::GroupingKey;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

impl Inner {
    /// The series ids of a push's families (sanitized, and packed in
    /// `packed`), hashed only for the families the group does not already
    /// hold with exactly the same series: a re-push of the same series, the
    /// usual case, hashes and re-indexes nothing.
    pub(super) fn ids_to_index(
        &self,
        key: &GroupingKey,
        families: &[Family],
        packed: &[Arc<StoredFamily>],
    ) -> Vec<Option<Vec<u64>>> {
        let group = self
            .by_key
            .get(key)
            .and_then(|id| self.groups[*id as usize].as_deref());
        families
            .iter()
            .zip(packed)
            .map(|(f, packed)| {
                let held = group
                    .and_then(|g| g.families.get(&f.name))
                    .is_some_and(|stored| stored.same_series(packed));
                (!held).then(|| index::family_ids(f))
            })
            .collect()
    }

    /// `max_groups` and `max_series`: a push that adds a group to a full
    /// store is refused; one that grows the store's series past the limit
    /// is too, while one that keeps or shrinks its group's series is not.
    pub(super) fn check_limits(
        &self,
        push: &Prepared,
        options: &StoreOptions,
    ) -> Result<(), String> {
        let id = self.by_key.get(&push.key).copied();
        let groups = self.by_key.len() as u64;
        if options.max_groups > 0 && id.is_none() && groups >= options.max_groups {
            return Err(format!(
                "the store holds {groups} groups, max_groups = {}: a new group is refused",
                options.max_groups
            ));
        }
        if options.max_series == 0 {
            return Ok(());
        }
        let new: usize = push.packed.iter().map(|f| f.series_count()).sum();
        let old: usize = id
            .and_then(|id| self.groups[id as usize].as_ref())
            .map_or(0, |g| {
                g.families
                    .iter()
                    .filter(|(name, _)| {
                        push.replace || push.families.iter().any(|f| f.name == **name)
                    })
                    .map(|(_, f)| f.series_count())
                    .sum()
            });
        let total = self.index.series_count();
        let after = (total + new).saturating_sub(old) as u64;
        if new > old && after > options.max_series {
            return Err(format!(
                "the store would hold {after} series, more than max_series = {}",
                options.max_series
            ));
        }
        Ok(())
    }

    pub(super) fn check(
        &self,
        push: &Prepared,
        ids: &PushIds,
        utf8_names: bool,
    ) -> Result<(), String> {
        let id = self.by_key.get(&push.key).copied();
        let pushed = |name: &str| push.families.iter().any(|f| f.name == name);
        let replaces = |name: &str| push.replace || pushed(name);
        let pusher = Pusher {
            id,
            replaces: &replaces,
        };
        self.index.check(&pusher, &push.families, ids)?;
        if utf8_names {
            self.index.check_escaped_names(&pusher, &push.families)?;
        }
        Ok(())
    }

    /// Stores `families` (sanitized), with their series ids from
    /// [`Inner::ids_to_index`] and packed forms from [`pack_families`]:
    /// PUT (`replace`) or POST. A family without ids, pushed again with
    /// the same series, leaves the index alone. Returns what it replaced,
    /// for the caller to free after releasing the lock.
    ///
    /// A family the group holds is swapped in place, its old form taking
    /// the new one's slot in `packed` (a new name gets a clone of the
    /// slot's `Arc`): a re-push, the usual case, neither allocates nor
    /// frees under the lock.
    pub(super) fn apply_push(
        &mut self,
        key: &GroupingKey,
        replace: bool,
        families: &[Family],
        ids: Vec<Option<Vec<u64>>>,
        packed: Vec<Arc<StoredFamily>>,
        at_ns: i64,
    ) -> Replaced {
        let id = self.group_id(key, at_ns);
        // Copied first if a snapshot still reads it.
        let group = Arc::make_mut(self.groups[id as usize].as_mut().expect("live group"));
        let mut replaced = Replaced {
            swapped: packed,
            removed: Vec::new(),
        };
        for ((family, ids), slot) in families.iter().zip(ids).zip(&mut replaced.swapped) {
            let old = match group.families.get_mut(&family.name) {
                Some(stored) => {
                    std::mem::swap(stored, slot);
                    Some(&**slot)
                }
                None => {
                    group.families.insert(family.name.clone(), slot.clone());
                    None
                }
            };
            // Without ids, its old series stay indexed as they are.
            if let Some(ids) = ids {
                if let Some(old) = old {
                    group.unindex(id, &mut self.index, &family.name, old);
                }
                self.index
                    .add(id, &family.name, family.kind, ids.into_iter());
            }
        }
        // Every pushed family is in the group now; a PUT drops the others.
        if replace && group.families.len() > families.len() {
            let pushed: HashSet<&str> = families.iter().map(|f| f.name.as_str()).collect();
            let gone: Vec<String> = (group.families.keys())
                .filter(|name| !pushed.contains(name.as_str()))
                .cloned()
                .collect();
            for name in gone {
                let old = group.families.remove(&name).expect("listed above");
                group.unindex(id, &mut self.index, &name, &old);
                replaced.removed.push(old);
            }
        }
        group.push_ns = at_ns;
        replaced
    }

    pub(super) fn group_id(&mut self, key: &GroupingKey, at_ns: i64) -> GroupId {
        if let Some(id) = self.by_key.get(key) {
            return *id;
        }
        let group = Group {
            key: key.clone(),
            labels: GroupLabels::new(key),
            families: BTreeMap::new(),
            push_ns: 0,
            failure_ns: 0,
            created_ns: at_ns,
            journal_seq: 0,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.groups[id as usize] = Some(Arc::new(group));
                id
            }
            None => {
                self.groups.push(Some(Arc::new(group)));
                (self.groups.len() - 1) as GroupId
            }
        };
        self.by_key.insert(key.clone(), id);
        id
    }

    /// Copied first if a snapshot still reads it.
    /// The sequence number of group `key`'s last journal record; 0 if
    /// it does not exist.
    pub(super) fn journal_seq_of(&self, key: &GroupingKey) -> u64 {
        let id = self.by_key.get(key);
        id.and_then(|id| self.groups[*id as usize].as_ref())
            .map_or(0, |g| g.journal_seq)
    }

    /// Notes `seq` as group `key`'s last journal record, if it exists.
    pub(super) fn link(&mut self, key: &GroupingKey, seq: u64) {
        if let Some(&id) = self.by_key.get(key) {
            self.group_mut(id).journal_seq = seq;
        }
    }

    pub(super) fn group_mut(&mut self, id: GroupId) -> &mut Group {
        Arc::make_mut(
            self.groups[id as usize]
                .as_mut()
                .expect("ids in by_key point at live groups"),
        )
    }

    pub(super) fn remove_group(&mut self, key: &GroupingKey) {
        let Some(id) = self.by_key.remove(key) else {
            return;
        };
        if let Some(group) = self.groups[id as usize].take() {
            for (name, family) in &group.families {
                group.unindex(id, &mut self.index, name, family);
            }
        }
        self.free.push(id);
    }

    pub(super) fn apply(&mut self, m: Mutation) {
        match m {
            Mutation::Push {
                key,
                replace,
                families,
                at_ns,
            } => {
                let packed = pack_families(&key, &families, at_ns);
                let ids = self.ids_to_index(&key, &families, &packed);
                self.apply_push(&key, replace, &families, ids, packed, at_ns);
            }
            Mutation::Failure { key, at_ns } => {
                let id = self.group_id(&key, at_ns);
                self.group_mut(id).failure_ns = at_ns;
            }
            Mutation::Delete { key } => self.remove_group(&key),
            Mutation::Wipe => {
                self.groups.clear();
                self.free.clear();
                self.by_key.clear();
                self.index.clear();
            }
            Mutation::Restore(state) => {
                self.remove_group(&state.key);
                let id = self.group_id(&state.key, state.created_ns);
                let group = Arc::make_mut(self.groups[id as usize].as_mut().expect("live group"));
                group.push_ns = state.push_ns;
                group.failure_ns = state.failure_ns;
                group.created_ns = state.created_ns;
                for (family, at) in state.families {
                    let stored = StoredFamily::pack(&family, &group.labels, at);
                    let ids = stored.series_ids(&family.name, &group.labels);
                    self.index.add(id, &family.name, family.kind, ids);
                    group.families.insert(family.name, Arc::new(stored));
                }
            }
        }
    }
}
