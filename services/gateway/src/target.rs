//! The gateway's own SSH connection to a target: its key, the target's pinned host key.

use std::sync::Arc;
use std::time::Duration;

use russh::client;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};

use crate::config::TargetConfig;
use crate::keys;

/// Why the gateway could not reach a target; the text is shown to the user.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("the target's pinned host key in the gateway's configuration is not a valid OpenSSH public key")]
    BadPin,
    #[error("cannot connect to the target: {0}")]
    Connect(String),
    #[error("the target presented host key {presented}, not the pinned one; refusing to connect")]
    HostKeyMismatch { presented: String },
    #[error("the target refused the gateway's key")]
    Refused,
    #[error("the target did not answer within {0:?}")]
    Timeout(Duration),
}

/// Checks the target's host key against the pinned one; remembers a mismatch so it can be reported.
pub struct TargetHandler {
    pinned: PublicKey,
    mismatch: Arc<std::sync::Mutex<Option<String>>>,
}

impl client::Handler for TargetHandler {
    type Error = russh::Error;

    async fn check_server_key(&mut self, presented: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let key = match presented {
            PublicKeyOrCertificate::PublicKey { key, .. } => key,
            // Host certificates are not pinned keys: refused.
            PublicKeyOrCertificate::Certificate(certificate) => {
                *self.mismatch.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(format!(
                    "a certificate ({})",
                    keys::fingerprint(&PublicKey::from(certificate.public_key().clone()))
                ));
                return Ok(false);
            }
        };
        if key.key_data() == self.pinned.key_data() {
            return Ok(true);
        }
        *self.mismatch.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(keys::fingerprint(key));
        Ok(false)
    }
}

/// A connected, authenticated target.
pub type TargetConnection = client::Handle<TargetHandler>;

/// Connects to `target` and signs in with `key`, within `timeout`.
pub async fn connect(
    target: &TargetConfig,
    key: Arc<PrivateKey>,
    timeout: Duration,
) -> Result<TargetConnection, TargetError> {
    let pinned = PublicKey::from_openssh(target.host_key.trim()).map_err(|_| TargetError::BadPin)?;
    let mismatch = Arc::new(std::sync::Mutex::new(None));
    let handler = TargetHandler {
        pinned,
        mismatch: Arc::clone(&mismatch),
    };
    let config = Arc::new(client::Config {
        // A dead target connection is noticed rather than held forever.
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 3,
        inactivity_timeout: None,
        nodelay: true,
        ..client::Config::default()
    });
    let attempt = async {
        let mut handle = match client::connect(config, target.address.as_str(), handler).await {
            Ok(handle) => handle,
            Err(error) => {
                if let Some(presented) = mismatch
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take()
                {
                    return Err(TargetError::HostKeyMismatch { presented });
                }
                return Err(TargetError::Connect(error.to_string()));
            }
        };
        let auth = handle
            .authenticate_publickey(target.user.clone(), PrivateKeyWithHashAlg::new(key, None))
            .await
            .map_err(|error| TargetError::Connect(error.to_string()))?;
        if !auth.success() {
            return Err(TargetError::Refused);
        }
        Ok(handle)
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or(Err(TargetError::Timeout(timeout)))
}
