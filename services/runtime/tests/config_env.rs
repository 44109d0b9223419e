//! Environment-variable layering of `config::load`.
//!
//! This file is its own test binary with a single test, because setting environment variables is
//! only sound while no other thread reads the environment (hence `unsafe` in Rust 2024).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigil_runtime::config::{ConfigError, load};

#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Sample {
    name: String,
    registry: Registry,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Registry {
    #[serde(with = "humantime_serde")]
    idle_after: Duration,
    #[serde(with = "humantime_serde")]
    warn_after: Duration,
    batch_size: u32,
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
            warn_after: Duration::from_secs(20),
            batch_size: 100,
        }
    }
}

#[test]
fn defaults_then_file_then_environment() {
    let file = std::env::temp_dir().join(format!("vigil-config-env-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(
        &file,
        "name = \"from-file\"\n[registry]\nidle_after = \"10m\"\nwarn_after = \"9m\"\n",
    )
    .unwrap();
    let _cleanup = RemoveOnDrop(file.clone());

    // SAFETY: this binary runs this one test; no other thread reads the environment meanwhile.
    unsafe {
        std::env::set_var("VIGILENVTEST_REGISTRY__IDLE_AFTER", "5m");
        std::env::set_var("VIGILENVTEST_REGISTRY__BATCH_SIZE", "7");
        // Variables that name no section or field are ignored, even with strict structs: other
        // services share the prefix, and Kubernetes injects `<SERVICE>_SERVICE_HOST` variables.
        std::env::set_var("VIGILENVTEST_SOMETHING_ELSE", "x");
        std::env::set_var("VIGILENVTEST_REGISTRY_SERVICE_HOST", "10.0.0.1");
        std::env::set_var("VIGILENVTEST_CONFIG", "/etc/vigil/registry.toml");
    }
    let config: Sample = load(Some(&file), "VIGILENVTEST_").unwrap();
    assert_eq!(
        config.registry.idle_after,
        Duration::from_secs(300),
        "environment beats file"
    );
    assert_eq!(
        config.registry.warn_after,
        Duration::from_secs(540),
        "file beats defaults"
    );
    assert_eq!(config.registry.batch_size, 7, "environment beats defaults");
    assert_eq!(config.name, "from-file");

    // A typo inside a known section is caught.
    // SAFETY: as above.
    unsafe { std::env::set_var("VIGILENVTEST_REGISTRY__IDLE_AFTR", "5m") };
    let error = load::<Sample>(Some(&file), "VIGILENVTEST_").unwrap_err();
    assert!(error.to_string().contains("idle_aftr"), "{error}");
    // SAFETY: as above.
    unsafe { std::env::remove_var("VIGILENVTEST_REGISTRY__IDLE_AFTR") };

    // A bad value names the variable it came from.
    // SAFETY: as above.
    unsafe { std::env::set_var("VIGILENVTEST_REGISTRY__BATCH_SIZE", "many") };
    let error = load::<Sample>(Some(&file), "VIGILENVTEST_").unwrap_err();
    assert!(matches!(error, ConfigError::Invalid(_)));
    assert!(
        error.to_string().contains("VIGILENVTEST_REGISTRY__BATCH_SIZE"),
        "{error}"
    );
    // SAFETY: as above.
    unsafe { std::env::set_var("VIGILENVTEST_REGISTRY__BATCH_SIZE", "7") };

    // A quoted value with a non-ASCII character before an escape: figment would panic on it (or
    // drop characters); it is refused, naming the variable (found by the `config` fuzz target).
    for value in ["\"é\\n\"", "[\"/no\u{b1}\u{b1}es\\\" = [\"x\"]", "\"éa\\tb\""] {
        // SAFETY: as above.
        unsafe { std::env::set_var("VIGILENVTEST_NAME", value) };
        let error = load::<Sample>(Some(&file), "VIGILENVTEST_").unwrap_err();
        assert!(matches!(error, ConfigError::Invalid(_)), "{value}: {error}");
        assert!(error.to_string().contains("VIGILENVTEST_NAME"), "{error}");
    }
    // A value nested thousands of levels deep overflowed the stack inside figment and killed the
    // process (found by the `config` fuzz target); it is refused, naming the variable. A shallow
    // array still reads.
    let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    // SAFETY: as above.
    unsafe { std::env::set_var("VIGILENVTEST_NAME", &deep) };
    let error = load::<Sample>(Some(&file), "VIGILENVTEST_").unwrap_err();
    assert!(error.to_string().contains("VIGILENVTEST_NAME"), "{error}");
    assert!(error.to_string().contains("nested more than 32 levels"), "{error}");
    // Without escapes, or plain ASCII with them, the value is read as written.
    for (value, read) in [("\"é\"", "é"), ("\"a\\tb\"", "a\tb"), ("plain é", "plain é")] {
        // SAFETY: as above.
        unsafe { std::env::set_var("VIGILENVTEST_NAME", value) };
        let config: Sample = load(Some(&file), "VIGILENVTEST_").unwrap();
        assert_eq!(config.name, read, "{value}");
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
