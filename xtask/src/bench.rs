//! `cargo xtask bench`: end-to-end throughput and latency of om against raw
//! lapin / rdkafka / fe2o3-amqp and against Python oslo.messaging, on the
//! same brokers in one run; writes `docs/performance.md` and
//! `docs/performance.svg`.
//!
//! ```text
//! cargo xtask bench [--quick] [--repeat N] [--duration S] [--warmup S]
//!                   [--payload BYTES] [--only rabbit,kafka,amqp1]
//!                   [--no-python] [--no-criterion] [--no-docs]
//! ```
//!
//! 1. provisions the Python venv (oslo.messaging 18.3.1, plus
//!    confluent-kafka for the Kafka driver) and builds `om-bench --release`;
//! 2. starts RabbitMQ (AMQP 1.0 plugin on) and tansu unless something
//!    already listens on their ports (then that broker is reused and left
//!    running);
//! 3. runs every measurement `--repeat` times (default 3; 1 with
//!    `--quick`), rotating the order of the implementations each round,
//!    and keeps the medians;
//! 4. runs the criterion benchmarks with a short measurement time;
//! 5. writes the report (only when every backend was measured, unless
//!    `--no-docs`), and stops the brokers it started.

use crate::brokers::{self, Broker};
use crate::{cmd, provision};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

const RABBIT_URL: &str = "rabbit://guest:guest@127.0.0.1:35672/";
const KAFKA_URL: &str = "kafka://127.0.0.1:39092/";
const AMQP1_URL: &str = "amqp://guest:guest@127.0.0.1:35672";
const BACKENDS: [&str; 3] = ["rabbit", "kafka", "amqp1"];

/// The Kafka scenario whose senders only queue (om's and raw rdkafka's
/// `wait_for_delivery=false`; Python's driver always does).
const QUEUED: &str = "notify-queued";

/// The Kafka scenario whose waiting senders let librdkafka batch for 5 ms
/// (om's `producer_batch_timeout`, raw rdkafka's `linger.ms`), beside
/// oslo's default of 0 (where only the single request in flight makes
/// records share a produce request).
const BATCHED: &str = "notify-batched";

/// The URL query (om's options, read by raw rdkafka too) of a Kafka
/// scenario; om-bench and bench.py run `notify` for each of them.
fn kafka_query(scenario: &str) -> Option<&'static str> {
    match scenario {
        QUEUED => Some("?wait_for_delivery=false"),
        BATCHED => Some("?producer_batch_timeout=0.005"),
        _ => None,
    }
}

/// Sends not yet received at which queueing senders wait (see om-bench's
/// `--max-backlog`): without a bound, senders that never wait take the CPU
/// the listener of the same process needs. Large enough that tansu's
/// fetch latency (a few hundred ms when a consumer has caught up) does
/// not limit the rate.
const QUEUED_MAX_BACKLOG: u64 = 50_000;

/// RPC concurrency levels (the plot's x axis).
const RPC_LEVELS: [usize; 4] = [1, 4, 16, 64];

struct Options {
    quick: bool,
    repeat: usize,
    duration: f64,
    warmup: f64,
    payload: usize,
    backends: Vec<String>,
    python: bool,
    criterion: bool,
    docs: bool,
}

fn value_of<'a>(args: &[&'a str], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| *a == flag)
        .and_then(|i| args.get(i + 1).copied())
}

fn parse(args: &[&str]) -> Result<Options> {
    let known = [
        "--quick",
        "--repeat",
        "--duration",
        "--warmup",
        "--payload",
        "--only",
        "--no-python",
        "--no-criterion",
        "--no-docs",
    ];
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        if !known.contains(&a) {
            bail!("unknown bench option {a:?} (known: {})", known.join(" "));
        }
        if matches!(
            a,
            "--repeat" | "--duration" | "--warmup" | "--payload" | "--only"
        ) {
            i += 1;
        }
        i += 1;
    }
    let quick = args.contains(&"--quick");
    let num = |flag: &str, default: f64| -> Result<f64> {
        match value_of(args, flag) {
            Some(v) => v.parse::<f64>().with_context(|| format!("{flag} {v}")),
            None => Ok(default),
        }
    };
    let repeat = num("--repeat", if quick { 1.0 } else { 3.0 })?;
    let duration = num("--duration", if quick { 2.0 } else { 5.0 })?;
    let warmup = num("--warmup", 1.0)?;
    let payload = num("--payload", 200.0)?;
    if repeat < 1.0 || duration <= 0.0 || warmup < 0.0 || payload < 0.0 {
        bail!(
            "--repeat must be at least 1, --duration positive, --warmup and --payload not negative"
        );
    }
    let backends: Vec<String> = match value_of(args, "--only") {
        Some(list) => list
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
        None => BACKENDS.iter().map(|s| s.to_string()).collect(),
    };
    for b in &backends {
        if !BACKENDS.contains(&b.as_str()) {
            bail!("unknown backend {b:?} for --only (rabbit, kafka, amqp1)");
        }
    }
    Ok(Options {
        quick,
        repeat: repeat as usize,
        duration,
        warmup,
        payload: payload as usize,
        backends,
        python: !args.contains(&"--no-python"),
        criterion: !args.contains(&"--no-criterion"),
        docs: !args.contains(&"--no-docs"),
    })
}

/// One measurement to run: a scenario at a concurrency, for several
/// implementations (run one after the other, order rotated per round).
struct Job {
    backend: &'static str,
    scenario: &'static str,
    concurrency: usize,
    imps: Vec<&'static str>,
}

