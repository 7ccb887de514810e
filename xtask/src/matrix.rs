//! `cargo xtask matrix`: runs every broker-backed suite (the conformance
//! suite of each driver against each intermediary, the driver-specific
//! suites, the Python interop tests) and prints one table: a row per
//! scenario (test case), a column per driver @ intermediary, a cell per
//! result.
//!
//! Cells: `pass`; `n/a` (a conformance case the driver does not claim to
//! support, e.g. RPC on Kafka); `skip` (the test printed SKIPPED) and `ign`
//! (`#[ignore]`); and the failures `FAIL`, `CRASH` (the test binary died
//! before reporting the case), `TIMEOUT` and `MISSING` (a conformance case
//! that another driver's suite ran and this one did not). The command fails
//! if any cell failed, or if a suite did not run or has no tests. Each suite's
//! full output is kept in `.om/matrix/`. The brokers are stopped at the end,
//! whatever happened.

use crate::test::{build_test_binaries, BrokersGuard, TestBinary};
use crate::{brokers, cmd, provision};
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The columns, in display order: (key, header).
const COLUMNS: &[(&str, &str)] = &[
    ("fake", "fake@memory"),
    ("memq", "memq@memory"),
    ("rabbit", "rabbit@rabbitmq"),
    ("kafka", "kafka@tansu"),
    ("amqp1-broker", "amqp1@rabbitmq"),
    ("amqp1-router", "amqp1@router"),
];

/// The suites of the matrix: (package, test target, column key, is a
/// conformance suite). The two in-memory columns are the reference: there
/// every conformance case applies and must pass.
#[rustfmt::skip]
const SUITES: &[(&str, &str, &str, bool)] = &[
    ("om-driver-api",    "tests/conformance_fake",     "fake",         true),
    ("om-driver-api",    "tests/third_party_driver",   "memq",         true),
    ("om-driver-rabbit", "tests/conformance",          "rabbit",       true),
    ("om-driver-rabbit", "tests/topology",             "rabbit",       false),
    ("om-driver-rabbit", "tests/wire",                 "rabbit",       false),
    ("om-driver-rabbit", "tests/resilience",           "rabbit",       false),
    ("om-driver-rabbit", "tests/tls",                  "rabbit",       false),
    ("om",               "tests/interop_rabbit",       "rabbit",       false),
    ("om-cli",           "tests/cli_rabbit",           "rabbit",       false),
    ("om-driver-kafka",  "tests/conformance",          "kafka",        true),
    ("om-driver-kafka",  "tests/conformance_earliest", "kafka",        false),
    ("om-driver-kafka",  "tests/kafka",                "kafka",        false),
    ("om-driver-kafka",  "tests/python_interop",       "kafka",        false),
    ("om-driver-kafka",  "tests/restart",              "kafka",        false),
    ("om-driver-amqp1",  "tests/conformance_broker",   "amqp1-broker", true),
    ("om-driver-amqp1",  "tests/broker_driver",        "amqp1-broker", false),
    ("om-driver-amqp1",  "tests/broker_reconnect",     "amqp1-broker", false),
    ("om-driver-amqp1",  "tests/conformance_router",   "amqp1-router", true),
    ("om-driver-amqp1",  "tests/router_driver",        "amqp1-router", false),
    ("om-driver-amqp1",  "tests/python_interop",       "amqp1-router", false),
    ("om-driver-amqp1",  "tests/tls",                  "amqp1-router", false),
];

/// Test targets of the broker packages that are deliberately not in the
/// matrix: (package, test target, reason). Empty: every one of them is.
const NOT_IN_MATRIX: &[(&str, &str, &str)] = &[];

/// Whether a test target looks broker-backed, so that the matrix must place
/// it in a column (or list it in [`NOT_IN_MATRIX`]).
fn looks_broker_backed(package: &str, target: &str) -> bool {
    let Some(name) = target.strip_prefix("tests/") else {
        return false;
    };
    matches!(
        package,
        "om-driver-rabbit" | "om-driver-kafka" | "om-driver-amqp1"
    ) || (package == "om" && name.starts_with("interop"))
        || (package == "om-cli" && name.ends_with("_rabbit"))
}

