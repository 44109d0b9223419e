//! A simulator of gateways, for the demo and the benchmarks.
//!
//! Each simulated gateway is a real [`Agent`] with a link of its own to the registry. It keeps
//! `sessions_per_gateway` users connected: opens sessions through admission, reports activity (active users
//! type every couple of seconds and move bytes; idle users stop typing after a while), closes and replaces a
//! fraction of sessions every minute (churn), and honours terminate commands by dropping the session and
//! logging the message the user would see. Users refused admission, and users disconnected by the registry,
//! give up: their places are not refilled. The data is seeded: the same seed gives the same users, devices,
//! addresses and resources.

pub mod data;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use vigil_proto::v1::{EndReason, IdleWarning, Lock, TerminateCommand};

use crate::{Agent, AgentConfig, AgentError, CommandResult, GatewayHandler};
use data::{SessionFactory, SimulatedStart};

/// How many admissions one simulated gateway asks for at once when filling up.
const OPEN_CONCURRENCY: usize = 16;
/// How likely an active user is to type during one activity interval.
const TYPING_PROBABILITY: f64 = 0.9;

/// Gives each simulated gateway its credential, from its gateway id.
pub type CredentialFn = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// What to simulate. Build with [`SimulationConfig::new`] and adjust the public fields.
#[derive(Clone)]
pub struct SimulationConfig {
    /// The registry's gRPC address.
    pub registry_url: String,
    /// How many gateways (each with its own agent and link).
    pub gateways: usize,
    /// How many sessions each gateway keeps open.
    pub sessions_per_gateway: usize,
    /// Fraction of users that stop typing after a while (default 0.2).
    pub idle_fraction: f64,
    /// How often users act and the gateway reports (default 2 s).
    pub activity_interval: Duration,
    /// Fraction of sessions closed by their users and replaced per minute (default 0.05).
    pub churn: f64,
    /// Seed of all generated data.
    pub seed: u64,
    /// The credential of each gateway (default: none).
    pub credential: CredentialFn,
    /// TLS for an `https://` registry URL (default: none, plaintext).
    pub tls: Option<tonic::transport::ClientTlsConfig>,
}

impl SimulationConfig {
    /// A small simulation: 4 gateways of 25 sessions, 20% idle users, 2 s activity, 5% churn, seed 1.
    pub fn new(registry_url: impl Into<String>) -> Self {
        Self {
            registry_url: registry_url.into(),
            gateways: 4,
            sessions_per_gateway: 25,
            idle_fraction: 0.2,
            activity_interval: Duration::from_secs(2),
            churn: 0.05,
            seed: 1,
            credential: Arc::new(|_gateway_id: &str| String::new()),
            tls: None,
        }
    }

    fn validate(&self) -> Result<(), SimulationError> {
        let invalid = |message: &str| Err(SimulationError::InvalidConfig(message.to_owned()));
        if self.registry_url.trim().is_empty() {
            return invalid("registry_url must not be empty");
        }
        if self.gateways == 0 {
            return invalid("gateways must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.idle_fraction) {
            return invalid("idle_fraction must be between 0 and 1");
        }
        if !(self.churn.is_finite() && self.churn >= 0.0) {
            return invalid("churn must be a non-negative number");
        }
        if self.activity_interval.is_zero() {
            return invalid("activity_interval must be positive");
        }
        Ok(())
    }
}

impl fmt::Debug for SimulationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimulationConfig")
            .field("registry_url", &self.registry_url)
            .field("gateways", &self.gateways)
            .field("sessions_per_gateway", &self.sessions_per_gateway)
            .field("idle_fraction", &self.idle_fraction)
            .field("activity_interval", &self.activity_interval)
            .field("churn", &self.churn)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

/// Why a simulation could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimulationError {
    /// A setting is out of range.
    #[error("invalid simulation config: {0}")]
    InvalidConfig(String),
}

/// Counts of what happened so far, over all simulated gateways.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimulationStats {
    /// Sessions admitted.
    pub opened: u64,
    /// Admissions refused by the registry.
    pub denied: u64,
    /// Admissions that failed (link down, timeout); retried on the next interval.
    pub failed: u64,
    /// Sessions closed by their users (churn).
    pub closed: u64,
    /// Sessions ended by terminate commands.
    pub terminated: u64,
}

