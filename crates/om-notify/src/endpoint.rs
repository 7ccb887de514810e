//! Listener endpoints: what receives notifications, per priority.

use crate::filter::NotificationFilter;
use om_driver_api::om_core::{Context, Priority, Result, Value};
use om_driver_api::BoxFuture;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::future::Future;
use std::sync::Arc;

/// What an endpoint method returns (oslo's `NotificationResult`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationResult {
    /// Processed: acknowledge (`"handled"`).
    #[default]
    Handled,
    /// Deliver again later (`"requeue"`); only honoured when the listener
    /// has `allow_requeue`, otherwise the message is acknowledged.
    Requeue,
}

/// Values an endpoint handler may return: [`NotificationResult`], `()`
/// (handled), `Option<NotificationResult>` (`None` is handled, like Python's
/// `None`), or a `Result` of any of these whose error counts as
/// [`NotificationResult::Requeue`] (as a Python exception does) and is
/// logged.
pub trait IntoNotificationResult {
    /// The result.
    fn into_notification_result(self) -> NotificationResult;
}

impl IntoNotificationResult for NotificationResult {
    fn into_notification_result(self) -> NotificationResult {
        self
    }
}

impl IntoNotificationResult for () {
    fn into_notification_result(self) -> NotificationResult {
        NotificationResult::Handled
    }
}

impl IntoNotificationResult for Option<NotificationResult> {
    fn into_notification_result(self) -> NotificationResult {
        self.unwrap_or(NotificationResult::Handled)
    }
}

impl<T: IntoNotificationResult, E: fmt::Display> IntoNotificationResult
    for std::result::Result<T, E>
{
    fn into_notification_result(self) -> NotificationResult {
        match self {
            Ok(v) => v.into_notification_result(),
            Err(e) => {
                tracing::error!(error = %e, "notification endpoint failed; counts as requeue");
                NotificationResult::Requeue
            }
        }
    }
}

/// The `metadata` of a notification: its `message_id` and `timestamp`,
/// verbatim from the message (`None` when absent or not a string).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The sender's `message_id` (dashed uuid4).
    pub message_id: Option<String>,
    /// The sender's `timestamp` (`YYYY-MM-DD HH:MM:SS.ffffff`, UTC).
    pub timestamp: Option<String>,
}

/// A received notification, as handed to endpoints: Python's `(ctxt,
/// publisher_id, event_type, payload, metadata)` plus the priority.
///
/// `P` is the payload type: `serde_json::Value` by default, or any
/// `DeserializeOwned` type.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification<P = Value> {
    /// The context, after `serializer.deserialize_context`. On RabbitMQ it
    /// also holds `client_timeout: null`, as in Python.
    pub ctxt: Context,
    /// The `publisher_id` (`None` when null, absent or not a string).
    pub publisher_id: Option<String>,
    /// The `event_type` (empty when absent or not a string; filters see the
    /// raw value).
    pub event_type: String,
    /// The priority, from the message's `priority` field.
    pub priority: Priority,
    /// The payload, after `serializer.deserialize_entity`.
    pub payload: P,
    /// `message_id` and `timestamp`.
    pub metadata: Metadata,
}

impl Notification<Value> {
    /// This notification with its payload deserialized into `P`.
    pub fn to_typed<P: DeserializeOwned>(&self) -> Result<Notification<P>> {
        Ok(Notification {
            ctxt: self.ctxt.clone(),
            publisher_id: self.publisher_id.clone(),
            event_type: self.event_type.clone(),
            priority: self.priority,
            payload: P::deserialize(&self.payload)?,
            metadata: self.metadata.clone(),
        })
    }

    /// The payload deserialized into `P`.
    pub fn payload_as<P: DeserializeOwned>(&self) -> Result<P> {
        Ok(P::deserialize(&self.payload)?)
    }
}

