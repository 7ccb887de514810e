//! [`RpcClient`]: calls and casts with oslo.messaging's semantics
//! (`overview.md` §4).

use crate::error::RemoteException;
use om_driver_api::om_core::context::json_kind;
use om_driver_api::om_core::{
    version, Context, DynSerializer, Error, JsonObject, NoOpSerializer, RemoteError, Result,
    Target, Value,
};
use om_driver_api::{ReplyEvent, Retry, RpcRequest, Transport, TransportOptions};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::field::Empty;
use tracing::Instrument;

/// Default overall `call()` timeout: `[DEFAULT] rpc_response_timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A call-monitor timeout in seconds, as oslo's `call_monitor_timeout`
/// (int or float). Built from a number of seconds or a [`Duration`].
///
/// It travels in the request as `_timeout` (an integer when whole); the
/// server heartbeats every `floor(value)/2` seconds when that is at least
/// one second, and the client fails the call with `MessagingTimeout` when
/// no heartbeat or reply came for `value` seconds.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct CallMonitorTimeout(pub f64);

impl CallMonitorTimeout {
    /// The value in seconds.
    pub fn seconds(self) -> f64 {
        self.0
    }

    /// The client-side clock; `None` when the value is not positive (oslo
    /// treats a zero timeout as "no call monitoring").
    fn clock(self) -> Option<Duration> {
        if self.0.is_finite() && self.0 > 0.0 {
            Duration::try_from_secs_f64(self.0).ok()
        } else {
            None
        }
    }
}

impl From<f64> for CallMonitorTimeout {
    fn from(v: f64) -> Self {
        CallMonitorTimeout(v)
    }
}

impl From<f32> for CallMonitorTimeout {
    fn from(v: f32) -> Self {
        CallMonitorTimeout(f64::from(v))
    }
}

impl From<u32> for CallMonitorTimeout {
    fn from(v: u32) -> Self {
        CallMonitorTimeout(f64::from(v))
    }
}

impl From<i32> for CallMonitorTimeout {
    fn from(v: i32) -> Self {
        CallMonitorTimeout(f64::from(v))
    }
}

impl From<u64> for CallMonitorTimeout {
    fn from(v: u64) -> Self {
        CallMonitorTimeout(v as f64)
    }
}

impl From<Duration> for CallMonitorTimeout {
    fn from(d: Duration) -> Self {
        CallMonitorTimeout(d.as_secs_f64())
    }
}

#[derive(Clone)]
struct Settings {
    target: Target,
    timeout: Option<Duration>,
    version_cap: Option<String>,
    retry: Retry,
    call_monitor_timeout: Option<CallMonitorTimeout>,
    transport_options: TransportOptions,
}

struct Shared {
    transport: Transport,
    serializer: DynSerializer,
    allowed_remote_exmods: Vec<String>,
}

/// An RPC client: sends calls (waiting for one reply) and casts (fire and
/// forget, possibly fanout) to a [`Target`] over a [`Transport`].
///
/// Cheap to clone; [`RpcClient::prepare`] derives clients with some fields
/// overridden, sharing the transport and serializer.
///
/// ```no_run
/// # async fn demo() -> om_rpc::om_core::Result<()> {
/// use om_rpc::{RpcClient, om_core::{Context, Target}};
/// use std::time::Duration;
/// let transport = om_rpc::Transport::from_url("fake://").await?;
/// let client = RpcClient::builder(transport, Target::new("compute"))
///     .timeout(Duration::from_secs(10))
///     .version_cap("2.4")
///     .build();
/// let sum: i64 = client
///     .prepare().version("2.1").server("host1").build()?
///     .call(&Context::new(), "add", serde_json::json!({"a": 1, "b": 2}))
///     .await?;
/// # let _ = sum; Ok(()) }
/// ```
///
/// # Remote failures and `allowed_remote_exmods`
///
/// A failure raised by the remote method is always returned as
/// [`Error::Remote`] carrying the class, module, message, traceback, args
/// and kwargs. Match it by class with [`crate::RemoteErrorExt`]. A Python
/// client would re-raise the remote class itself only when its module is
/// `builtins` (or `exceptions`) or listed in `allowed_remote_exmods`, and a
/// generic `RemoteError` otherwise; [`RpcClient::remote_exception`] tells
/// which of the two applies for this client's list.
#[derive(Clone)]
pub struct RpcClient {
    settings: Arc<Settings>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("transport", &self.shared.transport)
            .field("target", &self.settings.target)
            .field("timeout", &self.settings.timeout)
            .field("version_cap", &self.settings.version_cap)
            .field("retry", &self.settings.retry)
            .field("call_monitor_timeout", &self.settings.call_monitor_timeout)
            .finish_non_exhaustive()
    }
}

