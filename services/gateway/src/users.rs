//! The users file: who may sign in to the gateway, with which keys, in which groups. Re-read when it
//! changes, so adding or removing a user or a key needs no restart.
//!
//! ```toml
//! [[user]]
//! name = "alice"
//! groups = ["sre"]
//! keys = ["ssh-ed25519 AAAAC3Nz… alice@laptop", "ssh-rsa AAAAB3Nza… alice@old-laptop"]
//! # Optional: the account the gateway signs in as on a target (by target name; "*" for any other);
//! # without one, the target's `user` from the gateway's configuration.
//! accounts = { "prod-db-01" = "alice", "*" = "alice.smith" }
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use russh::keys::PublicKey;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::login;

/// A user as the file describes them.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
    keys: Vec<PublicKey>,
    /// Target name (or `*`) → the account on it.
    accounts: HashMap<String, String>,
}

impl User {
    /// The user's own account on `target`, if the users file gives one.
    pub fn account_on(&self, target: &str) -> Option<&str> {
        self.accounts
            .get(target)
            .or_else(|| self.accounts.get("*"))
            .map(String::as_str)
    }

    /// Whether `key` is one of the user's (compared on the key material, not the comment).
    pub fn has_key(&self, key: &PublicKey) -> bool {
        self.keys.iter().any(|known| known.key_data() == key.key_data())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    user: Vec<UserEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    name: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    accounts: HashMap<String, String>,
}

/// Why a users file was not taken.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid users file: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Parses a users file's text; every problem names the entry.
pub fn parse(path: &Path, text: &str) -> Result<HashMap<String, User>, UsersError> {
    let invalid = |message: String| UsersError::Invalid {
        path: path.to_owned(),
        message,
    };
    let file: UsersFile = toml::from_str(text).map_err(|error| invalid(error.to_string()))?;
    let mut users = HashMap::new();
    for (index, entry) in file.user.into_iter().enumerate() {
        if !login::is_user_name(&entry.name) {
            return Err(invalid(format!(
                "user #{} has the name {:?}: use 1 to 64 letters, digits and . _ - @ (no +)",
                index + 1,
                entry.name
            )));
        }
        let mut keys = Vec::new();
        for (number, key) in entry.keys.iter().enumerate() {
            let key = PublicKey::from_openssh(key.trim()).map_err(|error| {
                invalid(format!(
                    "key #{} of user {:?} is not an OpenSSH public key: {error}",
                    number + 1,
                    entry.name
                ))
            })?;
            keys.push(key);
        }
        for group in &entry.groups {
            if group.trim().is_empty() || group.len() > 256 || group.chars().any(char::is_control) {
                return Err(invalid(format!("user {:?} has an invalid group {group:?}", entry.name)));
            }
        }
        for (target, account) in &entry.accounts {
            let target_ok = target == "*" || login::is_target_name(target);
            let account_ok = (1..=64).contains(&account.len())
                && account
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '$'));
            if !target_ok || !account_ok {
                return Err(invalid(format!(
                    "user {:?} has an invalid account {account:?} for {target:?} (a target name or \"*\", an account of 1 to 64 letters, digits and . _ - @ $)",
                    entry.name
                )));
            }
        }
        let user = User {
            name: entry.name.clone(),
            groups: entry.groups,
            keys,
            accounts: entry.accounts,
        };
        if users.insert(entry.name.clone(), user).is_some() {
            return Err(invalid(format!("user {:?} appears twice", entry.name)));
        }
    }
    Ok(users)
}

/// The users as last read; cheap to clone and to query.
#[derive(Clone)]
pub struct Users {
    path: PathBuf,
    current: Arc<RwLock<Arc<HashMap<String, User>>>>,
}

impl Users {
    /// Reads the file; fails when it cannot be read or is invalid (a gateway must not start on a
    /// broken users file).
    pub fn load(path: &Path) -> Result<Self, UsersError> {
        let users = read(path)?;
        Ok(Self {
            path: path.to_owned(),
            current: Arc::new(RwLock::new(Arc::new(users))),
        })
    }

    /// The user of this name, if any.
    pub fn get(&self, name: &str) -> Option<User> {
        self.snapshot().get(name).cloned()
    }

    fn snapshot(&self) -> Arc<HashMap<String, User>> {
        Arc::clone(&self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Re-reads the file now. A broken file is reported and the previous users stay in force: a typo
    /// must not lock everyone out, nor let anyone in.
    pub fn reload(&self) -> Result<usize, UsersError> {
        let users = read(&self.path)?;
        let count = users.len();
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(users);
        Ok(count)
    }

    /// Re-reads the file whenever its modification time or size changes, until `shutdown`.
    pub fn watch(&self, interval: Duration, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let users = self.clone();
        tokio::spawn(async move {
            let mut seen = stamp(&users.path);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(interval) => {}
                }
                let now = stamp(&users.path);
                if now == seen {
                    continue;
                }
                seen = now;
                match users.reload() {
                    Ok(count) => tracing::info!(path = %users.path.display(), count, "users file reloaded"),
                    Err(error) => {
                        tracing::error!(%error, "users file changed but is not usable; keeping the previous users")
                    }
                }
            }
        })
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

fn read(path: &Path) -> Result<HashMap<String, User>, UsersError> {
    let text = std::fs::read_to_string(path).map_err(|source| UsersError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZbUuzYo1Y2yLYUnE3BJu/a7jSeTzGIT5lS/s7bYyvC alice@laptop";

    #[test]
    fn a_users_file_gives_names_groups_and_keys() {
        let text = format!("[[user]]\nname = \"alice\"\ngroups = [\"sre\"]\nkeys = [\"{KEY}\"]\n");
        let users = parse(Path::new("users.toml"), &text).unwrap();
        let alice = &users["alice"];
        assert_eq!(alice.groups, ["sre"]);
        let key = PublicKey::from_openssh(KEY).unwrap();
        assert!(alice.has_key(&key));
        assert_eq!(alice.account_on("db"), None);
    }

    #[test]
    fn accounts_by_target_with_a_default() {
        let text = "[[user]]\nname = \"alice\"\naccounts = { \"db\" = \"postgres\", \"*\" = \"alice\" }\n";
        let users = parse(Path::new("users.toml"), text).unwrap();
        let alice = &users["alice"];
        assert_eq!(alice.account_on("db"), Some("postgres"));
        assert_eq!(alice.account_on("web-01"), Some("alice"));
    }

    #[test]
    fn broken_entries_are_named() {
        for (text, expected) in [
            ("[[user]]\nname = \"a+b\"\n", "user #1"),
            (
                "[[user]]\nname = \"bob\"\nkeys = [\"ssh-ed25519 garbage\"]\n",
                "key #1 of user \"bob\"",
            ),
            ("[[user]]\nname = \"bob\"\n[[user]]\nname = \"bob\"\n", "appears twice"),
            ("[[user]]\nnam = \"bob\"\n", "unknown field"),
            (
                "[[user]]\nname = \"bob\"\naccounts = { \"db\" = \"bad name\" }\n",
                "invalid account",
            ),
        ] {
            let error = parse(Path::new("u.toml"), text).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
    }
}
