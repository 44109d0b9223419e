//! Gateways authenticate on their link, in the hello: by their credential, or by a client
//! certificate that names them. An agent speaks for one gateway only — the one it proved.

use std::sync::Arc;

use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use super::authenticator::{Authenticator, CredentialMatch};
use super::config::AuthMode;
use crate::{ServiceError, ServiceResult};

/// The prefix of a URI subject alternative name naming a gateway whose id is not a DNS name
/// (`urn:vigil:gateway:gw_fra:01`).
pub const GATEWAY_URI_PREFIX: &str = "urn:vigil:gateway:";

/// How a gateway proved itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayProof {
    /// Authentication is off: nothing was checked.
    Unchecked,
    /// The hello carried the gateway's configured credential.
    Credential,
    /// The TLS client certificate (verified against `tls.client_ca`) names the gateway.
    Certificate,
}

/// The authenticator, handed to the gateway link by the auth layer (the link checks the hello,
/// which only it reads).
#[derive(Clone)]
pub(crate) struct GatewayGate(pub(crate) Arc<Authenticator>);

/// Checks that the caller of a `GatewayLink.Connect` may speak for `gateway_id`, given the
/// `credential` its hello carries and the extensions of its request (which hold the TLS client
/// certificate, if any).
///
/// - A client certificate naming the gateway (a DNS name equal to the id, or the URI
///   `urn:vigil:gateway:<id>`) is proof enough.
/// - Otherwise the credential must be the gateway's own: another gateway's credential is
///   `PermissionDenied` (that agent proved a different gateway), an unknown one `Unauthenticated`.
/// - With neither, `Unauthenticated`; with only a certificate naming something else,
///   `PermissionDenied`.
///
/// With authentication off, every gateway is let in.
pub fn authenticate_gateway(
    extensions: &tonic::Extensions,
    gateway_id: &str,
    credential: &str,
) -> ServiceResult<GatewayProof> {
    let Some(GatewayGate(authenticator)) = extensions.get::<GatewayGate>() else {
        return Err(ServiceError::Unauthenticated(
            "the link was not routed through the auth layer".into(),
        ));
    };
    if authenticator.mode() == AuthMode::Off {
        return Ok(GatewayProof::Unchecked);
    }
    let names = certificate_names(extensions);
    if names.iter().any(|name| names_gateway(name, gateway_id)) {
        return Ok(GatewayProof::Certificate);
    }
    if !credential.is_empty() {
        return match authenticator.gateway_credential(gateway_id, credential) {
            CredentialMatch::Matches => Ok(GatewayProof::Credential),
            CredentialMatch::OtherGateway => Err(ServiceError::PermissionDenied(format!(
                "the credential in the hello belongs to another gateway, not {gateway_id}; an agent may speak only \
                 for its own gateway"
            ))),
            CredentialMatch::Unknown => Err(ServiceError::Unauthenticated(format!(
                "invalid credential for gateway {gateway_id}"
            ))),
        };
    }
    if !names.is_empty() {
        return Err(ServiceError::PermissionDenied(format!(
            "the client certificate names {}, not gateway {gateway_id}",
            names.join(", ")
        )));
    }
    Err(ServiceError::Unauthenticated(format!(
        "gateway {gateway_id} must authenticate: put its credential in the hello, or connect with a client \
         certificate naming it"
    )))
}

/// Whether a certificate name stands for `gateway_id`.
fn names_gateway(name: &str, gateway_id: &str) -> bool {
    match name.strip_prefix(GATEWAY_URI_PREFIX) {
        Some(id) => id == gateway_id,
        // DNS names compare without regard to case.
        None => name.eq_ignore_ascii_case(gateway_id),
    }
}

/// The DNS and URI names of the verified client certificate, if the peer presented one.
///
/// tonic only hands over certificates it verified against `tls.client_ca` (without a client CA,
/// it asks for none), so a name here is a proven name.
pub fn certificate_names(extensions: &tonic::Extensions) -> Vec<String> {
    let Some(certificates) = extensions
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(TlsConnectInfo::peer_certs)
    else {
        return Vec::new();
    };
    let Some(leaf) = certificates.first() else {
        return Vec::new();
    };
    match webpki::EndEntityCert::try_from(leaf) {
        Ok(certificate) => certificate
            .valid_dns_names()
            .chain(certificate.valid_uri_names())
            .map(str::to_owned)
            .collect(),
        Err(error) => {
            tracing::warn!(?error, "cannot read the names of a client certificate");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::auth::config::{AuthConfig, Secret};

    fn extensions(config: &AuthConfig) -> tonic::Extensions {
        let mut extensions = tonic::Extensions::new();
        let authenticator = Authenticator::from_config(config).expect("valid");
        extensions.insert(GatewayGate(Arc::new(authenticator)));
        extensions
    }

    fn required() -> AuthConfig {
        AuthConfig {
            hs256_secret: Some("0123456789abcdef0123456789abcdef".into()),
            gateway_credentials: BTreeMap::from([
                ("gw-a".to_owned(), Secret::from("cred-a")),
                ("gw-b".to_owned(), Secret::from("cred-b")),
            ]),
            ..AuthConfig::required()
        }
    }

    #[test]
    fn a_gateway_proves_itself_with_its_own_credential_only() {
        let extensions = extensions(&required());
        assert_eq!(
            authenticate_gateway(&extensions, "gw-a", "cred-a").unwrap(),
            GatewayProof::Credential
        );
        assert!(matches!(
            authenticate_gateway(&extensions, "gw-b", "cred-a"),
            Err(ServiceError::PermissionDenied(_))
        ));
        assert!(matches!(
            authenticate_gateway(&extensions, "gw-a", "wrong"),
            Err(ServiceError::Unauthenticated(_))
        ));
        let Err(ServiceError::Unauthenticated(message)) = authenticate_gateway(&extensions, "gw-a", "") else {
            panic!("no credential must be refused");
        };
        assert!(message.contains("must authenticate"), "{message}");
    }

    #[test]
    fn with_authentication_off_every_gateway_is_let_in() {
        let extensions = extensions(&AuthConfig::default());
        assert_eq!(
            authenticate_gateway(&extensions, "gw-a", "").unwrap(),
            GatewayProof::Unchecked
        );
    }

    #[test]
    fn without_the_auth_layer_nothing_is_let_in() {
        assert!(authenticate_gateway(&tonic::Extensions::new(), "gw-a", "cred-a").is_err());
    }

    #[test]
    fn certificate_names_match_by_dns_name_or_urn() {
        assert!(names_gateway("GW-A", "gw-a"));
        assert!(names_gateway("urn:vigil:gateway:gw_a:01", "gw_a:01"));
        assert!(!names_gateway("urn:vigil:gateway:gw-a", "gw-b"));
        assert!(!names_gateway("gw-a.example.com", "gw-a"));
    }
}
