//! Message layout (`wire-amqp1.md` §4): what goes into the header,
//! properties and body of requests, replies, heartbeats and notifications,
//! and how received messages are decoded.
//!
//! Every body is one amqp-value section holding a string: JSON written the
//! way Python's `json.dumps` writes it (ASCII only). Heartbeats carry no
//! body section at all.

use fe2o3_amqp::types::messaging::{AmqpValue, Body, Data, Header, Message, MessageId, Properties};
use fe2o3_amqp::types::primitives::Value as AmqpPrimitive;
use om_driver_api::om_core::envelope::{self, Format};
use om_driver_api::om_core::{Error, JsonObject, RemoteError, Result, Value};
use om_driver_api::ReplyEvent;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::time::Duration;

/// A message as sent and received by the driver.
pub type AmqpMessage = Message<Body<AmqpPrimitive>>;

/// The body of a request as written: serialized from borrowed parts, in
/// the key order the Python driver writes.
#[derive(Serialize)]
struct OutBody<'a> {
    request: &'a JsonObject,
    context: &'a JsonObject,
    #[serde(skip_serializing_if = "Option::is_none")]
    call_monitor_timeout: Option<Value>,
}

/// A reply body: `{"response": …}` or `{"failure": "…"}`.
#[derive(Serialize)]
struct OutReply<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<&'a str>,
}

/// A received request or notification body, borrowed: `request` stays
/// unparsed until its shape is known. Bodies that do not parse this way
/// (not an object, invalid JSON) go through [`body_object`] for a precise
/// error.
#[derive(Deserialize)]
struct InBody<'a> {
    #[serde(borrow, default)]
    request: Option<&'a RawValue>,
    #[serde(default)]
    context: Option<Value>,
    #[serde(default)]
    call_monitor_timeout: Option<Value>,
}

/// The header section: empty unless a ttl is given.
fn header(ttl: Option<Duration>) -> Header {
    Header {
        ttl: ttl.map(|t| u32::try_from(t.as_millis()).unwrap_or(u32::MAX)),
        ..Header::default()
    }
}

fn string_body(json: String) -> Body<AmqpPrimitive> {
    Body::Value(AmqpValue(AmqpPrimitive::String(json)))
}

/// No body section at all (an empty batch of data sections encodes as
/// nothing), as the Python driver sends heartbeats.
fn no_body() -> Body<AmqpPrimitive> {
    Body::Data(Vec::<Data>::new().into())
}

fn message(header: Header, properties: Properties, body: Body<AmqpPrimitive>) -> AmqpMessage {
    Message {
        header: Some(header),
        delivery_annotations: None,
        message_annotations: None,
        properties: Some(properties),
        application_properties: None,
        body,
        footer: None,
    }
}

/// The call-specific parts of a request.
#[derive(Debug, Clone)]
pub struct CallInfo<'a> {
    /// The `message-id` (uuid4 hex).
    pub msg_id: &'a str,
    /// The caller's reply address.
    pub reply_to: &'a str,
    /// The call timeout, sent as the header `ttl`.
    pub ttl: Option<Duration>,
}

/// An RPC request: body `{"request": …, "context": …[, "call_monitor_timeout": …]}`;
/// `to`; for a call also `message-id`, `reply-to` and the header `ttl`.
pub fn request(
    to: &str,
    request: &JsonObject,
    ctxt: &JsonObject,
    call_monitor_timeout: Option<f64>,
    call: Option<CallInfo<'_>>,
) -> Result<AmqpMessage> {
    let json = envelope::to_python_json_string(&OutBody {
        request,
        context: ctxt,
        call_monitor_timeout: call_monitor_timeout.map(|t| timeout_json(Some(t))),
    })?;
    let mut props = Properties {
        to: Some(to.to_owned()),
        ..Properties::default()
    };
    let mut ttl = None;
    if let Some(call) = call {
        props.message_id = Some(MessageId::String(call.msg_id.to_owned()));
        props.reply_to = Some(call.reply_to.to_owned());
        ttl = call.ttl;
    }
    Ok(message(header(ttl), props, string_body(json)))
}

