//! Simulated gateways, in the suite's own process: real agents (the SDK) on real links, each through
//! a balancer of its own in front of the registry replicas (so a gateway can be cut off alone), each
//! recording which sessions it was told to end, and when.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use async_trait::async_trait;
use futures::StreamExt;
use vigil_agent::{Agent, AgentConfig, CommandResult, GatewayHandler};
use vigil_proto::v1::{ResourceType, SessionStart, TerminateCommand};

use crate::balancer::Balancer;

/// The gateway's side: ends whatever it is told to, and remembers when.
#[derive(Default)]
pub struct Recorder {
    ended: Mutex<HashMap<String, Instant>>,
}

impl Recorder {
    fn ended(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.ended.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl GatewayHandler for Recorder {
    async fn terminate(&self, command: &TerminateCommand) -> CommandResult {
        self.ended()
            .entry(command.session_id.clone())
            .or_insert_with(Instant::now);
        CommandResult::Done
    }
}

/// One simulated gateway.
pub struct Gateway {
    pub id: String,
    pub agent: Agent,
    pub recorder: Arc<Recorder>,
    /// Its own way to the registry replicas.
    pub link: Balancer,
    /// The sessions it opened.
    pub sessions: Vec<String>,
}

/// Every gateway of one repetition.
pub struct Fleet {
    pub gateways: Vec<Gateway>,
}

impl Fleet {
    /// `gateways` agents named `<prefix>-<n>`, alternating between the `registries`, each holding
    /// `sessions` sessions of users in `group`.
    pub async fn start(
        prefix: &str,
        gateways: usize,
        sessions: usize,
        registries: &[SocketAddr],
        group: &str,
    ) -> anyhow::Result<Self> {
        let mut fleet = Vec::with_capacity(gateways);
        for index in 0..gateways {
            let link = Balancer::start(registries.to_vec(), index).await?;
            let id = format!("{prefix}-{index}");
            let mut config = AgentConfig::new(link.url(), id.clone());
            // A gateway that retries within a second, so a healed fault is noticed within one.
            config.initial_backoff = Duration::from_millis(100);
            config.max_backoff = Duration::from_secs(1);
            config.connect_timeout = Duration::from_secs(1);
            let recorder = Arc::new(Recorder::default());
            let agent = Agent::start(config, recorder.clone());
            fleet.push(Gateway {
                id,
                agent,
                recorder,
                link,
                sessions: Vec::new(),
            });
        }
        for gateway in &fleet {
            gateway
                .agent
                .wait_connected(Duration::from_secs(20))
                .await
                .with_context(|| format!("gateway {} did not connect", gateway.id))?;
        }
        for (index, gateway) in fleet.iter_mut().enumerate() {
            gateway.sessions = open_sessions(&gateway.agent, index, sessions, group).await?;
        }
        Ok(Self { gateways: fleet })
    }

    /// Every session of every gateway.
    pub fn sessions(&self) -> impl Iterator<Item = &String> {
        self.gateways.iter().flat_map(|gateway| gateway.sessions.iter())
    }

    /// How many sessions the fleet opened.
    pub fn session_count(&self) -> usize {
        self.gateways.iter().map(|gateway| gateway.sessions.len()).sum()
    }

    /// How many of them their gateway was told to end.
    pub fn ended_count(&self) -> usize {
        self.gateways
            .iter()
            .map(|gateway| {
                let ended = gateway.recorder.ended();
                gateway.sessions.iter().filter(|id| ended.contains_key(*id)).count()
            })
            .sum()
    }

    /// The gateway ids.
    pub fn ids(&self) -> Vec<String> {
        self.gateways.iter().map(|gateway| gateway.id.clone()).collect()
    }

    /// Stops every agent.
    pub async fn shutdown(self) {
        for gateway in &self.gateways {
            gateway.agent.shutdown().await;
        }
    }
}

/// Opens `count` sessions on `agent`, a few at a time.
async fn open_sessions(agent: &Agent, gateway: usize, count: usize, group: &str) -> anyhow::Result<Vec<String>> {
    let starts = (0..count).map(|index| SessionStart {
        user: format!("user-{gateway}-{index}@chaos.example"),
        resource_name: format!("server-{:02}", index % 10),
        resource_type: ResourceType::Ssh as i32,
        device: format!("laptop-{gateway}-{index}"),
        client_ip: format!("10.{}.{}.{}", gateway % 250, index / 250, index % 250 + 1),
        started_at: Some(SystemTime::now().into()),
        user_groups: vec![group.to_owned()],
    });
    let admissions: Vec<_> = futures::stream::iter(starts)
        .map(|start| agent.open_session(start))
        .buffer_unordered(8)
        .collect()
        .await;
    let mut sessions = Vec::with_capacity(count);
    for admission in admissions {
        let admission = admission.context("opening a session")?;
        if !admission.allowed {
            bail!("a session was refused: {}", admission.reason);
        }
        sessions.push(admission.session_id);
    }
    Ok(sessions)
}
