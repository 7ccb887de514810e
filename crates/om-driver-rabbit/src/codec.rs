//! Bodies and properties on the wire (`wire-rabbit.md` §3–§9).

use crate::options::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::BasicProperties;
use om_driver_api::om_core::envelope::{self, Format};
use om_driver_api::om_core::{Error, JsonObject, RemoteError, Result, Value};
use om_driver_api::ReplyEvent;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::io::{Read, Write};
use std::time::Duration;

/// The key of the call id.
pub(crate) const MSG_ID: &str = "_msg_id";
/// The key of the caller's reply queue.
pub(crate) const REPLY_Q: &str = "_reply_q";
/// The key of the call-monitor timeout.
pub(crate) const TIMEOUT: &str = "_timeout";
/// The key of the duplicate-detection id.
pub(crate) const UNIQUE_ID: &str = "_unique_id";
/// The application header naming the compression codec.
const COMPRESSION_HEADER: &str = "compression";

/// A short string, or a typed error when it is longer than AMQP allows
/// (255 bytes) instead of lapin's panic.
pub(crate) fn short_string(what: &str, s: &str) -> Result<ShortString> {
    ShortString::try_new(s).map_err(|_| {
        Error::Messaging(format!(
            "{what} {s:?} is {} bytes long; AMQP allows at most 255",
            s.len()
        ))
    })
}

/// The properties every message carries (`wire-rabbit.md` §3.2):
/// `application/json`, `utf-8`, empty headers (or the compression header),
/// persistent, priority 0, and the expiration of calls.
pub(crate) fn properties(
    expiration: Option<Duration>,
    compression: Option<Compression>,
) -> BasicProperties {
    let mut headers = FieldTable::default();
    if let Some(c) = compression {
        headers.insert(
            COMPRESSION_HEADER.into(),
            AMQPValue::LongString(c.content_type().into()),
        );
    }
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_headers(headers)
        .with_delivery_mode(2)
        .with_priority(0);
    match expiration {
        // Python: str(int(timeout * 1000)).
        Some(t) => props.with_expiration(t.as_millis().to_string().into()),
        None => props,
    }
}

/// Encodes a message (2.0 envelope or bare) and compresses it if asked.
/// (Senders use [`encode_flat_body`], which also packs the context.)
#[cfg(test)]
pub(crate) fn encode_body(
    message: &JsonObject,
    format: Format,
    compression: Option<Compression>,
) -> Result<Vec<u8>> {
    compress(envelope::encode(message, format)?, compression)
}

/// Encodes what [`encode_body`] gives for `message` with the `extra`
/// entries added and the context packed as `_context_*` entries (the
/// RabbitMQ layout), without building that map first.
pub(crate) fn encode_flat_body(
    message: &JsonObject,
    extra: &[(&str, &Value)],
    ctxt: &JsonObject,
    format: Format,
    compression: Option<Compression>,
) -> Result<Vec<u8>> {
    compress(
        envelope::encode_flat(message, extra, ctxt, format)?,
        compression,
    )
}

fn compress(body: Vec<u8>, compression: Option<Compression>) -> Result<Vec<u8>> {
    match compression {
        None => Ok(body),
        Some(Compression::Gzip) => {
            let mut enc = ZlibEncoder::new(
                Vec::with_capacity(body.len() / 2 + 16),
                flate2::Compression::default(),
            );
            enc.write_all(&body)
                .and_then(|_| enc.finish())
                .map_err(|e| Error::Serialization(format!("zlib compression failed: {e}")))
        }
    }
}

/// Decodes a delivery body: decompresses per the `compression` header, then
/// JSON and envelope (`wire-rabbit.md` §4.3). (Listeners use
/// [`decode_request`], which also takes the message apart.)
#[cfg(test)]
pub(crate) fn decode_body(properties: &BasicProperties, data: &[u8]) -> Result<JsonObject> {
    envelope::decode(&decompressed(properties, data)?)
}

/// The driver's own keys of a flat message, in the order of
/// [`decode_request`]'s `reserved`: `_msg_id`, `_reply_q`, `_timeout`,
/// `_unique_id`.
pub(crate) const RESERVED: [&str; 4] = [MSG_ID, REPLY_Q, TIMEOUT, UNIQUE_ID];

/// Decodes a delivery body like [`decode_body`] and takes it apart in the
/// same pass: the `_context_*` entries, the [`RESERVED`] keys, the rest.
pub(crate) fn decode_request(
    properties: &BasicProperties,
    data: &[u8],
) -> Result<envelope::SplitMessage<4>> {
    envelope::decode_split(&decompressed(properties, data)?, &RESERVED)
}

