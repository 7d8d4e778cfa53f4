//! The pushgateway input's push handling (PUT, POST, DELETE): from a
//! request to a stored group and points handed to the sinks.
//!
//! It follows the Prometheus Pushgateway's push API (URLs, methods,
//! `@base64` labels, text 0.0.4 and delimited protobuf bodies) and DataKit's
//! pushgateway input for what becomes of the samples. Where it differs:
//! - `P/metrics/job/` is a 400 (`job name is required`); the Pushgateway
//!   redirects.
//! - A family named twice in one push is a 400; the Pushgateway keeps the
//!   last one of a protobuf push silently.
//! - Samples may carry timestamps (DataKit's `honor_timestamps` uses them);
//!   the Pushgateway rejects them.
//! - PUT and POST both forward every point of the push, as DataKit does;
//!   DELETE forwards nothing.
//!
//! Before its body is read, a push gets room in the sink queues for what it
//! is expected to take (from its Content-Length), waiting up to a second,
//! and holds that room while it is parsed; without room it is refused
//! (503) unparsed, its body read and dropped so that the connection stays
//! open. With the store on (see `crate::store`), a push then goes: parse →
//! convert (with a disk queue, straight into its record) → seal (the
//! record checksummed, outside the store's lock) → consistency check →
//! room in the sink queues (the room it holds, checked against what it
//! takes) → journal → store → enqueue → fsync wait → reply. A refused
//! push is neither stored nor forwarded.

use super::body;
use super::grouping::GroupingError;
use super::limits::PushLimits;
use crate::convert::{check_timestamps, convert_into, Mapping};
use crate::durable::is_disk_full;
use crate::http::body::{declared_length, discard_body, read_body_within};
use crate::http::error::{ApiError, ErrorCode};
use crate::http::inflight::{InflightBudget, InflightPermit};
use crate::http::reply::{error_reply, status_reply, Reply};
use crate::http::Request;
use crate::logging::LogGate;
use crate::metrics::Metrics;
use crate::model::family::{duplicate_series, Family};
use crate::model::point::now_ns;
use crate::model::GroupingKey;
use crate::sink::disk::Refused;
use crate::sink::{
    Conversion, EnqueueError, Reservation, SinkSet, QUEUE_FULL_RETRY_AFTER_SECS, QUEUE_FULL_WAIT,
};
use crate::store::{PushRefused, Store};
use std::sync::Arc;
use std::time::Duration;
use warp::http::StatusCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushMethod {
    Put,
    Post,
    Delete,
}

impl PushMethod {
    pub fn from_http(method: &str) -> Option<PushMethod> {
        match method {
            "PUT" => Some(PushMethod::Put),
            "POST" => Some(PushMethod::Post),
            "DELETE" => Some(PushMethod::Delete),
            _ => None,
        }
    }
}

/// One push request, its body already read within `max_body_size`.
pub struct PushRequest<'a> {
    pub method: PushMethod,
    pub group: GroupingKey,
    /// The room held in the sinks' queues before the body was read, when
    /// its size was known (Content-Length); None otherwise.
    pub room: Option<Reservation>,
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub body: &'a [u8],
    /// Arrival time, ns since the Unix epoch.
    pub received_ns: i64,
}

pub struct PushgatewayInput {
    pub mapping: Mapping,
    pub max_body_size: u64,
    pub max_decompressed_size: u64,
    pub sinks: Arc<SinkSet>,
    pub metrics: Arc<Metrics>,
    /// None with `store = false`: a pure forwarder.
    pub store: Option<Arc<Store>>,
    /// Accept UTF-8 metric and label names (`utf8_names`).
    pub utf8_names: bool,
    pub limits: PushLimits,
    /// `max_inflight_bytes`: bodies and decoded bytes of all requests.
    pub inflight: Arc<InflightBudget>,
}

