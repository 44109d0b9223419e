//! Configuration of the all-in-one process. Same sections as each service's, with embedded
//! defaults: SQLite in `./vigil-data`, the in-process bus, and a few simulated gateways.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigil_geo::GeoConfig;
use vigil_policy::settings::PolicySettings;
use vigil_registry::RegistrySettings;
use vigil_runtime::auth::AuthConfig;
use vigil_runtime::bus::{BusConfig, BusKind};
use vigil_runtime::database::DatabaseConfig;
use vigil_runtime::server::ServerConfig;
use vigil_runtime::telemetry::{LogConfig, TelemetryConfig};
use vigil_runtime::tls::TlsConfig;
use vigil_termination::TerminationSettings;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VigilConfig {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub bus: BusConfig,
    pub log: LogConfig,
    /// Traces and metrics: OTLP export and the Prometheus endpoint, both off by default.
    pub telemetry: TelemetryConfig,
    /// Required by default: with nothing configured, a secret and an administrator token are made
    /// in `vigil-data/` on start (see `local_auth`). `mode = "off"` turns it off.
    pub auth: AuthConfig,
    /// TLS; off by default (the all-in-one listens on loopback).
    pub tls: TlsConfig,
    pub registry: RegistrySettings,
    pub termination: TerminationSettings,
    /// GeoIP databases and anomaly thresholds. With no `city_db`, the all-in-one writes small demo
    /// databases into `vigil-data/geoip/` (run `make geoip` for real ones).
    pub geo: GeoConfig,
    /// The policy sweeper (idle warnings and timeouts, maximum durations); the rules themselves
    /// are managed with `sessionctl policies`.
    pub policy: PolicySettings,
    pub simulation: SimulationSettings,
    /// A real SSH gateway (vigil-gateway) in front of a built-in toy shell, so `vigil run` offers a real
    /// `ssh` session at once, and a demo web application behind its web proxy.
    pub demo_gateway: DemoGatewaySettings,
    /// Where this service's events go (webhooks, syslog) and how the relay works.
    pub events: vigil_events::EventsConfig,
}

impl Default for VigilConfig {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            bus: BusConfig {
                kind: BusKind::InProcess,
                ..BusConfig::default()
            },
            log: LogConfig::default(),
            telemetry: TelemetryConfig::default(),
            auth: AuthConfig::required(),
            tls: TlsConfig::default(),
            registry: RegistrySettings {
                replica: "vigil".into(),
                ..RegistrySettings::default()
            },
            termination: TerminationSettings::default(),
            geo: GeoConfig::default(),
            policy: PolicySettings {
                replica: "vigil".into(),
                ..PolicySettings::default()
            },
            simulation: SimulationSettings::default(),
            demo_gateway: DemoGatewaySettings::default(),
            events: vigil_events::EventsConfig::default(),
        }
    }
}

/// The demo SSH gateway started with the all-in-one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoGatewaySettings {
    /// Start it at all.
    pub enabled: bool,
    /// Where users connect with `ssh -p`.
    pub listen: std::net::SocketAddr,
    /// Also serve a demo web application behind the gateway's web proxy.
    pub web_enabled: bool,
    /// Where browsers reach the demo web application (basic auth as the demo user).
    pub web_listen: std::net::SocketAddr,
    /// Its gateway id in the registry.
    pub gateway_id: String,
    /// Where its keys, the demo user's key and its users file are kept.
    pub dir: std::path::PathBuf,
}

impl Default for DemoGatewaySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "127.0.0.1:2222".parse().expect("a valid address"),
            web_enabled: true,
            web_listen: "127.0.0.1:2280".parse().expect("a valid address"),
            gateway_id: "demo-ssh-gw".into(),
            dir: "vigil-data/gateway".into(),
        }
    }
}

/// Simulated gateways started with the all-in-one, so there is something to see at once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulationSettings {
    /// Start them at all.
    pub enabled: bool,
    pub gateways: usize,
    pub sessions_per_gateway: usize,
    /// Fraction of simulated users who stop typing (and so turn idle).
    pub idle_fraction: f64,
    #[serde(with = "humantime_serde")]
    pub activity_interval: Duration,
    /// Fraction of sessions closed and replaced per minute.
    pub churn: f64,
    pub seed: u64,
}

impl Default for SimulationSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            gateways: 3,
            sessions_per_gateway: 6,
            idle_fraction: 0.25,
            activity_interval: Duration::from_secs(2),
            churn: 0.05,
            seed: 7,
        }
    }
}
