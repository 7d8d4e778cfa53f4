//! A sink's HTTP client, built once at start from its configuration: the
//! timeout, TLS (extra CAs, a client certificate, or no verification) and
//! the headers sent with every request (`headers`, bearer token, basic
//! auth). Secrets are read here and never logged: errors name the sink and
//! the key, not the value.
//!
//! The rules between keys (one way to authenticate, a certificate with its
//! key, header names) are the config's own (`SinkConfig::auth`,
//! `client_cert`, `check_headers`), which `pushkit check` applies too; what
//! is left here depends on the machine: reading the files, parsing PEM.

use crate::config::{Auth, Password, SinkConfig, Violation};
use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use thiserror::Error;

/// Why a sink's client could not be built; one line naming the sink and
/// the key at fault.
#[derive(Debug, Error)]
pub enum ClientError {
    /// A key's value cannot be used (an unreadable file, bad PEM, a value
    /// that cannot be a header).
    #[error("sink {sink}: {key}: {what}")]
    Key {
        sink: String,
        key: &'static str,
        what: String,
    },
    /// The keys break one of the config's rules between them.
    #[error("sink {sink}: {violation}")]
    Rule { sink: String, violation: Violation },
    #[error("sink {sink}: cannot build its HTTP client: {source}")]
    Build {
        sink: String,
        source: reqwest::Error,
    },
}

/// Follows a redirect only within the configured URL's origin (scheme,
/// host and port), at most 10 times: one to another origin would re-post
/// the batch, with the sink's credentials, wherever it points. A redirect
/// not followed comes back as the 3xx answer, which delivery retries.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let origin = |u: &reqwest::Url| {
            (
                u.scheme().to_string(),
                u.host_str().map(str::to_string),
                u.port_or_known_default(),
            )
        };
        let same = attempt
            .previous()
            .first()
            .is_some_and(|first| origin(first) == origin(attempt.url()));
        if same && attempt.previous().len() <= 10 {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// Builds the client for `cfg`.
pub fn build_client(cfg: &SinkConfig) -> Result<reqwest::Client, ClientError> {
    let err = |key, what| key_error(cfg, key, what);
    let broken = |v| rule_error(cfg, v);
    let mut builder = reqwest::Client::builder()
        .timeout(cfg.timeout)
        .default_headers(request_headers(cfg)?)
        .redirect(same_origin_redirects());
    if let Some(path) = &cfg.ca_file {
        let pem = read(path).map_err(|e| err("ca_file", e))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| err("ca_file", format!("{path}: not PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(err("ca_file", format!("{path}: holds no certificate")));
        }
        builder = builder.tls_certs_only(certs);
    }
    if let Some(pair) = cfg.client_cert().map_err(broken)? {
        let (cert, key) = (pair.cert_file, pair.key_file);
        let mut pem = read(cert).map_err(|e| err("cert_file", e))?;
        pem.push(b'\n');
        pem.extend(read(key).map_err(|e| err("key_file", e))?);
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
            err(
                "cert_file",
                format!("{cert} with {key}: not a PEM certificate and key: {e}"),
            )
        })?;
        builder = builder.identity(identity);
    }
    if cfg.tls_insecure_skip_verify {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|source| ClientError::Build {
        sink: cfg.name.clone(),
        source,
    })
}

fn key_error(cfg: &SinkConfig, key: &'static str, what: String) -> ClientError {
    ClientError::Key {
        sink: cfg.name.clone(),
        key,
        what,
    }
}

fn rule_error(cfg: &SinkConfig, violation: Violation) -> ClientError {
    ClientError::Rule {
        sink: cfg.name.clone(),
        violation,
    }
}

/// The headers every request of the sink carries.
pub fn request_headers(cfg: &SinkConfig) -> Result<HeaderMap, ClientError> {
    let err = |key, what| key_error(cfg, key, what);
    let broken = |v| rule_error(cfg, v);
    cfg.check_headers().map_err(broken)?;
    let mut headers = HeaderMap::new();
    for (name, value) in &cfg.headers {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| err("headers", format!("{name:?} is not a valid header name")))?;
        let v = secret_value(value).map_err(|_| {
            err(
                "headers",
                format!("the value of {name:?} is not a valid header value"),
            )
        })?;
        headers.insert(n, v);
    }
    // (the key the value came from, the Authorization value)
    let auth = match cfg.auth().map_err(broken)? {
        None => None,
        Some(Auth::Bearer(token)) => Some(("bearer_token", format!("Bearer {token}"))),
        Some(Auth::BearerFile(path)) => {
            let token = read_text(path).map_err(|e| err("bearer_token_file", e))?;
            Some(("bearer_token_file", format!("Bearer {token}")))
        }
        Some(Auth::Basic(basic)) => {
            let password = match &basic.password {
                Password::Inline(p) => p.clone(),
                Password::File(path) => {
                    read_text(path).map_err(|e| err("basic_auth.password_file", e))?
                }
            };
            let pair = format!("{}:{password}", basic.username);
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            Some(("basic_auth", format!("Basic {encoded}")))
        }
    };
    if let Some((key, auth)) = auth {
        let v = secret_value(&auth).map_err(|_| err(key, "not a valid header value".into()))?;
        headers.insert(AUTHORIZATION, v);
    }
    Ok(headers)
}

