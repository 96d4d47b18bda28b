//! Throttling per access key: a token bucket (GCRA, from `governor`) of `per_second` calls
//! refilled continuously, holding at most `burst`. A call over the limit is refused with
//! `Throttling.User` and an `x-acs-retry-after` header (milliseconds), which the official SDK
//! raises as its `ThrottlingException` with `retry_after` set.
//!
//! Buckets are per node: N nodes over one database let a key make up to N times the rate.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use cloudphone_core::ApiError;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Buckets of keys not seen for a while are dropped every this many calls, so that a stream of
/// ever-new key ids cannot grow the map without bound.
const PRUNE_EVERY: u64 = 4096;

pub struct Throttle {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
    calls: AtomicU64,
}

impl Default for Throttle {
    /// No throttling.
    fn default() -> Throttle {
        Throttle::new(0, 0)
    }
}

impl Throttle {
    /// `per_second` calls a second per key, bursts of up to `burst` (at least `per_second`);
    /// `per_second` 0 turns throttling off.
    pub fn new(per_second: u32, burst: u32) -> Throttle {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Throttle {
            limiter,
            clock: DefaultClock::default(),
            calls: AtomicU64::new(0),
        }
    }

    /// Takes one call from `key_id`'s bucket, or says how long until one is there.
    pub fn check(&self, key_id: &str) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if self.calls.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            limiter.retain_recent();
        }
        match limiter.check_key(&key_id.to_string()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Err(ApiError::Throttled {
                    retry_after_ms: (wait.as_millis() as u64).max(1),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_next_call_is_told_when_to_retry() {
        let t = Throttle::new(10, 5);
        for _ in 0..10 {
            t.check("a").expect("within the burst");
        }
        match t.check("a") {
            Err(ApiError::Throttled { retry_after_ms }) => {
                assert!((1..=100).contains(&retry_after_ms), "{retry_after_ms}")
            }
            other => panic!("{other:?}"),
        }
        // Another key has its own bucket.
        t.check("b").expect("a fresh bucket");
    }

    #[test]
    fn zero_turns_it_off() {
        let t = Throttle::new(0, 0);
        for _ in 0..10_000 {
            t.check("a").unwrap();
        }
    }
}
