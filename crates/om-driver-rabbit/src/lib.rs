//! # om-driver-rabbit
//!
//! The RabbitMQ (AMQP 0-9-1) driver of om, built on [lapin], speaking
//! exactly what Python oslo.messaging 18.3.1 puts on the wire
//! (`wire-rabbit.md`): the same exchanges, queues, arguments and bindings,
//! the same message properties and JSON bodies (2.0 envelope, flattened
//! `_context_<key>` entries, `_msg_id` / `_reply_q` / `_timeout` /
//! `_unique_id`), the same reply and heartbeat messages. Python clients,
//! servers, notifiers and listeners interoperate with om's.
//!
//! Register it once, then open transports by URL:
//!
//! ```no_run
//! # async fn demo() -> om_driver_api::om_core::Result<()> {
//! om_driver_rabbit::register();
//! let transport = om_driver_api::Transport::builder("rabbit://guest:guest@127.0.0.1:5672/")
//!     .option("rabbit_qos_prefetch_count", "10")
//!     .open()
//!     .await?;
//! assert_eq!(transport.driver_name(), "rabbit");
//! # Ok(()) }
//! ```
//!
//! ## What the driver does
//!
//! * **Options**: the `[oslo_messaging_rabbit]` group, typed as
//!   [`RabbitOptions`]; URL query parameters override configured values;
//!   unknown names and bad values fail with `ConfigurationError`.
//! * **Publishing**: one lazily opened connection with publisher confirms:
//!   `send` and `send_notification` return once the broker confirmed the
//!   message. A nack gives `MessageDeliveryFailure`; a returned `mandatory`
//!   message gives `MessageUndeliverable`. Connection failures are retried
//!   as the request's [`Retry`](om_driver_api::Retry) allows, with failover
//!   over the URL's hosts (`kombu_failover_strategy`) and the
//!   `rabbit_retry_interval` / `rabbit_retry_backoff` / `rabbit_interval_max`
//!   back-off; when retries run out the error names the broker address,
//!   never the password.
//! * **Calls**: one reply queue `reply_<uuid hex>` per driver, declared and
//!   consumed at the first call, before anything is published, without
//!   acknowledgements (so no `basic.qos` on it); replies are matched by
//!   `_msg_id`.
//! * **Servers and listeners**: each has its own consuming connection,
//!   restored (queues, bindings, consumers) after the broker drops it, with
//!   `basic.qos` when a prefetch count is configured. RPC requests are
//!   acknowledged by the server through the
//!   [`IncomingMessage`](om_driver_api::IncomingMessage) (before dispatch,
//!   as oslo); notifications after handling, or requeued. Undecodable
//!   messages are rejected without requeue and reported as `Err` items.
//!   Replies to a missing reply queue are retried every 0.25 s for up to
//!   `kombu_missing_consumer_retry_timeout`.
//! * **Compression**: `kombu_compression=gzip` (or `zlib`) writes zlib
//!   streams with the `compression: application/x-gzip` header, as kombu;
//!   other kombu codecs (`bzip2`, `lzma`, ...) are rejected as configuration
//!   errors. Compressed bodies are decoded transparently.
//! * **1.0 bodies** (Python's `messaging` notification driver): kombu's
//!   JSON type markers (`{"__type__": "datetime", "__value__": …}`, also
//!   `date`, `time`, `decimal`, `uuid`, `bytes`) are handed to endpoints as
//!   the strings a 2.0 body carries for the same values.
//! * **TLS**: `ssl=true` needs the crate feature `tls` (rustls).
#![cfg_attr(docsrs, feature(doc_cfg))]

mod codec;
mod connect;
mod consumer;
mod driver;
mod kombu_json;
mod options;
mod publisher;
mod qmanager;

pub use driver::RabbitDriver;
pub use options::{Compression, FailoverStrategy, LoginMethod, RabbitOptions};

use om_driver_api::om_core::Result;
use om_driver_api::{BoxFuture, DriverConfig, DriverFactory, DynDriver};
use std::sync::Arc;

/// The URL schemes served by this driver.
pub const SCHEMES: &[&str] = &["rabbit", "kombu"];

/// Opens [`RabbitDriver`]s for `rabbit://` and `kombu://` URLs.
#[derive(Debug, Default, Clone, Copy)]
pub struct RabbitDriverFactory;

impl DriverFactory for RabbitDriverFactory {
    fn schemes(&self) -> &'static [&'static str] {
        SCHEMES
    }

    fn open(&self, config: DriverConfig) -> BoxFuture<'static, Result<Arc<dyn DynDriver>>> {
        Box::pin(async move {
            let driver: Arc<dyn DynDriver> = Arc::new(RabbitDriver::open(&config)?);
            Ok(driver)
        })
    }
}

/// Registers [`RabbitDriverFactory`] for `rabbit` and `kombu` in the
/// driver registry. Idempotent.
pub fn register() {
    om_driver_api::register_driver(Arc::new(RabbitDriverFactory));
}
