//! `[[sinks]]`: one HTTP endpoint that receives points, with the rules
//! between its keys (one way to authenticate, a certificate with its key).
//!
//! The rules are methods of `SinkConfig` that return the typed view the
//! sink needs (`auth`, `client_cert`), so `Config::validate` and the sink's
//! HTTP client builder apply the same code: `pushkit check` refuses what
//! the agent would refuse at start.
//!
//! Imports the config folder's syntax layer only (`keys`, `syntax`,
//! `value`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::keys::{Key, Section, Show, ENV_DATAWAY};
use super::syntax::{self, Choice};
use super::value::{format_duration, quote, REDACTED};

// The `http` crate's header rules, as the client applies them; without
// the network stack, the same crate through warp.
#[cfg(feature = "net")]
use reqwest::header as http_header;
#[cfg(not(feature = "net"))]
use warp::http::header as http_header;

/// What a sink does when a push does not fit in its queue's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// The push waits up to 1 s for room, then is refused (503).
    #[default]
    Block,
    /// The oldest queued points are dropped to make room, counted.
    DropOldest,
}

impl Choice for Overflow {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("block", Overflow::Block),
        ("drop_oldest", Overflow::DropOldest),
    ];
}

/// A sink's wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// InfluxDB line protocol.
    #[default]
    LineProtocol,
    /// Prometheus remote write 1.0.
    RemoteWrite,
}

impl Choice for Format {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("line-protocol", Format::LineProtocol),
        ("remote-write", Format::RemoteWrite),
    ];
}

/// How a line-protocol sink's backend reads backslashes (`lineproto`'s
/// dialects).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LpDialect {
    /// InfluxDB 1.x, and DataKit's Dataway.
    #[default]
    InfluxDb,
    /// VictoriaMetrics.
    VictoriaMetrics,
}

impl Choice for LpDialect {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("influxdb", LpDialect::InfluxDb),
        ("victoriametrics", LpDialect::VictoriaMetrics),
    ];
}

/// `basic_auth = { username = "...", password = "..." }`, or with
/// `password_file` instead of `password`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicAuth {
    pub username: String,
    pub password: Password,
}

/// Where a basic-auth password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Password {
    /// Written in the config; never shown.
    Inline(String),
    /// A file read at start, without its trailing newline.
    File(String),
}

/// How a sink authenticates: the one method its config sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth<'a> {
    Bearer(&'a str),
    /// A file holding the token, read at start.
    BearerFile(&'a str),
    Basic(&'a BasicAuth),
}

/// A sink's client certificate and its private key, PEM files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCert<'a> {
    pub cert_file: &'a str,
    pub key_file: &'a str,
}

/// A value of one sink that breaks a rule; `key` (with `sub`, a header's
/// name) says where, relative to the sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub key: &'static str,
    pub sub: Option<String>,
    /// Shown as read, secrets redacted.
    pub value: String,
    /// Starts with "expected".
    pub expected: String,
}

impl Violation {
    /// "headers" or `headers."X-Name"`.
    pub fn dotted_key(&self) -> String {
        match &self.sub {
            Some(sub) => format!("{}.{sub}", self.key),
            None => self.key.to_string(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} = {}: {}",
            self.dotted_key(),
            self.value,
            self.expected
        )
    }
}

impl std::error::Error for Violation {}

