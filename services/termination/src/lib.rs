//! Vigil's termination service: ends sessions and keeps the record.
//!
//! - [`domain`]: terminations and commands as plain values.
//! - [`store`]: the audit trail and command memory (sea-orm on PostgreSQL or SQLite).
//! - [`service`]: [`service::Terminator`], the logic — resolve, record, publish, track; `issue`:
//!   from a request to commands on their way and on the record.
//! - [`routes`]: where each live session is, in memory, so a kill goes out before any database
//!   round trip.
//! - [`delivery`]: one bus message per gateway; redelivery of what is not acknowledged.
//! - `provided`: the `vigil-clients` traits termination provides to other services in process; the
//!   registry it calls is `vigil_clients::SessionDirectory`.
//! - `metrics`: kills issued.
//! - [`api`]: the gRPC adapter; [`app`]: the process.

pub mod api;
pub mod app;
mod convert;
pub mod delivery;
pub mod domain;
mod issue;
mod metrics;
mod order;
mod provided;
pub mod routes;
pub mod service;
pub mod settings;
pub mod store;

pub use service::Terminator;
pub use settings::TerminationSettings;

pub(crate) use vigil_runtime::now_millis;