#[derive(Debug, Default)]
struct Counters {
    opened: AtomicU64,
    denied: AtomicU64,
    failed: AtomicU64,
    closed: AtomicU64,
    terminated: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn stats(&self) -> SimulationStats {
        SimulationStats {
            opened: self.opened.load(Ordering::Relaxed),
            denied: self.denied.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            closed: self.closed.load(Ordering::Relaxed),
            terminated: self.terminated.load(Ordering::Relaxed),
        }
    }
}

/// A running simulation. Dropping it does not stop the gateways; cancelling the token given to [`run`] does.
pub struct SimulationHandle {
    agents: Vec<Agent>,
    counters: Arc<Counters>,
    tasks: Vec<JoinHandle<()>>,
}

impl fmt::Debug for SimulationHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimulationHandle")
            .field("gateways", &self.agents.len())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl SimulationHandle {
    /// The simulated gateways' agents, in gateway order (`gw-fra-01` first).
    pub fn agents(&self) -> &[Agent] {
        &self.agents
    }

    /// How many sessions the simulated gateways hold, as their agents report them to the registry.
    pub fn held_sessions(&self) -> usize {
        self.agents.iter().map(Agent::session_count).sum()
    }

    /// How many gateways have their link up.
    pub fn connected_gateways(&self) -> usize {
        self.agents.iter().filter(|agent| agent.is_connected()).count()
    }

    /// Counts of what happened so far.
    pub fn stats(&self) -> SimulationStats {
        self.counters.stats()
    }

    /// Waits until every gateway's link is up (see [`Agent::wait_connected`]), within `timeout` overall.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), AgentError> {
        let deadline = Instant::now() + timeout;
        for agent in &self.agents {
            agent
                .wait_connected(deadline.saturating_duration_since(Instant::now()))
                .await?;
        }
        Ok(())
    }

    /// Waits until every simulated gateway has stopped, which they do once the token given to [`run`] is
    /// cancelled (each closes its link cleanly; its sessions stay open at the registry, as when a real
    /// gateway goes away).
    pub async fn wait(self) {
        for task in self.tasks {
            if let Err(error) = task.await {
                tracing::warn!(%error, "a simulated gateway failed");
            }
        }
    }
}

/// Starts the simulation: one agent and one task per gateway. Returns at once; the gateways connect,
/// fill up and run until `shutdown` is cancelled.
#[allow(
    clippy::unused_async,
    reason = "public API: callers await it; starting may come to wait for the first links"
)]
pub async fn run(config: SimulationConfig, shutdown: CancellationToken) -> Result<SimulationHandle, SimulationError> {
    config.validate()?;
    let counters = Arc::new(Counters::default());
    let population = config.gateways.saturating_mul(config.sessions_per_gateway).max(1);
    let mut agents = Vec::with_capacity(config.gateways);
    let mut tasks = Vec::with_capacity(config.gateways);
    for index in 0..config.gateways {
        let gateway_id = data::gateway_id(index);
        let sessions = Arc::new(Mutex::new(BTreeMap::new()));
        let target = Arc::new(AtomicUsize::new(config.sessions_per_gateway));
        let handler = Arc::new(SimHandler {
            gateway_id: gateway_id.clone(),
            sessions: Arc::clone(&sessions),
            target: Arc::clone(&target),
            counters: Arc::clone(&counters),
        });
        let credential = (config.credential)(&gateway_id);
        let agent_config = AgentConfig {
            tls: config.tls.clone(),
            ..AgentConfig::new(config.registry_url.clone(), gateway_id).with_credential(credential)
        };
        let agent = Agent::start(agent_config, handler);
        let gateway = SimGateway {
            agent: agent.clone(),
            sessions,
            target,
            counters: Arc::clone(&counters),
            factory: SessionFactory::new(config.seed, index, population, config.idle_fraction),
            rng: StdRng::seed_from_u64(data::mix(config.seed, index as u64)),
            interval: config.activity_interval,
            // Per-interval close probability from the per-minute churn; capped, 1 would close everyone.
            close_probability: (config.churn * config.activity_interval.as_secs_f64() / 60.0).min(1.0),
        };
        agents.push(agent);
        tasks.push(tokio::spawn(gateway.run(shutdown.clone())));
    }
    tracing::info!(
        gateways = config.gateways,
        sessions_per_gateway = config.sessions_per_gateway,
        seed = config.seed,
        "simulation started"
    );
    Ok(SimulationHandle {
        agents,
        counters,
        tasks,
    })
}

