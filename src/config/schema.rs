//! The key tables: for every section, which keys exist, how each value is
//! read and written, and its description.
//!
//! Everything else (file extraction, the ENV rule, rendering and the
//! reference docs) walks these tables, so a key added here gets its file
//! syntax, ENV variable, `pushkit check` output and docs in one place.

use std::collections::BTreeMap;
use std::time::Duration;

use super::url::{parse_http_url, redact_url, EXPECT_URL};
use super::value::{
    check_count_int, check_listen, check_size_int, normalize_route_prefix, parse_count,
    parse_duration, parse_env_bool, parse_size, quote, EXPECT_COUNT, EXPECT_DURATION,
    EXPECT_LISTEN, EXPECT_NONZERO_DURATION, EXPECT_ROUTE_PREFIX, EXPECT_SIZE,
};
use super::{HttpApiConfig, IoConfig, PushgatewayConfig, SinkConfig};

const EXPECT_OVERFLOW: &str = "expected \"block\" or \"drop_oldest\"";
const EXPECT_FORMAT: &str = "expected \"line-protocol\" or \"remote-write\"";
const EXPECT_HEADERS: &str = "expected a TOML table of header names to string values";
const EXPECT_BASIC_AUTH: &str =
    "expected a TOML table with username and one of password, password_file";

/// Keys a `basic_auth` table may hold.
const BASIC_AUTH_KEYS: [&str; 3] = ["username", "password", "password_file"];

/// How a key's value is written and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A non-empty string.
    Name,
    /// A string that may be left unset; "" also means unset.
    OptText,
    /// "host:port".
    Listen,
    /// An http(s) URL; shown redacted.
    Url,
    /// A URL path, normalised like the Pushgateway's --web.route-prefix.
    RoutePrefix,
    /// TOML boolean in files, Go ParseBool in ENV.
    Bool,
    /// Bytes, at least 1.
    Size,
    /// A whole number, at least 1.
    Count,
    /// A Go duration, zero allowed.
    Duration,
    /// A Go duration above zero (intervals and timeouts that would
    /// otherwise spin or fail every request).
    NonZeroDuration,
    /// A sink's overflow policy: "block" or "drop_oldest".
    Overflow,
    /// A sink's wire format: "line-protocol" or "remote-write".
    Format,
    /// A string that may be unset and is never shown (tokens).
    Secret,
    /// A table of HTTP header names to values; values are never shown.
    Headers,
    /// `{ username = "...", password = "..." | password_file = "..." }`;
    /// the password is never shown.
    BasicAuth,
}

/// A parsed value, before it is stored in its struct field.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Str(String),
    OptStr(Option<String>),
    Bool(bool),
    Bytes(u64),
    Count(usize),
    Dur(Duration),
    Map(BTreeMap<String, String>),
}

/// Field types that a `Val` can be stored into and read back from, so the
/// `key!` table entries need no per-type code.
pub(crate) trait Field: Sized {
    fn into_val(self) -> Val;
    fn from_val(v: Val) -> Option<Self>;
}

macro_rules! field {
    ($ty:ty, $variant:ident) => {
        impl Field for $ty {
            fn into_val(self) -> Val {
                Val::$variant(self)
            }
            fn from_val(v: Val) -> Option<Self> {
                match v {
                    Val::$variant(x) => Some(x),
                    _ => None,
                }
            }
        }
    };
}
field!(String, Str);
field!(Option<String>, OptStr);
field!(bool, Bool);
field!(u64, Bytes);
field!(usize, Count);
field!(Duration, Dur);
field!(BTreeMap<String, String>, Map);

