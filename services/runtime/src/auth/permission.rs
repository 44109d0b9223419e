//! What each role may do, and what each RPC needs: the one place access rules are written down.
//!
//! Every RPC of every Vigil service has an entry in [`access_for`], by its full method path
//! (`/vigil.v1.TerminationService/Terminate`). A path without one is refused when authentication
//! is required (a new RPC cannot slip through unguarded; a test checks the tables against the
//! descriptor set, so a missing entry fails the build's tests rather than production calls).

use std::fmt;

use crate::ServiceError;

/// Something a caller may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// See every session, the statistics, the change feed and the gateways.
    SessionsRead,
    /// End any sessions, by id, user, gateway or resource.
    SessionsTerminate,
    /// End every session at once (an end-all).
    SessionsTerminateAll,
    /// Read the terminations (who ended what, and whether the gateways did it).
    TerminationsRead,
    /// Read the policies and the rules in force.
    PoliciesRead,
    /// Create, change and delete policies.
    PoliciesWrite,
    /// Create and remove locks (which also end the sessions a lock covers): what an incident
    /// responder does, so operators may, like ending sessions.
    LocksWrite,
    /// Read the audit trail of policy changes.
    AuditRead,
    /// See the event sinks and how their delivery stands (counts, backlog, last error; never a
    /// secret or a webhook's path).
    EventsRead,
    /// Send a test event through a sink, to the security team's own systems.
    EventsTest,
    /// The RPCs Vigil services call on each other (admission, command reports, resolution…).
    Internal,
}

