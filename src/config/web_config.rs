//! The Prometheus exporter-toolkit web config (`--web.config.file` of the
//! Pushgateway and the exporters), read as it is so that users migrate
//! with their file unchanged.
//!
//! What maps: `tls_server_config` (`cert_file`, `key_file`,
//! `client_ca_file`, `client_auth_type` "NoClientCert" or
//! "RequireAndVerifyClientCert", `min_version` "TLS12" or "TLS13"),
//! `basic_auth_users` (bcrypt hashes) and `rate_limit` (`interval`,
//! `burst`: one bucket for all clients, as the toolkit has it). Any other
//! key is refused by name, rather than ignored: a file that asks for
//! something pushkit does not do must not start an agent that silently
//! does less. The file's settings and `[http_api.tls]` / `[http_api.auth]`
//! may not both set the same thing.
//!
//! Imports the sections it fills and the layers below them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_yaml_ng::Value;

use super::error::{ConfigError, Place};
use super::http_api::HttpApiConfig;
use super::http_tls::TlsVersion;
use super::value::{is_bcrypt_hash, parse_duration, quote};

/// Reads the file named by `web_config_file` (its place given by `at`)
/// into `http`.
pub(crate) fn apply(http: &mut HttpApiConfig, path: &str) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::io(std::path::Path::new(path), "web_config_file", e))?;
    apply_text(http, path, &text)
}

/// An error at `key` of the web config file `file`.
fn invalid(file: &str, key: &str, value: String, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        at: Place::File {
            file: file.to_string(),
            key: key.to_string(),
        },
        value,
        expected: expected.to_string(),
    }
}

/// A YAML scalar as errors show it.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => quote(s),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => "null".into(),
        Value::Sequence(_) => "[...]".into(),
        Value::Mapping(_) | Value::Tagged(_) => "{...}".into(),
    }
}

/// The keys and values of a mapping (null counts as empty), or an error.
fn entries<'a>(
    file: &str,
    key: &str,
    v: &'a Value,
) -> Result<Vec<(String, &'a Value)>, ConfigError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Mapping(m) => m
            .iter()
            .map(|(k, v)| match k {
                Value::String(k) => Ok((k.clone(), v)),
                other => Err(invalid(file, key, shown(other), "expected string keys")),
            })
            .collect(),
        other => Err(invalid(file, key, shown(other), "expected a mapping")),
    }
}

/// A string value, or an error naming it.
fn text(file: &str, key: &str, v: &Value) -> Result<String, ConfigError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(invalid(file, key, shown(other), "expected a string")),
    }
}

/// What a key the toolkit has but pushkit does not do gets.
const UNSUPPORTED: &str = "expected it absent: pushkit does not support this exporter-toolkit key";

pub(crate) fn apply_text(
    http: &mut HttpApiConfig,
    file: &str,
    yaml: &str,
) -> Result<(), ConfigError> {
    let root: Value = serde_yaml_ng::from_str(yaml).map_err(|e| ConfigError::YamlSyntax {
        file: file.to_string(),
        line: e.location().map(|l| l.line()),
        column: e.location().map_or(0, |l| l.column()),
        message: e.to_string().lines().next().unwrap_or_default().to_string(),
    })?;
    for (key, value) in entries(file, "", &root)? {
        match key.as_str() {
            "tls_server_config" => tls(http, file, value)?,
            "basic_auth_users" => users(http, file, value)?,
            "rate_limit" => rate_limit(http, file, value)?,
            "http_server_config" => {
                for (k, v) in entries(file, "http_server_config", value)? {
                    let at = format!("http_server_config.{k}");
                    match (k.as_str(), v) {
                        // pushkit serves HTTP/1.1, which is what this asks.
                        ("http2", Value::Bool(false)) => {}
                        ("http2", v) => {
                            return Err(invalid(
                                file,
                                &at,
                                shown(v),
                                "expected false: pushkit serves HTTP/1.1 only",
                            ))
                        }
                        (_, v) => return Err(invalid(file, &at, shown(v), UNSUPPORTED)),
                    }
                }
            }
            _ => return Err(invalid(file, &key, shown(value), UNSUPPORTED)),
        }
    }
    Ok(())
}

