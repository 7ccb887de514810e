//! Messages crossing the driver boundary, in both directions.

use crate::BoxFuture;
use om_core::envelope::Format;
use om_core::{Error, JsonObject, RemoteError, Result, Target, Value};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often to retry connecting and publishing (oslo's `retry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retry {
    /// Retry forever (oslo `None` or `-1`).
    #[default]
    Forever,
    /// At most this many retries after the first attempt (`0`: no retry).
    Limited(u32),
}

impl Retry {
    /// From oslo's integer convention: negative → forever, `n ≥ 0` → `n`.
    pub fn from_oslo(value: Option<i64>) -> Self {
        match value {
            None => Retry::Forever,
            Some(n) if n < 0 => Retry::Forever,
            Some(n) => Retry::Limited(u32::try_from(n).unwrap_or(u32::MAX)),
        }
    }

    /// Whether another attempt is allowed after `attempts` failed ones.
    pub fn allows(&self, attempts: u32) -> bool {
        match self {
            Retry::Forever => true,
            Retry::Limited(n) => attempts <= *n,
        }
    }
}

/// Per-client transport options (oslo's `TransportOptions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TransportOptions {
    /// Publish requests as `mandatory`, so a request no queue accepts fails
    /// at once with `MessageUndeliverable` (RabbitMQ) instead of timing out.
    pub at_least_once: bool,
}

impl TransportOptions {
    /// Options with `at_least_once` set as given.
    pub fn at_least_once(at_least_once: bool) -> Self {
        TransportOptions { at_least_once }
    }
}

/// An outgoing RPC request (call or cast), as handed to [`crate::Driver::send`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RpcRequest {
    /// Where to send it. `exchange: None` means the transport's control exchange.
    pub target: Target,
    /// The serialized request context.
    pub ctxt: JsonObject,
    /// `method`, `args`, and `namespace` / `version` when the target has them.
    pub message: JsonObject,
    /// `true` for a call (a [`ReplyStream`] is returned), `false` for a cast.
    pub wait_for_reply: bool,
    /// The call's overall timeout (RabbitMQ copies it into `expiration`).
    pub timeout: Option<Duration>,
    /// The call-monitor timeout in seconds, sent as `_timeout`; the server
    /// heartbeats every `floor(value)/2` seconds when it is at least 2.
    pub call_monitor_timeout: Option<f64>,
    /// Connection and publish retries.
    pub retry: Retry,
    /// Per-client transport options.
    pub transport_options: TransportOptions,
}

impl RpcRequest {
    /// A cast of `message` to `target`, with an empty context and defaults.
    pub fn cast(target: Target, message: JsonObject) -> Self {
        RpcRequest {
            target,
            ctxt: JsonObject::new(),
            message,
            wait_for_reply: false,
            timeout: None,
            call_monitor_timeout: None,
            retry: Retry::default(),
            transport_options: TransportOptions::default(),
        }
    }

    /// A call of `message` to `target` with the given overall timeout.
    pub fn call(target: Target, message: JsonObject, timeout: Duration) -> Self {
        RpcRequest {
            wait_for_reply: true,
            timeout: Some(timeout),
            ..RpcRequest::cast(target, message)
        }
    }

    /// Sets the context.
    pub fn with_context(mut self, ctxt: JsonObject) -> Self {
        self.ctxt = ctxt;
        self
    }

