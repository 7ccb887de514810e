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
//! The messages are om's: the bodies are the prebuilt oslo envelopes of
//! [`crate::oslo_bodies`] (a call, its reply, a cast, a notification) and
//! the properties are the ones om sets (`application/json`, `utf-8`, empty
//! headers, persistent, priority 0, and a call's `expiration`). With
//! [`Messages::Minimal`] they are the bare `{"payload": …}` with only a
//! content type and delivery mode, a reference point.

use crate::harness::{self, BenchResult, RunSpec};
use crate::oslo_bodies;
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

/// Which messages the raw side sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Messages {
    /// om's bodies and properties (the default): the same exchanges.
    Oslo,
    /// `{"payload": …}` with a content type and delivery mode only.
    Minimal,
}

/// The bodies of one scenario.
#[derive(Debug, Clone)]
pub struct Bodies {
    /// Requests, casts or notifications.
    pub request: Arc<Vec<u8>>,
    /// The server's reply to a call.
    pub reply: Arc<Vec<u8>>,
    messages: Messages,
}

impl Bodies {
    /// Bodies of calls (`rpc`), casts (`cast`) or notifications.
    pub fn new(messages: Messages, scenario: &str, payload_bytes: usize) -> Bodies {
        let request = match (messages, scenario) {
            (Messages::Minimal, _) => oslo_bodies::minimal(payload_bytes),
            (Messages::Oslo, "rpc") => oslo_bodies::call(payload_bytes),
            (Messages::Oslo, "cast") => oslo_bodies::cast(payload_bytes),
            (Messages::Oslo, _) => oslo_bodies::notification(payload_bytes),
        };
        let reply = match messages {
            Messages::Minimal => request.clone(),
            Messages::Oslo => oslo_bodies::reply(payload_bytes),
        };
        Bodies {
            request: Arc::new(request),
            reply: Arc::new(reply),
            messages,
        }
    }

    /// The properties of a message; `call` adds om's `expiration` (the
    /// call timeout in milliseconds).
    fn properties(&self, call: bool) -> BasicProperties {
        let p = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2);
        match self.messages {
            Messages::Minimal => p,
            Messages::Oslo => {
                let p = p
                    .with_content_encoding("utf-8".into())
                    .with_headers(FieldTable::default())
                    .with_priority(0);
                if call {
                    p.with_expiration(CALL_TIMEOUT.as_millis().to_string().into())
                } else {
                    p
                }
            }
        }
    }
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
    _publish_conn: Option<Connection>,
}

/// How a raw client or server uses connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connections {
    /// Publishing and consuming share one connection (the default: the
    /// least a raw lapin program needs).
    Shared,
    /// Publishing and consuming on separate connections, as om and
    /// oslo.messaging do (so that RabbitMQ's flow control of a publishing
    /// connection cannot hold up consumers' acknowledgements): the same
    /// connection layout as om, a reference point.
    Split,
}

impl Connections {
    /// A channel for the other direction than `conn`'s: on `conn` itself
    /// when shared, else on a new connection, returned to be kept open.
    async fn other_channel(
        self,
        url: &str,
        conn: &Connection,
    ) -> Result<(Option<Connection>, Channel)> {
        match self {
            Connections::Shared => Ok((None, conn.create_channel().await?)),
            Connections::Split => {
                let second = connect(url).await?;
                let ch = second.create_channel().await?;
                Ok((Some(second), ch))
            }
        }
    }
}

impl RawServer {
    /// Starts consuming `topic`; calls are answered with `bodies.reply`.
    /// With `confirms`, replies are mandatory and publisher-confirmed (as
    /// om's are).
    pub async fn start(
        url: &str,
        topic: &str,
        hits: Arc<AtomicU64>,
        confirms: bool,
        bodies: &Bodies,
        connections: Connections,
    ) -> Result<RawServer> {
        let bodies = bodies.clone();
        let conn = connect(url).await?;
        let ch = conn.create_channel().await?;
        declare_queue(&ch, topic, topic).await?;
        let (publish_conn, reply_ch) = connections.other_channel(url, &conn).await?;
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
                let bodies = bodies.clone();
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
                            let props = bodies.properties(false).with_correlation_id(corr);
                            let _ =
                                confirmed(&reply_ch, "", &reply_to, confirms, &bodies.reply, props)
                                    .await;
                        }
                        _ => {
                            hits.fetch_add(1, Ordering::AcqRel);
                        }
                    }
                });
            }
        });
        Ok(RawServer {
            conn,
            _publish_conn: publish_conn,
        })
    }
}

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Vec<u8>>>>>;