/// Builds an [`RpcClient`] (oslo's `get_rpc_client` keyword arguments).
pub struct RpcClientBuilder {
    transport: Transport,
    settings: Settings,
    serializer: Option<DynSerializer>,
    allowed_remote_exmods: Vec<String>,
}

impl RpcClientBuilder {
    /// Overall time limit of `call()` (default 60 s, oslo's
    /// `rpc_response_timeout`). Never extended by heartbeats.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = Some(timeout);
        self
    }

    /// Highest version this client may send (`RPCVersionCapError` otherwise).
    pub fn version_cap(mut self, cap: impl Into<String>) -> Self {
        self.settings.version_cap = Some(cap.into());
        self
    }

    /// Connection and publish retries (default: forever).
    pub fn retry(mut self, retry: Retry) -> Self {
        self.settings.retry = retry;
        self
    }

    /// Heartbeat-based liveness timeout of calls, in seconds or as a
    /// [`Duration`] (see [`CallMonitorTimeout`]).
    pub fn call_monitor_timeout(mut self, timeout: impl Into<CallMonitorTimeout>) -> Self {
        self.settings.call_monitor_timeout = Some(timeout.into());
        self
    }

    /// Per-client transport options (e.g. `at_least_once`).
    pub fn transport_options(mut self, options: TransportOptions) -> Self {
        self.settings.transport_options = options;
        self
    }

    /// The serializer for arguments, results and context (default no-op).
    pub fn serializer(mut self, serializer: DynSerializer) -> Self {
        self.serializer = Some(serializer);
        self
    }

    /// Python modules whose exceptions a Python client would re-create
    /// (see [`RpcClient::remote_exception`]).
    pub fn allowed_remote_exmods<I, S>(mut self, modules: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_remote_exmods = modules.into_iter().map(Into::into).collect();
        self
    }

    /// Builds the client. Nothing is validated or sent yet; the target is
    /// checked when a message is sent, as oslo does.
    pub fn build(self) -> RpcClient {
        RpcClient {
            settings: Arc::new(self.settings),
            shared: Arc::new(Shared {
                transport: self.transport,
                serializer: self.serializer.unwrap_or_else(|| Arc::new(NoOpSerializer)),
                allowed_remote_exmods: self.allowed_remote_exmods,
            }),
        }
    }
}

/// Overrides for [`RpcClient::prepare`]; finish with [`Prepare::build`] (or
/// call [`Prepare::call`] / [`Prepare::cast`] directly).
#[must_use = "a prepared context does nothing until built or used"]
pub struct Prepare<'a> {
    client: &'a RpcClient,
    settings: Settings,
}

