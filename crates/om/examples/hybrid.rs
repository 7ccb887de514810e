//! A hybrid deployment driven only by an oslo-style configuration file:
//! RPC on the `[DEFAULT] transport_url` transport, notifications on the
//! `[oslo_messaging_notifications] transport_url` transport, exactly as
//! oslo.messaging picks them.
//!
//! ```text
//! cargo run -p om --features full --example hybrid -- path/to/service.conf
//! ```
//!
//! For example, RPC over AMQP 1.0 and notifications over RabbitMQ:
//!
//! ```ini
//! [DEFAULT]
//! transport_url = amqp://guest:guest@127.0.0.1:5672
//! control_exchange = hybrid
//! [oslo_messaging_amqp]
//! addressing_mode = legacy
//! [oslo_messaging_notifications]
//! transport_url = rabbit://guest:guest@127.0.0.1:5672/
//! driver = messagingv2
//! topics = hybrid_notifications
//! ```

use om::config::ConfigLoader;
use om::notify::{
    Endpoint as NotificationEndpoint, Notification, NotificationListener, Notifier, NotifierDriver,
};
use om::rpc::{Endpoint, HandlerError, RpcClient, RpcServer};
use om::{Context, Retry, Target};
use std::time::Duration;
use tokio::sync::mpsc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: hybrid <config file>")?;
    om::install_default_drivers();
    let cfg = ConfigLoader::new().config_file(&path).load()?;
    for w in cfg.warnings() {
        eprintln!("config warning: {w}");
    }

    // RPC on one transport ...
    let rpc_transport = cfg.open_rpc_transport().await?;
    // ... notifications on another.
    let notify_transport = cfg.open_notification_transport().await?;
    println!(
        "RPC transport: {} ({}), notification transport: {} ({})",
        rpc_transport.url(),
        rpc_transport.driver_name(),
        notify_transport.url(),
        notify_transport.driver_name()
    );

    let topic = format!("hybrid_{}", om::core::uuid_hex());
    let server = RpcServer::builder(rpc_transport.clone(), Target::new(&topic).with_server("h1"))
        .executor_pool_size(cfg.default.executor_thread_pool_size.max(1) as usize)
        .endpoint(Endpoint::new().method(
            "double",
            |_ctx: Context, x: serde_json::Value| async move {
                let n = x.get("n").and_then(serde_json::Value::as_i64).unwrap_or(0);
                Ok::<_, HandlerError>(n * 2)
            },
        ))
        .build()?;
    server.start().await?;
    let client = RpcClient::builder(rpc_transport.clone(), Target::new(&topic))
        .timeout(Duration::from_secs(
            cfg.default.rpc_response_timeout.max(1) as u64
        ))
        .build();
    let doubled: i64 = client
        .call(&Context::new(), "double", serde_json::json!({"n": 21}))
        .await?;
    println!(
        "RPC over {}: double(21) -> {doubled}",
        rpc_transport.driver_name()
    );

    // Notifier and listener from [oslo_messaging_notifications].
    let drivers = cfg
        .notifications
        .driver
        .iter()
        .map(|d| d.parse::<NotifierDriver>())
        .collect::<Result<Vec<_>, _>>()?;
    let topics = cfg.notifications.topics.clone();
    let (tx, mut rx) = mpsc::unbounded_channel::<Notification>();
    let listener = NotificationListener::builder(notify_transport.clone())
        .targets(topics.iter().map(Target::new))
        .endpoint(NotificationEndpoint::new().info(move |n: Notification| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(n);
            }
        }))
        .build()?;
    listener.start().await?;
    let notifier = Notifier::builder(notify_transport.clone())
        .publisher_id("hybrid.example")
        .drivers(drivers)
        .topics(topics.iter().map(String::as_str))
        .retry(Retry::from_oslo(Some(cfg.notifications.retry)))
        .build();
    notifier
        .info(
            &Context::new(),
            "hybrid.double.end",
            serde_json::json!({"result": doubled}),
        )
        .await?;
    let n = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await?
        .ok_or("listener stopped")?;
    println!(
        "notification over {}: {} {} payload {}",
        notify_transport.driver_name(),
        n.priority.as_upper(),
        n.event_type,
        n.payload
    );

    listener.stop().await;
    listener.wait().await;
    server.stop().await?;
    server.wait().await?;
    rpc_transport.cleanup().await;
    notify_transport.cleanup().await;
    Ok(())
}
