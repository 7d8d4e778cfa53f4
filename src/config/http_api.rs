//! `[http_api]`: where the agent listens and how much it accepts.
//!
//! Imports the config folder's syntax layer only (`keys`, `syntax`).

use serde::{Deserialize, Serialize};

use super::keys::{Key, Section};
use super::syntax;

/// `[http_api]`: where the agent listens and how much it accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpApiConfig {
    /// Address the HTTP API listens on, "host:port" (IPv6 in brackets);
    /// ":9529" (no host, as in Go) listens on every interface.
    /// Default: `"localhost:9529"`. ENV: `ENV_HTTP_LISTEN`.
    #[serde(with = "syntax::listen")]
    pub listen: String,
    /// Largest request body accepted as received (compressed or not), in
    /// bytes. Default: `"16MiB"`. ENV: `ENV_HTTP_MAX_BODY_SIZE`.
    #[serde(with = "syntax::size")]
    pub max_body_size: u64,
    /// Largest request body after decompression, in bytes (guards against
    /// zip bombs). Default: `"64MiB"`. ENV: `ENV_HTTP_MAX_DECOMPRESSED_SIZE`.
    #[serde(with = "syntax::size")]
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

impl HttpApiConfig {
    /// The addresses to bind, in order of preference: `listen` as
    /// written, or for ":port" every interface, IPv6 and IPv4 on one
    /// socket where the system allows it, else IPv4 alone.
    pub fn bind_addresses(&self) -> Vec<String> {
        match self.listen.strip_prefix(':') {
            Some(port) => vec![format!("[::]:{port}"), format!("0.0.0.0:{port}")],
            None => vec![self.listen.clone()],
        }
    }
}

impl Section for HttpApiConfig {
    const PATH: &'static str = "http_api";
    const ENV_PREFIX: Option<&'static str> = Some("ENV_HTTP_");
    const KEYS: &'static [Key] = &[
        Key::new(
            "listen",
            "address the HTTP API listens on, host:port; \":9529\" (no host, as in Go and DataKit) is every interface",
        ),
        Key::new(
            "max_body_size",
            "largest request body accepted, as received",
        ),
        Key::new(
            "max_decompressed_size",
            "largest request body after decompression",
        ),
    ];
}
