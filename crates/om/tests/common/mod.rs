//! Shared support for the interop tests: finding the broker and the Python
//! peer, and driving `python/peer.py` (the real oslo.messaging 18.3.1).
#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// The broker URL in `var` and the Python peer, or `None` when this run has
/// no broker: then the test prints SKIPPED and passes, unless
/// `OM_REQUIRE_BROKERS=1` (set by `cargo xtask test`), where it fails.
pub fn setup(var: &str) -> Option<(String, Peer)> {
    let url = std::env::var(var).ok().filter(|s| !s.is_empty());
    let python = std::env::var("OM_PYTHON").ok().filter(|s| !s.is_empty());
    match (url, python) {
        (Some(url), Some(python)) => Some((
            url,
            Peer {
                python: PathBuf::from(python),
            },
        )),
        (url, python) => {
            let missing = if url.is_none() { var } else { "OM_PYTHON" };
            if std::env::var("OM_REQUIRE_BROKERS").as_deref() == Ok("1") {
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

/// Runs `python/peer.py`.
#[derive(Clone)]
pub struct Peer {
    python: PathBuf,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/peer.py")
}

impl Peer {
    fn command(&self, mode: &str, args: &[&str]) -> Command {
        let mut c = Command::new(&self.python);
        c.arg(script()).arg(mode).args(args);
        c.kill_on_drop(true);
        c
    }

    /// Runs a one-shot mode (`rpc-call`, `rpc-cast`, `notify-send`) and
    /// returns its last JSON line.
    pub async fn run(&self, mode: &str, args: &[&str]) -> Value {
        let out = self
            .command(mode, args)
            .stdin(Stdio::null())
            .output()
            .await
            .expect("python peer starts");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout.lines().rev().find(|l| l.starts_with('{'));
        match last {
            Some(l) => serde_json::from_str(l).expect("peer prints JSON"),
            None => panic!(
                "python peer {mode} printed no result (status {}):\n{}\n{}",
                out.status,
                stdout,
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }

    /// Starts a long-running mode (`rpc-server`, `notify-listen`) and waits
    /// until it printed `{"event": "ready"}`.
    pub async fn spawn(&self, mode: &str, args: &[&str]) -> Running {
        let mut child = self
            .command(mode, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python peer starts");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        let (etx, erx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = etx.send(line);
            }
        });
        let mut running = Running {
            child,
            stdin,
            lines: rx,
            stderr: erx,
        };
        let ready = running.next_line(Duration::from_secs(60)).await;
        assert_eq!(
            ready.get("event"),
            Some(&Value::from("ready")),
            "peer {mode} did not start: {ready}"
        );
        running
    }
}

/// A running peer process.
pub struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<Value>,
    stderr: mpsc::UnboundedReceiver<String>,
}

impl Running {
    /// The next JSON line, or a panic with the peer's stderr after `within`.
    pub async fn next_line(&mut self, within: Duration) -> Value {
        match tokio::time::timeout(within, self.lines.recv()).await {
            Ok(Some(v)) => v,
            _ => {
                let mut err = String::new();
                while let Ok(l) = self.stderr.try_recv() {
                    err.push_str(&l);
                    err.push('\n');
                }
                panic!("python peer gave no line within {within:?}; stderr:\n{err}");
            }
        }
    }

    /// Lines that arrive within `within` (stops early after `max`).
    pub async fn lines_for(&mut self, within: Duration, max: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + within;
        let mut out = Vec::new();
        while out.len() < max {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(v)) => out.push(v),
                _ => break,
            }
        }
        out
    }

    /// Closes stdin (servers stop cleanly) and waits for the exit.
    pub async fn finish(mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.shutdown().await;
        }
        drop(self.stdin.take());
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
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