/// A suite gets this long before it is killed and its unreported cases are
/// marked `TIMEOUT`.
const SUITE_TIME_LIMIT: Duration = Duration::from_secs(20 * 60);

/// What one suite did.
struct SuiteRun {
    package: &'static str,
    target: &'static str,
    column: &'static str,
    conformance: bool,
    /// case -> mark
    cells: BTreeMap<String, &'static str>,
    /// case -> first line of its failure message
    reasons: BTreeMap<String, String>,
    /// libtest's own count of passed tests (`n/a` and `skip` included).
    passed: usize,
    /// A problem with the suite as a whole (did not run, crashed, ...).
    problem: Option<String>,
    elapsed: Duration,
}

pub fn run(args: &[&str]) -> Result<()> {
    if let Some(a) = args.first() {
        bail!("`cargo xtask matrix` takes no arguments (got {a:?})");
    }
    let started = Instant::now();
    provision::rabbitmq()?;
    provision::python_venv()?;
    provision::python_venv_amqp1()?;
    let all = brokers::select(&[])?;
    let _guard = BrokersGuard;
    brokers::up(&all)?;
    let mut env = brokers::test_env()?;
    env.push(("OM_REQUIRE_BROKERS".into(), "1".into()));
    env.push(("OM_REQUIRE_PYTHON_KAFKA".into(), "1".into()));
    env.push(("OM_REQUIRE_PYTHON_AMQP1".into(), "1".into()));
    env.push(("RUST_BACKTRACE".into(), "0".into()));

    let log_dir = cmd::state_dir().join("matrix");
    let _ = std::fs::remove_dir_all(&log_dir);
    std::fs::create_dir_all(&log_dir)?;

    // The same build as `cargo xtask test`; the matrix runs only the
    // integration suites (`tests/<name>`) among them.
    let bins: Vec<TestBinary> = build_test_binaries(None)?
        .into_iter()
        .filter(|b| b.target.starts_with("tests/"))
        .collect();
    let mut runs = Vec::new();
    let mut not_run = Vec::new();
    let mut unplaced = Vec::new();
    for &(package, target, column, conformance) in SUITES {
        let mut run = SuiteRun {
            package,
            target,
            column,
            conformance,
            cells: BTreeMap::new(),
            reasons: BTreeMap::new(),
            passed: 0,
            problem: None,
            elapsed: Duration::ZERO,
        };
        let Some(bin) = bins
            .iter()
            .find(|b| b.package == package && b.target == target)
        else {
            run.problem = Some("the suite was not built, so it did not run".into());
            runs.push(run);
            continue;
        };
        let log = log_dir.join(format!(
            "{package}-{}.log",
            target.trim_start_matches("tests/")
        ));
        run_suite(bin, &env, &log, &mut run)?;
        eprintln!(
            "xtask: matrix: {package} :: {target}: {} ({:.0?})",
            summary(run.cells.values().copied()),
            run.elapsed
        );
        if let Some(p) = &run.problem {
            eprintln!("xtask: matrix:   {p}");
        }
        runs.push(run);
    }

    // A broker suite nobody placed in the matrix would vanish from the
    // table unnoticed: it fails the matrix until it is added to SUITES.
    for bin in &bins {
        let (p, t) = (bin.package.as_str(), bin.target.as_str());
        if looks_broker_backed(p, t)
            && !SUITES.iter().any(|(sp, st, _, _)| *sp == p && *st == t)
            && !NOT_IN_MATRIX.iter().any(|(np, nt, _)| *np == p && *nt == t)
        {
            unplaced.push(format!(
                "{p} :: {t} looks broker-backed but is not in the matrix: \
                 add it to SUITES (or NOT_IN_MATRIX) in xtask/src/matrix.rs"
            ));
        }
    }
    for (p, t, why) in NOT_IN_MATRIX {
        not_run.push(format!("{p} :: {t}: not part of the matrix ({why})"));
    }

    let failed = print_table(&runs, &not_run, &unplaced, started.elapsed());
    if failed > 0 {
        bail!("the matrix has {failed} failure(s); see above and the logs in .om/matrix/");
    }
    Ok(())
}

