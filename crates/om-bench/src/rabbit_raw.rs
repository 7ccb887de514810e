//! Raw lapin: the same exchanges as om's RabbitMQ driver, written
//! directly on lapin without any om code.
//!
//! * RPC: the server consumes a topic queue bound to a topic exchange
//!   (manual acks, acknowledged on receipt as om does), handles each
//!   request on its own task and publishes the reply to the default
//!   exchange with the client's reply queue as routing key (mandatory,
//!   publisher-confirmed). The client publishes requests with
//!   `reply_to` + `correlation_id` (publisher-confirmed), consumes its own
//!   exclusive reply queue without acks and matches replies by
//!   correlation id.
//! * Casts: publisher-confirmed publishes to the topic exchange; the
//!   server acknowledges and counts.
//! * Notifications: publisher-confirmed publishes to the topic exchange
//!   with routing key `<topic>.info`; the listener counts, then acknowledges.
//!
//! Bodies are a small JSON object carrying the payload string; the server
//! echoes the request body as the reply.

use crate::harness::{self, BenchResult, RunSpec};
use anyhow::{anyhow, bail, Context as _, Result};
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::Confirmation;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// The topic exchange of the raw scenarios.
pub const EXCHANGE: &str = "bench_raw";
/// How long a raw call waits for its reply.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens a connection (`amqp://user:pass@host:port/%2f`).
pub async fn connect(url: &str) -> Result<Connection> {
    Connection::connect(url, ConnectionProperties::default())
        .await
        .with_context(|| format!("connecting to {}", redact(url)))
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

fn properties() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
}

/// The request body: `{"payload": "<payload>"}`.
pub fn body(payload_bytes: usize) -> Vec<u8> {
    serde_json::json!({ "payload": harness::payload(payload_bytes) })
        .to_string()
        .into_bytes()
}

async fn confirmed(
    ch: &Channel,
    exchange: &str,
    key: &str,
    mandatory: bool,
    body: &[u8],
    props: BasicProperties,
) -> Result<()> {
    let confirm = ch
        .basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions {
                mandatory,
                immediate: false,
            },
            body,
            props,
        )
        .await?
        .await?;
    match confirm {
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        Confirmation::Ack(Some(_)) => {
            bail!("message to {exchange:?}/{key:?} returned as unroutable")
        }
        Confirmation::Nack(_) => bail!("message to {exchange:?}/{key:?} nacked by the broker"),
    }
}

/// Declares the topic exchange and a queue `queue` bound to it with `key`.
pub async fn declare_queue(ch: &Channel, queue: &str, key: &str) -> Result<()> {
    ch.exchange_declare(
        EXCHANGE.into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await?;
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await?;
    ch.queue_bind(
        queue.into(),
        EXCHANGE.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    Ok(())
}

/// A raw RPC server: replies to requests that have `reply_to`, counts the
/// others into `hits`. Keeps running until its connection is dropped.
pub struct RawServer {
    /// The server's connection.
    pub conn: Connection,
}

impl RawServer {
    /// Starts consuming `topic`. With `confirms`, replies are mandatory and
    /// publisher-confirmed (as om's are).
    pub async fn start(
        url: &str,
        topic: &str,
        hits: Arc<AtomicU64>,
        confirms: bool,
    ) -> Result<RawServer> {
        let conn = connect(url).await?;
        let ch = conn.create_channel().await?;
        declare_queue(&ch, topic, topic).await?;
        let reply_ch = conn.create_channel().await?;
        if confirms {
            reply_ch
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
        }
        let mut consumer = ch
            .basic_consume(
                topic.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tokio::spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                let reply_ch = reply_ch.clone();
                let hits = hits.clone();
                tokio::spawn(async move {
                    if d.acker.ack(BasicAckOptions::default()).await.is_err() {
                        return;
                    }
                    let reply_to = d
                        .properties
                        .reply_to()
                        .as_ref()
                        .map(|s| s.as_str().to_owned());
                    let corr = d.properties.correlation_id().clone();
                    match (reply_to, corr) {
                        (Some(reply_to), Some(corr)) => {
                            let props = properties().with_correlation_id(corr);
                            let _ =
                                confirmed(&reply_ch, "", &reply_to, confirms, &d.data, props).await;
                        }
                        _ => {
                            hits.fetch_add(1, Ordering::AcqRel);
                        }
                    }
                });
            }
        });
        Ok(RawServer { conn })
    }
}

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Vec<u8>>>>>;

