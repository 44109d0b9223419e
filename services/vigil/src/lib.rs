//! The all-in-one's composition as a library: every Vigil service in one process, wired to each
//! other in process (the one place besides the bench and the tests that knows them all).
//!
//! `vigil run` is [`Composition::start`] on the loaded configuration plus the demo extras (simulated
//! gateways, the demo SSH gateway); the bench and the end-to-end tests start the same composition
//! with their own configuration (a PostgreSQL schema, a Redis namespace, fast timings) instead of
//! wiring the services by hand.

pub mod composition;
pub mod config;
pub mod local_auth;

pub use composition::{AllInOne, Composition, use_demo_geoip, wire_termination};
pub use config::{DemoGatewaySettings, SimulationSettings, VigilConfig};
