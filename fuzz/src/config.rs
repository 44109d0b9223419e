//! Each service's configuration as the runtime's loader reads it: defaults, then a TOML file, then
//! `VIGIL_*`-style environment variables; then the checks each service makes before it starts, and
//! `print-config`'s rendering.
//!
//! The file's text is handed to the loader in memory (`config::load_from_str`: the same figment
//! layering and checks as `config::load`, whose only other step is reading the file), rather than
//! written to a temporary file and read back for every input.

use serde::Serialize;
use serde::de::DeserializeOwned;
use vigil_runtime::config;

/// The variables' prefix: not `VIGIL_`, so that nothing set for a real service is read.
const PREFIX: &str = "VIGILFUZZ_";

/// The first byte picks the service whose configuration is loaded (modulo 5: registry,
/// termination, policy, geo, gateway), one per input: loading all five made an input cost five
/// loads, and the run too slow for ten million of them. Then, before the first NUL byte: the file;
/// after it, one `KEY=value` per line, set as `VIGILFUZZ_KEY`.
pub fn config(data: &[u8]) {
    let Some((&service, data)) = data.split_first() else {
        return;
    };
    let (file, env) = match data.iter().position(|&byte| byte == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    // Text in memory must be UTF-8; a file that is not would be refused by the TOML parser, so its
    // lossy reading still goes through (and the variables are still read with it).
    let file = String::from_utf8_lossy(file);
    let names = set_env(env);
    load_one(service, &file);
    for name in names {
        // SAFETY: the harness is single-threaded (libFuzzer runs one input at a time, the corpus test
        // is one test), so nothing reads the environment meanwhile.
        unsafe { std::env::remove_var(name) };
    }
}

fn load_one(service: u8, file: &str) {
    match service % 5 {
        0 => {
            if let Some(loaded) = load::<vigil_registry::app::RegistryConfig>(file) {
                let _ = loaded.registry.validate();
                let _ = loaded.registry.validate_for_production(true);
            }
        }
        1 => {
            if let Some(loaded) = load::<vigil_termination::app::TerminationConfig>(file) {
                let _ = loaded.termination.validate();
            }
        }
        2 => {
            if let Some(loaded) = load::<vigil_policy::app::PolicyConfig>(file) {
                let _ = loaded.policy.validate();
            }
        }
        3 => {
            if let Some(loaded) = load::<vigil_geo::app::GeoServiceConfig>(file) {
                let _ = loaded.geo.validate();
            }
        }
        _ => {
            if let Some(loaded) = load::<vigil_gateway::config::GatewayConfig>(file) {
                let _ = loaded.ssh.validate();
            }
        }
    }
}

/// Loads a `T` and renders it as `print-config` does.
fn load<T: DeserializeOwned + Serialize + Default>(file: &str) -> Option<T> {
    let loaded: T = config::load_from_str(file, PREFIX).ok()?;
    let _ = config::describe(&loaded);
    Some(loaded)
}

/// The variables of `env` that can be set (a name without `=`, NUL or nothing), set; their names.
fn set_env(env: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    for line in String::from_utf8_lossy(env).lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.is_empty() || key.contains('\0') || value.contains('\0') || names.len() >= 16 {
            continue;
        }
        let name = format!("{PREFIX}{key}");
        // SAFETY: as in `config`: one thread.
        unsafe { std::env::set_var(&name, value) };
        names.push(name);
    }
    names
}
