//! Checking credentials: bearer tokens (JWTs and opaque tokens) and gateway credentials.
//!
//! Built once from [`AuthConfig`] at start-up (keys parsed, the JWKS file read, secrets hashed),
//! then shared by every request.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::config::{AuthConfig, AuthMode};
use super::identity::{Identity, IdentityKind};
use super::permission::Role;
use crate::{ServiceError, ServiceResult};

/// Shortest HS256 secret accepted: RFC 7518 asks for a key at least as long as the hash.
pub const MIN_HS256_SECRET_LEN: usize = 32;
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 30;

/// Why an [`AuthConfig`] cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid auth configuration: {0}")]
pub struct AuthConfigError(pub String);

/// A verification key of signed tokens.
struct VerificationKey {
    /// The JWKS `kid`, when the key has one.
    id: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// An opaque token, known by its SHA-256: comparing digests in constant time reveals neither the
/// token nor its length.
struct OpaqueToken {
    digest: [u8; 32],
    identity: Identity,
}

/// Checks bearer tokens and gateway credentials against the configuration.
pub struct Authenticator {
    mode: AuthMode,
    keys: Vec<VerificationKey>,
    issuer: Option<String>,
    audience: Option<String>,
    /// Seconds; see `auth.max_token_lifetime`.
    max_lifetime: u64,
    opaque: Vec<OpaqueToken>,
    gateways: BTreeMap<String, [u8; 32]>,
}

/// The claims Vigil reads from a JWT (`exp`, `nbf`, `iss` and `aud` are checked by the library).
/// `sub` and `exp` default when absent so that the library's required-claims check, rather than a
/// parse error, reports their absence.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    #[serde(default)]
    pub sub: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

impl Authenticator {
    /// Everything allowed, nobody checked: what a [`Server`](crate::server::Server) uses unless told
    /// otherwise.
    pub fn off() -> Self {
        Self {
            mode: AuthMode::Off,
            keys: Vec::new(),
            issuer: None,
            audience: None,
            max_lifetime: super::config::DEFAULT_MAX_TOKEN_LIFETIME.as_secs(),
            opaque: Vec::new(),
            gateways: BTreeMap::new(),
        }
    }

    /// Builds the authenticator of a configuration, reading the JWKS file if one is named.
    ///
    /// Refuses a configuration that cannot work: authentication required with nothing to
    /// authenticate with, a short HS256 secret, an empty or duplicated token, an unreadable JWKS.
    pub fn from_config(config: &AuthConfig) -> Result<Self, AuthConfigError> {
        let invalid = |message: String| Err(AuthConfigError(message));
        let keys = verification_keys(config)?;
        let opaque = opaque_tokens(config)?;
        let gateways = gateway_credentials(config)?;
        if config.mode == AuthMode::Required && keys.is_empty() && opaque.is_empty() {
            return invalid(
                "auth.mode is \"required\" but nothing can authenticate a caller: set auth.hs256_secret, \
                 auth.jwks_file, auth.api_tokens or auth.service_tokens"
                    .into(),
            );
        }
        if config.max_token_lifetime.is_zero() {
            return invalid("auth.max_token_lifetime must be longer than zero".into());
        }
        Ok(Self {
            mode: config.mode,
            keys,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            max_lifetime: config.max_token_lifetime.as_secs(),
            opaque,
            gateways,
        })
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// The identity an `authorization` header value proves.
    ///
    /// `Unauthenticated` with a reason a person can act on: "missing bearer token", "token expired",
    /// "token signature is invalid", "malformed token"…
    pub fn authenticate(&self, authorization: Option<&str>) -> ServiceResult<Identity> {
        let unauthenticated = |message: &str| Err(ServiceError::Unauthenticated(message.to_owned()));
        let Some(value) = authorization else {
            return unauthenticated("missing bearer token: send `authorization: Bearer <token>`");
        };
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => token.trim(),
            _ => return unauthenticated("the authorization header must be `Bearer <token>`"),
        };
        if let Some(identity) = self.opaque_token(token) {
            return Ok(identity);
        }
        if token.split('.').count() == 3 {
            return self.jwt(token);
        }
        unauthenticated("unknown token")
    }

