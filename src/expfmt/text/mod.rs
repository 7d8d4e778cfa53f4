//! Parser of the Prometheus text exposition format, version 0.0.4.
//!
//! It accepts what the Go reference parser (`expfmt.TextParser` of
//! prometheus/common, as used by Pushgateway 1.5.1) accepts and rejects what
//! it rejects, reporting the same 1-based line. It works on the raw bytes in a
//! single pass, without regular expressions. Besides the strings and vectors
//! of the result it allocates only a name index, a label-set index per
//! summary or histogram family, and a copy of the rare label value or HELP
//! text with escape sequences.
//!
//! The Go behaviour followed is that of the parser's source (the 1.5.1-era
//! version, plus the later check for duplicate label names, which Pushgateway
//! applied anyway when it checked a push for consistency). Where this parser
//! deliberately differs from Go:
//! - A family whose lines (HELP, TYPE or samples) resume after another
//!   family's lines began is an error ("appears twice"): Go merges them.
//! - `gauge_histogram` families (the only spelling Go's TYPE lookup accepts)
//!   are parsed like histograms (`_bucket`/`_sum`/`_count`, `le` stripped). Go
//!   mishandles their samples (they get no value at all).
//! - HELP text must be valid UTF-8, since it becomes a Rust `String`.
//! - Of several lines of one summary or histogram that carry a timestamp, the
//!   first line's timestamp is kept (Go keeps the last one).
//!
//! Go corner cases kept on purpose: a repeated `quantile`/`le` label is not a
//! duplicate (the last one wins); a summary line without a quantile (or with
//! a NaN one), or a histogram line without `le`, still creates its metric
//! but its value is dropped; `_count` and bucket values are truncated to
//! integers (`uint64(v)` in Go); a TYPE after the family already has one,
//! even the implicit untyped of a sample, is an error; backslashes in a TYPE
//! keyword are dropped (a quirk of Go's reader).

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use super::ParseError;
use crate::model::family::{
    Family, Histogram, LabelStr, Metric, MetricType, Summary, Value, GROUPING_LABELS_ROOM,
};
use crate::model::names::{
    is_label_name_continue, is_label_name_start, is_metric_name_continue, is_metric_name_start,
};

const UNEXPECTED_EOF: &str = "unexpected end of input stream";

/// Entries of the name resolution cache.
const RESOLVE_CACHE: usize = 4;

/// Parses a text-format push body into its metric families.
///
/// Families come in order of first appearance, metrics in order of first
/// appearance within their family, labels in line order. Families that had
/// only HELP or TYPE lines and no samples are left out.
pub fn parse_text(body: &[u8]) -> Result<Vec<Family>, ParseError> {
    parse_text_names(body, false)
}

/// [`parse_text`], with UTF-8 names when `utf8` (`utf8_names`), as the
/// text parser of Pushgateway 1.11 reads them: a metric name quoted as the
/// first item in the braces (`{"my.metric",a="b"} 1`), or quoted before
/// them (`"my.metric"{a="b"} 1`), and in HELP and TYPE lines; a label name
/// quoted (`{"label.name"="v"}`). A quoted name is any non-empty UTF-8
/// text without escape sequences (pushkit refuses `\\`, `\"` and `\n`
/// in names; no client writes them). Without `utf8`, quotes around a name
/// are an error, as in the 1.5.1 parser.
pub fn parse_text_names(body: &[u8], utf8: bool) -> Result<Vec<Family>, ParseError> {
    let mut parser = Parser::new(body);
    parser.utf8 = utf8;
    parser.run()?;
    Ok(parser.finish())
}

/// How a sample line relates to its family: for summaries and histograms, a
/// line named `<family>_count` or `<family>_sum` carries the count or sum.
/// Every other line is `Plain` (a quantile, a bucket, or a simple value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Plain,
    Count,
    Sum,
}

/// A label of the sample line being parsed, borrowed from the body unless
/// escape sequences forced a copy.
struct LabelRef<'a> {
    name: &'a str,
    value: Cow<'a, str>,
}

/// A family while it is being parsed.
struct FamilyState<'a> {
    name: &'a str,
    help: Option<String>,
    /// `None` until a TYPE line or the first sample fixes it.
    kind: Option<MetricType>,
    metrics: Vec<Metric>,
    /// Summaries and histograms only: label-set hash to index in `metrics`.
    groups: HashMap<u64, usize>,
    /// Summaries and histograms only: the metric the last line went to.
    last_group: Option<usize>,
}

