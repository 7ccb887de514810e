//! # om-bench
//!
//! End-to-end benchmarks of om against the raw client libraries it is
//! built on (lapin, rdkafka, fe2o3-amqp) and against Python
//! oslo.messaging, on the same brokers. The `om-bench` binary runs one
//! measurement per invocation and prints one JSON object
//! ([`harness::BenchResult`]); `cargo xtask bench` runs them all, runs
//! `python/bench.py` with the project's venv and writes
//! `docs/performance.md`.
//!
//! Nothing here is a test: throughput and latency are measured and
//! reported, never asserted.

pub mod amqp1_raw;
pub mod harness;
pub mod kafka_raw;
pub mod oslo_bodies;
pub mod rabbit_om;
pub mod rabbit_raw;

/// `rabbit://user:pass@host:port/` (om's form) → `amqp://user:pass@host:port/%2f`
/// (lapin's form, default vhost). Other schemes pass through unchanged.
pub fn lapin_url(url: &str) -> String {
    let Some(rest) = url
        .strip_prefix("rabbit://")
        .or_else(|| url.strip_prefix("amqp://"))
    else {
        return url.to_owned();
    };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, p),
        None => (rest, ""),
    };
    let vhost = path.split('?').next().unwrap_or_default();
    let vhost = if vhost.is_empty() { "%2f" } else { vhost };
    format!("amqp://{authority}/{vhost}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lapin_urls() {
        assert_eq!(
            lapin_url("rabbit://guest:guest@127.0.0.1:35672/"),
            "amqp://guest:guest@127.0.0.1:35672/%2f"
        );
        assert_eq!(
            lapin_url("amqp://guest:guest@127.0.0.1:35672"),
            "amqp://guest:guest@127.0.0.1:35672/%2f"
        );
        assert_eq!(lapin_url("rabbit://u:p@h:1/vh?x=1"), "amqp://u:p@h:1/vh");
        assert_eq!(lapin_url("kafka://h:1/"), "kafka://h:1/");
        assert_eq!(
            kafka_raw::bootstrap_servers("kafka://127.0.0.1:39092,127.0.0.2:9/"),
            "127.0.0.1:39092,127.0.0.2:9"
        );
        assert_eq!(kafka_raw::bootstrap_servers("kafka:///"), "127.0.0.1:9092");
        assert_eq!(
            kafka_raw::bootstrap_servers("kafka://h:1/?wait_for_delivery=false"),
            "h:1"
        );
        assert!(kafka_raw::waits_for_delivery("kafka://h:1/"));
        assert!(kafka_raw::waits_for_delivery(
            "kafka://h:1/?wait_for_delivery=true"
        ));
        assert!(!kafka_raw::waits_for_delivery(
            "kafka://h:1/?x=1&wait_for_delivery=false"
        ));
        assert_eq!(
            kafka_raw::linger_ms("kafka://h:1/").ok().as_deref(),
            Some("0")
        );
        assert_eq!(
            kafka_raw::linger_ms("kafka://h:1/?producer_batch_timeout=0.005")
                .ok()
                .as_deref(),
            Some("5")
        );
        assert!(kafka_raw::linger_ms("kafka://h:1/?producer_batch_timeout=x").is_err());
        assert_eq!(
            kafka_raw::max_in_flight("kafka://h:1/").ok().as_deref(),
            Some("1")
        );
        assert_eq!(
            kafka_raw::max_in_flight("kafka://h:1/?producer_max_in_flight=5")
                .ok()
                .as_deref(),
            Some("5")
        );
        assert!(kafka_raw::max_in_flight("kafka://h:1/?producer_max_in_flight=-1").is_err());
    }
}
