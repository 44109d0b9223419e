//! Time as the policy service sees it. Admission and the sweeper read a [`Clock`] instead of the
//! system time, so tests move time forward by half an hour instead of waiting for it.
//!
//! The sweeper's lease is the exception: it runs on the database's clock and the local monotonic
//! clock (see [`crate::lease`]), because leadership must not depend on replicas agreeing on the time.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::domain::EpochMillis;

/// Now, in epoch milliseconds.
pub trait Clock: Send + Sync + 'static {
    fn now_millis(&self) -> EpochMillis;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> EpochMillis {
        system_now_millis()
    }
}

/// The system time in epoch milliseconds (0 before 1970, which no supported system reports).
pub fn system_now_millis() -> EpochMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
}

/// A clock that stands still until told to move: for tests.
#[derive(Debug)]
pub struct ManualClock {
    now: AtomicI64,
}

impl ManualClock {
    /// A clock showing `at`.
    pub fn at(at: EpochMillis) -> Self {
        Self {
            now: AtomicI64::new(at),
        }
    }

    /// A clock showing the current system time (and staying there).
    pub fn starting_now() -> Self {
        Self::at(system_now_millis())
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.now.fetch_add(by, Ordering::SeqCst);
    }

    /// Sets the clock (forwards or backwards).
    pub fn set(&self, at: EpochMillis) {
        self.now.store(at, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> EpochMillis {
        self.now.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::at(1_000);
        assert_eq!(clock.now_millis(), 1_000);
        clock.advance(Duration::from_secs(31 * 60));
        assert_eq!(clock.now_millis(), 1_000 + 31 * 60 * 1000);
        clock.set(5);
        assert_eq!(clock.now_millis(), 5);
    }

    #[test]
    fn the_system_clock_is_after_2020() {
        assert!(SystemClock.now_millis() > 1_577_836_800_000);
    }
}
