//! Publishing with publisher confirms on one shared connection.
//!
//! The connection is opened at the first send and reopened (with the
//! failover and back-off rules of [`Connector`]) when it breaks. It holds
//! three kinds of confirm-mode channels:
//!
//! * up to four *plain* channels, shared by any number of concurrent
//!   non-mandatory publishes (casts, notifications, calls): publishes are
//!   pipelined and each waits for its own confirm; a channel takes up to
//!   [`PLAIN_FILL`] unconfirmed publishes before the next one is used;
//! * *exact* channels, each carrying one `mandatory` publish
//!   (`at_least_once` requests) at a time, so that a `basic.return` is
//!   always attributed to the right message (lapin hands returns to
//!   whichever pending confirm a `multiple` ack resolves first). There are
//!   up to `rpc_conn_pool_size` of them (Python keeps that many pooled
//!   connections; at most `MAX_EXACT_CHANNELS`), opened on first use;
//! * one *reply* channel, on which `mandatory` replies are pipelined like
//!   plain publishes. Since a return may come back on another reply's
//!   confirm, returns are matched to their message by content: a publish
//!   whose confirm carries somebody else's returned message hands it back
//!   ([`Returned`]) so that the caller delivers it again. One pipelined
//!   channel costs the broker about a tenth less CPU per RPC call than a
//!   channel per in-flight reply (measured with 16 callers).
//!
//! Exchange (and notification queue) declarations are done once per
//! connection on a separate channel, so that a declaration error never
//! kills a publishing channel.

use crate::codec::short_string;
use crate::connect::{Connector, DRIVER};
use lapin::message::BasicReturnMessage;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ErrorKind, ExchangeKind};
use om_driver_api::om_core::{Error, Result};
use om_driver_api::Retry;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// The most exact channels (one `mandatory` publish in flight each) one
/// publishing connection opens.
pub(crate) const MAX_EXACT_CHANNELS: usize = 64;

/// The most plain channels one publishing connection opens.
const PLAIN_CHANNELS: usize = 4;

/// How many unconfirmed publishes a plain channel takes before the next
/// one is used. Filling one channel first lets the broker confirm several
/// publishes with one `multiple` ack at low concurrency, and spreading
/// beyond it lets the broker's per-channel processes share the work at
/// high concurrency. Against round robin over the four channels, on one
/// RabbitMQ 3.10 with 2 cores: RPC with 4 callers +10% (broker CPU per
/// call 168 → 135 µs), 16 callers +3%, casts and notifications with 16
/// senders +3–5%; one channel for everything cost casts and notifications
/// 15–20%.
const PLAIN_FILL: usize = 8;

/// A shared confirm channel and the count of its publishes waiting for
/// their confirm.
#[derive(Default)]
struct PlainSlot {
    channel: Mutex<Option<Channel>>,
    in_flight: AtomicUsize,
}

/// The index of the first channel with fewer than [`PLAIN_FILL`]
/// unconfirmed publishes (`in_flight`, one count per channel), else of the
/// least busy one.
fn fill_first(in_flight: impl Iterator<Item = usize>) -> usize {
    let mut best = (0, usize::MAX);
    for (i, n) in in_flight.enumerate() {
        if n < PLAIN_FILL {
            return i;
        }
        if n < best.1 {
            best = (i, n);
        }
    }
    best.0
}

/// Counts one publish as unconfirmed while it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        InFlight(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An exchange to declare before publishing.
#[derive(Debug, Clone)]
pub(crate) struct ExchangeDecl {
    pub name: String,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
}

/// A queue to declare and bind before publishing (notifications).
#[derive(Debug, Clone)]
pub(crate) struct QueueDecl {
    pub name: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub arguments: FieldTable,
    pub exchange: String,
    pub routing_key: String,
}

/// One message to publish.
pub(crate) struct Outgoing<'a> {
    pub exchange: &'a str,
    pub declare: Option<&'a ExchangeDecl>,
    pub queue: Option<&'a QueueDecl>,
    pub routing_key: &'a str,
    pub body: &'a [u8],
    pub properties: BasicProperties,
    pub routing: Routing,
}