fn plan(opts: &Options) -> Vec<Job> {
    let py = |v: Vec<&'static str>| -> Vec<&'static str> {
        v.into_iter()
            .filter(|i| opts.python || *i != "python")
            .collect()
    };
    let mut jobs = Vec::new();
    let has = |b: &str| opts.backends.iter().any(|x| x == b);
    if has("rabbit") {
        for c in RPC_LEVELS {
            let mut imps = vec!["om", "raw", "python"];
            if c == 1 || c == 16 {
                imps.push("raw-noconfirm");
                imps.push("raw-minimal");
                imps.push("raw-split");
            }
            jobs.push(Job {
                backend: "rabbit",
                scenario: "rpc",
                concurrency: c,
                imps: py(imps),
            });
        }
        for scenario in ["cast", "notify"] {
            for c in [1, 16] {
                jobs.push(Job {
                    backend: "rabbit",
                    scenario,
                    concurrency: c,
                    imps: py(vec!["om", "raw", "python"]),
                });
            }
        }
    }
    if has("kafka") {
        jobs.push(Job {
            backend: "kafka",
            scenario: "notify",
            concurrency: 16,
            imps: vec!["om", "raw"],
        });
        // Sends that only queue, as Python's notifier does: the like-for-
        // like comparison with Python.
        jobs.push(Job {
            backend: "kafka",
            scenario: QUEUED,
            concurrency: 16,
            imps: py(vec!["om", "raw", "python"]),
        });
        // More sends in flight: how far om and rdkafka go when the
        // per-record acknowledgement latency is hidden (Python's notifier
        // does not wait for acknowledgements at all, so it has no such row),
        // with oslo's default batching and with 5 ms batches.
        for scenario in ["notify", BATCHED] {
            jobs.push(Job {
                backend: "kafka",
                scenario,
                concurrency: 256,
                imps: vec!["om", "raw"],
            });
        }
    }
    if has("amqp1") {
        for c in [1, 16] {
            jobs.push(Job {
                backend: "amqp1",
                scenario: "rpc",
                concurrency: c,
                imps: vec!["om", "raw"],
            });
        }
        jobs.push(Job {
            backend: "amqp1",
            scenario: "notify",
            concurrency: 16,
            imps: vec!["om", "raw"],
        });
    }
    jobs
}

fn key(backend: &str, scenario: &str, concurrency: usize, imp: &str) -> String {
    format!("{backend}/{scenario}/{concurrency}/{imp}")
}

fn url_for(backend: &str) -> &'static str {
    match backend {
        "kafka" => KAFKA_URL,
        "amqp1" => AMQP1_URL,
        _ => RABBIT_URL,
    }
}

/// Everything collected in one `cargo xtask bench`.
#[derive(Default)]
struct Collected {
    /// Successful results per key.
    runs: BTreeMap<String, Vec<Value>>,
    /// Failures per key (first line of the reason).
    failures: BTreeMap<String, Vec<String>>,
}

impl Collected {
    fn values(&self, k: &str, field: impl Fn(&Value) -> Option<f64>) -> Vec<f64> {
        self.runs
            .get(k)
            .map(|v| v.iter().filter_map(&field).collect())
            .unwrap_or_default()
    }

    fn rate(&self, k: &str) -> Option<f64> {
        median(self.values(k, |v| v["rate_per_s"].as_f64()))
    }

    fn rate_range(&self, k: &str) -> Option<(f64, f64)> {
        let v = self.values(k, |v| v["rate_per_s"].as_f64());
        let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        (v.len() > 1).then_some((lo, hi))
    }

    fn latency(&self, k: &str, which: &str) -> Option<f64> {
        median(self.values(k, |v| v["latency"][which].as_f64()))
    }

    /// Median backlog at the end of the window, as text ("–" if none).
    fn backlog(&self, k: &str) -> String {
        median(self.values(k, |v| v["backlog"].as_f64()))
            .map(|b| group_thousands(b.round() as u64))
            .unwrap_or_else(|| "–".into())
    }

    fn backlogs(&self, keys: &[String]) -> String {
        keys.iter()
            .map(|k| self.backlog(k))
            .collect::<Vec<_>>()
            .join(" / ")
    }

    fn errors(&self, k: &str) -> u64 {
        self.runs
            .get(k)
            .map(|v| v.iter().filter_map(|r| r["errors"].as_u64()).sum())
            .unwrap_or(0)
    }

    fn why_missing(&self, k: &str) -> String {
        match self.failures.get(k).and_then(|f| f.first()) {
            Some(reason) => reason.clone(),
            None => "not run".into(),
        }
    }

    fn notes(&self, k: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in self.runs.get(k).into_iter().flatten() {
            for n in r["notes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_str())
            {
                out.push(n.to_owned());
            }
        }
        out
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

/// Stops, when dropped, the brokers this run started (never reused ones).
struct Started(Vec<Broker>);

impl Drop for Started {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            let _ = brokers::down(&self.0);
        }
    }
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let p = PathBuf::from(d);
            if p.is_absolute() {
                p
            } else {
                cmd::root().join(p)
            }
        }
        None => cmd::root().join("target"),
    }
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(cmd::root());
    c
}

fn quiet_output(c: &mut Command) -> Option<String> {
    let out = c.stderr(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Makes sure the venv can import confluent_kafka (oslo's Kafka driver
/// needs it; oslo.messaging does not depend on it). Returns why not.
fn python_kafka(py: &Path) -> std::result::Result<String, String> {
    let probe = |py: &Path| {
        quiet_output(Command::new(py).args([
            "-c",
            "import importlib.metadata as m; print(m.version(\"confluent-kafka\"))",
        ]))
    };
    if let Some(v) = probe(py) {
        return Ok(v);
    }
    eprintln!("xtask: installing confluent-kafka into the venv (Python's Kafka driver needs it)");
    if let Err(e) =
        cmd::run(Command::new(py).args(["-m", "pip", "install", "-q", "confluent-kafka"]))
    {
        return Err(format!("confluent-kafka could not be installed: {e:#}"));
    }
    probe(py).ok_or_else(|| "confluent-kafka installed but cannot be imported".into())
}

/// Runs one measurement; returns its JSON or why it failed.
fn measure(
    command: &mut Command,
    label: &str,
    limit: Duration,
    logs: &Path,
) -> std::result::Result<Value, String> {
    let log_path = logs.join(format!("{}.log", label.replace(['/', ' '], "_")));
    let log = std::fs::File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "no result within {limit:?} (killed); log: {}",
                    log_path.display()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("wait failed: {e}")),
        }
    };
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        use std::io::Read;
        let _ = out.read_to_string(&mut stdout);
    }
    let json = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l.trim()).ok());
    match (status.success(), json) {
        (true, Some(v)) => Ok(v),
        _ => {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let reason = log
                .lines()
                .rev()
                .find(|l| l.contains("error") || l.contains("Error"))
                .or_else(|| log.lines().last())
                .unwrap_or("no output")
                .trim()
                .to_owned();
            Err(format!("{status}: {reason}"))
        }
    }
}

