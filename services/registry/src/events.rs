//! Session changes, live, on every replica.
//!
//! After a change commits, the replica that made it publishes a `SessionEvent` on the bus channel
//! [`topics::SESSIONS`], inside a `SessionChanges` message: the changes queued behind each other
//! go out together (up to [`MAX_CHANGES_PER_MESSAGE`]), so a burst such as an end-all's 100,000
//! ends costs hundreds of publishes, not 100,000, while a lone change still goes out at once.
//! Every replica (itself included) runs one subscription to that channel and fans each event out
//! to its local watchers through a broadcast channel. Local watchers are fed only from the bus, so
//! every replica's watchers see the same events in the same order.

use std::sync::Arc;

use prost::Message;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use vigil_core::topics;
use vigil_proto::v1 as pb;
use vigil_runtime::ServiceResult;
use vigil_runtime::bus::{BusError, ControlBus, Delivery, TypedSubscription};

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

/// Changes waiting to be published. A link that ends a session must not wait for the bus (with
/// Redis down, each publish waits out the connection manager's reconnect attempts): announcements
/// are queued here and published behind it, by one task, in the order they were made. Only a
/// backlog this deep makes the announcing side wait.
const OUTBOX_CAPACITY: usize = 65_536;

/// Most changes in one bus message (a session is a few hundred bytes encoded, so a message stays
/// under ~150 KB). Larger messages would save little more and hold up the watchers' first event.
const MAX_CHANGES_PER_MESSAGE: usize = 256;

/// Publishes changes and fans them out to this replica's watchers.
#[derive(Clone)]
pub struct EventHub {
    outbox: mpsc::Sender<pb::SessionEvent>,
    local: broadcast::Sender<FeedItem>,
}

impl EventHub {
    /// Subscribes to the change channel (before returning, so no change made after this is missed)
    /// and starts forwarding to local watchers until `shutdown`.
    pub async fn start(bus: Arc<dyn ControlBus>, capacity: usize, shutdown: CancellationToken) -> ServiceResult<Self> {
        let (local, _) = broadcast::channel(capacity);
        let mut subscription =
            TypedSubscription::<pb::SessionChanges>::subscribe(bus.as_ref(), topics::SESSIONS).await?;
        let sender = local.clone();
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    () = shutdown.cancelled() => break,
                    event = subscription.next() => event,
                };
                match event {
                    // No receivers is fine: nobody is watching on this replica.
                    Some(Delivery::Message(changes)) => {
                        for event in changes.events {
                            drop(sender.send(FeedItem::Event(Arc::new(event))));
                        }
                    }
                    Some(Delivery::MayHaveMissed) => drop(sender.send(FeedItem::Gap)),
                    None => {
                        tracing::warn!("session change subscription ended; watchers will be told to resynchronise");
                        drop(sender.send(FeedItem::Gap));
                        break;
                    }
                }
            }
        });
        let (outbox, queued) = mpsc::channel(OUTBOX_CAPACITY);
        tokio::spawn(publish_queued(bus, queued));
        Ok(Self { outbox, local })
    }

    /// A receiver of this replica's feed.
    pub fn watch(&self) -> broadcast::Receiver<FeedItem> {
        self.local.subscribe()
    }

    /// Announces a change to every replica: queues it for publishing and returns (waiting only
    /// behind a backlog of `OUTBOX_CAPACITY`). Called after the change committed; a failure to
    /// announce is logged, not returned: the change itself stands, and watchers that missed it see
    /// the current state when they resynchronise.
    pub async fn publish(&self, kind: pb::SessionEventKind, session: &SessionRecord, detail: &str, now: EpochMillis) {
        let event = pb::SessionEvent {
            kind: kind as i32,
            session: Some(session_to_proto(session, now)),
            at: Some(vigil_proto::timestamp_from_millis(now)),
            detail: detail.to_owned(),
        };
        self.publish_event(event).await;
    }

    /// Announces several changes of one kind.
    pub async fn publish_all(&self, kind: pb::SessionEventKind, sessions: &[SessionRecord], now: EpochMillis) {
        for session in sessions {
            self.publish(kind, session, "", now).await;
        }
    }

    async fn publish_event(&self, event: pb::SessionEvent) {
        if self.outbox.send(event).await.is_err() {
            tracing::debug!("the session change publisher has stopped; change not announced");
        }
    }
}