fn tls(http: &mut HttpApiConfig, file: &str, value: &Value) -> Result<(), ConfigError> {
    if http.tls.cert.is_some() || http.tls.privkey.is_some() || http.tls.client_ca.is_some() {
        return Err(invalid(
            file,
            "tls_server_config",
            "{...}".into(),
            "expected TLS from one place: [http_api.tls] sets it too",
        ));
    }
    let mut require_client_cert = false;
    for (k, v) in entries(file, "tls_server_config", value)? {
        let at = format!("tls_server_config.{k}");
        match k.as_str() {
            "cert_file" => http.tls.cert = Some(text(file, &at, v)?),
            "key_file" => http.tls.privkey = Some(text(file, &at, v)?),
            "client_ca_file" => http.tls.client_ca = Some(text(file, &at, v)?),
            "client_auth_type" => match text(file, &at, v)?.as_str() {
                "NoClientCert" | "" => {}
                "RequireAndVerifyClientCert" => require_client_cert = true,
                _ => {
                    return Err(invalid(
                        file,
                        &at,
                        shown(v),
                        r#"expected "NoClientCert" or "RequireAndVerifyClientCert""#,
                    ))
                }
            },
            "min_version" => {
                http.tls.min_version = match text(file, &at, v)?.as_str() {
                    "TLS12" => TlsVersion::Tls12,
                    "TLS13" => TlsVersion::Tls13,
                    _ => {
                        return Err(invalid(
                            file,
                            &at,
                            shown(v),
                            r#"expected "TLS12" or "TLS13" (rustls has no TLS 1.0 or 1.1)"#,
                        ))
                    }
                }
            }
            _ => return Err(invalid(file, &at, shown(v), UNSUPPORTED)),
        }
    }
    // The toolkit checks a client CA only when it asks for client
    // certificates; pushkit asks whenever it has a CA, so the two must agree.
    if require_client_cert != http.tls.client_ca.is_some() {
        return Err(invalid(
            file,
            "tls_server_config.client_auth_type",
            if require_client_cert {
                quote("RequireAndVerifyClientCert")
            } else {
                quote("NoClientCert")
            },
            "expected RequireAndVerifyClientCert exactly when client_ca_file is set",
        ));
    }
    if http.tls.cert.is_none() || http.tls.privkey.is_none() {
        return Err(invalid(
            file,
            "tls_server_config",
            "{...}".into(),
            "expected both cert_file and key_file",
        ));
    }
    Ok(())
}

fn users(http: &mut HttpApiConfig, file: &str, value: &Value) -> Result<(), ConfigError> {
    if !http.auth.basic_auth_users.is_empty() {
        return Err(invalid(
            file,
            "basic_auth_users",
            "{...}".into(),
            "expected users from one place: [http_api.auth] basic_auth_users sets them too",
        ));
    }
    let mut found = BTreeMap::new();
    for (user, hash) in entries(file, "basic_auth_users", value)? {
        let at = format!("basic_auth_users.{user}");
        let hash = match hash {
            Value::String(h) if is_bcrypt_hash(h) => h.clone(),
            // Never shown: it may be a password written by mistake.
            _ => {
                return Err(invalid(
                    file,
                    &at,
                    quote("REDACTED"),
                    "expected a bcrypt hash such as \"$2y$10$...\"",
                ))
            }
        };
        found.insert(user, hash);
    }
    http.auth.basic_auth_users = found;
    Ok(())
}