impl Permission {
    /// The name shown to callers: `sessions:terminate`.
    pub fn name(self) -> &'static str {
        match self {
            Permission::SessionsRead => "sessions:read",
            Permission::SessionsTerminate => "sessions:terminate",
            Permission::SessionsTerminateAll => "sessions:terminate-all",
            Permission::TerminationsRead => "terminations:read",
            Permission::PoliciesRead => "policies:read",
            Permission::PoliciesWrite => "policies:write",
            Permission::LocksWrite => "locks:write",
            Permission::AuditRead => "audit:read",
            Permission::EventsRead => "events:read",
            Permission::EventsTest => "events:test",
            Permission::Internal => "internal",
        }
    }

    /// The least role that has this permission, to tell a refused caller what to ask for.
    pub fn least_role(self) -> Role {
        [Role::Viewer, Role::Operator, Role::Admin, Role::Service]
            .into_iter()
            .find(|role| role.grants(self))
            .unwrap_or(Role::Admin)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A role a token can carry (in its `roles` claim, or an API token's `roles`). Other role names
/// are kept on the identity but grant nothing; a caller without any of these is a plain user, who
/// may still see and end their own sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sees everything: sessions, statistics, the change feed, gateways, terminations, policies,
    /// the audit trail.
    Viewer,
    /// A viewer who may also end sessions (not all at once) and lock users, groups, resources,
    /// gateways, devices and networks out.
    Operator,
    /// An operator who may also end every session at once, change policies and send test events.
    Admin,
    /// Another Vigil service: the internal RPCs, and reading and ending sessions on behalf of
    /// admission and the policy sweeper.
    Service,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
            Role::Service => "service",
        }
    }

    /// The role a name means, if any (case-insensitive).
    pub fn parse(name: &str) -> Option<Self> {
        [Role::Viewer, Role::Operator, Role::Admin, Role::Service]
            .into_iter()
            .find(|role| role.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether this role has `permission`.
    pub fn grants(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Viewer => matches!(
                permission,
                SessionsRead | TerminationsRead | PoliciesRead | AuditRead | EventsRead
            ),
            Role::Operator => Role::Viewer.grants(permission) || matches!(permission, SessionsTerminate | LocksWrite),
            Role::Admin => {
                Role::Operator.grants(permission)
                    || matches!(permission, SessionsTerminateAll | PoliciesWrite | EventsTest)
            }
            // No end-all and no policy changes: a leaked service token cannot do what only an
            // admin may.
            Role::Service => matches!(permission, Internal | SessionsRead | SessionsTerminate),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What an RPC asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, authenticated or not: health and reflection (probes and tools must reach them;
    /// they reveal nothing but the API's shape, which is public).
    Public,
    /// The gateway link: agents prove their gateway in the hello (credential or client
    /// certificate), which the link checks — see [`authenticate_gateway`](super::authenticate_gateway).
    Gateway,
    /// Any authenticated caller; holders of the permission act on every session, others only on
    /// their own — which the handler enforces once it knows whose the sessions are (see
    /// [`SessionScope`](super::SessionScope) and [`authorize_own_sessions`](super::authorize_own_sessions)).
    OwnSessionsOr(Permission),
    /// An authenticated caller holding the permission.
    Requires(Permission),
    /// An authenticated caller holding either permission: a read that people (the first, named when
    /// refusing) and other Vigil services (the second) both need.
    RequiresEither(Permission, Permission),
    /// Any authenticated caller, whatever their roles: the console's "who am I".
    Authenticated,
}

/// The access rule of a method, by its full path; `None` for paths no table knows.
pub fn access_for(path: &str) -> Option<Access> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    let table: &[(&str, Access)] = match service {
        "grpc.health.v1.Health"
        | "grpc.reflection.v1.ServerReflection"
        | "grpc.reflection.v1alpha.ServerReflection" => return Some(Access::Public),
        "vigil.v1.SessionRegistry" => SESSION_REGISTRY,
        "vigil.v1.GatewayLink" => GATEWAY_LINK,
        "vigil.v1.TerminationService" => TERMINATION_SERVICE,
        "vigil.v1.PolicyService" => POLICY_SERVICE,
        "vigil.v1.GeoService" => GEO_SERVICE,
        "vigil.v1.ConsoleService" => CONSOLE_SERVICE,
        "vigil.v1.EventsService" => EVENTS_SERVICE,
        _ => return None,
    };
    table
        .iter()
        .find(|(name, _)| *name == method)
        .map(|(_, access)| *access)
}

use Access::{Gateway, OwnSessionsOr, Requires, RequiresEither};
use Permission::*;

/// `vigil.v1.SessionRegistry`. Listing, reading, watching and resolving sessions is open to every
/// authenticated caller, narrowed to their own sessions without `sessions:read`: a user sees what
/// they may end. `ResolveSessions` is the preview `sessionctl sessions end` shows before asking,
/// so it follows the same rule rather than being internal.
pub const SESSION_REGISTRY: &[(&str, Access)] = &[
    ("ListSessions", OwnSessionsOr(SessionsRead)),
    ("GetSession", OwnSessionsOr(SessionsRead)),
    ("GetStats", Requires(SessionsRead)),
    ("WatchSessions", OwnSessionsOr(SessionsRead)),
    ("ListGateways", Requires(SessionsRead)),
    ("ResolveSessions", OwnSessionsOr(SessionsRead)),
];

/// `vigil.v1.GatewayLink`.
pub const GATEWAY_LINK: &[(&str, Access)] = &[("Connect", Gateway)];

/// `vigil.v1.TerminationService`. `Terminate` lets every authenticated caller end their own
/// sessions; an end-all (`AllSessions` selector) needs `sessions:terminate-all`, which the handler
/// checks because it depends on the request.
pub const TERMINATION_SERVICE: &[(&str, Access)] = &[
    ("Terminate", OwnSessionsOr(SessionsTerminate)),
    ("GetTermination", Requires(TerminationsRead)),
    ("ListTerminations", Requires(TerminationsRead)),
    ("ListPendingCommands", Requires(Internal)),
    ("ReportCommands", Requires(Internal)),
];

/// `vigil.v1.PolicyService`.
pub const POLICY_SERVICE: &[(&str, Access)] = &[
    ("Admit", Requires(Internal)),
    ("CreatePolicy", Requires(PoliciesWrite)),
    ("GetPolicy", Requires(PoliciesRead)),
    ("ListPolicies", Requires(PoliciesRead)),
    ("UpdatePolicy", Requires(PoliciesWrite)),
    ("DeletePolicy", Requires(PoliciesWrite)),
    ("GetEffectivePolicy", Requires(PoliciesRead)),
    ("CreateLock", Requires(LocksWrite)),
    // Registry replicas load the lock set to push it to their gateways.
    ("ListLocks", RequiresEither(PoliciesRead, Internal)),
    ("DeleteLock", Requires(LocksWrite)),
    ("ReleaseSessions", Requires(Internal)),
    ("ListAuditEvents", Requires(AuditRead)),
];

/// `vigil.v1.GeoService`: only the registry's admission asks it.
pub const GEO_SERVICE: &[(&str, Access)] = &[("Locate", Requires(Internal)), ("Assess", Requires(Internal))];

/// `vigil.v1.ConsoleService`: the sign-in code is the credential of its own exchange (one use, short
/// life), so the exchange is open; "who am I" needs a token but no role.
pub const CONSOLE_SERVICE: &[(&str, Access)] = &[
    ("ExchangeSignInCode", Access::Public),
    ("WhoAmI", Access::Authenticated),
];

/// `vigil.v1.EventsService`: served by every process that runs an event relay. Seeing the sinks is a
/// read like the audit trail's; a test event lands in the security team's SIEM or chat, so only an
/// admin sends one.
pub const EVENTS_SERVICE: &[(&str, Access)] =
    &[("ListSinks", Requires(EventsRead)), ("TestSink", Requires(EventsTest))];

/// Every permission, in the order the console lists them.
pub const ALL_PERMISSIONS: &[Permission] = &[
    SessionsRead,
    SessionsTerminate,
    SessionsTerminateAll,
    TerminationsRead,
    PoliciesRead,
    PoliciesWrite,
    LocksWrite,
    AuditRead,
    EventsRead,
    EventsTest,
    Internal,
];

/// The refusal of a caller who lacks `permission`.
pub fn denied(permission: Permission, roles: &[String]) -> ServiceError {
    ServiceError::PermissionDenied(format!(
        "requires the `{permission}` permission ({}); you have: {}",
        permission.least_role(),
        describe_roles(roles)
    ))
}

/// `viewer`, `operator, auditor`, or `no role`.
pub fn describe_roles(roles: &[String]) -> String {
    if roles.is_empty() {
        "no role".to_owned()
    } else {
        roles.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn roles_build_on_each_other() {
        for permission in [SessionsRead, TerminationsRead, PoliciesRead, AuditRead, EventsRead] {
            assert!(Role::Viewer.grants(permission), "{permission}");
            assert!(Role::Operator.grants(permission), "{permission}");
            assert!(Role::Admin.grants(permission), "{permission}");
        }
        assert!(!Role::Viewer.grants(SessionsTerminate));
        assert!(Role::Operator.grants(SessionsTerminate));
        assert!(!Role::Operator.grants(SessionsTerminateAll));
        assert!(!Role::Operator.grants(PoliciesWrite));
        assert!(!Role::Viewer.grants(LocksWrite));
        assert!(Role::Operator.grants(LocksWrite));
        assert!(Role::Admin.grants(LocksWrite));
        assert!(
            !Role::Service.grants(LocksWrite),
            "a service token cannot lock anyone out"
        );
        assert!(Role::Admin.grants(SessionsTerminateAll));
        assert!(Role::Admin.grants(PoliciesWrite));
        assert!(Role::Admin.grants(EventsTest));
        assert!(
            !Role::Operator.grants(EventsTest),
            "test events go to the SOC: admins only"
        );
        assert!(!Role::Service.grants(EventsTest));
        assert!(!Role::Admin.grants(Internal), "people do not call internal RPCs");
        assert!(Role::Service.grants(Internal));
        assert!(!Role::Service.grants(SessionsTerminateAll));
        assert!(!Role::Service.grants(PoliciesWrite));
    }

    #[test]
    fn refusals_name_the_permission_the_least_role_and_what_the_caller_has() {
        let error = denied(SessionsTerminate, &["viewer".to_owned()]);
        assert_eq!(
            error.to_string(),
            "requires the `sessions:terminate` permission (operator); you have: viewer"
        );
        let error = denied(PoliciesWrite, &[]);
        assert_eq!(
            error.to_string(),
            "requires the `policies:write` permission (admin); you have: no role"
        );
        assert_eq!(Internal.least_role(), Role::Service);
    }

    #[test]
    fn role_names_parse_in_any_case() {
        assert_eq!(Role::parse("Admin"), Some(Role::Admin));
        assert_eq!(Role::parse(" viewer "), Some(Role::Viewer));
        assert_eq!(Role::parse("auditor"), None);
    }

    #[test]
    fn unknown_paths_have_no_rule() {
        assert_eq!(access_for("/vigil.v1.SessionRegistry/DropTables"), None);
        assert_eq!(access_for("/other.Service/Method"), None);
        assert_eq!(access_for("garbage"), None);
        assert_eq!(access_for("/grpc.health.v1.Health/Watch"), Some(Access::Public));
    }

    /// Every RPC of every `vigil.v1` service has a rule, and every rule names a real RPC.
    #[test]
    fn the_tables_cover_exactly_the_rpcs_of_the_descriptor_set() {
        let descriptors = prost_types::FileDescriptorSet::decode(vigil_proto::FILE_DESCRIPTOR_SET)
            .expect("the descriptor set decodes");
        let mut rpcs = Vec::new();
        for file in descriptors.file.iter().filter(|file| file.package() == "vigil.v1") {
            for service in &file.service {
                for method in &service.method {
                    rpcs.push(format!("/vigil.v1.{}/{}", service.name(), method.name()));
                }
            }
        }
        assert!(rpcs.len() > 20, "the descriptor set lists the RPCs: {rpcs:?}");
        for rpc in &rpcs {
            assert!(access_for(rpc).is_some(), "{rpc} has no access rule");
        }
        let tables = [
            ("SessionRegistry", SESSION_REGISTRY),
            ("GatewayLink", GATEWAY_LINK),
            ("TerminationService", TERMINATION_SERVICE),
            ("PolicyService", POLICY_SERVICE),
            ("GeoService", GEO_SERVICE),
            ("ConsoleService", CONSOLE_SERVICE),
            ("EventsService", EVENTS_SERVICE),
        ];
        for (service, table) in tables {
            for (method, _) in table {
                let path = format!("/vigil.v1.{service}/{method}");
                assert!(rpcs.contains(&path), "the rule for {path} names no RPC");
            }
        }
    }
}
