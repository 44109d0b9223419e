//! Which live sessions a selector covers (`SessionRegistry.ResolveSessions`, and the termination
//! service's and policy's way in): the registry's core, whichever transport asks.

use vigil_proto::v1 as pb;
use vigil_runtime::{ServiceError, ServiceResult};

use crate::convert::session_to_proto;
use crate::domain::{ListQuery, Selector, SessionFilter, SessionStatus};
use crate::registry::Registry;
use crate::{now_millis, validate};

impl Registry {
    /// The live sessions a selector covers. Naming a session id, user, gateway or resource the
    /// registry has never seen is NOT_FOUND; one that exists but has nothing live resolves to
    /// nothing, as does a group, device or network with nothing live.
    pub async fn resolve(&self, selector: &pb::SessionSelector) -> ServiceResult<pb::ResolveSessionsResponse> {
        let selector = validate::selector(Some(selector))?;
        let resolution = self.inner.store.resolve(&selector).await?;
        if let Some(unknown) = resolution.unknown.first() {
            return Err(ServiceError::not_found("session", unknown.clone()));
        }
        if resolution.live.is_empty()
            && let Some((kind, name, filter)) = recorded_thing(&selector)
            && !self.has_any_session(filter).await?
        {
            return Err(ServiceError::not_found(kind, name));
        }
        let now = now_millis();
        Ok(pb::ResolveSessionsResponse {
            sessions: resolution
                .live
                .iter()
                .map(|session| session_to_proto(session, now))
                .collect(),
            already_ended: resolution.already_ended,
        })
    }

    /// [`Registry::resolve`] for a person who may see only their own sessions (no `sessions:read`):
    /// their own user, or session ids that are all theirs. Everything else — another user, a
    /// group, device, network, gateway or resource, an id that is someone else's (live or ended)
    /// or does not exist — gets the one answer [`not_yours`], whether or not the target exists,
    /// so the answer tells nothing about other people's sessions.
    pub async fn resolve_own(
        &self,
        subject: &str,
        selector: &pb::SessionSelector,
    ) -> ServiceResult<pb::ResolveSessionsResponse> {
        // Malformed input is refused as such: that depends on the request only, never on data.
        let validated = validate::selector(Some(selector))?;
        match &validated {
            Selector::User(user) if user == subject => self.resolve(selector).await,
            Selector::Ids(_) => {
                let resolution = self.inner.store.resolve(&validated).await?;
                if !resolution.unknown.is_empty() || resolution.live.iter().any(|session| session.user != subject) {
                    return Err(not_yours());
                }
                for id in &resolution.already_ended {
                    let owner = self.inner.store.get_session(id).await?.map(|session| session.user);
                    if owner.as_deref() != Some(subject) {
                        return Err(not_yours());
                    }
                }
                let now = now_millis();
                Ok(pb::ResolveSessionsResponse {
                    sessions: resolution
                        .live
                        .iter()
                        .map(|session| session_to_proto(session, now))
                        .collect(),
                    already_ended: resolution.already_ended,
                })
            }
            _ => Err(not_yours()),
        }
    }

    /// Whether any session, live or ended, matches.
    async fn has_any_session(&self, filter: SessionFilter) -> ServiceResult<bool> {
        let filter = SessionFilter {
            statuses: vec![SessionStatus::Active, SessionStatus::Idle, SessionStatus::Disconnected],
            ..filter
        };
        let query = ListQuery {
            filter,
            sort: Default::default(),
            ascending: false,
            limit: 1,
            after: None,
        };
        Ok(!self.inner.store.list_sessions(&query).await?.sessions.is_empty())
    }
}

/// The one answer a person without `sessions:read` gets for any selector that is not about their
/// own sessions. It names nothing, so it is the same whether the target exists, has sessions, or
/// has ended ones.
pub(crate) fn not_yours() -> ServiceError {
    ServiceError::PermissionDenied(NOT_YOURS.to_owned())
}

/// The text of [`not_yours`].
const NOT_YOURS: &str = "you may resolve only your own sessions (by your user name or their ids); \
other users' sessions require the `sessions:read` permission (viewer)";

/// For a selector naming a user, gateway or resource — things the registry has a record of through
/// their sessions — what it is, its name, and the filter of its sessions. A group, device or
/// network is not a thing the registry keeps a record of: one with nothing live simply covers
/// nothing.
fn recorded_thing(selector: &Selector) -> Option<(&'static str, String, SessionFilter)> {
    Some(match selector {
        Selector::User(user) => (
            "user",
            user.clone(),
            SessionFilter {
                user: Some(user.clone()),
                ..Default::default()
            },
        ),
        Selector::Gateway(gateway) => (
            "gateway",
            gateway.clone(),
            SessionFilter {
                gateway_id: Some(gateway.clone()),
                ..Default::default()
            },
        ),
        Selector::Resource(resource) => (
            "resource",
            resource.clone(),
            SessionFilter {
                resource_name: Some(resource.clone()),
                ..Default::default()
            },
        ),
        Selector::Ids(_) | Selector::All { .. } | Selector::Group(_) | Selector::Device(_) | Selector::Cidr(_) => {
            return None;
        }
    })
}
