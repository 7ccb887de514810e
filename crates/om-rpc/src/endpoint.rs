//! [`Endpoint`]: a set of RPC methods served under one namespace and version.

use crate::HandlerError;
use futures_util::future::BoxFuture;
use om_driver_api::om_core::{Context, JsonObject, Target, Value};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

/// The boxed form every method is stored as: context and keyword arguments
/// in, serialized result or failure out.
pub(crate) type BoxedHandler = Arc<
    dyn Fn(Context, JsonObject) -> BoxFuture<'static, Result<Value, HandlerError>> + Send + Sync,
>;

#[derive(Clone)]
pub(crate) struct Method {
    pub(crate) handler: BoxedHandler,
    pub(crate) exposed: bool,
}

/// A group of RPC methods, as an oslo endpoint object: the methods plus the
/// endpoint's `target` (namespace, version, legacy namespaces).
///
/// Methods are async closures taking the request [`Context`] and one
/// argument value deserialized from the request's keyword arguments (the
/// `args` object), in the spirit of axum handlers:
///
/// ```
/// use om_rpc::{Endpoint, HandlerError};
/// use om_rpc::om_core::Context;
/// #[derive(serde::Deserialize)]
/// struct Add { a: i64, b: i64 }
///
/// let ep = Endpoint::new()
///     .namespace("calc")
///     .version("1.5")
///     .method("add", |_ctx: Context, args: Add| async move { Ok(args.a + args.b) })
///     .method("fail", |_ctx: Context, _: ()| async move {
///         Err::<(), _>(HandlerError::value_error("bad value"))
///     });
/// assert!(ep.has_method("add"));
/// ```
///
/// Argument binding follows Python's keyword arguments: the argument type is
/// deserialized from the `args` object; a mismatch (missing field, wrong
/// type) fails the call with `builtins.TypeError`, as Python reports a wrong
/// call. Unknown keys are ignored by serde unless the type says
/// `#[serde(deny_unknown_fields)]` (Python's strictness). Use `()` for a
/// method without arguments, and [`serde_json::Value`] or
/// [`JsonObject`] to take the raw arguments ([`Endpoint::raw_method`]).
#[derive(Clone, Default)]
pub struct Endpoint {
    pub(crate) target: Target,
    pub(crate) methods: HashMap<String, Method>,
}

impl Endpoint {
    /// An endpoint in the null namespace, version `None` (served as `1.0`).
    pub fn new() -> Self {
        Endpoint::default()
    }

