//! What can go wrong when a gateway asks its agent for something.

/// An error from the agent's API.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The link to the registry is down (or went down while waiting). Admission needs the registry, so
    /// the gateway decides what to do: refuse the user, or retry shortly.
    #[error("the link to the registry is down")]
    Unavailable,
    /// Strict fail mode: the link has been down for longer than the grace period, so the agent ended
    /// the gateway's sessions and admits none until the link is back.
    #[error(
        "the link to the registry has been down for longer than {grace:?}; in strict fail mode no session is admitted until it is back"
    )]
    FailedClosed {
        /// The configured [`AgentConfig::link_grace`](crate::AgentConfig::link_grace).
        grace: std::time::Duration,
    },
    /// The registry did not answer in time.
    #[error("the registry did not answer in time")]
    Timeout,
    /// The registry refused the agent (for instance its hello, for a wrong credential or gateway id).
    #[error("the registry refused the agent: {:?}: {}", .0.code(), .0.message())]
    Rejected(tonic::Status),
    /// The request is malformed; caught locally so gateway authors see the mistake early.
    #[error("invalid input: {0}")]
    InvalidInput(String),
}