/// The values a sink sends that must never show, longest first: every
/// header value it sets (its `headers`, and the Authorization value, with
/// and without its scheme), a basic-auth password and its encoded pair,
/// and the URL's password and values of secret query keys. A backend that
/// echoes its request puts them in its answer, which pushkit logs.
pub fn sink_secrets(cfg: &SinkConfig) -> Result<Vec<String>, ClientError> {
    let mut secrets: Vec<String> = Vec::new();
    for value in request_headers(cfg)?.values() {
        let Ok(v) = value.to_str() else { continue };
        secrets.push(v.to_string());
        if let Some((scheme, rest)) = v.split_once(' ') {
            secrets.push(rest.to_string());
            if scheme == "Basic" {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(rest)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok());
                if let Some(pair) = decoded {
                    if let Some((_, password)) = pair.split_once(':') {
                        secrets.push(password.to_string());
                    }
                    secrets.push(pair);
                }
            }
        }
    }
    if let Ok(url) = reqwest::Url::parse(&cfg.url) {
        if let Some(p) = url.password() {
            secrets.push(p.to_string());
        }
        for (k, v) in url.query_pairs() {
            if crate::config::is_secret_query_key(&k) {
                secrets.push(v.into_owned());
            }
        }
    }
    // Short values would redact ordinary words.
    secrets.retain(|s| s.len() >= 4);
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    Ok(secrets)
}

/// A header value marked sensitive, so that reqwest never prints it.
fn secret_value(v: &str) -> Result<HeaderValue, ()> {
    let mut value = HeaderValue::from_str(v).map_err(|_| ())?;
    value.set_sensitive(true);
    Ok(value)
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))
}

/// A secret file's content, without the trailing newline editors add.
fn read_text(path: &str) -> Result<String, String> {
    let bytes = read(path)?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{path} is not UTF-8"))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BasicAuth;

    fn sink() -> SinkConfig {
        SinkConfig {
            name: "s".into(),
            url: "http://127.0.0.1:1/write".into(),
            ..SinkConfig::default()
        }
    }

    #[test]
    fn bearer_basic_and_headers() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "tkn\n").unwrap();
        let cfg = SinkConfig {
            bearer_token_file: Some(token.to_string_lossy().into()),
            headers: [("X-Scope-OrgID".into(), "team".into())].into(),
            ..sink()
        };
        let h = request_headers(&cfg).unwrap();
        assert_eq!(h[AUTHORIZATION], "Bearer tkn");
        assert!(h[AUTHORIZATION].is_sensitive());
        assert_eq!(h["x-scope-orgid"], "team");

        let cfg = SinkConfig {
            basic_auth: Some(BasicAuth {
                username: "u".into(),
                password: Password::Inline("p".into()),
            }),
            ..sink()
        };
        assert_eq!(request_headers(&cfg).unwrap()[AUTHORIZATION], "Basic dTpw");
    }

    #[test]
    fn conflicts_and_missing_files_name_sink_and_key() {
        let cfg = SinkConfig {
            bearer_token: Some("a".into()),
            basic_auth: Some(BasicAuth {
                username: "u".into(),
                password: Password::Inline("p".into()),
            }),
            ..sink()
        };
        let e = request_headers(&cfg).unwrap_err().to_string();
        assert!(
            e.starts_with("sink s: basic_auth = {...}: expected either"),
            "{e}"
        );
        let cfg = SinkConfig {
            bearer_token_file: Some("/nonexistent/token".into()),
            ..sink()
        };
        let e = request_headers(&cfg).unwrap_err().to_string();
        assert!(
            e.starts_with("sink s: bearer_token_file: cannot read /nonexistent/token"),
            "{e}"
        );
        let cfg = SinkConfig {
            cert_file: Some("/x.pem".into()),
            ..sink()
        };
        assert_eq!(
            build_client(&cfg).unwrap_err().to_string(),
            r#"sink s: cert_file = "/x.pem": expected key_file with it, the certificate's private key"#
        );
        let cfg = SinkConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..sink()
        };
        assert!(build_client(&cfg)
            .unwrap_err()
            .to_string()
            .starts_with("sink s: ca_file: cannot read"));
        let cfg = SinkConfig {
            headers: [("Bad Name".into(), "v".into())].into(),
            ..sink()
        };
        assert!(build_client(&cfg)
            .unwrap_err()
            .to_string()
            .contains("expected a header name of"));
        assert!(build_client(&SinkConfig {
            tls_insecure_skip_verify: true,
            ..sink()
        })
        .is_ok());
    }
}
