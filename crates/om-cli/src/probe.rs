//! Reaching the broker before anything else, so that an unreachable broker
//! or refused credentials end the command at once with a clear message
//! (exit code 5) instead of the drivers' patient reconnection loops.
//!
//! RabbitMQ URLs get a full AMQP login (credentials and virtual host are
//! checked); other schemes a TCP connection to each host. Messages name
//! the host and the user, never the password.

use crate::error::CliError;
use om::TransportUrl;
use std::time::Duration;

/// One broker address of a transport URL, with the drivers' defaults.
pub(crate) type Broker = om::core::BrokerAddress;

/// The default port of a driver.
fn default_port(driver: &str) -> Option<u16> {
    match driver {
        "rabbit" | "kombu" | "amqp" => Some(5672),
        "kafka" => Some(9092),
        _ => None,
    }
}

/// The brokers of `url`, with the defaults the drivers apply (no host:
/// `localhost`; no user or password: `guest`).
pub(crate) fn brokers(url: &TransportUrl) -> Vec<Broker> {
    url.brokers(default_port(url.driver()).unwrap_or(5672))
}

/// Checks that at least one broker of `url` can be reached (and, for
/// RabbitMQ without TLS, logged in to). `tls`: the transport uses TLS, so
/// only TCP is checked.
pub(crate) async fn check(
    url: &TransportUrl,
    tls: bool,
    timeout: Duration,
) -> Result<(), CliError> {
    let driver = url.driver();
    if default_port(driver).is_none() {
        // fake:// and third-party drivers: nothing to probe.
        return Ok(());
    }
    let mut failures = Vec::new();
    for b in brokers(url) {
        let result = if matches!(driver, "rabbit" | "kombu") && !tls {
            amqp_login(url, &b, timeout).await
        } else {
            tcp(&b, timeout).await
        };
        match result {
            Ok(()) => return Ok(()),
            Err(f) => failures.push(f),
        }
    }
    let auth = failures.iter().any(|f| f.kind == FailureKind::Refused);
    let detail: Vec<String> = failures.iter().map(|f| f.message.clone()).collect();
    let summary = if auth {
        "the broker refused the login"
    } else {
        "cannot reach the message broker"
    };
    Err(CliError::connection(format!(
        "{summary}: {}",
        detail.join("; ")
    )))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailureKind {
    Unreachable,
    Refused,
}

struct Failure {
    kind: FailureKind,
    message: String,
}

fn unreachable(message: String) -> Failure {
    Failure {
        kind: FailureKind::Unreachable,
        message,
    }
}

fn describe_io(b: &Broker, e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => format!(
            "{}: connection refused (is the broker running and listening there?)",
            b.label()
        ),
        TimedOut => format!("{}: connection timed out", b.label()),
        ConnectionReset | ConnectionAborted | UnexpectedEof => {
            format!("{}: the connection was closed by the other side", b.label())
        }
        _ => format!("{}: {e}", b.label()),
    }
}

async fn tcp(b: &Broker, timeout: Duration) -> Result<(), Failure> {
    let addr = (b.host.as_str(), b.port);
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(unreachable(describe_io(b, &e))),
        Err(_) => Err(unreachable(format!(
            "{}: no answer within {timeout:?}",
            b.label()
        ))),
    }
}

#[cfg(not(feature = "rabbit"))]
async fn amqp_login(_url: &TransportUrl, b: &Broker, timeout: Duration) -> Result<(), Failure> {
    tcp(b, timeout).await
}

#[cfg(feature = "rabbit")]
fn vhost(url: &TransportUrl) -> String {
    match url.virtual_host.as_deref() {
        None | Some("") => "/".to_owned(),
        Some(v) => v.to_owned(),
    }
}

#[cfg(feature = "rabbit")]
async fn amqp_connect(
    url: &TransportUrl,
    b: &Broker,
    timeout: Duration,
) -> Result<lapin::Connection, Failure> {
    use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
    use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
    use lapin::{Connection, ConnectionProperties, ErrorKind};
    let vhost = vhost(url);
    let uri = AMQPUri {
        scheme: AMQPScheme::AMQP,
        authority: AMQPAuthority {
            userinfo: AMQPUserInfo {
                username: b.username.clone(),
                password: b.password.expose().to_owned(),
            },
            host: b.host.clone(),
            port: b.port,
        },
        vhost: vhost.clone(),
        query: AMQPQueryString {
            connection_timeout: u64::try_from(timeout.as_millis()).ok(),
            ..AMQPQueryString::default()
        },
    };
    let props = ConnectionProperties::default()
        .with_connection_name(format!("om-cli:{}", std::process::id()).into());
    let connected = tokio::time::timeout(
        timeout + Duration::from_millis(500),
        Connection::connect_uri(uri, props),
    )
    .await;
    let e = match connected {
        Ok(Ok(c)) => return Ok(c),
        Ok(Err(e)) => e,
        Err(_) => {
            return Err(unreachable(format!(
                "{}: no answer within {timeout:?}",
                b.label()
            )))
        }
    };
    tracing::debug!(host = %b.label(), error = %crate::error::redact(&e.to_string()), "AMQP login failed");
    let refused = |what: String| Failure {
        kind: FailureKind::Refused,
        message: what,
    };
    match e.kind() {
        ErrorKind::IOError(io) => Err(unreachable(describe_io(b, io))),
        ErrorKind::ProtocolError(amqp) => {
            let detail = crate::error::redact(amqp.get_message().as_str());
            match amqp.kind() {
                AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED) => Err(refused(format!(
                    "{}: authentication failed for user {:?} (wrong user name or password?): {detail}",
                    b.label(),
                    b.username
                ))),
                AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED) => Err(refused(format!(
                    "{}: user {:?} may not use virtual host {vhost:?}: {detail}",
                    b.label(),
                    b.username
                ))),
                _ => Err(unreachable(format!(
                    "{}: the broker closed the connection: {detail}",
                    b.label()
                ))),
            }
        }
        _ => {
            // RabbitMQ closes the socket without a reason when the client
            // does not announce `authentication_failure_close`; lapin does,
            // so anything else is a protocol or I/O oddity.
            Err(unreachable(format!(
                "{}: {}",
                b.label(),
                crate::error::redact(&e.to_string())
            )))
        }
    }
}

