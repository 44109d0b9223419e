//! The registry's own settings (the `[registry]` section of the configuration).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the registry behaves. Every field has a default; see the README's configuration reference.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrySettings {
    /// A live session with no user input for this long is IDLE.
    #[serde(with = "humantime_serde")]
    pub idle_after: Duration,
    /// How often each replica looks for sessions that just became idle.
    #[serde(with = "humantime_serde")]
    pub idle_scan_interval: Duration,
    /// How long activity reports are buffered before being written in one batch.
    #[serde(with = "humantime_serde")]
    pub activity_flush_interval: Duration,
    /// A buffer of this many sessions is written at once, without waiting for the interval.
    pub activity_flush_max: usize,
    /// A large flush is split into up to this many slices of different sessions, written at once
    /// over as many database connections (each slice at least 1,000 sessions).
    pub activity_flush_writers: usize,
    /// How often agents are asked to send activity batches.
    #[serde(with = "humantime_serde")]
    pub agent_activity_interval: Duration,
    /// How often agents are asked to send a heartbeat when they have nothing else to say.
    #[serde(with = "humantime_serde")]
    pub agent_heartbeat_interval: Duration,
    /// How long a new link may take to say hello.
    #[serde(with = "humantime_serde")]
    pub hello_timeout: Duration,
    /// How far behind the stored time a gateway was last heard from may fall: each replica writes a
    /// gateway's time at most this often (the writes spread over the interval), and at least three
    /// times per `gateway_grace`.
    #[serde(with = "humantime_serde")]
    pub gateway_seen_interval: Duration,
    /// A gateway not heard from for this long is lost: its live sessions end (reason GATEWAY_LOST) and
    /// a link still open to it is closed. When it reconnects, the sessions its hello says it still
    /// holds come back live. At least twice `agent_heartbeat_interval`, so a quiet but healthy agent
    /// is never taken for lost.
    #[serde(with = "humantime_serde")]
    pub gateway_grace: Duration,
    /// This replica's name, shown on the gateways it holds. Defaults to `$HOSTNAME` or a random name.
    pub replica: String,
    /// Key that signs page tokens; replicas behind one address must share it. Defaults to a
    /// fixed development key: set it in production.
    pub page_token_key: String,
    /// Changes buffered per replica for slow watchers before they are told to resynchronise.
    pub watch_buffer: usize,
    /// Change feeds (`WatchSessions` streams) one caller (a token's subject) may hold open on this
    /// replica at once; the next is refused with RESOURCE_EXHAUSTED.
    pub watch_streams_per_caller: usize,
    /// Change feeds all callers together may hold open on this replica at once.
    pub watch_streams_total: usize,
    /// Snapshot pages (of `WatchSessions` with `include_snapshot`) this replica reads from the
    /// database at once, whatever the number of feeds opening: the others wait their turn, so
    /// opening feeds never holds more than this many of the pool's connections. Keep it well below
    /// `database.max_connections`.
    pub snapshot_reads: usize,
    /// How session starts are decided (geo and policy timeouts, failure stance).
    pub admission: crate::admission::AdmissionSettings,
    /// How often the `vigil_sessions_live` metric is re-read from the database (scrapes and
    /// exports read the last count; they never query the database).
    #[serde(with = "humantime_serde")]
    pub metrics_refresh_interval: Duration,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        Self {
            idle_after: Duration::from_secs(5 * 60),
            idle_scan_interval: Duration::from_secs(5),
            activity_flush_interval: Duration::from_millis(500),
            activity_flush_max: 10_000,
            activity_flush_writers: 4,
            agent_activity_interval: Duration::from_secs(2),
            agent_heartbeat_interval: Duration::from_secs(10),
            hello_timeout: Duration::from_secs(10),
            gateway_seen_interval: Duration::from_secs(15),
            gateway_grace: Duration::from_secs(60),
            replica: std::env::var("HOSTNAME")
                .ok()
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| format!("registry-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])),
            page_token_key: DEVELOPMENT_PAGE_TOKEN_KEY.into(),
            watch_buffer: 4096,
            watch_streams_per_caller: 32,
            watch_streams_total: 1024,
            snapshot_reads: 2,
            admission: crate::admission::AdmissionSettings::default(),
            metrics_refresh_interval: Duration::from_secs(15),
        }
    }
}