    /// Sets the call-monitor timeout (seconds).
    pub fn with_call_monitor_timeout(mut self, seconds: Option<f64>) -> Self {
        self.call_monitor_timeout = seconds;
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the transport options.
    pub fn with_transport_options(mut self, options: TransportOptions) -> Self {
        self.transport_options = options;
        self
    }

    /// The `_timeout` value as Python sends it: an integer when the number
    /// is whole, a float otherwise, `null` when unset.
    pub fn timeout_json(&self) -> Value {
        monitor_timeout_json(self.call_monitor_timeout)
    }
}

/// Encodes a call-monitor timeout the way Python sends `_timeout`.
pub fn monitor_timeout_json(value: Option<f64>) -> Value {
    match value {
        None => Value::Null,
        Some(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => Value::from(v as i64),
        Some(v) => serde_json::Number::from_f64(v)
            .map(Value::Number)
            .unwrap_or(Value::Null),
    }
}

/// An outgoing notification, as handed to [`crate::Driver::send_notification`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Notification {
    /// `topic` is `<topic>.<priority>`; `exchange: None` means the control exchange.
    pub target: Target,
    /// The serialized context (empty for plain-dict contexts, as oslo does).
    pub ctxt: JsonObject,
    /// `message_id`, `publisher_id`, `event_type`, `priority`, `payload`, `timestamp`.
    pub message: JsonObject,
    /// 2.0 envelope (`messagingv2`) or bare object (`messaging`).
    pub format: Format,
    /// Connection and publish retries.
    pub retry: Retry,
}

impl Notification {
    /// A notification of `message` to `target` in `format`.
    pub fn new(target: Target, message: JsonObject, format: Format) -> Self {
        Notification {
            target,
            ctxt: JsonObject::new(),
            message,
            format,
            retry: Retry::default(),
        }
    }

    /// Sets the context.
    pub fn with_context(mut self, ctxt: JsonObject) -> Self {
        self.ctxt = ctxt;
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }
}

/// One message a call receives back.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyEvent {
    /// A call-monitor heartbeat (`ending: false`, no result, no failure).
    Heartbeat,
    /// The final reply: a result, or the remote failure.
    Final(std::result::Result<Value, RemoteError>),
}

/// The replies of one call: heartbeats, then one final reply.
///
/// Created by a driver with [`ReplyStream::new`]; the driver keeps the
/// sender side registered under the call's `_msg_id` until the guard is
/// dropped (which happens when the stream is dropped).
pub struct ReplyStream {
    msg_id: String,
    rx: mpsc::UnboundedReceiver<ReplyEvent>,
    _guard: Option<Box<dyn Send + Sync>>,
}

impl ReplyStream {
    /// A stream for call `msg_id` reading from `rx`; `guard` is dropped with
    /// the stream (use it to unregister the call from the driver's table).
    pub fn new(
        msg_id: impl Into<String>,
        rx: mpsc::UnboundedReceiver<ReplyEvent>,
        guard: Option<Box<dyn Send + Sync>>,
    ) -> Self {
        ReplyStream {
            msg_id: msg_id.into(),
            rx,
            _guard: guard,
        }
    }

    /// The call's `_msg_id`.
    pub fn msg_id(&self) -> &str {
        &self.msg_id
    }

    /// The next reply message; `None` if the driver dropped the call (for
    /// example on shutdown).
    pub async fn next(&mut self) -> Option<ReplyEvent> {
        self.rx.recv().await
    }
}

impl fmt::Debug for ReplyStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyStream")
            .field("msg_id", &self.msg_id)
            .finish()
    }
}

/// The broker-side actions on one received message, implemented by drivers.
pub trait IncomingHandle: Send + Sync + 'static {
    /// Acknowledges the message (it will not be delivered again).
    fn acknowledge(&self) -> BoxFuture<'_, Result<()>>;
    /// Returns the message to the broker for redelivery.
    fn requeue(&self) -> BoxFuture<'_, Result<()>>;
    /// Sends the final reply of a call (no-op for casts).
    fn reply(&self, reply: std::result::Result<Value, RemoteError>) -> BoxFuture<'_, Result<()>> {
        let _ = reply;
        Box::pin(async { Err(Error::Messaging("this message cannot be replied to".into())) })
    }
    /// Sends a call-monitor heartbeat to the caller.
    fn heartbeat(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async {
            Err(Error::Messaging(
                "this message cannot be heartbeated".into(),
            ))
        })
    }
}

