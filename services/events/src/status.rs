//! What `sessionctl events sinks` and `sessionctl events test` ask of a process's relays: how each
//! sink's delivery stands, and a test event through one sink now. Plain Rust over the relays'
//! outboxes and configuration; [`crate::api`] is the gRPC edge.
//!
//! One [`Relays`] per process, over every relay it runs: the registry, termination and policy
//! processes have one each, the all-in-one three (one database, one port, one service).

use std::time::Instant;

use vigil_core::EpochMillis;
use vigil_runtime::{ServiceError, ServiceResult};

use crate::config::{EventsConfig, SinkConfig, SinkKind, Transport};
use crate::event::{Event, EventType};
use crate::outbox::Outbox;
use crate::sink::{Outcome, Sink};

/// One relay as status sees it: whose outbox, and which sinks it delivers.
#[derive(Debug, Clone)]
pub struct RelayView {
    pub(crate) outbox: Outbox,
    pub(crate) config: EventsConfig,
}

impl RelayView {
    pub fn new(outbox: Outbox, config: EventsConfig) -> Self {
        Self { outbox, config }
    }

    /// The service whose outbox this relay reads.
    pub fn service(&self) -> &str {
        self.outbox.tables().service()
    }
}

/// How one sink of one relay stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkStatus {
    pub service: String,
    pub name: String,
    pub kind: &'static str,
    /// Where it delivers, without what could be a credential (a webhook's path and query).
    pub target: String,
    pub types: Vec<String>,
    pub min_risk: Option<u32>,
    pub delivered: u64,
    pub failed: u64,
    /// Events written and not yet delivered, and when the oldest of them happened.
    pub backlog: u64,
    pub oldest_pending_at: Option<EpochMillis>,
    pub last_error: String,
    pub last_error_at: Option<EpochMillis>,
    pub last_delivered_at: Option<EpochMillis>,
    /// The relay holding the lease ("" before any took it), and until when.
    pub holder: String,
    pub lease_until: Option<EpochMillis>,
}

/// A test event a sink took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestDelivery {
    pub service: String,
    pub event_id: String,
    pub elapsed_ms: u64,
}

/// Every relay of a process.
#[derive(Debug, Clone, Default)]
pub struct Relays {
    relays: Vec<RelayView>,
}

impl Relays {
    pub fn new(relays: Vec<RelayView>) -> Self {
        Self { relays }
    }

    /// Every configured sink of every relay, by service then name (the configuration's order).
    pub async fn sinks(&self) -> ServiceResult<Vec<SinkStatus>> {
        let mut sinks = Vec::new();
        for relay in &self.relays {
            if relay.config.sinks.is_empty() {
                continue;
            }
            let cursors = relay.outbox.cursors().await?;
            for (name, config) in &relay.config.sinks {
                let cursor = cursors
                    .iter()
                    .find(|row| &row.sink == name)
                    .cloned()
                    .unwrap_or_default();
                let (backlog, oldest_pending_at) = relay.outbox.pending_after(cursor.position).await?;
                sinks.push(SinkStatus {
                    service: relay.service().to_owned(),
                    name: name.clone(),
                    kind: kind_name(config.kind),
                    target: target(config),
                    types: config.types.clone(),
                    min_risk: config.min_risk,
                    delivered: cursor.delivered,
                    failed: cursor.failed,
                    backlog,
                    oldest_pending_at,
                    last_error: cursor.last_error,
                    last_error_at: cursor.last_error_at,
                    last_delivered_at: cursor.last_delivered_at,
                    holder: cursor.holder,
                    lease_until: (cursor.lease_until > 0).then_some(cursor.lease_until),
                });
            }
        }
        sinks.sort_by(|a, b| (&a.service, &a.name).cmp(&(&b.service, &b.name)));
        Ok(sinks)
    }

    /// Sends a `test` event through the sink named `name` now, outside the outbox, with the first
    /// relay that has it (in the all-in-one every relay has the same sinks: one event, not three).
    pub async fn test(&self, name: &str) -> ServiceResult<TestDelivery> {
        let Some(relay) = self.relays.iter().find(|relay| relay.config.sinks.contains_key(name)) else {
            return Err(ServiceError::not_found("sink", name));
        };
        let config = &relay.config.sinks[name];
        let event = test_event(name, relay.service());
        let started = Instant::now();
        let outcome = match Sink::from_config(config) {
            Ok(sink) => sink.deliver(&event).await,
            Err(error) => Outcome::Rejected(format!("{error:#}")),
        };
        match outcome {
            Outcome::Delivered => Ok(TestDelivery {
                service: relay.service().to_owned(),
                event_id: event.id,
                elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            }),
            Outcome::Rejected(error) => Err(ServiceError::FailedPrecondition(format!(
                "sink {name} refused the test event: {error}"
            ))),
            Outcome::Retry { error, .. } => Err(ServiceError::FailedPrecondition(format!(
                "sink {name} did not take the test event: {error}"
            ))),
        }
    }
}

/// The event `sessionctl events test` sends (type `test`, which every filter lets through).
pub fn test_event(sink: &str, source: &str) -> Event {
    Event::new(
        EventType::Test,
        source,
        format!("sink/{sink}"),
        serde_json::json!({ "sink": sink, "message": "test event from sessionctl events test" }),
    )
}

fn kind_name(kind: SinkKind) -> &'static str {
    match kind {
        SinkKind::Webhook => "webhook",
        SinkKind::Syslog => "syslog",
    }
}

/// A webhook's scheme, host and port (its path or query may hold a token); syslog's address and
/// transport.
fn target(config: &SinkConfig) -> String {
    match config.kind {
        SinkKind::Webhook => match url::Url::parse(&config.url) {
            Ok(url) => {
                let host = url.host_str().unwrap_or_default();
                match url.port() {
                    Some(port) => format!("{}://{host}:{port}", url.scheme()),
                    None => format!("{}://{host}", url.scheme()),
                }
            }
            Err(_) => String::new(),
        },
        SinkKind::Syslog => {
            let transport = match config.transport {
                Transport::Tcp => "tcp",
                Transport::Tls => "tls",
                Transport::Udp => "udp",
            };
            format!("{} {transport}", config.address)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_leave_out_what_may_be_a_credential() {
        let webhook = SinkConfig {
            url: "https://hooks.example.com:8443/services/T0/B1/s3cr3t?token=x".into(),
            ..SinkConfig::default()
        };
        assert_eq!(target(&webhook), "https://hooks.example.com:8443");
        let syslog = SinkConfig {
            kind: SinkKind::Syslog,
            address: "siem.example.com:6514".into(),
            transport: Transport::Tls,
            ..SinkConfig::default()
        };
        assert_eq!(target(&syslog), "siem.example.com:6514 tls");
    }
}
