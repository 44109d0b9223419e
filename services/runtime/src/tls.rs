//! The `[tls]` section: TLS for what this process serves, mutual TLS with its callers when a client
//! CA is set, and the CA it trusts when it calls other Vigil services.
//!
//! Certificates and keys are PEM files, read at start-up (restart to rotate them).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// Why TLS cannot be set up.
#[derive(Debug, thiserror::Error)]
#[error("invalid TLS configuration: {0}")]
pub struct TlsError(pub String);

/// TLS settings of one process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// This process's certificate chain (PEM). With `key`, the server speaks TLS only; when calling
    /// other services, the same pair is presented as the client certificate (mutual TLS).
    pub cert: Option<PathBuf>,
    /// The private key of `cert` (PEM).
    pub key: Option<PathBuf>,
    /// The CA that issues client certificates (gateways, services). Setting it turns client
    /// authentication on: presented certificates are verified against it, and a gateway whose
    /// certificate names it needs no credential.
    pub client_ca: Option<PathBuf>,
    /// Refuse connections without a client certificate. Off by default: people and tools
    /// authenticate with bearer tokens and have no certificate.
    pub require_client_cert: bool,
    /// The CA this process trusts when it calls other Vigil services at `https://` URLs.
    pub ca: Option<PathBuf>,
}

impl TlsConfig {
    /// Whether the server side is on (a certificate and its key are configured).
    pub fn serves_tls(&self) -> bool {
        self.cert.is_some()
    }

    /// The server's TLS settings, or `None` when it serves plaintext.
    pub fn server_config(&self) -> Result<Option<ServerTlsConfig>, TlsError> {
        self.check()?;
        let Some(identity) = self.identity()? else {
            return Ok(None);
        };
        let mut config = ServerTlsConfig::new().identity(identity);
        if let Some(client_ca) = &self.client_ca {
            config = config
                .client_ca_root(Certificate::from_pem(read("tls.client_ca", client_ca)?))
                .client_auth_optional(!self.require_client_cert);
        }
        Ok(Some(config))
    }

    /// The settings of calls to other services, or `None` when no CA is configured (then only
    /// `http://` URLs can be called). With `cert` and `key`, they are presented as the client
    /// certificate.
    pub fn client_config(&self) -> Result<Option<ClientTlsConfig>, TlsError> {
        self.check()?;
        let Some(ca) = &self.ca else {
            return Ok(None);
        };
        let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read("tls.ca", ca)?));
        if let Some(identity) = self.identity()? {
            config = config.identity(identity);
        }
        Ok(Some(config))
    }

    fn identity(&self) -> Result<Option<Identity>, TlsError> {
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Ok(Some(Identity::from_pem(read("tls.cert", cert)?, read("tls.key", key)?))),
            _ => Ok(None),
        }
    }

    /// Settings that only make sense together.
    fn check(&self) -> Result<(), TlsError> {
        if self.cert.is_some() != self.key.is_some() {
            return Err(TlsError("tls.cert and tls.key go together: set both or neither".into()));
        }
        if self.client_ca.is_some() && self.cert.is_none() {
            return Err(TlsError(
                "tls.client_ca verifies client certificates, which needs TLS: set tls.cert and tls.key too".into(),
            ));
        }
        if self.require_client_cert && self.client_ca.is_none() {
            return Err(TlsError("tls.require_client_cert needs tls.client_ca".into()));
        }
        Ok(())
    }
}

fn read(setting: &str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError(format!("cannot read {setting} {}: {error}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_by_default() {
        let config = TlsConfig::default();
        assert!(!config.serves_tls());
        assert!(config.server_config().unwrap().is_none());
        assert!(config.client_config().unwrap().is_none());
    }

    #[test]
    fn half_configurations_are_refused() {
        let cases = [
            TlsConfig {
                cert: Some("cert.pem".into()),
                ..TlsConfig::default()
            },
            TlsConfig {
                client_ca: Some("ca.pem".into()),
                ..TlsConfig::default()
            },
            TlsConfig {
                require_client_cert: true,
                ..TlsConfig::default()
            },
        ];
        for config in cases {
            assert!(config.server_config().is_err(), "{config:?}");
        }
    }

    #[test]
    fn missing_files_are_named() {
        let config = TlsConfig {
            cert: Some("/nonexistent/cert.pem".into()),
            key: Some("/nonexistent/key.pem".into()),
            ..TlsConfig::default()
        };
        let error = config.server_config().unwrap_err();
        assert!(error.to_string().contains("tls.cert /nonexistent/cert.pem"), "{error}");
    }
}
