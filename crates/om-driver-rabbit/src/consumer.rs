//! Consuming connections: one per listener and one for a client's replies.
//!
//! A supervisor task owns the connection. It declares the exchanges,
//! queues and bindings, starts the consumers and hands their delivery
//! streams to the [`Deliveries`] of the listener, which polls them itself:
//! a delivery goes from lapin's connection thread straight to the task
//! that handles it, with no task in between (each hop between tasks costs
//! a wake-up, measured at about 20 µs per call on a one-caller round trip).
//! When the connection (or a consumer) is lost, [`Deliveries`] tells the
//! supervisor, which reconnects with the connector's failover and back-off
//! rules, forever, declares the whole topology again and hands over the new
//! streams, so a listener keeps yielding across broker restarts
//! (`wire-rabbit.md` §14).

use crate::codec::short_string;
use crate::connect::Connector;
use crate::publisher::{amqp_error, is_durable_mismatch, ExchangeDecl};
use futures_util::stream::{self, BoxStream, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, DeliveryTag, FieldTable, ShortString};
use lapin::{Channel, Connection};
use om_driver_api::om_core::{Error, Result};
use om_driver_api::Retry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

/// One queue of a consuming connection.
#[derive(Debug, Clone)]
pub(crate) struct QueueSpec {
    pub name: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub arguments: FieldTable,
    /// Exchanges to declare first (those of the bindings).
    pub exchanges: Vec<ExchangeDecl>,
    /// `(exchange, routing key)` bindings.
    pub bindings: Vec<(String, String)>,
    /// A stream queue: consume from `x-stream-offset` (`last`, then the
    /// offset after the last message received).
    pub stream: bool,
}

/// What a consuming connection declares and consumes.
#[derive(Debug, Clone)]
pub(crate) struct ConsumeSpec {
    pub queues: Vec<QueueSpec>,
    pub prefetch: Option<u16>,
    pub no_ack: bool,
    pub consumer_arguments: FieldTable,
}

/// How long [`Deliveries`] keeps handing out what the broker sent before a
/// stop's `basic.cancel` took effect.
const DRAIN: Duration = Duration::from_secs(5);

/// The consumers of one connection, handed from the supervisor to
/// [`Deliveries`].
struct Feed {
    merged: BoxStream<'static, Ev>,
    /// The channel the consumers run on, where their deliveries are settled.
    channel: Arc<Channel>,
    /// Tells the supervisor why the connection is lost.
    lost: oneshot::Sender<String>,
}

/// The deliveries of a consuming connection, `(delivery, index of its
/// queue, how to settle it)`, across reconnections, until the consumers
/// are stopped.
pub(crate) struct Deliveries {
    feeds: mpsc::UnboundedReceiver<Feed>,
    current: Option<Feed>,
    stopped: watch::Receiver<bool>,
    drain_until: Option<Instant>,
    /// Each queue's name, and whether it is a stream (whose offset is
    /// tracked).
    queues: Vec<(String, bool)>,
    offsets: Arc<Mutex<Vec<Option<i64>>>>,
}

impl Deliveries {
    /// The next delivery; `None` once the consumers were stopped and what
    /// they had received was handed out (or the supervisor ended).
    pub(crate) async fn next(&mut self) -> Option<(Delivery, usize, Settler)> {
        loop {
            if self.current.is_none() {
                self.current = Some(self.feeds.recv().await?);
            }
            let feed = self.current.as_mut()?;
            let ev = if let Some(until) = self.drain_until {
                tokio::time::timeout_at(until, feed.merged.next())
                    .await
                    .unwrap_or(None)
            } else {
                tokio::select! {
                    biased;
                    ev = feed.merged.next() => ev,
                    // A stop (or the supervisor's end): drain, bounded.
                    _ = self.stopped.changed() => {
                        self.drain_until = Some(Instant::now() + DRAIN);
                        continue;
                    }
                }
            };
            let stopping = self.drain_until.is_some();
            let lost = match ev {
                Some(Ev::Msg(i, Ok(d))) => {
                    let settler = Settler::new(feed.channel.clone(), d.delivery_tag);
                    self.track(i, &d);
                    return Some((d, i, settler));
                }
                // After a stop, the cancelled consumers end one by one.
                Some(Ev::End(_)) if stopping => continue,
                Some(Ev::Msg(_, Err(e))) => e.to_string(),
                Some(Ev::End(i)) => format!(
                    "consumer of queue {:?} was cancelled",
                    self.queues.get(i).map(|q| q.0.as_str()).unwrap_or_default()
                ),
                None => "no consumer left".to_owned(),
            };
            if let Some(feed) = self.current.take() {
                if !stopping {
                    let _ = feed.lost.send(lost);
                }
            }
        }
    }

