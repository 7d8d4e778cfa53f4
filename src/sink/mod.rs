//! Sinks: where points go. Each configured sink has its own queue, budget
//! and worker, so a slow or down sink holds back only itself (and, with
//! `overflow = "block"`, new pushes once its budget is full). With no sink
//! configured, points are written to stdout as line protocol.
//!
//! Without the `net` feature there is no HTTP client: the agent runs with
//! the stdout sink only, and [`SinkSet::start`] refuses any configured
//! sink ([`StartError::NoNet`]).

#[cfg(feature = "net")]
pub mod client;
pub mod disk;
pub mod drops;
pub mod export;
mod form;
pub mod http;
pub mod lp_reply;
pub mod queue;
pub mod remote_write;
pub mod stdout;

use crate::config::{self, IoConfig, SinkConfig};
use crate::convert::{Converted, EmitPoints, PointParts};
use crate::lineproto::{Dialect, Lines, LpDrops};
use crate::metrics::Metrics;
use crate::model::family::Family;
use crate::model::point::now_ns;
use disk::{DiskQueue, EncodedPush, RecordWriter, Refused, SinkSpec, Ticket};
use queue::{Overflow, Payload, SinkQueue};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;
use tokio::task::JoinHandle;

/// Seconds a client is asked to wait when a sink's queue is full.
pub const QUEUE_FULL_RETRY_AFTER_SECS: u32 = 5;

/// How long a push that finds a blocking queue full waits for room before
/// it is refused: a short wait lets a busy agent pace its clients by
/// latency, where an instant 503 has them push again at once.
pub const QUEUE_FULL_WAIT: Duration = Duration::from_secs(1);

/// A push refused because a sink with `overflow = "block"` has no room.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueFull {
    pub sink: String,
    pub max_bytes: u64,
}

/// The `sink` label of what the stdout sink (no `[[sinks]]`) leaves out.
pub const STDOUT_SINK: &str = "stdout";

/// A push's points as the mapping writes them ([`SinkSet::conversion`]),
/// to hand to [`SinkSet::seal`].
pub enum Conversion {
    /// For the memory queues or stdout.
    Memory(Converted),
    /// The disk queue's record.
    Disk(RecordWriter),
}

impl Conversion {
    /// Points converted so far.
    pub fn count(&self) -> usize {
        match self {
            Conversion::Memory(c) => c.count,
            Conversion::Disk(w) => w.count() as usize,
        }
    }
}

impl EmitPoints for Conversion {
    fn family(&mut self, family: &Family, measurement: &str, field: &str) {
        match self {
            Conversion::Memory(c) => c.family(family, measurement, field),
            Conversion::Disk(w) => w.family(family, measurement, field),
        }
    }

    fn point(&mut self, p: &PointParts<'_>) {
        match self {
            Conversion::Memory(c) => c.point(p),
            Conversion::Disk(w) => w.point(p),
        }
    }
}

/// A push's points readied by [`SinkSet::seal`], to hand to
/// [`SinkSet::enqueue`].
pub struct Sealed {
    form: SealedForm,
}

enum SealedForm {
    /// For the memory queues or stdout.
    Memory(Box<Converted>),
    /// The disk queue's record, encoded.
    Disk(EncodedPush),
}

/// A push taken by the sinks, to be completed with [`SinkSet::complete`].
#[derive(Default)]
#[must_use = "a push is acknowledged only once it is completed"]
pub struct Enqueued {
    ticket: Option<Ticket>,
    /// With no sink configured: the points for stdout.
    stdout: Option<Lines>,
}

impl Enqueued {
    /// The disk queue record's ticket, if the push has one: a journal
    /// record on another log waits for it (the store's `push_after`).
    pub fn disk_ticket(&self) -> Option<Ticket> {
        self.ticket
    }
}

/// Room held in the blocking memory queues for one push while it is parsed
/// ([`SinkSet::wait_for_room`]); given back when the push is enqueued
/// ([`SinkSet::enqueue`]) or dropped.
#[derive(Default)]
#[must_use = "the room is held only as long as the reservation"]
pub struct Reservation {
    queues: Vec<(Arc<SinkQueue>, u64)>,
}