/// Publishes queued changes in order until every [`EventHub`] is gone: whatever is queued when the
/// previous publish returns goes out as one message. While the bus is down, changes are dropped at
/// once rather than each waiting for a reconnect: watchers are told to resynchronise when the bus
/// is back (and read the current state), so the queue stays short and the changes made after the
/// outage go out without delay. Logged once per outage.
async fn publish_queued(bus: Arc<dyn ControlBus>, mut queued: mpsc::Receiver<pb::SessionEvent>) {
    let mut missed: usize = 0;
    let mut events = Vec::with_capacity(MAX_CHANGES_PER_MESSAGE);
    while queued.recv_many(&mut events, MAX_CHANGES_PER_MESSAGE).await > 0 {
        let changes = pb::SessionChanges {
            events: std::mem::take(&mut events),
        };
        let outcome = if bus.is_connected() {
            bus.publish(topics::SESSIONS, changes.encode_to_vec().into()).await
        } else {
            Err(BusError::Unavailable("the control bus is disconnected".into()))
        };
        match outcome {
            Ok(()) if missed > 0 => {
                tracing::info!(missed, "announcing session changes again");
                missed = 0;
            }
            Ok(()) => {}
            Err(error) => {
                if missed == 0 {
                    tracing::warn!(%error, "could not announce session changes; watchers will resynchronise");
                }
                missed += changes.events.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use async_trait::async_trait;
    use tokio::sync::Semaphore;
    use vigil_runtime::bus::{InProcessBus, Payload, Subscription};

    use super::*;
    use crate::domain::{GeoLocation, RiskAssessment, SessionStatus};

    /// An in-process bus whose publishes wait until `open` lets them through, like Redis while the
    /// connection manager reconnects.
    struct StalledBus {
        inner: InProcessBus,
        gate: Semaphore,
    }

    #[async_trait]
    impl ControlBus for StalledBus {
        async fn publish(&self, channel: &str, payload: Payload) -> Result<(), BusError> {
            let permit = self.gate.acquire().await.map_err(|_| BusError::Closed)?;
            permit.forget();
            self.inner.publish(channel, payload).await
        }

        async fn subscribe(&self, channel: &str) -> Result<Subscription, BusError> {
            self.inner.subscribe(channel).await
        }

        fn is_connected(&self) -> bool {
            true
        }
    }

    fn session(id: usize) -> SessionRecord {
        SessionRecord {
            id: format!("s-{id}"),
            user: "alice".into(),
            user_groups: Vec::new(),
            gateway_id: "gw-1".into(),
            resource_name: "db".into(),
            resource_type: vigil_proto::v1::ResourceType::Ssh,
            device: String::new(),
            client_ip: "10.0.0.1".into(),
            location: GeoLocation::default(),
            risk: RiskAssessment::default(),
            started_at: 1,
            last_activity_at: 1,
            status: SessionStatus::Active,
            ended_at: None,
            end_reason: None,
            end_detail: String::new(),
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    #[tokio::test]
    async fn announcing_never_waits_for_the_bus_and_keeps_the_order() {
        let bus = Arc::new(StalledBus {
            inner: InProcessBus::new(),
            gate: Semaphore::new(0),
        });
        let shutdown = CancellationToken::new();
        let hub = EventHub::start(bus.clone(), 4096, shutdown.clone()).await.unwrap();
        let mut feed = hub.watch();

        // 1,000 ends announced while every publish is stuck: none of them waits.
        let sessions: Vec<SessionRecord> = (0..1000).map(session).collect();
        tokio::time::timeout(
            Duration::from_millis(500),
            hub.publish_all(pb::SessionEventKind::Ended, &sessions, 2),
        )
        .await
        .expect("announcing waited for the bus");

        // The bus comes back: they all go out, in the order they were announced.
        bus.gate.add_permits(sessions.len());
        for expected in &sessions {
            let item = tokio::time::timeout(Duration::from_secs(5), feed.recv())
                .await
                .expect("the queued announcement never went out")
                .unwrap();
            let FeedItem::Event(event) = item else {
                panic!("expected an event, got {item:?}");
            };
            assert_eq!(
                event.session.as_ref().map(|s| s.id.as_str()),
                Some(expected.id.as_str())
            );
        }
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_burst_of_changes_goes_out_in_few_messages_and_in_order() {
        let bus = Arc::new(StalledBus {
            inner: InProcessBus::new(),
            gate: Semaphore::new(0),
        });
        let mut on_the_bus = TypedSubscription::<pb::SessionChanges>::subscribe(&bus.inner, topics::SESSIONS)
            .await
            .unwrap();
        let shutdown = CancellationToken::new();
        let hub = EventHub::start(bus.clone(), 4096, shutdown.clone()).await.unwrap();

        // 1,000 ends queue up behind a publish the bus holds, then the bus lets them through.
        let sessions: Vec<SessionRecord> = (0..1000).map(session).collect();
        hub.publish_all(pb::SessionEventKind::Ended, &sessions, 2).await;
        bus.gate.add_permits(sessions.len());

        let mut ids = Vec::new();
        let mut messages = 0;
        while ids.len() < sessions.len() {
            let delivery = tokio::time::timeout(Duration::from_secs(5), on_the_bus.next())
                .await
                .expect("the queued changes never went out");
            let Some(Delivery::Message(changes)) = delivery else {
                panic!("expected a message, got {delivery:?}");
            };
            assert!(
                changes.events.len() <= MAX_CHANGES_PER_MESSAGE,
                "{} in one message",
                changes.events.len()
            );
            messages += 1;
            ids.extend(changes.events.into_iter().map(|event| event.session.unwrap().id));
        }
        let expected: Vec<String> = sessions.iter().map(|session| session.id.clone()).collect();
        assert_eq!(ids, expected, "every change, once, in the order announced");
        // The first publish took one change before the bus stalled; the 999 behind it went out
        // in full messages.
        assert!(
            messages <= 1 + 999usize.div_ceil(MAX_CHANGES_PER_MESSAGE),
            "{messages} messages"
        );
        shutdown.cancel();
    }
}
