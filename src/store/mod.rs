//! The group store: the last push of every group, as the Prometheus
//! Pushgateway keeps it, so that Prometheus can scrape it and DELETE means
//! something.
//!
//! It follows the Pushgateway 1.5.1 (PUT replaces a group, POST replaces
//! the pushed families, DELETE removes the group, `push_time_seconds` and
//! `push_failure_time_seconds` per group, the grouping labels forced onto
//! every series). Like the Pushgateway, the store sanitizes what it is
//! given itself (`sanitize`: grouping labels forced onto every series,
//! `instance=""` filled in, labels sorted, timestamps and pushed
//! `push_time_seconds`/`push_failure_time_seconds` dropped), in
//! [`Store::prepare`], so no caller can store an unsanitized push. Where it
//! differs, and why:
//! - The consistency check is an index lookup, O(size of the push), not a
//!   re-gathering of everything stored, O(total series) (see `index`).
//! - A push is checked and applied before the reply, so PUT and POST answer
//!   200 even with the check off (the Pushgateway queues and answers 202).
//! - Pushed timestamps are accepted (DataKit's `honor_timestamps` forwards
//!   them); the store keeps the values and drops the timestamps.
//! - Among inconsistent HELP strings, the one of the lowest-numbered group
//!   holding the family is exposed (the Pushgateway's depends on map order).
//! - With `persistence_dir`, every acknowledged push is in a journal,
//!   fsynced before the reply (the Pushgateway snapshots every 5 minutes).
//! - `group_ttl` expires groups (the Pushgateway keeps them forever).
//! - `max_groups` and `max_series` refuse (429) a push that would pass
//!   them, before the consistency check, recording nothing.
//! - With `utf8_names`, two names that the default escaping would expose
//!   alike are a conflict (Pushgateway 1.11 takes both).
//! - Native histograms and exemplars are kept field for field, as 1.5.1
//!   keeps them; the JSON API shows native buckets as 1.8+ does (`json`).
//!
//! Concurrency contract: every method takes `&self` and may be called from
//! any thread. One mutex guards groups and index.
//! - A push holds it for the index lookups and the apply only: parsing and
//!   conversion are done by the caller, sanitizing, packing and the
//!   journal record by [`Store::prepare`], all before the lock; the fsync
//!   wait after; the families it replaced, and the parsed push, are
//!   freed after the lock too. A re-push of the families a group holds
//!   neither allocates nor frees under the lock. Mutations reach the
//!   journal in the order they reach the in-memory state.
//! - Readers (the exposition, the JSON API) hold it only to take a
//!   [`Snapshot`], O(groups + family names) reference counts and never
//!   O(series), and then read without it while pushes go on. A snapshot
//!   shows the state that some sequence of whole mutations left, never
//!   part of one: each mutation is applied under the lock.
//! - Groups and their families are shared with snapshots behind `Arc`s. A
//!   mutation never changes a family in place: it replaces it, and copies
//!   first what it changes that a snapshot still holds: a group
//!   (O(families of the group)), the holders of a family name (O(groups
//!   holding it), when a group takes or drops the name). What a snapshot
//!   holds is freed when the last one holding it is dropped.
//! - The lock measures its holds: [`Store::lock_max_hold`] is the longest
//!   since the last [`Store::take_lock_max_hold`] (each exposition takes
//!   it). A hold that still grows with the store: the series index
//!   doubling its table (a rehash of every series id, once per doubling:
//!   20-30 ms on the way to 1M series).

mod apply;
pub mod exposition;
pub mod index;
pub mod journal;
pub mod json;
mod order;
pub mod record;
mod replay;
mod room;
mod sanitize;
pub mod series;
mod undo;

use crate::model::family::{Family, MetricType};
use crate::model::GroupingKey;
use index::{FamilyEntry, GroupId, Index};
use journal::{Journal, Ticket};
use record::{GroupState, Mutation};
use sanitize::{PUSH_FAILURE_TIME, PUSH_FAILURE_TIME_HELP, PUSH_TIME, PUSH_TIME_HELP};
use series::{GroupLabels, StoredFamily};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
use undo::Undo;

