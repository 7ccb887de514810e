//! Request contexts: the JSON object that travels with every RPC request and
//! notification, and a typed view of the common OpenStack keys.

use crate::JsonObject;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A request context: a JSON object, as oslo.messaging carries it.
///
/// Drivers pack it into the message (flattened into `_context_<key>` on
/// RabbitMQ, nested under `_context` on Kafka); servers and listeners hand it
/// to endpoints. Convert from and to [`RequestContext`] for typed access.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Context(pub JsonObject);

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Context(JsonObject::new())
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// The string value of `key`, if present and a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    /// Sets `key` to `value`, returning the previous value.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) -> Option<Value> {
        self.0.insert(key.into(), value.into())
    }

    /// Builder form of [`Context::insert`].
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.insert(key, value);
        self
    }

    /// Whether the context has no keys.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The underlying JSON object.
    pub fn as_object(&self) -> &JsonObject {
        &self.0
    }

    /// Consumes the context, returning the JSON object.
    pub fn into_object(self) -> JsonObject {
        self.0
    }

    /// Deserializes the context into a typed value (e.g. [`RequestContext`]).
    pub fn to_typed<T: serde::de::DeserializeOwned>(&self) -> crate::Result<T> {
        Ok(serde_json::from_value(Value::Object(self.0.clone()))?)
    }

    /// Builds a context from any value that serializes to a JSON object.
    pub fn from_typed<T: Serialize>(value: &T) -> crate::Result<Self> {
        match serde_json::to_value(value)? {
            Value::Object(map) => Ok(Context(map)),
            Value::Null => Ok(Context::new()),
            other => Err(crate::Error::Serialization(format!(
                "a context must serialize to a JSON object, got {}",
                json_kind(&other)
            ))),
        }
    }
}

impl From<JsonObject> for Context {
    fn from(map: JsonObject) -> Self {
        Context(map)
    }
}

impl From<Context> for JsonObject {
    fn from(ctx: Context) -> Self {
        ctx.0
    }
}

impl From<RequestContext> for Context {
    fn from(rc: RequestContext) -> Self {
        rc.to_context()
    }
}

/// Name of a JSON value's kind, for error messages.
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A typed view of an OpenStack request context, with the keys that
/// oslo.context's `RequestContext.to_dict()` produces. Unknown keys are kept
/// in [`RequestContext::extra`], so a context survives a round trip intact.
///
/// ```
/// use om_core::{Context, RequestContext};
/// let rc = RequestContext { user_id: Some("u1".into()), project_id: Some("p1".into()), ..Default::default() };
/// let ctx: Context = rc.clone().into();
/// assert_eq!(ctx.get_str("user"), Some("u1"));
/// assert_eq!(RequestContext::from_context(&ctx).unwrap(), rc);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestContext {
    /// The user (`user` key; oslo.context's `user_id`).
    #[serde(rename = "user", default)]
    pub user_id: Option<String>,
    /// The project (`project_id` key).
    #[serde(default)]
    pub project_id: Option<String>,
    /// System scope (`system_scope`).
    #[serde(default)]
    pub system_scope: Option<String>,
    /// The project's domain (`project_domain`).
    #[serde(default)]
    pub project_domain: Option<String>,
    /// The user's domain (`user_domain`).
    #[serde(default)]
    pub user_domain: Option<String>,
    /// Domain (`domain`).
    #[serde(default)]
    pub domain: Option<String>,
    /// Admin flag (`is_admin`).
    #[serde(default)]
    pub is_admin: bool,
    /// Read-only flag (`read_only`).
    #[serde(default)]
    pub read_only: bool,
    /// Show deleted records (`show_deleted`).
    #[serde(default)]
    pub show_deleted: bool,
    /// Keystone token (`auth_token`). Masked by [`RequestContext::redacted`];
    /// never printed by `Debug` of [`Context`] users should avoid logging.
    #[serde(default)]
    pub auth_token: Option<String>,
    /// Request id (`request_id`), `req-<uuid>`.
    #[serde(default)]
    pub request_id: Option<String>,
    /// Global request id (`global_request_id`).
    #[serde(default)]
    pub global_request_id: Option<String>,
    /// Resource uuid (`resource_uuid`).
    #[serde(default)]
    pub resource_uuid: Option<String>,
    /// Role names (`roles`).
    #[serde(default)]
    pub roles: Vec<String>,
    /// `user_identity` string (`"<user> <project> <domain> <user_domain> <project_domain>"`).
    #[serde(default)]
    pub user_identity: Option<String>,
    /// `is_admin_project` flag (defaults to true in oslo.context).
    #[serde(default = "default_true")]
    pub is_admin_project: bool,
    /// Any other keys (applications add their own).
    #[serde(flatten)]
    pub extra: JsonObject,
}

fn default_true() -> bool {
    true
}

impl RequestContext {
    /// A fresh context with a new `req-<uuid>` request id.
    pub fn new() -> Self {
        RequestContext {
            request_id: Some(format!("req-{}", crate::uuid_dashed())),
            is_admin_project: true,
            ..Default::default()
        }
    }

    /// Reads a typed context from a [`Context`].
    pub fn from_context(ctx: &Context) -> crate::Result<Self> {
        ctx.to_typed()
    }

    /// Converts to a [`Context`] (the `to_dict()` form).
    pub fn to_context(&self) -> Context {
        Context::from_typed(self).unwrap_or_default()
    }

    /// A copy with secrets blanked (`auth_token` → null), as oslo.context's
    /// `redacted_copy()` does before a notification is sent.
    pub fn redacted(&self) -> Self {
        RequestContext {
            auth_token: None,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_keys_survive() {
        let ctx = Context(
            json!({"user": "bob", "roles": ["admin"], "tenant_name": "t", "nested": {"a": [1, 2]}})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        let rc = RequestContext::from_context(&ctx).unwrap();
        assert_eq!(rc.user_id.as_deref(), Some("bob"));
        assert_eq!(rc.extra.get("tenant_name"), Some(&json!("t")));
        let back = rc.to_context();
        assert_eq!(back.get("nested"), Some(&json!({"a": [1, 2]})));
    }

    #[test]
    fn non_object_context_is_an_error() {
        assert!(Context::from_typed(&vec![1, 2]).is_err());
        assert!(Context::from_typed(&()).unwrap().is_empty());
    }
}