/// The default page-token key: public (it is in this source), so only for development. A
/// production server refuses to start with it, and `vigil run` replaces it with a generated one.
pub const DEVELOPMENT_PAGE_TOKEN_KEY: &str = "vigil-development-page-token-key";

impl RegistrySettings {
    /// Refuses what a production server (`server.production`) must not run with: the public
    /// development page-token key, with which anyone can forge page tokens.
    pub fn validate_for_production(&self, production: bool) -> Result<(), String> {
        if production && self.page_token_key == DEVELOPMENT_PAGE_TOKEN_KEY {
            return Err(
                "registry.page_token_key is the public development key; set a secret of your own (every replica the same) before running with server.production"
                    .into(),
            );
        }
        Ok(())
    }

    /// Refuses settings that cannot work, naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("registry.idle_after", self.idle_after),
            ("registry.idle_scan_interval", self.idle_scan_interval),
            ("registry.activity_flush_interval", self.activity_flush_interval),
            ("registry.agent_activity_interval", self.agent_activity_interval),
            ("registry.agent_heartbeat_interval", self.agent_heartbeat_interval),
            ("registry.hello_timeout", self.hello_timeout),
            ("registry.gateway_grace", self.gateway_grace),
            ("registry.metrics_refresh_interval", self.metrics_refresh_interval),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| value.is_zero()) {
            return Err(format!("{name} must be longer than zero"));
        }
        if self.snapshot_reads == 0 {
            return Err("registry.snapshot_reads must be at least 1".into());
        }
        if self.watch_streams_per_caller == 0 || self.watch_streams_total == 0 {
            return Err("registry.watch_streams_per_caller and registry.watch_streams_total must be at least 1".into());
        }
        if self.gateway_grace < self.agent_heartbeat_interval.saturating_mul(2) {
            return Err(format!(
                "registry.gateway_grace ({:?}) must be at least twice registry.agent_heartbeat_interval ({:?}): a quiet agent speaks only once per heartbeat interval",
                self.gateway_grace, self.agent_heartbeat_interval
            ));
        }
        if self.activity_flush_max == 0 {
            return Err("registry.activity_flush_max must be at least 1".into());
        }
        if self.activity_flush_writers == 0 {
            return Err("registry.activity_flush_writers must be at least 1".into());
        }
        if self.watch_buffer == 0 {
            return Err("registry.watch_buffer must be at least 1".into());
        }
        if self.page_token_key.is_empty() {
            return Err("registry.page_token_key must not be empty".into());
        }
        Ok(())
    }

    pub(crate) fn idle_after_ms(&self) -> i64 {
        i64::try_from(self.idle_after.as_millis()).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_refuses_the_development_page_token_key() {
        let settings = RegistrySettings::default();
        assert!(settings.validate_for_production(false).is_ok());
        let error = settings.validate_for_production(true).unwrap_err();
        assert!(error.contains("registry.page_token_key"), "{error}");
        let own = RegistrySettings {
            page_token_key: "a-secret-of-our-own".into(),
            ..RegistrySettings::default()
        };
        assert!(own.validate_for_production(true).is_ok());
    }

    #[test]
    fn the_gateway_grace_must_outlast_two_heartbeats() {
        assert!(RegistrySettings::default().validate().is_ok());
        let settings = RegistrySettings {
            agent_heartbeat_interval: Duration::from_secs(40),
            ..RegistrySettings::default()
        };
        let error = settings.validate().unwrap_err();
        assert!(error.contains("registry.gateway_grace"), "{error}");
        let settings = RegistrySettings {
            gateway_grace: Duration::ZERO,
            ..RegistrySettings::default()
        };
        assert!(settings.validate().unwrap_err().contains("registry.gateway_grace"));
    }
}
