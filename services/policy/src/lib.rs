//! Vigil's policy service: which rules apply to a session, whether a session may start, and the
//! sweeper that warns and ends idle and over-long sessions.
//!
//! - [`domain`]: policies, scopes, rules, concurrency slots and locks as plain values.
//! - [`locks`]: locks — validation, the set admission holds in memory, publication on the bus
//!   (`vigil_core::topics::LOCKS`) and the ending of the sessions a new lock covers.
//! - [`rules`]: validation, precedence and merging into the rules in force ([`rules::PolicySet`]).
//! - [`policy_book`]: every policy, held in memory with its version, so admission reads no policy
//!   rows; [`policy_updates`]: the policy-set version published and followed on the bus
//!   (`vigil_core::topics::POLICIES`).
//! - [`store`]: policies, slots, idle warnings and the sweeper's lease (sea-orm on PostgreSQL or SQLite).
//! - [`service`]: [`PolicyEngine`], the transport-agnostic core — CRUD, effective rules, admission.
//! - [`sweeper`]: the leader-elected idle / maximum-duration sweep ([`Sweeper`]), over [`lease`].
//! - the registry and the termination service it calls: `vigil_clients::{SessionSource,
//!   SessionTerminator}`, in process or over gRPC.
//! - [`clock`]: time, made controllable for tests.
//! - `metrics`: sweeper runs.
//! - [`api`]: the gRPC adapter; [`app`]: the process.

pub mod api;
pub mod app;
pub mod clock;
mod convert;
pub mod domain;
mod follow;
pub mod lease;
pub mod lock_book;
pub mod locks;
mod metrics;
pub mod policy_book;
pub mod policy_updates;
pub mod rules;
pub mod service;
pub mod settings;
pub mod store;
pub mod sweeper;
#[cfg(test)]
mod watched_store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use service::PolicyEngine;
pub use settings::PolicySettings;
pub use sweeper::{Sweeper, SweeperHandle, SweeperStatus};
