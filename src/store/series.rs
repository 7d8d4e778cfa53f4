//! How the store keeps a family compactly. Every series of a group carries
//! the group's labels (and `instance=""` when there is no instance label),
//! so a stored series keeps only its own labels, packed into one
//! allocation, and a plain `f64` for counters, gauges and untyped samples;
//! the full label set is put back together when it is needed (exposition,
//! JSON, snapshots). The Go Pushgateway keeps every series as a protobuf
//! message, about 1.7 KB each; this keeps a typical one near 100 bytes.

use crate::model::family::{Exemplar, Family, LabelStr, Metric, MetricType, Value};
use crate::model::GroupingKey;
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

    /// A linear scan: groups have a few labels, and comparing for
    /// equality checks the lengths before the bytes.
    fn contains(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }

    /// Reads the first byte of the labels, so that a caller can have
    /// their memory loaded before it needs them.
    pub fn first_byte(&self) -> u8 {
        self.pairs
            .first()
            .and_then(|(k, _)| k.as_bytes().first())
            .copied()
            .unwrap_or(0)
    }

    /// The full, sorted label set of a series whose own labels (sorted)
    /// are `own`, into `out` (cleared first).
    fn merge<'a>(
        &'a self,
        own: impl Iterator<Item = (&'a str, &'a str)>,
        out: &mut Vec<(&'a str, &'a str)>,
    ) {
        out.clear();
        let mut own = own.peekable();
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

/// Appends strings to `out` as `len bytes ...`, lengths as LEB128
/// varints.
fn pack_into<'a>(out: &mut Vec<u8>, strs: impl Iterator<Item = &'a str>) {
    for s in strs {
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

/// The strings [`pack_into`] packed. `packed` must be its output,
/// whole: the strings are not checked again for UTF-8.
fn unpack(mut packed: &[u8]) -> impl Iterator<Item = &str> {
    std::iter::from_fn(move || {
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
        debug_assert!(std::str::from_utf8(s).is_ok());
        // SAFETY: `packed` is what `pack_into` wrote (the fields holding it
        // are private to this module and only `StoredFamily::pack` fills
        // them): whole `&str`s, each after its length, so `s` is exactly
        // one of them. Checking it again cost 15 % of a scrape.
        #[allow(unsafe_code)]
        Some(unsafe { std::str::from_utf8_unchecked(s) })
    })
}

/// A sanitized metric's own labels, into `out` (cleared first): without
/// the group's, and without the instance="" that stands in for a missing
/// instance (both are put back when the series is read).
fn own_labels<'m>(m: &'m Metric, group: &GroupLabels, out: &mut Vec<(&'m str, &'m str)>) {
    out.clear();
    for (k, v) in &m.labels {
        let (k, v) = (k.as_str(), v.as_str());
        let implicit = k == "instance" && v.is_empty() && !group.has_instance;
        if !implicit && !group.contains(k) {
            out.push((k, v));
        }
    }
}

/// A family's values, one per series.
#[derive(Debug, Clone)]
enum StoredValues {
    /// Counters, gauges and untyped samples: a plain `f64` each.
    Simple(Box<[f64]>),
    /// Summaries and histograms, rarer and bigger.
    Other(Box<[Value]>),
    /// Counters of which at least one carries an exemplar (only protobuf
    /// pushes can): the exemplars apart, so that the plain case stays an
    /// `f64` per series.
    Exemplified(Box<[f64]>, Box<[Option<Box<Exemplar>>]>),
}

/// One family of one group, as stored. Its series' own labels (sorted,
/// without the group's) are packed one after another into one allocation,
/// so a series costs its label bytes, a 4-byte end offset and its value.
/// When every series has the same label names (the usual case), the names
/// are packed once for the family and each series keeps only its values.
#[derive(Debug, Clone)]
pub struct StoredFamily {
    pub help: Option<Box<str>>,
    pub kind: MetricType,
    /// The label names every series shares, packed; `None` when they
    /// differ, and then `labels` holds names and values.
    names: Option<Box<[u8]>>,
    labels: Box<[u8]>,
    /// Where each series' labels end in `labels`.
    ends: Box<[u32]>,
    values: StoredValues,
    /// When the push that stored it arrived, ns since the epoch.
    pub pushed_ns: i64,
    /// A hash of its group's labels and its series' labels, in order:
    /// equal for two pushes that differ only in values, so the exposition
    /// order built for one holds for the other (see `order`).
    shape: u64,
}

/// One stored series, borrowed from its family.
pub struct StoredSeries<'a> {
    names: Option<&'a [u8]>,
    labels: &'a [u8],
    value: std::borrow::Cow<'a, Value>,
    exemplar: Option<&'a Exemplar>,
}