    fn track(&self, i: usize, d: &Delivery) {
        if !self.queues.get(i).is_some_and(|q| q.1) {
            return;
        }
        if let Some(off) = d
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("x-stream-offset"))
            .and_then(amqp_i64)
        {
            if let Some(slot) = self
                .offsets
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(i)
            {
                *slot = Some(off.saturating_add(1));
            }
        }
    }
}

/// Settles (acknowledges or rejects) one delivery, once, on the channel it
/// came on.
///
/// The frame goes straight to the channel: lapin's `Acker` would hand it to
/// lapin's internal task, which spawns another task to send it, and an RPC
/// server waits for the acknowledgement before dispatching, so those two
/// wake-ups would sit on every call's path. Settling on a channel that is
/// gone fails; the broker then delivers the message again.
pub(crate) struct Settler {
    channel: Arc<Channel>,
    tag: DeliveryTag,
    settled: AtomicBool,
}

impl Settler {
    fn new(channel: Arc<Channel>, tag: DeliveryTag) -> Self {
        Settler {
            channel,
            tag,
            settled: AtomicBool::new(false),
        }
    }

    /// Acknowledges; `Ok(false)` if the delivery was already settled.
    pub(crate) async fn ack(&self) -> std::result::Result<bool, lapin::Error> {
        if self.settled.swap(true, Ordering::AcqRel) {
            return Ok(false);
        }
        self.channel
            .basic_ack(self.tag, BasicAckOptions::default())
            .await?;
        Ok(true)
    }

    /// Rejects, requeueing or not; `Ok(false)` if already settled.
    pub(crate) async fn reject(&self, requeue: bool) -> std::result::Result<bool, lapin::Error> {
        if self.settled.swap(true, Ordering::AcqRel) {
            return Ok(false);
        }
        self.channel
            .basic_reject(self.tag, BasicRejectOptions { requeue })
            .await?;
        Ok(true)
    }
}

enum Command {
    Stop(oneshot::Sender<()>),
    Close {
        delete: Vec<String>,
        done: oneshot::Sender<()>,
    },
}

/// Controls a consuming connection's supervisor task.
#[derive(Debug)]
pub(crate) struct ConsumerHandle {
    commands: mpsc::UnboundedSender<Command>,
}

impl ConsumerHandle {
    /// Starts the supervisor and waits until the topology is declared and
    /// the consumers run. Connection failures are retried forever;
    /// declaration errors on the first attempt (e.g. `PRECONDITION_FAILED`)
    /// are returned.
    pub(crate) async fn start(
        connector: Arc<Connector>,
        spec: ConsumeSpec,
    ) -> Result<(ConsumerHandle, Deliveries)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let (feed_tx, feed_rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = watch::channel(false);
        let offsets = Arc::new(Mutex::new(vec![None; spec.queues.len()]));
        let deliveries = Deliveries {
            feeds: feed_rx,
            current: None,
            stopped: stop_rx,
            drain_until: None,
            queues: spec
                .queues
                .iter()
                .map(|q| (q.name.clone(), q.stream))
                .collect(),
            offsets: offsets.clone(),
        };
        let feeds = Feeds {
            tx: Some(feed_tx),
            stop: stop_tx,
            offsets,
        };
        tokio::spawn(supervise(connector, spec, feeds, rx, ready_tx));
        match ready_rx.await {
            Ok(Ok(())) => Ok((ConsumerHandle { commands: tx }, deliveries)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Closed),
        }
    }

