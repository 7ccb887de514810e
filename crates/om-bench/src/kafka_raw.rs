//! Raw rdkafka: notifications end to end with a `FutureProducer` and a
//! `StreamConsumer`, with no om code on the message path. Same topic naming as om
//! (`<topic>.info`), same producer batching as oslo's defaults
//! (`linger.ms` 0), at-least-once consumption: an offset is stored for
//! commit only after the message was handled.
//!
//! The producer is configured as om configures its own: `linger.ms`,
//! `batch.num.messages` and `max.in.flight.requests.per.connection` (om's
//! `producer_max_in_flight`, 1 by default, where librdkafka's default is
//! 1000000), with om's defaults taken from `KafkaOptions`, so that the
//! ratio measures om's own cost, not a setting.
//!
//! The URL's query may carry three of om's options, read the same way:
//! `producer_batch_timeout` (seconds, librdkafka's `linger.ms`),
//! `producer_max_in_flight` and `wait_for_delivery`. With `wait_for_delivery=false`, the senders only
//! queue, as om then does: a `ThreadedProducer` whose delivery reports
//! nobody waits for, and a yield to the runtime whenever tokio's
//! cooperative budget is spent.

use crate::harness::{self, BenchResult, RunSpec};
use anyhow::{Context as _, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, FutureProducer, FutureRecord, ThreadedProducer};
use rdkafka::util::Timeout;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `kafka://host:port,host2:port2/...` → `host:port,host2:port2`.
pub fn bootstrap_servers(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let hosts = rest.split(['/', '?']).next().unwrap_or_default();
    if hosts.is_empty() {
        "127.0.0.1:9092".into()
    } else {
        hosts.to_owned()
    }
}

/// The value of `key` in the URL's query, if present (om's URL parser).
fn query_value(url: &str, key: &str) -> Option<String> {
    om::TransportUrl::parse(url).ok()?.query.remove(key)
}

/// Whether the URL's query asks for senders that wait for every delivery
/// report (the default; `wait_for_delivery=false` turns it off).
pub fn waits_for_delivery(url: &str) -> bool {
    !query_value(url, "wait_for_delivery").is_some_and(|v| v.eq_ignore_ascii_case("false"))
}

/// librdkafka's `linger.ms` for the URL: om's `producer_batch_timeout`
/// (seconds) from the query, else oslo's default, 0.
pub fn linger_ms(url: &str) -> Result<String> {
    let Some(raw) = query_value(url, "producer_batch_timeout") else {
        return Ok("0".into());
    };
    let seconds: f64 = raw
        .parse()
        .with_context(|| format!("producer_batch_timeout={raw}"))?;
    Ok(format!("{}", seconds * 1000.0))
}

/// librdkafka's `max.in.flight.requests.per.connection` for the URL: om's
/// `producer_max_in_flight` from the query, else om's default.
pub fn max_in_flight(url: &str) -> Result<String> {
    let Some(raw) = query_value(url, "producer_max_in_flight") else {
        return Ok(om_driver_kafka::KafkaOptions::default()
            .producer_max_in_flight
            .to_string());
    };
    let n: u32 = raw
        .parse()
        .with_context(|| format!("producer_max_in_flight={raw}"))?;
    Ok(n.to_string())
}

/// Creates `topic` with the broker's default partitioning (an existing
/// topic is fine).
pub async fn create_topic(bootstrap: &str, topic: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("creating the admin client")?;
    let new = NewTopic::new(topic, -1, TopicReplication::Fixed(-1));
    let opts = AdminOptions::new().operation_timeout(Some(Timeout::After(Duration::from_secs(10))));
    // An error here (e.g. the topic exists) is not fatal: producing
    // auto-creates the topic anyway.
    let _ = admin.create_topics([&new], &opts).await;
    Ok(())
}

/// Notifications: `concurrency` senders awaiting each delivery report,
/// counted by one consumer in its own group.
pub async fn notify(spec: &RunSpec) -> Result<BenchResult> {
    let bootstrap = bootstrap_servers(&spec.url);
    let topic = format!("{}_notify.info", spec.prefix);
    create_topic(&bootstrap, &topic).await?;
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", format!("{}_raw_group", spec.prefix))
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "latest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        .set("topic.metadata.refresh.interval.ms", "5000")
        .set("enable.partition.eof", "false")
        .create()
        .context("creating the consumer")?;
    consumer
        .subscribe(&[topic.as_str()])
        .context("subscribing")?;
    let consumer = Arc::new(consumer);
    let arrivals = Arc::new(AtomicU64::new(0));
    {
        let (consumer, counter) = (consumer.clone(), arrivals.clone());
        tokio::spawn(async move {
            loop {
                match consumer.recv().await {
                    Ok(m) => {
                        counter.fetch_add(1, Ordering::AcqRel);
                        let _ = consumer.store_offset_from_message(&m);
                    }
                    Err(e) => {
                        eprintln!("om-bench: raw consumer error: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", linger_ms(&spec.url)?)
        .set(
            "batch.num.messages",
            om_driver_kafka::KafkaOptions::default()
                .producer_batch_size
                .to_string(),
        )
        .set(
            "max.in.flight.requests.per.connection",
            max_in_flight(&spec.url)?,
        );
    let body = Arc::new(crate::oslo_bodies::notification(spec.payload_bytes));
    let topic = Arc::new(topic);
    let send = if waits_for_delivery(&spec.url) {
        let producer: FutureProducer = config.create().context("creating the producer")?;
        Sender::Waiting(producer, topic)
    } else {
        let producer: ThreadedProducer<_> = config.create().context("creating the producer")?;
        Sender::Queued(Arc::new(producer), topic)
    };
    // Probes until the group formed and one arrives.
    let started = tokio::time::Instant::now();
    loop {
        send.send(&body).await?;
        if harness::wait_for_count(&arrivals, 1, Duration::from_millis(500)).await {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "no message arrived within 120 s"
        );
    }
    let ready_after = started.elapsed();
    let (arrived, outcome) = harness::senders_with_arrivals(spec, arrivals, move |_, _| {
        let (send, body) = (send.clone(), body.clone());
        async move { send.send(&body).await }
    })
    .await;
    let mut result =
        harness::finish_arrivals(spec.result("kafka", "raw", "notify"), arrived, outcome);
    result.notes.push(format!(
        "consumer ready (first probe received) after {:.1} s",
        ready_after.as_secs_f64()
    ));
    Ok(result)
}

/// The senders' producer.
#[derive(Clone)]
enum Sender {
    /// Each send waits for its delivery report.
    Waiting(FutureProducer, Arc<String>),
    /// Each send returns once queued.
    Queued(
        Arc<ThreadedProducer<rdkafka::producer::DefaultProducerContext>>,
        Arc<String>,
    ),
}

impl Sender {
    async fn send(&self, body: &[u8]) -> Result<()> {
        match self {
            Sender::Waiting(producer, topic) => {
                let record: FutureRecord<'_, (), [u8]> =
                    FutureRecord::to(topic.as_str()).payload(body);
                producer
                    .send(record, Timeout::After(Duration::from_secs(30)))
                    .await
                    .map(|_| ())
                    .map_err(|(e, _)| anyhow::anyhow!("produce failed: {e}"))
            }
            Sender::Queued(producer, topic) => loop {
                let record: BaseRecord<'_, (), [u8]> = BaseRecord::to(topic.as_str()).payload(body);
                match producer.send(record) {
                    Ok(()) => {
                        tokio::task::coop::consume_budget().await;
                        return Ok(());
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err((e, _)) => anyhow::bail!("produce failed: {e}"),
                }
            },
        }
    }
}
