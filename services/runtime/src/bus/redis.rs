//! The control bus over Redis pub/sub, shared by every replica.
//!
//! Publishing goes through a [`ConnectionManager`], which reconnects on its own. Subscribing goes
//! through one dedicated pub/sub connection per [`RedisBus`], owned by a background worker that
//! multiplexes every local subscription onto it:
//!
//! ```text
//!  subscribe() ──Request──▶ ┌──────────┐ ──SUBSCRIBE/UNSUBSCRIBE──▶ Redis
//!  drop(sub)   ──Request──▶ │  worker  │ ◀──────── messages ──────
//!  sub stream  ◀──mpsc───── └──────────┘
//! ```
//!
//! When the connection breaks, the worker reconnects with exponential backoff, re-subscribes every
//! channel that still has subscribers and then sends [`BusEvent::Resubscribed`] to all of them:
//! whatever was published during the break is lost, and they re-read durable state.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::task::AtomicWaker;
use redis::RedisResult;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink, PubSubStream};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::{BusError, BusEvent, ControlBus, Payload, Subscription};
use crate::backoff::Backoff;

/// Bound on every single exchange with Redis (connecting, SUBSCRIBE, PING, PUBLISH); a Redis that
/// takes longer is treated as unreachable.
const REDIS_TIMEOUT: Duration = Duration::from_secs(3);
/// How long `subscribe()` waits for Redis to confirm before reporting the bus unavailable.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The first reconnect delay; it doubles up to `reconnect_max_backoff` (each delay jittered).
const INITIAL_RECONNECT_DELAY: Duration = Duration::from_millis(100);
/// Floor for `reconnect_max_backoff`, so a zero in the configuration cannot spin the worker.
const MIN_RECONNECT_DELAY: Duration = Duration::from_millis(10);
/// How often the idle pub/sub connection is PINGed: a half-open TCP connection (Redis host gone
/// without a FIN) otherwise looks healthy forever.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// Messages queued per subscription before it counts as lagging (and is told to resynchronise).
/// Tokio allocates a bounded channel's buffer lazily, so a large bound costs nothing when idle.
const SUBSCRIBER_QUEUE_CAPACITY: usize = 4096;
/// Subscription requests handled (and sent to Redis as one command) per round, so a burst of
/// gateway connections does not stall message forwarding for long.
const MAX_REQUESTS_PER_ROUND: usize = 1024;
/// Channels per SUBSCRIBE command when re-subscribing everything after a reconnect.
const RESUBSCRIBE_CHUNK: usize = 1024;

/// Where the Redis control bus lives and how it behaves.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisBusConfig {
    /// `redis://[user:password@]host:port[/db]` (or `rediss://`, `redis+unix://`).
    pub url: String,
    /// Prefix of every channel on Redis (`{namespace}:{channel}`), so several deployments or test
    /// runs can share one Redis.
    pub namespace: String,
    /// Cap of the exponential backoff between reconnect attempts (each delay jittered). A second by
    /// default: a Redis that comes back is found within about a second, and the attempts of a few
    /// replicas a second cost a Redis that is down nothing.
    #[serde(with = "humantime_serde")]
    pub reconnect_max_backoff: Duration,
}

impl Default for RedisBusConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".to_owned(),
            namespace: "vigil".to_owned(),
            reconnect_max_backoff: Duration::from_secs(1),
        }
    }
}

impl std::fmt::Debug for RedisBusConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBusConfig")
            .field("url", &redact_url(&self.url))
            .field("namespace", &self.namespace)
            .field("reconnect_max_backoff", &self.reconnect_max_backoff)
            .finish()
    }
}

