//! `vigil-bench` (`make bench`): Vigil's figures, measured end to end against real PostgreSQL and
//! Redis, and printed as one table of value, target and whether it is met. It is a benchmark, not
//! a test: it asserts no timings, and fails only when something does not work (set-up fails, a
//! command never arrives).
//!
//! One run:
//! 1. Yardsticks: Redis PUBLISH → message, through the plain `redis` crate and through the
//!    services' `RedisBus`.
//! 2. For each `--agents` count, a fresh world (schema, Redis namespace, registry + termination +
//!    geo + policy on a loopback gRPC port) and a fleet of agents holding `--sessions` sessions
//!    between them, registered from their hellos:
//!    - kill latency: `Terminate` of one session over gRPC → the command read by its agent;
//!    - re-population of the killed sessions through admission;
//!    - admission under load: opens in flight at once → decisions at the agents;
//!    - list: pages of 50, filtered and sorted, over gRPC;
//!    - watch fan-out: 100 watchers on two replicas (the second in a child process);
//!    - activity ingestion: every session reported every 0.8 s (more than the target), sustained;
//!    - end-all: `Terminate(All)` → every agent holds all its commands;
//!    - memory: the child replica's resident set as agents and sessions are added.
//! 3. Geo lookups on one thread, and the table.

mod args;
mod costs;
mod fleet;
mod logs;
mod maintenance;
mod measure;
mod phases;
mod replica;
mod report;
mod stats;
mod webhook;
mod world;
mod yardstick;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use clap::Parser;
use tokio::runtime::Handle;
use tonic::transport::Channel;
use tracing_subscriber::filter::{LevelFilter, filter_fn};
use tracing_subscriber::prelude::*;
use vigil_proto::v1 as pb;
use vigil_proto::v1::termination_service_client::TerminationServiceClient;

use crate::args::{Args, Progress};
use crate::fleet::Fleet;
use crate::maintenance::Maintenance;
use crate::measure::Measurement;
use crate::report::{EndAll, Kills, Repopulation, Report, Scale, Yardsticks};
use crate::world::{World, WorldConfig};

/// mimalloc, not glibc's malloc: a fifth less CPU per admission, list page and kill (README,
/// Benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long one kill command may take to reach its agent before the run fails.
const KILL_PATIENCE: Duration = Duration::from_secs(30);
/// How long an end-all may take to reach every agent before the run fails.
const END_ALL_PATIENCE: Duration = Duration::from_secs(180);
/// How long the registry may take to apply acknowledgements (sessions ended) before the figure is
/// reported as unfinished.
const ACK_PATIENCE: Duration = Duration::from_secs(90);
/// How long the registry may take to record every agent's departure before the schema is dropped.
const LINKS_PATIENCE: Duration = Duration::from_secs(30);
/// Worker threads of the services' runtime (the all-in-one's default on this 2-core machine).
const SERVICE_WORKERS: usize = 2;