/// A call-monitor timeout as Python writes a number: an integer when whole.
fn timeout_json(value: Option<f64>) -> Value {
    match value {
        None => Value::Null,
        Some(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => Value::from(v as i64),
        Some(v) => serde_json::Number::from_f64(v)
            .map(Value::Number)
            .unwrap_or(Value::Null),
    }
}

/// Serializes a remote error as a reply's `failure` string (om-core's
/// codec: `class`, `module`, `message`, `tb`, `args`, `kwargs`).
pub fn failure_to_json(e: &RemoteError) -> String {
    e.to_failure_json()
}

/// Parses a reply's `failure` string; text that is not a JSON object
/// becomes a `RemoteError` carrying it.
pub fn failure_from_json(s: &str) -> RemoteError {
    RemoteError::from_failure_json(s)
        .unwrap_or_else(|_| RemoteError::new("RemoteError", "oslo_messaging.exceptions", s))
}

/// A reply: body `{"response": …}` or `{"failure": "<json>"}`; `to` and
/// `correlation-id`; empty header.
pub fn reply(
    to: &str,
    correlation_id: &str,
    reply: &std::result::Result<Value, RemoteError>,
) -> Result<AmqpMessage> {
    let json = match reply {
        Ok(v) => envelope::to_python_json_string(&OutReply {
            response: Some(v),
            failure: None,
        })?,
        Err(e) => envelope::to_python_json_string(&OutReply {
            response: None,
            failure: Some(&failure_to_json(e)),
        })?,
    };
    let props = Properties {
        to: Some(to.to_owned()),
        correlation_id: Some(MessageId::String(correlation_id.to_owned())),
        ..Properties::default()
    };
    Ok(message(header(None), props, string_body(json)))
}

/// A heartbeat: no body; `to`, `correlation-id`, header `ttl` = the
/// call-monitor timeout.
pub fn heartbeat(to: &str, correlation_id: &str, ttl: Option<Duration>) -> AmqpMessage {
    let props = Properties {
        to: Some(to.to_owned()),
        correlation_id: Some(MessageId::String(correlation_id.to_owned())),
        ..Properties::default()
    };
    message(header(ttl), props, no_body())
}

/// A notification: body `{"request": <message, enveloped for 2.0>, "context": …}`;
/// only `to`; empty header.
pub fn notification(
    to: &str,
    msg: &JsonObject,
    format: Format,
    ctxt: &JsonObject,
) -> Result<AmqpMessage> {
    // `{"request": <message or its 2.0 envelope>, "context": <ctxt>}`, what
    // serializing `OutBody` gives, written from parts so that the envelope
    // is escaped in one pass (om-core's `encode`) rather than encoded as a
    // string and escaped again.
    let request = envelope::encode(msg, format)?;
    let context = envelope::to_python_json(ctxt)?;
    let mut out = Vec::with_capacity(request.len() + context.len() + 32);
    out.extend_from_slice(b"{\"request\": ");
    out.extend_from_slice(&request);
    out.extend_from_slice(b", \"context\": ");
    out.extend_from_slice(&context);
    out.push(b'}');
    // Python-style JSON is ASCII.
    let json = String::from_utf8(out).map_err(|e| Error::Serialization(e.to_string()))?;
    let props = Properties {
        to: Some(to.to_owned()),
        ..Properties::default()
    };
    Ok(message(header(None), props, string_body(json)))
}

/// The JSON text of a body, or `None` when the message has no body (no
/// section, a null value, or empty data sections: RabbitMQ turns body-less
/// messages into one empty data section).
pub fn body_text(body: &Body<AmqpPrimitive>) -> Result<Option<String>> {
    body_str(body).map(|t| t.map(Cow::into_owned))
}

/// Like [`body_text`], borrowing the usual amqp-value string.
fn body_str(body: &Body<AmqpPrimitive>) -> Result<Option<Cow<'_, str>>> {
    match body {
        Body::Empty => Ok(None),
        Body::Value(AmqpValue(AmqpPrimitive::String(s))) => Ok(Some(Cow::Borrowed(s))),
        Body::Value(AmqpValue(AmqpPrimitive::Null)) => Ok(None),
        Body::Value(AmqpValue(AmqpPrimitive::Binary(b))) => {
            utf8(b.to_vec()).map(|t| Some(Cow::Owned(t)))
        }
        Body::Value(AmqpValue(other)) => Err(Error::MalformedMessage(format!(
            "the amqp-value body must be a string holding JSON, got {}",
            primitive_kind(other)
        ))),
        Body::Data(batch) => {
            let mut bytes = Vec::new();
            for d in batch.iter() {
                bytes.extend_from_slice(&d.0);
            }
            if bytes.is_empty() {
                Ok(None)
            } else {
                utf8(bytes).map(|t| Some(Cow::Owned(t)))
            }
        }
        Body::Sequence(_) => Err(Error::MalformedMessage(
            "an amqp-sequence body is not an oslo message".into(),
        )),
    }
}

