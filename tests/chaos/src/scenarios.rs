//! The faults. Each repetition starts a fresh fleet of gateways (ids of its own), ends every session
//! in the way the scenario says while the fault strikes, heals it, then times convergence and checks
//! every invariant.

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use rand::Rng;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use vigil_proto::v1::policy_service_client::PolicyServiceClient;
use vigil_proto::v1::termination_service_client::TerminationServiceClient;
use vigil_proto::v1::{
    AllSessions, CreatePolicyRequest, EndReason, PolicyRules, PolicyScope, SessionSelector, TerminateRequest,
    policy_scope, session_selector,
};

use crate::check::Observer;
use crate::cluster::Cluster;
use crate::gateways::Fleet;

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// A registry replica SIGKILLed in the middle of an end-all; its gateways fail over to the other.
    ReplicaKilled,
    /// A registry replica frozen by SIGSTOP in the middle of an end-all, thawed by SIGCONT 3 s later:
    /// its links, its bus subscriptions and the calls it was serving all stall, nothing breaks.
    ReplicaFrozen,
    /// Redis SIGKILLed as an end-all starts, restarted 3 s later.
    RedisDown,
    /// PostgreSQL (the postmaster and its backends) SIGKILLed right after an end-all, restarted 5 s later.
    PostgresCrash,
    /// Termination SIGKILLed right after `Terminate` answered, restarted at once.
    TerminationKilled,
    /// One gateway cut off (its connections dropped) before an end-all, back 3 s later.
    GatewayOffline,
    /// The policy replica leading the sweeper SIGKILLed while it ends sessions past their maximum duration.
    PolicyLeaderKilled,
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::ReplicaKilled,
        Scenario::ReplicaFrozen,
        Scenario::RedisDown,
        Scenario::PostgresCrash,
        Scenario::TerminationKilled,
        Scenario::GatewayOffline,
        Scenario::PolicyLeaderKilled,
    ];

    /// Its name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::ReplicaKilled => "registry replica killed mid end-all",
            Scenario::ReplicaFrozen => "registry replica frozen 3 s mid end-all",
            Scenario::RedisDown => "Redis down 3 s",
            Scenario::PostgresCrash => "PostgreSQL crashed 5 s",
            Scenario::TerminationKilled => "termination killed after Terminate",
            Scenario::GatewayOffline => "gateway offline at kill time, back after 3 s",
            Scenario::PolicyLeaderKilled => "policy leader killed mid-sweep",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Scenario::ReplicaKilled => "replica",
            Scenario::ReplicaFrozen => "frozen",
            Scenario::RedisDown => "redis",
            Scenario::PostgresCrash => "postgres",
            Scenario::TerminationKilled => "termination",
            Scenario::GatewayOffline => "offline",
            Scenario::PolicyLeaderKilled => "sweep",
        }
    }
}

/// The size of each repetition's fleet, and the health bound.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub gateways: usize,
    pub sessions: usize,
    /// Database gone → every service answers NOT_SERVING within this.
    pub health_bound: Duration,
}

/// What one repetition measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Fault healed → everything converged (`None`: never, within the give-up time).
    pub convergence: Option<Duration>,
    /// Database crashed → the slowest service answering NOT_SERVING (PostgreSQL only).
    pub health: Option<Duration>,
    /// Database restarted → accepting connections again, its crash recovery done (PostgreSQL
    /// only). The convergence counts from the end of it: the services can do nothing before.
    pub recovery: Option<Duration>,
    /// Fault healed → each part converged: the gateways, the registry, termination.
    pub parts: [Duration; 3],
    /// Invariants that broke.
    pub broken: Vec<String>,
}

