//! The ENV overlay, applied after all files (default < file < ENV).
//!
//! DataKit is configured in containers by ENV alone, so every key of
//! [http_api], [io] and every input option has a variable named by one
//! rule (`schema::env_name`), plus DataKit's ENV_DATAWAY and
//! ENV_DEFAULT_ENABLED_INPUTS. A variable set to "" counts as unset.

use std::collections::BTreeSet;
use std::time::Duration;

use super::error::ConfigError;
use super::inputs::INPUTS;
use super::schema::{env_name, Section};
use super::url::{dataway_sink_url, redact_url};
use super::value::quote;
use super::SinkConfig;

/// How the loader reads the environment (a closure, so tests never touch
/// the real process environment).
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Comma-separated sink URLs; replaces every [[sinks]] from the files.
pub const ENV_DATAWAY: &str = "ENV_DATAWAY";
/// Comma- or space-separated input names to enable; `-name` disables,
/// `-` alone disables all.
pub const ENV_DEFAULT_ENABLED_INPUTS: &str = "ENV_DEFAULT_ENABLED_INPUTS";

/// What ENV_DATAWAY's URLs must look like.
const EXPECT_DATAWAY: &str = r#"expected comma-separated http:// or https:// URLs such as "https://openway.example?token=tkn_x" or "http://127.0.0.1:8428/write""#;

/// Reads one variable; the empty string counts as unset.
pub(crate) fn lookup(env: Env, name: &str) -> Option<String> {
    env(name).filter(|v| !v.is_empty())
}

/// Sets each key of `section` whose ENV variable is set.
pub(crate) fn apply_env<S: Section>(section: &mut S, env: Env) -> Result<(), ConfigError> {
    let Some(prefix) = S::env_prefix() else {
        return Ok(());
    };
    for spec in S::keys() {
        let var = env_name(&prefix, spec.key);
        if let Some(raw) = lookup(env, &var) {
            let value = spec.kind.read_env(&raw).map_err(|expected| {
                ConfigError::new(format!("{var} = {}: {expected}", spec.kind.show_str(&raw)))
            })?;
            (spec.set)(section, value);
        }
    }
    Ok(())
}

/// The ENV variables of `S` that are set (for "ignored" warnings).
pub(crate) fn env_set_keys<S: Section>(env: Env) -> Vec<String> {
    let Some(prefix) = S::env_prefix() else {
        return Vec::new();
    };
    S::keys()
        .iter()
        .map(|spec| env_name(&prefix, spec.key))
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
        let url = dataway_sink_url(item).map_err(|_| {
            ConfigError::new(format!(
                "{ENV_DATAWAY} = {}: {EXPECT_DATAWAY}",
                quote(&redact_url(item))
            ))
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
            } else if INPUTS.iter().any(|d| d.name == name) {
                set.insert(name.to_string());
            } else if unknown.insert(name.to_string()) {
                warnings.push(format!(
                    "{ENV_DEFAULT_ENABLED_INPUTS}: unknown input {} skipped (this agent has: {})",
                    quote(name),
                    INPUTS.iter().map(|d| d.name).collect::<Vec<_>>().join(", ")
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
    use crate::config::HttpApiConfig;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn empty_string_is_unset() {
        let env = env_of(&[("ENV_HTTP_LISTEN", ""), ("ENV_HTTP_MAX_BODY_SIZE", "1KiB")]);
        let mut http = HttpApiConfig::default();
        apply_env(&mut http, &env).unwrap();
        assert_eq!(http.listen, "localhost:9529");
        assert_eq!(http.max_body_size, 1024);
        assert_eq!(lookup(&env, "ENV_HTTP_LISTEN"), None);
    }

    #[test]
    fn env_errors_name_the_variable() {
        let env = env_of(&[("ENV_HTTP_MAX_DECOMPRESSED_SIZE", "lots")]);
        let err = apply_env(&mut HttpApiConfig::default(), &env).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"ENV_HTTP_MAX_DECOMPRESSED_SIZE = "lots": expected a size of at least 1 byte such as 1024, "512KiB", "16MiB" or "1GiB""#
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
