//! Token buckets: one shared bucket paces calls to TMDB; bounded keyed
//! buckets limit what one client address may do (log in, sign up, cause
//! TMDB calls). Per-account login failures are shared through DynamoDB
//! instead (`accounts::lockout`).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;

/// Keys each per-client limiter holds at most: about 100 bytes each, so a
/// limiter stays under 10 MB whatever a flood of addresses does.
pub const CLIENT_KEYS: usize = 100_000;

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

/// Buckets by key, bounded to `max_keys`. Only spending takes a token, so
/// a limiter can count failures alone while checking before every attempt.
///
/// A key without a whole token is *locked*. Locked keys live apart from the
/// others: a new key evicts the least recently used unlocked key, so a
/// flood of new keys (made-up addresses) cannot wipe a lock. Only when every
/// key held is locked does a new key evict a lock: the one that ends first.
///
/// (governor's keyed limiter keeps its keys in an unbounded map whose only
/// clean-up, `retain_recent`, forgets keys by age: it can neither bound the
/// memory of a flood nor spare the locked keys, which is the point here.)
#[derive(Debug)]
pub struct KeyedLimiter<K: Hash + Eq> {
    rate: Rate,
    max_keys: usize,
    buckets: Mutex<Buckets<K>>,
}

#[derive(Debug)]
struct Buckets<K: Hash + Eq> {
    open: LruCache<K, Bucket>,
    locked: HashMap<K, Bucket>,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    pub fn new(rate: Rate, max_keys: usize) -> Self {
        Self {
            rate,
            max_keys: max_keys.max(1),
            buckets: Mutex::new(Buckets {
                open: LruCache::unbounded(),
                locked: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buckets<K>> {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `key`'s bucket as of `now`, if it holds one.
    fn current(&self, buckets: &Buckets<K>, key: &K, now: Instant) -> Option<Bucket> {
        buckets
            .open
            .peek(key)
            .or_else(|| buckets.locked.get(key))
            .map(|bucket| self.rate.refilled(*bucket, now))
    }

    /// `Err(retry_after)` when `key` has no token left.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let buckets = self.lock();
        match self.current(&buckets, key, now) {
            Some(bucket) if bucket.tokens < 1.0 => Err(self.rate.wait(bucket)),
            _ => Ok(()),
        }
    }

    /// Spends one token of `key` (saturating at zero).
    pub fn spend(&self, key: &K, now: Instant) {
        let mut buckets = self.lock();
        let bucket = self
            .current(&buckets, key, now)
            .unwrap_or_else(|| self.rate.full(now));
        self.put(
            &mut buckets,
            key,
            Bucket {
                tokens: (bucket.tokens - 1.0).max(0.0),
                ..bucket
            },
            now,
        );
    }

    /// Checks and spends at once: `Err(retry_after)`, spending nothing,
    /// when `key` has no token left.
    pub fn take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.lock();
        let bucket = self
            .current(&buckets, key, now)
            .unwrap_or_else(|| self.rate.full(now));
        if bucket.tokens < 1.0 {
            return Err(self.rate.wait(bucket));
        }
        self.put(
            &mut buckets,
            key,
            Bucket {
                tokens: bucket.tokens - 1.0,
                ..bucket
            },
            now,
        );
        Ok(())
    }

    /// Forgets `key` (a successful login clears the account's failures).
    pub fn reset(&self, key: &K) {
        let mut buckets = self.lock();
        buckets.open.pop(key);
        buckets.locked.remove(key);
    }

    /// How many keys are held, and how many of them are locked.
    pub fn len(&self) -> (usize, usize) {
        let buckets = self.lock();
        (
            buckets.open.len() + buckets.locked.len(),
            buckets.locked.len(),
        )
    }

    fn put(&self, buckets: &mut Buckets<K>, key: &K, bucket: Bucket, now: Instant) {
        buckets.open.pop(key);
        buckets.locked.remove(key);
        while buckets.open.len() + buckets.locked.len() >= self.max_keys {
            if buckets.open.pop_lru().is_some() {
                continue;
            }
            // Every key is locked: drop the lock that ends first.
            let first = buckets
                .locked
                .iter()
                .min_by(|a, b| {
                    self.rate
                        .wait(self.rate.refilled(*a.1, now))
                        .cmp(&self.rate.wait(self.rate.refilled(*b.1, now)))
                })
                .map(|(k, _)| k.clone());
            match first {
                Some(first) => {
                    buckets.locked.remove(&first);
                }
                None => break,
            }
        }
        if bucket.tokens < 1.0 {
            buckets.locked.insert(key.clone(), bucket);
        } else {
            buckets.open.put(key.clone(), bucket);
        }
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
        let limiter = KeyedLimiter::new(
            Rate {
                burst: 2,
                refill: Duration::from_secs(60),
            },
            10,
        );
        let now = Instant::now();
        limiter.spend(&"a", now);
        assert!(limiter.check(&"a", now).is_ok());
        limiter.spend(&"a", now);
        let wait = limiter.check(&"a", now).expect_err("a is limited");
        assert!(wait <= Duration::from_secs(60));
        assert!(limiter.check(&"b", now).is_ok(), "keys are independent");
        assert!(limiter.check(&"a", now + Duration::from_secs(60)).is_ok());
        limiter.reset(&"a");
        assert!(limiter.check(&"a", now).is_ok());
        assert!(limiter.take(&"c", now).is_ok() && limiter.take(&"c", now).is_ok());
        assert!(
            limiter.take(&"c", now).is_err(),
            "take checks and spends at once"
        );
    }

    #[test]
    fn a_flood_of_new_keys_neither_grows_the_limiter_nor_unlocks_a_key() {
        let limiter = KeyedLimiter::new(
            Rate {
                burst: 1,
                refill: Duration::from_secs(3600),
            },
            1000,
        );
        let now = Instant::now();
        // 5,000 made-up keys that each lock at once: the limiter stays
        // bounded (when every key held is locked, the lock ending first goes).
        for key in 0..5_000_u32 {
            limiter.take(&key, now).ok();
            assert!(limiter.check(&key, now).is_err(), "{key} locked");
        }
        let (held, locked) = limiter.len();
        assert!(
            held <= 1000 && locked == held,
            "{held} held, {locked} locked"
        );
        // Unlocked floods (one request each, under the burst) never evict a lock.
        let roomy = KeyedLimiter::new(
            Rate {
                burst: 5,
                refill: Duration::from_secs(3600),
            },
            1000,
        );
        for _ in 0..5 {
            roomy.spend(&0_u32, now);
        }
        assert!(roomy.check(&0, now).is_err(), "locked");
        for key in 1..200_000_u32 {
            roomy.spend(&key, now);
        }
        assert!(
            roomy.check(&0, now).is_err(),
            "still locked after the flood"
        );
        let (held, locked) = roomy.len();
        assert!(held <= 1000 && locked == 1, "{held} held, {locked} locked");
    }
}