/// An endpoint of a [`NotificationListener`](crate::NotificationListener):
/// something with a method per priority (any subset of them).
///
/// Implement it for your own types, or use the closure-based [`Endpoint`].
/// The listener subscribes only to the priorities some endpoint
/// [handles](NotificationEndpoint::priorities).
pub trait NotificationEndpoint: Send + Sync + 'static {
    /// The priorities this endpoint has a method for.
    fn priorities(&self) -> Vec<Priority>;

    /// The endpoint's filter (oslo's `filter_rule`): notifications that do
    /// not match skip this endpoint.
    fn filter_rule(&self) -> Option<&NotificationFilter> {
        None
    }

    /// Handles one notification of a priority listed by
    /// [`NotificationEndpoint::priorities`]. A panic counts as
    /// [`NotificationResult::Requeue`].
    fn handle<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, NotificationResult>;
}

/// An endpoint of a [`BatchNotificationListener`](crate::BatchNotificationListener).
pub trait BatchNotificationEndpoint: Send + Sync + 'static {
    /// The priorities this endpoint has a method for.
    fn priorities(&self) -> Vec<Priority>;

    /// The endpoint's filter: each batch is narrowed to the matching
    /// notifications; an empty remainder skips the call.
    fn filter_rule(&self) -> Option<&NotificationFilter> {
        None
    }

    /// Handles a non-empty batch of notifications of one priority.
    /// [`NotificationResult::Requeue`] (or a panic) marks every
    /// notification of that priority in the batch for redelivery.
    fn handle_batch<'a>(
        &'a self,
        priority: Priority,
        notifications: &'a [Notification],
    ) -> BoxFuture<'a, NotificationResult>;
}

type Handler = Arc<dyn Fn(&Notification) -> BoxFuture<'static, NotificationResult> + Send + Sync>;
type BatchHandler =
    Arc<dyn Fn(&[Notification]) -> BoxFuture<'static, NotificationResult> + Send + Sync>;

fn index(p: Priority) -> usize {
    match p {
        Priority::Audit => 0,
        Priority::Debug => 1,
        Priority::Info => 2,
        Priority::Warn => 3,
        Priority::Error => 4,
        Priority::Critical => 5,
        Priority::Sample => 6,
    }
}

