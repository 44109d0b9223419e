//! Vigil's geo service: where a client address is, and whether a session start is normal for its
//! user.
//!
//! - [`locator`]: [`Locator`], addresses to places with memory-mapped MMDB databases (GeoIP2 /
//!   GeoLite2 / DB-IP / ip-location-db), reopened when their files are replaced on disk.
//! - [`anomaly`]: the rules (impossible travel, new country / network / device, far-apart live
//!   sessions, unlocatable addresses) and the score.
//! - [`store`]: each user's recent starts (sea-orm on PostgreSQL or SQLite).
//! - [`service`]: [`Geo`], the logic both transports call; [`api`]: the gRPC adapter; [`app`]:
//!   the process.
//! - `provided`: [`Geo`] as the registry's `vigil_clients::RiskAssessor`, in process.
//! - [`demo`] and [`writer`]: generated MMDB files — the embedded default's demo databases, test
//!   databases, and the ASN database `make geoip` builds.

pub mod address;
pub mod anomaly;
pub mod api;
pub mod app;
pub mod config;
mod countries;
pub mod databases;
pub mod demo;
pub mod domain;
mod human;
pub mod locator;
mod provided;
mod record;
mod recording;
pub mod service;
pub mod store;
pub mod writer;

pub use config::{AnomalyThresholds, GeoConfig, RulePoints};
pub use demo::write_demo_databases;
pub use locator::Locator;
pub use service::Geo;

pub(crate) use vigil_runtime::now_millis;
