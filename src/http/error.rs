//! Error replies: every rejected request gets a 4xx (or 503, or a 500 when
//! the journal fails) with the JSON
//! body `{"error_code": "...", "message": "..."}`. `error_code` is DataKit's
//! field name; the codes are declared once in [`ErrorCode::ALL`], which the
//! README's table is checked against.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    JobNameIsRequired,
    OddLabelComponents,
    InvalidLabelName,
    InvalidBase64,
    InvalidPath,
    InvalidTextFormat,
    InvalidProtobuf,
    DuplicateMetricFamily,
    CorruptBody,
    UnsupportedContentEncoding,
    BodyTooLarge,
    DecompressedBodyTooLarge,
    MethodNotAllowed,
    NotFound,
    QueueFull,
    InconsistentMetrics,
    StoreLoading,
    LifecycleDisabled,
    JournalFailed,
    QueueFailed,
}

impl ErrorCode {
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::JobNameIsRequired,
        ErrorCode::OddLabelComponents,
        ErrorCode::InvalidLabelName,
        ErrorCode::InvalidBase64,
        ErrorCode::InvalidPath,
        ErrorCode::InvalidTextFormat,
        ErrorCode::InvalidProtobuf,
        ErrorCode::DuplicateMetricFamily,
        ErrorCode::CorruptBody,
        ErrorCode::UnsupportedContentEncoding,
        ErrorCode::BodyTooLarge,
        ErrorCode::DecompressedBodyTooLarge,
        ErrorCode::MethodNotAllowed,
        ErrorCode::NotFound,
        ErrorCode::QueueFull,
        ErrorCode::InconsistentMetrics,
        ErrorCode::StoreLoading,
        ErrorCode::LifecycleDisabled,
        ErrorCode::JournalFailed,
        ErrorCode::QueueFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::JobNameIsRequired => "jobNameIsRequired",
            ErrorCode::OddLabelComponents => "oddLabelComponents",
            ErrorCode::InvalidLabelName => "invalidLabelName",
            ErrorCode::InvalidBase64 => "invalidBase64",
            ErrorCode::InvalidPath => "invalidPath",
            ErrorCode::InvalidTextFormat => "invalidTextFormat",
            ErrorCode::InvalidProtobuf => "invalidProtobuf",
            ErrorCode::DuplicateMetricFamily => "duplicateMetricFamily",
            ErrorCode::CorruptBody => "corruptBody",
            ErrorCode::UnsupportedContentEncoding => "unsupportedContentEncoding",
            ErrorCode::BodyTooLarge => "bodyTooLarge",
            ErrorCode::DecompressedBodyTooLarge => "decompressedBodyTooLarge",
            ErrorCode::MethodNotAllowed => "methodNotAllowed",
            ErrorCode::NotFound => "notFound",
            ErrorCode::QueueFull => "queueFull",
            ErrorCode::InconsistentMetrics => "inconsistentMetrics",
            ErrorCode::StoreLoading => "storeLoading",
            ErrorCode::LifecycleDisabled => "lifecycleDisabled",
            ErrorCode::JournalFailed => "journalFailed",
            ErrorCode::QueueFailed => "queueFailed",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            ErrorCode::UnsupportedContentEncoding => 415,
            ErrorCode::BodyTooLarge | ErrorCode::DecompressedBodyTooLarge => 413,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::NotFound => 404,
            ErrorCode::QueueFull | ErrorCode::StoreLoading => 503,
            ErrorCode::LifecycleDisabled => 403,
            ErrorCode::JournalFailed | ErrorCode::QueueFailed => 500,
            _ => 400,
        }
    }

    /// One line for the README's table.
    pub fn meaning(self) -> &'static str {
        match self {
            ErrorCode::JobNameIsRequired => {
                "The job in the URL is empty (`/metrics/job/`, or an empty `job@base64`)."
            }
            ErrorCode::OddLabelComponents => {
                "The labels after the job do not come as `/<name>/<value>` pairs."
            }
            ErrorCode::InvalidLabelName => {
                "A URL label name does not match `[a-zA-Z_][a-zA-Z0-9_]*`, or starts with `__`."
            }
            ErrorCode::InvalidBase64 => "A `@base64` value is not URL-safe base64 of UTF-8 text.",
            ErrorCode::InvalidPath => "The URL path does not percent-decode to UTF-8.",
            ErrorCode::InvalidTextFormat => {
                "The body is not valid text exposition format 0.0.4; the message gives the line."
            }
            ErrorCode::InvalidProtobuf => {
                "The body is not valid delimited `io.prometheus.client.MetricFamily` protobuf."
            }
            ErrorCode::DuplicateMetricFamily => "A metric family name appears twice in one push.",
            ErrorCode::CorruptBody => "The gzip or snappy body is corrupt or truncated.",
            ErrorCode::UnsupportedContentEncoding => {
                "`Content-Encoding` is neither `gzip`, `snappy` nor `identity`."
            }
            ErrorCode::BodyTooLarge => "The body as sent is larger than `max_body_size`.",
            ErrorCode::DecompressedBodyTooLarge => {
                "The body after decompression is larger than `max_decompressed_size`."
            }
            ErrorCode::MethodNotAllowed => "The path exists but not for this method.",
            ErrorCode::NotFound => "No such path.",
            ErrorCode::QueueFull => {
                "A sink with `overflow = \"block\"` had no room within 1 s; retry after `Retry-After` seconds."
            }
            ErrorCode::InconsistentMetrics => {
                "The push would make the exposition invalid (type conflict, a series another group pushes, `_count`/`_sum`/`_bucket` collision, duplicate series or labels); it sets `push_failure_time_seconds`."
            }
            ErrorCode::StoreLoading => {
                "The store is still loading its persisted state; retry after `Retry-After` seconds."
            }
            ErrorCode::LifecycleDisabled => "`/-/quit` needs `enable_lifecycle = true`.",
            ErrorCode::JournalFailed => {
                "The store's journal could not be written or fsynced; the push is not acknowledged."
            }
            ErrorCode::QueueFailed => {
                "The sinks' disk queue (`queue_dir`) could not be written or fsynced; the push is not acknowledged."
            }
        }
    }
}

/// A rejection on its way to becoming an HTTP reply.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
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
