//! Rendering the effective config as TOML, for `pushkit check`.
//!
//! Every key is written, defaults included, in the same syntax the loader
//! reads (Go durations, "16MiB" sizes), so the output loads back to the
//! same `Config`; each section's serde `Serialize` gives the values, and
//! `Section::KEYS` their order. Secrets come out as "REDACTED" and sink
//! URLs redacted: the output is meant to be shown.
//!
//! The top of the config folder with `reference`: nothing imports it.

use std::fmt::Write as _;

use super::inputs::{each_input, Input, InputVisitor};
use super::keys::Section;
use super::tree::Config;
use super::value::quote;

impl Config {
    /// The effective configuration as TOML: all sections and keys, with
    /// secrets replaced by "REDACTED".
    pub fn to_toml(&self) -> String {
        let mut out = String::from(
            "# Effective pushkit configuration: built-in defaults < conf.d files < ENV.\n",
        );
        render_table(&mut out, "[http_api]", &self.http_api);
        // The sub-tables appear only when they do something, so that a
        // default config reads as short as it is.
        let tls = &self.http_api.tls;
        if tls.is_on() || tls.enable.is_some() {
            render_table(&mut out, "[http_api.tls]", tls);
        }
        if self.http_api.auth.is_on() {
            render_table(&mut out, "[http_api.auth]", &self.http_api.auth);
        }
        render_table(&mut out, "[io]", &self.io);
        if self.sinks.is_empty() {
            out.push_str("\n# No [[sinks]]: points are written to stdout as line protocol.\n");
        }
        for sink in &self.sinks {
            render_table(&mut out, "[[sinks]]", sink);
        }
        struct Inputs<'a> {
            config: &'a Config,
            out: &'a mut String,
            any: bool,
        }
        impl InputVisitor for Inputs<'_> {
            fn visit<I: Input>(&mut self) {
                if let Some(input) = I::get(self.config) {
                    render_table(self.out, &format!("[[{}]]", I::PATH), input);
                    self.any = true;
                }
            }
        }
        let mut inputs = Inputs {
            config: self,
            out: &mut out,
            any: false,
        };
        each_input(&mut inputs);
        if !inputs.any {
            out.push_str("\n# No inputs enabled.\n");
        }
        out
    }
}

/// Appends a blank line, the header and one `key = value` line per key
/// (keys whose value is unset, or that do not apply, are left out).
fn render_table<S: Section>(out: &mut String, header: &str, section: &S) {
    let _ = writeln!(out, "\n{header}");
    for (name, value) in shown(section) {
        let _ = writeln!(out, "{name} = {}", toml_text(&value));
    }
}

/// A section's keys as `pushkit check` shows them: set and applying, in
/// the order of its keys.
fn shown<S: Section>(section: &S) -> Vec<(&'static str, toml::Value)> {
    let mut values = values(section);
    S::KEYS
        .iter()
        .filter(|key| section.applies(key.name))
        .filter_map(|key| Some((key.name, values.remove(key.name)?)))
        .collect()
}

impl Config {
    /// The effective options of `[http_api]`, `[io]` and each input, as
    /// `pushkit check` shows them (`"0s"`, not `0ns`; secrets redacted),
    /// keyed by dotted path (`inputs.pushgateway.group_ttl`): the `flags`
    /// of `GET /api/v1/status`. Strings are given without their quotes.
    pub fn flags(&self) -> Vec<(String, String)> {
        fn add<S: Section>(out: &mut Vec<(String, String)>, section: &S) {
            for (name, value) in shown(section) {
                let text = match &value {
                    toml::Value::String(s) => s.clone(),
                    other => toml_text(other),
                };
                out.push((format!("{}.{name}", S::PATH), text));
            }
        }
        struct Inputs<'a> {
            config: &'a Config,
            out: &'a mut Vec<(String, String)>,
        }
        impl InputVisitor for Inputs<'_> {
            fn visit<I: Input>(&mut self) {
                if let Some(input) = I::get(self.config) {
                    add(self.out, input);
                }
            }
        }
        let mut out = Vec::new();
        add(&mut out, &self.http_api);
        add(&mut out, &self.http_api.tls);
        add(&mut out, &self.http_api.auth);
        add(&mut out, &self.io);
        each_input(&mut Inputs {
            config: self,
            out: &mut out,
        });
        out
    }
}

/// A section's values as TOML, as its `Serialize` writes them: unset
/// optional values are absent.
pub(crate) fn values<S: Section>(section: &S) -> toml::Table {
    match toml::Value::try_from(section) {
        Ok(toml::Value::Table(t)) => t,
        // Every section is a struct of strings, integers, booleans and
        // string tables, which TOML always holds.
        other => panic!("{} does not serialize to a TOML table: {other:?}", S::PATH),
    }
}