impl Kind {
    /// Reads a value from a config file. In files a bool must be a TOML
    /// boolean and a string a TOML string; sizes may be either an integer
    /// byte count or a string.
    pub(crate) fn read_toml_value(self, v: &toml::Value) -> Result<Val, &'static str> {
        use toml::Value as T;
        match (self, v) {
            (Kind::Bool, T::Boolean(b)) => Ok(Val::Bool(*b)),
            (Kind::Bool, _) => Err("expected a TOML boolean, true or false"),
            (Kind::Size, T::Integer(n)) => check_size_int(*n).map(Val::Bytes),
            (Kind::Count, T::Integer(n)) => check_count_int(*n).map(Val::Count),
            (Kind::Count, T::String(_)) => {
                Err("expected a TOML integer of at least 1, not a string")
            }
            (Kind::Count, _) => Err(EXPECT_COUNT),
            (_, T::String(s)) => self.read_str(s, false),
            (Kind::Headers, T::Table(t)) => read_string_table(t, None).map(Val::Map),
            (Kind::BasicAuth, T::Table(t)) => read_basic_auth(t).map(Val::Map),
            (Kind::Name | Kind::OptText | Kind::Secret, _) => Err("expected a TOML string"),
            _ => Err(self.expected()),
        }
    }

    /// Reads a value from an ENV variable (already known to be non-empty).
    pub(crate) fn read_env(self, s: &str) -> Result<Val, &'static str> {
        self.read_str(s, true)
    }

    fn read_str(self, s: &str, env: bool) -> Result<Val, &'static str> {
        match self {
            Kind::Name if s.is_empty() => Err("expected a non-empty string"),
            Kind::Name => Ok(Val::Str(s.to_string())),
            Kind::OptText | Kind::Secret => {
                Ok(Val::OptStr(Some(s.to_string()).filter(|s| !s.is_empty())))
            }
            Kind::Listen => check_listen(s).map(Val::Str),
            Kind::Url => parse_http_url(s).map(|_| Val::Str(s.to_string())),
            Kind::RoutePrefix => normalize_route_prefix(s).map(Val::Str),
            Kind::Bool if env => parse_env_bool(s).map(Val::Bool),
            Kind::Bool => Err("expected a TOML boolean, true or false"),
            Kind::Size => parse_size(s).map(Val::Bytes),
            Kind::Count => parse_count(s).map(Val::Count),
            Kind::Duration => parse_duration(s).map(Val::Dur),
            Kind::NonZeroDuration => match parse_duration(s)? {
                d if d.is_zero() => Err(EXPECT_NONZERO_DURATION),
                d => Ok(Val::Dur(d)),
            },
            Kind::Overflow => match s {
                "block" | "drop_oldest" => Ok(Val::Str(s.to_string())),
                _ => Err(EXPECT_OVERFLOW),
            },
            Kind::Format => match s {
                "line-protocol" | "remote-write" => Ok(Val::Str(s.to_string())),
                _ => Err(EXPECT_FORMAT),
            },
            Kind::Headers | Kind::BasicAuth => Err(self.expected()),
        }
    }

    /// The generic "expected ..." for a value of the wrong TOML type.
    fn expected(self) -> &'static str {
        match self {
            Kind::Name | Kind::OptText | Kind::Secret => "expected a TOML string",
            Kind::Listen => EXPECT_LISTEN,
            Kind::Url => EXPECT_URL,
            Kind::RoutePrefix => EXPECT_ROUTE_PREFIX,
            Kind::Bool => "expected a TOML boolean, true or false",
            Kind::Size => EXPECT_SIZE,
            Kind::Count => EXPECT_COUNT,
            Kind::Duration | Kind::NonZeroDuration => EXPECT_DURATION,
            Kind::Overflow => EXPECT_OVERFLOW,
            Kind::Format => EXPECT_FORMAT,
            Kind::Headers => EXPECT_HEADERS,
            Kind::BasicAuth => EXPECT_BASIC_AUTH,
        }
    }

    /// The value found in a file, for an error message (URLs redacted).
    pub(crate) fn show_toml(self, v: &toml::Value) -> String {
        match v {
            toml::Value::String(s) => self.show_str(s),
            other => show_toml_value(other),
        }
    }

    /// A string value found, quoted, for an error message (URLs redacted).
    pub(crate) fn show_str(self, s: &str) -> String {
        match self {
            Kind::Url => quote(&redact_url(s)),
            Kind::Secret => quote("REDACTED"),
            _ => quote(s),
        }
    }
}

