//! Topic names and record values (`wire-kafka.md` §3 and §4).

use om_driver_api::om_core::envelope::{self, Format};
use om_driver_api::om_core::{
    context::json_kind, Error, JsonObject, Priority, Result, Target, Value,
};

/// The key under which the context travels inside the notification.
pub const CONTEXT_KEY: &str = "_context";

/// The topic a notifier publishes to: the notification target's topic
/// (`<topic>.<priority>`), followed by `.<virtual host>` when the transport
/// URL has a non-empty virtual host.
///
/// This reproduces oslo.messaging: the **producer** appends the virtual
/// host, the consumer ([`listener_topic`]) does not, so with a virtual host
/// in the URL a notifier and a listener using the same URL do not meet.
///
/// ```
/// use om_driver_kafka::codec::producer_topic;
/// assert_eq!(producer_topic("notifications.info", Some("my_host")), "notifications.info.my_host");
/// assert_eq!(producer_topic("notifications.info", Some("")), "notifications.info");
/// assert_eq!(producer_topic("notifications.info", None), "notifications.info");
/// ```
pub fn producer_topic(target_topic: &str, virtual_host: Option<&str>) -> String {
    match virtual_host {
        Some(vh) if !vh.is_empty() => format!("{target_topic}.{vh}"),
        _ => target_topic.to_owned(),
    }
}

/// The topic a listener subscribes to for `(target, priority)`:
/// `<topic>.<priority>`, never with the virtual host (see
/// [`producer_topic`]). The target's exchange is ignored, as in
/// oslo.messaging.
///
/// ```
/// use om_driver_kafka::codec::listener_topic;
/// use om_driver_api::om_core::{Priority, Target};
/// assert_eq!(listener_topic(&Target::new("notifications"), Priority::Warn).unwrap(), "notifications.warn");
/// ```
pub fn listener_topic(target: &Target, priority: Priority) -> Result<String> {
    target.validate_for_notification()?;
    let topic = target.topic.as_deref().unwrap_or_default();
    Ok(format!("{topic}.{}", priority.as_lower()))
}

/// The record value of a notification: the 2.0 envelope around the
/// notification fields followed by `_context` (the context nested as one
/// object, not flattened). Both formats give the same bytes, as in
/// oslo.messaging (`messaging` and `messagingv2` produce identical records).
pub fn encode_notification(
    message: &JsonObject,
    ctxt: &JsonObject,
    _format: Format,
) -> Result<Vec<u8>> {
    envelope::encode_as(&RecordOut { message, ctxt }, Format::V2)
}

/// The notification fields (any `_context` among them left out) followed
/// by `_context`, serialized from borrowed maps.
struct RecordOut<'a> {
    message: &'a JsonObject,
    ctxt: &'a JsonObject,
}

impl serde::Serialize for RecordOut<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let fields = self.message.iter().filter(|(k, _)| *k != CONTEXT_KEY);
        let mut map = serializer.serialize_map(None)?;
        for (k, v) in fields {
            map.serialize_entry(k, v)?;
        }
        map.serialize_entry(CONTEXT_KEY, self.ctxt)?;
        map.end()
    }
}

/// Decodes a record value into `(context, message)`: JSON, enveloped or
/// bare; the `_context` object is taken out of the message and returned as
/// the context (exactly that object: no `client_timeout` is added). A
/// missing or null `_context` gives an empty context (Python would fail on
/// it); any other non-object `_context` is malformed.
pub fn decode_notification(value: Option<&[u8]>) -> Result<(JsonObject, JsonObject)> {
    let Some(bytes) = value else {
        return Err(Error::MalformedMessage("the record has no value".into()));
    };
    let mut message = envelope::decode(bytes)?;
    let ctxt = match message.shift_remove(CONTEXT_KEY) {
        None | Some(Value::Null) => JsonObject::new(),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(Error::MalformedMessage(format!(
                "{CONTEXT_KEY} must be a JSON object, got {}",
                json_kind(&other)
            )))
        }
    };
    Ok((ctxt, message))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> JsonObject {
        match v {
            Value::Object(m) => m,
            _ => JsonObject::new(),
        }
    }

    #[test]
    fn record_value_like_python() {
        let message = obj(json!({
            "message_id": "0b6f3c1e-5d2a-4f7e-9a61-2c8d4e5f6a7b",
            "publisher_id": "compute.host1",
            "event_type": "compute.instance.create.end",
            "priority": "INFO",
            "payload": {"instance_id": "42"},
            "timestamp": "2025-03-01 10:00:00.123456"
        }));
        let v2 = encode_notification(&message, &JsonObject::new(), Format::V2).unwrap();
        let expected = r#"{"oslo.version": "2.0", "oslo.message": "{\"message_id\": \"0b6f3c1e-5d2a-4f7e-9a61-2c8d4e5f6a7b\", \"publisher_id\": \"compute.host1\", \"event_type\": \"compute.instance.create.end\", \"priority\": \"INFO\", \"payload\": {\"instance_id\": \"42\"}, \"timestamp\": \"2025-03-01 10:00:00.123456\", \"_context\": {}}"}"#;
        assert_eq!(String::from_utf8(v2.clone()).unwrap(), expected);
        let v1 = encode_notification(&message, &JsonObject::new(), Format::V1).unwrap();
        assert_eq!(v1, v2);
    }

    #[test]
    fn decode_takes_context_out() {
        let ctxt = obj(json!({"user": "u", "request_id": "req-1"}));
        let message = obj(json!({"event_type": "e", "priority": "INFO", "payload": {}}));
        let bytes = encode_notification(&message, &ctxt, Format::V2).unwrap();
        let (c, m) = decode_notification(Some(&bytes)).unwrap();
        assert_eq!(c, ctxt);
        assert_eq!(m, message);
        assert!(!c.contains_key("client_timeout"));
        // bare object without _context
        let (c, m) = decode_notification(Some(br#"{"event_type": "x"}"#)).unwrap();
        assert!(c.is_empty());
        assert_eq!(m.get("event_type"), Some(&json!("x")));
        assert!(decode_notification(Some(b"[1]")).is_err());
        assert!(decode_notification(Some(br#"{"_context": 3}"#)).is_err());
        assert!(decode_notification(None).is_err());
        assert!(decode_notification(Some(b"not json")).is_err());
    }
}
