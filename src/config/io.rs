//! `[io]`: how points are batched before they go to the sinks.
//!
//! Imports the config folder's syntax layer only (`keys`, `syntax`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::keys::{Key, Section};
use super::syntax;

/// `[io]`: how points are batched before they go to the sinks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IoConfig {
    /// Points per batch; a full batch is sent at once.
    /// Default: `1000`. ENV: `ENV_IO_MAX_CACHE_COUNT`.
    #[serde(with = "syntax::count")]
    pub max_cache_count: usize,
    /// A partial batch is sent after this long; above zero.
    /// Default: `"10s"`. ENV: `ENV_IO_FLUSH_INTERVAL`.
    #[serde(with = "syntax::nonzero_duration")]
    pub flush_interval: Duration,
    /// How long shutdown may spend flushing what is left.
    /// Default: `"20s"`. ENV: `ENV_IO_SHUTDOWN_TIMEOUT`.
    #[serde(with = "syntax::duration")]
    pub shutdown_timeout: Duration,
    /// Directory of the sinks' disk queue: when set, a push's points are
    /// fsynced there before the push is acknowledged and survive a crash.
    /// Default: `unset`. ENV: `ENV_IO_QUEUE_DIR`.
    #[serde(with = "syntax::opt_text", skip_serializing_if = "Option::is_none")]
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

impl Section for IoConfig {
    const PATH: &'static str = "io";
    const ENV_PREFIX: Option<&'static str> = Some("ENV_IO_");
    const KEYS: &'static [Key] = &[
        Key::new("max_cache_count", "points per batch sent to the sinks").count(),
        Key::new("flush_interval", "send a partial batch after this long"),
        Key::new("shutdown_timeout", "how long to keep flushing on shutdown"),
        Key::new(
            "queue_dir",
            "directory of the sinks' disk queue; unset keeps queues in memory",
        ),
    ];
}
