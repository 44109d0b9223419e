//! The phases on one world, in order, each with what it cost per operation (see [`crate::costs`]).

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use tonic::transport::Channel;
use vigil_proto::v1::termination_service_client::TerminationServiceClient;

use crate::args::{Args, Progress};
use crate::costs::{Meter, PhaseCost};
use crate::fleet::{Connected, Fleet, FleetSpec};
use crate::maintenance::Maintenance;
use crate::phases;
use crate::replica::{ChildReplica, ReplicaSpec};
use crate::report::{Kills, MemoryFigures, Repopulation, Scale};
use crate::world::World;

/// Database round trips sampled per world.
const DB_SAMPLES: usize = 500;

/// One world's measurements in progress.
pub struct Measurement<'a> {
    pub args: &'a Args,
    pub agents: usize,
    pub world: &'a World,
    pub maintenance: Option<&'a Maintenance>,
    pub progress: &'a Progress,
    pub meter: Meter,
    pub costs: Vec<PhaseCost>,
}

impl Measurement<'_> {
    /// The measurements on one world. Returns them and how long the agents took to leave.
    pub async fn run(mut self) -> anyhow::Result<(Scale, Duration)> {
        let spec = self.fleet_spec();
        let (mut fleet, connected) = self.connect(&spec).await?;
        let (count_query, db_round_trip) = self.check_census().await?;
        let channel = vigil_runtime::server::connect_channel(&self.world.url, Duration::from_secs(5)).await?;
        // An end-all's answer lists every command: far beyond tonic's 4 MiB default.
        let mut client = TerminationServiceClient::new(channel).max_decoding_message_size(256 * 1024 * 1024);

        let (kills, repopulation) = self.kills(&mut fleet, &mut client).await?;
        let admission = self.admission(&mut fleet).await?;
        let list = self.list(&spec.prefix).await?;
        let replica = self.replica().await?;
        let watch = self.watch(&mut fleet, replica.as_ref()).await?;
        let activity = self.activity(&fleet).await?;
        let end_all = self.end_all(&mut fleet, &mut client).await?;
        fleet.check()?;
        let memory = self.memory(replica, &spec.prefix).await?;
        let link_drops = fleet.drops();

        let leaving = Instant::now();
        fleet.close().await;
        let scale = Scale {
            agents: self.agents,
            sessions: self.args.sessions,
            world_start: Duration::ZERO,
            connected,
            count_query,
            db_round_trip,
            kills,
            repopulation,
            end_all,
            admission,
            list,
            watch,
            activity,
            memory,
            costs: self.costs,
            events: None,
            link_drops,
            warnings: Vec::new(),
            autovacuum_stand_in: false,
            teardown: Duration::ZERO,
            elapsed: Duration::ZERO,
        };
        Ok((scale, leaving.elapsed()))
    }

    fn say(&self, what: &str) {
        self.progress.say(&format!("{} agents: {what}", self.agents));
    }

    fn fleet_spec(&self) -> FleetSpec {
        FleetSpec {
            url: self.world.url.clone(),
            prefix: format!("bench{}", self.agents),
            agents: self.agents,
            sessions: self.args.sessions,
            connections: self.args.connections,
            heartbeats: self.args.heartbeats,
        }
    }

    /// Between phases, what autovacuum would have done by then (when the server runs without it).
    async fn between_phases(&self) -> anyhow::Result<()> {
        if let Some(maintenance) = self.maintenance {
            self.say("VACUUM ANALYZE (autovacuum is off on this server)");
            maintenance.vacuum().await?;
        }
        Ok(())
    }

    /// Runs `phase`, recording its cost over `operations(&result)` operations.
    async fn metered<T>(
        &mut self,
        name: &'static str,
        unit: &'static str,
        phase: impl Future<Output = anyhow::Result<T>>,
        operations: impl FnOnce(&T) -> usize,
    ) -> anyhow::Result<T> {
        let before = self.meter.read().await?;
        let result = phase.await?;
        let cost = self.meter.since(before, name, unit, operations(&result)).await?;
        self.costs.push(cost);
        Ok(result)
    }

    async fn connect(&mut self, spec: &FleetSpec) -> anyhow::Result<(Fleet, Connected)> {
        self.say(&format!(
            "connecting over {} HTTP/2 connections, {} sessions in their hellos",
            self.args.connections.min(self.agents),
            self.args.sessions
        ));
        let maintenance = self.maintenance;
        let connecting = async {
            match maintenance {
                Some(maintenance) => maintenance.while_growing(Fleet::connect(spec)).await,
                None => Fleet::connect(spec).await,
            }
            .context("connect the agents")
        };
        let connected = self
            .metered("hellos", "hello", connecting, |(fleet, _)| fleet.agents())
            .await?;
        self.between_phases().await?;
        Ok(connected)
    }

    /// Counts the live sessions (checking them against the fleet) and samples database round trips.
    async fn check_census(&self) -> anyhow::Result<(Duration, Vec<Duration>)> {
        let counted = Instant::now();
        let census = self.world.census().await?;
        let count_query = counted.elapsed();
        ensure!(
            census.live_sessions == self.args.sessions as u64 && census.connected_gateways == self.agents as u64,
            "the registry counts {} live sessions on {} connected gateways; the agents are {} holding {}",
            census.live_sessions,
            census.connected_gateways,
            self.agents,
            self.args.sessions
        );
        let db_round_trip = crate::yardstick::database_round_trip(self.world.store(), DB_SAMPLES).await?;
        Ok((count_query, db_round_trip))
    }

    async fn kills(
        &mut self,
        fleet: &mut Fleet,
        client: &mut TerminationServiceClient<Channel>,
    ) -> anyhow::Result<(Option<Kills>, Option<Repopulation>)> {
        let samples = self.args.kill_samples;
        if samples == 0 {
            return Ok((None, None));
        }
        self.say(&format!("{samples} single-session kills"));
        let kills = self
            .metered(
                "kill",
                "kill",
                crate::kill_latency(fleet, client, samples, self.args.kill_pace()),
                |kills| kills.killed.len(),
            )
            .await?;
        self.say(&format!(
            "re-populating {} killed sessions through admission",
            kills.killed.len()
        ));
        let (world, sessions) = (self.world, self.args.sessions);
        let repopulation = self
            .metered(
                "re-population",
                "admission",
                crate::repopulate(fleet, world, &kills.killed, sessions),
                |repopulation| repopulation.latencies.len(),
            )
            .await?;
        self.between_phases().await?;
        Ok((Some(kills), Some(repopulation)))
    }

    async fn admission(&mut self, fleet: &mut Fleet) -> anyhow::Result<Option<crate::report::AdmissionFigures>> {
        let (samples, rate) = (self.args.admission_samples, self.args.admission_rate);
        if samples == 0 {
            return Ok(None);
        }
        self.say(&format!("{samples} admissions at {rate}/s"));
        let agents = self.agents;
        let admission = self
            .metered(
                "admission",
                "admission",
                phases::admission(fleet, agents, samples, rate),
                |admission| admission.latencies.len(),
            )
            .await?;
        self.between_phases().await?;
        Ok(Some(admission))
    }

    async fn list(&mut self, prefix: &str) -> anyhow::Result<Option<crate::report::ListFigures>> {
        let samples = self.args.list_samples;
        if samples == 0 {
            return Ok(None);
        }
        self.say(&format!("{samples} ListSessions pages"));
        let world = self.world;
        let list = self
            .metered("list", "page", phases::list(world, prefix, samples), |list| {
                // The warm-up pages are counted too.
                list.all_pages().len() + crate::yardstick::WARM_UP
            })
            .await?;
        Ok(Some(list))
    }

    async fn replica(&self) -> anyhow::Result<Option<ChildReplica>> {
        if self.args.watchers == 0 && self.args.memory_agents == 0 {
            return Ok(None);
        }
        self.say("starting a second registry replica in a child process");
        let replica = ChildReplica::spawn(&ReplicaSpec {
            database_url: &self.args.database_url,
            schema: &self.world.schema,
            redis_url: &self.args.redis_url,
            namespace: &self.world.namespace,
        })
        .await?;
        Ok(Some(replica))
    }

    async fn watch(
        &mut self,
        fleet: &mut Fleet,
        replica: Option<&ChildReplica>,
    ) -> anyhow::Result<Option<crate::report::WatchFigures>> {
        let (watchers, samples) = (self.args.watchers, self.args.watch_samples);
        let Some(replica) = replica.filter(|_| watchers > 0) else {
            return Ok(None);
        };
        self.say(&format!("watch fan-out to {watchers} watchers, {samples} changes"));
        let world = self.world;
        let watch = self
            .metered(
                "watch",
                "session closed",
                phases::watch_fan_out(fleet, world, replica, watchers, samples),
                |watch| watch.latencies.len() / watch.watchers.max(1),
            )
            .await?;
        Ok(Some(watch))
    }

    async fn activity(&mut self, fleet: &Fleet) -> anyhow::Result<Option<crate::report::ActivityFigures>> {
        let (secs, interval_ms) = (self.args.activity_secs, self.args.activity_interval_ms);
        if secs == 0 {
            return Ok(None);
        }
        self.say(&format!(
            "activity of every session every {interval_ms} ms for {secs} s"
        ));
        let world = self.world;
        let activity = self
            .metered(
                "activity",
                "session update",
                phases::activity(
                    fleet,
                    world,
                    Duration::from_secs(secs),
                    Duration::from_millis(interval_ms.max(1)),
                ),
                |activity| usize::try_from(activity.written).unwrap_or(usize::MAX),
            )
            .await?;
        self.between_phases().await?;
        Ok(Some(activity))
    }

    async fn end_all(
        &mut self,
        fleet: &mut Fleet,
        client: &mut TerminationServiceClient<Channel>,
    ) -> anyhow::Result<Option<crate::report::EndAll>> {
        if self.args.skip_end_all {
            return Ok(None);
        }
        self.say(&format!("end-all of {} sessions", fleet.sessions()));
        let world = self.world;
        let end_all = self
            .metered("end-all", "session", crate::end_all(fleet, client, world), |end_all| {
                end_all.sessions
            })
            .await?;
        Ok(Some(end_all))
    }

    async fn memory(&self, replica: Option<ChildReplica>, prefix: &str) -> anyhow::Result<Option<MemoryFigures>> {
        let Some(replica) = replica else {
            return Ok(None);
        };
        let agents = self.args.memory_agents;
        let memory = if agents > 0 {
            self.say(&format!("memory of the child replica with {agents} more agents"));
            Some(
                phases::memory(
                    &replica,
                    prefix,
                    agents,
                    self.args.memory_sessions_per_agent,
                    self.args.connections,
                )
                .await?,
            )
        } else {
            None
        };
        replica.stop().await.context("stop the child replica")?;
        Ok(memory)
    }
}
