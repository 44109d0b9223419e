//! The `[auth]` section: how callers prove who they are, and what this process presents when it
//! calls another Vigil service.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Whether callers must authenticate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Nobody authenticates: every caller is anonymous and may do everything. For development and
    /// tests on loopback only.
    #[default]
    Off,
    /// Every call except health, reflection and the gateway link (which authenticates in its hello)
    /// needs a valid bearer token, and the token's roles decide what it may do.
    Required,
}

/// A secret string from the configuration: shown as `<redacted>` by `Debug`, compared by the
/// authenticator in constant time. Serialised as itself, so a configuration round-trips
/// (`print-config` masks it by its key's name).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the code that checks or sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "<empty>" } else { "<redacted>" })
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

/// An opaque API token for a person or a tool (a CI job, a dashboard): the token string, whom it
/// stands for and with which roles.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiToken {
    pub token: Secret,
    pub subject: String,
    /// `viewer`, `operator`, `admin` (and `service`, though service tokens say so more plainly).
    pub roles: Vec<String>,
}

/// An opaque token another Vigil service presents (the registry calling termination, policy
/// calling the registry…): its caller has the `service` role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceToken {
    pub token: Secret,
    /// The calling service's name (`vigil-registry`): what the audit trail records when it acts.
    pub subject: String,
}

/// Settings of authentication, per process (the `[auth]` section).
///
/// People and tools present `authorization: Bearer <token>`: a JWT signed with `hs256_secret`
/// (HS256) or by a key of the `jwks_file` (RS256, ES256), with `sub`, `exp` and a `roles` array;
/// or one of the opaque `api_tokens` / `service_tokens`. Gateways authenticate in their hello, with
/// their entry of `gateway_credentials` or a client certificate naming them (see `[tls]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub mode: AuthMode,
    /// Key of HS256 JWTs (at least 32 bytes). The all-in-one generates one on first start.
    pub hs256_secret: Option<Secret>,
    /// A JSON Web Key Set (RFC 7517) with the public keys of RS256 and ES256 JWTs, as an identity
    /// provider publishes it. Read at start-up.
    pub jwks_file: Option<PathBuf>,
    /// When set, JWTs must carry this `iss`.
    pub issuer: Option<String>,
    /// When set, JWTs must carry this `aud`.
    pub audience: Option<String>,
    /// Opaque tokens for people and tools.
    pub api_tokens: Vec<ApiToken>,
    /// Opaque tokens other Vigil services present; their callers have the `service` role. This (or
    /// an `api_tokens` entry an administrator configured with that role) is the only way to the
    /// `service` role: a JWT's `roles` claim cannot grant it, since whoever issues people's tokens
    /// (an identity provider) must not be able to mint callers of the internal RPCs.
    pub service_tokens: Vec<ServiceToken>,
    /// Each gateway's credential, by gateway id: an agent's hello must carry its gateway's (unless
    /// its client certificate names the gateway).
    pub gateway_credentials: BTreeMap<String, Secret>,
    /// The bearer token this process sends when it calls another Vigil service (one of that
    /// service's `service_tokens`).
    pub outgoing_token: Option<Secret>,
    /// Longest a JWT may still be valid for when it is presented: a token whose `exp` lies further
    /// ahead is refused, so a leaked or mis-issued long-lived token (an `exp` in the year 3000)
    /// does not work for ever. Opaque tokens are configuration and are not concerned.
    #[serde(with = "humantime_serde")]
    pub max_token_lifetime: std::time::Duration,
}

/// The default of `auth.max_token_lifetime`: the all-in-one's administrator token lasts 30 days.
pub const DEFAULT_MAX_TOKEN_LIFETIME: std::time::Duration = std::time::Duration::from_secs(31 * 24 * 3600);

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: AuthMode::default(),
            hs256_secret: None,
            jwks_file: None,
            issuer: None,
            audience: None,
            api_tokens: Vec::new(),
            service_tokens: Vec::new(),
            gateway_credentials: BTreeMap::new(),
            outgoing_token: None,
            max_token_lifetime: DEFAULT_MAX_TOKEN_LIFETIME,
        }
    }
}

impl AuthConfig {
    /// Authentication required, with no way to authenticate configured yet: the start of a
    /// configuration built in code (tests, the all-in-one).
    pub fn required() -> Self {
        Self {
            mode: AuthMode::Required,
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let config = AuthConfig {
            mode: AuthMode::Required,
            hs256_secret: Some("hs-secret-value-0123456789abcdef!".into()),
            api_tokens: vec![ApiToken {
                token: "api-token-value".into(),
                subject: "alice".into(),
                roles: vec!["admin".into()],
            }],
            service_tokens: vec![ServiceToken {
                token: "service-token-value".into(),
                subject: "vigil-registry".into(),
            }],
            gateway_credentials: BTreeMap::from([("gw-1".to_owned(), Secret::from("gateway-credential-value"))]),
            outgoing_token: Some("outgoing-token-value".into()),
            ..AuthConfig::default()
        };
        let debug = format!("{config:?}");
        for secret in [
            "hs-secret-value",
            "api-token-value",
            "service-token-value",
            "gateway-credential-value",
            "outgoing-token-value",
        ] {
            assert!(!debug.contains(secret), "{secret} shows in {debug}");
        }
        assert!(debug.contains("alice") && debug.contains("gw-1"), "{debug}");
    }

    #[test]
    fn print_config_masks_every_secret() {
        let config = AuthConfig {
            hs256_secret: Some("hs-secret-value".into()),
            api_tokens: vec![ApiToken {
                token: "api-token-value".into(),
                subject: "alice".into(),
                roles: vec!["viewer".into()],
            }],
            gateway_credentials: BTreeMap::from([("gw-1".to_owned(), Secret::from("gateway-credential-value"))]),
            outgoing_token: Some("outgoing-token-value".into()),
            ..AuthConfig::required()
        };
        let rendered = crate::config::describe(&config).expect("renders");
        for secret in [
            "hs-secret-value",
            "api-token-value",
            "gateway-credential-value",
            "outgoing-token-value",
        ] {
            assert!(!rendered.contains(secret), "{secret} shows in {rendered}");
        }
        assert!(rendered.contains("alice") && rendered.contains("gw-1"), "{rendered}");
    }
}
