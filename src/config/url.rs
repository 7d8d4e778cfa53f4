//! Sink URLs: the small subset of URL syntax a sink needs (http/https,
//! host, port, path, query), DataKit's ENV_DATAWAY rule, and redaction of
//! secrets before a URL is shown anywhere.
//!
//! Hand-written because only these few checks are needed and the crate
//! keeps its dependency list short.

use super::value::{check_host, check_port};

/// What a sink URL must look like, for error messages.
pub(crate) const EXPECT_URL: &str =
    r#"expected an http:// or https:// URL such as "http://127.0.0.1:8428/write""#;

/// Where a Dataway base URL posts metrics (DataKit's write path).
const DATAWAY_METRIC_PATH: &str = "/v1/write/metric";

/// An http(s) URL cut into the parts the config cares about.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct HttpUrl<'a> {
    /// "http" or "https" as written (any case).
    pub scheme: &'a str,
    /// `[userinfo@]host[:port]`.
    pub authority: &'a str,
    /// From the first '/' after the authority up to '?' or '#'; may be "".
    pub path: &'a str,
    /// After '?' up to '#', without the '?'.
    pub query: Option<&'a str>,
    /// After '#', without the '#'.
    pub fragment: Option<&'a str>,
}

/// Parses `http(s)://[user[:pass]@]host[:port][/path][?query][#fragment]`.
/// Host is a name, IPv4 or bracketed IPv6; no whitespace anywhere.
pub(crate) fn parse_http_url(s: &str) -> Result<HttpUrl<'_>, &'static str> {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(EXPECT_URL);
    }
    let (scheme, rest) = s.split_once("://").ok_or(EXPECT_URL)?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(EXPECT_URL);
    }
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, rest) = rest.split_at(auth_end);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = match host_port.find(']') {
        Some(close) if host_port.starts_with('[') => {
            let after = &host_port[close + 1..];
            let port = if after.is_empty() {
                None
            } else {
                Some(after.strip_prefix(':').ok_or(EXPECT_URL)?)
            };
            (&host_port[..=close], port)
        }
        _ => match host_port.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        },
    };
    check_host(host).ok_or(EXPECT_URL)?;
    if let Some(port) = port {
        check_port(port).ok_or(EXPECT_URL)?;
    }
    let (before_frag, fragment) = match rest.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (rest, None),
    };
    let (path, query) = match before_frag.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (before_frag, None),
    };
    Ok(HttpUrl {
        scheme,
        authority,
        path,
        query,
        fragment,
    })
}

/// DataKit's ENV_DATAWAY rule for one URL: a URL with no path (or "/") is
/// a Dataway base and posts to `<base>/v1/write/metric?<query>`; a URL with
/// a path is used as given.
pub(crate) fn dataway_sink_url(s: &str) -> Result<String, &'static str> {
    let url = parse_http_url(s)?;
    if !url.path.is_empty() && url.path != "/" {
        return Ok(s.to_string());
    }
    let mut out = format!("{}://{}{DATAWAY_METRIC_PATH}", url.scheme, url.authority);
    if let Some(q) = url.query.filter(|q| !q.is_empty()) {
        out.push('?');
        out.push_str(q);
    }
    if let Some(f) = url.fragment {
        out.push('#');
        out.push_str(f);
    }
    Ok(out)
}

/// Replaces every query value with "REDACTED" (keys kept) and the userinfo
/// password too, so tokens never reach logs or `pushkit check` output.
/// Works on any string, valid URL or not (error messages use it as well).
pub fn redact_url(url: &str) -> String {
    let (before_frag, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    let (base, query) = match before_frag.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (before_frag, None),
    };
    let mut out = redact_userinfo(base);
    if let Some(q) = query {
        out.push('?');
        let pairs: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) if !v.is_empty() => format!("{k}=REDACTED"),
                _ => pair.to_string(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// `scheme://user:pass@host/path` → `scheme://user:REDACTED@host/path`.
fn redact_userinfo(base: &str) -> String {
    let Some((scheme, rest)) = base.split_once("://") else {
        return base.to_string();
    };
    let auth_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(auth_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:REDACTED@{host}{path}"),
            None => base.to_string(),
        },
        None => base.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_http_urls() {
        for ok in [
            "http://127.0.0.1:8428/write",
            "https://openway.example",
            "https://openway.example/",
            "https://openway.example?token=tkn_x",
            "HTTP://host:1/a/b?c=d#frag",
            "http://[::1]:8428/write",
            "http://[::1]/write",
            "http://user:pw@host/x",
            "http://host:0",
        ] {
            assert!(parse_http_url(ok).is_ok(), "{ok}");
        }
        let u = parse_http_url("https://u:p@h:1/a/b?x=1#f").unwrap();
        assert_eq!(
            u,
            HttpUrl {
                scheme: "https",
                authority: "u:p@h:1",
                path: "/a/b",
                query: Some("x=1"),
                fragment: Some("f"),
            }
        );
    }

    #[test]
    fn rejects_other_urls() {
        for bad in [
            "",
            "127.0.0.1:8428/write",
            "ftp://host/x",
            "http://",
            "http:///write",
            "http://host:/x",
            "http://host:99999/x",
            "http://host:port/x",
            "http://::1/x",
            "http://[::1/x",
            "http://ho st/x",
            "http://host/x y",
            "http://:80/x",
        ] {
            assert_eq!(parse_http_url(bad), Err(EXPECT_URL), "{bad:?}");
        }
    }

    #[test]
    fn dataway_rule() {
        assert_eq!(
            dataway_sink_url("https://openway.example?token=tkn_x").unwrap(),
            "https://openway.example/v1/write/metric?token=tkn_x"
        );
        assert_eq!(
            dataway_sink_url("https://openway.example/?token=tkn_x").unwrap(),
            "https://openway.example/v1/write/metric?token=tkn_x"
        );
        assert_eq!(
            dataway_sink_url("http://10.0.0.1:9528").unwrap(),
            "http://10.0.0.1:9528/v1/write/metric"
        );
        assert_eq!(
            dataway_sink_url("http://127.0.0.1:8428/write?db=x").unwrap(),
            "http://127.0.0.1:8428/write?db=x"
        );
        assert_eq!(
            dataway_sink_url("http://vm:8428/api/v1/import/prometheus").unwrap(),
            "http://vm:8428/api/v1/import/prometheus"
        );
        assert_eq!(dataway_sink_url("openway.example"), Err(EXPECT_URL));
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url("https://openway.example/v1/write/metric?token=tkn_x&a=b"),
            "https://openway.example/v1/write/metric?token=REDACTED&a=REDACTED"
        );
        assert_eq!(
            redact_url("http://u:secret@h:1/p?flag&e="),
            "http://u:REDACTED@h:1/p?flag&e="
        );
        assert_eq!(redact_url("http://u@h/p"), "http://u@h/p");
        assert_eq!(redact_url("http://h/p"), "http://h/p");
        assert_eq!(
            redact_url("http://h/p?k=v#frag"),
            "http://h/p?k=REDACTED#frag"
        );
        assert_eq!(redact_url("not a url?token=x"), "not a url?token=REDACTED");
    }
}