impl Reservation {
    fn bytes_in(&self, queue: &Arc<SinkQueue>) -> u64 {
        self.queues
            .iter()
            .find(|(q, _)| Arc::ptr_eq(q, queue))
            .map_or(0, |(_, b)| *b)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        for (queue, bytes) in self.queues.drain(..) {
            queue.release(&mut queue.lock(), bytes);
        }
    }
}

/// Why the sinks did not take a push; nothing was queued anywhere.
#[derive(Debug, Error)]
pub enum EnqueueError {
    /// 503 with Retry-After: the client retries later.
    #[error("sink {} has no room in its queue (budget {} bytes)", .0.sink, .0.max_bytes)]
    Full(QueueFull),
    /// The disk queue refused the push: closed, or broken by an earlier
    /// write or fsync error.
    #[error("{0}")]
    Refused(Refused),
    /// The push's write or fsync failed.
    #[error("the disk queue failed: {0}")]
    Sync(std::io::Error),
}

/// Why the sinks could not start.
#[derive(Debug, Error)]
pub enum StartError {
    #[error("[io] queue_dir {dir}: cannot open the disk queue: {source}")]
    DiskQueue { dir: String, source: std::io::Error },
    #[cfg(feature = "net")]
    #[error(transparent)]
    Client(#[from] client::ClientError),
    #[cfg(not(feature = "net"))]
    #[error(
        "sink {sink}: this pushkit was built without the net feature; http sinks are unavailable"
    )]
    NoNet { sink: String },
}

pub struct SinkSet {
    http: Vec<Arc<http::HttpSink>>,
    /// With `[io] queue_dir`: every sink reads from this one disk queue.
    disk: Option<Arc<DiskQueue>>,
    /// Used when no HTTP sink is configured.
    lines: stdout::LineOutput,
    metrics: Arc<Metrics>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// Queue bytes per body byte of the last push admitted, in thousandths
    /// (between 1 and 2 bytes per byte): what [`SinkSet::refuse_early`]
    /// expects a push to take.
    expansion_permille: AtomicU64,
}

/// Bounds of `expansion_permille`. Text pushes take about 1.2 to 1.7 queue
/// bytes per body byte (each point repeats the grouping labels); a compressed
/// body would teach a ratio that refuses plain pushes too early.
const MIN_EXPANSION_PERMILLE: u64 = 1_000;
const MAX_EXPANSION_PERMILLE: u64 = 2_000;

/// The disk queue's view of the configured sinks, in order.
pub fn disk_specs(sinks: &[SinkConfig]) -> Vec<SinkSpec> {
    sinks
        .iter()
        .map(|s| SinkSpec {
            name: s.name.clone(),
            max_disk_bytes: s.max_disk_bytes,
            drop_oldest: s.overflow == config::Overflow::DropOldest,
        })
        .collect()
}

/// Opens the disk queue under `dir` for `sinks`.
fn open_disk_queue(
    dir: &str,
    sinks: &[SinkConfig],
    batch_points: usize,
    metrics: &Metrics,
) -> Result<Arc<DiskQueue>, StartError> {
    let opened = open_disk(dir, sinks, Arc::new(crate::durable::RealIo))?;
    Ok(report_opened(opened, sinks, batch_points, metrics))
}

/// Opens the disk queue under `dir` for `sinks`, in a log of its own,
/// through `io` (tests inject faults with it); hand the result to
/// [`SinkSet::start_with`].
pub fn open_disk(
    dir: &str,
    sinks: &[SinkConfig],
    io: Arc<dyn crate::durable::Io>,
) -> Result<disk::Opened, StartError> {
    DiskQueue::open_with(
        io,
        std::path::Path::new(dir),
        &disk_specs(sinks),
        disk::DEFAULT_SEGMENT_BYTES,
    )
    .map_err(|source| StartError::DiskQueue {
        dir: dir.to_string(),
        source,
    })
}

/// Logs what opening the disk queue found. Of what it reads back, at most
/// the batch a sink had in flight at the crash can have been delivered
/// already (a sink records its cursor after each delivered batch): those
/// are counted as possible duplicates.
fn report_opened(
    opened: disk::Opened,
    sinks: &[SinkConfig],
    batch_points: usize,
    metrics: &Metrics,
) -> Arc<DiskQueue> {
    let specs = disk_specs(sinks);
    for w in &opened.warnings {
        tracing::warn!("{w}");
    }
    for (spec, n) in specs.iter().zip(&opened.redelivered_points) {
        if *n > 0 {
            tracing::info!(sink = %spec.name, points = n, "disk queue: resending points not acknowledged before the restart");
            let maybe_sent = (*n).min(batch_points as u64);
            metrics
                .sink_duplicates
                .with(&[&spec.name, "restart"])
                .add(maybe_sent as f64);
        }
    }
    Arc::new(opened.queue)
}

