//! [`Notifier`]: publishes notifications through one or more drivers.

use crate::routing::{RouteDriver, RoutingConfig};
use crate::testing::{SentNotification, TestSink};
use crate::timestamp::format_timestamp;
use chrono::{NaiveDateTime, Utc};
use om_driver_api::om_core::envelope::{to_python_json_string, Format};
use om_driver_api::om_core::{
    uuid_dashed, Context, DynSerializer, Error, JsonObject, NoOpSerializer, Priority, Result,
    Target, Value,
};
use om_driver_api::{Notification, Retry, Transport};
use serde::Serialize;
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use tracing::Instrument;

/// A notification driver, as named in `[oslo_messaging_notifications]
/// driver`. A notifier may use several at once; each gets every
/// notification.
#[derive(Debug, Clone)]
pub enum NotifierDriver {
    /// `messagingv2`: sends over the transport in the 2.0 envelope
    /// (recommended).
    MessagingV2,
    /// `messaging`: sends over the transport as a bare JSON object (the
    /// "1.0" format, for old consumers).
    Messaging,
    /// `log`: emits the JSON-dumped message, secrets masked, as a `tracing`
    /// event with target `oslo.messaging.notification` and field
    /// `event_type`. Levels: `debug` → DEBUG, `info` → INFO, `warn` → WARN,
    /// `error` → ERROR, `critical` → ERROR; `audit` and `sample` (which
    /// Python cannot log and only warns about) → INFO. Every event carries
    /// a `priority` field with the lower-case priority, so `critical`,
    /// `audit` and `sample` can be told apart.
    Log,
    /// `routing`: forwards to other drivers by event type and priority
    /// (see [`RoutingConfig`]).
    Routing(RoutingConfig),
    /// `noop`: drops everything. A notifier whose only driver is `noop` is
    /// not [enabled](Notifier::is_enabled).
    Noop,
    /// `test`: records every notification in the given [`TestSink`].
    Test(TestSink),
}

impl NotifierDriver {
    /// The driver name as written in configuration.
    pub fn name(&self) -> &'static str {
        match self {
            NotifierDriver::MessagingV2 => "messagingv2",
            NotifierDriver::Messaging => "messaging",
            NotifierDriver::Log => "log",
            NotifierDriver::Routing(_) => "routing",
            NotifierDriver::Noop => "noop",
            NotifierDriver::Test(_) => "test",
        }
    }

    /// A `test` driver with a fresh sink.
    pub fn test() -> Self {
        NotifierDriver::Test(TestSink::new())
    }
}

impl FromStr for NotifierDriver {
    type Err = Error;

    /// Parses a driver name. `routing` gives a routing driver with an
    /// empty configuration (oslo's default `routing_config = ""`, which
    /// routes nothing); build [`NotifierDriver::Routing`] from
    /// [`RoutingConfig::from_file`] to route. `test` gets a fresh sink.
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "messagingv2" => NotifierDriver::MessagingV2,
            "messaging" => NotifierDriver::Messaging,
            "log" => NotifierDriver::Log,
            "routing" => NotifierDriver::Routing(RoutingConfig::empty()),
            "noop" => NotifierDriver::Noop,
            "test" => NotifierDriver::test(),
            other => {
                return Err(Error::Configuration(format!(
                    "unknown notification driver {other:?} (known: messagingv2, messaging, log, routing, noop, test)"
                )))
            }
        })
    }
}

impl fmt::Display for NotifierDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which context goes out with a notification.
///
/// Python oslo.messaging sends an **empty** context when given a plain
/// dict (or `None`), and `ctxt.redacted_copy()` (the request context with
/// `auth_token` blanked) when given an oslo.context `RequestContext`. In om
/// a context is always a JSON object ([`Context`]), so the choice is made
/// here, once per notifier. Pass [`Context::new()`] to send an empty
/// context, exactly as Python does for a dict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ContextPolicy {
    /// The default: the context as given, except that an `auth_token` key,
    /// when present, is sent as `null` (what `redacted_copy()` does to a
    /// `RequestContext`). Matches Python for contexts built from
    /// [`RequestContext`](om_driver_api::om_core::RequestContext).
    #[default]
    Redacted,
    /// The context exactly as given (secrets included).
    AsGiven,
    /// Always an empty context (Python's behaviour for plain-dict contexts).
    Empty,
}

