//! Log lines that a flood of events cannot multiply. A [`LogGate`] lets
//! the first event of a kind through at once, then at most one line per
//! interval, reporting how many events came since the last line; events
//! in between are counted, not logged. A full disk refusing thousands of
//! pushes, or a backend refusing every batch, then costs a line a minute.
//!
//! Imports nothing of pushkit.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Per kind (an index the caller owns): when it was last let through, and
/// the events since.
pub struct LogGate<const KINDS: usize> {
    every: Duration,
    state: Mutex<[(Option<Instant>, u64); KINDS]>,
}

impl<const KINDS: usize> LogGate<KINDS> {
    /// A gate letting one line per kind through every `every`.
    pub const fn new(every: Duration) -> Self {
        LogGate {
            every,
            state: Mutex::new([(None, 0); KINDS]),
        }
    }

    /// Counts `n` events of `kind`; when a line is due, returns how many
    /// events it reports (these and those held back since the last line).
    pub fn pass(&self, kind: usize, n: u64) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (last, pending) = &mut state[kind];
        *pending += n;
        let now = Instant::now();
        if last.is_none_or(|t| now.duration_since(t) >= self.every) {
            *last = Some(now);
            Some(std::mem::take(pending))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count() {
        let gate: LogGate<2> = LogGate::new(Duration::from_millis(50));
        assert_eq!(gate.pass(0, 1), Some(1));
        assert_eq!(gate.pass(0, 1), None);
        assert_eq!(gate.pass(0, 3), None);
        // Another kind has its own line.
        assert_eq!(gate.pass(1, 1), Some(1));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(gate.pass(0, 1), Some(5));
    }
}
