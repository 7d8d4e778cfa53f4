//! Error replies: every rejected request gets a 4xx (or 503, or a 500 when
//! a disk write fails) with the JSON body `{"error_code": "...", "message": "..."}`. `error_code` is DataKit's
//! field name; the codes are declared once in [`ErrorCode::ALL`], which the
//! README's table is checked against.

use serde::Serialize;

/// Declares [`ErrorCode`] with its wire name, HTTP status and README line
/// in one table, so that [`ErrorCode::ALL`] cannot miss a variant.
macro_rules! error_codes {
    ($($variant:ident = ($name:literal, $status:literal, $meaning:literal),)+) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode {
            $($variant,)+
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)+];

            /// The `error_code` of the JSON reply (camelCase, as DataKit's).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name,)+
                }
            }

            pub fn status(self) -> u16 {
                match self {
                    $(ErrorCode::$variant => $status,)+
                }
            }

            /// One line for the README's table.
            pub fn meaning(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $meaning,)+
                }
            }
        }
    };
}

error_codes! {
    JobNameIsRequired = (
        "jobNameIsRequired",
        400,
        "The job in the URL is empty (`/metrics/job/`, or an empty `job@base64`)."
    ),
    OddLabelComponents = (
        "oddLabelComponents",
        400,
        "The labels after the job do not come as `/<name>/<value>` pairs."
    ),
    InvalidLabelName = (
        "invalidLabelName",
        400,
        "A URL label name does not match `[a-zA-Z_][a-zA-Z0-9_]*`, or starts with `__`."
    ),
    InvalidBase64 = (
        "invalidBase64",
        400,
        "A `@base64` value is not URL-safe base64 of UTF-8 text."
    ),
    InvalidPath = (
        "invalidPath",
        400,
        "The URL path does not percent-decode to UTF-8."
    ),
    InvalidTextFormat = (
        "invalidTextFormat",
        400,
        "The body is not valid text exposition format 0.0.4; the message gives the line."
    ),
    InvalidProtobuf = (
        "invalidProtobuf",
        400,
        "The body is not valid delimited `io.prometheus.client.MetricFamily` protobuf."
    ),
    TimestampOutOfRange = (
        "timestampOutOfRange",
        400,
        "With `honor_timestamps` on, a sample's timestamp is after what line protocol's nanoseconds hold (the year 2262)."
    ),
    DuplicateMetricFamily = (
        "duplicateMetricFamily",
        400,
        "A metric family name appears twice in one push."
    ),
    CorruptBody = (
        "corruptBody",
        400,
        "The gzip or snappy body is corrupt or truncated."
    ),
    UnsupportedContentEncoding = (
        "unsupportedContentEncoding",
        415,
        "`Content-Encoding` is neither `gzip`, `snappy` nor `identity`."
    ),
    BodyTooLarge = (
        "bodyTooLarge",
        413,
        "The body as sent is larger than `max_body_size`."
    ),
    DecompressedBodyTooLarge = (
        "decompressedBodyTooLarge",
        413,
        "The body after decompression is larger than `max_decompressed_size`."
    ),
    MethodNotAllowed = (
        "methodNotAllowed",
        405,
        "The path exists but not for this method."
    ),
    NotFound = (
        "notFound",
        404,
        "No such path."
    ),
    QueueFull = (
        "queueFull",
        503,
        "A sink with `overflow = \"block\"` had no room within 1 s; retry after `Retry-After` seconds."
    ),
    InconsistentMetrics = (
        "inconsistentMetrics",
        400,
        "The push would make the exposition invalid (type conflict, a series another group pushes, `_count`/`_sum`/`_bucket` collision, duplicate series or labels, an empty label counting as absent); with the store on, it sets `push_failure_time_seconds`."
    ),
    StoreLoading = (
        "storeLoading",
        503,
        "The store is still loading its persisted state; retry after `Retry-After` seconds."
    ),
    LifecycleDisabled = (
        "lifecycleDisabled",
        403,
        "`/-/quit` needs `enable_lifecycle = true`."
    ),
    SampleLimitExceeded = (
        "sampleLimitExceeded",
        400,
        "The push carries more samples than `sample_limit`."
    ),
    LabelLimitExceeded = (
        "labelLimitExceeded",
        400,
        "A series has more labels than `label_limit`, or a label name, label value or metric name is longer than its length limit."
    ),
    StoreFull = (
        "storeFull",
        429,
        "The store holds `max_groups` groups and the push would add one, or the push would grow its series past `max_series`."
    ),
    Forbidden = (
        "forbidden",
        403,
        "A status page form without the page's token, or sent from another site."
    ),
    Unauthorized = (
        "unauthorized",
        401,
        "The route's class is in `[http_api.auth] routes` and the request has no valid basic-auth user or bearer token; `WWW-Authenticate` says which schemes work."
    ),
    RateLimited = (
        "rateLimited",
        429,
        "The client sent more than `request_rate_limit` requests per second of this route class (or the web config's `rate_limit`); retry after `Retry-After` seconds."
    ),
    RequestTimeout = (
        "requestTimeout",
        408,
        "The request's body did not arrive within `read_timeout`; the connection is closed."
    ),
    InflightFull = (
        "inflightFull",
        503,
        "Requests in flight already hold `max_inflight_bytes` of bodies and decompressed bytes, and none gave room back within a second; retry after `Retry-After` seconds."
    ),
    AuthBusy = (
        "authBusy",
        503,
        "Too many password checks are running at once; retry after `Retry-After` seconds."
    ),
    DiskFull = (
        "diskFull",
        503,
        "The filesystem of `persistence_dir` or `queue_dir` is full (ENOSPC, or EDQUOT): the push changed nothing; retry after `Retry-After` seconds. Pushes are taken again within seconds of room returning, with no restart."
    ),
    JournalFailed = (
        "journalFailed",
        500,
        "The store's journal could not be written or fsynced (an I/O error): the push changed nothing. The journal goes on in a fresh file at once."
    ),
    QueueFailed = (
        "queueFailed",
        500,
        "The sinks' disk queue (`queue_dir`) could not be written or fsynced (an I/O error): the push changed nothing. The queue goes on in a fresh file at once."
    ),
}

/// A rejection on its way to becoming an HTTP reply.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Sent as `Retry-After` (seconds), for refusals that pass.
    pub retry_after_secs: Option<u32>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// The same error, telling the client when to try again.
    pub fn retry_after(mut self, secs: u32) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    pub fn json_body(&self) -> String {
        #[derive(Serialize)]
        struct Body<'a> {
            error_code: &'a str,
            message: &'a str,
        }
        serde_json::to_string(&Body {
            error_code: self.code.as_str(),
            message: &self.message,
        })
        .expect("serialising two strings cannot fail")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape() {
        let e = ApiError::new(ErrorCode::JobNameIsRequired, "job name is required");
        assert_eq!(
            e.json_body(),
            r#"{"error_code":"jobNameIsRequired","message":"job name is required"}"#
        );
    }

    #[test]
    fn codes_are_unique_camel_case_and_4xx_or_503() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "{}", c.as_str());
            assert!(c.as_str().chars().next().unwrap().is_ascii_lowercase());
            assert!((400..500).contains(&c.status()) || [500, 503].contains(&c.status()));
        }
    }
}