impl<'a> FamilyState<'a> {
    fn new(name: &'a str) -> Self {
        FamilyState {
            name,
            help: None,
            kind: None,
            metrics: Vec::new(),
            groups: HashMap::new(),
            last_group: None,
        }
    }

    /// The index of the summary or histogram metric with exactly the label
    /// set `labels` (in any order), created with those labels if new.
    fn group_for(
        &mut self,
        labels: &mut Vec<LabelRef<'a>>,
        kind: MetricType,
        hash_state: &RandomState,
    ) -> usize {
        if let Some(last) = self.last_group {
            if same_labels(labels, &self.metrics[last].labels) {
                return last;
            }
        }
        let index = match self.groups.entry(label_set_hash(hash_state, labels)) {
            Entry::Occupied(entry) => {
                let candidate = *entry.get();
                if same_labels(labels, &self.metrics[candidate].labels) {
                    candidate
                } else {
                    // A hash collision: fall back to a linear search. The new
                    // metric stays out of the map; later lookups get here too.
                    match self
                        .metrics
                        .iter()
                        .position(|m| same_labels(labels, &m.labels))
                    {
                        Some(found) => found,
                        None => push_group(&mut self.metrics, labels, kind),
                    }
                }
            }
            Entry::Vacant(entry) => *entry.insert(push_group(&mut self.metrics, labels, kind)),
        };
        self.last_group = Some(index);
        index
    }
}

/// Appends an empty summary or histogram metric with the given labels.
fn push_group(
    metrics: &mut Vec<Metric>,
    labels: &mut Vec<LabelRef<'_>>,
    kind: MetricType,
) -> usize {
    let value = if kind == MetricType::Summary {
        Value::Summary(Summary::default())
    } else {
        Value::Histogram(Histogram::default())
    };
    metrics.push(Metric {
        labels: owned_labels(labels),
        value,
        timestamp_ms: None,
        exemplar: None,
    });
    metrics.len() - 1
}

fn owned_labels(labels: &mut Vec<LabelRef<'_>>) -> Vec<(LabelStr, LabelStr)> {
    let mut owned = Vec::with_capacity(labels.len() + GROUPING_LABELS_ROOM);
    owned.extend(
        labels
            .drain(..)
            .map(|l| (LabelStr::from(l.name), LabelStr::from(&*l.value))),
    );
    owned
}