    /// Cancels the consumers; [`Deliveries`] still hands out what they had
    /// received, then ends. The connection stays open (for
    /// acknowledgements) until [`ConsumerHandle::close`].
    pub(crate) async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Stop(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Deletes `delete` (queue names) and closes the connection.
    pub(crate) async fn close(&self, delete: Vec<String>) {
        let (tx, rx) = oneshot::channel();
        if self
            .commands
            .send(Command::Close { delete, done: tx })
            .is_ok()
        {
            let _ = rx.await;
        }
    }
}

// Deliveries are moved, not boxed: no allocation per message.
#[allow(clippy::large_enum_variant)]
enum Ev {
    Msg(usize, lapin::Result<Delivery>),
    End(usize),
}

/// The supervisor's side of [`Deliveries`].
struct Feeds {
    /// `None` once stopped: [`Deliveries`] ends after its current feed.
    tx: Option<mpsc::UnboundedSender<Feed>>,
    stop: watch::Sender<bool>,
    offsets: Arc<Mutex<Vec<Option<i64>>>>,
}

impl Feeds {
    /// Ends [`Deliveries`] once it has drained what it holds.
    fn stop(&mut self) {
        let _ = self.stop.send(true);
        self.tx = None;
    }
}

enum RunOutcome {
    Lost(String),
    Stopped(oneshot::Sender<()>),
    Closed(Vec<String>, Option<oneshot::Sender<()>>),
}

struct Live {
    conn: Connection,
    channel: Channel,
    consumers: Vec<(usize, lapin::Consumer)>,
}

async fn supervise(
    connector: Arc<Connector>,
    mut spec: ConsumeSpec,
    mut feeds: Feeds,
    mut commands: mpsc::UnboundedReceiver<Command>,
    ready: oneshot::Sender<Result<()>>,
) {
    let name = crate::connect::connection_name();
    let mut ready = Some(ready);
    let mut failures = 0u32;
    loop {
        let setup = async {
            let mut attempts = 0u32;
            let (conn, label) = connector
                .connect(&name, Retry::Forever, &mut attempts)
                .await?;
            let offsets = feeds
                .offsets
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            match declare_and_consume(&conn, &mut spec, &offsets).await {
                Ok((channel, consumers)) => Ok((
                    Live {
                        conn,
                        channel,
                        consumers,
                    },
                    label,
                )),
                Err(e) => {
                    let _ = conn.close(200, "OK".into()).await;
                    Err(e)
                }
            }
        };
        let live = tokio::select! {
            r = setup => r,
            cmd = commands.recv() => {
                match cmd {
                    Some(Command::Stop(done)) => {
                        feeds.stop();
                        let _ = done.send(());
                        wait_close(&mut commands, None).await;
                    }
                    Some(Command::Close { done, .. }) => { let _ = done.send(()); }
                    None => {}
                }
                return;
            }
        };
        let (mut live, label) = match live {
            Ok(l) => l,
            Err(e) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(Err(e));
                    return;
                }
                let wait = connector.options().retry_interval(failures);
                failures = failures.saturating_add(1);
                tracing::error!(error = %e, "could not restore consumers, retrying in {wait:?}");
                if sleep_or_command(wait, &mut commands, &mut feeds).await {
                    return;
                }
                continue;
            }
        };
        failures = 0;
        if let Some(r) = ready.take() {
            let _ = r.send(Ok(()));
        } else {
            tracing::info!(host = %label, "consumers restored after reconnection");
        }
        match run(&mut live, &mut feeds, &mut commands).await {
            RunOutcome::Lost(why) => {
                tracing::warn!(host = %label, error = %why, "consuming connection lost, reconnecting");
                drop(live);
                if sleep_or_command(connector.reconnect_delay(), &mut commands, &mut feeds).await {
                    return;
                }
            }
            RunOutcome::Stopped(done) => {
                let _ = done.send(());
                wait_close(&mut commands, Some(live)).await;
                return;
            }
            RunOutcome::Closed(delete, done) => {
                close_live(live, delete).await;
                if let Some(d) = done {
                    let _ = d.send(());
                }
                return;
            }
        }
    }
}

