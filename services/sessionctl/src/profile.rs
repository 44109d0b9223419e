//! Where the server, the token and the CA come from when the command line does not say, like
//! kubectl's kubeconfig or tctl's profile.
//!
//! In order, the first that says wins:
//! 1. the flags (`--server`, `--token`, `--ca`), or their variables (`VIGIL_SERVER`, `VIGIL_TOKEN`,
//!    `VIGIL_CA`);
//! 2. the config file: `--config` / `SESSIONCTL_CONFIG`, else `$XDG_CONFIG_HOME/vigil/sessionctl.toml`
//!    (`~/.config/vigil/sessionctl.toml`) if it exists:
//!    ```toml
//!    server = "https://vigil.internal:7400"
//!    token_file = "/home/alice/.vigil-token"   # or: token = "…"
//!    ca = "/etc/vigil/ca.pem"
//!    ```
//!    or named profiles (kubectl's contexts), one chosen by `--context` / `SESSIONCTL_CONTEXT`, else by
//!    `current_context` (`sessionctl config use-context NAME`):
//!    ```toml
//!    current_context = "prod"
//!    [contexts.prod]
//!    server = "https://vigil.internal:7400"
//!    token_file = "/home/alice/.config/vigil/tokens/prod.token"   # what `sessionctl login` writes
//!    [contexts.lab]
//!    server = "10.0.0.9:7400"
//!    ```
//! 3. for the token only, against a server on this machine: `vigil-data/admin.token` in the current
//!    directory, which the all-in-one (`make run`) writes — so the README's two commands work as
//!    they are.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::args::{GlobalArgs, Token, parse_server};
use crate::error::CliError;

/// The token file `vigil run` writes, relative to where it runs.
pub const LOCAL_ADMIN_TOKEN: &str = "vigil-data/admin.token";

/// One profile: where the servers are and how to authenticate.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub server: Option<String>,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub ca: Option<PathBuf>,
}

/// The config file's contents: an unnamed profile (the top-level keys), and named ones.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    server: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    ca: Option<PathBuf>,
    current_context: Option<String>,
    #[serde(default)]
    contexts: std::collections::BTreeMap<String, Profile>,
}

/// Fills what the command line left unsaid from the config file's chosen profile, then the local admin
/// token.
pub fn resolve(global: &mut GlobalArgs) -> Result<(), CliError> {
    let file = match config_path(global) {
        Some(path) if global.config.is_some() || path.is_file() => read(&path)?,
        _ => ConfigFile::default(),
    };
    let profile = choose(global, file)?;
    if global.server.is_none()
        && let Some(server) = &profile.server
    {
        global.server = Some(parse_server(server).map_err(|error| config_error(global, &error))?);
    }
    if global.ca.is_none() {
        global.ca = profile.ca;
    }
    if global.token.is_none() {
        let token = match (profile.token, profile.token_file) {
            (Some(_), Some(_)) => {
                return Err(config_error(global, "give `token` or `token_file`, not both"));
            }
            (Some(token), None) => Some(token),
            (None, Some(file)) => Some(read_token(&file)?),
            (None, None) => local_admin_token(global.server()),
        };
        if let Some(token) = token {
            global.token = Some(token.parse::<Token>().map_err(|error| config_error(global, &error))?);
        }
    }
    Ok(())
}

/// The profile `--context` (or the file's `current_context`) names, else the top-level keys.
fn choose(global: &GlobalArgs, file: ConfigFile) -> Result<Profile, CliError> {
    let name = global.context.clone().or(file.current_context);
    match name {
        None => Ok(Profile {
            server: file.server,
            token: file.token,
            token_file: file.token_file,
            ca: file.ca,
        }),
        Some(name) => file.contexts.get(&name).cloned().ok_or_else(|| {
            let known: Vec<&str> = file.contexts.keys().map(String::as_str).collect();
            let known = if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            };
            CliError::Usage(format!(
                "no context named `{name}` in the config file (known: {known}); create it with `sessionctl config \
                 set-context {name} --server ADDRESS`"
            ))
        }),
    }
}

/// The config file in use: `--config`, else the default place.
pub fn config_path(global: &GlobalArgs) -> Option<PathBuf> {
    global.config.clone().or_else(default_path)
}