/// The names of a test binary's tests (`--list`).
fn list_cases(bin: &TestBinary) -> Result<Vec<String>> {
    let out = cmd::output(
        Command::new(&bin.executable)
            .arg("--list")
            .current_dir(&bin.manifest_dir),
    )?;
    Ok(out
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(str::to_owned)
        .collect())
}

/// Runs one suite with `--show-output` (so the output of passing tests, with
/// the suite's `not applicable` and `SKIPPED` lines, is printed too), within
/// [`SUITE_TIME_LIMIT`], and fills `run` from libtest's report.
fn run_suite(
    bin: &TestBinary,
    env: &[(String, String)],
    log: &Path,
    run: &mut SuiteRun,
) -> Result<()> {
    let listed = list_cases(bin)?;
    eprintln!(
        "xtask: matrix: running {} :: {} ({} tests)",
        bin.package,
        bin.target,
        listed.len()
    );
    let started = Instant::now();
    let mut c = Command::new(&bin.executable);
    c.arg("--show-output")
        .current_dir(&bin.manifest_dir)
        .env("CARGO_MANIFEST_DIR", &bin.manifest_dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so whatever the tests start (Python
        // peers) can be ended with it.
        .process_group(0);
    let mut child = c
        .spawn()
        .with_context(|| format!("could not start {}", bin.executable.display()))?;
    let pgid = child.id();
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out_thread = child
        .stdout
        .take()
        .map(|o| reader(Box::new(o) as Box<dyn Read + Send>));
    let err_thread = child
        .stderr
        .take()
        .map(|e| reader(Box::new(e) as Box<dyn Read + Send>));
    let deadline = started + SUITE_TIME_LIMIT;
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            kill_group(pgid, "KILL");
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // Anything the tests left running in the group (it would also keep the
    // pipes open).
    kill_group(pgid, "KILL");
    let stdout = out_thread
        .map(|t| t.join().unwrap_or_default())
        .unwrap_or_default();
    let stderr = err_thread
        .map(|t| t.join().unwrap_or_default())
        .unwrap_or_default();
    run.elapsed = started.elapsed();
    std::fs::write(
        log,
        format!("{stdout}\n---- stderr ----\n{stderr}\n---- exit: {status} ----\n"),
    )?;

    let captured = captured_outputs(&stdout);
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("test result: ") {
            run.passed += rest
                .split(';')
                .find_map(|p| p.trim().strip_suffix(" passed"))
                .and_then(|n| n.rsplit(' ').next())
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0);
            continue;
        }
        let Some(rest) = line.strip_prefix("test ") else {
            continue;
        };
        let Some((name, result)) = rest.rsplit_once(" ... ") else {
            continue;
        };
        let result = result.trim();
        let text = captured.get(name).map(String::as_str).unwrap_or("");
        let mark = if result == "ok" {
            if text.contains(&format!("conformance: {name} not applicable")) {
                "n/a"
            } else if text.contains("SKIPPED") {
                "skip"
            } else {
                "pass"
            }
        } else if result.starts_with("FAILED") {
            run.reasons.insert(name.to_owned(), failure_reason(text));
            "FAIL"
        } else if result.starts_with("ignored") {
            "ign"
        } else {
            continue;
        };
        run.cells.insert(name.to_owned(), mark);
    }
    let unreported = if timed_out {
        "TIMEOUT"
    } else if status.success() {
        "?"
    } else {
        "CRASH"
    };
    for case in listed {
        run.cells.entry(case).or_insert(unreported);
    }
    let failed_cells = run.cells.values().filter(|m| is_failure(m)).count();
    if timed_out {
        run.problem = Some(format!(
            "killed after {SUITE_TIME_LIMIT:?}; unreported cases are marked TIMEOUT"
        ));
    } else if !status.success() && failed_cells == 0 {
        run.problem = Some(format!(
            "the test binary failed ({status}) with no failing case"
        ));
    } else if run.cells.is_empty() {
        run.problem = Some("the test binary has no tests (compiled out?)".into());
    }
    Ok(())
}