impl PushgatewayInput {
    /// Serves one push (PUT, POST or DELETE) to `group`, the grouping key
    /// its URL gave: reads the body within `max_body_size`, then
    /// [`PushgatewayInput::handle`]s it.
    pub async fn serve(
        &self,
        method: PushMethod,
        group: Result<GroupingKey, GroupingError>,
        mut req: Request,
    ) -> Reply {
        let received_ns = now_ns();
        let declared = declared_length(&req.headers);
        let admitted = match group {
            Ok(group) => self.before_body(method, declared).await.map(|r| (group, r)),
            Err(e) => Err(grouping_error(e)),
        };
        let (group, room) = match admitted {
            Ok(admitted) => admitted,
            Err(e) => {
                if declared.is_none_or(|n| n <= self.max_body_size) {
                    discard_body(&mut req.body, self.max_body_size).await;
                }
                return error_reply(&e);
            }
        };
        let permit = self.inflight.permit();
        let body = if method == PushMethod::Delete {
            Vec::new()
        } else {
            match read_body_within(declared, &mut req.body, self.max_body_size, &permit).await {
                Ok(b) => b,
                Err(e) => {
                    // Refused for room: read the rest without keeping it,
                    // so that the connection goes on.
                    if e.code == ErrorCode::InflightFull {
                        discard_body(&mut req.body, self.max_body_size).await;
                    }
                    return error_reply(&e);
                }
            }
        };
        let push = PushRequest {
            method,
            group,
            room,
            content_type: req.header("content-type"),
            content_encoding: req.header("content-encoding"),
            body: &body,
            received_ns,
        };
        match self.handle_within(push, Some(&permit)).await {
            Ok(status) => status_reply(status),
            Err(e) => {
                tracing::debug!(method = %req.method, path = req.raw_path, "push rejected: {e}");
                error_reply(&e)
            }
        }
    }

    /// What the store's state and the body's declared size decide, before
    /// the body is read: the store's readiness and, for a push of
    /// `body_bytes`, room in the sinks' queues (waited for, up to
    /// [`QUEUE_FULL_WAIT`]). A push refused here is not worth reading.
    async fn before_body(
        &self,
        method: PushMethod,
        body_bytes: Option<u64>,
    ) -> Result<Option<Reservation>, ApiError> {
        if let Some(store) = &self.store {
            if !store.is_ready() {
                return Err(ApiError::new(
                    ErrorCode::StoreLoading,
                    "the store is still loading its persisted state",
                )
                .retry_after(QUEUE_FULL_RETRY_AFTER_SECS));
            }
        }
        let room = match (method, body_bytes) {
            (PushMethod::Put | PushMethod::Post, Some(n)) => Some(
                self.sinks
                    .wait_for_room(n, QUEUE_FULL_WAIT)
                    .await
                    .map_err(enqueue_error)?,
            ),
            _ => None,
        };
        Ok(room)
    }

    /// Handles a push whose body was read; returns the HTTP status of
    /// success (200 or 202). A rejected push
    /// changes nothing, except that one refused by the consistency check
    /// records its failure time.
    pub async fn handle(&self, req: PushRequest<'_>) -> Result<StatusCode, ApiError> {
        self.handle_within(req, None).await
    }

