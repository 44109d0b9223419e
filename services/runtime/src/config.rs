//! Configuration loading: defaults → TOML file → environment, in that order of precedence.
//!
//! Every service describes its configuration as one plain `serde` struct whose `Default` is a
//! working development set-up. [`load`] layers a TOML file and prefixed environment variables on
//! top of it; nested keys are separated by `__` in variable names, so with the prefix `VIGIL_`,
//! `VIGIL_REGISTRY__IDLE_AFTER=5m` sets `registry.idle_after`. Durations are written as humantime
//! strings (`"30s"`, `"10m"`) via `humantime_serde`.
//!
//! Environment variables whose first key is not a section or field of the configuration are
//! ignored: several services share the prefix, and Kubernetes injects `VIGIL_<SERVICE>_SERVICE_HOST`
//! and the like. Inside a known section, an unknown key is an error when the struct says
//! `#[serde(deny_unknown_fields)]` (they all do), so `VIGIL_REGISTRY__IDLE_AFTR` is caught.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Data, Env, Format, Serialized, Toml};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A configuration file was named but does not exist.
    #[error("configuration file {} does not exist", path.display())]
    MissingFile {
        /// The path as given.
        path: PathBuf,
    },
    /// Values are malformed or have the wrong type. The message names each key and where its
    /// value came from (the file path or the environment variable).
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// The configuration cannot be rendered as TOML (a type TOML has no notation for).
    #[error("cannot render the configuration as TOML: {0}")]
    Render(#[from] toml::ser::Error),
}

/// Loads a `T` from its defaults, then the TOML `file` (when given), then environment variables
/// starting with `env_prefix` (e.g. `"VIGIL_"`); later sources override earlier ones key by key.
///
/// A file that is named but missing is an error: silently running on defaults would hide a typo in
/// a path.
pub fn load<T>(file: Option<&Path>, env_prefix: &str) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Serialize + Default,
{
    let toml = match file {
        Some(path) if !path.is_file() => return Err(ConfigError::MissingFile { path: path.to_owned() }),
        // `file_exact`: `Toml::file` would also search parent directories for a relative path.
        Some(path) => Some(Toml::file_exact(path)),
        None => None,
    };
    load_layers(toml, env_prefix)
}

/// [`load`] with the TOML file's text given instead of its path: the same parsing, layering and
/// checks, without a file (what the `config` fuzz target feeds). Errors name no file.
pub fn load_from_str<T>(toml: &str, env_prefix: &str) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Serialize + Default,
{
    load_layers(Some(Toml::string(toml)), env_prefix)
}

fn load_layers<T>(toml: Option<Data<Toml>>, env_prefix: &str) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Serialize + Default,
{
    let defaults = T::default();
    let top_level_keys = top_level_keys(&defaults)?;
    let mut figment = Figment::from(Serialized::defaults(defaults));
    if let Some(toml) = toml {
        figment = figment.merge(toml);
    }
    refuse_misread_values(env_prefix, &top_level_keys)?;
    figment = figment.merge(
        Env::prefixed(env_prefix)
            .filter(move |key| {
                let first = key.as_str().split("__").next().unwrap_or_default();
                top_level_keys.iter().any(|known| known.eq_ignore_ascii_case(first))
            })
            .split("__"),
    );
    figment
        .extract()
        .map_err(|error| ConfigError::Invalid(explain(error, env_prefix)))
}

/// How deeply arrays and tables may nest in an environment variable's value. figment parses a
/// value recursively with no limit of its own: a value nested a few thousand levels deep overflowed
/// the stack and killed the process (found by the `config` fuzz target). A configuration needs two.
const MAX_ENV_VALUE_NESTING: usize = 32;

