//! What must hold after a fault heals, asked of the services from outside (and of the database for
//! what the API does not show), and the convergence clock.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use vigil_proto::v1::session_registry_client::SessionRegistryClient;
use vigil_proto::v1::termination_service_client::TerminationServiceClient;
use vigil_proto::v1::{
    DeliveryState, GetSessionRequest, GetTerminationRequest, ListSessionsRequest, ListTerminationsRequest,
    SessionFilter, SessionStatus, TerminationCommand,
};

use crate::cluster::Cluster;
use crate::gateways::Fleet;

/// Longest a repetition may take to converge before it counts as not converged at all.
pub const GIVE_UP: Duration = Duration::from_secs(60);

/// The suite's view of the services.
pub struct Observer {
    registry: SessionRegistryClient<tonic::transport::Channel>,
    termination: TerminationServiceClient<tonic::transport::Channel>,
}

impl Observer {
    pub fn new(cluster: &Cluster) -> Self {
        Self {
            registry: SessionRegistryClient::new(cluster.registry_channel()),
            termination: TerminationServiceClient::new(cluster.termination_channel()),
        }
    }

    /// Which parts have converged: every session ended at its gateway; none shown live by the
    /// registry; every command of the terminations since `since` acknowledged or failed.
    pub async fn converged(&self, fleet: &Fleet, since: SystemTime) -> [bool; 3] {
        let gateways = fleet.ended_count() >= fleet.session_count();
        let mut registry = true;
        for gateway in fleet.ids() {
            if self.live_on(&gateway).await != Some(0) {
                registry = false;
                break;
            }
        }
        let termination = match self.terminations_since(since).await {
            Ok(terminations) => {
                let open: u32 = terminations.iter().map(|t| t.pending + t.delivered).sum();
                let closed: u32 = terminations
                    .iter()
                    .map(|t| t.acknowledged + t.failed + t.already_ended)
                    .sum();
                open == 0 && closed as usize >= fleet.session_count()
            }
            Err(_) => false,
        };
        [gateways, registry, termination]
    }

