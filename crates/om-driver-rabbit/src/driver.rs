//! [`RabbitDriver`]: the driver contract on top of the publisher, the
//! consuming connections and the reply consumer.

use crate::codec::{self, short_string, MSG_ID, REPLY_Q, TIMEOUT, UNIQUE_ID};
use crate::connect::{Connector, DRIVER};
use crate::consumer::{ConsumeSpec, ConsumerHandle, Deliveries, QueueSpec, Settler};
use crate::kombu_json;
use crate::options::{Compression, RabbitOptions};
use crate::publisher::{ExchangeDecl, Outgoing, Publisher, QueueDecl, Returned, Routing};
use crate::qmanager::QueueManager;
use lapin::message::Delivery;
use lapin::{BasicProperties, ExchangeKind};
use om_driver_api::om_core::envelope::Format;
use om_driver_api::om_core::{uuid_hex, Error, Priority, RemoteError, Result, Target, Value};
use om_driver_api::{
    BoxFuture, Capabilities, Driver, DriverConfig, IncomingHandle, IncomingMessage, ListenOptions,
    Listener, Notification, ReplyEvent, ReplyStream, Retry, RpcRequest,
};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, OnceCell};

/// How many recent `_unique_id`s a listener remembers (oslo's `_MsgIdCache`).
const DUPLICATE_WINDOW: usize = 16;
/// Pause between attempts to deliver a reply whose queue is missing.
const REPLY_RETRY_PAUSE: Duration = Duration::from_millis(250);
/// oslo's `ObsoleteReplyQueuesCache`: size and time to live.
const OBSOLETE_SIZE: usize = 200;
const OBSOLETE_TTL: Duration = Duration::from_secs(60);

/// The RabbitMQ driver (schemes `rabbit` and `kombu`).
///
/// Open it through the registry (`om_driver_rabbit::register()` then
/// `Transport::from_url("rabbit://...")`) or directly with
/// [`RabbitDriver::open`]. Connections are opened lazily: the publishing
/// connection at the first send, the reply consumer at the first call, one
/// consuming connection per listener.
pub struct RabbitDriver {
    inner: Arc<Inner>,
}

struct Inner {
    connector: Arc<Connector>,
    opts: Arc<RabbitOptions>,
    control_exchange: String,
    compression: Option<Compression>,
    publisher: Arc<Publisher>,
    replies: OnceCell<ReplyConsumer>,
    qmanager: Option<QueueManager>,
    closed: AtomicBool,
}

impl std::fmt::Debug for RabbitDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitDriver")
            .field("connector", &self.inner.connector)
            .field("control_exchange", &self.inner.control_exchange)
            .finish_non_exhaustive()
    }
}

impl RabbitDriver {
    /// Opens a driver for `config`: parses and checks the options (failing
    /// fast with `Configuration` errors); connects lazily.
    pub fn open(config: &DriverConfig) -> Result<Self> {
        let opts = Arc::new(RabbitOptions::from_map(&config.effective_options())?);
        Self::with_options(config, opts)
    }