/// The string in `value`, if it is one (other JSON types count as absent).
pub(crate) fn string(value: Option<Value>) -> Option<String> {
    match value {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

/// The body bytes after undoing the `compression` header's codec.
fn decompressed<'a>(properties: &BasicProperties, data: &'a [u8]) -> Result<Cow<'a, [u8]>> {
    let codec = properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(COMPRESSION_HEADER))
        .map(|v| match v {
            AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
            AMQPValue::ShortString(s) => s.as_str().to_owned(),
            other => format!("{other:?}"),
        });
    match codec.as_deref() {
        None => Ok(Cow::Borrowed(data)),
        Some("application/x-gzip") | Some("application/zlib") => {
            let mut out = Vec::with_capacity(data.len() * 3);
            ZlibDecoder::new(data).read_to_end(&mut out).map_err(|e| {
                Error::MalformedMessage(format!("body is not a valid zlib stream: {e}"))
            })?;
            Ok(Cow::Owned(out))
        }
        Some(other) => Err(Error::MalformedMessage(format!(
            "unsupported body compression {other:?}"
        ))),
    }
}

/// Serializes a remote error as the `failure` JSON string of a reply
/// (`class`, `module`, `message`, `tb`, `args`, `kwargs`; §9.1), with
/// om-core's codec (byte-identical to Python's).
pub(crate) fn failure_to_json(e: &RemoteError) -> Result<String> {
    Ok(e.to_failure_json())
}

/// Parses a reply's `failure` string; anything unreadable becomes a
/// `RemoteError` carrying the raw text.
pub(crate) fn failure_from_json(s: &str) -> RemoteError {
    RemoteError::from_failure_json(s)
        .unwrap_or_else(|_| RemoteError::new("RemoteError", "oslo_messaging.exceptions", s))
}

/// A reply or heartbeat body as written: `result`, `failure`, `ending`,
/// `_msg_id`, `_unique_id`, in Python's order.
#[derive(Serialize)]
struct ReplyOut<'a> {
    result: &'a Value,
    failure: Option<String>,
    ending: bool,
    #[serde(rename = "_msg_id")]
    msg_id: &'a str,
    #[serde(rename = "_unique_id")]
    unique_id: String,
}

/// Encodes the reply (`Some`) or heartbeat (`None`) to the call `msg_id`
/// as a 2.0 envelope, compressed if asked (§7).
pub(crate) fn encode_reply(
    msg_id: &str,
    reply: Option<&std::result::Result<Value, RemoteError>>,
    compression: Option<Compression>,
) -> Result<Vec<u8>> {
    const NULL: &Value = &Value::Null;
    let (result, failure, ending) = match reply {
        None => (NULL, None, false),
        Some(Ok(v)) => (v, None, true),
        Some(Err(e)) => (NULL, Some(failure_to_json(e)?), true),
    };
    let out = ReplyOut {
        result,
        failure,
        ending,
        msg_id,
        unique_id: om_driver_api::om_core::uuid_hex(),
    };
    compress(envelope::encode_as(&out, Format::V2)?, compression)
}

/// A received reply as the caller needs it; other keys are ignored.
#[derive(Deserialize)]
struct ReplyIn {
    #[serde(rename = "_msg_id")]
    msg_id: String,
    #[serde(default)]
    result: Value,
    #[serde(default)]
    failure: Value,
    #[serde(default)]
    ending: Value,
}

/// Decodes a reply delivery into `(msg_id, part)`; `Ok(None)` when it has
/// no `_msg_id`. Replies as oslo writes them decode straight into
/// [`ReplyIn`]; anything else goes through the general decoder.
pub(crate) fn decode_reply(
    properties: &BasicProperties,
    data: &[u8],
) -> Result<Option<(String, ReplyPart)>> {
    let body = decompressed(properties, data)?;
    if let Ok(r) = envelope::decode_as::<ReplyIn>(&body) {
        let ending = r.ending.as_bool().unwrap_or(false);
        return Ok(Some((r.msg_id, classify(ending, &r.failure, r.result))));
    }
    let mut msg = envelope::decode(&body)?;
    let Some(msg_id) = take_string(&mut msg, MSG_ID) else {
        return Ok(None);
    };
    Ok(Some((msg_id, reply_part(&mut msg))))
}

/// What one reply message means to the waiting call (oslo's
/// `ReplyWaiter._process_reply` + `wait`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ReplyPart {
    /// A call-monitor heartbeat.
    Heartbeat,
    /// The final message: the result it carries (a failure, a non-null
    /// result, or `None` when it carries nothing and an earlier partial
    /// result applies).
    End(Option<std::result::Result<Value, RemoteError>>),
    /// An old-style partial reply (no `ending`) with a value to remember.
    Partial(std::result::Result<Value, RemoteError>),
}