impl ContextPolicy {
    /// The context to send; copied only when the policy changes it.
    fn apply(self, ctxt: &Context) -> Cow<'_, Context> {
        match self {
            ContextPolicy::AsGiven => Cow::Borrowed(ctxt),
            ContextPolicy::Empty => Cow::Owned(Context::new()),
            ContextPolicy::Redacted => match ctxt.0.get("auth_token") {
                Some(v) if !v.is_null() => {
                    let mut c = ctxt.clone();
                    c.0.insert("auth_token".into(), Value::Null);
                    Cow::Owned(c)
                }
                _ => Cow::Borrowed(ctxt),
            },
        }
    }
}

/// What a notifier does when a driver fails to deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ErrorPolicy {
    /// The default: every driver and topic is still tried, every failure
    /// is logged, and the first one is returned to the caller (usually
    /// `MessageDeliveryFailure` once the retries ran out).
    #[default]
    Return,
    /// Log failures and return `Ok` (Python's behaviour: its notifier
    /// methods never raise because of delivery problems).
    LogAndSwallow,
}

type IdGenerator = Arc<dyn Fn() -> String + Send + Sync>;
type Clock = Arc<dyn Fn() -> NaiveDateTime + Send + Sync>;

struct Shared {
    transport: Transport,
    drivers: Vec<NotifierDriver>,
    serializer: DynSerializer,
    context_policy: ContextPolicy,
    error_policy: ErrorPolicy,
    id_generator: Option<IdGenerator>,
    clock: Option<Clock>,
}

/// Builds a [`Notifier`]. See [`Notifier::builder`].
#[must_use = "call build() to get a notifier"]
pub struct NotifierBuilder {
    transport: Transport,
    publisher_id: Option<String>,
    drivers: Vec<NotifierDriver>,
    topics: Vec<String>,
    retry: Retry,
    serializer: DynSerializer,
    context_policy: ContextPolicy,
    error_policy: ErrorPolicy,
    id_generator: Option<IdGenerator>,
    clock: Option<Clock>,
}

impl NotifierBuilder {
    /// The `publisher_id` field of every notification (e.g.
    /// `compute.host1`); unset means `null`.
    pub fn publisher_id(mut self, publisher_id: impl Into<String>) -> Self {
        self.publisher_id = Some(publisher_id.into());
        self
    }

    /// Adds a driver. Call it several times for several drivers; with no
    /// driver at all nothing is sent (oslo's default empty driver list).
    pub fn driver(mut self, driver: NotifierDriver) -> Self {
        self.drivers.push(driver);
        self
    }

    /// Replaces the driver list.
    pub fn drivers(mut self, drivers: impl IntoIterator<Item = NotifierDriver>) -> Self {
        self.drivers = drivers.into_iter().collect();
        self
    }

    /// The topics to publish to (default `["notifications"]`): each
    /// notification goes to `<topic>.<priority>` for every topic.
    pub fn topics<I, S>(mut self, topics: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.topics = topics.into_iter().map(Into::into).collect();
        self
    }

    /// Connection and publish retries (default: forever, oslo's `-1`).
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// The serializer for payloads and contexts (default: no-op).
    pub fn serializer(mut self, serializer: DynSerializer) -> Self {
        self.serializer = serializer;
        self
    }

    /// Which context is sent (default [`ContextPolicy::Redacted`]).
    pub fn context_policy(mut self, policy: ContextPolicy) -> Self {
        self.context_policy = policy;
        self
    }

    /// What to do when delivery fails (default [`ErrorPolicy::Return`]).
    pub fn error_policy(mut self, policy: ErrorPolicy) -> Self {
        self.error_policy = policy;
        self
    }

    /// Replaces the `message_id` generator (default: a fresh dashed uuid4).
    /// For reproducible output in tests and fixtures.
    pub fn message_id_generator(mut self, f: impl Fn() -> String + Send + Sync + 'static) -> Self {
        self.id_generator = Some(Arc::new(f));
        self
    }