/// A raw RPC client: one confirm channel for requests, one exclusive
/// reply queue consumed without acks.
#[derive(Clone)]
pub struct RawClient {
    _conn: Arc<Connection>,
    channel: Channel,
    topic: String,
    reply_queue: String,
    waiters: Waiters,
    confirms: bool,
}

impl RawClient {
    /// Connects and starts consuming the reply queue.
    pub async fn connect(url: &str, topic: &str, confirms: bool) -> Result<RawClient> {
        let conn = connect(url).await?;
        let channel = conn.create_channel().await?;
        if confirms {
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
        }
        let consume_ch = conn.create_channel().await?;
        let q = consume_ch
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        let reply_queue = q.name().as_str().to_owned();
        let mut consumer = consume_ch
            .basic_consume(
                reply_queue.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        let waiters: Waiters = Arc::new(Mutex::new(HashMap::new()));
        let table = waiters.clone();
        tokio::spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                let Some(corr) = d.properties.correlation_id().as_ref() else {
                    continue;
                };
                let waiter = table
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(corr.as_str());
                if let Some(tx) = waiter {
                    let _ = tx.send(d.data);
                }
            }
        });
        Ok(RawClient {
            _conn: Arc::new(conn),
            channel,
            topic: topic.to_owned(),
            reply_queue,
            waiters,
            confirms,
        })
    }

    /// One call: publishes `body` and waits for the reply.
    pub async fn call(&self, body: &[u8]) -> Result<Vec<u8>> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), tx);
        let props = properties()
            .with_reply_to(self.reply_queue.as_str().into())
            .with_correlation_id(id.as_str().into());
        let sent = if self.confirms {
            confirmed(&self.channel, EXCHANGE, &self.topic, false, body, props).await
        } else {
            self.channel
                .basic_publish(
                    EXCHANGE.into(),
                    self.topic.as_str().into(),
                    BasicPublishOptions::default(),
                    body,
                    props,
                )
                .await
                .map(|_| ())
                .map_err(Into::into)
        };
        let reply = match sent {
            Ok(()) => tokio::time::timeout(CALL_TIMEOUT, rx)
                .await
                .map_err(|_| anyhow!("no reply within {CALL_TIMEOUT:?}"))
                .and_then(|r| r.map_err(|_| anyhow!("reply consumer ended"))),
            Err(e) => Err(e),
        };
        if reply.is_err() {
            self.waiters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        }
        reply
    }

    /// One cast: a publisher-confirmed publish without `reply_to`.
    pub async fn cast(&self, body: &[u8]) -> Result<()> {
        confirmed(
            &self.channel,
            EXCHANGE,
            &self.topic,
            false,
            body,
            properties(),
        )
        .await
    }
}

/// Deletes queues (best effort, bounded in time).
pub async fn delete_queues(url: &str, queues: &[String]) {
    let work = async {
        let conn = connect(url).await?;
        let ch = conn.create_channel().await?;
        for q in queues {
            let _ = ch
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = conn.close(200, "OK".into()).await;
        Ok::<_, anyhow::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), work).await;
}

