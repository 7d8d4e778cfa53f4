//! Reading a batch's records back, from the cache or through the log, as
//! points or straight as line protocol.

use super::codec;
use super::state::{Item, Source};
use crate::durable::{Log, KIND_QUEUE};
use crate::lineproto::{Dialect, LpDrops};
use crate::model::point::Point;
use std::borrow::Cow;

/// What a sink reads its batches as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Decoded points (remote write, tests).
    Points,
    /// Line protocol in this dialect, written straight from the records.
    Lines(Dialect),
}

/// A batch's points, in the form the sink asked for.
#[derive(Debug)]
pub enum Body {
    Points(Vec<Point>),
    Lines {
        /// One line per point, newline included.
        text: Vec<u8>,
        /// Lines in `text`.
        points: usize,
        /// What line protocol left out of the points.
        drops: LpDrops,
    },
}

impl Body {
    /// Points in the batch.
    pub fn len(&self) -> usize {
        match self {
            Body::Points(p) => p.len(),
            Body::Lines { points, .. } => *points,
        }
    }

    /// No points, and nothing left out to report either.
    pub fn is_empty(&self) -> bool {
        match self {
            Body::Points(p) => p.is_empty(),
            Body::Lines { points, drops, .. } => *points == 0 && drops.is_empty(),
        }
    }
}

/// Reads a batch's records in `form`; damaged ones are logged and counted
/// as lost points.
pub fn load(items: Vec<Item>, log: &Log, form: Form) -> (Body, u64) {
    let mut body = match form {
        Form::Points => Body::Points(Vec::new()),
        Form::Lines(_) => Body::Lines {
            text: Vec::new(),
            points: 0,
            drops: LpDrops::default(),
        },
    };
    let mut lost = 0;
    for item in items {
        let want = item.to - item.from;
        let payload = match &item.src {
            Source::Cached(bytes) => Ok((codec::VERSION, Cow::Borrowed(&bytes[..]))),
            Source::Log => match log.read(item.seq) {
                Ok((KIND_QUEUE, version, payload)) => Ok((version, Cow::Owned(payload))),
                Ok((kind, _, _)) => Err(format!("a record of kind {kind} is in its place")),
                Err(why) => Err(why),
            },
        };
        let added = payload.and_then(|(version, payload)| match &mut body {
            Body::Points(points) => {
                let mut pts = codec::decode(version, &payload)?;
                if pts.len() < item.to as usize {
                    return Err(format!(
                        "holds {} points, fewer than the {} indexed",
                        pts.len(),
                        item.to
                    ));
                }
                pts.truncate(item.to as usize);
                points.extend(pts.drain(item.from as usize..));
                Ok(())
            }
            Body::Lines {
                text,
                points,
                drops,
            } => {
                let Form::Lines(dialect) = form else {
                    unreachable!("a Lines body is made for Form::Lines")
                };
                let (lines, left_out) =
                    codec::write_lines(dialect, version, &payload, item.from, item.to, text)?;
                *points += lines;
                drops.add(left_out);
                Ok(())
            }
        });
        if let Err(why) = added {
            tracing::error!(
                "disk queue {}: record {} is unreadable ({why}); {want} points lost",
                log.dir().display(),
                item.seq
            );
            lost += u64::from(want);
        }
    }
    (body, lost)
}
