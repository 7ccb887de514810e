//! The broker side of the RabbitMQ tests: the environment `cargo xtask
//! test` sets, and rabbitmqctl through `xtask/scripts/rabbitmq.sh`. No
//! client library here, so the facade's tests include this file too
//! (`#[path = "../../om-driver-rabbit/tests/common/broker.rs"] mod broker;`).
#![allow(dead_code)]

use std::process::Command;

/// The value of `var`, or `None` after printing the skip line; panics
/// instead when `OM_REQUIRE_BROKERS` is set (`testkit::brokers_required`).
pub fn env_or_skip(var: &str) -> Option<String> {
    match std::env::var(var).ok().filter(|v| !v.trim().is_empty()) {
        Some(v) => Some(v),
        None => {
            if om_driver_api::testkit::brokers_required() {
                panic!("OM_REQUIRE_BROKERS is set but {var} is not");
            }
            println!("SKIPPED ({var} not set)");
            None
        }
    }
}

/// `OM_RABBIT_URL` and `OM_RABBIT_CTL`, or skip.
pub fn broker() -> Option<(String, String)> {
    let url = env_or_skip("OM_RABBIT_URL")?;
    let ctl = env_or_skip("OM_RABBIT_CTL")?;
    Some((url, ctl))
}

/// Runs `<prefix> ctl -q --no-table-headers <args>` and returns the rows
/// (tab-separated columns, trimmed).
pub fn ctl(prefix: &str, args: &str) -> Vec<Vec<String>> {
    run(prefix, &format!("ctl -q --no-table-headers {args}"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').map(|c| c.trim().to_owned()).collect())
        .collect()
}

/// Runs `<prefix> ctl -q <args>` (a command that lists nothing).
pub fn ctl_cmd(prefix: &str, args: &str) {
    run(prefix, &format!("ctl -q {args}"));
}

/// Runs `<prefix> <command>` (e.g. `stop`, `start`) and asserts success.
pub fn node(prefix: &str, command: &str) {
    run(prefix, command);
}

/// Runs `<prefix> <command>` through `sh`, asserts that it succeeded and
/// returns its standard output.
fn run(prefix: &str, command: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{prefix} {command}"))
        .output()
        .expect("run rabbitmq.sh");
    assert!(
        out.status.success(),
        "rabbitmq.sh {command} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The row of `rows` whose first column is `name`.
pub fn row<'a>(rows: &'a [Vec<String>], name: &str) -> Option<&'a Vec<String>> {
    rows.iter()
        .find(|r| r.first().map(String::as_str) == Some(name))
}
