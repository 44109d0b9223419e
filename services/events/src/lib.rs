//! Vigil's security events, sent where security teams already look.
//!
//! - [`event`]: the model — a stable id (UUIDv7), a type, a time, the actor, the subject's fields,
//!   the session that orders it.
//! - [`outbox`]: each service writes its events into a table of its own store, in the transaction
//!   of the change that causes them ([`outbox::append`]); its migration creates the tables
//!   ([`outbox::migrate_up`]).
//! - [`relay`]: reads an outbox and delivers to the configured sinks, at least once, in order per
//!   session, on any replica without a leader.
//! - [`sink`]: webhooks (CloudEvents 1.0 JSON, HMAC-SHA256 signed) and syslog (RFC 5424 over TCP,
//!   TLS or UDP; optionally CEF), written by [`format`].
//! - [`config`]: the `[events]` section.
//! - [`status`]: each sink's delivery as it stands, and a test event on demand, over every relay
//!   of a process; [`api`] serves them as `vigil.v1.EventsService`.
//!
//! This crate depends on no service: services depend on it, as they do on `vigil-runtime`.

pub mod api;
pub mod config;
pub mod event;
pub mod format;
pub mod metrics;
pub mod outbox;
pub mod relay;
pub mod sink;
pub mod status;

pub use api::EventsApi;
pub use config::{EventsConfig, SinkConfig};
pub use event::{Event, EventType};
pub use outbox::{Outbox, OutboxTables};
pub use relay::RelayHandle;
pub use status::{RelayView, Relays};