/// A table whose values are all strings; with `allowed`, only those keys.
fn read_string_table(
    t: &toml::map::Map<String, toml::Value>,
    allowed: Option<&[&str]>,
) -> Result<BTreeMap<String, String>, &'static str> {
    let mut out = BTreeMap::new();
    for (k, v) in t {
        if allowed.is_some_and(|a| !a.contains(&k.as_str())) {
            return Err(EXPECT_BASIC_AUTH);
        }
        match v {
            toml::Value::String(s) => out.insert(k.clone(), s.clone()),
            _ if allowed.is_some() => return Err(EXPECT_BASIC_AUTH),
            _ => return Err(EXPECT_HEADERS),
        };
    }
    Ok(out)
}

fn read_basic_auth(
    t: &toml::map::Map<String, toml::Value>,
) -> Result<BTreeMap<String, String>, &'static str> {
    let m = read_string_table(t, Some(&BASIC_AUTH_KEYS))?;
    let passwords = m.contains_key("password") as u8 + m.contains_key("password_file") as u8;
    if !m.contains_key("username") || passwords != 1 {
        return Err(EXPECT_BASIC_AUTH);
    }
    Ok(m)
}

/// Any TOML value shown briefly for an error message.
pub(crate) fn show_toml_value(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => quote(s),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(_) => "[...]".to_string(),
        toml::Value::Table(_) => "{...}".to_string(),
    }
}

/// One key of a section: its name, kind, description and field access.
pub(crate) struct KeySpec<S> {
    /// The key as written in TOML; also the source of its ENV name.
    pub key: &'static str,
    pub kind: Kind,
    /// A few words for docs and shipped conf comments.
    pub doc: &'static str,
    /// What the reference shows as default when `S::default()` can't say.
    pub default_doc: Option<&'static str>,
    /// An ENV variable that feeds this key other than by the prefix rule.
    pub env_doc: Option<&'static str>,
    pub get: fn(&S) -> Val,
    pub set: fn(&mut S, Val),
}

/// Builds a `KeySpec` whose key is the struct field's name.
macro_rules! key {
    ($field:ident, $kind:ident, $doc:literal $(, default = $dd:literal)? $(, env = $env:expr)?) => {
        KeySpec {
            key: stringify!($field),
            kind: Kind::$kind,
            doc: $doc,
            default_doc: key!(@opt $($dd)?),
            env_doc: key!(@opt $($env)?),
            get: |s| Field::into_val(s.$field.clone()),
            set: |s, v| {
                if let Some(x) = Field::from_val(v) {
                    s.$field = x;
                }
            },
        }
    };
    (@opt) => { None };
    (@opt $x:expr) => { Some($x) };
}

/// A config section backed by a key table.
pub(crate) trait Section: Default + Clone + 'static {
    /// The dotted TOML path of the table: "http_api", "sinks", "inputs.pushgateway".
    const PATH: &'static str;
    /// The ENV prefix of the section's keys; None when keys have no ENV.
    fn env_prefix() -> Option<String>;
    fn keys() -> &'static [KeySpec<Self>];
}

/// THE ENV rule: prefix plus the key in upper case
/// (`ENV_HTTP_` + `max_body_size` → `ENV_HTTP_MAX_BODY_SIZE`).
pub(crate) fn env_name(prefix: &str, key: &str) -> String {
    format!("{prefix}{}", key.to_ascii_uppercase())
}

/// The ENV prefix of an input's options: `ENV_INPUT_<NAME>_`.
pub(crate) fn input_env_prefix(input: &str) -> String {
    format!("ENV_INPUT_{}_", input.to_ascii_uppercase())
}

static HTTP_API_KEYS: [KeySpec<HttpApiConfig>; 3] = [
    key!(listen, Listen, "address the HTTP API listens on, host:port"),
    key!(
        max_body_size,
        Size,
        "largest request body accepted, as received"
    ),
    key!(
        max_decompressed_size,
        Size,
        "largest request body after decompression"
    ),
];

impl Section for HttpApiConfig {
    const PATH: &'static str = "http_api";
    fn env_prefix() -> Option<String> {
        Some("ENV_HTTP_".to_string())
    }
    fn keys() -> &'static [KeySpec<Self>] {
        &HTTP_API_KEYS
    }
}

