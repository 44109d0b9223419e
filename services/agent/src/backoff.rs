//! Reconnection delays: exponential growth, a cap, and jitter so that thousands of gateways cut off by
//! the same incident do not all come back in the same millisecond.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff: `initial · 2^attempt`, capped at `max`, each delay jittered into `[d/2, d]`.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        // A zero initial delay would never grow; a max below initial would be ignored by `min`.
        let initial = initial.max(Duration::from_millis(1));
        Self {
            initial,
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// The un-jittered delay of the next attempt.
    pub(crate) fn base_delay(&self) -> Duration {
        // 2^20 · 1 ms is already 17 minutes: beyond that the cap always wins, and the shift cannot overflow.
        let factor = 1u32 << self.attempt.min(20);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The delay before the next attempt; each call makes the following one longer, up to the cap.
    pub(crate) fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let base = self.base_delay();
        self.attempt = self.attempt.saturating_add(1);
        jitter(base, rng)
    }

    /// The jittered longest delay, for failures that retrying soon will not fix (a refused hello).
    pub(crate) fn max_delay(&mut self, rng: &mut impl Rng) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        jitter(self.max, rng)
    }

    /// Back to the initial delay, after a success.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A delay drawn uniformly from `[base/2, base]` ("equal jitter"): spread out, yet never much shorter
/// than intended.
pub(crate) fn jitter(base: Duration, rng: &mut impl Rng) -> Duration {
    let half = base / 2;
    let spread = base - half;
    if spread.is_zero() {
        return base;
    }
    let nanos = u64::try_from(spread.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(rng.random_range(0..=nanos))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn delays_double_then_stop_at_the_cap() {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let mut rng = StdRng::seed_from_u64(1);
        let mut bases = Vec::new();
        for _ in 0..10 {
            bases.push(backoff.base_delay());
            backoff.next_delay(&mut rng);
        }
        let millis: Vec<u128> = bases.iter().map(Duration::as_millis).collect();
        assert_eq!(
            millis,
            [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000, 10_000]
        );
    }

    #[test]
    fn many_failures_neither_overflow_nor_exceed_the_cap() {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let mut rng = StdRng::seed_from_u64(2);
        for _ in 0..10_000 {
            assert!(backoff.next_delay(&mut rng) <= Duration::from_secs(10));
        }
        assert_eq!(backoff.base_delay(), Duration::from_secs(10));
    }

    #[test]
    fn reset_returns_to_the_initial_delay() {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..5 {
            backoff.next_delay(&mut rng);
        }
        backoff.reset();
        assert_eq!(backoff.base_delay(), Duration::from_millis(200));
    }

    #[test]
    fn jitter_stays_between_half_and_full_delay_and_actually_varies() {
        let mut rng = StdRng::seed_from_u64(4);
        let base = Duration::from_millis(800);
        let delays: Vec<Duration> = (0..1000).map(|_| jitter(base, &mut rng)).collect();
        assert!(delays.iter().all(|d| *d >= base / 2 && *d <= base));
        let min = delays.iter().min().copied().unwrap_or_default();
        let max = delays.iter().max().copied().unwrap_or_default();
        // Uniform over 400 ms: 1000 draws cover most of the range.
        assert!(max - min > Duration::from_millis(300), "min {min:?}, max {max:?}");
    }

    #[test]
    fn refused_hello_waits_the_jittered_maximum() {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let mut rng = StdRng::seed_from_u64(5);
        for _ in 0..100 {
            let delay = backoff.max_delay(&mut rng);
            assert!(
                delay >= Duration::from_secs(5) && delay <= Duration::from_secs(10),
                "{delay:?}"
            );
        }
    }

    #[test]
    fn degenerate_settings_are_tamed() {
        let backoff = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(backoff.base_delay(), Duration::from_millis(1));
        let backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(backoff.base_delay(), Duration::from_secs(2));
    }
}
