//! The ENV overlay, applied to a section's TOML table before it is
//! deserialized (default < file < ENV).
//!
//! DataKit is configured in containers by ENV alone, so every key of
//! [http_api], [io] and every input option has a variable named by one
//! rule (`keys::env_name`), plus DataKit's ENV_DATAWAY and
//! ENV_DEFAULT_ENABLED_INPUTS. A variable set to "" counts as unset.
//!
//! ENV has only strings and files are typed, so each variable's text is
//! turned into the TOML value a file would hold (`keys::EnvSyntax`): the
//! section's serde syntax then reads both alike. An error names the
//! variable and shows its text.
//!
//! Imports the sections and the layers below them, and `inputs` for the
//! names ENV_DEFAULT_ENABLED_INPUTS may list.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::error::{ConfigError, Place};
use super::inputs;
use super::keys::{key_env_name, EnvSyntax, Section, ENV_DATAWAY, ENV_DEFAULT_ENABLED_INPUTS};
use super::sink::SinkConfig;
use super::url::{dataway_sink_url, redact_url};
use super::value::{parse_count, parse_env_bool, parse_limit, quote, EXPECT_COUNT};

/// How the loader reads the environment (a closure, so tests never touch
/// the real process environment).
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// What ENV_DATAWAY's URLs must look like.
const EXPECT_DATAWAY: &str = r#"expected comma-separated http:// or https:// URLs such as "https://openway.example?token=tkn_x" or "http://127.0.0.1:8428/write""#;

/// Reads one variable; the empty string counts as unset.
pub(crate) fn lookup(env: Env, name: &str) -> Option<String> {
    env(name).filter(|v| !v.is_empty())
}

/// The keys of `S` that ENV sets: key → (variable, its text).
pub(crate) type EnvKeys = BTreeMap<String, (String, String)>;

/// Writes the value of each key of `S` whose ENV variable is set into
/// `table`, over what the file said.
pub(crate) fn overlay<S: Section>(
    table: &mut toml::Table,
    env: Env,
) -> Result<EnvKeys, ConfigError> {
    let mut set = EnvKeys::new();
    let Some(prefix) = S::ENV_PREFIX else {
        return Ok(set);
    };
    for key in S::KEYS {
        let var = key_env_name(prefix, key);
        let Some(raw) = lookup(env, &var) else {
            continue;
        };
        let value = match key.env {
            EnvSyntax::Text => Ok(toml::Value::String(raw.clone())),
            EnvSyntax::Bool => parse_env_bool(&raw).map(toml::Value::Boolean),
            EnvSyntax::Count => parse_count(&raw)
                .and_then(|n| i64::try_from(n).map_err(|_| EXPECT_COUNT))
                .map(toml::Value::Integer),
            EnvSyntax::Limit => parse_limit(&raw).map(|n| toml::Value::Integer(n as i64)),
            EnvSyntax::Float => parse_env_float(&raw).map(toml::Value::Float),
            EnvSyntax::List => Ok(toml::Value::Array(
                env_items(&raw)
                    .map(|item| toml::Value::String(item.to_string()))
                    .collect(),
            )),
            EnvSyntax::Pairs => env_pairs(&raw).map(toml::Value::Table),
        };
        let value = value.map_err(|expected| ConfigError::Invalid {
            at: Place::Env { var: var.clone() },
            value: key.show.text(&raw),
            expected: expected.to_string(),
        })?;
        table.insert(key.name.to_string(), value);
        set.insert(key.name.to_string(), (var, raw));
    }
    Ok(set)
}

/// The items of a comma-separated ENV list, trimmed, empty ones skipped.
fn env_items(raw: &str) -> impl Iterator<Item = &str> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// A decimal number, as ENV writes a rate.
fn parse_env_float(raw: &str) -> Result<f64, &'static str> {
    const EXPECT: &str = "expected a decimal number such as 20 or 0.5";
    let plain = !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    match raw.parse::<f64>() {
        Ok(n) if plain && n.is_finite() => Ok(n),
        _ => Err(EXPECT),
    }
}

/// `name:value,name:value` as a table (the first `:` splits each pair).
fn env_pairs(raw: &str) -> Result<toml::Table, &'static str> {
    const EXPECT: &str = "expected comma-separated name:value pairs such as \"alice:$2y$10$...\"";
    env_items(raw)
        .map(|item| match item.split_once(':') {
            Some((name, value)) if !name.is_empty() => {
                Ok((name.to_string(), toml::Value::String(value.to_string())))
            }
            _ => Err(EXPECT),
        })
        .collect()
}