/// Set equality of label pairs. Names are unique on both sides (duplicates
/// are rejected), so equal length plus inclusion is equality.
fn same_labels(line: &[LabelRef<'_>], metric: &[(LabelStr, LabelStr)]) -> bool {
    line.len() == metric.len()
        && line.iter().all(|l| {
            metric
                .iter()
                .any(|(name, value)| name == l.name && *value == *l.value)
        })
}

/// An order-independent hash of a label set: the sum of the keyed hashes
/// of its pairs. The key is random, so pushed label values cannot be crafted
/// to collide (which would make `group_for` fall back to linear searches).
fn label_set_hash(state: &RandomState, labels: &[LabelRef<'_>]) -> u64 {
    labels.iter().fold(0u64, |sum, l| {
        sum.wrapping_add(state.hash_one((l.name, &*l.value)))
    })
}

struct Parser<'a> {
    buf: &'a [u8],
    /// The next byte to look at.
    pos: usize,
    /// 1-based number of the line being parsed.
    line: usize,
    families: Vec<FamilyState<'a>>,
    by_name: HashMap<&'a [u8], usize>,
    /// The family the last HELP, TYPE or sample line belonged to.
    current: Option<usize>,
    /// The last few names resolved, most recent first, and what they resolved
    /// to (a histogram's lines cycle through three names). A resolution never
    /// changes once made (see `resolve`), so it can be reused.
    cache: [Option<(&'a [u8], usize, Role)>; RESOLVE_CACHE],
    /// Labels of the sample line being parsed (without quantile/le).
    labels: Vec<LabelRef<'a>>,
    /// Key of the label-set hashes of summaries and histograms.
    hash_state: RandomState,
    /// Quoted UTF-8 names are accepted (see [`parse_text_names`]).
    utf8: bool,
}

impl<'a> Parser<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Parser {
            buf,
            pos: 0,
            line: 0,
            families: Vec::new(),
            by_name: HashMap::new(),
            current: None,
            cache: [None; RESOLVE_CACHE],
            labels: Vec::new(),
            hash_state: RandomState::new(),
            utf8: false,
        }
    }

    fn err(&self, message: impl Into<String>) -> ParseError {
        ParseError::text(self.line, message)
    }

    fn run(&mut self) -> Result<(), ParseError> {
        loop {
            self.line += 1;
            self.skip_blanks();
            // Running out of input here (and only here) is the normal end,
            // even after a last line of blanks without its newline.
            let Some(&b) = self.buf.get(self.pos) else {
                return Ok(());
            };
            match b {
                b'#' => {
                    self.pos += 1;
                    self.comment()?;
                }
                b'\n' => self.pos += 1,
                _ => self.sample()?,
            }
        }
    }

    fn finish(self) -> Vec<Family> {
        self.families
            .into_iter()
            .filter(|f| !f.metrics.is_empty())
            .map(|f| Family {
                name: f.name.to_owned(),
                help: f.help,
                kind: f.kind.unwrap_or(MetricType::Untyped),
                metrics: f.metrics,
            })
            .collect()
    }

    // ---- the line kinds -------------------------------------------------

    /// A line starting with `#` (already consumed).
    fn comment(&mut self) -> Result<(), ParseError> {
        self.skip_blanks();
        if self.cur()? == b'\n' {
            self.pos += 1;
            return Ok(());
        }
        let keyword = self.token_until_whitespace()?;
        if self.buf[self.pos] == b'\n' {
            // `# HELP` or `# foo` and nothing else: ignored.
            self.pos += 1;
            return Ok(());
        }
        let is_help = match keyword {
            b"HELP" => true,
            b"TYPE" => false,
            _ => {
                self.rest_of_line()?;
                return Ok(());
            }
        };
        self.skip_blanks();
        let name = match self.cur()? {
            b'"' if self.utf8 => self.quoted_name("metric name")?,
            _ => self.metric_name()?,
        };
        // A quoted name may end the input (the fuzzer's find).
        match self.cur()? {
            b'\n' => {
                // Just the name: ignored, and the family is not created.
                self.pos += 1;
                return Ok(());
            }
            b' ' | b'\t' => {}
            _ => return Err(self.err("invalid metric name in comment")),
        }
        let (fam, _) = self.resolve(name)?;
        self.skip_blanks();
        if self.cur()? == b'\n' {
            self.pos += 1;
            return Ok(());
        }
        if is_help {
            if self.families[fam].help.is_some() {
                return Err(self.err(format!(
                    "second HELP line for metric name {:?}",
                    self.families[fam].name
                )));
            }
            let help = self.help_text()?;
            self.families[fam].help = Some(help);
        } else {
            if self.families[fam].kind.is_some() {
                return Err(self.err(format!(
                    "second TYPE line for metric name {:?}, or TYPE reported after samples",
                    self.families[fam].name
                )));
            }
            let raw = without_backslashes(self.rest_of_line()?);
            let kind = parse_type(&raw)
                .ok_or_else(|| self.err(format!("unknown metric type {}", quote(&raw))))?;
            self.families[fam].kind = Some(kind);
        }
        Ok(())
    }

    /// A sample line; the cursor is on its first non-blank byte.
    fn sample(&mut self) -> Result<(), ParseError> {
        let mut name = self.metric_name()?;
        // `{"my.metric",...}`: the name is the first item in the braces.
        let mut name_in_braces = false;
        if name.is_empty() && self.utf8 {
            match self.cur()? {
                b'"' => name = self.quoted_name("metric name")?,
                b'{' => {
                    let open = self.pos;
                    self.pos += 1;
                    self.skip_blanks();
                    if self.cur()? == b'"' {
                        name = self.quoted_name("metric name")?;
                        name_in_braces = true;
                    } else {
                        self.pos = open;
                    }
                }
                _ => {}
            }
        }
        if name.is_empty() {
            return Err(self.err("invalid metric name"));
        }
        let (fam, role) = self.resolve(name)?;
        let kind = *self.families[fam].kind.get_or_insert(MetricType::Untyped);
        self.skip_blanks();
        self.labels.clear();
        // The quantile of a summary line or the le of a histogram line.
        let mut special = f64::NAN;
        let has_labels = if name_in_braces {
            self.after_name_in_braces()?
        } else {
            self.cur()? == b'{'
        };
        // One call site, so that it is inlined as before UTF-8 names.
        if has_labels {
            special = self.label_set(fam, kind)?;
        }

        let token = self.token_until_whitespace()?;
        let value = parse_float(token)
            .ok_or_else(|| self.err(format!("expected float as value, got {}", quote(token))))?;
        let mut timestamp = None;
        if self.buf[self.pos] == b'\n' {
            self.pos += 1;
        } else {
            self.skip_blanks();
            self.cur()?;
            let token = self.token_until_whitespace()?;
            let ts = parse_timestamp(token).ok_or_else(|| {
                self.err(format!(
                    "expected integer as timestamp, got {}",
                    quote(token)
                ))
            })?;
            timestamp = Some(ts);
            // `rest` is empty or starts with a blank. (Go drops backslashes
            // here too, which only shows in the message.)
            let rest = self.rest_of_line()?;
            if !rest.is_empty() {
                return Err(self.err(format!(
                    "spurious string after timestamp: {}",
                    quote(&without_backslashes(rest))
                )));
            }
        }
        self.record(fam, kind, role, value, special, timestamp);
        Ok(())
    }

    /// Parses `{...}` (the cursor is on the `{`) into `self.labels`, leaving
    /// the cursor on the first non-blank byte after the `}`. Returns the value
    /// of the summary's `quantile` or the histogram's `le` label, NaN if none.
    fn label_set(&mut self, fam: usize, kind: MetricType) -> Result<f64, ParseError> {
        let mut special = f64::NAN;
        loop {
            self.pos += 1; // the '{' or ','
            self.skip_blanks();
            if self.cur()? == b'}' {
                self.pos += 1;
                break;
            }
            let mut name = self.label_name()?;
            let mut quoted = false;
            if name.is_empty() {
                // A quoted name only where a legacy one cannot start: the
                // usual label costs nothing more.
                if self.utf8 && self.buf.get(self.pos) == Some(&b'"') {
                    name = name_str(self.quoted_name("label name")?);
                    quoted = true;
                } else {
                    return Err(self.err(format!(
                        "invalid label name for metric {:?}",
                        self.families[fam].name
                    )));
                }
            }
            if name == "__name__" {
                return Err(self.err("label name \"__name__\" is reserved"));
            }
            self.skip_blanks();
            let c = self.cur()?;
            if quoted && (c == b',' || c == b'}') {
                return Err(self.err(format!(
                    "multiple metric names for metric {:?}",
                    self.families[fam].name
                )));
            }
            if c != b'=' {
                return Err(self.err(format!(
                    "expected '=' after label name, found {}",
                    quote_byte(c)
                )));
            }
            let is_special = match kind {
                MetricType::Summary => name == "quantile",
                MetricType::Histogram | MetricType::GaugeHistogram => name == "le",
                _ => false,
            };
            if !is_special && self.labels.iter().any(|l| l.name == name) {
                return Err(self.err(format!(
                    "duplicate label names for metric {:?}",
                    self.families[fam].name
                )));
            }
            self.pos += 1; // the '='
            self.skip_blanks();
            let c = self.cur()?;
            if c != b'"' {
                return Err(self.err(format!(
                    "expected '\"' at start of label value, found {}",
                    quote_byte(c)
                )));
            }
            self.pos += 1;
            let value = self.label_value()?;
            if is_special {
                special = parse_float(value.as_bytes()).ok_or_else(|| {
                    self.err(format!(
                        "expected float as value for '{name}' label, got {value:?}"
                    ))
                })?;
            }
            self.skip_blanks();
            let c = self.cur()?;
            if c != b',' && c != b'}' {
                return Err(self.err(format!("unexpected end of label value {value:?}")));
            }
            if !is_special {
                self.labels.push(LabelRef { name, value });
            }
            if c == b'}' {
                self.pos += 1;
                break;
            }
        }
        self.skip_blanks();
        self.cur()?;
        Ok(special)
    }

    /// Adds a parsed sample to its family.
    fn record(
        &mut self,
        fam: usize,
        kind: MetricType,
        role: Role,
        value: f64,
        special: f64,
        timestamp: Option<i64>,
    ) {
        let family = &mut self.families[fam];
        match kind {
            MetricType::Counter | MetricType::Gauge | MetricType::Untyped => {
                family.metrics.push(Metric {
                    labels: owned_labels(&mut self.labels),
                    value: Value::Simple(value),
                    timestamp_ms: timestamp,
                    exemplar: None,
                });
            }
            MetricType::Summary | MetricType::Histogram | MetricType::GaugeHistogram => {
                let index = family.group_for(&mut self.labels, kind, &self.hash_state);
                let metric = &mut family.metrics[index];
                if metric.timestamp_ms.is_none() {
                    metric.timestamp_ms = timestamp;
                }
                // Like Go, a line that is neither _count nor _sum nor carries
                // a (non-NaN) quantile/le still creates the metric, but its
                // value is dropped.
                match (&mut metric.value, role) {
                    (Value::Summary(s), Role::Count) => s.sample_count = truncate(value),
                    (Value::Summary(s), Role::Sum) => s.sample_sum = value,
                    (Value::Summary(s), Role::Plain) if !special.is_nan() => {
                        s.quantiles.push((special, value))
                    }
                    (Value::Histogram(h), Role::Count) => h.sample_count = truncate(value),
                    (Value::Histogram(h), Role::Sum) => h.sample_sum = value,
                    (Value::Histogram(h), Role::Plain) if !special.is_nan() => {
                        h.buckets.push((special, truncate(value)))
                    }
                    _ => {}
                }
            }
        }
    }

    /// Finds (or creates) the family a HELP, TYPE or sample line named `name`
    /// belongs to, as Go's `setOrCreateCurrentMF` does, and enforces that a
    /// family's lines are contiguous.
    ///
    /// A resolution never changes later: an exact match stays one (families
    /// are never removed); a `_count`/`_sum`/`_bucket` match depends on the
    /// base family's type, which cannot change once set; and a created family
    /// is an exact match from then on. Hence the cache.
    fn resolve(&mut self, name: &'a [u8]) -> Result<(usize, Role), ParseError> {
        // Most recently used first.
        let hit = self
            .cache
            .iter()
            .position(|entry| entry.is_some_and(|(cached, _, _)| cached == name));
        let (index, role, created) = match hit {
            Some(slot) => {
                let entry = self.cache[slot];
                self.cache.copy_within(..slot, 1);
                self.cache[0] = entry;
                let (_, index, role) = entry.expect("a hit is Some");
                (index, role, false)
            }
            None => {
                let (index, role, created) = self.lookup(name);
                self.cache.copy_within(..RESOLVE_CACHE - 1, 1);
                self.cache[0] = Some((name, index, role));
                (index, role, created)
            }
        };
        if self.current != Some(index) {
            if !created {
                return Err(self
                    .err(format!(
                        "metric family {:?} appears twice: its lines must be contiguous",
                        self.families[index].name
                    ))
                    .as_duplicate_family());
            }
            self.current = Some(index);
        }
        Ok((index, role))
    }

    fn lookup(&mut self, name: &'a [u8]) -> (usize, Role, bool) {
        if let Some(&index) = self.by_name.get(name) {
            return (index, Role::Plain, false);
        }
        let suffix = if name.len() > 6 && name.ends_with(b"_count") {
            Some((6, Role::Count))
        } else if name.len() > 4 && name.ends_with(b"_sum") {
            Some((4, Role::Sum))
        } else if name.len() > 7 && name.ends_with(b"_bucket") {
            Some((7, Role::Plain))
        } else {
            None
        };
        if let Some((len, role)) = suffix {
            if let Some(&index) = self.by_name.get(&name[..name.len() - len]) {
                let kind = self.families[index].kind;
                let belongs = match role {
                    Role::Count | Role::Sum => matches!(
                        kind,
                        Some(
                            MetricType::Summary
                                | MetricType::Histogram
                                | MetricType::GaugeHistogram
                        )
                    ),
                    Role::Plain => kind.is_some_and(MetricType::is_histogram),
                };
                if belongs {
                    return (index, role, false);
                }
            }
        }
        let index = self.families.len();
        self.families.push(FamilyState::new(name_str(name)));
        self.by_name.insert(name, index);
        (index, Role::Plain, true)
    }

    // ---- tokens -----------------------------------------------------------

    /// The byte at the cursor; running out of input here is an error.
    #[inline]
    fn cur(&self) -> Result<u8, ParseError> {
        match self.buf.get(self.pos) {
            Some(&b) => Ok(b),
            None => Err(self.err(UNEXPECTED_EOF)),
        }
    }

    #[inline]
    fn skip_blanks(&mut self) {
        while let Some(b' ' | b'\t') = self.buf.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The bytes up to (not including) the next blank, tab or newline, which
    /// must exist.
    fn token_until_whitespace(&mut self) -> Result<&'a [u8], ParseError> {
        let buf = self.buf;
        let start = self.pos;
        match buf[start..]
            .iter()
            .position(|&b| matches!(b, b' ' | b'\t' | b'\n'))
        {
            Some(len) => {
                self.pos = start + len;
                Ok(&buf[start..start + len])
            }
            None => {
                self.pos = buf.len();
                Err(self.err(UNEXPECTED_EOF))
            }
        }
    }

    /// The bytes up to the next newline, which is consumed and must exist.
    fn rest_of_line(&mut self) -> Result<&'a [u8], ParseError> {
        let buf = self.buf;
        let start = self.pos;
        match buf[start..].iter().position(|&b| b == b'\n') {
            Some(len) => {
                self.pos = start + len + 1;
                Ok(&buf[start..start + len])
            }
            None => {
                self.pos = buf.len();
                Err(self.err(UNEXPECTED_EOF))
            }
        }
    }

    /// A quoted name (`what`: "metric name" or "label name"); the cursor is
    /// on its opening quote and is left past its closing one. Non-empty
    /// UTF-8 without escape sequences or newlines.
    /// After `{"name"`: true on a `,` (labels follow; `label_set` starts
    /// on it), false past a `}` and the blanks after it.
    #[cold]
    fn after_name_in_braces(&mut self) -> Result<bool, ParseError> {
        match self.cur()? {
            b',' => Ok(true),
            b'}' => {
                self.pos += 1;
                self.skip_blanks();
                self.cur()?;
                Ok(false)
            }
            c => Err(self.err(format!("unexpected end of metric name {}", quote_byte(c)))),
        }
    }

    #[cold]
    #[inline(never)]
    fn quoted_name(&mut self, what: &str) -> Result<&'a [u8], ParseError> {
        let buf = self.buf;
        let start = self.pos + 1;
        let Some(len) = buf[start..]
            .iter()
            .position(|&b| matches!(b, b'"' | b'\\' | b'\n'))
        else {
            self.pos = buf.len();
            return Err(self.err(UNEXPECTED_EOF));
        };
        let raw = &buf[start..start + len];
        match buf[start + len] {
            b'\\' => {
                return Err(self.err(format!(
                    "escape sequences in a quoted {what} are not supported: {}",
                    quote(&buf[start..=start + len])
                )))
            }
            b'\n' => {
                return Err(self.err(format!("{what} {} contains unescaped new-line", quote(raw))))
            }
            _ => {}
        }
        if raw.is_empty() || utf8(raw).is_none() {
            return Err(self.err(format!("invalid {what} {}", quote(raw))));
        }
        self.pos = start + len + 1;
        Ok(raw)
    }

    /// A metric name starting at the cursor, empty if the byte there cannot
    /// start one. Some byte must follow the name.
    fn metric_name(&mut self) -> Result<&'a [u8], ParseError> {
        self.name_token(METRIC_START, METRIC_CONTINUE)
    }

    /// A label name starting at the cursor, empty if the byte there cannot
    /// start one. Some byte must follow the name.
    fn label_name(&mut self) -> Result<&'a str, ParseError> {
        self.name_token(LABEL_START, LABEL_CONTINUE).map(ascii)
    }

    /// A name whose first byte is of class `start` and other bytes of class
    /// `rest` (see `CLASSES`).
    #[inline]
    fn name_token(&mut self, start: u8, rest: u8) -> Result<&'a [u8], ParseError> {
        let buf = self.buf;
        let begin = self.pos;
        match buf.get(begin) {
            Some(&b) if CLASSES[usize::from(b)] & start != 0 => {}
            _ => return Ok(&[]),
        }
        let len = buf[begin + 1..]
            .iter()
            .position(|&b| CLASSES[usize::from(b)] & rest == 0);
        match len {
            Some(len) => {
                self.pos = begin + 1 + len;
                Ok(&buf[begin..self.pos])
            }
            None => Err(self.eof_at_end()),
        }
    }

    /// A label value; the cursor is just past its opening quote and is left
    /// just past its closing quote. Escapes: `\\`, `\"`, `\n`.
    fn label_value(&mut self) -> Result<Cow<'a, str>, ParseError> {
        let buf = self.buf;
        let start = self.pos;
        let mut i = start;
        // Fast path: no escape sequence, borrow from the body.
        loop {
            match buf.get(i) {
                None => return Err(self.eof_at_end()),
                Some(b'"') => {
                    self.pos = i + 1;
                    let raw = &buf[start..i];
                    return match utf8(raw) {
                        Some(s) => Ok(Cow::Borrowed(s)),
                        None => Err(self.err(format!("invalid label value {}", quote(raw)))),
                    };
                }
                Some(b'\n') => {
                    return Err(self.err(format!(
                        "label value {} contains unescaped new-line",
                        quote(&buf[start..i])
                    )))
                }
                Some(b'\\') => break,
                Some(_) => i += 1,
            }
        }
        let mut out = buf[start..i].to_vec();
        loop {
            match buf.get(i) {
                None => return Err(self.eof_at_end()),
                Some(b'"') => break,
                Some(b'\n') => {
                    return Err(self.err(format!(
                        "label value {} contains unescaped new-line",
                        quote(&out)
                    )))
                }
                Some(b'\\') => {
                    i += 1;
                    match buf.get(i) {
                        None => return Err(self.eof_at_end()),
                        Some(&c @ (b'"' | b'\\')) => out.push(c),
                        Some(b'n') => out.push(b'\n'),
                        Some(&c) => return Err(self.err(invalid_escape(c))),
                    }
                }
                Some(&c) => out.push(c),
            }
            i += 1;
        }
        self.pos = i + 1;
        String::from_utf8(out)
            .map(Cow::Owned)
            .map_err(|e| self.err(format!("invalid label value {}", quote(e.as_bytes()))))
    }

    /// HELP text: the rest of the line (newline consumed), with the escapes
    /// `\\` and `\n`.
    fn help_text(&mut self) -> Result<String, ParseError> {
        let buf = self.buf;
        let start = self.pos;
        let mut i = start;
        let mut out: Option<Vec<u8>> = None;
        loop {
            match buf.get(i) {
                None => return Err(self.eof_at_end()),
                Some(b'\n') => break,
                Some(b'\\') => {
                    let out = out.get_or_insert_with(|| buf[start..i].to_vec());
                    i += 1;
                    match buf.get(i) {
                        None => return Err(self.eof_at_end()),
                        Some(b'\\') => out.push(b'\\'),
                        Some(b'n') => out.push(b'\n'),
                        Some(&c) => return Err(self.err(invalid_escape(c))),
                    }
                }
                Some(&c) => {
                    if let Some(out) = out.as_mut() {
                        out.push(c);
                    }
                }
            }
            i += 1;
        }
        self.pos = i + 1;
        let text = match out {
            Some(out) => String::from_utf8(out).ok(),
            None => utf8(&buf[start..i]).map(str::to_owned),
        };
        text.ok_or_else(|| self.err("HELP text is not valid UTF-8"))
    }

    fn eof_at_end(&mut self) -> ParseError {
        self.pos = self.buf.len();
        self.err(UNEXPECTED_EOF)
    }
}

