//! Opening the queue: reading the cursors, indexing the log's queue
//! records, migrating a format-1 queue, and placing each sink.
//!
//! Migration (once, at the first open after an upgrade from a release up
//! to 57b122d): the records of the old `segment-*` files that some sink's
//! `PKC1` cursor has not passed are appended to the log with their
//! original append times, and made durable; then each such cursor is
//! rewritten in log sequence numbers (`PKC2`), and only then are the old
//! segments moved into `format-1/`. A crash in between repeats the
//! migration at the next open: the records appended the first time are
//! behind every cursor and go with their segments; at-least-once delivery
//! allows the rest.

use super::cursors::{self, Pos, CURSOR_PREFIX};
use super::state::{SinkSpec, SinkState, State};
use super::{codec, record_writer};
use crate::durable::legacy;
use crate::durable::record::HEADER_LEN;
use crate::durable::{Log, Payload, RecordRef, Ticket, KIND_QUEUE};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Records damage found at open: logged as an error and returned.
fn note_error(warnings: &mut Vec<String>, msg: String) {
    tracing::error!("{msg}");
    warnings.push(msg);
}

/// What a sink's cursor file said at open.
enum Loaded {
    /// A cursor in log sequence numbers.
    Found(Pos),
    /// A format-1 cursor, in the old queue's numbers.
    Old(Pos),
    /// No cursor file, and the queue never placed the sink: a new one.
    Missing,
    /// No cursor file for a sink the queue had placed: it was deleted.
    Lost,
    Bad,
}

/// The queue between reading its cursors and the end of its open.
pub struct Prepared {
    dir: PathBuf,
    specs: Vec<SinkSpec>,
    loaded: Vec<Loaded>,
    /// Log records below this are behind every cursor: not indexed.
    min_seq: u64,
    st: State,
    pub warnings: Vec<String>,
}

impl Prepared {
    /// Reads the cursors of `sinks` in `dir` (whose lock the caller holds);
    /// removes cursors being replaced and those of sinks no longer
    /// configured.
    pub fn read_cursors(dir: &Path, sinks: &[SinkSpec]) -> io::Result<Prepared> {
        let mut warnings = Vec::new();
        let mut paths = HashMap::new();
        for (name, path) in crate::durable::fsutil::list_dir(dir)? {
            if name.starts_with(CURSOR_PREFIX) && name.ends_with(".tmp") {
                // A cursor being replaced: the old one is still in place.
                fs::remove_file(&path)?;
            } else if let Some(sink) = name
                .strip_prefix(CURSOR_PREFIX)
                .and_then(cursors::decode_sink_name)
            {
                paths.insert(sink, path);
            }
        }
        let placed = cursors::read_sinks(dir).unwrap_or_default();
        let mut loaded = Vec::with_capacity(sinks.len());
        for spec in sinks {
            loaded.push(match paths.remove(&spec.name) {
                None if placed.contains(&spec.name) => {
                    note_error(
                        &mut warnings,
                        format!(
                            "disk queue: cursor {} of sink {} is missing; the sink starts again from the oldest record on disk",
                            dir.join(cursors::cursor_name(&spec.name)).display(),
                            spec.name
                        ),
                    );
                    Loaded::Lost
                }
                None => Loaded::Missing,
                Some(path) => match cursors::read(&path) {
                    Ok((cursors::MAGIC, p)) => Loaded::Found(p),
                    Ok((_, p)) => Loaded::Old(p),
                    Err(why) => {
                        note_error(
                            &mut warnings,
                            format!(
                                "disk queue: cursor {} of sink {} is unreadable ({why}); the sink starts again from the oldest record on disk",
                                path.display(),
                                spec.name
                            ),
                        );
                        Loaded::Bad
                    }
                },
            });
        }
        for (sink, path) in &paths {
            fs::remove_file(path)?;
            tracing::info!(
                "disk queue: sink {sink} is no longer configured; removed its cursor {}",
                path.display()
            );
        }
        let min_seq = loaded
            .iter()
            .filter_map(|l| match l {
                Loaded::Found(p) => Some(p.seq),
                Loaded::Bad | Loaded::Lost => Some(0),
                Loaded::Old(_) | Loaded::Missing => None,
            })
            .min()
            .unwrap_or(u64::MAX);
        Ok(Prepared {
            dir: dir.to_path_buf(),
            specs: sinks.to_vec(),
            loaded,
            min_seq,
            st: State::default(),
            warnings,
        })
    }