/// How a publish treats a message the broker cannot route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Routing {
    /// Not `mandatory`: the broker drops an unroutable message.
    Drop,
    /// `mandatory`, one publish at a time per channel, so that a return is
    /// always this message's (`at_least_once` requests).
    Exact,
    /// `mandatory`, pipelined on the reply channel; see [`Returned`].
    Pipelined,
}

/// A message the broker returned (`basic.return`) whose confirm reached
/// another publish of the reply channel: whoever gets it delivers it
/// again, so no reply is lost to lapin's attribution.
#[derive(Debug)]
pub(crate) struct Returned {
    /// The routing key it was published with (the reply queue).
    pub routing_key: String,
    /// The body, as published.
    pub body: Vec<u8>,
    /// The properties, as published.
    pub properties: BasicProperties,
}

/// The AMQP reply code and text of a broker error, if it is one.
pub(crate) fn amqp_error(e: &lapin::Error) -> Option<(u16, String)> {
    match e.kind() {
        ErrorKind::ProtocolError(a) => Some((a.get_id(), a.get_message().as_str().to_owned())),
        _ => None,
    }
}

/// Whether the error is the durable-flag mismatch oslo works around.
pub(crate) fn is_durable_mismatch(e: &lapin::Error) -> bool {
    amqp_error(e)
        .is_some_and(|(code, text)| code == 406 && text.contains("inequivalent arg 'durable'"))
}

enum Failure {
    /// Retry (counts against `retry`): connection or channel lost, missing exchange.
    Retry(String),
    /// Give up at once.
    Fatal(Error),
}

struct PubConn {
    conn: Connection,
    label: String,
    plain: Vec<PlainSlot>,
    exact: Vec<tokio::sync::Mutex<Option<Channel>>>,
    reply: Mutex<Option<Channel>>,
    next_exact: AtomicUsize,
    declare_channel: tokio::sync::Mutex<Option<Channel>>,
    declared: Mutex<Declared>,
}

/// What this connection has declared: exchanges by name (looked up on
/// every publish, so without building a key), queues by
/// exchange, name and routing key.
#[derive(Default)]
struct Declared {
    exchanges: HashSet<String>,
    queues: HashSet<String>,
}

impl PubConn {
    fn connected(&self) -> bool {
        self.conn.status().connected()
    }

    fn declared(&self) -> std::sync::MutexGuard<'_, Declared> {
        self.declared.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn exchange_declared(&self, name: &str) -> bool {
        self.declared().exchanges.contains(name)
    }

    fn set_exchange_declared(&self, name: &str, yes: bool) {
        let mut d = self.declared();
        if !yes {
            d.exchanges.remove(name);
        } else if !d.exchanges.contains(name) {
            d.exchanges.insert(name.to_owned());
        }
    }

    async fn open_confirm_channel(&self) -> std::result::Result<Channel, lapin::Error> {
        let ch = self.conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok(ch)
    }

    /// The plain channel to publish on (see [`fill_first`]).
    fn plain_slot(&self) -> &PlainSlot {
        let i = fill_first(
            self.plain
                .iter()
                .map(|s| s.in_flight.load(Ordering::Relaxed)),
        );
        &self.plain[i]
    }

    /// The channel in `slot`, opened (in confirm mode) if it is missing or
    /// broken.
    async fn shared_channel(
        &self,
        slot: &Mutex<Option<Channel>>,
    ) -> std::result::Result<Channel, lapin::Error> {
        if let Some(ch) = slot.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            if ch.status().connected() {
                return Ok(ch.clone());
            }
        }
        let ch = self.open_confirm_channel().await?;
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(ch.clone());
        Ok(ch)
    }
}

/// Publishes messages for one driver.
pub(crate) struct Publisher {
    connector: Arc<Connector>,
    name: String,
    current: RwLock<Option<Arc<PubConn>>>,
    reconnect: tokio::sync::Mutex<()>,
    closed: AtomicBool,
}

