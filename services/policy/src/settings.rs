//! The policy service's own settings (the `[policy]` section).

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicySettings {
    /// This replica's name, in logs and in the sweeper's lease (made unique per process there).
    /// Defaults to `$HOSTNAME`, or a random name.
    pub replica: String,
    /// Whether this replica runs the sweeper. Every replica may: one of them leads at a time.
    pub sweeper: bool,
    /// How often the leader sweeps.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
    /// How long leadership lasts without renewal: a dead leader is replaced within about this
    /// long. The leader renews every third of it.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// Sessions read from the registry per page.
    pub page_size: u32,
    /// How often the leader frees the concurrency slots of sessions the registry no longer has
    /// live (ended while their release was lost, or never recorded after admission).
    #[serde(with = "humantime_serde")]
    pub reconcile_interval: Duration,
    /// Slots younger than this are left alone by reconciliation (their session may be about to be
    /// recorded by the registry).
    #[serde(with = "humantime_serde")]
    pub slot_grace: Duration,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            replica: std::env::var("HOSTNAME")
                .ok()
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| format!("policy-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])),
            sweeper: true,
            sweep_interval: Duration::from_secs(5),
            lease_ttl: Duration::from_secs(10),
            page_size: 500,
            reconcile_interval: Duration::from_secs(60),
            slot_grace: Duration::from_secs(120),
        }
    }
}

impl PolicySettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.replica.trim().is_empty() {
            return Err("policy.replica must not be empty".into());
        }
        if self.sweep_interval.is_zero() || self.reconcile_interval.is_zero() {
            return Err("policy.sweep_interval and policy.reconcile_interval must be longer than zero".into());
        }
        if self.lease_ttl < Duration::from_millis(300) {
            return Err("policy.lease_ttl must be at least 300ms (the leader renews every third of it)".into());
        }
        if !(1..=1000).contains(&self.page_size) {
            return Err("policy.page_size must be between 1 and 1000".into());
        }
        if self.slot_grace < Duration::from_secs(1) {
            return Err("policy.slot_grace must be at least 1s".into());
        }
        Ok(())
    }

    /// How often the leader renews its lease (and others try to take it).
    pub fn renew_interval(&self) -> Duration {
        self.lease_ttl / 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_renew_three_times_per_ttl() {
        let settings = PolicySettings::default();
        settings.validate().unwrap();
        assert_eq!(
            settings.renew_interval(),
            Duration::from_millis(3333) + Duration::from_nanos(333_333)
        );
    }

    #[test]
    fn nonsense_is_refused() {
        let cases = [
            PolicySettings {
                lease_ttl: Duration::from_millis(10),
                ..Default::default()
            },
            PolicySettings {
                page_size: 0,
                ..Default::default()
            },
            PolicySettings {
                sweep_interval: Duration::ZERO,
                ..Default::default()
            },
            PolicySettings {
                replica: " ".into(),
                ..Default::default()
            },
        ];
        for settings in cases {
            assert!(settings.validate().is_err(), "{settings:?}");
        }
    }
}
