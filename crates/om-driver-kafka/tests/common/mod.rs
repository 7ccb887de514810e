//! Helpers shared by the Kafka driver's broker tests.
#![allow(dead_code)]

use om_driver_api::om_core::envelope::Format;
use om_driver_api::om_core::{JsonObject, Priority, Target, Value};
use om_driver_api::{IncomingMessage, ListenOptions, Listener, Notification, Transport};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::json;
use std::time::{Duration, Instant};

/// Generous limit for anything that involves a group join.
pub const JOIN: Duration = Duration::from_secs(60);

/// The broker URL from `OM_KAFKA_URL`, or `None` (the test then passes
/// after printing SKIPPED) unless `OM_REQUIRE_BROKERS=1`, which makes a
/// missing broker a failure.
pub fn kafka_url() -> Option<String> {
    match std::env::var("OM_KAFKA_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            if om_driver_api::testkit::brokers_required() {
                panic!("OM_KAFKA_URL is not set but OM_REQUIRE_BROKERS=1");
            }
            println!("SKIPPED (OM_KAFKA_URL not set)");
            None
        }
    }
}

/// `host:port` of the broker URL.
pub fn bootstrap(url: &str) -> String {
    let rest = url.trim_start_matches("kafka://");
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// A name nobody used before.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &om_driver_api::om_core::uuid_hex()[..12])
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_logging() {
    if std::env::var("RUST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// Opens a Kafka transport with extra options.
pub async fn transport(url: &str, options: &[(&str, &str)]) -> Transport {
    init_logging();
    om_driver_kafka::register();
    Transport::builder(url)
        .options(options.iter().map(|(k, v)| (*k, *v)))
        .open()
        .await
        .expect("open kafka transport")
}

/// The URL with a virtual host.
pub fn with_vhost(url: &str, vhost: &str) -> String {
    format!("kafka://{}/{vhost}", bootstrap(url))
}

/// A notification message like the notifier builds.
pub fn message(event_type: &str, priority: Priority, payload: Value) -> JsonObject {
    let v = json!({
        "message_id": om_driver_api::om_core::uuid_dashed(),
        "publisher_id": "test.host1",
        "event_type": event_type,
        "priority": priority.as_upper(),
        "payload": payload,
        "timestamp": "2025-03-01 10:00:00.123456",
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// Sends one notification to `<topic>.<priority>`.
pub async fn notify(t: &Transport, topic: &str, priority: Priority, payload: Value) {
    notify_ctx(t, topic, priority, payload, JsonObject::new()).await
}

/// Sends one notification with a context.
pub async fn notify_ctx(
    t: &Transport,
    topic: &str,
    priority: Priority,
    payload: Value,
    ctxt: JsonObject,
) {
    let target = Target::new(format!("{topic}.{}", priority.as_lower()));
    let n = Notification::new(target, message("test.event", priority, payload), Format::V2)
        .with_context(ctxt);
    t.driver()
        .send_notification(n)
        .await
        .expect("send notification");
}

/// Opens a listener on `topic` for `priorities`.
pub async fn listen(
    t: &Transport,
    topic: &str,
    priorities: &[Priority],
    pool: Option<&str>,
) -> Box<dyn Listener> {
    let targets = priorities
        .iter()
        .map(|p| (Target::new(topic), *p))
        .collect();
    let started = Instant::now();
    let l = t
        .driver()
        .listen_for_notifications(targets, pool.map(str::to_owned), ListenOptions::default())
        .await
        .expect("listen for notifications");
    println!(
        "listener on {topic} (pool {pool:?}) ready in {:?}",
        started.elapsed()
    );
    l
}

/// The next message within `limit`, or `None`.
pub async fn next_within(l: &mut Box<dyn Listener>, limit: Duration) -> Option<IncomingMessage> {
    match tokio::time::timeout(limit, l.next()).await {
        Ok(Some(Ok(m))) => Some(m),
        Ok(Some(Err(e))) => panic!("listener error: {e}"),
        Ok(None) => None,
        Err(_) => None,
    }
}

/// Receives and acknowledges messages until `n` arrived or `limit` passed.
pub async fn collect(l: &mut Box<dyn Listener>, n: usize, limit: Duration) -> Vec<IncomingMessage> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match next_within(l, left).await {
            Some(m) => {
                m.acknowledge().await.expect("ack");
                out.push(m);
            }
            None => break,
        }
    }
    out
}

/// Receives and acknowledges everything arriving within `quiet`.
pub async fn drain(l: &mut Box<dyn Listener>, quiet: Duration) -> Vec<IncomingMessage> {
    let mut out = Vec::new();
    while let Some(m) = next_within(l, quiet).await {
        m.acknowledge().await.expect("ack");
        out.push(m);
    }
    out
}

/// The payload's `n` field of each message, in the order received.
pub fn numbers_in_order(msgs: &[IncomingMessage]) -> Vec<i64> {
    msgs.iter()
        .filter_map(|m| {
            m.message
                .get("payload")
                .and_then(|p| p.get("n"))
                .and_then(Value::as_i64)
        })
        .collect()
}

/// The payload's `n` field of each message, sorted.
pub fn numbers(msgs: &[IncomingMessage]) -> Vec<i64> {
    let mut v = numbers_in_order(msgs);
    v.sort_unstable();
    v
}

/// Opens a new listener of `pool` on `topic`, sends `{"n": n}` at `INFO`
/// and checks that this is all the listener gets: nothing the pool
/// acknowledged before comes back.
pub async fn pool_gets_only_new_records(t: &Transport, topic: &str, pool: &str, n: i64) {
    let mut l = listen(t, topic, &[Priority::Info], Some(pool)).await;
    notify(t, topic, Priority::Info, json!({ "n": n })).await;
    let mut got = collect(&mut l, 1, JOIN).await;
    got.extend(drain(&mut l, Duration::from_secs(2)).await);
    assert_eq!(numbers(&got), vec![n]);
    l.cleanup().await.expect("cleanup");
}

/// A record read raw from Kafka.
#[derive(Debug, Clone)]
pub struct RawRecord {
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub header_count: usize,
}

/// Reads every record of `topic` from the beginning with a plain rdkafka
/// consumer (no group involvement), until `n` arrived or `limit` passed.
pub fn read_raw(url: &str, topic: &str, n: usize, limit: Duration) -> Vec<RawRecord> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap(url))
        .set("group.id", unique("raw-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("raw consumer");
    let deadline = Instant::now() + limit;
    let md = loop {
        match consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            Ok(md)
                if md
                    .topics()
                    .first()
                    .is_some_and(|t| !t.partitions().is_empty()) =>
            {
                break md
            }
            _ if Instant::now() > deadline => panic!("topic {topic} has no metadata"),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        if let Some(r) = consumer.poll(Duration::from_millis(200)) {
            let m = r.expect("raw record");
            out.push(RawRecord {
                partition: m.partition(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                header_count: m.headers().map_or(0, |h| h.count()),
            });
        }
    }
    out
}

/// Runs `$OM_KAFKA_CTL <action>` (stop / start the broker).
pub fn broker_ctl(action: &str) {
    let ctl =
        std::env::var("OM_KAFKA_CTL").expect("OM_KAFKA_CTL must be set for broker restart tests");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{ctl} {action}"))
        .status()
        .expect("run OM_KAFKA_CTL");
    assert!(
        status.success(),
        "`$OM_KAFKA_CTL {action}` failed: {status}"
    );
}

/// The consumer groups the broker knows (blocking; for `spawn_blocking`).
pub fn group_names(url: &str) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap(url))
        .create()
        .expect("group lister");
    let list = consumer
        .fetch_group_list(None, Duration::from_secs(10))
        .expect("list the consumer groups");
    list.groups().iter().map(|g| g.name().to_owned()).collect()
}
