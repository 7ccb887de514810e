//! [`RpcDispatcher`]: finds the endpoint method for a request and runs it,
//! exactly as oslo.messaging's `RPCDispatcher` (`overview.md` §6.4).

use crate::endpoint::{Endpoint, Method};
use crate::error::{HandlerError, BUILTINS};
use futures_util::FutureExt;
use om_driver_api::om_core::{
    version, Context, DynSerializer, Error, JsonObject, NoOpSerializer, RemoteError, Value,
};
use om_driver_api::IncomingMessage;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

/// Name of the built-in ping method.
pub const PING_METHOD: &str = "oslo_rpc_server_ping";

/// Which endpoint methods may be invoked remotely (oslo's access policies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessPolicy {
    /// `DefaultRPCAccessPolicy`: every method whose name does not start
    /// with `_`.
    #[default]
    Default,
    /// `LegacyRPCAccessPolicy`: every method, private names included.
    Legacy,
    /// `ExplicitRPCAccessPolicy`: only methods marked as exposed
    /// ([`Endpoint::exposed_method`] / [`Endpoint::expose`]).
    Explicit,
}

impl AccessPolicy {
    fn allows(self, name: &str, method: &Method) -> bool {
        match self {
            AccessPolicy::Default => !name.starts_with('_'),
            AccessPolicy::Legacy => true,
            AccessPolicy::Explicit => method.exposed,
        }
    }
}

/// Dispatches RPC requests to endpoints. An [`crate::RpcServer`] owns one;
/// it is public so the decode → dispatch → reply path can be driven without
/// a broker (benchmarks, custom servers).
#[derive(Clone)]
pub struct RpcDispatcher {
    endpoints: Arc<[Endpoint]>,
    policy: AccessPolicy,
    serializer: DynSerializer,
}

impl std::fmt::Debug for RpcDispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcDispatcher")
            .field("endpoints", &self.endpoints)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// What the request asked for: namespace and version as found in the
/// message, keeping the odd cases Python distinguishes.
enum Wanted<'a> {
    /// A string, or absent/null (the null namespace).
    Ns(Option<&'a str>),
    /// Some other JSON type: matches no endpoint.
    Invalid,
}

impl RpcDispatcher {
    /// A dispatcher over `endpoints` (searched in order) with the given
    /// policy and serializer. With `ping_enabled` an endpoint offering
    /// [`PING_METHOD`] (returning `"pong"`, null namespace, version 1.0, not
    /// exposed) is appended, unless an endpoint already has that method.
    pub fn new(
        endpoints: Vec<Endpoint>,
        policy: AccessPolicy,
        serializer: Option<DynSerializer>,
        ping_enabled: bool,
    ) -> Self {
        let mut endpoints = endpoints;
        let has_ping = endpoints.iter().any(|e| e.has_method(PING_METHOD));
        if has_ping {
            tracing::warn!(
                "'{PING_METHOD}' is a reserved endpoint method name used to ping the server; avoid oslo_* names"
            );
        }
        if ping_enabled {
            if has_ping {
                tracing::warn!("ping is enabled but an endpoint already declares {PING_METHOD}; not adding the ping endpoint");
            } else {
                endpoints.push(
                    Endpoint::new()
                        .raw_method(PING_METHOD, |_ctx, _args| async { Ok(Value::from("pong")) }),
                );
            }
        }
        RpcDispatcher {
            endpoints: endpoints.into(),
            policy,
            serializer: serializer.unwrap_or_else(|| Arc::new(NoOpSerializer)),
        }
    }

    /// The endpoints, in dispatch order.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The access policy.
    pub fn access_policy(&self) -> AccessPolicy {
        self.policy
    }

    /// Dispatches one request: `message` holds `method`, `args`, and
    /// optionally `namespace` and `version`; `ctxt` is the received
    /// context. Returns the serialized result, or the failure to send back
    /// (dispatch errors such as `NoSuchMethod` / `UnsupportedVersion`,
    /// `TypeError` for bad arguments, or the method's own error).
    pub async fn dispatch(
        &self,
        ctxt: JsonObject,
        message: JsonObject,
    ) -> Result<Value, RemoteError> {
        self.dispatch_flagged(ctxt, message)
            .await
            .map_err(|(remote, _expected)| remote)
    }