impl<'a> StoredSeries<'a> {
    /// Its own labels, sorted, without the group's.
    fn own(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        let mut names = self.names.map(unpack);
        let mut strs = unpack(self.labels);
        std::iter::from_fn(move || match &mut names {
            Some(names) => Some((names.next()?, strs.next()?)),
            None => Some((strs.next()?, strs.next()?)),
        })
    }

    /// Reads the first byte of its labels (see [`GroupLabels::first_byte`]).
    pub fn first_byte(&self) -> u8 {
        self.labels.first().copied().unwrap_or(0)
    }

    /// Its full, sorted label set, into `out` (cleared first).
    pub fn labels(&self, group: &'a GroupLabels, out: &mut Vec<(&'a str, &'a str)>) {
        group.merge(self.own(), out);
    }

    pub fn value(&self) -> &Value {
        &self.value
    }

    /// A counter's exemplar, if it has one.
    pub fn exemplar(&self) -> Option<&'a Exemplar> {
        self.exemplar
    }
}

impl StoredFamily {
    /// Packs a sanitized family (grouping labels forced, labels sorted,
    /// timestamps dropped) of the group whose labels are `group`.
    pub fn pack(family: &Family, group: &GroupLabels, pushed_ns: i64) -> StoredFamily {
        let mut own: Vec<(&str, &str)> = Vec::new();
        let mut first_names: Vec<&str> = Vec::new();
        let mut shared = true;
        let mut labels = Vec::with_capacity(family.metrics.len() * 16);
        let mut ends = Vec::with_capacity(family.metrics.len());
        let end =
            |labels: &Vec<u8>| u32::try_from(labels.len()).expect("bodies are far below 4 GiB");
        for (i, m) in family.metrics.iter().enumerate() {
            own_labels(m, group, &mut own);
            if i == 0 {
                first_names.extend(own.iter().map(|(k, _)| *k));
            } else if shared && !own.iter().map(|(k, _)| *k).eq(first_names.iter().copied()) {
                // The names differ after all: repack the series so far as
                // name and value pairs.
                shared = false;
                labels.clear();
                ends.clear();
                for m in &family.metrics[..i] {
                    own_labels(m, group, &mut own);
                    pack_into(&mut labels, own.iter().flat_map(|(k, v)| [*k, *v]));
                    ends.push(end(&labels));
                }
                own_labels(m, group, &mut own);
            }
            if shared {
                pack_into(&mut labels, own.iter().map(|(_, v)| *v));
            } else {
                pack_into(&mut labels, own.iter().flat_map(|(k, v)| [*k, *v]));
            }
            ends.push(end(&labels));
        }
        let names = (shared && !family.metrics.is_empty()).then(|| {
            let mut names = Vec::new();
            pack_into(&mut names, first_names.iter().copied());
            names.into_boxed_slice()
        });
        let simple: Option<Box<[f64]>> = family
            .metrics
            .iter()
            .map(|m| match m.value {
                Value::Simple(v) => Some(v),
                _ => None,
            })
            .collect();
        let exemplified = family.metrics.iter().any(|m| m.exemplar.is_some());
        let values = match simple {
            Some(v) if exemplified => StoredValues::Exemplified(
                v,
                family.metrics.iter().map(|m| m.exemplar.clone()).collect(),
            ),
            Some(v) => StoredValues::Simple(v),
            None => StoredValues::Other(family.metrics.iter().map(|m| m.value.clone()).collect()),
        };
        let shape = shape_of(group, names.as_deref(), &labels, &ends);
        StoredFamily {
            help: family.help.as_deref().map(Box::from),
            kind: family.kind,
            names,
            labels: labels.into_boxed_slice(),
            ends: ends.into_boxed_slice(),
            values,
            pushed_ns,
            shape,
        }
    }

    /// See the field: what the exposition order depends on, hashed.
    pub fn shape(&self) -> u64 {
        self.shape
    }

    /// How many series it has.
    pub fn series_count(&self) -> usize {
        self.ends.len()
    }

    /// Its series, in push order.
    pub fn series(&self) -> impl Iterator<Item = StoredSeries<'_>> + '_ {
        self.series_range(0..self.ends.len())
    }

    /// Its series `range`, in push order.
    pub fn series_range(
        &self,
        range: std::ops::Range<usize>,
    ) -> impl Iterator<Item = StoredSeries<'_>> + '_ {
        range.map(move |i| self.series_at(i))
    }

