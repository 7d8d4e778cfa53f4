//! Scalar value syntax shared by files and ENV: durations, sizes, bools,
//! counts, listen addresses and route prefixes.
//!
//! One rule everywhere, so a value that works in a file works in ENV too.
//! Parsers return `Err(expected)`, the "what was expected" half of an error
//! line; the caller adds where the value came from and what it was.
//!
//! The bottom of the config folder: it imports none of it.

use std::net::Ipv6Addr;
use std::time::Duration;

/// What a duration must look like, for error messages.
pub(crate) const EXPECT_DURATION: &str = r#"expected a duration such as "300ms", "10s" or "1m30s""#;
/// What a duration that must be above zero looks like.
pub(crate) const EXPECT_NONZERO_DURATION: &str =
    r#"expected a duration above zero, such as "300ms", "10s" or "1m30s""#;
/// What a size must look like, for error messages.
pub(crate) const EXPECT_SIZE: &str =
    r#"expected a size of at least 1 byte such as 1024, "512KiB", "16MiB" or "1GiB""#;
/// What an ENV bool must look like (Go's strconv.ParseBool).
pub(crate) const EXPECT_ENV_BOOL: &str =
    "expected a bool (1, t, true, TRUE, 0, f, false, FALSE, ...)";
/// What a count must look like.
pub(crate) const EXPECT_COUNT: &str = "expected a whole number of at least 1";
pub(crate) const EXPECT_LIMIT: &str = "expected a whole number, 0 for no limit";
/// What a listen address must look like.
pub(crate) const EXPECT_LISTEN: &str = r#"expected "host:port" with a port 0-65535, such as "localhost:9529", "0.0.0.0:9529", "[::1]:9529" or ":9529" (every interface)"#;
/// What a route prefix must look like.
pub(crate) const EXPECT_ROUTE_PREFIX: &str =
    r##"expected a URL path such as "/v1/pushgateway" (no spaces, "?" or "#")"##;

/// What every secret is shown as.
pub(crate) const REDACTED: &str = "REDACTED";

const NANOS_PER_SEC: u128 = 1_000_000_000;
/// Go's Duration is an int64 of nanoseconds: the largest value it can hold.
const MAX_GO_NANOS: u128 = i64::MAX as u128;

/// Parses a duration the way Go's `time.ParseDuration` does ("300ms",
/// "1m30s", "1.5h", ".5s", plain "0"), but rejects negative values.
/// Fractions are computed exactly so that `format_duration` output reads
/// back to the same value.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, &'static str> {
    let mut rest = s;
    if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    } else if rest.starts_with('-') {
        return Err(EXPECT_DURATION);
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(EXPECT_DURATION);
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, after) = rest.split_at(int_len);
        rest = after;
        let mut frac_digits = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            frac_digits = &after_dot[..frac_len];
            rest = &after_dot[frac_len..];
        } else if int_digits.is_empty() {
            return Err(EXPECT_DURATION);
        }
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(EXPECT_DURATION);
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (unit, after_unit) = rest.split_at(unit_len);
        rest = after_unit;
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => NANOS_PER_SEC,
            "m" => 60 * NANOS_PER_SEC,
            "h" => 3600 * NANOS_PER_SEC,
            _ => return Err(EXPECT_DURATION),
        };
        let mut whole: u128 = 0;
        for b in int_digits.bytes() {
            whole = whole * 10 + u128::from(b - b'0');
            if whole > MAX_GO_NANOS {
                return Err(EXPECT_DURATION);
            }
        }
        // Digits past the 20th add less than a nanosecond even to hours.
        let frac_digits = &frac_digits[..frac_digits.len().min(20)];
        let mut frac: u128 = 0;
        let mut scale: u128 = 1;
        for b in frac_digits.bytes() {
            frac = frac * 10 + u128::from(b - b'0');
            scale *= 10;
        }
        total += whole * unit_nanos + frac * unit_nanos / scale;
        if total > MAX_GO_NANOS {
            return Err(EXPECT_DURATION);
        }
    }
    let secs = (total / NANOS_PER_SEC) as u64;
    let nanos = (total % NANOS_PER_SEC) as u32;
    Ok(Duration::new(secs, nanos))
}

