//! The yardsticks kill latency is judged against: how long Redis itself takes to carry a message
//! from PUBLISH to a subscriber, through the plain `redis` crate and through the services'
//! [`RedisBus`]; and a PostgreSQL round trip through a service's connection pool.
//!
//! Every sample is one message, sent only after the previous one arrived (and a short pause), so
//! the figures are latencies of an idle path, not of a queue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use tokio::sync::mpsc;
use vigil_runtime::bus::{BusEvent, ControlBus, RedisBus, RedisBusConfig};

/// Pause between samples.
const PACE: Duration = Duration::from_millis(1);
/// Samples taken before measuring, so connection set-up and cold caches are not counted.
pub const WARM_UP: usize = 20;
/// How long one message may take before the yardstick counts as failed.
const PATIENCE: Duration = Duration::from_secs(5);

/// PUBLISH → message through the plain `redis` crate: one multiplexed connection publishes, a
/// dedicated pub/sub connection receives, and the receiving task timestamps each arrival.
pub async fn raw_publish(redis_url: &str, channel: &str, samples: usize) -> anyhow::Result<Vec<Duration>> {
    let client = redis::Client::open(redis_url).context("Redis URL")?;
    let mut publisher = client
        .get_multiplexed_async_connection()
        .await
        .context("connect to Redis to publish")?;
    let mut pubsub = client
        .get_async_pubsub()
        .await
        .context("connect to Redis to subscribe")?;
    pubsub.subscribe(channel).await.context("SUBSCRIBE")?;
    let mut messages = pubsub.into_on_message();
    let (arrivals, mut arrived) = mpsc::unbounded_channel();
    let receiver = tokio::spawn(async move {
        while let Some(message) = messages.next().await {
            let at = Instant::now();
            if arrivals.send((sequence_of(message.get_payload_bytes()), at)).is_err() {
                return;
            }
        }
    });

    let mut latencies = Vec::with_capacity(samples);
    for sequence in 0..(WARM_UP + samples) as u64 {
        let sent = Instant::now();
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(&sequence.to_be_bytes()[..])
            .query_async::<i64>(&mut publisher)
            .await
            .context("PUBLISH")?;
        let at = arrival(&mut arrived, sequence).await?;
        if sequence >= WARM_UP as u64 {
            latencies.push(at.duration_since(sent));
        }
        tokio::time::sleep(PACE).await;
    }
    receiver.abort();
    Ok(latencies)
}

/// PUBLISH → message through [`RedisBus`], the path kill commands take between the termination
/// service and a gateway's link.
pub async fn bus_publish(redis_url: &str, namespace: &str, samples: usize) -> anyhow::Result<Vec<Duration>> {
    let config = RedisBusConfig {
        url: redis_url.to_owned(),
        namespace: namespace.to_owned(),
        ..RedisBusConfig::default()
    };
    let bus = Arc::new(RedisBus::connect(config).await.context("connect the Redis bus")?);
    let channel = "bench.yardstick";
    let mut subscription = bus.subscribe(channel).await.context("subscribe on the Redis bus")?;
    let (arrivals, mut arrived) = mpsc::unbounded_channel();
    let receiver = tokio::spawn(async move {
        while let Some(event) = subscription.next().await {
            let at = Instant::now();
            if let BusEvent::Message(payload) = event
                && arrivals.send((sequence_of(&payload), at)).is_err()
            {
                return;
            }
        }
    });

    let mut latencies = Vec::with_capacity(samples);
    for sequence in 0..(WARM_UP + samples) as u64 {
        let sent = Instant::now();
        bus.publish(channel, sequence.to_be_bytes().to_vec().into())
            .await
            .context("publish on the Redis bus")?;
        let at = arrival(&mut arrived, sequence).await?;
        if sequence >= WARM_UP as u64 {
            latencies.push(at.duration_since(sent));
        }
        tokio::time::sleep(PACE).await;
    }
    receiver.abort();
    Ok(latencies)
}

/// A PostgreSQL round trip (the store's `ping`) through a service's own connection pool: what each
/// statement on the kill path costs at least.
pub async fn database_round_trip(
    store: &Arc<dyn vigil_registry::store::SessionStore>,
    samples: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut latencies = Vec::with_capacity(samples);
    for index in 0..WARM_UP + samples {
        let sent = Instant::now();
        store.ping().await.context("ping PostgreSQL")?;
        if index >= WARM_UP {
            latencies.push(sent.elapsed());
        }
        tokio::time::sleep(PACE).await;
    }
    Ok(latencies)
}

/// When message `sequence` arrived. Anything else arriving first is a broken yardstick.
async fn arrival(
    arrived: &mut mpsc::UnboundedReceiver<(Option<u64>, Instant)>,
    sequence: u64,
) -> anyhow::Result<Instant> {
    match tokio::time::timeout(PATIENCE, arrived.recv()).await {
        Ok(Some((Some(got), at))) if got == sequence => Ok(at),
        Ok(Some((got, _))) => bail!("expected message {sequence} from Redis, got {got:?}"),
        Ok(None) => bail!("the Redis subscription ended"),
        Err(_) => bail!("message {sequence} did not arrive from Redis within {PATIENCE:?}"),
    }
}

fn sequence_of(payload: &[u8]) -> Option<u64> {
    payload.try_into().ok().map(u64::from_be_bytes)
}