    /// Like [`RabbitDriver::open`] with already parsed options (the
    /// config's option strings are ignored).
    pub fn with_options(config: &DriverConfig, opts: Arc<RabbitOptions>) -> Result<Self> {
        opts.validate()?;
        let connector = Arc::new(Connector::new(&config.url, opts.clone())?);
        let publisher = Arc::new(Publisher::new(connector.clone()));
        let qmanager = opts
            .use_queue_manager
            .then(|| QueueManager::new(&opts.hostname, &opts.processname));
        Ok(RabbitDriver {
            inner: Arc::new(Inner {
                compression: opts.compression()?,
                connector,
                opts,
                control_exchange: config.control_exchange.clone(),
                publisher,
                replies: OnceCell::new(),
                qmanager,
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// The parsed options.
    pub fn options(&self) -> &RabbitOptions {
        &self.inner.opts
    }

    /// The name of this driver's reply queue, once the first call created it.
    pub fn reply_queue(&self) -> Option<&str> {
        self.inner.replies.get().map(|r| r.table.queue.as_str())
    }
}

impl Inner {
    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    fn topic_exchange(&self, name: &str) -> ExchangeDecl {
        ExchangeDecl {
            name: name.to_owned(),
            kind: ExchangeKind::Topic,
            durable: self.opts.durable(),
            auto_delete: self.opts.amqp_auto_delete,
        }
    }

    fn fanout_exchange(&self, topic: &str, for_server: bool) -> ExchangeDecl {
        ExchangeDecl {
            name: format!("{topic}_fanout"),
            kind: ExchangeKind::Fanout,
            durable: self.opts.rabbit_transient_quorum_queue
                || (for_server && self.opts.rabbit_stream_fanout),
            auto_delete: true,
        }
    }

    async fn replies(&self) -> Result<&ReplyConsumer> {
        self.replies
            .get_or_try_init(|| async {
                let queue = match &self.qmanager {
                    Some(qm) => format!("reply_{}", qm.get()),
                    None => format!("reply_{}", uuid_hex()),
                };
                tracing::debug!(queue = %queue, "creating reply queue");
                let table = Arc::new(ReplyTable {
                    queue: queue.clone(),
                    waiters: Mutex::new(HashMap::new()),
                });
                let spec = ConsumeSpec {
                    queues: vec![QueueSpec {
                        name: queue,
                        durable: self.opts.rabbit_transient_quorum_queue,
                        auto_delete: false,
                        arguments: self.opts.reply_queue_arguments(),
                        exchanges: Vec::new(),
                        bindings: Vec::new(),
                        stream: false,
                    }],
                    prefetch: None,
                    no_ack: true,
                    consumer_arguments: self.opts.consumer_arguments(),
                };
                let (handle, mut deliveries) =
                    ConsumerHandle::start(self.connector.clone(), spec).await?;
                let t = table.clone();
                tokio::spawn(async move {
                    while let Some((d, _, _)) = deliveries.next().await {
                        t.dispatch(&d);
                    }
                });
                Ok::<_, Error>(ReplyConsumer { table, handle })
            })
            .await
    }
}

/// The client's reply consumer: one queue, a table of waiting calls.
struct ReplyConsumer {
    table: Arc<ReplyTable>,
    handle: ConsumerHandle,
}

struct Waiter {
    tx: mpsc::UnboundedSender<ReplyEvent>,
    partial: Option<std::result::Result<Value, RemoteError>>,
}

struct ReplyTable {
    queue: String,
    waiters: Mutex<HashMap<String, Waiter>>,
}

impl ReplyTable {
    fn dispatch(&self, d: &Delivery) {
        let (msg_id, part) = match codec::decode_reply(&d.properties, &d.data) {
            Ok(Some(r)) => r,
            Ok(None) => {
                tracing::warn!(queue = %self.queue, "reply without _msg_id dropped");
                return;
            }
            Err(e) => {
                tracing::warn!(queue = %self.queue, error = %e, "undecodable reply dropped");
                return;
            }
        };
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        match waiters.get_mut(&msg_id) {
            Some(w) => {
                if let Some(ev) = codec::fold_reply(part, &mut w.partial) {
                    let _ = w.tx.send(ev);
                }
            }
            None => tracing::info!(msg_id = %msg_id, "no call waiting for this reply; dropped"),
        }
    }
}

/// Unregisters a call when its [`ReplyStream`] is dropped.
struct CallGuard {
    table: Arc<ReplyTable>,
    msg_id: String,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.table
            .waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.msg_id);
    }
}

fn topic_of(target: &Target) -> &str {
    target.topic.as_deref().unwrap_or_default()
}

impl Driver for RabbitDriver {
    fn name(&self) -> &str {
        DRIVER
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }

    async fn send(&self, request: RpcRequest) -> Result<Option<ReplyStream>> {
        let inner = &*self.inner;
        inner.check_open()?;
        request.target.validate_for_send(request.wait_for_reply)?;
        let timeout_json = request.timeout_json();
        let RpcRequest {
            target,
            ctxt,
            message,
            wait_for_reply,
            timeout,
            retry,
            transport_options,
            ..
        } = request;
        let topic = topic_of(&target);
        let mut stream = None;
        let unique_id = Value::String(uuid_hex());
        let body = if wait_for_reply {
            let replies = inner.replies().await?;
            let msg_id = uuid_hex();
            let (tx, rx) = mpsc::unbounded_channel();
            let body = codec::encode_flat_body(
                &message,
                &[
                    (MSG_ID, &Value::String(msg_id.clone())),
                    (REPLY_Q, &Value::String(replies.table.queue.clone())),
                    (TIMEOUT, &timeout_json),
                    (UNIQUE_ID, &unique_id),
                ],
                &ctxt,
                Format::V2,
                inner.compression,
            )?;
            replies
                .table
                .waiters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(msg_id.clone(), Waiter { tx, partial: None });
            let guard = CallGuard {
                table: replies.table.clone(),
                msg_id: msg_id.clone(),
            };
            stream = Some(ReplyStream::new(msg_id, rx, Some(Box::new(guard))));
            body
        } else {
            codec::encode_flat_body(
                &message,
                &[(UNIQUE_ID, &unique_id)],
                &ctxt,
                Format::V2,
                inner.compression,
            )?
        };
        let expiration = if wait_for_reply { timeout } else { None };
        let properties = codec::properties(expiration, inner.compression);
        if target.fanout {
            let decl = inner.fanout_exchange(topic, false);
            let out = Outgoing {
                exchange: &decl.name,
                declare: Some(&decl),
                queue: None,
                routing_key: "",
                body: &body,
                properties,
                routing: Routing::Drop,
            };
            inner.publisher.publish(&out, retry).await?;
        } else {
            let exchange = target.exchange_or(&inner.control_exchange);
            let routing_key = match target.server.as_deref() {
                Some(server) => format!("{topic}.{server}"),
                None => topic.to_owned(),
            };
            let decl = inner.topic_exchange(exchange);
            let out = Outgoing {
                exchange,
                declare: Some(&decl),
                queue: None,
                routing_key: &routing_key,
                body: &body,
                properties,
                routing: if transport_options.at_least_once {
                    Routing::Exact
                } else {
                    Routing::Drop
                },
            };
            inner.publisher.publish(&out, retry).await?;
        }
        Ok(stream)
    }

    async fn send_notification(&self, notification: Notification) -> Result<()> {
        let inner = &*self.inner;
        inner.check_open()?;
        notification.target.validate_for_send(false)?;
        let Notification {
            target,
            ctxt,
            message,
            format,
            retry,
            ..
        } = notification;
        let routing_key = topic_of(&target);
        let exchange = target.exchange_or(&inner.control_exchange);
        let unique_id = Value::String(uuid_hex());
        let body = codec::encode_flat_body(
            &message,
            &[(UNIQUE_ID, &unique_id)],
            &ctxt,
            format,
            inner.compression,
        )?;
        let decl = inner.topic_exchange(exchange);
        let queue = QueueDecl {
            name: routing_key.to_owned(),
            durable: decl.durable,
            auto_delete: decl.auto_delete,
            arguments: inner.opts.topic_queue_arguments(),
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
        };
        let out = Outgoing {
            exchange,
            declare: Some(&decl),
            queue: Some(&queue),
            routing_key,
            body: &body,
            properties: codec::properties(None, inner.compression),
            routing: Routing::Drop,
        };
        inner.publisher.publish(&out, retry).await
    }

    async fn listen(&self, target: Target, options: ListenOptions) -> Result<Box<dyn Listener>> {
        let inner = &self.inner;
        inner.check_open()?;
        target.validate_for_server()?;
        let topic = topic_of(&target).to_owned();
        let server = target.server.clone().unwrap_or_default();
        let exchange = target.exchange_or(&inner.control_exchange).to_owned();
        let xdecl = inner.topic_exchange(&exchange);
        let topic_queue = |name: String| QueueSpec {
            bindings: vec![(exchange.clone(), name.clone())],
            name,
            durable: inner.opts.durable(),
            auto_delete: inner.opts.amqp_auto_delete,
            arguments: inner.opts.topic_queue_arguments(),
            exchanges: vec![xdecl.clone()],
            stream: false,
        };
        let stream = inner.opts.rabbit_stream_fanout;
        let fanout_queue = if stream {
            format!("{topic}_fanout")
        } else {
            match &inner.qmanager {
                Some(qm) => format!("{topic}_fanout_{}", qm.get()),
                None => format!("{topic}_fanout_{}", uuid_hex()),
            }
        };
        let fdecl = inner.fanout_exchange(&topic, true);
        let spec = ConsumeSpec {
            queues: vec![
                topic_queue(topic.clone()),
                topic_queue(format!("{topic}.{server}")),
                QueueSpec {
                    name: fanout_queue.clone(),
                    durable: inner.opts.rabbit_transient_quorum_queue || stream,
                    auto_delete: false,
                    arguments: inner.opts.fanout_queue_arguments(),
                    bindings: vec![(fdecl.name.clone(), topic.clone())],
                    exchanges: vec![fdecl],
                    stream,
                },
            ],
            prefetch: inner.opts.prefetch(options.prefetch),
            no_ack: false,
            consumer_arguments: inner.opts.consumer_arguments(),
        };
        let delete_on_cleanup = (!stream && inner.qmanager.is_none()).then_some(fanout_queue);
        let listener = RabbitListener::start(inner, spec, ListenerKind::Rpc, delete_on_cleanup)
            .await
            .map_err(|e| listen_error(&target, e))?;
        Ok(Box::new(listener))
    }

    async fn listen_for_notifications(
        &self,
        targets: Vec<(Target, Priority)>,
        pool: Option<String>,
        options: ListenOptions,
    ) -> Result<Box<dyn Listener>> {
        let inner = &self.inner;
        inner.check_open()?;
        let mut queues: Vec<QueueSpec> = Vec::new();
        for (target, priority) in &targets {
            target.validate_for_notification()?;
            let exchange = target.exchange_or(&inner.control_exchange).to_owned();
            let key = format!("{}.{}", topic_of(target), priority.as_lower());
            let name = pool.clone().unwrap_or_else(|| key.clone());
            let xdecl = inner.topic_exchange(&exchange);
            let binding = (exchange.clone(), key);
            match queues.iter_mut().find(|q| q.name == name) {
                Some(q) => {
                    if !q.bindings.contains(&binding) {
                        q.bindings.push(binding);
                    }
                    if !q.exchanges.iter().any(|x| x.name == exchange) {
                        q.exchanges.push(xdecl);
                    }
                }
                None => queues.push(QueueSpec {
                    name,
                    durable: inner.opts.durable(),
                    auto_delete: inner.opts.amqp_auto_delete,
                    arguments: inner.opts.topic_queue_arguments(),
                    exchanges: vec![xdecl],
                    bindings: vec![binding],
                    stream: false,
                }),
            }
        }
        if queues.is_empty() {
            return Err(Error::ServerListen {
                target: "[]".into(),
                reason: "a notification listener needs at least one (target, priority)".into(),
            });
        }
        let spec = ConsumeSpec {
            queues,
            prefetch: inner.opts.prefetch(options.prefetch),
            no_ack: false,
            consumer_arguments: inner.opts.consumer_arguments(),
        };
        let what = targets.first().map(|(t, _)| t.clone()).unwrap_or_default();
        let listener = RabbitListener::start(inner, spec, ListenerKind::Notification, None)
            .await
            .map_err(|e| listen_error(&what, e))?;
        Ok(Box::new(listener))
    }

    async fn cleanup(&self) {
        let inner = &self.inner;
        inner.closed.store(true, Ordering::Release);
        inner.publisher.close().await;
        if let Some(r) = inner.replies.get() {
            r.handle.close(Vec::new()).await;
            r.table
                .waiters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        }
    }
}

fn listen_error(target: &Target, e: Error) -> Error {
    match e {
        Error::ServerListen { reason, .. } => Error::ServerListen {
            target: target.to_string(),
            reason,
        },
        other => other,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListenerKind {
    Rpc,
    Notification,
}

/// State shared by a listener and the handles of its messages.
struct ListenerShared {
    publisher: Arc<Publisher>,
    compression: Option<Compression>,
    missing_reply_timeout: Duration,
    seen: Mutex<VecDeque<String>>,
    obsolete: Mutex<ObsoleteReplyQueues>,
}

/// Reply queues found missing (oslo's `ObsoleteReplyQueuesCache`): replies
/// to them are dropped at once for [`OBSOLETE_TTL`] after they were found
/// missing; at most [`OBSOLETE_SIZE`] are kept, the oldest leaving first.
#[derive(Debug, Default)]
struct ObsoleteReplyQueues(HashMap<String, Instant>);

impl ObsoleteReplyQueues {
    /// Whether a reply to `reply_q` should be sent at `now`.
    fn valid(&mut self, reply_q: &str, now: Instant) -> bool {
        self.0
            .retain(|_, t| now.saturating_duration_since(*t) < OBSOLETE_TTL);
        !self.0.contains_key(reply_q)
    }

    /// Records `reply_q` as found missing at `now`.
    fn mark(&mut self, reply_q: &str, now: Instant) {
        if self.0.len() >= OBSOLETE_SIZE && !self.0.contains_key(reply_q) {
            if let Some(oldest) = self
                .0
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| k.clone())
            {
                self.0.remove(&oldest);
            }
        }
        self.0.insert(reply_q.to_owned(), now);
    }
}

impl ListenerShared {
    fn seen(&self, id: &str) -> bool {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|s| s == id)
    }

    fn remember(&self, id: &str) {
        let mut s = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if s.iter().any(|x| x == id) {
            return;
        }
        if s.len() >= DUPLICATE_WINDOW {
            s.pop_front();
        }
        s.push_back(id.to_owned());
    }

    fn forget(&self, id: &str) {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|s| s != id);
    }

    fn reply_q_valid(&self, reply_q: &str) -> bool {
        self.obsolete
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .valid(reply_q, Instant::now())
    }

    /// Publishes one reply (or heartbeat) on the reply channel. Another
    /// reply that the broker returned and whose return reached this
    /// publish's confirm is delivered again in the background.
    ///
    /// Errors: `MessageUndeliverable` when this message was returned.
    async fn publish_reply(
        self: &Arc<Self>,
        reply_q: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<()> {
        let out = Outgoing {
            exchange: "",
            declare: None,
            queue: None,
            routing_key: reply_q,
            body,
            properties,
            routing: Routing::Pipelined,
        };
        if let Some(returned) = self
            .publisher
            .publish_pipelined(&out, Retry::Forever)
            .await?
        {
            redeliver(self.clone(), returned);
        }
        Ok(())
    }

    /// Delivers a reply, publishing it again while its queue is missing,
    /// for up to `kombu_missing_consumer_retry_timeout`; then marks the
    /// queue obsolete and drops the reply, as oslo does. `msg_id` (the
    /// call's) is for the logs.
    async fn deliver_reply(
        self: &Arc<Self>,
        reply_q: &str,
        msg_id: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<()> {
        if !self.reply_q_valid(reply_q) {
            tracing::warn!(reply_q = %reply_q, msg_id = %msg_id, "reply queue doesn't exist, reply dropped");
            return Ok(());
        }
        let started = Instant::now();
        loop {
            match self.publish_reply(reply_q, body, properties.clone()).await {
                Ok(()) => return Ok(()),
                Err(Error::MessageUndeliverable { .. }) => {
                    if started.elapsed() >= self.missing_reply_timeout {
                        self.mark_obsolete(reply_q);
                        tracing::error!(reply_q = %reply_q, msg_id = %msg_id,
                            "the reply failed to send after {:?} due to a missing queue; abandoning",
                            self.missing_reply_timeout);
                        return Ok(());
                    }
                    tracing::debug!(reply_q = %reply_q, msg_id = %msg_id, "reply queue missing, retrying");
                    tokio::time::sleep(REPLY_RETRY_PAUSE).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn mark_obsolete(&self, reply_q: &str) {
        self.obsolete
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .mark(reply_q, Instant::now());
    }
}

/// Delivers, in the background, a reply that the broker returned to
/// another publish's confirm (see [`Returned`]).
fn redeliver(shared: Arc<ListenerShared>, returned: Returned) {
    let task: BoxFuture<'static, ()> = Box::pin(async move {
        let Returned {
            routing_key,
            body,
            properties,
        } = returned;
        // Known here only by its bytes: its msg_id is read back for the logs.
        let msg_id = match codec::decode_reply(&properties, &body) {
            Ok(Some((id, _))) => id,
            _ => "(unknown)".to_owned(),
        };
        if let Err(e) = shared
            .deliver_reply(&routing_key, &msg_id, &body, properties)
            .await
        {
            tracing::warn!(reply_q = %routing_key, msg_id = %msg_id, error = %e,
                "a returned reply could not be delivered again");
        }
    });
    tokio::spawn(task);
}

/// A subscription of an RPC server or a notification listener.
struct RabbitListener {
    deliveries: Deliveries,
    handle: ConsumerHandle,
    kind: ListenerKind,
    shared: Arc<ListenerShared>,
    delete_on_cleanup: Option<String>,
}

impl RabbitListener {
    async fn start(
        inner: &Inner,
        spec: ConsumeSpec,
        kind: ListenerKind,
        delete_on_cleanup: Option<String>,
    ) -> Result<Self> {
        let (handle, deliveries) = ConsumerHandle::start(inner.connector.clone(), spec).await?;
        Ok(RabbitListener {
            deliveries,
            handle,
            kind,
            shared: Arc::new(ListenerShared {
                publisher: inner.publisher.clone(),
                compression: inner.compression,
                missing_reply_timeout: Duration::from_secs(
                    u64::try_from(inner.opts.kombu_missing_consumer_retry_timeout).unwrap_or(0),
                ),
                seen: Mutex::new(VecDeque::with_capacity(DUPLICATE_WINDOW)),
                obsolete: Mutex::new(ObsoleteReplyQueues::default()),
            }),
            delete_on_cleanup,
        })
    }

    /// Decodes one delivery; `Ok(None)` for a duplicate (acknowledged and skipped).
    async fn decode(
        shared: &Arc<ListenerShared>,
        kind: ListenerKind,
        d: Delivery,
        settler: Settler,
    ) -> Result<Option<IncomingMessage>> {
        let split = match codec::decode_request(&d.properties, &d.data) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, routing_key = %d.routing_key, "undecodable message rejected");
                if let Err(re) = settler.reject(false).await {
                    tracing::warn!(error = %re, "could not reject the undecodable message");
                }
                return Err(e);
            }
        };
        let [msg_id, reply_q, timeout, unique_id] = split.reserved;
        let (mut ctxt, mut msg) = (split.ctxt, split.message);
        if split.format == Format::V1 {
            // A bare body went through kombu's JSON encoder in Python.
            kombu_json::plain_values(&mut msg);
            kombu_json::plain_values(&mut ctxt);
        }
        let msg_id = codec::string(msg_id);
        let reply_q = codec::string(reply_q);
        let timeout = timeout.unwrap_or(Value::Null);
        let unique_id = codec::string(unique_id);
        if let Some(u) = &unique_id {
            if shared.seen(u) {
                tracing::debug!(unique_id = %u, "duplicate message dropped");
                let _ = settler.ack().await;
                return Ok(None);
            }
            if kind == ListenerKind::Rpc {
                shared.remember(u);
            }
        }
        let client_timeout = timeout.as_f64();
        ctxt.insert("client_timeout".into(), timeout);
        let reply = match (kind, &msg_id, reply_q) {
            (ListenerKind::Rpc, Some(id), Some(q)) => Some((q, id.clone())),
            (ListenerKind::Rpc, Some(_), None) => {
                tracing::warn!("call without _reply_q; its reply will be dropped");
                None
            }
            _ => None,
        };
        let handle = RabbitHandle {
            settler,
            kind,
            reply,
            unique_id: unique_id.clone(),
            shared: shared.clone(),
        };
        let mut m = IncomingMessage::new(ctxt, msg, Arc::new(handle)).with_unique_id(unique_id);
        if kind == ListenerKind::Rpc {
            m = m.with_msg_id(msg_id).with_client_timeout(client_timeout);
        }
        Ok(Some(m))
    }
}

impl Listener for RabbitListener {
    fn next(&mut self) -> BoxFuture<'_, Option<Result<IncomingMessage>>> {
        Box::pin(async move {
            loop {
                let (d, _, settler) = self.deliveries.next().await?;
                match Self::decode(&self.shared, self.kind, d, settler).await {
                    Ok(Some(m)) => return Some(Ok(m)),
                    Ok(None) => continue,
                    Err(e) => return Some(Err(e)),
                }
            }
        })
    }

    fn stop(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.handle.stop().await;
            Ok(())
        })
    }