/// A simulated user's session at the gateway.
#[derive(Debug)]
struct SimSession {
    user: String,
    opened: Instant,
    idle: bool,
    stops_typing_after: Duration,
    rng: StdRng,
    bytes_in: u64,
    bytes_out: u64,
}

impl SimSession {
    fn new(simulated: &SimulatedStart) -> Self {
        Self {
            user: simulated.start.user.clone(),
            opened: Instant::now(),
            idle: simulated.idle,
            stops_typing_after: simulated.stops_typing_after,
            rng: StdRng::seed_from_u64(simulated.behaviour_seed),
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    fn typing(&self, now: Instant) -> bool {
        !self.idle || now.duration_since(self.opened) < self.stops_typing_after
    }
}

/// The sessions of one simulated gateway, by session id.
type SessionMap = Arc<Mutex<BTreeMap<String, SimSession>>>;

fn lock(sessions: &SessionMap) -> MutexGuard<'_, BTreeMap<String, SimSession>> {
    sessions.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Lowers a gateway's target by one (a user who will not come back).
fn give_up(target: &AtomicUsize) {
    // The closure never returns None, so this cannot fail.
    let _ = target.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| Some(t.saturating_sub(1)));
}

/// The gateway side of a simulated gateway: ends sessions on command.
struct SimHandler {
    gateway_id: String,
    sessions: SessionMap,
    target: Arc<AtomicUsize>,
    counters: Arc<Counters>,
}

#[async_trait]
impl GatewayHandler for SimHandler {
    async fn terminate(&self, command: &TerminateCommand) -> CommandResult {
        let Some(session) = lock(&self.sessions).remove(&command.session_id) else {
            return CommandResult::NotFound;
        };
        give_up(&self.target);
        Counters::bump(&self.counters.terminated);
        tracing::info!(
            gateway_id = self.gateway_id,
            session_id = command.session_id,
            user = session.user,
            message = command.user_message,
            "disconnected a user"
        );
        CommandResult::Done
    }

    async fn idle_warning(&self, warning: &IdleWarning) {
        tracing::debug!(
            gateway_id = self.gateway_id,
            session_id = warning.session_id,
            message = warning.user_message,
            "warned an idle user"
        );
    }

    async fn locks_changed(&self, locks: &[Lock]) {
        tracing::info!(gateway_id = self.gateway_id, locks = locks.len(), "locks changed");
    }
}

/// One simulated gateway's loop.
struct SimGateway {
    agent: Agent,
    sessions: SessionMap,
    /// How many sessions the gateway keeps open; users who were refused or terminated lower it.
    target: Arc<AtomicUsize>,
    counters: Arc<Counters>,
    factory: SessionFactory,
    rng: StdRng,
    interval: Duration,
    close_probability: f64,
}

impl SimGateway {
    async fn run(mut self, shutdown: CancellationToken) {
        // Spread the gateways over the interval, so thousands of them do not all report in the same instant.
        let phase = self.interval.mul_f64(self.rng.random::<f64>());
        let mut tick = tokio::time::interval_at(Instant::now() + phase, self.interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            if !self.agent.is_connected() {
                continue;
            }
            self.churn().await;
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.fill() => {}
            }
            self.report_activity();
        }
        self.agent.shutdown().await;
    }

    /// Some users log out; their places are refilled by `fill`.
    async fn churn(&mut self) {
        let leaving: Vec<String> = {
            let sessions = lock(&self.sessions);
            let rng = &mut self.rng;
            let p = self.close_probability;
            sessions.keys().filter(|_| rng.random_bool(p)).cloned().collect()
        };
        for session_id in leaving {
            lock(&self.sessions).remove(&session_id);
            self.agent
                .close_session(&session_id, EndReason::UserClosed, "user logged out")
                .await;
            Counters::bump(&self.counters.closed);
        }
    }