fn utf8(bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes)
        .map_err(|_| Error::MalformedMessage("the body is not UTF-8 text".into()))
}

fn primitive_kind(v: &AmqpPrimitive) -> &'static str {
    match v {
        AmqpPrimitive::Map(_) => "a map",
        AmqpPrimitive::List(_) => "a list",
        AmqpPrimitive::Array(_) => "an array",
        AmqpPrimitive::Described(_) => "a described value",
        _ => "a scalar",
    }
}

fn body_object(body: &Body<AmqpPrimitive>, what: &str) -> Result<JsonObject> {
    let text =
        body_str(body)?.ok_or_else(|| Error::MalformedMessage(format!("{what} without a body")))?;
    body_object_from(&text, what)
}

fn body_object_from(text: &str, what: &str) -> Result<JsonObject> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(Error::MalformedMessage(format!(
            "{what} body must be a JSON object, got {}",
            om_driver_api::om_core::context::json_kind(&other)
        ))),
        Err(e) => Err(Error::MalformedMessage(format!(
            "{what} body is not valid JSON: {e}"
        ))),
    }
}

/// A decoded RPC request.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedRequest {
    /// `method`, `args`, and `namespace` / `version` when present.
    pub request: JsonObject,
    /// The context.
    pub context: JsonObject,
    /// `call_monitor_timeout`, when the caller set one.
    pub call_monitor_timeout: Option<f64>,
    /// `call_monitor_timeout` as received (`null` when absent), for the
    /// context's `client_timeout`.
    pub call_monitor_timeout_raw: Value,
}

/// Decodes an RPC request body.
pub fn decode_request(body: &Body<AmqpPrimitive>) -> Result<DecodedRequest> {
    let text = body_str(body)?
        .ok_or_else(|| Error::MalformedMessage("RPC request without a body".into()))?;
    let normalized;
    let wire = match serde_json::from_str::<InBody<'_>>(&text) {
        Ok(w) => w,
        Err(_) => {
            // Not an object, not JSON, or an odd object (duplicate keys):
            // the general parser names the problem or normalizes it.
            normalized = serde_json::to_string(&body_object_from(&text, "RPC request")?)
                .map_err(|e| Error::MalformedMessage(format!("RPC request body: {e}")))?;
            serde_json::from_str::<InBody<'_>>(&normalized)
                .map_err(|e| Error::MalformedMessage(format!("RPC request body: {e}")))?
        }
    };
    let request = match wire.request {
        Some(raw) => match serde_json::from_str::<JsonObject>(raw.get()) {
            Ok(r) => r,
            Err(_) => {
                envelope::decode_value(serde_json::from_str::<Value>(raw.get()).map_err(|e| {
                    Error::MalformedMessage(format!("RPC request is not valid JSON: {e}"))
                })?)?
            }
        },
        None => {
            return Err(Error::MalformedMessage(
                "RPC request body has no \"request\"".into(),
            ))
        }
    };
    let context = match wire.context {
        Some(Value::Object(c)) => c,
        Some(Value::Null) | None => JsonObject::new(),
        Some(other) => {
            return Err(Error::MalformedMessage(format!(
                "RPC request context must be an object, got {}",
                om_driver_api::om_core::context::json_kind(&other)
            )))
        }
    };
    let raw = wire.call_monitor_timeout.unwrap_or(Value::Null);
    let call_monitor_timeout = raw.as_f64();
    let call_monitor_timeout_raw = if call_monitor_timeout.is_some() {
        raw
    } else {
        Value::Null
    };
    Ok(DecodedRequest {
        request,
        context,
        call_monitor_timeout,
        call_monitor_timeout_raw,
    })
}

/// Decodes a reply: a body-less message is a heartbeat, `{"failure": …}` a
/// remote error, `{"response": …}` the result.
pub fn decode_reply(body: &Body<AmqpPrimitive>) -> Result<ReplyEvent> {
    if body_text(body)?.is_none() {
        return Ok(ReplyEvent::Heartbeat);
    }
    let mut m = body_object(body, "reply")?;
    if let Some(f) = m.shift_remove("failure") {
        let text = match f {
            Value::String(s) => s,
            other => other.to_string(),
        };
        return Ok(ReplyEvent::Final(Err(failure_from_json(&text))));
    }
    Ok(ReplyEvent::Final(Ok(m
        .shift_remove("response")
        .unwrap_or(Value::Null))))
}

