//! The outgoing flood limit: a token bucket per connection.

use tokio::time::{Duration, Instant};

use super::FloodConfig;

/// Holds up to `burst` tokens, one more every `interval`; a line costs one.
/// It starts full, so a burst goes out at once after connecting.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    burst: u32,
    interval: Duration,
    tokens: u32,
    /// When the last token was credited; only meaningful when not full.
    refilled: Instant,
}

impl TokenBucket {
    pub(crate) fn new(config: FloodConfig, now: Instant) -> Self {
        Self {
            burst: config.burst.max(1),
            interval: config.interval,
            tokens: config.burst.max(1),
            refilled: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        if self.tokens >= self.burst {
            self.refilled = now;
            return;
        }
        if self.interval.is_zero() {
            self.tokens = self.burst;
            self.refilled = now;
            return;
        }
        let elapsed = now.saturating_duration_since(self.refilled);
        let earned = elapsed.as_nanos() / self.interval.as_nanos();
        if earned == 0 {
            return;
        }
        let earned = u32::try_from(earned).unwrap_or(u32::MAX);
        self.tokens = self.tokens.saturating_add(earned).min(self.burst);
        if self.tokens >= self.burst {
            self.refilled = now;
        } else {
            // Keep the part of an interval already waited for.
            self.refilled += self.interval * earned;
        }
    }

    /// Takes a token if there is one.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }

    pub(crate) fn has_token(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens > 0
    }

    /// When the next token arrives (now when there is one).
    pub(crate) fn next_token_at(&mut self, now: Instant) -> Instant {
        self.refill(now);
        if self.tokens > 0 {
            now
        } else {
            self.refilled + self.interval
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(burst: u32, interval_ms: u64) -> TokenBucket {
        TokenBucket::new(
            FloodConfig {
                burst,
                interval: Duration::from_millis(interval_ms),
            },
            Instant::now(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn burst_then_steady_rate() {
        let mut b = bucket(5, 2000);
        let start = Instant::now();
        for _ in 0..5 {
            assert!(b.try_take(Instant::now()));
        }
        assert!(!b.try_take(Instant::now()));
        assert_eq!(
            b.next_token_at(Instant::now()),
            start + Duration::from_secs(2)
        );

        // Sending 5 more lines as fast as allowed takes 5 intervals.
        for _ in 0..5 {
            while !b.try_take(Instant::now()) {
                tokio::time::sleep_until(b.next_token_at(Instant::now())).await;
            }
        }
        assert_eq!(Instant::now() - start, Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn partial_intervals_are_not_lost() {
        let mut b = bucket(1, 1000);
        assert!(b.try_take(Instant::now()));
        tokio::time::advance(Duration::from_millis(700)).await;
        assert!(!b.try_take(Instant::now()));
        tokio::time::advance(Duration::from_millis(300)).await;
        assert!(b.try_take(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn refills_up_to_the_burst_only() {
        let mut b = bucket(3, 1000);
        for _ in 0..3 {
            assert!(b.try_take(Instant::now()));
        }
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..3 {
            assert!(b.try_take(Instant::now()));
        }
        assert!(!b.has_token(Instant::now()));
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(!b.has_token(Instant::now()));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(b.has_token(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_never_waits() {
        let mut b = TokenBucket::new(FloodConfig::unlimited(), Instant::now());
        for _ in 0..10_000 {
            assert!(b.try_take(Instant::now()));
        }
    }
}
