//! Shared helpers of the integration tests.
#![allow(dead_code)]

pub mod proxy;
pub mod router;

use std::time::Duration;

/// The RabbitMQ AMQP 1.0 URL from `OM_AMQP1_BROKER_URL`, or `None` after
/// printing `SKIPPED (OM_AMQP1_BROKER_URL not set)`; with
/// `OM_REQUIRE_BROKERS=1` a missing variable fails the test.
pub fn broker_url(test: &str) -> Option<String> {
    match std::env::var("OM_AMQP1_BROKER_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    {
        Some(u) => Some(u),
        None => {
            assert!(
                !om_driver_api::testkit::brokers_required(),
                "{test}: OM_REQUIRE_BROKERS is set but OM_AMQP1_BROKER_URL is not"
            );
            println!("{test}: SKIPPED (OM_AMQP1_BROKER_URL not set)");
            None
        }
    }
}

/// `url` with query options appended.
pub fn with_options(url: &str, options: &[(&str, &str)]) -> String {
    let mut u = url.to_owned();
    if !u.contains("://") {
        return u;
    }
    let after = &u[u.find("://").map(|i| i + 3).unwrap_or(0)..];
    if !after.contains('/') {
        u.push('/');
    }
    for (i, (k, v)) in options.iter().enumerate() {
        let sep = if i == 0 && !u.contains('?') { '?' } else { '&' };
        u.push(sep);
        u.push_str(k);
        u.push('=');
        u.push_str(v);
    }
    u
}

/// Installs a test log subscriber once (`RUST_LOG` controls it).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A unique name for a topic or queue.
pub fn uniq(prefix: &str) -> String {
    format!("{prefix}_{}", om_driver_api::om_core::uuid_hex())
}

/// Default wait for something that must happen (generous: only a failing
/// test waits that long, and CI machines are busy).
pub const WAIT: Duration = Duration::from_secs(30);