pub fn run(args: &[&str]) -> Result<()> {
    let opts = parse(args)?;
    let started_at = now_utc();
    let t0 = Instant::now();
    let root = cmd::root();
    let state = cmd::state_dir().join("bench");
    let logs = state.join("logs");
    std::fs::create_dir_all(&logs)?;

    // Python peer.
    let (py, py_kafka) = if opts.python {
        let py = provision::python_venv()?;
        let kafka = if opts.backends.iter().any(|b| b == "kafka") {
            python_kafka(&py)
        } else {
            Err("Kafka not measured in this run".into())
        };
        (Some(py), kafka)
    } else {
        (None, Err("--no-python".into()))
    };

    // Binaries first, so nothing compiles while measuring.
    cmd::run(cargo().args(["build", "--release", "-p", "om-bench", "--bin", "om-bench"]))?;
    let bin = target_dir().join("release/om-bench");
    if !bin.is_file() {
        bail!("om-bench was built but {} is missing", bin.display());
    }
    let criterion_benches: [(&str, &str); 3] = [
        ("om-rpc", "dispatch"),
        ("om-notify", "notify"),
        ("om-bench", "rabbit_roundtrip"),
    ];
    if opts.criterion {
        for (p, b) in criterion_benches {
            cmd::run(cargo().args(["bench", "--no-run", "-p", p, "--bench", b]))?;
        }
    }

    // Brokers: reuse what listens already, start the rest.
    let mut wanted = Vec::new();
    if opts.backends.iter().any(|b| b == "rabbit" || b == "amqp1") {
        wanted.push(Broker::Rabbit1);
    }
    if opts.backends.iter().any(|b| b == "kafka") {
        wanted.push(Broker::Tansu);
    }
    let mut broker_notes = Vec::new();
    let mut guard = Started(Vec::new());
    for b in wanted {
        if port_open(b.port()) {
            eprintln!(
                "xtask: something already listens on 127.0.0.1:{}; reusing it",
                b.port()
            );
            broker_notes.push(format!(
                "127.0.0.1:{} was already running and was reused",
                b.port()
            ));
        } else {
            brokers::up(&[b])?;
            guard.0.push(b);
        }
    }

    // Measurements.
    let jobs = plan(&opts);
    let total: usize = jobs.iter().map(|j| j.imps.len()).sum::<usize>() * opts.repeat;
    let mut collected = Collected::default();
    let mut done = 0;
    for round in 0..opts.repeat {
        for job in &jobs {
            let n = job.imps.len();
            for i in 0..n {
                let imp = job.imps[(i + round) % n];
                done += 1;
                let k = key(job.backend, job.scenario, job.concurrency, imp);
                let label = format!("{k} #{}", round + 1);
                let limit = Duration::from_secs_f64(opts.warmup + opts.duration + 240.0);
                // tansu's in-memory storage keeps every record: a fresh broker
                // before each Kafka measurement keeps its memory bounded (one
                // queue-only run stores about a million records) and gives
                // every run the same empty broker.
                if job.backend == "kafka" && guard.0.contains(&Broker::Tansu) {
                    brokers::up(&[Broker::Tansu]).context("restarting tansu")?;
                }
                let result = match imp {
                    "python" => match (&py, job.backend) {
                        (None, _) => Err("--no-python".to_owned()),
                        (Some(_), "kafka") if py_kafka.is_err() => {
                            Err(py_kafka.clone().err().unwrap_or_default())
                        }
                        (Some(py), _) => {
                            let mut c = Command::new(py);
                            c.current_dir(&root)
                                .arg(root.join("crates/om-bench/python/bench.py"))
                                .arg(bench_scenario(job.scenario));
                            // Python's Kafka driver queues without the option.
                            common_args(&mut c, &opts, job, url_for(job.backend));
                            measure(&mut c, &label, limit, &logs)
                        }
                    },
                    _ => {
                        let mut c = Command::new(&bin);
                        let real = match imp {
                            "raw-noconfirm" | "raw-minimal" | "raw-split" => "raw",
                            other => other,
                        };
                        c.current_dir(&root).args([
                            job.backend,
                            real,
                            bench_scenario(job.scenario),
                        ]);
                        if imp == "raw-noconfirm" {
                            c.arg("--no-confirms");
                        }
                        if imp == "raw-minimal" {
                            c.arg("--minimal-messages");
                        }
                        if imp == "raw-split" {
                            c.arg("--split-connections");
                        }
                        let url = format!(
                            "{}{}",
                            url_for(job.backend),
                            kafka_query(job.scenario).unwrap_or_default()
                        );
                        common_args(&mut c, &opts, job, &url);
                        measure(&mut c, &label, limit, &logs)
                    }
                };
                match result {
                    Ok(v) => {
                        eprintln!(
                            "xtask: [{done}/{total}] {label}: {:.0}/s{}",
                            v["rate_per_s"].as_f64().unwrap_or(0.0),
                            match v["latency"]["p50_ms"].as_f64() {
                                Some(p) if job.scenario == "rpc" => format!(" p50 {p:.3} ms"),
                                _ => match v["backlog"].as_u64() {
                                    Some(b) => format!(" (backlog {b})"),
                                    None => String::new(),
                                },
                            }
                        );
                        collected.runs.entry(k).or_default().push(v);
                    }
                    Err(why) => {
                        eprintln!("xtask: [{done}/{total}] {label}: FAILED: {why}");
                        collected.failures.entry(k).or_default().push(why);
                    }
                }
            }
        }
    }

    // Criterion, with the broker still up for the round-trip bench.
    let criterion = if opts.criterion {
        run_criterion(&criterion_benches, opts.quick)
    } else {
        Vec::new()
    };
    drop(guard);

    // Save everything, then the report.
    let all: serde_json::Map<String, Value> = collected
        .runs
        .iter()
        .map(|(k, v)| (k.clone(), Value::Array(v.clone())))
        .collect();
    std::fs::write(
        state.join("last-run.json"),
        serde_json::to_string_pretty(&Value::Object(all))?,
    )?;
    let allocators: std::collections::BTreeSet<&str> = collected
        .runs
        .values()
        .flatten()
        .filter_map(|v| v["allocator"].as_str())
        .collect();
    let env = environment(
        py.as_deref(),
        &py_kafka,
        &allocators,
        &broker_notes,
        &started_at,
        t0.elapsed(),
        &opts,
    );
    let report = Report {
        opts: &opts,
        c: &collected,
        criterion: &criterion,
        env: &env,
    };
    let md = report.markdown();
    println!("{md}");
    let full = BACKENDS
        .iter()
        .all(|b| opts.backends.iter().any(|x| x == b))
        && opts.python;
    if opts.docs && full {
        std::fs::write(root.join("docs/performance.md"), &md)?;
        std::fs::write(root.join("docs/performance.svg"), report.svg())?;
        eprintln!("xtask: wrote docs/performance.md and docs/performance.svg");
    } else if opts.docs {
        eprintln!("xtask: partial run (--only / --no-python): docs/performance.md left unchanged");
    }
    eprintln!(
        "xtask: results of every run in {}",
        state.join("last-run.json").display()
    );
    Ok(())
}

