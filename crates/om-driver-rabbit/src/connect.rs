//! Opening AMQP connections: hosts from the transport URL, failover,
//! back-off, heartbeats, TLS, client properties (`wire-rabbit.md` §1, §14).

use crate::options::{FailoverStrategy, LoginMethod, RabbitOptions};
use lapin::tcp::OwnedTLSConfig;
use lapin::uri::{
    AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo, SASLMechanism,
};
use lapin::{Connection, ConnectionProperties};
use om_driver_api::om_core::{BrokerAddress, Error, Result, TransportUrl};
use om_driver_api::Retry;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The driver name used in errors.
pub(crate) const DRIVER: &str = "rabbit";
/// TCP + AMQP handshake timeout of one connection attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One broker address with its credentials (om-core applies kombu's
/// defaults); `Debug` hides the password.
type Endpoint = BrokerAddress;

/// Opens connections to the brokers of one transport URL.
pub(crate) struct Connector {
    endpoints: Vec<Endpoint>,
    cursor: AtomicUsize,
    vhost: String,
    opts: Arc<RabbitOptions>,
    tls: Option<OwnedTLSConfig>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("endpoints", &self.endpoints)
            .field("vhost", &self.vhost)
            .finish_non_exhaustive()
    }
}

/// A random number from the uuid4 generator (no extra dependency).
pub(crate) fn random_u64() -> u64 {
    let hex = om_driver_api::om_core::uuid_hex();
    u64::from_str_radix(&hex[..16], 16).unwrap_or(0)
}

/// A process-unique connection name: `<program>:<pid>:<uuid4>` (§1.2).
pub(crate) fn connection_name() -> String {
    format!(
        "{}:{}:{}",
        crate::options::default_processname(),
        std::process::id(),
        om_driver_api::om_core::uuid_dashed()
    )
}

impl Connector {
    /// A connector for `url` with `opts`. Hosts are shuffled once, as
    /// kombu does; no host means `guest:guest@localhost:5672`.
    pub(crate) fn new(url: &TransportUrl, opts: Arc<RabbitOptions>) -> Result<Self> {
        let mut endpoints: Vec<Endpoint> = url.brokers(5672);
        // Fisher-Yates, once per connector.
        for i in (1..endpoints.len()).rev() {
            let j = usize::try_from(random_u64() % (i as u64 + 1)).unwrap_or(0);
            endpoints.swap(i, j);
        }
        let vhost = match url.virtual_host.as_deref() {
            None | Some("") => "/".to_owned(),
            Some(v) => v.to_owned(),
        };
        let tls = if opts.ssl {
            Some(tls_config(&opts)?)
        } else {
            None
        };
        Ok(Connector {
            endpoints,
            cursor: AtomicUsize::new(0),
            vhost,
            opts,
            tls,
        })
    }

    fn uri(&self, ep: &Endpoint) -> AMQPUri {
        AMQPUri {
            scheme: if self.tls.is_some() {
                AMQPScheme::AMQPS
            } else {
                AMQPScheme::AMQP
            },
            authority: AMQPAuthority {
                userinfo: AMQPUserInfo {
                    username: ep.username.clone(),
                    password: ep.password.expose().to_owned(),
                },
                host: ep.host.clone(),
                port: ep.port,
            },
            vhost: self.vhost.clone(),
            query: AMQPQueryString {
                heartbeat: u16::try_from(self.opts.heartbeat_timeout_threshold).ok(),
                connection_timeout: u64::try_from(CONNECT_TIMEOUT.as_millis()).ok(),
                auth_mechanism: Some(match self.opts.rabbit_login_method {
                    LoginMethod::Plain => SASLMechanism::Plain,
                    LoginMethod::AmqPlain => SASLMechanism::AMQPlain,
                    LoginMethod::External => SASLMechanism::External,
                    LoginMethod::RabbitCrDemo => SASLMechanism::RabbitCrDemo,
                }),
                ..AMQPQueryString::default()
            },
        }
    }