/// The HTTP client of sink `cfg`, and what it sends that must never show.
#[cfg(feature = "net")]
fn sink_client(cfg: &SinkConfig) -> Result<(http::Client, Vec<String>), StartError> {
    Ok((client::build_client(cfg)?, client::sink_secrets(cfg)?))
}

/// Without the network stack a sink could never send: refused at start,
/// not found out at its first batch.
#[cfg(not(feature = "net"))]
fn sink_client(cfg: &SinkConfig) -> Result<(http::Client, Vec<String>), StartError> {
    Err(StartError::NoNet {
        sink: cfg.name.clone(),
    })
}

impl SinkSet {
    /// Builds the sinks and starts one worker per HTTP sink. Must run inside
    /// a tokio runtime.
    pub fn start(
        sinks: &[SinkConfig],
        io: &IoConfig,
        lines: stdout::LineOutput,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<SinkSet>, StartError> {
        SinkSet::start_with(sinks, io, lines, metrics, None)
    }

    /// [`SinkSet::start`] with the disk queue already open (on the log
    /// shared with the store's journal; see `agent`), if `disk` is given.
    pub fn start_with(
        sinks: &[SinkConfig],
        io: &IoConfig,
        lines: stdout::LineOutput,
        metrics: Arc<Metrics>,
        disk: Option<disk::Opened>,
    ) -> Result<Arc<SinkSet>, StartError> {
        let disk = match (disk, &io.queue_dir, sinks.is_empty()) {
            (Some(opened), _, _) => {
                Some(report_opened(opened, sinks, io.max_cache_count, &metrics))
            }
            (None, Some(dir), false) => {
                Some(open_disk_queue(dir, sinks, io.max_cache_count, &metrics)?)
            }
            _ => None,
        };
        let mut http_sinks = Vec::new();
        for (i, cfg) in sinks.iter().enumerate() {
            let (client, secrets) = sink_client(cfg)?;
            http_sinks.push(Arc::new(http::HttpSink {
                name: cfg.name.clone(),
                url: cfg.url.clone(),
                gzip: cfg.gzip,
                format: match cfg.format {
                    config::Format::LineProtocol => {
                        http::Format::LineProtocol(match cfg.lp_dialect {
                            config::LpDialect::InfluxDb => Dialect::InfluxDb,
                            config::LpDialect::VictoriaMetrics => Dialect::VictoriaMetrics,
                        })
                    }
                    config::Format::RemoteWrite => http::Format::RemoteWrite,
                },
                backoff: http::Backoff {
                    base: cfg.retry_base,
                    max: cfg.retry_max,
                },
                disk: disk.clone().map(|d| (d, i)),
                disk_budget: cfg.max_disk_bytes,
                client,
                queue: Arc::new(SinkQueue::new(
                    cfg.max_queue_bytes,
                    match cfg.overflow {
                        config::Overflow::Block => Overflow::Block,
                        config::Overflow::DropOldest => Overflow::DropOldest,
                    },
                )),
                metrics: metrics.clone(),
                secrets,
            }));
        }
        let workers = http_sinks
            .iter()
            .map(|s| {
                s.update_depth();
                tokio::spawn(s.clone().run(io.max_cache_count, io.flush_interval))
            })
            .collect();
        Ok(Arc::new(SinkSet {
            http: http_sinks,
            disk,
            lines,
            metrics,
            workers: Mutex::new(workers),
            expansion_permille: AtomicU64::new(MIN_EXPANSION_PERMILLE),
        }))
    }

    /// Where a push's points are converted to, in the form the sinks take
    /// them: the disk queue's record, written straight from the mapping;
    /// otherwise `Point`s for remote write, and line protocol (written
    /// once per push, about `line_bytes`) for stdout and line-protocol
    /// sinks with memory queues.
    pub fn conversion(&self, line_bytes: usize) -> Conversion {
        if self.disk.is_some() {
            // A queue record takes about a fifth of the line protocol's
            // bytes (see `disk::codec`).
            return Conversion::Disk(RecordWriter::new(now_ns(), line_bytes / 4));
        }
        if self.http.is_empty() {
            return Conversion::Memory(Converted::new(false, Some(Dialect::InfluxDb), line_bytes));
        }
        // Lines in the first line-protocol sink's dialect; a sink that
        // wants another dialect (or remote write) takes points.
        let lines = self.http.iter().find_map(|s| match s.format {
            http::Format::LineProtocol(d) => Some(d),
            http::Format::RemoteWrite => None,
        });
        let points = self
            .http
            .iter()
            .any(|s| s.format != http::Format::LineProtocol(lines.unwrap_or_default()));
        Conversion::Memory(Converted::new(points, lines, line_bytes))
    }

    /// Waits until every memory queue with `overflow = "block"` has room
    /// for a push of `body_bytes` (its body times what the last admitted
    /// push took per body byte), and holds that room for it while it is
    /// parsed, so that pushes parsed side by side cannot all count on the
    /// same room. Refuses the push when a queue that holds points still has
    /// no room after `wait` (its worker finishing batches frees room):
    /// parsing pushes only to refuse them would take the CPU the sinks
    /// need to drain their queues.
    pub async fn wait_for_room(
        &self,
        body_bytes: u64,
        wait: Duration,
    ) -> Result<Reservation, EnqueueError> {
        let mut held = Reservation::default();
        if self.disk.is_some() {
            return Ok(held);
        }
        let expected =
            body_bytes.saturating_mul(self.expansion_permille.load(Ordering::Relaxed)) / 1_000;
        let deadline = tokio::time::Instant::now() + wait;
        for sink in &self.http {
            let queue = &sink.queue;
            if queue.overflow != Overflow::Block {
                continue;
            }
            loop {
                // Registered before the check, so that a batch finished
                // between the check and the wait is not missed.
                let freed = queue.room_freed();
                tokio::pin!(freed);
                freed.as_mut().enable();
                {
                    let mut state = queue.lock();
                    if queue.has_room(&mut state, expected) {
                        queue.reserve(&mut state, expected);
                        held.queues.push((queue.clone(), expected));
                        break;
                    }
                }
                if tokio::time::timeout_at(deadline, freed).await.is_err() {
                    // `held` gives back what the sinks before this one held.
                    return Err(EnqueueError::Full(QueueFull {
                        sink: sink.name.clone(),
                        max_bytes: queue.max_bytes,
                    }));
                }
            }
        }
        Ok(held)
    }

    /// Hands a push's points to every sink, all or nothing: if a sink with
    /// `overflow = "block"` has no room, no sink gets them. Does no I/O
    /// (the store calls it under its lock); the push is acknowledged only
    /// after [`SinkSet::complete`] has written stdout's points or waited
    /// for the disk queue's fsync. `converted` holds the forms
    /// [`SinkSet::forms`] asked for; `body_bytes` is the size of the
    /// request body the points came from; `held` is the push's room from
    /// [`SinkSet::wait_for_room`], given back here whatever happens.
    /// `slot` is where the push's journal record goes, when the store
    /// journals on a log of its own: the queues (memory queues, or a disk
    /// queue on another log) send the points once it is durable, and
    /// never if it fails. A slot on the disk queue's own log (one log for
    /// both) holds nothing: the two records share their commit.
    pub fn enqueue(
        &self,
        sealed: Sealed,
        body_bytes: u64,
        mut held: Reservation,
        slot: Option<crate::durable::Slot>,
    ) -> Result<Enqueued, EnqueueError> {
        let converted = match sealed.form {
            SealedForm::Disk(push) => {
                let disk = self.disk.as_ref().expect("sealed for the disk queue");
                let hold = slot.filter(|s| !Arc::ptr_eq(&s.log, disk.log()));
                let ticket = self.enqueue_on_disk(disk, push, hold)?;
                // Line protocol's drops are counted as sinks read.
                return Ok(Enqueued {
                    ticket: Some(ticket),
                    stdout: None,
                });
            }
            SealedForm::Memory(converted) => *converted,
        };
        if converted.count == 0 {
            return Ok(Enqueued::default());
        }
        let points = converted.points.map(|b| Arc::new(b.points));
        let dialect = converted.lines.as_ref().map(|w| w.dialect());
        let lp_drops = converted.lines.as_ref().map(|w| w.drops);
        let lines = converted.lines.map(|w| w.lines);
        if self.http.is_empty() {
            if let Some(d) = lp_drops {
                drops::note_lp(&self.metrics, STDOUT_SINK, d);
            }
            return Ok(Enqueued {
                ticket: None,
                stdout: lines,
            });
        }
        let lines = lines.map(Arc::new);
        let payloads: Vec<(Payload, u64)> = self
            .http
            .iter()
            .map(|sink| {
                let payload = match sink.format {
                    http::Format::LineProtocol(d) if Some(d) == dialect => {
                        Payload::Lines(lines.clone().expect("conversion() asked for lines"))
                    }
                    _ => Payload::Points(points.clone().expect("conversion() asked for points")),
                };
                let cost = payload.cost(0, payload.len());
                (payload, cost)
            })
            .collect();
        drop((points, lines));
        if let Some(permille) = payloads[0].1.saturating_mul(1_000).checked_div(body_bytes) {
            let permille = permille.clamp(MIN_EXPANSION_PERMILLE, MAX_EXPANSION_PERMILLE);
            self.expansion_permille.store(permille, Ordering::Relaxed);
        }
        // Lock every queue, in configuration order (so two pushes cannot
        // deadlock), before deciding: the check and the admit are one step.
        // The push's own reservation makes way for it first.
        let mut guards: Vec<_> = self.http.iter().map(|s| s.queue.lock()).collect();
        for (sink, state) in self.http.iter().zip(guards.iter_mut()) {
            let bytes = held.bytes_in(&sink.queue);
            if bytes > 0 {
                sink.queue.release(state, bytes);
            }
        }
        // Given back above; the room it held is now the push's to take.
        held.queues.clear();
        for ((sink, state), (_, cost)) in self.http.iter().zip(guards.iter_mut()).zip(&payloads) {
            if sink.queue.overflow == Overflow::Block && !sink.queue.has_room(state, *cost) {
                return Err(EnqueueError::Full(QueueFull {
                    sink: sink.name.clone(),
                    max_bytes: sink.queue.max_bytes,
                }));
            }
        }
        let mut depths = Vec::with_capacity(self.http.len());
        for ((sink, state), (payload, cost)) in
            self.http.iter().zip(guards.iter_mut()).zip(payloads)
        {
            if payload.is_empty() {
                // Line protocol left out every sample of the push.
                depths.push((state.depth_points(), state.depth_bytes()));
                continue;
            }
            let dropped = sink.queue.admit(state, payload, cost, slot.clone());
            if dropped > 0 {
                tracing::warn!(sink = %sink.name, dropped, "queue full: dropped the oldest points (overflow = drop_oldest)");
                self.metrics
                    .sink_dropped
                    .with(&[&sink.name, "queue_full"])
                    .add(dropped as f64);
            }
            depths.push((state.depth_points(), state.depth_bytes()));
        }
        drop(guards);
        for (sink, (p, b)) in self.http.iter().zip(depths) {
            self.metrics
                .sink_queue_points
                .with(&[&sink.name])
                .set(p as f64);
            self.metrics
                .sink_queue_bytes
                .with(&[&sink.name])
                .set(b as f64);
        }
        self.count_left_out(lp_drops.zip(dialect));
        Ok(Enqueued::default())
    }

    /// Counts what the shared lines of an admitted push (in `lines`'
    /// dialect; only memory queues get them) left out, for the sinks that
    /// take them. Sinks that write line protocol from points or disk
    /// records count their own as they write.
    fn count_left_out(&self, lines: Option<(LpDrops, Dialect)>) {
        for sink in &self.http {
            if let Some((d, dialect)) = lines {
                if sink.format == http::Format::LineProtocol(dialect) {
                    drops::note_lp(&self.metrics, &sink.name, d);
                }
            }
        }
    }

    /// Readies a push's converted points for [`SinkSet::enqueue`], doing
    /// outside the store's lock what needs none: with a disk queue,
    /// checksums the record the mapping wrote. Refuses a push too large
    /// for the disk queue.
    pub fn seal(&self, conversion: Conversion) -> Result<Sealed, EnqueueError> {
        let form = match conversion {
            Conversion::Memory(converted) => SealedForm::Memory(Box::new(converted)),
            Conversion::Disk(record) => {
                SealedForm::Disk(DiskQueue::seal(record).map_err(EnqueueError::Refused)?)
            }
        };
        Ok(Sealed { form })
    }

    fn enqueue_on_disk(
        &self,
        disk: &DiskQueue,
        push: EncodedPush,
        hold: Option<crate::durable::Slot>,
    ) -> Result<Ticket, EnqueueError> {
        let (ticket, dropped) = disk.append_held(push, hold).map_err(|e| match e {
            Refused::Full { sink } => EnqueueError::Full(QueueFull {
                sink: self.http[sink].name.clone(),
                max_bytes: self.http[sink].disk_budget,
            }),
            other => EnqueueError::Refused(other),
        })?;
        for (sink, n) in self.http.iter().zip(dropped) {
            if n > 0 {
                tracing::warn!(sink = %sink.name, dropped = n, "disk queue full: dropped the oldest points (overflow = drop_oldest)");
                self.metrics
                    .sink_dropped
                    .with(&[&sink.name, "queue_full"])
                    .add(n as f64);
            }
            sink.update_depth();
        }
        Ok(ticket)
    }

    /// Why the disk queue takes no pushes now (its log's write or fsync
    /// failure, until it recovers), if it does not.
    pub fn failure(&self) -> Option<String> {
        let disk = self.disk.as_ref()?;
        disk.log().failure().map(|e| e.to_string())
    }

    /// While the result lives, the disk queue's log starts no group commit:
    /// hold it across a push's store and queue appends so that, on a log
    /// shared with the store's journal, one fsync makes both durable.
    /// `None` without a disk queue.
    pub fn commit_group(&self) -> Option<crate::durable::CommitGroup<'_>> {
        self.disk.as_ref().map(|d| d.log().group())
    }

