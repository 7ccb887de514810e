//! Benchmarks of om-notify: building and encoding a notification, and
//! dispatching one to an endpoint, plus a full round trip over `fake://`.
//!
//! Run with `cargo bench -p om-notify --bench notify`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use om_driver_api::om_core::envelope::{self, Format};
use om_driver_api::om_core::{Context, JsonObject, Priority, RequestContext, Target, Value};
use om_driver_api::Transport;
use om_notify::{
    Endpoint, Notification, NotificationDispatcher, NotificationEndpoint, NotificationFilter,
    NotificationListener, NotificationResult, Notifier, NotifierDriver,
};
use serde::{Deserialize, Serialize};
use std::hint::black_box;
use std::sync::Arc;
use tokio::sync::mpsc;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Payload {
    instance_id: String,
    state: String,
    memory_mb: u64,
    flavor: Flavor,
    tags: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Flavor {
    name: String,
    vcpus: u32,
    disk_gb: u32,
}

fn payload() -> Payload {
    Payload {
        instance_id: "6c8a0c2e-1f55-4d5e-9b0e-1b0d3c5b1a2f".into(),
        state: "active".into(),
        memory_mb: 2048,
        flavor: Flavor {
            name: "m1.small".into(),
            vcpus: 1,
            disk_gb: 20,
        },
        tags: vec!["web".into(), "prod".into()],
    }
}

fn context() -> Context {
    RequestContext {
        user_id: Some("alice".into()),
        project_id: Some("demo".into()),
        roles: vec!["member".into()],
        ..RequestContext::new()
    }
    .into()
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let transport = rt
        .block_on(Transport::from_url("fake:///bench"))
        .expect("transport");
    let ctxt = context();
    let notifier = Notifier::builder(transport.clone())
        .publisher_id("compute.host1")
        .driver(NotifierDriver::MessagingV2)
        .build();

    let mut g = c.benchmark_group("notify");
    g.throughput(Throughput::Elements(1));

    // What a notifier and a rabbit driver do per message, without I/O:
    // build the message, add `_unique_id` and the flattened context, encode
    // the 2.0 envelope.
    g.bench_function("build_and_encode_v2", |b| {
        b.iter(|| {
            let (ctx, mut msg) = notifier
                .build_message(
                    Priority::Info,
                    &ctxt,
                    "compute.instance.create.end",
                    payload(),
                )
                .expect("built");
            msg.insert(
                "_unique_id".into(),
                Value::String(om_driver_api::om_core::uuid_hex()),
            );
            envelope::pack_context_flat(&mut msg, &ctx);
            black_box(envelope::encode(&msg, Format::V2).expect("encoded"))
        })
    });

    // Decoding a body and dispatching it to a filtered, typed endpoint.
    let (ctx, mut msg) = notifier
        .build_message(
            Priority::Info,
            &ctxt,
            "compute.instance.create.end",
            payload(),
        )
        .expect("built");
    msg.insert(
        "_unique_id".into(),
        Value::String(om_driver_api::om_core::uuid_hex()),
    );
    envelope::pack_context_flat(&mut msg, &ctx);
    let body = envelope::encode(&msg, Format::V2).expect("encoded");
    let endpoint = Endpoint::new()
        .info(|n: Notification<Payload>| async move {
            black_box(n.payload.memory_mb);
            NotificationResult::Handled
        })
        .filter(
            NotificationFilter::builder()
                .event_type(r"^compute\.")
                .build()
                .expect("regex"),
        );
    let dispatcher = NotificationDispatcher::new(
        vec![Arc::new(endpoint) as Arc<dyn NotificationEndpoint>],
        None,
    );
    g.bench_function("decode_and_dispatch", |b| {
        b.to_async(&rt).iter(|| async {
            let mut m: JsonObject = envelope::decode(&body).expect("decoded");
            let ctx = envelope::unpack_context_flat(&mut m);
            black_box(dispatcher.dispatch(ctx, &m).await)
        })
    });

    // A full round trip: notifier → fake broker → listener → endpoint.
    let (tx, rx) = mpsc::unbounded_channel::<()>();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let listener = rt.block_on(async {
        let listener = NotificationListener::builder(transport.clone())
            .target(Target::new("notifications"))
            .endpoint(Endpoint::new().info(move |n: Notification<Payload>| {
                let tx = tx.clone();
                async move {
                    black_box(n.payload);
                    let _ = tx.send(());
                }
            }))
            .build()
            .expect("listener");
        listener.start().await.expect("start");
        listener
    });
    g.bench_function("roundtrip_fake", |b| {
        b.to_async(&rt).iter(|| async {
            notifier
                .info(&ctxt, "compute.instance.create.end", payload())
                .await
                .expect("sent");
            rx.lock().await.recv().await.expect("received");
        })
    });
    g.finish();
    rt.block_on(async {
        listener.stop().await;
        listener.wait().await;
    });
}

criterion_group!(notify, benches);
criterion_main!(notify);