/// A journal grows to this before it is compacted into a snapshot.
pub const DEFAULT_SNAPSHOT_AFTER_BYTES: u64 = 64 << 20;

#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub consistency_check: bool,
    /// UTF-8 names are accepted (`utf8_names`): the check also refuses a
    /// name that would expose like another under the default escaping.
    pub utf8_names: bool,
    /// Groups and series the store keeps; 0 for no limit. A push over
    /// either is refused whole, before the consistency check, and changes
    /// nothing (no failure time either).
    pub max_groups: u64,
    pub max_series: u64,
    pub persistence_dir: Option<PathBuf>,
    pub group_ttl: Duration,
    pub snapshot_after_bytes: u64,
}

impl StoreOptions {
    /// A store in memory only, its check on, with no limits and no TTL.
    pub fn in_memory() -> StoreOptions {
        StoreOptions {
            consistency_check: true,
            utf8_names: false,
            max_groups: 0,
            max_series: 0,
            persistence_dir: None,
            group_ttl: Duration::ZERO,
            snapshot_after_bytes: DEFAULT_SNAPSHOT_AFTER_BYTES,
        }
    }
}

/// One stored group. The store keeps each behind an `Arc`, and each of
/// its families behind another: a mutation copies a group that a
/// [`Snapshot`] still reads (its families by reference, O(families)) and
/// replaces whole families, so a snapshot never sees one change half made.
#[derive(Debug, Clone)]
pub struct Group {
    pub key: GroupingKey,
    /// The key's labels as every series of the group carries them.
    pub labels: GroupLabels,
    /// By name.
    pub families: BTreeMap<String, Arc<StoredFamily>>,
    /// 0 when no push succeeded yet.
    pub push_ns: i64,
    /// 0 when no push failed yet.
    pub failure_ns: i64,
    pub created_ns: i64,
    /// The sequence number of its last journal record, which the next
    /// one links to (see `record`); below the snapshot's cut for a group
    /// loaded from one; 0 without a journal.
    journal_seq: u64,
}

impl Group {
    /// The time `group_ttl` counts from: the last successful push, or the
    /// creation of a group that only ever saw failed pushes.
    fn last_success_ns(&self) -> i64 {
        if self.push_ns > 0 {
            self.push_ns
        } else {
            self.created_ns
        }
    }

    fn state(&self) -> GroupState {
        GroupState {
            key: self.key.clone(),
            push_ns: self.push_ns,
            failure_ns: self.failure_ns,
            created_ns: self.created_ns,
            families: self
                .families
                .iter()
                .map(|(name, f)| (f.unpack(name, &self.labels), f.pushed_ns))
                .collect(),
        }
    }

    /// Removes its family `name` from the index.
    fn unindex(&self, id: GroupId, index: &mut Index, name: &str, family: &StoredFamily) {
        index.remove(id, name, family.series_ids(name, &self.labels));
    }
}

#[derive(Default)]
struct Inner {
    /// By id; `None` for a free id.
    groups: Vec<Option<Arc<Group>>>,
    free: Vec<GroupId>,
    by_key: HashMap<GroupingKey, GroupId>,
    index: Index,
    /// What each journaled mutation not yet known durable replaced, in
    /// journal order, to undo it if its group commit fails.
    pending: Vec<Undo>,
    /// The journal log's epoch the pending list was last settled at.
    seen_epoch: u64,
    /// Journal record bytes per series pushed, averaged (see `room`).
    bytes_per_series: f64,
}

/// The families a push replaced, freed by the caller once the lock is
/// released.
struct Replaced {
    /// Slot by slot of the push's families: the old form of a family the
    /// group held, or a second reference to a new one.
    swapped: Vec<Arc<StoredFamily>>,
    /// The group's families a PUT did not name.
    removed: Vec<Arc<StoredFamily>>,
}

/// A push readied by [`Store::prepare`].
pub struct Prepared {
    key: GroupingKey,
    replace: bool,
    at_ns: i64,
    /// Sanitized; their series ids are hashed under the lock, and only for
    /// the families the group does not hold already.
    families: Vec<Family>,
    /// Boxed for the group here, outside the lock.
    packed: Vec<Arc<StoredFamily>>,
    /// The journal record, when persistence is on.
    record: Option<Vec<u8>>,
}