/// Refuses the environment values figment would misread or choke on. figment 0.10 unescapes a
/// quoted string in a variable's value (`"…\n…"`, also inside an array or a table) by character
/// position used as a byte position: with a non-ASCII character before a backslash it panics, or
/// silently drops characters; and it parses arrays and tables recursively, so a value nested deep
/// enough overflows the stack (both found by the `config` fuzz target). Such a value is refused,
/// naming its variable; without quotes, or without escapes, it is read as written.
fn refuse_misread_values(env_prefix: &str, top_level_keys: &[String]) -> Result<(), ConfigError> {
    for (name, value) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let Some(key) = strip_prefix_ignore_case(name.trim(), env_prefix) else {
            continue;
        };
        let first = key.split("__").next().unwrap_or_default();
        if !top_level_keys.iter().any(|known| known.eq_ignore_ascii_case(first)) {
            continue;
        }
        let value = value.to_string_lossy();
        if value.contains('"') && value.contains('\\') && !value.is_ascii() {
            return Err(ConfigError::Invalid(format!(
                "{name}: a quoted value with a backslash escape must be ASCII only (write other characters \
                 without quotes, or as \\u escapes)"
            )));
        }
        if nesting_depth(&value) > MAX_ENV_VALUE_NESTING {
            return Err(ConfigError::Invalid(format!(
                "{name}: arrays and tables nested more than {MAX_ENV_VALUE_NESTING} levels deep"
            )));
        }
    }
    Ok(())
}