#[tokio::main]
async fn main() -> ExitCode {
    // The bench starts itself as a second registry replica (see `replica`).
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(replica::REPLICA_COMMAND) {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
            )
            .init();
        return match replica::serve(&argv[2..]).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("vigil-bench replica: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    install_tracing();
    let args = Args::parse();
    // The services run on a runtime of their own, so their CPU time is theirs alone (see `costs`).
    let services = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(SERVICE_WORKERS)
        .thread_name(costs::SERVICE_THREAD)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("vigil-bench: cannot start the services' runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = run(&args, services.handle()).await;
    services.shutdown_background();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("vigil-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The services log at info per gateway link and warn by the thousand under load: errors are
/// printed, warnings counted for the table (RUST_LOG=warn prints them too), statements counted
/// per phase.
fn install_tracing() {
    let printed = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(printed),
        )
        .with(logs::WarningCounter.with_filter(LevelFilter::WARN))
        .with(costs::StatementCounter.with_filter(filter_fn(costs::StatementCounter::wants)))
        .init();
}

fn validate(args: &Args) -> anyhow::Result<()> {
    ensure!(!args.agents.is_empty(), "--agents needs at least one count");
    for &agents in &args.agents {
        ensure!(
            agents >= 1 && agents <= args.sessions,
            "--agents {agents}: every agent must hold at least one of the {} sessions",
            args.sessions
        );
    }
    ensure!(args.publish_samples >= 1, "--publish-samples must be at least 1");
    ensure!(args.connections >= 1, "--connections must be at least 1");
    ensure!(
        args.kill_samples == 0 || args.kill_samples + yardstick::WARM_UP <= args.sessions,
        "--kill-samples {} (+{} warm-up kills) needs at least as many --sessions",
        args.kill_samples,
        yardstick::WARM_UP
    );
    Ok(())
}

async fn run(args: &Args, services: &Handle) -> anyhow::Result<()> {
    validate(args)?;
    let started = Instant::now();
    let load_at_start = report::load_average();
    let progress = Progress(started);
    let yardsticks = yardsticks(args, &progress).await?;

    let mut scales = Vec::with_capacity(args.agents.len());
    let mut failure = None;
    for &agents in &args.agents {
        match run_scale(args, agents, &progress, services).await {
            Ok(scale) => scales.push(scale),
            Err(error) => {
                failure = Some(error.context(format!("at {agents} agents")));
                break;
            }
        }
    }

    progress.say("geo: Locate on one thread");
    let geo_lookups = match phases::geo_lookups().await {
        Ok(rate) => Some(rate),
        Err(error) => {
            failure.get_or_insert(error.context("geo lookups"));
            None
        }
    };

    // What was measured is printed even when a later step failed.
    let report = Report {
        database: vigil_runtime::database::DatabaseConfig {
            url: args.database_url.clone(),
            ..Default::default()
        }
        .to_string(),
        redis: report::redact(&args.redis_url),
        sessions: args.sessions,
        kill_samples: args.kill_samples,
        kill_pace: args.kill_pace(),
        connections: args.connections,
        db_connections: args
            .db_connections
            .unwrap_or(vigil_runtime::database::DatabaseConfig::default().max_connections),
        heartbeats: args.heartbeats,
        load_at_start,
        yardsticks,
        scales,
        geo_lookups,
        elapsed: started.elapsed(),
    };
    report.print();
    failure.map_or(Ok(()), Err)
}

async fn yardsticks(args: &Args, progress: &Progress) -> anyhow::Result<Yardsticks> {
    progress.say(&format!(
        "yardstick: Redis PUBLISH → message, {} samples, raw and through RedisBus",
        args.publish_samples
    ));
    let namespace = format!("vigil-bench-{}", uuid::Uuid::new_v4().simple());
    let raw = yardstick::raw_publish(&args.redis_url, &format!("{namespace}:yardstick"), args.publish_samples)
        .await
        .context("raw Redis yardstick")?;
    let bus = yardstick::bus_publish(&args.redis_url, &namespace, args.publish_samples)
        .await
        .context("RedisBus yardstick")?;
    Ok(Yardsticks { raw, bus })
}

/// Starts the services on their own runtime, and the autovacuum stand-in when the server needs it.
async fn start_world(
    args: &Args,
    services: &Handle,
    events_webhook: Option<String>,
) -> anyhow::Result<(World, Option<Maintenance>)> {
    let config = WorldConfig {
        database_url: args.database_url.clone(),
        redis_url: args.redis_url.clone(),
        db_connections: args.db_connections,
        events_webhook,
    };
    let world = services
        .spawn(async move { World::start(&config).await })
        .await
        .context("the services' start-up task")?
        .context("start the services")?;
    match Maintenance::start(&args.database_url, &world.schema).await {
        Ok(maintenance) => Ok((world, maintenance)),
        Err(error) => {
            let _ = world.stop().await;
            Err(error)
        }
    }
}

/// One world at one agent count: set up, measure, tear down (also on failure or Ctrl-C).
async fn run_scale(args: &Args, agents: usize, progress: &Progress, services: &Handle) -> anyhow::Result<Scale> {
    progress.say(&format!(
        "{agents} agents: starting registry + termination on a fresh schema"
    ));
    let started = Instant::now();
    let receiver = match args.events_webhook {
        true => Some(webhook::Receiver::start().await?),
        false => None,
    };
    let (world, maintenance) = start_world(args, services, receiver.as_ref().map(|r| r.url.clone())).await?;
    let world_start = started.elapsed();
    let (phases_began, events_before) = (Instant::now(), receiver.as_ref().map_or(0, webhook::Receiver::count));
    let warnings_before = logs::snapshot();

    let outcome = match costs::Meter::connect(&args.redis_url).await {
        Ok(meter) => {
            let measurement = Measurement {
                args,
                agents,
                world: &world,
                maintenance: maintenance.as_ref(),
                progress,
                meter,
                costs: Vec::new(),
            };
            tokio::select! {
                outcome = measurement.run() => outcome,
                interrupted = tokio::signal::ctrl_c() => match interrupted {
                    Ok(()) => Err(anyhow!("interrupted")),
                    Err(error) => Err(anyhow!("cannot listen for Ctrl-C: {error}")),
                },
            }
        }
        Err(error) => Err(error),
    };
    let events = match &receiver {
        Some(receiver) => {
            progress.say(&format!("{agents} agents: waiting for the event relays to drain"));
            Some(receiver.drain(phases_began, events_before, END_ALL_PATIENCE).await)
        }
        None => None,
    };
    progress.say(&format!("{agents} agents: tearing down"));
    let teardown_started = Instant::now();
    // The agents are gone; their links close in the registry, which records each disconnect.
    let closed = world.wait_links_closed(LINKS_PATIENCE).await;
    let autovacuum_stand_in = maintenance.is_some();
    if let Some(maintenance) = maintenance {
        maintenance.stop().await;
    }
    let stopped = world.stop().await;
    let (mut scale, agents_left) = outcome?;
    closed.context("wait for the links to close")?;
    stopped.context("stop the services")?;
    scale.world_start = world_start;
    scale.events = events;
    scale.autovacuum_stand_in = autovacuum_stand_in;
    scale.teardown = agents_left + teardown_started.elapsed();
    scale.elapsed = started.elapsed();
    scale.warnings = logs::since(&warnings_before);
    Ok(scale)
}

/// `Terminate` of one session at a time, each `pace` after the previous one's command arrived.
pub(crate) async fn kill_latency(
    fleet: &mut Fleet,
    client: &mut TerminationServiceClient<Channel>,
    samples: usize,
    pace: Duration,
) -> anyhow::Result<Kills> {
    let mut kills = Kills::default();
    for sample in 0..yardstick::WARM_UP + samples {
        let (index, session_id) = fleet
            .pick_session(sample)
            .context("no live sessions left to kill; use fewer --kill-samples")?;
        let receipt = fleet.watch_kill(&session_id);
        let request = pb::TerminateRequest {
            selector: Some(pb::SessionSelector {
                target: Some(pb::session_selector::Target::SessionIds(pb::SessionIds {
                    ids: vec![session_id.clone()],
                })),
            }),
            reason: pb::EndReason::Admin as i32,
            note: "vigil-bench: kill latency".into(),
            ..pb::TerminateRequest::default()
        };
        let sent = Instant::now();
        let termination = client
            .terminate(request)
            .await
            .context("Terminate(one session)")?
            .into_inner();
        let returned = sent.elapsed();
        ensure!(
            termination.session_count == 1 && termination.already_ended == 0,
            "Terminate of live session {session_id} covered {} session(s), {} already ended",
            termination.session_count,
            termination.already_ended
        );
        let arrived = match tokio::time::timeout(KILL_PATIENCE, receipt).await {
            Ok(Ok(at)) => at,
            Ok(Err(_)) => bail!("the agent holding {session_id} went away"),
            Err(_) => {
                fleet.check()?;
                bail!("the command for session {session_id} did not reach its agent within {KILL_PATIENCE:?}")
            }
        };
        fleet.forget(index, &session_id);
        kills.killed.push(index);
        if sample >= yardstick::WARM_UP {
            kills.latencies.push(arrived.duration_since(sent));
            kills.rpc.push(returned);
        }
        tokio::time::sleep(pace).await;
    }
    fleet.check()?;
    Ok(kills)
}

/// Opens one new session (through admission on the link) for every one killed, then waits for
/// the registry to count them all live again.
pub(crate) async fn repopulate(
    fleet: &mut Fleet,
    world: &World,
    killed: &[usize],
    sessions: usize,
) -> anyhow::Result<Repopulation> {
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(killed.len());
    for &index in killed {
        let opened = Instant::now();
        fleet.open_session(index).await.context("re-open a killed session")?;
        latencies.push(opened.elapsed());
    }
    let elapsed = started.elapsed();
    // The kills' acknowledgements end the sessions in the registry; wait until its count agrees.
    let settled = world
        .wait_live_sessions(sessions as u64, ACK_PATIENCE)
        .await?
        .with_context(|| {
            format!("the registry did not count {sessions} live sessions within {ACK_PATIENCE:?} after re-populating")
        })?;
    Ok(Repopulation {
        elapsed,
        latencies,
        settled,
    })
}

/// `Terminate(All)`: from the call until every agent has read the commands for all its sessions,
/// then until the registry has applied every acknowledgement.
pub(crate) async fn end_all(
    fleet: &mut Fleet,
    client: &mut TerminationServiceClient<Channel>,
    world: &World,
) -> anyhow::Result<EndAll> {
    let sessions = fleet.sessions();
    // The first step of Terminate(All), timed alone in process: how much of the end-all is the
    // registry reading every live session.
    let all = pb::SessionSelector {
        target: Some(pb::session_selector::Target::All(pb::AllSessions { idle_only: false })),
    };
    let resolving = Instant::now();
    let resolved = world
        .registry
        .resolve(&all)
        .await
        .context("resolve every live session")?;
    let resolve = resolving.elapsed();
    ensure!(
        resolved.sessions.len() == sessions,
        "the registry resolves {} live sessions; the agents hold {sessions}",
        resolved.sessions.len()
    );
    drop(resolved);
    fleet.arm_end_all();
    let request = pb::TerminateRequest {
        selector: Some(all),
        reason: pb::EndReason::Admin as i32,
        note: "vigil-bench: end-all".into(),
        ..pb::TerminateRequest::default()
    };
    let sent = Instant::now();
    let termination = client.terminate(request).await.context("Terminate(All)")?.into_inner();
    let returned = sent.elapsed();
    ensure!(
        termination.session_count as usize == sessions,
        "Terminate(All) covered {} sessions; the agents hold {sessions}",
        termination.session_count
    );
    let receipts = fleet.wait_end_all(END_ALL_PATIENCE).await?;
    let per_agent: Vec<Duration> = receipts.emptied.iter().map(|at| at.duration_since(sent)).collect();
    let all_ended = world.wait_live_sessions(0, ACK_PATIENCE).await?.map(|_| sent.elapsed());
    Ok(EndAll {
        sessions,
        resolve,
        returned,
        first_command: receipts.first_command.duration_since(sent),
        per_agent,
        all_ended,
    })
}