/// Why a push was not stored.
#[derive(Debug)]
pub enum PushRefused<E> {
    /// The consistency check failed; the failure time was recorded (wait on
    /// the ticket before replying, so that it is durable too).
    Inconsistent {
        message: String,
        ticket: Option<Ticket>,
    },
    /// The caller's reservation (room in the sink queues) failed; nothing
    /// changed.
    Reserve(E),
    /// The journal is broken; nothing changed.
    Journal(std::io::Error),
    /// The store is full (`max_groups`, `max_series`); nothing changed.
    Full(String),
}

pub struct Store {
    inner: Mutex<Inner>,
    /// The longest any holder kept `inner` locked since the last
    /// [`Store::take_lock_max_hold`], in ns.
    max_hold_ns: AtomicU64,
    /// Set by `load` when persistence is on.
    journal: OnceLock<Arc<Journal>>,
    options: StoreOptions,
    ready: AtomicBool,
    snapshotting: Arc<AtomicBool>,
    /// `Inner::seen_epoch`, readable while a push holds the lock (see
    /// [`Store::upcoming_slot`]).
    seen_epoch: AtomicU64,
    /// Room held for a snapshot on a full disk (see `room`).
    room: Arc<room::Room>,
    /// Each family's exposition order, as the last scrape built it.
    orders: order::OrderCache,
    /// The disk queue's own log, which the journal's records wait for
    /// (see [`Store::gate_journal_on`]).
    journal_gate: OnceLock<Arc<crate::durable::Log>>,
}

impl Store {
    /// An empty store, ready at once without `persistence_dir`; with it,
    /// not ready (pushes get 503) until [`Store::load`] has run.
    pub fn new(options: StoreOptions) -> Store {
        let room = Arc::new(room::Room::new(options.persistence_dir.as_deref()));
        Store {
            room,
            orders: order::OrderCache::default(),
            inner: Mutex::new(Inner {
                index: Index::new(&pinned_families()),
                ..Inner::default()
            }),
            max_hold_ns: AtomicU64::new(0),
            journal: OnceLock::new(),
            ready: AtomicBool::new(options.persistence_dir.is_none()),
            options,
            snapshotting: Arc::new(AtomicBool::new(false)),
            seen_epoch: AtomicU64::new(0),
            journal_gate: OnceLock::new(),
        }
    }

    /// With `persistence_dir` and `queue_dir` on two filesystems, the
    /// journal and the disk queue keep a log each. A push is then
    /// committed in a fixed order: its queue record first, its journal
    /// record once that is durable ([`Store::push_after`]), so that a
    /// failed queue write fails the journal record too and the push
    /// changes nothing; a failed journal write leaves a durable queue
    /// record, which the disk queue holds back until the journal record's
    /// fate is known and then revokes. Call before [`Store::load`].
    pub fn gate_journal_on(&self, queue_log: Arc<crate::durable::Log>) {
        let _ = self.journal_gate.set(queue_log);
    }

    /// Opens the journal under `persistence_dir`, applies what it recovers
    /// (without checks: it was checked when pushed) and marks the store
    /// ready. Returns warnings: torn tails, corrupt snapshots moved aside,
    /// undecodable records skipped. Blocking; call it once.
    pub fn load(&self) -> std::io::Result<Vec<String>> {
        self.load_with(Arc::new(crate::durable::RealIo))
    }

    /// [`Store::load`] through `io` (tests inject faults with it).
    pub fn load_with(&self, io: Arc<dyn crate::durable::Io>) -> std::io::Result<Vec<String>> {
        let Some(dir) = &self.options.persistence_dir else {
            return Ok(Vec::new());
        };
        let (journal, recovered) = Journal::open_with(io, dir)?;
        Ok(self.load_from(journal, recovered))
    }