/// Runs one repetition of `scenario`.
pub async fn run(scenario: Scenario, cluster: &mut Cluster, rep: usize, load: Load) -> anyhow::Result<Outcome> {
    cluster.restore().await?;
    let tag: u32 = rand::rng().random_range(0..0xffff);
    let prefix = format!("chaos-{}-{rep}-{tag:04x}", scenario.short());
    let group = format!("{prefix}-group");
    let fleet = Fleet::start(&prefix, load.gateways, load.sessions, &cluster.registry_addrs(), &group).await?;
    let since = SystemTime::now();
    let mut outcome = Outcome::default();
    let healed = match scenario {
        Scenario::ReplicaKilled => replica_killed(cluster).await?,
        Scenario::ReplicaFrozen => replica_frozen(cluster).await?,
        Scenario::RedisDown => redis_down(cluster).await?,
        Scenario::PostgresCrash => {
            let (healed, health, recovery, broken) = postgres_crash(cluster, load.health_bound).await?;
            outcome.health = health;
            outcome.recovery = Some(recovery);
            outcome.broken.extend(broken);
            healed
        }
        Scenario::TerminationKilled => termination_killed(cluster).await?,
        Scenario::GatewayOffline => gateway_offline(cluster, &fleet).await?,
        Scenario::PolicyLeaderKilled => policy_leader_killed(cluster, &fleet, &group).await?,
    };
    let observer = Observer::new(cluster);
    match observer.wait_converged(&fleet, since).await {
        Some((parts, at)) => {
            outcome.convergence = Some(at.saturating_duration_since(healed));
            outcome.parts = parts.map(|part| part.saturating_duration_since(healed));
        }
        None => outcome
            .broken
            .push(format!("not converged within {:?}", crate::check::GIVE_UP)),
    }
    outcome
        .broken
        .extend(observer.verify(cluster, &fleet, since, &prefix).await);
    fleet.shutdown().await;
    Ok(outcome)
}

