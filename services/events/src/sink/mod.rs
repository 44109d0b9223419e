//! Where events go. A sink delivers one event and says how it went; retrying, ordering and
//! recording are the relay's.

pub mod syslog;
pub mod tls;
pub mod webhook;

use std::time::Duration;

use crate::config::{SinkConfig, SinkKind};
use crate::event::Event;

/// How one delivery attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// The receiver refused it for good (an HTTP 4xx other than 408 and 429): recorded and
    /// skipped, never retried.
    Rejected(String),
    /// Failed for now: try again, not before `after` when the receiver said so (`Retry-After`).
    Retry {
        error: String,
        after: Option<Duration>,
    },
}

impl Outcome {
    pub(crate) fn retry(error: impl Into<String>) -> Self {
        Self::Retry {
            error: error.into(),
            after: None,
        }
    }
}

/// A configured sink, ready to deliver.
pub enum Sink {
    Webhook(webhook::WebhookSink),
    Syslog(syslog::SyslogSink),
}

impl Sink {
    /// The sink `config` describes (validated beforehand by `EventsConfig::validate`).
    pub fn from_config(config: &SinkConfig) -> anyhow::Result<Self> {
        Ok(match config.kind {
            SinkKind::Webhook => Self::Webhook(webhook::WebhookSink::new(config)?),
            SinkKind::Syslog => Self::Syslog(syslog::SyslogSink::new(config)?),
        })
    }

    pub async fn deliver(&self, event: &Event) -> Outcome {
        match self {
            Self::Webhook(sink) => sink.deliver(event).await,
            Self::Syslog(sink) => sink.deliver(event).await,
        }
    }

    /// Deliveries this sink may have in flight at once.
    pub fn concurrency(&self, configured: usize) -> usize {
        match self {
            Self::Webhook(_) => configured.max(1),
            // One connection, written in order.
            Self::Syslog(_) => 1,
        }
    }
}
