//! What the gateway tests (`gateway_ssh`, `gateway_web`) stand on: a registry serving termination, a
//! policy engine for locks and admissions, and a `vigil-gateway` started in front of them.

use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use vigil_gateway::app::Gateway;
use vigil_gateway::config::GatewayConfig;
use vigil_policy::{PolicyEngine, SystemClock};
use vigil_proto::v1 as pb;
use vigil_proto::v1::{EndReason, SessionStatus};

use crate::{PATIENCE, TestRegistry, TestSchema, eventually, init_logs, test_settings, unique_namespace};

/// Registry + termination + policy on PostgreSQL and Redis, and the gateway once
/// [`start_gateway`](Self::start_gateway) has started it. Dropping it stops the gateway's tasks.
pub struct GatewayStack {
    pub registry: TestRegistry,
    pub policy: PolicyEngine,
    gateway: Option<Gateway>,
    gateway_id: String,
    pub shutdown: CancellationToken,
    // Last: dropped after everything that uses it.
    _schema: TestSchema,
}

impl GatewayStack {
    /// The services, wired as the all-in-one wires them: the policy engine hears lock and policy
    /// changes on the registry's bus, ends locked sessions through termination and answers the
    /// registry's admissions.
    pub async fn new(gateway_id: &str) -> Self {
        init_logs();
        let schema = TestSchema::new().await;
        let registry = TestRegistry::with_termination(&schema, &unique_namespace(), test_settings("r1")).await;
        let policy = PolicyEngine::new(schema.policy_store().await, Arc::new(SystemClock));
        policy.attach_bus(registry.registry.bus().clone());
        policy.attach_terminator(Arc::new(registry.terminator.clone().expect("termination")));
        policy.start_refresh(registry.shutdown.child_token());
        registry.registry.attach_admission_policy(Arc::new(policy.clone()));
        Self {
            registry,
            policy,
            gateway: None,
            gateway_id: gateway_id.to_owned(),
            shutdown: CancellationToken::new(),
            _schema: schema,
        }
    }

    /// A gateway configuration pointing at this registry, listening on free loopback ports, its keys
    /// and users file in `dir` (the users file is the caller's to write). No target, web proxy off.
    pub fn gateway_config(&self, dir: &Path) -> GatewayConfig {
        let mut config = GatewayConfig::default();
        config.registry.url = self.registry.url();
        config.registry.gateway_id.clone_from(&self.gateway_id);
        config.server.listen = "127.0.0.1:0".parse().expect("address");
        config.ssh.listen = "127.0.0.1:0".parse().expect("address");
        config.ssh.host_key = dir.join("gateway_host_key");
        config.ssh.client_key = dir.join("gateway_client_key");
        config.ssh.users_file = dir.join("users.toml");
        config
    }

    /// Starts the gateway with `config` and waits until its agent is connected to the registry.
    pub async fn start_gateway(&mut self, config: &GatewayConfig) -> &Gateway {
        let gateway = Gateway::start(config, self.shutdown.clone())
            .await
            .expect("start the gateway");
        gateway
            .agent
            .wait_connected(PATIENCE)
            .await
            .expect("the gateway's agent connects");
        self.gateway.insert(gateway)
    }

    pub fn gateway(&self) -> &Gateway {
        self.gateway.as_ref().expect("gateway running")
    }

    /// The gateway's sessions in one of `statuses`, as the registry lists them.
    pub async fn sessions(&self, statuses: Vec<SessionStatus>) -> Vec<pb::Session> {
        let mut client = self.registry.sessions_client().await;
        client
            .list_sessions(pb::ListSessionsRequest {
                filter: Some(pb::SessionFilter {
                    statuses: statuses.into_iter().map(|s| s as i32).collect(),
                    gateway_id: self.gateway_id.clone(),
                    ..Default::default()
                }),
                page_size: 100,
                ..Default::default()
            })
            .await
            .expect("list sessions")
            .into_inner()
            .sessions
    }

    pub async fn live_sessions(&self) -> Vec<pb::Session> {
        self.sessions(vec![SessionStatus::Active, SessionStatus::Idle]).await
    }

    /// Waits until the gateway has had `count` sessions end (`what` names them); returns them.
    pub async fn ended_sessions(&self, count: usize, what: &str) -> Vec<pb::Session> {
        eventually(what, || async {
            let ended = self.sessions(vec![SessionStatus::Disconnected]).await;
            (ended.len() == count).then_some(ended)
        })
        .await
    }

    /// Waits until session `id` has ended for `reason`; returns it.
    pub async fn ended_for(&self, id: &str, reason: EndReason) -> pb::Session {
        eventually(&format!("session {id} ended for {reason:?}"), || async {
            self.sessions(vec![SessionStatus::Disconnected])
                .await
                .into_iter()
                .find(|s| s.id == id && s.end_reason == reason as i32)
        })
        .await
    }

    /// Ends one session through the termination service, as an administrator, telling the user `message`.
    pub async fn terminate(&self, session_id: &str, message: &str) {
        self.registry
            .termination_client()
            .await
            .terminate(pb::TerminateRequest {
                selector: Some(pb::SessionSelector {
                    target: Some(pb::session_selector::Target::SessionIds(pb::SessionIds {
                        ids: vec![session_id.to_owned()],
                    })),
                }),
                reason: EndReason::Admin as i32,
                user_message: message.into(),
                ..Default::default()
            })
            .await
            .expect("terminate");
    }

    /// Stops the gateway (its sessions end as a gateway's do when it shuts down), then its tasks.
    pub async fn stop(mut self) {
        if let Some(gateway) = self.gateway.take() {
            gateway.stop().await;
        }
        self.shutdown.cancel();
    }
}

impl Drop for GatewayStack {
    fn drop(&mut self) {
        // A failed test drops the stack without `stop`: its tasks end anyway.
        self.shutdown.cancel();
    }
}
