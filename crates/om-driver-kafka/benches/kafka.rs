//! Benchmarks of the Kafka driver: record encoding and decoding (no broker)
//! and, when `OM_KAFKA_URL` names a broker, one notification sent and
//! acknowledged by it per iteration.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use om_driver_api::om_core::envelope::Format;
use om_driver_api::om_core::{JsonObject, Target, Value};
use om_driver_api::{Notification, Transport};
use om_driver_kafka::codec::{decode_notification, encode_notification};
use serde_json::json;
use std::hint::black_box;

fn obj(v: Value) -> JsonObject {
    match v {
        Value::Object(m) => m,
        _ => JsonObject::new(),
    }
}

fn sample() -> (JsonObject, JsonObject) {
    let message = obj(json!({
        "message_id": "0b6f3c1e-5d2a-4f7e-9a61-2c8d4e5f6a7b",
        "publisher_id": "compute.host1",
        "event_type": "compute.instance.create.end",
        "priority": "INFO",
        "payload": {"instance_id": "42", "state": "active", "flavor": {"vcpus": 2, "ram": 4096},
                    "tags": ["a", "b", "c"], "description": "café ☃"},
        "timestamp": "2025-03-01 10:00:00.123456",
    }));
    let ctxt = obj(json!({
        "user": "u1", "project_id": "p1", "request_id": "req-0b6f3c1e", "roles": ["admin", "member"],
        "is_admin": false, "read_only": false, "show_deleted": false, "auth_token": null,
    }));
    (message, ctxt)
}

fn codec(c: &mut Criterion) {
    let (message, ctxt) = sample();
    let encoded = encode_notification(&message, &ctxt, Format::V2).unwrap_or_default();
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode_notification", |b| {
        b.iter(|| encode_notification(black_box(&message), black_box(&ctxt), Format::V2))
    });
    g.bench_function("decode_notification", |b| {
        b.iter(|| decode_notification(black_box(Some(encoded.as_slice()))))
    });
    // A payload dominated by one long string (3 KiB of text).
    let mut large = message.clone();
    large.insert("payload".into(), json!({"log": "x".repeat(3072)}));
    let large = encode_notification(&large, &ctxt, Format::V2).unwrap_or_default();
    g.bench_function("decode_notification_3k", |b| {
        b.iter(|| decode_notification(black_box(Some(large.as_slice()))))
    });
    g.finish();
}

fn broker(c: &mut Criterion) {
    let Some(url) = std::env::var("OM_KAFKA_URL").ok().filter(|u| !u.is_empty()) else {
        println!("broker benchmark SKIPPED (OM_KAFKA_URL not set)");
        return;
    };
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    else {
        println!("broker benchmark SKIPPED (no tokio runtime)");
        return;
    };
    om_driver_kafka::register();
    let Ok(t) = rt.block_on(Transport::from_url(&url)) else {
        println!("broker benchmark SKIPPED (cannot open {url})");
        return;
    };
    let topic = format!("bench-{}.info", &om_driver_api::om_core::uuid_hex()[..12]);
    let (message, ctxt) = sample();
    let mut g = c.benchmark_group("broker");
    g.throughput(Throughput::Elements(1));
    g.bench_function("send_notification_acknowledged", |b| {
        b.to_async(&rt).iter(|| {
            let n = Notification::new(Target::new(topic.clone()), message.clone(), Format::V2)
                .with_context(ctxt.clone());
            let t = t.clone();
            async move { t.driver().send_notification(n).await }
        })
    });
    g.finish();
    rt.block_on(t.cleanup());
}

criterion_group!(benches, codec, broker);
criterion_main!(benches);
