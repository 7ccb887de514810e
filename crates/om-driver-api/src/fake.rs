//! The in-memory `fake://` driver.
//!
//! It behaves like the RabbitMQ driver on a broker, without a broker, so
//! that the RPC and notification layers (and applications' unit tests) see
//! the semantics they will see in production:
//!
//! * **One broker per virtual host, per process.** Every `fake://`
//!   transport of a process with the same virtual host shares one in-memory
//!   broker; `fake:///other` is a separate, isolated one. `fake://`,
//!   `fake:///` and `fake:////` all use the default virtual host `/`.
//! * **RabbitMQ topology.** A server for `(exchange X, topic T, server S)`
//!   consumes queue `T` (bound to `X` with key `T`, shared round-robin with
//!   every other server of the topic), queue `T.S` (bound with key `T.S`)
//!   and a private queue `T_fanout_<hex>` bound to the fanout exchange
//!   `T_fanout`. As on RabbitMQ, queue names do not include the exchange:
//!   an exchange only routes to the queues bound to it.
//! * **Wire encoding.** Requests, replies and notifications are encoded to
//!   bytes with [`om_core::envelope`] (2.0 envelope, context flattened into
//!   `_context_<key>`, `_msg_id`, `_reply_q`, `_timeout`, `_unique_id`) and
//!   decoded again by the receiver, so what the layers above see is what a
//!   broker would have carried.
//! * **Routing failures.** A request nobody ever listened for is dropped
//!   (the caller times out); with
//!   [`TransportOptions::at_least_once`](crate::TransportOptions) `send`
//!   fails at once with `MessageUndeliverable`. Declared queues keep their
//!   messages while no consumer is attached; a call's timeout becomes the
//!   message's expiration in the queue.
//! * **Notifications.** `send_notification` declares and binds the
//!   `<topic>.<priority>` queue first, so notifications are retained until a
//!   listener comes. Pool-less listeners compete on those queues; a pool
//!   `P` has one queue named `P` bound to every `(exchange, topic.priority)`
//!   it listens to. Messages are tracked until acknowledged; requeued ones
//!   are delivered again; unsettled ones go back to their queue when the
//!   listener is cleaned up or dropped.
//! * **Duplicates.** As the RabbitMQ driver does, an RPC listener drops a
//!   request whose `_unique_id` is among the last 16 it accepted, and a
//!   notification listener skips (and acknowledges) a message whose
//!   `_unique_id` it acknowledged among its last 16.
//! * **Contexts.** The context handed to RPC servers and notification
//!   listeners includes `client_timeout` (the request's `_timeout`, `null`
//!   for notifications and requests without one), as oslo's RabbitMQ driver
//!   does.
//!
//! [`FakeBroker`] gives tests a view of a virtual host (queues, bindings,
//! depths) and lets them publish raw bodies, e.g. malformed ones.
//!
//! ```
//! use om_driver_api::{ListenOptions, ReplyEvent, RpcRequest, Transport};
//! use om_core::{JsonObject, Target, Value};
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let transport = Transport::from_url("fake:///doc-example").await?;
//! let target = Target::new("calc").with_server("s1");
//! let mut server = transport.driver().listen(target, ListenOptions::default()).await?;
//! let mut msg = JsonObject::new();
//! msg.insert("method".into(), "add".into());
//! msg.insert("args".into(), Value::Object(JsonObject::new()));
//! let request = RpcRequest::call(Target::new("calc"), msg, std::time::Duration::from_secs(5));
//! let mut replies = transport.driver().send(request).await?.expect("a call has replies");
//! let incoming = server.next().await.expect("listener open")?;
//! incoming.acknowledge().await?;
//! incoming.reply(Ok(Value::from(3))).await?;
//! assert_eq!(replies.next().await, Some(ReplyEvent::Final(Ok(Value::from(3)))));
//! # Ok::<(), om_core::Error>(()) }).unwrap();
//! ```

// `om_core::Error` is large while `RemoteError` is stored inline; that is
// om-core's call, not something to work around here.
#![allow(clippy::result_large_err)]

mod broker;

