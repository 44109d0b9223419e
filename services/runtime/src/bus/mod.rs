//! The control bus: fire-and-forget fan-out between replicas (kill commands to the replica that
//! holds a gateway's stream, session changes to every replica's watchers).
//!
//! Pub/sub forgets what it could not deliver, so the bus is only ever the fast path: the database is
//! the memory. A subscriber is told with [`BusEvent::Resubscribed`] whenever its subscription may
//! have missed messages (the connection to Redis dropped and came back), so it can re-read the
//! durable state it cares about.

mod memory;
mod redis;
mod typed;

pub use self::memory::InProcessBus;
pub use self::redis::{RedisBus, RedisBusConfig};
pub use self::typed::{Delivery, TypedSubscription};

use std::sync::Arc;

use async_trait::async_trait;
use futures::Stream;

/// A message payload (opaque bytes; Vigil puts encoded protobuf messages here).
pub type Payload = Arc<[u8]>;

/// What a subscription yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    /// A message published on the channel.
    Message(Payload),
    /// The subscription was re-established after a break: messages published during the break
    /// were lost. Re-read durable state.
    Resubscribed,
}

/// Errors of the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The bus cannot be reached right now.
    #[error("control bus unavailable: {0}")]
    Unavailable(String),
    /// The bus has been shut down.
    #[error("control bus closed")]
    Closed,
}

impl From<BusError> for crate::ServiceError {
    /// The bus's own words (Redis addresses, driver errors) go to the log, not to callers.
    fn from(error: BusError) -> Self {
        tracing::warn!(%error, "control bus unavailable");
        crate::ServiceError::Unavailable(crate::error::BUS_UNAVAILABLE.to_owned())
    }
}

/// A live subscription to one channel. Dropping it unsubscribes.
pub type Subscription = std::pin::Pin<Box<dyn Stream<Item = BusEvent> + Send>>;

/// Publish/subscribe between Vigil processes.
///
/// Channel names are logical ("sessions", "gateway.gw-1"); implementations may prefix them with a
/// namespace so that several deployments (or test runs) can share one Redis.
#[async_trait]
pub trait ControlBus: Send + Sync + 'static {
    /// Publishes a payload to every current subscriber of `channel`, on every process. Returns once
    /// the bus has accepted the message (not once subscribers have it).
    async fn publish(&self, channel: &str, payload: Payload) -> Result<(), BusError>;

    /// Subscribes to `channel`. The subscription is active when this returns: anything published
    /// afterwards is delivered (barring a break, which is reported as [`BusEvent::Resubscribed`]).
    async fn subscribe(&self, channel: &str) -> Result<Subscription, BusError>;

    /// Whether the bus is connected now (for readiness).
    fn is_connected(&self) -> bool;
}

/// Which bus a process uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusKind {
    /// Redis pub/sub: replicas in several processes (production).
    #[default]
    Redis,
    /// Within this process only: the embedded default.
    InProcess,
}

/// The `[bus]` section of the configuration.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// `redis` or `in_process`.
    pub kind: BusKind,
    /// Used when `kind = "redis"`.
    pub redis: RedisBusConfig,
}

/// Connects the configured bus.
pub async fn connect(config: &BusConfig) -> Result<Arc<dyn ControlBus>, BusError> {
    Ok(match config.kind {
        BusKind::Redis => Arc::new(RedisBus::connect(config.redis.clone()).await?),
        BusKind::InProcess => Arc::new(InProcessBus::new()),
    })
}
