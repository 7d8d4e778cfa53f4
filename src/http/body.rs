//! Reading request bodies within a size limit, and draining the ones
//! refused before they were read.

use super::error::{ApiError, ErrorCode};
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

/// Reads the body, refusing it as soon as it is known to exceed `max`:
/// from its `declared` length before reading, or while streaming.
pub async fn read_body(
    declared: Option<u64>,
    body: &mut BodyStream,
    max: u64,
) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("request body exceeds max_body_size ({max} bytes)"),
        )
    };
    if declared.is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let mut buf = Vec::with_capacity(declared.unwrap_or(0).min(max) as usize);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| match e {
            BodyError::TimedOut => ApiError::new(
                ErrorCode::RequestTimeout,
                "the request body did not arrive within read_timeout",
            ),
            BodyError::Read(e) => ApiError::new(
                ErrorCode::CorruptBody,
                format!("reading the request body failed: {e}"),
            ),
        })?;
        if (buf.len() + chunk.remaining()) as u64 > max {
            return Err(too_large());
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