impl Prepare<'_> {
    /// Overrides the exchange.
    pub fn exchange(mut self, exchange: impl Into<String>) -> Self {
        self.settings.target.exchange = Some(exchange.into());
        self
    }

    /// Overrides the topic.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.settings.target.topic = Some(topic.into());
        self
    }

    /// Overrides the namespace.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.settings.target.namespace = Some(namespace.into());
        self
    }

    /// Clears the namespace (null namespace).
    pub fn no_namespace(mut self) -> Self {
        self.settings.target.namespace = None;
        self
    }

    /// Overrides the version the request needs; validated by
    /// [`Prepare::build`] (`major.minor[.rev]` with integer parts).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.settings.target.version = Some(version.into());
        self
    }

    /// Clears the version (the request carries none; servers treat it as 1.0).
    pub fn no_version(mut self) -> Self {
        self.settings.target.version = None;
        self
    }

    /// Sends to one server only.
    pub fn server(mut self, server: impl Into<String>) -> Self {
        self.settings.target.server = Some(server.into());
        self
    }

    /// Clears the server (any server of the topic).
    pub fn no_server(mut self) -> Self {
        self.settings.target.server = None;
        self
    }

    /// Sets the fanout flag (casts only).
    pub fn fanout(mut self, fanout: bool) -> Self {
        self.settings.target.fanout = fanout;
        self
    }

    /// Overrides the overall call timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = Some(timeout);
        self
    }

    /// Overrides the version cap.
    pub fn version_cap(mut self, cap: impl Into<String>) -> Self {
        self.settings.version_cap = Some(cap.into());
        self
    }

    /// Removes the version cap.
    pub fn no_version_cap(mut self) -> Self {
        self.settings.version_cap = None;
        self
    }

    /// Overrides the retry policy.
    pub fn retry(mut self, retry: Retry) -> Self {
        self.settings.retry = retry;
        self
    }

    /// Overrides the call-monitor timeout.
    pub fn call_monitor_timeout(mut self, timeout: impl Into<CallMonitorTimeout>) -> Self {
        self.settings.call_monitor_timeout = Some(timeout.into());
        self
    }

    /// Disables call monitoring.
    pub fn no_call_monitor_timeout(mut self) -> Self {
        self.settings.call_monitor_timeout = None;
        self
    }

    /// Overrides the transport options.
    pub fn transport_options(mut self, options: TransportOptions) -> Self {
        self.settings.transport_options = options;
        self
    }

    /// The prepared client. Fails with [`Error::Messaging`] ("Version must
    /// contain a major and minor integer. Got …") when the version given to
    /// [`Prepare::version`] does not parse.
    pub fn build(self) -> Result<RpcClient> {
        if let Some(v) = &self.settings.target.version {
            version::Version::parse(v)?;
        }
        Ok(RpcClient {
            settings: Arc::new(self.settings),
            shared: self.client.shared.clone(),
        })
    }

    /// Builds, then [`RpcClient::call`].
    pub async fn call<A: Serialize, R: DeserializeOwned>(
        self,
        ctxt: &Context,
        method: &str,
        args: A,
    ) -> Result<R> {
        self.build()?.call(ctxt, method, args).await
    }

    /// Builds, then [`RpcClient::cast`].
    pub async fn cast<A: Serialize>(self, ctxt: &Context, method: &str, args: A) -> Result<()> {
        self.build()?.cast(ctxt, method, args).await
    }
}

impl RpcClient {
    /// A builder for a client of `target` over `transport`.
    pub fn builder(transport: Transport, target: Target) -> RpcClientBuilder {
        RpcClientBuilder {
            transport,
            settings: Settings {
                target,
                timeout: None,
                version_cap: None,
                retry: Retry::default(),
                call_monitor_timeout: None,
                transport_options: TransportOptions::default(),
            },
            serializer: None,
            allowed_remote_exmods: Vec::new(),
        }
    }

    /// A client with default settings.
    pub fn new(transport: Transport, target: Target) -> Self {
        RpcClient::builder(transport, target).build()
    }

