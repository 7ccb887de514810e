//! Publishing with publisher confirms on one shared connection.
//!
//! The connection is opened at the first send and reopened (with the
//! failover and back-off rules of [`Connector`]) when it breaks. It holds
//! two small pools of confirm-mode channels:
//!
//! * *plain* channels, shared by any number of concurrent non-mandatory
//!   publishes (casts, notifications, calls): publishes are pipelined and
//!   each waits for its own confirm;
//! * *mandatory* channels, each carrying one `mandatory` publish (replies,
//!   `at_least_once` requests) at a time, so that a `basic.return` is
//!   always attributed to the right message (lapin hands returns to
//!   whichever pending confirm a `multiple` ack resolves first). There are
//!   up to `rpc_conn_pool_size` of them (Python keeps that many pooled
//!   connections; at most `MAX_MANDATORY_CHANNELS`), opened on first use,
//!   so that a server replying to many callers at once does not queue its
//!   replies behind one another's confirms.
//!
//! Exchange (and notification queue) declarations are done once per
//! connection on a separate channel, so that a declaration error never
//! kills a publishing channel.

use crate::codec::short_string;
use crate::connect::{Connector, DRIVER};
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

/// The most mandatory-publish channels one publishing connection opens.
pub(crate) const MAX_MANDATORY_CHANNELS: usize = 64;

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
    pub mandatory: bool,
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
    plain: Vec<Mutex<Option<Channel>>>,
    mandatory: Vec<tokio::sync::Mutex<Option<Channel>>>,
    next_plain: AtomicUsize,
    next_mandatory: AtomicUsize,
    declare_channel: tokio::sync::Mutex<Option<Channel>>,
    declared: Mutex<HashSet<String>>,
}

impl PubConn {
    fn connected(&self) -> bool {
        self.conn.status().connected()
    }

    fn is_declared(&self, key: &str) -> bool {
        self.declared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(key)
    }

    fn set_declared(&self, key: String, yes: bool) {
        let mut d = self.declared.lock().unwrap_or_else(|e| e.into_inner());
        if yes {
            d.insert(key);
        } else {
            d.remove(&key);
        }
    }

    async fn open_confirm_channel(&self) -> std::result::Result<Channel, lapin::Error> {
        let ch = self.conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok(ch)
    }

    async fn plain_channel(&self) -> std::result::Result<Channel, lapin::Error> {
        let i = self.next_plain.fetch_add(1, Ordering::Relaxed) % self.plain.len();
        let slot = &self.plain[i];
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
            .clamp(1, MAX_MANDATORY_CHANNELS);
        let pc = Arc::new(PubConn {
            conn,
            label,
            plain: (0..size.min(4)).map(|_| Mutex::new(None)).collect(),
            mandatory: (0..size).map(|_| tokio::sync::Mutex::new(None)).collect(),
            next_plain: AtomicUsize::new(0),
            next_mandatory: AtomicUsize::new(0),
            declare_channel: tokio::sync::Mutex::new(None),
            declared: Mutex::new(HashSet::new()),
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
        let mut attempts = 0u32;
        loop {
            if self.closed.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            let pc = self.connection(retry, &mut attempts).await?;
            match self.try_publish(&pc, out).await {
                Ok(()) => return Ok(()),
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
                pc.set_declared(exchange_key(exchange), false);
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
    ) -> std::result::Result<(), Failure> {
        if let Some(x) = out.declare {
            self.ensure_exchange(pc, x).await?;
        }
        if let Some(q) = out.queue {
            self.ensure_queue(pc, q).await?;
        }
        let exchange = short_string("exchange", out.exchange).map_err(Failure::Fatal)?;
        let routing_key = short_string("routing key", out.routing_key).map_err(Failure::Fatal)?;
        let options = BasicPublishOptions {
            mandatory: out.mandatory,
            immediate: false,
        };
        let confirmation = if out.mandatory {
            let n = pc.mandatory.len();
            let start = pc.next_mandatory.fetch_add(1, Ordering::Relaxed);
            let mut guard = None;
            for k in 0..n {
                if let Ok(g) = pc.mandatory[(start + k) % n].try_lock() {
                    guard = Some(g);
                    break;
                }
            }
            let mut guard = match guard {
                Some(g) => g,
                None => pc.mandatory[start % n].lock().await,
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
            let ch = pc
                .plain_channel()
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
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(returned)) => {
                if out.mandatory {
                    tracing::debug!(exchange = %out.exchange, routing_key = %out.routing_key,
                        reply = %returned.reply_text, "mandatory message returned by the broker");
                    Err(Failure::Fatal(Error::MessageUndeliverable {
                        exchange: out.exchange.to_owned(),
                        routing_key: out.routing_key.to_owned(),
                    }))
                } else {
                    Ok(())
                }
            }
            Confirmation::Nack(_) => Err(Failure::Fatal(Error::MessageDeliveryFailure(format!(
                "the broker rejected (nacked) the message to exchange {:?} with routing key {:?}",
                out.exchange, out.routing_key
            )))),
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
        let key = exchange_key(&x.name);
        if pc.is_declared(&key) {
            return Ok(());
        }
        let mut slot = pc.declare_channel.lock().await;
        if pc.is_declared(&key) {
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
                    pc.set_declared(key, true);
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
        if pc.is_declared(&key) {
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
        pc.set_declared(key, true);
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

fn exchange_key(name: &str) -> String {
    format!("x\u{0}{name}")
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
