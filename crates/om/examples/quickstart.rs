//! om in one process: an RPC server, a client (a call and a cast), a
//! notifier and a notification listener.
//!
//! ```text
//! cargo run -p om --example quickstart                      # in-memory fake://
//! cargo run -p om --features rabbit --example quickstart -- rabbit://guest:guest@127.0.0.1:5672/
//! ```

use om::notify::{
    Endpoint as NotificationEndpoint, Notification, NotificationListener, Notifier, NotifierDriver,
};
use om::rpc::{Endpoint, HandlerError, RpcClient, RpcServer};
use om::{Context, Target};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, Serialize, Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Log {
    line: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fake://".to_owned());
    let transport = om::transport(&url).await?;
    println!(
        "transport: {} ({})",
        transport.url(),
        transport.driver_name()
    );

    // An RPC server for topic "calculator", server "calc-1", with one endpoint.
    let (cast_tx, mut cast_rx) = mpsc::unbounded_channel::<String>();
    let endpoint = Endpoint::new()
        .version("1.1")
        .method("add", |_ctx: Context, args: Add| async move {
            Ok::<_, HandlerError>(args.a + args.b)
        })
        .method("log", move |ctx: Context, args: Log| {
            let tx = cast_tx.clone();
            async move {
                let user = ctx.get_str("user").unwrap_or("?").to_owned();
                let _ = tx.send(format!("{} (from {user})", args.line));
                Ok::<_, HandlerError>(())
            }
        });
    let server = RpcServer::builder(
        transport.clone(),
        Target::new("calculator").with_server("calc-1"),
    )
    .endpoint(endpoint)
    .build()?;
    server.start().await?;

    // A client: one call, one cast.
    let client = RpcClient::builder(
        transport.clone(),
        Target::new("calculator").with_version("1.0"),
    )
    .timeout(Duration::from_secs(10))
    .build();
    let ctx = Context::new()
        .with("user", "alice")
        .with("request_id", "req-quickstart");
    let sum: i64 = client.call(&ctx, "add", Add { a: 2, b: 40 }).await?;
    println!("call add(2, 40) -> {sum}");
    client
        .cast(
            &ctx,
            "log",
            Log {
                line: "hello from a cast".into(),
            },
        )
        .await?;
    let effect = tokio::time::timeout(Duration::from_secs(10), cast_rx.recv()).await?;
    println!(
        "cast log(...) handled by the server: {}",
        effect.unwrap_or_default()
    );

    // A listener and a notifier.
    let (note_tx, mut note_rx) = mpsc::unbounded_channel::<Notification>();
    let listener = NotificationListener::builder(transport.clone())
        .target(Target::new("notifications"))
        .endpoint(NotificationEndpoint::new().info(move |n: Notification| {
            let tx = note_tx.clone();
            async move {
                let _ = tx.send(n);
            }
        }))
        .build()?;
    listener.start().await?;
    let notifier = Notifier::builder(transport.clone())
        .publisher_id("quickstart.host1")
        .driver(NotifierDriver::MessagingV2)
        .build();
    notifier
        .info(
            &ctx,
            "calculator.add.end",
            serde_json::json!({"a": 2, "b": 40, "sum": sum}),
        )
        .await?;
    let n = tokio::time::timeout(Duration::from_secs(10), note_rx.recv())
        .await?
        .ok_or("listener stopped")?;
    println!(
        "notification received: {} {} from {} payload {}",
        n.priority.as_upper(),
        n.event_type,
        n.publisher_id.as_deref().unwrap_or("-"),
        n.payload
    );

    listener.stop().await;
    listener.wait().await;
    server.stop().await?;
    server.wait().await?;
    transport.cleanup().await;
    Ok(())
}
