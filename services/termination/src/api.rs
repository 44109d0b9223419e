//! `vigil.v1.TerminationService` over gRPC: a thin adapter around [`Terminator`].
//!
//! The auth layer (`vigil_runtime::auth`) has already established the caller and checked the
//! method's access rule. What depends on the request is checked here: an end-all needs
//! `sessions:terminate-all`, and a caller without `sessions:terminate` may end only their own
//! sessions. The recorded actor is always the authenticated caller, never a request field.

use tonic::{Request, Response, Status};
use tracing::Instrument;
use vigil_proto::v1 as pb;
use vigil_proto::v1::session_selector::Target;
use vigil_proto::v1::termination_service_server::{TerminationService, TerminationServiceServer};
use vigil_runtime::ServiceResult;
use vigil_runtime::auth::{Identity, IdentityKind, Permission, authorize_own_sessions};

use crate::service::Terminator;

/// The gRPC service.
pub struct TerminationApi {
    terminator: Terminator,
}

impl TerminationApi {
    pub fn server(terminator: Terminator) -> TerminationServiceServer<Self> {
        // A termination with every command of an end-all can be large.
        TerminationServiceServer::new(Self { terminator })
            .max_encoding_message_size(256 * 1024 * 1024)
            .max_decoding_message_size(64 * 1024 * 1024)
    }

    /// Whether `identity` may make this request, adjusting it where the rules say so.
    ///
    /// - An end-all (`AllSessions`) needs `sessions:terminate-all` (admin), whoever asks.
    /// - With `sessions:terminate`, anything else goes.
    /// - Without it, the selector must be the caller's own user, or session ids that are all the
    ///   caller's, live or ended (resolved through the registry to see whose they are: nobody may
    ///   put their name on the record of someone else's session). Such a termination is recorded as
    ///   `USER_SELF_SERVICE`, whatever reason was given: that is what it is.
    async fn authorize(&self, identity: &Identity, request: &mut pb::TerminateRequest) -> ServiceResult<()> {
        // People end sessions for a reason of their own (ADMIN); the reasons Vigil records by
        // itself (IDLE_TIMEOUT, LOCKED…) would tell the user something false if a person gave them.
        if identity.kind == IdentityKind::Person
            && !matches!(
                pb::EndReason::try_from(request.reason),
                Ok(pb::EndReason::Admin | pb::EndReason::UserSelfService | pb::EndReason::Unspecified) | Err(_)
            )
        {
            return Err(vigil_runtime::ServiceError::PermissionDenied(format!(
                "reason {} is recorded by Vigil itself; people end sessions with ADMIN",
                pb::EndReason::try_from(request.reason).map_or("?", |reason| reason.as_str_name())
            )));
        }
        let target = request.selector.as_ref().and_then(|selector| selector.target.as_ref());
        if matches!(target, Some(Target::All(_))) {
            return identity.require(Permission::SessionsTerminateAll);
        }
        if identity.has(Permission::SessionsTerminate) {
            return Ok(());
        }
        match target {
            Some(Target::User(user)) if user.trim() == identity.subject => {}
            Some(Target::SessionIds(_)) => {
                let selector = request.selector.clone().unwrap_or_default();
                let directory = self.terminator.directory();
                let resolved = directory.resolve(&selector).await?;
                let mut owners: Vec<(String, String)> = resolved
                    .sessions
                    .into_iter()
                    .map(|session| (session.id, session.user))
                    .collect();
                for session_id in resolved.already_ended {
                    if let Some(user) = directory.session_owner(&session_id).await? {
                        owners.push((session_id, user));
                    }
                }
                authorize_own_sessions(
                    identity,
                    Permission::SessionsTerminate,
                    owners.iter().map(|(id, user)| (id.as_str(), user.as_str())),
                )?;
            }
            _ => return identity.require(Permission::SessionsTerminate),
        }
        request.reason = pb::EndReason::UserSelfService as i32;
        Ok(())
    }
}

#[tonic::async_trait]
impl TerminationService for TerminationApi {
    async fn terminate(&self, request: Request<pb::TerminateRequest>) -> Result<Response<pb::Termination>, Status> {
        let identity = Identity::of(&request)?.clone();
        let mut terminate = request.into_inner();
        self.authorize(&identity, &mut terminate).await?;
        // On a task of its own: a caller that goes away mid-call (a policy leader killed mid-sweep)
        // must not cancel the record while the kills it covers are already on their way.
        let terminator = self.terminator.clone();
        // The task carries the request's span, so the kill stays one trace with the call.
        let task = tokio::spawn(
            async move { terminator.terminate(&identity.subject, &terminate).await }
                .instrument(tracing::Span::current()),
        );
        let termination = task.await.map_err(|error| {
            vigil_runtime::ServiceError::internal(format!("the termination task failed: {error}"))
        })??;
        Ok(Response::new(termination))
    }

    async fn get_termination(
        &self,
        request: Request<pb::GetTerminationRequest>,
    ) -> Result<Response<pb::Termination>, Status> {
        Ok(Response::new(self.terminator.get(&request.get_ref().id).await?))
    }

    async fn list_terminations(
        &self,
        request: Request<pb::ListTerminationsRequest>,
    ) -> Result<Response<pb::ListTerminationsResponse>, Status> {
        Ok(Response::new(self.terminator.list(request.get_ref()).await?))
    }

    async fn list_pending_commands(
        &self,
        request: Request<pb::ListPendingCommandsRequest>,
    ) -> Result<Response<pb::ListPendingCommandsResponse>, Status> {
        let commands = self
            .terminator
            .pending_for_gateway(&request.get_ref().gateway_id)
            .await?;
        Ok(Response::new(pb::ListPendingCommandsResponse { commands }))
    }

    async fn report_commands(
        &self,
        request: Request<pb::ReportCommandsRequest>,
    ) -> Result<Response<pb::ReportCommandsResponse>, Status> {
        self.terminator.apply_reports(&request.get_ref().reports).await?;
        Ok(Response::new(pb::ReportCommandsResponse {}))
    }
}