/// The deepest nesting of `[…]` and `{…}` in an environment value. Brackets inside quoted strings
/// count too: a string with more than a few dozen of them is no configuration, and counting them
/// all leaves no quoting trick that figment would read differently.
fn nesting_depth(value: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    for character in value.chars() {
        match character {
            '[' | '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// `text` without `prefix`, compared ASCII case-insensitively (as figment matches prefixes).
fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

/// The sections and fields at the top of a configuration (what an environment variable may name).
fn top_level_keys<T: Serialize>(defaults: &T) -> Result<Vec<String>, ConfigError> {
    let value = figment::value::Value::serialize(defaults)
        .map_err(|error| ConfigError::Invalid(format!("the defaults cannot be serialised: {error}")))?;
    Ok(match value.into_dict() {
        Some(dict) => dict.into_keys().collect(),
        None => Vec::new(),
    })
}

/// One line per problem: `key: what is wrong (where the value came from)`.
fn explain(errors: figment::Error, env_prefix: &str) -> String {
    errors
        .into_iter()
        .map(|error| {
            let key = error.path.join(".");
            let origin = match &error.metadata {
                Some(metadata) => match &metadata.source {
                    Some(figment::Source::File(path)) => format!("in file {}", path.display()),
                    // figment names the whole provider; the variable is what a person can fix.
                    _ if metadata.name.contains("environment") => {
                        let variable = error
                            .path
                            .iter()
                            .map(|part| part.to_ascii_uppercase())
                            .collect::<Vec<_>>();
                        format!("from environment variable {env_prefix}{}", variable.join("__"))
                    }
                    _ => format!("from {}", metadata.name),
                },
                None => "from an unknown source".to_owned(),
            };
            if key.is_empty() {
                format!("{} ({origin})", error.kind)
            } else {
                format!("{key}: {} ({origin})", error.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Renders the effective configuration as TOML, for `--print-config`.
///
/// Secrets are masked: passwords inside URLs become `****`, and so does every value whose key
/// mentions a password, secret, token or credential. The output is for people, not for feeding
/// back in.
pub fn describe<T: Serialize>(config: &T) -> Result<String, ConfigError> {
    let mut value = toml::Value::try_from(config)?;
    redact(None, &mut value);
    Ok(toml::to_string_pretty(&value)?)
}

/// Masks secrets in place; `key` is the key under which `value` sits, if any.
///
/// A table under a secret-sounding key is a map of secrets (`auth.gateway_credentials`, keyed by
/// gateway id): every string in it is masked. The tables of an array are records of their own
/// (`auth.api_tokens`): their fields are judged by their own keys, so a token's `subject` stays
/// readable while its `token` is masked.
/// The longest run of one quote character a string may hold and still be rendered. The TOML writer
/// (toml_write 0.1, also toml_writer 1.1) counts a run of quotes in a `u8`: at 256 in a row it
/// panics where overflow is checked, and elsewhere wraps and may pick a quoting the run breaks
/// (found by the `config` fuzz target). No configuration value needs such a run.
const MAX_RENDERED_QUOTE_RUN: usize = 200;

/// The longest run of `'` or `"` characters in `text`.
fn longest_quote_run(text: &str) -> usize {
    let (mut run, mut longest, mut previous) = (0usize, 0usize, None);
    for byte in text.bytes() {
        if matches!(byte, b'\'' | b'"') && previous == Some(byte) {
            run += 1;
        } else if matches!(byte, b'\'' | b'"') {
            run = 1;
        } else {
            run = 0;
        }
        previous = Some(byte);
        longest = longest.max(run);
    }
    longest
}

fn redact(key: Option<&str>, value: &mut toml::Value) {
    let secret = key.is_some_and(is_secret_key);
    match value {
        toml::Value::String(text) => {
            if secret {
                *text = "****".to_owned();
            } else if longest_quote_run(text) > MAX_RENDERED_QUOTE_RUN {
                *text = format!(
                    "<not shown: more than {MAX_RENDERED_QUOTE_RUN} quotes in a row ({} bytes)>",
                    text.len()
                );
            } else if text.contains("://") {
                *text = crate::database::redact_url(text);
            }
        }
        toml::Value::Table(table) => {
            for (child_key, value) in table.iter_mut() {
                redact(if secret { key } else { Some(child_key) }, value);
            }
        }
        toml::Value::Array(items) => {
            for item in items {
                redact(if item.is_table() { None } else { key }, item);
            }
        }
        toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) | toml::Value::Datetime(_) => {}
    }
}

/// Whether values under this key are secrets.
fn is_secret_key(key: &str) -> bool {
    const SECRET_KEYS: [&str; 4] = ["password", "secret", "token", "credential"];
    let key = key.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|secret| key.contains(secret))
}

#[cfg(test)]
mod tests {
    //! Environment-variable layering is tested in `tests/config_env.rs`: setting variables is only
    //! sound in a process where no other test thread reads the environment at the same time.

    use std::time::Duration;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(default)]
    struct Sample {
        name: String,
        registry: Registry,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(default)]
    struct Registry {
        #[serde(with = "humantime_serde")]
        idle_after: Duration,
        batch_size: u32,
        database_url: String,
        api_token: Option<String>,
    }

    impl Default for Sample {
        fn default() -> Self {
            Self {
                name: "vigil".into(),
                registry: Registry::default(),
            }
        }
    }

    impl Default for Registry {
        fn default() -> Self {
            Self {
                idle_after: Duration::from_secs(30),
                batch_size: 100,
                database_url: "postgres://vigil:hunter2@db.internal/vigil".into(),
                api_token: None,
            }
        }
    }

    /// A TOML file in the temp directory, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(contents: &str) -> Self {
            let path = std::env::temp_dir().join(format!("vigil-config-{}.toml", uuid::Uuid::new_v4()));
            std::fs::write(&path, contents).expect("write temp config");
            Self(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// A prefix no environment variable has, so these tests see defaults and files only.
    fn unused_prefix() -> String {
        format!("VIGIL_UNSET_{}_", uuid::Uuid::new_v4().simple())
    }

    #[test]
    fn defaults_alone() {
        let config: Sample = load(None, &unused_prefix()).unwrap();
        assert_eq!(config, Sample::default());
    }

    #[test]
    fn file_overrides_defaults_key_by_key() {
        let file = TempFile::new("[registry]\nidle_after = \"10m\"\n");
        let config: Sample = load(Some(&file.0), &unused_prefix()).unwrap();
        assert_eq!(config.registry.idle_after, Duration::from_secs(600));
        assert_eq!(
            config.registry.batch_size, 100,
            "keys absent from the file keep their default"
        );
        assert_eq!(config.name, "vigil");
    }

    #[test]
    fn text_in_memory_loads_as_the_same_file_does() {
        let text = "name = \"edge\"\n[registry]\nidle_after = \"10m\"\n";
        let file = TempFile::new(text);
        let from_file: Sample = load(Some(&file.0), &unused_prefix()).unwrap();
        let from_text: Sample = load_from_str(text, &unused_prefix()).unwrap();
        assert_eq!(from_text, from_file);
        let error = load_from_str::<Sample>("[registry]\nidle_after = 5\n", &unused_prefix()).unwrap_err();
        assert!(error.to_string().contains("registry.idle_after"), "{error}");
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let path = std::env::temp_dir().join(format!("vigil-missing-{}.toml", uuid::Uuid::new_v4()));
        let error = load::<Sample>(Some(&path), &unused_prefix()).unwrap_err();
        assert!(matches!(error, ConfigError::MissingFile { .. }));
        assert!(error.to_string().contains(&path.display().to_string()), "{error}");
    }

    #[test]
    fn bad_value_names_the_key_and_the_file() {
        let file = TempFile::new("[registry]\nidle_after = \"ten minutes\"\n");
        let error = load::<Sample>(Some(&file.0), &unused_prefix()).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("registry.idle_after"), "{message}");
        assert!(message.contains(&file.0.display().to_string()), "{message}");
    }

    #[test]
    fn describe_renders_toml_that_loads_back_with_secrets_masked() {
        let mut config = Sample::default();
        config.registry.api_token = Some("s3cr3t".into());
        let rendered = describe(&config).unwrap();
        assert!(rendered.contains("idle_after = \"30s\""), "{rendered}");
        assert!(
            rendered.contains("postgres://vigil:****@db.internal/vigil"),
            "{rendered}"
        );
        assert!(!rendered.contains("hunter2"), "{rendered}");
        assert!(!rendered.contains("s3cr3t"), "{rendered}");

        let file = TempFile::new(&rendered);
        let reloaded: Sample = load(Some(&file.0), &unused_prefix()).unwrap();
        assert_eq!(reloaded.registry.idle_after, config.registry.idle_after);
        assert_eq!(reloaded.registry.batch_size, config.registry.batch_size);
    }
}

#[cfg(test)]
mod top_level_key_tests {
    use super::*;

    #[derive(Serialize, Default)]
    struct WithOptional {
        section: Section,
        url: Option<String>,
    }

    #[derive(Serialize, Default)]
    struct Section {
        value: u32,
    }

    #[test]
    fn a_long_run_of_quotes_is_not_rendered() {
        assert_eq!(longest_quote_run("a\"b''c"), 2);
        assert_eq!(longest_quote_run("'\"'\""), 1);
        #[derive(Serialize)]
        struct WithText {
            name: String,
        }
        // 300 quotes in a row overflowed the TOML writer's counter (a panic in this build).
        for quote in ['"', '\''] {
            let name = format!("x{}y", quote.to_string().repeat(300));
            let shown = describe(&WithText { name }).unwrap();
            assert!(
                shown.contains("not shown: more than 200 quotes in a row (302 bytes)"),
                "{shown}"
            );
        }
        let shown = describe(&WithText {
            name: "say \"hi\"".into(),
        })
        .unwrap();
        assert!(shown.contains("hi"), "{shown}");
    }

    #[test]
    fn nesting_counts_every_bracket() {
        assert_eq!(nesting_depth("plain"), 0);
        assert_eq!(nesting_depth("[1, [2, {a = 3}]]"), 3);
        assert_eq!(nesting_depth("[\"[[\"]"), 3);
        assert_eq!(nesting_depth("]]]["), 1);
        assert_eq!(
            nesting_depth(&format!("{}1{}", "[".repeat(5000), "]".repeat(5000))),
            5000
        );
    }

    #[test]
    fn unset_optional_fields_still_count_as_known_keys() {
        let mut keys = top_level_keys(&WithOptional::default()).unwrap();
        keys.sort();
        assert_eq!(keys, vec!["section".to_string(), "url".to_string()]);
    }
}
