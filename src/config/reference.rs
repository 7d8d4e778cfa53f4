//! The config reference: every key with its default, ENV variable and
//! description, for the README's table (checked by tests/readme.rs) and
//! the shipped conf.d files (checked below).
//!
//! Built from the same definitions the loader uses: defaults from each
//! section's `Default` as its `Serialize` writes it, names from
//! `Section::KEYS`, which the tests here hold to the serde fields and to
//! the fields' doc comments.
//!
//! The top of the config folder with `render`: nothing imports it.

use super::http_api::HttpApiConfig;
use super::http_auth::AuthConfig;
use super::http_tls::TlsConfig;
use super::inputs::{each_input, Input, InputVisitor};
use super::io::IoConfig;
use super::keys::{key_env_name, Section};
use super::render::{toml_text, values};
use super::sink::SinkConfig;

/// One config key, for the README reference and its test.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyDoc {
    /// Dotted table path: "http_api", "io", "sinks", "inputs.pushgateway".
    pub section: &'static str,
    pub key: &'static str,
    /// As TOML (`"16MiB"`, `1000`, `true`), or a word such as `required`.
    pub default: String,
    /// The ENV variable that sets it, if any.
    pub env: Option<String>,
    /// Whether `env` breaks the README's `ENV_<SECTION>_<KEY>` rule
    /// (DataKit's own names): the README lists these apart.
    pub env_exception: bool,
    pub description: &'static str,
}

/// Every config key with its default, ENV variable and description.
pub fn reference() -> Vec<KeyDoc> {
    struct Inputs(Vec<KeyDoc>);
    impl InputVisitor for Inputs {
        fn visit<I: Input>(&mut self) {
            self.0.extend(docs_for::<I>());
        }
    }
    let mut docs = Inputs(docs_for::<HttpApiConfig>());
    docs.0.extend(docs_for::<TlsConfig>());
    docs.0.extend(docs_for::<AuthConfig>());
    docs.0.extend(docs_for::<IoConfig>());
    docs.0.extend(docs_for::<SinkConfig>());
    each_input(&mut docs);
    docs.0
}

