//! A per-socket token bucket limiting client events, so one misbehaving client cannot make the
//! hub hammer Redis with count reads.

use std::time::Instant;

/// Token bucket: `rate` tokens per second, holding at most `burst`.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket refilling `per_second` tokens a second, holding twice that (0 = unlimited).
    pub fn new(per_second: u32, now: Instant) -> Self {
        let rate = f64::from(per_second);
        Self {
            rate,
            burst: rate * 2.0,
            tokens: rate * 2.0,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn allows_a_burst_then_refills() {
        let t = Instant::now();
        let mut b = TokenBucket::new(5, t);
        assert_eq!((0..20).filter(|_| b.try_take(t)).count(), 10);
        assert!(!b.try_take(t));
        assert!(b.try_take(t + Duration::from_millis(200)));
        assert!(!b.try_take(t + Duration::from_millis(200)));
    }

    #[test]
    fn zero_means_unlimited() {
        let t = Instant::now();
        let mut b = TokenBucket::new(0, t);
        assert!((0..1000).all(|_| b.try_take(t)));
    }
}
