//! The parts every Vigil service shares, so each service crate holds only its own domain:
//!
//! - [`config`]: defaults → TOML file → `VIGIL_*` environment, validated once at start-up.
//! - [`telemetry`]: logs (human or JSON, with trace ids), OpenTelemetry traces and metrics (OTLP,
//!   Prometheus), and trace-context propagation over gRPC, the gateway link and the bus.
//! - [`server`]: one `serve()` for every gRPC server — health, reflection, catch-panic, timeouts,
//!   graceful shutdown.
//! - [`service`]: one `main` for every service binary (`serve`, `migrate`, `print-config`), and
//!   readiness that follows a service's dependencies.
//! - [`shutdown`]: SIGTERM/SIGINT → a cancellation token.
//! - [`error`]: [`ServiceError`], the one domain error type, and its single mapping to `tonic::Status`.
//! - [`database`]: connecting to PostgreSQL or SQLite through sea-orm, with secrets redacted.
//! - [`bus`]: the control bus (Redis pub/sub in production, in-process in the embedded default).
//! - [`auth`]: who may call what — bearer tokens, roles, the per-RPC permission tables, gateway
//!   credentials — enforced by one layer in [`server`].
//! - [`tls`]: TLS and mutual TLS settings; [`client`]: channels to other Vigil services carrying
//!   this process's TLS trust and service token.

pub mod auth;
pub mod bus;
pub mod client;
pub mod config;
pub mod database;
pub mod error;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod telemetry;
pub mod tls;
pub mod web;

pub use error::{ServiceError, ServiceResult};
pub use vigil_core::now_millis;
