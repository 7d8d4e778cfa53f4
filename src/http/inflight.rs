//! One memory budget for every request in flight: the body bytes held and
//! the bytes decompressed from them (`max_inflight_bytes`).
//!
//! Contract:
//! - The bytes held by all [`InflightPermit`]s never exceed the budget.
//! - A permit grows as its request reads or decompresses; growth that does
//!   not fit either waits (async callers, up to a bound) or fails at once
//!   (the blocking decompressor), and the caller refuses the request
//!   with 503. Nothing is ever taken past the budget "just this once".
//! - Dropping a permit gives its bytes back and wakes the waiters.
//! - The last quarter of the budget is kept for requests that hold at
//!   most [`SMALL`] bytes: large bodies stalled by slow clients can hold
//!   three quarters at most, so ordinary pushes still get in meanwhile.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

/// A request holding at most this much may use the reserved quarter.
pub const SMALL: u64 = 1 << 20;

/// The budget shared by all requests.
pub struct InflightBudget {
    max: u64,
    used: Mutex<u64>,
    freed: Notify,
}

/// Bytes one request holds of the budget.
pub struct InflightPermit {
    budget: Arc<InflightBudget>,
    held: Mutex<u64>,
}

impl InflightBudget {
    pub fn new(max: u64) -> Arc<InflightBudget> {
        Arc::new(InflightBudget {
            max,
            used: Mutex::new(0),
            freed: Notify::new(),
        })
    }

    /// Bytes held now, by all permits.
    pub fn used(&self) -> u64 {
        *self.lock()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        self.used.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `n` bytes for a permit that will then hold `total`.
    fn try_reserve(&self, n: u64, total: u64) -> bool {
        let limit = if total <= SMALL {
            self.max
        } else {
            self.max - self.max / 4
        };
        let mut used = self.lock();
        if *used + n <= limit {
            *used += n;
            true
        } else {
            false
        }
    }

    /// An empty permit, to grow as the request goes.
    pub fn permit(self: &Arc<Self>) -> InflightPermit {
        InflightPermit {
            budget: self.clone(),
            held: Mutex::new(0),
        }
    }
}

impl InflightPermit {
    /// Bytes this permit holds.
    pub fn held(&self) -> u64 {
        *self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The whole budget's size, for messages.
    pub fn budget_max(&self) -> u64 {
        self.budget.max
    }

    /// Takes `n` more bytes if they fit now.
    pub fn try_grow(&self, n: u64) -> bool {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if !self.budget.try_reserve(n, *held + n) {
            return false;
        }
        *held += n;
        true
    }

    /// Takes `n` more bytes, waiting up to `wait` for others to give
    /// theirs back.
    pub async fn grow(&self, n: u64, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before the check, so a release in between wakes it.
            let freed = self.budget.freed.notified();
            if self.try_grow(n) {
                return true;
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return false;
            }
        }
    }
}

impl Drop for InflightPermit {
    fn drop(&mut self) {
        let held = *self.held.get_mut().unwrap_or_else(|e| e.into_inner());
        if held > 0 {
            *self.budget.lock() -= held;
            self.budget.freed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_requests_leave_a_quarter_to_small_ones() {
        let budget = InflightBudget::new(8 * SMALL);
        let large = budget.permit();
        assert!(large.try_grow(6 * SMALL));
        assert!(!large.try_grow(1), "past three quarters");
        let other_large = budget.permit();
        assert!(!other_large.try_grow(SMALL + 1));
        let small: Vec<_> = (0..2).map(|_| budget.permit()).collect();
        for p in &small {
            assert!(p.try_grow(SMALL));
        }
        assert_eq!(budget.used(), 8 * SMALL);
    }

    #[tokio::test]
    async fn the_budget_holds_and_waiters_wake() {
        let budget = InflightBudget::new(100);
        let a = budget.permit();
        assert!(a.try_grow(60));
        let b = budget.permit();
        assert!(!b.try_grow(50));
        assert!(b.try_grow(40));
        assert_eq!(budget.used(), 100);
        // Times out while a holds its bytes.
        assert!(!b.grow(10, Duration::from_millis(20)).await);
        let waiter = {
            let budget = budget.clone();
            tokio::spawn(async move {
                let c = budget.permit();
                c.grow(50, Duration::from_secs(5)).await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(a);
        assert!(waiter.await.unwrap());
        // c was dropped with its task: only b's 40 are held.
        assert_eq!(budget.used(), 40);
        drop(b);
        assert_eq!(budget.used(), 0);
    }
}