static IO_KEYS: [KeySpec<IoConfig>; 4] = [
    key!(max_cache_count, Count, "points per batch sent to the sinks"),
    key!(
        flush_interval,
        NonZeroDuration,
        "send a partial batch after this long"
    ),
    key!(
        shutdown_timeout,
        Duration,
        "how long to keep flushing on shutdown"
    ),
    key!(
        queue_dir,
        OptText,
        "directory of the sinks' disk queue; unset keeps queues in memory",
        default = "unset"
    ),
];

impl Section for IoConfig {
    const PATH: &'static str = "io";
    fn env_prefix() -> Option<String> {
        Some("ENV_IO_".to_string())
    }
    fn keys() -> &'static [KeySpec<Self>] {
        &IO_KEYS
    }
}

static SINK_KEYS: [KeySpec<SinkConfig>; 18] = [
    key!(
        name,
        Name,
        "sink name in logs; must be unique",
        default = "sink0, sink1, ... in order"
    ),
    key!(
        url,
        Url,
        "http(s) URL points are POSTed to",
        default = "required",
        env = super::env::ENV_DATAWAY
    ),
    key!(gzip, Bool, "gzip request bodies"),
    key!(timeout, NonZeroDuration, "timeout of one write request"),
    key!(
        max_queue_bytes,
        Size,
        "memory budget of the sink's queue, in line-protocol bytes"
    ),
    key!(
        overflow,
        Overflow,
        "when the queue is full: block (a push waits up to 1 s for room, then gets 503) or drop_oldest"
    ),
    key!(
        format,
        Format,
        "line-protocol, or remote-write (Prometheus remote write 1.0)"
    ),
    key!(
        max_disk_bytes,
        Size,
        "disk budget of the sink's share of the queue (with [io] queue_dir)"
    ),
    key!(
        retry_base,
        NonZeroDuration,
        "first retry delay; doubles up to retry_max, with jitter"
    ),
    key!(retry_max, NonZeroDuration, "longest retry delay"),
    key!(
        headers,
        Headers,
        "extra request headers, e.g. { Authorization = \"Token ...\" }; values never shown",
        default = "{}"
    ),
    key!(
        bearer_token,
        Secret,
        "sent as Authorization: Bearer; never shown",
        default = "unset"
    ),
    key!(
        bearer_token_file,
        OptText,
        "file holding the bearer token, read at start",
        default = "unset"
    ),
    key!(
        basic_auth,
        BasicAuth,
        "{ username = \"...\", password_file = \"...\" } (or password); never shown",
        default = "unset"
    ),
    key!(
        ca_file,
        OptText,
        "PEM CA certificates to trust instead of the system's",
        default = "unset"
    ),
    key!(
        cert_file,
        OptText,
        "PEM client certificate (with key_file)",
        default = "unset"
    ),
    key!(
        key_file,
        OptText,
        "PEM private key of cert_file",
        default = "unset"
    ),
    key!(
        tls_insecure_skip_verify,
        Bool,
        "do not verify the server's certificate"
    ),
];

impl Section for SinkConfig {
    const PATH: &'static str = "sinks";
    fn env_prefix() -> Option<String> {
        None
    }
    fn keys() -> &'static [KeySpec<Self>] {
        &SINK_KEYS
    }
}

static PUSHGATEWAY_KEYS: [KeySpec<PushgatewayConfig>; 11] = [
    key!(
        route_prefix,
        RoutePrefix,
        "path prefix of the Pushgateway API, e.g. /v1/pushgateway"
    ),
    key!(
        measurement_name,
        OptText,
        "put every metric in this one measurement",
        default = "unset"
    ),
    key!(
        job_as_measurement,
        Bool,
        "use the job label as the measurement name"
    ),
    key!(
        keep_exist_metric_name,
        Bool,
        "keep the full metric name as the field name"
    ),
    key!(
        honor_timestamps,
        Bool,
        "use timestamps sent with the metrics"
    ),
    key!(
        store,
        Bool,
        "keep the last push of every group and expose it at P/metrics"
    ),
    key!(
        consistency_check,
        Bool,
        "refuse pushes that would make the exposition invalid"
    ),
    key!(
        persistence_dir,
        OptText,
        "directory of the store's journal and snapshots",
        default = "unset"
    ),
    key!(
        group_ttl,
        Duration,
        "remove a group this long after its last successful push; 0s keeps it forever"
    ),
    key!(enable_admin_api, Bool, "serve PUT P/api/v1/admin/wipe"),
    key!(enable_lifecycle, Bool, "serve PUT|POST P/-/quit"),
];