    /// The wire format of sink `i` (in configuration order), which an
    /// export made for it must take: points for remote write, lines in its
    /// dialect for line protocol.
    pub fn format(&self, i: usize) -> http::Format {
        self.http[i].format
    }

    /// Offers sink `i` an export of the store (see `export`), counted as
    /// queued or skipped; true if queued.
    pub fn offer_export(&self, i: usize, source: Box<dyn export::ExportSource>) -> bool {
        let sink = &self.http[i];
        let queued = sink.queue.offer_export(source);
        let outcome = if queued { "queued" } else { "skipped" };
        (self.metrics.sink_exports)
            .with(&[&sink.name, outcome])
            .add(1.0);
        if !queued {
            tracing::warn!(sink = %sink.name, "export skipped: it does not fit in the room max_queue_bytes leaves beside the queued pushes");
        }
        queued
    }

    /// The journal records that pushes in the memory queues wait for were
    /// resolved (durable or failed): their workers look again.
    pub fn recheck(&self) {
        for sink in &self.http {
            sink.queue.recheck();
        }
    }

    /// Before a push whose record a disk queue holds for its journal
    /// record is refused: drops the points of failed journal records from
    /// the disk queue and lists them in its `FAILED`, so that they are not
    /// sent after a restart either (see [`DiskQueue::settle_holds`]).
    /// Blocking I/O, only when there are some.
    pub fn settle_holds(&self) {
        if let Some(disk) = &self.disk {
            if let Err(e) = disk.settle_holds() {
                tracing::error!("disk queue: cannot list the points of a refused push in FAILED yet (a restart now would send them): {e}");
            }
        }
    }

