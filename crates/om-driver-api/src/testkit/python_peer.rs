//! A harness for Python peer scripts in interop tests.
//!
//! Interop tests check a driver against the real Python oslo.messaging by
//! running a small peer script (one process per role) that speaks a
//! line-oriented JSON protocol on stdout:
//!
//! * one-shot modes (e.g. `rpc-call`, `rpc-cast`, `notify-send`) print their
//!   result as the last JSON line and exit: [`PythonPeer::run`];
//! * long-running modes (e.g. `rpc-server`, `notify-listen`) first print
//!   `{"event": "ready"}`, then one JSON line per thing they handled, and
//!   stop cleanly when their stdin closes: [`PythonPeer::spawn`] and
//!   [`Running`].
//!
//! The script is invoked as `<python> <script> <mode> <args...>`. Lines on
//! stdout that are not JSON are ignored; stderr is kept and shown when a
//! peer fails to answer. Every wait is bounded, so a broken peer fails the
//! test instead of hanging it.
//!
//! ```no_run
//! # async fn demo() {
//! use om_driver_api::testkit::python_peer::PythonPeer;
//! use std::time::Duration;
//!
//! let peer = PythonPeer::new("/venv/bin/python", "tests/python/peer.py");
//! let mut server = peer
//!     .spawn("rpc-server", &["--url", "rabbit://", "--topic", "t"])
//!     .await;
//! // ... call the server ...
//! let handled = server.next_line(Duration::from_secs(30)).await;
//! server.finish().await;
//! # let _ = handled;
//! # }
//! ```

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// Runs one Python peer script with one Python interpreter.
#[derive(Clone, Debug)]
pub struct PythonPeer {
    python: PathBuf,
    script: PathBuf,
    limit: Duration,
}

impl PythonPeer {
    /// A peer that runs `script` with the interpreter `python`. One-shot
    /// runs and the wait for `{"event": "ready"}` are limited to 60 s (see
    /// [`PythonPeer::limit`]).
    pub fn new(python: impl Into<PathBuf>, script: impl Into<PathBuf>) -> Self {
        PythonPeer {
            python: python.into(),
            script: script.into(),
            limit: Duration::from_secs(60),
        }
    }

    /// Sets the upper bound for a one-shot run and for a spawned peer to
    /// become ready (an upper bound, not a timing assertion).
    pub fn limit(mut self, limit: Duration) -> Self {
        self.limit = limit;
        self
    }

    /// The interpreter.
    pub fn python(&self) -> &Path {
        &self.python
    }

    /// The peer script.
    pub fn script(&self) -> &Path {
        &self.script
    }

    fn command(&self, mode: &str, args: &[&str]) -> Command {
        let mut c = Command::new(&self.python);
        c.arg(&self.script).arg(mode).args(args).kill_on_drop(true);
        c
    }

    /// Runs a one-shot mode and returns its last JSON line.
    ///
    /// # Panics
    ///
    /// When the peer cannot start, does not finish within the limit, or
    /// prints no JSON line (the panic shows its stdout and stderr).
    pub async fn run(&self, mode: &str, args: &[&str]) -> Value {
        let out = tokio::time::timeout(
            self.limit,
            self.command(mode, args).stdin(Stdio::null()).output(),
        )
        .await
        .unwrap_or_else(|_| panic!("python peer {mode} did not finish within {:?}", self.limit))
        .unwrap_or_else(|e| panic!("python peer {mode} does not start: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Captured by libtest and shown when the test fails.
        println!("python peer {mode} stderr:\n{stderr}");
        let last = stdout.lines().rev().find(|l| l.starts_with('{'));
        match last.map(serde_json::from_str::<Value>) {
            Some(Ok(v)) => v,
            _ => panic!(
                "python peer {mode} printed no JSON result (status {}):\n{stdout}\n{stderr}",
                out.status
            ),
        }
    }

    /// Starts a long-running mode and waits until it printed
    /// `{"event": "ready"}`.
    ///
    /// # Panics
    ///
    /// When the peer cannot start or its first JSON line is not the ready
    /// event.
    pub async fn spawn(&self, mode: &str, args: &[&str]) -> Running {
        let mut child = self
            .command(mode, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("python peer {mode} does not start: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let errout = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut r = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = r.next_line().await {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        let (etx, stderr) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut r = BufReader::new(errout).lines();
            while let Ok(Some(line)) = r.next_line().await {
                let _ = etx.send(line);
            }
        });
        let mut running = Running {
            child,
            stdin,
            lines,
            stderr,
        };
        let ready = running.next_line(self.limit).await;
        assert_eq!(
            ready.get("event"),
            Some(&Value::from("ready")),
            "peer {mode} did not start: {ready}"
        );
        running
    }
}

/// A running peer process (killed when dropped).
#[derive(Debug)]
pub struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<Value>,
    stderr: mpsc::UnboundedReceiver<String>,
}

impl Running {
    /// The next JSON line.
    ///
    /// # Panics
    ///
    /// When none comes within `within` (the panic shows the peer's stderr).
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

    /// The JSON lines that arrive within `within`, stopping early after
    /// `max`.
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

    /// Closes stdin (a peer server stops cleanly) and waits for the exit,
    /// killing the process if it has not exited after 20 s.
    pub async fn finish(mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.shutdown().await;
        }
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
