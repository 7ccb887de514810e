//! # om-driver-api
//!
//! The contract between om's messaging layers (`om-rpc`, `om-notify`) and
//! its backends (`om-driver-rabbit`, `om-driver-kafka`, `om-driver-amqp1`,
//! and any third-party driver crate). It is deliberately small and depends
//! only on `om-core` and tokio's synchronisation primitives.
//!
//! * [`Driver`] is what a backend implements (static dispatch, `impl Future`
//!   methods); [`DynDriver`] is its object-safe twin, implemented for every
//!   `Driver`, which a [`Transport`] holds as `Arc<dyn DynDriver>`.
//! * [`DriverFactory`] + [`register_driver`] form the registry that maps a
//!   URL scheme (`rabbit`, `kafka`, `amqp`, `fake`, ...) to a driver, so a
//!   [`Transport`] picks its driver at run time from the URL.
//! * [`IncomingMessage`], [`Listener`] and [`ReplyStream`] carry messages
//!   the other way.
//! * [`fake`] is the in-memory `fake://` driver (unit tests, quickstart).
//! * `testkit` (feature `testkit`) is the conformance suite every driver
//!   runs against a real broker.
//!
//! ## Guarantees a driver gives
//!
//! * `send` returns once the message was accepted by the broker (publisher
//!   confirms on RabbitMQ) or failed; it never publishes a message twice
//!   unless the broker did not confirm the first attempt, and it honours
//!   [`Retry`] for (re)connecting and publishing.
//! * A call's [`ReplyStream`] yields zero or more heartbeats and at most one
//!   final reply, matched by the call's `_msg_id`; dropping it unregisters
//!   the call. Timeouts are the caller's business (om-rpc applies the
//!   overall and call-monitor timeouts).
//! * A [`Listener`] yields each message once; it is acknowledged or
//!   requeued only when its owner says so through [`IncomingMessage`]. A
//!   message never acknowledged stays on (or returns to) the broker.
//! * Malformed messages are rejected by the driver (never requeued) and
//!   surfaced as `Err` items from [`Listener::next`]; the listener goes on.
//! * The password of the transport URL appears in no `Debug`, no error and
//!   no log line (use [`TransportUrl`](om_core::TransportUrl)'s masking
//!   `Display`); the conformance suite checks this for every driver.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod capabilities;
mod driver;
pub mod fake;
mod message;
mod registry;
#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub mod testkit;

pub use capabilities::Capabilities;
pub use driver::{BoxFuture, Driver, DynDriver};
pub use message::{
    IncomingHandle, IncomingMessage, ListenOptions, Listener, Notification, ReplyEvent,
    ReplyStream, Retry, RpcRequest, TransportOptions,
};
pub use registry::{
    lookup_driver, register_driver, registered_schemes, DriverConfig, DriverFactory, Transport,
    TransportBuilder,
};

pub use om_core;
