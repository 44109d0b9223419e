//! The termination service's own settings (the `[termination]` section).

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TerminationSettings {
    /// A command not acknowledged this long after it was sent is sent again.
    #[serde(with = "humantime_serde")]
    pub ack_timeout: Duration,
    /// Re-sends back off exponentially from `ack_timeout` up to this.
    #[serde(with = "humantime_serde")]
    pub max_retry_interval: Duration,
    /// How often each replica looks for commands due for re-sending.
    #[serde(with = "humantime_serde")]
    pub redelivery_scan_interval: Duration,
    /// Most commands re-sent per scan (the rest wait for the next).
    pub redelivery_batch: u64,
    /// The first re-send of a termination's commands waits this much longer per command in it: the
    /// acknowledgements of an end-all of 100,000 sessions take seconds to be recorded (11–18 s in
    /// `make bench` on 2 cores), and re-sending commands whose answer is only waiting to be
    /// recorded adds thousands of messages when the system is already behind. Zero turns it off.
    #[serde(with = "humantime_serde")]
    pub ack_allowance_per_command: Duration,
}

impl Default for TerminationSettings {
    fn default() -> Self {
        Self {
            ack_timeout: Duration::from_secs(5),
            max_retry_interval: Duration::from_secs(60),
            redelivery_scan_interval: Duration::from_secs(1),
            redelivery_batch: 50_000,
            ack_allowance_per_command: Duration::from_micros(250),
        }
    }
}

impl TerminationSettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.ack_timeout.is_zero() || self.redelivery_scan_interval.is_zero() {
            return Err(
                "termination.ack_timeout and termination.redelivery_scan_interval must be longer than zero".into(),
            );
        }
        if self.max_retry_interval < self.ack_timeout {
            return Err("termination.max_retry_interval must not be shorter than termination.ack_timeout".into());
        }
        if self.redelivery_batch == 0 {
            return Err("termination.redelivery_batch must be at least 1".into());
        }
        Ok(())
    }

    /// What a termination of `commands` commands adds to its commands' first re-send delay, in
    /// milliseconds (`ack_allowance_per_command` each).
    pub fn ack_allowance_ms(&self, commands: usize) -> i64 {
        let micros = self
            .ack_allowance_per_command
            .as_micros()
            .saturating_mul(commands as u128);
        i64::try_from(micros / 1_000).unwrap_or(i64::MAX)
    }

    /// Delay before attempt `attempts + 1`, in milliseconds: `ack_timeout`, doubling, capped.
    pub fn retry_after_ms(&self, attempts: u32) -> i64 {
        let base = self.ack_timeout.as_millis() as i64;
        let cap = self.max_retry_interval.as_millis() as i64;
        let factor = 1_i64 << attempts.saturating_sub(1).min(20);
        base.saturating_mul(factor).min(cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_and_cap() {
        let settings = TerminationSettings::default();
        assert_eq!(settings.retry_after_ms(1), 5_000);
        assert_eq!(settings.retry_after_ms(2), 10_000);
        assert_eq!(settings.retry_after_ms(3), 20_000);
        assert_eq!(settings.retry_after_ms(5), 60_000);
        assert_eq!(settings.retry_after_ms(u32::MAX), 60_000);
    }

    #[test]
    fn big_terminations_wait_longer_for_their_acknowledgements() {
        let settings = TerminationSettings::default();
        assert_eq!(settings.ack_allowance_ms(1), 0, "a kill: nothing to speak of");
        assert_eq!(settings.ack_allowance_ms(4_000), 1_000);
        assert_eq!(settings.ack_allowance_ms(100_000), 25_000);
        let off = TerminationSettings {
            ack_allowance_per_command: Duration::ZERO,
            ..Default::default()
        };
        assert_eq!(off.ack_allowance_ms(100_000), 0);
        let huge = TerminationSettings {
            ack_allowance_per_command: Duration::from_secs(u64::MAX),
            ..Default::default()
        };
        assert_eq!(huge.ack_allowance_ms(usize::MAX), i64::MAX, "saturates");
    }

    #[test]
    fn nonsense_is_refused() {
        let settings = TerminationSettings {
            max_retry_interval: Duration::from_secs(1),
            ..Default::default()
        };
        assert!(settings.validate().unwrap_err().contains("max_retry_interval"));
    }
}
