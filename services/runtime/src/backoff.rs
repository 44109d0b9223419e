//! Retry delays for loops that call something that may be down: exponential, capped, jittered.
//!
//! Every replica retrying on the same fixed beat hammers a dependency that is coming back, and
//! a fixed short beat floods the log while it is down. The delay doubles per failure up to a cap,
//! and each delay is drawn from its upper half ("equal jitter"), so replicas spread out but none
//! waits less than half the nominal delay.

use std::time::Duration;

use rand::Rng;

/// The state of one retry loop.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    /// Delays from about `min` (first failure) doubling up to `max`.
    pub const fn new(min: Duration, max: Duration) -> Self {
        Self { min, max, failures: 0 }
    }

    /// Records a failure; returns the delay before the next attempt.
    pub fn fail(&mut self) -> Duration {
        let nominal = self.nominal(self.failures);
        self.failures = self.failures.saturating_add(1);
        let half = nominal / 2;
        half + rand::rng().random_range(Duration::ZERO..=nominal - half)
    }

    /// Records a success; returns how many failures came before it (0: nothing to recover from).
    pub fn succeed(&mut self) -> u32 {
        std::mem::take(&mut self.failures)
    }

    /// Failures since the last success: 0 means the next failure is the first of an outage (the
    /// one worth a warning; the rest are noise).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    fn nominal(&self, failures: u32) -> Duration {
        let factor = 1u32.checked_shl(failures.min(30)).unwrap_or(u32::MAX);
        self.min.saturating_mul(factor).min(self.max).max(self.min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_with_jitter_in_the_upper_half() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let nominal = [100, 200, 400, 800, 1600, 2000, 2000];
        for (failure, nominal) in nominal.into_iter().enumerate() {
            let nominal = Duration::from_millis(nominal);
            let delay = backoff.fail();
            assert!(
                delay >= nominal / 2 && delay <= nominal,
                "failure {failure}: {delay:?} not within {nominal:?}/2..={nominal:?}"
            );
        }
        assert_eq!(backoff.failures(), 7);
        for _ in 0..100 {
            backoff.fail();
        }
        assert!(backoff.fail() <= Duration::from_secs(2));
        assert_eq!(backoff.succeed(), 108);
        assert_eq!(backoff.failures(), 0);
        assert!(backoff.fail() <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads_replicas_apart() {
        let delays: std::collections::HashSet<Duration> = (0..20)
            .map(|_| Backoff::new(Duration::from_secs(1), Duration::from_secs(1)).fail())
            .collect();
        assert!(delays.len() > 1, "20 replicas all drew {delays:?}");
    }
}
