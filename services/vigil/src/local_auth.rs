//! Authentication of the all-in-one with zero set-up: on (the embedded default is no exception),
//! with a key and an administrator's token made on first start.
//!
//! When `auth.mode = "required"` (the default here) and nothing to authenticate with is configured,
//! the all-in-one keeps an HS256 secret in `vigil-data/hs256.secret` (made once, kept across
//! restarts) and writes a fresh administrator token to `vigil-data/admin.token` at every start.
//! Both files are readable by their owner only. `sessionctl` run from the same directory finds the
//! token by itself; other tools take it from `VIGIL_TOKEN`. A configuration that names its own keys
//! or tokens is used as it is; `auth.mode = "off"` turns authentication off.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use rand::RngCore;
use vigil_runtime::auth::{AuthConfig, AuthMode, Secret, issue_hs256};

/// The secret's file name, under the data directory.
const SECRET_FILE: &str = "hs256.secret";
/// The administrator token's file name, under the data directory (sessionctl looks for it).
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// Who the generated token names: what the audit trail records for its actions.
pub const ADMIN_SUBJECT: &str = "admin@local";
/// How long the generated token lasts (a restart makes a new one).
const ADMIN_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// How long a token the console's one-time sign-in link gives lasts: a working day, not a month.
pub const CONSOLE_TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);
/// How long the printed sign-in link may wait to be opened (it works once).
pub const SIGN_IN_CODE_TTL: Duration = Duration::from_secs(24 * 3600);

/// Makes `auth` usable without set-up, if it needs it. Returns the file of the administrator token
/// written, if one was.
pub fn provision(auth: &mut AuthConfig, data_dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    let configured = auth.hs256_secret.is_some()
        || auth.jwks_file.is_some()
        || !auth.api_tokens.is_empty()
        || !auth.service_tokens.is_empty();
    if auth.mode == AuthMode::Off || configured {
        return Ok(None);
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let secret_file = data_dir.join(SECRET_FILE);
    let secret = match std::fs::read_to_string(&secret_file) {
        Ok(secret) if secret.trim().len() >= vigil_runtime::auth::MIN_HS256_SECRET_LEN => secret.trim().to_owned(),
        _ => {
            let secret = random_hex(32);
            write_private(&secret_file, &secret)?;
            tracing::info!(file = %secret_file.display(), "generated the HS256 secret of this all-in-one");
            secret
        }
    };
    let token = issue_hs256(&secret, ADMIN_SUBJECT, &["admin"], ADMIN_TOKEN_TTL)?;
    let token_file = data_dir.join(ADMIN_TOKEN_FILE);
    write_private(&token_file, &format!("{token}\n"))?;
    auth.hs256_secret = Some(Secret::new(secret));
    Ok(Some(token_file))
}

/// The page-token key's file name, under the data directory.
const PAGE_TOKEN_KEY_FILE: &str = "page-token.key";

/// Replaces the public development page-token key with one generated on first start and kept in
/// the data directory (so page tokens survive a restart). A key of the configuration is kept.
pub fn provision_page_token_key(key: &mut String, data_dir: &Path) -> anyhow::Result<()> {
    if key != vigil_registry::DEVELOPMENT_PAGE_TOKEN_KEY {
        return Ok(());
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let file = data_dir.join(PAGE_TOKEN_KEY_FILE);
    *key = match std::fs::read_to_string(&file) {
        Ok(existing) if existing.trim().len() >= 32 => existing.trim().to_owned(),
        _ => {
            let generated = random_hex(32);
            write_private(&file, &generated)?;
            generated
        }
    };
    Ok(())
}

/// A credential for each simulated gateway that has none configured, added to `auth`; returns
/// every simulated gateway's credential, for the simulator to present.
pub fn simulated_gateway_credentials(auth: &mut AuthConfig, gateway_ids: &[String]) -> BTreeMap<String, String> {
    gateway_ids
        .iter()
        .map(|gateway_id| {
            let credential = auth
                .gateway_credentials
                .entry(gateway_id.clone())
                .or_insert_with(|| Secret::new(random_hex(24)));
            (gateway_id.clone(), credential.expose().to_owned())
        })
        .collect()
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    buffer.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Writes a file only its owner may read (on Unix), replacing what was there.
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use vigil_runtime::auth::{Authenticator, IdentityKind};

    use super::*;

    fn temp_dir() -> PathBuf {
        let mut suffix = [0u8; 8];
        rand::rng().fill_bytes(&mut suffix);
        std::env::temp_dir().join(format!("vigil-local-auth-{}", u64::from_le_bytes(suffix)))
    }

    #[test]
    fn first_start_makes_a_secret_and_an_admin_token_that_later_starts_keep_honouring() {
        let dir = temp_dir();
        let mut auth = AuthConfig::required();
        let token_file = provision(&mut auth, &dir).unwrap().expect("a token was written");
        let token = std::fs::read_to_string(&token_file).unwrap();
        let identity = Authenticator::from_config(&auth)
            .unwrap()
            .authenticate(Some(&format!("Bearer {}", token.trim())))
            .unwrap();
        assert_eq!(identity.subject, ADMIN_SUBJECT);
        assert_eq!(identity.kind, IdentityKind::Person);
        assert_eq!(identity.roles, vec!["admin".to_owned()]);

        // A restart keeps the secret, so the token issued before still works.
        let mut again = AuthConfig::required();
        provision(&mut again, &dir).unwrap();
        assert_eq!(again.hs256_secret, auth.hs256_secret);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "only the owner may read the token");
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn configured_or_disabled_authentication_is_left_alone() {
        let dir = temp_dir();
        let mut off = AuthConfig::default();
        assert!(provision(&mut off, &dir).unwrap().is_none());
        let mut configured = AuthConfig {
            hs256_secret: Some(Secret::new("0123456789abcdef0123456789abcdef")),
            ..AuthConfig::required()
        };
        assert!(provision(&mut configured, &dir).unwrap().is_none());
        assert!(!dir.exists(), "nothing was written");
    }

    #[test]
    fn the_development_page_token_key_is_replaced_by_a_kept_secret() {
        let dir = temp_dir();
        let mut key = vigil_registry::DEVELOPMENT_PAGE_TOKEN_KEY.to_owned();
        provision_page_token_key(&mut key, &dir).unwrap();
        assert_ne!(key, vigil_registry::DEVELOPMENT_PAGE_TOKEN_KEY);
        assert_eq!(key.len(), 64);
        let mut again = vigil_registry::DEVELOPMENT_PAGE_TOKEN_KEY.to_owned();
        provision_page_token_key(&mut again, &dir).unwrap();
        assert_eq!(again, key, "kept across restarts");
        let mut own = "configured-key".to_owned();
        provision_page_token_key(&mut own, &dir).unwrap();
        assert_eq!(own, "configured-key");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn simulated_gateways_get_credentials_unless_configured() {
        let mut auth = AuthConfig::required();
        auth.gateway_credentials
            .insert("gw-a".into(), Secret::new("configured"));
        let credentials = simulated_gateway_credentials(&mut auth, &["gw-a".into(), "gw-b".into()]);
        assert_eq!(credentials["gw-a"], "configured");
        assert_eq!(credentials["gw-b"].len(), 48);
        assert_eq!(auth.gateway_credentials["gw-b"].expose(), credentials["gw-b"]);
    }
}