    /// The identity of a configured opaque token. Every entry is compared, so the time taken says
    /// nothing about which one matched.
    fn opaque_token(&self, token: &str) -> Option<Identity> {
        let digest = sha256(token);
        let mut found = None;
        for known in &self.opaque {
            if bool::from(known.digest.ct_eq(&digest)) {
                found = Some(known.identity.clone());
            }
        }
        found
    }

    fn jwt(&self, token: &str) -> ServiceResult<Identity> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| malformed())?;
        let candidates: Vec<&VerificationKey> = self
            .keys
            .iter()
            .filter(|key| key.algorithm == header.alg)
            .filter(|key| match (&header.kid, &key.id) {
                (Some(wanted), Some(id)) => wanted == id,
                _ => true,
            })
            .collect();
        if candidates.is_empty() {
            let message = match &header.kid {
                Some(kid) if self.keys.iter().any(|key| key.algorithm == header.alg) => {
                    format!("no configured key has the token's key id {kid:?}")
                }
                _ => format!("{:?} tokens are not accepted here", header.alg),
            };
            return Err(ServiceError::Unauthenticated(message));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECONDS;
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_nbf = true;
        match &self.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                validation.required_spec_claims.insert("iss".to_owned());
            }
            None => validation.iss = None,
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                validation.required_spec_claims.insert("aud".to_owned());
            }
            // Without a configured audience, a token's `aud` is not ours to judge.
            None => validation.validate_aud = false,
        }
        // Several keys may fit (no `kid`): the first that verifies wins; otherwise the most telling error.
        let mut last_error = None;
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => {
                    let claims = data.claims;
                    if claims.sub.trim().is_empty() {
                        return Err(ServiceError::Unauthenticated("the token's `sub` is empty".into()));
                    }
                    // The subject is what the audit trail records as the actor.
                    if claims.sub.chars().count() > 256 || claims.sub.chars().any(char::is_control) {
                        return Err(ServiceError::Unauthenticated(
                            "the token's `sub` is longer than 256 characters or holds control characters".into(),
                        ));
                    }
                    let latest = jsonwebtoken::get_current_timestamp()
                        .saturating_add(self.max_lifetime)
                        .saturating_add(LEEWAY_SECONDS);
                    if claims.exp > latest {
                        return Err(ServiceError::Unauthenticated(format!(
                            "token is valid for longer than auth.max_token_lifetime allows ({}s); ask for a shorter-lived token",
                            self.max_lifetime
                        )));
                    }
                    // The `service` role is for other Vigil services, which present service tokens:
                    // whoever signs people's tokens cannot grant it, so it is dropped from a JWT.
                    let roles = claims
                        .roles
                        .into_iter()
                        .filter(|role| Role::parse(role) != Some(Role::Service))
                        .collect();
                    return Ok(Identity::person(claims.sub, roles));
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.map_or_else(malformed, |error| jwt_error(&error)))
    }

    /// Whether `credential` is `gateway_id`'s configured credential; `Some(other)` names the gateway
    /// whose credential it is instead, if any.
    pub(crate) fn gateway_credential(&self, gateway_id: &str, credential: &str) -> CredentialMatch {
        let digest = sha256(credential);
        let mut result = CredentialMatch::Unknown;
        // Every credential is compared, in constant time each.
        for (gateway, known) in &self.gateways {
            if bool::from(known.ct_eq(&digest)) {
                result = if gateway == gateway_id {
                    CredentialMatch::Matches
                } else if result == CredentialMatch::Matches {
                    result
                } else {
                    CredentialMatch::OtherGateway
                };
            }
        }
        result
    }
}

/// What a gateway credential turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CredentialMatch {
    /// The credential of the gateway it was presented for.
    Matches,
    /// Another gateway's credential.
    OtherGateway,
    /// Nobody's.
    Unknown,
}

