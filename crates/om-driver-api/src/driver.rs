//! The driver traits: [`Driver`] (static) and [`DynDriver`] (object-safe).

use crate::{Capabilities, ListenOptions, Listener, Notification, ReplyStream, RpcRequest};
use om_core::{Priority, Result, Target};
use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future (the return type of [`DynDriver`] methods).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A messaging backend, as oslo.messaging's `BaseDriver`.
///
/// Implement this trait; the blanket impl gives you [`DynDriver`], which is
/// what a [`Transport`](crate::Transport) stores. Register a
/// [`DriverFactory`](crate::DriverFactory) so URLs with your scheme open it.
pub trait Driver: Send + Sync + 'static {
    /// The driver name (`rabbit`, `kafka`, `amqp`, `fake`, ...).
    fn name(&self) -> &str;

    /// What this driver supports.
    fn capabilities(&self) -> Capabilities;

    /// Sends an RPC request (call or cast).
    ///
    /// Returns once the broker accepted the message. For a call
    /// (`request.wait_for_reply`), the returned [`ReplyStream`] receives the
    /// heartbeats and the final reply; the driver must have subscribed to
    /// replies *before* publishing. For a cast it returns `None`.
    ///
    /// Errors: `InvalidTarget` for a target without topic or a fanout call;
    /// `MessageUndeliverable` when `transport_options.at_least_once` and no
    /// queue took the message; `MessageDeliveryFailure` when retries ran
    /// out; `NotSupported` when the driver has no RPC.
    fn send(&self, request: RpcRequest)
        -> impl Future<Output = Result<Option<ReplyStream>>> + Send;

    /// Sends a notification; returns once the broker accepted it.
    fn send_notification(
        &self,
        notification: Notification,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Subscribes an RPC server to `target` (topic and server required):
    /// requests for the topic (shared with other servers), requests for this
    /// server, and fanout casts for the topic.
    fn listen(
        &self,
        target: Target,
        options: ListenOptions,
    ) -> impl Future<Output = Result<Box<dyn Listener>>> + Send;

    /// Subscribes a notification listener to every `(target, priority)`.
    /// Listeners with the same `pool` share messages; each pool, and the
    /// pool-less group, gets its own copy of every notification.
    fn listen_for_notifications(
        &self,
        targets: Vec<(Target, Priority)>,
        pool: Option<String>,
        options: ListenOptions,
    ) -> impl Future<Output = Result<Box<dyn Listener>>> + Send;

    /// Closes every connection and background task of the driver.
    fn cleanup(&self) -> impl Future<Output = ()> + Send;
}

/// The object-safe twin of [`Driver`], with boxed futures. Implemented for
/// every `Driver`; use it through `Arc<dyn DynDriver>`.
pub trait DynDriver: Send + Sync + 'static {
    /// See [`Driver::name`].
    fn name(&self) -> &str;
    /// See [`Driver::capabilities`].
    fn capabilities(&self) -> Capabilities;
    /// See [`Driver::send`].
    fn send(&self, request: RpcRequest) -> BoxFuture<'_, Result<Option<ReplyStream>>>;
    /// See [`Driver::send_notification`].
    fn send_notification(&self, notification: Notification) -> BoxFuture<'_, Result<()>>;
    /// See [`Driver::listen`].
    fn listen(
        &self,
        target: Target,
        options: ListenOptions,
    ) -> BoxFuture<'_, Result<Box<dyn Listener>>>;
    /// See [`Driver::listen_for_notifications`].
    fn listen_for_notifications(
        &self,
        targets: Vec<(Target, Priority)>,
        pool: Option<String>,
        options: ListenOptions,
    ) -> BoxFuture<'_, Result<Box<dyn Listener>>>;
    /// See [`Driver::cleanup`].
    fn cleanup(&self) -> BoxFuture<'_, ()>;
}

impl<D: Driver> DynDriver for D {
    fn name(&self) -> &str {
        Driver::name(self)
    }
    fn capabilities(&self) -> Capabilities {
        Driver::capabilities(self)
    }
    fn send(&self, request: RpcRequest) -> BoxFuture<'_, Result<Option<ReplyStream>>> {
        Box::pin(Driver::send(self, request))
    }
    fn send_notification(&self, notification: Notification) -> BoxFuture<'_, Result<()>> {
        Box::pin(Driver::send_notification(self, notification))
    }
    fn listen(
        &self,
        target: Target,
        options: ListenOptions,
    ) -> BoxFuture<'_, Result<Box<dyn Listener>>> {
        Box::pin(Driver::listen(self, target, options))
    }
    fn listen_for_notifications(
        &self,
        targets: Vec<(Target, Priority)>,
        pool: Option<String>,
        options: ListenOptions,
    ) -> BoxFuture<'_, Result<Box<dyn Listener>>> {
        Box::pin(Driver::listen_for_notifications(
            self, targets, pool, options,
        ))
    }
    fn cleanup(&self) -> BoxFuture<'_, ()> {
        Box::pin(Driver::cleanup(self))
    }
}