    /// Waits until every part of [`Observer::converged`] holds at once; returns when each part
    /// first held (gateways, registry, termination) and when all did, or `None` after [`GIVE_UP`].
    pub async fn wait_converged(&self, fleet: &Fleet, since: SystemTime) -> Option<([Instant; 3], Instant)> {
        let deadline = Instant::now() + GIVE_UP;
        let mut first: [Option<Instant>; 3] = [None; 3];
        while Instant::now() < deadline {
            let parts = self.converged(fleet, since).await;
            let now = Instant::now();
            for (part, held) in first.iter_mut().zip(parts) {
                if held && part.is_none() {
                    *part = Some(now);
                }
            }
            if parts.iter().all(|held| *held) {
                return Some((first.map(|at| at.unwrap_or(now)), now));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        None
    }

    /// Live sessions the registry shows on `gateway`.
    async fn live_on(&self, gateway: &str) -> Option<u64> {
        let request = ListSessionsRequest {
            filter: Some(SessionFilter {
                statuses: vec![SessionStatus::Active as i32, SessionStatus::Idle as i32],
                gateway_id: gateway.to_owned(),
                ..Default::default()
            }),
            page_size: 1,
            ..Default::default()
        };
        let response = self.registry.clone().list_sessions(request).await.ok()?;
        Some(response.into_inner().total_size)
    }

    async fn terminations_since(&self, since: SystemTime) -> Result<Vec<vigil_proto::v1::Termination>, tonic::Status> {
        let request = ListTerminationsRequest {
            since: Some(since.into()),
            page_size: 1000,
            ..Default::default()
        };
        Ok(self
            .termination
            .clone()
            .list_terminations(request)
            .await?
            .into_inner()
            .terminations)
    }

    /// Every invariant, in full; returns what broke (empty: all held).
    pub async fn verify(&self, cluster: &Cluster, fleet: &Fleet, since: SystemTime, prefix: &str) -> Vec<String> {
        let mut broken = Vec::new();
        let lost = fleet.session_count() - fleet.ended_count();
        if lost > 0 {
            broken.push(format!("{lost} kills lost (never reached their gateway)"));
        }
        broken.extend(self.verify_sessions(fleet).await);
        match self.commands_since(since).await {
            Ok(commands) => broken.extend(verify_commands(fleet, &commands)),
            Err(error) => broken.push(format!("terminations unreadable: {error}")),
        }
        let undelivered = cluster.postgres.query(&format!(
            "SELECT count(*) FROM termination_commands WHERE gateway_id LIKE '{prefix}-%' \
             AND state IN ({}, {}) AND delivered_at IS NULL",
            DeliveryState::Delivered as i32,
            DeliveryState::Acknowledged as i32
        ));
        match undelivered.as_deref() {
            Ok([count]) if count == "0" => {}
            Ok(rows) => broken.push(format!("delivered_at empty on {} delivered commands", rows.join(","))),
            Err(error) => broken.push(format!("delivered_at unreadable: {error}")),
        }
        broken
    }

    /// Every session still on record, and none shown live (its gateway ended them all).
    async fn verify_sessions(&self, fleet: &Fleet) -> Vec<String> {
        let answers: Vec<_> = futures::stream::iter(fleet.sessions().cloned())
            .map(|id| {
                let mut registry = self.registry.clone();
                async move { registry.get_session(GetSessionRequest { id }).await }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let (mut missing, mut live, mut unreadable) = (0, 0, 0);
        for answer in answers {
            match answer {
                Ok(session) if session.get_ref().status == SessionStatus::Disconnected as i32 => {}
                Ok(_) => live += 1,
                Err(status) if status.code() == tonic::Code::NotFound => missing += 1,
                Err(_) => unreadable += 1,
            }
        }
        let mut broken = Vec::new();
        if missing > 0 {
            broken.push(format!("{missing} session records lost"));
        }
        if live > 0 {
            broken.push(format!("{live} sessions shown live that their gateway ended"));
        }
        if unreadable > 0 {
            broken.push(format!("{unreadable} sessions unreadable"));
        }
        broken
    }

    /// The commands of every termination since `since`, by session.
    async fn commands_since(
        &self,
        since: SystemTime,
    ) -> Result<HashMap<String, Vec<TerminationCommand>>, tonic::Status> {
        let mut by_session: HashMap<String, Vec<TerminationCommand>> = HashMap::new();
        for termination in self.terminations_since(since).await? {
            let full = self
                .termination
                .clone()
                .get_termination(GetTerminationRequest { id: termination.id })
                .await?
                .into_inner();
            for command in full.commands {
                by_session.entry(command.session_id.clone()).or_default().push(command);
            }
        }
        Ok(by_session)
    }
}

/// Every session of the fleet has a command, and every command is settled: acknowledged, already
/// ended, or failed with a reason.
fn verify_commands(fleet: &Fleet, commands: &HashMap<String, Vec<TerminationCommand>>) -> Vec<String> {
    let (mut uncovered, mut open, mut unexplained) = (0, 0, 0);
    for session in fleet.sessions() {
        let Some(commands) = commands.get(session) else {
            uncovered += 1;
            continue;
        };
        for command in commands {
            match DeliveryState::try_from(command.state) {
                Ok(DeliveryState::Acknowledged | DeliveryState::AlreadyEnded) => {}
                Ok(DeliveryState::Failed) if !command.detail.trim().is_empty() => {}
                Ok(DeliveryState::Failed) => unexplained += 1,
                _ => open += 1,
            }
        }
    }
    let mut broken = Vec::new();
    if uncovered > 0 {
        broken.push(format!(
            "{uncovered} sessions without a recorded command (kill record lost)"
        ));
    }
    if open > 0 {
        broken.push(format!("{open} commands neither acknowledged nor failed"));
    }
    if unexplained > 0 {
        broken.push(format!("{unexplained} commands failed without a reason"));
    }
    broken
}
