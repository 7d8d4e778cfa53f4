//! A push body: content decoding (gzip, snappy framing) under a size cap,
//! then the format choice (delimited protobuf or text 0.0.4) and parsing.

use crate::expfmt;
use crate::http::body::inflight_full;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::inflight::InflightPermit;
use crate::model::family::Family;
use std::io::Read;

/// Undoes `Content-Encoding`, never producing more than `max_decompressed`
/// bytes. `encoding` is the header value, if any.
pub fn decode_content(
    encoding: Option<&str>,
    body: &[u8],
    max_decompressed: u64,
) -> Result<Vec<u8>, ApiError> {
    decode_content_within(encoding, body, max_decompressed, None)
}

/// `decode_content`, holding the decoded bytes in `permit` as they grow;
/// without room (the budget is not waited for here: this runs blocking)
/// the push is refused with 503.
pub fn decode_content_within(
    encoding: Option<&str>,
    body: &[u8],
    max_decompressed: u64,
    permit: Option<&InflightPermit>,
) -> Result<Vec<u8>, ApiError> {
    let encoding = encoding.map(str::trim).unwrap_or("");
    if encoding.is_empty() || encoding.eq_ignore_ascii_case("identity") {
        if body.len() as u64 > max_decompressed {
            return Err(too_large(max_decompressed));
        }
        if let Some(p) = permit {
            if !p.try_grow(body.len() as u64) {
                return Err(inflight_full(p.budget_max()));
            }
        }
        return Ok(body.to_vec());
    }
    if encoding.eq_ignore_ascii_case("gzip") {
        // Multi-member, as Go's gzip.Reader reads it.
        read_capped(
            flate2::read::MultiGzDecoder::new(body),
            "gzip",
            max_decompressed,
            first_step(body),
            permit,
        )
    } else if encoding.eq_ignore_ascii_case("snappy") {
        // The framing format, as Pushgateway 1.6+ and client_golang send it.
        read_capped(
            snap::read::FrameDecoder::new(body),
            "snappy",
            max_decompressed,
            first_step(body),
            permit,
        )
    } else {
        Err(ApiError::new(
            ErrorCode::UnsupportedContentEncoding,
            format!("unsupported Content-Encoding {encoding:?}: expected gzip, snappy or identity"),
        ))
    }
}

/// The largest first allocation of a decoded body.
const STEP: u64 = 1 << 20;

/// The decoded buffer's first size: about what a compressed body of this
/// size inflates to, so that a small push does not allocate (and take from
/// the budget) a whole `STEP`.
fn first_step(body: &[u8]) -> u64 {
    (body.len() as u64 * 4).clamp(64 << 10, STEP)
}

fn read_capped(
    reader: impl Read,
    what: &str,
    max: u64,
    first: u64,
    permit: Option<&InflightPermit>,
) -> Result<Vec<u8>, ApiError> {
    let corrupt = |e: std::io::Error| {
        ApiError::new(ErrorCode::CorruptBody, format!("corrupt {what} body: {e}"))
    };
    let mut reader = reader.take(max.saturating_add(1));
    let Some(permit) = permit else {
        let mut out = Vec::new();
        reader.read_to_end(&mut out).map_err(corrupt)?;
        if out.len() as u64 > max {
            return Err(too_large(max));
        }
        return Ok(out);
    };
    // The buffer grows by doubling, as Vec would, but each growth is taken
    // from the budget before it is allocated: what the permit holds is what
    // the buffer has.
    let mut out: Vec<u8> = Vec::new();
    loop {
        if out.len() == out.capacity() {
            let cap = out.capacity() as u64;
            let want = (cap * 2).max(first).min(max.saturating_add(1));
            if !permit.try_grow(want - cap) {
                return Err(inflight_full(permit.budget_max()));
            }
            out.reserve_exact((want - cap) as usize);
        }
        let room = (out.capacity() - out.len()) as u64;
        let read = (&mut reader)
            .take(room)
            .read_to_end(&mut out)
            .map_err(corrupt)?;
        if out.len() as u64 > max {
            return Err(too_large(max));
        }
        if read == 0 || (out.len() as u64) < out.capacity() as u64 {
            return Ok(out);
        }
    }
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        ErrorCode::DecompressedBodyTooLarge,
        format!("decompressed body exceeds max_decompressed_size ({max} bytes)"),
    )
}

/// True if and only if the Content-Type is delimited MetricFamily protobuf,
/// parameters in any order, as the Pushgateway decides it.
pub fn is_delimited_protobuf(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let mut parts = ct.split(';');
    let media = parts.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/vnd.google.protobuf") {
        return false;
    }
    let (mut proto, mut encoding) = (None, None);
    for param in parts {
        let Some((k, v)) = param.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"');
        match k.trim().to_ascii_lowercase().as_str() {
            "proto" => proto = Some(v.to_string()),
            "encoding" => encoding = Some(v.to_string()),
            _ => {}
        }
    }
    proto.as_deref() == Some("io.prometheus.client.MetricFamily")
        && encoding.as_deref() == Some("delimited")
}

