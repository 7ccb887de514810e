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

/// A typed view of an OpenStack request context: the keys oslo.context's
/// `RequestContext.to_dict()` produces (oslo.context 6.5.0, checked against
/// the library in `tests/python_fixtures.rs`). Unknown keys are kept in
/// [`RequestContext::extra`], so a context survives a round trip intact.
///
/// Serialized, the keys come in `to_dict()`'s order: `user`, `project_id`,
/// `system_scope`, `project` (a copy of `project_id`), `domain`,
/// `user_domain`, `project_domain`, `is_admin`, `read_only`,
/// `show_deleted`, `auth_token`, `request_id`, `global_request_id`,
/// `resource_uuid`, `roles`, `user_identity`, `is_admin_project`, then the
/// [`extra`](RequestContext::extra) keys.
///
/// Reading follows `from_dict()`: `project` is derived and ignored on input,
/// missing keys take oslo.context's defaults. Where Python keeps a `null`
/// flag (`is_admin`, `read_only`, `show_deleted`, `is_admin_project`) om
/// reads `false`, which is what Python code sees when it tests the flag;
/// a `null` `roles` is an empty list, as in Python. Unlike `from_dict()`, a
/// missing `request_id` stays `None` rather than being generated (use
/// [`RequestContext::new`] for a fresh one).
///
/// `Debug` output masks `auth_token`.
///
/// ```
/// use om_core::{Context, RequestContext};
/// let rc = RequestContext { user_id: Some("u1".into()), project_id: Some("p1".into()), ..Default::default() };
/// let ctx: Context = rc.clone().into();
/// assert_eq!(ctx.get_str("user"), Some("u1"));
/// assert_eq!(ctx.get_str("project"), Some("p1"));
/// assert_eq!(ctx.get_str("user_identity"), Some("u1 p1 - - -"));
/// assert_eq!(RequestContext::from_context(&ctx).unwrap().user_id, rc.user_id);
/// ```
#[derive(Clone, PartialEq, Deserialize)]
#[serde(from = "RequestContextWire")]
pub struct RequestContext {
    /// The user (`user` key; oslo.context's `user_id`).
    pub user_id: Option<String>,
    /// The project (`project_id` key; also sent as `project`).
    pub project_id: Option<String>,
    /// System scope (`system_scope`).
    pub system_scope: Option<String>,
    /// The project's domain (`project_domain`; oslo.context's
    /// `project_domain_id`).
    pub project_domain: Option<String>,
    /// The user's domain (`user_domain`; oslo.context's `user_domain_id`).
    pub user_domain: Option<String>,
    /// Domain (`domain`; oslo.context's `domain_id`).
    pub domain: Option<String>,
    /// Admin flag (`is_admin`).
    pub is_admin: bool,
    /// Read-only flag (`read_only`).
    pub read_only: bool,
    /// Show deleted records (`show_deleted`).
    pub show_deleted: bool,
    /// Keystone token (`auth_token`). Blanked by
    /// [`RequestContext::redacted`] and masked in `Debug` output; never log
    /// it.
    pub auth_token: Option<String>,
    /// Request id (`request_id`), `req-<uuid>`.
    pub request_id: Option<String>,
    /// Global request id (`global_request_id`).
    pub global_request_id: Option<String>,
    /// Resource uuid (`resource_uuid`).
    pub resource_uuid: Option<String>,
    /// Role names (`roles`).
    pub roles: Vec<String>,
    /// `user_identity` string. oslo.context computes it from the ids
    /// (`"<user> <project_id> <domain> <user_domain> <project_domain>"`,
    /// `-` for each missing one); om sends that computed value when this is
    /// `None`, and this value as is otherwise (a context read from the wire
    /// keeps what it carried).
    pub user_identity: Option<String>,
    /// `is_admin_project` flag (defaults to true in oslo.context).
    pub is_admin_project: bool,
    /// Any other keys (applications add their own), in the order received.
    pub extra: JsonObject,
}

/// What `RequestContext` reads: its fields plus the derived `project` key,
/// which is dropped.
#[derive(Deserialize)]
struct RequestContextWire {
    #[serde(rename = "user", default)]
    user_id: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    system_scope: Option<String>,
    #[serde(default)]
    project_domain: Option<String>,
    #[serde(default)]
    user_domain: Option<String>,
    #[serde(default)]
    domain: Option<String>,
    #[serde(default, deserialize_with = "null_as_false")]
    is_admin: bool,
    #[serde(default, deserialize_with = "null_as_false")]
    read_only: bool,
    #[serde(default, deserialize_with = "null_as_false")]
    show_deleted: bool,
    #[serde(default)]
    auth_token: Option<String>,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    global_request_id: Option<String>,
    #[serde(default)]
    resource_uuid: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    roles: Vec<String>,
    #[serde(default)]
    user_identity: Option<String>,
    #[serde(default = "default_true", deserialize_with = "null_as_false")]
    is_admin_project: bool,
    #[serde(default, rename = "project")]
    _project: Option<Value>,
    #[serde(flatten)]
    extra: JsonObject,
}

impl Default for RequestContext {
    /// oslo.context's defaults: everything unset and false, except
    /// `is_admin_project` (true); no request id (see [`RequestContext::new`]).
    fn default() -> Self {
        RequestContext {
            user_id: None,
            project_id: None,
            system_scope: None,
            project_domain: None,
            user_domain: None,
            domain: None,
            is_admin: false,
            read_only: false,
            show_deleted: false,
            auth_token: None,
            request_id: None,
            global_request_id: None,
            resource_uuid: None,
            roles: Vec::new(),
            user_identity: None,
            is_admin_project: true,
            extra: JsonObject::new(),
        }
    }
}

