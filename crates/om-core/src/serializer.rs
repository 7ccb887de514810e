//! Serializers: hooks that turn application values and contexts into what
//! goes on the wire, and back (oslo's `Serializer` interface).
//!
//! RPC clients and notifiers call `serialize_*` before sending; servers and
//! listeners call `deserialize_*` on receipt.
//!
//! Where Python needs `JsonPayloadSerializer` to turn objects into JSON
//! primitives, om uses serde: typed arguments, results and payloads become
//! `serde_json::Value`s before a serializer sees them, and the wire codec
//! ([`crate::envelope`]) writes JSON exactly as Python does. So the default
//! ([`NoOpSerializer`]) already speaks what Python peers expect; serializers
//! are for transforming values (the request-context pattern, or
//! [`MsgPackSerializer`] between om processes with feature `msgpack`).

#[cfg(feature = "msgpack")]
use crate::JsonObject;
use crate::{Context, RequestContext, Result};
use serde_json::Value;
use std::sync::Arc;

/// oslo's serializer interface, on JSON values.
pub trait Serializer: Send + Sync + 'static {
    /// Prepares an argument, result or payload for sending.
    fn serialize_entity(&self, ctxt: &Context, entity: Value) -> Result<Value>;
    /// Rebuilds an argument, result or payload received.
    fn deserialize_entity(&self, ctxt: &Context, entity: Value) -> Result<Value>;
    /// Prepares a context for sending.
    fn serialize_context(&self, ctxt: &Context) -> Result<Context>;
    /// Rebuilds a context received.
    fn deserialize_context(&self, ctxt: Context) -> Result<Context>;
    /// Whether [`Serializer::serialize_entity`] reads its context. `true`
    /// unless a serializer says otherwise; when `false`, a server hands the
    /// request context to the endpoint without keeping a copy to serialize
    /// the result with.
    fn entities_use_context(&self) -> bool {
        true
    }
}

/// A shared, dynamically typed serializer.
pub type DynSerializer = Arc<dyn Serializer>;

/// Returns everything unchanged (oslo's `NoOpSerializer`, the default).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoOpSerializer;

impl Serializer for NoOpSerializer {
    fn serialize_entity(&self, _: &Context, entity: Value) -> Result<Value> {
        Ok(entity)
    }
    fn deserialize_entity(&self, _: &Context, entity: Value) -> Result<Value> {
        Ok(entity)
    }
    fn serialize_context(&self, ctxt: &Context) -> Result<Context> {
        Ok(ctxt.clone())
    }
    fn deserialize_context(&self, ctxt: Context) -> Result<Context> {
        Ok(ctxt)
    }
    fn entities_use_context(&self) -> bool {
        false
    }
}

/// The request-context serializer pattern of nova and neutron: wraps a base
/// serializer for entities, and normalizes contexts through
/// [`RequestContext`] (`to_dict()` on send, `from_dict()` on receipt), so
/// endpoints always see the full set of OpenStack keys with their defaults.
#[derive(Debug, Default, Clone)]
pub struct RequestContextSerializer<S = NoOpSerializer> {
    base: S,
}

impl<S: Serializer> RequestContextSerializer<S> {
    /// Wraps `base`.
    pub fn new(base: S) -> Self {
        RequestContextSerializer { base }
    }
}

impl<S: Serializer> Serializer for RequestContextSerializer<S> {
    fn serialize_entity(&self, ctxt: &Context, entity: Value) -> Result<Value> {
        self.base.serialize_entity(ctxt, entity)
    }
    fn deserialize_entity(&self, ctxt: &Context, entity: Value) -> Result<Value> {
        self.base.deserialize_entity(ctxt, entity)
    }
    fn serialize_context(&self, ctxt: &Context) -> Result<Context> {
        Ok(RequestContext::from_context(ctxt)?.to_context())
    }
    fn deserialize_context(&self, ctxt: Context) -> Result<Context> {
        Ok(RequestContext::from_context(&ctxt)?.to_context())
    }
    fn entities_use_context(&self) -> bool {
        self.base.entities_use_context()
    }
}

/// MessagePack codec for entity values (feature `msgpack`): an om-to-om
/// option for compact binary payloads. Each entity is encoded with
/// rmp-serde and carried as `{"__msgpack__": [bytes...]}`; Python peers do
/// not understand it, so use it only between om processes.
#[cfg(feature = "msgpack")]
#[cfg_attr(docsrs, doc(cfg(feature = "msgpack")))]
#[derive(Debug, Default, Clone, Copy)]
pub struct MsgPackSerializer;

#[cfg(feature = "msgpack")]
impl MsgPackSerializer {
    const KEY: &'static str = "__msgpack__";
}

#[cfg(feature = "msgpack")]
impl Serializer for MsgPackSerializer {
    fn serialize_entity(&self, _: &Context, entity: Value) -> Result<Value> {
        let bytes =
            rmp_serde::to_vec(&entity).map_err(|e| crate::Error::Serialization(e.to_string()))?;
        let mut obj = JsonObject::with_capacity(1);
        obj.insert(
            Self::KEY.into(),
            Value::Array(bytes.into_iter().map(Value::from).collect()),
        );
        Ok(Value::Object(obj))
    }
    fn deserialize_entity(&self, _: &Context, entity: Value) -> Result<Value> {
        match entity {
            Value::Object(ref obj) if obj.len() == 1 && obj.contains_key(Self::KEY) => {
                let Some(Value::Array(items)) = obj.get(Self::KEY) else {
                    return Err(crate::Error::Serialization(
                        "__msgpack__ must be an array of bytes".into(),
                    ));
                };
                let bytes = items
                    .iter()
                    .map(|v| v.as_u64().and_then(|n| u8::try_from(n).ok()))
                    .collect::<Option<Vec<u8>>>()
                    .ok_or_else(|| {
                        crate::Error::Serialization("__msgpack__ must hold bytes 0..=255".into())
                    })?;
                rmp_serde::from_slice(&bytes)
                    .map_err(|e| crate::Error::Serialization(e.to_string()))
            }
            other => Ok(other),
        }
    }
    fn serialize_context(&self, ctxt: &Context) -> Result<Context> {
        Ok(ctxt.clone())
    }
    fn deserialize_context(&self, ctxt: Context) -> Result<Context> {
        Ok(ctxt)
    }
    fn entities_use_context(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_context_serializer_fills_defaults() {
        let s = RequestContextSerializer::new(NoOpSerializer);
        let ctx = Context::new().with("user", "u").with("custom", 1);
        let out = s.serialize_context(&ctx).unwrap();
        assert_eq!(out.get("is_admin"), Some(&json!(false)));
        assert_eq!(out.get("custom"), Some(&json!(1)));
        assert_eq!(s.serialize_entity(&ctx, json!([1])).unwrap(), json!([1]));
    }

    #[cfg(feature = "msgpack")]
    #[test]
    fn msgpack_round_trip() {
        let s = MsgPackSerializer;
        let ctx = Context::new();
        let v = json!({"a": [1, "x", null, 2.5]});
        let packed = s.serialize_entity(&ctx, v.clone()).unwrap();
        assert_ne!(packed, v);
        assert_eq!(s.deserialize_entity(&ctx, packed).unwrap(), v);
    }
}