    /// [`RpcDispatcher::dispatch`], also telling whether a failure was
    /// marked as expected ([`HandlerError::expected`]).
    async fn dispatch_flagged(
        &self,
        ctxt: JsonObject,
        mut message: JsonObject,
    ) -> Result<Value, (RemoteError, bool)> {
        let method_name = match message.get("method") {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        let label = method_name.as_deref().unwrap_or("None");
        match self
            .dispatch_inner(ctxt, &mut message, method_name.as_deref())
            .await
        {
            Ok(v) => Ok(v),
            Err(e) => {
                let expected = e.expected;
                Err((e.into_remote(label), expected))
            }
        }
    }

    async fn dispatch_inner(
        &self,
        ctxt: JsonObject,
        message: &mut JsonObject,
        method_name: Option<&str>,
    ) -> Result<Value, HandlerError> {
        let namespace = match message.get("namespace") {
            None | Some(Value::Null) => Wanted::Ns(None),
            Some(Value::String(s)) => Wanted::Ns(Some(s.as_str())),
            Some(_) => Wanted::Invalid,
        };
        // `version` defaults to "1.0" when absent; an explicit null is
        // Python's None (never compatible).
        let version: Option<String> = match message.get("version") {
            None => Some("1.0".to_owned()),
            Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        };

        let mut found_compatible = false;
        let mut chosen: Option<&Method> = None;
        for endpoint in self.endpoints.iter() {
            let t = &endpoint.target;
            let ns_ok = match namespace {
                Wanted::Ns(ns) => t.accepts_namespace(ns),
                Wanted::Invalid => false,
            };
            if !ns_ok {
                continue;
            }
            if !version::is_compatible(
                Some(t.version.as_deref().unwrap_or("1.0")),
                version.as_deref(),
            ) {
                continue;
            }
            let Some(name) = method_name else {
                // Python: hasattr(endpoint, None) raises TypeError.
                return Err(HandlerError::type_error(format!(
                    "attribute name must be string, not '{}'",
                    python_type_name(message.get("method"))
                )));
            };
            if let Some(m) = endpoint.methods.get(name) {
                if self.policy.allows(name, m) {
                    chosen = Some(m);
                    break;
                }
            }
            found_compatible = true;
        }
        let Some(method) = chosen else {
            let err = if found_compatible {
                Error::NoSuchMethod {
                    method: method_name.unwrap_or("None").to_owned(),
                }
            } else {
                Error::UnsupportedVersion {
                    version: version.unwrap_or_else(|| "None".to_owned()),
                    method: method_name.map(str::to_owned),
                }
            };
            return Err(HandlerError::from(err));
        };

        let mut args = match message.shift_remove("args") {
            None => JsonObject::new(),
            Some(Value::Object(o)) => o,
            Some(other) => {
                return Err(HandlerError::attribute_error(format!(
                    "'{}' object has no attribute 'items'",
                    python_type_name(Some(&other))
                )))
            }
        };
        let ctxt = self.serializer.deserialize_context(Context(ctxt))?;
        for v in args.values_mut() {
            *v = self
                .serializer
                .deserialize_entity(&ctxt, std::mem::take(v))?;
        }
        // The endpoint takes the context; keep a copy for the result only
        // when the serializer reads it.
        let (ctxt, endpoint_ctxt) = if self.serializer.entities_use_context() {
            let copy = ctxt.clone();
            (ctxt, copy)
        } else {
            (Context::default(), ctxt)
        };
        let fut = (method.handler)(endpoint_ctxt, args);
        let result = match AssertUnwindSafe(fut).catch_unwind().await {
            Ok(r) => r?,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "endpoint method panicked".to_owned());
                return Err(HandlerError::runtime_error(format!(
                    "endpoint method panicked: {what}"
                )));
            }
        };
        Ok(self.serializer.serialize_entity(&ctxt, result)?)
    }

    /// Runs one received request the way the server does after
    /// acknowledging it: dispatches it (context = the received context
    /// including `client_timeout`), sends call-monitor heartbeats every
    /// `floor(client_timeout)/2` seconds while the method runs (only when
    /// that interval is at least one second), then sends the final reply
    /// for calls. Casts get no reply; their failures are only logged.
    ///
    /// Returns how the request ended. Reply failures are logged, never
    /// returned: replying is best effort, as in oslo.
    pub async fn handle_incoming(&self, mut incoming: IncomingMessage) -> Outcome {
        let mut ctxt = std::mem::take(&mut incoming.ctxt);
        if !ctxt.contains_key("client_timeout") {
            ctxt.insert(
                "client_timeout".into(),
                timeout_json(incoming.client_timeout),
            );
        }
        let message = std::mem::take(&mut incoming.message);
        let is_call = incoming.is_call();
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("None")
            .to_owned();

        let dispatch = self.dispatch_flagged(ctxt, message);
        let outcome = match heartbeat_interval(incoming.client_timeout).filter(|_| is_call) {
            None => dispatch.await,
            Some(period) => {
                let handle = incoming.handle();
                let beats = async move {
                    let mut ticker =
                        tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                    loop {
                        ticker.tick().await;
                        tracing::debug!(interval = ?period, "sending call-monitor heartbeat");
                        if let Err(e) = handle.heartbeat().await {
                            tracing::debug!(error = %e, "call-monitor heartbeat failed; no more heartbeats for this call");
                            std::future::pending::<()>().await;
                        }
                    }
                };
                tokio::pin!(dispatch);
                tokio::select! {
                    biased;
                    r = &mut dispatch => r,
                    _ = beats => unreachable_outcome(),
                }
            }
        };

        let (outcome, summary) = match outcome {
            Ok(v) => (Ok(v), Outcome::Success),
            Err((failure, expected)) => {
                log_failure(&method, &failure, expected);
                let summary = Outcome::Failure {
                    class: failure.exc_type.clone(),
                    module: failure.module.clone(),
                };
                (Err(failure), summary)
            }
        };
        if is_call {
            if let Err(e) = incoming.reply(outcome).await {
                tracing::warn!(error = %e, method = %method, "failed to send the reply");
            }
        }
        summary
    }
}