/// Decodes a notification body into `(context, message)`; `request` may
/// hold the 2.0 envelope or the bare message.
pub fn decode_notification(body: &Body<AmqpPrimitive>) -> Result<(JsonObject, JsonObject)> {
    let text = body_str(body)?
        .ok_or_else(|| Error::MalformedMessage("notification without a body".into()))?;
    let normalized;
    let wire = match serde_json::from_str::<InBody<'_>>(&text) {
        Ok(w) => w,
        Err(_) => {
            // Not an object, not JSON, or an odd object (duplicate keys):
            // the general parser names the problem or normalizes it.
            normalized = serde_json::to_string(&body_object_from(&text, "notification")?)
                .map_err(|e| Error::MalformedMessage(format!("notification body: {e}")))?;
            serde_json::from_str::<InBody<'_>>(&normalized)
                .map_err(|e| Error::MalformedMessage(format!("notification body: {e}")))?
        }
    };
    let msg = match wire.request {
        // The envelope's own decoder: borrowed fast path for 2.0, bare 1.0.
        Some(raw) => envelope::decode(raw.get().as_bytes())?,
        None => {
            return Err(Error::MalformedMessage(
                "notification body has no \"request\"".into(),
            ))
        }
    };
    let ctxt = match wire.context {
        Some(Value::Object(c)) => c,
        _ => JsonObject::new(),
    };
    Ok((ctxt, msg))
}

