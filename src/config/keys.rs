//! What the code cannot learn from a section's serde derive: for each key,
//! its one-line description, how its ENV variable is spelled, whether its
//! value may be shown, and a default the reference cannot compute.
//!
//! The values themselves never pass through here: serde reads them into
//! the typed fields. A test (`reference.rs`) checks that each section's
//! `KEYS` lists exactly its serde fields, in order, so the two cannot drift.
//!
//! Imports `value` and `url` only.

use super::url::redact_url;
use super::value::{quote, REDACTED};

/// Comma-separated sink URLs; replaces every [[sinks]] from the files.
pub const ENV_DATAWAY: &str = "ENV_DATAWAY";
/// Comma- or space-separated input names to enable; `-name` disables,
/// `-` alone disables all.
pub const ENV_DEFAULT_ENABLED_INPUTS: &str = "ENV_DEFAULT_ENABLED_INPUTS";

/// How an ENV variable's text becomes the TOML value a file would hold:
/// ENV has only strings, while files are typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EnvSyntax {
    /// Taken as a TOML string (durations, sizes, paths, names).
    Text,
    /// Go's strconv.ParseBool (`1`, `t`, `true`, `TRUE`, `0`, `f`, ...).
    Bool,
    /// Decimal digits, at least 1, as a TOML integer.
    Count,
    /// Decimal digits, 0 included (no limit), as a TOML integer.
    Limit,
    /// A decimal number ("20", "0.5"), as a TOML float.
    Float,
    /// Comma-separated words, as a TOML array of strings.
    List,
    /// Comma-separated `name:value` pairs, as a TOML table of strings.
    Pairs,
}

/// How a value is shown in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Show {
    Plain,
    /// Query values and the password redacted.
    Url,
    /// Never shown.
    Secret,
}

impl Show {
    /// A TOML value, briefly: tables and arrays are not spelled out.
    pub(crate) fn toml(self, v: &toml::Value) -> String {
        match v {
            toml::Value::String(s) => self.text(s),
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Datetime(d) => d.to_string(),
            toml::Value::Array(_) => "[...]".to_string(),
            toml::Value::Table(_) => "{...}".to_string(),
        }
    }

    /// A string, quoted (as it is shown from a file or from ENV).
    pub(crate) fn text(self, s: &str) -> String {
        match self {
            Show::Plain => quote(s),
            Show::Url => quote(&redact_url(s)),
            Show::Secret => quote(REDACTED),
        }
    }
}

/// One key of a section.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key {
    /// As written in TOML; also the source of its ENV name.
    pub name: &'static str,
    /// A few words for the README reference.
    pub doc: &'static str,
    pub env: EnvSyntax,
    pub show: Show,
    /// What the reference shows as default when the default value cannot
    /// say it ("required", "sink0, sink1, ... in order").
    pub default_doc: Option<&'static str>,
    /// An ENV variable that feeds this key other than by the prefix rule,
    /// read by the loader elsewhere (ENV_DATAWAY for sink URLs).
    pub env_doc: Option<&'static str>,
    /// The key's ENV variable when it breaks the prefix rule (DataKit's
    /// own names, such as `ENV_HTTP_TLS_CRT`); the overlay reads it
    /// instead of the rule's name.
    pub env_var: Option<&'static str>,
}

impl Key {
    pub(crate) const fn new(name: &'static str, doc: &'static str) -> Key {
        Key {
            name,
            doc,
            env: EnvSyntax::Text,
            show: Show::Plain,
            default_doc: None,
            env_doc: None,
            env_var: None,
        }
    }

    pub(crate) const fn float(mut self) -> Key {
        self.env = EnvSyntax::Float;
        self
    }

    pub(crate) const fn list(mut self) -> Key {
        self.env = EnvSyntax::List;
        self
    }

    pub(crate) const fn pairs(mut self) -> Key {
        self.env = EnvSyntax::Pairs;
        self
    }

    /// Names the key's ENV variable outright, against the prefix rule.
    pub(crate) const fn env(mut self, var: &'static str) -> Key {
        self.env_var = Some(var);
        self
    }

    pub(crate) const fn bool(mut self) -> Key {
        self.env = EnvSyntax::Bool;
        self
    }

    pub(crate) const fn count(mut self) -> Key {
        self.env = EnvSyntax::Count;
        self
    }

    pub(crate) const fn limit(mut self) -> Key {
        self.env = EnvSyntax::Limit;
        self
    }

    pub(crate) const fn show(mut self, show: Show) -> Key {
        self.show = show;
        self
    }

    pub(crate) const fn default_doc(mut self, text: &'static str) -> Key {
        self.default_doc = Some(text);
        self
    }

    pub(crate) const fn env_doc(mut self, var: &'static str) -> Key {
        self.env_doc = Some(var);
        self
    }
}

/// A table of the configuration, typed by serde.
pub(crate) trait Section:
    Default + serde::Serialize + serde::de::DeserializeOwned + 'static
{
    /// The dotted TOML path: "http_api", "sinks", "inputs.pushgateway".
    const PATH: &'static str;
    /// The ENV prefix of its keys (`ENV_HTTP_`); None when keys have no ENV.
    const ENV_PREFIX: Option<&'static str>;
    /// Its keys, in the order of the struct's fields.
    const KEYS: &'static [Key];

    fn key(name: &str) -> Option<&'static Key> {
        Self::KEYS.iter().find(|k| k.name == name)
    }

    /// Whether key `name` has any effect with the other values of this
    /// section (`pushkit check` shows only those).
    fn applies(&self, _name: &str) -> bool {
        true
    }
}

/// THE ENV rule: prefix plus the key in upper case
/// (`ENV_HTTP_` + `max_body_size` → `ENV_HTTP_MAX_BODY_SIZE`).
pub(crate) fn env_name(prefix: &str, key: &str) -> String {
    format!("{prefix}{}", key.to_ascii_uppercase())
}

/// The ENV variable of `key` in a section with ENV `prefix`: its own
/// name if it has one, else the rule's.
pub(crate) fn key_env_name(prefix: &str, key: &Key) -> String {
    match key.env_var {
        Some(var) => var.to_string(),
        None => env_name(prefix, key.name),
    }
}

/// The ENV prefix of an input's options by the rule: `ENV_INPUT_<NAME>_`.
#[cfg(test)]
pub(crate) fn input_env_prefix(input: &str) -> String {
    format!("ENV_INPUT_{}_", input.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn shown_values() {
        let url = toml::Value::String("http://u:pw@h/w?token=t".into());
        assert_eq!(
            Show::Url.toml(&url),
            r#""http://u:REDACTED@h/w?token=REDACTED""#
        );
        assert_eq!(Show::Secret.text("tkn"), r#""REDACTED""#);
        assert_eq!(Show::Plain.toml(&toml::Value::Integer(3)), "3");
        assert_eq!(
            Show::Plain.toml(&toml::Value::Table(Default::default())),
            "{...}"
        );
    }
}
