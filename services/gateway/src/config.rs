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
    /// The web proxy for "Web application" resources (off by default).
    pub web: WebConfig,
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
            web: WebConfig::default(),
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
    /// The account the gateway signs in to on the target, unless the user's entry in the users file
    /// gives one of their own (`accounts`).
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

/// The web proxy: an HTTP reverse proxy in front of web applications, one Vigil session per browser
/// session (a cookie).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Serve it at all.
    pub enabled: bool,
    /// Where browsers (or the authenticating proxy in front) connect; plain HTTP.
    pub listen: SocketAddr,
    /// The applications, chosen by the request's `Host` name.
    pub resources: Vec<WebResourceConfig>,
    /// The resource for a `Host` no resource names (`http://127.0.0.1:2280/`); empty: such requests get
    /// a 404 page.
    pub default_resource: String,
    /// The header in which the authenticating proxy in front names the user; taken only from
    /// `trusted_proxies`.
    pub user_header: String,
    /// The header in which it lists the user's groups, comma-separated; taken only from
    /// `trusted_proxies`.
    pub groups_header: String,
    /// Networks (CIDR, or single addresses) the authenticating proxy connects from. A request from
    /// elsewhere carrying `user_header` or `groups_header` is refused (403).
    pub trusted_proxies: Vec<String>,
    /// DEVELOPMENT ONLY: also accept HTTP basic auth with a user of the users file and this one shared
    /// password (groups from the users file). Empty (the default): off.
    pub dev_password: String,
    /// The header the application receives the user in (set by the gateway; any copy sent by the
    /// browser is removed).
    pub upstream_user_header: String,
    /// The header the application receives the user's groups in, comma-separated.
    pub upstream_groups_header: String,
    /// The browser-session cookie (HttpOnly, SameSite=Lax, a random id; never forwarded).
    pub cookie_name: String,
    /// Mark the cookie `Secure` (when browsers reach the gateway through HTTPS, i.e. a TLS proxy in
    /// front).
    pub secure_cookie: bool,
    /// A browser session without any request for this long is closed by the gateway (the registry's
    /// idle timeout, when a policy sets one, usually comes first).
    #[serde(with = "humantime_serde")]
    pub session_idle: Duration,
    /// How long an application may take to accept a connection and answer with its headers.
    #[serde(with = "humantime_serde")]
    pub upstream_timeout: Duration,
    /// Most client connections at once; more are refused at accept.
    pub max_connections: usize,
    /// Also serve the built-in demo application as the resource `demo-web` (host `demo-web.localhost`,
    /// and the default resource when none is set): a proxy to try without any application behind it.
    pub demo_app: bool,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: "127.0.0.1:2280".parse().expect("a valid address"),
            resources: Vec::new(),
            default_resource: String::new(),
            user_header: "X-Forwarded-User".into(),
            groups_header: "X-Forwarded-Groups".into(),
            trusted_proxies: Vec::new(),
            dev_password: String::new(),
            upstream_user_header: "X-Vigil-User".into(),
            upstream_groups_header: "X-Vigil-Groups".into(),
            cookie_name: "vigil_web_session".into(),
            secure_cookie: false,
            session_idle: Duration::from_secs(30 * 60),
            upstream_timeout: Duration::from_secs(30),
            max_connections: 4096,
            demo_app: false,
        }
    }
}

/// One web application (a Vigil resource of type Web).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebResourceConfig {
    /// The resource name in Vigil.
    pub name: String,
    /// Where the application listens: `http://host:port`, optionally with a base path put before every
    /// request's path (`http://10.0.0.7:8080/wiki`).
    pub upstream: String,
    /// The `Host` names (without port) that reach it (`wiki.example.com`).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Groups whose members may reach it; empty: every user.
    #[serde(default)]
    pub groups: Vec<String>,
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
