//! The gRPC edge: requests are validated into domain values, handed to the store and the
//! registry's tasks, and answered; errors leave as `ServiceError` and become `Status` in one place
//! (`vigil_runtime::error`).

mod hello_guard;
mod hello_limit;
mod link;

mod sessions;
mod watch_limits;

pub use hello_guard::{FAILURE_WINDOW, MAX_FAILED_HELLOS};
pub use hello_limit::{PRE_HELLO_LIMIT, PreHelloLimit, Verdict, first_message};
pub use link::LinkApi;
pub use sessions::SessionsApi;

use vigil_proto::v1::gateway_link_server::GatewayLinkServer;
use vigil_proto::v1::session_registry_server::SessionRegistryServer;

use crate::registry::Registry;

/// Largest message accepted on a gateway link (a hello with a full snapshot).
const LINK_MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// The gRPC services on a replica (here, so that the core does not know its edge).
impl Registry {
    /// The `vigil.v1.SessionRegistry` gRPC service.
    pub fn sessions_service(&self) -> SessionRegistryServer<SessionsApi> {
        SessionRegistryServer::new(SessionsApi::new(self.clone()))
    }

    /// The `vigil.v1.GatewayLink` gRPC service.
    pub fn link_service(&self) -> PreHelloLimit<GatewayLinkServer<LinkApi>> {
        // A hello carries the gateway's whole snapshot (~160 bytes a session, up to
        // MAX_SNAPSHOT_SESSIONS): well beyond tonic's default 4 MiB message limit. Until the hello
        // proves its gateway, at most PRE_HELLO_LIMIT of it is read.
        PreHelloLimit::new(
            GatewayLinkServer::new(LinkApi::new(self.clone())).max_decoding_message_size(LINK_MAX_MESSAGE_BYTES),
        )
    }
}