    /// Starts a prepared context: a copy of this client with some fields
    /// overridden (oslo's `prepare()`). It can itself be prepared again.
    pub fn prepare(&self) -> Prepare<'_> {
        Prepare {
            client: self,
            settings: (*self.settings).clone(),
        }
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.settings.target
    }

    /// The transport.
    pub fn transport(&self) -> &Transport {
        &self.shared.transport
    }

    /// The overall call timeout in effect (the default is 60 s).
    pub fn timeout(&self) -> Duration {
        self.settings.timeout.unwrap_or(DEFAULT_TIMEOUT)
    }

    /// The version cap, if any.
    pub fn version_cap(&self) -> Option<&str> {
        self.settings.version_cap.as_deref()
    }

    /// The call-monitor timeout, if any.
    pub fn call_monitor_timeout(&self) -> Option<CallMonitorTimeout> {
        self.settings.call_monitor_timeout
    }

    /// The modules whose exceptions are re-created (`allowed_remote_exmods`).
    pub fn allowed_remote_exmods(&self) -> &[String] {
        &self.shared.allowed_remote_exmods
    }

    /// Whether `version` may be sent under the version cap (always true
    /// without a cap; false for a missing version with a cap). `None` asks
    /// about the target's version, as oslo's argument-less form does.
    pub fn can_send_version(&self, version: Option<&str>) -> bool {
        let v = version.or(self.settings.target.version.as_deref());
        version::is_compatible(self.settings.version_cap.as_deref(), v)
    }

    /// Whether a Python client with this client's `allowed_remote_exmods`
    /// would re-create the class of `remote` (module `builtins`,
    /// `exceptions`, or listed) rather than raise `RemoteError`.
    pub fn is_allowed_remote(&self, remote: &RemoteError) -> bool {
        let m = if remote.module == "exceptions" {
            "builtins"
        } else {
            remote.module.as_str()
        };
        m == "builtins" || self.shared.allowed_remote_exmods.iter().any(|a| a == m)
    }

    /// Classifies a remote failure as a Python client with this client's
    /// `allowed_remote_exmods` would surface it; `None` when `error` is not
    /// a remote failure.
    pub fn remote_exception<'e>(&self, error: &'e Error) -> Option<RemoteException<'e>> {
        match error {
            Error::Remote(r) if self.is_allowed_remote(r) => Some(RemoteException::Typed(r)),
            Error::Remote(r) => Some(RemoteException::Opaque(r)),
            _ => None,
        }
    }

    /// Invokes `method` and waits for its result (oslo's `call()`).
    ///
    /// `args` are the keyword arguments: anything serializing to a JSON
    /// object (a struct, a map, `serde_json::json!({...})`); `()` means no
    /// arguments; any other shape is an [`Error::Serialization`] error.
    /// The result is deserialized into `R` (use [`Value`] for any).
    ///
    /// Errors: [`Error::InvalidTarget`] for a fanout target or a missing
    /// topic; [`Error::RpcVersionCap`] before anything is sent;
    /// [`Error::MessagingTimeout`] when the overall timeout or the call
    /// monitor expires (the overall timeout also bounds publishing);
    /// [`Error::Remote`] for the remote method's failure; driver errors as
    /// they come.
    pub async fn call<A: Serialize, R: DeserializeOwned>(
        &self,
        ctxt: &Context,
        method: &str,
        args: A,
    ) -> Result<R> {
        let value = self.call_value(ctxt, method, args).await?;
        serde_json::from_value(value).map_err(|e| {
            Error::Serialization(format!("cannot deserialize the result of {method}(): {e}"))
        })
    }

    /// [`RpcClient::call`] returning the raw JSON result.
    pub async fn call_value<A: Serialize>(
        &self,
        ctxt: &Context,
        method: &str,
        args: A,
    ) -> Result<Value> {
        let span = tracing::info_span!(
            "om_rpc.call",
            method,
            target = %self.settings.target,
            msg_id = Empty,
            duration_ms = Empty,
            outcome = Empty,
        );
        let start = Instant::now();
        let result = self
            .do_call(ctxt, method, args, start, &span)
            .instrument(span.clone())
            .await;
        record_outcome(&span, start, &result);
        result
    }

    /// Invokes `method` without waiting for a result (oslo's `cast()`):
    /// returns once the transport accepted the message. With a fanout
    /// target every server of the topic gets a copy.
    pub async fn cast<A: Serialize>(&self, ctxt: &Context, method: &str, args: A) -> Result<()> {
        let span = tracing::info_span!(
            "om_rpc.cast",
            method,
            target = %self.settings.target,
            duration_ms = Empty,
            outcome = Empty,
        );
        let start = Instant::now();
        let result = self
            .do_cast(ctxt, method, args)
            .instrument(span.clone())
            .await;
        record_outcome(&span, start, &result);
        result
    }

    async fn do_cast<A: Serialize>(&self, ctxt: &Context, method: &str, args: A) -> Result<()> {
        let s = &self.settings;
        let message = self.make_message(ctxt, method, args)?;
        let msg_ctxt = self.shared.serializer.serialize_context(ctxt)?;
        self.check_version_cap()?;
        s.target.validate_for_send(false)?;
        let request = RpcRequest::cast(s.target.clone(), message)
            .with_context(msg_ctxt.into_object())
            .with_retry(s.retry)
            .with_transport_options(s.transport_options);
        self.shared.transport.driver().send(request).await?;
        Ok(())
    }

    async fn do_call<A: Serialize>(
        &self,
        ctxt: &Context,
        method: &str,
        args: A,
        start: Instant,
        span: &tracing::Span,
    ) -> Result<Value> {
        let s = &self.settings;
        if s.target.fanout {
            return Err(Error::invalid_target(
                "A call cannot be used with fanout",
                &s.target,
            ));
        }
        let message = self.make_message(ctxt, method, args)?;
        let msg_ctxt = self.shared.serializer.serialize_context(ctxt)?;
        self.check_version_cap()?;
        s.target.validate_for_send(true)?;

        let timeout = self.timeout();
        let deadline = start + timeout;
        let request = RpcRequest::call(s.target.clone(), message, timeout)
            .with_context(msg_ctxt.into_object())
            .with_call_monitor_timeout(s.call_monitor_timeout.map(CallMonitorTimeout::seconds))
            .with_retry(s.retry)
            .with_transport_options(s.transport_options);

        let sent =
            tokio::time::timeout_at(deadline, self.shared.transport.driver().send(request)).await;
        let stream = match sent {
            Err(_) => {
                return Err(Error::MessagingTimeout {
                    msg_id: "(not sent)".to_owned(),
                    elapsed: start.elapsed(),
                })
            }
            Ok(r) => r?,
        };
        let Some(mut stream) = stream else {
            return Err(Error::Messaging(format!(
                "the {} driver returned no reply stream for a call",
                self.shared.transport.driver_name()
            )));
        };
        let msg_id = stream.msg_id().to_owned();
        span.record("msg_id", msg_id.as_str());

        let monitor = s.call_monitor_timeout.and_then(CallMonitorTimeout::clock);
        let mut monitor_deadline = monitor.map(|d| Instant::now() + d);
        loop {
            let wake = match monitor_deadline {
                Some(m) if m < deadline => m,
                _ => deadline,
            };
            match tokio::time::timeout_at(wake, stream.next()).await {
                Err(_) => {
                    return Err(Error::MessagingTimeout {
                        msg_id,
                        elapsed: start.elapsed(),
                    })
                }
                Ok(None) => return Err(Error::Closed),
                Ok(Some(ReplyEvent::Heartbeat)) => {
                    tracing::trace!(msg_id = %msg_id, "call-monitor heartbeat");
                    monitor_deadline = monitor.map(|d| Instant::now() + d);
                }
                Ok(Some(ReplyEvent::Final(Ok(v)))) => {
                    return self.shared.serializer.deserialize_entity(ctxt, v);
                }
                Ok(Some(ReplyEvent::Final(Err(remote)))) => return Err(Error::Remote(remote)),
            }
        }
    }

    /// Builds `{"method", "args", ["namespace"], ["version"]}` as oslo's
    /// `_make_message`, passing each argument through the serializer.
    fn make_message<A: Serialize>(
        &self,
        ctxt: &Context,
        method: &str,
        args: A,
    ) -> Result<JsonObject> {
        let mut args = match serde_json::to_value(args)
            .map_err(|e| Error::Serialization(format!("cannot serialize the arguments of {method}(): {e}")))?
        {
            Value::Object(m) => m,
            Value::Null => JsonObject::new(),
            other => {
                return Err(Error::Serialization(format!(
                    "the arguments of {method}() must serialize to a JSON object of keyword arguments (or `()` for none), got {}",
                    json_kind(&other)
                )))
            }
        };
        for v in args.values_mut() {
            *v = self
                .shared
                .serializer
                .serialize_entity(ctxt, std::mem::take(v))?;
        }
        let t = &self.settings.target;
        let mut msg = JsonObject::with_capacity(4);
        msg.insert("method".into(), Value::String(method.to_owned()));
        msg.insert("args".into(), Value::Object(args));
        if let Some(ns) = &t.namespace {
            msg.insert("namespace".into(), Value::String(ns.clone()));
        }
        if let Some(v) = &t.version {
            msg.insert("version".into(), Value::String(v.clone()));
        }
        Ok(msg)
    }

    fn check_version_cap(&self) -> Result<()> {
        let s = &self.settings;
        if version::is_compatible(s.version_cap.as_deref(), s.target.version.as_deref()) {
            return Ok(());
        }
        Err(Error::RpcVersionCap {
            version: s
                .target
                .version
                .clone()
                .unwrap_or_else(|| "None".to_owned()),
            version_cap: s.version_cap.clone().unwrap_or_else(|| "None".to_owned()),
        })
    }
}