    /// Replaces the clock giving the `timestamp` field (default: the current
    /// UTC time). For reproducible output in tests and fixtures.
    pub fn clock(mut self, f: impl Fn() -> NaiveDateTime + Send + Sync + 'static) -> Self {
        self.clock = Some(Arc::new(f));
        self
    }

    /// Builds the notifier.
    pub fn build(self) -> Notifier {
        Notifier {
            shared: Arc::new(Shared {
                transport: self.transport,
                drivers: self.drivers,
                serializer: self.serializer,
                context_policy: self.context_policy,
                error_policy: self.error_policy,
                id_generator: self.id_generator,
                clock: self.clock,
            }),
            publisher_id: self.publisher_id.map(Arc::from),
            retry: self.retry,
            topics: Arc::from(self.topics),
        }
    }
}

/// Sends notifications, as oslo.messaging's `Notifier`.
///
/// Cheap to clone; [`Notifier::prepare`] derives notifiers with another
/// publisher id, retry policy or topic list that share the drivers.
///
/// Each method (`audit`, `debug`, `info`, `warn`/`warning`, `error`,
/// `critical`, `sample`) takes `(ctxt, event_type, payload)` and builds the
/// message exactly as Python does, keys in this order:
///
/// | key | value |
/// | --- | --- |
/// | `message_id` | dashed uuid4 |
/// | `publisher_id` | the notifier's, or `null` |
/// | `event_type` | as given |
/// | `priority` | upper case (`INFO`) |
/// | `payload` | `serializer.serialize_entity(ctxt, payload)` |
/// | `timestamp` | UTC, `YYYY-MM-DD HH:MM:SS.ffffff` (fraction omitted at 0 µs) |
///
/// The context sent is chosen by the [`ContextPolicy`] and then passed
/// through `serializer.serialize_context`. The `messaging`/`messagingv2`
/// drivers send, for each topic `T`, to `Target(topic = "T.<priority>")`
/// on the transport's control exchange; the call returns once the driver
/// accepted every copy.
///
/// **Errors differ from Python on purpose**: Python logs and swallows
/// delivery failures; om still tries every driver and topic and logs each
/// failure, then returns the first error (typically
/// `MessageDeliveryFailure` when the retries ran out) so the caller
/// decides. Use [`ErrorPolicy::LogAndSwallow`] for Python's behaviour.
/// Payload serialization errors are always returned (Python raises them
/// too).
///
/// ```
/// # async fn demo() -> om_driver_api::om_core::Result<()> {
/// use om_notify::{Notifier, NotifierDriver};
/// use om_driver_api::{om_core::Context, Transport};
/// let transport = Transport::from_url("fake://").await?;
/// let notifier = Notifier::builder(transport)
///     .publisher_id("compute.host1")
///     .driver(NotifierDriver::MessagingV2)
///     .topics(["notifications"])
///     .build();
/// notifier.info(&Context::new(), "compute.instance.create.end", serde_json::json!({"id": 7})).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Notifier {
    shared: Arc<Shared>,
    publisher_id: Option<Arc<str>>,
    retry: Retry,
    topics: Arc<[String]>,
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier")
            .field("publisher_id", &self.publisher_id)
            .field("drivers", &self.driver_names())
            .field("topics", &self.topics)
            .field("retry", &self.retry)
            .field("transport", &self.shared.transport)
            .finish()
    }
}

/// Derives a [`Notifier`] sharing the drivers; see [`Notifier::prepare`].
#[must_use = "call build() to get the prepared notifier"]
pub struct Prepare<'a> {
    base: &'a Notifier,
    publisher_id: Option<Arc<str>>,
    retry: Retry,
    topics: Arc<[String]>,
}

