//! The `[events]` section: where events go, and how the relay works.
//!
//! ```toml
//! [events.sinks.soc]
//! kind = "webhook"
//! url = "https://hooks.example.com/vigil"
//! secret = "a long random string"
//! key_id = "2026-12"
//! types = ["session.flagged", "session.denied", "termination.*"]
//!
//! [events.sinks.siem]
//! kind = "syslog"
//! address = "siem.example.com:6514"
//! transport = "tls"
//! format = "cef"
//! min_risk = 40
//! ```
//! Each sink can also be set from the environment: `VIGIL_EVENTS__SINKS__SOC__URL=…`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigil_runtime::auth::Secret;

use crate::event::{Event, EventType};

/// How the relay delivers (the `[events]` section; every field has a default).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Sinks by name (the name is what `sessionctl events` shows and what the cursor is kept under).
    pub sinks: BTreeMap<String, SinkConfig>,
    /// How often a relay with nothing to do looks for new events.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Events read per round.
    pub batch: u64,
    /// A relay holds a sink for this long per renewal; a dead relay's sinks are taken over after it.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// Events older than this are deleted, delivered or not (a sink down longer loses the oldest).
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// How often delivered and expired events are deleted.
    #[serde(with = "humantime_serde")]
    pub prune_interval: Duration,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            sinks: BTreeMap::new(),
            poll_interval: Duration::from_millis(500),
            batch: 500,
            lease_ttl: Duration::from_secs(30),
            retention: Duration::from_secs(72 * 3600),
            prune_interval: Duration::from_secs(60),
        }
    }
}

impl EventsConfig {
    /// Checks every sink; the message names the sink and the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.batch == 0 {
            return Err("events.batch must be at least 1".into());
        }
        if self.lease_ttl < Duration::from_secs(1) {
            return Err("events.lease_ttl must be at least 1s".into());
        }
        for (name, sink) in &self.sinks {
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(format!(
                    "events.sinks: name {name:?} must be 1–64 letters, digits, - or _"
                ));
            }
            sink.validate()
                .map_err(|error| format!("events.sinks.{name}.{error}"))?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    #[default]
    Webhook,
    Syslog,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// RFC 6587 octet counting over TCP.
    #[default]
    Tcp,
    /// The same framing over TLS (RFC 5425).
    Tls,
    /// One message per datagram (RFC 5426); nothing confirms receipt.
    Udp,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogFormat {
    /// RFC 5424 with Vigil's structured data and a one-line summary.
    #[default]
    Rfc5424,
    /// RFC 5424 whose message is a CEF record.
    Cef,
}

/// One sink. Fields apply to the kind they name; the rest are ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkConfig {
    pub kind: SinkKind,
    /// Event types sent (`session.flagged`, or a prefix: `termination.*`); empty: all.
    pub types: Vec<String>,
    /// Only events carrying a risk score at least this high (session opened/denied/flagged).
    pub min_risk: Option<u32>,
    /// Deliveries in flight at once (different sessions; one session's events go one by one).
    pub concurrency: usize,
    /// Retry backoff: from `min_backoff`, doubling, with jitter, up to `max_backoff`.
    #[serde(with = "humantime_serde")]
    pub min_backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// One attempt may take this long (connect, send, answer).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Webhook: `https://…` (or `http://…` for a receiver on loopback).
    pub url: String,
    /// Webhook: the HMAC-SHA256 key the signature is made with.
    pub secret: Secret,
    /// Webhook: names the key in the signature header, so receivers can rotate keys.
    pub key_id: String,
    /// Syslog: `host:port`.
    pub address: String,
    pub transport: Transport,
    pub format: SyslogFormat,
    /// Syslog facility, 0–23 (default 10, security/authorization).
    pub facility: u8,
    /// Syslog APP-NAME.
    pub app_name: String,
    /// Syslog HOSTNAME (default: `$HOSTNAME`).
    pub hostname: String,
    /// A PEM file of CAs trusted besides the public roots (https webhooks, syslog over TLS).
    pub ca_file: Option<PathBuf>,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            kind: SinkKind::Webhook,
            types: Vec::new(),
            min_risk: None,
            concurrency: 4,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
            url: String::new(),
            secret: Secret::default(),
            key_id: "default".into(),
            address: String::new(),
            transport: Transport::Tcp,
            format: SyslogFormat::Rfc5424,
            facility: 10,
            app_name: "vigil".into(),
            hostname: std::env::var("HOSTNAME").unwrap_or_default(),
            ca_file: None,
        }
    }
}

