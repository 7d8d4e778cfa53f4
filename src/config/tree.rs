//! The whole configuration (`Config`), where each part of a loaded one came
//! from, and `validate`: the rules between keys, which `pushkit check` and
//! `pushkit run` both apply through `load`, and the agent again for a
//! `Config` built in code.
//!
//! Single values are checked as they are read (`syntax`); what is left for
//! `validate` is what needs more than one value: a sink's url being there,
//! its one way to authenticate, its certificate with its key, header names
//! and values HTTP can carry, and sink names being unique. Reading the
//! files a config names (certificates, tokens) and binding the listen
//! address stay at start: they depend on the machine, not on the config.
//!
//! Imports the sections and the layers below them.

use std::collections::{BTreeMap, BTreeSet};

use super::error::{ConfigError, Place};
use super::http_api::HttpApiConfig;
use super::http_tls::TlsConfig;
use super::io::IoConfig;
use super::pushgateway::PushgatewayConfig;
use super::sink::SinkConfig;
use super::url::EXPECT_URL;
use super::value::quote;

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

/// The loaded config and the warnings found on the way (unknown names in
/// ENV_DEFAULT_ENABLED_INPUTS, ignored ENV); the caller logs them once
/// logging is set up.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

impl Config {
    /// Checks the rules between keys. `load` has already applied it; the
    /// agent applies it again so that a `Config` built in code is held to
    /// the same rules. Errors name keys by their path ("sinks[0].key_file").
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_from(&Origins::default())
    }

    /// `validate`, naming the file or ENV variable each value came from.
    pub(crate) fn validate_from(&self, origins: &Origins) -> Result<(), ConfigError> {
        validate_http(&self.http_api, &origins.http)?;
        validate_tls(&self.http_api.tls, &origins.tls)?;
        validate_sinks(&self.sinks, &origins.sinks)?;
        validate_exports(self, &origins.sinks)
    }
}

/// An export sends the pushgateway input's store, so it needs one.
fn validate_exports(config: &Config, origins: &[SectionOrigin]) -> Result<(), ConfigError> {
    let store = config.pushgateway.as_ref().is_some_and(|p| p.store);
    for (i, sink) in config.sinks.iter().enumerate() {
        if !sink.export_interval.is_zero() && !store {
            return Err(ConfigError::Invalid {
                at: sink_origin(origins, i).place("export_interval"),
                value: quote(&super::value::format_duration(sink.export_interval)),
                expected: "expected 0s: an export sends the store of [[inputs.pushgateway]], which is off (store = false) or not enabled".into(),
            });
        }
    }
    Ok(())
}

/// The rules of `[http_api]`: a body of `max_body_size` must fit in the
/// in-flight budget, or it could never be read.
fn validate_http(http: &HttpApiConfig, origin: &SectionOrigin) -> Result<(), ConfigError> {
    if http.max_inflight_bytes < http.max_body_size {
        let origin = if origin.base.is_empty() {
            SectionOrigin::code("http_api".into())
        } else {
            origin.clone()
        };
        return Err(ConfigError::Invalid {
            at: origin.place("max_inflight_bytes"),
            value: http.max_inflight_bytes.to_string(),
            expected: format!(
                "expected at least max_body_size ({} bytes), or no body that large could be read",
                http.max_body_size
            ),
        });
    }
    Ok(())
}

/// The rules of `[http_api.tls]`: a certificate comes with its key, a
/// switch turned on has both, and a client CA needs TLS on.
fn validate_tls(tls: &TlsConfig, origin: &SectionOrigin) -> Result<(), ConfigError> {
    let origin = if origin.base.is_empty() {
        SectionOrigin::code("http_api.tls".into())
    } else {
        origin.clone()
    };
    let shown = |v: &Option<String>| quote(v.as_deref().unwrap_or_default());
    if tls.enable != Some(false) {
        match (&tls.cert, &tls.privkey) {
            (Some(_), None) => {
                return Err(ConfigError::Invalid {
                    at: origin.place("cert"),
                    value: shown(&tls.cert),
                    expected: "expected privkey with it, the certificate's key".into(),
                })
            }
            (None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    at: origin.place("privkey"),
                    value: shown(&tls.privkey),
                    expected: "expected cert with it, the key's certificate".into(),
                })
            }
            (None, None) if tls.enable == Some(true) => {
                return Err(ConfigError::Missing {
                    at: origin.place("cert"),
                    expected: "expected cert and privkey, the PEM files TLS is served with".into(),
                })
            }
            _ => {}
        }
    }
    if tls.client_ca.is_some() && !tls.is_on() {
        return Err(ConfigError::Invalid {
            at: origin.place("client_ca"),
            value: shown(&tls.client_ca),
            expected: "expected TLS on (cert and privkey) with it".into(),
        });
    }
    Ok(())
}

/// The rules of `[[sinks]]`: each sink's own, then unique names.
/// `origins[i]` is where sink i came from (missing: built in code).
pub(crate) fn validate_sinks(
    sinks: &[SinkConfig],
    origins: &[SectionOrigin],
) -> Result<(), ConfigError> {
    for (i, sink) in sinks.iter().enumerate() {
        let origin = sink_origin(origins, i);
        if sink.url.is_empty() {
            return Err(ConfigError::Missing {
                at: origin.place("url"),
                expected: EXPECT_URL.to_string(),
            });
        }
        sink.check().map_err(|v| ConfigError::Invalid {
            at: origin.place(&v.dotted_key()),
            value: v.value,
            expected: v.expected,
        })?;
    }
    let mut first_with: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, sink) in sinks.iter().enumerate() {
        if let Some(&first) = first_with.get(sink.name.as_str()) {
            let origin = sink_origin(origins, i);
            let how = if origin.file.is_some() && !origin.in_file.contains("name") {
                " (its default name)"
            } else {
                ""
            };
            return Err(ConfigError::Invalid {
                at: origin.place("name"),
                value: format!("{}{how}", quote(&sink.name)),
                expected: format!(
                    "expected a unique sink name; {} already has it",
                    sink_origin(origins, first).whole()
                ),
            });
        }
        first_with.insert(&sink.name, i);
    }
    Ok(())
}