#[cfg(feature = "rabbit")]
async fn amqp_login(url: &TransportUrl, b: &Broker, timeout: Duration) -> Result<(), Failure> {
    let t0 = std::time::Instant::now();
    let conn = amqp_connect(url, b, timeout).await?;
    tracing::debug!(host = %b.label(), took = ?t0.elapsed(), "broker login checked");
    // The broker may take a while to confirm the close; the command need
    // not wait for it.
    tokio::spawn(async move {
        let _ = conn.close(200, "OK".into()).await;
    });
    Ok(())
}

/// Deletes queues (and fanout exchanges) a command created on RabbitMQ:
/// `om bench` topics and `om notify tail --pool` queues. With `if_unused`,
/// a queue some other consumer still reads is kept. Best effort: failures
/// are logged, never fatal.
#[cfg(feature = "rabbit")]
pub(crate) async fn delete_rabbit(
    url: &TransportUrl,
    queues: &[String],
    exchanges: &[String],
    if_unused: bool,
) {
    use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
    if !matches!(url.driver(), "rabbit" | "kombu") {
        return;
    }
    for b in brokers(url) {
        let Ok(conn) = amqp_connect(url, &b, Duration::from_secs(5)).await else {
            continue;
        };
        for q in queues {
            // A failed delete closes the channel: one channel per operation.
            let Ok(ch) = conn.create_channel().await else {
                break;
            };
            let opts = QueueDeleteOptions {
                if_unused,
                ..QueueDeleteOptions::default()
            };
            match ch.queue_delete(q.as_str().into(), opts).await {
                Ok(n) => tracing::info!(queue = %q, messages = n, "queue deleted"),
                Err(e) => tracing::info!(queue = %q, error = %e, "queue kept"),
            }
            let _ = ch.close(200, "OK".into()).await;
        }
        for x in exchanges {
            let Ok(ch) = conn.create_channel().await else {
                break;
            };
            let opts = ExchangeDeleteOptions {
                if_unused: true,
                ..ExchangeDeleteOptions::default()
            };
            if let Err(e) = ch.exchange_delete(x.as_str().into(), opts).await {
                tracing::info!(exchange = %x, error = %e, "exchange kept");
            }
            let _ = ch.close(200, "OK".into()).await;
        }
        let _ = conn.close(200, "OK".into()).await;
        return;
    }
}

/// Without the RabbitMQ driver there is nothing to delete.
#[cfg(not(feature = "rabbit"))]
pub(crate) async fn delete_rabbit(
    _url: &TransportUrl,
    _queues: &[String],
    _exchanges: &[String],
    _if_unused: bool,
) {
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_defaults() {
        let u = TransportUrl::parse("rabbit://").unwrap();
        let b = brokers(&u);
        assert_eq!(
            (b[0].label(), b[0].username.as_str()),
            ("localhost:5672".to_owned(), "guest")
        );
        let u = TransportUrl::parse("kafka://k1,k2:9093/").unwrap();
        let labels: Vec<String> = brokers(&u).iter().map(Broker::label).collect();
        assert_eq!(labels, vec!["k1:9092", "k2:9093"]);
    }

    #[tokio::test]
    async fn closed_port_is_unreachable() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let u =
            TransportUrl::parse(&format!("rabbit://me:pw-unit-secret@127.0.0.1:{port}/")).unwrap();
        let e = check(&u, false, Duration::from_secs(2)).await.unwrap_err();
        assert_eq!(e.code, crate::error::ExitCode::Connection);
        assert!(
            e.message
                .contains(&format!("127.0.0.1:{port}: connection refused")),
            "{}",
            e.message
        );
        assert!(!e.message.contains("pw-unit-secret"));
        let e = check(&u, true, Duration::from_secs(2)).await.unwrap_err();
        assert!(e.message.contains("connection refused"), "{}", e.message);
    }
}