    /// Its series `i` (in push order).
    pub fn series_at(&self, i: usize) -> StoredSeries<'_> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        let end = self.ends[i];
        StoredSeries {
            names: self.names.as_deref(),
            labels: &self.labels[start as usize..end as usize],
            value: match &self.values {
                StoredValues::Simple(v) | StoredValues::Exemplified(v, _) => {
                    std::borrow::Cow::Owned(Value::Simple(v[i]))
                }
                StoredValues::Other(v) => std::borrow::Cow::Borrowed(&v[i]),
            },
            exemplar: match &self.values {
                StoredValues::Exemplified(_, e) => e[i].as_deref(),
                _ => None,
            },
        }
    }

    /// True when `other` (of the same name and group) has the same type and
    /// exactly the same series in the same order: then it has the same
    /// series ids, and replacing one with the other leaves the index as it
    /// is.
    pub fn same_series(&self, other: &StoredFamily) -> bool {
        self.kind == other.kind
            && self.names == other.names
            && self.ends == other.ends
            && self.labels == other.labels
    }

    /// The family with full label sets, as it was pushed (sanitized).
    pub fn unpack(&self, name: &str, group: &GroupLabels) -> Family {
        let mut labels = Vec::new();
        let metrics = self
            .series()
            .map(|s| {
                s.labels(group, &mut labels);
                Metric {
                    labels: labels
                        .iter()
                        .map(|(k, v)| (LabelStr::from(*k), LabelStr::from(*v)))
                        .collect(),
                    value: s.value().clone(),
                    timestamp_ms: None,
                    exemplar: s.exemplar().cloned().map(Box::new),
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
        self.series().map(move |s| {
            s.labels(group, &mut labels);
            series_id(name, labels.iter().copied())
        })
    }
}

/// [`StoredFamily::shape`] of a family packed as `names`, `labels` and
/// `ends`, for the group whose labels are `group`.
fn shape_of(group: &GroupLabels, names: Option<&[u8]>, labels: &[u8], ends: &[u32]) -> u64 {
    let mut h = IdHash(SEED);
    for (k, v) in &group.pairs {
        h.write(k.as_bytes());
        h.write(v.as_bytes());
    }
    h.write(names.unwrap_or_default());
    h.write(labels);
    for end in ends {
        h.0 = fold(h.0 ^ u64::from(*end) ^ SEED, MULT);
    }
    fold(h.0, SEED)
}

/// A series' identity: its family name and its sorted labels, hashed to
/// 64 bits. A label with an empty value is an absent one, as Prometheus
/// has it, and is left out: `m{a=""}` and `m` are one series, so a push
/// holding both is refused as a duplicate. Two different series with one
/// id would make the check refuse a valid push, so the hash must mix well;
/// SipHash did, at 7 % of the push path, so this is a multiply-fold hash
/// (as wyhash does it) over 8-byte words, each string closed by its length.
pub fn series_id<'a>(name: &str, labels: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut h = IdHash(SEED);
    h.write(name.as_bytes());
    for (k, v) in labels.filter(|(_, v)| !v.is_empty()) {
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
        self.0 = fold(
            self.0 ^ tail_word(words.remainder()) ^ SEED,
            MULT ^ bytes.len() as u64,
        );
    }
}

/// The last 0 to 7 bytes of a string as a word, read as wyhash reads
/// them (overlapping reads instead of a copy): with the string's length
/// mixed in beside it, different tails of one length give different words.
fn tail_word(rest: &[u8]) -> u64 {
    let n = rest.len();
    let u32_at = |i: usize| u64::from(u32::from_le_bytes(rest[i..i + 4].try_into().expect("4")));
    match n {
        0 => 0,
        1..=3 => u64::from(rest[0]) << 16 | u64::from(rest[n / 2]) << 8 | u64::from(rest[n - 1]),
        _ => u32_at(0) << 32 | u32_at(n - 4),
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
    use crate::model::GroupingKey;
    use crate::store::sanitize::sanitize;

    fn round_trip(job: &str, pairs: &[&str], text: &str) {
        let key = GroupingKey::from_pairs(job, pairs);
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
        assert_ne!(id("m", &[]), id("m", &[("", "x")]));
        // An empty label is an absent one.
        assert_eq!(id("m", &[]), id("m", &[("", "")]));
        assert_eq!(id("m", &[("a", "")]), id("m", &[]));
        assert_eq!(base, id("m", &[("a", "bc"), ("b", "")]));
        assert_eq!(base, id("m", &[("a", "bc")]));
        // A change at any byte of a short value changes the id.
        for n in 1..=17 {
            let value = "v".repeat(n);
            for at in 0..n {
                let mut other = value.clone().into_bytes();
                other[at] = b'w';
                let other = String::from_utf8(other).unwrap();
                assert_ne!(
                    id("m", &[("l", &value)]),
                    id("m", &[("l", &other)]),
                    "{n} {at}"
                );
            }
        }
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
        // Shared label names, packed once for the family.
        round_trip(
            "j",
            &["instance", "i"],
            "a{x=\"1\",y=\"\"} 1\na{x=\"2\",y=\"z\"} 2\na{x=\"\",y=\"3\"} 3\n",
        );
        round_trip("j", &[], "a{instance=\"\",x=\"1\"} 1\na{x=\"2\"} 2\n");
        let long = "v".repeat(300);
        round_trip("j", &[], &format!("a{{l=\"{long}\"}} 1\n"));
    }
}
