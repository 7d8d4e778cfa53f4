//! `[http_api]`: where the agent listens, how much it accepts, and how
//! long and how often a client may hold it.
//!
//! Imports the config folder's syntax layer only (`keys`, `syntax`,
//! `value`) and the two sub-tables below it (`http_tls`, `http_auth`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::http_auth::AuthConfig;
use super::http_tls::TlsConfig;
use super::keys::{Key, Section};
use super::syntax;
use super::value::Cidr;

/// `[http_api]`: where the agent listens and how much it accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpApiConfig {
    /// Address the HTTP API listens on, "host:port" (IPv6 in brackets);
    /// ":9529" (no host, as in Go) listens on every interface.
    /// Default: `"localhost:9529"`. ENV: `ENV_HTTP_LISTEN`.
    #[serde(with = "syntax::listen")]
    pub listen: String,
    /// Also serve on this Unix socket (mode 0660), for sidecars that share
    /// a volume; unset serves TCP only.
    /// Default: `unset`. ENV: `ENV_HTTP_LISTEN_SOCKET`.
    #[serde(with = "syntax::opt_text", skip_serializing_if = "Option::is_none")]
    pub listen_socket: Option<String>,
    /// Largest request body accepted as received (compressed or not), in
    /// bytes. Default: `"16MiB"`. ENV: `ENV_HTTP_MAX_BODY_SIZE`.
    #[serde(with = "syntax::size")]
    pub max_body_size: u64,
    /// Largest request body after decompression, in bytes (guards against
    /// zip bombs). Default: `"64MiB"`. ENV: `ENV_HTTP_MAX_DECOMPRESSED_SIZE`.
    #[serde(with = "syntax::size")]
    pub max_decompressed_size: u64,
    /// Memory all requests in flight may hold together: bodies as received
    /// plus what they decompress to. A request without room waits up to a
    /// second, then gets 503 `inflightFull`.
    /// Default: `"128MiB"`. ENV: `ENV_HTTP_MAX_INFLIGHT_BYTES`.
    #[serde(with = "syntax::size")]
    pub max_inflight_bytes: u64,
    /// Time a client has to send a request's headers (and, with TLS, to
    /// finish the handshake) once it starts one.
    /// Default: `"10s"`. ENV: `ENV_HTTP_READ_HEADER_TIMEOUT`.
    #[serde(with = "syntax::nonzero_duration")]
    pub read_header_timeout: Duration,
    /// Time a client has to send a whole request, body included; past it
    /// the request gets 408 and its connection is closed.
    /// Default: `"1m0s"`. ENV: `ENV_HTTP_READ_TIMEOUT`.
    #[serde(with = "syntax::nonzero_duration")]
    pub read_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request (or for
    /// the client to read a reply) before it is closed.
    /// Default: `"1m30s"`. ENV: `ENV_HTTP_IDLE_TIMEOUT`.
    #[serde(with = "syntax::nonzero_duration")]
    pub idle_timeout: Duration,
    /// DataKit's name: when set, it replaces `read_timeout` (and
    /// `idle_timeout` with `close_idle_connection`).
    /// Default: `unset`. ENV: `ENV_HTTP_TIMEOUT`.
    #[serde(
        with = "syntax::opt_nonzero_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// DataKit's switch: close idle keep-alive connections after `timeout`
    /// instead of `idle_timeout`.
    /// Default: `false`. ENV: `ENV_HTTP_CLOSE_IDLE_CONNECTION`.
    #[serde(with = "syntax::flag")]
    pub close_idle_connection: bool,
    /// Connections held at once, over TCP and the Unix socket together;
    /// past it, new connections wait in the kernel's backlog.
    /// Default: `10000`. ENV: `ENV_HTTP_MAX_CONNECTIONS`.
    #[serde(with = "syntax::count")]
    pub max_connections: usize,
    /// Requests per second per client address and route class (a token
    /// bucket); 0 for no limit. Over it: 429 `rateLimited`.
    /// Default: `0`. ENV: `ENV_REQUEST_RATE_LIMIT`.
    #[serde(with = "syntax::rate")]
    pub request_rate_limit: f64,
    /// Requests a client may send at once above the rate; 0 for one
    /// second's worth of `request_rate_limit`.
    /// Default: `0`. ENV: `ENV_REQUEST_RATE_LIMIT_BURST`.
    #[serde(with = "syntax::limit")]
    pub request_rate_limit_burst: u64,
    /// Proxies whose `X-Forwarded-For` names the client, for the rate
    /// limit and the logs; requests from any other address are taken as
    /// from that address.
    /// Default: `[]`. ENV: `ENV_HTTP_TRUSTED_PROXIES`.
    #[serde(with = "syntax::cidrs")]
    pub trusted_proxies: Vec<Cidr>,
    /// A Prometheus exporter-toolkit web config (the Pushgateway's
    /// `--web.config.file`): its TLS, basic-auth users and rate limit are
    /// taken as they are.
    /// Default: `unset`. ENV: `ENV_HTTP_WEB_CONFIG_FILE`.
    #[serde(with = "syntax::opt_text", skip_serializing_if = "Option::is_none")]
    pub web_config_file: Option<String>,
    /// `[http_api.tls]`, a table of its own (see `http_tls`).
    #[serde(skip)]
    pub tls: TlsConfig,
    /// `[http_api.auth]`, a table of its own (see `http_auth`).
    #[serde(skip)]
    pub auth: AuthConfig,
    /// The web config's `rate_limit`: one bucket for all clients, as the
    /// exporter-toolkit has it (interval between requests, burst).
    #[serde(skip)]
    pub global_rate_limit: Option<(Duration, u64)>,
}

