//! The server's per-request path without a broker: decode the wire body
//! (2.0 envelope, flattened context), build the `IncomingMessage` a driver
//! would hand over, run it through `RpcDispatcher::handle_incoming` (the
//! code the server runs after acknowledging), and encode the reply as the
//! RabbitMQ driver would.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use om_driver_api::om_core::envelope::{self, Format};
use om_driver_api::om_core::{Context, JsonObject, RemoteError, Result, Value};
use om_driver_api::{BoxFuture, IncomingHandle, IncomingMessage};
use om_rpc::{AccessPolicy, Endpoint, RpcDispatcher};
use serde::Deserialize;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Encodes replies like the RabbitMQ driver: `result`, `failure`, `ending`,
/// `_msg_id`, `_unique_id`, 2.0 envelope.
struct EncodingHandle {
    msg_id: String,
    bytes: Arc<AtomicUsize>,
}

impl IncomingHandle for EncodingHandle {
    fn acknowledge(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }
    fn requeue(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }
    fn reply(&self, reply: std::result::Result<Value, RemoteError>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut m = JsonObject::with_capacity(5);
            match reply {
                Ok(v) => {
                    m.insert("result".into(), v);
                    m.insert("failure".into(), Value::Null);
                }
                Err(r) => {
                    m.insert("result".into(), Value::Null);
                    let failure = serde_json::json!({
                        "class": r.exc_type, "module": r.module, "message": r.value,
                        "tb": r.traceback, "args": r.args, "kwargs": r.kwargs,
                    });
                    m.insert(
                        "failure".into(),
                        Value::String(envelope::to_python_json_string(&failure)?),
                    );
                }
            }
            m.insert("ending".into(), Value::Bool(true));
            m.insert("_msg_id".into(), Value::String(self.msg_id.clone()));
            m.insert(
                "_unique_id".into(),
                Value::String(om_driver_api::om_core::uuid_hex()),
            );
            let body = envelope::encode(&m, Format::V2)?;
            self.bytes.fetch_add(body.len(), Ordering::Relaxed);
            Ok(())
        })
    }
}

/// Decodes a request body into the message a driver hands to the server.
fn decode(body: &[u8], bytes: &Arc<AtomicUsize>) -> IncomingMessage {
    let mut msg = envelope::decode(body).expect("valid body");
    let mut ctxt = envelope::unpack_context_flat(&mut msg);
    let msg_id = msg
        .shift_remove("_msg_id")
        .and_then(|v| v.as_str().map(str::to_owned));
    msg.shift_remove("_reply_q");
    let timeout = msg.shift_remove("_timeout").unwrap_or(Value::Null);
    let unique_id = msg
        .shift_remove("_unique_id")
        .and_then(|v| v.as_str().map(str::to_owned));
    let client_timeout = timeout.as_f64();
    ctxt.insert("client_timeout".into(), timeout);
    let handle = Arc::new(EncodingHandle {
        msg_id: msg_id.clone().unwrap_or_default(),
        bytes: bytes.clone(),
    });
    IncomingMessage::new(ctxt, msg, handle)
        .with_msg_id(msg_id)
        .with_client_timeout(client_timeout)
        .with_unique_id(unique_id)
}

fn request(method: &str, args: Value) -> Vec<u8> {
    let mut m = JsonObject::new();
    m.insert("method".into(), method.into());
    m.insert("args".into(), args);
    m.insert("version".into(), "1.3".into());
    m.insert("_msg_id".into(), "59ba7a7a75f04fc8b7c8c923f98d86c6".into());
    m.insert(
        "_reply_q".into(),
        "reply_f8b2152a84d94bb8ab3bcbc95cfad177".into(),
    );
    m.insert("_timeout".into(), Value::Null);
    m.insert(
        "_unique_id".into(),
        "fe02beb098e149dc96a77b9508b49cea".into(),
    );
    let mut ctxt = JsonObject::new();
    for (k, v) in [
        ("user_id", "u"),
        ("project_id", "p"),
        ("request_id", "req-1"),
    ] {
        ctxt.insert(k.into(), v.into());
    }
    envelope::pack_context_flat(&mut m, &ctxt);
    envelope::encode(&m, Format::V2).expect("encodable")
}

#[derive(Deserialize)]
struct Echo {
    a: i64,
    b: String,
}

fn dispatcher() -> RpcDispatcher {
    let ep = Endpoint::new()
        .version("1.5")
        .method("echo", |_c: Context, e: Echo| async move {
            Ok(serde_json::json!({"a": e.a, "b": e.b}))
        })
        .method("info", |_c: Context, m: Value| async move { Ok(m) });
    let other = Endpoint::new()
        .namespace("other")
        .method("x", |_c: Context, _: ()| async { Ok(()) });
    RpcDispatcher::new(vec![other, ep], AccessPolicy::Default, None, false)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let d = dispatcher();
    let bytes = Arc::new(AtomicUsize::new(0));
    let mut group = c.benchmark_group("dispatch");

    let small = request("echo", serde_json::json!({"a": 1, "b": "x"}));
    group.throughput(Throughput::Elements(1));
    group.bench_function("echo_small", |b| {
        b.to_async(&rt).iter(|| async {
            let msg = decode(black_box(&small), &bytes);
            black_box(d.handle_incoming(msg).await.is_success())
        })
    });

    // The simulator's typical message: a ~3.2 KB cargo string in a list.
    let cargo: String = "x".repeat(3200);
    let big = request(
        "info",
        serde_json::json!({"message": [1, cargo, 1.7e9, 0.0, 0.0]}),
    );
    group.throughput(Throughput::Bytes(big.len() as u64));
    group.bench_function("info_3k", |b| {
        b.to_async(&rt).iter(|| async {
            let msg = decode(black_box(&big), &bytes);
            black_box(d.handle_incoming(msg).await.is_success())
        })
    });

    // The codec alone: decode, then reply with the arguments, no dispatch.
    group.throughput(Throughput::Elements(1));
    group.bench_function("codec_only_small", |b| {
        b.to_async(&rt).iter(|| async {
            let mut msg = decode(black_box(&small), &bytes);
            let args = msg.message.shift_remove("args").unwrap_or_default();
            black_box(msg.reply(Ok(args)).await.is_ok())
        })
    });

    let missing = request("nosuch", serde_json::json!({}));
    group.throughput(Throughput::Elements(1));
    group.bench_function("no_such_method", |b| {
        b.to_async(&rt).iter(|| async {
            let msg = decode(black_box(&missing), &bytes);
            black_box(!d.handle_incoming(msg).await.is_success())
        })
    });
    group.finish();
    assert!(bytes.load(Ordering::Relaxed) > 0);
}

criterion_group!(benches, bench);
criterion_main!(benches);
