//! Helpers shared by the broker tests: environment, rabbitmqctl, raw lapin.
#![allow(dead_code)]

use lapin::{Connection, ConnectionProperties};
use om_driver_api::om_core::{JsonObject, TransportUrl, Value};
use om_driver_api::DriverConfig;
use om_driver_rabbit::RabbitDriver;
use std::process::Command;

/// The value of `var`, or `None` after printing the skip line; panics
/// instead when `OM_REQUIRE_BROKERS=1`.
pub fn env_or_skip(var: &str) -> Option<String> {
    match std::env::var(var).ok().filter(|v| !v.trim().is_empty()) {
        Some(v) => Some(v),
        None => {
            let required = matches!(
                std::env::var("OM_REQUIRE_BROKERS")
                    .ok()
                    .as_deref()
                    .map(str::trim),
                Some("1") | Some("true") | Some("yes")
            );
            if required {
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

/// A fresh lowercase id for unique names.
pub fn uniq() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Runs `<prefix> ctl -q --no-table-headers <args>` and returns the rows
/// (tab-separated columns).
pub fn ctl(prefix: &str, args: &str) -> Vec<Vec<String>> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{prefix} ctl -q --no-table-headers {args}"))
        .output()
        .expect("run rabbitmqctl");
    assert!(
        out.status.success(),
        "rabbitmqctl {args} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

/// Runs `<prefix> ctl -q <args>` (a command that lists nothing).
pub fn ctl_cmd(prefix: &str, args: &str) {
    node(prefix, &format!("ctl -q {args}"));
}

/// Runs `<prefix> <command>` (e.g. `stop`, `start`) and asserts success.
pub fn node(prefix: &str, command: &str) {
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
}

/// The row of `rows` whose first column is `name`.
pub fn row<'a>(rows: &'a [Vec<String>], name: &str) -> Option<&'a Vec<String>> {
    rows.iter()
        .find(|r| r.first().map(String::as_str) == Some(name))
}

/// Opens a driver directly (not through the registry) with options.
pub fn driver(url: &str, options: &[(&str, &str)]) -> RabbitDriver {
    let mut config = DriverConfig::new(TransportUrl::parse(url).expect("url"));
    for (k, v) in options {
        config.options.insert((*k).to_owned(), (*v).to_owned());
    }
    RabbitDriver::open(&config).expect("open driver")
}

/// The AMQP URI of a `rabbit://` test URL (single host).
pub fn amqp_uri(url: &str) -> String {
    let u = TransportUrl::parse(url).expect("url");
    let h = &u.hosts[0];
    let vhost = match u.virtual_host.as_deref() {
        None | Some("") | Some("/") => "%2f".to_owned(),
        Some(v) => v.to_owned(),
    };
    format!(
        "amqp://{}:{}@{}:{}/{}",
        h.username.clone().unwrap_or_else(|| "guest".into()),
        h.password
            .as_ref()
            .map(|p| p.expose().to_owned())
            .unwrap_or_else(|| "guest".into()),
        h.hostname,
        h.port.unwrap_or(5672),
        vhost
    )
}

/// A raw lapin connection to the test broker.
pub async fn raw(url: &str) -> Connection {
    Connection::connect(&amqp_uri(url), ConnectionProperties::default())
        .await
        .expect("raw lapin connection")
}

/// A JSON object from a `json!` value.
pub fn obj(v: Value) -> JsonObject {
    v.as_object().cloned().expect("an object")
}