/// Classifies a decoded reply (with `_msg_id` and `_unique_id` removed).
pub(crate) fn reply_part(msg: &mut JsonObject) -> ReplyPart {
    let ending = msg.get("ending").and_then(Value::as_bool).unwrap_or(false);
    let failure = msg.shift_remove("failure").unwrap_or(Value::Null);
    let result = msg.shift_remove("result").unwrap_or(Value::Null);
    classify(ending, &failure, result)
}

fn classify(ending: bool, failure: &Value, result: Value) -> ReplyPart {
    let failure = match failure {
        Value::String(f) if !f.is_empty() => Some(failure_from_json(f)),
        Value::Null | Value::String(_) => None,
        other => Some(failure_from_json(&other.to_string())),
    };
    let value = match failure {
        Some(f) => Some(Err(f)),
        None if !result.is_null() => Some(Ok(result)),
        None => None,
    };
    match (ending, value) {
        (true, v) => ReplyPart::End(v),
        (false, Some(v)) => ReplyPart::Partial(v),
        (false, None) => ReplyPart::Heartbeat,
    }
}

/// Folds a [`ReplyPart`] into the event handed to the caller, given the
/// partial result remembered so far.
pub(crate) fn fold_reply(
    part: ReplyPart,
    partial: &mut Option<std::result::Result<Value, RemoteError>>,
) -> Option<ReplyEvent> {
    match part {
        ReplyPart::Heartbeat => Some(ReplyEvent::Heartbeat),
        ReplyPart::Partial(v) => {
            *partial = Some(v);
            None
        }
        ReplyPart::End(Some(v)) => Some(ReplyEvent::Final(v)),
        ReplyPart::End(None) => Some(ReplyEvent::Final(partial.take().unwrap_or(Ok(Value::Null)))),
    }
}