    fn cleanup(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            let delete = self.delete_on_cleanup.clone().into_iter().collect();
            self.handle.close(delete).await;
            Ok(())
        })
    }
}

/// The broker-side actions on one received message.
struct RabbitHandle {
    settler: Settler,
    kind: ListenerKind,
    /// `(reply queue, msg_id)` of a call.
    reply: Option<(String, String)>,
    unique_id: Option<String>,
    shared: Arc<ListenerShared>,
}

impl RabbitHandle {
    /// The reply queue, the call's msg_id, and the body and properties of
    /// a reply (`None`: a heartbeat) to this call; `what` names the
    /// operation in the error for a message that is not a call.
    fn reply_message(
        &self,
        reply: Option<&std::result::Result<Value, RemoteError>>,
        what: &str,
    ) -> Result<(&str, &str, Vec<u8>, BasicProperties)> {
        let Some((reply_q, msg_id)) = &self.reply else {
            return Err(Error::Messaging(format!("this message cannot be {what}")));
        };
        let body = codec::encode_reply(msg_id, reply, self.shared.compression)?;
        short_string("reply queue", reply_q)?;
        Ok((
            reply_q,
            msg_id,
            body,
            codec::properties(None, self.shared.compression),
        ))
    }
}

impl IncomingHandle for RabbitHandle {
    fn acknowledge(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let r = match self.settler.ack().await {
                Ok(true) => Ok(()),
                Ok(false) => Err(Error::transport(
                    DRIVER,
                    "the message was already acknowledged or rejected",
                    false,
                )),
                Err(e) => Err(Error::transport(
                    DRIVER,
                    format!(
                        "acknowledge failed: {e} (if its channel is gone, the broker will deliver it again)"
                    ),
                    false,
                )),
            };
            if let Some(u) = &self.unique_id {
                match (self.kind, r.is_ok()) {
                    (ListenerKind::Notification, true) => self.shared.remember(u),
                    (ListenerKind::Rpc, false) => self.shared.forget(u),
                    _ => {}
                }
            }
            r
        })
    }

    fn requeue(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            match self.settler.reject(true).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(Error::transport(
                    DRIVER,
                    "the message was already acknowledged or rejected",
                    false,
                )),
                Err(e) => Err(Error::transport(
                    DRIVER,
                    format!("requeue failed: {e}"),
                    false,
                )),
            }
        })
    }

    fn reply(&self, reply: std::result::Result<Value, RemoteError>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let (reply_q, msg_id, body, properties) =
                self.reply_message(Some(&reply), "replied to")?;
            self.shared
                .deliver_reply(reply_q, msg_id, &body, properties)
                .await
        })
    }

    fn heartbeat(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let (reply_q, _, body, properties) = self.reply_message(None, "heartbeated")?;
            match self.shared.publish_reply(reply_q, &body, properties).await {
                Err(Error::MessageUndeliverable { .. }) => Err(Error::MessageDeliveryFailure(
                    "Heartbeat send failed. Missing queue".into(),
                )),
                other => other,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// test-cases 66: replies to a queue found missing are dropped for 60 s,
    /// then sent again; the cache keeps the 200 most recent queues.
    #[test]
    fn obsolete_reply_queues_expire_after_a_minute() {
        let t0 = Instant::now();
        let mut o = ObsoleteReplyQueues::default();
        assert!(o.valid("reply_a", t0));
        o.mark("reply_a", t0);
        assert!(!o.valid("reply_a", t0));
        assert!(!o.valid("reply_a", t0 + Duration::from_secs(59)));
        assert!(o.valid("reply_b", t0 + Duration::from_secs(59)));
        assert!(o.valid("reply_a", t0 + OBSOLETE_TTL));
        // Marked again later: dropped again for a minute from then.
        let t1 = t0 + Duration::from_secs(120);
        o.mark("reply_a", t1);
        assert!(!o.valid("reply_a", t1 + Duration::from_secs(30)));
        assert!(o.valid("reply_a", t1 + Duration::from_secs(61)));
    }

    #[test]
    fn obsolete_reply_queues_keep_the_most_recent_200() {
        let t0 = Instant::now();
        let mut o = ObsoleteReplyQueues::default();
        for i in 0..OBSOLETE_SIZE {
            o.mark(&format!("q{i}"), t0 + Duration::from_millis(i as u64));
        }
        assert!(!o.valid("q0", t0 + Duration::from_secs(1)));
        o.mark("q-new", t0 + Duration::from_secs(1));
        let now = t0 + Duration::from_secs(2);
        assert!(o.valid("q0", now), "the oldest made room");
        assert!(!o.valid("q1", now) && !o.valid("q-new", now));
        // Marking one already there evicts nothing.
        o.mark("q1", now);
        assert!(!o.valid("q2", now));
    }
}