/// Sleeps; returns `true` if a close command (or the handle's drop) came.
async fn sleep_or_command(
    wait: Duration,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    feeds: &mut Feeds,
) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => false,
        cmd = commands.recv() => {
            match cmd {
                Some(Command::Stop(done)) => {
                    feeds.stop();
                    let _ = done.send(());
                    wait_close(commands, None).await;
                }
                Some(Command::Close { done, .. }) => { let _ = done.send(()); }
                None => {}
            }
            true
        }
    }
}

async fn wait_close(commands: &mut mpsc::UnboundedReceiver<Command>, live: Option<Live>) {
    loop {
        match commands.recv().await {
            Some(Command::Stop(done)) => {
                let _ = done.send(());
            }
            Some(Command::Close { delete, done }) => {
                if let Some(l) = live {
                    close_live(l, delete).await;
                }
                let _ = done.send(());
                return;
            }
            None => {
                if let Some(l) = live {
                    close_live(l, Vec::new()).await;
                }
                return;
            }
        }
    }
}

async fn close_live(live: Live, delete: Vec<String>) {
    if live.conn.status().connected() {
        for q in delete {
            if let Ok(name) = short_string("queue", &q) {
                let ch = if live.channel.status().connected() {
                    Ok(live.channel.clone())
                } else {
                    live.conn.create_channel().await
                };
                match ch {
                    Ok(ch) => {
                        if let Err(e) = ch.queue_delete(name, QueueDeleteOptions::default()).await {
                            tracing::warn!(queue = %q, error = %e, "could not delete queue");
                        }
                    }
                    Err(e) => tracing::warn!(queue = %q, error = %e, "could not delete queue"),
                }
            }
        }
        let _ = live.conn.close(200, "OK".into()).await;
    }
}

async fn run(
    live: &mut Live,
    feeds: &mut Feeds,
    commands: &mut mpsc::UnboundedReceiver<Command>,
) -> RunOutcome {
    let consumers = std::mem::take(&mut live.consumers);
    let tags: Vec<ShortString> = consumers.iter().map(|(_, c)| c.tag()).collect();
    let streams: Vec<BoxStream<'static, Ev>> = consumers
        .into_iter()
        .map(|(i, c)| {
            c.map(move |r| Ev::Msg(i, r))
                .chain(stream::once(async move { Ev::End(i) }))
                .boxed()
        })
        .collect();
    let (lost_tx, lost_rx) = oneshot::channel();
    let feed = Feed {
        merged: stream::select_all(streams).boxed(),
        channel: Arc::new(live.channel.clone()),
        lost: lost_tx,
    };
    match &feeds.tx {
        Some(tx) if tx.send(feed).is_ok() => {}
        // Nobody takes deliveries any more.
        _ => return RunOutcome::Closed(Vec::new(), None),
    }
    tokio::select! {
        lost = lost_rx => match lost {
            Ok(why) => RunOutcome::Lost(why),
            // The listener is gone.
            Err(_) => RunOutcome::Closed(Vec::new(), None),
        },
        cmd = commands.recv() => match cmd {
            Some(Command::Stop(done)) => {
                // Deliveries drains what the broker sent before the cancel
                // took effect, then ends.
                feeds.stop();
                for tag in &tags {
                    if let Err(e) = live.channel.basic_cancel(tag.clone(), BasicCancelOptions::default()).await {
                        tracing::debug!(error = %e, "basic.cancel failed");
                    }
                }
                RunOutcome::Stopped(done)
            }
            Some(Command::Close { delete, done }) => RunOutcome::Closed(delete, Some(done)),
            None => RunOutcome::Closed(Vec::new(), None),
        }
    }
}

fn amqp_i64(v: &AMQPValue) -> Option<i64> {
    match v {
        AMQPValue::LongLongInt(i) => Some(*i),
        AMQPValue::LongInt(i) => Some(i64::from(*i)),
        AMQPValue::LongUInt(i) => Some(i64::from(*i)),
        AMQPValue::ShortInt(i) => Some(i64::from(*i)),
        AMQPValue::ShortUInt(i) => Some(i64::from(*i)),
        AMQPValue::Timestamp(i) => i64::try_from(*i).ok(),
        _ => None,
    }
}

