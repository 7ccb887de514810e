//! Reconnection on RabbitMQ: a loopback relay between the driver and the
//! broker cuts the driver's connection; calls, the server (its links, its
//! fanout queue) and the reply queue work again on the new connection.
//! Needs `OM_AMQP1_BROKER_URL`.
#![allow(clippy::unwrap_used)]

mod support;

use om_driver_amqp1::Amqp1Driver;
use om_driver_api::om_core::{Target, TransportUrl};
use om_driver_api::{Driver, DriverConfig, ListenOptions, ReplyEvent, RpcRequest};
use serde_json::json;
use std::time::{Duration, Instant};
use support::proxy::Proxy;

#[tokio::test]
async fn reconnects_after_the_connection_is_cut() {
    let Some(url) = support::broker_url("reconnects_after_the_connection_is_cut") else {
        return;
    };
    support::init_logs();
    let parsed: TransportUrl = url.parse().unwrap();
    let broker = &parsed.hosts[0];
    let proxy = Proxy::start(broker.address(5672)).await;
    let creds = match (&broker.username, &broker.password) {
        (Some(u), Some(p)) => format!("{u}:{}@", p.expose()),
        (Some(u), None) => format!("{u}@"),
        _ => String::new(),
    };
    let d = Amqp1Driver::new(&DriverConfig::new(
        format!("amqp://{creds}{}/?addressing_mode=legacy", proxy.addr())
            .parse()
            .unwrap(),
    ))
    .unwrap();
    let topic = support::uniq("rc");
    let mut l = d
        .listen(
            Target::new(&topic).with_server("s1"),
            ListenOptions::default(),
        )
        .await
        .unwrap();
    let serve = tokio::spawn(async move {
        while let Some(Ok(m)) = l.next().await {
            let _ = m.acknowledge().await;
            if m.is_call() {
                let _ = m.reply(Ok(json!(m.message.get("method").cloned()))).await;
            }
        }
    });
    let call = |method: &str| {
        RpcRequest::call(
            Target::new(&topic),
            json!({"method": method, "args": {}})
                .as_object()
                .cloned()
                .unwrap(),
            Duration::from_secs(15),
        )
    };
    let mut s = d.send(call("before")).await.unwrap().unwrap();
    assert_eq!(s.next().await, Some(ReplyEvent::Final(Ok(json!("before")))));

    proxy.cut();
    let started = Instant::now();
    let mut answered = false;
    while started.elapsed() < Duration::from_secs(40) {
        if let Ok(Some(mut s)) = d.send(call("after")).await {
            if let Ok(Some(ReplyEvent::Final(Ok(v)))) =
                tokio::time::timeout(Duration::from_secs(5), s.next()).await
            {
                assert_eq!(v, json!("after"));
                answered = true;
                break;
            }
        }
    }
    assert!(answered, "no answer after the connection was cut");
    serve.abort();
    d.cleanup().await;
}