    /// True while a disk queue holds a record for a journal record on
    /// another log, or has a revocation still to list.
    pub fn has_holds(&self) -> bool {
        self.disk.as_ref().is_some_and(|d| d.has_holds())
    }

    /// The disk queue's log, if there is a disk queue.
    pub fn disk_log(&self) -> Option<&Arc<crate::durable::Log>> {
        self.disk.as_ref().map(|d| d.log())
    }

    /// Finishes what [`SinkSet::enqueue`] started: writes the points of
    /// the stdout sink, or waits until the push is fsynced in the disk
    /// queue.
    pub async fn complete(&self, queued: Enqueued) -> Result<(), EnqueueError> {
        if let Some(lines) = queued.stdout.filter(|l| !l.is_empty()) {
            // A closed stdout loses the points; this debugging sink has no
            // queue to keep them in, so say how many.
            if let Err(e) = stdout::write_lines(&self.lines, &lines.text) {
                tracing::error!(
                    "writing points to stdout failed, {} points lost: {e}",
                    lines.len()
                );
            }
        }
        match (&self.disk, queued.ticket) {
            (Some(disk), Some(t)) => disk.wait(t).await.map_err(EnqueueError::Sync),
            _ => Ok(()),
        }
    }

    /// Closes the queues and lets the workers send what they hold, for at
    /// most `timeout`. Returns the number of points not delivered, which
    /// are counted as dropped with reason `shutdown`.
    pub async fn shutdown(&self, timeout: Duration) -> usize {
        for s in &self.http {
            s.queue.close();
        }
        if let Some(disk) = &self.disk {
            disk.close();
        }
        let mut workers: Vec<_> = std::mem::take(&mut *self.workers.lock().unwrap());
        let all = futures_util::future::join_all(workers.iter_mut());
        if tokio::time::timeout(timeout, all).await.is_err() {
            for w in &workers {
                w.abort();
            }
            // Wait for the aborted workers to be gone: they hold the disk
            // queue (and its directory lock) until then. A handle that
            // already returned must not be polled again, so poll the state.
            while workers.iter().any(|w| !w.is_finished()) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let mut undelivered = 0;
        for s in &self.http {
            if let Some((disk, i)) = &s.disk {
                let (left, _) = disk.depth(*i);
                if left > 0 {
                    tracing::warn!(sink = %s.name, points = left, "shutdown_timeout reached: points kept in the disk queue, sent after the restart");
                }
                continue;
            }
            let left = s.queue.lock().depth_points();
            if left > 0 {
                tracing::error!(sink = %s.name, points = left, "shutdown_timeout reached: points not delivered");
                self.metrics
                    .sink_dropped
                    .with(&[&s.name, "shutdown"])
                    .add(left as f64);
            }
            undelivered += left;
        }
        undelivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(feature = "net"))]
    #[test]
    fn without_net_a_sink_fails_at_start() {
        let sink = SinkConfig {
            name: "s".into(),
            url: "http://127.0.0.1:9/write".into(),
            ..SinkConfig::default()
        };
        let lines: stdout::LineOutput = Arc::new(Mutex::new(Box::new(std::io::sink())));
        let e = SinkSet::start(&[sink], &IoConfig::default(), lines, Arc::default())
            .err()
            .expect("refused");
        assert_eq!(
            e.to_string(),
            "sink s: this pushkit was built without the net feature; http sinks are unavailable"
        );
    }