/// Parses a decoded body in the format its Content-Type names.
pub fn parse_families(
    content_type: Option<&str>,
    body: &[u8],
    utf8_names: bool,
) -> Result<Vec<Family>, ApiError> {
    let protobuf = is_delimited_protobuf(content_type);
    let parsed = if protobuf {
        expfmt::parse_delimited_names(body, utf8_names)
    } else {
        expfmt::parse_text_names(body, utf8_names)
    };
    parsed.map_err(|e| {
        let code = match (e.duplicate_family, protobuf) {
            (true, _) => ErrorCode::DuplicateMetricFamily,
            (false, true) => ErrorCode::InvalidProtobuf,
            (false, false) => ErrorCode::InvalidTextFormat,
        };
        ApiError::new(code, e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn decoding_holds_its_bytes_in_the_budget() {
        use crate::http::inflight::InflightBudget;
        let data = vec![7u8; 3 * STEP as usize + 5];
        let body = gzip(&data);
        // Room for it: decoded exactly, and the permit holds at least that.
        let budget = InflightBudget::new(64 << 20);
        let permit = budget.permit();
        let out = decode_content_within(Some("gzip"), &body, 64 << 20, Some(&permit)).unwrap();
        assert_eq!(out, data);
        assert!(permit.held() >= out.len() as u64, "{}", permit.held());
        assert_eq!(budget.used(), permit.held());
        drop(permit);
        assert_eq!(budget.used(), 0);
        // No room: refused for room, and nothing is held after.
        let small = InflightBudget::new(2 * STEP);
        let permit = small.permit();
        let e = decode_content_within(Some("gzip"), &body, 64 << 20, Some(&permit)).unwrap_err();
        assert_eq!(e.code, ErrorCode::InflightFull);
        drop(permit);
        assert_eq!(small.used(), 0);
        // The size cap still rules: 413, not a budget error.
        let budget = InflightBudget::new(64 << 20);
        let permit = budget.permit();
        let e = decode_content_within(Some("gzip"), &body, STEP, Some(&permit)).unwrap_err();
        assert_eq!(e.code, ErrorCode::DecompressedBodyTooLarge);
        // Identity bodies are held too.
        let permit = budget.permit();
        decode_content_within(None, b"m 1\n", 100, Some(&permit)).unwrap();
        assert_eq!(permit.held(), 4);
    }

    fn snappy(data: &[u8]) -> Vec<u8> {
        let mut e = snap::write::FrameEncoder::new(Vec::new());
        e.write_all(data).unwrap();
        e.into_inner().unwrap()
    }

    #[test]
    fn identity_gzip_snappy() {
        let text = b"a 1\n";
        assert_eq!(decode_content(None, text, 100).unwrap(), text);
        assert_eq!(decode_content(Some("identity"), text, 100).unwrap(), text);
        assert_eq!(
            decode_content(Some("gzip"), &gzip(text), 100).unwrap(),
            text
        );
        assert_eq!(
            decode_content(Some("snappy"), &snappy(text), 100).unwrap(),
            text
        );
    }

    #[test]
    fn corrupt_and_truncated() {
        let g = gzip(b"a 1\nb 2\n");
        for body in [&b"not gzip"[..], &g[..g.len() - 4]] {
            let e = decode_content(Some("gzip"), body, 100).unwrap_err();
            assert_eq!(e.code, ErrorCode::CorruptBody, "{e}");
        }
        let s = snappy(b"a 1\nb 2\n");
        for body in [&b"not snappy"[..], &s[..s.len() - 2]] {
            let e = decode_content(Some("snappy"), body, 100).unwrap_err();
            assert_eq!(e.code, ErrorCode::CorruptBody, "{e}");
        }
    }

    #[test]
    fn decompression_is_capped() {
        let big = vec![b'#'; 10_000];
        let e = decode_content(Some("gzip"), &gzip(&big), 9_999).unwrap_err();
        assert_eq!(e.code, ErrorCode::DecompressedBodyTooLarge);
        assert_eq!(
            decode_content(Some("gzip"), &gzip(&big), 10_000)
                .unwrap()
                .len(),
            10_000
        );
        let e = decode_content(Some("snappy"), &snappy(&big), 100).unwrap_err();
        assert_eq!(e.code, ErrorCode::DecompressedBodyTooLarge);
        let e = decode_content(None, &big, 100).unwrap_err();
        assert_eq!(e.code, ErrorCode::DecompressedBodyTooLarge);
    }

    #[test]
    fn unknown_encoding_is_415() {
        let e = decode_content(Some("br"), b"x", 100).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedContentEncoding);
        assert_eq!(e.code.status(), 415);
    }

    #[test]
    fn protobuf_content_type_detection() {
        let yes = [
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
            "application/vnd.google.protobuf;encoding=delimited;proto=io.prometheus.client.MetricFamily",
            "Application/Vnd.Google.Protobuf; proto=\"io.prometheus.client.MetricFamily\"; encoding=delimited",
        ];
        for ct in yes {
            assert!(is_delimited_protobuf(Some(ct)), "{ct}");
        }
        let no = [
            "text/plain; version=0.0.4",
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily",
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=text",
            "application/vnd.google.protobuf; proto=other; encoding=delimited",
            "",
        ];
        for ct in no {
            assert!(!is_delimited_protobuf(Some(ct)), "{ct}");
        }
        assert!(!is_delimited_protobuf(None));
    }

    #[test]
    fn parse_errors_are_classified() {
        let e = parse_families(None, b"a 1\nb 1\na 2\n", false).unwrap_err();
        assert_eq!(e.code, ErrorCode::DuplicateMetricFamily);
        let e = parse_families(None, b"a x\n", false).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidTextFormat);
        assert!(e.message.contains("line 1"), "{}", e.message);
        let pb = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";
        let e = parse_families(Some(pb), b"\x05abc", false).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidProtobuf);
    }
}