    /// Feeds one record of the opening log: indexes the queue's records
    /// some sink still needs.
    pub fn visit(&mut self, r: RecordRef<'_>) {
        if r.kind != KIND_QUEUE || r.seq < self.min_seq {
            return;
        }
        match codec::peek(r.version, r.payload) {
            Ok((append_ns, points)) => {
                let len = (HEADER_LEN + r.payload.len()) as u64;
                self.st.push(r.seq, len, points, append_ns, None);
            }
            Err(why) => note_error(
                &mut self.warnings,
                format!(
                    "disk queue {}: record {} is unreadable ({why}); it is skipped",
                    self.dir.display(),
                    r.seq
                ),
            ),
        }
    }

    /// Migrates a format-1 queue into `log`, places each sink (rewriting
    /// the cursors that moved) and returns the state, the warnings and the
    /// points each sink gets again.
    pub fn finish(mut self, log: &Log) -> io::Result<(State, Vec<String>, Vec<u64>)> {
        self.st.next_seq = self.st.next_seq.max(log.next_seq());
        let mapped = self.migrate(log)?;
        let mut st = self.st;
        let mut redelivered = Vec::with_capacity(self.specs.len());
        for (spec, l) in self.specs.iter().zip(&self.loaded) {
            let (pos, stored) = match l {
                Loaded::Found(p) => (st.normalize(*p), Some(*p)),
                Loaded::Old(p) => {
                    let pos = match mapped.range(p.seq..).next() {
                        Some((&old, &new)) => Pos {
                            seq: new,
                            point: if old == p.seq { p.point } else { 0 },
                        },
                        None => st.end(),
                    };
                    (st.normalize(pos), None)
                }
                Loaded::Bad | Loaded::Lost => (st.pos_at(0), None),
                Loaded::Missing => {
                    tracing::info!(sink = %spec.name, "disk queue: new sink; it starts with the next push");
                    (st.end(), None)
                }
            };
            if stored != Some(pos) {
                cursors::write(&self.dir, &spec.name, pos)?;
            }
            redelivered.push(st.total_points - st.points_at(pos));
            st.sinks.push(SinkState::new(spec, pos));
        }
        // Every configured sink now has its cursor file.
        let names: Vec<&str> = self.specs.iter().map(|s| s.name.as_str()).collect();
        cursors::write_sinks(&self.dir, &names)?;
        st.trim();
        let old = legacy::old_queue_segments(&self.dir)?;
        if !old.is_empty() {
            let to = legacy::move_migrated(&self.dir, &old)?;
            tracing::info!(
                "disk queue {}: migrated the format-1 queue; its old segments are kept in {}",
                self.dir.display(),
                to.display()
            );
        }
        Ok((st, self.warnings, redelivered))
    }

    /// Appends the records of the format-1 segments that some `PKC1`
    /// cursor has not passed, and waits until they are durable. Returns
    /// old number → log sequence number.
    fn migrate(&mut self, log: &Log) -> io::Result<BTreeMap<u64, u64>> {
        let mut mapped = BTreeMap::new();
        let segments = legacy::old_queue_segments(&self.dir)?;
        if segments.is_empty() {
            return Ok(mapped);
        }
        let from = self
            .loaded
            .iter()
            .filter_map(|l| match l {
                Loaded::Old(p) => Some(p.seq),
                Loaded::Bad | Loaded::Lost => Some(0),
                _ => None,
            })
            .min();
        let Some(from) = from else {
            return Ok(mapped);
        };
        let mut last = Ticket::DURABLE;
        let mut failed = None;
        let st = &mut self.st;
        let warnings = &mut self.warnings;
        let w = legacy::read_old_queue(&segments, from, &mut |r| {
            if failed.is_some() {
                return;
            }
            let points = match codec::decode_v1(r.body) {
                Ok(p) => p,
                Err(why) => {
                    note_error(
                        warnings,
                        format!(
                            "disk queue: format-1 record {} is unreadable ({why}); it is lost",
                            r.seq
                        ),
                    );
                    return;
                }
            };
            let p = Payload::new(
                KIND_QUEUE,
                codec::VERSION,
                record_writer::encode(&points, r.append_ns),
            );
            let len = p.frame_len();
            match log.append(p) {
                Ok(t) => {
                    st.push(t.seq(), len, points.len() as u32, r.append_ns, None);
                    mapped.insert(r.seq, t.seq());
                    last = t;
                }
                Err(e) => failed = Some(e),
            }
        })?;
        self.warnings.extend(w);
        if let Some(e) = failed {
            return Err(e);
        }
        log.wait_blocking(last)?;
        Ok(mapped)
    }
}
