//! Payloads as they arrive on the control bus, through the runtime's `TypedSubscription` (what every
//! subscriber uses): gateway dispatches, lock sets, session changes. Then what a gateway does with a
//! lock set: each lock's target read and matched, its expiry judged.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::SystemTime;

use vigil_core::{LockTarget, StartFacts, topics};
use vigil_proto::v1 as pb;
use vigil_runtime::bus::{ControlBus, Delivery, InProcessBus, TypedSubscription};

/// One bus and a subscription per channel, kept across inputs.
struct Harness {
    runtime: tokio::runtime::Runtime,
    bus: InProcessBus,
    dispatch: TypedSubscription<pb::GatewayDispatch>,
    locks: TypedSubscription<pb::LockUpdate>,
    sessions: TypedSubscription<pb::SessionChanges>,
}

const GATEWAY_CHANNEL: &str = "gateway.gw-fuzz";

impl Harness {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let bus = InProcessBus::new();
        let (dispatch, locks, sessions) = runtime.block_on(async {
            (
                TypedSubscription::subscribe(&bus, GATEWAY_CHANNEL)
                    .await
                    .expect("subscribe"),
                TypedSubscription::subscribe(&bus, topics::LOCKS)
                    .await
                    .expect("subscribe"),
                TypedSubscription::subscribe(&bus, topics::SESSIONS)
                    .await
                    .expect("subscribe"),
            )
        });
        Self {
            runtime,
            bus,
            dispatch,
            locks,
            sessions,
        }
    }
}

thread_local! {
    static HARNESS: RefCell<Option<Harness>> = const { RefCell::new(None) };
}

/// The first byte picks the channel; the rest is the payload.
pub fn bus_payload(data: &[u8]) {
    let Some((&head, payload)) = data.split_first() else {
        return;
    };
    HARNESS.with(|cell| {
        let mut cell = cell.borrow_mut();
        let harness = cell.get_or_insert_with(Harness::new);
        let Harness {
            runtime,
            bus,
            dispatch,
            locks,
            sessions,
        } = harness;
        runtime.block_on(async {
            match head % 3 {
                0 => drop(receive(bus, GATEWAY_CHANNEL, dispatch, payload).await),
                1 => {
                    if let Some(update) = receive(bus, topics::LOCKS, locks, payload).await {
                        judge_locks(&update);
                    }
                }
                _ => drop(receive(bus, topics::SESSIONS, sessions, payload).await),
            }
        });
    });
}

/// Publishes `payload`, then an empty message (which decodes as the default of every type) so that
/// the subscription always has something to return; yields the decoded payload, if it decoded.
async fn receive<M>(
    bus: &InProcessBus,
    channel: &str,
    subscription: &mut TypedSubscription<M>,
    payload: &[u8],
) -> Option<M>
where
    M: prost::Message + Default + PartialEq,
{
    bus.publish(channel, Arc::from(payload)).await.expect("publish");
    bus.publish(channel, Arc::from(&[][..])).await.expect("publish");
    let expected = M::decode(payload).ok();
    let first = subscription.next().await;
    match expected {
        Some(message) => {
            assert!(
                first == Some(Delivery::Message(message)),
                "the payload came out changed"
            );
            let sentinel = subscription.next().await;
            assert!(sentinel == Some(Delivery::Message(M::default())));
            match first {
                Some(Delivery::Message(message)) => Some(message),
                _ => None,
            }
        }
        None => {
            // Skipped: the next delivery is the empty message.
            assert!(
                first == Some(Delivery::Message(M::default())),
                "an undecodable payload was not skipped"
            );
            None
        }
    }
}

/// What a gateway does with a pushed lock set: every lock's target read (networks leniently) and
/// matched against a start, every expiry judged.
fn judge_locks(update: &pb::LockUpdate) {
    let groups = vec!["dba".to_owned()];
    let facts = StartFacts {
        user: "alice@acme.example",
        groups: &groups,
        resource: "prod-db-01",
        gateway_id: "gw-fuzz",
        device: "laptop",
        client_ip: "81.2.69.142".parse().ok(),
    };
    let now = SystemTime::now();
    for lock in &update.locks {
        if let Some(target) = lock.target.as_ref().and_then(|target| target.target.as_ref())
            && let Some(target) = LockTarget::from_pushed(target)
        {
            let _ = target.covers(&facts);
            let _ = target.value();
            let _ = LockTarget::from_parts(target.kind(), target.value());
        }
        if let Some(at) = lock.expires_at {
            let _ = SystemTime::try_from(at).map(|at| at <= now);
        }
    }
}