impl Default for HttpApiConfig {
    fn default() -> Self {
        HttpApiConfig {
            listen: "localhost:9529".to_string(),
            listen_socket: None,
            max_body_size: 16 << 20,
            max_decompressed_size: 64 << 20,
            max_inflight_bytes: 128 << 20,
            read_header_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(90),
            timeout: None,
            close_idle_connection: false,
            max_connections: 10_000,
            request_rate_limit: 0.0,
            request_rate_limit_burst: 0,
            trusted_proxies: Vec::new(),
            web_config_file: None,
            tls: TlsConfig::default(),
            auth: AuthConfig::default(),
            global_rate_limit: None,
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

    /// `read_timeout`, or DataKit's `timeout` when set.
    pub fn effective_read_timeout(&self) -> Duration {
        self.timeout.unwrap_or(self.read_timeout)
    }

    /// `idle_timeout`, or with `close_idle_connection` the read timeout.
    pub fn effective_idle_timeout(&self) -> Duration {
        if self.close_idle_connection {
            self.effective_read_timeout()
        } else {
            self.idle_timeout
        }
    }

    /// The rate limit's bucket size: `request_rate_limit_burst`, or one
    /// second's worth of the rate (at least 1).
    pub fn effective_burst(&self) -> u64 {
        match self.request_rate_limit_burst {
            0 => (self.request_rate_limit.ceil() as u64).max(1),
            n => n,
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
            "listen_socket",
            "also serve on this Unix socket (mode 0660), for sidecars sharing a volume",
        ),
        Key::new(
            "max_body_size",
            "largest request body accepted, as received",
        ),
        Key::new(
            "max_decompressed_size",
            "largest request body after decompression",
        ),
        Key::new(
            "max_inflight_bytes",
            "memory all requests in flight may hold: bodies plus decompressed bytes (503 past it)",
        ),
        Key::new(
            "read_header_timeout",
            "time a client has to send a request's headers (and finish the TLS handshake)",
        ),
        Key::new(
            "read_timeout",
            "time a client has to send a whole request, body included (then 408)",
        ),
        Key::new(
            "idle_timeout",
            "time a keep-alive connection may wait for its next request",
        ),
        Key::new(
            "timeout",
            "DataKit's name: when set, replaces read_timeout (and idle_timeout with close_idle_connection)",
        ),
        Key::new(
            "close_idle_connection",
            "DataKit's switch: close idle connections after timeout instead of idle_timeout",
        )
        .bool(),
        Key::new(
            "max_connections",
            "connections held at once (TCP and Unix socket); past it new ones wait",
        )
        .count(),
        Key::new(
            "request_rate_limit",
            "requests per second per client address and route class; 0 for no limit (429 over it)",
        )
        .float()
        .env("ENV_REQUEST_RATE_LIMIT"),
        Key::new(
            "request_rate_limit_burst",
            "requests a client may send at once above the rate; 0 for one second's worth",
        )
        .limit()
        .env("ENV_REQUEST_RATE_LIMIT_BURST"),
        Key::new(
            "trusted_proxies",
            "networks (CIDR) of proxies whose X-Forwarded-For names the client",
        )
        .list(),
        Key::new(
            "web_config_file",
            "a Prometheus exporter-toolkit web config file (TLS, basic_auth_users, rate_limit), as the Pushgateway's --web.config.file",
        ),
    ];

    fn applies(&self, name: &str) -> bool {
        match name {
            "request_rate_limit_burst" => self.request_rate_limit > 0.0,
            "idle_timeout" => !self.close_idle_connection,
            _ => true,
        }
    }
}