/// Writes a duration the way Go's `Duration.String` does ("10s", "1m30s",
/// "1h0m0s", "1.5ms", "0s"), so rendered configs read like DataKit's.
pub(crate) fn format_duration(d: Duration) -> String {
    let total = d.as_nanos();
    if total == 0 {
        return "0s".to_string();
    }
    if total < NANOS_PER_SEC {
        return if total < 1_000 {
            format!("{total}ns")
        } else if total < 1_000_000 {
            format!("{}\u{b5}s", with_fraction(total, 3))
        } else {
            format!("{}ms", with_fraction(total, 6))
        };
    }
    let whole_secs = total / NANOS_PER_SEC;
    let mut out = String::new();
    let minutes = whole_secs / 60;
    if minutes > 0 {
        let hours = minutes / 60;
        if hours > 0 {
            out.push_str(&format!("{hours}h"));
        }
        out.push_str(&format!("{}m", minutes % 60));
    }
    let below_minute = (whole_secs % 60) * NANOS_PER_SEC + total % NANOS_PER_SEC;
    out.push_str(&format!("{}s", with_fraction(below_minute, 9)));
    out
}

/// `value / 10^digits` with its fraction, trailing zeros (and a bare '.')
/// dropped: Go's fmtFrac and fmtInt together.
fn with_fraction(value: u128, digits: u32) -> String {
    let scale = 10u128.pow(digits);
    let int = value / scale;
    let frac = value % scale;
    if frac == 0 {
        return int.to_string();
    }
    let frac = format!("{frac:0width$}", width = digits as usize);
    format!("{int}.{}", frac.trim_end_matches('0'))
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// Parses a size written as a string: a byte count ("1024") or a count with
/// a binary suffix ("512KiB", "16MiB", "1GiB"). Must be at least 1 byte.
pub(crate) fn parse_size(s: &str) -> Result<u64, &'static str> {
    let (digits, unit) = if let Some(d) = s.strip_suffix("KiB") {
        (d, KIB)
    } else if let Some(d) = s.strip_suffix("MiB") {
        (d, MIB)
    } else if let Some(d) = s.strip_suffix("GiB") {
        (d, GIB)
    } else {
        (s, 1)
    };
    let n = parse_decimal(digits).ok_or(EXPECT_SIZE)?;
    let bytes = n.checked_mul(unit).ok_or(EXPECT_SIZE)?;
    if bytes == 0 {
        return Err(EXPECT_SIZE);
    }
    Ok(bytes)
}

/// Checks a size given as a TOML integer.
pub(crate) fn check_size_int(n: i64) -> Result<u64, &'static str> {
    u64::try_from(n).ok().filter(|&b| b >= 1).ok_or(EXPECT_SIZE)
}

/// "16MiB" when `bytes` is a whole number of KiB/MiB/GiB, else None.
pub(crate) fn size_with_unit(bytes: u64) -> Option<String> {
    [(GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")]
        .into_iter()
        .find(|&(unit, _)| bytes != 0 && bytes.is_multiple_of(unit))
        .map(|(unit, suffix)| format!("{}{suffix}", bytes / unit))
}

/// Parses a count (ENV): decimal digits only, at least 1.
pub(crate) fn parse_count(s: &str) -> Result<usize, &'static str> {
    parse_decimal(s)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n >= 1)
        .ok_or(EXPECT_COUNT)
}

/// Parses a limit (ENV): decimal digits only, 0 meaning none.
pub(crate) fn parse_limit(s: &str) -> Result<u64, &'static str> {
    parse_decimal(s)
        .filter(|&n| i64::try_from(n).is_ok())
        .ok_or(EXPECT_LIMIT)
}

/// Checks a limit given as a TOML integer.
pub(crate) fn check_limit_int(n: i64) -> Result<u64, &'static str> {
    u64::try_from(n).map_err(|_| EXPECT_LIMIT)
}

/// Checks a count given as a TOML integer.
pub(crate) fn check_count_int(n: i64) -> Result<usize, &'static str> {
    usize::try_from(n)
        .ok()
        .filter(|&n| n >= 1)
        .ok_or(EXPECT_COUNT)
}

/// Plain decimal digits (no sign, no spaces, no underscores) as u64.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A network in CIDR notation, its address masked to the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside (an IPv4-mapped IPv6 address counts as the
    /// IPv4 one, as a dual-stack socket reports IPv4 peers so).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask(u32::from(ip).into(), 32, self.prefix) == u32::from(net).into()
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask(u128::from(ip), 128, self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The top `prefix` bits of a `width`-bit address.
fn mask(bits: u128, width: u32, prefix: u8) -> u128 {
    let keep = u32::from(prefix).min(width);
    if keep == 0 {
        return 0;
    }
    let low = width - keep;
    (bits >> low) << low
}

/// Parses "10.0.0.0/8", "fd00::/8" or a bare address (a /32 or /128).
pub(crate) fn parse_cidr(s: &str) -> Option<Cidr> {
    use std::net::IpAddr;
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p)),
        None => (s.parse::<IpAddr>().ok()?, None),
    };
    let width: u8 = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => width,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse::<u8>().ok().filter(|&n| n <= width)?
        }
        Some(_) => return None,
    };
    let addr = match addr {
        IpAddr::V4(v4) => IpAddr::V4((mask(u32::from(v4).into(), 32, prefix) as u32).into()),
        IpAddr::V6(v6) => IpAddr::V6(mask(u128::from(v6), 128, prefix).into()),
    };
    Some(Cidr { addr, prefix })
}

