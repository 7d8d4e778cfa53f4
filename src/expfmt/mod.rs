//! Decoding (and re-encoding) of the Prometheus exposition formats a push can
//! arrive in: the text format 0.0.4 ([`text`]) and varint-delimited protobuf
//! `io.prometheus.client.MetricFamily` messages ([`delimited`], built on the
//! message types in [`proto`]). Both decode into the one in-memory model,
//! [`crate::model::family`].

use std::fmt;

pub mod delimited;
pub mod expose;
pub mod negotiate;
pub mod proto;
pub mod text;

pub use delimited::{parse_delimited, parse_delimited_names, write_delimited};
pub use proto::{family_from_proto, family_to_proto};
pub use text::{parse_text, parse_text_names};

/// Why a push body could not be decoded.
///
/// Text-format errors carry the 1-based line they were found on, like the Go
/// reference parser's `ParseError`; protobuf errors carry no line.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    /// 1-based line of a text-format error; `None` for protobuf errors.
    pub line: Option<usize>,
    pub message: String,
    /// True when the error is a family named twice in one push, which the
    /// HTTP edge reports under its own error code.
    pub duplicate_family: bool,
}

impl ParseError {
    /// An error of the text format, found on 1-based line `line`.
    pub fn text(line: usize, message: impl Into<String>) -> Self {
        ParseError {
            line: Some(line),
            message: message.into(),
            duplicate_family: false,
        }
    }

    /// An error of a protobuf body (bad wire data, or a message that
    /// decodes but is not a valid metric family).
    pub fn protobuf(message: impl Into<String>) -> Self {
        ParseError {
            line: None,
            message: message.into(),
            duplicate_family: false,
        }
    }

    /// Marks the error as a family named twice.
    pub fn as_duplicate_family(mut self) -> Self {
        self.duplicate_family = true;
        self
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(
                f,
                "text format parsing error in line {line}: {}",
                self.message
            ),
            None => write!(f, "invalid protobuf: {}", self.message),
        }
    }
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_text_and_protobuf() {
        assert_eq!(
            ParseError::text(3, "boom").to_string(),
            "text format parsing error in line 3: boom"
        );
        assert_eq!(
            ParseError::protobuf("truncated").to_string(),
            "invalid protobuf: truncated"
        );
    }
}
