//! Exports: a whole store sent to a sink every `export_interval`, beside
//! the pushes. The sink knows nothing of the store: it is handed an
//! [`ExportSource`] that makes the export a batch at a time, so an export
//! of 1M series never sits in memory whole.
//!
//! Contract:
//! - An export lives in memory only, in its sink's queue, never in the
//!   disk queue: the store can make it again at any time, and the disk
//!   queue is for acknowledged pushes.
//! - Pushes come first. The worker sends an export batch only while no
//!   push batch is ready to go (full, or due by `flush_interval`); its
//!   wait for the next push batch goes on meanwhile, so a push batch
//!   waits at most for the one export request under way. While it waits,
//!   an export counts against the
//!   queue's budget (as the bytes its source estimates are left), and a
//!   push that needs that room takes it: the export is cut, counted.
//! - An export is offered only into room the budget has free; one that
//!   does not fit is skipped, counted.
//! - An export is sent once: a request that fails where a push would be
//!   retried cuts the rest of it (the next export is due at the next
//!   interval). A newer export replaces one not yet sent whole.

use super::form::BatchData;

/// Makes one export, batch by batch, in the form its sink sends.
pub trait ExportSource: Send {
    /// Up to `max_points` more points; `None` once the export is whole.
    fn next_batch(&mut self, max_points: usize) -> Option<ExportBatch>;
    /// Estimated line-protocol bytes of what is left to make, which the
    /// budget counts.
    fn remaining_bytes(&self) -> u64;
}

/// One batch of an export.
pub struct ExportBatch {
    pub data: BatchData,
    /// Points in `data`.
    pub points: usize,
    /// Samples the sink's format could not carry (line protocol: NaN,
    /// ±Inf, ...), left out of `data`.
    pub left_out: u64,
}

/// The export a sink's queue holds, if any.
#[derive(Default)]
pub(super) struct ExportSlot {
    /// `None` while the worker makes a batch from it, or when there is
    /// none (`held` says which).
    pub(super) source: Option<Box<dyn ExportSource>>,
    pub(super) held: bool,
    /// Counted in the queue's budget.
    pub(super) bytes: u64,
    /// Bumped whenever the held export changes, so that a worker that
    /// took the source out knows whether to put it back.
    pub(super) generation: u64,
    /// Exports cut (replaced or made way for a push) since the worker last
    /// counted them.
    pub(super) cut: u64,
}

impl ExportSlot {
    /// Drops the export held; true if there was one.
    pub(super) fn drop_held(&mut self) -> bool {
        let held = self.held;
        self.source = None;
        self.held = false;
        self.bytes = 0;
        self.generation += 1;
        held
    }

    /// Drops the export held, counting it cut.
    pub(super) fn cut(&mut self) {
        if self.drop_held() {
            self.cut += 1;
        }
    }
}

/// What `SinkQueue::take_export` found.
pub enum ExportTaken {
    /// No export is waiting.
    Nothing,
    /// The export was made whole and is gone.
    Done,
    Batch(ExportBatch),
}
