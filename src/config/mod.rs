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
//! [http_api.tls] and [http_api.auth] follow it as `ENV_HTTP_TLS_<KEY>`
//! and `ENV_HTTP_AUTH_<KEY>`. A few keys keep DataKit's own names instead
//! (`ENV_HTTP_TLS_CRT`, `ENV_REQUEST_RATE_LIMIT`, ...: `Key::env`); the
//! reference marks them and the README lists them apart.
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
//! 3. the sections: `http_tls` and `http_auth` (sub-tables of
//!    [http_api]), `http_api`, `io`, `sink`, `pushgateway`;
//! 4. `tree` (`Config` and `validate`), then `inputs` (the input registry),
//!    and `web_config` (the Prometheus web config file, read into
//!    [http_api]);
//! 5. `env` (the ENV overlay), then `load`;
//! 6. `render` (`to_toml`) and `reference` (the README's table).

mod de;
mod env;
mod error;
mod files;
mod http_api;
mod http_auth;
mod http_tls;
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
mod web_config;

use std::path::Path;

pub use error::{ConfigError, Place};
pub use http_api::HttpApiConfig;
pub use http_auth::{AuthConfig, RouteClass};
pub use http_tls::{TlsConfig, TlsVersion};
pub use io::IoConfig;
// For the README reference test and docs; the loader uses them internally.
#[allow(unused_imports)]
pub use keys::{ENV_DATAWAY, ENV_DEFAULT_ENABLED_INPUTS};
pub use pushgateway::PushgatewayConfig;
pub use reference::{reference, KeyDoc};
pub use sink::{
    Auth, BasicAuth, ClientCert, Format, LpDialect, Overflow, Password, SinkConfig, Violation,
};
pub use tree::{Config, Loaded};
pub use url::{is_secret_query_key, redact_secrets, redact_url};
pub use value::Cidr;

/// Loads every `*.conf` file under `dir` (recursively, sorted path order),
/// applies the ENV overlay read through `env` (a variable set to "" counts
/// as unset) and validates the result (`Config::validate`).
pub fn load(dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Loaded, ConfigError> {
    load::load(dir, env)
}

#[cfg(test)]
mod tests {
    /// Every file of this folder, by module name.
    const FILES: [(&str, &str); 20] = [
        ("de", include_str!("de.rs")),
        ("env", include_str!("env.rs")),
        ("error", include_str!("error.rs")),
        ("files", include_str!("files.rs")),
        ("http_api", include_str!("http_api.rs")),
        ("http_auth", include_str!("http_auth.rs")),
        ("http_tls", include_str!("http_tls.rs")),
        ("inputs", include_str!("inputs.rs")),
        ("io", include_str!("io.rs")),
        ("keys", include_str!("keys.rs")),
        ("load", include_str!("load.rs")),
        ("pushgateway", include_str!("pushgateway.rs")),
        ("reference", include_str!("reference.rs")),
        ("render", include_str!("render.rs")),
        ("sink", include_str!("sink.rs")),
        ("syntax", include_str!("syntax.rs")),
        ("tree", include_str!("tree.rs")),
        ("url", include_str!("url.rs")),
        ("value", include_str!("value.rs")),
        ("web_config", include_str!("web_config.rs")),
    ];

    /// The sibling modules a file imports (`use super::x...` at the top
    /// level; tests may import anything below them and are not counted).
    fn imports(source: &str) -> Vec<&str> {
        let code = source.split("\n#[cfg(test)]\nmod tests").next().unwrap();
        code.lines()
            .filter_map(|l| l.strip_prefix("use super::"))
            .map(|rest| rest.split([':', ';', ' ']).next().unwrap())
            .collect()
    }

    /// The files import one way: no file imports `mod.rs` (whose re-exports
    /// would hide a circle) and no chain of imports comes back to where it
    /// started.
    #[test]
    fn no_import_circle_among_config_files() {
        let names: Vec<&str> = FILES.iter().map(|(n, _)| *n).collect();
        for (name, source) in FILES {
            for import in imports(source) {
                assert!(
                    names.contains(&import),
                    "{name}.rs imports super::{import}, which is not a sibling file"
                );
            }
        }
        // Depth-first search for a cycle, reporting its path.
        fn visit<'a>(name: &'a str, path: &mut Vec<&'a str>, done: &mut Vec<&'a str>) {
            if done.contains(&name) {
                return;
            }
            if let Some(at) = path.iter().position(|n| *n == name) {
                panic!("import circle: {} -> {name}", path[at..].join(" -> "));
            }
            path.push(name);
            let source = FILES.iter().find(|(n, _)| *n == name).unwrap().1;
            for import in imports(source) {
                visit(import, path, done);
            }
            path.pop();
            done.push(name);
        }
        let mut done = Vec::new();
        for name in names {
            visit(name, &mut Vec::new(), &mut done);
        }
        assert!(imports("use super::a::b;\nuse super::{c, d};\n").contains(&"a"));
    }
}