    /// [`Store::load`] with a journal already open, e.g. on the log shared
    /// with the sinks' disk queue (see `agent`).
    pub fn load_from(&self, journal: Journal, recovered: journal::Recovered) -> Vec<String> {
        let dir = self.options.persistence_dir.clone().unwrap_or_default();
        let mut warnings = self.lock().replay(&recovered, &dir);
        warnings.splice(0..0, recovered.warnings);
        if let Some(queue_log) = self.journal_gate.get() {
            journal.log().gate_on(queue_log.clone());
        }
        let _ = self.journal.set(Arc::new(journal));
        self.ready.store(true, Ordering::Release);
        warnings
    }

    /// Has the journal's log, each time it tries to recover from a
    /// failure, settle the store, which compacts it when only its records
    /// keep a full disk full (see `room`): a store that gets no pushes or
    /// scrapes meanwhile heals too.
    pub fn heal_on_retry(self: &Arc<Self>) {
        let Some(journal) = self.journal.get() else {
            return;
        };
        let store = Arc::downgrade(self);
        journal.log().on_retry(move || {
            if let Some(store) = store.upgrade() {
                store.settle();
            }
        });
    }

    /// False while persisted state is being loaded.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Why the journal takes no pushes now (its log's write or fsync
    /// failure, until it recovers), if it does not.
    pub fn failure(&self) -> Option<String> {
        let journal = self.journal.get()?;
        journal.log().failure().map(|e| e.to_string())
    }

