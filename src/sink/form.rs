//! The forms a sink's points travel in: a push's points as the queues
//! share them ([`Payload`]), and a batch taken for sending
//! ([`BatchData`]), either as `Point`s (remote write) or as line protocol.

use crate::lineproto::Lines;
use crate::model::point::Point;
use std::sync::Arc;

/// Estimated line-protocol bytes of a point: what the budget counts.
pub fn point_cost(p: &Point) -> u64 {
    let tags: usize = p.tags.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let fields: usize = p.fields.iter().map(|f| f.key.len() + 20).sum();
    (p.measurement.len() + tags + fields + 21) as u64
}

/// The points of one push in the form a sink sends, shared between the
/// queues of the sinks that send that form.
#[derive(Clone)]
pub enum Payload {
    Points(Arc<Vec<Point>>),
    Lines(Arc<Lines>),
}

impl Payload {
    pub fn len(&self) -> usize {
        match self {
            Payload::Points(p) => p.len(),
            Payload::Lines(l) => l.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// No other queue shares these points.
    pub(super) fn held_alone(&self) -> bool {
        match self {
            Payload::Points(p) => Arc::strong_count(p) == 1,
            Payload::Lines(l) => Arc::strong_count(l) == 1,
        }
    }

    /// What the budget counts for points `from..to`.
    pub fn cost(&self, from: usize, to: usize) -> u64 {
        match self {
            Payload::Points(p) => p[from..to].iter().map(point_cost).sum(),
            Payload::Lines(l) => l.range(from, to).len() as u64,
        }
    }
}

/// A batch's points, in the form its sink sends.
pub enum BatchData {
    Points(Vec<Point>),
    /// Line protocol, ready to send.
    Lines(Vec<u8>),
}

impl BatchData {
    pub(super) fn empty_like(payload: &Payload) -> BatchData {
        match payload {
            Payload::Points(_) => BatchData::Points(Vec::new()),
            Payload::Lines(_) => BatchData::Lines(Vec::new()),
        }
    }

    pub(super) fn same_form(&self, payload: &Payload) -> bool {
        matches!(
            (self, payload),
            (BatchData::Points(_), Payload::Points(_)) | (BatchData::Lines(_), Payload::Lines(_))
        )
    }

    pub(super) fn is_empty(&self) -> bool {
        match self {
            BatchData::Points(p) => p.is_empty(),
            BatchData::Lines(l) => l.is_empty(),
        }
    }

    /// The payload's points, moved out when no other queue shares them.
    pub(super) fn from_payload(payload: Payload) -> BatchData {
        match payload {
            Payload::Points(p) => {
                BatchData::Points(Arc::try_unwrap(p).unwrap_or_else(|shared| (*shared).clone()))
            }
            Payload::Lines(l) => BatchData::Lines(
                Arc::try_unwrap(l).map_or_else(|shared| shared.text.clone(), |l| l.text),
            ),
        }
    }
}
