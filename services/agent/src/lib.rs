//! The Vigil gateway agent SDK.
//!
//! A gateway (SSH bastion, RDP gateway, web proxy) embeds an [`Agent`] to keep a link to the Vigil registry
//! (`GatewayLink.Connect`, a bidirectional gRPC stream). Through it the gateway asks whether a user may
//! open a session, reports activity and closes, and receives the registry's commands: terminate a session,
//! warn an idle user, the current locks. The agent reconnects on its own (exponential backoff with jitter)
//! and says hello with a snapshot of the sessions it holds, so the registry and the gateway agree after
//! every outage.
//!
//! The gateway implements [`GatewayHandler`] to carry out commands, starts the agent once, and calls it
//! from its connection handling:
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::{Duration, SystemTime};
//!
//! use async_trait::async_trait;
//! use vigil_agent::{Agent, AgentConfig, CommandResult, GatewayHandler};
//! use vigil_proto::v1::{EndReason, ResourceType, SessionStart, TerminateCommand};
//!
//! struct Bastion;
//!
//! #[async_trait]
//! impl GatewayHandler for Bastion {
//!     async fn terminate(&self, command: &TerminateCommand) -> CommandResult {
//!         // Find the SSH connection of `command.session_id`, print `command.user_message`, close it.
//!         CommandResult::Done
//!     }
//! }
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let config = AgentConfig::new("http://registry.internal:7400", "gw-fra-01").with_credential("secret");
//! let agent = Agent::start(config, Arc::new(Bastion));
//! agent.wait_connected(Duration::from_secs(10)).await?;
//!
//! let admission = agent
//!     .open_session(SessionStart {
//!         user: "alice.martin@acme.example".into(),
//!         resource_name: "prod-db-01".into(),
//!         resource_type: ResourceType::Ssh as i32,
//!         device: "alice-macbook".into(),
//!         client_ip: "81.2.69.160".into(),
//!         started_at: Some(SystemTime::now().into()),
//!         user_groups: vec!["sre".into()],
//!     })
//!     .await?;
//! if !admission.allowed {
//!     println!("refused: {}", admission.reason);
//!     return Ok(());
//! }
//! // While the user works (cheap, never blocks):
//! agent.record_activity(&admission.session_id, Some(SystemTime::now()), 1_024, 65_536);
//! // When they log out:
//! agent.close_session(&admission.session_id, EndReason::UserClosed, "logout").await;
//! agent.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! The registry pushes the locks in force; the agent keeps them and refuses a locked user itself
//! (`open_session` answers `allowed: false` with the lock's message), also while the registry cannot be
//! reached. What happens to the gateway's sessions when the link stays down longer than
//! [`AgentConfig::link_grace`] is [`AgentConfig::fail_mode`]: kept ([`FailMode::BestEffort`], the default)
//! or ended through the handler with new ones refused until the link is back ([`FailMode::Strict`]).
//!
//! [`simulate`] runs many such gateways with realistic users, for demos and benchmarks.
//!
//! **Tracing.** Admissions run in an `agent.open_session` span and terminate commands in an
//! `agent.terminate` span; their W3C trace context travels on the link, so the registry's work (and
//! geo's and policy's) joins the gateway's trace, and a kill's trace — from the operator's
//! `Terminate` through the bus — reaches the gateway's handler. For the spans to be exported, the
//! gateway installs `tracing-opentelemetry` and sets `opentelemetry_sdk`'s
//! `TraceContextPropagator` as the global propagator; without them nothing is sent.

#![warn(missing_docs)]

mod agent;
mod backoff;
mod config;
mod error;
mod failsafe;
mod handler;
mod link;
#[cfg(test)]
mod link_tests;
mod locks;
mod notice;
mod shared;
pub mod simulate;
mod state;
mod trace;
mod validate;

pub use agent::{Admission, Agent};
pub use config::{AgentConfig, DEFAULT_LINK_GRACE, FailMode};
pub use error::AgentError;
pub use handler::{CommandResult, GatewayHandler};
pub use notice::{disconnect_notice, headline, idle_notice, notice};
pub use shared::LinkState;
pub use state::HeldSession;