    fn lock(&self) -> Held<'_> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Held {
            inner,
            since: Instant::now(),
            max_hold_ns: &self.max_hold_ns,
        }
    }

    /// The longest time one caller held the store lock since the last
    /// [`Store::take_lock_max_hold`] (or since the start), without
    /// resetting it.
    pub fn lock_max_hold(&self) -> Duration {
        Duration::from_nanos(self.max_hold_ns.load(Ordering::Relaxed))
    }

    /// As [`Store::lock_max_hold`], and starts a new period: the value is
    /// reset to 0.
    pub fn take_lock_max_hold(&self) -> Duration {
        Duration::from_nanos(self.max_hold_ns.swap(0, Ordering::Relaxed))
    }

    /// Readies a PUT (`replace`) or POST of `families`, as parsed, for
    /// [`Store::push`], before the store lock is taken: sanitizes them for
    /// `key` (in place, so the push's families are not copied), packs them
    /// and encodes the journal record. Everything the store keeps or
    /// journals goes through here, so no caller can skip the sanitizing.
    pub fn prepare(
        &self,
        key: GroupingKey,
        replace: bool,
        mut families: Vec<Family>,
        at_ns: i64,
    ) -> Prepared {
        sanitize::sanitize(&key, &mut families);
        let packed = pack_families(&key, &families, at_ns);
        let record = self
            .journal
            .get()
            .map(|_| record::encode_push(&key, replace, &families, at_ns));
        Prepared {
            key,
            replace,
            at_ns,
            families,
            packed,
            record,
        }
    }

    /// Checks and stores a prepared push. `reserve` runs under the store
    /// lock after the check passes and before anything changes; its error
    /// refuses the push whole; its value is returned beside the store's
    /// ticket. On success, the ticket (when persistence is on) must be
    /// waited on before acknowledging.
    pub fn push<T, E>(
        &self,
        push: Prepared,
        reserve: impl FnOnce() -> Result<T, E>,
    ) -> Result<(Option<Ticket>, T), PushRefused<E>> {
        self.push_after(push, || reserve().map(|t| (t, None)))
    }

    /// [`Store::push`] for a push whose points went to a disk queue with a
    /// log of its own (`persistence_dir` and `queue_dir` on two
    /// filesystems): `reserve` also returns the ticket of the queue record,
    /// and the journal record is written only once that one is durable
    /// (see [`Store::gate_journal_on`]), so that a push whose queue record
    /// failed leaves nothing in the journal.
    pub fn push_after<T, E>(
        &self,
        mut push: Prepared,
        reserve: impl FnOnce() -> Result<(T, Option<Ticket>), E>,
    ) -> Result<(Option<Ticket>, T), PushRefused<E>> {
        let mut inner = self.lock();
        let settled = self.settle_locked(&mut inner);
        inner
            .check_limits(&push, &self.options)
            .map_err(PushRefused::Full)?;
        let ids = inner.ids_to_index(&push.key, &push.families, &push.packed);
        if self.options.consistency_check {
            let checked = index::check_alone(&push.families, &ids)
                .and_then(|()| inner.check(&push, &ids, self.options.utf8_names));
            if let Err(message) = checked {
                let m = Mutation::Failure {
                    key: push.key.clone(),
                    at_ns: push.at_ns,
                };
                let ticket = self
                    .journal_append(&mut inner, &m)
                    .map_err(PushRefused::Journal)?;
                inner.apply(m);
                if let Some(t) = ticket {
                    inner.link(&push.key, t.seq());
                }
                drop(inner);
                drop(settled);
                return Err(PushRefused::Inconsistent { message, ticket });
            }
        }
        if let (Some(j), Some(record)) = (self.journal.get(), &push.record) {
            // Refused before `reserve`, which may hand out a slot for the
            // record: a slot whose record is never appended must not be
            // mistaken for the next record to take its number.
            j.check_size(record.len()).map_err(PushRefused::Journal)?;
            if let Some(e) = j.log().refusal() {
                return Err(PushRefused::Journal(e));
            }
        }
        let (reserved, after) = reserve().map_err(PushRefused::Reserve)?;
        let ticket = match (self.journal.get(), &mut push.record) {
            (Some(j), Some(record)) => {
                record::set_link(record, inner.journal_seq_of(&push.key));
                let after = after.filter(|_| self.journal_gate.get().is_some());
                let t = j
                    .append_after(inner.seen_epoch, record, after)
                    .map_err(PushRefused::Journal)?;
                inner.remember(t, std::slice::from_ref(&push.key));
                let series = push.packed.iter().map(|f| f.series_count()).sum();
                inner.note_record(record.len(), series);
                Some(t)
            }
            _ => None,
        };
        let replaced = inner.apply_push(
            &push.key,
            push.replace,
            &push.families,
            ids,
            push.packed,
            push.at_ns,
        );
        if let Some(t) = ticket {
            inner.link(&push.key, t.seq());
        }
        self.maybe_snapshot(&inner);
        drop(inner);
        // Freed without the lock, as the push's parsed families are: a
        // free can make the allocator hand memory back to the OS, which
        // takes milliseconds when a scrape has just freed 100 MB.
        drop(replaced);
        drop(settled);
        Ok((ticket, reserved))
    }

    /// Removes the group (absent is fine).
    pub fn delete(&self, key: GroupingKey) -> std::io::Result<Option<Ticket>> {
        self.mutate(Mutation::Delete { key })
    }

    /// Removes every group.
    pub fn wipe(&self) -> std::io::Result<Option<Ticket>> {
        let mut inner = self.lock();
        let settled = self.settle_locked(&mut inner);
        let ticket = self.journal_append(&mut inner, &Mutation::Wipe)?;
        // Freed after the lock is released: O(stored series).
        let groups = std::mem::take(&mut inner.groups);
        inner.apply(Mutation::Wipe);
        self.maybe_snapshot(&inner);
        drop(inner);
        drop(groups);
        drop(settled);
        Ok(ticket)
    }

    fn mutate(&self, m: Mutation) -> std::io::Result<Option<Ticket>> {
        let mut inner = self.lock();
        let settled = self.settle_locked(&mut inner);
        let ticket = self.journal_append(&mut inner, &m)?;
        inner.apply(m);
        self.maybe_snapshot(&inner);
        drop(inner);
        drop(settled);
        Ok(ticket)
    }

    /// Removes the groups whose last successful push is older than
    /// `group_ttl` at `now_ns`; returns how many, and the ticket of the
    /// last journaled expiry.
    pub fn expire(&self, now_ns: i64) -> std::io::Result<(usize, Option<Ticket>)> {
        let ttl = self.options.group_ttl.as_nanos() as i64;
        if ttl == 0 {
            return Ok((0, None));
        }
        let mut inner = self.lock();
        let settled = self.settle_locked(&mut inner);
        let expired: Vec<GroupingKey> = inner
            .groups
            .iter()
            .flatten()
            .filter(|g| now_ns.saturating_sub(g.last_success_ns()) > ttl)
            .map(|g| g.key.clone())
            .collect();
        let mut ticket = None;
        for key in &expired {
            let m = Mutation::Delete { key: key.clone() };
            ticket = self.journal_append(&mut inner, &m)?;
            inner.apply(m);
        }
        drop(inner);
        drop(settled);
        Ok((expired.len(), ticket))
    }

    /// Waits until the mutation behind `ticket` is fsynced.
    pub async fn wait(&self, ticket: Option<Ticket>) -> std::io::Result<()> {
        match (self.journal.get(), ticket) {
            (Some(j), Some(t)) => j.wait(t).await,
            _ => Ok(()),
        }
    }

    /// Flushes the journal; called at shutdown.
    pub fn close(&self) -> std::io::Result<()> {
        match self.journal.get() {
            Some(j) => j.close(),
            None => Ok(()),
        }
    }

    pub fn group_count(&self) -> usize {
        self.lock().by_key.len()
    }

    pub fn series_count(&self) -> usize {
        self.lock().index.series_count()
    }

    /// Journals `m` (checked against the state `inner` holds, so refused
    /// if a group failed since it was settled) and remembers how to undo
    /// it.
    fn journal_append(&self, inner: &mut Inner, m: &Mutation) -> std::io::Result<Option<Ticket>> {
        let Some(j) = self.journal.get() else {
            return Ok(None);
        };
        let mut record = m.encode();
        if let Some(key) = m.key() {
            record::set_link(&mut record, inner.journal_seq_of(key));
        }
        let t = j.append_in(inner.seen_epoch, &record)?;
        match m.key() {
            Some(key) => inner.remember(t, std::slice::from_ref(key)),
            // A wipe changes every group.
            None => {
                let keys: Vec<GroupingKey> = inner.by_key.keys().cloned().collect();
                inner.remember(t, &keys);
            }
        }
        Ok(Some(t))
    }

    /// Compacts the journal into a snapshot once it has grown past the
    /// threshold. The cut and the state copy happen under the store lock
    /// (so they agree); the copy is of the groups' `Arc`s, O(groups), as a
    /// scrape's: unpacking, encoding and writing happen on another thread.
    fn maybe_snapshot(&self, inner: &Inner) {
        let Some(journal) = self.journal.get() else {
            return;
        };
        self.room.size_for(inner.snapshot_estimate());
        // On a full disk, the segments this journal pins go only once a
        // snapshot covers its records: compact now, into the reserve.
        let for_space = journal.log().refuses_for_space()
            && journal.current_journal_bytes() > 0
            && journal.pins_segments()
            && self.room.compaction_due();
        if (journal.current_journal_bytes() < self.options.snapshot_after_bytes && !for_space)
            || self.snapshotting.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let mut writer = match journal.start_snapshot_at(inner.seen_epoch) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!("cannot start a store snapshot: {e}");
                self.snapshotting.store(false, Ordering::Release);
                return;
            }
        };
        let groups: Vec<Arc<Group>> = inner.groups.iter().flatten().cloned().collect();
        let busy = self.snapshotting.clone();
        let room = self.room.clone();
        std::thread::spawn(move || {
            if for_space {
                room.give_up();
            }
            let result = groups
                .iter()
                .try_for_each(|g| writer.write_record(&Mutation::Restore(g.state()).encode()))
                .and_then(|()| {
                    let bytes = writer.bytes();
                    writer.finish().map(|()| bytes)
                });
            match result {
                Ok(bytes) => {
                    tracing::info!("store snapshot written");
                    room.sized_by_snapshot(bytes);
                }
                Err(e) => {
                    tracing::error!(
                        "store snapshot failed (the journal still holds everything): {e}"
                    );
                    if for_space {
                        room.take_back();
                    }
                }
            }
            busy.store(false, Ordering::Release);
        });
    }

    /// The store as it is now, to read without the lock: the lock is held
    /// for O(groups + family names) reference-count increments, not for
    /// the series.
    pub fn snapshot(&self) -> Snapshot {
        // Sized under the lock but allocated without it (an allocation
        // may make the allocator return memory to the OS first); a third
        // try takes what it needs under the lock.
        let (mut groups, mut families) = (Vec::new(), Vec::new());
        let mut settled = Vec::new();
        let mut committed = Vec::new();
        for tries in 1.. {
            let mut inner = self.lock();
            // A scrape never shows a push whose commit is known to have
            // failed.
            settled.extend(self.settle_locked(&mut inner));
            let (g, f) = (inner.groups.len(), inner.index.family_count());
            if tries == 3 || (groups.capacity() >= g && families.capacity() >= f) {
                groups.extend(inner.groups.iter().cloned());
                families.extend(
                    (inner.index.families()).map(|(name, entry)| (name.clone(), entry.clone())),
                );
                committed = inner.committed_states();
                break;
            }
            drop(inner);
            // Room for a few groups and names added meanwhile.
            groups.reserve(g + g / 16 + 16);
            families.reserve(f + f / 16 + 16);
        }
        drop(settled);
        // Mutations whose commit is still running are not shown yet.
        undo::show_committed(&mut groups, &mut families, committed);
        Snapshot { groups, families }
    }
}

