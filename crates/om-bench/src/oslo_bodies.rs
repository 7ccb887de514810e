//! Message bodies with the shape and size of what om puts on the wire,
//! built once per run, for the raw implementations.
//!
//! "Raw lapin doing the same exchanges" means the same messages: the raw
//! clients send these prebuilt bytes (an oslo 2.0 envelope with the same
//! keys, ids of the same length and the same context as om's bench
//! messages) so that the broker and the sockets carry what they carry for
//! om, while the raw side does none of om's per-message work (no JSON
//! encoding or decoding, ids matched through `correlation_id`). The
//! bodies differ from om's only in JSON whitespace (a few bytes).
//!
//! [`minimal`] is the old reference point: only `{"payload": …}`.

use crate::harness;
use serde_json::{json, Value};

/// A 32-character hex id (the length of oslo's `uuid4().hex`).
const HEX_ID: &str = "0123456789abcdef0123456789abcdef";

fn envelope(inner: Value) -> Vec<u8> {
    json!({ "oslo.version": "2.0", "oslo.message": inner.to_string() })
        .to_string()
        .into_bytes()
}

fn with_context(mut inner: Value) -> Value {
    if let Some(m) = inner.as_object_mut() {
        m.insert("_unique_id".into(), HEX_ID.into());
        m.insert("_context_user".into(), "bench".into());
        m.insert("_context_project_id".into(), "bench".into());
    }
    inner
}

/// A call of `echo(payload)` as om sends it (with `_msg_id`, `_reply_q`,
/// `_timeout`).
pub fn call(payload_bytes: usize) -> Vec<u8> {
    envelope(with_context(json!({
        "method": "echo",
        "args": { "payload": harness::payload(payload_bytes) },
        "_msg_id": HEX_ID,
        "_reply_q": format!("reply_{HEX_ID}"),
        "_timeout": null,
    })))
}

/// A cast of `hit(payload)` as om sends it.
pub fn cast(payload_bytes: usize) -> Vec<u8> {
    envelope(with_context(json!({
        "method": "hit",
        "args": { "payload": harness::payload(payload_bytes) },
    })))
}

/// The reply to [`call`]: the payload as result, `ending`, `_msg_id`.
pub fn reply(payload_bytes: usize) -> Vec<u8> {
    envelope(json!({
        "result": harness::payload(payload_bytes),
        "failure": null,
        "ending": true,
        "_msg_id": HEX_ID,
        "_unique_id": HEX_ID,
    }))
}

/// A `messagingv2` notification `bench.event` at `INFO` with
/// `{"payload": …}` as payload, as om's notifier sends it.
pub fn notification(payload_bytes: usize) -> Vec<u8> {
    envelope(with_context(json!({
        "message_id": "01234567-89ab-cdef-0123-456789abcdef",
        "publisher_id": "bench.om",
        "event_type": "bench.event",
        "priority": "INFO",
        "payload": { "payload": harness::payload(payload_bytes) },
        "timestamp": "2026-11-23 15:34:52.905151",
    })))
}

/// The minimal body `{"payload": …}` (no oslo envelope).
pub fn minimal(payload_bytes: usize) -> Vec<u8> {
    json!({ "payload": harness::payload(payload_bytes) })
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_oslo_envelopes() {
        for body in [call(200), cast(200), reply(200), notification(200)] {
            let v: Value = serde_json::from_slice(&body).expect("json");
            assert_eq!(v["oslo.version"], "2.0");
            let inner: Value =
                serde_json::from_str(v["oslo.message"].as_str().expect("string")).expect("inner");
            assert!(inner.is_object());
            assert!(body.len() > 200);
        }
        let c: Value = serde_json::from_slice(&call(10)).expect("json");
        let inner: Value = serde_json::from_str(c["oslo.message"].as_str().expect("s")).expect("i");
        assert_eq!(inner["method"], "echo");
        assert_eq!(inner["_reply_q"].as_str().map(str::len), Some(38));
        assert_eq!(minimal(3), br#"{"payload":"om-"}"#.to_vec());
    }
}
