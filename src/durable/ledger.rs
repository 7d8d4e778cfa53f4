//! The ledger: which segments exist, where each durable record is in them,
//! and how far each client (holder) still needs them. Pure bookkeeping
//! under the writer's lock; the I/O is the caller's.

use super::io::LogFile;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a record is: its segment's name, its offset there, its length
/// (header included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub segment: u64,
    pub offset: u64,
    pub len: u64,
}

pub struct Segment {
    pub path: PathBuf,
    /// Set once the file exists.
    pub file: Option<Arc<dyn LogFile>>,
    /// Its records: sequence number, offset, length; in order.
    records: Vec<(u64, u64, u64)>,
    /// False once a write or fsync into it failed: never written again,
    /// so never kept as the spare either.
    pub reusable: bool,
}

impl Segment {
    /// Named by a rotation but never made, and holding no record.
    fn unmade(&self) -> bool {
        self.file.is_none() && self.records.is_empty()
    }
}

#[derive(Default)]
pub struct Ledger {
    /// By name: the first sequence number the segment may hold.
    segments: BTreeMap<u64, Segment>,
    /// Per holder: the records below this it no longer needs.
    holds: Vec<u64>,
}

impl Ledger {
    pub fn new(holders: usize) -> Ledger {
        Ledger {
            segments: BTreeMap::new(),
            holds: vec![0; holders],
        }
    }

    pub fn add_segment(&mut self, name: u64, path: PathBuf, file: Option<Arc<dyn LogFile>>) {
        self.segments.insert(
            name,
            Segment {
                path,
                file,
                records: Vec::new(),
                reusable: true,
            },
        );
    }

    pub fn set_file(&mut self, name: u64, file: Arc<dyn LogFile>) {
        if let Some(s) = self.segments.get_mut(&name) {
            s.file = Some(file);
        }
    }

    /// A write or fsync into segment `name` failed (see [`Segment::reusable`]).
    pub fn poison(&mut self, name: u64) {
        if let Some(s) = self.segments.get_mut(&name) {
            s.reusable = false;
        }
    }

    /// Forgets the segments that were named but never created (a rotation
    /// that failed).
    pub fn forget_unmade(&mut self) {
        self.segments.retain(|_, s| !s.unmade());
    }

    /// Whether segment `name` is listed (made, or named by a rotation).
    pub fn has(&self, name: u64) -> bool {
        self.segments.contains_key(&name)
    }

    /// Forgets segment `name` if it was only named, never made, and holds
    /// no record (a rotation moved elsewhere).
    pub fn forget(&mut self, name: u64) {
        if self.segments.get(&name).is_some_and(Segment::unmade) {
            self.segments.remove(&name);
        }
    }

    /// Notes a record written at `offset` of segment `name`.
    pub fn record(&mut self, name: u64, seq: u64, offset: u64, len: u64) {
        if let Some(s) = self.segments.get_mut(&name) {
            s.records.push((seq, offset, len));
        }
    }

    /// Where record `seq` is, and its segment's file.
    pub fn find(&self, seq: u64) -> Option<(Place, Option<Arc<dyn LogFile>>)> {
        let (&name, seg) = self.segments.range(..=seq).next_back()?;
        let i = seg.records.binary_search_by_key(&seq, |r| r.0).ok()?;
        let (_, offset, len) = seg.records[i];
        Some((
            Place {
                segment: name,
                offset,
                len,
            },
            seg.file.clone(),
        ))
    }

    /// Raises holder `holder`'s mark: it needs no record below `below`.
    pub fn release(&mut self, holder: usize, below: u64) {
        if let Some(h) = self.holds.get_mut(holder) {
            *h = (*h).max(below);
        }
    }

    /// Takes out the segments no holder needs (every record in one is
    /// below the next one's name); never the newest. Returns them, for the
    /// caller to delete (or keep as the spare).
    pub fn take_released(&mut self) -> Vec<Segment> {
        let min = self.holds.iter().copied().min().unwrap_or(u64::MAX);
        let names: Vec<u64> = self.segments.keys().copied().collect();
        let mut doomed = Vec::new();
        for w in names.windows(2) {
            if w[1] > min {
                break;
            }
            if let Some(seg) = self.segments.remove(&w[0]) {
                doomed.push(seg);
            }
        }
        doomed
    }

    /// [`Ledger::take_released`]'s paths.
    #[cfg(test)]
    pub fn collect(&mut self) -> Vec<PathBuf> {
        self.take_released().into_iter().map(|s| s.path).collect()
    }

    /// True if holder `holder` alone keeps a segment from being deleted:
    /// one would go if its hold moved to the end.
    pub fn pinned_by(&self, holder: usize) -> bool {
        let others = (self.holds.iter().enumerate())
            .filter(|&(h, _)| h != holder)
            .map(|(_, &hold)| hold)
            .min()
            .unwrap_or(u64::MAX);
        let own = self.holds.get(holder).copied().unwrap_or(0);
        // A segment goes once every hold reaches the next one's name. Look
        // at each, not only the first: one the holds already let go may
        // still be listed until the next collection.
        self.segments
            .keys()
            .skip(1)
            .any(|&next| next <= others && next > own)
    }

    pub fn oldest(&self) -> Option<u64> {
        self.segments.keys().next().copied()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_found_and_segments_collected_below_every_hold() {
        let mut l = Ledger::new(2);
        l.add_segment(1, "s1".into(), None);
        l.record(1, 1, 20, 30);
        l.record(1, 2, 50, 30);
        l.add_segment(3, "s3".into(), None);
        l.record(3, 3, 20, 40);
        l.add_segment(4, "s4".into(), None);
        assert_eq!(
            l.find(2).unwrap().0,
            Place {
                segment: 1,
                offset: 50,
                len: 30
            }
        );
        assert_eq!(l.find(3).unwrap().0.segment, 3);
        assert!(l.find(4).is_none());
        l.release(0, 10);
        assert!(l.collect().is_empty(), "holder 1 needs everything");
        l.release(1, 3);
        assert_eq!(l.collect(), vec![PathBuf::from("s1")]);
        l.release(1, 100);
        // The newest segment stays.
        assert_eq!(l.collect(), vec![PathBuf::from("s3")]);
        assert_eq!(l.segment_count(), 1);
        l.release(1, 2); // a mark never goes back
        assert!(l.find(1).is_none());
    }

    /// A segment its holds already let go but nobody collected yet (it was
    /// the newest when they were raised) must not hide the one after it,
    /// which the holder alone keeps.
    #[test]
    fn a_segment_left_uncollected_does_not_hide_the_pinned_one() {
        let mut l = Ledger::new(1);
        l.add_segment(1, "s1".into(), None);
        // A snapshot covers everything below 10 while s1 is the newest.
        l.release(0, 10);
        assert!(l.collect().is_empty(), "the newest segment stays");
        l.add_segment(10, "s10".into(), None);
        l.add_segment(20, "s20".into(), None);
        assert!(l.pinned_by(0), "s10's records are needed by holder 0 alone");
        l.release(0, 20);
        assert!(!l.pinned_by(0));
        assert_eq!(l.collect(), vec![PathBuf::from("s1"), PathBuf::from("s10")]);
    }
}
