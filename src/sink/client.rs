//! A sink's HTTP client, built once at start from its configuration: the
//! timeout, TLS (extra CAs, a client certificate, or no verification) and
//! the headers sent with every request (`headers`, bearer token, basic
//! auth). Secrets are read here and never logged: errors name the sink and
//! the key, not the value.

use crate::config::SinkConfig;
use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};

/// Builds the client for `cfg`; the error is one line naming the sink and
/// the key at fault.
pub fn build_client(cfg: &SinkConfig) -> Result<reqwest::Client, String> {
    let err = |key: &str, what: String| format!("sink {}: {key}: {what}", cfg.name);
    let mut builder = reqwest::Client::builder()
        .timeout(cfg.timeout)
        .default_headers(request_headers(cfg)?);
    if let Some(path) = &cfg.ca_file {
        let pem = read(path).map_err(|e| err("ca_file", e))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| err("ca_file", format!("{path}: not PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(err("ca_file", format!("{path}: holds no certificate")));
        }
        builder = builder.tls_certs_only(certs);
    }
    match (&cfg.cert_file, &cfg.key_file) {
        (Some(cert), Some(key)) => {
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
        (Some(_), None) => return Err(err("key_file", "required with cert_file".into())),
        (None, Some(_)) => return Err(err("cert_file", "required with key_file".into())),
        (None, None) => {}
    }
    if cfg.tls_insecure_skip_verify {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    builder
        .build()
        .map_err(|e| format!("sink {}: cannot build its HTTP client: {e}", cfg.name))
}

/// The headers every request of the sink carries.
pub fn request_headers(cfg: &SinkConfig) -> Result<HeaderMap, String> {
    let err = |key: &str, what: String| format!("sink {}: {key}: {what}", cfg.name);
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
    let token = match (&cfg.bearer_token, &cfg.bearer_token_file) {
        (Some(_), Some(_)) => {
            return Err(err(
                "bearer_token_file",
                "set either bearer_token or bearer_token_file, not both".into(),
            ))
        }
        (Some(t), None) => Some(t.clone()),
        (None, Some(path)) => Some(read_text(path).map_err(|e| err("bearer_token_file", e))?),
        (None, None) => None,
    };
    let basic = if cfg.basic_auth.is_empty() {
        None
    } else {
        let user = &cfg.basic_auth["username"];
        let password = match (
            cfg.basic_auth.get("password"),
            cfg.basic_auth.get("password_file"),
        ) {
            (Some(p), _) => p.clone(),
            (None, Some(path)) => {
                read_text(path).map_err(|e| err("basic_auth.password_file", e))?
            }
            (None, None) => String::new(),
        };
        Some(base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
    };
    let auth = match (token, basic) {
        (Some(_), Some(_)) => {
            return Err(err(
                "basic_auth",
                "set either a bearer token or basic_auth, not both".into(),
            ))
        }
        (Some(t), None) => Some(format!("Bearer {t}")),
        (None, Some(b)) => Some(format!("Basic {b}")),
        (None, None) => None,
    };
    if let Some(auth) = auth {
        if headers.contains_key(AUTHORIZATION) {
            return Err(err(
                "headers",
                "Authorization is set both in headers and by a token or basic_auth".into(),
            ));
        }
        let v = secret_value(&auth)
            .map_err(|_| err("bearer_token", "not a valid header value".into()))?;
        headers.insert(AUTHORIZATION, v);
    }
    Ok(headers)
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
            basic_auth: [
                ("username".into(), "u".into()),
                ("password".into(), "p".into()),
            ]
            .into(),
            ..sink()
        };
        assert_eq!(request_headers(&cfg).unwrap()[AUTHORIZATION], "Basic dTpw");
    }

    #[test]
    fn conflicts_and_missing_files_name_sink_and_key() {
        let cfg = SinkConfig {
            bearer_token: Some("a".into()),
            basic_auth: [
                ("username".into(), "u".into()),
                ("password".into(), "p".into()),
            ]
            .into(),
            ..sink()
        };
        let e = request_headers(&cfg).unwrap_err();
        assert!(e.starts_with("sink s: basic_auth:"), "{e}");
        let cfg = SinkConfig {
            bearer_token_file: Some("/nonexistent/token".into()),
            ..sink()
        };
        let e = request_headers(&cfg).unwrap_err();
        assert!(
            e.starts_with("sink s: bearer_token_file: cannot read /nonexistent/token"),
            "{e}"
        );
        let cfg = SinkConfig {
            cert_file: Some("/x.pem".into()),
            ..sink()
        };
        assert_eq!(
            build_client(&cfg).unwrap_err(),
            "sink s: key_file: required with cert_file"
        );
        let cfg = SinkConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..sink()
        };
        assert!(build_client(&cfg)
            .unwrap_err()
            .starts_with("sink s: ca_file: cannot read"));
        let cfg = SinkConfig {
            headers: [("Bad Name".into(), "v".into())].into(),
            ..sink()
        };
        assert!(build_client(&cfg)
            .unwrap_err()
            .contains("not a valid header name"));
        assert!(build_client(&SinkConfig {
            tls_insecure_skip_verify: true,
            ..sink()
        })
        .is_ok());
    }
}
