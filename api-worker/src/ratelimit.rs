//! Token buckets: one shared bucket paces calls to TMDB; keyed buckets limit
//! login attempts per account and per client address.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Capacity and refill of a bucket: `burst` tokens, one more every `refill`.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub burst: u32,
    pub refill: Duration,
}

impl Rate {
    pub fn per_second(n: u32) -> Self {
        let n = n.max(1);
        Self {
            burst: n,
            refill: Duration::from_secs(1) / n,
        }
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> Bucket {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        let per_token = self.refill.as_secs_f64().max(f64::EPSILON);
        let tokens = (bucket.tokens + elapsed / per_token).min(f64::from(self.burst.max(1)));
        Bucket {
            tokens,
            updated: now,
        }
    }

    fn full(&self, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(self.burst.max(1)),
            updated: now,
        }
    }

    /// How long until `bucket` holds one whole token.
    fn wait(&self, bucket: Bucket) -> Duration {
        self.refill.mul_f64((1.0 - bucket.tokens).max(0.0))
    }
}

/// One bucket, with a pause an upstream can impose (a 429's Retry-After).
#[derive(Debug)]
pub struct Pacer {
    rate: Rate,
    state: Mutex<(Bucket, Option<Instant>)>,
}

impl Pacer {
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            state: Mutex::new((rate.full(Instant::now()), None)),
        }
    }

    /// Takes a token now, or says how long to wait before asking again.
    pub fn try_take(&self, now: Instant) -> Result<(), Duration> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(until) = state.1 {
            if until > now {
                return Err(until - now);
            }
            state.1 = None;
        }
        let bucket = self.rate.refilled(state.0, now);
        if bucket.tokens >= 1.0 {
            state.0 = Bucket {
                tokens: bucket.tokens - 1.0,
                ..bucket
            };
            Ok(())
        } else {
            state.0 = bucket;
            Err(self.rate.wait(bucket))
        }
    }

    /// Holds every caller back until `until`.
    pub fn pause_until(&self, until: Instant) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.1.is_none_or(|current| current < until) {
            state.1 = Some(until);
        }
    }

    /// Waits for a token, giving up (with the wait it would have needed)
    /// when that would pass `deadline`.
    pub async fn acquire(&self, deadline: tokio::time::Instant) -> Result<(), Duration> {
        loop {
            match self.try_take(Instant::now()) {
                Ok(()) => return Ok(()),
                Err(wait) => {
                    if tokio::time::Instant::now() + wait > deadline {
                        return Err(wait);
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// Buckets by key; only spending takes a token, so a limiter can count
/// failures alone while checking before every attempt.
#[derive(Debug)]
pub struct KeyedLimiter {
    rate: Rate,
    buckets: Mutex<HashMap<String, Bucket>>,
    max_keys: usize,
}

impl KeyedLimiter {
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            buckets: Mutex::new(HashMap::new()),
            max_keys: 100_000,
        }
    }

    /// `Err(retry_after)` when `key` has no token left.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        match buckets.get(key) {
            Some(bucket) => {
                let bucket = self.rate.refilled(*bucket, now);
                if bucket.tokens >= 1.0 {
                    Ok(())
                } else {
                    Err(self.rate.wait(bucket))
                }
            }
            None => Ok(()),
        }
    }

    /// Spends one token of `key` (saturating at zero).
    pub fn spend(&self, key: &str, now: Instant) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= self.max_keys && !buckets.contains_key(key) {
            // Full buckets carry no information: forget them first.
            buckets.retain(|_, b| self.rate.refilled(*b, now).tokens < f64::from(self.rate.burst));
            if buckets.len() >= self.max_keys {
                buckets.clear();
            }
        }
        let bucket = buckets
            .get(key)
            .copied()
            .unwrap_or_else(|| self.rate.full(now));
        let bucket = self.rate.refilled(bucket, now);
        buckets.insert(
            key.to_owned(),
            Bucket {
                tokens: (bucket.tokens - 1.0).max(0.0),
                ..bucket
            },
        );
    }

    /// Forgets `key` (a successful login clears the account's failures).
    pub fn reset(&self, key: &str) {
        self.buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_allows_a_burst_then_spaces_calls() {
        let pacer = Pacer::new(Rate::per_second(2));
        let now = Instant::now();
        assert!(pacer.try_take(now).is_ok());
        assert!(pacer.try_take(now).is_ok());
        let wait = pacer.try_take(now).expect_err("bucket empty");
        assert!(
            wait > Duration::from_millis(400) && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        assert!(pacer.try_take(now + Duration::from_millis(500)).is_ok());
    }

    #[test]
    fn pacer_honours_a_pause() {
        let pacer = Pacer::new(Rate::per_second(100));
        let now = Instant::now();
        pacer.pause_until(now + Duration::from_secs(2));
        assert_eq!(pacer.try_take(now), Err(Duration::from_secs(2)));
        assert!(pacer.try_take(now + Duration::from_secs(2)).is_ok());
    }

    #[test]
    fn keyed_limiter_counts_spending_per_key_and_refills() {
        let limiter = KeyedLimiter::new(Rate {
            burst: 2,
            refill: Duration::from_secs(60),
        });
        let now = Instant::now();
        limiter.spend("a", now);
        assert!(limiter.check("a", now).is_ok());
        limiter.spend("a", now);
        let wait = limiter.check("a", now).expect_err("a is limited");
        assert!(wait <= Duration::from_secs(60));
        assert!(limiter.check("b", now).is_ok(), "keys are independent");
        assert!(limiter.check("a", now + Duration::from_secs(60)).is_ok());
        limiter.reset("a");
        assert!(limiter.check("a", now).is_ok());
    }
}