use crate::{
    BoxFuture, Capabilities, Driver, DriverConfig, DriverFactory, DynDriver, IncomingHandle,
    IncomingMessage, ListenOptions, Listener, Notification, ReplyEvent, ReplyStream, RpcRequest,
};
use broker::{Broker, Delivery, ExchangeKind, Outcome, ReplyTable};
use om_core::envelope::{self, Format};
use om_core::{Error, JsonObject, Priority, RemoteError, Result, Target, Value};
use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;

/// The driver name and URL scheme.
pub const SCHEME: &str = "fake";

/// How many recent `_unique_id`s a listener remembers (as oslo's cache).
const DUPLICATE_WINDOW: usize = 16;

/// Opens `fake://` drivers.
#[derive(Debug, Default, Clone, Copy)]
pub struct FakeDriverFactory;

impl DriverFactory for FakeDriverFactory {
    fn schemes(&self) -> &'static [&'static str] {
        &[SCHEME]
    }

    fn open(&self, config: DriverConfig) -> BoxFuture<'static, Result<Arc<dyn DynDriver>>> {
        Box::pin(async move {
            let driver: Arc<dyn DynDriver> = Arc::new(FakeDriver::new(&config));
            Ok(driver)
        })
    }
}

/// A view of one virtual host of the in-memory broker, for tests.
#[derive(Debug, Clone)]
pub struct FakeBroker {
    broker: Arc<Broker>,
}

impl FakeBroker {
    /// The broker of `vhost` as written in the URL path (`""` or `"/"` for
    /// the default virtual host).
    pub fn for_vhost(vhost: &str) -> Self {
        FakeBroker {
            broker: broker::broker_for(&broker::normalize_vhost(Some(vhost))),
        }
    }

    /// The broker a transport URL's virtual host selects.
    pub fn for_url(url: &om_core::TransportUrl) -> Self {
        FakeBroker {
            broker: broker::broker_for(&broker::normalize_vhost(url.virtual_host.as_deref())),
        }
    }

    /// The normalised virtual host name (`/` for the default one).
    pub fn vhost(&self) -> &str {
        self.broker.vhost()
    }

    /// Publishes raw bytes to `exchange` with `routing_key`, as a foreign
    /// peer could; returns how many queues took them. Fails when the
    /// exchange does not exist.
    pub fn publish_raw(
        &self,
        exchange: &str,
        routing_key: &str,
        body: impl Into<Vec<u8>>,
    ) -> Result<usize> {
        let body: Arc<[u8]> = Arc::from(body.into().into_boxed_slice());
        self.broker
            .publish(exchange, routing_key, body, None, false)
    }

    /// Number of ready (undelivered, unexpired) messages in `queue`, or
    /// `None` if the queue does not exist.
    pub fn queue_len(&self, queue: &str) -> Option<usize> {
        self.broker.queue_len(queue)
    }

    /// Number of messages of `queue` delivered but not yet acknowledged.
    pub fn unacked_len(&self, queue: &str) -> usize {
        self.broker.unacked_len(queue)
    }

    /// Number of consumers attached to `queue`, or `None` if it does not exist.
    pub fn consumer_count(&self, queue: &str) -> Option<usize> {
        self.broker.consumer_count(queue)
    }

    /// Whether `queue` exists.
    pub fn has_queue(&self, queue: &str) -> bool {
        self.broker.queue_len(queue).is_some()
    }

    /// Every queue of the virtual host, sorted.
    pub fn queue_names(&self) -> Vec<String> {
        self.broker.queue_names()
    }

    /// Every exchange of the virtual host, sorted.
    pub fn exchange_names(&self) -> Vec<String> {
        self.broker.exchange_names()
    }

    /// The bindings of `exchange`, as sorted `(binding key, queue)` pairs.
    pub fn bindings(&self, exchange: &str) -> Vec<(String, String)> {
        self.broker.bindings(exchange)
    }
}

/// The in-memory driver. Open it through a `fake://` URL, or with
/// [`FakeDriver::new`] to wrap it in a driver of your own.
#[derive(Debug)]
pub struct FakeDriver {
    inner: Arc<DriverInner>,
}

