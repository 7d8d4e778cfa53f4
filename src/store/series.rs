//! How the store keeps a family compactly. Every series of a group carries
//! the group's labels (and `instance=""` when there is no instance label),
//! so a stored series keeps only its own labels, packed into one
//! allocation, and a plain `f64` for counters, gauges and untyped samples;
//! the full label set is put back together when it is needed (exposition,
//! JSON, snapshots). The Go Pushgateway keeps every series as a protobuf
//! message, about 1.7 KB each; this keeps a typical one near 100 bytes.

use crate::expfmt::model::{Family, Metric, MetricType, Value};
use crate::pushgateway::grouping::GroupingKey;
use std::hash::Hasher;

/// A group's labels as its series carry them, sorted by name.
#[derive(Debug, Clone)]
pub struct GroupLabels {
    pairs: Vec<(String, String)>,
    has_instance: bool,
}

impl GroupLabels {
    pub fn new(key: &GroupingKey) -> GroupLabels {
        let mut pairs = key.labels().to_vec();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let has_instance = pairs.iter().any(|(k, _)| k == "instance");
        GroupLabels {
            pairs,
            has_instance,
        }
    }

    fn contains(&self, name: &str) -> bool {
        self.pairs
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
            .is_ok()
    }

    /// The full, sorted label set of a series whose own labels are
    /// `packed`, into `out` (cleared first).
    pub fn merge<'a>(&'a self, packed: &'a [u8], out: &mut Vec<(&'a str, &'a str)>) {
        out.clear();
        let mut own = unpack(packed).peekable();
        let mut group = self
            .pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .peekable();
        let mut instance_pending = !self.has_instance;
        loop {
            let next = match (own.peek(), group.peek()) {
                (Some(a), Some(b)) if a.0 < b.0 => own.next(),
                (Some(_), Some(_)) | (None, Some(_)) => group.next(),
                (Some(_), None) => own.next(),
                (None, None) => None,
            };
            // The implicit instance="" goes where "instance" sorts, unless
            // the series has its own instance label.
            if instance_pending && next.is_none_or(|(k, _)| k >= "instance") {
                instance_pending = false;
                if next.is_none_or(|(k, _)| k != "instance") {
                    out.push(("instance", ""));
                }
            }
            match next {
                Some(pair) => out.push(pair),
                None => break,
            }
        }
    }
}

/// Label pairs as `len name len value ...`, lengths as LEB128 varints.
fn pack<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Box<[u8]> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        for s in [k, v] {
            let mut n = s.len();
            loop {
                let byte = (n & 0x7f) as u8;
                n >>= 7;
                if n == 0 {
                    out.push(byte);
                    break;
                }
                out.push(byte | 0x80);
            }
            out.extend_from_slice(s.as_bytes());
        }
    }
    out.into_boxed_slice()
}

fn unpack(mut packed: &[u8]) -> impl Iterator<Item = (&str, &str)> {
    let mut next_str = move || -> Option<&str> {
        if packed.is_empty() {
            return None;
        }
        let mut n = 0usize;
        let mut shift = 0;
        loop {
            let byte = packed[0];
            packed = &packed[1..];
            n |= usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        let (s, rest) = packed.split_at(n);
        packed = rest;
        Some(std::str::from_utf8(s).expect("packed from a str"))
    };
    std::iter::from_fn(move || Some((next_str()?, next_str()?)))
}

#[derive(Debug, Clone)]
enum StoredValue {
    Simple(f64),
    /// Summaries and histograms, rarer and bigger.
    Other(Box<Value>),
}

#[derive(Debug, Clone)]
pub struct StoredSeries {
    /// The series' own labels, sorted, without the group's.
    labels: Box<[u8]>,
    value: StoredValue,
}

/// One family of one group, as stored.
#[derive(Debug, Clone)]
pub struct StoredFamily {
    pub help: Option<Box<str>>,
    pub kind: MetricType,
    pub series: Box<[StoredSeries]>,
    /// When the push that stored it arrived, ns since the epoch.
    pub pushed_ns: i64,
}

impl StoredSeries {
    pub fn labels<'a>(&'a self, group: &'a GroupLabels, out: &mut Vec<(&'a str, &'a str)>) {
        group.merge(&self.labels, out);
    }

    /// The value; `Value::Simple` is built on the stack.
    pub fn value(&self) -> std::borrow::Cow<'_, Value> {
        match &self.value {
            StoredValue::Simple(v) => std::borrow::Cow::Owned(Value::Simple(*v)),
            StoredValue::Other(v) => std::borrow::Cow::Borrowed(v),
        }
    }
}

impl StoredFamily {
    /// Packs a sanitized family (grouping labels forced, labels sorted,
    /// timestamps dropped) of the group whose labels are `group`.
    pub fn pack(family: &Family, group: &GroupLabels, pushed_ns: i64) -> StoredFamily {
        let series = family
            .metrics
            .iter()
            .map(|m| {
                // The group's labels, and the instance="" that stands in for
                // a missing instance, are put back when the series is read.
                let implicit =
                    |k: &str, v: &str| k == "instance" && v.is_empty() && !group.has_instance;
                let own = m
                    .labels
                    .iter()
                    .filter(|(k, v)| !group.contains(k) && !implicit(k, v));
                StoredSeries {
                    labels: pack(own.map(|(k, v)| (k.as_str(), v.as_str()))),
                    value: match &m.value {
                        Value::Simple(v) => StoredValue::Simple(*v),
                        other => StoredValue::Other(Box::new(other.clone())),
                    },
                }
            })
            .collect();
        StoredFamily {
            help: family.help.as_deref().map(Box::from),
            kind: family.kind,
            series,
            pushed_ns,
        }
    }

