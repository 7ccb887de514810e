//! The `test` notification driver's store: what a notifier "sent", kept in
//! memory so an application's own tests can look at it.

use om_driver_api::om_core::{Context, JsonObject, Priority, Value};
use om_driver_api::Retry;
use std::sync::{Arc, Mutex, MutexGuard};

/// One notification recorded by the `test` driver: the same
/// `(ctxt, message, priority, retry)` tuple Python's `TestDriver` appends to
/// its `NOTIFICATIONS` list, plus the topics the notifier was using.
#[derive(Debug, Clone, PartialEq)]
pub struct SentNotification {
    /// The context as it would have been sent (after redaction and
    /// `serialize_context`).
    pub ctxt: Context,
    /// The message: `message_id`, `publisher_id`, `event_type`, `priority`,
    /// `payload`, `timestamp`, in that order.
    pub message: JsonObject,
    /// The priority.
    pub priority: Priority,
    /// The retry policy the notifier used.
    pub retry: Retry,
    /// The topics the notifier would have sent to.
    pub topics: Vec<String>,
}

impl SentNotification {
    /// The `event_type` field.
    pub fn event_type(&self) -> Option<&str> {
        self.message.get("event_type").and_then(Value::as_str)
    }

    /// The `publisher_id` field (`None` when null).
    pub fn publisher_id(&self) -> Option<&str> {
        self.message.get("publisher_id").and_then(Value::as_str)
    }

    /// The `message_id` field.
    pub fn message_id(&self) -> Option<&str> {
        self.message.get("message_id").and_then(Value::as_str)
    }

    /// The `timestamp` field.
    pub fn timestamp(&self) -> Option<&str> {
        self.message.get("timestamp").and_then(Value::as_str)
    }

    /// The (serialized) payload; `Null` if absent.
    pub fn payload(&self) -> &Value {
        self.message.get("payload").unwrap_or(&Value::Null)
    }

    /// The payload deserialized into `T`.
    pub fn payload_as<T: serde::de::DeserializeOwned>(&self) -> om_driver_api::om_core::Result<T> {
        Ok(T::deserialize(self.payload())?)
    }
}

/// A shared, cloneable in-memory store of [`SentNotification`]s, filled by
/// [`NotifierDriver::Test`](crate::NotifierDriver::Test).
///
/// Unlike Python's module-global list, each sink is its own store: create
/// one per test and hand a clone to the notifier.
///
/// ```
/// # async fn demo() -> om_driver_api::om_core::Result<()> {
/// use om_notify::{Notifier, NotifierDriver, TestSink};
/// use om_driver_api::{om_core::Context, Transport};
/// let sink = TestSink::new();
/// let transport = Transport::from_url("fake://").await?;
/// let notifier = Notifier::builder(transport).driver(NotifierDriver::Test(sink.clone())).build();
/// notifier.info(&Context::new(), "compute.start", serde_json::json!({"id": 1})).await?;
/// assert_eq!(sink.len(), 1);
/// assert_eq!(sink.notifications()[0].event_type(), Some("compute.start"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct TestSink {
    inner: Arc<Mutex<Vec<SentNotification>>>,
}

impl TestSink {
    /// An empty store.
    pub fn new() -> Self {
        TestSink::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<SentNotification>> {
        // A panic while holding the lock cannot leave the Vec inconsistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn push(&self, n: SentNotification) {
        self.lock().push(n);
    }

    /// A copy of everything recorded so far, oldest first.
    pub fn notifications(&self) -> Vec<SentNotification> {
        self.lock().clone()
    }

    /// Removes and returns everything recorded so far.
    pub fn take(&self) -> Vec<SentNotification> {
        std::mem::take(&mut *self.lock())
    }

    /// Forgets everything recorded (Python's `reset()`).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Number of recorded notifications.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Whether two handles share one store.
    pub fn same_store(&self, other: &TestSink) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}