// Byte classes of names, as bits of `CLASSES`.
const METRIC_START: u8 = 1;
const METRIC_CONTINUE: u8 = 2;
const LABEL_START: u8 = 4;
const LABEL_CONTINUE: u8 = 8;

/// The classes of each byte: metric names are `[a-zA-Z_:][a-zA-Z0-9_:]*`,
/// label names `[a-zA-Z_][a-zA-Z0-9_]*`.
static CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let mut class = 0;
        if is_label_name_start(c) {
            class |= LABEL_START;
        }
        if is_label_name_continue(c) {
            class |= LABEL_CONTINUE;
        }
        if is_metric_name_start(c) {
            class |= METRIC_START;
        }
        if is_metric_name_continue(c) {
            class |= METRIC_CONTINUE;
        }
        table[b] = class;
        b += 1;
    }
    table
};

/// The rest of a TYPE line as Go reads it: its `readTokenUntilNewline`
/// without escape processing still drops every backslash (so `S\UMMARY` is
/// a summary).
fn without_backslashes(raw: &[u8]) -> Cow<'_, [u8]> {
    if raw.contains(&b'\\') {
        Cow::Owned(raw.iter().copied().filter(|&b| b != b'\\').collect())
    } else {
        Cow::Borrowed(raw)
    }
}