fn malformed() -> ServiceError {
    ServiceError::Unauthenticated("malformed token".into())
}

/// A JWT failure in words a person can act on.
fn jwt_error(error: &jsonwebtoken::errors::Error) -> ServiceError {
    use jsonwebtoken::errors::ErrorKind;
    let message = match error.kind() {
        ErrorKind::ExpiredSignature => "token expired".to_owned(),
        ErrorKind::InvalidSignature => "token signature is invalid".to_owned(),
        ErrorKind::ImmatureSignature => "token is not valid yet (nbf)".to_owned(),
        ErrorKind::InvalidIssuer => "token issuer is not accepted".to_owned(),
        ErrorKind::InvalidAudience => "token audience is not accepted".to_owned(),
        ErrorKind::MissingRequiredClaim(claim) => format!("token lacks the `{claim}` claim"),
        ErrorKind::InvalidAlgorithm => "token algorithm does not match its key".to_owned(),
        _ => "malformed token".to_owned(),
    };
    ServiceError::Unauthenticated(message)
}

/// The keys JWTs are checked with: the HS256 secret (long enough) and the JWKS file's keys.
fn verification_keys(config: &AuthConfig) -> Result<Vec<VerificationKey>, AuthConfigError> {
    let mut keys = Vec::new();
    if let Some(secret) = &config.hs256_secret {
        if secret.expose().len() < MIN_HS256_SECRET_LEN {
            return Err(AuthConfigError(format!(
                "auth.hs256_secret must be at least {MIN_HS256_SECRET_LEN} bytes long"
            )));
        }
        keys.push(VerificationKey {
            id: None,
            algorithm: Algorithm::HS256,
            key: DecodingKey::from_secret(secret.expose().as_bytes()),
        });
    }
    if let Some(path) = &config.jwks_file {
        keys.extend(read_jwks(path)?);
    }
    Ok(keys)
}

/// The API and service tokens, kept as digests with the identity each proves; each must be given whole
/// and only once. A person's token holding the service role authenticates a service.
fn opaque_tokens(config: &AuthConfig) -> Result<Vec<OpaqueToken>, AuthConfigError> {
    let mut opaque = Vec::new();
    let tokens = config
        .api_tokens
        .iter()
        .map(|token| {
            (
                &token.token,
                Identity::person(token.subject.clone(), token.roles.clone()),
            )
        })
        .chain(
            config
                .service_tokens
                .iter()
                .map(|token| (&token.token, Identity::service(token.subject.clone()))),
        );
    for (token, mut identity) in tokens {
        if token.is_empty() || identity.subject.trim().is_empty() {
            return Err(AuthConfigError(
                "every auth.api_tokens / auth.service_tokens entry needs a token and a subject".into(),
            ));
        }
        if identity
            .roles
            .iter()
            .any(|role| Role::parse(role) == Some(Role::Service))
        {
            identity.kind = IdentityKind::Service;
        }
        let digest = sha256(token.expose());
        if opaque.iter().any(|known: &OpaqueToken| known.digest == digest) {
            return Err(AuthConfigError(format!(
                "the token of {} is configured twice",
                identity.subject
            )));
        }
        opaque.push(OpaqueToken { digest, identity });
    }
    Ok(opaque)
}

/// Each gateway's credential, kept as a digest; none may be empty.
fn gateway_credentials(config: &AuthConfig) -> Result<BTreeMap<String, [u8; 32]>, AuthConfigError> {
    let mut gateways = BTreeMap::new();
    for (gateway, credential) in &config.gateway_credentials {
        if credential.is_empty() {
            return Err(AuthConfigError(format!("auth.gateway_credentials.{gateway} is empty")));
        }
        gateways.insert(gateway.clone(), sha256(credential.expose()));
    }
    Ok(gateways)
}

fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// The RS256 and ES256 keys of a JWKS file. Keys of other kinds are skipped with a warning (an
/// identity provider's set often holds encryption keys too); a file with no usable key is an error.
fn read_jwks(path: &Path) -> Result<Vec<VerificationKey>, AuthConfigError> {
    let text = std::fs::read(path)
        .map_err(|error| AuthConfigError(format!("cannot read auth.jwks_file {}: {error}", path.display())))?;
    let set: JwkSet = serde_json::from_slice(&text)
        .map_err(|error| AuthConfigError(format!("auth.jwks_file {} is not a JWK set: {error}", path.display())))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        let algorithm = match (&jwk.common.key_algorithm, &jwk.algorithm) {
            (Some(KeyAlgorithm::RS256), AlgorithmParameters::RSA(_)) | (None, AlgorithmParameters::RSA(_)) => {
                Algorithm::RS256
            }
            (Some(KeyAlgorithm::ES256), AlgorithmParameters::EllipticCurve(params))
            | (None, AlgorithmParameters::EllipticCurve(params))
                if params.curve == EllipticCurve::P256 =>
            {
                Algorithm::ES256
            }
            (alg, _) => {
                tracing::warn!(kid = ?jwk.common.key_id, ?alg, "JWKS key skipped: only RS256 and ES256 (P-256) keys are used");
                continue;
            }
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|error| {
            AuthConfigError(format!(
                "auth.jwks_file {}: key {:?} is unusable: {error}",
                path.display(),
                jwk.common.key_id
            ))
        })?;
        keys.push(VerificationKey {
            id: jwk.common.key_id.clone(),
            algorithm,
            key,
        });
    }
    if keys.is_empty() {
        return Err(AuthConfigError(format!(
            "auth.jwks_file {} holds no RS256 or ES256 key",
            path.display()
        )));
    }
    Ok(keys)
}