/// The ENV variables of `S` that are set (for "ignored" warnings).
pub(crate) fn env_set_vars<S: Section>(env: Env) -> Vec<String> {
    let Some(prefix) = S::ENV_PREFIX else {
        return Vec::new();
    };
    S::KEYS
        .iter()
        .map(|key| key_env_name(prefix, key))
        .filter(|var| lookup(env, var).is_some())
        .collect()
}

/// The sinks ENV_DATAWAY asks for, or None when it is unset. Each gets
/// the name `sink<N>`, gzip and a 30s timeout.
pub(crate) fn dataway_sinks(
    env: Env,
    warnings: &mut Vec<String>,
) -> Result<Option<Vec<SinkConfig>>, ConfigError> {
    let Some(raw) = lookup(env, ENV_DATAWAY) else {
        return Ok(None);
    };
    let mut sinks = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let url = dataway_sink_url(item).map_err(|_| ConfigError::Invalid {
            at: Place::Env {
                var: ENV_DATAWAY.to_string(),
            },
            value: quote(&redact_url(item)),
            expected: EXPECT_DATAWAY.to_string(),
        })?;
        sinks.push(SinkConfig {
            name: format!("sink{}", sinks.len()),
            url,
            gzip: true,
            timeout: Duration::from_secs(30),
            ..SinkConfig::default()
        });
    }
    if sinks.is_empty() {
        warnings.push(format!(
            "{ENV_DATAWAY} = {} has no URL, so it is ignored",
            quote(&raw)
        ));
        return Ok(None);
    }
    Ok(Some(sinks))
}

/// What ENV_DEFAULT_ENABLED_INPUTS says.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct InputSelection {
    /// `-` alone: no input runs, not even file-configured ones.
    none: bool,
    enable: BTreeSet<String>,
    disable: BTreeSet<String>,
}

impl InputSelection {
    /// Parses the variable. Unknown names get one warning each and are
    /// skipped (DataKit's own lists name inputs this agent lacks).
    pub(crate) fn from_env(env: Env, warnings: &mut Vec<String>) -> InputSelection {
        let mut sel = InputSelection::default();
        let Some(raw) = lookup(env, ENV_DEFAULT_ENABLED_INPUTS) else {
            return sel;
        };
        let tokens: Vec<&str> = raw
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .collect();
        if tokens == ["-"] {
            sel.none = true;
            return sel;
        }
        let mut unknown = BTreeSet::new();
        for token in tokens {
            let (name, set) = match token.strip_prefix('-') {
                Some(name) => (name, &mut sel.disable),
                None => (token, &mut sel.enable),
            };
            if name.is_empty() {
                warnings.push(format!(
                    "{ENV_DEFAULT_ENABLED_INPUTS}: \"-\" means no inputs only when it stands alone; ignored here"
                ));
            } else if inputs::names().contains(&name) {
                set.insert(name.to_string());
            } else if unknown.insert(name.to_string()) {
                warnings.push(format!(
                    "{ENV_DEFAULT_ENABLED_INPUTS}: unknown input {} skipped (this agent has: {})",
                    quote(name),
                    inputs::names().join(", ")
                ));
            }
        }
        sel
    }

    /// Whether an input runs. `-name` wins over `name` in any order; a
    /// listed input runs even with no file block (defaults plus its ENV).
    pub(crate) fn is_enabled(&self, name: &str, in_files: bool) -> bool {
        if self.none || self.disable.contains(name) {
            return false;
        }
        in_files || self.enable.contains(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::de::from_table;
    use crate::config::http_api::HttpApiConfig;
    use crate::config::io::IoConfig;
    use crate::config::pushgateway::PushgatewayConfig;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    /// `S` from an empty file and `env`.
    fn from_env<S: Section>(env: &dyn Fn(&str) -> Option<String>) -> Result<S, ConfigError> {
        let mut table = toml::Table::new();
        overlay::<S>(&mut table, env)?;
        Ok(from_table(&table).unwrap())
    }

    #[test]
    fn empty_string_is_unset() {
        let env = env_of(&[("ENV_HTTP_LISTEN", ""), ("ENV_HTTP_MAX_BODY_SIZE", "1KiB")]);
        let http: HttpApiConfig = from_env(&env).unwrap();
        assert_eq!(http.listen, "localhost:9529");
        assert_eq!(http.max_body_size, 1024);
        assert_eq!(lookup(&env, "ENV_HTTP_LISTEN"), None);
    }

    #[test]
    fn env_text_becomes_the_toml_a_file_would_hold() {
        let env = env_of(&[
            ("ENV_IO_MAX_CACHE_COUNT", "5"),
            ("ENV_IO_QUEUE_DIR", "/q"),
            ("ENV_INPUT_PUSHGATEWAY_STORE", "F"),
        ]);
        let mut table = toml::Table::new();
        let set = overlay::<IoConfig>(&mut table, &env).unwrap();
        assert_eq!(table["max_cache_count"], toml::Value::Integer(5));
        assert_eq!(table["queue_dir"], toml::Value::String("/q".into()));
        assert_eq!(
            set["max_cache_count"],
            ("ENV_IO_MAX_CACHE_COUNT".to_string(), "5".to_string())
        );
        let pg: PushgatewayConfig = from_env(&env).unwrap();
        assert!(!pg.store);
        // Sinks have no ENV of their own.
        assert_eq!(
            env_set_vars::<SinkConfig>(&|_| Some("x".into())),
            Vec::<String>::new()
        );
    }

    #[test]
    fn env_errors_name_the_variable() {
        let env = env_of(&[("ENV_IO_MAX_CACHE_COUNT", "0")]);
        let err = overlay::<IoConfig>(&mut toml::Table::new(), &env).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"ENV_IO_MAX_CACHE_COUNT = "0": expected a whole number of at least 1"#
        );
        let env = env_of(&[("ENV_INPUT_PUSHGATEWAY_STORE", "yes")]);
        let err = overlay::<PushgatewayConfig>(&mut toml::Table::new(), &env).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"ENV_INPUT_PUSHGATEWAY_STORE = "yes": expected a bool (1, t, true, TRUE, 0, f, false, FALSE, ...)"#
        );
    }

