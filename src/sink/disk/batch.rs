//! Reading a batch's records back: from the cache, or through the log.

use super::codec;
use super::state::{Item, Source};
use crate::durable::{Log, KIND_QUEUE};
use crate::model::point::Point;

/// Reads and decodes a batch's records; damaged ones are logged and
/// counted as lost points.
pub fn load(items: Vec<Item>, log: &Log) -> (Vec<Point>, u64) {
    let mut points = Vec::new();
    let mut lost = 0;
    for item in items {
        let want = (item.to - item.from) as usize;
        let decoded = match item.src {
            Source::Cached(body) => codec::decode(codec::VERSION, &body),
            Source::Log => match log.read(item.seq) {
                Ok((KIND_QUEUE, version, payload)) => codec::decode(version, &payload),
                Ok((kind, _, _)) => Err(format!("a record of kind {kind} is in its place")),
                Err(why) => Err(why),
            },
        };
        match decoded {
            Ok(mut pts) if pts.len() >= item.to as usize => {
                pts.truncate(item.to as usize);
                points.extend(pts.drain(item.from as usize..));
            }
            Ok(pts) => {
                tracing::error!(
                    "disk queue: record {} holds {} points, fewer than indexed; {want} points lost",
                    item.seq,
                    pts.len()
                );
                lost += want as u64;
            }
            Err(why) => {
                tracing::error!(
                    "disk queue {}: record {} is unreadable ({why}); {want} points lost",
                    log.dir().display(),
                    item.seq
                );
                lost += want as u64;
            }
        }
    }
    (points, lost)
}