    /// `handle`, with the decoded body held in `permit` (the in-flight
    /// budget) as it grows.
    pub async fn handle_within(
        &self,
        req: PushRequest<'_>,
        permit: Option<&InflightPermit>,
    ) -> Result<StatusCode, ApiError> {
        let group = req.group;
        if req.method == PushMethod::Delete {
            if let Some(store) = &self.store {
                let ticket = store.delete(group).map_err(journal_error)?;
                if let Err(e) = store.wait(ticket).await {
                    store.settle();
                    return Err(journal_error(e));
                }
            }
            return Ok(StatusCode::ACCEPTED);
        }
        let body_bytes = req.body.len() as u64;
        let room = match req.room {
            Some(room) => room,
            None => self
                .sinks
                .wait_for_room(body_bytes, QUEUE_FULL_WAIT)
                .await
                .map_err(enqueue_error)?,
        };
        let decode = || {
            self.decode_and_convert(
                (req.content_encoding, req.content_type, req.body),
                req.received_ns,
                &group,
                permit,
            )
        };
        let heavy = is_heavy(req.content_encoding, req.body);
        // A light push opens its commit group before it decodes: a group
        // commit that starts meanwhile waits the few tens of µs the decode
        // takes and makes this push durable with the same fsync, instead
        // of leaving it to the next one (0.75 → 0.47 fsyncs per push at 8
        // connections, BENCHMARKS.md). A heavy one may queue for a decode
        // slot, which no commit should wait on: it opens its group later.
        let early_group = if heavy {
            None
        } else {
            self.sinks.commit_group()
        };
        let (families, converted, samples) = if heavy {
            // Large or compressed bodies decode off the async workers, a
            // bounded number at a time, so that small pushes keep their
            // latency meanwhile.
            let _slot = heavy_slots().acquire().await.expect("never closed");
            run_blocking(decode)?
        } else {
            decode()?
        };
        let n_points = converted.count();
        let sealed = self.sinks.seal(converted).map_err(enqueue_error)?;
        match &self.store {
            None => {
                // No store checks this push; an empty label is an absent
                // one here too, so `m{a=""}` beside `m` is one series twice.
                if let Some(series) = duplicate_series(&families) {
                    return Err(ApiError::new(
                        ErrorCode::InconsistentMetrics,
                        format!("pushed metrics are inconsistent: series {series} appears twice in the push"),
                    ));
                }
                let queued = self
                    .sinks
                    .enqueue(sealed, body_bytes, room, None)
                    .map_err(enqueue_error)?;
                // Before waiting: the commit this push waits for waits
                // for its group.
                drop(early_group);
                self.sinks.complete(queued).await.map_err(enqueue_error)?;
            }
            Some(store) => {
                let replace = req.method == PushMethod::Put;
                let prepared = store.prepare(group, replace, families, req.received_ns);
                // On a log shared by the journal and the disk queue, both
                // records go to disk under one fsync. (On the queue's own
                // log it only makes the queue's commit wait for this
                // append.)
                let commit_group = early_group.or_else(|| self.sinks.commit_group());
                // Memory queues, and a disk queue on a log of its own,
                // send the points once the journal record is durable; on
                // a shared log the two records share their commit. On two
                // logs the journal record waits for the queue record.
                let stored = store.push_after(prepared, || {
                    let slot = store.upcoming_slot();
                    let queued = self.sinks.enqueue(sealed, body_bytes, room, slot)?;
                    let after = queued.disk_ticket();
                    Ok((queued, after))
                });
                drop(commit_group);
                match stored {
                    Ok((stored, queued)) => {
                        // On a shared log both waits end with the same
                        // fsync; on two logs, with the journal's, which
                        // follows the queue's.
                        let (a, b) = tokio::join!(store.wait(stored), self.sinks.complete(queued));
                        if a.is_err() || b.is_err() {
                            // Gone from the store before the client hears.
                            store.settle();
                            // And from a disk queue on its own log, for
                            // good.
                            self.settle_holds().await;
                        }
                        // Its points, held in memory queues until now, go
                        // (or are dropped, refused).
                        self.sinks.recheck();
                        // The queue's failure first: on two logs it is
                        // what failed the journal record too.
                        b.map_err(enqueue_error)?;
                        a.map_err(journal_error)?;
                    }
                    Err(PushRefused::Inconsistent { message, ticket }) => {
                        if let Err(e) = store.wait(ticket).await {
                            store.settle();
                            return Err(journal_error(e));
                        }
                        return Err(ApiError::new(
                            ErrorCode::InconsistentMetrics,
                            format!(
                                "pushed metrics are inconsistent with existing metrics: {message}"
                            ),
                        ));
                    }
                    Err(PushRefused::Reserve(e)) => return Err(enqueue_error(e)),
                    Err(PushRefused::Full(message)) => {
                        return Err(ApiError::new(ErrorCode::StoreFull, message))
                    }
                    Err(PushRefused::Journal(e)) => {
                        // A disk queue on its own log may hold the push's
                        // record, appended before the journal refused.
                        self.settle_holds().await;
                        return Err(journal_error(e));
                    }
                }
            }
        }
        self.metrics.samples_received.add(samples as f64);
        self.metrics.points_emitted.add(n_points as f64);
        Ok(StatusCode::OK)
    }
}

impl PushgatewayInput {
    /// [`SinkSet::settle_holds`] off the async workers (it may write a
    /// small file).
    async fn settle_holds(&self) {
        if !self.sinks.has_holds() {
            return;
        }
        let sinks = self.sinks.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || sinks.settle_holds()).await {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }

    /// Decoding, parsing, the push's own checks and the mapping to points:
    /// CPU work that grows with the body.
    fn decode_and_convert(
        &self,
        (encoding, content_type, body): (Option<&str>, Option<&str>, &[u8]),
        received_ns: i64,
        group: &GroupingKey,
        permit: Option<&InflightPermit>,
    ) -> Result<(Vec<Family>, Conversion, usize), ApiError> {
        let decoded =
            body::decode_content_within(encoding, body, self.max_decompressed_size, permit)?;
        let families = body::parse_families(content_type, &decoded, self.utf8_names)?;
        check_timestamps(&families, &self.mapping)
            .map_err(|m| ApiError::new(ErrorCode::TimestampOutOfRange, m))?;
        self.limits.check(&families, group)?;
        let samples: usize = families.iter().map(|f| f.metrics.len()).sum();
        // Line protocol takes about as many bytes as the text it came from.
        let mut converted = self.sinks.conversion(decoded.len() + decoded.len() / 4);
        convert_into(&families, group, &self.mapping, received_ns, &mut converted);
        Ok((families, converted, samples))
    }
}

/// Bodies at least this large (as received) decode off the async workers.
const HEAVY_BODY: usize = 64 << 10;
/// Compressed bodies at least this large do too: they may inflate a lot.
const HEAVY_COMPRESSED: usize = 8 << 10;

fn is_heavy(encoding: Option<&str>, body: &[u8]) -> bool {
    let compressed = encoding
        .is_some_and(|e| !e.trim().is_empty() && !e.trim().eq_ignore_ascii_case("identity"));
    body.len() >= HEAVY_BODY || (compressed && body.len() >= HEAVY_COMPRESSED)
}

/// One heavy decode per core at a time.
fn heavy_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        tokio::sync::Semaphore::new(cores)
    })
}

/// Runs `work` where it may block: on a multi-threaded runtime the worker
/// hands its other tasks on first (`block_in_place`, which needs no owned
/// data); elsewhere (a current-thread runtime, no runtime) inline.
fn run_blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

fn enqueue_error(e: EnqueueError) -> ApiError {
    match e {
        EnqueueError::Full(full) => ApiError::new(
            ErrorCode::QueueFull,
            format!(
                "sink {} has no room in its queue (budget {} bytes); retry later",
                full.sink, full.max_bytes
            ),
        )
        .retry_after(QUEUE_FULL_RETRY_AFTER_SECS),
        EnqueueError::Sync(e) | EnqueueError::Refused(Refused::Io(e)) if is_disk_full(&e) => {
            disk_full("the disk queue", e)
        }
        e @ (EnqueueError::Refused(_) | EnqueueError::Sync(_)) => {
            if let Some(n) = FAILURES.pass(QUEUE_FAILED, 1) {
                tracing::error!("sink queue: {e} ({n} pushes refused so since the last line)");
            }
            ApiError::new(ErrorCode::QueueFailed, e.to_string())
        }
    }
}

/// A failed journal or disk queue refuses pushes until it recovers: one
/// line a minute for each, with the count, not one per push.
static FAILURES: LogGate<2> = LogGate::new(Duration::from_secs(60));
const QUEUE_FAILED: usize = 0;
const JOURNAL_FAILED: usize = 1;

/// A push refused for a full disk: 503, to retry once there is room.
fn disk_full(what: &str, e: std::io::Error) -> ApiError {
    ApiError::new(
        ErrorCode::DiskFull,
        format!("{what} has no room on its disk: {e}; the push changed nothing"),
    )
    .retry_after(DISK_FULL_RETRY_AFTER_SECS)
}

/// What a full disk tells clients to wait: the log tries again each
/// second, and room usually comes back by deletion or delivery.
const DISK_FULL_RETRY_AFTER_SECS: u32 = 5;

fn journal_error(e: std::io::Error) -> ApiError {
    if is_disk_full(&e) {
        return disk_full("the store's journal", e);
    }
    if let Some(n) = FAILURES.pass(JOURNAL_FAILED, 1) {
        tracing::error!("store journal: {e} ({n} pushes refused so since the last line)");
    }
    ApiError::new(
        ErrorCode::JournalFailed,
        format!("the store's journal failed: {e}"),
    )
}

/// A grouping key that could not be read from the URL, as a reply.
pub fn grouping_error(e: GroupingError) -> ApiError {
    let code = match e {
        GroupingError::JobNameRequired => ErrorCode::JobNameIsRequired,
        GroupingError::OddComponents => ErrorCode::OddLabelComponents,
        GroupingError::InvalidLabelName(_) => ErrorCode::InvalidLabelName,
        GroupingError::InvalidBase64 { .. } => ErrorCode::InvalidBase64,
        GroupingError::InvalidPath => ErrorCode::InvalidPath,
    };
    ApiError::new(code, e.to_string())
}