    async fn connect_to(
        &self,
        ep: &Endpoint,
        name: &str,
    ) -> std::result::Result<Connection, String> {
        let props = ConnectionProperties::default().with_connection_name(name.into());
        let uri = self.uri(ep);
        let runtime = lapin::runtime::default_runtime().map_err(|e| e.to_string())?;
        let tls = self.tls.clone().unwrap_or_default();
        let fut = Connection::connect_uri_with_config(uri, props, tls, runtime);
        match tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_secs(1), fut).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("timed out after {CONNECT_TIMEOUT:?}")),
        }
    }

    /// Connects, trying the hosts in failover order. `attempts` counts the
    /// failed attempts so far (shared with the caller's publish retries);
    /// `retry` bounds them. Between full rounds over the hosts it waits
    /// `rabbit_retry_interval + n * rabbit_retry_backoff` (capped at
    /// `rabbit_interval_max`).
    ///
    /// Errors: `MessageDeliveryFailure` naming the last host (never the
    /// password) when the retries ran out.
    pub(crate) async fn connect(
        &self,
        name: &str,
        retry: Retry,
        attempts: &mut u32,
    ) -> Result<(Connection, String)> {
        let n = self.endpoints.len().max(1);
        let mut round = 0u32;
        let mut tried_this_round = 0usize;
        loop {
            let idx = self.cursor.load(Ordering::Relaxed) % n;
            let ep = &self.endpoints[idx];
            let label = ep.label();
            match self.connect_to(ep, name).await {
                Ok(c) => {
                    tracing::debug!(host = %label, connection = %name, "connected to AMQP server");
                    return Ok((c, label));
                }
                Err(e) => {
                    *attempts += 1;
                    let next = match self.opts.kombu_failover_strategy {
                        FailoverStrategy::RoundRobin => idx + 1,
                        FailoverStrategy::Shuffle => {
                            usize::try_from(random_u64() % n as u64).unwrap_or(0)
                        }
                    };
                    self.cursor.store(next % n, Ordering::Relaxed);
                    if !retry.allows(*attempts) {
                        tracing::error!(host = %label, error = %e, "AMQP server unreachable, giving up");
                        return Err(Error::MessageDeliveryFailure(format!(
                            "cannot connect to the AMQP server on {label} after {} attempt(s): {e}",
                            *attempts
                        )));
                    }
                    tried_this_round += 1;
                    if tried_this_round >= n {
                        let wait = self.opts.retry_interval(round);
                        tracing::error!(host = %label, error = %e, "AMQP server unreachable, retrying in {wait:?}");
                        tokio::time::sleep(wait).await;
                        round = round.saturating_add(1);
                        tried_this_round = 0;
                    } else {
                        tracing::error!(host = %label, error = %e, "AMQP server unreachable, trying the next host");
                    }
                }
            }
        }
    }

    /// The delay before reconnecting after an error during an operation:
    /// `kombu_reconnect_delay` plus a random `0..kombu_reconnect_splay`.
    pub(crate) fn reconnect_delay(&self) -> Duration {
        let splay = if self.opts.kombu_reconnect_splay > 0.0 {
            (random_u64() % 1_000_000) as f64 / 1_000_000.0 * self.opts.kombu_reconnect_splay
        } else {
            0.0
        };
        Duration::from_secs_f64((self.opts.kombu_reconnect_delay + splay).max(0.0))
    }

    /// The options.
    pub(crate) fn options(&self) -> &RabbitOptions {
        &self.opts
    }
}

#[cfg(feature = "tls")]
fn tls_config(opts: &RabbitOptions) -> Result<OwnedTLSConfig> {
    let read = |what: &str, path: &str| {
        std::fs::read(path)
            .map_err(|e| Error::Configuration(format!("cannot read {what} {path:?}: {e}")))
    };
    let cert_chain = if opts.ssl_ca_file.is_empty() {
        None
    } else {
        Some(String::from_utf8_lossy(&read("ssl_ca_file", &opts.ssl_ca_file)?).into_owned())
    };
    let identity = if opts.ssl_cert_file.is_empty() {
        None
    } else {
        let pem = read("ssl_cert_file", &opts.ssl_cert_file)?;
        let key = if opts.ssl_key_file.is_empty() {
            pem.clone()
        } else {
            read("ssl_key_file", &opts.ssl_key_file)?
        };
        Some(lapin::tcp::OwnedIdentity::PKCS8 { pem, key })
    };
    Ok(OwnedTLSConfig {
        identity,
        cert_chain,
    })
}

#[cfg(not(feature = "tls"))]
fn tls_config(_opts: &RabbitOptions) -> Result<OwnedTLSConfig> {
    Err(Error::Configuration(
        "ssl=true but om-driver-rabbit was built without TLS support; enable its `tls` feature"
            .into(),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn connector(url: &str) -> Connector {
        let url = TransportUrl::parse(url).unwrap();
        Connector::new(&url, Arc::new(RabbitOptions::default())).unwrap()
    }

    /// test-cases A 3: no virtual host and an empty one both mean `/`; no
    /// host means kombu's `guest:guest@localhost:5672`.
    #[test]
    fn virtual_host_and_default_broker_as_kombu() {
        for (url, vhost) in [
            ("rabbit://", "/"),
            ("rabbit:///", "/"),
            ("rabbit://h/", "/"),
            ("rabbit://h/vh", "vh"),
            ("rabbit://h/%2F", "/"),
        ] {
            let c = connector(url);
            let uri = c.uri(&c.endpoints[0]);
            assert_eq!(uri.vhost, vhost, "{url}");
        }
        let c = connector("rabbit://");
        assert_eq!(c.endpoints.len(), 1);
        let uri = c.uri(&c.endpoints[0]);
        assert_eq!(
            (uri.authority.host.as_str(), uri.authority.port),
            ("localhost", 5672)
        );
        assert_eq!(uri.authority.userinfo.username, "guest");
        assert_eq!(uri.authority.userinfo.password, "guest");
    }
}
