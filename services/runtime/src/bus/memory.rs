//! The in-process control bus, for the all-in-one binary (one process, so no Redis needed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::{BusError, BusEvent, ControlBus, Payload, Subscription};

/// How many messages a channel holds for its slowest subscriber before that subscriber lags (and
/// is told to resynchronise). A broadcast channel allocates all its slots up front, and there is
/// one channel per gateway, so this stays modest.
const DEFAULT_CHANNEL_CAPACITY: usize = 256;

type Channels = Arc<Mutex<HashMap<String, broadcast::Sender<Payload>>>>;

/// A [`ControlBus`] inside one process: one tokio broadcast channel per bus channel, created on the
/// first subscription and removed with the last one.
///
/// A subscriber that falls behind by more than the channel capacity loses the oldest messages and
/// receives [`BusEvent::Resubscribed`] in their place, the same contract as a Redis connection
/// break. Cloning is cheap; clones share the channels.
#[derive(Clone)]
pub struct InProcessBus {
    channels: Channels,
    capacity: usize,
}

impl InProcessBus {
    /// A bus whose channels buffer [`DEFAULT_CHANNEL_CAPACITY`] messages per subscriber.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_CHANNEL_CAPACITY)
    }

    /// A bus whose channels buffer `capacity` messages per subscriber (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            channels: Arc::default(),
            capacity: capacity.max(1),
        }
    }
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for InProcessBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessBus")
            .field("channels", &lock(&self.channels).len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

/// Every critical section only inserts, removes or sends, so the map is consistent even if a
/// holder panicked: recover it instead of propagating the poison.
fn lock(channels: &Channels) -> MutexGuard<'_, HashMap<String, broadcast::Sender<Payload>>> {
    channels.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl ControlBus for InProcessBus {
    async fn publish(&self, channel: &str, payload: Payload) -> Result<(), BusError> {
        if let Some(sender) = lock(&self.channels).get(channel) {
            // `send` fails only when nobody listens, which is fire-and-forget's normal case.
            let _ = sender.send(payload);
        }
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> Result<Subscription, BusError> {
        let receiver = lock(&self.channels)
            .entry(channel.to_owned())
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe();
        let events = BroadcastStream::new(receiver).map(|item| match item {
            Ok(payload) => BusEvent::Message(payload),
            Err(BroadcastStreamRecvError::Lagged(_)) => BusEvent::Resubscribed,
        });
        Ok(Box::pin(InProcessSubscription {
            events,
            _cleanup: RemoveChannelWhenUnused {
                channels: Arc::clone(&self.channels),
                channel: channel.to_owned(),
            },
        }))
    }

    fn is_connected(&self) -> bool {
        true
    }
}

/// A subscription: the receiver's stream, then the clean-up guard. Fields drop in declaration
/// order, so the receiver is gone by the time the guard counts the remaining ones.
struct InProcessSubscription<S> {
    events: S,
    _cleanup: RemoveChannelWhenUnused,
}

impl<S: futures::Stream<Item = BusEvent> + Unpin> futures::Stream for InProcessSubscription<S> {
    type Item = BusEvent;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<BusEvent>> {
        self.events.poll_next_unpin(cx)
    }
}

struct RemoveChannelWhenUnused {
    channels: Channels,
    channel: String,
}

impl Drop for RemoveChannelWhenUnused {
    fn drop(&mut self) {
        let mut channels = lock(&self.channels);
        // Subscribing happens under the same lock, so a count of zero cannot race with a new
        // subscriber of this channel.
        if channels
            .get(&self.channel)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            channels.remove(&self.channel);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn payload(text: &str) -> Payload {
        Arc::from(text.as_bytes())
    }

    async fn next_event(subscription: &mut Subscription) -> BusEvent {
        tokio::time::timeout(Duration::from_secs(5), subscription.next())
            .await
            .expect("no event within 5 s")
            .expect("subscription ended")
    }

    #[tokio::test]
    async fn a_subscriber_receives_what_is_published_after_it_subscribed() {
        let bus = InProcessBus::new();
        bus.publish("sessions", payload("before")).await.unwrap();
        let mut subscription = bus.subscribe("sessions").await.unwrap();

        bus.publish("sessions", payload("one")).await.unwrap();
        bus.publish("other", payload("elsewhere")).await.unwrap();
        bus.publish("sessions", payload("two")).await.unwrap();

        assert_eq!(next_event(&mut subscription).await, BusEvent::Message(payload("one")));
        assert_eq!(next_event(&mut subscription).await, BusEvent::Message(payload("two")));
        assert!(bus.is_connected());
    }

    #[tokio::test]
    async fn every_subscriber_of_a_channel_receives_each_message() {
        let bus = InProcessBus::new();
        let mut first = bus.subscribe("gateway.gw-1").await.unwrap();
        let mut second = bus.clone().subscribe("gateway.gw-1").await.unwrap();

        bus.publish("gateway.gw-1", payload("kill")).await.unwrap();

        assert_eq!(next_event(&mut first).await, BusEvent::Message(payload("kill")));
        assert_eq!(next_event(&mut second).await, BusEvent::Message(payload("kill")));
    }

    #[tokio::test]
    async fn dropping_the_last_subscription_removes_the_channel() {
        let bus = InProcessBus::new();
        let first = bus.subscribe("sessions").await.unwrap();
        let second = bus.subscribe("sessions").await.unwrap();
        assert_eq!(lock(&bus.channels).len(), 1);

        drop(first);
        assert!(lock(&bus.channels).contains_key("sessions"), "one subscriber remains");

        drop(second);
        assert!(lock(&bus.channels).is_empty());
        // Publishing to a channel nobody listens to is not an error.
        bus.publish("sessions", payload("nobody")).await.unwrap();
    }

    #[tokio::test]
    async fn a_lagging_subscriber_is_told_to_resubscribe_instead_of_silently_losing_messages() {
        let bus = InProcessBus::with_capacity(2);
        let mut slow = bus.subscribe("sessions").await.unwrap();

        for n in 0..5 {
            bus.publish("sessions", payload(&n.to_string())).await.unwrap();
        }

        // The three oldest messages are gone; the subscriber learns so, then gets the newest two.
        assert_eq!(next_event(&mut slow).await, BusEvent::Resubscribed);
        assert_eq!(next_event(&mut slow).await, BusEvent::Message(payload("3")));
        assert_eq!(next_event(&mut slow).await, BusEvent::Message(payload("4")));

        bus.publish("sessions", payload("5")).await.unwrap();
        assert_eq!(next_event(&mut slow).await, BusEvent::Message(payload("5")));
    }
}