/// The store between two mutations, read without its lock (see
/// [`Store::snapshot`]). Whole pushes, deletes and wipes only: every
/// mutation is applied under the lock, and a snapshot is taken under it.
/// It keeps what it references alive, so the memory of groups replaced
/// meanwhile is freed when the last snapshot holding them is dropped.
pub struct Snapshot {
    /// By id, as [`Inner::groups`].
    groups: Vec<Option<Arc<Group>>>,
    /// The index's families, in name order.
    families: Vec<(Arc<str>, FamilyEntry)>,
}

impl Snapshot {
    /// Every group, in id order.
    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.iter().flatten().map(|g| &**g)
    }

    /// Every group, in id order, to keep.
    pub fn into_groups(self) -> Vec<Arc<Group>> {
        self.groups.into_iter().flatten().collect()
    }

    /// The group of a holder in [`Snapshot::families`].
    pub fn group(&self, id: GroupId) -> &Group {
        self.groups[id as usize]
            .as_deref()
            .expect("holders are live groups")
    }

    /// True when family `name` is stored or pinned.
    pub fn has_family(&self, name: &str) -> bool {
        self.families
            .binary_search_by(|(n, _)| (**n).cmp(name))
            .is_ok()
    }

    /// The family names stored or pinned, in name order, with their
    /// holders.
    pub fn families(&self) -> impl Iterator<Item = (&str, &FamilyEntry)> {
        self.families.iter().map(|(n, e)| (&**n, e))
    }
}