/// A message received by a [`Listener`]: decoded, context unpacked, with the
/// handle to acknowledge, requeue, reply to or heartbeat it.
#[derive(Clone)]
#[non_exhaustive]
pub struct IncomingMessage {
    /// The unpacked context. For RPC requests it includes `client_timeout`
    /// (the request's `_timeout`), as oslo hands it to endpoints.
    pub ctxt: JsonObject,
    /// The message without transport keys: `method` / `args` / `namespace` /
    /// `version` for RPC; the notification fields for notifications.
    pub message: JsonObject,
    /// The call's `_msg_id`; `None` for casts and notifications.
    pub msg_id: Option<String>,
    /// The request's `_timeout` (call-monitor timeout in seconds).
    pub client_timeout: Option<f64>,
    /// The `_unique_id`, for duplicate detection.
    pub unique_id: Option<String>,
    handle: Arc<dyn IncomingHandle>,
}

impl IncomingMessage {
    /// Builds an incoming message around a driver handle.
    pub fn new(ctxt: JsonObject, message: JsonObject, handle: Arc<dyn IncomingHandle>) -> Self {
        IncomingMessage {
            ctxt,
            message,
            msg_id: None,
            client_timeout: None,
            unique_id: None,
            handle,
        }
    }

    /// Sets the call id.
    pub fn with_msg_id(mut self, msg_id: Option<String>) -> Self {
        self.msg_id = msg_id;
        self
    }

    /// Sets the call-monitor timeout.
    pub fn with_client_timeout(mut self, client_timeout: Option<f64>) -> Self {
        self.client_timeout = client_timeout;
        self
    }

    /// Sets the unique id.
    pub fn with_unique_id(mut self, unique_id: Option<String>) -> Self {
        self.unique_id = unique_id;
        self
    }

    /// Whether the sender waits for a reply.
    pub fn is_call(&self) -> bool {
        self.msg_id.is_some()
    }

    /// Acknowledges the message.
    pub async fn acknowledge(&self) -> Result<()> {
        self.handle.acknowledge().await
    }

    /// Requeues the message.
    pub async fn requeue(&self) -> Result<()> {
        self.handle.requeue().await
    }

    /// Sends the final reply of a call. A no-op returning `Ok` for casts.
    pub async fn reply(&self, reply: std::result::Result<Value, RemoteError>) -> Result<()> {
        if self.msg_id.is_none() {
            return Ok(());
        }
        self.handle.reply(reply).await
    }

    /// Sends a heartbeat to the caller.
    pub async fn heartbeat(&self) -> Result<()> {
        self.handle.heartbeat().await
    }

    /// The driver handle (clone it to heartbeat from another task).
    pub fn handle(&self) -> Arc<dyn IncomingHandle> {
        self.handle.clone()
    }
}

impl fmt::Debug for IncomingMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IncomingMessage")
            .field("message", &self.message)
            .field("ctxt_keys", &self.ctxt.keys().collect::<Vec<_>>())
            .field("msg_id", &self.msg_id)
            .field("client_timeout", &self.client_timeout)
            .field("unique_id", &self.unique_id)
            .finish()
    }
}

/// Options for [`crate::Driver::listen`] and
/// [`crate::Driver::listen_for_notifications`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenOptions {
    /// Upper bound of unacknowledged messages the broker may push at once
    /// (`None`: the driver's configured default).
    pub prefetch: Option<u16>,
}

impl ListenOptions {
    /// Sets the prefetch bound.
    pub fn with_prefetch(mut self, prefetch: Option<u16>) -> Self {
        self.prefetch = prefetch;
        self
    }
}

/// A subscription opened by [`crate::Driver::listen`] or
/// [`crate::Driver::listen_for_notifications`].
pub trait Listener: Send + 'static {
    /// The next message. `Some(Err(_))` reports a message that could not be
    /// decoded (already rejected by the driver) or a connection problem the
    /// driver is recovering from; the listener goes on. `None` once the
    /// listener was stopped and every fetched message was handed out.
    fn next(&mut self) -> BoxFuture<'_, Option<Result<IncomingMessage>>>;

    /// Stops taking new messages from the broker. Messages already fetched
    /// are still returned by [`Listener::next`] (then `None`); unfetched ones
    /// stay on the broker.
    fn stop(&mut self) -> BoxFuture<'_, Result<()>>;

    /// Releases the subscription's resources (closes its connection;
    /// RabbitMQ deletes the server's fanout queue).
    fn cleanup(self: Box<Self>) -> BoxFuture<'static, Result<()>>;
}