/// How a request handled by [`RpcDispatcher::handle_incoming`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The method returned a value (sent back for calls).
    Success,
    /// The request failed; the failure was sent back for calls.
    Failure {
        /// Exception class name, e.g. `NoSuchMethod`.
        class: String,
        /// Its Python module.
        module: String,
    },
}

impl Outcome {
    /// Whether the method returned a value.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success)
    }
}

/// The heartbeat loop never ends on its own; this keeps `select!` typed.
fn unreachable_outcome() -> Result<Value, (RemoteError, bool)> {
    Err((
        RemoteError::new("RuntimeError", BUILTINS, "heartbeat loop ended"),
        false,
    ))
}

fn log_failure(method: &str, failure: &RemoteError, expected: bool) {
    // As oslo: expected exceptions, and NoSuchMethod for methods named
    // `*_ignore_errors`, are logged at debug level only.
    let quiet =
        expected || (failure.exc_type == "NoSuchMethod" && method.ends_with("_ignore_errors"));
    if quiet {
        tracing::debug!(method, class = %failure.exc_type, module = %failure.module, reason = %failure.value, "expected exception during message handling");
    } else {
        tracing::error!(method, class = %failure.exc_type, module = %failure.module, reason = %failure.value, "exception during message handling");
    }
}

/// `floor(client_timeout)/2` when it is at least one second (oslo's
/// watchdog rule); `None` otherwise.
pub fn heartbeat_interval(client_timeout: Option<f64>) -> Option<Duration> {
    let v = client_timeout?;
    if !v.is_finite() {
        return None;
    }
    let half = v.trunc() / 2.0;
    if half < 1.0 {
        return None;
    }
    Some(Duration::from_secs_f64(half))
}

