//! The one rule the auth layer cannot decide alone: every authenticated user may see and end their
//! own sessions. Whose a session is is known only once it is read, so the handlers of the RPCs the
//! tables mark [`Access::OwnSessionsOr`](super::Access::OwnSessionsOr) apply it with these helpers.

use super::identity::Identity;
use super::permission::{Permission, denied};
use crate::{ServiceError, ServiceResult};

/// Which sessions a caller may act on through an RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionScope {
    /// Every session: the caller holds the RPC's permission.
    All,
    /// Only the sessions whose user is this (the caller's subject).
    OwnedBy(String),
}

impl SessionScope {
    /// The scope of `identity` for an RPC whose full access needs `permission`.
    pub fn of(identity: &Identity, permission: Permission) -> Self {
        if identity.has(permission) {
            SessionScope::All
        } else {
            SessionScope::OwnedBy(identity.subject.clone())
        }
    }

    /// The user filter a list or watch must apply, given the one asked for (`None`: any user).
    ///
    /// A caller limited to their own sessions gets their own name as the filter; naming another
    /// user is `PermissionDenied` rather than silently answered with the caller's own sessions.
    pub fn user_filter(
        &self,
        requested: Option<String>,
        permission: Permission,
        roles: &[String],
    ) -> ServiceResult<Option<String>> {
        match self {
            SessionScope::All => Ok(requested),
            SessionScope::OwnedBy(subject) => match requested {
                Some(user) if &user != subject => Err(others_denied(permission, roles)),
                _ => Ok(Some(subject.clone())),
            },
        }
    }
}

/// `Ok` when `identity` may act on every one of `sessions` (pairs of session id and user) through
/// an RPC whose full access needs `permission`: always with the permission; without it, only when
/// each session is the caller's own. The refusal names the first session that is not, and the
/// permission that would allow it.
pub fn authorize_own_sessions<'a>(
    identity: &Identity,
    permission: Permission,
    sessions: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> ServiceResult<()> {
    if identity.has(permission) {
        return Ok(());
    }
    match sessions.into_iter().find(|(_, user)| *user != identity.subject) {
        None => Ok(()),
        Some((session_id, _)) => Err(ServiceError::PermissionDenied(format!(
            "session {session_id} belongs to another user; {}",
            others_message(permission, &identity.roles)
        ))),
    }
}

fn others_denied(permission: Permission, roles: &[String]) -> ServiceError {
    ServiceError::PermissionDenied(format!(
        "other users' sessions are not yours to see or end; {}",
        others_message(permission, roles)
    ))
}

/// "requires the `sessions:read` permission (viewer); you have: no role"
fn others_message(permission: Permission, roles: &[String]) -> String {
    denied(permission, roles).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> Identity {
        Identity::person(name, Vec::new())
    }

    #[test]
    fn a_plain_user_acts_on_their_own_sessions_only() {
        let alice = user("alice");
        authorize_own_sessions(
            &alice,
            Permission::SessionsTerminate,
            [("s1", "alice"), ("s2", "alice")],
        )
        .expect("her own");
        authorize_own_sessions(&alice, Permission::SessionsTerminate, []).expect("nothing at all");
        let error = authorize_own_sessions(&alice, Permission::SessionsTerminate, [("s1", "alice"), ("s2", "bob")])
            .unwrap_err();
        assert!(matches!(error, ServiceError::PermissionDenied(_)));
        assert_eq!(
            error.to_string(),
            "session s2 belongs to another user; requires the `sessions:terminate` permission (operator); you have: \
             no role"
        );
    }

    #[test]
    fn holders_of_the_permission_act_on_anyone_s_sessions() {
        let operator = Identity::person("olga", vec!["operator".into()]);
        authorize_own_sessions(&operator, Permission::SessionsTerminate, [("s2", "bob")]).expect("operator");
        let anonymous = Identity::anonymous(None);
        authorize_own_sessions(&anonymous, Permission::SessionsTerminate, [("s2", "bob")]).expect("auth off");
    }

    #[test]
    fn lists_of_a_plain_user_are_narrowed_to_their_own_sessions() {
        let alice = user("alice");
        let scope = SessionScope::of(&alice, Permission::SessionsRead);
        assert_eq!(scope, SessionScope::OwnedBy("alice".into()));
        assert_eq!(
            scope.user_filter(None, Permission::SessionsRead, &[]).unwrap(),
            Some("alice".into())
        );
        assert_eq!(
            scope
                .user_filter(Some("alice".into()), Permission::SessionsRead, &[])
                .unwrap(),
            Some("alice".into())
        );
        assert!(matches!(
            scope.user_filter(Some("bob".into()), Permission::SessionsRead, &[]),
            Err(ServiceError::PermissionDenied(_))
        ));

        let viewer = Identity::person("vera", vec!["viewer".into()]);
        let scope = SessionScope::of(&viewer, Permission::SessionsRead);
        assert_eq!(scope, SessionScope::All);
        assert_eq!(
            scope
                .user_filter(Some("bob".into()), Permission::SessionsRead, &viewer.roles)
                .unwrap(),
            Some("bob".into())
        );
        assert_eq!(
            scope
                .user_filter(None, Permission::SessionsRead, &viewer.roles)
                .unwrap(),
            None
        );
    }
}
