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
}

impl Default for TerminationSettings {
    fn default() -> Self {
        Self {
            ack_timeout: Duration::from_secs(5),
            max_retry_interval: Duration::from_secs(60),
            redelivery_scan_interval: Duration::from_secs(1),
            redelivery_batch: 50_000,
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
    fn nonsense_is_refused() {
        let settings = TerminationSettings {
            max_retry_interval: Duration::from_secs(1),
            ..Default::default()
        };
        assert!(settings.validate().unwrap_err().contains("max_retry_interval"));
    }
}
