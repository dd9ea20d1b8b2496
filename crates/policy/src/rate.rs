//! Token buckets per (rule, source address), shared by every connection of a gateway.
//!
//! Memory is bounded and fixed at construction: a sharded, open-addressed table of buckets that
//! never grows, so [`RateLimiter::try_acquire`] (and with it `decide`) allocates nothing. A new
//! (rule, source) pair takes a free slot among a few probed ones, else a slot whose bucket has
//! refilled completely (dropping it loses nothing: a new bucket starts full too), else the
//! least recently used probed slot. The last case can only forget a partly drained bucket when
//! more (rule, source) pairs are active at once than the table holds.
//!
//! The clock is injected (`now`), so tests drive time by hand.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use crate::model::Rate;

const SHARDS: usize = 16;
const PROBES: usize = 8;

/// Buckets a limiter holds by default.
pub const DEFAULT_BUCKETS: usize = 16_384;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    rule: u64,
    src: IpAddr,
    tokens: f64,
    capacity: f64,
    per_sec: f64,
    last: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.per_sec).min(self.capacity);
        if now > self.last {
            self.last = now;
        }
    }

    fn is_full_at(&self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + dt * self.per_sec >= self.capacity
    }
}

/// One shard: a fixed-size open-addressed table of buckets.
type Shard = Mutex<Box<[Option<Bucket>]>>;

/// Rate-limit state: token buckets per (rule, source), `Sync`, bounded memory.
#[derive(Debug)]
pub struct RateLimiter {
    shards: Box<[Shard]>,
    hasher: RandomState,
}

impl RateLimiter {
    /// A limiter sized for `policy`: small when no rule has a `rate`, else
    /// [`DEFAULT_BUCKETS`]. Keep one limiter across reloads: a rule that keeps its conduit,
    /// id and rate keeps its buckets.
    pub fn new(policy: &crate::Policy) -> Self {
        if policy.has_rate_limits() {
            Self::with_capacity(DEFAULT_BUCKETS)
        } else {
            Self::with_capacity(SHARDS * PROBES)
        }
    }

    /// True when this limiter can serve `policy` after a reload: it is at least the size
    /// [`RateLimiter::new`] would pick. A reload keeps a limiter that suits the new policy, so
    /// that every rule keeping its conduit, id and rate keeps its buckets (and its limit holds
    /// across the reload); a small limiter made for a policy without rates does not suit one
    /// with rates, and has no partly drained bucket to lose.
    pub fn suits(&self, policy: &crate::Policy) -> bool {
        !policy.has_rate_limits() || self.capacity() >= DEFAULT_BUCKETS
    }

    /// A limiter holding at least `buckets` (rule, source) buckets.
    pub fn with_capacity(buckets: usize) -> Self {
        let per_shard = buckets.div_ceil(SHARDS).max(PROBES);
        let shards = (0..SHARDS)
            .map(|_| Mutex::new(vec![None; per_shard].into_boxed_slice()))
            .collect();
        Self {
            shards,
            hasher: RandomState::new(),
        }
    }

    /// How many buckets the limiter can hold.
    pub fn capacity(&self) -> usize {
        self.shards.len() * self.shards.first().map_or(0, |s| lock(s).len())
    }

    /// How many buckets are in use.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| lock(s).iter().filter(|b| b.is_some()).count())
            .sum()
    }

    /// True when no bucket is in use.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes one token from the bucket of (`rule`, `src`) under `rate`, at time `now`.
    /// Returns false when the bucket is empty. Allocates nothing.
    pub fn try_acquire(&self, rule: u64, src: IpAddr, rate: Rate, now: Instant) -> bool {
        let h = self.hasher.hash_one((rule, src));
        let shard = &self.shards[(h as usize) % self.shards.len()];
        let mut slots = lock(shard);
        let n = slots.len();
        if n == 0 {
            return true;
        }
        let start = ((h >> 32) as usize) % n;
        let mut victim: Option<(usize, u8, Instant)> = None; // (slot, rank, last): lower is better
        for i in 0..PROBES.min(n) {
            let idx = (start + i) % n;
            match &mut slots[idx] {
                Some(b) if b.rule == rule && b.src == src => {
                    b.refill(now);
                    if b.tokens >= 1.0 {
                        b.tokens -= 1.0;
                        return true;
                    }
                    return false;
                }
                Some(b) => {
                    let rank = if b.is_full_at(now) { 1 } else { 2 };
                    let better = match victim {
                        None => true,
                        Some((_, r, last)) => rank < r || (rank == r && b.last < last),
                    };
                    if better {
                        victim = Some((idx, rank, b.last));
                    }
                }
                None => {
                    if victim.is_none_or(|(_, r, _)| r > 0) {
                        victim = Some((idx, 0, now));
                    }
                }
            }
        }
        let capacity = f64::from(rate.count);
        let per_sec = capacity / rate.per.as_secs_f64().max(1e-9);
        if let Some((idx, _, _)) = victim {
            slots[idx] = Some(Bucket {
                rule,
                src,
                tokens: capacity - 1.0,
                capacity,
                per_sec,
                last: now,
            });
        }
        true
    }
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_BUCKETS)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a bucket half-written in a way that matters
    // (each is a plain Copy value), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn bucket_refills_over_time() {
        let l = RateLimiter::with_capacity(64);
        let rate = Rate {
            count: 2,
            per: Duration::from_secs(1),
        };
        let t0 = Instant::now();
        assert!(l.try_acquire(1, ip("10.0.0.1"), rate, t0));
        assert!(l.try_acquire(1, ip("10.0.0.1"), rate, t0));
        assert!(!l.try_acquire(1, ip("10.0.0.1"), rate, t0));
        // Another source and another rule have their own buckets.
        assert!(l.try_acquire(1, ip("10.0.0.2"), rate, t0));
        assert!(l.try_acquire(2, ip("10.0.0.1"), rate, t0));
        assert!(!l.try_acquire(1, ip("10.0.0.1"), rate, t0 + Duration::from_millis(400)));
        assert!(l.try_acquire(1, ip("10.0.0.1"), rate, t0 + Duration::from_millis(500)));
        assert!(!l.try_acquire(1, ip("10.0.0.1"), rate, t0 + Duration::from_millis(500)));
        // Burst never exceeds the count.
        let later = t0 + Duration::from_secs(60);
        assert!(l.try_acquire(1, ip("10.0.0.1"), rate, later));
        assert!(l.try_acquire(1, ip("10.0.0.1"), rate, later));
        assert!(!l.try_acquire(1, ip("10.0.0.1"), rate, later));
    }

    #[test]
    fn memory_is_bounded() {
        let l = RateLimiter::with_capacity(256);
        let cap = l.capacity();
        let rate = Rate {
            count: 1,
            per: Duration::from_secs(60),
        };
        let t0 = Instant::now();
        for i in 0..10_000u32 {
            let src = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            l.try_acquire(7, src, rate, t0);
        }
        assert_eq!(l.capacity(), cap);
        assert!(l.len() <= cap);
    }
}