impl Publisher {
    pub(crate) fn new(connector: Arc<Connector>) -> Self {
        Publisher {
            connector,
            name: crate::connect::connection_name(),
            current: RwLock::new(None),
            reconnect: tokio::sync::Mutex::new(()),
            closed: AtomicBool::new(false),
        }
    }

    fn current(&self) -> Option<Arc<PubConn>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn forget(&self, pc: &Arc<PubConn>) {
        let mut cur = self.current.write().unwrap_or_else(|e| e.into_inner());
        if cur.as_ref().is_some_and(|c| Arc::ptr_eq(c, pc)) {
            *cur = None;
        }
    }

    async fn connection(&self, retry: Retry, attempts: &mut u32) -> Result<Arc<PubConn>> {
        if let Some(c) = self.current() {
            if c.connected() {
                return Ok(c);
            }
        }
        let _guard = self.reconnect.lock().await;
        if let Some(c) = self.current() {
            if c.connected() {
                return Ok(c);
            }
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let (conn, label) = self.connector.connect(&self.name, retry, attempts).await?;
        let size = usize::try_from(self.connector.options().rpc_conn_pool_size)
            .unwrap_or(1)
            .clamp(1, MAX_EXACT_CHANNELS);
        let pc = Arc::new(PubConn {
            conn,
            label,
            plain: (0..size.min(PLAIN_CHANNELS))
                .map(|_| PlainSlot::default())
                .collect(),
            exact: (0..size).map(|_| tokio::sync::Mutex::new(None)).collect(),
            reply: Mutex::new(None),
            next_exact: AtomicUsize::new(0),
            declare_channel: tokio::sync::Mutex::new(None),
            declared: Mutex::new(Declared::default()),
        });
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(pc.clone());
        Ok(pc)
    }

    /// Publishes `out` and waits for the broker's confirm, reconnecting
    /// and retrying as `retry` allows.
    ///
    /// Errors: `MessageUndeliverable` when a mandatory publish was returned;
    /// `MessageDeliveryFailure` when the broker nacked it or the retries ran
    /// out; `Closed` after [`Publisher::close`].
    pub(crate) async fn publish(&self, out: &Outgoing<'_>, retry: Retry) -> Result<()> {
        debug_assert_ne!(out.routing, Routing::Pipelined);
        self.send(out, retry).await.map(drop)
    }

    /// [`Publisher::publish`] for [`Routing::Pipelined`] messages: also
    /// hands back another message the broker returned whose return reached
    /// this publish's confirm.
    pub(crate) async fn publish_pipelined(
        &self,
        out: &Outgoing<'_>,
        retry: Retry,
    ) -> Result<Option<Returned>> {
        self.send(out, retry).await
    }

    async fn send(&self, out: &Outgoing<'_>, retry: Retry) -> Result<Option<Returned>> {
        let mut attempts = 0u32;
        loop {
            if self.closed.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            let pc = self.connection(retry, &mut attempts).await?;
            match self.try_publish(&pc, out).await {
                Ok(foreign) => return Ok(foreign),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry(why)) => {
                    attempts += 1;
                    let lost = !pc.connected();
                    if lost {
                        self.forget(&pc);
                    }
                    if !retry.allows(attempts) {
                        return Err(Error::MessageDeliveryFailure(format!(
                            "failed to publish to exchange {:?} with routing key {:?} on {}: {why}",
                            out.exchange, out.routing_key, pc.label
                        )));
                    }
                    tracing::warn!(host = %pc.label, exchange = %out.exchange, error = %why, "publish failed, retrying");
                    if lost {
                        tokio::time::sleep(self.connector.reconnect_delay()).await;
                    }
                }
            }
        }
    }

