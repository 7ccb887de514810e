//! Shared support for the interop tests: finding the broker and the Python
//! peer, and driving `python/peer.py` (the real oslo.messaging 18.3.1).
#![allow(dead_code)]

use om_driver_api::testkit::python_peer::PythonPeer;
use serde_json::Value;
use std::path::PathBuf;

/// The broker URL in `var` and the Python peer, or `None` when this run has
/// no broker: then the test prints SKIPPED and passes, unless
/// `OM_REQUIRE_BROKERS=1` (set by `cargo xtask test`), where it fails.
pub fn setup(var: &str) -> Option<(String, Peer)> {
    let url = std::env::var(var).ok().filter(|s| !s.is_empty());
    let python = std::env::var("OM_PYTHON").ok().filter(|s| !s.is_empty());
    match (url, python) {
        (Some(url), Some(python)) => Some((url, PythonPeer::new(PathBuf::from(python), script()))),
        (url, python) => {
            let missing = if url.is_none() { var } else { "OM_PYTHON" };
            if om_driver_api::testkit::brokers_required() {
                panic!("{missing} is not set but OM_REQUIRE_BROKERS=1: this interop test must run (use `cargo xtask test`)");
            }
            let _ = python;
            eprintln!("SKIPPED ({missing} not set; run `cargo xtask test` for the interop tests)");
            None
        }
    }
}

/// A unique name for topics, pools and servers.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", om::core::uuid_hex())
}

/// Runs `python/peer.py` (the shared harness of
/// `om_driver_api::testkit::python_peer`).
pub type Peer = PythonPeer;

pub use om_driver_api::testkit::python_peer::Running;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/peer.py")
}

/// Writes JSON to a temporary file and returns `@path` for the peer.
pub fn json_file(value: &Value) -> (tempfile_path::TempPath, String) {
    let path = tempfile_path::TempPath::new();
    std::fs::write(path.path(), serde_json::to_vec(value).expect("json")).expect("write temp file");
    let arg = format!("@{}", path.path().display());
    (path, arg)
}

/// A tiny self-deleting temporary file path (avoids a dependency).
pub mod tempfile_path {
    use std::path::{Path, PathBuf};

    /// A path under the system temp dir, removed on drop.
    pub struct TempPath(PathBuf);

    impl TempPath {
        /// A fresh unique path.
        pub fn new() -> Self {
            TempPath(std::env::temp_dir().join(format!("om-interop-{}.json", om::core::uuid_hex())))
        }
        /// The path.
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}