/// Go's `uint64(value)` for counts, made total: truncates toward zero,
/// NaN and negatives give 0, too large saturates.
fn truncate(value: f64) -> f64 {
    value as u64 as f64
}

/// A name made of the ASCII bytes `name_token` accepts.
fn ascii(name: &[u8]) -> &str {
    assert!(name.is_ascii(), "names are ASCII");
    // SAFETY: ASCII is valid UTF-8 (checked just above; for the short names
    // here that check costs far less than `str::from_utf8`).
    #[allow(unsafe_code)]
    unsafe {
        std::str::from_utf8_unchecked(name)
    }
}

/// `bytes` as UTF-8, checking the common all-ASCII case cheaply first.
/// A name as `str`: names are ASCII, or quoted names that
/// [`Parser::quoted_name`] checked to be UTF-8.
fn name_str(name: &[u8]) -> &str {
    utf8(name).expect("names are ASCII or checked UTF-8")
}

fn utf8(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        #[allow(unsafe_code)]
        let s = unsafe { std::str::from_utf8_unchecked(bytes) };
        Some(s)
    } else {
        std::str::from_utf8(bytes).ok()
    }
}

fn invalid_escape(c: u8) -> String {
    format!("invalid escape sequence '\\{}'", c as char)
}

/// Roughly Go's `%q` of a byte string.
fn quote(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

/// Roughly Go's `%q` of a byte.
fn quote_byte(b: u8) -> String {
    format!("{:?}", b as char)
}

/// The TYPE keyword as Go's `MetricType_value[strings.ToUpper(s)]` reads
/// it: the enum names COUNTER, GAUGE, SUMMARY, UNTYPED, HISTOGRAM and
/// GAUGE_HISTOGRAM, in any case. Go's Unicode upper-casing also maps the two
/// non-ASCII letters whose upper case is ASCII ('ſ' to 'S', 'ı' to 'I').
fn parse_type(raw: &[u8]) -> Option<MetricType> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut upper = [0u8; 15]; // "GAUGE_HISTOGRAM".len()
    let mut len = 0;
    for c in text.chars() {
        let u = match c {
            'ſ' => b'S',
            'ı' => b'I',
            c if c.is_ascii() => (c as u8).to_ascii_uppercase(),
            _ => return None,
        };
        *upper.get_mut(len)? = u;
        len += 1;
    }
    Some(match &upper[..len] {
        b"COUNTER" => MetricType::Counter,
        b"GAUGE" => MetricType::Gauge,
        b"SUMMARY" => MetricType::Summary,
        b"UNTYPED" => MetricType::Untyped,
        b"HISTOGRAM" => MetricType::Histogram,
        b"GAUGE_HISTOGRAM" => MetricType::GaugeHistogram,
        _ => return None,
    })
}

