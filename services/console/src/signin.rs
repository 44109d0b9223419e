//! One-time sign-in codes and "who am I".
//!
//! `vigil run` prints `http://host:port/#signin=<code>`. The code is in the fragment, which browsers
//! never send to a server, so it reaches no log; the page exchanges it once over gRPC-Web for a
//! short-lived token kept in the tab's `sessionStorage`, and removes it from the address bar. A
//! code works once and for a limited time, so what stays in the browser's history opens nothing.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rand::RngCore;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};
use vigil_proto::v1 as pb;
use vigil_proto::v1::console_service_server::{ConsoleService, ConsoleServiceServer};
use vigil_runtime::ServiceError;
use vigil_runtime::auth::permission::ALL_PERMISSIONS;
use vigil_runtime::auth::{Identity, IdentityKind, Secret, issue_hs256};

/// Codes kept at once; issuing more forgets the oldest (a code is printed, not requested, so this
/// bounds memory against nothing but a bug).
const MAX_CODES: usize = 64;

/// What the token a code is exchanged for says and how long it lasts.
pub struct SignInIssuer {
    /// The HS256 secret the server verifies tokens with.
    pub secret: Secret,
    pub subject: String,
    pub roles: Vec<String>,
    pub token_ttl: Duration,
}

/// The codes handed out and not used yet, known by their SHA-256.
pub struct SignInCodes {
    issuer: Option<SignInIssuer>,
    codes: Mutex<HashMap<[u8; 32], Instant>>,
}

impl SignInCodes {
    /// Codes exchanged for tokens `issuer` describes; `None`: this server hands out no codes (its
    /// keys are configured elsewhere), and the exchange says so.
    pub fn new(issuer: Option<SignInIssuer>) -> Self {
        Self {
            issuer,
            codes: Mutex::new(HashMap::new()),
        }
    }

    /// Whether codes can be issued here.
    pub fn enabled(&self) -> bool {
        self.issuer.is_some()
    }

    /// A new code, valid once within `ttl`.
    pub fn issue(&self, ttl: Duration) -> String {
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        let code: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        let mut codes = self.codes.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        codes.retain(|_, expires| *expires > now);
        if codes.len() >= MAX_CODES
            && let Some(oldest) = codes.iter().min_by_key(|(_, expires)| **expires).map(|(key, _)| *key)
        {
            codes.remove(&oldest);
        }
        codes.insert(digest(&code), now + ttl);
        code
    }

    /// Spends `code`: the token and when it expires. `NotFound` for a code unknown, used or expired
    /// (one answer for all three, so a guesser learns nothing).
    pub fn exchange(&self, code: &str) -> Result<(String, SystemTime), ServiceError> {
        let Some(issuer) = &self.issuer else {
            return Err(ServiceError::FailedPrecondition(
                "this server hands out no sign-in codes; paste a token instead".into(),
            ));
        };
        let code = code.trim();
        if code.is_empty() || code.len() > 128 {
            return Err(ServiceError::invalid(
                "code must be the text after #signin= in the link",
            ));
        }
        let expires = self
            .codes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&digest(code));
        match expires {
            Some(expires) if expires > Instant::now() => {}
            _ => {
                return Err(ServiceError::NotFound(
                    "sign-in code not found: the link was used already or has expired; ask for a new one".into(),
                ));
            }
        }
        let roles: Vec<&str> = issuer.roles.iter().map(String::as_str).collect();
        let token = issue_hs256(issuer.secret.expose(), &issuer.subject, &roles, issuer.token_ttl)
            .map_err(ServiceError::internal)?;
        tracing::info!(subject = %issuer.subject, "a console sign-in code was exchanged for a token");
        Ok((token, SystemTime::now() + issuer.token_ttl))
    }
}

fn digest(code: &str) -> [u8; 32] {
    Sha256::digest(code.as_bytes()).into()
}

