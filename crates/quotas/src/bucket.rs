//! A token bucket: `rate` tokens per minute, holding at most a minute's worth.

use std::time::{Duration, Instant};

/// A token bucket, refilled continuously.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_minute: u32,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(per_minute: u32, now: Instant) -> Self {
        Self { per_minute, tokens: f64::from(per_minute), last: now }
    }

    /// The configured rate.
    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// Changes the rate, keeping the tokens (capped at the new capacity).
    pub fn set_rate(&mut self, per_minute: u32, now: Instant) {
        self.refill(now);
        self.per_minute = per_minute;
        self.tokens = self.tokens.min(f64::from(per_minute));
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        let rate = f64::from(self.per_minute) / 60.0;
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(self.per_minute));
        self.last = now;
    }

    /// Whether `n` tokens are available (without taking them); `Err` is the wait until they are.
    pub fn check(&mut self, n: u32, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        let n = f64::from(n);
        if self.tokens >= n {
            return Ok(());
        }
        let rate = f64::from(self.per_minute.max(1)) / 60.0;
        Err(Duration::from_secs_f64(((n - self.tokens) / rate).min(3600.0)))
    }

    /// Takes `n` tokens (call after [`check`](Self::check) succeeded).
    pub fn take(&mut self, n: u32) {
        self.tokens = (self.tokens - f64::from(n)).max(0.0);
    }

    /// Whole tokens left.
    pub fn remaining(&self) -> u64 {
        self.tokens.floor() as u64
    }

    /// Time until the bucket is full again.
    pub fn until_full(&self) -> Duration {
        let rate = f64::from(self.per_minute.max(1)) / 60.0;
        Duration::from_secs_f64(((f64::from(self.per_minute) - self.tokens) / rate).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_a_burst_then_refills_at_its_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(60, start);
        for _ in 0..60 {
            assert!(bucket.check(1, start).is_ok());
            bucket.take(1);
        }
        let wait = bucket.check(1, start).unwrap_err();
        assert!((wait.as_secs_f64() - 1.0).abs() < 0.01, "{wait:?}");
        assert!(bucket.check(1, start + Duration::from_millis(1001)).is_ok());
        assert!(bucket.check(3, start + Duration::from_millis(1001)).is_err());
    }

    #[test]
    fn lowering_the_rate_caps_the_tokens() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(100, start);
        bucket.set_rate(2, start);
        assert_eq!(bucket.remaining(), 2);
    }
}
