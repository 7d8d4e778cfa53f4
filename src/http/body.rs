//! Reading request bodies within a size limit (and within the in-flight
//! budget), and draining the ones refused before they were read.

use super::error::{ApiError, ErrorCode};
use super::inflight::InflightPermit;
use super::{BodyError, BodyStream};
use bytes::Buf;
use futures_util::StreamExt;
use warp::http::HeaderMap;

/// The body's size as its `Content-Length` declares it, if it does.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        ErrorCode::BodyTooLarge,
        format!("request body exceeds max_body_size ({max} bytes)"),
    )
}

fn body_error(e: BodyError) -> ApiError {
    match e {
        BodyError::TimedOut => ApiError::new(
            ErrorCode::RequestTimeout,
            "the request body did not arrive within read_timeout",
        ),
        BodyError::Read(e) => ApiError::new(
            ErrorCode::CorruptBody,
            format!("reading the request body failed: {e}"),
        ),
    }
}

/// Reads the body, refusing it as soon as it is known to exceed `max`:
/// from its `declared` length before reading, or while streaming.
pub async fn read_body(
    declared: Option<u64>,
    body: &mut BodyStream,
    max: u64,
) -> Result<Vec<u8>, ApiError> {
    if declared.is_some_and(|n| n > max) {
        return Err(too_large(max));
    }
    let mut buf = Vec::with_capacity(declared.unwrap_or(0).min(max) as usize);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(body_error)?;
        if (buf.len() + chunk.remaining()) as u64 > max {
            return Err(too_large(max));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// How long a request waits for room in the in-flight budget.
pub const INFLIGHT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The refusal of a request that found no room in the in-flight budget.
pub fn inflight_full(max: u64) -> ApiError {
    ApiError::new(
        ErrorCode::InflightFull,
        format!("requests in flight hold max_inflight_bytes ({max} bytes); retry later"),
    )
    .retry_after(1)
}

/// `read_body`, holding every byte read in `permit`: the declared length
/// up front, or each chunk as it comes. Without room within
/// [`INFLIGHT_WAIT`], the request is refused (503) with nothing kept.
pub async fn read_body_within(
    declared: Option<u64>,
    body: &mut BodyStream,
    max: u64,
    permit: &InflightPermit,
) -> Result<Vec<u8>, ApiError> {
    let full = || inflight_full(permit.budget_max());
    if declared.is_some_and(|n| n > max) {
        return read_body(declared, body, max).await;
    }
    if let Some(n) = declared {
        if !permit.grow(n, INFLIGHT_WAIT).await {
            return Err(full());
        }
    }
    let mut buf = Vec::with_capacity(declared.unwrap_or(0).min(max) as usize);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(body_error)?;
        let len = (buf.len() + chunk.remaining()) as u64;
        if len > max {
            return Err(too_large(max));
        }
        if len > permit.held() && !permit.grow(len - permit.held(), INFLIGHT_WAIT).await {
            return Err(full());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// Reads a body to its end without keeping it, giving up past `max`
/// bytes. Replying before the body is read makes hyper close the
/// connection, and a close with unread data resets it, which can lose
/// the reply; a refused body of sane size is therefore read and dropped.
pub async fn discard_body(body: &mut BodyStream, max: u64) {
    let mut read = 0u64;
    while let Some(Ok(chunk)) = body.next().await {
        read += chunk.len() as u64;
        if read > max {
            break;
        }
    }
}