impl Prepare<'_> {
    /// Overrides the publisher id.
    pub fn publisher_id(mut self, publisher_id: impl Into<String>) -> Self {
        self.publisher_id = Some(Arc::from(publisher_id.into()));
        self
    }

    /// Sends `publisher_id: null`.
    pub fn no_publisher_id(mut self) -> Self {
        self.publisher_id = None;
        self
    }

    /// Overrides the retry policy.
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// Overrides the topics (an om extension: Python's `prepare` cannot).
    pub fn topics<I, S>(mut self, topics: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.topics = topics
            .into_iter()
            .map(Into::into)
            .collect::<Vec<_>>()
            .into();
        self
    }

    /// The derived notifier.
    pub fn build(self) -> Notifier {
        Notifier {
            shared: self.base.shared.clone(),
            publisher_id: self.publisher_id,
            retry: self.retry,
            topics: self.topics,
        }
    }
}

impl Notifier {
    /// A builder for a notifier on `transport`: no publisher id, no driver,
    /// topics `["notifications"]`, retry forever, no-op serializer.
    pub fn builder(transport: Transport) -> NotifierBuilder {
        NotifierBuilder {
            transport,
            publisher_id: None,
            drivers: Vec::new(),
            topics: vec!["notifications".to_owned()],
            retry: Retry::Forever,
            serializer: Arc::new(NoOpSerializer),
            context_policy: ContextPolicy::default(),
            error_policy: ErrorPolicy::default(),
            id_generator: None,
            clock: None,
        }
    }