/// The URL with its password (userinfo, or the `pass` query parameter of unix-socket URLs)
/// replaced by `***`.
fn redact_url(raw: &str) -> String {
    const REDACTED: &str = "***";
    let Ok(mut url) = url::Url::parse(raw) else {
        // Unparseable, so we cannot tell where a password would be: show nothing of it.
        return "<unparseable URL>".to_owned();
    };
    if url.password().is_some() {
        // Fails only for URLs that cannot have credentials, which then have no password either.
        let _ = url.set_password(Some(REDACTED));
    }
    if url.query_pairs().any(|(key, _)| key == "pass") {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(key, value)| {
                let value = if key == "pass" {
                    REDACTED.into()
                } else {
                    value.into_owned()
                };
                (key.into_owned(), value)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

/// A [`ControlBus`] over Redis pub/sub. Cloning is cheap; clones share the connections, and the
/// background worker stops when the last clone is dropped (open subscriptions then end).
#[derive(Clone)]
pub struct RedisBus {
    inner: Arc<Inner>,
}

struct Inner {
    namespace: String,
    publisher: ConnectionManager,
    /// To the pub/sub worker. Subscriptions hold only weak senders, so dropping the last
    /// `RedisBus` closes this channel and stops the worker.
    requests: mpsc::UnboundedSender<Request>,
    connected: Arc<AtomicBool>,
    next_subscriber_id: AtomicU64,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus")
            .field("namespace", &self.inner.namespace)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

impl RedisBus {
    /// Connects both the publishing and the pub/sub connection. Fails if Redis cannot be reached
    /// now; after that, connection breaks are repaired in the background.
    pub async fn connect(config: RedisBusConfig) -> Result<RedisBus, BusError> {
        // The error names what is wrong with the URL without repeating it (it may hold a password).
        let client = redis::Client::open(config.url.as_str())
            .map_err(|error| BusError::Unavailable(format!("invalid Redis URL: {error}")))?;
        let (sink, stream) = within("connect", client.get_async_pubsub())
            .await
            .map_err(BusError::Unavailable)?
            .split();
        let max_backoff = config.reconnect_max_backoff.max(MIN_RECONNECT_DELAY);
        let publisher_config = ConnectionManagerConfig::new()
            // A publish waits for the manager's reconnect attempts: keep them few, so that a
            // publish during an outage fails in about a second instead of stalling its caller.
            .set_number_of_retries(2)
            .set_max_delay(max_backoff)
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT));
        let publisher = ConnectionManager::new_with_config(client.clone(), publisher_config)
            .await
            .map_err(|error| BusError::Unavailable(format!("Redis connect failed: {error}")))?;

        let connected = Arc::new(AtomicBool::new(true));
        let (requests, request_receiver) = mpsc::unbounded_channel();
        let worker = PubSubWorker {
            client,
            requests: request_receiver,
            subscribers: HashMap::new(),
            on_redis: HashSet::new(),
            connected: Arc::clone(&connected),
            max_backoff,
        };
        let span = tracing::info_span!("redis_bus", namespace = %config.namespace);
        tokio::spawn(worker.run(sink, stream).instrument(span));

        Ok(RedisBus {
            inner: Arc::new(Inner {
                namespace: config.namespace,
                publisher,
                requests,
                connected,
                next_subscriber_id: AtomicU64::new(0),
            }),
        })
    }

    fn redis_channel(&self, channel: &str) -> String {
        format!("{}:{}", self.inner.namespace, channel)
    }

    async fn publish_once(&self, channel: &str, payload: &Payload) -> RedisResult<()> {
        let mut publisher = self.inner.publisher.clone();
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(&payload[..])
            .query_async::<i64>(&mut publisher)
            .await
            .map(drop)
    }
}

/// Whether `error` means the connection itself failed (as opposed to Redis refusing the command).
fn connection_broke(error: &redis::RedisError) -> bool {
    error.is_io_error() || error.is_connection_dropped() || error.is_unrecoverable_error()
}

#[async_trait]
impl ControlBus for RedisBus {
    /// A publish that fails on a broken connection is tried once more at once: the first command
    /// after Redis comes back often goes out on a connection the manager has not yet found dead
    /// ("broken pipe"), and the failure itself makes the manager open a fresh one, which the
    /// retry waits for. Callers then count an attempt only when Redis is really unreachable. (A
    /// message whose reply alone was lost may arrive twice; every bus message is idempotent.)
    async fn publish(&self, channel: &str, payload: Payload) -> Result<(), BusError> {
        let channel = self.redis_channel(channel);
        let mut outcome = self.publish_once(&channel, &payload).await;
        if let Err(error) = &outcome
            && connection_broke(error)
        {
            tracing::debug!(%error, channel, "Redis PUBLISH failed on a broken connection; retrying on a fresh one");
            outcome = self.publish_once(&channel, &payload).await;
        }
        outcome.map_err(|error| BusError::Unavailable(format!("Redis PUBLISH failed: {error}")))
    }

    async fn subscribe(&self, channel: &str) -> Result<Subscription, BusError> {
        let channel = self.redis_channel(channel);
        let id = self.inner.next_subscriber_id.fetch_add(1, Ordering::Relaxed);
        let (sender, events) = mpsc::channel(SUBSCRIBER_QUEUE_CAPACITY);
        let missed = Arc::new(MissedSignal::default());
        let (reply, confirmation) = oneshot::channel();
        let subscriber = LocalSubscriber {
            id,
            events: sender,
            missed: Arc::clone(&missed),
        };
        let request = Request::Subscribe {
            channel: channel.clone(),
            subscriber,
            reply,
        };
        self.inner.requests.send(request).map_err(|_| BusError::Closed)?;
        // From here on the worker may hold the subscriber: whichever way this ends, dropping the
        // guard takes it back out unless a subscription now owns the guard.
        let unsubscribe = UnsubscribeOnDrop {
            requests: self.inner.requests.downgrade(),
            channel,
            id,
        };
        match tokio::time::timeout(SUBSCRIBE_TIMEOUT, confirmation).await {
            Ok(Ok(Ok(()))) => Ok(Box::pin(RedisSubscription {
                events,
                missed,
                _unsubscribe: unsubscribe,
            })),
            Ok(Ok(Err(error))) => Err(error),
            Ok(Err(_)) => Err(BusError::Closed),
            Err(_) => Err(BusError::Unavailable(format!(
                "Redis did not confirm SUBSCRIBE {} within {SUBSCRIBE_TIMEOUT:?}",
                unsubscribe.channel
            ))),
        }
    }

    fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::Acquire)
    }
}