    /// Sets the namespace this endpoint serves.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.target.namespace = Some(namespace.into());
        self
    }

    /// Sets the highest version this endpoint implements (`major.minor[.rev]`).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.target.version = Some(version.into());
        self
    }

    /// Additional namespaces this endpoint accepts (`None` is the null
    /// namespace), as `Target(legacy_namespaces=...)`.
    pub fn legacy_namespaces<I, S>(mut self, namespaces: I) -> Self
    where
        I: IntoIterator<Item = Option<S>>,
        S: Into<String>,
    {
        self.target.legacy_namespaces = namespaces.into_iter().map(|n| n.map(Into::into)).collect();
        self
    }

    /// Takes namespace, version and legacy namespaces from an oslo-style
    /// endpoint [`Target`] (other fields are ignored, as oslo does).
    pub fn target(mut self, target: Target) -> Self {
        self.target = Target {
            namespace: target.namespace,
            version: target.version,
            legacy_namespaces: target.legacy_namespaces,
            ..Target::default()
        };
        self
    }

    /// The endpoint's target (namespace, version, legacy namespaces).
    pub fn endpoint_target(&self) -> &Target {
        &self.target
    }

    /// Adds a method with typed arguments and result. See the type-level
    /// docs for argument binding. The method is not marked as exposed (see
    /// [`Endpoint::exposed_method`]).
    pub fn method<F, Fut, A, R>(self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Context, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, HandlerError>> + Send + 'static,
        A: DeserializeOwned + Send + 'static,
        R: Serialize + 'static,
    {
        self.add(name.into(), handler, false)
    }

    /// Adds a method marked as exposed, the equivalent of oslo's `@expose`
    /// decorator: the only methods [`crate::AccessPolicy::Explicit`] lets
    /// through.
    pub fn exposed_method<F, Fut, A, R>(self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Context, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, HandlerError>> + Send + 'static,
        A: DeserializeOwned + Send + 'static,
        R: Serialize + 'static,
    {
        self.add(name.into(), handler, true)
    }

    /// Adds a method taking the raw keyword arguments (already passed through
    /// the server's serializer) and returning any JSON value.
    pub fn raw_method<F, Fut>(mut self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Context, JsonObject) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, HandlerError>> + Send + 'static,
    {
        let boxed: BoxedHandler = Arc::new(move |ctx, args| Box::pin(handler(ctx, args)));
        self.methods.insert(
            name.into(),
            Method {
                handler: boxed,
                exposed: false,
            },
        );
        self
    }

    /// Marks an already added method as exposed (oslo's `@expose`).
    pub fn expose(mut self, name: &str) -> Self {
        if let Some(m) = self.methods.get_mut(name) {
            m.exposed = true;
        }
        self
    }

    /// Whether the endpoint has a method of that name.
    pub fn has_method(&self, name: &str) -> bool {
        self.methods.contains_key(name)
    }

    /// The method names, sorted.
    pub fn method_names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.methods.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    fn add<F, Fut, A, R>(mut self, name: String, handler: F, exposed: bool) -> Self
    where
        F: Fn(Context, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, HandlerError>> + Send + 'static,
        A: DeserializeOwned + Send + 'static,
        R: Serialize + 'static,
    {
        let method_name = name.clone();
        let boxed: BoxedHandler =
            Arc::new(move |ctx, args| match bind_args::<A>(&method_name, args) {
                Ok(a) => {
                    let fut = handler(ctx, a);
                    let name = method_name.clone();
                    Box::pin(async move {
                        let result = fut.await?;
                        serde_json::to_value(result).map_err(|e| {
                            HandlerError::type_error(format!(
                                "result of {name}() is not JSON serializable: {e}"
                            ))
                        })
                    })
                }
                Err(e) => Box::pin(std::future::ready(Err(e))),
            });
        self.methods.insert(
            name,
            Method {
                handler: boxed,
                exposed,
            },
        );
        self
    }
}

/// Deserializes keyword arguments into `A`; an empty `args` object also
/// binds to types that deserialize from null (`()`, `Option<T>`).
fn bind_args<A: DeserializeOwned>(method: &str, args: JsonObject) -> Result<A, HandlerError> {
    let empty = args.is_empty();
    match serde_json::from_value::<A>(Value::Object(args)) {
        Ok(a) => Ok(a),
        Err(first) => {
            if empty {
                if let Ok(a) = serde_json::from_value::<A>(Value::Null) {
                    return Ok(a);
                }
            }
            Err(HandlerError::type_error(format!(
                "{method}() got invalid arguments: {first}"
            )))
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("namespace", &self.target.namespace)
            .field("version", &self.target.version)
            .field("legacy_namespaces", &self.target.legacy_namespaces)
            .field("methods", &self.method_names())
            .finish()
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

    #[tokio::test]
    async fn binding() {
        #[derive(serde::Deserialize)]
        struct A {
            x: i64,
        }
        let ep = Endpoint::new()
            .method("typed", |_c: Context, a: A| async move { Ok(a.x * 2) })
            .method("unit", |_c: Context, _a: ()| async move { Ok("u") });
        let typed = &ep.methods["typed"].handler;
        assert_eq!(
            typed(Context::new(), obj(json!({"x": 2}))).await.unwrap(),
            json!(4)
        );
        let err = typed(Context::new(), obj(json!({"x": "no"})))
            .await
            .unwrap_err();
        assert_eq!(
            (err.class.as_str(), err.module.as_str()),
            ("TypeError", "builtins")
        );
        let unit = &ep.methods["unit"].handler;
        assert_eq!(
            unit(Context::new(), JsonObject::new()).await.unwrap(),
            json!("u")
        );
        assert!(unit(Context::new(), obj(json!({"x": 1}))).await.is_err());
    }
}