/// `[[sinks]]`: one HTTP endpoint that receives points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkConfig {
    /// Name in logs; unique among sinks.
    /// Default: `sink0, sink1, ... in order` (by position). ENV: none.
    #[serde(with = "syntax::name")]
    pub name: String,
    /// The http(s) URL points are POSTed to, query included.
    /// Default: `required`. ENV: `ENV_DATAWAY` (replaces all [[sinks]]).
    #[serde(with = "syntax::http_url")]
    pub url: String,
    /// Gzip request bodies. Default: `true`. ENV: none.
    #[serde(with = "syntax::flag")]
    pub gzip: bool,
    /// Timeout of one write request; above zero.
    /// Default: `"30s"`. ENV: none.
    #[serde(with = "syntax::nonzero_duration")]
    pub timeout: Duration,
    /// Memory budget of the sink's queue, in line-protocol bytes.
    /// Default: `"256MiB"`. ENV: none.
    #[serde(with = "syntax::size")]
    pub max_queue_bytes: u64,
    /// When the queue is full: `block` refuses pushes with 503 and
    /// Retry-After; `drop_oldest` drops the oldest points, counted.
    /// Default: `"block"`. ENV: none.
    #[serde(with = "syntax::choice")]
    pub overflow: Overflow,
    /// `line-protocol`, or `remote-write` (Prometheus remote write 1.0).
    /// Default: `"line-protocol"`. ENV: none.
    #[serde(with = "syntax::choice")]
    pub format: Format,
    /// How the backend reads backslashes in line protocol: `influxdb`
    /// (InfluxDB 1.x, DataKit's Dataway) or `victoriametrics`. Ignored by
    /// remote write. Default: `"influxdb"`. ENV: none.
    #[serde(with = "syntax::choice")]
    pub lp_dialect: LpDialect,
    /// Disk budget of this sink's share of the queue, with `[io] queue_dir`.
    /// Default: `"1GiB"`. ENV: none.
    #[serde(with = "syntax::size")]
    pub max_disk_bytes: u64,
    /// First retry delay; doubles up to `retry_max`, ±25 % jitter.
    /// Default: `"500ms"`. ENV: none.
    #[serde(with = "syntax::nonzero_duration")]
    pub retry_base: Duration,
    /// Longest retry delay.
    /// Default: `"30s"`. ENV: none.
    #[serde(with = "syntax::nonzero_duration")]
    pub retry_max: Duration,
    /// Send the whole store this often (every stored series, and each
    /// group's push times, stamped with the export time); 0 is off.
    /// Default: `"0s"`. ENV: none.
    #[serde(with = "syntax::duration")]
    pub export_interval: Duration,
    /// Extra request headers; values are secrets, never shown.
    /// Default: `{}`. ENV: none.
    #[serde(with = "syntax::headers", skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Sent as `Authorization: Bearer <token>`; never shown.
    /// Default: `unset`. ENV: none.
    #[serde(with = "syntax::secret", skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<String>,
    /// File holding the bearer token, read at start.
    /// Default: `unset`. ENV: none.
    #[serde(with = "syntax::opt_text", skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<String>,
    /// `username` and `password` or `password_file`.
    /// Default: `unset`. ENV: none.
    #[serde(with = "basic_auth", skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// PEM CA certificates trusted instead of the system's.
    /// Default: `unset`. ENV: none.
    #[serde(with = "syntax::opt_text", skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// PEM client certificate, with `key_file`.
    /// Default: `unset`. ENV: none.
    #[serde(with = "syntax::opt_text", skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    /// PEM private key of `cert_file`.
    /// Default: `unset`. ENV: none.
    #[serde(with = "syntax::opt_text", skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    /// Do not verify the server's certificate.
    /// Default: `false`. ENV: none.
    #[serde(with = "syntax::flag")]
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
            overflow: Overflow::Block,
            format: Format::LineProtocol,
            lp_dialect: LpDialect::InfluxDb,
            max_disk_bytes: 1 << 30,
            retry_base: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
            export_interval: Duration::ZERO,
            headers: BTreeMap::new(),
            bearer_token: None,
            bearer_token_file: None,
            basic_auth: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            tls_insecure_skip_verify: false,
        }
    }
}

impl Section for SinkConfig {
    /// Remote write has its own compression and no line protocol.
    fn applies(&self, name: &str) -> bool {
        !(self.format == Format::RemoteWrite && matches!(name, "gzip" | "lp_dialect"))
    }

