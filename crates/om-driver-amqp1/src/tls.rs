//! TLS with rustls (crate feature `tls`, ring provider).
//!
//! The connection is TLS from the first byte (as Proton does with `ssl`),
//! not AMQP's TLS-upgrade header. Trust anchors: `ssl_ca_file` when given,
//! else the webpki root set. Client identity: `ssl_cert_file` +
//! `ssl_key_file` (unencrypted PEM).

use crate::connection::Io;
use crate::options::AmqpOptions;
use om_driver_api::om_core::{Error, Result};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

fn config_err(option: &str, e: impl std::fmt::Display) -> Error {
    Error::Configuration(format!("option {option}: {e}"))
}

/// Builds the client configuration from the `ssl_*` options (done once,
/// when the driver opens, so file problems are reported at once).
pub(crate) fn client_config(opts: &AmqpOptions) -> Result<Arc<ClientConfig>> {
    client_config_inner(opts).map(Arc::new)
}

fn client_config_inner(opts: &AmqpOptions) -> Result<ClientConfig> {
    let mut roots = RootCertStore::empty();
    if opts.ssl_ca_file.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    } else {
        for cert in CertificateDer::pem_file_iter(&opts.ssl_ca_file)
            .map_err(|e| config_err("ssl_ca_file", e))?
        {
            let cert = cert.map_err(|e| config_err("ssl_ca_file", e))?;
            roots.add(cert).map_err(|e| config_err("ssl_ca_file", e))?;
        }
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config_err("ssl", e))?
        .with_root_certificates(roots);
    if opts.ssl_cert_file.is_empty() {
        return Ok(builder.with_no_client_auth());
    }
    let certs = CertificateDer::pem_file_iter(&opts.ssl_cert_file)
        .map_err(|e| config_err("ssl_cert_file", e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| config_err("ssl_cert_file", e))?;
    let key_file = if opts.ssl_key_file.is_empty() {
        &opts.ssl_cert_file
    } else {
        &opts.ssl_key_file
    };
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| config_err("ssl_key_file", e))?;
    builder
        .with_client_auth_cert(certs, key)
        .map_err(|e| config_err("ssl_cert_file", e))
}

/// Wraps `tcp` in TLS, checking the certificate against `server_name`.
pub(crate) async fn wrap(
    tcp: TcpStream,
    server_name: &str,
    config: Arc<ClientConfig>,
) -> Result<Box<dyn Io>> {
    let connector = TlsConnector::from(config);
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|e| Error::Configuration(format!("TLS server name {server_name:?}: {e}")))?;
    let stream = connector.connect(name, tcp).await.map_err(|e| {
        Error::transport(
            "amqp",
            format!("TLS handshake with {server_name} failed: {e}"),
            true,
        )
    })?;
    Ok(Box::new(stream))
}