/// Issues an HS256 token for `subject` with `roles`, valid for `ttl`: what the all-in-one hands its
/// administrator, and what tests use.
pub fn issue_hs256(secret: &str, subject: &str, roles: &[&str], ttl: Duration) -> Result<String, AuthConfigError> {
    let claims = Claims {
        sub: subject.to_owned(),
        roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        exp: jsonwebtoken::get_current_timestamp().saturating_add(ttl.as_secs()),
        iss: None,
        aud: None,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|error| AuthConfigError(format!("cannot sign a token: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::config::{ApiToken, Secret, ServiceToken};

    const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

    fn authenticator() -> Authenticator {
        Authenticator::from_config(&AuthConfig {
            hs256_secret: Some(SECRET.into()),
            api_tokens: vec![ApiToken {
                token: "opaque-operator".into(),
                subject: "ci-bot".into(),
                roles: vec!["operator".into()],
            }],
            service_tokens: vec![ServiceToken {
                token: "opaque-service".into(),
                subject: "vigil-registry".into(),
            }],
            gateway_credentials: BTreeMap::from([
                ("gw-a".to_owned(), Secret::from("cred-a")),
                ("gw-b".to_owned(), Secret::from("cred-b")),
            ]),
            ..AuthConfig::required()
        })
        .expect("valid configuration")
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    fn refusal(result: ServiceResult<Identity>) -> String {
        match result {
            Err(ServiceError::Unauthenticated(message)) => message,
            other => panic!("expected Unauthenticated, got {other:?}"),
        }
    }

    #[test]
    fn hs256_tokens_carry_subject_and_roles() {
        let token = issue_hs256(SECRET, "alice@example.com", &["viewer"], Duration::from_secs(60)).unwrap();
        let identity = authenticator().authenticate(Some(&bearer(&token))).unwrap();
        assert_eq!(identity.subject, "alice@example.com");
        assert_eq!(identity.roles, vec!["viewer".to_owned()]);
        assert_eq!(identity.kind, IdentityKind::Person);
    }

    #[test]
    fn a_jwt_cannot_grant_the_service_role() {
        let token = issue_hs256(SECRET, "policy", &["service", "viewer"], Duration::from_secs(60)).unwrap();
        let identity = authenticator().authenticate(Some(&bearer(&token))).unwrap();
        assert_eq!(identity.kind, IdentityKind::Person);
        assert_eq!(identity.roles, vec!["viewer".to_owned()]);
        assert!(!identity.has(crate::auth::Permission::Internal));
    }

    #[test]
    fn tokens_valid_for_longer_than_the_maximum_are_refused() {
        let auth = authenticator();
        let month = issue_hs256(SECRET, "alice", &["viewer"], Duration::from_secs(30 * 24 * 3600)).unwrap();
        assert!(auth.authenticate(Some(&bearer(&month))).is_ok());
        // The year 3000.
        let forever = Claims {
            sub: "alice".into(),
            roles: vec!["admin".into()],
            exp: 32_503_680_000,
            iss: None,
            aud: None,
        };
        let forever = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &forever,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert!(refusal(auth.authenticate(Some(&bearer(&forever)))).contains("auth.max_token_lifetime"));
    }

    #[test]
    fn opaque_tokens_are_recognised() {
        let identity = authenticator().authenticate(Some("Bearer opaque-operator")).unwrap();
        assert_eq!(identity.subject, "ci-bot");
        let identity = authenticator().authenticate(Some("bearer opaque-service")).unwrap();
        assert_eq!(identity, Identity::service("vigil-registry"));
    }

    #[test]
    fn bad_headers_and_tokens_are_refused_with_a_reason() {
        let auth = authenticator();
        assert!(refusal(auth.authenticate(None)).starts_with("missing bearer token"));
        assert!(refusal(auth.authenticate(Some("Basic YWxpY2U6cHc="))).contains("Bearer <token>"));
        assert!(refusal(auth.authenticate(Some("Bearer "))).contains("Bearer <token>"));
        assert_eq!(refusal(auth.authenticate(Some("Bearer nope"))), "unknown token");
        assert_eq!(refusal(auth.authenticate(Some("Bearer a.b.c"))), "malformed token");

        let expired = Claims {
            sub: "alice".into(),
            roles: vec![],
            exp: jsonwebtoken::get_current_timestamp() - 3600,
            iss: None,
            aud: None,
        };
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &expired,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(refusal(auth.authenticate(Some(&bearer(&expired)))), "token expired");

        let forged = issue_hs256(
            "another-secret-of-enough-length-000",
            "alice",
            &["admin"],
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(
            refusal(auth.authenticate(Some(&bearer(&forged)))),
            "token signature is invalid"
        );
    }

    #[test]
    fn configurations_that_cannot_work_are_refused() {
        let error = Authenticator::from_config(&AuthConfig::required())
            .err()
            .expect("nothing to check with");
        assert!(error.to_string().contains("nothing can authenticate"), "{error}");
        let error = Authenticator::from_config(&AuthConfig {
            hs256_secret: Some("short".into()),
            ..AuthConfig::required()
        })
        .err()
        .expect("short secret");
        assert!(error.to_string().contains("at least 32 bytes"), "{error}");
        let error = Authenticator::from_config(&AuthConfig {
            jwks_file: Some("/nonexistent/jwks.json".into()),
            ..AuthConfig::required()
        })
        .err()
        .expect("no file");
        assert!(error.to_string().contains("cannot read auth.jwks_file"), "{error}");
        assert!(
            Authenticator::from_config(&AuthConfig::default()).is_ok(),
            "off needs nothing"
        );
    }

    #[test]
    fn gateway_credentials_are_matched_to_their_gateway() {
        let auth = authenticator();
        assert_eq!(auth.gateway_credential("gw-a", "cred-a"), CredentialMatch::Matches);
        assert_eq!(auth.gateway_credential("gw-a", "cred-b"), CredentialMatch::OtherGateway);
        assert_eq!(auth.gateway_credential("gw-a", "cred-x"), CredentialMatch::Unknown);
        assert_eq!(
            auth.gateway_credential("gw-new", "cred-a"),
            CredentialMatch::OtherGateway
        );
    }
}