/// Sends `signal` to every process of the group `pgid` (the test binary's
/// own group). Spelled `kill -s SIG -- -PGID`: procps' `kill -SIG -PGID`
/// reads `-PGID` as options and can end up signalling pid -1, that is every
/// process of the user.
fn kill_group(pgid: u32, signal: &str) {
    if pgid <= 1 {
        return;
    }
    let _ = cmd::succeeds(
        Command::new("kill")
            .args(["-s", signal, "--"])
            .arg(format!("-{pgid}")),
    );
}

/// The captured output of each test, from libtest's `---- NAME stdout ----`
/// blocks (printed for failures, and for successes with `--show-output`).
fn captured_outputs(stdout: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in stdout.lines() {
        if let Some(name) = line
            .strip_prefix("---- ")
            .and_then(|r| r.strip_suffix(" stdout ----"))
        {
            current = Some(name.to_owned());
            out.entry(name.to_owned()).or_default();
            continue;
        }
        if line == "successes:" || line == "failures:" || line.starts_with("test result: ") {
            current = None;
            continue;
        }
        if let Some(name) = &current {
            let text = out.entry(name.clone()).or_default();
            text.push_str(line);
            text.push('\n');
        }
    }
    out
}

/// The first line of a failing test's panic message.
fn failure_reason(text: &str) -> String {
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.contains("panicked at") {
            let msg = lines.next().unwrap_or("").trim();
            let mut msg: String = msg.chars().take(160).collect();
            if msg.is_empty() {
                msg = l.trim().to_owned();
            }
            return msg;
        }
    }
    "see the log".to_owned()
}

fn is_failure(mark: &str) -> bool {
    matches!(mark, "FAIL" | "CRASH" | "TIMEOUT" | "MISSING" | "?")
}

/// `12 pass, 3 n/a, 1 FAIL`
fn summary<'a>(marks: impl Iterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for m in marks {
        *counts.entry(m).or_default() += 1;
    }
    let order = [
        "pass", "n/a", "skip", "ign", "FAIL", "CRASH", "TIMEOUT", "MISSING", "?",
    ];
    let parts: Vec<String> = order
        .iter()
        .filter_map(|k| counts.get(k).map(|n| format!("{n} {k}")))
        .collect();
    if parts.is_empty() {
        "no tests".into()
    } else {
        parts.join(", ")
    }
}

