//! The Redis control bus against a real Redis: the shared one from `VIGIL_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`), isolated per test by a unique namespace, and for the restart test a
//! throwaway `redis-server` on a free port.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::process::{Child, Command};
use tokio::time::timeout;
use vigil_runtime::bus::{BusError, BusEvent, ControlBus, Payload, RedisBus, RedisBusConfig, Subscription};
use vigil_testkit::{PATIENCE, eventually};

fn redis_url() -> String {
    std::env::var("VIGIL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn unique_namespace() -> String {
    format!("vigil-test-{}", uuid::Uuid::new_v4())
}

fn config(url: &str, namespace: &str) -> RedisBusConfig {
    RedisBusConfig {
        url: url.to_owned(),
        namespace: namespace.to_owned(),
        reconnect_max_backoff: Duration::from_millis(200),
    }
}

async fn connect(namespace: &str) -> RedisBus {
    RedisBus::connect(config(&redis_url(), namespace))
        .await
        .expect("connect to the test Redis")
}

fn payload(text: &str) -> Payload {
    Arc::from(text.as_bytes())
}

async fn next_event(subscription: &mut Subscription) -> BusEvent {
    timeout(PATIENCE, subscription.next())
        .await
        .expect("no event before the deadline")
        .expect("subscription ended")
}

/// How many connections Redis has subscribed to `channel` (PUBSUB NUMSUB).
async fn redis_subscriber_count(url: &str, channel: &str) -> i64 {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let (_, count): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(&mut connection)
        .await
        .unwrap();
    count
}

#[tokio::test]
async fn a_subscriber_receives_messages_published_after_subscribe_returns() {
    let bus = connect(&unique_namespace()).await;
    assert!(bus.is_connected());
    let mut subscription = bus.subscribe("sessions").await.unwrap();

    // No wait in between: subscribe() returns only once Redis has confirmed.
    bus.publish("sessions", payload("one")).await.unwrap();
    bus.publish("elsewhere", payload("not for us")).await.unwrap();
    bus.publish("sessions", payload("two")).await.unwrap();

    assert_eq!(next_event(&mut subscription).await, BusEvent::Message(payload("one")));
    assert_eq!(next_event(&mut subscription).await, BusEvent::Message(payload("two")));
}

#[tokio::test]
async fn replicas_sharing_a_namespace_see_each_others_messages_and_other_namespaces_do_not() {
    let namespace = unique_namespace();
    let replica_a = connect(&namespace).await;
    let replica_b = connect(&namespace).await;
    let other_deployment = connect(&unique_namespace()).await;

    let mut on_a = replica_a.subscribe("gateway.gw-1").await.unwrap();
    let mut on_b = replica_b.subscribe("gateway.gw-1").await.unwrap();
    let mut on_other = other_deployment.subscribe("gateway.gw-1").await.unwrap();

    replica_a.publish("gateway.gw-1", payload("from a")).await.unwrap();
    replica_b.publish("gateway.gw-1", payload("from b")).await.unwrap();
    // Published after the others have been accepted, so it would come after them if they leaked.
    other_deployment
        .publish("gateway.gw-1", payload("other deployment"))
        .await
        .unwrap();

    for subscription in [&mut on_a, &mut on_b] {
        assert_eq!(next_event(subscription).await, BusEvent::Message(payload("from a")));
        assert_eq!(next_event(subscription).await, BusEvent::Message(payload("from b")));
    }
    assert_eq!(
        next_event(&mut on_other).await,
        BusEvent::Message(payload("other deployment"))
    );
}

#[tokio::test]
async fn local_subscribers_share_one_redis_subscription_which_ends_with_the_last_of_them() {
    let url = redis_url();
    let namespace = unique_namespace();
    let redis_channel = format!("{namespace}:sessions");
    let bus = connect(&namespace).await;

    let mut first = bus.subscribe("sessions").await.unwrap();
    let mut second = bus.clone().subscribe("sessions").await.unwrap();
    assert_eq!(redis_subscriber_count(&url, &redis_channel).await, 1);

    bus.publish("sessions", payload("both")).await.unwrap();
    assert_eq!(next_event(&mut first).await, BusEvent::Message(payload("both")));
    assert_eq!(next_event(&mut second).await, BusEvent::Message(payload("both")));

    drop(first);
    bus.publish("sessions", payload("second only")).await.unwrap();
    assert_eq!(next_event(&mut second).await, BusEvent::Message(payload("second only")));
    assert_eq!(redis_subscriber_count(&url, &redis_channel).await, 1);

    drop(second);
    eventually("Redis drops the subscription", || async {
        let done = redis_subscriber_count(&url, &redis_channel).await == 0;
        done.then_some(())
    })
    .await;

    // Subscribing again after the UNSUBSCRIBE works as from scratch.
    let mut again = bus.subscribe("sessions").await.unwrap();
    bus.publish("sessions", payload("again")).await.unwrap();
    assert_eq!(next_event(&mut again).await, BusEvent::Message(payload("again")));
}

#[tokio::test]
async fn dropping_the_bus_ends_its_subscriptions_and_closes_the_connection() {
    let url = redis_url();
    let namespace = unique_namespace();
    let redis_channel = format!("{namespace}:sessions");
    let bus = connect(&namespace).await;
    let mut subscription = bus.subscribe("sessions").await.unwrap();
    assert_eq!(redis_subscriber_count(&url, &redis_channel).await, 1);

    drop(bus);

    let end = timeout(PATIENCE, subscription.next())
        .await
        .expect("subscription did not end");
    assert_eq!(end, None);
    eventually("Redis sees the pub/sub connection go", || async {
        let done = redis_subscriber_count(&url, &redis_channel).await == 0;
        done.then_some(())
    })
    .await;
}

#[tokio::test]
async fn ten_thousand_messages_arrive_complete_and_in_order() {
    const COUNT: usize = 10_000;
    let bus = connect(&unique_namespace()).await;
    let mut subscription = bus.subscribe("sessions").await.unwrap();

    let reader = tokio::spawn(async move {
        let mut received = Vec::with_capacity(COUNT);
        while received.len() < COUNT {
            match next_event(&mut subscription).await {
                BusEvent::Message(payload) => received.push(payload),
                BusEvent::Resubscribed => panic!("messages were dropped after {} of {COUNT}", received.len()),
            }
        }
        received
    });
    for n in 0..COUNT {
        bus.publish("sessions", payload(&n.to_string())).await.unwrap();
    }

    let received = reader.await.unwrap();
    let expected: Vec<Payload> = (0..COUNT).map(|n| payload(&n.to_string())).collect();
    assert!(received == expected, "messages arrived out of order");
}

#[tokio::test]
async fn connect_fails_when_redis_is_unreachable() {
    let url = format!("redis://127.0.0.1:{}", free_port());
    let error = RedisBus::connect(config(&url, "unreachable")).await.unwrap_err();
    assert!(matches!(error, BusError::Unavailable(_)), "{error:?}");
}

/// A port nothing listens on: bind port 0, note the port, release it.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A throwaway `redis-server` without persistence; killed when dropped.
struct ThrowawayRedis {
    port: u16,
    process: Child,
}

impl ThrowawayRedis {
    async fn start(port: u16) -> Self {
        let process = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start redis-server (it must be on PATH for this test): {error}"));
        let server = Self { port, process };
        let client = redis::Client::open(server.url()).unwrap();
        eventually("redis-server accepts connections", || async {
            let done = match client.get_multiplexed_async_connection().await {
                Ok(mut connection) => redis::cmd("PING").query_async::<String>(&mut connection).await.is_ok(),
                Err(_) => false,
            };
            done.then_some(())
        })
        .await;
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn kill(mut self) {
        self.process.kill().await.expect("kill redis-server");
    }
}

#[tokio::test]
async fn a_redis_restart_is_survived_and_reported_as_resubscribed() {
    let port = free_port();
    let redis = ThrowawayRedis::start(port).await;
    let url = redis.url();
    let bus = RedisBus::connect(config(&url, "restart")).await.unwrap();
    let mut subscription = bus.subscribe("gateway.gw-1").await.unwrap();
    bus.publish("gateway.gw-1", payload("before")).await.unwrap();
    assert_eq!(
        next_event(&mut subscription).await,
        BusEvent::Message(payload("before"))
    );

    redis.kill().await;

    eventually("the bus notices the pub/sub connection is gone", || async {
        let done = !bus.is_connected();
        done.then_some(())
    })
    .await;
    eventually("publishing fails", || async {
        let done = matches!(
            bus.publish("gateway.gw-1", payload("lost")).await,
            Err(BusError::Unavailable(_))
        );
        done.then_some(())
    })
    .await;
    let error = bus
        .subscribe("gateway.gw-2")
        .await
        .err()
        .expect("subscribe while Redis is down");
    assert!(matches!(error, BusError::Unavailable(_)), "{error:?}");

    let redis = ThrowawayRedis::start(port).await;

    assert_eq!(next_event(&mut subscription).await, BusEvent::Resubscribed);
    assert!(bus.is_connected());
    eventually("publishing works again", || async {
        let done = bus.publish("gateway.gw-1", payload("after")).await.is_ok();
        done.then_some(())
    })
    .await;
    assert_eq!(next_event(&mut subscription).await, BusEvent::Message(payload("after")));

    drop(subscription);
    drop(bus);
    redis.kill().await;
}

/// The first publish after Redis comes back must not fail on the connection that died with the
/// old server (or on the reconnect that failed while it was down): the bus retries it at once on
/// a fresh connection, so callers do not count a lost attempt.
#[tokio::test]
async fn the_first_publish_after_a_redis_restart_succeeds() {
    for pause in [Duration::from_millis(0), Duration::from_millis(1500)] {
        let port = free_port();
        let redis = ThrowawayRedis::start(port).await;
        let bus = RedisBus::connect(config(&redis.url(), "first-publish")).await.unwrap();
        bus.publish("gateway.gw-1", payload("before")).await.unwrap();

        redis.kill().await;
        tokio::time::sleep(pause).await;
        let redis = ThrowawayRedis::start(port).await;

        let result = bus.publish("gateway.gw-1", payload("after")).await;
        assert!(result.is_ok(), "after a pause of {pause:?}: {result:?}");
        redis.kill().await;
    }
}
