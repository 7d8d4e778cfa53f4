//! Lines written one after another from strings that mostly repeat the
//! line before's, as the points of one disk-queue record do: the
//! measurement, the leading tags (the grouping labels), the field key and
//! the time are copied from the line before instead of escaped or
//! formatted again.
//!
//! Invariant: the bytes are exactly [`super::write_line`]'s for the same
//! point. A string counts as repeated only when it is the very same bytes
//! as the line before's (same address and length): the caller hands
//! strings that all live in one buffer that does not change while a
//! [`LineReuse`] is used, so the same place holds the same text. Nothing
//! is compared by content.

use super::{
    escape_into, is_tag_key, write_float, write_time, Dialect, LpDrops, KEY_SPECIALS,
    MEASUREMENT_SPECIALS,
};
use std::ops::Range;

/// Where a string is and how long it is.
type Place = (usize, usize);

fn place(s: &[u8]) -> Place {
    (s.as_ptr() as usize, s.len())
}

/// The line before, while it is whole in `out`: the places of its
/// strings, and where their escaped forms end in `out`.
#[derive(Default)]
pub struct LineReuse {
    /// False before the first line and after a line left out.
    valid: bool,
    start: usize,
    measurement: Place,
    measurement_end: usize,
    /// Key, value, and where the tag (with its comma) ends.
    tags: Vec<(Place, Place, usize)>,
    /// The first field's key and its escaped form.
    key: Option<(Place, Range<usize>)>,
    /// The time and its text (` <time>\n`).
    time: (i64, Range<usize>),
}

impl LineReuse {
    /// Appends one line, as [`super::write_line`] does; see the module
    /// docs for what `measurement`, `tags` and the fields' keys must be.
    #[allow(clippy::too_many_arguments)]
    pub fn write<'a>(
        &mut self,
        out: &mut Vec<u8>,
        dialect: Dialect,
        measurement: &[u8],
        tags: &[(&'a [u8], &'a [u8])],
        fields: impl IntoIterator<Item = (&'a [u8], f64)>,
        time_ns: i64,
        drops: &mut LpDrops,
    ) -> bool {
        let mark = out.len();
        // The measurement and the leading tags that are the line before's
        // come as one copy.
        let mut same = 0;
        if self.valid && self.measurement == place(measurement) {
            while same < tags.len()
                && same < self.tags.len()
                && self.tags[same].0 == place(tags[same].0)
                && self.tags[same].1 == place(tags[same].1)
            {
                same += 1;
            }
            let end = match same {
                0 => self.measurement_end,
                n => self.tags[n - 1].2,
            };
            out.extend_from_within(self.start..end);
            let moved = |at: usize| mark + (at - self.start);
            self.measurement_end = moved(self.measurement_end);
            for tag in &mut self.tags[..same] {
                tag.2 = moved(tag.2);
            }
        } else {
            escape_into(out, measurement, MEASUREMENT_SPECIALS, dialect);
            self.measurement = place(measurement);
            self.measurement_end = out.len();
        }
        self.tags.truncate(same);
        for &(k, v) in &tags[same..] {
            out.push(b',');
            escape_into(out, k, KEY_SPECIALS, dialect);
            out.push(b'=');
            escape_into(out, v, KEY_SPECIALS, dialect);
            self.tags.push((place(k), place(v), out.len()));
        }
        let mut first = true;
        let mut key = None;
        for (key_bytes, value) in fields {
            if !drops.keep(value, || is_tag_key(key_bytes, tags.iter().copied())) {
                continue;
            }
            out.push(if first { b' ' } else { b',' });
            let at = out.len();
            match &self.key {
                Some((was, range)) if first && self.valid && *was == place(key_bytes) => {
                    out.extend_from_within(range.clone())
                }
                _ => escape_into(out, key_bytes, KEY_SPECIALS, dialect),
            }
            if first {
                key = Some((place(key_bytes), at..out.len()));
            }
            first = false;
            out.push(b'=');
            write_float(out, value);
        }
        if first {
            out.truncate(mark);
            // The line before is no longer where it was looked for.
            self.valid = false;
            return false;
        }
        self.key = key;
        let at = out.len();
        match &self.time {
            (t, range) if self.valid && *t == time_ns => out.extend_from_within(range.clone()),
            _ => write_time(out, time_ns),
        }
        self.time = (time_ns, at..out.len());
        self.start = mark;
        self.valid = true;
        true
    }
}