    /// Starts deriving a notifier that shares this one's drivers,
    /// transport and serializer, with overrides:
    /// `notifier.prepare().publisher_id("compute.host2").build()`.
    pub fn prepare(&self) -> Prepare<'_> {
        Prepare {
            base: self,
            publisher_id: self.publisher_id.clone(),
            retry: self.retry,
            topics: self.topics.clone(),
        }
    }

    /// The publisher id (`None`: sent as `null`).
    pub fn publisher_id(&self) -> Option<&str> {
        self.publisher_id.as_deref()
    }

    /// The topics notifications go to.
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    /// The retry policy.
    pub fn retry(&self) -> Retry {
        self.retry
    }

    /// The transport.
    pub fn transport(&self) -> &Transport {
        &self.shared.transport
    }

    /// The configured drivers.
    pub fn drivers(&self) -> &[NotifierDriver] {
        &self.shared.drivers
    }

    /// The names of the configured drivers.
    pub fn driver_names(&self) -> Vec<&'static str> {
        self.shared
            .drivers
            .iter()
            .map(NotifierDriver::name)
            .collect()
    }

    /// The sink of the first `test` driver (direct, or the routing
    /// configuration's), if any.
    pub fn test_sink(&self) -> Option<&TestSink> {
        self.shared
            .drivers
            .iter()
            .find_map(|d| match d {
                NotifierDriver::Test(s) => Some(s),
                _ => None,
            })
            .or_else(|| {
                self.shared.drivers.iter().find_map(|d| match d {
                    NotifierDriver::Routing(r) => Some(r.test_sink()),
                    _ => None,
                })
            })
    }

    /// oslo's `is_enabled()`: false only when the drivers are exactly
    /// `[noop]`. (An empty driver list counts as enabled, as in Python,
    /// although it sends nothing.)
    pub fn is_enabled(&self) -> bool {
        !matches!(self.shared.drivers.as_slice(), [NotifierDriver::Noop])
    }

    /// Sends an `AUDIT` notification.
    pub async fn audit(
        &self,
        ctxt: &Context,
        event_type: &str,
        payload: impl Serialize,
    ) -> Result<()> {
        self.notify(Priority::Audit, ctxt, event_type, payload)
            .await
    }

    /// Sends a `DEBUG` notification.
    pub async fn debug(
        &self,
        ctxt: &Context,
        event_type: &str,
        payload: impl Serialize,
    ) -> Result<()> {
        self.notify(Priority::Debug, ctxt, event_type, payload)
            .await
    }

    /// Sends an `INFO` notification.
    pub async fn info(
        &self,
        ctxt: &Context,
        event_type: &str,
        payload: impl Serialize,
    ) -> Result<()> {
        self.notify(Priority::Info, ctxt, event_type, payload).await
    }

    /// Sends a `WARN` notification.
    pub async fn warn(
        &self,
        ctxt: &Context,
        event_type: &str,
        payload: impl Serialize,
    ) -> Result<()> {
        self.notify(Priority::Warn, ctxt, event_type, payload).await
    }

    /// Alias of [`Notifier::warn`] (priority `WARN`).
    pub async fn warning(
        &self,
        ctxt: &Context,
        event_type: &str,
        payload: impl Serialize,
    ) -> Result<()> {
        self.notify(Priority::Warn, ctxt, event_type, payload).await
    }

    /// Sends an `ERROR` notification.
    pub async fn error(
        &self,
        ctxt: &Context,
        event_type: &str,
        payload: impl Serialize,
    ) -> Result<()> {
        self.notify(Priority::Error, ctxt, event_type, payload)
            .await
    }

    /// Sends a `CRITICAL` notification.
    pub async fn critical(
        &self,
        ctxt: &Context,
        event_type: &str,
        payload: impl Serialize,
    ) -> Result<()> {
        self.notify(Priority::Critical, ctxt, event_type, payload)
            .await
    }

    /// Sends a `SAMPLE` notification (high-frequency, small payloads).
    pub async fn sample(
        &self,
        ctxt: &Context,
        event_type: &str,
        payload: impl Serialize,
    ) -> Result<()> {
        self.notify(Priority::Sample, ctxt, event_type, payload)
            .await
    }

    /// Sends a notification at `priority`.
    pub async fn notify(
        &self,
        priority: Priority,
        ctxt: &Context,
        event_type: &str,
        payload: impl Serialize,
    ) -> Result<()> {
        let (ctxt_out, message) = self.build_message(priority, ctxt, event_type, payload)?;
        if self.shared.drivers.is_empty() {
            return Ok(());
        }
        let message_id = message
            .get("message_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let span = tracing::debug_span!(
            "om.notify.send",
            priority = priority.as_lower(),
            event_type,
            message_id,
            publisher_id = self.publisher_id.as_deref(),
        );
        self.deliver(priority, ctxt_out, message)
            .instrument(span)
            .await
    }

    /// Builds what would be sent: the serialized context and the message
    /// (`message_id`, `publisher_id`, `event_type`, `priority`, `payload`,
    /// `timestamp`), without sending anything.
    pub fn build_message(
        &self,
        priority: Priority,
        ctxt: &Context,
        event_type: &str,
        payload: impl Serialize,
    ) -> Result<(JsonObject, JsonObject)> {
        let shared = &*self.shared;
        let payload = serde_json::to_value(payload)?;
        let payload = shared.serializer.serialize_entity(ctxt, payload)?;
        let safe = shared.context_policy.apply(ctxt);
        let ctxt_out = shared.serializer.serialize_context(&safe)?.into_object();

        let message_id = match &shared.id_generator {
            Some(f) => f(),
            None => uuid_dashed(),
        };
        let now = match &shared.clock {
            Some(f) => f(),
            None => Utc::now().naive_utc(),
        };
        let mut message = JsonObject::with_capacity(6);
        message.insert("message_id".into(), Value::String(message_id));
        message.insert(
            "publisher_id".into(),
            self.publisher_id
                .as_deref()
                .map_or(Value::Null, |p| Value::String(p.to_owned())),
        );
        message.insert("event_type".into(), Value::String(event_type.to_owned()));
        message.insert(
            "priority".into(),
            Value::String(priority.as_upper().to_owned()),
        );
        message.insert("payload".into(), payload);
        message.insert("timestamp".into(), Value::String(format_timestamp(now)));
        Ok((ctxt_out, message))
    }

    async fn deliver(
        &self,
        priority: Priority,
        ctxt: JsonObject,
        message: JsonObject,
    ) -> Result<()> {
        let (mut ctxt, mut message) = (ctxt, message);
        let mut first_error: Option<Error> = None;
        let drivers = self.shared.drivers.len();
        for (i, driver) in self.shared.drivers.iter().enumerate() {
            // The last driver may have the message itself, not a copy.
            let last = i + 1 == drivers;
            let res = match driver {
                NotifierDriver::MessagingV2 | NotifierDriver::Messaging => {
                    let format = if matches!(driver, NotifierDriver::MessagingV2) {
                        Format::V2
                    } else {
                        Format::V1
                    };
                    let c = copy_unless_last(&mut ctxt, last);
                    let m = copy_unless_last(&mut message, last);
                    self.send_transport(format, priority, c, m).await
                }
                NotifierDriver::Log => {
                    log_notification(priority, &message);
                    Ok(())
                }
                NotifierDriver::Noop => Ok(()),
                NotifierDriver::Test(sink) => {
                    self.record(sink, priority, &ctxt, &message);
                    Ok(())
                }
                NotifierDriver::Routing(cfg) => self.route(cfg, priority, &ctxt, &message).await,
            };
            if let Err(e) = res {
                first_error.get_or_insert(e);
            }
        }
        match (first_error, self.shared.error_policy) {
            (Some(e), ErrorPolicy::Return) => Err(e),
            _ => Ok(()),
        }
    }

    async fn route(
        &self,
        cfg: &RoutingConfig,
        priority: Priority,
        ctxt: &JsonObject,
        message: &JsonObject,
    ) -> Result<()> {
        let event_type = message
            .get("event_type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut first_error = None;
        for target in cfg.drivers_for(event_type, priority) {
            tracing::debug!(event_type, driver = target.name(), "routing notification");
            let res = match target {
                RouteDriver::MessagingV2 | RouteDriver::Messaging => {
                    let format = if matches!(target, RouteDriver::MessagingV2) {
                        Format::V2
                    } else {
                        Format::V1
                    };
                    self.send_transport(format, priority, ctxt.clone(), message.clone())
                        .await
                }
                RouteDriver::Log => {
                    log_notification(priority, message);
                    Ok(())
                }
                RouteDriver::Noop => Ok(()),
                RouteDriver::Test => {
                    self.record(cfg.test_sink(), priority, ctxt, message);
                    Ok(())
                }
            };
            if let Err(e) = res {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn record(&self, sink: &TestSink, priority: Priority, ctxt: &JsonObject, message: &JsonObject) {
        sink.push(SentNotification {
            ctxt: Context(ctxt.clone()),
            message: message.clone(),
            priority,
            retry: self.retry,
            topics: self.topics.to_vec(),
        });
    }

    /// The `messaging` / `messagingv2` drivers: one copy per topic, every
    /// topic tried even when one fails; the first failure is returned.
    async fn send_transport(
        &self,
        format: Format,
        priority: Priority,
        mut ctxt: JsonObject,
        mut message: JsonObject,
    ) -> Result<()> {
        let driver = self.shared.transport.driver();
        let mut first_error = None;
        let topics = self.topics.len();
        for (i, topic) in self.topics.iter().enumerate() {
            let target = Target::new(format!("{topic}.{}", priority.as_lower()));
            let last = i + 1 == topics;
            let notification =
                Notification::new(target, copy_unless_last(&mut message, last), format)
                    .with_context(copy_unless_last(&mut ctxt, last))
                    .with_retry(self.retry);
            if let Err(e) = driver.send_notification(notification).await {
                tracing::error!(
                    topic = topic.as_str(),
                    priority = priority.as_lower(),
                    error = %e,
                    error_class = e.oslo_name(),
                    "could not send notification"
                );
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// `value` itself for the last of several users (it is not needed
/// afterwards, and is left empty), a copy for the others.
fn copy_unless_last(value: &mut JsonObject, last: bool) -> JsonObject {
    if last {
        std::mem::take(value)
    } else {
        value.clone()
    }
}

/// Key fragments whose values the `log` driver masks (oslo.utils'
/// `_SANITIZE_KEYS`, matched case-insensitively as substrings of the key).
const SECRET_KEY_FRAGMENTS: &[&str] = &[
    "adminpass",
    "admin_pass",
    "password",
    "admin_password",
    "auth_token",
    "new_pass",
    "auth_password",
    "secret_uuid",
    "secret",
    "sys_pswd",
    "token",
    "configdrive",
    "chappassword",
    "encrypted_key",
    "private_key",
    "fernetkey",
    "sslkey",
    "passphrase",
    "cephclusterfsid",
    "octaviaheartbeatkey",
    "rabbitcookie",
    "cephmanilaclientkey",
    "pacemakerremoteauthkey",
    "designaterndckey",
    "cephadminkey",
    "heatauthencryptionkey",
    "cephclientkey",
    "keystonecredential",
    "barbicansimplecryptokek",
    "cephrgwkey",
    "swifthashsuffix",
    "migrationsshkey",
    "cephmdskey",
    "cephmonkey",
    "chapsecret",
];

/// Masks the values of secret-looking keys with `***`, recursively through
/// objects and lists (as `oslo_utils.strutils.mask_dict_password` does for
/// keys; its pattern-based masking of secrets inside free text is not
/// reproduced).
pub(crate) fn mask_secrets(obj: &JsonObject) -> JsonObject {
    obj.iter()
        .map(|(k, v)| {
            let v = match v {
                Value::Object(inner) => Value::Object(mask_secrets(inner)),
                other => {
                    let lower = k.to_lowercase();
                    if SECRET_KEY_FRAGMENTS.iter().any(|s| lower.contains(s)) {
                        Value::String("***".into())
                    } else {
                        mask_nested(other)
                    }
                }
            };
            (k.clone(), v)
        })
        .collect()
}

fn mask_nested(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(mask_secrets(o)),
        Value::Array(items) => Value::Array(items.iter().map(mask_nested).collect()),
        other => other.clone(),
    }
}

/// The `log` driver.
fn log_notification(priority: Priority, message: &JsonObject) {
    let event_type = message
        .get("event_type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let text = match to_python_json_string(&mask_secrets(message)) {
        Ok(t) => t,
        Err(e) => format!("<unserializable notification: {e}>"),
    };
    let p = priority.as_lower();
    const TARGET: &str = "oslo.messaging.notification";
    match priority {
        Priority::Debug => tracing::debug!(target: TARGET, event_type, priority = p, "{text}"),
        Priority::Info | Priority::Audit | Priority::Sample => {
            tracing::info!(target: TARGET, event_type, priority = p, "{text}")
        }
        Priority::Warn => tracing::warn!(target: TARGET, event_type, priority = p, "{text}"),
        Priority::Error | Priority::Critical => {
            tracing::error!(target: TARGET, event_type, priority = p, "{text}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_like_mask_dict_password() {
        let m = json!({"user": "a", "Admin_Password": "x", "nested": {"auth_token": "t", "n": 1},
                       "list": [{"password": "p"}, 2], "db_secret_x": 5});
        let masked = mask_secrets(m.as_object().expect("object"));
        assert_eq!(
            Value::Object(masked),
            json!({"user": "a", "Admin_Password": "***", "nested": {"auth_token": "***", "n": 1},
                   "list": [{"password": "***"}, 2], "db_secret_x": "***"})
        );
    }

    #[test]
    fn driver_names_round_trip() {
        for n in ["messagingv2", "messaging", "log", "routing", "noop", "test"] {
            assert_eq!(n.parse::<NotifierDriver>().expect("known").name(), n);
        }
        assert_eq!(
            "nope".parse::<NotifierDriver>().unwrap_err().oslo_name(),
            "ConfigurationError"
        );
    }

    #[test]
    fn context_policies() {
        let c = Context::new()
            .with("user", "u")
            .with("auth_token", "secret");
        assert_eq!(
            ContextPolicy::Redacted.apply(&c).get("auth_token"),
            Some(&Value::Null)
        );
        assert_eq!(ContextPolicy::Redacted.apply(&c).get_str("user"), Some("u"));
        assert!(matches!(ContextPolicy::AsGiven.apply(&c), Cow::Borrowed(b) if *b == c));
        assert!(ContextPolicy::Empty.apply(&c).is_empty());
        // Nothing to redact: the context is sent as it is, not copied.
        let no_token = Context::new().with("user", "u");
        assert!(
            matches!(ContextPolicy::Redacted.apply(&no_token), Cow::Borrowed(b) if *b == no_token)
        );
    }
}