/// The string form of a message id (`message-id`, `correlation-id`).
pub fn message_id_text(id: &MessageId) -> String {
    match id {
        MessageId::String(s) => s.clone(),
        MessageId::Ulong(n) => n.to_string(),
        MessageId::Uuid(u) => format!("{u:x}"),
        MessageId::Binary(b) => String::from_utf8_lossy(b).into_owned(),
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

    fn text(m: &AmqpMessage) -> String {
        body_text(&m.body).unwrap().unwrap()
    }

    #[test]
    fn call_layout() {
        let req = obj(
            json!({"method": "echo", "args": {"x": "é"}, "namespace": "ns1", "version": "2.1"}),
        );
        let ctxt = obj(json!({"user": "bob"}));
        let call = CallInfo {
            msg_id: "abc",
            reply_to: "dyn/1",
            ttl: Some(Duration::from_secs(8)),
        };
        let m = request("unicast.openstack.t", &req, &ctxt, Some(30.0), Some(call)).unwrap();
        assert_eq!(
            text(&m),
            r#"{"request": {"method": "echo", "args": {"x": "\u00e9"}, "namespace": "ns1", "version": "2.1"}, "context": {"user": "bob"}, "call_monitor_timeout": 30}"#
        );
        let p = m.properties.as_ref().unwrap();
        assert_eq!(p.to.as_deref(), Some("unicast.openstack.t"));
        assert_eq!(p.message_id, Some(MessageId::String("abc".into())));
        assert_eq!(p.reply_to.as_deref(), Some("dyn/1"));
        assert_eq!(m.header.as_ref().unwrap().ttl, Some(8000));
        let d = decode_request(&m.body).unwrap();
        assert_eq!(d.request, req);
        assert_eq!(d.context, ctxt);
        assert_eq!(d.call_monitor_timeout, Some(30.0));
        assert_eq!(d.call_monitor_timeout_raw, json!(30));
        let half = request("t", &req, &ctxt, Some(2.5), None).unwrap();
        assert_eq!(
            decode_request(&half.body).unwrap().call_monitor_timeout_raw,
            json!(2.5)
        );
    }

    #[test]
    fn header_section_is_an_empty_list_without_ttl() {
        // described list 0x70 (header), list0: exactly what Proton sends.
        assert_eq!(
            serde_amqp::to_vec(&header(None)).unwrap(),
            vec![0x00, 0x53, 0x70, 0x45]
        );
        let with_ttl = serde_amqp::to_vec(&header(Some(Duration::from_secs(8)))).unwrap();
        assert_eq!(&with_ttl[..3], &[0x00, 0x53, 0x70]);
        let back: Header = serde_amqp::from_slice(&with_ttl).unwrap();
        assert_eq!(back.ttl, Some(8000));
    }

    #[test]
    fn cast_layout() {
        let m = request(
            "t",
            &obj(json!({"method": "m", "args": {}})),
            &JsonObject::new(),
            None,
            None,
        )
        .unwrap();
        assert_eq!(
            text(&m),
            r#"{"request": {"method": "m", "args": {}}, "context": {}}"#
        );
        let p = m.properties.as_ref().unwrap();
        assert!(p.message_id.is_none() && p.reply_to.is_none());
        assert_eq!(m.header.as_ref().unwrap().ttl, None);
    }

    #[test]
    fn replies_and_heartbeats() {
        let ok = reply("r", "id1", &Ok(json!({"a": [1, null]}))).unwrap();
        assert_eq!(text(&ok), r#"{"response": {"a": [1, null]}}"#);
        assert_eq!(
            decode_reply(&ok.body).unwrap(),
            ReplyEvent::Final(Ok(json!({"a": [1, null]})))
        );
        let mut e = RemoteError::new("ValueError", "builtins", "bad value");
        e.traceback = vec!["tb\n".into()];
        let failed = reply("r", "id1", &Err(e.clone())).unwrap();
        assert!(text(&failed)
            .starts_with(r#"{"failure": "{\"class\": \"ValueError\", \"module\": \"builtins\""#));
        assert_eq!(
            decode_reply(&failed.body).unwrap(),
            ReplyEvent::Final(Err(e))
        );
        let none = reply("r", "id1", &Ok(Value::Null)).unwrap();
        assert_eq!(
            decode_reply(&none.body).unwrap(),
            ReplyEvent::Final(Ok(Value::Null))
        );
        let hb = heartbeat("r", "id1", Some(Duration::from_secs(2)));
        assert_eq!(decode_reply(&hb.body).unwrap(), ReplyEvent::Heartbeat);
        assert_eq!(hb.header.as_ref().unwrap().ttl, Some(2000));
        // RabbitMQ delivers a body-less message as one empty data section.
        let rabbit_hb: Body<AmqpPrimitive> = Body::Data(vec![Data(Vec::new().into())].into());
        assert_eq!(decode_reply(&rabbit_hb).unwrap(), ReplyEvent::Heartbeat);
    }

    #[test]
    fn notifications_v1_and_v2() {
        let msg = obj(json!({"message_id": "m", "priority": "INFO", "payload": {"k": 1}}));
        let v2 = notification(
            "unicast.openstack.notifications.info",
            &msg,
            Format::V2,
            &JsonObject::new(),
        )
        .unwrap();
        assert_eq!(
            text(&v2),
            r#"{"request": {"oslo.version": "2.0", "oslo.message": "{\"message_id\": \"m\", \"priority\": \"INFO\", \"payload\": {\"k\": 1}}"}, "context": {}}"#
        );
        assert_eq!(
            decode_notification(&v2.body).unwrap(),
            (JsonObject::new(), msg.clone())
        );
        let v1 = notification("x", &msg, Format::V1, &obj(json!({"user": "u"}))).unwrap();
        assert_eq!(
            text(&v1),
            r#"{"request": {"message_id": "m", "priority": "INFO", "payload": {"k": 1}}, "context": {"user": "u"}}"#
        );
        assert_eq!(
            decode_notification(&v1.body).unwrap(),
            (obj(json!({"user": "u"})), msg)
        );
    }

    #[test]
    fn malformed_bodies_are_errors() {
        let bad = [
            string_body("not json".into()),
            string_body("[1]".into()),
            string_body(r#"{"context": {}}"#.into()),
            string_body(r#"{"request": "x", "context": {}}"#.into()),
            string_body(r#"{"request": {"method": "m"}, "context": 3}"#.into()),
            Body::Value(AmqpValue(AmqpPrimitive::Int(3))),
            no_body(),
        ];
        for b in &bad {
            assert_eq!(
                decode_request(b).unwrap_err().oslo_name(),
                "MessagingException"
            );
        }
        for b in [
            string_body("[1]".into()),
            string_body(r#"{"request": 1}"#.into()),
        ] {
            assert_eq!(
                decode_notification(&b).unwrap_err().oslo_name(),
                "MessagingException"
            );
        }
        // A repeated key takes its last value, as Python's json does.
        let twice = string_body(
            r#"{"request": {"method": "a"}, "context": {}, "request": {"method": "b"}}"#.into(),
        );
        assert_eq!(
            decode_request(&twice).unwrap().request,
            obj(json!({"method": "b"}))
        );
        // Data sections with JSON text are accepted on receipt.
        let data: Body<AmqpPrimitive> =
            Body::Data(vec![Data(br#"{"response": 1}"#.to_vec().into())].into());
        assert_eq!(
            decode_reply(&data).unwrap(),
            ReplyEvent::Final(Ok(json!(1)))
        );
    }
}