#[derive(Debug)]
struct DriverInner {
    broker: Arc<Broker>,
    control_exchange: String,
    reply_q: String,
    replies: Arc<ReplyTable>,
    closed: AtomicBool,
    listeners: Mutex<Vec<u64>>,
}

impl Drop for DriverInner {
    fn drop(&mut self) {
        self.broker.unregister_reply_queue(&self.reply_q);
    }
}

impl FakeDriver {
    /// A driver on the broker of `config.url`'s virtual host, using
    /// `config.control_exchange` for targets without exchange. Driver
    /// options are accepted and ignored (the fake has none).
    pub fn new(config: &DriverConfig) -> Self {
        let broker =
            broker::broker_for(&broker::normalize_vhost(config.url.virtual_host.as_deref()));
        let reply_q = format!("reply_{}", om_core::uuid_hex());
        let replies = Arc::new(ReplyTable::default());
        broker.register_reply_queue(&reply_q, &replies);
        tracing::debug!(vhost = broker.vhost(), reply_q = %reply_q, "fake driver opened");
        FakeDriver {
            inner: Arc::new(DriverInner {
                broker,
                control_exchange: config.control_exchange.clone(),
                reply_q,
                replies,
                closed: AtomicBool::new(false),
                listeners: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The broker this driver talks to.
    pub fn broker(&self) -> FakeBroker {
        FakeBroker {
            broker: self.inner.broker.clone(),
        }
    }

    /// The name of this driver's reply queue (`reply_<hex>`).
    pub fn reply_queue(&self) -> &str {
        &self.inner.reply_q
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    fn track_listener(&self, id: u64) {
        let mut l = self
            .inner
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        l.push(id);
    }

    fn do_send(&self, request: RpcRequest) -> Result<Option<ReplyStream>> {
        self.check_open()?;
        let target = &request.target;
        target.validate_for_send(request.wait_for_reply)?;
        let topic = target.topic.as_deref().unwrap_or_default();
        let exchange = target.exchange_or(&self.inner.control_exchange).to_owned();
        let broker = &self.inner.broker;

        let mut msg = request.message.clone();
        let mut stream = None;
        let mut expires_at = None;
        if request.wait_for_reply {
            let msg_id = om_core::uuid_hex();
            msg.insert("_msg_id".into(), Value::String(msg_id.clone()));
            msg.insert("_reply_q".into(), Value::String(self.inner.reply_q.clone()));
            msg.insert("_timeout".into(), request.timeout_json());
            let (tx, rx) = mpsc::unbounded_channel();
            self.inner.replies.register(&msg_id, tx);
            let guard = CallGuard {
                table: Arc::downgrade(&self.inner.replies),
                msg_id: msg_id.clone(),
            };
            stream = Some(ReplyStream::new(msg_id, rx, Some(Box::new(guard))));
            expires_at = request.timeout.and_then(|t| Instant::now().checked_add(t));
        }
        msg.insert("_unique_id".into(), Value::String(om_core::uuid_hex()));
        envelope::pack_context_flat(&mut msg, &request.ctxt);
        let body: Arc<[u8]> = Arc::from(envelope::encode(&msg, Format::V2)?.into_boxed_slice());

        let (exchange, routing_key, mandatory) = if target.fanout {
            let ex = format!("{topic}_fanout");
            broker.declare_exchange(&ex, ExchangeKind::Fanout);
            (ex, String::new(), false)
        } else {
            broker.declare_exchange(&exchange, ExchangeKind::Topic);
            let key = match target.server.as_deref() {
                Some(server) if !server.is_empty() => format!("{topic}.{server}"),
                _ => topic.to_owned(),
            };
            (exchange, key, request.transport_options.at_least_once)
        };
        let routed = broker.publish(&exchange, &routing_key, body, expires_at, mandatory)?;
        tracing::debug!(
            exchange = %exchange,
            routing_key = %routing_key,
            call = request.wait_for_reply,
            routed,
            "fake driver: request published"
        );
        Ok(stream)
    }

    fn do_send_notification(&self, notification: Notification) -> Result<()> {
        self.check_open()?;
        let target = &notification.target;
        target.validate_for_send(false)?;
        let key = target.topic.as_deref().unwrap_or_default().to_owned();
        let exchange = target.exchange_or(&self.inner.control_exchange).to_owned();
        let mut msg = notification.message.clone();
        msg.insert("_unique_id".into(), Value::String(om_core::uuid_hex()));
        envelope::pack_context_flat(&mut msg, &notification.ctxt);
        let body: Arc<[u8]> =
            Arc::from(envelope::encode(&msg, notification.format)?.into_boxed_slice());
        let broker = &self.inner.broker;
        broker.declare_exchange(&exchange, ExchangeKind::Topic);
        // Like the RabbitMQ notifier: declare and bind `<topic>.<priority>`
        // so the message is kept until a listener comes.
        broker.bind(&exchange, &key, &key);
        let routed = broker.publish(&exchange, &key, body, None, false)?;
        tracing::debug!(exchange = %exchange, routing_key = %key, routed, "fake driver: notification published");
        Ok(())
    }

    fn do_listen(&self, target: Target, options: ListenOptions) -> Result<Box<dyn Listener>> {
        self.check_open()?;
        target.validate_for_server()?;
        let topic = target.topic.as_deref().unwrap_or_default();
        let server = target.server.as_deref().unwrap_or_default();
        let exchange = target.exchange_or(&self.inner.control_exchange);
        let broker = &self.inner.broker;
        broker.declare_exchange(exchange, ExchangeKind::Topic);
        let server_q = format!("{topic}.{server}");
        broker.bind(exchange, topic, topic);
        broker.bind(exchange, &server_q, &server_q);
        let fanout_ex = format!("{topic}_fanout");
        let fanout_q = format!("{topic}_fanout_{}", om_core::uuid_hex());
        broker.declare_exchange(&fanout_ex, ExchangeKind::Fanout);
        broker.bind(&fanout_ex, topic, &fanout_q);
        let queues = vec![topic.to_owned(), server_q, fanout_q.clone()];
        let (id, rx) = broker.add_consumer(&queues, options.prefetch.map(usize::from));
        self.track_listener(id);
        tracing::debug!(%target, fanout_queue = %fanout_q, "fake driver: RPC server listening");
        Ok(Box::new(FakeListener {
            broker: broker.clone(),
            consumer: id,
            rx,
            kind: ListenerKind::Rpc {
                fanout_queue: fanout_q,
            },
            seen: Arc::new(Mutex::new(VecDeque::new())),
            closed: false,
        }))
    }

    fn do_listen_for_notifications(
        &self,
        targets: Vec<(Target, Priority)>,
        pool: Option<String>,
        options: ListenOptions,
    ) -> Result<Box<dyn Listener>> {
        self.check_open()?;
        if targets.is_empty() {
            return Err(Error::invalid_target(
                "A notification listener needs at least one target",
                &Target::default(),
            ));
        }
        for (t, _) in &targets {
            t.validate_for_notification()?;
        }
        let broker = &self.inner.broker;
        let pool = pool.filter(|p| !p.is_empty());
        let mut queues: Vec<String> = Vec::new();
        for (t, priority) in &targets {
            let exchange = t.exchange_or(&self.inner.control_exchange);
            let key = format!(
                "{}.{}",
                t.topic.as_deref().unwrap_or_default(),
                priority.as_lower()
            );
            broker.declare_exchange(exchange, ExchangeKind::Topic);
            let queue = pool.clone().unwrap_or_else(|| key.clone());
            broker.bind(exchange, &key, &queue);
            if !queues.contains(&queue) {
                queues.push(queue);
            }
        }
        let (id, rx) = broker.add_consumer(&queues, options.prefetch.map(usize::from));
        self.track_listener(id);
        tracing::debug!(?queues, pool = ?pool, "fake driver: notification listener started");
        Ok(Box::new(FakeListener {
            broker: broker.clone(),
            consumer: id,
            rx,
            kind: ListenerKind::Notification,
            seen: Arc::new(Mutex::new(VecDeque::new())),
            closed: false,
        }))
    }

    fn do_cleanup(&self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let ids = std::mem::take(
            &mut *self
                .inner
                .listeners
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for id in ids {
            self.inner.broker.cancel(id);
        }
        self.inner
            .broker
            .unregister_reply_queue(&self.inner.reply_q);
        self.inner.replies.clear();
        tracing::debug!(reply_q = %self.inner.reply_q, "fake driver closed");
    }
}

impl Driver for FakeDriver {
    fn name(&self) -> &str {
        SCHEME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }

    fn send(
        &self,
        request: RpcRequest,
    ) -> impl Future<Output = Result<Option<ReplyStream>>> + Send {
        std::future::ready(self.do_send(request))
    }

    fn send_notification(
        &self,
        notification: Notification,
    ) -> impl Future<Output = Result<()>> + Send {
        std::future::ready(self.do_send_notification(notification))
    }

    fn listen(
        &self,
        target: Target,
        options: ListenOptions,
    ) -> impl Future<Output = Result<Box<dyn Listener>>> + Send {
        std::future::ready(self.do_listen(target, options))
    }

    fn listen_for_notifications(
        &self,
        targets: Vec<(Target, Priority)>,
        pool: Option<String>,
        options: ListenOptions,
    ) -> impl Future<Output = Result<Box<dyn Listener>>> + Send {
        std::future::ready(self.do_listen_for_notifications(targets, pool, options))
    }

    fn cleanup(&self) -> impl Future<Output = ()> + Send {
        self.do_cleanup();
        std::future::ready(())
    }
}

/// Unregisters a call when its [`ReplyStream`] is dropped.
struct CallGuard {
    table: std::sync::Weak<ReplyTable>,
    msg_id: String,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if let Some(t) = self.table.upgrade() {
            t.unregister(&self.msg_id);
        }
    }
}

#[derive(Debug)]
enum ListenerKind {
    Rpc { fanout_queue: String },
    Notification,
}

/// A bounded window of recently seen `_unique_id`s.
type Seen = Arc<Mutex<VecDeque<String>>>;

fn seen_contains(seen: &Seen, id: &str) -> bool {
    seen.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|s| s == id)
}

fn seen_remember(seen: &Seen, id: &str) {
    let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
    if s.len() >= DUPLICATE_WINDOW {
        s.pop_front();
    }
    s.push_back(id.to_owned());
}

struct FakeListener {
    broker: Arc<Broker>,
    consumer: u64,
    rx: mpsc::UnboundedReceiver<Delivery>,
    kind: ListenerKind,
    seen: Seen,
    closed: bool,
}

impl FakeListener {
    /// Decodes one delivery; `Ok(None)` for a duplicate (already settled).
    fn decode(&self, delivery: Delivery) -> Result<Option<IncomingMessage>> {
        let tag = delivery.tag;
        let mut msg = match envelope::decode(&delivery.body) {
            Ok(m) => m,
            Err(e) => {
                // Rejected without requeue, as the RabbitMQ driver does.
                let _ = self.broker.settle(self.consumer, tag, Outcome::Drop);
                tracing::warn!(error = %e, "fake driver: malformed message rejected");
                return Err(e);
            }
        };
        let mut ctxt = envelope::unpack_context_flat(&mut msg);
        let unique_id = match msg.shift_remove("_unique_id") {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        match self.kind {
            ListenerKind::Rpc { .. } => {
                let msg_id = match msg.shift_remove("_msg_id") {
                    Some(Value::String(s)) => Some(s),
                    _ => None,
                };
                let reply_q = match msg.shift_remove("_reply_q") {
                    Some(Value::String(s)) => Some(s),
                    _ => None,
                };
                let timeout = msg.shift_remove("_timeout").unwrap_or(Value::Null);
                if let Some(u) = &unique_id {
                    if seen_contains(&self.seen, u) {
                        tracing::debug!(unique_id = %u, "fake driver: duplicate request dropped");
                        let _ = self.broker.settle(self.consumer, tag, Outcome::Ack);
                        return Ok(None);
                    }
                    seen_remember(&self.seen, u);
                }
                let client_timeout = timeout.as_f64();
                ctxt.insert("client_timeout".into(), timeout);
                let reply = match (&msg_id, reply_q) {
                    (Some(id), Some(q)) => Some(ReplyTo {
                        reply_q: q,
                        msg_id: id.clone(),
                    }),
                    (Some(_), None) => {
                        tracing::warn!(
                            "fake driver: call without _reply_q; its reply will be dropped"
                        );
                        None
                    }
                    _ => None,
                };
                let handle = FakeHandle {
                    broker: self.broker.clone(),
                    consumer: self.consumer,
                    tag,
                    reply,
                    remember: None,
                };
                Ok(Some(
                    IncomingMessage::new(ctxt, msg, Arc::new(handle))
                        .with_msg_id(msg_id)
                        .with_client_timeout(client_timeout)
                        .with_unique_id(unique_id),
                ))
            }
            ListenerKind::Notification => {
                if let Some(u) = &unique_id {
                    if seen_contains(&self.seen, u) {
                        tracing::debug!(unique_id = %u, "fake driver: duplicate notification skipped");
                        let _ = self.broker.settle(self.consumer, tag, Outcome::Ack);
                        return Ok(None);
                    }
                }
                ctxt.entry("client_timeout").or_insert(Value::Null);
                let handle = FakeHandle {
                    broker: self.broker.clone(),
                    consumer: self.consumer,
                    tag,
                    reply: None,
                    remember: unique_id.clone().map(|u| (self.seen.clone(), u)),
                };
                Ok(Some(
                    IncomingMessage::new(ctxt, msg, Arc::new(handle)).with_unique_id(unique_id),
                ))
            }
        }
    }

    fn shutdown(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.broker.close_consumer(self.consumer);
        if let ListenerKind::Rpc { fanout_queue } = &self.kind {
            self.broker.delete_queue(fanout_queue);
        }
    }
}

impl Drop for FakeListener {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Listener for FakeListener {
    fn next(&mut self) -> BoxFuture<'_, Option<Result<IncomingMessage>>> {
        Box::pin(async move {
            loop {
                let delivery = self.rx.recv().await?;
                if delivery.redelivered {
                    tracing::debug!(tag = delivery.tag, "fake driver: redelivered message");
                }
                match self.decode(delivery) {
                    Ok(Some(m)) => return Some(Ok(m)),
                    Ok(None) => continue,
                    Err(e) => return Some(Err(e)),
                }
            }
        })
    }

    fn stop(&mut self) -> BoxFuture<'_, Result<()>> {
        self.broker.cancel(self.consumer);
        Box::pin(std::future::ready(Ok(())))
    }

    fn cleanup(mut self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        self.shutdown();
        Box::pin(std::future::ready(Ok(())))
    }
}

#[derive(Debug, Clone)]
struct ReplyTo {
    reply_q: String,
    msg_id: String,
}

struct FakeHandle {
    broker: Arc<Broker>,
    consumer: u64,
    tag: u64,
    reply: Option<ReplyTo>,
    /// For notifications: remember the `_unique_id` once acknowledged.
    remember: Option<(Seen, String)>,
}

impl FakeHandle {
    /// Publishes a reply body to the caller's reply queue (the default
    /// exchange), going through the wire encoding both ways. A reply whose
    /// queue is gone, or whose call was dropped, is discarded.
    fn send_reply(&self, result: Value, failure: Option<&RemoteError>, ending: bool) -> Result<()> {
        let Some(to) = &self.reply else {
            return Err(Error::Messaging("this message cannot be replied to".into()));
        };
        let mut msg = JsonObject::with_capacity(5);
        msg.insert("result".into(), result);
        msg.insert(
            "failure".into(),
            match failure {
                Some(f) => Value::String(f.to_failure_json()),
                None => Value::Null,
            },
        );
        msg.insert("ending".into(), Value::Bool(ending));
        msg.insert("_msg_id".into(), Value::String(to.msg_id.clone()));
        msg.insert("_unique_id".into(), Value::String(om_core::uuid_hex()));
        let body = envelope::encode(&msg, Format::V2)?;

        let Some(table) = self.broker.reply_table(&to.reply_q) else {
            tracing::debug!(reply_q = %to.reply_q, "fake driver: reply queue gone, reply dropped");
            return Ok(());
        };
        let mut decoded = envelope::decode(&body)?;
        let msg_id = match decoded.shift_remove("_msg_id") {
            Some(Value::String(s)) => s,
            _ => return Err(Error::MalformedMessage("reply without _msg_id".into())),
        };
        decoded.shift_remove("_unique_id");
        let event = reply_event(decoded);
        if !table.deliver(&msg_id, event) {
            tracing::debug!(msg_id = %msg_id, "fake driver: reply for an unknown call dropped");
        }
        Ok(())
    }
}

impl IncomingHandle for FakeHandle {
    fn acknowledge(&self) -> BoxFuture<'_, Result<()>> {
        let r = self.broker.settle(self.consumer, self.tag, Outcome::Ack);
        if r.is_ok() {
            if let Some((seen, id)) = &self.remember {
                seen_remember(seen, id);
            }
        }
        Box::pin(std::future::ready(r))
    }

    fn requeue(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(std::future::ready(self.broker.settle(
            self.consumer,
            self.tag,
            Outcome::Requeue,
        )))
    }

    fn reply(&self, reply: std::result::Result<Value, RemoteError>) -> BoxFuture<'_, Result<()>> {
        let r = match reply {
            Ok(v) => self.send_reply(v, None, true),
            Err(e) => self.send_reply(Value::Null, Some(&e), true),
        };
        Box::pin(std::future::ready(r))
    }

    fn heartbeat(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(std::future::ready(self.send_reply(
            Value::Null,
            None,
            false,
        )))
    }
}

/// Turns a decoded reply message (without `_msg_id` / `_unique_id`) into a
/// [`ReplyEvent`], the way oslo's reply waiter reads it.
fn reply_event(mut msg: JsonObject) -> ReplyEvent {
    let ending = msg.get("ending").and_then(Value::as_bool).unwrap_or(false);
    let result = msg.shift_remove("result").unwrap_or(Value::Null);
    match msg.shift_remove("failure") {
        Some(Value::String(f)) => ReplyEvent::Final(Err(failure_from_json(&f))),
        _ if ending => ReplyEvent::Final(Ok(result)),
        _ if result.is_null() => ReplyEvent::Heartbeat,
        // An old-style partial result: treat it as the final one.
        _ => ReplyEvent::Final(Ok(result)),
    }
}

/// Parses a reply's `failure` string (om-core's codec); text that is not
/// a JSON object becomes a `RemoteError` carrying the raw text.
fn failure_from_json(s: &str) -> RemoteError {
    RemoteError::from_failure_json(s)
        .unwrap_or_else(|_| RemoteError::new("RemoteError", "oslo_messaging.exceptions", s))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn failure_json_round_trip_and_key_order() {
        let mut e = RemoteError::new("ValueError", "builtins", "bad value");
        e.traceback = vec!["Traceback (most recent call last):\n".into()];
        let s = e.to_failure_json();
        assert!(s.starts_with(
            r#"{"class": "ValueError", "module": "builtins", "message": "bad value", "tb": ["#
        ));
        assert!(s.ends_with(r#""args": ["bad value"], "kwargs": {}}"#));
        assert_eq!(failure_from_json(&s), e);
        // The codec is om-core's: Python 2 module names are normalised.
        let py2 =
            failure_from_json(r#"{"class": "KeyError", "module": "exceptions", "message": "k"}"#);
        assert!(py2.is("builtins", "KeyError"));
        let junk = failure_from_json("not json");
        assert_eq!(junk.value, "not json");
    }

    #[test]
    fn reply_events_follow_oslo_rules() {
        let obj = |v: Value| v.as_object().cloned().unwrap();
        assert_eq!(
            reply_event(obj(
                serde_json::json!({"result": null, "failure": null, "ending": false})
            )),
            ReplyEvent::Heartbeat
        );
        assert_eq!(
            reply_event(obj(
                serde_json::json!({"result": 0, "failure": null, "ending": true})
            )),
            ReplyEvent::Final(Ok(Value::from(0)))
        );
        assert_eq!(
            reply_event(obj(
                serde_json::json!({"result": null, "failure": null, "ending": true})
            )),
            ReplyEvent::Final(Ok(Value::Null))
        );
    }
}