    fn classify(&self, pc: &PubConn, exchange: &str, e: lapin::Error) -> Failure {
        if let Some((code, text)) = amqp_error(&e) {
            if code == 404 {
                // The exchange vanished (e.g. an auto-deleted fanout
                // exchange): declare it again and retry.
                pc.set_exchange_declared(exchange, false);
                return Failure::Retry(text);
            }
            if code == 406 || code == 403 {
                return Failure::Fatal(Error::MessageDeliveryFailure(format!(
                    "broker refused the publish: {text}"
                )));
            }
        }
        Failure::Retry(e.to_string())
    }

    async fn try_publish(
        &self,
        pc: &PubConn,
        out: &Outgoing<'_>,
    ) -> std::result::Result<Option<Returned>, Failure> {
        if let Some(x) = out.declare {
            self.ensure_exchange(pc, x).await?;
        }
        if let Some(q) = out.queue {
            self.ensure_queue(pc, q).await?;
        }
        let exchange = short_string("exchange", out.exchange).map_err(Failure::Fatal)?;
        let routing_key = short_string("routing key", out.routing_key).map_err(Failure::Fatal)?;
        let options = BasicPublishOptions {
            mandatory: out.routing != Routing::Drop,
            immediate: false,
        };
        let confirmation = if out.routing == Routing::Exact {
            let n = pc.exact.len();
            let start = pc.next_exact.fetch_add(1, Ordering::Relaxed);
            let mut guard = None;
            for k in 0..n {
                if let Ok(g) = pc.exact[(start + k) % n].try_lock() {
                    guard = Some(g);
                    break;
                }
            }
            let mut guard = match guard {
                Some(g) => g,
                None => pc.exact[start % n].lock().await,
            };
            let ch = match guard.as_ref().filter(|c| c.status().connected()) {
                Some(c) => c.clone(),
                None => {
                    let c = pc
                        .open_confirm_channel()
                        .await
                        .map_err(|e| self.classify(pc, out.exchange, e))?;
                    *guard = Some(c.clone());
                    c
                }
            };
            let confirm = ch
                .basic_publish(
                    exchange,
                    routing_key,
                    options,
                    out.body,
                    out.properties.clone(),
                )
                .await
                .map_err(|e| self.classify(pc, out.exchange, e))?;
            let c = confirm
                .await
                .map_err(|e| self.classify(pc, out.exchange, e))?;
            drop(guard);
            c
        } else {
            let (slot, _in_flight) = if out.routing == Routing::Pipelined {
                (&pc.reply, None)
            } else {
                let slot = pc.plain_slot();
                (&slot.channel, Some(InFlight::new(&slot.in_flight)))
            };
            let ch = pc
                .shared_channel(slot)
                .await
                .map_err(|e| self.classify(pc, out.exchange, e))?;
            let confirm = ch
                .basic_publish(
                    exchange,
                    routing_key,
                    options,
                    out.body,
                    out.properties.clone(),
                )
                .await
                .map_err(|e| self.classify(pc, out.exchange, e))?;
            confirm
                .await
                .map_err(|e| self.classify(pc, out.exchange, e))?
        };
        match confirmation {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(None),
            Confirmation::Ack(Some(returned)) => settle_return(out, returned),
            Confirmation::Nack(returned) => {
                // A nack can only report this publish's failure, so another
                // pipelined reply's return riding on it cannot be handed
                // back: say so rather than drop it silently (a broker nack
                // is an internal broker error, and rare).
                if let Some(r) =
                    returned.filter(|r| out.routing == Routing::Pipelined && !is_own_return(out, r))
                {
                    tracing::warn!(routing_key = %r.delivery.routing_key,
                        "a returned reply came back on a nacked confirm and is lost");
                }
                Err(Failure::Fatal(Error::MessageDeliveryFailure(format!(
                "the broker rejected (nacked) the message to exchange {:?} with routing key {:?}",
                    out.exchange, out.routing_key
                ))))
            }
        }
    }