fn declare_error(what: &str, name: &str, e: &lapin::Error) -> Error {
    match amqp_error(e) {
        Some((_, text)) => Error::ServerListen {
            target: name.to_owned(),
            reason: format!("cannot declare {what}: {text}"),
        },
        None => Error::transport(
            crate::connect::DRIVER,
            format!("cannot declare {what} {name:?}: {e}"),
            true,
        ),
    }
}

async fn open_channel(conn: &Connection, prefetch: Option<u16>) -> Result<Channel> {
    let ch = conn
        .create_channel()
        .await
        .map_err(|e| crate::publisher::transport_error("cannot open a channel", &e))?;
    if let Some(p) = prefetch {
        ch.basic_qos(p, BasicQosOptions { global: false })
            .await
            .map_err(|e| crate::publisher::transport_error("basic.qos failed", &e))?;
    }
    Ok(ch)
}

async fn declare_and_consume(
    conn: &Connection,
    spec: &mut ConsumeSpec,
    offsets: &[Option<i64>],
) -> Result<(Channel, Vec<(usize, lapin::Consumer)>)> {
    // A durable-flag mismatch closes the channel: switch the entity to
    // non-durable (as oslo's fallback does) and start over on a new channel.
    'attempt: for _ in 0..4 {
        let ch = open_channel(conn, spec.prefetch).await?;
        for qi in 0..spec.queues.len() {
            for xi in 0..spec.queues[qi].exchanges.len() {
                let x = spec.queues[qi].exchanges[xi].clone();
                let opts = ExchangeDeclareOptions {
                    durable: x.durable,
                    auto_delete: x.auto_delete,
                    ..ExchangeDeclareOptions::default()
                };
                let xname = short_string("exchange", &x.name)?;
                if let Err(e) = ch
                    .exchange_declare(xname, x.kind.clone(), opts, FieldTable::default())
                    .await
                {
                    if x.durable && is_durable_mismatch(&e) {
                        tracing::warn!(exchange = %x.name, queue = %spec.queues[qi].name,
                            "exchange exists non-durable; declaring exchange and queue non-durable");
                        spec.queues[qi].exchanges[xi].durable = false;
                        spec.queues[qi].durable = false;
                        continue 'attempt;
                    }
                    return Err(declare_error("exchange", &x.name, &e));
                }
            }
            let q = &spec.queues[qi];
            let qname = short_string("queue", &q.name)?;
            let opts = QueueDeclareOptions {
                durable: q.durable,
                auto_delete: q.auto_delete,
                ..QueueDeclareOptions::default()
            };
            ch.queue_declare(qname.clone(), opts, q.arguments.clone())
                .await
                .map_err(|e| declare_error("queue", &q.name, &e))?;
            for (x, key) in &q.bindings {
                ch.queue_bind(
                    qname.clone(),
                    short_string("exchange", x)?,
                    short_string("routing key", key)?,
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| declare_error("binding", &format!("{x}->{}", q.name), &e))?;
            }
        }
        let mut consumers = Vec::with_capacity(spec.queues.len());
        for (i, q) in spec.queues.iter().enumerate() {
            let mut args = spec.consumer_arguments.clone();
            if q.stream {
                args = FieldTable::default();
                let offset = match offsets.get(i).copied().flatten() {
                    Some(o) => AMQPValue::LongLongInt(o),
                    None => AMQPValue::LongString("last".into()),
                };
                args.insert("x-stream-offset".into(), offset);
            }
            let c = ch
                .basic_consume(
                    short_string("queue", &q.name)?,
                    "".into(),
                    BasicConsumeOptions {
                        no_ack: spec.no_ack,
                        ..BasicConsumeOptions::default()
                    },
                    args,
                )
                .await
                .map_err(|e| declare_error("consumer", &q.name, &e))?;
            consumers.push((i, c));
        }
        return Ok((ch, consumers));
    }
    Err(Error::ServerListen {
        target: spec
            .queues
            .first()
            .map(|q| q.name.clone())
            .unwrap_or_default(),
        reason: "could not declare the topology (repeated durable mismatches)".into(),
    })
}