    /// One blocking sink of `max_queue_bytes` that nothing is ever sent to.
    #[cfg(feature = "net")]
    fn blocking_sinks(max_queue_bytes: u64) -> Arc<SinkSet> {
        let sink = SinkConfig {
            name: "s".into(),
            url: "http://127.0.0.1:9/write".into(),
            max_queue_bytes,
            overflow: config::Overflow::Block,
            ..SinkConfig::default()
        };
        let lines: stdout::LineOutput = Arc::new(Mutex::new(Box::new(std::io::sink())));
        SinkSet::start(&[sink], &IoConfig::default(), lines, Arc::default()).unwrap()
    }

    #[cfg(feature = "net")]
    #[tokio::test]
    async fn room_held_for_one_push_is_not_counted_on_by_another() {
        let sinks = blocking_sinks(1_000);
        let wait = Duration::from_millis(50);
        // Pushes expand at least 1x: 600 body bytes hold 600 of the 1,000.
        let first = sinks.wait_for_room(600, wait).await.unwrap();
        assert!(matches!(
            sinks.wait_for_room(600, wait).await,
            Err(EnqueueError::Full(QueueFull {
                max_bytes: 1_000,
                ..
            }))
        ));
        // 400 more still fit beside it.
        let small = sinks.wait_for_room(400, wait).await.unwrap();
        drop((first, small));
        // Given back on drop: a waiting push gets the room at once.
        let held = sinks.wait_for_room(900, wait).await.unwrap();
        let waiting = tokio::spawn({
            let sinks = sinks.clone();
            async move { sinks.wait_for_room(600, Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "600 more do not fit beside 900");
        drop(held);
        assert!(waiting.await.unwrap().is_ok());
    }
}
