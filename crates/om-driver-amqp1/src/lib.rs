//! # om-driver-amqp1
//!
//! The AMQP 1.0 driver of om (`amqp://` URLs), wire-compatible with
//! oslo.messaging's `amqp` driver as of 14.9.3 (the last release that ships
//! it), built on [fe2o3-amqp](https://docs.rs/fe2o3-amqp).
//!
//! ```no_run
//! # async fn demo() -> om_driver_api::om_core::Result<()> {
//! om_driver_amqp1::register();
//! let transport = om_driver_api::Transport::builder("amqp://guest:guest@127.0.0.1:5672/")
//!     .option("addressing_mode", "legacy")
//!     .open()
//!     .await?;
//! assert_eq!(transport.driver_name(), "amqp");
//! # Ok(()) }
//! ```
//!
//! ## What goes on the wire (`wire-amqp1.md`)
//!
//! * **Addresses** ([`address`]): legacy (`unicast.openstack.compute`,
//!   `exclusive.openstack.compute.host1`, `broadcast.openstack.compute.all`)
//!   or routable (`openstack.org/om/rpc/anycast/openstack/compute`, ...),
//!   chosen by `addressing_mode`. `dynamic` (the default) decides from the
//!   peer's `open` properties: no `product` or `qpid-cpp` → legacy, a router
//!   → routable. **Deviation:** RabbitMQ gets legacy too (Python picks
//!   routable, which RabbitMQ refuses, so that choice never works).
//! * **Messages** ([`codec`]): one amqp-value string section holding JSON:
//!   requests `{"request": …, "context": …[, "call_monitor_timeout": …]}`,
//!   replies `{"response": …}` / `{"failure": "<json>"}`, notifications
//!   `{"request": <2.0 envelope or bare message>, "context": …}`;
//!   heartbeats have no body. Calls carry `message-id`, `reply-to` and the
//!   header `ttl`; replies `correlation-id`.
//! * **Links**: one session per link; one sender link per destination
//!   (closed after `default_sender_link_timeout` idle seconds); an RPC
//!   server has three receiver links (unicast, multicast, anycast), a
//!   notification listener one per `<topic>.<priority>`; one reply link per
//!   connection, attached at the first call.
//! * **Settlement**: casts and replies pre-settled, calls and notifications
//!   wait for `accepted` (`pre_settled`); `released` → re-sent after
//!   `link_retry_delay`, `rejected` → `MessageDeliveryFailure`. Servers
//!   settle requests when the RPC layer acknowledges them; notification
//!   listeners accept or release (requeue).
//! * **Reconnection**: across the URL's hosts (random first), delay
//!   `connection_retry_interval × connection_retry_backoff^n` up to
//!   `connection_retry_interval_max`; links re-attach on the new connection.
//! * **SASL**: PLAIN with the URL's user (plus `sasl_default_realm`),
//!   else ANONYMOUS. TLS with the crate feature `tls` (rustls).
//!
//! ## Intermediaries
//!
//! * **A router** (Qpid Dispatch Router; routable addressing): the reply link
//!   has a dynamic source; fanout is the router's multicast; nothing is
//!   stored, so a notification sent before any listener exists is not kept
//!   (`retains_unconsumed_notifications` is false).
//! * **RabbitMQ 3.x with the `rabbitmq_amqp1_0` plugin** (legacy addressing):
//!   fixed addresses only; no dynamic sources, no anonymous relay. The
//!   driver therefore declares its per-process queues itself over AMQP
//!   0-9-1 on the same port (a minimal built-in client): the reply queue
//!   `om.reply.<hex>` and, per RPC server, a fanout queue
//!   `<broadcast address>.<hex>` bound to `amq.topic` with the broadcast
//!   address as key; both with `x-expires` and deleted on cleanup, consumed
//!   through `/amq/queue/<name>`. Fanout casts are sent to
//!   `/topic/<broadcast address>`, which is what a Python peer configured
//!   with `broadcast_prefix = /topic/broadcast` sends and receives. The
//!   unicast and anycast addresses are plain queues shared with other
//!   servers; RabbitMQ keeps them (as it keeps the RabbitMQ driver's topic
//!   queues). A body-less heartbeat arrives as an empty data section: om
//!   reads it as a heartbeat (Python cannot).
//!
//! ## What servers and listeners see
//!
//! * The context of an RPC request gets `client_timeout` (the request's
//!   `call_monitor_timeout`, `null` without one), notifications get
//!   `client_timeout: null`, as with om's other drivers.
//! * AMQP 1.0 messages carry no `_unique_id`. [`IncomingMessage::unique_id`]
//!   is the call's `message-id` (stable across redeliveries), a
//!   notification's `message_id` field, or for a cast a fresh id.
//! * Listener pools are not supported (`NotSupported`), as in the Python
//!   driver.
//!
//! [`IncomingMessage::unique_id`]: om_driver_api::IncomingMessage::unique_id
//!
//! ## Tests
//!
//! `tests/support/router.rs` is a **test fixture, not a product**: a small
//! in-process AMQP 1.0 router on fe2o3-amqp's `acceptor` feature
//! (dev-dependency only) with anycast, multicast, dynamic sources and
//! anonymous relay, standing in for Qpid Dispatch Router. The conformance
//! suite runs against it (routable addressing) and against RabbitMQ's
//! plugin (`OM_AMQP1_BROKER_URL`, legacy addressing).

pub mod address;
mod amqp091;
pub mod codec;
mod connection;
mod driver;
mod listener;
pub mod options;
mod reply;
mod sender;
mod sniff;
#[cfg(feature = "tls")]
mod tls;

pub use address::{Addresser, PeerInfo, Syntax};
pub use driver::{Amqp1Driver, Amqp1DriverFactory};
pub use options::{AddressingMode, AmqpOptions, PreSettled};

/// Registers [`Amqp1DriverFactory`] for the `amqp` scheme.
pub fn register() {
    om_driver_api::register_driver(std::sync::Arc::new(Amqp1DriverFactory));
}
