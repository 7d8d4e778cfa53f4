//! The pushgateway input's request handling: from a decoded request to
//! points handed to the sinks.
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
//! convert → consistency check → room in the sink queues (the room it
//! holds, checked against what it takes) → journal → store → enqueue →
//! fsync wait → reply. A refused push is neither stored nor forwarded.

use super::body;
use super::grouping::{parse_grouping_key, GroupingError};
use crate::convert::{convert_into, Converted, Mapping};
use crate::http::error::{ApiError, ErrorCode};
use crate::metrics::Metrics;
use crate::model::GroupingKey;
use crate::sink::{EnqueueError, Reservation, SinkSet, QUEUE_FULL_WAIT};
use crate::store::sanitize::sanitize;
use crate::store::{PushRefused, Store};
use std::sync::Arc;

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
    /// From [`PushgatewayInput::before_body`].
    pub group: GroupingKey,
    /// The room `before_body` held in the sinks' queues, when it knew the
    /// body's size (Content-Length); None otherwise.
    pub room: Option<Reservation>,
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub body: &'a [u8],
    /// Arrival time, ns since the Unix epoch.
    pub received_ns: i64,
}

pub struct PushgatewayInput {
    pub mapping: Mapping,
    pub max_decompressed_size: u64,
    pub sinks: Arc<SinkSet>,
    pub metrics: Arc<Metrics>,
    /// None with `store = false`: a pure forwarder.
    pub store: Option<Arc<Store>>,
}

