//! Room to heal on a full disk.
//!
//! The store's journal records pin the log's segments until a snapshot
//! covers them. On a full disk nothing else can free them, and a snapshot
//! needs room as large as the state it writes (the previous snapshot stays
//! until the new one is whole). So the store holds that room: a file of
//! zeros, `ROOM` in `persistence_dir`, about one and a half times what its
//! snapshot would take, estimated from the journal records' bytes per
//! stored series until a snapshot is written, then from that snapshot's
//! size. It grows on a thread of its own when the estimate outgrows it by
//! a quarter, if the disk has room for the growth and as much again.
//!
//! When the log refuses appends for space, the store compacts (see
//! `maybe_snapshot`; at most every five seconds): it deletes `ROOM`,
//! writes the snapshot into that room, and the segments the snapshot
//! covers (and the sinks have passed) are deleted. The log then starts a
//! fresh segment (its own `RESERVE` serves for that), and `ROOM` is held
//! again once there is room for it.

use super::Inner;
use crate::durable::{fsutil, RealIo};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The room file's name in `persistence_dir`.
pub const ROOM_FILE: &str = "ROOM";
/// Compactions for space are tried at most this often.
const COMPACTION_EVERY: Duration = Duration::from_secs(5);

pub(super) struct Room {
    /// None without `persistence_dir`.
    path: Option<PathBuf>,
    /// The size to hold.
    wanted: AtomicU64,
    growing: Arc<AtomicBool>,
    last_compaction: Mutex<Option<Instant>>,
}

impl Room {
    pub fn new(dir: Option<&Path>) -> Room {
        Room {
            path: dir.map(|d| d.join(ROOM_FILE)),
            wanted: AtomicU64::new(0),
            growing: Arc::new(AtomicBool::new(false)),
            last_compaction: Mutex::new(None),
        }
    }

    /// Asks for room for a snapshot of `estimate` bytes, if the room held
    /// is short of it by more than a quarter: grows it on another thread.
    pub fn size_for(self: &Arc<Self>, estimate: u64) {
        let wanted = self.wanted.load(Ordering::Relaxed);
        if estimate + estimate / 4 <= wanted || self.path.is_none() {
            return;
        }
        self.wanted
            .store(estimate + estimate / 2, Ordering::Relaxed);
        self.grow(true);
    }

    /// Sizes the room by a snapshot just written: one and a quarter times.
    pub fn sized_by_snapshot(self: &Arc<Self>, bytes: u64) {
        self.wanted.store(bytes + bytes / 4, Ordering::Relaxed);
        self.grow(true);
    }

    /// Holds the room again after a compaction for space failed: its
    /// snapshot's temporary file is gone, so the room it had is free.
    pub fn take_back(self: &Arc<Self>) {
        self.grow(false);
    }

    /// Grows the room to the size wanted, on another thread; with
    /// `margin`, only if as much again stays free.
    fn grow(self: &Arc<Self>, margin: bool) {
        if self.growing.swap(true, Ordering::AcqRel) {
            return;
        }
        let room = Arc::clone(self);
        std::thread::spawn(move || {
            if let Some(path) = &room.path {
                let wanted = room.wanted.load(Ordering::Relaxed);
                let keep_free = if margin { wanted } else { 0 };
                if let Err(e) = crate::durable::io::hold_room(&RealIo, path, wanted, keep_free) {
                    tracing::debug!(
                        "cannot hold {wanted} bytes of room in {}: {e}",
                        path.display()
                    );
                }
            }
            room.growing.store(false, Ordering::Release);
        });
    }

    /// True at most once per [`COMPACTION_EVERY`].
    pub fn compaction_due(&self) -> bool {
        let mut last = self
            .last_compaction
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < COMPACTION_EVERY) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    /// Deletes the room, for a snapshot to take it.
    pub fn give_up(&self) {
        let Some(path) = &self.path else {
            return;
        };
        let held = std::fs::metadata(path).map_or(0, |m| m.len());
        if std::fs::remove_file(path).is_ok() {
            tracing::warn!(
                "the disk is full: compacting the store's journal into the {held} bytes of room held in {}",
                path.display()
            );
            if let Some(dir) = path.parent() {
                let _ = fsutil::sync_dir(dir);
            }
        }
    }
}

impl Inner {
    /// Folds one journal record's size per series into the estimate.
    pub(super) fn note_record(&mut self, bytes: usize, series: usize) {
        let per = bytes as f64 / series.max(1) as f64;
        self.bytes_per_series = if self.bytes_per_series > 0.0 {
            self.bytes_per_series + (per - self.bytes_per_series) / 16.0
        } else {
            per
        };
    }

    /// What a snapshot of the store would take, about.
    pub(super) fn snapshot_estimate(&self) -> u64 {
        let series = self.index.series_count() as f64;
        (series * self.bytes_per_series) as u64 + self.by_key.len() as u64 * 128
    }
}