/// RPC calls with `concurrency` callers.
pub async fn rpc(spec: &RunSpec, confirms: bool) -> Result<BenchResult> {
    let topic = format!("{}_rpc", spec.prefix);
    let server = RawServer::start(&spec.url, &topic, Arc::new(AtomicU64::new(0)), confirms).await?;
    let client = RawClient::connect(&spec.url, &topic, confirms).await?;
    let body = Arc::new(body(spec.payload_bytes));
    client.call(&body).await.context("first call")?;
    let timeline = spec.window.start();
    let c = client.clone();
    let outcome = harness::closed_loop(spec.concurrency, timeline, move |_, _| {
        let (client, body) = (c.clone(), body.clone());
        async move {
            let back = client.call(&body).await?;
            anyhow::ensure!(back.len() == body.len(), "reply of {} bytes", back.len());
            Ok(())
        }
    })
    .await;
    let scenario = if confirms { "rpc" } else { "rpc-noconfirm" };
    let result = harness::finish_calls(spec.result("rabbit", "raw", scenario), outcome);
    drop(server);
    delete_queues(&spec.url, &[topic]).await;
    Ok(result)
}

/// Casts with `concurrency` senders, counted on arrival at the server.
pub async fn cast(spec: &RunSpec) -> Result<BenchResult> {
    let topic = format!("{}_cast", spec.prefix);
    let hits = Arc::new(AtomicU64::new(0));
    let server = RawServer::start(&spec.url, &topic, hits.clone(), true).await?;
    let client = RawClient::connect(&spec.url, &topic, true).await?;
    let body = Arc::new(body(spec.payload_bytes));
    client.cast(&body).await.context("first cast")?;
    anyhow::ensure!(
        harness::wait_for_count(&hits, 1, Duration::from_secs(10)).await,
        "the first cast never arrived"
    );
    let timeline = spec.window.start();
    let (arrived, outcome) =
        harness::senders_with_arrivals(spec.concurrency, timeline, hits, move |_, _| {
            let (client, body) = (client.clone(), body.clone());
            async move { client.cast(&body).await }
        })
        .await;
    let result = harness::finish_arrivals(spec.result("rabbit", "raw", "cast"), arrived, outcome);
    drop(server);
    delete_queues(&spec.url, &[topic]).await;
    Ok(result)
}

/// Notifications with `concurrency` senders, counted by the listener,
/// which acknowledges each message after counting it.
pub async fn notify(spec: &RunSpec) -> Result<BenchResult> {
    let queue = format!("{}_notify.info", spec.prefix);
    let arrivals = Arc::new(AtomicU64::new(0));
    // Listener: its own connection, manual acks.
    let listen_conn = connect(&spec.url).await?;
    let ch = listen_conn.create_channel().await?;
    declare_queue(&ch, &queue, &queue).await?;
    let mut consumer = ch
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let counter = arrivals.clone();
    tokio::spawn(async move {
        while let Some(Ok(d)) = consumer.next().await {
            counter.fetch_add(1, Ordering::AcqRel);
            if d.acker.ack(BasicAckOptions::default()).await.is_err() {
                break;
            }
        }
    });
    // Notifier: its own connection, a confirm channel.
    let pub_conn = connect(&spec.url).await?;
    let pub_ch = pub_conn.create_channel().await?;
    pub_ch
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let body = Arc::new(body(spec.payload_bytes));
    let key = Arc::new(queue.clone());
    confirmed(&pub_ch, EXCHANGE, &key, false, &body, properties()).await?;
    anyhow::ensure!(
        harness::wait_for_count(&arrivals, 1, Duration::from_secs(10)).await,
        "the first notification never arrived"
    );
    let timeline = spec.window.start();
    let (arrived, outcome) =
        harness::senders_with_arrivals(spec.concurrency, timeline, arrivals, move |_, _| {
            let (ch, body, key) = (pub_ch.clone(), body.clone(), key.clone());
            async move { confirmed(&ch, EXCHANGE, &key, false, &body, properties()).await }
        })
        .await;
    let result = harness::finish_arrivals(spec.result("rabbit", "raw", "notify"), arrived, outcome);
    drop(listen_conn);
    drop(pub_conn);
    delete_queues(&spec.url, &[queue]).await;
    Ok(result)
}
