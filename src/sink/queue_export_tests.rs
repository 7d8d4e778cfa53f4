//! The export slot of a sink's queue: offered, taken in batches, cut
//! for pushes, replaced, ended by a failed request or a close.

use super::super::export::{ExportBatch, ExportSource, ExportTaken};
use super::*;
use crate::lineproto::Lines;
use crate::sink::queue::{Overflow, Payload};
use std::sync::Arc;

/// An export of `batches` batches of one line each, 10 bytes a line;
/// `during` runs inside each `next_batch`, as if a push arrived while
/// the worker makes the batch.
struct Fake {
    left: usize,
    during: Option<Box<dyn FnMut() + Send>>,
}

impl ExportSource for Fake {
    fn next_batch(&mut self, _max_points: usize) -> Option<ExportBatch> {
        if let Some(f) = &mut self.during {
            f();
        }
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        Some(ExportBatch {
            data: BatchData::Lines(b"m v=1 1\n\n\n".to_vec()),
            points: 1,
            left_out: 0,
        })
    }

    fn remaining_bytes(&self) -> u64 {
        self.left as u64 * 10
    }
}

fn fake(left: usize) -> Box<Fake> {
    Box::new(Fake { left, during: None })
}

fn push(q: &SinkQueue, bytes: usize) -> bool {
    let mut state = q.lock();
    if !q.has_room(&mut state, bytes as u64) {
        return false;
    }
    let mut lines = Lines::default();
    lines.text.extend(std::iter::repeat_n(b'x', bytes));
    lines.end_line();
    q.admit(
        &mut state,
        Payload::Lines(Arc::new(lines)),
        bytes as u64,
        None,
    );
    true
}

fn batches(q: &SinkQueue) -> (usize, u64) {
    let mut sent = 0;
    let mut cut = 0;
    loop {
        let (taken, c) = q.take_export(1);
        cut += c;
        match taken {
            ExportTaken::Batch(_) => sent += 1,
            ExportTaken::Done | ExportTaken::Nothing => return (sent, cut),
        }
    }
}

#[test]
fn an_export_is_sent_whole_when_nothing_interferes() {
    let q = SinkQueue::new(100, Overflow::Block);
    assert!(q.offer_export(fake(3)));
    assert_eq!(q.lock().export.bytes, 30);
    assert_eq!(batches(&q), (3, 0));
    assert_eq!(q.lock().export.bytes, 0);
    assert!(matches!(q.take_export(1).0, ExportTaken::Nothing));
}

#[test]
fn an_export_fits_only_in_free_room() {
    let q = SinkQueue::new(100, Overflow::Block);
    assert!(push(&q, 80));
    assert!(!q.offer_export(fake(3)), "30 bytes beside 80 of 100");
    assert!(q.offer_export(fake(2)));
}

#[test]
fn a_push_takes_the_room_of_an_export() {
    let q = SinkQueue::new(100, Overflow::Block);
    assert!(q.offer_export(fake(8)));
    // 80 bytes fit beside the export's 80 only if it makes way.
    assert!(push(&q, 80));
    assert_eq!(q.lock().export.bytes, 0);
    assert_eq!(batches(&q), (0, 1));
    // A push that fits beside it leaves it alone.
    let q = SinkQueue::new(100, Overflow::Block);
    assert!(q.offer_export(fake(2)));
    assert!(push(&q, 50));
    assert_eq!(batches(&q), (2, 0));
}

#[test]
fn a_push_during_a_batch_cuts_the_export_and_its_batch() {
    let q = Arc::new(SinkQueue::new(100, Overflow::Block));
    let inside = q.clone();
    let source = Box::new(Fake {
        left: 9,
        during: Some(Box::new(move || {
            push(&inside, 60);
        })),
    });
    assert!(q.offer_export(source));
    // The first batch is made while a push needs the room: it goes
    // with the export.
    assert_eq!(batches(&q), (0, 1));
    assert_eq!(q.lock().depth_bytes(), 60);
}

#[test]
fn a_newer_export_replaces_one_not_sent_whole() {
    let q = SinkQueue::new(1000, Overflow::Block);
    assert!(q.offer_export(fake(5)));
    assert!(matches!(q.take_export(1).0, ExportTaken::Batch(_)));
    assert!(q.offer_export(fake(2)));
    assert_eq!(batches(&q), (2, 1));
    // A failed request ends it, for the caller to count.
    assert!(q.offer_export(fake(2)));
    assert!(q.cut_export());
    assert_eq!(batches(&q), (0, 0));
    // Closing drops it.
    assert!(q.offer_export(fake(2)));
    q.close();
    assert_eq!(batches(&q), (0, 0));
}