fn common_args(c: &mut Command, opts: &Options, job: &Job, url: &str) {
    c.args(["--url", url])
        .args(["--concurrency", &job.concurrency.to_string()])
        .args(["--duration", &opts.duration.to_string()])
        .args(["--warmup", &opts.warmup.to_string()])
        .args(["--payload", &opts.payload.to_string()]);
    if job.scenario == QUEUED {
        c.args(["--max-backlog", &QUEUED_MAX_BACKLOG.to_string()]);
    }
}

/// The scenario argument of om-bench and bench.py for a job's scenario.
fn bench_scenario(scenario: &str) -> &str {
    if kafka_query(scenario).is_some() {
        "notify"
    } else {
        scenario
    }
}

/// Criterion medians: (benchmark id, median in nanoseconds).
fn run_criterion(benches: &[(&str, &str)], quick: bool) -> Vec<(String, f64)> {
    let since = SystemTime::now();
    let measure = if quick { "1" } else { "2" };
    for (p, b) in benches {
        let mut c = cargo();
        c.args([
            "bench",
            "-p",
            p,
            "--bench",
            b,
            "--",
            "--measurement-time",
            measure,
            "--warm-up-time",
            "1",
        ]);
        if let Ok(env) = brokers::test_env() {
            for (k, v) in env {
                if k == "OM_RABBIT_URL" {
                    c.env(k, v);
                }
            }
        }
        if let Err(e) = cmd::run(&mut c) {
            eprintln!("xtask: criterion bench {p}/{b} failed: {e:#}");
        }
    }
    let mut out = Vec::new();
    collect_estimates(&target_dir().join("criterion"), since, &mut out);
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Walks criterion's output for `new/estimates.json` written after `since`.
fn collect_estimates(dir: &Path, since: SystemTime, out: &mut Vec<(String, f64)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        if p.file_name().is_some_and(|n| n == "new") {
            let est = p.join("estimates.json");
            let fresh = std::fs::metadata(&est)
                .and_then(|m| m.modified())
                .map(|m| m >= since)
                .unwrap_or(false);
            if !fresh {
                continue;
            }
            let read = |f: &str| {
                std::fs::read_to_string(p.join(f))
                    .ok()
                    .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            };
            let (Some(est), Some(meta)) = (read("estimates.json"), read("benchmark.json")) else {
                continue;
            };
            if let (Some(id), Some(median)) = (
                meta["full_id"].as_str(),
                est["median"]["point_estimate"].as_f64(),
            ) {
                out.push((id.to_owned(), median));
            }
        } else {
            collect_estimates(&p, since, out);
        }
    }
}

fn now_utc() -> String {
    quiet_output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))
        .unwrap_or_else(|| "unknown date".into())
}

/// The machine and software, as `(label, value)` lines.
fn environment(
    py: Option<&Path>,
    py_kafka: &std::result::Result<String, String>,
    allocators: &std::collections::BTreeSet<&str>,
    broker_notes: &[String],
    started: &str,
    took: Duration,
    opts: &Options,
) -> Vec<(String, String)> {
    let mut env = Vec::new();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    env.push((
        "CPU".into(),
        format!("{cores} cores available (nproc), {cpu}"),
    ));
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".into());
    env.push(("Memory".into(), mem));
    if let Some(k) = quiet_output(Command::new("uname").args(["-sr"])) {
        env.push(("Kernel".into(), k));
    }
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    env.push((
        "Load average at the end".into(),
        format!("{load} (the machine is shared; other work competes for the cores)"),
    ));
    let rmq = quiet_output(Command::new("dpkg-query").args([
        "-W",
        "-f",
        "${Version}",
        "rabbitmq-server",
    ]))
    .unwrap_or_else(|| "unknown".into());
    env.push((
        "RabbitMQ".into(),
        format!("{rmq} (Debian package), plugin rabbitmq_amqp1_0, on 127.0.0.1:35672"),
    ));
    let tansu = provision::tansu_binary()
        .ok()
        .and_then(|t| quiet_output(Command::new(t).arg("--version")))
        .unwrap_or_else(|| "unknown version".into());
    env.push((
        "Kafka".into(),
        format!("tansu ({tansu}), in-memory storage, on 127.0.0.1:39092"),
    ));
    for n in broker_notes {
        env.push(("Broker note".into(), n.clone()));
    }
    if let Some(rustc) = quiet_output(Command::new("rustc").arg("--version")) {
        env.push(("Rust".into(), format!("{rustc}, release profile")));
    }
    if !allocators.is_empty() {
        let names = allocators.iter().copied().collect::<Vec<_>>().join(", ");
        env.push((
            "Allocator".into(),
            format!(
                "{names}: om-bench's global allocator, the same for om and the raw clients \
                 (its default `mimalloc` feature; om makes more and smaller allocations per \
                 message than a raw client, so it gains more from it: see \
                 [performance-analysis.md](performance-analysis.md#the-allocator))"
            ),
        ));
    }
    if let Some(py) = py {
        let v = quiet_output(Command::new(py).args([
            "-c",
            "import sys, importlib.metadata as m; print('Python %s, oslo.messaging %s, kombu %s' % (sys.version.split()[0], m.version('oslo.messaging'), m.version('kombu')))",
        ]))
        .unwrap_or_else(|| "unknown".into());
        let k = match py_kafka {
            Ok(v) => format!(", confluent-kafka {v}"),
            Err(_) => String::new(),
        };
        env.push(("Python".into(), format!("{v}{k}")));
    }
    env.push((
        "Date".into(),
        format!(
            "{started}; the whole run took {:.0} min",
            took.as_secs_f64() / 60.0
        ),
    ));
    env.push((
        "Settings".into(),
        format!(
            "{} s measured after {} s warm-up, payload {} bytes, {} round(s){}",
            opts.duration,
            opts.warmup,
            opts.payload,
            opts.repeat,
            if opts.quick { " (--quick)" } else { "" }
        ),
    ));
    env
}

// ------------------------------------------------------------------ report

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Met,
    NotMet,
    NotMeasured,
}