    const PATH: &'static str = "sinks";
    const ENV_PREFIX: Option<&'static str> = None;
    const KEYS: &'static [Key] = &[
        Key::new("name", "sink name in logs; must be unique")
            .default_doc("sink0, sink1, ... in order"),
        Key::new("url", "http(s) URL points are POSTed to")
            .show(Show::Url)
            .default_doc("required")
            .env_doc(ENV_DATAWAY),
        Key::new("gzip", "gzip request bodies"),
        Key::new("timeout", "timeout of one write request"),
        Key::new(
            "max_queue_bytes",
            "memory budget of the sink's queue, in line-protocol bytes",
        ),
        Key::new(
            "overflow",
            "when the queue is full: block (a push waits up to 1 s for room, then gets 503) or drop_oldest",
        ),
        Key::new(
            "format",
            "line-protocol, or remote-write (Prometheus remote write 1.0)",
        ),
        Key::new(
            "lp_dialect",
            "how the backend reads backslashes in line protocol: influxdb (InfluxDB 1.x, DataKit's Dataway) or victoriametrics; ignored by remote write",
        ),
        Key::new(
            "max_disk_bytes",
            "disk budget of the sink's share of the queue (with [io] queue_dir)",
        ),
        Key::new(
            "retry_base",
            "first retry delay; doubles up to retry_max, with jitter",
        ),
        Key::new("retry_max", "longest retry delay"),
        Key::new(
            "export_interval",
            "send the whole store this often: every stored series and each group's push times, stamped with the export time (0s: off; needs store = true)",
        ),
        Key::new(
            "headers",
            "extra request headers, e.g. { Authorization = \"Token ...\" }; values never shown",
        )
        .default_doc("{}"),
        Key::new("bearer_token", "sent as Authorization: Bearer; never shown").show(Show::Secret),
        Key::new(
            "bearer_token_file",
            "file holding the bearer token, read at start",
        ),
        Key::new(
            "basic_auth",
            "{ username = \"...\", password_file = \"...\" } (or password); never shown",
        ),
        Key::new(
            "ca_file",
            "PEM CA certificates to trust instead of the system's",
        ),
        Key::new("cert_file", "PEM client certificate (with key_file)"),
        Key::new("key_file", "PEM private key of cert_file"),
        Key::new(
            "tls_insecure_skip_verify",
            "do not verify the server's certificate",
        ),
    ];
}

impl SinkConfig {
    /// The one way the sink authenticates, if any. Refuses two methods at
    /// once, an inline token that cannot be sent in a header, and an
    /// `Authorization` header beside a method.
    pub fn auth(&self) -> Result<Option<Auth<'_>>, Violation> {
        let token = match (&self.bearer_token, &self.bearer_token_file) {
            (Some(_), Some(path)) => {
                return Err(Violation {
                    key: "bearer_token_file",
                    sub: None,
                    value: quote(path),
                    expected: "expected either bearer_token or bearer_token_file, not both".into(),
                })
            }
            (Some(token), None) => {
                if !is_header_value(&format!("Bearer {token}")) {
                    return Err(Violation {
                        key: "bearer_token",
                        sub: None,
                        value: quote(REDACTED),
                        expected: EXPECT_HEADER_VALUE.into(),
                    });
                }
                Some(Auth::Bearer(token))
            }
            (None, Some(path)) => Some(Auth::BearerFile(path)),
            (None, None) => None,
        };
        let auth = match (token, &self.basic_auth) {
            (Some(_), Some(_)) => {
                return Err(Violation {
                    key: "basic_auth",
                    sub: None,
                    value: "{...}".into(),
                    expected: "expected either a bearer token or basic_auth, not both".into(),
                })
            }
            (Some(token), None) => Some(token),
            (None, Some(basic)) => Some(Auth::Basic(basic)),
            (None, None) => None,
        };
        let authorization = self
            .headers
            .keys()
            .any(|h| h.eq_ignore_ascii_case("authorization"));
        if auth.is_some() && authorization {
            return Err(Violation {
                key: "headers",
                sub: None,
                value: "{...}".into(),
                expected: "expected no Authorization header when bearer_token, bearer_token_file or basic_auth is set".into(),
            });
        }
        Ok(auth)
    }

    /// The client certificate and its key: both or neither.
    pub fn client_cert(&self) -> Result<Option<ClientCert<'_>>, Violation> {
        match (&self.cert_file, &self.key_file) {
            (Some(cert_file), Some(key_file)) => Ok(Some(ClientCert {
                cert_file,
                key_file,
            })),
            (Some(cert), None) => Err(Violation {
                key: "cert_file",
                sub: None,
                value: quote(cert),
                expected: "expected key_file with it, the certificate's private key".into(),
            }),
            (None, Some(key)) => Err(Violation {
                key: "key_file",
                sub: None,
                value: quote(key),
                expected: "expected cert_file with it, the key's certificate".into(),
            }),
            (None, None) => Ok(None),
        }
    }

    /// Header names and values that HTTP can carry.
    pub fn check_headers(&self) -> Result<(), Violation> {
        for (name, value) in &self.headers {
            let sub = Some(quote(name));
            if http_header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(Violation {
                    key: "headers",
                    sub,
                    value: quote(REDACTED),
                    expected: "expected a header name of letters, digits and !#$%&'*+-.^_`|~ only"
                        .into(),
                });
            }
            if !is_header_value(value) {
                return Err(Violation {
                    key: "headers",
                    sub,
                    value: quote(REDACTED),
                    expected: EXPECT_HEADER_VALUE.into(),
                });
            }
        }
        Ok(())
    }

    /// Every rule between this sink's keys (not `url`'s presence, which
    /// `Config::validate` reports as missing).
    pub fn check(&self) -> Result<(), Violation> {
        self.check_headers()?;
        self.auth()?;
        self.client_cert()?;
        if !self.export_interval.is_zero() && self.export_interval < MIN_EXPORT_INTERVAL {
            return Err(Violation {
                key: "export_interval",
                sub: None,
                value: quote(&format_duration(self.export_interval)),
                expected: "expected 0s (off) or at least 1s".into(),
            });
        }
        Ok(())
    }
}

