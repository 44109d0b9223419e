//! Key files: the gateway's host key, the key it signs in to targets with, and demo keys.

use std::io::Write;
use std::path::Path;

use rand::RngCore;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::{HashAlg, LineEnding};
use russh::keys::{PrivateKey, PublicKey};

/// A new ed25519 key.
pub fn generate() -> PrivateKey {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    PrivateKey::from(Ed25519Keypair::from_seed(&seed))
}

/// A random password of 20 letters and digits (about 115 bits), without look-alike characters.
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| char::from(ALPHABET[rand::Rng::random_range(&mut rng, 0..ALPHABET.len())]))
        .collect()
}

/// Writes a secret (a password) with mode 0600.
pub fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())?;
    Ok(())
}

/// Reads an OpenSSH private key file, or creates one (ed25519, mode 0600, with its `.pub` beside it)
/// when there is none.
pub fn load_or_create(path: &Path, comment: &str) -> anyhow::Result<PrivateKey> {
    if path.exists() {
        return russh::keys::load_secret_key(path, None)
            .map_err(|error| anyhow::anyhow!("cannot read the key {}: {error}", path.display()));
    }
    let mut key = generate();
    key.set_comment(comment);
    write_private(path, &key)?;
    tracing::info!(path = %path.display(), fingerprint = %fingerprint(key.public_key()), "created a key");
    Ok(key)
}

/// Writes `key` in OpenSSH format with mode 0600 (ssh refuses keys others can read), and its public
/// half to `<path>.pub`.
pub fn write_private(path: &Path, key: &PrivateKey) -> anyhow::Result<()> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)?;
    }
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|error| anyhow::anyhow!("cannot encode a key: {error}"))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    let public = format!("{}\n", openssh_public(key.public_key()));
    std::fs::write(path.with_extension(extension_pub(path)), public)?;
    Ok(())
}

fn extension_pub(path: &Path) -> String {
    match path.extension() {
        Some(extension) => format!("{}.pub", extension.to_string_lossy()),
        None => "pub".to_owned(),
    }
}

/// `ssh-ed25519 AAAA… comment`, as in `authorized_keys`.
pub fn openssh_public(key: &PublicKey) -> String {
    key.to_openssh().unwrap_or_default()
}

/// `SHA256:…`, as OpenSSH prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_key_is_read_back_and_private() {
        let dir = std::env::temp_dir().join(format!("vigil-gw-keys-{}", std::process::id()));
        let path = dir.join("host_key");
        let _ = std::fs::remove_dir_all(&dir);
        let created = load_or_create(&path, "test").unwrap();
        let read = load_or_create(&path, "test").unwrap();
        assert_eq!(created.public_key().key_data(), read.public_key().key_data());
        let public = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
        assert!(public.starts_with("ssh-ed25519 "), "{public}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{mode:o}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
