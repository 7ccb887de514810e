//! A notifier and a listener on the in-memory `fake://` transport.
//!
//! Run with `cargo run -p om-notify --example notify_fake`.

use om_driver_api::om_core::{Context, RequestContext, Target};
use om_driver_api::Transport;
use om_notify::{
    Endpoint, Notification, NotificationFilter, NotificationListener, NotificationResult, Notifier,
    NotifierDriver,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

#[derive(Debug, Serialize, Deserialize)]
struct InstancePayload {
    instance_id: String,
    state: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let transport = Transport::from_url("fake:///example").await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();

    // Typed `info` notifications about compute instances only, and raw
    // `error` notifications from anyone.
    let info_tx = tx.clone();
    let compute = Endpoint::new()
        .info(move |n: Notification<InstancePayload>| {
            let tx = info_tx.clone();
            async move {
                let line = format!(
                    "INFO  {} from {:?}: instance {} is {} (message {}, sent {})",
                    n.event_type,
                    n.publisher_id,
                    n.payload.instance_id,
                    n.payload.state,
                    n.metadata.message_id.unwrap_or_default(),
                    n.metadata.timestamp.unwrap_or_default(),
                );
                let _ = tx.send(line);
                NotificationResult::Handled
            }
        })
        .filter(
            NotificationFilter::builder()
                .event_type(r"^compute\.instance\.")
                .build()?,
        );
    let errors = Endpoint::new().error(move |n: Notification| {
        let tx = tx.clone();
        async move {
            let user = n.ctxt.get_str("user").unwrap_or("-").to_owned();
            let _ = tx.send(format!(
                "ERROR {} (user {user}): {}",
                n.event_type, n.payload
            ));
        }
    });

    let listener = NotificationListener::builder(transport.clone())
        .target(Target::new("notifications"))
        .endpoint(compute)
        .endpoint(errors)
        .pool("example")
        .build()?;
    listener.start().await?;
    let subs: Vec<String> = listener
        .subscriptions()
        .iter()
        .map(|(t, p)| format!("{t} {p}"))
        .collect();
    println!("listening on {}", subs.join(", "));

    let notifier = Notifier::builder(transport.clone())
        .publisher_id("compute.host1")
        .driver(NotifierDriver::MessagingV2)
        .topics(["notifications"])
        .build();
    let ctxt: Context = RequestContext {
        user_id: Some("alice".into()),
        project_id: Some("demo".into()),
        auth_token: Some("never-sent".into()),
        ..RequestContext::new()
    }
    .into();
    let payload = |state: &str| InstancePayload {
        instance_id: "6c8a0c2e-1f55-4d5e-9b0e-1b0d3c5b1a2f".into(),
        state: state.into(),
    };
    notifier
        .info(&ctxt, "compute.instance.create.start", payload("building"))
        .await?;
    notifier
        .info(&ctxt, "compute.instance.create.end", payload("active"))
        .await?;
    // Filtered out by the compute endpoint's filter.
    notifier
        .info(
            &ctxt,
            "image.upload",
            serde_json::json!({"image": "cirros"}),
        )
        .await?;
    notifier
        .prepare()
        .publisher_id("network.host2")
        .build()
        .error(
            &ctxt,
            "network.port.failed",
            serde_json::json!({"port": 42}),
        )
        .await?;

    for _ in 0..3 {
        match tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await {
            Ok(Some(line)) => println!("{line}"),
            _ => return Err("a notification did not arrive".into()),
        }
    }

    listener.stop().await;
    listener.wait().await;
    transport.cleanup().await;
    println!("done");
    Ok(())
}
