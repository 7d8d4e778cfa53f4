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
//! Submodules: `value` (scalar syntax), `url` (sink URLs), `schema` (key
//! tables), `inputs` (input registry), `files` (finding and parsing
//! files), `load` (merging), `env` (ENV overlay), `render` (`to_toml`).

mod env;
mod error;
mod files;
mod inputs;
mod load;
mod render;
mod schema;
mod url;
mod value;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

// For the README reference test and docs; the loader uses them internally.
#[allow(unused_imports)]
pub use env::{ENV_DATAWAY, ENV_DEFAULT_ENABLED_INPUTS};
pub use error::ConfigError;
pub use url::redact_url;

use schema::Section;

/// The effective configuration of the agent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// `[http_api]`: the HTTP server that receives pushes.
    pub http_api: HttpApiConfig,
    /// `[io]`: batching of points towards the sinks.
    pub io: IoConfig,
    /// `[[sinks]]` from all files, in file order, or from ENV_DATAWAY.
    /// Empty: points go to stdout as line protocol.
    pub sinks: Vec<SinkConfig>,
    /// `[[inputs.pushgateway]]`; None = input not enabled.
    pub pushgateway: Option<PushgatewayConfig>,
}

/// `[http_api]`: where the agent listens and how much it accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpApiConfig {
    /// Address the HTTP API listens on, "host:port" (IPv6 in brackets);
    /// "0.0.0.0:9529" accepts other hosts.
    /// Default: `"localhost:9529"`. ENV: `ENV_HTTP_LISTEN`.
    pub listen: String,
    /// Largest request body accepted as received (compressed or not), in
    /// bytes. Default: `"16MiB"`. ENV: `ENV_HTTP_MAX_BODY_SIZE`.
    pub max_body_size: u64,
    /// Largest request body after decompression, in bytes (guards against
    /// zip bombs). Default: `"64MiB"`. ENV: `ENV_HTTP_MAX_DECOMPRESSED_SIZE`.
    pub max_decompressed_size: u64,
}

impl Default for HttpApiConfig {
    fn default() -> Self {
        HttpApiConfig {
            listen: "localhost:9529".to_string(),
            max_body_size: 16 << 20,
            max_decompressed_size: 64 << 20,
        }
    }
}

/// `[io]`: how points are batched before they go to the sinks.
#[derive(Debug, Clone, PartialEq)]
pub struct IoConfig {
    /// Points per batch; a full batch is sent at once.
    /// Default: `1000`. ENV: `ENV_IO_MAX_CACHE_COUNT`.
    pub max_cache_count: usize,
    /// A partial batch is sent after this long; above zero.
    /// Default: `"10s"`. ENV: `ENV_IO_FLUSH_INTERVAL`.
    pub flush_interval: Duration,
    /// How long shutdown may spend flushing what is left.
    /// Default: `"20s"`. ENV: `ENV_IO_SHUTDOWN_TIMEOUT`.
    pub shutdown_timeout: Duration,
    /// Directory of the sinks' disk queue: when set, a push's points are
    /// fsynced there before the push is acknowledged and survive a crash.
    /// Default: `unset`. ENV: `ENV_IO_QUEUE_DIR`.
    pub queue_dir: Option<String>,
}

impl Default for IoConfig {
    fn default() -> Self {
        IoConfig {
            max_cache_count: 1000,
            flush_interval: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(20),
            queue_dir: None,
        }
    }
}