/// `$XDG_CONFIG_HOME/vigil/sessionctl.toml`, else `$HOME/.config/vigil/sessionctl.toml`.
fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(base.join("vigil").join("sessionctl.toml"))
}

fn read(path: &Path) -> Result<ConfigFile, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| CliError::Usage(format!("cannot read the config file {}: {error}", path.display())))?;
    toml::from_str(&text)
        .map_err(|error| CliError::Usage(format!("the config file {} is not valid: {error}", path.display())))
}

fn read_token(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map(|token| token.trim().to_owned())
        .map_err(|error| CliError::Usage(format!("cannot read the token file {}: {error}", path.display())))
}

/// The all-in-one's admin token, when the server is on this machine and the file is here.
fn local_admin_token(server: &str) -> Option<String> {
    if !is_local(server) {
        return None;
    }
    std::fs::read_to_string(LOCAL_ADMIN_TOKEN)
        .ok()
        .map(|token| token.trim().to_owned())
        .filter(|token| !token.is_empty())
}

/// Whether a server address is a loopback one.
fn is_local(server: &str) -> bool {
    let Ok(uri) = server.parse::<tonic::transport::Uri>() else {
        return false;
    };
    match uri.host() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

fn config_error(global: &GlobalArgs, error: &str) -> CliError {
    let file = global
        .config
        .clone()
        .or_else(default_path)
        .map_or_else(|| "the config file".to_owned(), |path| path.display().to_string());
    CliError::Usage(format!("{file}: {error}"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::Cli;

    fn temp_file(contents: &str) -> PathBuf {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("sessionctl-profile-{}-{n}.toml", std::process::id()));
        std::fs::write(&path, contents).expect("write");
        path
    }

    #[test]
    fn the_config_file_fills_what_the_command_line_leaves_out() {
        let token_file = temp_file("file-token\n");
        let config = temp_file(&format!(
            "server = \"10.0.0.9:7400\"\ntoken_file = \"{}\"\nca = \"/etc/vigil/ca.pem\"\n",
            token_file.display()
        ));
        let mut cli = Cli::parse_from(["sessionctl", "--config", config.to_str().unwrap(), "stats"]);
        resolve(&mut cli.global).unwrap();
        assert_eq!(cli.global.server(), "http://10.0.0.9:7400");
        assert_eq!(cli.global.token.as_ref().map(Token::expose), Some("file-token"));
        assert_eq!(cli.global.ca.as_deref(), Some(Path::new("/etc/vigil/ca.pem")));

        // The command line wins.
        let mut cli = Cli::parse_from([
            "sessionctl",
            "--config",
            config.to_str().unwrap(),
            "--server",
            "10.0.0.1:7400",
            "--token",
            "flag-token",
            "stats",
        ]);
        resolve(&mut cli.global).unwrap();
        assert_eq!(cli.global.server(), "http://10.0.0.1:7400");
        assert_eq!(cli.global.token.as_ref().map(Token::expose), Some("flag-token"));
        let _ = std::fs::remove_file(config);
        let _ = std::fs::remove_file(token_file);
    }

    #[test]
    fn a_bad_config_file_is_a_usage_error_naming_it() {
        let config = temp_file("sever = \"typo\"\n");
        let mut cli = Cli::parse_from(["sessionctl", "--config", config.to_str().unwrap(), "stats"]);
        let error = resolve(&mut cli.global).unwrap_err();
        assert_eq!(error.exit_code(), crate::EXIT_USAGE);
        assert!(error.to_string().contains(&config.display().to_string()), "{error}");
        let _ = std::fs::remove_file(config);

        let mut cli = Cli::parse_from(["sessionctl", "--config", "/nonexistent/sessionctl.toml", "stats"]);
        assert!(resolve(&mut cli.global).is_err());
    }

    #[test]
    fn only_local_servers_get_the_local_admin_token() {
        assert!(is_local("http://127.0.0.1:7400"));
        assert!(is_local("http://localhost:7400"));
        assert!(is_local("http://[::1]:7400"));
        assert!(!is_local("http://10.0.0.5:7400"));
        assert!(!is_local("https://vigil.example.com"));
    }
}
