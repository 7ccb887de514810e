//! Opening transports from URLs through the facade's driver registry, no
//! broker needed (the RabbitMQ driver connects on first use):
//! test-cases A 5 and A 6.

use om::{Error, Result, Transport};

/// The error of opening `url`, which must fail.
async fn open_error(url: &str) -> Error {
    match om::transport(url).await {
        Ok(t) => {
            t.cleanup().await;
            panic!("{url} opened, expected an error")
        }
        Err(e) => e,
    }
}

/// A 5: `kombu+memory:////` and `kombu://` select the RabbitMQ driver.
#[tokio::test]
async fn kombu_schemes_open_the_rabbit_driver() -> Result<()> {
    for url in [
        "kombu+memory:////",
        "kombu://127.0.0.1:1/",
        "rabbit://127.0.0.1:1/",
    ] {
        let t: Transport = om::transport(url).await?;
        assert_eq!(t.driver_name(), "rabbit", "{url}");
        t.cleanup().await;
    }
    Ok(())
}

/// A 6: options in the URL's query override the driver's defaults for
/// that transport; an unknown option or a bad value fails the opening with
/// a configuration error that names the option.
#[tokio::test]
async fn url_query_options_are_checked_when_the_transport_opens() -> Result<()> {
    let t = om::transport(
        "rabbit://127.0.0.1:1/?rabbit_qos_prefetch_count=5&heartbeat_timeout_threshold=0",
    )
    .await?;
    t.cleanup().await;

    match open_error("rabbit://127.0.0.1:1/?foo=1").await {
        Error::Configuration(msg) => assert!(msg.contains("foo"), "{msg}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
    match open_error("rabbit://127.0.0.1:1/?rabbit_qos_prefetch_count=abc").await {
        Error::Configuration(msg) => {
            assert!(msg.contains("rabbit_qos_prefetch_count"), "{msg}")
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
    Ok(())
}