/// The store lock, held; on drop it records how long it was held in the
/// store's high-water mark (a measurement, not a timeout: nothing waits
/// on it).
struct Held<'a> {
    inner: MutexGuard<'a, Inner>,
    since: Instant,
    max_hold_ns: &'a AtomicU64,
}

impl std::ops::Deref for Held<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl std::ops::DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.inner
    }
}

impl Drop for Held<'_> {
    /// Runs before the guard field is dropped, so the time is taken while
    /// the lock is still held.
    fn drop(&mut self) {
        let ns = u64::try_from(self.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        // A plain load first: the read-modify-write only when it grows.
        if ns > self.max_hold_ns.load(Ordering::Relaxed) {
            self.max_hold_ns.fetch_max(ns, Ordering::Relaxed);
        }
    }
}

/// The packed form of each family of a sanitized push, as the group
/// keeps them.
fn pack_families(key: &GroupingKey, families: &[Family], at_ns: i64) -> Vec<Arc<StoredFamily>> {
    let labels = GroupLabels::new(key);
    families
        .iter()
        .map(|f| Arc::new(StoredFamily::pack(f, &labels, at_ns)))
        .collect()
}

/// Names that always exist: the per-group push gauges and the agent's own
/// metrics. A push may not give them another type.
fn pinned_families() -> Vec<(&'static str, MetricType, &'static str)> {
    let mut pinned = vec![
        (PUSH_TIME, MetricType::Gauge, PUSH_TIME_HELP),
        (PUSH_FAILURE_TIME, MetricType::Gauge, PUSH_FAILURE_TIME_HELP),
    ];
    for doc in crate::metrics::CATALOG {
        pinned.push((doc.name, doc.kind, doc.help));
    }
    pinned
}

#[cfg(test)]
mod tests;