/// Removes a string key.
pub(crate) fn take_string(msg: &mut JsonObject, key: &str) -> Option<String> {
    string(msg.shift_remove(key))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> JsonObject {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn properties_match_python() {
        let p = properties(Some(Duration::from_secs(5)), None);
        assert_eq!(
            p.content_type().as_ref().map(|s| s.as_str()),
            Some("application/json")
        );
        assert_eq!(
            p.content_encoding().as_ref().map(|s| s.as_str()),
            Some("utf-8")
        );
        assert_eq!(p.delivery_mode(), &Some(2));
        assert_eq!(p.priority(), &Some(0));
        assert_eq!(p.expiration().as_ref().map(|s| s.as_str()), Some("5000"));
        assert!(p.headers().as_ref().is_some_and(|h| h.inner().is_empty()));
        assert!(p.correlation_id().is_none() && p.reply_to().is_none() && p.message_id().is_none());
        let p = properties(None, Some(Compression::Gzip));
        assert!(p.expiration().is_none());
        assert_eq!(
            p.headers()
                .as_ref()
                .and_then(|h| h.inner().get("compression").cloned()),
            Some(AMQPValue::LongString("application/x-gzip".into()))
        );
    }

    #[test]
    fn zlib_round_trip_starts_with_78_9c() {
        let m = obj(json!({"method": "echo", "args": {"x": "y".repeat(100)}}));
        let body = encode_body(&m, Format::V2, Some(Compression::Gzip)).unwrap();
        assert_eq!(&body[..2], &[0x78, 0x9c]);
        let props = properties(None, Some(Compression::Gzip));
        assert_eq!(decode_body(&props, &body).unwrap(), m);
        let plain = encode_body(&m, Format::V2, None).unwrap();
        assert_eq!(decode_body(&properties(None, None), &plain).unwrap(), m);
        assert!(decode_body(&props, b"not zlib").is_err());
    }

    #[test]
    fn requests_come_apart_while_decoding() {
        let m = obj(json!({
            "_context_user": "bob", "method": "echo", "_msg_id": "m1",
            "_reply_q": "reply_x", "_timeout": 5, "args": {"a": null},
            "_unique_id": "u1", "_context_roles": ["admin"],
        }));
        for compression in [None, Some(Compression::Gzip)] {
            let body = encode_body(&m, Format::V2, compression).unwrap();
            let split = decode_request(&properties(None, compression), &body).unwrap();
            assert_eq!(
                Value::Object(split.ctxt),
                json!({"user": "bob", "roles": ["admin"]})
            );
            assert_eq!(
                Value::Object(split.message),
                json!({"method": "echo", "args": {"a": null}})
            );
            let [id, q, t, u] = split.reserved;
            assert_eq!(string(id).as_deref(), Some("m1"));
            assert_eq!(string(q).as_deref(), Some("reply_x"));
            assert_eq!(t, Some(json!(5)));
            assert_eq!(string(u).as_deref(), Some("u1"));
        }
        let bad = decode_request(&properties(None, None), b"[1]").unwrap_err();
        assert!(matches!(bad, Error::MalformedMessage(_)), "{bad:?}");
    }

    #[test]
    fn reply_bodies_and_parts() {
        let decode = |body: &[u8]| decode_body(&properties(None, None), body).unwrap();
        let m = decode(&encode_reply("abc", Some(&Ok(json!({"hello": "world"}))), None).unwrap());
        let keys: Vec<&str> = m.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["result", "failure", "ending", "_msg_id", "_unique_id"]
        );
        assert_eq!(m["result"], json!({"hello": "world"}));
        assert_eq!(m["failure"], Value::Null);
        assert_eq!(m["ending"], json!(true));
        assert_eq!(m["_msg_id"], json!("abc"));
        assert_eq!(m["_unique_id"].as_str().map(str::len), Some(32));
        let hb = decode(&encode_reply("abc", None, None).unwrap());
        assert_eq!(hb["ending"], json!(false));
        assert_eq!(hb["result"], Value::Null);
        let mut e = RemoteError::new("ValueError", "builtins", "bad value");
        e.traceback = vec!["Traceback\n".into()];
        let f = decode(&encode_reply("abc", Some(&Err(e.clone())), None).unwrap());
        let s = f["failure"].as_str().unwrap();
        assert!(s.starts_with(
            r#"{"class": "ValueError", "module": "builtins", "message": "bad value", "tb": ["#
        ));
        assert_eq!(failure_from_json(s), e);
        assert_eq!(f["result"], Value::Null);

        let mut partial = None;
        let mut hb = obj(json!({"result": null, "failure": null, "ending": false}));
        assert_eq!(
            fold_reply(reply_part(&mut hb), &mut partial),
            Some(ReplyEvent::Heartbeat)
        );
        let mut old = obj(json!({"result": "part", "failure": null}));
        assert_eq!(fold_reply(reply_part(&mut old), &mut partial), None);
        let mut end = obj(json!({"result": null, "failure": null, "ending": true}));
        assert_eq!(
            fold_reply(reply_part(&mut end), &mut partial),
            Some(ReplyEvent::Final(Ok(json!("part"))))
        );
        let mut zero = obj(json!({"result": 0, "failure": null, "ending": true}));
        assert_eq!(
            fold_reply(reply_part(&mut zero), &mut partial),
            Some(ReplyEvent::Final(Ok(json!(0))))
        );
        let mut fail = obj(json!({"result": null, "failure": s, "ending": true}));
        assert_eq!(
            fold_reply(reply_part(&mut fail), &mut partial),
            Some(ReplyEvent::Final(Err(e)))
        );
    }

    #[test]
    fn replies_decode_typed_and_general_alike() {
        let plain = properties(None, None);
        let e = RemoteError::new("ValueError", "builtins", "bad value");
        for (reply, want) in [
            (
                Some(Ok(json!([1, "x"]))),
                ReplyPart::End(Some(Ok(json!([1, "x"])))),
            ),
            (Some(Ok(Value::Null)), ReplyPart::End(None)),
            (Some(Err(e.clone())), ReplyPart::End(Some(Err(e.clone())))),
            (None, ReplyPart::Heartbeat),
        ] {
            for compression in [None, Some(Compression::Gzip)] {
                let body = encode_reply("id1", reply.as_ref(), compression).unwrap();
                let props = properties(None, compression);
                let (id, part) = decode_reply(&props, &body).unwrap().unwrap();
                assert_eq!((id.as_str(), &part), ("id1", &want));
                // The general path agrees.
                let mut m = decode_body(&props, &body).unwrap();
                assert_eq!(take_string(&mut m, MSG_ID).as_deref(), Some("id1"));
                assert_eq!(reply_part(&mut m), want);
            }
        }
        // Odd replies take the general path: a 1.0 body, a duplicate key,
        // a failure that is not a string, no _msg_id.
        let bare = br#"{"result": 5, "ending": true, "_msg_id": "a"}"#;
        assert_eq!(
            decode_reply(&plain, bare).unwrap(),
            Some(("a".into(), ReplyPart::End(Some(Ok(json!(5))))))
        );
        let twice = br#"{"result": 1, "result": 2, "ending": true, "_msg_id": "a"}"#;
        assert_eq!(
            decode_reply(&plain, twice).unwrap(),
            Some(("a".into(), ReplyPart::End(Some(Ok(json!(2))))))
        );
        let odd = br#"{"failure": {"class": "X"}, "ending": true, "_msg_id": "a"}"#;
        assert!(matches!(
            decode_reply(&plain, odd).unwrap(),
            Some((_, ReplyPart::End(Some(Err(_)))))
        ));
        assert_eq!(decode_reply(&plain, br#"{"result": 1}"#).unwrap(), None);
        assert!(decode_reply(&plain, b"[1]").is_err());
    }

    #[test]
    fn long_names_are_errors_not_panics() {
        assert!(short_string("routing key", &"x".repeat(256)).is_err());
        assert!(short_string("routing key", &"x".repeat(255)).is_ok());
    }
}
