//! A subscription that yields decoded messages: every channel of Vigil's carries one protobuf
//! message type, and every subscriber decodes, skips what does not decode, and is told when it may
//! have missed messages. Done once here rather than in each subscriber's loop.

use std::marker::PhantomData;

use futures::StreamExt;

use super::{BusError, BusEvent, ControlBus, Subscription};

/// What a typed subscription yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery<M> {
    /// A message published on the channel.
    Message(M),
    /// The subscription was re-established after a break: messages published during the break
    /// were lost. Re-read durable state.
    MayHaveMissed,
}

/// A live subscription to one channel carrying `M`. Dropping it unsubscribes.
pub struct TypedSubscription<M> {
    channel: String,
    events: Subscription,
    message: PhantomData<fn() -> M>,
}

impl<M: prost::Message + Default> TypedSubscription<M> {
    /// Subscribes to `channel` (active when this returns, as [`ControlBus::subscribe`]).
    pub async fn subscribe(bus: &dyn ControlBus, channel: &str) -> Result<Self, BusError> {
        Ok(Self::new(channel, bus.subscribe(channel).await?))
    }

    /// Decodes an existing subscription to `channel`.
    pub fn new(channel: &str, events: Subscription) -> Self {
        Self {
            channel: channel.to_owned(),
            events,
            message: PhantomData,
        }
    }

    /// The next delivery; `None` once the subscription has ended. A payload that does not decode
    /// as `M` is logged and skipped. Cancel-safe (a message is taken off the subscription only
    /// when it is returned, or skipped).
    pub async fn next(&mut self) -> Option<Delivery<M>> {
        loop {
            match self.events.next().await? {
                BusEvent::Message(payload) => match M::decode(&payload[..]) {
                    Ok(message) => return Some(Delivery::Message(message)),
                    Err(error) => {
                        tracing::warn!(channel = %self.channel, %error, "undecodable message on the bus; skipped")
                    }
                },
                BusEvent::Resubscribed => return Some(Delivery::MayHaveMissed),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use prost::Message;

    use super::*;
    use crate::bus::InProcessBus;

    #[tokio::test]
    async fn messages_arrive_decoded_and_garbage_is_skipped() {
        let bus = InProcessBus::new();
        let mut subscription = TypedSubscription::<prost_types::Duration>::subscribe(&bus, "c")
            .await
            .unwrap();
        let one = prost_types::Duration { seconds: 1, nanos: 0 };
        bus.publish("c", Arc::from(&[0xff_u8, 0xff, 0xff][..])).await.unwrap();
        bus.publish("c", one.encode_to_vec().into()).await.unwrap();
        assert_eq!(subscription.next().await, Some(Delivery::Message(one)));
    }
}
