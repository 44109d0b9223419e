//! Session changes, live, on every replica.
//!
//! After a change commits, the replica that made it publishes a `SessionEvent` on the bus channel
//! [`topics::SESSIONS`]. Every replica (itself included) runs one subscription to that channel and
//! fans each event out to its local watchers through a broadcast channel. Local watchers are fed
//! only from the bus, so every replica's watchers see the same events in the same order.

use std::sync::Arc;

use prost::Message;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use vigil_core::topics;
use vigil_proto::v1 as pb;
use vigil_runtime::ServiceResult;
use vigil_runtime::bus::{ControlBus, Delivery, TypedSubscription};

use crate::convert::session_to_proto;
use crate::domain::{EpochMillis, SessionRecord};

/// What local watchers receive.
#[derive(Debug, Clone)]
pub enum FeedItem {
    /// A change.
    Event(Arc<pb::SessionEvent>),
    /// Changes may have been missed (the bus reconnected): watchers must resynchronise.
    Gap,
}

/// Publishes changes and fans them out to this replica's watchers.
#[derive(Clone)]
pub struct EventHub {
    bus: Arc<dyn ControlBus>,
    local: broadcast::Sender<FeedItem>,
}

impl EventHub {
    /// Subscribes to the change channel (before returning, so no change made after this is missed)
    /// and starts forwarding to local watchers until `shutdown`.
    pub async fn start(bus: Arc<dyn ControlBus>, capacity: usize, shutdown: CancellationToken) -> ServiceResult<Self> {
        let (local, _) = broadcast::channel(capacity);
        let mut subscription = TypedSubscription::<pb::SessionEvent>::subscribe(bus.as_ref(), topics::SESSIONS).await?;
        let sender = local.clone();
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    () = shutdown.cancelled() => break,
                    event = subscription.next() => event,
                };
                match event {
                    // No receivers is fine: nobody is watching on this replica.
                    Some(Delivery::Message(event)) => drop(sender.send(FeedItem::Event(Arc::new(event)))),
                    Some(Delivery::MayHaveMissed) => drop(sender.send(FeedItem::Gap)),
                    None => {
                        tracing::warn!("session change subscription ended; watchers will be told to resynchronise");
                        drop(sender.send(FeedItem::Gap));
                        break;
                    }
                }
            }
        });
        Ok(Self { bus, local })
    }

    /// A receiver of this replica's feed.
    pub fn watch(&self) -> broadcast::Receiver<FeedItem> {
        self.local.subscribe()
    }

    /// Announces a change to every replica. Called after the change committed; a failure to
    /// announce is logged, not returned: the change itself stands, and watchers that missed it see
    /// the current state when they resynchronise.
    pub async fn publish(&self, kind: pb::SessionEventKind, session: &SessionRecord, detail: &str, now: EpochMillis) {
        let event = pb::SessionEvent {
            kind: kind as i32,
            session: Some(session_to_proto(session, now)),
            at: Some(vigil_proto::timestamp_from_millis(now)),
            detail: detail.to_owned(),
        };
        self.publish_event(&event).await;
    }

    /// Announces several changes of one kind.
    pub async fn publish_all(&self, kind: pb::SessionEventKind, sessions: &[SessionRecord], now: EpochMillis) {
        for session in sessions {
            self.publish(kind, session, "", now).await;
        }
    }

    async fn publish_event(&self, event: &pb::SessionEvent) {
        if let Err(error) = self.bus.publish(topics::SESSIONS, event.encode_to_vec().into()).await {
            tracing::warn!(%error, "could not announce a session change; watchers will miss it");
        }
    }
}