fn rate_limit(http: &mut HttpApiConfig, file: &str, value: &Value) -> Result<(), ConfigError> {
    let (mut interval, mut burst) = (Duration::ZERO, 0u64);
    for (k, v) in entries(file, "rate_limit", value)? {
        let at = format!("rate_limit.{k}");
        match (k.as_str(), v) {
            ("interval", Value::String(s)) => {
                interval = parse_duration(s).map_err(|e| invalid(file, &at, shown(v), e))?;
            }
            ("burst", Value::Number(n)) if n.as_u64().is_some() => burst = n.as_u64().unwrap(),
            ("interval", v) => return Err(invalid(file, &at, shown(v), "expected a duration")),
            ("burst", v) => return Err(invalid(file, &at, shown(v), "expected a whole number")),
            (_, v) => return Err(invalid(file, &at, shown(v), UNSUPPORTED)),
        }
    }
    // As the toolkit: an interval of 0 is no limit.
    if !interval.is_zero() {
        http.global_rate_limit = Some((interval, burst.max(1)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2y$10$g9qbu9F8TBp4VLcd8gaQQ.M2dcP4pSJSbHxfY5K/ZiLQKAcfjNfhW";

    fn read(yaml: &str) -> Result<HttpApiConfig, String> {
        let mut http = HttpApiConfig::default();
        apply_text(&mut http, "web.yml", yaml)
            .map(|()| http)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_toolkit_keys_map() {
        let http = read(&format!(
            "tls_server_config:\n  cert_file: /c.pem\n  key_file: /k.pem\n  client_ca_file: /ca.pem\n  client_auth_type: RequireAndVerifyClientCert\n  min_version: TLS13\nbasic_auth_users:\n  alice: {HASH}\nrate_limit:\n  interval: 100ms\n  burst: 5\n"
        ))
        .unwrap();
        assert_eq!(http.tls.cert.as_deref(), Some("/c.pem"));
        assert_eq!(http.tls.privkey.as_deref(), Some("/k.pem"));
        assert_eq!(http.tls.client_ca.as_deref(), Some("/ca.pem"));
        assert_eq!(http.tls.min_version, TlsVersion::Tls13);
        assert!(http.tls.is_on());
        assert_eq!(http.auth.basic_auth_users["alice"], HASH);
        assert_eq!(
            http.global_rate_limit,
            Some((Duration::from_millis(100), 5))
        );
        assert!(read("").is_ok(), "an empty file sets nothing");
    }

    #[test]
    fn keys_pushkit_lacks_are_refused_by_name() {
        for (yaml, key) in [
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n", "tls_server_config.cipher_suites"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  max_version: TLS12\n", "tls_server_config.max_version"),
            ("http_server_config:\n  headers:\n    X-A: b\n", "http_server_config.headers"),
            ("http_server_config:\n  http2: true\n", "http_server_config.http2"),
            ("nonsense: 1\n", "nonsense"),
        ] {
            let e = read(yaml).unwrap_err();
            assert!(e.starts_with(&format!("web.yml: {key} = ")), "{e}");
        }
        assert!(read("http_server_config:\n  http2: false\n").is_ok());
    }

    #[test]
    fn bad_values_are_refused_and_hashes_never_shown() {
        let e = read("basic_auth_users:\n  alice: hunter2\n").unwrap_err();
        assert_eq!(
            e,
            "web.yml: basic_auth_users.alice = \"REDACTED\": expected a bcrypt hash such as \"$2y$10$...\""
        );
        let e = read("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS10\n")
            .unwrap_err();
        assert!(e.contains("rustls has no TLS 1.0"), "{e}");
        let e = read("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n")
            .unwrap_err();
        assert!(e.contains("client_auth_type"), "{e}");
        let e = read("tls_server_config:\n  cert_file: a\n").unwrap_err();
        assert!(e.contains("expected both cert_file and key_file"), "{e}");
        let e = read("rate_limit:\n  interval: soon\n").unwrap_err();
        assert!(
            e.starts_with("web.yml: rate_limit.interval = \"soon\": expected a duration"),
            "{e}"
        );
        let e = read("a: [").unwrap_err();
        assert!(e.starts_with("web.yml: YAML syntax error at line "), "{e}");
    }

    #[test]
    fn one_place_for_each_setting() {
        let mut http = HttpApiConfig::default();
        http.tls.cert = Some("/c".into());
        let e = apply_text(
            &mut http,
            "web.yml",
            "tls_server_config:\n  cert_file: a\n  key_file: b\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("[http_api.tls] sets it too"), "{e}");
        let mut http = HttpApiConfig::default();
        http.auth.basic_auth_users.insert("bob".into(), HASH.into());
        let e = apply_text(
            &mut http,
            "web.yml",
            &format!("basic_auth_users:\n  alice: {HASH}\n"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("sets them too"), "{e}");
    }
}
