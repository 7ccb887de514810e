//! TLS for drivers' tests: a loopback proxy that accepts TLS with a
//! certificate signed by a test-only CA and relays the plain bytes to a
//! broker or fixture, so a driver's TLS client (certificate checks, CA
//! files, refusal of an untrusted peer) is tested against a real handshake
//! without configuring TLS in the broker itself.
//!
//! The certificate is for `localhost` and `127.0.0.1`, valid until 2126. The
//! CA's private key was discarded after signing, so nothing but this
//! certificate chains to [`ca_file`]. Test use only.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/testkit/tls")
}

/// The PEM file of the test CA that signed the proxy's certificate (for a
/// driver's `ssl_ca_file`).
pub fn ca_file() -> PathBuf {
    dir().join("ca.pem")
}

/// Starts a proxy on a free loopback port that accepts TLS and relays each
/// connection to `backend` in plain TCP; returns the proxy's address. The
/// proxy runs until the runtime ends.
///
/// # Panics
///
/// If the bundled certificate or key cannot be read or the port cannot be
/// bound (a broken test environment, not a driver problem).
pub async fn proxy(backend: SocketAddr) -> SocketAddr {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(dir().join("server.pem"))
            .and_then(|certs| certs.collect())
            .unwrap_or_else(|e| panic!("testkit::tls: server.pem: {e}"));
    let key = PrivateKeyDer::from_pem_file(dir().join("server.key"))
        .unwrap_or_else(|e| panic!("testkit::tls: server.key: {e}"));
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .unwrap_or_else(|e| panic!("testkit::tls: server config: {e}"));
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("testkit::tls: bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("testkit::tls: local address: {e}"));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake.
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