fn record_outcome<T>(span: &tracing::Span, start: Instant, result: &Result<T>) {
    span.record("duration_ms", start.elapsed().as_secs_f64() * 1000.0);
    match result {
        Ok(_) => {
            span.record("outcome", "ok");
        }
        Err(Error::Remote(r)) => {
            span.record("outcome", r.exc_type.as_str());
        }
        Err(e) => {
            span.record("outcome", e.oslo_name());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    async fn client(cap: Option<&str>, version: Option<&str>) -> RpcClient {
        let transport = Transport::from_url("fake:///client-unit").await.unwrap();
        let mut target = Target::new("t");
        target.version = version.map(str::to_owned);
        let mut b = RpcClient::builder(transport, target);
        if let Some(c) = cap {
            b = b.version_cap(c);
        }
        b.build()
    }

    #[tokio::test]
    async fn message_shape() {
        let c = client(None, None).await;
        let m = c.make_message(&Context::new(), "echo", ()).unwrap();
        assert_eq!(
            Value::Object(m),
            serde_json::json!({"method": "echo", "args": {}})
        );
        let c = c.prepare().namespace("ns").version("1.3").build().unwrap();
        let m = c
            .make_message(&Context::new(), "echo", serde_json::json!({"a": 1}))
            .unwrap();
        assert_eq!(
            Value::Object(m),
            serde_json::json!({"method": "echo", "args": {"a": 1}, "namespace": "ns", "version": "1.3"})
        );
        let e = c
            .make_message(&Context::new(), "echo", vec![1, 2])
            .unwrap_err();
        assert!(matches!(e, Error::Serialization(_)), "{e}");
    }

    #[tokio::test]
    async fn cap_message_like_oslo() {
        let c = client(Some("2.4"), Some("2.5")).await;
        let e = c.check_version_cap().unwrap_err();
        assert_eq!(
            e.to_string(),
            "Requested message version, 2.5 is incompatible.  It needs to be equal in major version and less than or equal in minor version as the specified version cap 2.4."
        );
    }
}
