//! `cargo xtask matrix`: runs every broker-backed suite (the conformance
//! suite of each driver against each intermediary, the Python interop tests)
//! and prints a scenario × (driver, broker) table of pass / fail.

use crate::test::{build_test_binaries, run_binary, BrokersGuard};
use crate::{brokers, provision};
use anyhow::{bail, Result};
use std::collections::{BTreeMap, BTreeSet};

pub fn run(_args: &[&str]) -> Result<()> {
    provision::rabbitmq()?;
    provision::python_venv()?;
    let all = brokers::select(&[])?;
    let _guard = BrokersGuard;
    brokers::up(&all)?;
    let mut env = brokers::test_env()?;
    env.push(("OM_REQUIRE_BROKERS".into(), "1".into()));

    // column label -> case -> result
    let mut table: BTreeMap<String, BTreeMap<String, &'static str>> = BTreeMap::new();
    for bin in build_test_binaries(None)? {
        let suite = bin.target.trim_start_matches("tests/").to_owned();
        let broker_backed = bin.package.starts_with("om-driver-")
            && bin.target.starts_with("tests/")
            || suite.starts_with("interop");
        if !broker_backed {
            continue;
        }
        let outcome = run_binary(&bin, &env)?;
        let column = format!("{}/{}", bin.package.trim_start_matches("om-driver-"), suite);
        let cells = table.entry(column).or_default();
        for line in outcome.output.lines() {
            let Some(rest) = line.strip_prefix("test ") else {
                continue;
            };
            let Some((name, result)) = rest.rsplit_once(" ... ") else {
                continue;
            };
            let case = name.rsplit("::").next().unwrap_or(name).to_owned();
            let mark = match result.trim() {
                "ok" => "pass",
                r if r.starts_with("FAILED") => "FAIL",
                r if r.starts_with("ignored") => "skip",
                _ => continue,
            };
            cells.insert(case, mark);
        }
    }

    let cases: BTreeSet<&String> = table.values().flat_map(|c| c.keys()).collect();
    let columns: Vec<&String> = table.keys().collect();
    let width = cases.iter().map(|c| c.len()).max().unwrap_or(10).max(10);
    print!("{:width$}", "scenario");
    for c in &columns {
        print!(" | {c}");
    }
    println!();
    let mut failures = 0;
    for case in &cases {
        print!("{case:width$}");
        for c in &columns {
            let mark = table[*c].get(*case).copied().unwrap_or("-");
            if mark == "FAIL" {
                failures += 1;
            }
            print!(" | {mark:^w$}", w = c.len());
        }
        println!();
    }
    let passed: usize = table
        .values()
        .map(|c| c.values().filter(|m| **m == "pass").count())
        .sum();
    println!("{passed} passed, {failures} failed");
    if failures > 0 {
        bail!("{failures} failing cells");
    }
    Ok(())
}
