//! `[[inputs.pushgateway]]`: the options of the Pushgateway input.
//!
//! Imports the config folder's syntax layer only (`keys`, `syntax`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::keys::{Key, Section};
use super::syntax;

/// `[[inputs.pushgateway]]`: the Prometheus Pushgateway API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushgatewayConfig {
    /// Path prefix of the Pushgateway API (e.g. "/v1/pushgateway"),
    /// normalised: "" or "/" = none, leading "/" forced, trailing removed.
    /// Default: `""`. ENV: `ENV_INPUT_PUSHGATEWAY_ROUTE_PREFIX`.
    #[serde(with = "syntax::route_prefix")]
    pub route_prefix: String,
    /// If set, every metric goes to this one measurement.
    /// Default: `unset`. ENV: `ENV_INPUT_PUSHGATEWAY_MEASUREMENT_NAME`.
    #[serde(with = "syntax::opt_text", skip_serializing_if = "Option::is_none")]
    pub measurement_name: Option<String>,
    /// Use the `job` label as the measurement name.
    /// Default: `false`. ENV: `ENV_INPUT_PUSHGATEWAY_JOB_AS_MEASUREMENT`.
    #[serde(with = "syntax::flag")]
    pub job_as_measurement: bool,
    /// Keep the full metric name as the field name.
    /// Default: `true`. ENV: `ENV_INPUT_PUSHGATEWAY_KEEP_EXIST_METRIC_NAME`.
    #[serde(with = "syntax::flag")]
    pub keep_exist_metric_name: bool,
    /// Use timestamps pushed with the metrics instead of arrival time.
    /// Default: `true`. ENV: `ENV_INPUT_PUSHGATEWAY_HONOR_TIMESTAMPS`.
    #[serde(with = "syntax::flag")]
    pub honor_timestamps: bool,
    /// Keep the last push of every group and expose it at `GET P/metrics`,
    /// as the Pushgateway does; `false` makes a pure forwarder.
    /// Default: `true`. ENV: `ENV_INPUT_PUSHGATEWAY_STORE`.
    #[serde(with = "syntax::flag")]
    pub store: bool,
    /// Refuse (400) pushes that would make the exposition invalid.
    /// Default: `true`. ENV: `ENV_INPUT_PUSHGATEWAY_CONSISTENCY_CHECK`.
    #[serde(with = "syntax::flag")]
    pub consistency_check: bool,
    /// Directory of the store's journal and snapshots; unset keeps the
    /// store in memory only.
    /// Default: `unset`. ENV: `ENV_INPUT_PUSHGATEWAY_PERSISTENCE_DIR`.
    #[serde(with = "syntax::opt_text", skip_serializing_if = "Option::is_none")]
    pub persistence_dir: Option<String>,
    /// Remove a group this long after its last successful push; 0 keeps
    /// groups forever.
    /// Default: `"0s"`. ENV: `ENV_INPUT_PUSHGATEWAY_GROUP_TTL`.
    #[serde(with = "syntax::duration")]
    pub group_ttl: Duration,
    /// Serve `PUT P/api/v1/admin/wipe`.
    /// Default: `false`. ENV: `ENV_INPUT_PUSHGATEWAY_ENABLE_ADMIN_API`.
    #[serde(with = "syntax::flag")]
    pub enable_admin_api: bool,
    /// Serve `PUT|POST P/-/quit`.
    /// Default: `false`. ENV: `ENV_INPUT_PUSHGATEWAY_ENABLE_LIFECYCLE`.
    #[serde(with = "syntax::flag")]
    pub enable_lifecycle: bool,
    /// Accept UTF-8 metric and label names, as Pushgateway 1.11's
    /// `--push.enable-utf8-names`: quoted in text, any in protobuf,
    /// `U__`-escaped in URL label names.
    /// Default: `false`. ENV: `ENV_INPUT_PUSHGATEWAY_UTF8_NAMES`.
    #[serde(with = "syntax::flag")]
    pub utf8_names: bool,
    /// Samples one push may carry; 0 for no limit (a 400 above it).
    /// Default: `0`. ENV: `ENV_INPUT_PUSHGATEWAY_SAMPLE_LIMIT`.
    #[serde(with = "syntax::limit")]
    pub sample_limit: u64,
    /// Labels one series may carry, its name and grouping labels included;
    /// 0 for no limit.
    /// Default: `64`. ENV: `ENV_INPUT_PUSHGATEWAY_LABEL_LIMIT`.
    #[serde(with = "syntax::limit")]
    pub label_limit: u64,
    /// Bytes of a label name; 0 for no limit.
    /// Default: `256`. ENV: `ENV_INPUT_PUSHGATEWAY_LABEL_NAME_LENGTH_LIMIT`.
    #[serde(with = "syntax::limit")]
    pub label_name_length_limit: u64,
    /// Bytes of a label value or a metric name; 0 for no limit.
    /// Default: `16384`. ENV: `ENV_INPUT_PUSHGATEWAY_LABEL_VALUE_LENGTH_LIMIT`.
    #[serde(with = "syntax::limit")]
    pub label_value_length_limit: u64,
    /// Groups the store keeps; 0 for no limit (a 429 for a new group above
    /// it).
    /// Default: `100000`. ENV: `ENV_INPUT_PUSHGATEWAY_MAX_GROUPS`.
    #[serde(with = "syntax::limit")]
    pub max_groups: u64,
    /// Series the store keeps; 0 for no limit (a 429 for a push that would
    /// grow the total above it).
    /// Default: `1000000`. ENV: `ENV_INPUT_PUSHGATEWAY_MAX_SERIES`.
    #[serde(with = "syntax::limit")]
    pub max_series: u64,
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
            group_ttl: Duration::ZERO,
            enable_admin_api: false,
            enable_lifecycle: false,
            utf8_names: false,
            sample_limit: 0,
            label_limit: 64,
            label_name_length_limit: 256,
            label_value_length_limit: 16_384,
            max_groups: 100_000,
            max_series: 1_000_000,
        }
    }
}