/// Prints the table and returns the number of failures (failed cells and
/// suite problems).
fn print_table(
    runs: &[SuiteRun],
    not_run: &[String],
    unplaced: &[String],
    elapsed: Duration,
) -> usize {
    // A case of a conformance suite that shows up in more than one of them
    // is a shared scenario; every other case is a row of its own suite.
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for r in runs.iter().filter(|r| r.conformance) {
        for case in r.cells.keys() {
            *seen.entry(case.as_str()).or_default() += 1;
        }
    }
    let shared: BTreeSet<&str> = seen
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(c, _)| c)
        .collect();

    // A shared case a conformance suite did not report is a failure of that
    // column, not a blank.
    let mut missing: Vec<(&SuiteRun, &str)> = Vec::new();
    for r in runs.iter().filter(|r| r.conformance && r.problem.is_none()) {
        for case in &shared {
            if !r.cells.contains_key(*case) {
                missing.push((r, case));
            }
        }
    }

    // group -> case -> column -> mark
    type Rows<'a> = BTreeMap<&'a str, BTreeMap<&'a str, &'static str>>;
    let mut groups: Vec<(String, Rows)> = vec![(
        "conformance suite (om_driver_api::testkit)".into(),
        BTreeMap::new(),
    )];
    for r in runs {
        let own = format!("{} {}", r.package, r.target);
        for (case, mark) in &r.cells {
            let gi = if shared.contains(case.as_str()) {
                0
            } else {
                match groups.iter().position(|(g, _)| *g == own) {
                    Some(i) => i,
                    None => {
                        groups.push((own.clone(), BTreeMap::new()));
                        groups.len() - 1
                    }
                }
            };
            groups[gi]
                .1
                .entry(case.as_str())
                .or_default()
                .insert(r.column, mark);
        }
    }

    for (r, case) in &missing {
        groups[0]
            .1
            .entry(case)
            .or_default()
            .insert(r.column, "MISSING");
    }

    let width = groups
        .iter()
        .flat_map(|(_, rows)| rows.keys().map(|c| c.len() + 2))
        .max()
        .unwrap_or(20)
        .max(20);
    let mut header = format!("{:width$}", "scenario");
    for (_, h) in COLUMNS {
        header.push_str(&format!(" | {h}"));
    }
    println!("\n==== om driver x broker x scenario matrix ====");
    println!("{header}");
    println!("{}", "-".repeat(header.len()));
    for (group, rows) in &groups {
        if rows.is_empty() {
            continue;
        }
        println!("[{group}]");
        for (case, cells) in rows {
            let mut line = format!("  {case:w$}", w = width - 2);
            for (key, h) in COLUMNS {
                let mark = cells.get(key).copied().unwrap_or("-");
                line.push_str(&format!(" | {mark:^w$}", w = h.len()));
            }
            println!("{line}");
        }
    }
    println!("{}", "-".repeat(header.len()));
    for (key, h) in COLUMNS {
        let marks = runs
            .iter()
            .filter(|r| r.column == *key)
            .flat_map(|r| r.cells.values().copied());
        println!("{h:>16}: {}", summary(marks));
    }

    println!(
        "cells: pass | n/a (needs a capability the driver does not claim) | skip, ign | \
         FAIL, CRASH, TIMEOUT, MISSING (failures) | - (not in that column)"
    );

    let mut failures = 0;
    let mut lines = Vec::new();
    for r in runs {
        for (case, mark) in r.cells.iter().filter(|(_, m)| is_failure(m)) {
            failures += 1;
            let reason = r.reasons.get(case).map(String::as_str).unwrap_or("");
            lines.push(format!(
                "{mark:7} {} :: {} :: {case}  {reason}",
                r.package, r.target
            ));
        }
        if let Some(p) = &r.problem {
            failures += 1;
            lines.push(format!("SUITE   {} :: {}: {p}", r.package, r.target));
        }
    }
    for (r, case) in &missing {
        failures += 1;
        lines.push(format!("MISSING {} :: {} :: {case}", r.package, r.target));
    }
    for u in unplaced {
        failures += 1;
        lines.push(format!("SUITE   {u}"));
    }
    if !lines.is_empty() {
        println!("\nfailures:");
        for l in &lines {
            println!("  {l}");
        }
    }
    for n in not_run {
        println!("not run: {n}");
    }
    println!(
        "\nsuites (logs in {}):",
        cmd::state_dir().join("matrix").display()
    );
    for r in runs {
        println!(
            "  {:>6.0?}  {:<45} {}",
            r.elapsed,
            format!("{} :: {}", r.package, r.target),
            summary(r.cells.values().copied())
        );
    }
    let total = runs.iter().map(|r| r.cells.len()).sum::<usize>();
    println!(
        "\n{total} cells, {failures} failure(s), wall time {:.0?}",
        elapsed
    );
    failures
}