/// `Terminate(All)`, as an operator would: retried while termination cannot be reached.
async fn end_all(channel: Channel) -> anyhow::Result<String> {
    let mut client = TerminationServiceClient::new(channel);
    let request = TerminateRequest {
        selector: Some(SessionSelector {
            target: Some(session_selector::Target::All(AllSessions { idle_only: false })),
        }),
        reason: EndReason::Admin as i32,
        user_message: "Ended by the fault suite".into(),
        note: "vigil-chaos".into(),
        expected_count: None,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.terminate(request.clone()).await {
            Ok(termination) => return Ok(termination.into_inner().id),
            // The call itself may die with the replica that resolves it (nothing is recorded then).
            Err(status) if Instant::now() < deadline && retryable(status.code()) => {
                eprintln!(
                    "    Terminate(All) failed ({}: {}); retrying",
                    status.code(),
                    status.message()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(status) => bail!("Terminate(All) failed: {status}"),
        }
    }
}

fn retryable(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal | tonic::Code::DeadlineExceeded
    )
}

async fn replica_killed(cluster: &mut Cluster) -> anyhow::Result<Instant> {
    let call = tokio::spawn(end_all(cluster.termination_channel()));
    let delay = rand::rng().random_range(0..60);
    tokio::time::sleep(Duration::from_millis(delay)).await;
    cluster.registries[0].proc.kill();
    let healed = Instant::now();
    call.await??;
    Ok(healed)
}

/// SIGSTOP to the replica's process group a moment into the end-all, SIGCONT 3 s later: the
/// fault heals when it runs again.
async fn replica_frozen(cluster: &mut Cluster) -> anyhow::Result<Instant> {
    let call = tokio::spawn(end_all(cluster.termination_channel()));
    let delay = rand::rng().random_range(0..60);
    tokio::time::sleep(Duration::from_millis(delay)).await;
    cluster.registries[0].proc.freeze(true);
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.registries[0].proc.freeze(false);
    let healed = Instant::now();
    call.await??;
    Ok(healed)
}

async fn redis_down(cluster: &mut Cluster) -> anyhow::Result<Instant> {
    let call = tokio::spawn(end_all(cluster.termination_channel()));
    tokio::time::sleep(Duration::from_millis(20)).await;
    cluster.redis.proc.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.redis.proc.restart()?;
    let healed = Instant::now();
    cluster.redis.wait_ready().await?;
    call.await??;
    Ok(healed)
}

/// Returns when it healed (PostgreSQL accepting connections again), the slowest NOT_SERVING, how
/// long PostgreSQL's restart took until it accepted connections, and health that broke its bound.
async fn postgres_crash(
    cluster: &mut Cluster,
    health_bound: Duration,
) -> anyhow::Result<(Instant, Option<Duration>, Duration, Vec<String>)> {
    end_all(cluster.termination_channel()).await?;
    cluster.postgres.proc.kill();
    let crashed = Instant::now();
    let mut noticed: Vec<Option<Duration>> = vec![None; cluster.services().len()];
    while crashed.elapsed() < Duration::from_secs(5) {
        for (index, service) in cluster.services().iter().enumerate() {
            if noticed[index].is_none() && service.health().await == Some(ServingStatus::NotServing) {
                noticed[index] = Some(crashed.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.postgres.proc.restart()?;
    let restarted = Instant::now();
    cluster.postgres.wait_ready().await?;
    // Healed when the database answers again, as termination's fault heals when it serves again:
    // PostgreSQL's crash recovery (replaying the WAL since its last checkpoint: 0.2 s to 1.7 s
    // here) is its own work, reported beside the convergence, not Vigil's.
    let healed = Instant::now();
    let recovery = healed.duration_since(restarted);
    let mut broken = Vec::new();
    for (index, service) in cluster.services().iter().enumerate() {
        match noticed[index] {
            Some(after) if after <= health_bound => {}
            Some(after) => broken.push(format!("{} NOT_SERVING only after {after:?}", service.proc.spec.name)),
            None => broken.push(format!(
                "{} never NOT_SERVING during the outage",
                service.proc.spec.name
            )),
        }
    }
    let slowest = noticed.iter().flatten().max().copied();
    Ok((healed, slowest, recovery, broken))
}

async fn termination_killed(cluster: &mut Cluster) -> anyhow::Result<Instant> {
    end_all(cluster.termination_channel()).await?;
    cluster.termination.proc.kill();
    cluster.termination.proc.restart()?;
    cluster.termination.wait_serving(Duration::from_secs(30)).await?;
    Ok(Instant::now())
}

async fn gateway_offline(cluster: &mut Cluster, fleet: &Fleet) -> anyhow::Result<Instant> {
    let gateway = fleet.gateways.first().context("no gateway")?;
    gateway.link.set_online(false);
    tokio::time::sleep(Duration::from_millis(300)).await;
    end_all(cluster.termination_channel()).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    gateway.link.set_online(true);
    Ok(Instant::now())
}

/// A maximum duration of 1 s for the fleet's group makes the sweeper end every session; the leader
/// is killed once the first has ended.
async fn policy_leader_killed(cluster: &mut Cluster, fleet: &Fleet, group: &str) -> anyhow::Result<Instant> {
    let mut policy = PolicyServiceClient::new(cluster.policy_channel(0));
    policy
        .create_policy(CreatePolicyRequest {
            scope: Some(PolicyScope {
                scope: Some(policy_scope::Scope::Group(group.to_owned())),
            }),
            rules: Some(PolicyRules {
                max_session_duration: Some(prost_types::Duration { seconds: 1, nanos: 0 }),
                ..Default::default()
            }),
            description: "vigil-chaos: end the fleet by maximum duration".into(),
        })
        .await
        .context("creating the sweep policy")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while fleet.ended_count() == 0 {
        if Instant::now() > deadline {
            bail!("the sweeper ended nothing within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let holder = cluster
        .postgres
        .query("SELECT holder FROM policy_leases WHERE name = 'sweeper'")?
        .into_iter()
        .next()
        .context("no sweeper lease")?;
    let leader = usize::from(!holder.starts_with("policy-a/"));
    cluster.policies[leader].proc.kill();
    Ok(Instant::now())
}