macro_rules! priority_methods {
    ($($(#[$doc:meta])* $name:ident => $prio:expr;)*) => {
        $(
            $(#[$doc])*
            pub fn $name<P, F, Fut, R>(self, handler: F) -> Self
            where
                P: DeserializeOwned + Send + 'static,
                F: Fn(Notification<P>) -> Fut + Send + Sync + 'static,
                Fut: Future<Output = R> + Send + 'static,
                R: IntoNotificationResult + 'static,
            {
                self.on($prio, handler)
            }
        )*
    };
}

macro_rules! batch_priority_methods {
    ($($(#[$doc:meta])* $name:ident => $prio:expr;)*) => {
        $(
            $(#[$doc])*
            pub fn $name<P, F, Fut, R>(self, handler: F) -> Self
            where
                P: DeserializeOwned + Send + 'static,
                F: Fn(Vec<Notification<P>>) -> Fut + Send + Sync + 'static,
                Fut: Future<Output = R> + Send + 'static,
                R: IntoNotificationResult + 'static,
            {
                self.on($prio, handler)
            }
        )*
    };
}

/// A closure-based endpoint: one async handler per priority, typed
/// payloads through serde, an optional filter.
///
/// ```
/// use om_notify::{Endpoint, Notification, NotificationResult};
/// #[derive(serde::Deserialize)]
/// struct Instance { id: u64 }
/// let ep = Endpoint::new()
///     .info(|n: Notification<Instance>| async move {
///         println!("instance {} from {:?}", n.payload.id, n.publisher_id);
///         NotificationResult::Handled
///     })
///     .error(|n: Notification| async move { // raw serde_json::Value payload
///         if n.payload.is_null() { Err("empty payload") } else { Ok(()) }
///     });
/// # let _ = ep;
/// ```
///
/// A payload that does not deserialize into the handler's type counts as
/// a failed handler ([`NotificationResult::Requeue`], logged), as a Python
/// endpoint raising on a bad payload would. There is no `warning` method:
/// oslo never calls an endpoint method named `warning`.
#[derive(Clone, Default)]
pub struct Endpoint {
    handlers: [Option<Handler>; 7],
    filter: Option<NotificationFilter>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("priorities", &NotificationEndpoint::priorities(self))
            .field("filter", &self.filter)
            .finish()
    }
}

impl Endpoint {
    /// An endpoint with no method.
    pub fn new() -> Self {
        Endpoint::default()
    }

    /// Sets the handler for `priority` (replacing any earlier one).
    pub fn on<P, F, Fut, R>(mut self, priority: Priority, handler: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        F: Fn(Notification<P>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoNotificationResult + 'static,
    {
        let h: Handler = Arc::new(
            move |n: &Notification| -> BoxFuture<'static, NotificationResult> {
                match n.to_typed::<P>() {
                    Ok(typed) => {
                        let fut = handler(typed);
                        Box::pin(async move { fut.await.into_notification_result() })
                    }
                    Err(e) => {
                        tracing::error!(
                            error = %e,
                            event_type = n.event_type.as_str(),
                            "notification payload does not fit the endpoint's type; counts as requeue"
                        );
                        Box::pin(std::future::ready(NotificationResult::Requeue))
                    }
                }
            },
        );
        self.handlers[index(priority)] = Some(h);
        self
    }

    /// Sets the filter (oslo's `filter_rule`).
    pub fn filter(mut self, filter: NotificationFilter) -> Self {
        self.filter = Some(filter);
        self
    }

    priority_methods! {
        /// Handles `AUDIT` notifications.
        audit => Priority::Audit;
        /// Handles `DEBUG` notifications.
        debug => Priority::Debug;
        /// Handles `INFO` notifications.
        info => Priority::Info;
        /// Handles `WARN` notifications (the method oslo calls `warn`).
        warn => Priority::Warn;
        /// Handles `ERROR` notifications.
        error => Priority::Error;
        /// Handles `CRITICAL` notifications.
        critical => Priority::Critical;
        /// Handles `SAMPLE` notifications.
        sample => Priority::Sample;
    }
}

impl NotificationEndpoint for Endpoint {
    fn priorities(&self) -> Vec<Priority> {
        Priority::ALL
            .into_iter()
            .filter(|p| self.handlers[index(*p)].is_some())
            .collect()
    }

    fn filter_rule(&self) -> Option<&NotificationFilter> {
        self.filter.as_ref()
    }

    fn handle<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, NotificationResult> {
        match &self.handlers[index(notification.priority)] {
            Some(h) => h(notification),
            None => Box::pin(std::future::ready(NotificationResult::Handled)),
        }
    }
}

/// A closure-based batch endpoint: one async handler per priority taking
/// the batch's notifications of that priority.
///
/// ```
/// use om_notify::{BatchEndpoint, Notification};
/// let ep = BatchEndpoint::new().info(|batch: Vec<Notification>| async move {
///     println!("{} notifications", batch.len());
/// });
/// # let _ = ep;
/// ```
///
/// If any payload of the batch does not deserialize into the handler's
/// type, the handler is not called and the group counts as requeued.
#[derive(Clone, Default)]
pub struct BatchEndpoint {
    handlers: [Option<BatchHandler>; 7],
    filter: Option<NotificationFilter>,
}

impl fmt::Debug for BatchEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchEndpoint")
            .field("priorities", &BatchNotificationEndpoint::priorities(self))
            .field("filter", &self.filter)
            .finish()
    }
}

impl BatchEndpoint {
    /// A batch endpoint with no method.
    pub fn new() -> Self {
        BatchEndpoint::default()
    }

    /// Sets the handler for `priority`.
    pub fn on<P, F, Fut, R>(mut self, priority: Priority, handler: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        F: Fn(Vec<Notification<P>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoNotificationResult + 'static,
    {
        let h: BatchHandler = Arc::new(
            move |batch: &[Notification]| -> BoxFuture<'static, NotificationResult> {
                match batch
                    .iter()
                    .map(Notification::to_typed::<P>)
                    .collect::<Result<Vec<_>>>()
                {
                    Ok(typed) => {
                        let fut = handler(typed);
                        Box::pin(async move { fut.await.into_notification_result() })
                    }
                    Err(e) => {
                        tracing::error!(
                            error = %e,
                            "a payload of the batch does not fit the endpoint's type; the group counts as requeue"
                        );
                        Box::pin(std::future::ready(NotificationResult::Requeue))
                    }
                }
            },
        );
        self.handlers[index(priority)] = Some(h);
        self
    }

    /// Sets the filter.
    pub fn filter(mut self, filter: NotificationFilter) -> Self {
        self.filter = Some(filter);
        self
    }

    batch_priority_methods! {
        /// Handles batches of `AUDIT` notifications.
        audit => Priority::Audit;
        /// Handles batches of `DEBUG` notifications.
        debug => Priority::Debug;
        /// Handles batches of `INFO` notifications.
        info => Priority::Info;
        /// Handles batches of `WARN` notifications.
        warn => Priority::Warn;
        /// Handles batches of `ERROR` notifications.
        error => Priority::Error;
        /// Handles batches of `CRITICAL` notifications.
        critical => Priority::Critical;
        /// Handles batches of `SAMPLE` notifications.
        sample => Priority::Sample;
    }
}

impl BatchNotificationEndpoint for BatchEndpoint {
    fn priorities(&self) -> Vec<Priority> {
        Priority::ALL
            .into_iter()
            .filter(|p| self.handlers[index(*p)].is_some())
            .collect()
    }

    fn filter_rule(&self) -> Option<&NotificationFilter> {
        self.filter.as_ref()
    }

    fn handle_batch<'a>(
        &'a self,
        priority: Priority,
        notifications: &'a [Notification],
    ) -> BoxFuture<'a, NotificationResult> {
        match &self.handlers[index(priority)] {
            Some(h) => h(notifications),
            None => Box::pin(std::future::ready(NotificationResult::Handled)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_convert_like_python_return_values() {
        assert_eq!(().into_notification_result(), NotificationResult::Handled);
        assert_eq!(
            None::<NotificationResult>.into_notification_result(),
            NotificationResult::Handled
        );
        assert_eq!(
            Some(NotificationResult::Requeue).into_notification_result(),
            NotificationResult::Requeue
        );
        assert_eq!(
            Ok::<(), String>(()).into_notification_result(),
            NotificationResult::Handled
        );
        assert_eq!(
            Err::<(), _>("boom").into_notification_result(),
            NotificationResult::Requeue
        );
        assert_eq!(
            Ok::<_, String>(NotificationResult::Requeue).into_notification_result(),
            NotificationResult::Requeue
        );
        assert_eq!(
            serde_json::to_value(NotificationResult::Requeue).unwrap(),
            "requeue"
        );
        assert_eq!(
            serde_json::to_value(NotificationResult::Handled).unwrap(),
            "handled"
        );
    }

    #[test]
    fn endpoint_lists_the_priorities_it_has() {
        let ep = Endpoint::new()
            .sample(|_: Notification| async {})
            .audit(|_: Notification| async {})
            .warn(|_: Notification| async {});
        assert_eq!(
            NotificationEndpoint::priorities(&ep),
            vec![Priority::Audit, Priority::Warn, Priority::Sample]
        );
        let batch = BatchEndpoint::new().critical(|_: Vec<Notification>| async {});
        assert_eq!(
            BatchNotificationEndpoint::priorities(&batch),
            vec![Priority::Critical]
        );
        assert!(format!("{ep:?}").contains("Sample"));
    }
}