impl Section for PushgatewayConfig {
    const PATH: &'static str = "inputs.pushgateway";
    fn env_prefix() -> Option<String> {
        Some(input_env_prefix(<Self as super::inputs::Input>::NAME))
    }
    fn keys() -> &'static [KeySpec<Self>] {
        &PUSHGATEWAY_KEYS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table entry must store into and read back from its own field
    /// (catches a kind whose `Val` does not match the field type).
    fn check_round_trip<S: Section + PartialEq + std::fmt::Debug>() {
        let defaults = S::default();
        for spec in S::keys() {
            let v = (spec.get)(&defaults);
            let mut s = S::default();
            (spec.set)(&mut s, v.clone());
            assert_eq!((spec.get)(&s), v, "{}.{}", S::PATH, spec.key);
            // A different value must land in the field too.
            let other = match (spec.kind, &v) {
                (_, Val::Bool(b)) => Val::Bool(!b),
                (_, Val::Bytes(n)) => Val::Bytes(n + 1),
                (_, Val::Count(n)) => Val::Count(n + 1),
                (_, Val::Dur(d)) => Val::Dur(*d + Duration::from_secs(1)),
                (_, Val::OptStr(_)) => Val::OptStr(Some("x".into())),
                (Kind::Format, Val::Str(_)) => Val::Str("remote-write".into()),
                (_, Val::Str(_)) => Val::Str("x".into()),
                (_, Val::Map(_)) => Val::Map([("a".into(), "b".into())].into()),
            };
            (spec.set)(&mut s, other.clone());
            assert_eq!((spec.get)(&s), other, "{}.{}", S::PATH, spec.key);
        }
    }

    #[test]
    fn tables_match_fields() {
        check_round_trip::<HttpApiConfig>();
        check_round_trip::<IoConfig>();
        check_round_trip::<SinkConfig>();
        check_round_trip::<PushgatewayConfig>();
    }

    #[test]
    fn env_rule() {
        assert_eq!(
            env_name("ENV_HTTP_", "max_body_size"),
            "ENV_HTTP_MAX_BODY_SIZE"
        );
        assert_eq!(
            env_name(&input_env_prefix("pushgateway"), "group_ttl"),
            "ENV_INPUT_PUSHGATEWAY_GROUP_TTL"
        );
        assert_eq!(SinkConfig::env_prefix(), None);
    }

    #[test]
    fn file_types_are_strict() {
        use toml::Value as T;
        assert!(Kind::Bool
            .read_toml_value(&T::String("true".into()))
            .is_err());
        assert_eq!(
            Kind::Bool.read_toml_value(&T::Boolean(false)),
            Ok(Val::Bool(false))
        );
        assert!(Kind::Name.read_toml_value(&T::Integer(1)).is_err());
        assert!(Kind::Duration.read_toml_value(&T::Integer(10)).is_err());
        assert!(Kind::Count
            .read_toml_value(&T::String("10".into()))
            .is_err());
        assert_eq!(
            Kind::Size.read_toml_value(&T::Integer(1024)),
            Ok(Val::Bytes(1024))
        );
        assert_eq!(
            Kind::Size.read_toml_value(&T::String("1024".into())),
            Ok(Val::Bytes(1024))
        );
        assert_eq!(
            Kind::OptText.read_toml_value(&T::String("".into())),
            Ok(Val::OptStr(None))
        );
        assert!(Kind::NonZeroDuration.read_env("0s").is_err());
        assert_eq!(Kind::Duration.read_env("0"), Ok(Val::Dur(Duration::ZERO)));
    }
}