impl Section for PushgatewayConfig {
    const PATH: &'static str = "inputs.pushgateway";
    const ENV_PREFIX: Option<&'static str> = Some("ENV_INPUT_PUSHGATEWAY_");
    const KEYS: &'static [Key] = &[
        Key::new(
            "route_prefix",
            "path prefix of the Pushgateway API, e.g. /v1/pushgateway",
        ),
        Key::new(
            "measurement_name",
            "put every metric in this one measurement",
        ),
        Key::new(
            "job_as_measurement",
            "use the job label as the measurement name",
        )
        .bool(),
        Key::new(
            "keep_exist_metric_name",
            "keep the full metric name as the field name",
        )
        .bool(),
        Key::new("honor_timestamps", "use timestamps sent with the metrics").bool(),
        Key::new(
            "store",
            "keep the last push of every group and expose it at P/metrics",
        )
        .bool(),
        Key::new(
            "consistency_check",
            "refuse pushes that would make the exposition invalid",
        )
        .bool(),
        Key::new(
            "persistence_dir",
            "directory of the store's journal and snapshots",
        ),
        Key::new(
            "group_ttl",
            "remove a group this long after its last successful push; 0s keeps it forever",
        ),
        Key::new("enable_admin_api", "serve PUT P/api/v1/admin/wipe").bool(),
        Key::new("enable_lifecycle", "serve PUT|POST P/-/quit").bool(),
        Key::new(
            "utf8_names",
            "accept UTF-8 metric and label names, as Pushgateway 1.11's --push.enable-utf8-names",
        )
        .bool(),
        Key::new("sample_limit", "samples in one push; 0 for no limit").limit(),
        Key::new(
            "label_limit",
            "labels on one series, name and grouping labels included; 0 for no limit",
        )
        .limit(),
        Key::new(
            "label_name_length_limit",
            "bytes of a label name; 0 for no limit",
        )
        .limit(),
        Key::new(
            "label_value_length_limit",
            "bytes of a label value or a metric name; 0 for no limit",
        )
        .limit(),
        Key::new(
            "max_groups",
            "groups the store keeps; a new group above it gets 429; 0 for no limit",
        )
        .limit(),
        Key::new(
            "max_series",
            "series the store keeps; a push that grows the total above it gets 429; 0 for no limit",
        )
        .limit(),
    ];
}
