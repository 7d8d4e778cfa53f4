//! Request rate limits: token buckets per client address and route class
//! (DataKit's `request_rate_limit`), and one bucket for all clients (the
//! exporter-toolkit web config's `rate_limit`).
//!
//! Contract:
//! - A bucket holds up to `burst` tokens, refills at `rate` per second,
//!   and each request takes one; a request that finds none is refused
//!   with the time until the next token.
//! - Clients on the Unix socket share one bucket per class.
//! - Memory is bounded: past `MAX_BUCKETS` clients, buckets that are full
//!   again (their client quiet for a burst's worth of time) are dropped;
//!   if none are, the oldest half goes. Forgetting a quiet client loses
//!   nothing, since its bucket would be full.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Clients tracked before quiet ones are forgotten.
const MAX_BUCKETS: usize = 65_536;

/// One token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: burst,
            last: now,
        }
    }

    /// Takes a token, or says how long until one is there.
    fn take(&mut self, rate: f64, burst: f64, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }
}

/// A rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens per second, above zero.
    pub per_second: f64,
    /// Bucket size, at least 1.
    pub burst: u64,
}

/// The limits of one listener.
pub struct RateLimiter {
    per_client: Option<Rate>,
    global: Option<(Rate, Mutex<Bucket>)>,
    buckets: Mutex<HashMap<(Option<IpAddr>, u8), Bucket>>,
}

impl RateLimiter {
    /// `per_client` per address and class; `global` across all requests.
    pub fn new(per_client: Option<Rate>, global: Option<Rate>) -> RateLimiter {
        let now = Instant::now();
        RateLimiter {
            per_client,
            global: global.map(|r| (r, Mutex::new(Bucket::full(r.burst as f64, now)))),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether any limit is set.
    pub fn is_on(&self) -> bool {
        self.per_client.is_some() || self.global.is_some()
    }

    /// Takes a token for a request of `class` from `client` (None: the
    /// Unix socket); Err is how long until the client may try again.
    pub fn check(&self, client: Option<IpAddr>, class: u8) -> Result<(), Duration> {
        let now = Instant::now();
        if let Some(rate) = self.per_client {
            let burst = rate.burst as f64;
            let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
            if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&(client, class)) {
                forget_quiet(&mut buckets, rate, now);
            }
            buckets
                .entry((client, class))
                .or_insert_with(|| Bucket::full(burst, now))
                .take(rate.per_second, burst, now)?;
        }
        if let Some((rate, bucket)) = &self.global {
            let mut bucket = bucket.lock().unwrap_or_else(|e| e.into_inner());
            bucket.take(rate.per_second, rate.burst as f64, now)?;
        }
        Ok(())
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.lock().unwrap().len()
    }
}

/// Drops buckets that have refilled; if none have, the older half.
fn forget_quiet(buckets: &mut HashMap<(Option<IpAddr>, u8), Bucket>, rate: Rate, now: Instant) {
    let refill = Duration::from_secs_f64(rate.burst as f64 / rate.per_second);
    buckets.retain(|_, b| now.saturating_duration_since(b.last) < refill);
    if buckets.len() >= MAX_BUCKETS {
        let mut ages: Vec<Instant> = buckets.values().map(|b| b.last).collect();
        ages.sort_unstable();
        let cut = ages[ages.len() / 2];
        buckets.retain(|_, b| b.last > cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> Option<IpAddr> {
        Some(IpAddr::V4(n.into()))
    }

    #[test]
    fn per_client_and_class_buckets() {
        let limiter = RateLimiter::new(
            Some(Rate {
                per_second: 10.0,
                burst: 3,
            }),
            None,
        );
        for _ in 0..3 {
            assert_eq!(limiter.check(ip(1), 0), Ok(()));
        }
        let wait = limiter.check(ip(1), 0).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        // Another class, another client, the Unix socket: their own buckets.
        assert_eq!(limiter.check(ip(1), 1), Ok(()));
        assert_eq!(limiter.check(ip(2), 0), Ok(()));
        assert_eq!(limiter.check(None, 0), Ok(()));
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(limiter.check(ip(1), 0), Ok(()));
    }

    #[test]
    fn one_bucket_for_all() {
        let limiter = RateLimiter::new(
            None,
            Some(Rate {
                per_second: 1.0,
                burst: 2,
            }),
        );
        assert!(limiter.is_on());
        assert_eq!(limiter.check(ip(1), 0), Ok(()));
        assert_eq!(limiter.check(ip(2), 1), Ok(()));
        assert!(limiter.check(ip(3), 2).is_err());
        assert!(!RateLimiter::new(None, None).is_on());
    }

    #[test]
    fn memory_stays_bounded() {
        let limiter = RateLimiter::new(
            Some(Rate {
                per_second: 1.0,
                burst: 5,
            }),
            None,
        );
        for n in 0..(MAX_BUCKETS as u32 + 10) {
            limiter.check(ip(n), 0).unwrap();
        }
        assert!(limiter.tracked() <= MAX_BUCKETS, "{}", limiter.tracked());
    }
}
