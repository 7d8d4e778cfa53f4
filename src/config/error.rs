//! The one error type of configuration loading.
//!
//! A bad configuration stops the agent before it starts, so the message is
//! all the user gets: always one line naming the file or ENV variable, the
//! dotted key, the value found and what was expected.

use std::fmt;

/// A configuration problem, as one line of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    message: String,
}

impl ConfigError {
    /// Builds an error; any line breaks (from OS or TOML messages) are
    /// folded so the message stays on one line.
    pub(crate) fn new(message: impl Into<String>) -> Self {
        let message: String = message.into();
        let message = if message.contains(['\n', '\r']) {
            message
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; ")
        } else {
            message
        };
        ConfigError { message }
    }

    /// The message, the same text `Display` prints.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn always_one_line() {
        let e = ConfigError::new("a.conf: bad\n  expected x\r\n\nor y");
        assert_eq!(e.to_string(), "a.conf: bad; expected x; or y");
        assert_eq!(e.message(), e.to_string());
    }
}