/// `vigil.v1.ConsoleService`.
pub struct ConsoleApi {
    codes: std::sync::Arc<SignInCodes>,
}

impl ConsoleApi {
    pub fn server(codes: std::sync::Arc<SignInCodes>) -> ConsoleServiceServer<Self> {
        ConsoleServiceServer::new(Self { codes })
    }
}

#[tonic::async_trait]
impl ConsoleService for ConsoleApi {
    async fn exchange_sign_in_code(
        &self,
        request: Request<pb::ExchangeSignInCodeRequest>,
    ) -> Result<Response<pb::ExchangeSignInCodeResponse>, Status> {
        let (token, expires) = self.codes.exchange(&request.get_ref().code)?;
        let expires_at = prost_types::Timestamp::from(expires);
        Ok(Response::new(pb::ExchangeSignInCodeResponse {
            token,
            expires_at: Some(expires_at),
        }))
    }

    async fn who_am_i(&self, request: Request<pb::WhoAmIRequest>) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let identity = Identity::of(&request)?;
        Ok(Response::new(describe(identity)))
    }
}

fn describe(identity: &Identity) -> pb::WhoAmIResponse {
    pb::WhoAmIResponse {
        subject: identity.subject.clone(),
        roles: identity.roles.clone(),
        permissions: ALL_PERMISSIONS
            .iter()
            .filter(|permission| identity.has(**permission))
            .map(|permission| permission.name().to_owned())
            .collect(),
        auth_off: identity.kind == IdentityKind::Anonymous,
    }
}

#[cfg(test)]
mod tests {
    use vigil_runtime::auth::{AuthConfig, Authenticator};

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-console";

    fn codes() -> SignInCodes {
        SignInCodes::new(Some(SignInIssuer {
            secret: Secret::new(SECRET),
            subject: "admin@local".into(),
            roles: vec!["admin".into()],
            token_ttl: Duration::from_secs(600),
        }))
    }

    #[test]
    fn a_code_gives_a_working_token_once() {
        let codes = codes();
        let code = codes.issue(Duration::from_secs(60));
        let (token, expires) = codes.exchange(&code).unwrap();
        assert!(expires > SystemTime::now());
        let authenticator = Authenticator::from_config(&AuthConfig {
            hs256_secret: Some(Secret::new(SECRET)),
            ..AuthConfig::required()
        })
        .unwrap();
        let identity = authenticator.authenticate(Some(&format!("Bearer {token}"))).unwrap();
        assert_eq!(identity.subject, "admin@local");
        assert_eq!(identity.roles, vec!["admin".to_owned()]);
        assert!(matches!(codes.exchange(&code), Err(ServiceError::NotFound { .. })));
    }

    #[test]
    fn expired_unknown_and_empty_codes_are_refused() {
        let codes = codes();
        let code = codes.issue(Duration::ZERO);
        assert!(matches!(codes.exchange(&code), Err(ServiceError::NotFound { .. })));
        assert!(matches!(codes.exchange("nope"), Err(ServiceError::NotFound { .. })));
        assert!(matches!(codes.exchange(" "), Err(ServiceError::InvalidArgument(_))));
        let none = SignInCodes::new(None);
        assert!(matches!(none.exchange("x"), Err(ServiceError::FailedPrecondition(_))));
    }

    #[test]
    fn who_am_i_lists_what_the_roles_grant() {
        let viewer = describe(&Identity::person("vera", vec!["viewer".into()]));
        assert_eq!(
            viewer.permissions,
            [
                "sessions:read",
                "terminations:read",
                "policies:read",
                "audit:read",
                "events:read"
            ]
        );
        let admin = describe(&Identity::person("ada", vec!["admin".into()]));
        assert!(admin.permissions.contains(&"sessions:terminate-all".to_owned()));
        assert!(!admin.auth_off);
        assert!(describe(&Identity::anonymous(None)).auth_off);
    }
}
