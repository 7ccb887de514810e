//! Dispatch of received notifications to endpoints (oslo's
//! `NotificationDispatcher` and `BatchNotificationDispatcher`).

use crate::endpoint::{
    BatchNotificationEndpoint, Metadata, Notification, NotificationEndpoint, NotificationResult,
};
use crate::filter::NotificationFilter;
use futures_util::FutureExt;
use om_driver_api::om_core::{
    Context, DynSerializer, JsonObject, NoOpSerializer, Priority, Result, Value,
};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tracing::Instrument;

/// A received notification after extraction, with what filters need to
/// know beyond it.
#[derive(Debug, Clone)]
pub(crate) struct Extracted {
    pub(crate) notification: Notification,
    /// Whether `event_type` arrived as a string (the notification shows
    /// any other value as empty; filters must not match it).
    event_type_is_str: bool,
}

impl Extracted {
    fn passes(&self, filter: Option<&NotificationFilter>) -> bool {
        let n = &self.notification;
        filter.is_none_or(|f| {
            f.matches_parts(
                n.ctxt.as_object(),
                n.publisher_id.as_deref(),
                self.event_type_is_str.then_some(n.event_type.as_str()),
                |key| match key {
                    "message_id" => n.metadata.message_id.as_deref(),
                    "timestamp" => n.metadata.timestamp.as_deref(),
                    _ => None,
                },
                &n.payload,
            )
        })
    }
}

/// The message's `priority` field as one of the seven priorities, matched
/// without regard to case; `Err` with the field (for the log) otherwise
/// (`warning` is not one of them).
fn message_priority(message: &JsonObject) -> std::result::Result<Priority, Option<&Value>> {
    let raw = message.get("priority");
    let found = match raw {
        None => None,
        Some(Value::String(s)) if s.is_ascii() => Priority::ALL
            .into_iter()
            .find(|p| p.as_lower().eq_ignore_ascii_case(s)),
        // Other text is lower-cased with Unicode rules first, as Python's
        // `str.lower()` does.
        Some(Value::String(s)) => {
            let lower = s.to_lowercase();
            Priority::ALL.into_iter().find(|p| p.as_lower() == lower)
        }
        Some(_) => None,
    };
    found.ok_or(raw)
}

/// A string value moved out, `None` for any other value.
fn into_string(value: Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s),
        _ => None,
    }
}

fn extract(
    serializer: &DynSerializer,
    priority: Priority,
    ctxt: JsonObject,
    message: Cow<'_, JsonObject>,
) -> Result<Extracted> {
    let ctxt = serializer.deserialize_context(Context(ctxt))?;
    let [mut publisher_id, mut event_type, mut message_id, mut timestamp, mut payload] =
        [const { Value::Null }; 5];
    match message {
        // One pass over a message we own (the listener's), moving the
        // fields out; the rest is dropped.
        Cow::Owned(m) => {
            for (key, value) in m {
                match key.as_str() {
                    "publisher_id" => publisher_id = value,
                    "event_type" => event_type = value,
                    "message_id" => message_id = value,
                    "timestamp" => timestamp = value,
                    "payload" => payload = value,
                    _ => {}
                }
            }
        }
        // Copied from a borrowed one.
        Cow::Borrowed(m) => {
            for (key, slot) in [
                ("publisher_id", &mut publisher_id),
                ("event_type", &mut event_type),
                ("message_id", &mut message_id),
                ("timestamp", &mut timestamp),
                ("payload", &mut payload),
            ] {
                if let Some(v) = m.get(key) {
                    *slot = v.clone();
                }
            }
        }
    }
    let payload = serializer.deserialize_entity(&ctxt, payload)?;
    let event_type = into_string(event_type);
    Ok(Extracted {
        event_type_is_str: event_type.is_some(),
        notification: Notification {
            ctxt,
            publisher_id: into_string(publisher_id),
            event_type: event_type.unwrap_or_default(),
            priority,
            payload,
            metadata: Metadata {
                message_id: into_string(message_id),
                timestamp: into_string(timestamp),
            },
        },
    })
}

/// Runs one handler future; a panic counts as requeue.
async fn guarded(fut: impl std::future::Future<Output = NotificationResult>) -> NotificationResult {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(r) => r,
        Err(_) => {
            tracing::error!("notification endpoint panicked; counts as requeue");
            NotificationResult::Requeue
        }
    }
}