/// Whether `s` looks like a bcrypt hash: `$2a$`, `$2b$` or `$2y$`, a
/// two-digit cost from 4 to 31, and 53 characters of salt and hash.
pub(crate) fn is_bcrypt_hash(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 60
        && (s.starts_with("$2a$") || s.starts_with("$2b$") || s.starts_with("$2y$"))
        && s[4..6].parse::<u8>().is_ok_and(|c| (4..=31).contains(&c))
        && b[6] == b'$'
        && b[7..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'.' || c == b'/')
}

/// Parses an ENV bool exactly as Go's strconv.ParseBool does.
pub(crate) fn parse_env_bool(s: &str) -> Result<bool, &'static str> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(EXPECT_ENV_BOOL),
    }
}

/// Checks a listen address: "host:port" (IPv6 in brackets), port 0-65535;
/// an empty host (":9529", Go's and DataKit's form) means every interface.
/// Returns it unchanged so the server binds what was written.
pub(crate) fn check_listen(s: &str) -> Result<String, &'static str> {
    let (host, port) = split_host_port(s).ok_or(EXPECT_LISTEN)?;
    if !host.is_empty() {
        check_host(host).ok_or(EXPECT_LISTEN)?;
    }
    check_port(port).ok_or(EXPECT_LISTEN)?;
    Ok(s.to_string())
}

/// Splits "host:port" / "[v6]:port" at the port colon. Port may be empty
/// here; `check_port` decides.
pub(crate) fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if s.starts_with('[') {
        let close = s.find(']')?;
        let port = s[close + 1..].strip_prefix(':')?;
        Some((&s[..=close], port))
    } else {
        s.rsplit_once(':')
    }
}

/// A host: a bracketed IPv6 address (zone allowed) or a name/IPv4 made of
/// letters, digits, '.', '-' and '_'.
pub(crate) fn check_host(host: &str) -> Option<()> {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let addr = inner.split_once('%').map_or(inner, |(a, _zone)| a);
        return addr.parse::<Ipv6Addr>().ok().map(|_| ());
    }
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    ok.then_some(())
}

/// A port: 1 to 5 decimal digits, at most 65535.
pub(crate) fn check_port(port: &str) -> Option<u16> {
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    port.parse().ok()
}

/// Normalises a route prefix as the Prometheus Pushgateway does: "" and "/"
/// mean none (""), otherwise one leading "/" and no trailing "/".
pub(crate) fn normalize_route_prefix(s: &str) -> Result<String, &'static str> {
    if s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
    {
        return Err(EXPECT_ROUTE_PREFIX);
    }
    let trimmed = s.trim_matches('/');
    if trimmed.is_empty() {
        Ok(String::new())
    } else {
        Ok(format!("/{trimmed}"))
    }
}

