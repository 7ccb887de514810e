//! TLS (crate feature `tls`): the driver talks to the router fixture
//! through the testkit's TLS-terminating loopback proxy, whose certificate
//! is signed by a test-only CA (`om_driver_api::testkit::tls`).
#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used)]

mod support;

use om_driver_amqp1::Amqp1Driver;
use om_driver_api::om_core::{Target, TransportUrl};
use om_driver_api::testkit::tls::{ca_file, proxy};
use om_driver_api::{Driver, DriverConfig, ListenOptions, ReplyEvent, RpcRequest};
use serde_json::json;
use std::time::Duration;
use support::router::Router;

fn driver(url: &str) -> Amqp1Driver {
    let url: TransportUrl = url.parse().unwrap();
    Amqp1Driver::new(&DriverConfig::new(url)).unwrap()
}

#[tokio::test]
async fn call_over_tls_with_a_private_ca() {
    let router = Router::start(Some(("om", "secret"))).await;
    let proxy = proxy(router.addr()).await;
    let ca = ca_file();
    let url = format!(
        "amqp://om:secret@{proxy}/?addressing_mode=routable&ssl_ca_file={}",
        ca.to_string_lossy()
    );
    let d = driver(&url);
    let topic = support::uniq("tls");
    let mut l = d
        .listen(
            Target::new(&topic).with_server("s"),
            ListenOptions::default(),
        )
        .await
        .unwrap();
    let msg = json!({"method": "m", "args": {}})
        .as_object()
        .cloned()
        .unwrap();
    let mut s = d
        .send(RpcRequest::call(
            Target::new(&topic),
            msg,
            Duration::from_secs(10),
        ))
        .await
        .unwrap()
        .unwrap();
    let m = tokio::time::timeout(support::WAIT, l.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    m.acknowledge().await.unwrap();
    m.reply(Ok(json!("secure"))).await.unwrap();
    assert_eq!(s.next().await, Some(ReplyEvent::Final(Ok(json!("secure")))));
    l.cleanup().await.unwrap();
    d.cleanup().await;
}

#[tokio::test]
async fn untrusted_certificate_is_refused() {
    let router = Router::start(None).await;
    let proxy = proxy(router.addr()).await;
    // `ssl` alone trusts only the public web roots, not the test CA.
    let d = driver(&format!(
        "amqp://{proxy}/?addressing_mode=routable&ssl=true"
    ));
    let e = d
        .send(
            RpcRequest::cast(
                Target::new("t"),
                json!({"method": "m"}).as_object().cloned().unwrap(),
            )
            .with_retry(om_driver_api::Retry::Limited(0)),
        )
        .await
        .unwrap_err();
    assert_eq!(e.oslo_name(), "MessageDeliveryFailure", "{e}");
    assert!(e.to_string().contains("TLS"), "{e}");
    d.cleanup().await;
}

#[tokio::test]
async fn missing_ca_file_is_a_configuration_error() {
    let url: TransportUrl = "amqp://127.0.0.1:1/?ssl_ca_file=/nonexistent/ca.pem"
        .parse()
        .unwrap();
    let e = Amqp1Driver::new(&DriverConfig::new(url)).expect_err("refused at open");
    assert_eq!(e.oslo_name(), "ConfigurationError");
    assert!(e.to_string().contains("ssl_ca_file"), "{e}");
}
