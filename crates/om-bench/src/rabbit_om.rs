//! om's side of the RabbitMQ (and AMQP 1.0) scenarios: `om::rpc` and
//! `om::notify` exactly as an application uses them. Server and client
//! each open their own transport (their own connections), as two services
//! would.

use crate::harness::{self, BenchResult, RunSpec};
use anyhow::{Context as _, Result};
use om::notify::{
    Endpoint as NotifyEndpoint, Notification, NotificationListener, Notifier, NotifierDriver,
};
use om::rpc::{Endpoint, HandlerError, RpcClient, RpcServer};
use om::{Context, Target, Transport};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The arguments of the `echo` and `hit` methods.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Args {
    /// The payload string.
    pub payload: String,
}

/// Overall timeout of a call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// An RPC server on `transport` for `topic` with `echo` (returns the
/// payload) and `hit` (counts into `hits`).
pub async fn start_server(
    transport: Transport,
    topic: &str,
    hits: Arc<AtomicU64>,
) -> Result<RpcServer> {
    let endpoint = Endpoint::new()
        .method("echo", |_ctx: Context, a: Args| async move {
            Ok::<_, HandlerError>(a.payload)
        })
        .method("hit", move |_ctx: Context, _a: Args| {
            let hits = hits.clone();
            async move {
                hits.fetch_add(1, Ordering::AcqRel);
                Ok::<_, HandlerError>(())
            }
        });
    let server = RpcServer::builder(transport, Target::new(topic).with_server("bench-server"))
        .endpoint(endpoint)
        .build()?;
    server.start().await.context("starting the om RPC server")?;
    Ok(server)
}

/// A client for `topic`.
pub fn client(transport: Transport, topic: &str) -> RpcClient {
    RpcClient::builder(transport, Target::new(topic))
        .timeout(CALL_TIMEOUT)
        .build()
}

/// One `echo` call; checks the reply.
pub async fn echo(client: &RpcClient, ctx: &Context, args: &Args) -> Result<()> {
    let back: String = client.call(ctx, "echo", args).await?;
    anyhow::ensure!(
        back.len() == args.payload.len(),
        "echo returned {} bytes",
        back.len()
    );
    Ok(())
}

fn context() -> Context {
    Context::new()
        .with("user", "bench")
        .with("project_id", "bench")
}

/// RPC calls: `concurrency` callers calling `echo` back to back.
pub async fn rpc(spec: &RunSpec, backend: &str) -> Result<BenchResult> {
    let topic = format!("{}_rpc", spec.prefix);
    let server_t = om::transport(&spec.url).await?;
    let client_t = om::transport(&spec.url).await?;
    let server = start_server(server_t.clone(), &topic, Arc::new(AtomicU64::new(0))).await?;
    let client = client(client_t.clone(), &topic);
    let args = Arc::new(Args {
        payload: harness::payload(spec.payload_bytes),
    });
    let ctx = Arc::new(context());
    // One call before the clock starts: creates the reply queue.
    echo(&client, &ctx, &args).await.context("first call")?;
    let timeline = spec.window.start();
    let outcome = harness::closed_loop(spec.concurrency, timeline, move |_, _| {
        let (client, ctx, args) = (client.clone(), ctx.clone(), args.clone());
        async move { echo(&client, &ctx, &args).await }
    })
    .await;
    let result = harness::finish_calls(spec.result(backend, "om", "rpc"), outcome);
    let _ = tokio::time::timeout(Duration::from_secs(5), server.stop()).await;
    Ok(result)
}

/// Casts: `concurrency` senders casting `hit`, counted when the server's
/// method runs.
pub async fn cast(spec: &RunSpec, backend: &str) -> Result<BenchResult> {
    let topic = format!("{}_cast", spec.prefix);
    let hits = Arc::new(AtomicU64::new(0));
    let server_t = om::transport(&spec.url).await?;
    let client_t = om::transport(&spec.url).await?;
    let server = start_server(server_t.clone(), &topic, hits.clone()).await?;
    let client = client(client_t.clone(), &topic);
    let args = Arc::new(Args {
        payload: harness::payload(spec.payload_bytes),
    });
    let ctx = Arc::new(context());
    client
        .cast(&ctx, "hit", &*args)
        .await
        .context("first cast")?;
    anyhow::ensure!(
        harness::wait_for_count(&hits, 1, Duration::from_secs(10)).await,
        "the first cast never reached the server"
    );
    let (arrived, outcome) = harness::senders_with_arrivals(spec, hits, move |_, _| {
        let (client, ctx, args) = (client.clone(), ctx.clone(), args.clone());
        async move { Ok(client.cast(&ctx, "hit", &*args).await?) }
    })
    .await;
    let result = harness::finish_arrivals(spec.result(backend, "om", "cast"), arrived, outcome);
    let _ = tokio::time::timeout(Duration::from_secs(2), server.stop()).await;
    Ok(result)
}

/// Notifications: `concurrency` senders through one [`Notifier`]
/// (`messagingv2`), counted when the listener's endpoint runs (the
/// listener acknowledges after the endpoint returned).
pub async fn notify(spec: &RunSpec, backend: &str) -> Result<BenchResult> {
    let topic = format!("{}_notify", spec.prefix);
    let arrivals = Arc::new(AtomicU64::new(0));
    let listener_t = om::transport(&spec.url).await?;
    let notifier_t = om::transport(&spec.url).await?;
    let counter = arrivals.clone();
    let listener = NotificationListener::builder(listener_t.clone())
        .target(Target::new(topic.as_str()))
        .endpoint(NotifyEndpoint::new().info(move |_n: Notification| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::AcqRel);
            }
        }))
        .build()?;
    let started = tokio::time::Instant::now();
    listener
        .start()
        .await
        .context("starting the om notification listener")?;
    let notifier = Notifier::builder(notifier_t.clone())
        .publisher_id("bench.om")
        .driver(NotifierDriver::MessagingV2)
        .topics([topic.as_str()])
        .build();
    let payload = Arc::new(serde_json::json!({ "payload": harness::payload(spec.payload_bytes) }));
    let ctx = Arc::new(context());
    // Probes until one arrives: covers group joins (Kafka) and link attach.
    let mut probes = 0u64;
    loop {
        notifier
            .info(&ctx, "bench.event", &*payload)
            .await
            .context("probe notification")?;
        probes += 1;
        if harness::wait_for_count(&arrivals, 1, Duration::from_millis(500)).await {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "no notification arrived within 120 s ({probes} probes sent)"
        );
    }
    let ready_after = started.elapsed();
    let (arrived, outcome) = harness::senders_with_arrivals(spec, arrivals, move |_, _| {
        let (notifier, ctx, payload) = (notifier.clone(), ctx.clone(), payload.clone());
        async move { Ok(notifier.info(&ctx, "bench.event", &*payload).await?) }
    })
    .await;
    let mut result =
        harness::finish_arrivals(spec.result(backend, "om", "notify"), arrived, outcome);
    result.notes.push(format!(
        "listener ready (first probe received) after {:.1} s",
        ready_after.as_secs_f64()
    ));
    let _ = tokio::time::timeout(Duration::from_secs(2), listener.stop()).await;
    Ok(result)
}