    /// Opens sessions until the gateway holds its target.
    async fn fill(&mut self) {
        let missing = self
            .target
            .load(Ordering::Relaxed)
            .saturating_sub(lock(&self.sessions).len());
        if missing == 0 {
            return;
        }
        let now = SystemTime::now();
        let starts: Vec<SimulatedStart> = (0..missing).map(|_| self.factory.next_start(now)).collect();
        let (agent, sessions, target, counters) = (&self.agent, &self.sessions, &self.target, &self.counters);
        futures::stream::iter(starts)
            .map(|simulated| async move {
                match agent.open_session(simulated.start.clone()).await {
                    Ok(admission) if admission.allowed => {
                        lock(sessions).insert(admission.session_id, SimSession::new(&simulated));
                        Counters::bump(&counters.opened);
                    }
                    Ok(admission) => {
                        tracing::info!(
                            user = simulated.start.user,
                            reason = admission.reason,
                            "admission refused"
                        );
                        give_up(target);
                        Counters::bump(&counters.denied);
                    }
                    Err(error) => {
                        tracing::debug!(%error, "admission failed; retrying on the next interval");
                        Counters::bump(&counters.failed);
                    }
                }
            })
            .buffer_unordered(OPEN_CONCURRENCY)
            .collect::<()>()
            .await;
    }

    /// Active users typed and moved bytes since the last interval; idle ones went quiet.
    fn report_activity(&self) {
        let now = Instant::now();
        let wall_now = SystemTime::now();
        let interval_ms = u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut sessions = lock(&self.sessions);
        for (session_id, session) in sessions.iter_mut() {
            if !session.typing(now) || !session.rng.random_bool(TYPING_PROBABILITY) {
                continue;
            }
            session.bytes_in += session.rng.random_range(20..400);
            session.bytes_out += session.rng.random_range(200..20_000);
            let input_at = wall_now - Duration::from_millis(session.rng.random_range(0..interval_ms));
            self.agent
                .record_activity(session_id, Some(input_at), session.bytes_in, session.bytes_out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_is_valid_and_bad_ones_are_refused() {
        assert!(SimulationConfig::new("http://127.0.0.1:1").validate().is_ok());
        let bad = [
            SimulationConfig {
                gateways: 0,
                ..SimulationConfig::new("http://x")
            },
            SimulationConfig {
                idle_fraction: 1.5,
                ..SimulationConfig::new("http://x")
            },
            SimulationConfig {
                churn: f64::NAN,
                ..SimulationConfig::new("http://x")
            },
            SimulationConfig {
                activity_interval: Duration::ZERO,
                ..SimulationConfig::new("http://x")
            },
            SimulationConfig::new(" "),
        ];
        for config in bad {
            assert!(
                matches!(config.validate(), Err(SimulationError::InvalidConfig(_))),
                "{config:?}"
            );
        }
    }

    #[test]
    fn idle_users_stop_typing_and_active_ones_do_not() {
        let mut factory = SessionFactory::new(5, 0, 100, 0.5);
        let simulated = factory.next_start(SystemTime::UNIX_EPOCH);
        let mut session = SimSession::new(&simulated);
        let later = session.opened + session.stops_typing_after + Duration::from_secs(1);
        session.idle = true;
        assert!(session.typing(session.opened));
        assert!(!session.typing(later));
        session.idle = false;
        assert!(session.typing(later));
    }

    #[test]
    fn give_up_never_goes_below_zero() {
        let target = AtomicUsize::new(1);
        give_up(&target);
        give_up(&target);
        assert_eq!(target.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_simulation_without_a_registry_holds_nothing_and_stops_on_cancel() {
        // A port that was just free: connections are refused, the gateways stay disconnected.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = SimulationConfig {
            gateways: 3,
            ..SimulationConfig::new(format!("http://127.0.0.1:{port}"))
        };
        let shutdown = CancellationToken::new();
        let handle = run(config, shutdown.clone()).await.unwrap();
        let ids: Vec<&str> = handle.agents().iter().map(Agent::gateway_id).collect();
        assert_eq!(ids, ["gw-fra-01", "gw-nyc-02", "gw-lon-03"]);
        assert_eq!(handle.held_sessions(), 0);
        assert!(matches!(
            handle.wait_connected(Duration::from_millis(100)).await,
            Err(AgentError::Timeout)
        ));
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), handle.wait())
            .await
            .unwrap();
    }
}
