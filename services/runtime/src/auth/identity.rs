//! Who is calling: what the auth layer puts into each request's extensions.

use std::fmt;
use std::net::IpAddr;

use super::permission::{Permission, Role, denied};
use crate::{ServiceError, ServiceResult};

/// What kind of caller an identity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityKind {
    /// A person or a tool, authenticated by a JWT or an API token.
    Person,
    /// Another Vigil service, authenticated by a service token (or a JWT with the `service` role).
    Service,
    /// Nobody in particular: authentication is off, and every caller may do everything.
    Anonymous,
}

/// The caller of a request, as established by the auth layer.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// Who: a JWT's `sub`, an API token's subject, a service's name; `anonymous@<ip>` when
    /// authentication is off. This is what the audit trail records as the actor.
    pub subject: String,
    /// The roles the token carries, as written (unknown names grant nothing).
    pub roles: Vec<String>,
    pub kind: IdentityKind,
}

impl Identity {
    /// A person or tool with these roles.
    pub fn person(subject: impl Into<String>, roles: Vec<String>) -> Self {
        Self {
            subject: subject.into(),
            roles,
            kind: IdentityKind::Person,
        }
    }

    /// Another Vigil service.
    pub fn service(subject: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            roles: vec![Role::Service.name().to_owned()],
            kind: IdentityKind::Service,
        }
    }

    /// The caller when authentication is off, named by its address (so the audit trail still
    /// says where an action came from).
    pub fn anonymous(peer: Option<IpAddr>) -> Self {
        Self {
            subject: match peer {
                Some(ip) => format!("anonymous@{ip}"),
                None => "anonymous@local".to_owned(),
            },
            roles: Vec::new(),
            kind: IdentityKind::Anonymous,
        }
    }

    /// Whether this caller has `permission`. Anonymous callers (authentication off) have every
    /// permission.
    pub fn has(&self, permission: Permission) -> bool {
        self.kind == IdentityKind::Anonymous
            || self
                .roles
                .iter()
                .filter_map(|name| Role::parse(name))
                .any(|role| role.grants(permission))
    }

    /// `Ok` when this caller has `permission`; otherwise `PermissionDenied` naming it.
    pub fn require(&self, permission: Permission) -> ServiceResult<()> {
        if self.has(permission) {
            Ok(())
        } else {
            Err(denied(permission, &self.roles))
        }
    }

    /// The identity the auth layer attached to `request`.
    ///
    /// Every request through a [`Server`](crate::server::Server) has one. A request without one was
    /// not routed through the auth layer — a wiring mistake — and is refused rather than trusted.
    pub fn of<T>(request: &tonic::Request<T>) -> ServiceResult<&Identity> {
        Self::from_extensions(request.extensions())
    }

    /// Like [`Identity::of`], from the extensions of a request already taken apart.
    pub fn from_extensions(extensions: &tonic::Extensions) -> ServiceResult<&Identity> {
        extensions.get::<Identity>().ok_or_else(|| {
            ServiceError::Unauthenticated("the request carries no identity; it was not authenticated".into())
        })
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("subject", &self.subject)
            .field("roles", &self.roles)
            .field("kind", &self.kind)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_come_from_known_roles_only() {
        let viewer = Identity::person("vera", vec!["viewer".into(), "auditor".into()]);
        assert!(viewer.has(Permission::SessionsRead));
        assert!(!viewer.has(Permission::SessionsTerminate));
        let error = viewer.require(Permission::SessionsTerminate).unwrap_err();
        assert_eq!(
            error.to_string(),
            "requires the `sessions:terminate` permission (operator); you have: viewer, auditor"
        );

        let user = Identity::person("uma", Vec::new());
        assert!(!user.has(Permission::SessionsRead));

        let service = Identity::service("vigil-registry");
        assert!(service.has(Permission::Internal));
        assert_eq!(service.kind, IdentityKind::Service);
    }

    #[test]
    fn anonymous_callers_may_do_everything_and_are_named_by_address() {
        let anonymous = Identity::anonymous(Some("10.1.2.3".parse().unwrap()));
        assert_eq!(anonymous.subject, "anonymous@10.1.2.3");
        assert!(anonymous.has(Permission::SessionsTerminateAll));
        assert!(anonymous.has(Permission::Internal));
        assert_eq!(Identity::anonymous(None).subject, "anonymous@local");
    }

    #[test]
    fn a_request_without_identity_is_refused() {
        let request = tonic::Request::new(());
        let error = Identity::of(&request).unwrap_err();
        assert!(matches!(error, ServiceError::Unauthenticated(_)));
    }
}
