//! # om-notify
//!
//! Notifiers and notification listeners for om, with the semantics of
//! OpenStack oslo.messaging 18.3.1 and its wire format, on any om driver
//! (`rabbit://`, `kafka://`, `fake://`, ...).
//!
//! * [`Notifier`] publishes `(event_type, payload)` at a [`Priority`]
//!   through one or more [`NotifierDriver`]s: `messagingv2` (2.0 envelope),
//!   `messaging` (bare "1.0" body), `log` (through `tracing`), `routing`
//!   (by event type and priority, [`RoutingConfig`]), `noop`, and `test`
//!   (kept in a [`TestSink`] for your tests).
//! * [`NotificationListener`] consumes them and calls [`Endpoint`]s (or
//!   your own [`NotificationEndpoint`]s) per priority, with
//!   [`NotificationFilter`]s, listener pools, requeue, bounded
//!   concurrency and acknowledgement after processing.
//!   [`BatchNotificationListener`] does the same in batches.
//!
//! ```
//! # async fn demo() -> om_driver_api::om_core::Result<()> {
//! use om_driver_api::{om_core::{Context, Target}, Transport};
//! use om_notify::{Endpoint, Notification, NotificationListener, Notifier, NotifierDriver};
//!
//! let transport = Transport::from_url("fake:///lib-doc").await?;
//! let listener = NotificationListener::builder(transport.clone())
//!     .target(Target::new("notifications"))
//!     .endpoint(Endpoint::new().info(|n: Notification| async move {
//!         println!("{} from {:?}: {}", n.event_type, n.publisher_id, n.payload);
//!     }))
//!     .build()?;
//! listener.start().await?;
//!
//! let notifier = Notifier::builder(transport)
//!     .publisher_id("compute.host1")
//!     .driver(NotifierDriver::MessagingV2)
//!     .build();
//! notifier.info(&Context::new(), "compute.instance.create.end", serde_json::json!({"id": 1})).await?;
//!
//! listener.stop().await;
//! listener.wait().await;
//! # Ok(()) }
//! ```
//!
//! ## Differences from Python, on purpose
//!
//! * Delivery failures are returned (after every driver and topic was
//!   tried) instead of being logged and swallowed;
//!   [`ErrorPolicy::LogAndSwallow`] restores Python's behaviour.
//! * Contexts are JSON objects: the context given is sent (with
//!   `auth_token` blanked, [`ContextPolicy`]); Python drops plain-dict
//!   contexts, so pass [`Context::new()`](om_driver_api::om_core::Context::new)
//!   (or use [`ContextPolicy::Empty`]) to send what Python sends for a dict.
//! * The `routing` driver implements the routing the Python code intends
//!   (it is broken in 18.3.1).
//! * The `log` driver logs `audit` and `sample` at INFO (Python only
//!   warns that it cannot log them).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod dispatcher;
mod endpoint;
mod filter;
mod fnmatch;
mod listener;
mod notifier;
mod routing;
mod testing;
mod timestamp;

pub use dispatcher::{BatchNotificationDispatcher, NotificationDispatcher};
pub use endpoint::{
    BatchEndpoint, BatchNotificationEndpoint, Endpoint, IntoNotificationResult, Metadata,
    Notification, NotificationEndpoint, NotificationResult,
};
pub use filter::{NotificationFilter, NotificationFilterBuilder, NotificationFilterSpec};
pub use fnmatch::{fnmatch, Pattern};
pub use listener::{
    BatchNotificationListener, BatchNotificationListenerBuilder, NotificationListener,
    NotificationListenerBuilder, DEFAULT_EXECUTOR_POOL_SIZE,
};
pub use notifier::{
    ContextPolicy, ErrorPolicy, Notifier, NotifierBuilder, NotifierDriver, Prepare,
};
pub use om_driver_api::om_core::Priority;
pub use om_driver_api::Retry;
pub use routing::{RouteDriver, RouteRules, RoutingConfig};
pub use testing::{SentNotification, TestSink};
pub use timestamp::{format_timestamp, utcnow_timestamp};