    /// The family with full label sets, as it was pushed (sanitized).
    pub fn unpack(&self, name: &str, group: &GroupLabels) -> Family {
        let mut labels = Vec::new();
        let metrics = self
            .series
            .iter()
            .map(|s| {
                s.labels(group, &mut labels);
                Metric {
                    labels: labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    value: s.value().into_owned(),
                    timestamp_ms: None,
                }
            })
            .collect();
        Family {
            name: name.to_string(),
            help: self.help.as_deref().map(str::to_string),
            kind: self.kind,
            metrics,
        }
    }

    /// The identities of its series, as [`series_id`] computes them.
    pub fn series_ids<'a>(
        &'a self,
        name: &'a str,
        group: &'a GroupLabels,
    ) -> impl Iterator<Item = u64> + 'a {
        let mut labels = Vec::new();
        self.series.iter().map(move |s| {
            s.labels(group, &mut labels);
            series_id(name, labels.iter().copied())
        })
    }
}

/// A series' identity: its family name and its sorted labels, hashed to
/// 64 bits. Two different series with one id would make the check refuse a
/// valid push, so the hash must mix well; SipHash did, at 7 % of the push
/// path, so this is a multiply-fold hash (as wyhash does it) over 8-byte
/// words, each string closed by its length.
pub fn series_id<'a>(name: &str, labels: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut h = IdHash(SEED);
    h.write(name.as_bytes());
    for (k, v) in labels {
        h.write(k.as_bytes());
        h.write(v.as_bytes());
    }
    fold(h.0, SEED)
}

const SEED: u64 = 0xa076_1d64_78bd_642f;
const MULT: u64 = 0xe703_7ed1_a0b4_28db;

/// The 128-bit product of `a` and `b`, its halves xored.
fn fold(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

struct IdHash(u64);

impl IdHash {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let w = u64::from_le_bytes(w.try_into().expect("8 bytes"));
            self.0 = fold(self.0 ^ w ^ SEED, MULT);
        }
        let rest = words.remainder();
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        self.0 = fold(
            self.0 ^ u64::from_le_bytes(last) ^ SEED,
            MULT ^ bytes.len() as u64,
        );
    }
}

/// For maps keyed by [`series_id`]: the key is already a hash.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed with it; anything else still works.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expfmt::text::parse_text;
    use crate::pushgateway::grouping::parse_grouping_key;
    use crate::store::sanitize::sanitize;

    fn round_trip(job: &str, pairs: &[&str], text: &str) {
        let key = parse_grouping_key(job, false, pairs).unwrap();
        let group = GroupLabels::new(&key);
        let mut families = parse_text(text.as_bytes()).unwrap();
        sanitize(&key, &mut families);
        for f in &families {
            let stored = StoredFamily::pack(f, &group, 7);
            assert_eq!(&stored.unpack(&f.name, &group), f, "{text}");
            let ids: Vec<u64> = stored.series_ids(&f.name, &group).collect();
            let want: Vec<u64> = f
                .metrics
                .iter()
                .map(|m| {
                    series_id(
                        &f.name,
                        m.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                    )
                })
                .collect();
            assert_eq!(ids, want);
        }
    }

    #[test]
    fn ids_separate_what_they_should() {
        let id = |name: &str, l: &[(&str, &str)]| series_id(name, l.iter().copied());
        let base = id("m", &[("a", "bc")]);
        assert_ne!(base, id("m", &[("ab", "c")]));
        assert_ne!(base, id("ma", &[("", "bc")]));
        assert_ne!(base, id("m", &[("a", "bd")]));
        assert_ne!(id("m", &[]), id("m", &[("", "")]));
        assert_eq!(base, id("m", &[("a", "bc")]));
        // No collision among many near-identical series.
        let mut seen = std::collections::HashSet::new();
        for i in 0..200_000 {
            let v = i.to_string();
            assert!(seen.insert(id("requests_total", &[("instance", "h"), ("path", &v)])));
        }
    }

    #[test]
    fn packing_keeps_every_label_set() {
        round_trip(
            "j",
            &[],
            "a 1\na{x=\"1\"} 2\na{instance=\"i\"} 3\na{instance=\"\",z=\"\"} 4\n",
        );
        round_trip("j", &["instance", "g"], "a{instance=\"i\",b=\"2\"} 1\n");
        round_trip(
            "j",
            &["zone", "eu", "a", "1"],
            "m{b=\"x\",job=\"other\",zz=\"ü\\n\"} 1\n",
        );
        round_trip(
            "j",
            &["instance", "i"],
            "# TYPE h histogram\nh_bucket{le=\"1\",p=\"q\"} 1\nh_bucket{le=\"+Inf\",p=\"q\"} 2\nh_sum{p=\"q\"} 3\nh_count{p=\"q\"} 2\n",
        );
        let long = "v".repeat(300);
        round_trip("j", &[], &format!("a{{l=\"{long}\"}} 1\n"));
    }
}
