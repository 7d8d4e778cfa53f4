//! The error type of configuration loading, and where a value came from.
//!
//! A bad configuration stops the agent before it starts, so the message is
//! all the user gets: always one line naming the file or ENV variable, the
//! dotted key, the value found and what was expected. Values are shown as
//! they were read, except secrets ("REDACTED") and URL query values and
//! passwords, which the caller redacts before building the error.
//!
//! Near the bottom of the config folder: it imports only `value`.

use std::fmt;

use super::value::quote;

/// Where a value was read, as the first half of an error line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A key in a file: `conf.d/a.conf: sinks[1].timeout`.
    File { file: String, key: String },
    /// An ENV variable, which names its key by itself: `ENV_IO_FLUSH_INTERVAL`.
    Env { var: String },
    /// A key of a configuration built in code, or left at its default.
    Key { key: String },
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::File { file, key } => write!(f, "{file}: {key}"),
            Place::Env { var } => f.write_str(var),
            Place::Key { key } => f.write_str(key),
        }
    }
}

/// A configuration problem. `Display` gives the one-line message; every
/// variant's text ends with what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A value its key does not take, or one that breaks a rule with
    /// another key. `value` is shown as read (quoted if a string, redacted
    /// if a secret); `expected` starts with "expected".
    #[error("{at} = {value}: {expected}")]
    Invalid {
        at: Place,
        value: String,
        expected: String,
    },
    /// A required key that is absent.
    #[error("{at} is missing: {expected}")]
    Missing { at: Place, expected: String },
    /// A key a section does not have; `key` is dotted ("http_api.lisen").
    #[error("{file}: unknown key {}: expected one of {}", quote(key), known.join(", "))]
    UnknownKey {
        file: String,
        key: String,
        known: Vec<&'static str>,
    },
    /// A top-level table pushkit does not have.
    #[error(
        "{file}: unknown table {}: expected [http_api], [io], [[sinks]] or [[inputs.<name>]]",
        quote(name)
    )]
    UnknownTable { file: String, name: String },
    /// A top-level key that is not a table.
    #[error("{file}: unknown key {}: expected only the tables [http_api], [io], [[sinks]] and [[inputs.<name>]] at the top level", quote(name))]
    UnknownTopLevelKey { file: String, name: String },
    /// `[http_api]` or `[io]` in a second file.
    #[error("{file}: [{section}] is also in {first}: expected [{section}] in one file only")]
    SectionRepeated {
        file: String,
        section: &'static str,
        first: String,
    },
    /// A second `[[inputs.<name>]]` block (`first` is "file: inputs.x[i]").
    #[error("{file}: inputs.{name}[{index}]: a second [[inputs.{name}]] block (the first is {first}): expected the input to be configured once")]
    InputRepeated {
        file: String,
        name: String,
        index: usize,
        first: String,
    },
    /// A file that is not TOML. `line` and `column` are 1-based.
    #[error("{file}: TOML syntax error{}: {message}", at_line(*line, *column))]
    Syntax {
        file: String,
        line: Option<usize>,
        column: usize,
        message: String,
    },
    /// A web config file (`web_config_file`) that is not YAML.
    #[error("{file}: YAML syntax error{}: {message}", at_line(*line, *column))]
    YamlSyntax {
        file: String,
        line: Option<usize>,
        column: usize,
        message: String,
    },
    /// A file or directory that cannot be read. `what` says which.
    #[error("{path}: {what}: {error}")]
    Io {
        path: String,
        what: &'static str,
        error: String,
    },
}

impl ConfigError {
    /// An I/O error on `path`; OS messages are one line already, but the
    /// fold keeps that promise for any of them.
    pub(crate) fn io(path: &std::path::Path, what: &'static str, e: std::io::Error) -> Self {
        ConfigError::Io {
            path: shown_path(path),
            what,
            error: one_line(&e.to_string()),
        }
    }
}

/// A path as errors show it: control characters (a newline in a file
/// name) escaped, so the message stays on one line.
pub(crate) fn shown_path(path: &std::path::Path) -> String {
    let text = path.display().to_string();
    if !text.chars().any(char::is_control) {
        return text;
    }
    text.chars()
        .map(|c| match c {
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect()
}

fn at_line(line: Option<usize>, column: usize) -> String {
    match line {
        Some(line) => format!(" at line {line}, column {column}"),
        None => String::new(),
    }
}

/// Folds a message from elsewhere (the OS, the TOML parser) onto one line.
pub(crate) fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_messages_are_folded_to_one_line() {
        assert_eq!(
            one_line("a.conf: bad\n  expected x\r\n\nor y"),
            "a.conf: bad; expected x; or y"
        );
        let e = ConfigError::Syntax {
            file: "a.conf".into(),
            line: Some(2),
            column: 3,
            message: one_line("x\ny"),
        };
        assert_eq!(
            e.to_string(),
            "a.conf: TOML syntax error at line 2, column 3: x; y"
        );
    }

    #[test]
    fn paths_are_shown_on_one_line() {
        let path = std::path::Path::new("conf.d/a\nb.conf");
        assert_eq!(shown_path(path), "conf.d/a\\nb.conf");
        let e = ConfigError::io(path, "cannot read", std::io::ErrorKind::NotFound.into());
        assert!(!e.to_string().contains('\n'), "{e}");
    }

    #[test]
    fn places() {
        let at = |at| ConfigError::Invalid {
            at,
            value: "1".into(),
            expected: "expected x".into(),
        };
        let file = Place::File {
            file: "a.conf".into(),
            key: "io.k".into(),
        };
        assert_eq!(at(file).to_string(), "a.conf: io.k = 1: expected x");
        let env = Place::Env {
            var: "ENV_IO_K".into(),
        };
        assert_eq!(at(env).to_string(), "ENV_IO_K = 1: expected x");
    }
}