/// What `subscribe()` and dropped subscriptions ask of the worker.
enum Request {
    Subscribe {
        /// The channel name on Redis (namespaced).
        channel: String,
        subscriber: LocalSubscriber,
        /// Answered once Redis has confirmed the subscription (or it failed).
        reply: oneshot::Sender<Result<(), BusError>>,
    },
    Unsubscribe {
        channel: String,
        id: u64,
    },
}

/// The worker's end of one subscription.
struct LocalSubscriber {
    id: u64,
    events: mpsc::Sender<BusEvent>,
    missed: Arc<MissedSignal>,
}

impl LocalSubscriber {
    /// Queues a message without ever waiting on a slow subscriber: when its queue is full, the
    /// message is dropped and the subscriber is told to resynchronise instead.
    fn deliver(&self, payload: &Payload) {
        self.send(BusEvent::Message(Arc::clone(payload)));
    }

    /// Tells the subscriber that its subscription was re-established after a break.
    fn resubscribed(&self) {
        self.send(BusEvent::Resubscribed);
    }

    fn send(&self, event: BusEvent) {
        // Once a message has been missed, nothing more is queued until the subscriber has taken
        // its `Resubscribed`: everything before that re-read is covered by the re-read itself.
        if self.missed.is_set() {
            return;
        }
        match self.events.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.missed.set(),
            // The subscription was dropped; its `Unsubscribe` request is on its way.
            Err(TrySendError::Closed(_)) => {}
        }
    }
}

/// "This subscriber missed messages", shared by the worker and the subscription. It lives beside
/// the queue rather than in it because it must get through exactly when the queue is full.
#[derive(Default)]
struct MissedSignal {
    missed: AtomicBool,
    waker: AtomicWaker,
}

impl MissedSignal {
    fn set(&self) {
        self.missed.store(true, Ordering::Release);
        self.waker.wake();
    }

    fn is_set(&self) -> bool {
        self.missed.load(Ordering::Acquire)
    }

    fn take(&self) -> bool {
        self.missed.swap(false, Ordering::AcqRel)
    }
}

/// The subscriber's end: queued events, then `Resubscribed` if messages were missed after them.
struct RedisSubscription {
    events: mpsc::Receiver<BusEvent>,
    missed: Arc<MissedSignal>,
    _unsubscribe: UnsubscribeOnDrop,
}

impl futures::Stream for RedisSubscription {
    type Item = BusEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<BusEvent>> {
        match self.events.poll_recv(cx) {
            Poll::Pending => {
                // The queued messages predate the gap, so the gap is reported once they are all
                // consumed. Register before checking, so a `set()` in between still wakes us.
                self.missed.waker.register(cx.waker());
                if self.missed.take() {
                    Poll::Ready(Some(BusEvent::Resubscribed))
                } else {
                    Poll::Pending
                }
            }
            // An event, or the end: the worker stopped because the bus was dropped.
            ready => ready,
        }
    }
}

struct UnsubscribeOnDrop {
    requests: mpsc::WeakUnboundedSender<Request>,
    channel: String,
    id: u64,
}

