//! Who may call what: authentication of people, tools, services and gateways, and the per-RPC
//! permission tables — enforced once, by [`AuthLayer`] in every [`Server`](crate::server::Server).
//!
//! - People and tools present `authorization: Bearer <token>`: a JWT (HS256 with the configured
//!   secret; RS256/ES256 with a key of the configured JWKS file) carrying `sub`, `exp` and `roles`,
//!   or an opaque API token from the configuration. Services present a service token.
//! - Roles ([`Role`]): `viewer` sees everything; `operator` may also end sessions; `admin` may also
//!   end every session at once and change policies; `service` is another Vigil service. Every
//!   authenticated caller, with or without a role, may see and end their own sessions.
//! - [`permission`]'s tables give each RPC its [`Access`] rule. The layer authenticates the caller,
//!   checks the rule and puts the caller's [`Identity`] into the request's extensions; handlers read
//!   it with [`Identity::of`] (the actor of what they record) and never check roles themselves —
//!   except for the own-sessions rule, which needs the sessions: [`SessionScope`] and
//!   [`authorize_own_sessions`].
//! - Gateways authenticate in their link's hello: [`authenticate_gateway`].
//! - Refusals: `UNAUTHENTICATED` with what was wrong with the token ("missing bearer token",
//!   "token expired", "token signature is invalid", "malformed token"), `PERMISSION_DENIED` naming
//!   the missing permission, the least role that has it, and the caller's roles.

mod authenticator;
mod config;
mod gateway;
mod identity;
mod layer;
mod own;
pub mod permission;

pub use authenticator::{AuthConfigError, Authenticator, Claims, MIN_HS256_SECRET_LEN, issue_hs256};
pub use config::{ApiToken, AuthConfig, AuthMode, Secret, ServiceToken};
pub use gateway::{GATEWAY_URI_PREFIX, GatewayProof, authenticate_gateway, certificate_names};
pub use identity::{Identity, IdentityKind};
pub use layer::{AuthLayer, AuthService};
pub use own::{SessionScope, authorize_own_sessions};
pub use permission::{Access, Permission, Role};
