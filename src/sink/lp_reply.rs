//! What a line-protocol backend's 400 says about a batch.
//!
//! InfluxDB 1.x answers 400 `partial write: ...` after storing every line
//! it could: `dropped=N` counts the lines it refused for a type conflict,
//! and each line it could not parse is named in an `unable to parse` clause
//! (with `dropped=0`). Such a batch must not be sent again, as its good
//! lines are stored. Any other 400 refuses the batch whole (VictoriaMetrics
//! does for a line over its `-influx.maxLineSize`), and the sink bisects it
//! to isolate the refused lines.

/// The lines a `partial write` reply says were refused, or None if the
/// reply is not a partial write.
pub fn partial_write_dropped(reply: &str) -> Option<u64> {
    if !reply.contains("partial write") {
        return None;
    }
    let unparsed = reply.matches("unable to parse").count() as u64;
    let dropped: u64 = reply
        .match_indices("dropped=")
        .filter_map(|(at, m)| {
            let digits = &reply[at + m.len()..];
            let end = digits
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(digits.len());
            digits[..end].parse::<u64>().ok()
        })
        .sum();
    Some(dropped + unparsed)
}

/// The byte offset in `text` (lines, each ending in `\n`) after its
/// `n`-th line, for splitting a batch of lines in two.
pub fn after_line(text: &[u8], n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    text.iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .nth(n - 1)
        .map_or(text.len(), |(at, _)| at + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_writes_as_influxdb_words_them() {
        let conflict = r#"{"error":"partial write: field type conflict: input field \"f\" on measurement \"m\" is type float, already exists as type string dropped=2"}"#;
        assert_eq!(partial_write_dropped(conflict), Some(2));
        let unparsed = r#"{"error":"partial write: unable to parse 'm f=': missing field value\nunable to parse 'x': missing fields dropped=0"}"#;
        assert_eq!(partial_write_dropped(unparsed), Some(2));
        let both = "partial write: unable to parse 'a': bad dropped=1";
        assert_eq!(partial_write_dropped(both), Some(2));
        assert_eq!(
            partial_write_dropped(r#"{"error":"database not found: \"x\""}"#),
            None
        );
        assert_eq!(partial_write_dropped("line too long"), None);
    }

    #[test]
    fn lines_are_split_after_the_nth() {
        let text = b"a 1\nbb 2\nc 3\n";
        assert_eq!(after_line(text, 0), 0);
        assert_eq!(after_line(text, 1), 4);
        assert_eq!(after_line(text, 2), 9);
        assert_eq!(after_line(text, 3), text.len());
        assert_eq!(after_line(text, 9), text.len());
    }
}