/// Where sink `i` came from; built in code when `origins` does not say.
fn sink_origin(origins: &[SectionOrigin], i: usize) -> SectionOrigin {
    origins
        .get(i)
        .cloned()
        .unwrap_or_else(|| SectionOrigin::code(format!("sinks[{i}]")))
}

/// Where one section's values came from, for error messages.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SectionOrigin {
    /// The file that holds the section, as shown in errors.
    pub file: Option<String>,
    /// The section's dotted path in that file: "io", "sinks[1]" (the
    /// index among that file's sinks), "inputs.pushgateway[0]".
    pub base: String,
    /// The keys the file writes.
    pub in_file: BTreeSet<String>,
    /// The keys set by ENV: key → (variable, its text).
    pub env: BTreeMap<String, (String, String)>,
}

impl SectionOrigin {
    /// A section built in code or left at its defaults.
    pub(crate) fn code(base: String) -> SectionOrigin {
        SectionOrigin {
            base,
            ..SectionOrigin::default()
        }
    }

    /// Where the value of `key` ("timeout", `headers."X-A"`) came from.
    pub(crate) fn place(&self, key: &str) -> Place {
        let top = key.split('.').next().unwrap_or(key);
        if let Some((var, _)) = self.env.get(top) {
            return Place::Env { var: var.clone() };
        }
        let key = format!("{}.{key}", self.base);
        match &self.file {
            Some(file) => Place::File {
                file: file.clone(),
                key,
            },
            None => Place::Key { key },
        }
    }

    /// The section itself: "conf.d/a.conf: sinks[0]".
    pub(crate) fn whole(&self) -> Place {
        match &self.file {
            Some(file) => Place::File {
                file: file.clone(),
                key: self.base.clone(),
            },
            None => Place::Key {
                key: self.base.clone(),
            },
        }
    }
}

/// Where the parts of a loaded `Config` came from.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origins {
    /// Per entry of `Config::sinks`.
    pub sinks: Vec<SectionOrigin>,
    /// `[http_api]` and `[http_api.tls]`.
    pub http: SectionOrigin,
    pub tls: SectionOrigin,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::sink::{BasicAuth, Password};

    fn sink(name: &str) -> SinkConfig {
        SinkConfig {
            name: name.into(),
            url: "http://h/w".into(),
            ..SinkConfig::default()
        }
    }

    #[test]
    fn rules_name_keys_by_path_without_origins() {
        let mut config = Config {
            sinks: vec![sink("a"), sink("b")],
            ..Config::default()
        };
        assert_eq!(config.validate(), Ok(()));
        config.sinks[1].key_file = Some("/k.pem".into());
        assert_eq!(
            config.validate().unwrap_err().to_string(),
            r#"sinks[1].key_file = "/k.pem": expected cert_file with it, the key's certificate"#
        );
        config.sinks[1].key_file = None;
        config.sinks[1].name = "a".into();
        assert_eq!(
            config.validate().unwrap_err().to_string(),
            r#"sinks[1].name = "a": expected a unique sink name; sinks[0] already has it"#
        );
        config.sinks[1].name = "b".into();
        config.sinks[0].url = String::new();
        assert_eq!(
            config.validate().unwrap_err().to_string(),
            format!("sinks[0].url is missing: {EXPECT_URL}")
        );
    }

    #[test]
    fn a_max_size_body_must_fit_in_flight() {
        let mut config = Config::default();
        config.http_api.max_inflight_bytes = config.http_api.max_body_size - 1;
        assert_eq!(
            config.validate().unwrap_err().to_string(),
            "http_api.max_inflight_bytes = 16777215: expected at least max_body_size (16777216 bytes), or no body that large could be read"
        );
    }

    #[test]
    fn origins_name_the_file_or_variable() {
        let mut s = sink("a");
        s.bearer_token = Some("t".into());
        s.basic_auth = Some(BasicAuth {
            username: "u".into(),
            password: Password::Inline("p".into()),
        });
        let origins = Origins {
            sinks: vec![SectionOrigin {
                file: Some("conf.d/a.conf".into()),
                base: "sinks[2]".into(),
                ..SectionOrigin::default()
            }],
            ..Origins::default()
        };
        let config = Config {
            sinks: vec![s],
            ..Config::default()
        };
        assert_eq!(
            config.validate_from(&origins).unwrap_err().to_string(),
            "conf.d/a.conf: sinks[2].basic_auth = {...}: expected either a bearer token or basic_auth, not both"
        );
        let env = SectionOrigin {
            base: "io".into(),
            env: [(
                "flush_interval".into(),
                ("ENV_IO_FLUSH_INTERVAL".into(), "1s".into()),
            )]
            .into(),
            ..SectionOrigin::default()
        };
        assert_eq!(
            env.place("flush_interval").to_string(),
            "ENV_IO_FLUSH_INTERVAL"
        );
        assert_eq!(env.place("queue_dir").to_string(), "io.queue_dir");
    }
}