impl Drop for UnsubscribeOnDrop {
    fn drop(&mut self) {
        // No sender left means the bus is gone, and the worker with it: nothing to clean up.
        if let Some(requests) = self.requests.upgrade() {
            let _ = requests.send(Request::Unsubscribe {
                channel: std::mem::take(&mut self.channel),
                id: self.id,
            });
        }
    }
}

/// Why the worker left its connected loop.
enum Stop {
    /// Every `RedisBus` clone was dropped.
    BusDropped,
    /// The pub/sub connection is broken (or unresponsive); the reason is for the log.
    ConnectionLost(String),
}

/// Owns the pub/sub connection and every local subscription.
struct PubSubWorker {
    client: redis::Client,
    requests: mpsc::UnboundedReceiver<Request>,
    /// Local subscribers per Redis channel; a channel is removed with its last subscriber.
    subscribers: HashMap<String, Vec<LocalSubscriber>>,
    /// The channels Redis has confirmed on the current connection.
    on_redis: HashSet<String>,
    connected: Arc<AtomicBool>,
    max_backoff: Duration,
}

impl PubSubWorker {
    async fn run(mut self, mut sink: PubSubSink, mut stream: PubSubStream) {
        loop {
            let reason = match self.serve(sink, stream).await {
                Stop::BusDropped => break,
                Stop::ConnectionLost(reason) => reason,
            };
            self.connected.store(false, Ordering::Release);
            self.on_redis.clear();
            tracing::warn!(%reason, "Redis pub/sub connection lost; reconnecting");

            let Some((new_sink, new_stream)) = self.reconnect().await else {
                break;
            };
            (sink, stream) = (new_sink, new_stream);
            self.connected.store(true, Ordering::Release);
            tracing::info!(
                channels = self.subscribers.len(),
                "Redis pub/sub connection restored; subscribers told to resynchronise"
            );
            for subscriber in self.subscribers.values().flatten() {
                subscriber.resubscribed();
            }
        }
        self.connected.store(false, Ordering::Release);
        tracing::debug!("control bus dropped; pub/sub worker stopped");
    }

