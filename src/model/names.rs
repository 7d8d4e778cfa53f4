//! The naming rules of the Prometheus data model, as the Pushgateway and
//! its text parser enforce them: metric names `[a-zA-Z_:][a-zA-Z0-9_:]*`,
//! label names `[a-zA-Z_][a-zA-Z0-9_]*`. Checked on bytes, so that parsers
//! can test a name before they make a string of it.

/// True for a valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_valid_metric_name(name: &[u8]) -> bool {
    match name.split_first() {
        Some((&first, rest)) => {
            is_metric_name_start(first) && rest.iter().all(|&b| is_metric_name_continue(b))
        }
        None => false,
    }
}

/// True for a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &[u8]) -> bool {
    match name.split_first() {
        Some((&first, rest)) => {
            is_label_name_start(first) && rest.iter().all(|&b| is_label_name_continue(b))
        }
        None => false,
    }
}

#[inline]
pub const fn is_label_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

#[inline]
pub const fn is_label_name_continue(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

#[inline]
pub const fn is_metric_name_start(b: u8) -> bool {
    is_label_name_start(b) || b == b':'
}

#[inline]
pub const fn is_metric_name_continue(b: u8) -> bool {
    is_label_name_continue(b) || b == b':'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_validation() {
        assert!(is_valid_metric_name(b"a:b_c9"));
        assert!(is_valid_metric_name(b":x"));
        assert!(!is_valid_metric_name(b""));
        assert!(!is_valid_metric_name(b"9a"));
        assert!(!is_valid_metric_name(b"a-b"));
        assert!(is_valid_label_name(b"_a9"));
        assert!(!is_valid_label_name(b"a:b"));
        assert!(!is_valid_label_name(b""));
        assert!(!is_valid_label_name(b"1a"));
    }
}
