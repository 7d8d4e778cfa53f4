//! `[http_api.tls]`: HTTPS on the listener, with DataKit's key names
//! (`cert`, `privkey`) and ENV variables (`ENV_HTTP_TLS_CRT`,
//! `ENV_HTTP_TLS_KEY`, `ENV_HTTP_ENABLE_TLS`).
//!
//! Only paths are kept here: the files are read at start and reread when
//! they change (`crate::http::tls`), because Kubernetes rotates them.
//!
//! Imports the config folder's syntax layer only (`keys`, `syntax`).

use serde::{Deserialize, Serialize};

use super::keys::{Key, Section};
use super::syntax::{self, Choice};

/// The oldest TLS version the listener takes. rustls has no 1.0 or 1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersion {
    #[default]
    Tls12,
    Tls13,
}

impl Choice for TlsVersion {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("1.2", TlsVersion::Tls12), ("1.3", TlsVersion::Tls13)];
}

/// `[http_api.tls]`: HTTPS on the listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// DataKit's switch. Unset: HTTPS when `cert` and `privkey` are set;
    /// `false` serves plain HTTP even then; `true` requires both.
    /// Default: `unset`. ENV: `ENV_HTTP_ENABLE_TLS`.
    #[serde(with = "syntax::opt_flag", skip_serializing_if = "Option::is_none")]
    pub enable: Option<bool>,
    /// PEM file of the server certificate, its chain after it.
    /// Default: `unset`. ENV: `ENV_HTTP_TLS_CRT`.
    #[serde(with = "syntax::opt_text", skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    /// PEM file of the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    /// Default: `unset`. ENV: `ENV_HTTP_TLS_KEY`.
    #[serde(with = "syntax::opt_text", skip_serializing_if = "Option::is_none")]
    pub privkey: Option<String>,
    /// PEM file of the CAs that sign client certificates: when set, every
    /// client must present one (mutual TLS).
    /// Default: `unset`. ENV: `ENV_HTTP_TLS_CLIENT_CA`.
    #[serde(with = "syntax::opt_text", skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<String>,
    /// The oldest TLS version accepted, "1.2" or "1.3".
    /// Default: `"1.2"`. ENV: `ENV_HTTP_TLS_MIN_VERSION`.
    #[serde(with = "syntax::choice")]
    pub min_version: TlsVersion,
}

impl TlsConfig {
    /// Whether the listener serves HTTPS.
    pub fn is_on(&self) -> bool {
        self.enable
            .unwrap_or(self.cert.is_some() && self.privkey.is_some())
    }
}

impl Section for TlsConfig {
    const PATH: &'static str = "http_api.tls";
    const ENV_PREFIX: Option<&'static str> = Some("ENV_HTTP_TLS_");
    const KEYS: &'static [Key] = &[
        Key::new(
            "enable",
            "DataKit's switch: unset serves HTTPS when cert and privkey are set; false never; true requires them",
        )
        .bool()
        .env("ENV_HTTP_ENABLE_TLS"),
        Key::new("cert", "PEM file of the server certificate and its chain")
            .env("ENV_HTTP_TLS_CRT"),
        Key::new("privkey", "PEM file of the certificate's private key").env("ENV_HTTP_TLS_KEY"),
        Key::new(
            "client_ca",
            "PEM file of the CAs of client certificates; set, every client needs one (mTLS)",
        ),
        Key::new("min_version", "oldest TLS version accepted, \"1.2\" or \"1.3\""),
    ];

    fn applies(&self, name: &str) -> bool {
        name == "enable" || self.is_on()
    }
}