impl Status {
    fn text(self) -> &'static str {
        match self {
            Status::Met => "met",
            Status::NotMet => "**not met**",
            Status::NotMeasured => "not measured",
        }
    }
}

struct Check {
    target: String,
    measured: String,
    status: Status,
}

impl Check {
    /// Appends the raw client's multiple of Python to a target against
    /// Python: the ceiling of the scenario (a sender that waits for each
    /// confirm is bound by the round trip, whatever the library).
    fn add_raw_multiple(&mut self, client: &str, raw: Option<f64>, python: Option<f64>) {
        if let Some(r) = ratio(raw, python) {
            self.measured
                .push_str(&format!("; {client} {r:.2}× Python"));
        }
    }
}

struct Report<'a> {
    opts: &'a Options,
    c: &'a Collected,
    criterion: &'a [(String, f64)],
    env: &'a [(String, String)],
}

fn rate(v: Option<f64>) -> String {
    match v {
        None => "n/a".into(),
        Some(x) => group_thousands(x.round() as u64),
    }
}

fn group_thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn ratio_text(r: Option<f64>) -> String {
    r.map(|r| format!("{r:.2}×"))
        .unwrap_or_else(|| "n/a".into())
}

fn ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "n/a".into())
}

impl Report<'_> {
    fn k(&self, backend: &str, scenario: &str, c: usize, imp: &str) -> String {
        key(backend, scenario, c, imp)
    }

    fn cell(&self, k: &str) -> String {
        match (self.c.rate(k), self.c.rate_range(k)) {
            (Some(r), Some((lo, hi))) => {
                format!("{} ({}–{})", rate(Some(r)), rate(Some(lo)), rate(Some(hi)))
            }
            (Some(r), None) => rate(Some(r)),
            (None, _) => format!("n/a ({})", short(&self.c.why_missing(k))),
        }
    }

    fn checks(&self) -> Vec<Check> {
        let mut out = Vec::new();
        let c = self.c;
        let within =
            |target: String, om: Option<f64>, base: Option<f64>, min_ratio: f64, unit: &str| {
                let r = ratio(om, base);
                Check {
                    target,
                    measured: match r {
                        Some(r) => format!("{r:.2}× ({} vs {} {unit})", rate(om), rate(base)),
                        None => "n/a".into(),
                    },
                    status: match r {
                        None => Status::NotMeasured,
                        Some(r) if r >= min_ratio => Status::Met,
                        Some(_) => Status::NotMet,
                    },
                }
            };
        // RabbitMQ: om within 10 % of raw lapin everywhere.
        for conc in RPC_LEVELS {
            out.push(within(
                format!("RabbitMQ RPC, {conc} caller(s): om ≥ 0.90 × raw lapin"),
                c.rate(&self.k("rabbit", "rpc", conc, "om")),
                c.rate(&self.k("rabbit", "rpc", conc, "raw")),
                0.90,
                "calls/s",
            ));
        }
        let p50_om = c.latency(&self.k("rabbit", "rpc", 1, "om"), "p50_ms");
        let p50_raw = c.latency(&self.k("rabbit", "rpc", 1, "raw"), "p50_ms");
        out.push(Check {
            target: "RabbitMQ single call p50 latency: om ≤ 1.10 × raw lapin".into(),
            measured: format!("{} ms vs {} ms", ms(p50_om), ms(p50_raw)),
            status: match ratio(p50_om, p50_raw) {
                None => Status::NotMeasured,
                Some(r) if r <= 1.10 => Status::Met,
                Some(_) => Status::NotMet,
            },
        });
        for scenario in ["cast", "notify"] {
            let what = if scenario == "cast" {
                "casts"
            } else {
                "notifications"
            };
            for conc in [1, 16] {
                out.push(within(
                    format!("RabbitMQ {what}, {conc} sender(s): om ≥ 0.90 × raw lapin"),
                    c.rate(&self.k("rabbit", scenario, conc, "om")),
                    c.rate(&self.k("rabbit", scenario, conc, "raw")),
                    0.90,
                    "msgs/s",
                ));
            }
        }
        out.push(within(
            "RabbitMQ RPC, 16 concurrent callers: om ≥ 6 × Python".into(),
            c.rate(&self.k("rabbit", "rpc", 16, "om")),
            c.rate(&self.k("rabbit", "rpc", 16, "python")),
            6.0,
            "calls/s",
        ));
        for scenario in ["cast", "notify"] {
            let what = if scenario == "cast" {
                "casts"
            } else {
                "notifications"
            };
            for conc in [1, 16] {
                let python = c.rate(&self.k("rabbit", scenario, conc, "python"));
                let mut check = within(
                    format!("RabbitMQ {what}, {conc} sender(s): om ≥ 10 × Python"),
                    c.rate(&self.k("rabbit", scenario, conc, "om")),
                    python,
                    10.0,
                    "msgs/s",
                );
                let raw = c.rate(&self.k("rabbit", scenario, conc, "raw"));
                check.add_raw_multiple("raw lapin", raw, python);
                out.push(check);
            }
        }
        out.push(Check {
            target: "RabbitMQ single call p50 latency < 0.5 ms (om)".into(),
            measured: format!("{} ms", ms(p50_om)),
            status: match p50_om {
                None => Status::NotMeasured,
                Some(v) if v < 0.5 => Status::Met,
                Some(_) => Status::NotMet,
            },
        });
        for (conc, scenario, senders) in [
            (16, "notify", "16 senders waiting for delivery"),
            (256, BATCHED, "256 senders waiting, 5 ms batches"),
            (16, QUEUED, "16 senders queueing"),
        ] {
            out.push(within(
                format!("Kafka notifications, {senders}: om ≥ 0.85 × raw rdkafka"),
                c.rate(&self.k("kafka", scenario, conc, "om")),
                c.rate(&self.k("kafka", scenario, conc, "raw")),
                0.85,
                "msgs/s",
            ));
        }
        let python = c.rate(&self.k("kafka", QUEUED, 16, "python"));
        let mut check = within(
            "Kafka notifications, 16 senders queueing (as Python's do): om ≥ 10 × Python".into(),
            c.rate(&self.k("kafka", QUEUED, 16, "om")),
            python,
            10.0,
            "msgs/s",
        );
        check.add_raw_multiple(
            "raw rdkafka",
            c.rate(&self.k("kafka", QUEUED, 16, "raw")),
            python,
        );
        out.push(check);
        for conc in [1, 16] {
            out.push(within(
                format!("AMQP 1.0 RPC, {conc} caller(s): om ≥ 0.85 × raw fe2o3-amqp"),
                c.rate(&self.k("amqp1", "rpc", conc, "om")),
                c.rate(&self.k("amqp1", "rpc", conc, "raw")),
                0.85,
                "calls/s",
            ));
        }
        out.push(within(
            "AMQP 1.0 notifications, 16 senders: om ≥ 0.85 × raw fe2o3-amqp".into(),
            c.rate(&self.k("amqp1", "notify", 16, "om")),
            c.rate(&self.k("amqp1", "notify", 16, "raw")),
            0.85,
            "msgs/s",
        ));
        out
    }

    fn markdown(&self) -> String {
        let mut s = String::new();
        let c = self.c;
        let _ = writeln!(s, "# Performance\n");
        let _ = writeln!(
            s,
            "Generated by `cargo xtask bench` (do not edit by hand: run the command again). \
             Every figure is measured end to end through a real broker on this machine, in one run, \
             with om, the raw client library it is built on, and Python oslo.messaging 18.3.1 taking turns \
             on the same broker. Nothing here is asserted by a test.\n"
        );

        // Targets.
        let checks = self.checks();
        let met = checks.iter().filter(|c| c.status == Status::Met).count();
        let missed = checks.iter().filter(|c| c.status == Status::NotMet).count();
        let _ = writeln!(s, "## Targets\n");
        let _ = writeln!(
            s,
            "{met} of {} targets met, {missed} not met.\n",
            checks.len()
        );
        let _ = writeln!(s, "| target | measured (medians) | status |\n|---|---|---|");
        for ch in &checks {
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                ch.target,
                ch.measured,
                ch.status.text()
            );
        }

        let _ = writeln!(
            s,
            "\nThe targets against Python show, beside om's multiple, the raw client's: the \
             same exchanges with prebuilt messages and no oslo work. With one sender that \
             waits for each confirm, the rate is bound by the round trip through the broker, \
             so a multiple the raw client does not reach is out of reach for any client \
             library on this machine.\n\n\
             Where om's time goes against the raw clients, measured stage by stage: \
             [performance-analysis.md](performance-analysis.md)."
        );

        // Method.
        let _ = writeln!(s, "\n## Method\n");
        for (k, v) in self.env {
            let _ = writeln!(s, "* **{k}:** {v}");
        }
        let _ = writeln!(
            s,
            "
* **Procedure.** Each measurement is a fresh process (`om-bench <backend> <impl> <scenario>` or \
`crates/om-bench/python/bench.py <scenario>`) with fresh queue / topic names. Workers start, run for the \
warm-up, then for the measured window; only what completes inside the window counts. Every scenario runs \
{rounds} time(s); the implementations take turns (their order rotates each round) and the tables show \
the median, with the range over the rounds in parentheses. Broker and clients share the same 2 cores, so \
absolute numbers are low and noisy; the ratios, measured minutes apart on the same broker, are the point.
* **RPC calls.** N callers each call `echo(payload)` back to back on one client (om: `RpcClient::call`, \
one transport for the client and one for the server, like two services; Python: `get_rpc_client` shared \
by N threads, server `get_rpc_server(executor=\"threading\")` in a child process; raw lapin: a topic queue \
bound to a topic exchange, acknowledged on receipt, the reply published to the default exchange with the \
client's reply queue as routing key, `correlation_id` matching, publisher confirms on requests and \
replies as om does, several replies in flight on one channel). Throughput = completed calls / window; latency = one call's round trip as the \
caller sees it.
* **Casts.** N senders cast `hit(payload)`, each waiting for the broker's publisher confirm (om's \
`cast()` and Python's kombu `confirm_publish` both do); counted when the server's method runs.
* **Notifications.** N senders call `Notifier::info` (`messagingv2`) on one notifier; counted when \
the listener's endpoint runs (the listener acknowledges after the endpoint returned). RabbitMQ and \
AMQP 1.0: publisher-confirmed / accepted sends. Kafka (`linger.ms` 0, oslo's default; one produce \
request in flight, om's default `producer_max_in_flight = 1`, which raw rdkafka's producer mirrors, \
while Python keeps librdkafka's 1000000), two ways: \
om and raw rdkafka wait for the delivery report of each record (also with librdkafka batching for 5 ms, \
om's `producer_batch_timeout = 0.005`); or they only queue each record \
(om's `wait_for_delivery = false`; raw: a `ThreadedProducer`), as Python's Kafka driver always does \
(produce + poll(0)). Queueing senders pause while more than {max_backlog} notifications are sent and not \
yet received (om-bench and bench.py `--max-backlog`, the same for all three), so that they leave the \
listener its share of the CPU; the rate shown is then what the listener sustains. \
Consumer groups are fresh per run, and sending starts only after a first probe notification arrived \
(tansu forms a new group after about half the session timeout). tansu is restarted before each Kafka \
measurement when the bench started it: its in-memory storage keeps every record (a queue-only run \
stores about a million), so a fresh broker keeps its memory bounded and gives every run the same \
empty broker.
* **AMQP 1.0.** om's `amqp` driver against RabbitMQ's AMQP 1.0 plugin; raw fe2o3-amqp does the same \
exchanges (one session per link, calls and notifications sent unsettled and awaited until accepted, \
replies pre-settled).
* **Backlog.** For casts and notifications, the messages the senders had sent (confirmed by the \
broker) that had not reached the server / listener when the window closed: near zero when the receiving \
side keeps up, growing when it is the bottleneck (then the throughput shown is the receiver's).
* **Payload and messages.** A {payload}-byte string in the arguments / notification payload, inside \
the oslo 2.0 envelope with context and ids. The raw clients send the same messages without building \
them: prebuilt oslo-shaped bodies of the size of om's (a call, its reply, a cast, a notification; \
`om-bench/src/oslo_bodies.rs`) with the properties om sets (`utf-8`, empty headers, priority 0, a \
call's `expiration`), so broker and sockets carry the same load and the ratio isolates om's own \
work. The column *raw lapin, minimal messages* is raw lapin with bare `{{\"payload\": …}}` bodies and \
only a content type and delivery mode (how earlier versions of this table measured raw lapin); \
*without confirms* uses the oslo-shaped messages without publisher confirms; *separate connections* \
is raw lapin with om's connection layout: like om (and oslo.messaging, and as RabbitMQ advises, so \
that flow control of a publishing connection cannot stall a consumer's acknowledgements) its client \
and its server each publish on one connection and consume on another, four connections in all \
where the plain raw lapin column uses two. The ratio beside it compares om with that.",
            rounds = self.opts.repeat,
            payload = self.opts.payload,
            max_backlog = group_thousands(QUEUED_MAX_BACKLOG),
        );

        // RabbitMQ RPC.
        let _ = writeln!(s, "\n## RabbitMQ (AMQP 0-9-1)\n");
        let _ = writeln!(s, "### RPC calls per second\n");
        let _ = writeln!(
            s,
            "| callers | om | raw lapin | Python | om / raw | om / Python | raw lapin, minimal messages | raw lapin without confirms | raw lapin, separate connections | om / raw, separate connections |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for conc in RPC_LEVELS {
            let (om, raw, py) = (
                self.k("rabbit", "rpc", conc, "om"),
                self.k("rabbit", "rpc", conc, "raw"),
                self.k("rabbit", "rpc", conc, "python"),
            );
            let optional = |imp: &str| {
                let k = self.k("rabbit", "rpc", conc, imp);
                if c.runs.contains_key(&k) {
                    self.cell(&k)
                } else {
                    "–".into()
                }
            };
            let _ = writeln!(
                s,
                "| {conc} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                self.cell(&om),
                self.cell(&raw),
                self.cell(&py),
                ratio_text(ratio(c.rate(&om), c.rate(&raw))),
                ratio_text(ratio(c.rate(&om), c.rate(&py))),
                optional("raw-minimal"),
                optional("raw-noconfirm"),
                optional("raw-split"),
                {
                    let split = self.k("rabbit", "rpc", conc, "raw-split");
                    if c.runs.contains_key(&split) {
                        ratio_text(ratio(c.rate(&om), c.rate(&split)))
                    } else {
                        "–".into()
                    }
                },
            );
        }
        let _ = writeln!(
            s,
            "\n![RPC throughput against concurrency](performance.svg)\n"
        );
        let _ = writeln!(s, "### RPC call latency (ms, medians of the rounds)\n");
        let _ = writeln!(s, "| callers | om p50 | om p99 | raw p50 | raw p99 | Python p50 | Python p99 |\n|---:|---:|---:|---:|---:|---:|---:|");
        for conc in RPC_LEVELS {
            let ks = ["om", "raw", "python"].map(|i| self.k("rabbit", "rpc", conc, i));
            let _ = writeln!(
                s,
                "| {conc} | {} | {} | {} | {} | {} | {} |",
                ms(c.latency(&ks[0], "p50_ms")),
                ms(c.latency(&ks[0], "p99_ms")),
                ms(c.latency(&ks[1], "p50_ms")),
                ms(c.latency(&ks[1], "p99_ms")),
                ms(c.latency(&ks[2], "p50_ms")),
                ms(c.latency(&ks[2], "p99_ms")),
            );
        }
        for (scenario, title) in [
            ("cast", "Casts per second (counted at the server)"),
            (
                "notify",
                "Notifications per second (counted at the listener)",
            ),
        ] {
            let _ = writeln!(s, "\n### {title}\n");
            let _ = writeln!(s, "| senders | om | raw lapin | Python | om / raw | om / Python | backlog at window end, om / raw / Python |\n|---:|---:|---:|---:|---:|---:|---:|");
            for conc in [1, 16] {
                let ks = ["om", "raw", "python"].map(|i| self.k("rabbit", scenario, conc, i));
                let _ = writeln!(
                    s,
                    "| {conc} | {} | {} | {} | {} | {} | {} |",
                    self.cell(&ks[0]),
                    self.cell(&ks[1]),
                    self.cell(&ks[2]),
                    ratio_text(ratio(c.rate(&ks[0]), c.rate(&ks[1]))),
                    ratio_text(ratio(c.rate(&ks[0]), c.rate(&ks[2]))),
                    c.backlogs(&ks),
                );
            }
        }

        // Kafka.
        let _ = writeln!(s, "\n## Kafka (tansu)\n");
        let _ = writeln!(
            s,
            "### Notifications per second (counted at the listener)\n"
        );
        let _ = writeln!(s, "| senders | sends | om | raw rdkafka | Python | om / raw | om / Python | backlog at window end, om / raw / Python |\n|---:|---|---:|---:|---:|---:|---:|---:|");
        let rows = [
            (16, "notify", "wait for each delivery report"),
            (256, "notify", "wait for each delivery report"),
            (256, BATCHED, "wait for each delivery report, 5 ms batches"),
            (16, QUEUED, "queue only (Python's way)"),
        ];
        for (conc, scenario, sends) in rows {
            let ks = ["om", "raw", "python"].map(|i| self.k("kafka", scenario, conc, i));
            let planned = |k: &str| c.runs.contains_key(k) || c.failures.contains_key(k);
            if !ks.iter().any(|k| planned(k)) {
                continue;
            }
            let py_cell = if planned(&ks[2]) {
                self.cell(&ks[2])
            } else {
                "–".into()
            };
            let py_ratio = if planned(&ks[2]) {
                ratio_text(ratio(c.rate(&ks[0]), c.rate(&ks[2])))
            } else {
                "–".into()
            };
            let _ = writeln!(
                s,
                "| {conc} | {sends} | {} | {} | {py_cell} | {} | {py_ratio} | {} |",
                self.cell(&ks[0]),
                self.cell(&ks[1]),
                ratio_text(ratio(c.rate(&ks[0]), c.rate(&ks[1]))),
                c.backlogs(&ks),
            );
        }
        let ks = ["om", "raw", "python"].map(|i| self.k("kafka", QUEUED, 16, i));
        let mut notes: Vec<String> = Vec::new();
        for (k, who) in ks.iter().zip(["om", "raw rdkafka", "Python"]) {
            if let Some(n) = self.c.notes(k).into_iter().find(|n| n.contains("ready")) {
                notes.push(format!("{who}: {n}"));
            }
        }
        if !notes.is_empty() {
            let _ = writeln!(
                s,
                "\nGroup formation before the first run's window (not timed): {}.",
                notes.join("; ")
            );
        }

        // AMQP 1.0.
        let _ = writeln!(s, "\n## AMQP 1.0 (RabbitMQ plugin)\n");
        let _ = writeln!(s, "| scenario | om | raw fe2o3-amqp | om / raw | om p50 / p99 ms | raw p50 / p99 ms |\n|---|---:|---:|---:|---:|---:|");
        for (scenario, conc, label) in [
            ("rpc", 1, "RPC calls/s, 1 caller"),
            ("rpc", 16, "RPC calls/s, 16 callers"),
            ("notify", 16, "notifications/s, 16 senders"),
        ] {
            let (om, raw) = (
                self.k("amqp1", scenario, conc, "om"),
                self.k("amqp1", scenario, conc, "raw"),
            );
            let lat = |k: &str| {
                if scenario == "rpc" {
                    format!(
                        "{} / {}",
                        ms(c.latency(k, "p50_ms")),
                        ms(c.latency(k, "p99_ms"))
                    )
                } else {
                    "–".into()
                }
            };
            let _ = writeln!(
                s,
                "| {label} | {} | {} | {} | {} | {} |",
                self.cell(&om),
                self.cell(&raw),
                ratio_text(ratio(c.rate(&om), c.rate(&raw))),
                lat(&om),
                lat(&raw),
            );
        }
        let nk = ["om", "raw"].map(|i| self.k("amqp1", "notify", 16, i));
        if nk.iter().any(|k| c.runs.contains_key(k)) {
            let _ = writeln!(
                s,
                "\nNotifications sent (accepted) but not yet received when the window closed, om / raw: {}.",
                c.backlogs(&nk)
            );
        }

        // Errors.
        let mut errs = Vec::new();
        for k in c.runs.keys() {
            let e = c.errors(k);
            if e > 0 {
                errs.push(format!("{k}: {e} failed operations"));
            }
        }
        for (k, f) in &c.failures {
            errs.push(format!("{k}: {} run(s) failed: {}", f.len(), short(&f[0])));
        }
        if !errs.is_empty() {
            let _ = writeln!(s, "\n### Errors during the run\n");
            for e in errs {
                let _ = writeln!(s, "* {e}");
            }
        }

        // Criterion.
        let _ = writeln!(s, "\n## In-process benchmarks (criterion)\n");
        if self.criterion.is_empty() {
            let _ = writeln!(s, "Not run (`--no-criterion`) or no results found.");
        } else {
            let _ = writeln!(
                s,
                "`cargo bench -p om-rpc --bench dispatch`, `-p om-notify --bench notify` and `-p om-bench --bench \
                 rabbit_roundtrip` (a single call through the broker, om against raw lapin), each with a short \
                 measurement time (`--measurement-time {}`); criterion's median per iteration.\n",
                if self.opts.quick { 1 } else { 2 }
            );
            let _ = writeln!(s, "| benchmark | median |\n|---|---:|");
            for (id, ns) in self.criterion {
                let _ = writeln!(s, "| `{id}` | {} |", human_ns(*ns));
            }
        }
        let _ = writeln!(
            s,
            "\nRaw results of every run: `.om/bench/last-run.json` (not committed); logs of each run in `.om/bench/logs/`."
        );
        s
    }

    /// RPC calls/s against callers (log2 x axis), om / raw lapin / Python.
    fn svg(&self) -> String {
        let series: Vec<Series<'_>> = [
            ("om", "om", "#1b7837"),
            ("raw", "raw lapin", "#2166ac"),
            ("python", "Python oslo.messaging", "#b2182b"),
        ]
        .into_iter()
        .map(|(imp, label, color)| {
            let pts = RPC_LEVELS
                .iter()
                .filter_map(|&c| self.c.rate(&key("rabbit", "rpc", c, imp)).map(|r| (c, r)))
                .collect();
            (label, color, pts)
        })
        .collect();
        svg_chart(&series)
    }
}

