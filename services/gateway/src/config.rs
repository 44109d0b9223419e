//! Configuration of `vigil-gateway`: defaults → TOML file → `VIGIL_*` variables (through
//! `vigil_runtime::config`), like every Vigil binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigil_runtime::server::ServerConfig;
use vigil_runtime::telemetry::{LogConfig, TelemetryConfig};

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// The gRPC server of the gateway itself: `grpc.health.v1` only (SERVING while the link to the
    /// registry is up), for probes and load balancers.
    pub server: ServerConfig,
    /// The link to the registry.
    pub registry: RegistryLink,
    /// The SSH bastion.
    pub ssh: SshConfig,
    pub log: LogConfig,
    /// Traces and metrics through the runtime (`telemetry.prometheus_listen` serves `/metrics`).
    pub telemetry: TelemetryConfig,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            server: ServerConfig {
                // Beside the registry's 7400 on a development machine.
                listen: "127.0.0.1:7410".parse().expect("a valid address"),
                ..ServerConfig::default()
            },
            registry: RegistryLink::default(),
            ssh: SshConfig::default(),
            log: LogConfig::default(),
            telemetry: TelemetryConfig::default(),
        }
    }
}

/// Where the registry is and who this gateway is to it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryLink {
    /// The registry's gRPC address.
    pub url: String,
    /// This gateway's id (sessions are listed under it).
    pub gateway_id: String,
    /// The credential the registry expects from this gateway (`auth.gateway_credentials`); empty when
    /// the registry does not authenticate gateways.
    pub credential: String,
    /// `strict`: end every session when the link has been down longer than `link_grace`, and refuse
    /// new ones until it is back. `best_effort` (the default): keep them.
    pub fail_mode: FailModeSetting,
    /// How long the link may be down before `fail_mode` applies.
    #[serde(with = "humantime_serde")]
    pub link_grace: Duration,
    /// How long a login waits for the registry's admission decision before it is refused.
    #[serde(with = "humantime_serde")]
    pub admission_timeout: Duration,
}

impl Default for RegistryLink {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:7400".into(),
            gateway_id: "ssh-gw-01".into(),
            credential: String::new(),
            fail_mode: FailModeSetting::BestEffort,
            link_grace: vigil_agent::DEFAULT_LINK_GRACE,
            admission_timeout: Duration::from_secs(10),
        }
    }
}

/// [`vigil_agent::FailMode`] as written in a configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailModeSetting {
    BestEffort,
    Strict,
}

/// The SSH side.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SshConfig {
    /// Where users connect.
    pub listen: SocketAddr,
    /// The gateway's host key (OpenSSH private key file); created (ed25519) when missing.
    pub host_key: PathBuf,
    /// The key the gateway signs in to targets with (OpenSSH private key file); created (ed25519) when
    /// missing. Its public half goes into each target's `authorized_keys`.
    pub client_key: PathBuf,
    /// Who may connect: a TOML file of `[[user]]` entries (name, keys, groups), re-read when it changes.
    pub users_file: PathBuf,
    /// How often the users file is checked for changes.
    #[serde(with = "humantime_serde")]
    pub users_reload_interval: Duration,
    /// A connection that has not finished authenticating by then is closed (a stalled or slow client
    /// must not hold a slot).
    #[serde(with = "humantime_serde")]
    pub login_grace: Duration,
    /// How long to wait for a target to accept the connection and the gateway's key.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long to wait for a target's answer to a channel request (pty, shell, exec, subsystem, env).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Most connections at once (authenticating or not); more are refused at accept.
    pub max_connections: usize,
    /// What users may reach.
    pub targets: Vec<TargetConfig>,
    /// Also offer the built-in toy shell as the target `demo-target` (every user may reach it): a
    /// gateway to try without any server behind it.
    pub demo_target: bool,
}

impl Default for SshConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:2222".parse().expect("a valid address"),
            host_key: "vigil-data/gateway/host_key".into(),
            client_key: "vigil-data/gateway/client_key".into(),
            users_file: "vigil-data/gateway/users.toml".into(),
            users_reload_interval: Duration::from_secs(2),
            login_grace: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
            targets: Vec::new(),
            demo_target: false,
        }
    }
}

/// One SSH target (a Vigil resource of type SSH).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// The resource name users put after `+` in their login, and the session's resource in Vigil.
    pub name: String,
    /// `host:port` of the target's sshd.
    pub address: String,
    /// The account the gateway signs in to on the target.
    pub user: String,
    /// The target's host key, pinned (`ssh-ed25519 AAAA…`, as in `known_hosts` without the host name):
    /// the gateway refuses a target presenting any other.
    pub host_key: String,
    /// Groups whose members may reach the target; empty: every user.
    #[serde(default)]
    pub groups: Vec<String>,
}

impl SshConfig {
    /// Checks the targets: valid, unique names, a parsable pinned host key, an account and an address.
    pub fn validate(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for target in &self.targets {
            if !crate::login::is_target_name(&target.name) {
                return Err(format!(
                    "ssh.targets: {:?} is not a valid target name (1 to 128 letters, digits and . _ -)",
                    target.name
                ));
            }
            if !seen.insert(target.name.as_str()) {
                return Err(format!("ssh.targets: {:?} appears twice", target.name));
            }
            if russh::keys::PublicKey::from_openssh(target.host_key.trim()).is_err() {
                return Err(format!(
                    "ssh.targets.{}: host_key is not an OpenSSH public key (\"ssh-ed25519 AAAA…\")",
                    target.name
                ));
            }
            if target.user.trim().is_empty() || target.address.trim().is_empty() {
                return Err(format!("ssh.targets.{}: user and address must be set", target.name));
            }
        }
        if self.max_connections == 0 {
            return Err("ssh.max_connections must be at least 1".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(name: &str, host_key: &str) -> TargetConfig {
        TargetConfig {
            name: name.into(),
            address: "10.0.0.5:22".into(),
            user: "root".into(),
            host_key: host_key.into(),
            groups: Vec::new(),
        }
    }

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZbUuzYo1Y2yLYUnE3BJu/a7jSeTzGIT5lS/s7bYyvC";

    #[test]
    fn targets_are_checked_before_the_gateway_starts() {
        let mut config = SshConfig {
            targets: vec![target("db-01", KEY)],
            ..SshConfig::default()
        };
        assert_eq!(config.validate(), Ok(()));
        config.targets.push(target("db-01", KEY));
        assert!(config.validate().unwrap_err().contains("twice"));
        config.targets = vec![target("db 01", KEY)];
        assert!(config.validate().unwrap_err().contains("not a valid target name"));
        config.targets = vec![target("db-01", "ssh-ed25519 nonsense")];
        assert!(config.validate().unwrap_err().contains("host_key"));
    }
}
