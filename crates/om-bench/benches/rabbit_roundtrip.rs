//! Criterion: one RPC call round trip through RabbitMQ, om against raw
//! lapin, on the broker of `OM_RABBIT_URL` (om's `rabbit://` form).
//! Without the variable it prints `SKIPPED` and measures nothing.
//!
//! ```text
//! OM_RABBIT_URL=rabbit://guest:guest@127.0.0.1:35672/ cargo bench -p om-bench --bench rabbit_roundtrip
//! ```

use criterion::{criterion_group, criterion_main, Criterion};
use om_bench::{harness, lapin_url, rabbit_om, rabbit_raw};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

fn roundtrip(c: &mut Criterion) {
    let Some(url) = std::env::var("OM_RABBIT_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    else {
        println!("SKIPPED rabbit_roundtrip (OM_RABBIT_URL not set)");
        return;
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            println!("SKIPPED rabbit_roundtrip (no tokio runtime: {e})");
            return;
        }
    };
    let prefix = format!(
        "bench_crit_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let om_topic = format!("{prefix}_om");
    let raw_topic = format!("{prefix}_raw");
    let amqp = lapin_url(&url);
    let bodies = rabbit_raw::Bodies::new(rabbit_raw::Messages::Oslo, "rpc", 200);
    let setup = rt.block_on(async {
        let server_t = om::transport(&url).await?;
        let client_t = om::transport(&url).await?;
        let server =
            rabbit_om::start_server(server_t, &om_topic, Arc::new(AtomicU64::new(0))).await?;
        let client = rabbit_om::client(client_t, &om_topic);
        let hits = Arc::new(AtomicU64::new(0));
        let raw_server = rabbit_raw::RawServer::start(
            &amqp,
            &raw_topic,
            hits,
            true,
            &bodies,
            rabbit_raw::Connections::Shared,
        )
        .await?;
        let raw_client = rabbit_raw::RawClient::connect(
            &amqp,
            &raw_topic,
            true,
            &bodies,
            rabbit_raw::Connections::Shared,
        )
        .await?;
        Ok::<_, anyhow::Error>((server, client, raw_server, raw_client))
    });
    let (server, client, raw_server, raw_client) = match setup {
        Ok(s) => s,
        Err(e) => panic!("cannot set up the round-trip benchmark on {url}: {e:#}"),
    };
    let ctx = om::Context::new().with("user", "bench");
    let args = rabbit_om::Args {
        payload: harness::payload(200),
    };
    let body = bodies.request.clone();

    let mut group = c.benchmark_group("rabbit_roundtrip");
    group.bench_function("om_call", |b| {
        b.to_async(&rt).iter(|| async {
            if let Err(e) = rabbit_om::echo(&client, &ctx, &args).await {
                panic!("om call failed: {e:#}");
            }
        })
    });
    group.bench_function("raw_lapin_call", |b| {
        b.to_async(&rt).iter(|| async {
            if let Err(e) = raw_client.call(&body).await {
                panic!("raw call failed: {e:#}");
            }
        })
    });
    group.finish();

    rt.block_on(async {
        let _ = server.stop().await;
        let _ = server.wait().await;
        drop(raw_server);
        rabbit_raw::delete_queues(
            &amqp,
            &[
                om_topic.clone(),
                format!("{om_topic}.bench-server"),
                raw_topic.clone(),
            ],
        )
        .await;
    });
}

criterion_group!(benches, roundtrip);
criterion_main!(benches);
