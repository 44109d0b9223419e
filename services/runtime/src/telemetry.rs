//! Logging set-up: one `tracing` subscriber per process, human-readable or JSON, filtered by
//! configuration unless `RUST_LOG` says otherwise.

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event, for log collectors.
    Json,
}

/// Logging configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Line format.
    pub format: LogFormat,
    /// An `EnvFilter` directive such as `info` or `info,vigil_registry=debug`. The `RUST_LOG`
    /// environment variable, when set, takes precedence.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".to_owned(),
        }
    }
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The filter directive does not parse.
    #[error("invalid log filter {filter:?}: {source}")]
    InvalidFilter {
        /// The directive as given.
        filter: String,
        /// What is wrong with it.
        source: tracing_subscriber::filter::ParseError,
    },
}

/// Installs the global `tracing` subscriber, writing to stderr (stdout stays free for command
/// output such as `--print-config`).
///
/// The filter is validated on every call, but only the first call in a process installs a
/// subscriber: later calls (and calls after someone else installed one, as test harnesses do) are
/// no-ops that return `Ok`.
pub fn init_tracing(config: &LogConfig) -> Result<(), TelemetryError> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let env_filter = build_filter(&config.filter, rust_log.as_deref())?;

    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr);
    let installed = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
    };
    // The only failure left is "a global subscriber is already set": the documented no-op.
    if installed.is_err() {
        tracing::debug!("tracing subscriber already installed; keeping it");
    }
    Ok(())
}

/// The filter to use: `RUST_LOG` when it says something, the configured directive otherwise.
fn build_filter(configured: &str, rust_log: Option<&str>) -> Result<EnvFilter, TelemetryError> {
    let directives = rust_log.filter(|value| !value.trim().is_empty()).unwrap_or(configured);
    EnvFilter::try_new(directives).map_err(|source| TelemetryError::InvalidFilter {
        filter: directives.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_twice_is_fine() {
        // `warn`: this subscriber stays installed for the rest of the test binary.
        init_tracing(&LogConfig {
            format: LogFormat::Text,
            filter: "warn".into(),
        })
        .unwrap();
        init_tracing(&LogConfig {
            format: LogFormat::Json,
            filter: "warn".into(),
        })
        .unwrap();
    }

    #[test]
    fn rust_log_overrides_the_configured_filter() {
        let filter = build_filter("info", Some("vigil_runtime=trace")).unwrap();
        assert_eq!(filter.to_string(), "vigil_runtime=trace");
        let filter = build_filter("info", Some("  ")).unwrap();
        assert_eq!(filter.to_string(), "info");
        let filter = build_filter("info,vigil_registry=debug", None).unwrap().to_string();
        assert!(
            filter.contains("vigil_registry=debug") && filter.contains("info"),
            "{filter}"
        );
    }

    #[test]
    fn an_invalid_filter_is_reported() {
        let error = build_filter("info,vigil=loud", None).unwrap_err();
        assert!(error.to_string().contains("vigil=loud"), "{error}");
    }

    #[test]
    fn formats_are_lower_case_in_config() {
        #[derive(Deserialize)]
        struct Wrapper {
            log: LogConfig,
        }
        let parsed: Wrapper = toml::from_str("[log]\nformat = \"json\"\n").unwrap();
        assert_eq!(
            parsed.log,
            LogConfig {
                format: LogFormat::Json,
                filter: "info".into()
            }
        );
        assert!(toml::from_str::<Wrapper>("[log]\nformat = \"Json\"\n").is_err());
    }
}
