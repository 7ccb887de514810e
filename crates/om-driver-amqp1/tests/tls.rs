//! TLS (crate feature `tls`): the driver talks to the router fixture
//! through a TLS-terminating loopback proxy whose certificate is signed by
//! the test-only CA in `tests/tls/` (`ca.pem`; the CA key was discarded).
#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used)]

mod support;

use om_driver_amqp1::Amqp1Driver;
use om_driver_api::om_core::{Target, TransportUrl};
use om_driver_api::{Driver, DriverConfig, ListenOptions, ReplyEvent, RpcRequest};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use support::router::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

fn tls_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls")
}

/// Accepts TLS on a loopback port and relays the plain bytes to `backend`.
async fn tls_proxy(backend: std::net::SocketAddr) -> std::net::SocketAddr {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(tls_dir().join("server.pem"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_file(tls_dir().join("server.key")).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    addr
}

fn driver(url: &str) -> Amqp1Driver {
    let url: TransportUrl = url.parse().unwrap();
    Amqp1Driver::new(&DriverConfig::new(url)).unwrap()
}

#[tokio::test]
async fn call_over_tls_with_a_private_ca() {
    let router = Router::start(Some(("om", "secret"))).await;
    let proxy = tls_proxy(router.addr()).await;
    let ca = tls_dir().join("ca.pem");
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
    let proxy = tls_proxy(router.addr()).await;
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