impl SinkConfig {
    fn validate(&self) -> Result<(), String> {
        for pattern in &self.types {
            let known = match pattern.strip_suffix('*') {
                Some(prefix) => EventType::ALL.iter().any(|kind| kind.as_str().starts_with(prefix)),
                None => EventType::parse(pattern).is_some(),
            };
            if !known {
                return Err(format!("types: {pattern:?} names no event type"));
            }
        }
        if self.concurrency == 0 {
            return Err("concurrency must be at least 1".into());
        }
        if self.min_backoff.is_zero() || self.max_backoff < self.min_backoff {
            return Err("min_backoff must be positive and at most max_backoff".into());
        }
        match self.kind {
            SinkKind::Webhook => {
                let url = url::Url::parse(&self.url).map_err(|error| format!("url: {error}"))?;
                if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
                    return Err("url must be https://host/… (or http://)".into());
                }
                if self.secret.expose().len() < 16 {
                    return Err("secret must be at least 16 characters".into());
                }
                if self.key_id.is_empty()
                    || !self
                        .key_id
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && b != b',' && b != b'=')
                {
                    return Err("key_id must be printable ASCII without ',' or '='".into());
                }
            }
            SinkKind::Syslog => {
                if self
                    .address
                    .rsplit_once(':')
                    .and_then(|(_, port)| port.parse::<u16>().ok())
                    .is_none()
                {
                    return Err(format!("address {:?} must be host:port", self.address));
                }
                if self.facility > 23 {
                    return Err("facility must be 0–23".into());
                }
            }
        }
        Ok(())
    }

    /// Whether `event` passes this sink's filter.
    pub fn accepts(&self, event: &Event) -> bool {
        if event.kind == EventType::Test {
            return true;
        }
        let kind = event.kind.as_str();
        let typed = self.types.is_empty()
            || self.types.iter().any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => kind.starts_with(prefix),
                None => pattern == kind,
            });
        let risky = self
            .min_risk
            .is_none_or(|min| event.risk_score.is_some_and(|score| score >= min));
        typed && risky
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_by_type_pattern_and_risk() {
        let sink = SinkConfig {
            types: vec!["session.*".into(), "lock.created".into()],
            min_risk: Some(40),
            ..SinkConfig::default()
        };
        let event = |kind, score| Event::at(kind, "t", "x".into(), 0, serde_json::json!({})).with_risk(score);
        assert!(sink.accepts(&event(EventType::SessionFlagged, Some(40))));
        assert!(!sink.accepts(&event(EventType::SessionFlagged, Some(39))));
        assert!(!sink.accepts(&event(EventType::SessionOpened, None)));
        assert!(!sink.accepts(&event(EventType::PolicyCreated, Some(90))));
        assert!(sink.accepts(&event(EventType::Test, None)));
    }

    #[test]
    fn validation_names_the_sink_and_field() {
        let mut config = EventsConfig::default();
        config.sinks.insert(
            "soc".into(),
            SinkConfig {
                url: "ftp://x".into(),
                ..SinkConfig::default()
            },
        );
        assert!(config.validate().unwrap_err().starts_with("events.sinks.soc.url"));
        config.sinks.insert(
            "soc".into(),
            SinkConfig {
                url: "https://hooks.example.com/x".into(),
                secret: Secret::new("0123456789abcdef"),
                types: vec!["session.nope".into()],
                ..SinkConfig::default()
            },
        );
        assert!(config.validate().unwrap_err().contains("types"));
    }
}