/// `[[sinks]]`: one HTTP endpoint that receives line protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkConfig {
    /// Name in logs; unique among sinks.
    /// Default: `sink0, sink1, ... in order` (by position). ENV: none.
    pub name: String,
    /// The http(s) URL points are POSTed to, query included.
    /// Default: `required`. ENV: `ENV_DATAWAY` (replaces all [[sinks]]).
    pub url: String,
    /// Gzip request bodies. Default: `true`. ENV: none.
    pub gzip: bool,
    /// Timeout of one write request; above zero.
    /// Default: `"30s"`. ENV: none.
    pub timeout: Duration,
    /// Memory budget of the sink's queue, in line-protocol bytes.
    /// Default: `"256MiB"`. ENV: none.
    pub max_queue_bytes: u64,
    /// When the queue is full: `block` refuses pushes with 503 and
    /// Retry-After; `drop_oldest` drops the oldest points, counted.
    /// Default: `"block"`. ENV: none.
    pub overflow: String,
    /// `line-protocol`, or `remote-write` (Prometheus remote write 1.0).
    /// Default: `"line-protocol"`. ENV: none.
    pub format: String,
    /// Disk budget of this sink's share of the queue, with `[io] queue_dir`.
    /// Default: `"1GiB"`. ENV: none.
    pub max_disk_bytes: u64,
    /// First retry delay; doubles up to `retry_max`, ±25 % jitter.
    /// Default: `"500ms"`. ENV: none.
    pub retry_base: Duration,
    /// Longest retry delay.
    /// Default: `"30s"`. ENV: none.
    pub retry_max: Duration,
    /// Extra request headers; values are secrets, never shown.
    /// Default: `{}`. ENV: none.
    pub headers: BTreeMap<String, String>,
    /// Sent as `Authorization: Bearer <token>`; never shown.
    /// Default: `unset`. ENV: none.
    pub bearer_token: Option<String>,
    /// File holding the bearer token, read at start.
    /// Default: `unset`. ENV: none.
    pub bearer_token_file: Option<String>,
    /// `username` and `password` or `password_file`.
    /// Default: `unset`. ENV: none.
    pub basic_auth: BTreeMap<String, String>,
    /// PEM CA certificates trusted instead of the system's.
    /// Default: `unset`. ENV: none.
    pub ca_file: Option<String>,
    /// PEM client certificate, with `key_file`.
    /// Default: `unset`. ENV: none.
    pub cert_file: Option<String>,
    /// PEM private key of `cert_file`.
    /// Default: `unset`. ENV: none.
    pub key_file: Option<String>,
    /// Do not verify the server's certificate.
    /// Default: `false`. ENV: none.
    pub tls_insecure_skip_verify: bool,
}