/// Hands single notifications to endpoints, as oslo's
/// `NotificationDispatcher`. Used by
/// [`NotificationListener`](crate::NotificationListener); public so
/// endpoints can be exercised without a transport.
#[derive(Clone)]
pub struct NotificationDispatcher {
    endpoints: Vec<Arc<dyn NotificationEndpoint>>,
    by_priority: [Vec<usize>; 7],
    serializer: DynSerializer,
}

impl std::fmt::Debug for NotificationDispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationDispatcher")
            .field("endpoints", &self.endpoints.len())
            .field("priorities", &self.supported_priorities())
            .finish()
    }
}

fn priority_table<T: ?Sized>(
    endpoints: &[Arc<T>],
    prios: impl Fn(&T) -> Vec<Priority>,
) -> [Vec<usize>; 7] {
    let mut table: [Vec<usize>; 7] = Default::default();
    for (i, ep) in endpoints.iter().enumerate() {
        let ps = prios(ep);
        for (slot, p) in Priority::ALL.into_iter().enumerate() {
            if ps.contains(&p) {
                table[slot].push(i);
            }
        }
    }
    table
}

fn slot(p: Priority) -> usize {
    Priority::ALL.iter().position(|q| *q == p).unwrap_or(0)
}

impl NotificationDispatcher {
    /// A dispatcher over `endpoints` (in order) with `serializer` (`None`:
    /// no-op).
    pub fn new(
        endpoints: Vec<Arc<dyn NotificationEndpoint>>,
        serializer: Option<DynSerializer>,
    ) -> Self {
        let by_priority = priority_table(&endpoints, |e| e.priorities());
        NotificationDispatcher {
            endpoints,
            by_priority,
            serializer: serializer.unwrap_or_else(|| Arc::new(NoOpSerializer)),
        }
    }

    /// The priorities at least one endpoint handles, in oslo's order.
    pub fn supported_priorities(&self) -> Vec<Priority> {
        Priority::ALL
            .into_iter()
            .filter(|p| !self.by_priority[slot(*p)].is_empty())
            .collect()
    }

    /// Dispatches one message (context and message as a driver hands them
    /// over), following oslo:
    ///
    /// 1. the priority is the message's `priority` field lower-cased; one
    ///    that is not among the seven is logged and the message counts as
    ///    handled (acknowledged) without calling any endpoint;
    /// 2. endpoints with a method for it run in order, skipping those whose
    ///    filter does not match; the first [`NotificationResult::Requeue`]
    ///    (or handler error or panic) stops and is returned;
    /// 3. otherwise the message is handled.
    ///
    /// A serializer failure on the context or payload counts as requeue.
    pub async fn dispatch(&self, ctxt: JsonObject, message: &JsonObject) -> NotificationResult {
        self.dispatch_cow(ctxt, Cow::Borrowed(message)).await
    }

    /// [`NotificationDispatcher::dispatch`] of a message the caller no
    /// longer needs: its payload is moved, not copied.
    pub(crate) async fn dispatch_owned(
        &self,
        ctxt: JsonObject,
        message: JsonObject,
    ) -> NotificationResult {
        self.dispatch_cow(ctxt, Cow::Owned(message)).await
    }

    async fn dispatch_cow(
        &self,
        ctxt: JsonObject,
        message: Cow<'_, JsonObject>,
    ) -> NotificationResult {
        let priority = match message_priority(&message) {
            Ok(p) => p,
            Err(raw) => {
                tracing::warn!(priority = ?raw, "Unknown priority");
                return NotificationResult::Handled;
            }
        };
        let extracted = match extract(&self.serializer, priority, ctxt, message) {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, "cannot deserialize notification; counts as requeue");
                return NotificationResult::Requeue;
            }
        };
        let span = tracing::debug_span!(
            "om.notify.dispatch",
            priority = priority.as_lower(),
            event_type = extracted.notification.event_type.as_str(),
            message_id = extracted.notification.metadata.message_id.as_deref(),
        );
        async {
            for &i in &self.by_priority[slot(priority)] {
                let ep = &self.endpoints[i];
                if !extracted.passes(ep.filter_rule()) {
                    continue;
                }
                if guarded(ep.handle(&extracted.notification)).await == NotificationResult::Requeue
                {
                    return NotificationResult::Requeue;
                }
            }
            NotificationResult::Handled
        }
        .instrument(span)
        .await
    }
}