    async fn declare_channel(
        pc: &PubConn,
        slot: &mut Option<Channel>,
    ) -> std::result::Result<Channel, lapin::Error> {
        if let Some(c) = slot.as_ref().filter(|c| c.status().connected()) {
            return Ok(c.clone());
        }
        let c = pc.conn.create_channel().await?;
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn ensure_exchange(
        &self,
        pc: &PubConn,
        x: &ExchangeDecl,
    ) -> std::result::Result<(), Failure> {
        if pc.exchange_declared(&x.name) {
            return Ok(());
        }
        let mut slot = pc.declare_channel.lock().await;
        if pc.exchange_declared(&x.name) {
            return Ok(());
        }
        let name = short_string("exchange", &x.name).map_err(Failure::Fatal)?;
        let mut durable = x.durable;
        loop {
            let ch = Self::declare_channel(pc, &mut slot)
                .await
                .map_err(|e| Failure::Retry(e.to_string()))?;
            let opts = ExchangeDeclareOptions {
                durable,
                auto_delete: x.auto_delete,
                ..ExchangeDeclareOptions::default()
            };
            match ch
                .exchange_declare(name.clone(), x.kind.clone(), opts, FieldTable::default())
                .await
            {
                Ok(()) => {
                    pc.set_exchange_declared(&x.name, true);
                    return Ok(());
                }
                Err(e) if durable && is_durable_mismatch(&e) => {
                    tracing::warn!(exchange = %x.name, "exchange exists non-durable; declaring it non-durable");
                    durable = false;
                }
                Err(e) => {
                    return Err(match amqp_error(&e) {
                        Some((code, text)) if code == 406 || code == 403 => {
                            Failure::Fatal(Error::MessageDeliveryFailure(format!(
                                "cannot declare exchange {:?}: {text}",
                                x.name
                            )))
                        }
                        _ => Failure::Retry(e.to_string()),
                    })
                }
            }
        }
    }

    async fn ensure_queue(&self, pc: &PubConn, q: &QueueDecl) -> std::result::Result<(), Failure> {
        let key = format!("q\u{0}{}\u{0}{}\u{0}{}", q.exchange, q.name, q.routing_key);
        if pc.declared().queues.contains(&key) {
            return Ok(());
        }
        let mut slot = pc.declare_channel.lock().await;
        let ch = Self::declare_channel(pc, &mut slot)
            .await
            .map_err(|e| Failure::Retry(e.to_string()))?;
        let name = short_string("queue", &q.name).map_err(Failure::Fatal)?;
        let fatal = |e: lapin::Error| match amqp_error(&e) {
            Some((code, text)) if code == 406 || code == 403 => Failure::Fatal(
                Error::MessageDeliveryFailure(format!("cannot declare queue {:?}: {text}", q.name)),
            ),
            _ => Failure::Retry(e.to_string()),
        };
        ch.queue_declare(
            name.clone(),
            QueueDeclareOptions {
                durable: q.durable,
                auto_delete: q.auto_delete,
                ..QueueDeclareOptions::default()
            },
            q.arguments.clone(),
        )
        .await
        .map_err(fatal)?;
        ch.queue_bind(
            name,
            short_string("exchange", &q.exchange).map_err(Failure::Fatal)?,
            short_string("routing key", &q.routing_key).map_err(Failure::Fatal)?,
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(fatal)?;
        pc.declared().queues.insert(key);
        Ok(())
    }

    /// Closes the connection; later publishes fail with `Closed`.
    pub(crate) async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let pc = self
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(pc) = pc {
            if pc.connected() {
                let _ = pc.conn.close(200, "OK".into()).await;
            }
        }
    }
}

/// What a confirm that carried a returned message means for `out`: its own
/// message was undeliverable (`MessageUndeliverable`), or (pipelined
/// replies only) another message was returned and is handed back.
fn settle_return(
    out: &Outgoing<'_>,
    returned: BasicReturnMessage,
) -> std::result::Result<Option<Returned>, Failure> {
    match out.routing {
        Routing::Drop => Ok(None),
        Routing::Pipelined if !is_own_return(out, &returned) => {
            tracing::debug!(routing_key = %returned.delivery.routing_key,
                "another pipelined message was returned on this confirm; handing it back");
            let delivery = returned.delivery;
            Ok(Some(Returned {
                routing_key: delivery.routing_key.to_string(),
                body: delivery.data,
                properties: delivery.properties,
            }))
        }
        Routing::Exact | Routing::Pipelined => {
            tracing::debug!(exchange = %out.exchange, routing_key = %out.routing_key,
                reply = %returned.reply_text, "mandatory message returned by the broker");
            Err(Failure::Fatal(Error::MessageUndeliverable {
                exchange: out.exchange.to_owned(),
                routing_key: out.routing_key.to_owned(),
            }))
        }
    }
}

/// Whether `returned` is `out`'s own message (same routing key and body).
fn is_own_return(out: &Outgoing<'_>, returned: &BasicReturnMessage) -> bool {
    returned.delivery.routing_key.as_str() == out.routing_key && returned.delivery.data == out.body
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Errors of a driver-level operation that is not a publish.
pub(crate) fn transport_error(what: &str, e: &lapin::Error) -> Error {
    Error::transport(
        DRIVER,
        format!("{what}: {e}"),
        !matches!(e.kind(), ErrorKind::ProtocolError(_)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::message::Delivery;

    fn out(routing: Routing, body: &[u8]) -> Outgoing<'_> {
        Outgoing {
            exchange: "",
            declare: None,
            queue: None,
            routing_key: "reply_a",
            body,
            properties: BasicProperties::default(),
            routing,
        }
    }

    fn returned(routing_key: &str, body: &[u8]) -> BasicReturnMessage {
        BasicReturnMessage {
            delivery: Delivery::mock(0, "".into(), routing_key.into(), false, body.to_vec()),
            reply_code: 312,
            reply_text: "NO_ROUTE".into(),
        }
    }

    fn undeliverable(r: std::result::Result<Option<Returned>, Failure>) -> bool {
        matches!(
            r,
            Err(Failure::Fatal(Error::MessageUndeliverable { ref routing_key, .. })) if routing_key == "reply_a"
        )
    }

    #[test]
    fn plain_channels_fill_one_at_a_time() {
        let pick = |counts: &[usize]| fill_first(counts.iter().copied());
        assert_eq!(pick(&[0, 0, 0, 0]), 0);
        assert_eq!(pick(&[PLAIN_FILL - 1, 0, 0, 0]), 0);
        assert_eq!(pick(&[PLAIN_FILL, 0, 0, 0]), 1);
        assert_eq!(pick(&[PLAIN_FILL, PLAIN_FILL + 2, 3, 0]), 2);
        // All full: the least busy.
        let full = PLAIN_FILL;
        assert_eq!(pick(&[full + 3, full + 1, full + 2, full + 1]), 1);
        // One channel (rpc_conn_pool_size = 1).
        assert_eq!(pick(&[full + 9]), 0);
    }

    #[test]
    fn a_return_is_matched_to_its_message_by_content() {
        // A pipelined reply whose own message came back is undeliverable.
        let r = settle_return(
            &out(Routing::Pipelined, b"one"),
            returned("reply_a", b"one"),
        );
        assert!(undeliverable(r));
        // Another reply's return (other body, or other queue) is handed back
        // whole, to be delivered again; this reply itself was delivered.
        for (key, body) in [("reply_a", &b"two"[..]), ("reply_b", &b"one"[..])] {
            let r = settle_return(&out(Routing::Pipelined, b"one"), returned(key, body));
            match r {
                Ok(Some(back)) => {
                    assert_eq!((back.routing_key.as_str(), &back.body[..]), (key, body))
                }
                _ => panic!("expected the foreign return to be handed back"),
            }
        }
        // One publish in flight per channel: any return is this message's.
        let r = settle_return(&out(Routing::Exact, b"one"), returned("reply_b", b"two"));
        assert!(undeliverable(r));
        // Not mandatory: nothing to report.
        let r = settle_return(&out(Routing::Drop, b"one"), returned("reply_a", b"one"));
        assert!(matches!(r, Ok(None)));
    }
}