/// The reference entries of one section.
fn docs_for<S: Section>() -> Vec<KeyDoc> {
    let defaults = values(&S::default());
    S::KEYS
        .iter()
        .map(|key| KeyDoc {
            section: S::PATH,
            key: key.name,
            default: match (key.default_doc, defaults.get(key.name)) {
                (Some(text), _) => text.to_string(),
                (None, Some(value)) => toml_text(value),
                (None, None) => "unset".to_string(),
            },
            env: match (S::ENV_PREFIX, key.env_doc) {
                (Some(prefix), _) => Some(key_env_name(prefix, key)),
                (None, Some(var)) => Some(var.to_string()),
                (None, None) => None,
            },
            env_exception: key.env_var.is_some(),
            description: key.doc,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::de::{field_names, from_table};
    use crate::config::env::overlay;
    use crate::config::pushgateway::PushgatewayConfig;

    fn keys_match_fields<S: Section>() {
        let keys: Vec<&str> = S::KEYS.iter().map(|k| k.name).collect();
        assert_eq!(keys, field_names::<S>(), "{}", S::PATH);
    }

    #[test]
    fn keys_are_the_serde_fields_in_order() {
        keys_match_fields::<HttpApiConfig>();
        keys_match_fields::<TlsConfig>();
        keys_match_fields::<AuthConfig>();
        keys_match_fields::<IoConfig>();
        keys_match_fields::<SinkConfig>();
        struct Inputs;
        impl InputVisitor for Inputs {
            fn visit<I: Input>(&mut self) {
                keys_match_fields::<I>();
            }
        }
        each_input(&mut Inputs);
    }

    /// Each key's ENV syntax must give what its field reads: the default
    /// written as ENV, loads back; an unset one loads from a sample.
    fn env_syntax_matches_fields<S: Section + PartialEq + std::fmt::Debug>() {
        let Some(prefix) = S::ENV_PREFIX else {
            return;
        };
        let defaults = values(&S::default());
        for key in S::KEYS {
            let text = match defaults.get(key.name) {
                Some(toml::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => "x".to_string(),
            };
            let var = key_env_name(prefix, key);
            let text = match defaults.get(key.name) {
                // ENV writes lists and pairs comma-separated.
                Some(toml::Value::Array(items)) => items
                    .iter()
                    .map(|i| i.as_str().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(","),
                Some(toml::Value::Table(_)) => String::new(),
                _ => text,
            };
            let env = |name: &str| (name == var && !text.is_empty()).then(|| text.clone());
            let mut table = toml::Table::new();
            if !defaults.contains_key(key.name) {
                // An unset key is set to a value of its own syntax.
                let sample = [
                    "x",
                    "1s",
                    "true",
                    "u:$2b$04$isFOm4DC5eSoFgmG0QESLOPuwLBKrrwozU0uuor243PoF8.R90EbW",
                ]
                .into_iter()
                .find(|sample| {
                    let env = |name: &str| (name == var).then(|| sample.to_string());
                    let mut table = toml::Table::new();
                    overlay::<S>(&mut table, &env).is_ok() && from_table::<S>(&table).is_ok()
                });
                assert!(sample.is_some(), "{var}: no sample value loads");
                continue;
            }
            overlay::<S>(&mut table, &env).unwrap_or_else(|e| panic!("{e}"));
            let read: S = from_table(&table).unwrap_or_else(|e| panic!("{var}={text}: {e}"));
            if defaults.contains_key(key.name) {
                assert_eq!(read, S::default(), "{var}={text}");
            }
        }
    }

    #[test]
    fn env_syntax_matches_the_fields() {
        env_syntax_matches_fields::<HttpApiConfig>();
        env_syntax_matches_fields::<TlsConfig>();
        env_syntax_matches_fields::<AuthConfig>();
        env_syntax_matches_fields::<IoConfig>();
        env_syntax_matches_fields::<PushgatewayConfig>();
    }

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
            .map(str::trim_start)
            // Attributes (some span lines) sit between the doc and the field.
            .skip_while(|l| !l.starts_with("///"))
            .take_while(|l| l.starts_with("///"))
            .collect();
        doc.reverse();
        doc.join("\n")
    }

    #[test]
    fn every_key_has_a_doc_comment_with_default_and_env() {
        let structs = [
            ("http_api", "HttpApiConfig", include_str!("http_api.rs")),
            ("http_api.tls", "TlsConfig", include_str!("http_tls.rs")),
            ("http_api.auth", "AuthConfig", include_str!("http_auth.rs")),
            ("io", "IoConfig", include_str!("io.rs")),
            ("sinks", "SinkConfig", include_str!("sink.rs")),
            (
                "inputs.pushgateway",
                "PushgatewayConfig",
                include_str!("pushgateway.rs"),
            ),
        ];
        let docs = reference();
        assert_eq!(docs.len(), 65);
        for doc in docs {
            let (_, name, source) = structs.iter().find(|(s, _, _)| *s == doc.section).unwrap();
            let comment = field_doc(source, name, doc.key);
            assert!(
                comment.contains(&format!("Default: `{}`", doc.default)),
                "{}.{}: {comment}",
                doc.section,
                doc.key
            );
            let env = match doc.env.as_deref() {
                None => "ENV: none".to_string(),
                Some(env) => format!("ENV: `{env}`"),
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
                "ENV_HTTP_LISTEN_SOCKET",
                "ENV_HTTP_MAX_BODY_SIZE",
                "ENV_HTTP_MAX_DECOMPRESSED_SIZE",
                "ENV_HTTP_MAX_INFLIGHT_BYTES",
                "ENV_HTTP_READ_HEADER_TIMEOUT",
                "ENV_HTTP_READ_TIMEOUT",
                "ENV_HTTP_IDLE_TIMEOUT",
                "ENV_HTTP_TIMEOUT",
                "ENV_HTTP_CLOSE_IDLE_CONNECTION",
                "ENV_HTTP_MAX_CONNECTIONS",
                "ENV_REQUEST_RATE_LIMIT",
                "ENV_REQUEST_RATE_LIMIT_BURST",
                "ENV_HTTP_TRUSTED_PROXIES",
                "ENV_HTTP_WEB_CONFIG_FILE",
                "ENV_HTTP_ENABLE_TLS",
                "ENV_HTTP_TLS_CRT",
                "ENV_HTTP_TLS_KEY",
                "ENV_HTTP_TLS_CLIENT_CA",
                "ENV_HTTP_TLS_MIN_VERSION",
                "ENV_HTTP_AUTH_BASIC_AUTH_USERS",
                "ENV_HTTP_AUTH_BEARER_TOKENS_FILE",
                "ENV_HTTP_AUTH_ROUTES",
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
                "ENV_INPUT_PUSHGATEWAY_UTF8_NAMES",
                "ENV_INPUT_PUSHGATEWAY_SAMPLE_LIMIT",
                "ENV_INPUT_PUSHGATEWAY_LABEL_LIMIT",
                "ENV_INPUT_PUSHGATEWAY_LABEL_NAME_LENGTH_LIMIT",
                "ENV_INPUT_PUSHGATEWAY_LABEL_VALUE_LENGTH_LIMIT",
                "ENV_INPUT_PUSHGATEWAY_MAX_GROUPS",
                "ENV_INPUT_PUSHGATEWAY_MAX_SERIES",
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