/// A raw RPC client: one confirm channel for requests, one exclusive
/// reply queue consumed without acks.
#[derive(Clone)]
pub struct RawClient {
    _conn: Arc<Connection>,
    _consume_conn: Option<Arc<Connection>>,
    channel: Channel,
    topic: String,
    reply_queue: String,
    waiters: Waiters,
    confirms: bool,
    bodies: Bodies,
}

impl RawClient {
    /// Connects and starts consuming the reply queue.
    pub async fn connect(
        url: &str,
        topic: &str,
        confirms: bool,
        bodies: &Bodies,
        connections: Connections,
    ) -> Result<RawClient> {
        let conn = connect(url).await?;
        let channel = conn.create_channel().await?;
        if confirms {
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
        }
        let (consume_conn, consume_ch) = connections.other_channel(url, &conn).await?;
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
            _consume_conn: consume_conn.map(Arc::new),
            channel,
            topic: topic.to_owned(),
            reply_queue,
            waiters,
            confirms,
            bodies: bodies.clone(),
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
        let props = self
            .bodies
            .properties(true)
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
            self.bodies.properties(false),
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
pub async fn rpc(
    spec: &RunSpec,
    confirms: bool,
    messages: Messages,
    connections: Connections,
) -> Result<BenchResult> {
    let topic = format!("{}_rpc", spec.prefix);
    let bodies = Bodies::new(messages, "rpc", spec.payload_bytes);
    let hits = Arc::new(AtomicU64::new(0));
    let server = RawServer::start(&spec.url, &topic, hits, confirms, &bodies, connections).await?;
    let client = RawClient::connect(&spec.url, &topic, confirms, &bodies, connections).await?;
    let (body, reply_len) = (bodies.request.clone(), bodies.reply.len());
    client.call(&body).await.context("first call")?;
    let timeline = spec.window.start();
    let c = client.clone();
    let outcome = harness::closed_loop(spec.concurrency, timeline, move |_, _| {
        let (client, body) = (c.clone(), body.clone());
        async move {
            let back = client.call(&body).await?;
            anyhow::ensure!(back.len() == reply_len, "reply of {} bytes", back.len());
            Ok(())
        }
    })
    .await;
    let scenario = match (confirms, messages, connections) {
        (true, Messages::Oslo, Connections::Shared) => "rpc",
        (false, Messages::Oslo, Connections::Shared) => "rpc-noconfirm",
        (true, Messages::Minimal, Connections::Shared) => "rpc-minimal",
        (false, Messages::Minimal, Connections::Shared) => "rpc-minimal-noconfirm",
        (true, _, Connections::Split) => "rpc-split",
        (false, _, Connections::Split) => "rpc-split-noconfirm",
    };
    let result = harness::finish_calls(spec.result("rabbit", "raw", scenario), outcome);
    drop(server);
    delete_queues(&spec.url, &[topic]).await;
    Ok(result)
}

/// Casts with `concurrency` senders, counted on arrival at the server.
pub async fn cast(spec: &RunSpec) -> Result<BenchResult> {
    let topic = format!("{}_cast", spec.prefix);
    let hits = Arc::new(AtomicU64::new(0));
    let bodies = Bodies::new(Messages::Oslo, "cast", spec.payload_bytes);
    let server = RawServer::start(
        &spec.url,
        &topic,
        hits.clone(),
        true,
        &bodies,
        Connections::Shared,
    )
    .await?;
    let client = RawClient::connect(&spec.url, &topic, true, &bodies, Connections::Shared).await?;
    let body = bodies.request.clone();
    client.cast(&body).await.context("first cast")?;
    anyhow::ensure!(
        harness::wait_for_count(&hits, 1, Duration::from_secs(10)).await,
        "the first cast never arrived"
    );
    let (arrived, outcome) = harness::senders_with_arrivals(spec, hits, move |_, _| {
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
    let bodies = Bodies::new(Messages::Oslo, "notify", spec.payload_bytes);
    let body = bodies.request.clone();
    let props = bodies.properties(false);
    let key = Arc::new(queue.clone());
    confirmed(&pub_ch, EXCHANGE, &key, false, &body, props.clone()).await?;
    anyhow::ensure!(
        harness::wait_for_count(&arrivals, 1, Duration::from_secs(10)).await,
        "the first notification never arrived"
    );
    let (arrived, outcome) = harness::senders_with_arrivals(spec, arrivals, move |_, _| {
        let (ch, body, key, props) = (pub_ch.clone(), body.clone(), key.clone(), props.clone());
        async move { confirmed(&ch, EXCHANGE, &key, false, &body, props).await }
    })
    .await;
    let result = harness::finish_arrivals(spec.result("rabbit", "raw", "notify"), arrived, outcome);
    drop(listen_conn);
    drop(pub_conn);
    delete_queues(&spec.url, &[queue]).await;
    Ok(result)
}
