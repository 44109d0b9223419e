//! How an agent reaches the registry and how patiently it waits.

use std::fmt;
use std::time::Duration;

/// The default [`AgentConfig::link_grace`].
pub const DEFAULT_LINK_GRACE: Duration = Duration::from_secs(30);

/// Settings of one [`Agent`](crate::Agent). Build with [`AgentConfig::new`] and adjust the public fields.
#[derive(Clone)]
pub struct AgentConfig {
    /// The registry's gRPC address, e.g. `http://registry.internal:7400`.
    pub registry_url: String,
    /// Further registry addresses: other replicas, or other routes to the same ones. The agent holds
    /// one link at a time; when it fails (or cannot be made) the next address is tried at once, and
    /// the backoff applies only once every address has failed in turn. A host name that resolves to
    /// several addresses (in any of these URLs or in `registry_url`) counts as each of them.
    pub failover_urls: Vec<String>,
    /// This gateway's id: 1–128 letters, digits, '.', '_', ':' or '-' (the registry refuses others).
    pub gateway_id: String,
    /// The gateway's credential, sent in the hello. Never printed by `Debug`.
    pub credential: String,
    /// The agent's software version as shown by the registry.
    pub agent_version: String,
    /// How long [`Agent::open_session`](crate::Agent::open_session) waits for the admission decision.
    pub admission_timeout: Duration,
    /// First reconnection delay; it doubles after each failed attempt, and starts over once a link has
    /// held for 10 s.
    pub initial_backoff: Duration,
    /// Longest reconnection delay; also the delay after the registry refused the hello.
    pub max_backoff: Duration,
    /// How long to wait for the TCP/HTTP/2 connection to the registry.
    pub connect_timeout: Duration,
    /// How long to wait for the registry's `Welcome` after the hello. Reconciling a large snapshot takes
    /// the registry a while, so this is longer than `connect_timeout`.
    pub welcome_timeout: Duration,
    /// TLS for an `https://` registry URL: the CA to trust, and the gateway's client certificate when the
    /// registry authenticates gateways by certificate (its DNS name, or the URI
    /// `urn:vigil:gateway:<id>`, must name this gateway). `None`: plaintext `http://` only.
    pub tls: Option<tonic::transport::ClientTlsConfig>,
    /// What the agent does when the link stays down longer than `link_grace`.
    pub fail_mode: FailMode,
    /// How long the link may be down before `fail_mode` applies. Long enough to ride out a registry
    /// restart or a rolling update (agents reconnect within a few backoff steps), short enough that a
    /// real outage does not leave sessions unsupervised for long.
    pub link_grace: Duration,
}

/// What an agent does once its link to the registry has been down for longer than
/// [`AgentConfig::link_grace`].
///
/// While the link is down the registry cannot end sessions (kills, idle and duration limits,
/// locks), so every session then runs unsupervised. Best effort accepts that to keep users working
/// through a registry outage; strict does not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FailMode {
    /// Keep the sessions the gateway holds. New sessions still need the registry (they are refused
    /// with [`AgentError::Unavailable`](crate::AgentError::Unavailable) while it cannot be reached),
    /// and locked users are refused from the lock set the agent holds.
    #[default]
    BestEffort,
    /// End every session the gateway holds (through [`GatewayHandler::terminate`](crate::GatewayHandler::terminate),
    /// reason `GATEWAY_LOST`), and refuse new ones with
    /// [`AgentError::FailedClosed`](crate::AgentError::FailedClosed) until the link is back.
    Strict,
}

impl AgentConfig {
    /// Settings with the defaults: no credential, this crate's version, 5 s admission timeout,
    /// backoff from 200 ms to 10 s, 5 s connect timeout, 15 s welcome timeout, best-effort fail mode
    /// with a 30 s link grace.
    pub fn new(registry_url: impl Into<String>, gateway_id: impl Into<String>) -> Self {
        Self {
            registry_url: registry_url.into(),
            failover_urls: Vec::new(),
            gateway_id: gateway_id.into(),
            credential: String::new(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            admission_timeout: Duration::from_secs(5),
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            welcome_timeout: Duration::from_secs(15),
            tls: None,
            fail_mode: FailMode::BestEffort,
            link_grace: DEFAULT_LINK_GRACE,
        }
    }

    /// The same settings with more registry addresses to fail over to (see [`AgentConfig::failover_urls`]).
    pub fn with_failover_urls(mut self, urls: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.failover_urls = urls.into_iter().map(Into::into).collect();
        self
    }

    /// The same settings with this credential.
    pub fn with_credential(mut self, credential: impl Into<String>) -> Self {
        self.credential = credential.into();
        self
    }
}

impl fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The credential is a secret: say whether there is one, never what it is.
        let credential = if self.credential.is_empty() {
            "<none>"
        } else {
            "<redacted>"
        };
        f.debug_struct("AgentConfig")
            .field("registry_url", &self.registry_url)
            .field("failover_urls", &self.failover_urls)
            .field("gateway_id", &self.gateway_id)
            .field("credential", &credential)
            .field("agent_version", &self.agent_version)
            .field("admission_timeout", &self.admission_timeout)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("connect_timeout", &self.connect_timeout)
            .field("welcome_timeout", &self.welcome_timeout)
            .field("tls", &self.tls.is_some())
            .field("fail_mode", &self.fail_mode)
            .field("link_grace", &self.link_grace)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_credential() {
        let config = AgentConfig::new("http://127.0.0.1:1", "gw-1").with_credential("s3cret-token");
        let printed = format!("{config:?}");
        assert!(!printed.contains("s3cret-token"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }

    #[test]
    fn defaults_match_the_documentation() {
        let config = AgentConfig::new("http://127.0.0.1:1", "gw-1");
        assert_eq!(config.agent_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(config.admission_timeout, Duration::from_secs(5));
        assert_eq!(config.initial_backoff, Duration::from_millis(200));
        assert_eq!(config.max_backoff, Duration::from_secs(10));
        assert_eq!(config.connect_timeout, Duration::from_secs(5));
        assert_eq!(config.fail_mode, FailMode::BestEffort);
        assert_eq!(config.link_grace, Duration::from_secs(30));
    }
}
