//! Configuration: every `*.conf` (TOML) file under a directory, then ENV.
//!
//! Precedence is built-in default < file < ENV, as in DataKit, so the same
//! agent can run from shipped conf.d files on a host or from ENV alone in a
//! container. Errors are one line naming the file or ENV variable, the
//! dotted key, the value found and what was expected, because a bad config
//! stops the agent and that line is all the user sees.
//!
//! ENV rule: `ENV_HTTP_<KEY>` for [http_api], `ENV_IO_<KEY>` for [io],
//! `ENV_INPUT_<INPUT>_<OPTION>` for inputs (key upper-cased), plus
//! `ENV_DATAWAY` (sink URLs, replacing [[sinks]]) and
//! `ENV_DEFAULT_ENABLED_INPUTS` (which inputs run). "" counts as unset.
//!
//! Each section is a typed serde struct in its own file; `load` reads the
//! files into TOML tables, writes the ENV overlay into them, deserializes
//! them, and applies `Config::validate`, the one set of rules between keys
//! for `pushkit check` and `pushkit run` alike.
//!
//! Files import one way only, from the bottom:
//! 1. `value` (scalar syntax), `error` (the error type), `url`, `de` (the
//!    path-tracking deserializer), `files` (finding and parsing files);
//! 2. `keys` (what serde cannot say: docs, ENV spelling, redaction) and
//!    `syntax` (serde helpers for each kind of value);
//! 3. the sections: `http_api`, `io`, `sink`, `pushgateway`;
//! 4. `tree` (`Config` and `validate`), then `inputs` (the input registry);
//! 5. `env` (the ENV overlay), then `load`;
//! 6. `render` (`to_toml`) and `reference` (the README's table).

mod de;
mod env;
mod error;
mod files;
mod http_api;
mod inputs;
mod io;
mod keys;
mod load;
mod pushgateway;
mod reference;
mod render;
mod sink;
mod syntax;
mod tree;
mod url;
mod value;

use std::path::Path;

pub use error::{ConfigError, Place};
pub use http_api::HttpApiConfig;
pub use io::IoConfig;
// For the README reference test and docs; the loader uses them internally.
#[allow(unused_imports)]
pub use keys::{ENV_DATAWAY, ENV_DEFAULT_ENABLED_INPUTS};
pub use pushgateway::PushgatewayConfig;
pub use reference::{reference, KeyDoc};
pub use sink::{Auth, BasicAuth, ClientCert, Format, Overflow, Password, SinkConfig, Violation};
pub use tree::{Config, Loaded};
pub use url::redact_url;

/// Loads every `*.conf` file under `dir` (recursively, sorted path order),
/// applies the ENV overlay read through `env` (a variable set to "" counts
/// as unset) and validates the result (`Config::validate`).
pub fn load(dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Loaded, ConfigError> {
    load::load(dir, env)
}