/// Writes a string as a TOML basic string (also used to quote the value
/// found in error messages, so it shows exactly what was read).
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Result<Duration, &'static str> {
        parse_duration(s)
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(d("0"), Ok(Duration::ZERO));
        assert_eq!(d("+0"), Ok(Duration::ZERO));
        assert_eq!(d("0s"), Ok(Duration::ZERO));
        assert_eq!(d("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(d("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(d("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(d("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(d("2h45m"), Ok(Duration::from_secs(2 * 3600 + 45 * 60)));
        assert_eq!(d(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(d("1.s"), Ok(Duration::from_secs(1)));
        assert_eq!(d("+5s"), Ok(Duration::from_secs(5)));
        assert_eq!(d("1ns"), Ok(Duration::from_nanos(1)));
        assert_eq!(d("2us"), Ok(Duration::from_micros(2)));
        assert_eq!(d("2\u{b5}s"), Ok(Duration::from_micros(2)));
        assert_eq!(d("2\u{3bc}s"), Ok(Duration::from_micros(2)));
        assert_eq!(d("1h1m1s1ms1us1ns"), Ok(Duration::new(3661, 1_001_001)));
        assert_eq!(d("1.000000001s"), Ok(Duration::new(1, 1)));
        assert_eq!(d("2562047h"), Ok(Duration::from_secs(2562047 * 3600)));
    }

    #[test]
    fn durations_rejected() {
        for bad in [
            "", "-1s", "-0", "10", "00", "10x", "s", ".s", "1.5", "1 s", " 1s", "1s ", "1S", "1d",
            "+", "2562048h", "1e3s", "1,5s",
        ] {
            assert_eq!(d(bad), Err(EXPECT_DURATION), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn durations_format_like_go() {
        let f = |s: &str| format_duration(d(s).unwrap());
        assert_eq!(f("0"), "0s");
        assert_eq!(f("10s"), "10s");
        assert_eq!(f("90s"), "1m30s");
        assert_eq!(f("1h"), "1h0m0s");
        assert_eq!(f("2h45m"), "2h45m0s");
        assert_eq!(f("300ms"), "300ms");
        assert_eq!(f("1.5ms"), "1.5ms");
        assert_eq!(f("1500us"), "1.5ms");
        assert_eq!(f("2us"), "2\u{b5}s");
        assert_eq!(f("7ns"), "7ns");
        assert_eq!(f("1.5s"), "1.5s");
        assert_eq!(f("61.25s"), "1m1.25s");
        assert_eq!(f("1h0m0.000000001s"), "1h0m0.000000001s");
        for s in ["1h1m1s1ms1us1ns", "1.5h", "2562047h", "999ms", "1.000001s"] {
            assert_eq!(d(&f(s)), d(s), "{s} must round-trip");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        for bad in [
            "",
            "0",
            "0MiB",
            "MiB",
            "16MB",
            "16 MiB",
            "16mib",
            "-1",
            "1.5MiB",
            "+1",
            "99999999999GiB",
        ] {
            assert_eq!(parse_size(bad), Err(EXPECT_SIZE), "{bad:?}");
        }
        assert_eq!(check_size_int(1), Ok(1));
        assert_eq!(check_size_int(0), Err(EXPECT_SIZE));
        assert_eq!(check_size_int(-5), Err(EXPECT_SIZE));
        assert_eq!(size_with_unit(16 << 20).as_deref(), Some("16MiB"));
        assert_eq!(size_with_unit(1 << 30).as_deref(), Some("1GiB"));
        assert_eq!(size_with_unit(1000), None);
        assert_eq!(size_with_unit(3 * 512), None);
        assert_eq!(size_with_unit(2048).as_deref(), Some("2KiB"));
        assert_eq!(size_with_unit(0), None);
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count("1000"), Ok(1000));
        assert_eq!(parse_count("1"), Ok(1));
        for bad in ["0", "", "-1", "+1", "1e3", " 1", "1_000", "abc"] {
            assert_eq!(parse_count(bad), Err(EXPECT_COUNT), "{bad:?}");
        }
        assert_eq!(check_count_int(0), Err(EXPECT_COUNT));
        assert_eq!(check_count_int(7), Ok(7));
    }

    #[test]
    fn env_bools_follow_go_parsebool() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_env_bool(t), Ok(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_env_bool(f), Ok(false), "{f}");
        }
        for bad in ["yes", "no", "on", "tRUE", "", " true", "2"] {
            assert_eq!(parse_env_bool(bad), Err(EXPECT_ENV_BOOL), "{bad}");
        }
    }

    #[test]
    fn listen_addresses() {
        for ok in [
            "localhost:9529",
            "0.0.0.0:9529",
            "127.0.0.1:0",
            "[::1]:9529",
            "[::]:65535",
            "[fe80::1%eth0]:80",
            "my-host.example_x:1",
            ":9529",
        ] {
            assert_eq!(check_listen(ok), Ok(ok.to_string()), "{ok}");
        }
        for bad in [
            "",
            ":",
            ":x",
            "localhost",
            "localhost:",
            "localhost:65536",
            "localhost:-1",
            "localhost:http",
            "::1:9529",
            "[::1]",
            "[::1]9529",
            "[zz]:1",
            "a b:1",
            "[]:1",
            "host:123456",
            "http://localhost:9529",
        ] {
            assert_eq!(check_listen(bad), Err(EXPECT_LISTEN), "{bad:?}");
        }
    }

    #[test]
    fn route_prefix_normalised_like_pushgateway() {
        let n = |s: &str| normalize_route_prefix(s).unwrap();
        assert_eq!(n(""), "");
        assert_eq!(n("/"), "");
        assert_eq!(n("//"), "");
        assert_eq!(n("a"), "/a");
        assert_eq!(n("/a"), "/a");
        assert_eq!(n("a/b/"), "/a/b");
        assert_eq!(n("/v1/pushgateway/"), "/v1/pushgateway");
        assert_eq!(n(&n("a/b/")), "/a/b");
        assert!(normalize_route_prefix("/a b").is_err());
        assert!(normalize_route_prefix("/a?x").is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("10x"), "\"10x\"");
        assert_eq!(quote("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }
}
