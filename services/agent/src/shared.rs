//! What the agent's handle ([`crate::Agent`]), its link task (`link`) and its fail-safe
//! (`failsafe`) share: the configuration, the local state and the link's state. Its own
//! module so that the three depend on it and not on each other.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::state::LocalState;
use crate::{AgentConfig, GatewayHandler};

/// Where the agent's link to the registry stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Connecting, or said hello and waiting for the `Welcome`.
    Connecting,
    /// Welcomed by a registry replica; admissions can be asked.
    Connected {
        /// The replica holding the link.
        replica: String,
    },
    /// The last attempt failed (or the agent was shut down); the agent retries after a backoff.
    Disconnected {
        /// What went wrong, for people.
        error: String,
    },
}

/// What the handle and the link task share.
pub(crate) struct Shared {
    pub(crate) config: AgentConfig,
    pub(crate) handler: Arc<dyn GatewayHandler>,
    state: Mutex<LocalState>,
    pub(crate) link_state: watch::Sender<LinkState>,
    pub(crate) shutdown: CancellationToken,
}

impl Shared {
    /// Connecting, nothing held yet.
    pub(crate) fn new(config: AgentConfig, handler: Arc<dyn GatewayHandler>) -> Self {
        let (link_state, _) = watch::channel(LinkState::Connecting);
        Self {
            config,
            handler,
            state: Mutex::new(LocalState::new()),
            link_state,
            shutdown: CancellationToken::new(),
        }
    }

    /// The local state. Critical sections are short and never span an `.await`; a panic inside one
    /// cannot leave the plain maps in a state worse than a lost update, so a poisoned lock is used as is.
    pub(crate) fn lock(&self) -> MutexGuard<'_, LocalState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes the link state. Never called with the state lock held (`wait_connected` takes the two in
    /// the other order).
    pub(crate) fn set_link_state(&self, state: LinkState) {
        self.link_state.send_replace(state);
    }
}