/// `_timeout` as Python would have it: integer when whole, else float,
/// null when absent.
pub(crate) fn timeout_json(value: Option<f64>) -> Value {
    match value {
        None => Value::Null,
        Some(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => Value::from(v as i64),
        Some(v) => serde_json::Number::from_f64(v)
            .map(Value::Number)
            .unwrap_or(Value::Null),
    }
}

fn python_type_name(v: Option<&Value>) -> &'static str {
    match v {
        None | Some(Value::Null) => "NoneType",
        Some(Value::Bool(_)) => "bool",
        Some(Value::Number(n)) if n.is_f64() => "float",
        Some(Value::Number(_)) => "int",
        Some(Value::String(_)) => "str",
        Some(Value::Array(_)) => "list",
        Some(Value::Object(_)) => "dict",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> JsonObject {
        v.as_object().cloned().unwrap_or_default()
    }

    fn echo(ns: Option<&str>, version: Option<&str>, tag: &'static str) -> Endpoint {
        let mut e = Endpoint::new();
        if let Some(ns) = ns {
            e = e.namespace(ns);
        }
        if let Some(v) = version {
            e = e.version(v);
        }
        e.method(
            "echo",
            move |_c: Context, _a: JsonObject| async move { Ok(tag) },
        )
        .method(
            "_private",
            move |_c: Context, _a: ()| async move { Ok(tag) },
        )
    }

    async fn run(d: &RpcDispatcher, msg: Value) -> Result<Value, RemoteError> {
        d.dispatch(JsonObject::new(), obj(msg)).await
    }

    #[tokio::test]
    async fn version_rules() {
        let d = RpcDispatcher::new(
            vec![echo(None, Some("1.5"), "a"), echo(None, Some("3.4"), "b")],
            AccessPolicy::Default,
            None,
            false,
        );
        assert_eq!(
            run(&d, json!({"method": "echo", "version": "1.3"}))
                .await
                .unwrap(),
            json!("a")
        );
        assert_eq!(
            run(&d, json!({"method": "echo", "version": "3.2"}))
                .await
                .unwrap(),
            json!("b")
        );
        assert_eq!(
            run(&d, json!({"method": "echo"})).await.unwrap(),
            json!("a")
        );
        let e = run(&d, json!({"method": "echo", "version": "1.6"}))
            .await
            .unwrap_err();
        assert_eq!(e.exc_type, "UnsupportedVersion");
        assert_eq!(
            e.value,
            "Endpoint does not support RPC version 1.6. Attempted method: echo"
        );
        let e = run(&d, json!({"method": "echo", "version": null}))
            .await
            .unwrap_err();
        assert_eq!(
            e.value,
            "Endpoint does not support RPC version None. Attempted method: echo"
        );
    }

    #[tokio::test]
    async fn odd_messages() {
        let d = RpcDispatcher::new(
            vec![echo(None, None, "a")],
            AccessPolicy::Default,
            None,
            false,
        );
        let e = run(&d, json!({"args": {}})).await.unwrap_err();
        assert_eq!(
            (e.exc_type.as_str(), e.module.as_str()),
            ("TypeError", "builtins")
        );
        let e = run(&d, json!({"method": "echo", "args": null}))
            .await
            .unwrap_err();
        assert_eq!(e.exc_type, "AttributeError");
        assert_eq!(e.value, "'NoneType' object has no attribute 'items'");
        let e = run(&d, json!({"method": "echo", "namespace": 5}))
            .await
            .unwrap_err();
        assert_eq!(e.exc_type, "UnsupportedVersion");
        let d = RpcDispatcher::new(vec![], AccessPolicy::Default, None, false);
        let e = run(&d, json!({"method": "x"})).await.unwrap_err();
        assert_eq!(
            e.value,
            "Endpoint does not support RPC version 1.0. Attempted method: x"
        );
    }

    #[tokio::test]
    async fn policies() {
        let eps = || vec![echo(None, None, "a")];
        let d = RpcDispatcher::new(eps(), AccessPolicy::Default, None, false);
        assert_eq!(
            run(&d, json!({"method": "_private"}))
                .await
                .unwrap_err()
                .exc_type,
            "NoSuchMethod"
        );
        let d = RpcDispatcher::new(eps(), AccessPolicy::Legacy, None, false);
        assert_eq!(
            run(&d, json!({"method": "_private"})).await.unwrap(),
            json!("a")
        );
        let d = RpcDispatcher::new(
            vec![echo(None, None, "a").expose("_private")],
            AccessPolicy::Explicit,
            None,
            true,
        );
        assert_eq!(
            run(&d, json!({"method": "echo"}))
                .await
                .unwrap_err()
                .exc_type,
            "NoSuchMethod"
        );
        assert_eq!(
            run(&d, json!({"method": "_private"})).await.unwrap(),
            json!("a")
        );
        // The built-in ping method is not exposed, as in oslo.
        assert_eq!(
            run(&d, json!({"method": PING_METHOD}))
                .await
                .unwrap_err()
                .exc_type,
            "NoSuchMethod"
        );
    }

    #[tokio::test]
    async fn panics_become_runtime_errors() {
        let ep = Endpoint::new().method("boom", |_c: Context, _a: ()| async move {
            if true {
                panic!("kaboom");
            }
            Ok(())
        });
        let d = RpcDispatcher::new(vec![ep], AccessPolicy::Default, None, false);
        let e = run(&d, json!({"method": "boom"})).await.unwrap_err();
        assert_eq!(e.exc_type, "RuntimeError");
        assert!(e.value.contains("kaboom"));
    }

    #[tokio::test]
    async fn expected_errors_keep_their_class_and_are_flagged() {
        let ep = Endpoint::new().method("v", |_c: Context, _a: ()| async {
            Err::<(), _>(HandlerError::value_error("bad").expected())
        });
        let d = RpcDispatcher::new(vec![ep], AccessPolicy::Default, None, false);
        let msg = obj(json!({"method": "v"}));
        let (remote, expected) = d
            .dispatch_flagged(JsonObject::new(), msg.clone())
            .await
            .unwrap_err();
        assert!(expected);
        assert_eq!(
            (remote.exc_type.as_str(), remote.module.as_str()),
            ("ValueError", "builtins")
        );
        let (_, expected) = d
            .dispatch_flagged(JsonObject::new(), obj(json!({"method": "nosuch"})))
            .await
            .unwrap_err();
        assert!(!expected);
    }

    #[test]
    fn heartbeat_intervals() {
        assert_eq!(heartbeat_interval(None), None);
        assert_eq!(heartbeat_interval(Some(1.0)), None);
        assert_eq!(heartbeat_interval(Some(1.9)), None);
        assert_eq!(heartbeat_interval(Some(2.0)), Some(Duration::from_secs(1)));
        assert_eq!(
            heartbeat_interval(Some(3.7)),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(timeout_json(Some(2.0)), json!(2));
        assert_eq!(timeout_json(Some(2.5)), json!(2.5));
    }
}
