//! Samples a sink's format cannot carry, left out but never in silence:
//! each is counted in `pushkit_sink_points_dropped_total{sink, reason}`,
//! and each reason is logged at most once a minute, with the count since
//! its last line.
//!
//! Reasons, all of line protocol: `non_finite` (NaN or ±Inf),
//! `field_is_tag` (a field keyed like one of its point's tags),
//! `native_buckets` (a native histogram's buckets: its count, sum and
//! classic buckets still go out) and `exemplar`. Remote write carries all
//! of them.

use crate::lineproto::LpDrops;
use crate::logging::LogGate;
use crate::metrics::Metrics;
use std::time::Duration;

/// Why samples were left out; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    NonFinite,
    FieldIsTag,
    NativeBuckets,
    Exemplar,
}

impl Reason {
    const ALL: [Reason; 4] = [
        Reason::NonFinite,
        Reason::FieldIsTag,
        Reason::NativeBuckets,
        Reason::Exemplar,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NonFinite => "non_finite",
            Reason::FieldIsTag => "field_is_tag",
            Reason::NativeBuckets => "native_buckets",
            Reason::Exemplar => "exemplar",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Reason::NonFinite => "NaN or ±Inf values, which line protocol cannot carry",
            Reason::FieldIsTag => {
                "line-protocol fields keyed like one of their point's tags (e.g. a StateSet)"
            }
            Reason::NativeBuckets => "native histogram buckets, which line protocol cannot carry",
            Reason::Exemplar => "exemplars, which line protocol cannot carry",
        }
    }

    fn index(self) -> usize {
        Reason::ALL.iter().position(|&r| r == self).expect("listed")
    }
}

/// Longest silence of a reason that keeps happening.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// One line per reason a minute, with the count since the last.
static LOG: LogGate<{ Reason::ALL.len() }> = LogGate::new(LOG_EVERY);

/// Counts `n` samples sink `sink` left out for `reason`, and logs if the
/// reason has not been logged for a minute.
pub fn note(metrics: &Metrics, sink: &str, reason: Reason, n: u64) {
    if n == 0 {
        return;
    }
    metrics
        .sink_dropped
        .with(&[sink, reason.as_str()])
        .add(n as f64);
    if let Some(count) = LOG.pass(reason.index(), n) {
        tracing::warn!(
            sink,
            reason = reason.as_str(),
            count,
            "left out {count} samples in the last minute or less: {} (counted in pushkit_sink_points_dropped_total)",
            reason.what()
        );
    }
}

/// Counts what line protocol left out for sink `sink`.
pub fn note_lp(metrics: &Metrics, sink: &str, drops: LpDrops) {
    note(metrics, sink, Reason::NonFinite, drops.non_finite);
    note(metrics, sink, Reason::FieldIsTag, drops.field_is_tag);
    note(metrics, sink, Reason::NativeBuckets, drops.native_buckets);
    note(metrics, sink, Reason::Exemplar, drops.exemplars);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_counted_per_sink_and_reason() {
        let m = Metrics::default();
        note(&m, "a", Reason::NonFinite, 2);
        note(&m, "a", Reason::NonFinite, 0);
        note_lp(
            &m,
            "b",
            LpDrops {
                non_finite: 1,
                field_is_tag: 3,
                native_buckets: 0,
                exemplars: 4,
            },
        );
        note(&m, "a", Reason::NativeBuckets, 1);
        let count = |sink, reason| m.sink_dropped.with(&[sink, reason]).get();
        assert_eq!(count("a", "non_finite"), 2.0);
        assert_eq!(count("b", "non_finite"), 1.0);
        assert_eq!(count("b", "field_is_tag"), 3.0);
        assert_eq!(count("a", "native_buckets"), 1.0);
        assert_eq!(count("a", "field_is_tag"), 0.0);
        assert_eq!(count("b", "exemplar"), 4.0);
    }
}