impl PushgatewayInput {
    /// What the URL and the body's declared size decide, before the body
    /// is read: the grouping key (`job_path` is the percent-decoded path
    /// after `P/metrics/job`, e.g. `/j/a/b`), the store's readiness, and,
    /// for a push of `body_bytes`, room in the sinks' queues (waited for,
    /// up to [`QUEUE_FULL_WAIT`]). A push refused here is not worth
    /// reading.
    pub async fn before_body(
        &self,
        method: PushMethod,
        job_path: &str,
        job_base64: bool,
        body_bytes: Option<u64>,
    ) -> Result<(GroupingKey, Option<Reservation>), ApiError> {
        let group = grouping_key_from_path(job_path, job_base64)?;
        if let Some(store) = &self.store {
            if !store.is_ready() {
                return Err(ApiError::new(
                    ErrorCode::StoreLoading,
                    "the store is still loading its persisted state",
                ));
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
        Ok((group, room))
    }

    /// Handles a push that passed [`PushgatewayInput::before_body`];
    /// returns the HTTP status of success (200 or 202). A rejected push
    /// changes nothing, except that one refused by the consistency check
    /// records its failure time.
    pub async fn handle(&self, req: PushRequest<'_>) -> Result<u16, ApiError> {
        let group = req.group;
        if req.method == PushMethod::Delete {
            if let Some(store) = &self.store {
                let ticket = store.delete(group).map_err(journal_error)?;
                store.wait(ticket).await.map_err(journal_error)?;
            }
            return Ok(202);
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
        let decoded =
            body::decode_content(req.content_encoding, req.body, self.max_decompressed_size)?;
        let mut families = body::parse_families(req.content_type, &decoded)?;
        let samples: usize = families.iter().map(|f| f.metrics.len()).sum();
        let (points, lines) = self.sinks.forms();
        // Line protocol takes about as many bytes as the text it came from.
        let mut converted = Converted::new(points, lines, decoded.len() + decoded.len() / 4);
        convert_into(
            &families,
            &group,
            &self.mapping,
            req.received_ns,
            &mut converted,
        );
        let n_points = converted.count;
        match &self.store {
            None => {
                let queued = self
                    .sinks
                    .enqueue(converted, body_bytes, room)
                    .map_err(enqueue_error)?;
                self.sinks.complete(queued).await.map_err(enqueue_error)?;
            }
            Some(store) => {
                sanitize(&group, &mut families);
                let replace = req.method == PushMethod::Put;
                let prepared = store.prepare(group, replace, families, req.received_ns);
                // On a log shared by the journal and the disk queue, both
                // records go to disk under one fsync.
                let commit_group = self.sinks.commit_group();
                let stored =
                    store.push(prepared, || self.sinks.enqueue(converted, body_bytes, room));
                drop(commit_group);
                match stored {
                    Ok((stored, queued)) => {
                        // On a shared log both waits end with the same
                        // fsync; on two logs the two fsyncs run in
                        // parallel.
                        let (a, b) = tokio::join!(store.wait(stored), self.sinks.complete(queued));
                        a.map_err(journal_error)?;
                        b.map_err(enqueue_error)?;
                    }
                    Err(PushRefused::Inconsistent { message, ticket }) => {
                        store.wait(ticket).await.map_err(journal_error)?;
                        return Err(ApiError::new(
                            ErrorCode::InconsistentMetrics,
                            format!(
                                "pushed metrics are inconsistent with existing metrics: {message}"
                            ),
                        ));
                    }
                    Err(PushRefused::Reserve(e)) => return Err(enqueue_error(e)),
                    Err(PushRefused::Journal(e)) => return Err(journal_error(e)),
                }
            }
        }
        self.metrics.add_samples_received(samples as u64);
        self.metrics.add_points_emitted(n_points as u64);
        Ok(200)
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
        ),
        EnqueueError::Failed(why) => {
            tracing::error!("sink queue: {why}");
            ApiError::new(ErrorCode::QueueFailed, why)
        }
    }
}

fn journal_error(e: std::io::Error) -> ApiError {
    tracing::error!("store journal: {e}");
    ApiError::new(
        ErrorCode::JournalFailed,
        format!("the store's journal failed: {e}"),
    )
}

/// `/<job>{/<name>/<value>}` → grouping key.
pub fn grouping_key_from_path(job_path: &str, job_base64: bool) -> Result<GroupingKey, ApiError> {
    let rest = job_path.strip_prefix('/').unwrap_or(job_path);
    let (job, labels) = match rest.split_once('/') {
        Some((job, labels)) => (job, labels),
        None => (rest, ""),
    };
    // As the Pushgateway splits them: a trailing "/" after pairs makes the
    // count odd, a lone "/" after the job means no labels.
    let pairs: Vec<&str> = if labels.is_empty() {
        Vec::new()
    } else {
        labels.split('/').collect()
    };
    parse_grouping_key(job, job_base64, &pairs).map_err(grouping_error)
}

fn grouping_error(e: GroupingError) -> ApiError {
    let code = match e {
        GroupingError::JobNameRequired => ErrorCode::JobNameIsRequired,
        GroupingError::OddComponents => ErrorCode::OddLabelComponents,
        GroupingError::InvalidLabelName(_) => ErrorCode::InvalidLabelName,
        GroupingError::InvalidBase64 { .. } => ErrorCode::InvalidBase64,
    };
    ApiError::new(code, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(path: &str) -> Result<Vec<(String, String)>, ErrorCode> {
        grouping_key_from_path(path, false)
            .map(|k| k.labels().to_vec())
            .map_err(|e| e.code)
    }

    #[test]
    fn paths() {
        assert_eq!(labels("/j").unwrap().len(), 1);
        assert_eq!(labels("/j/").unwrap().len(), 1);
        assert_eq!(labels("/j/a/b").unwrap().len(), 2);
        assert_eq!(labels("/j/a/b/"), Err(ErrorCode::OddLabelComponents));
        assert_eq!(labels("/j/a"), Err(ErrorCode::OddLabelComponents));
        assert_eq!(labels("/"), Err(ErrorCode::JobNameIsRequired));
        assert_eq!(labels(""), Err(ErrorCode::JobNameIsRequired));
        assert_eq!(labels("//a/b"), Err(ErrorCode::JobNameIsRequired));
        assert_eq!(
            labels("/j/a/"),
            Ok(vec![("job".into(), "j".into()), ("a".into(), "".into())])
        );
        assert_eq!(labels("/j/1a/x"), Err(ErrorCode::InvalidLabelName));
        assert_eq!(labels("/j/a@base64/!"), Err(ErrorCode::InvalidBase64));
    }
}