/// A float as Go's `strconv.ParseFloat(s, 64)` accepts it, minus what the
/// expfmt wrapper rejects (any 'p', 'P' or '_', which rules out hex floats
/// and digit separators): `[+-]?(inf|infinity)` and `nan` in any case, or
/// `[+-]?(d+(.d*)?|.d+)([eE][+-]?d+)?`. Out of range (overflow to ±Inf) is an
/// error in Go; underflow to 0 is not.
pub(crate) fn parse_float(s: &[u8]) -> Option<f64> {
    if let Some(value) = parse_short_decimal(s) {
        return Some(value);
    }
    let (negative, body) = match s.first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
        return Some(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if body.len() == s.len() && body.eq_ignore_ascii_case(b"nan") {
        return Some(f64::NAN);
    }
    if !is_decimal_float(body) {
        return None;
    }
    // The syntax is ASCII, and Rust's float grammar is a superset of it.
    let value: f64 = utf8(s)?.parse().ok()?;
    if value.is_infinite() {
        return None;
    }
    Some(value)
}

/// Fast path of `parse_float` for the common `[+-]?d*(.d*)?` with at most 15
/// digits: the digits as an integer `m < 10^15 < 2^53` and `10^k` (`k <= 15`)
/// are exact doubles, so the one correctly rounded division `m / 10^k` gives
/// the correctly rounded value, as a full decimal conversion would.
fn parse_short_decimal(s: &[u8]) -> Option<f64> {
    const POW10: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let (negative, body) = match s.first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if body.len() > 16 {
        return None;
    }
    let mut mantissa = 0u64;
    let mut digits = 0;
    let mut frac_digits = None;
    for &b in body {
        match b {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(b - b'0');
                digits += 1;
                if let Some(k) = frac_digits.as_mut() {
                    *k += 1;
                }
            }
            b'.' if frac_digits.is_none() => frac_digits = Some(0),
            _ => return None,
        }
    }
    if digits == 0 || digits > 15 {
        return None;
    }
    let value = mantissa as f64 / POW10[frac_digits.unwrap_or(0)];
    Some(if negative { -value } else { value })
}

/// `(d+(.d*)?|.d+)([eE][+-]?d+)?`
fn is_decimal_float(s: &[u8]) -> bool {
    let digits_from = |mut i: usize| {
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let int_end = digits_from(0);
    let mut mantissa_digits = int_end;
    let mut i = int_end;
    if s.get(i) == Some(&b'.') {
        let frac_end = digits_from(i + 1);
        mantissa_digits += frac_end - (i + 1);
        i = frac_end;
    }
    if mantissa_digits == 0 {
        return false;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_end = digits_from(i);
        if exp_end == i {
            return false;
        }
        i = exp_end;
    }
    i == s.len()
}

/// A timestamp as Go's `strconv.ParseInt(s, 10, 64)` accepts it.
fn parse_timestamp(s: &[u8]) -> Option<i64> {
    utf8(s)?.parse().ok()
}

#[cfg(test)]
mod tests;
