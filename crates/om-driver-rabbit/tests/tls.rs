//! TLS (crate feature `tls`) against the real RabbitMQ (`OM_RABBIT_URL`):
//! the driver connects through the testkit's TLS-terminating loopback proxy,
//! whose certificate is signed by a test-only CA
//! (`om_driver_api::testkit::tls`), so the handshake, the CA file and the
//! refusal of an untrusted certificate are checked with rustls on the
//! client side and the broker behind it.
#![cfg(feature = "tls")]

mod common;

use common::{credentials, driver, env_or_skip, obj, uniq};
use om_driver_api::om_core::{Target, TransportUrl};
use om_driver_api::testkit::tls::{ca_file, proxy};
use om_driver_api::{Driver, DriverConfig, ListenOptions, ReplyEvent, Retry, RpcRequest};
use om_driver_rabbit::RabbitDriver;
use serde_json::json;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// A `rabbit://` URL with the credentials of `url`, pointing at `addr`.
fn via(url: &str, addr: SocketAddr) -> String {
    let (user, password) = credentials(url);
    format!("rabbit://{user}:{password}@{addr}/")
}

/// The socket address of `url`'s first host.
fn broker_addr(url: &str) -> SocketAddr {
    let u = TransportUrl::parse(url).expect("url");
    let h = &u.hosts[0];
    (h.hostname.as_str(), h.port.unwrap_or(5672))
        .to_socket_addrs()
        .expect("broker address")
        .next()
        .expect("one address")
}

#[tokio::test]
async fn call_over_tls_with_a_private_ca() {
    let Some(url) = env_or_skip("OM_RABBIT_URL") else {
        return;
    };
    let proxy = proxy(broker_addr(&url)).await;
    let ca = ca_file();
    let d = driver(
        &via(&url, proxy),
        &[("ssl", "true"), ("ssl_ca_file", &ca.to_string_lossy())],
    );
    let topic = format!("tls_{}", uniq());
    // Bounded: a driver that does not speak TLS to the proxy would retry
    // its connection forever.
    let mut l = tokio::time::timeout(
        Duration::from_secs(30),
        d.listen(
            Target::new(&topic).with_server("s"),
            ListenOptions::default(),
        ),
    )
    .await
    .expect("listening within 30 s")
    .expect("listen over TLS");
    let mut replies = tokio::time::timeout(
        Duration::from_secs(30),
        d.send(RpcRequest::call(
            Target::new(&topic),
            obj(json!({"method": "m", "args": {"x": 1}})),
            Duration::from_secs(20),
        )),
    )
    .await
    .expect("the call sent within 30 s")
    .expect("call over TLS")
    .expect("a reply stream");
    let m = tokio::time::timeout(Duration::from_secs(20), l.next())
        .await
        .expect("the request within 20 s")
        .expect("a message")
        .expect("a well-formed message");
    assert_eq!(m.message.get("args"), Some(&json!({"x": 1})));
    m.acknowledge().await.expect("ack");
    m.reply(Ok(json!("secure"))).await.expect("reply");
    let reply = tokio::time::timeout(Duration::from_secs(20), replies.next())
        .await
        .expect("the reply within 20 s");
    assert_eq!(reply, Some(ReplyEvent::Final(Ok(json!("secure")))));
    l.cleanup().await.expect("listener cleanup");
    d.cleanup().await;
}

#[tokio::test]
async fn untrusted_certificate_is_refused() {
    let Some(url) = env_or_skip("OM_RABBIT_URL") else {
        return;
    };
    let proxy = proxy(broker_addr(&url)).await;
    // `ssl` alone trusts the platform's roots, not the test CA.
    let d = driver(
        &via(&url, proxy),
        &[("ssl", "true"), ("rabbit_retry_backoff", "0")],
    );
    let sent = tokio::time::timeout(
        Duration::from_secs(30),
        d.send(
            RpcRequest::cast(
                Target::new(format!("refused_{}", uniq())),
                obj(json!({"method": "m"})),
            )
            .with_retry(Retry::Limited(0)),
        ),
    )
    .await
    .expect("an answer within 30 s, not a hang");
    let e = sent.expect_err("a certificate from an unknown CA must be refused");
    // rustls names the problem: "invalid peer certificate: UnknownIssuer".
    assert_eq!(e.oslo_name(), "MessageDeliveryFailure", "{e}");
    assert!(e.to_string().contains("certificate"), "{e}");
    d.cleanup().await;
}

#[tokio::test]
async fn missing_ca_file_is_a_configuration_error() {
    let mut config = DriverConfig::new(TransportUrl::parse("rabbit://127.0.0.1:1/").expect("url"));
    config.options.insert("ssl".into(), "true".into());
    config
        .options
        .insert("ssl_ca_file".into(), "/nonexistent/ca.pem".into());
    let e = RabbitDriver::open(&config).expect_err("refused at open");
    assert_eq!(e.oslo_name(), "ConfigurationError", "{e}");
    assert!(e.to_string().contains("ssl_ca_file"), "{e}");
}
