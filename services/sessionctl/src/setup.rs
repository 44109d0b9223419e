//! Commands about sessionctl itself rather than Vigil's resources: named profiles (`config`, kubectl's
//! contexts), `login` (a token stored per profile, readable by its owner only) and shell `completion`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use clap_complete::Shell;

use crate::args::{GlobalArgs, Token, parse_name};
use crate::client::Registry;
use crate::console::Console;
use crate::error::CliError;
use crate::output::Printer;
use crate::profile;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// List the named profiles (contexts); `*` marks the current one.
    GetContexts,
    /// Make a profile the one used when --context is not given.
    UseContext(ContextName),
    /// Create or change a profile from the global --server and --ca given with it.
    SetContext(ContextName),
    /// Show the current profile's name.
    CurrentContext,
}

#[derive(Debug, Clone, Args)]
pub struct ContextName {
    /// The profile's name.
    #[arg(value_parser = parse_name)]
    pub name: String,
}

#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    /// Read the token from stdin (a pipe) instead of asking for it.
    #[arg(long)]
    pub token_stdin: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CompletionArgs {
    /// The shell: bash, zsh, fish (also elvish, powershell).
    pub shell: Shell,
}

/// The config file as a TOML table to edit (empty when it does not exist yet).
fn load(path: &Path) -> Result<toml::Table, CliError> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .parse::<toml::Table>()
            .map_err(|error| CliError::Usage(format!("the config file {} is not valid: {error}", path.display()))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(toml::Table::new()),
        Err(error) => Err(CliError::Usage(format!(
            "cannot read the config file {}: {error}",
            path.display()
        ))),
    }
}

/// Writes a file readable and writable by its owner only (0600), creating its directory.
fn write_private(path: &Path, contents: &str) -> Result<(), CliError> {
    let fail = |error: std::io::Error| CliError::Usage(format!("cannot write {}: {error}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        // An existing file keeps its mode on open: set it, so a token never lands in a readable file.
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
        }
    }
    let mut file = options.open(path).map_err(fail)?;
    file.write_all(contents.as_bytes()).map_err(fail)
}

fn save(path: &Path, table: &toml::Table) -> Result<(), CliError> {
    let text =
        toml::to_string(table).map_err(|error| CliError::Usage(format!("cannot write the config file: {error}")))?;
    write_private(path, &text)
}

fn the_path(global: &GlobalArgs) -> Result<PathBuf, CliError> {
    profile::config_path(global).ok_or_else(|| {
        CliError::Usage("no place for the config file: set HOME or XDG_CONFIG_HOME, or give --config".to_owned())
    })
}