/// The shortest `export_interval`: a whole store each second is already
/// more than any TSDB needs.
const MIN_EXPORT_INTERVAL: Duration = Duration::from_secs(1);

const EXPECT_HEADER_VALUE: &str =
    "expected visible ASCII characters, spaces and tabs only (it is sent in a header)";

fn is_header_value(v: &str) -> bool {
    http_header::HeaderValue::from_str(v).is_ok()
}

const EXPECT_BASIC_AUTH: &str =
    "expected a TOML table with username and one of password, password_file";

/// Serde glue for `basic_auth`.
mod basic_auth {
    use super::*;
    use serde::ser::SerializeMap;
    use serde::{Deserializer, Serializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<BasicAuth>, D::Error> {
        syntax::read(d, |v| {
            let toml::Value::Table(t) = v else {
                return Err(EXPECT_BASIC_AUTH);
            };
            let mut fields: BTreeMap<String, String> = BTreeMap::new();
            for (k, v) in t {
                match (k.as_str(), v) {
                    ("username" | "password" | "password_file", toml::Value::String(s)) => {
                        fields.insert(k, s);
                    }
                    _ => return Err(EXPECT_BASIC_AUTH),
                }
            }
            let password = match (fields.remove("password"), fields.remove("password_file")) {
                (Some(p), None) => Password::Inline(p),
                (None, Some(path)) => Password::File(path),
                _ => return Err(EXPECT_BASIC_AUTH),
            };
            let username = fields.remove("username").ok_or(EXPECT_BASIC_AUTH)?;
            Ok(Some(BasicAuth { username, password }))
        })
    }

    /// The username and the password file are shown; a password is not.
    pub(super) fn serialize<S: Serializer>(v: &Option<BasicAuth>, s: S) -> Result<S::Ok, S::Error> {
        let Some(auth) = v else {
            return s.serialize_none();
        };
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("username", &auth.username)?;
        match &auth.password {
            Password::Inline(_) => map.serialize_entry("password", REDACTED)?,
            Password::File(path) => map.serialize_entry("password_file", path)?,
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::de::from_table;

    fn sink(text: &str) -> SinkConfig {
        from_table(&text.parse::<toml::Table>().unwrap()).unwrap()
    }

    #[test]
    fn enums_and_basic_auth_are_typed() {
        let s = sink(
            "url = \"http://h/w\"\noverflow = \"drop_oldest\"\nformat = \"remote-write\"\n\
             basic_auth = { username = \"u\", password_file = \"/pw\" }\n",
        );
        assert_eq!(s.overflow, Overflow::DropOldest);
        assert_eq!(s.format, Format::RemoteWrite);
        assert_eq!(
            s.basic_auth,
            Some(BasicAuth {
                username: "u".into(),
                password: Password::File("/pw".into()),
            })
        );
        for bad in [
            "{ username = \"u\" }",
            "{ password = \"p\" }",
            "{ username = \"u\", password = \"p\", password_file = \"f\" }",
            "{ username = \"u\", password = 1 }",
            "{ username = \"u\", password = \"p\", realm = \"r\" }",
            "\"u:p\"",
        ] {
            let table: toml::Table = format!("basic_auth = {bad}").parse().unwrap();
            let err = from_table::<SinkConfig>(&table).unwrap_err();
            assert_eq!(
                err.kind,
                crate::config::de::DeErrorKind::Expected(EXPECT_BASIC_AUTH.into()),
                "{bad}"
            );
        }
    }

    fn with(f: impl FnOnce(&mut SinkConfig)) -> SinkConfig {
        let mut s = SinkConfig {
            name: "s".into(),
            url: "http://h/w".into(),
            ..SinkConfig::default()
        };
        f(&mut s);
        s
    }

    #[test]
    fn one_auth_method() {
        assert_eq!(with(|_| {}).auth(), Ok(None));
        let s = with(|s| s.bearer_token = Some("t".into()));
        assert_eq!(s.auth(), Ok(Some(Auth::Bearer("t"))));
        let s = with(|s| {
            s.bearer_token = Some("t".into());
            s.bearer_token_file = Some("/t".into());
        });
        assert_eq!(
            s.auth().unwrap_err().to_string(),
            r#"bearer_token_file = "/t": expected either bearer_token or bearer_token_file, not both"#
        );
        let s = with(|s| {
            s.bearer_token_file = Some("/t".into());
            s.basic_auth = Some(BasicAuth {
                username: "u".into(),
                password: Password::Inline("p".into()),
            });
        });
        assert_eq!(s.auth().unwrap_err().key, "basic_auth");
        let s = with(|s| {
            s.bearer_token = Some("t".into());
            s.headers = [("authorization".into(), "x".into())].into();
        });
        assert_eq!(s.auth().unwrap_err().key, "headers");
        let s = with(|s| s.bearer_token = Some("t\n".into()));
        let e = s.auth().unwrap_err();
        assert_eq!(e.key, "bearer_token");
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn certificate_with_its_key() {
        let s = with(|s| s.cert_file = Some("/c.pem".into()));
        assert_eq!(
            s.client_cert().unwrap_err().to_string(),
            r#"cert_file = "/c.pem": expected key_file with it, the certificate's private key"#
        );
        let s = with(|s| s.key_file = Some("/k.pem".into()));
        assert_eq!(s.client_cert().unwrap_err().key, "key_file");
        let s = with(|s| {
            s.cert_file = Some("/c.pem".into());
            s.key_file = Some("/k.pem".into());
        });
        assert!(s.check().is_ok());
    }

    #[test]
    fn header_names_and_values() {
        let s = with(|s| s.headers = [("Bad Name".into(), "v".into())].into());
        assert_eq!(
            s.check().unwrap_err().to_string(),
            r#"headers."Bad Name" = "REDACTED": expected a header name of letters, digits and !#$%&'*+-.^_`|~ only"#
        );
        let s = with(|s| s.headers = [("X-A".into(), "secret\n".into())].into());
        let e = s.check().unwrap_err().to_string();
        assert!(
            e.starts_with(r#"headers."X-A" = "REDACTED": expected visible"#),
            "{e}"
        );
        assert!(!e.contains("secret"));
    }
}
