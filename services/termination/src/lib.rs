//! Vigil's termination service: ends sessions and keeps the record.
//!
//! - [`domain`]: terminations and commands as plain values.
//! - [`store`]: the audit trail and command memory (sea-orm on PostgreSQL or SQLite).
//! - [`service`]: [`service::Terminator`], the logic — resolve, record, publish, track.
//! - [`delivery`]: one bus message per gateway; redelivery of what is not acknowledged.
//! - [`directory`]: the registry, in process or over gRPC.
//! - `metrics`: kills issued.
//! - [`api`]: the gRPC adapter; [`app`]: the process.

pub mod api;
pub mod app;
mod convert;
pub mod delivery;
pub mod directory;
pub mod domain;
mod metrics;
pub mod service;
pub mod settings;
pub mod store;

pub use service::Terminator;
pub use settings::TerminationSettings;

pub(crate) use vigil_runtime::now_millis;