/// Hands batches to batch endpoints, as oslo's
/// `BatchNotificationDispatcher`.
#[derive(Clone)]
pub struct BatchNotificationDispatcher {
    endpoints: Vec<Arc<dyn BatchNotificationEndpoint>>,
    by_priority: [Vec<usize>; 7],
    serializer: DynSerializer,
}

impl std::fmt::Debug for BatchNotificationDispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchNotificationDispatcher")
            .field("endpoints", &self.endpoints.len())
            .field("priorities", &self.supported_priorities())
            .finish()
    }
}

impl BatchNotificationDispatcher {
    /// A dispatcher over `endpoints` with `serializer` (`None`: no-op).
    pub fn new(
        endpoints: Vec<Arc<dyn BatchNotificationEndpoint>>,
        serializer: Option<DynSerializer>,
    ) -> Self {
        let by_priority = priority_table(&endpoints, |e| e.priorities());
        BatchNotificationDispatcher {
            endpoints,
            by_priority,
            serializer: serializer.unwrap_or_else(|| Arc::new(NoOpSerializer)),
        }
    }

    /// The priorities at least one endpoint handles, in oslo's order.
    pub fn supported_priorities(&self) -> Vec<Priority> {
        Priority::ALL
            .into_iter()
            .filter(|p| !self.by_priority[slot(*p)].is_empty())
            .collect()
    }

    /// Dispatches a batch; returns, for each message in order, whether it
    /// is to be requeued.
    ///
    /// Messages are grouped by lower-cased priority (groups in sorted
    /// order, as Python sorts them); a group with an unknown priority is
    /// logged and acknowledged. For each group, endpoints with a method
    /// for the priority run in order on the messages their filter lets
    /// through (skipped when none does); [`NotificationResult::Requeue`],
    /// an error or a panic marks the whole group for requeue and skips the
    /// remaining endpoints for it. A message whose context or payload the
    /// serializer rejects is marked on its own (Python would requeue the
    /// whole batch).
    pub async fn dispatch(&self, messages: Vec<(JsonObject, &JsonObject)>) -> Vec<bool> {
        let mut requeue = vec![false; messages.len()];
        // A priority and its messages, with their index in `messages`.
        type Group = (Priority, Vec<(usize, Extracted)>);
        // Keyed by the lower-case name, so the groups come in the order
        // Python sorts them.
        let mut groups: BTreeMap<&'static str, Group> = BTreeMap::new();
        for (i, (ctxt, message)) in messages.into_iter().enumerate() {
            let priority = match message_priority(message) {
                Ok(p) => p,
                Err(raw) => {
                    tracing::warn!(priority = ?raw, "Unknown priority");
                    continue;
                }
            };
            match extract(&self.serializer, priority, ctxt, Cow::Borrowed(message)) {
                Ok(x) => groups
                    .entry(priority.as_lower())
                    .or_insert_with(|| (priority, Vec::new()))
                    .1
                    .push((i, x)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot deserialize notification; counts as requeue");
                    requeue[i] = true;
                }
            }
        }
        for (priority, members) in groups.into_values() {
            let span = tracing::debug_span!(
                "om.notify.dispatch_batch",
                priority = priority.as_lower(),
                size = members.len()
            );
            let requeue_group = async {
                for &e in &self.by_priority[slot(priority)] {
                    let ep = &self.endpoints[e];
                    let batch: Vec<Notification> = members
                        .iter()
                        .filter(|(_, x)| x.passes(ep.filter_rule()))
                        .map(|(_, x)| x.notification.clone())
                        .collect();
                    if batch.is_empty() {
                        continue;
                    }
                    if guarded(ep.handle_batch(priority, &batch)).await
                        == NotificationResult::Requeue
                    {
                        return true;
                    }
                }
                false
            }
            .instrument(span)
            .await;
            if requeue_group {
                for (i, _) in &members {
                    requeue[*i] = true;
                }
            }
        }
        requeue
    }
}
