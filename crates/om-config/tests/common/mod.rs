//! Helpers shared by the integration tests.
#![allow(dead_code)]

use om_config::{ConfigError, ConfigLoader, MessagingConfig};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// `tests/data/<name>`.
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data")
        .join(name)
}

/// A loader that ignores the process environment (tests set variables
/// explicitly with `env_vars`).
pub fn loader() -> ConfigLoader {
    ConfigLoader::new().no_env()
}

/// Loads, panicking with the error's message on failure.
pub fn load(loader: ConfigLoader) -> MessagingConfig {
    loader.load().unwrap_or_else(|e| panic!("load failed: {e}"))
}

/// Loads, panicking if it succeeds.
pub fn load_err(loader: ConfigLoader) -> ConfigError {
    match loader.load() {
        Ok(_) => panic!("load succeeded, an error was expected"),
        Err(e) => e,
    }
}

/// A fresh directory under the system temp dir, unique to this process and call.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "om-config-test-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    dir
}

/// Writes `text` to a new file `name` in a fresh temp dir; returns its path.
pub fn write_conf(name: &str, text: &str) -> PathBuf {
    let path = temp_dir(name).join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// Asserts that `message` contains every needle.
pub fn assert_mentions(message: &str, needles: &[&str]) {
    for n in needles {
        assert!(message.contains(n), "{message:?} does not mention {n:?}");
    }
}
