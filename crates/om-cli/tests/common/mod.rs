//! Shared support for the `om` binary tests: running it, finding the
//! broker and the Python peer, temporary files.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// The `om` binary under test.
pub fn om_bin() -> &'static str {
    env!("CARGO_BIN_EXE_om")
}

fn required(var: &str) -> Option<String> {
    match std::env::var(var).ok().filter(|s| !s.is_empty()) {
        Some(v) => Some(v),
        None => {
            if om_driver_api::testkit::brokers_required() {
                panic!("{var} is not set but OM_REQUIRE_BROKERS=1: this broker test must run");
            }
            eprintln!("SKIPPED ({var} not set)");
            None
        }
    }
}

/// The RabbitMQ URL of this run, or `None` (test skipped) without one.
pub fn rabbit_url() -> Option<String> {
    required("OM_RABBIT_URL")
}

/// The broker URL and the Python interpreter with oslo.messaging, or
/// `None` when either is missing.
pub fn rabbit_and_python() -> Option<(String, String)> {
    let url = rabbit_url()?;
    let python = required("OM_PYTHON")?;
    Some((url, python))
}

/// The interop peer script shared with the `om` crate's tests.
pub fn peer_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../om/tests/python/peer.py")
}

/// A unique name for topics, servers and pools.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}_{}_{nanos:x}_{n}", std::process::id())
}

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    port
}

/// `url` with its password replaced by `password` (the URL must have
/// `user:password@`).
pub fn with_password(url: &str, password: &str) -> String {
    let scheme_end = url.find("://").expect("scheme") + 3;
    let at = url.rfind('@').expect("credentials in OM_RABBIT_URL");
    let creds = &url[scheme_end..at];
    let user = creds.split(':').next().unwrap_or("guest");
    format!("{}{user}:{password}{}", &url[..scheme_end], &url[at..])
}

/// The result of one `om` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Self {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// stdout parsed as one JSON document.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// Panics with the output unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code {} instead of {code}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

/// Runs `om args...` with `stdin` as standard input, within two minutes.
pub async fn om(args: &[&str], stdin: Option<&str>) -> Run {
    om_env(args, stdin, &[]).await
}

/// [`om`] with extra environment variables.
pub async fn om_env(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
    let mut c = Command::new(om_bin());
    c.args(args)
        .env_remove("OM_TRANSPORT_URL")
        .env_remove("OM_LOG")
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = c.spawn().expect("om starts");
    if let Some(text) = stdin {
        let mut s = child.stdin.take().expect("stdin");
        s.write_all(text.as_bytes()).await.expect("write stdin");
        drop(s);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("om finished within 2 minutes")
        .expect("om output");
    Run::from(out)
}

/// A long-running process (`om rpc responder`, `om notify tail`, the
/// Python peer) whose stdout and stderr lines are collected.
pub struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: mpsc::UnboundedReceiver<String>,
    stderr: mpsc::UnboundedReceiver<String>,
    stderr_seen: Vec<String>,
    what: String,
}

fn lines<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    r: R,
) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut l = BufReader::new(r).lines();
        while let Ok(Some(line)) = l.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Proc {
    /// Starts `program args...` with piped standard streams.
    pub fn spawn(program: &str, args: &[&str]) -> Proc {
        let mut c = Command::new(program);
        c.args(args)
            .env_remove("OM_TRANSPORT_URL")
            .env_remove("OM_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = c
            .spawn()
            .unwrap_or_else(|e| panic!("{program} starts: {e}"));
        let stdin = child.stdin.take();
        let stdout = lines(child.stdout.take().expect("stdout"));
        let stderr = lines(child.stderr.take().expect("stderr"));
        Proc {
            child,
            stdin,
            stdout,
            stderr,
            stderr_seen: Vec::new(),
            what: format!("{program} {}", args.join(" ")),
        }
    }

    /// Starts `om args...`.
    pub fn om(args: &[&str]) -> Proc {
        Proc::spawn(om_bin(), args)
    }

    /// Starts the Python peer in `mode` and waits for its ready line.
    pub async fn peer(python: &str, mode: &str, args: &[&str]) -> Proc {
        let script = peer_script();
        let mut all = vec![script.to_str().expect("utf-8 path"), mode];
        all.extend_from_slice(args);
        let mut p = Proc::spawn(python, &all);
        let ready = p.next_json(Duration::from_secs(90)).await;
        assert_eq!(ready["event"], "ready", "peer {mode} not ready: {ready}");
        p
    }

    /// Waits for a stderr line containing `needle`.
    pub async fn wait_stderr(&mut self, needle: &str, within: Duration) -> String {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.stderr.recv()).await {
                Ok(Some(line)) => {
                    self.stderr_seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                _ => panic!(
                    "{}: no stderr line with {needle:?} within {within:?}; stderr so far:\n{}",
                    self.what,
                    self.stderr_seen.join("\n")
                ),
            }
        }
    }

    /// The next stdout line.
    pub async fn next_line(&mut self, within: Duration) -> String {
        match tokio::time::timeout(within, self.stdout.recv()).await {
            Ok(Some(l)) => l,
            _ => {
                while let Ok(l) = self.stderr.try_recv() {
                    self.stderr_seen.push(l);
                }
                panic!(
                    "{}: no stdout line within {within:?}; stderr:\n{}",
                    self.what,
                    self.stderr_seen.join("\n")
                )
            }
        }
    }

    /// The next stdout line, parsed as JSON.
    pub async fn next_json(&mut self, within: Duration) -> Value {
        let line = self.next_line(within).await;
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {line}", self.what))
    }

    /// Stdout lines arriving within `within` (stops early after `max`).
    pub async fn lines_for(&mut self, within: Duration, max: usize) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + within;
        let mut out = Vec::new();
        while out.len() < max {
            match tokio::time::timeout_at(deadline, self.stdout.recv()).await {
                Ok(Some(l)) => out.push(l),
                _ => break,
            }
        }
        out
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Closes stdin.
    pub fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    /// Waits for the exit (within `within`); returns the code and the rest
    /// of stderr.
    pub async fn wait(mut self, within: Duration) -> (i32, String) {
        let status = match tokio::time::timeout(within, self.child.wait()).await {
            Ok(s) => s.expect("wait"),
            Err(_) => {
                let _ = self.child.kill().await;
                panic!("{} did not exit within {within:?}", self.what);
            }
        };
        // The reader tasks end at EOF; collect what they still hold.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while let Ok(Some(l)) = tokio::time::timeout_at(deadline, self.stderr.recv()).await {
            self.stderr_seen.push(l);
        }
        (status.code().unwrap_or(-1), self.stderr_seen.join("\n"))
    }
}

/// A file under the temp dir removed on drop.
pub struct TempFile(pub PathBuf);

impl TempFile {
    /// Writes `content` to a fresh file with suffix `ext`.
    pub fn new(ext: &str, content: &str) -> TempFile {
        let p = std::env::temp_dir().join(format!("{}.{ext}", unique("om-cli-test")));
        std::fs::write(&p, content).expect("write temp file");
        TempFile(p)
    }

    /// The path as a string.
    pub fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