/// A value as TOML text, on one line (tables inline, keys quoted).
pub(crate) fn toml_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => quote(s),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(items) => {
            let items: Vec<String> = items.iter().map(toml_text).collect();
            format!("[{}]", items.join(", "))
        }
        toml::Value::Table(t) => {
            let pairs: Vec<String> = t
                .iter()
                .map(|(k, v)| format!("{} = {}", quote(k), toml_text(v)))
                .collect();
            format!("{{ {} }}", pairs.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        load, BasicAuth, Format, HttpApiConfig, IoConfig, Overflow, Password, PushgatewayConfig,
        SinkConfig,
    };
    use std::time::Duration;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn reload(config: &Config) -> Config {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("effective.conf"), config.to_toml()).unwrap();
        load(dir.path(), &no_env).unwrap().config
    }

    #[test]
    fn only_options_that_apply_are_shown() {
        let config = Config {
            sinks: vec![
                SinkConfig {
                    name: "rw".into(),
                    url: "http://h/api/v1/write?db=x".into(),
                    format: Format::RemoteWrite,
                    ..SinkConfig::default()
                },
                SinkConfig {
                    name: "lp".into(),
                    url: "http://h/write".into(),
                    ..SinkConfig::default()
                },
            ],
            ..Config::default()
        };
        let text = config.to_toml();
        let (rw, lp) = text.split_once("name = \"lp\"").unwrap();
        assert!(!rw.contains("gzip") && !rw.contains("lp_dialect"), "{text}");
        assert!(lp.contains("gzip = true") && lp.contains("lp_dialect = \"influxdb\""));
        assert_eq!(reload(&config), config, "what is left out is the default");
    }

    #[test]
    fn defaults_render_and_load_back() {
        let config = Config::default();
        let text = config.to_toml();
        assert!(text.contains("\n[http_api]\nlisten = \"localhost:9529\"\nmax_body_size = \"16MiB\"\nmax_decompressed_size = \"64MiB\"\n"), "{text}");
        assert!(text.contains("\n[io]\nmax_cache_count = 1000\nflush_interval = \"10s\"\nshutdown_timeout = \"20s\"\n"), "{text}");
        assert!(text.contains("No [[sinks]]"), "{text}");
        assert!(!text.contains("[[inputs."), "{text}");
        assert_eq!(reload(&config), config);
    }

    #[test]
    fn full_config_renders_and_loads_back() {
        let config = Config {
            http_api: HttpApiConfig {
                listen: "[::1]:1234".into(),
                listen_socket: Some("/run/pushkit/pushkit.sock".into()),
                max_body_size: 1000,
                max_decompressed_size: 3 << 30,
                read_header_timeout: Duration::from_secs(3),
                timeout: Some(Duration::from_secs(30)),
                close_idle_connection: true,
                max_connections: 50,
                request_rate_limit: 2.5,
                request_rate_limit_burst: 10,
                trusted_proxies: vec![
                    crate::config::value::parse_cidr("10.0.0.0/8").unwrap(),
                    crate::config::value::parse_cidr("::1").unwrap(),
                ],
                tls: crate::config::TlsConfig {
                    cert: Some("/tls/tls.crt".into()),
                    privkey: Some("/tls/tls.key".into()),
                    client_ca: Some("/tls/ca.crt".into()),
                    min_version: crate::config::TlsVersion::Tls13,
                    ..Default::default()
                },
                auth: crate::config::AuthConfig {
                    bearer_tokens_file: Some("/auth/tokens".into()),
                    routes: vec![crate::config::RouteClass::Push],
                    ..Default::default()
                },
                ..HttpApiConfig::default()
            },
            io: IoConfig {
                max_cache_count: 7,
                flush_interval: Duration::from_millis(1500),
                shutdown_timeout: Duration::ZERO,
                queue_dir: Some("/var/lib/pushkit/queue".into()),
            },
            sinks: vec![
                SinkConfig {
                    name: "vm".into(),
                    url: "http://127.0.0.1:8428/write".into(),
                    // Not shown for remote write (it does not apply), so left at
                    // its default for the round trip.
                    gzip: true,
                    timeout: Duration::from_secs(90),
                    max_queue_bytes: 1000,
                    overflow: Overflow::DropOldest,
                    format: Format::RemoteWrite,
                    basic_auth: Some(BasicAuth {
                        username: "u".into(),
                        password: Password::File("/run/secrets/pw".into()),
                    }),
                    tls_insecure_skip_verify: true,
                    ..SinkConfig::default()
                },
                SinkConfig {
                    name: "say \"hi\"".into(),
                    url: "https://h/x".into(),
                    gzip: true,
                    timeout: Duration::from_secs(3600),
                    ..SinkConfig::default()
                },
            ],
            pushgateway: Some(PushgatewayConfig {
                route_prefix: "/v1/pushgateway".into(),
                measurement_name: Some("pg".into()),
                job_as_measurement: true,
                keep_exist_metric_name: false,
                honor_timestamps: false,
                group_ttl: Duration::from_secs(90),
                ..PushgatewayConfig::default()
            }),
        };
        let text = config.to_toml();
        assert!(text.contains("flush_interval = \"1.5s\""), "{text}");
        assert!(text.contains("shutdown_timeout = \"0s\""), "{text}");
        assert!(text.contains("timeout = \"1m30s\""), "{text}");
        assert!(text.contains("timeout = \"1h0m0s\""), "{text}");
        assert!(text.contains("group_ttl = \"1m30s\""), "{text}");
        assert!(text.contains("max_body_size = 1000\n"), "{text}");
        assert!(text.contains("max_decompressed_size = \"3GiB\""), "{text}");
        assert!(text.contains("request_rate_limit = 2.5\n"), "{text}");
        assert!(
            text.contains("trusted_proxies = [\"10.0.0.0/8\", \"::1/128\"]\n"),
            "{text}"
        );
        assert!(
            text.contains("\n[http_api.tls]\ncert = \"/tls/tls.crt\"\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "\n[http_api.auth]\nbearer_tokens_file = \"/auth/tokens\"\nroutes = [\"push\"]\n"
            ),
            "{text}"
        );
        assert!(text.contains("[[inputs.pushgateway]]\nroute_prefix = \"/v1/pushgateway\"\nmeasurement_name = \"pg\"\n"), "{text}");
        assert_eq!(reload(&config), config);

        let mut unset = config.clone();
        unset.pushgateway.as_mut().unwrap().measurement_name = None;
        assert!(!unset.to_toml().contains("measurement_name"));
        assert_eq!(reload(&unset), unset);
    }

    #[test]
    fn secrets_are_never_shown() {
        let sink = |name: &str| SinkConfig {
            name: name.into(),
            url: "http://127.0.0.1:8086/api/v2/write?token=url-s3cret".into(),
            ..SinkConfig::default()
        };
        let config = Config {
            sinks: vec![
                SinkConfig {
                    headers: [("Authorization".into(), "Token hdr-s3cret".into())].into(),
                    ..sink("influx")
                },
                SinkConfig {
                    basic_auth: Some(BasicAuth {
                        username: "u".into(),
                        password: Password::Inline("pw-s3cret".into()),
                    }),
                    ..sink("basic")
                },
                SinkConfig {
                    bearer_token: Some("tok-s3cret".into()),
                    ..sink("bearer")
                },
            ],
            ..Config::default()
        };
        let text = config.to_toml();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(
            text.contains("headers = { \"Authorization\" = \"REDACTED\" }"),
            "{text}"
        );
        assert!(
            text.contains("basic_auth = { \"password\" = \"REDACTED\", \"username\" = \"u\" }"),
            "{text}"
        );
        assert!(text.contains("bearer_token = \"REDACTED\""), "{text}");
        // What is shown still loads.
        let back = reload(&config);
        assert_eq!(back.sinks[2].bearer_token.as_deref(), Some("REDACTED"));
        assert_eq!(
            back.sinks[1].basic_auth.as_ref().unwrap().password,
            Password::Inline("REDACTED".into())
        );
    }

    #[test]
    fn secrets_are_redacted() {
        let mut config = Config::default();
        config.sinks.push(SinkConfig {
            name: "dw".into(),
            url: "https://u:pw@openway.example/v1/write/metric?token=tkn_x".into(),
            gzip: true,
            timeout: Duration::from_secs(30),
            ..SinkConfig::default()
        });
        let text = config.to_toml();
        assert!(!text.contains("tkn_x") && !text.contains("pw@"), "{text}");
        assert!(
            text.contains(
                "url = \"https://u:REDACTED@openway.example/v1/write/metric?token=REDACTED\""
            ),
            "{text}"
        );
        // It still loads; only the secrets differ.
        let back = reload(&config);
        assert_eq!(
            back.sinks[0].url,
            crate::config::redact_url(&config.sinks[0].url)
        );
    }
}
