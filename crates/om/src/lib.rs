//! # om — OpenStack messaging in Rust
//!
//! om speaks the same wire protocol as Python's oslo.messaging 18.3.1, so a
//! Rust service, agent or tool can join an OpenStack cloud's message bus:
//! call and serve RPC methods (call, cast, fanout, versioned endpoints) and
//! send or receive notifications (notifiers, listeners, pools).
//!
//! This crate is the facade: it re-exports the pieces and compiles in only
//! the backends you enable.
//!
//! | feature  | backend / extra                         | URL schemes        |
//! |----------|-----------------------------------------|--------------------|
//! | (always) | in-memory test transport                | `fake://`          |
//! | `rabbit` | RabbitMQ (AMQP 0-9-1) on lapin          | `rabbit://`, `kombu://` |
//! | `rabbit-tls` | TLS for `rabbit` (rustls)           |                    |
//! | `kafka`  | Kafka (notifications only) on rdkafka   | `kafka://`         |
//! | `amqp1`  | AMQP 1.0 on fe2o3-amqp                  | `amqp://`          |
//! | `config` | oslo.config-style INI files             |                    |
//! | `msgpack`| MessagePack serializer (om to om)       |                    |
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> om::Result<()> {
//! let transport = om::transport("fake://").await?;
//! assert_eq!(transport.driver_name(), "fake");
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use om_core::{
    self as core, envelope, version, Context, Error, Priority, RemoteError, RequestContext, Result,
    Serializer, Target, TransportUrl,
};
pub use om_driver_api::{self as driver_api, Retry, Transport, TransportBuilder, TransportOptions};
pub use om_notify as notify;
pub use om_rpc as rpc;

#[cfg(feature = "config")]
#[cfg_attr(docsrs, doc(cfg(feature = "config")))]
pub use om_config as config;

/// Registers every driver compiled into this build (`fake` always; `rabbit`,
/// `kafka`, `amqp1` per the crate features). Idempotent and cheap; called by
/// [`transport`] and [`transport_builder`], so you only need it when you use
/// `om_driver_api::Transport` directly.
pub fn install_default_drivers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(feature = "rabbit")]
        om_driver_rabbit::register();
        #[cfg(feature = "kafka")]
        om_driver_kafka::register();
        #[cfg(feature = "amqp1")]
        om_driver_amqp1::register();
    });
}

/// Opens a transport for `url` with the compiled-in drivers.
///
/// Errors: `InvalidTransportURL` for a malformed URL, `DriverLoadFailure`
/// for a scheme whose driver is not compiled in (the message says which
/// feature to enable), or the driver's configuration errors.
pub async fn transport(url: &str) -> Result<Transport> {
    transport_builder(url).open().await
}

/// A [`TransportBuilder`] for `url` with the compiled-in drivers registered.
pub fn transport_builder(url: impl Into<String>) -> TransportBuilder {
    install_default_drivers();
    Transport::builder(url)
}