impl Default for SinkConfig {
    /// A sink's defaults; `name` is given by position and `url` is
    /// required, so both start empty.
    fn default() -> Self {
        SinkConfig {
            name: String::new(),
            url: String::new(),
            gzip: true,
            timeout: Duration::from_secs(30),
            max_queue_bytes: 256 << 20,
            overflow: "block".to_string(),
            format: "line-protocol".to_string(),
            max_disk_bytes: 1 << 30,
            retry_base: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
            headers: BTreeMap::new(),
            bearer_token: None,
            bearer_token_file: None,
            basic_auth: BTreeMap::new(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            tls_insecure_skip_verify: false,
        }
    }
}

/// `[[inputs.pushgateway]]`: the Prometheus Pushgateway API.
#[derive(Debug, Clone, PartialEq)]
pub struct PushgatewayConfig {
    /// Path prefix of the Pushgateway API (e.g. "/v1/pushgateway"),
    /// normalised: "" or "/" = none, leading "/" forced, trailing removed.
    /// Default: `""`. ENV: `ENV_INPUT_PUSHGATEWAY_ROUTE_PREFIX`.
    pub route_prefix: String,
    /// If set, every metric goes to this one measurement.
    /// Default: `unset`. ENV: `ENV_INPUT_PUSHGATEWAY_MEASUREMENT_NAME`.
    pub measurement_name: Option<String>,
    /// Use the `job` label as the measurement name.
    /// Default: `false`. ENV: `ENV_INPUT_PUSHGATEWAY_JOB_AS_MEASUREMENT`.
    pub job_as_measurement: bool,
    /// Keep the full metric name as the field name.
    /// Default: `true`. ENV: `ENV_INPUT_PUSHGATEWAY_KEEP_EXIST_METRIC_NAME`.
    pub keep_exist_metric_name: bool,
    /// Use timestamps pushed with the metrics instead of arrival time.
    /// Default: `true`. ENV: `ENV_INPUT_PUSHGATEWAY_HONOR_TIMESTAMPS`.
    pub honor_timestamps: bool,
    /// Keep the last push of every group and expose it at `GET P/metrics`,
    /// as the Pushgateway does; `false` makes a pure forwarder.
    /// Default: `true`. ENV: `ENV_INPUT_PUSHGATEWAY_STORE`.
    pub store: bool,
    /// Refuse (400) pushes that would make the exposition invalid.
    /// Default: `true`. ENV: `ENV_INPUT_PUSHGATEWAY_CONSISTENCY_CHECK`.
    pub consistency_check: bool,
    /// Directory of the store's journal and snapshots; unset keeps the
    /// store in memory only.
    /// Default: `unset`. ENV: `ENV_INPUT_PUSHGATEWAY_PERSISTENCE_DIR`.
    pub persistence_dir: Option<String>,
    /// Remove a group this long after its last successful push; 0 keeps
    /// groups forever.
    /// Default: `"0s"`. ENV: `ENV_INPUT_PUSHGATEWAY_GROUP_TTL`.
    pub group_ttl: std::time::Duration,
    /// Serve `PUT P/api/v1/admin/wipe`.
    /// Default: `false`. ENV: `ENV_INPUT_PUSHGATEWAY_ENABLE_ADMIN_API`.
    pub enable_admin_api: bool,
    /// Serve `PUT|POST P/-/quit`.
    /// Default: `false`. ENV: `ENV_INPUT_PUSHGATEWAY_ENABLE_LIFECYCLE`.
    pub enable_lifecycle: bool,
}

impl Default for PushgatewayConfig {
    fn default() -> Self {
        PushgatewayConfig {
            route_prefix: String::new(),
            measurement_name: None,
            job_as_measurement: false,
            keep_exist_metric_name: true,
            honor_timestamps: true,
            store: true,
            consistency_check: true,
            persistence_dir: None,
            group_ttl: std::time::Duration::ZERO,
            enable_admin_api: false,
            enable_lifecycle: false,
        }
    }
}

/// The loaded config and the warnings found on the way (unknown names in
/// ENV_DEFAULT_ENABLED_INPUTS, ignored ENV); the caller logs them once
/// logging is set up.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

/// Loads every `*.conf` file under `dir` (recursively, sorted path order),
/// applies the ENV overlay read through `env` (a variable set to "" counts
/// as unset) and validates the result.
pub fn load(dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Loaded, ConfigError> {
    load::load(dir, env)
}

/// One config key, for the README reference and its test.
#[allow(dead_code)] // read by tests and docs tooling, not by the agent itself
#[derive(Debug, Clone, PartialEq)]
pub struct KeyDoc {
    /// Dotted table path: "http_api", "io", "sinks", "inputs.pushgateway".
    pub section: &'static str,
    pub key: &'static str,
    /// As TOML (`"16MiB"`, `1000`, `true`), or a word such as `required`.
    pub default: String,
    /// The ENV variable that sets it, if any.
    pub env: Option<String>,
    pub description: &'static str,
}

/// Every config key with its default, ENV variable and description.
#[allow(dead_code)] // read by tests and docs tooling, not by the agent itself
pub fn reference() -> Vec<KeyDoc> {
    let mut docs = docs_for::<HttpApiConfig>();
    docs.extend(docs_for::<IoConfig>());
    docs.extend(docs_for::<SinkConfig>());
    for input in &inputs::INPUTS {
        docs.extend((input.docs)());
    }
    docs
}

/// The reference entries of one section, from its key table.
fn docs_for<S: Section>() -> Vec<KeyDoc> {
    let defaults = S::default();
    let prefix = S::env_prefix();
    S::keys()
        .iter()
        .map(|spec| KeyDoc {
            section: S::PATH,
            key: spec.key,
            default: match spec.default_doc {
                Some(text) => text.to_string(),
                None => render::value_text(spec.kind, &(spec.get)(&defaults))
                    .unwrap_or_else(|| "unset".into()),
            },
            env: match (&prefix, spec.env_doc) {
                (Some(prefix), _) => Some(schema::env_name(prefix, spec.key)),
                (None, Some(var)) => Some(var.to_string()),
                (None, None) => None,
            },
            description: spec.doc,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The doc comment right above `pub <key>:` inside `pub struct <name>`.
    fn field_doc(source: &str, struct_name: &str, key: &str) -> String {
        let start = source
            .find(&format!("pub struct {struct_name} {{"))
            .expect(struct_name);
        let body = &source[start..start + source[start..].find("\n}").unwrap()];
        let field_at = body
            .find(&format!("    pub {key}:"))
            .unwrap_or_else(|| panic!("{struct_name}.{key}"));
        let mut doc: Vec<&str> = body[..field_at]
            .lines()
            .rev()
            .take_while(|l| l.trim_start().starts_with("///"))
            .collect();
        doc.reverse();
        doc.join("\n")
    }

    #[test]
    fn every_key_has_a_doc_comment_with_default_and_env() {
        let source = include_str!("mod.rs");
        let structs = [
            ("http_api", "HttpApiConfig"),
            ("io", "IoConfig"),
            ("sinks", "SinkConfig"),
            ("inputs.pushgateway", "PushgatewayConfig"),
        ];
        let docs = reference();
        assert_eq!(docs.len(), 36);
        for doc in docs {
            let (_, name) = structs.iter().find(|(s, _)| *s == doc.section).unwrap();
            let comment = field_doc(source, name, doc.key);
            assert!(
                comment.contains(&format!("Default: `{}`", doc.default)),
                "{}.{}: {comment}",
                doc.section,
                doc.key
            );
            let env = doc.env.as_deref().unwrap_or("none");
            let env = if env == "none" {
                "ENV: none".to_string()
            } else {
                format!("ENV: `{env}`")
            };
            assert!(
                comment.contains(&env),
                "{}.{}: wants {env}: {comment}",
                doc.section,
                doc.key
            );
        }
    }

    #[test]
    fn reference_lists_env_names_by_the_rule() {
        let envs: Vec<String> = reference().into_iter().filter_map(|d| d.env).collect();
        assert_eq!(
            envs,
            [
                "ENV_HTTP_LISTEN",
                "ENV_HTTP_MAX_BODY_SIZE",
                "ENV_HTTP_MAX_DECOMPRESSED_SIZE",
                "ENV_IO_MAX_CACHE_COUNT",
                "ENV_IO_FLUSH_INTERVAL",
                "ENV_IO_SHUTDOWN_TIMEOUT",
                "ENV_IO_QUEUE_DIR",
                "ENV_DATAWAY",
                "ENV_INPUT_PUSHGATEWAY_ROUTE_PREFIX",
                "ENV_INPUT_PUSHGATEWAY_MEASUREMENT_NAME",
                "ENV_INPUT_PUSHGATEWAY_JOB_AS_MEASUREMENT",
                "ENV_INPUT_PUSHGATEWAY_KEEP_EXIST_METRIC_NAME",
                "ENV_INPUT_PUSHGATEWAY_HONOR_TIMESTAMPS",
                "ENV_INPUT_PUSHGATEWAY_STORE",
                "ENV_INPUT_PUSHGATEWAY_CONSISTENCY_CHECK",
                "ENV_INPUT_PUSHGATEWAY_PERSISTENCE_DIR",
                "ENV_INPUT_PUSHGATEWAY_GROUP_TTL",
                "ENV_INPUT_PUSHGATEWAY_ENABLE_ADMIN_API",
                "ENV_INPUT_PUSHGATEWAY_ENABLE_LIFECYCLE",
            ]
        );
    }

    /// The shipped conf.d files must name every key with its default and
    /// ENV variable, commented or not.
    #[test]
    fn shipped_conf_files_document_every_key() {
        let pushkit = include_str!("../../conf.d/pushkit.conf");
        let pushgateway = include_str!("../../conf.d/pushgateway.conf");
        for doc in reference() {
            let text = if doc.section.starts_with("inputs.") {
                pushgateway
            } else {
                pushkit
            };
            let line = text
                .lines()
                .find(|l| {
                    let l = l.trim_start_matches(['#', ' ']);
                    l.starts_with(&format!("{} ", doc.key))
                        || l.starts_with(&format!("{}=", doc.key))
                })
                .unwrap_or_else(|| panic!("{}.{} not in shipped conf", doc.section, doc.key));
            if !doc.default.contains(' ') && doc.default != "unset" && doc.default != "required" {
                assert!(
                    line.contains(&format!("= {}", doc.default)),
                    "{}.{}: {line}",
                    doc.section,
                    doc.key
                );
            }
            if let Some(env) = &doc.env {
                assert!(text.contains(env.as_str()), "{env} not in shipped conf");
            }
        }
    }
}
