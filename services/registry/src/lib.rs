//! Vigil's session registry: the source of truth of sessions, and the gateway agents' link.
//!
//! - [`domain`]: sessions and gateways as plain values, and the status rules.
//! - [`store`]: persistence behind [`store::SessionStore`] (sea-orm on PostgreSQL or SQLite).
//! - [`registry`]: a running replica — its background tasks and its gRPC services.
//! - `links`, `resolve`: the core of a gateway's link (opening and reconciliation, admission,
//!   closes, acknowledgements) and of resolving selectors; both return `ServiceResult`.
//! - `api`: the gRPC edge (`SessionRegistry`, `GatewayLink`), validating with [`validate`].
//! - `events`, `activity`, `idle`: the change feed, batched activity writes, idle detection.
//! - [`locks`], `liveness`: the lock set pushed to gateways; gateways gone silent and their sessions.
//! - `metrics`, `trace`: the registry's metrics and the spans of the gateway link's work.
//! - `provided`: the `vigil-clients` traits the registry provides to other services in process.

mod activity;
pub mod admission;
mod api;
pub mod app;
pub mod commands;
pub mod convert;
pub mod domain;
mod ending;
mod events;
mod idle;
mod links;
mod liveness;
pub mod locks;
mod metrics;
pub mod page_token;
mod provided;
mod registry;
mod resolve;
pub mod settings;
pub mod store;
mod trace;
pub mod validate;

pub use api::{
    FAILURE_WINDOW, LinkApi, MAX_FAILED_HELLOS, PRE_HELLO_LIMIT, PreHelloLimit, SessionsApi, Verdict, first_message,
};
pub use registry::Registry;
pub use settings::{DEVELOPMENT_PAGE_TOKEN_KEY, RegistrySettings};

pub(crate) use vigil_runtime::now_millis;