    #[test]
    fn dataway() {
        let mut w = Vec::new();
        let env = env_of(&[(
            "ENV_DATAWAY",
            "https://openway.example?token=tkn_x, http://127.0.0.1:8428/write,",
        )]);
        let sinks = dataway_sinks(&env, &mut w).unwrap().unwrap();
        assert_eq!(sinks.len(), 2);
        assert_eq!(sinks[0].name, "sink0");
        assert_eq!(
            sinks[0].url,
            "https://openway.example/v1/write/metric?token=tkn_x"
        );
        assert!(sinks[0].gzip);
        assert_eq!(sinks[0].timeout, Duration::from_secs(30));
        assert_eq!(sinks[1].name, "sink1");
        assert_eq!(sinks[1].url, "http://127.0.0.1:8428/write");
        assert!(w.is_empty());

        assert_eq!(
            dataway_sinks(&env_of(&[("ENV_DATAWAY", "")]), &mut w).unwrap(),
            None
        );
        assert_eq!(dataway_sinks(&env_of(&[]), &mut w).unwrap(), None);
        assert!(w.is_empty());
        assert_eq!(
            dataway_sinks(&env_of(&[("ENV_DATAWAY", " , ")]), &mut w).unwrap(),
            None
        );
        assert_eq!(w.len(), 1);

        let err = dataway_sinks(
            &env_of(&[("ENV_DATAWAY", "openway.example?token=s3cret")]),
            &mut w,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(r#"ENV_DATAWAY = "openway.example?token=REDACTED": expected comma-separated http:// or https:// URLs"#),
            "{err}"
        );
        assert!(!err.contains("s3cret"));
    }

    fn selection(value: &'static str) -> (InputSelection, Vec<String>) {
        let mut w = Vec::new();
        let pairs: &'static [(&str, &str)] =
            Box::leak(Box::new([("ENV_DEFAULT_ENABLED_INPUTS", value)]));
        (InputSelection::from_env(&env_of(pairs), &mut w), w)
    }

    #[test]
    fn enabled_inputs() {
        let (s, w) = selection("");
        assert!(s.is_enabled("pushgateway", true));
        assert!(!s.is_enabled("pushgateway", false));
        assert!(w.is_empty());

        let (s, _) = selection("-");
        assert!(!s.is_enabled("pushgateway", true));

        let (s, _) = selection(" - ");
        assert!(!s.is_enabled("pushgateway", true));

        let (s, w) = selection("dk,cpu,container,pushgateway");
        assert!(s.is_enabled("pushgateway", false));
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].contains(r#"unknown input "dk""#), "{w:?}");
        assert!(
            w[1].contains(r#""cpu""#) && w[2].contains(r#""container""#),
            "{w:?}"
        );

        let (s, w) = selection("cpu mem  pushgateway cpu");
        assert!(s.is_enabled("pushgateway", false));
        assert_eq!(w.len(), 2, "one warning per unknown name: {w:?}");

        let (s, _) = selection("-pushgateway");
        assert!(!s.is_enabled("pushgateway", true));

        let (s, _) = selection("pushgateway,-pushgateway");
        assert!(!s.is_enabled("pushgateway", false));

        let (s, w) = selection("-,pushgateway");
        assert!(s.is_enabled("pushgateway", false));
        assert_eq!(w.len(), 1);
    }
}