    /// Forwards messages and handles requests until the connection breaks or the bus is dropped.
    /// Taking the connection by value means it is closed on return.
    async fn serve(&mut self, mut sink: PubSubSink, mut stream: PubSubStream) -> Stop {
        let mut keepalive =
            tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE_INTERVAL, KEEPALIVE_INTERVAL);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                request = self.requests.recv() => {
                    let Some(request) = request else {
                        return Stop::BusDropped;
                    };
                    if let Err(reason) = self.handle_requests(request, &mut sink).await {
                        return Stop::ConnectionLost(reason);
                    }
                }
                message = stream.next() => match message {
                    Some(message) => self.forward(&message),
                    None => return Stop::ConnectionLost("connection closed".to_owned()),
                },
                _ = keepalive.tick() => {
                    if let Err(reason) = within("PING", sink.ping::<redis::Value>()).await {
                        return Stop::ConnectionLost(reason);
                    }
                }
            }
        }
    }

    fn forward(&self, message: &redis::Msg) {
        // No entry: the last subscriber left and the UNSUBSCRIBE crossed this message.
        let Some(subscribers) = self.subscribers.get(message.get_channel_name()) else {
            return;
        };
        let payload: Payload = Arc::from(message.get_payload_bytes());
        for subscriber in subscribers {
            subscriber.deliver(&payload);
        }
    }

    /// Applies `first` and whatever other requests are already queued, then brings Redis in line
    /// with one UNSUBSCRIBE and one SUBSCRIBE, and answers the subscribers waiting for it.
    async fn handle_requests(&mut self, first: Request, sink: &mut PubSubSink) -> Result<(), String> {
        let mut changed = HashSet::new();
        let mut waiting = Vec::new();
        let mut next = Some(first);
        let mut handled = 0;
        while let Some(request) = next {
            match request {
                Request::Subscribe {
                    channel,
                    subscriber,
                    reply,
                } => {
                    let id = subscriber.id;
                    self.subscribers.entry(channel.clone()).or_default().push(subscriber);
                    if self.on_redis.contains(&channel) {
                        // Already live on Redis: the new subscriber shares it. A failed reply means
                        // the caller gave up; its guard's `Unsubscribe` follows.
                        let _ = reply.send(Ok(()));
                    } else {
                        waiting.push((channel.clone(), id, reply));
                        changed.insert(channel);
                    }
                }
                Request::Unsubscribe { channel, id } => {
                    self.remove_subscriber(&channel, id);
                    changed.insert(channel);
                }
            }
            handled += 1;
            next = if handled < MAX_REQUESTS_PER_ROUND {
                self.requests.try_recv().ok()
            } else {
                None
            };
        }

        let (to_subscribe, to_unsubscribe): (Vec<String>, Vec<String>) = changed
            .into_iter()
            .filter(|channel| self.subscribers.contains_key(channel) != self.on_redis.contains(channel))
            .partition(|channel| self.subscribers.contains_key(channel));
        let outcome = async {
            if !to_unsubscribe.is_empty() {
                within("UNSUBSCRIBE", sink.unsubscribe(&to_unsubscribe)).await?;
            }
            if !to_subscribe.is_empty() {
                within("SUBSCRIBE", sink.subscribe(&to_subscribe)).await?;
            }
            Ok(())
        }
        .await;

        match outcome {
            Ok(()) => {
                for channel in &to_unsubscribe {
                    self.on_redis.remove(channel);
                }
                self.on_redis.extend(to_subscribe);
                for (_, _, reply) in waiting {
                    let _ = reply.send(Ok(()));
                }
                Ok(())
            }
            Err(reason) => {
                // The waiting subscriptions were never live: they fail, and must not be
                // resurrected by the re-subscribe after the reconnect.
                for (channel, id, reply) in waiting {
                    self.remove_subscriber(&channel, id);
                    let _ = reply.send(Err(BusError::Unavailable(format!("Redis SUBSCRIBE failed: {reason}"))));
                }
                Err(reason)
            }
        }
    }

    fn remove_subscriber(&mut self, channel: &str, id: u64) {
        if let Some(subscribers) = self.subscribers.get_mut(channel) {
            subscribers.retain(|subscriber| subscriber.id != id);
            if subscribers.is_empty() {
                self.subscribers.remove(channel);
            }
        }
    }

    /// Reconnects with exponential backoff and re-subscribes every channel that has subscribers.
    /// `None` if the bus was dropped meanwhile.
    async fn reconnect(&mut self) -> Option<(PubSubSink, PubSubStream)> {
        // Jittered: the replicas that lost Redis together do not all come back in the same instant.
        let mut backoff = Backoff::new(INITIAL_RECONNECT_DELAY.min(self.max_backoff), self.max_backoff);
        loop {
            let reason = match self.try_connect().await {
                Ok(connection) => return Some(connection),
                Err(reason) => reason,
            };
            let delay = backoff.fail();
            tracing::debug!(%reason, retry_in = ?delay, "Redis pub/sub reconnect failed");
            if !self.wait_while_disconnected(delay).await {
                return None;
            }
        }
    }

    async fn try_connect(&mut self) -> Result<(PubSubSink, PubSubStream), String> {
        let (mut sink, stream) = within("connect", self.client.get_async_pubsub()).await?.split();
        let channels: Vec<String> = self.subscribers.keys().cloned().collect();
        for chunk in channels.chunks(RESUBSCRIBE_CHUNK) {
            within("SUBSCRIBE", sink.subscribe(chunk)).await?;
        }
        self.on_redis = channels.into_iter().collect();
        Ok((sink, stream))
    }

    /// Sleeps for `delay` while still answering requests: new subscriptions fail at once (the
    /// caller can retry) and dropped ones are removed. False if the bus was dropped.
    async fn wait_while_disconnected(&mut self, delay: Duration) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return true,
                request = self.requests.recv() => match request {
                    None => return false,
                    Some(Request::Subscribe { reply, .. }) => {
                        let down = BusError::Unavailable("Redis pub/sub connection is down; reconnecting".to_owned());
                        let _ = reply.send(Err(down));
                    }
                    Some(Request::Unsubscribe { channel, id }) => self.remove_subscriber(&channel, id),
                },
            }
        }
    }
}

