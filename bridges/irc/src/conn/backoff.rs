//! When to reconnect: exponential backoff with full jitter per connection,
//! and one limiter on concurrent connection attempts for the whole process.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::BackoffConfig;

/// The delays of one connection's reconnection attempts.
#[derive(Debug)]
pub(crate) struct Backoff {
    config: BackoffConfig,
    attempt: u32,
}

impl Backoff {
    pub(crate) fn new(config: BackoffConfig) -> Self {
        Self { config, attempt: 0 }
    }

    /// The upper bound of the next delay: `initial * 2^attempt`, capped at `max`.
    pub(crate) fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.config
            .initial
            .checked_mul(factor)
            .unwrap_or(self.config.max)
            .min(self.config.max)
    }

    /// The next delay, uniform in `[0, ceiling]` ("full jitter": attempts of
    /// connections dropped together spread over the whole window instead of
    /// arriving in waves).
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }

    /// After a connection stayed up long enough: start again from `initial`.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Caps concurrent connection attempts across every connection of the
/// engine. A permit is held from the TCP connect to the end of the
/// registration burst (or the attempt's failure).
#[derive(Debug)]
pub(crate) struct ConnectLimiter {
    permits: Arc<Semaphore>,
    max: usize,
}

impl ConnectLimiter {
    pub(crate) fn new(max: usize) -> Self {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    pub(crate) async fn acquire(&self) -> OwnedSemaphorePermit {
        Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .expect("the connect limiter is never closed")
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.max - self.permits.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BackoffConfig {
        BackoffConfig {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
            stable_after: Duration::from_secs(60),
        }
    }

    #[test]
    fn ceiling_doubles_up_to_max() {
        let mut backoff = Backoff::new(config());
        let mut ceilings = Vec::new();
        for _ in 0..12 {
            ceilings.push(backoff.ceiling().as_secs());
            backoff.next_delay();
        }
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        for _ in 0..100 {
            backoff.next_delay();
        }
        assert_eq!(backoff.ceiling(), Duration::from_secs(300));
        backoff.reset();
        assert_eq!(backoff.ceiling(), Duration::from_secs(1));
    }

    #[test]
    fn delays_stay_within_bounds_and_spread() {
        let mut delays = Vec::new();
        for _ in 0..2000 {
            let mut backoff = Backoff::new(config());
            for _ in 0..4 {
                backoff.next_delay();
            }
            // Fifth attempt: ceiling 16 s.
            let delay = backoff.next_delay();
            assert!(delay <= Duration::from_secs(16), "{delay:?}");
            delays.push(delay);
        }
        let below_half = delays
            .iter()
            .filter(|d| **d < Duration::from_secs(8))
            .count();
        // Uniform: about half below the middle; anything near 0 or 2000
        // would mean no jitter.
        assert!((700..1300).contains(&below_half), "{below_half}");
        assert!(delays.iter().any(|d| *d < Duration::from_secs(1)));
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let mut backoff = Backoff::new(BackoffConfig {
            initial: Duration::from_secs(u64::MAX / 4),
            ..config()
        });
        backoff.attempt = u32::MAX;
        assert_eq!(backoff.ceiling(), Duration::from_secs(300));
        assert!(backoff.next_delay() <= Duration::from_secs(300));
    }

    #[tokio::test]
    async fn limiter_caps_concurrent_attempts() {
        let limiter = Arc::new(ConnectLimiter::new(2));
        let a = limiter.acquire().await;
        let _b = limiter.acquire().await;
        assert_eq!(limiter.in_flight(), 2);
        let waiting = tokio::spawn({
            let limiter = Arc::clone(&limiter);
            async move { limiter.acquire().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(a);
        let _c = waiting.await.unwrap();
        assert_eq!(limiter.in_flight(), 2);
    }
}