fn short(s: &str) -> String {
    let s = s.replace('|', "/");
    if s.chars().count() > 160 {
        let t: String = s.chars().take(157).collect();
        format!("{t}...")
    } else {
        s
    }
}

fn human_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.3} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// One line of the chart: label, colour, (callers, calls/s) points.
type Series<'a> = (&'a str, &'a str, Vec<(usize, f64)>);

/// A small line chart, written by hand (no plotting dependency).
fn svg_chart(series: &[Series<'_>]) -> String {
    let (w, h) = (640.0_f64, 400.0_f64);
    let (left, right, top, bottom) = (80.0, 190.0, 40.0, 60.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let max = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1))
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let step = nice_step(max / 5.0);
    let ymax = (max / step).ceil() * step;
    let xs: Vec<f64> = RPC_LEVELS.iter().map(|&c| (c as f64).log2()).collect();
    let (x0, x1) = (xs[0], xs[xs.len() - 1]);
    let px = |c: usize| left + ((c as f64).log2() - x0) / (x1 - x0) * pw;
    let py = |v: f64| top + ph - v / ymax * ph;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14" font-weight="bold">RabbitMQ RPC calls per second against concurrent callers</text>"#,
        left + pw / 2.0
    );
    // Grid and y labels.
    let mut v = 0.0;
    while v <= ymax + step / 2.0 {
        let y = py(v);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#dddddd"/>"##,
            left + pw
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 8.0,
            y + 4.0,
            group_thousands(v as u64)
        );
        v += step;
    }
    for &c in &RPC_LEVELS {
        let x = px(c);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{:.1}" stroke="#eeeeee"/>"##,
            top + ph
        );
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{c}</text>"#,
            top + ph + 18.0
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444444"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">concurrent callers (log scale)</text>"#,
        left + pw / 2.0,
        h - 18.0
    );
    let _ = writeln!(
        s,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">calls per second (median)</text>"#,
        top + ph / 2.0,
        top + ph / 2.0
    );
    for (i, (label, color, pts)) in series.iter().enumerate() {
        if !pts.is_empty() {
            let path: Vec<String> = pts
                .iter()
                .map(|&(c, r)| format!("{:.1},{:.1}", px(c), py(r)))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2.5"/>"#,
                path.join(" ")
            );
            for &(c, r) in pts {
                let _ = writeln!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{color}"/>"#,
                    px(c),
                    py(r)
                );
            }
        }
        let ly = top + 16.0 + i as f64 * 22.0;
        let lx = left + pw + 16.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{:.1}" y2="{ly}" stroke="{color}" stroke-width="2.5"/><circle cx="{:.1}" cy="{ly}" r="4" fill="{color}"/>"#,
            lx + 24.0,
            lx + 12.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 30.0,
            ly + 4.0,
            xml_escape(label)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn nice_step(raw: f64) -> f64 {
    let mag = 10f64.powf(raw.max(1e-9).log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 2.5 {
        2.5
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
