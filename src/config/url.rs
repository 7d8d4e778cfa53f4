//! Sink URLs: http(s) URLs parsed by the `url` crate, DataKit's
//! ENV_DATAWAY rule, and redaction of secrets before a URL is shown
//! anywhere.

use url::Url;

/// What a sink URL must look like, for error messages.
pub(crate) const EXPECT_URL: &str =
    r#"expected an http:// or https:// URL such as "http://127.0.0.1:8428/write""#;

/// Where a Dataway base URL posts metrics (DataKit's write path).
const DATAWAY_METRIC_PATH: &str = "/v1/write/metric";

/// Parses an `http(s)://[user[:pass]@]host[:port][/path][?query][#fragment]`
/// URL with a host.
///
/// The crate forgives what a sink URL should not contain, so that is
/// refused first: whitespace and control characters (it strips them),
/// an empty authority (`http:///write` would take `write` as the host)
/// and an empty port (`http://host:/x`).
pub(crate) fn parse_http_url(s: &str) -> Result<Url, &'static str> {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(EXPECT_URL);
    }
    let (_, rest) = s.split_once("://").ok_or(EXPECT_URL)?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    if host_port.is_empty() || host_port.ends_with(':') {
        return Err(EXPECT_URL);
    }
    let url = Url::parse(s).map_err(|_| EXPECT_URL)?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(EXPECT_URL);
    }
    Ok(url)
}

/// DataKit's ENV_DATAWAY rule for one URL: a URL with no path (or "/") is
/// a Dataway base and posts to `<base>/v1/write/metric?<query>`; a URL with
/// a path is used as given.
/// The URL keeps its text as written: the crate only decides.
pub(crate) fn dataway_sink_url(s: &str) -> Result<String, &'static str> {
    let url = parse_http_url(s)?;
    if url.path() != "/" {
        return Ok(s.to_string());
    }
    // `scheme://authority` as written, then the path, then the rest.
    let (scheme, rest) = s.split_once("://").ok_or(EXPECT_URL)?;
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let mut out = format!("{scheme}://{}{DATAWAY_METRIC_PATH}", &rest[..auth_end]);
    let (before_frag, fragment) = match s.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (s, None),
    };
    if let Some(q) = before_frag.split_once('?').map(|(_, q)| q) {
        if !q.is_empty() {
            out.push('?');
            out.push_str(q);
        }
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    Ok(out)
}

/// Whether a query key names a secret: `p` (InfluxDB 1.x's password), or
/// a key holding `token`, `password`, `passwd`, `pwd`, `secret`, `key`,
/// `auth`, `sig` or `credential`, whatever the case (`apiKey`,
/// `X-Auth-Token`, `signature`).
pub fn is_secret_query_key(key: &str) -> bool {
    const WORDS: [&str; 9] = [
        "token",
        "password",
        "passwd",
        "pwd",
        "secret",
        "key",
        "auth",
        "sig",
        "credential",
    ];
    let k = key.to_ascii_lowercase();
    k == "p" || WORDS.iter().any(|w| k.contains(w))
}

/// Replaces the values of secret query keys ([`is_secret_query_key`])
/// with "REDACTED", and the userinfo password too, so tokens never reach
/// logs or `pushkit check` output; other query values (`db=`, `rp=`) stay
/// readable. Works on any string, valid URL or not (error messages use it
/// as well).
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
                Some((k, v)) if !v.is_empty() && is_secret_query_key(k) => {
                    format!("{k}=REDACTED")
                }
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

/// `text` (a backend's reply, say) with what looks like a secret replaced
/// by "REDACTED": the value of every `key=value` whose key is secret
/// ([`is_secret_query_key`]), the password of `scheme://user:pass@`, and
/// the word after `Bearer ` or `Token `.
pub fn redact_secrets(text: &str) -> String {
    let is_key_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    let ends_value = |c: char| c.is_whitespace() || "&\"'\\,;<>()[]{}".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(['=', ' ', '@']) {
        let (head, tail) = rest.split_at(i);
        let c = tail.as_bytes()[0] as char;
        out.push_str(head);
        out.push(c);
        rest = &tail[1..];
        let value_len = rest.find(ends_value).unwrap_or(rest.len());
        let secret = match c {
            '=' => {
                let key_start = head
                    .char_indices()
                    .rev()
                    .take_while(|&(_, ch)| is_key_char(ch))
                    .last()
                    .map_or(head.len(), |(at, _)| at);
                is_secret_query_key(&head[key_start..])
            }
            ' ' => {
                let word = head.rsplit(|ch: char| !ch.is_ascii_alphabetic()).next();
                matches!(word, Some("Bearer" | "Token" | "bearer" | "token"))
            }
            // `user:pass@host`: the password was already written to
            // `out`; take it back.
            _ => {
                let userinfo_start = out[..out.len() - 1]
                    .rfind(|ch: char| ch == '/' || ch.is_whitespace())
                    .map_or(0, |at| at + 1);
                if let Some(colon) = out[userinfo_start..out.len() - 1].find(':') {
                    out.truncate(userinfo_start + colon + 1);
                    out.push_str("REDACTED@");
                }
                false
            }
        };
        if secret && value_len > 0 {
            out.push_str("REDACTED");
            rest = &rest[value_len..];
        }
    }
    out.push_str(rest);
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
            (u.host_str(), u.port(), u.path(), u.query(), u.fragment()),
            (Some("h"), Some(1), "/a/b", Some("x=1"), Some("f"))
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
            "http://u@:80/x",
            "http://host:1:2/x",
            "http://ho%20st/x",
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
            "https://openway.example/v1/write/metric?token=REDACTED&a=b"
        );
        assert_eq!(
            redact_url("http://influx:8086/write?db=metrics&u=me&p=pw&rp=x"),
            "http://influx:8086/write?db=metrics&u=me&p=REDACTED&rp=x"
        );
        assert_eq!(
            redact_url("http://h/w?apiKey=1&X-Auth=2&sig=3&Password=4&keyless"),
            "http://h/w?apiKey=REDACTED&X-Auth=REDACTED&sig=REDACTED&Password=REDACTED&keyless"
        );
        assert_eq!(
            redact_url("http://u:secret@h:1/p?flag&e="),
            "http://u:REDACTED@h:1/p?flag&e="
        );
        assert_eq!(redact_url("http://u@h/p"), "http://u@h/p");
        assert_eq!(redact_url("http://h/p"), "http://h/p");
        assert_eq!(
            redact_url("http://h/p?k=v&token=t#frag"),
            "http://h/p?k=v&token=REDACTED#frag"
        );
        assert_eq!(redact_url("not a url?token=x"), "not a url?token=REDACTED");
    }

    #[test]
    fn secrets_in_text() {
        let cases = [
            (
                r#"{"error":"authorization failed for https://h/w?db=x&token=tkn_1"}"#,
                r#"{"error":"authorization failed for https://h/w?db=x&token=REDACTED"}"#,
            ),
            (
                "header Authorization: Bearer abc.def",
                "header Authorization: Bearer REDACTED",
            ),
            ("Token xyz was refused", "Token REDACTED was refused"),
            (
                "via http://u:pw@h/p failed",
                "via http://u:REDACTED@h/p failed",
            ),
            (
                "a@b is fine, so is x=1 and key",
                "a@b is fine, so is x=1 and key",
            ),
            ("password= (empty)", "password= (empty)"),
            (
                "unable to parse 'm,t=a f=1': bad",
                "unable to parse 'm,t=a f=1': bad",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(redact_secrets(text), want, "{text}");
        }
    }
}