impl From<RequestContextWire> for RequestContext {
    fn from(w: RequestContextWire) -> Self {
        RequestContext {
            user_id: w.user_id,
            project_id: w.project_id,
            system_scope: w.system_scope,
            project_domain: w.project_domain,
            user_domain: w.user_domain,
            domain: w.domain,
            is_admin: w.is_admin,
            read_only: w.read_only,
            show_deleted: w.show_deleted,
            auth_token: w.auth_token,
            request_id: w.request_id,
            global_request_id: w.global_request_id,
            resource_uuid: w.resource_uuid,
            roles: w.roles,
            user_identity: w.user_identity,
            is_admin_project: w.is_admin_project,
            extra: w.extra,
        }
    }
}

/// The keys [`RequestContext`] writes itself, in `to_dict()` order.
pub const REQUEST_CONTEXT_KEYS: [&str; 17] = [
    "user",
    "project_id",
    "system_scope",
    "project",
    "domain",
    "user_domain",
    "project_domain",
    "is_admin",
    "read_only",
    "show_deleted",
    "auth_token",
    "request_id",
    "global_request_id",
    "resource_uuid",
    "roles",
    "user_identity",
    "is_admin_project",
];

fn default_true() -> bool {
    true
}

fn null_as_false<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(false))
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

impl Serialize for RequestContext {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map =
            serializer.serialize_map(Some(REQUEST_CONTEXT_KEYS.len() + self.extra.len()))?;
        map.serialize_entry("user", &self.user_id)?;
        map.serialize_entry("project_id", &self.project_id)?;
        map.serialize_entry("system_scope", &self.system_scope)?;
        map.serialize_entry("project", &self.project_id)?;
        map.serialize_entry("domain", &self.domain)?;
        map.serialize_entry("user_domain", &self.user_domain)?;
        map.serialize_entry("project_domain", &self.project_domain)?;
        map.serialize_entry("is_admin", &self.is_admin)?;
        map.serialize_entry("read_only", &self.read_only)?;
        map.serialize_entry("show_deleted", &self.show_deleted)?;
        map.serialize_entry("auth_token", &self.auth_token)?;
        map.serialize_entry("request_id", &self.request_id)?;
        map.serialize_entry("global_request_id", &self.global_request_id)?;
        map.serialize_entry("resource_uuid", &self.resource_uuid)?;
        map.serialize_entry("roles", &self.roles)?;
        match &self.user_identity {
            Some(s) => map.serialize_entry("user_identity", s)?,
            None => map.serialize_entry("user_identity", &self.computed_user_identity())?,
        }
        map.serialize_entry("is_admin_project", &self.is_admin_project)?;
        for (k, v) in &self.extra {
            // A known key put into `extra` by hand would be written twice.
            if !REQUEST_CONTEXT_KEYS.contains(&k.as_str()) {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

impl std::fmt::Debug for RequestContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestContext")
            .field("user_id", &self.user_id)
            .field("project_id", &self.project_id)
            .field("system_scope", &self.system_scope)
            .field("project_domain", &self.project_domain)
            .field("user_domain", &self.user_domain)
            .field("domain", &self.domain)
            .field("is_admin", &self.is_admin)
            .field("read_only", &self.read_only)
            .field("show_deleted", &self.show_deleted)
            .field("auth_token", &self.auth_token.as_ref().map(|_| "****"))
            .field("request_id", &self.request_id)
            .field("global_request_id", &self.global_request_id)
            .field("resource_uuid", &self.resource_uuid)
            .field("roles", &self.roles)
            .field("user_identity", &self.user_identity)
            .field("is_admin_project", &self.is_admin_project)
            .field("extra", &self.extra)
            .finish()
    }
}

impl RequestContext {
    /// A fresh context with a new `req-<uuid>` request id.
    pub fn new() -> Self {
        RequestContext {
            request_id: Some(format!("req-{}", crate::uuid_dashed())),
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

    /// `user_identity` as oslo.context computes it:
    /// `"<user> <project_id> <domain> <user_domain> <project_domain>"`, with
    /// `-` for each missing (or empty) value.
    pub fn computed_user_identity(&self) -> String {
        let part = |v: &Option<String>| match v.as_deref() {
            Some(s) if !s.is_empty() => s.to_owned(),
            _ => "-".to_owned(),
        };
        format!(
            "{} {} {} {} {}",
            part(&self.user_id),
            part(&self.project_id),
            part(&self.domain),
            part(&self.user_domain),
            part(&self.project_domain)
        )
    }

    /// A copy safe to send in notifications, as oslo.context's
    /// `redacted_copy()` makes it: `auth_token` blanked, and the fields
    /// `redacted_copy()` does not carry over back at their defaults
    /// (`read_only` and `show_deleted` false, `resource_uuid` none,
    /// `is_admin_project` true). [`extra`](RequestContext::extra) keys are
    /// kept, except a `service_token`.
    pub fn redacted(&self) -> Self {
        let mut extra = self.extra.clone();
        extra.shift_remove("service_token");
        RequestContext {
            auth_token: None,
            read_only: false,
            show_deleted: false,
            resource_uuid: None,
            is_admin_project: true,
            extra,
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