/// Runs one exchange with Redis under [`REDIS_TIMEOUT`]; the error says which one failed and why.
async fn within<T>(what: &str, exchange: impl Future<Output = RedisResult<T>>) -> Result<T, String> {
    match tokio::time::timeout(REDIS_TIMEOUT, exchange).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!("Redis {what} failed: {error}")),
        Err(_) => Err(format!("Redis {what} timed out after {REDIS_TIMEOUT:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscriber_pair(capacity: usize) -> (LocalSubscriber, RedisSubscription) {
        let (sender, events) = mpsc::channel(capacity);
        let missed = Arc::new(MissedSignal::default());
        // A request channel whose receiver is gone: the guard has nobody to tell.
        let (requests, _) = mpsc::unbounded_channel();
        let subscriber = LocalSubscriber {
            id: 1,
            events: sender,
            missed: Arc::clone(&missed),
        };
        let subscription = RedisSubscription {
            events,
            missed,
            _unsubscribe: UnsubscribeOnDrop {
                requests: requests.downgrade(),
                channel: "test:channel".to_owned(),
                id: 1,
            },
        };
        (subscriber, subscription)
    }

    fn payload(text: &str) -> Payload {
        Arc::from(text.as_bytes())
    }

    async fn next_event(subscription: &mut RedisSubscription) -> BusEvent {
        tokio::time::timeout(Duration::from_secs(5), subscription.next())
            .await
            .expect("no event within 5 s")
            .expect("subscription ended")
    }

    #[tokio::test]
    async fn a_full_queue_turns_the_overflow_into_one_resubscribed_after_the_queued_messages() {
        let (subscriber, mut subscription) = subscriber_pair(2);
        for text in ["a", "b", "lost", "also lost"] {
            subscriber.deliver(&payload(text));
        }

        assert_eq!(next_event(&mut subscription).await, BusEvent::Message(payload("a")));
        assert_eq!(next_event(&mut subscription).await, BusEvent::Message(payload("b")));
        assert_eq!(next_event(&mut subscription).await, BusEvent::Resubscribed);

        subscriber.deliver(&payload("c"));
        assert_eq!(next_event(&mut subscription).await, BusEvent::Message(payload("c")));
    }

    /// Records whether it was woken.
    #[derive(Default)]
    struct RecordingWaker(AtomicBool);

    impl futures::task::ArcWake for RecordingWaker {
        fn wake_by_ref(arc_self: &Arc<Self>) {
            arc_self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_subscriber_waiting_on_an_empty_queue_is_woken_by_a_missed_signal() {
        let (subscriber, mut subscription) = subscriber_pair(1);
        let recorder = Arc::new(RecordingWaker::default());
        let waker = futures::task::waker(Arc::clone(&recorder));
        let mut cx = Context::from_waker(&waker);
        assert!(subscription.poll_next_unpin(&mut cx).is_pending(), "nothing queued yet");

        // The worker found the queue full a moment before the subscriber drained it.
        subscriber.missed.set();

        assert!(
            recorder.0.load(Ordering::SeqCst),
            "the waiting subscriber was not woken"
        );
        assert_eq!(
            subscription.poll_next_unpin(&mut cx),
            Poll::Ready(Some(BusEvent::Resubscribed))
        );
        assert!(subscription.poll_next_unpin(&mut cx).is_pending(), "reported once");
    }

    #[tokio::test]
    async fn resubscribed_is_queued_in_order_with_messages() {
        let (subscriber, mut subscription) = subscriber_pair(8);
        subscriber.deliver(&payload("before the break"));
        subscriber.resubscribed();
        subscriber.deliver(&payload("after the break"));

        assert_eq!(
            next_event(&mut subscription).await,
            BusEvent::Message(payload("before the break"))
        );
        assert_eq!(next_event(&mut subscription).await, BusEvent::Resubscribed);
        assert_eq!(
            next_event(&mut subscription).await,
            BusEvent::Message(payload("after the break"))
        );
    }

    #[test]
    fn debug_output_redacts_the_password() {
        let config = RedisBusConfig {
            url: "redis://vigil:s3cret@redis.internal:6379/2".to_owned(),
            ..RedisBusConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("redis://vigil:***@redis.internal:6379/2"), "{shown}");

        let unix = redact_url("redis+unix:///run/redis.sock?db=1&pass=s3cret");
        assert!(!unix.contains("s3cret"), "{unix}");
        assert!(unix.contains("db=1"), "{unix}");

        assert_eq!(redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert!(!redact_url("not a url s3cret").contains("s3cret"));
    }

    #[test]
    fn config_reads_humane_durations_and_defaults_the_rest() {
        use figment::providers::Format;

        let config: RedisBusConfig =
            figment::Figment::from(figment::providers::Toml::string(r#"reconnect_max_backoff = "250ms""#))
                .extract()
                .unwrap();
        assert_eq!(config.reconnect_max_backoff, Duration::from_millis(250));
        assert_eq!(config.url, "redis://127.0.0.1:6379");
        assert_eq!(config.namespace, "vigil");
    }
}