fn contexts(table: &toml::Table) -> Vec<(String, Option<String>)> {
    table
        .get("contexts")
        .and_then(toml::Value::as_table)
        .map(|contexts| {
            contexts
                .iter()
                .map(|(name, profile)| {
                    let server = profile.get("server").and_then(toml::Value::as_str).map(str::to_owned);
                    (name.clone(), server)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `sessionctl config …`.
pub fn config(command: &ConfigCommand, global: &GlobalArgs, p: &mut Printer<'_>) -> Result<(), CliError> {
    let path = the_path(global)?;
    let mut table = load(&path)?;
    let current = table
        .get("current_context")
        .and_then(toml::Value::as_str)
        .map(str::to_owned);
    match command {
        ConfigCommand::GetContexts => get_contexts(&table, current.as_deref(), &path, p)?,
        ConfigCommand::CurrentContext => match current {
            Some(name) => writeln!(p, "{name}")?,
            None => return Err(CliError::Usage("no current context is set".to_owned())),
        },
        ConfigCommand::UseContext(ContextName { name }) => {
            if !contexts(&table).iter().any(|(known, _)| known == name) {
                return Err(CliError::Usage(format!(
                    "no context named `{name}` in {}; create it with `sessionctl config set-context {name} --server \
                     ADDRESS`",
                    path.display()
                )));
            }
            table.insert("current_context".to_owned(), toml::Value::String(name.clone()));
            save(&path, &table)?;
            writeln!(p, "Switched to context \"{name}\".")?;
        }
        ConfigCommand::SetContext(args) => {
            set_context(&mut table, &args.name, global, &path)?;
            save(&path, &table)?;
            writeln!(p, "Context \"{}\" saved in {}.", args.name, path.display())?;
        }
    }
    Ok(())
}

/// `config get-contexts`: the contexts of the file at `path` as a table, the current one marked.
fn get_contexts(table: &toml::Table, current: Option<&str>, path: &Path, p: &mut Printer<'_>) -> Result<(), CliError> {
    let known = contexts(table);
    if known.is_empty() {
        p.note(&format!(
            "No contexts in {}; add one with `sessionctl config set-context NAME --server ADDRESS`.\n",
            path.display()
        ))?;
        return Ok(());
    }
    let mut rows = crate::render::table(&["CURRENT", "NAME", "SERVER"]);
    for (name, server) in known {
        let mark = if current == Some(name.as_str()) { "*" } else { "" };
        rows.add_row(vec![mark.to_owned(), name, server.unwrap_or_else(|| "-".to_owned())]);
    }
    p.table(&format!("{}\n", rows.trim_fmt()))?;
    Ok(())
}

/// `config set-context NAME`: the context `name` of `table` takes the `--server` and `--ca` given.
fn set_context(table: &mut toml::Table, name: &str, global: &GlobalArgs, path: &Path) -> Result<(), CliError> {
    if global.server.is_none() && global.ca.is_none() {
        return Err(CliError::Usage(format!(
            "say what the context holds: `sessionctl config set-context {name} --server ADDRESS [--ca FILE]`"
        )));
    }
    let contexts = table
        .entry("contexts")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let Some(contexts) = contexts.as_table_mut() else {
        return Err(CliError::Usage(format!(
            "{}: `contexts` is not a table",
            path.display()
        )));
    };
    let profile = contexts
        .entry(name.to_owned())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let Some(profile) = profile.as_table_mut() else {
        return Err(CliError::Usage(format!(
            "{}: context `{name}` is not a table",
            path.display()
        )));
    };
    if let Some(server) = &global.server {
        profile.insert("server".to_owned(), toml::Value::String(server.clone()));
    }
    if let Some(ca) = &global.ca {
        profile.insert("ca".to_owned(), toml::Value::String(ca.display().to_string()));
    }
    Ok(())
}

/// `sessionctl login`: takes a token (asked for, or from stdin), checks it against the profile's registry,
/// stores it in `tokens/<profile>.token` beside the config file (mode 0600), and points the profile's
/// `token_file` at it.
pub async fn login(
    args: &LoginArgs,
    global: &GlobalArgs,
    p: &mut Printer<'_>,
    console: &mut Console<'_>,
) -> Result<(), CliError> {
    let path = the_path(global)?;
    let mut table = load(&path)?;
    let name = global.context.clone().or_else(|| {
        table
            .get("current_context")
            .and_then(toml::Value::as_str)
            .map(str::to_owned)
    });
    let typed = if args.token_stdin {
        let mut line = String::new();
        console.input.read_line(&mut line).map_err(CliError::Input)?;
        line
    } else if console.interactive {
        write!(
            console.output,
            "Token for {}: ",
            name.as_deref().unwrap_or("the default profile")
        )
        .map_err(CliError::Output)?;
        console.output.flush().map_err(CliError::Output)?;
        let mut line = String::new();
        console.input.read_line(&mut line).map_err(CliError::Input)?;
        line
    } else {
        return Err(CliError::Usage(
            "`login` asks for the token, but stdin is not a terminal; pipe it in with --token-stdin".to_owned(),
        ));
    };
    let token: Token = typed.parse().map_err(CliError::Usage)?;

    // Checked before it is kept: a call the registry answers only for a valid token.
    let mut checked = global.clone();
    checked.token = Some(token.clone());
    Registry::connect(&checked).await?.get_stats().await?;

    let dir = path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let token_path = dir
        .join("tokens")
        .join(format!("{}.token", name.as_deref().unwrap_or("default")));
    write_private(&token_path, &format!("{}\n", token.expose()))?;
    let target = match &name {
        Some(name) => {
            let contexts = table
                .entry("contexts")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| CliError::Usage(format!("{}: `contexts` is not a table", path.display())))?;
            let profile = contexts
                .entry(name.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            profile
                .as_table_mut()
                .ok_or_else(|| CliError::Usage(format!("{}: context `{name}` is not a table", path.display())))?
        }
        None => &mut table,
    };
    target.remove("token");
    target.insert(
        "token_file".to_owned(),
        toml::Value::String(token_path.display().to_string()),
    );
    if !target.contains_key("server") {
        target.insert("server".to_owned(), toml::Value::String(global.server().to_owned()));
    }
    save(&path, &table)?;
    writeln!(
        p,
        "Logged in to {}; the token is in {} (readable by you only).",
        global.server(),
        token_path.display()
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_are_readable_by_their_owner_only() {
        let dir = std::env::temp_dir().join(format!("sessionctl-setup-{}", std::process::id()));
        let path = dir.join("tokens").join("prod.token");
        write_private(&path, "s3cret\n").expect("written");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "s3cret\n");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn completion_scripts_name_the_commands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            crate::cli::completion(&CompletionArgs { shell }, &mut out).expect("generated");
            let script = String::from_utf8(out).expect("UTF-8");
            assert!(
                script.contains("sessionctl") && script.contains("terminations"),
                "{shell}"
            );
        }
    }
}
