//! The Kafka driver: notifications out through one producer per transport,
//! notifications in through one consumer per listener.

use crate::codec;
use crate::listener::{self, KafkaListener, Shared, ThreadSettings};
use crate::options::{self, AutoOffsetReset, Endpoint, KafkaOptions};
use om_driver_api::om_core::{Error, Priority, Result, Target};
use om_driver_api::{
    Capabilities, Driver, DriverConfig, ListenOptions, Listener, Notification, ReplyStream, Retry,
    RpcRequest,
};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseRecord, DeliveryResult, FutureProducer, FutureRecord, Producer as _, ProducerContext,
    ThreadedProducer,
};
use rdkafka::util::Timeout;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tracing::Instrument;

/// The driver name.
pub const DRIVER_NAME: &str = "kafka";

/// What `send` and `listen` answer: Kafka carries notifications only.
pub const RPC_NOT_SUPPORTED: &str = "RPC (call, cast and RPC servers): the Kafka driver carries notifications only; use a separate RPC transport (for example rabbit://) for RPC and kafka:// for notifications (see om-config)";

/// How long the producer's final flush may take at cleanup.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// Time limit of topic creation.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);

/// librdkafka context of the producer and the admin client: logging only.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LogContext;

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        listener::forward_log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", error = %error, "{reason}");
    }
}

/// librdkafka context of the producer with `wait_for_delivery = false`:
/// logging, and the delivery reports nobody waits for, where a lost record
/// is logged (it can no longer be reported to the sender).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct QueuedContext;

impl ClientContext for QueuedContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        LogContext.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        LogContext.error(error, reason);
    }
}

impl ProducerContext for QueuedContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, record)) = result {
            tracing::error!(topic = %record.topic(), error = %describe(e),
                "a queued notification was not delivered and is lost");
        }
    }
}

/// The transport's producer, by `wait_for_delivery`.
#[derive(Clone)]
enum Producer {
    /// Every send waits for its delivery report.
    Waiting(FutureProducer<LogContext>),
    /// Sends return once queued; [`QueuedContext`] reads the reports on
    /// the producer's own thread, with no task per record.
    Queued(Arc<ThreadedProducer<QueuedContext>>),
}

impl Producer {
    fn flush(&self, timeout: Duration) -> rdkafka::error::KafkaResult<()> {
        match self {
            Producer::Waiting(p) => p.flush(Timeout::After(timeout)),
            Producer::Queued(p) => p.flush(Timeout::After(timeout)),
        }
    }
}

/// The Kafka driver. Open it through a transport URL (`kafka://host:port/`)
/// after [`crate::register`], or directly with [`KafkaDriver::new`].
pub struct KafkaDriver {
    options: KafkaOptions,
    endpoint: Endpoint,
    virtual_host: Option<String>,
    producer_config: ClientConfig,
    producer: Mutex<Option<Producer>>,
    admin: Mutex<Option<Arc<AdminClient<LogContext>>>>,
    listeners: Mutex<Vec<Weak<Shared>>>,
    closed: AtomicBool,
}

impl std::fmt::Debug for KafkaDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaDriver")
            .field("endpoint", &self.endpoint)
            .field("virtual_host", &self.virtual_host)
            .field("options", &self.options)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

use options::describe_error as describe;

impl KafkaDriver {
    /// Opens the driver: reads the options (configuration values with the
    /// URL's query on top) and checks that librdkafka accepts the resulting
    /// configuration. Connects lazily.
    ///
    /// Errors: [`Error::Configuration`] naming the option for an unknown
    /// option, a bad value, or a setting this build cannot honour (e.g.
    /// `security_protocol=SSL` without the `ssl` feature).
    pub fn new(config: DriverConfig) -> Result<Self> {
        let options = KafkaOptions::from_options(&config.effective_options())?;
        let endpoint = Endpoint::from_url(&config.url);
        let producer_config = options::producer_config(&options, &endpoint);
        options::validate(&producer_config, "producer")?;
        options::validate(
            &options::consumer_config(&options, &endpoint, &options.consumer_group),
            "consumer",
        )?;
        tracing::debug!(url = %config.url, ?options, "kafka driver opened");
        Ok(KafkaDriver {
            options,
            endpoint,
            virtual_host: config.url.virtual_host.clone(),
            producer_config,
            producer: Mutex::new(None),
            admin: Mutex::new(None),
            listeners: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        })
    }

    /// The options in effect.
    pub fn options(&self) -> &KafkaOptions {
        &self.options
    }

    /// The librdkafka properties of the producer (passwords shown as `****`).
    pub fn producer_properties(&self) -> std::collections::BTreeMap<String, String> {
        options::describe_config(&self.producer_config)
    }

    /// The librdkafka properties of a consumer in `group` (passwords shown
    /// as `****`).
    pub fn consumer_properties(&self, group: &str) -> std::collections::BTreeMap<String, String> {
        options::describe_config(&options::consumer_config(
            &self.options,
            &self.endpoint,
            group,
        ))
    }

    /// The Kafka topic a notification for `target_topic` (`<topic>.<priority>`)
    /// is published to (with the URL's virtual host appended).
    pub fn producer_topic(&self, target_topic: &str) -> String {
        codec::producer_topic(target_topic, self.virtual_host.as_deref())
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    fn producer(&self) -> Result<Producer> {
        let mut slot = lock(&self.producer);
        if let Some(p) = slot.as_ref() {
            return Ok(p.clone());
        }
        let config = &self.producer_config;
        let created = if self.options.wait_for_delivery {
            config
                .create_with_context(LogContext)
                .map(Producer::Waiting)
        } else {
            config
                .create_with_context(QueuedContext)
                .map(|p| Producer::Queued(Arc::new(p)))
        };
        let p = created.map_err(|e| {
            Error::transport(
                DRIVER_NAME,
                format!("cannot create the producer: {}", describe(&e)),
                false,
            )
        })?;
        *slot = Some(p.clone());
        Ok(p)
    }

    fn admin(&self) -> Result<Arc<AdminClient<LogContext>>> {
        let mut slot = lock(&self.admin);
        if let Some(a) = slot.as_ref() {
            return Ok(a.clone());
        }
        let a: AdminClient<LogContext> = options::admin_config(&self.options, &self.endpoint)
            .create_with_context(LogContext)
            .map_err(|e| {
                Error::transport(
                    DRIVER_NAME,
                    format!("cannot create the admin client: {}", describe(&e)),
                    false,
                )
            })?;
        let a = Arc::new(a);
        *slot = Some(a.clone());
        Ok(a)
    }

    /// Creates the topics (an existing one is fine). Failures are logged:
    /// the subscription still works once someone creates the topic.
    async fn create_topics(&self, topics: &[String]) {
        let admin = match self.admin() {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "cannot create topics");
                return;
            }
        };
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|t| {
                NewTopic::new(
                    t,
                    self.options.topic_partitions,
                    TopicReplication::Fixed(self.options.topic_replication_factor),
                )
            })
            .collect();
        let opts = AdminOptions::new()
            .operation_timeout(Some(Timeout::After(ADMIN_TIMEOUT)))
            .request_timeout(Some(Timeout::After(ADMIN_TIMEOUT)));
        match admin.create_topics(new.iter(), &opts).await {
            Ok(results) => {
                for r in results {
                    match r {
                        Ok(t) => tracing::debug!(topic = %t, "topic created"),
                        Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                        Err((t, code)) => {
                            tracing::warn!(topic = %t, error = %code, "cannot create the topic; waiting for it to appear")
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %describe(&e), "cannot create topics; waiting for them to appear")
            }
        }
    }

    async fn open_listener(
        &self,
        targets: Vec<(Target, Priority)>,
        pool: Option<String>,
        options: ListenOptions,
    ) -> Result<Box<dyn Listener>> {
        self.check_open()?;
        if targets.is_empty() {
            return Err(Error::ServerListen {
                target: "[]".into(),
                reason: "no target to listen to".into(),
            });
        }
        let mut topics: Vec<String> = Vec::new();
        for (target, priority) in &targets {
            let t = codec::listener_topic(target, *priority)?;
            if !topics.contains(&t) {
                topics.push(t);
            }
        }
        let group = match pool {
            Some(p) if !p.is_empty() => p,
            _ => self.options.consumer_group.clone(),
        };
        let listen_err = |reason: String| Error::ServerListen {
            target: topics.join(","),
            reason,
        };
        if self.options.create_topics {
            self.create_topics(&topics).await;
        }
        let config = options::consumer_config(&self.options, &self.endpoint, &group);
        let (ctx, ctl_rx) = listener::new_context(
            &group,
            self.options.auto_offset_reset,
            self.options.enable_auto_commit,
        );
        let consumer: BaseConsumer<listener::ListenerContext> = config
            .create_with_context(ctx)
            .map_err(|e| listen_err(format!("cannot create the consumer: {}", describe(&e))))?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&names)
            .map_err(|e| listen_err(format!("cannot subscribe: {}", describe(&e))))?;
        let capacity = options
            .prefetch
            .map(usize::from)
            .unwrap_or(self.options.max_poll_records as usize);
        let settings = ThreadSettings {
            poll_step: self.options.kafka_consumer_timeout,
            capacity,
            close_timeout: Duration::from_millis(u64::from(self.options.session_timeout_ms)) * 2
                + Duration::from_secs(10),
        };
        let listener = KafkaListener::start(consumer, ctl_rx, settings)?;
        {
            let mut all = lock(&self.listeners);
            all.retain(|w| w.strong_count() > 0);
            all.push(Arc::downgrade(&listener.shared()));
        }
        let wait = self.options.listener_join_timeout;
        if !wait.is_zero() {
            let started = std::time::Instant::now();
            if listener.wait_for_assignment(wait).await {
                tracing::info!(group = %group, topics = ?topics, elapsed = ?started.elapsed(), "listener joined its group");
            } else {
                tracing::warn!(group = %group, topics = ?topics, "no partition assignment within {wait:?}; the listener keeps trying");
            }
        }
        Ok(Box::new(listener))
    }
}

/// `wait_for_delivery = false`: hands the record to librdkafka and returns,
/// as Python's driver does; a full queue is waited out (bounded by
/// `retry`: each second of a full queue counts as one attempt). A record
/// lost later is logged by [`QueuedContext`], as it cannot be reported any
/// more.
async fn queue_only(
    producer: &ThreadedProducer<QueuedContext>,
    topic: &str,
    value: &[u8],
    retry: Retry,
) -> Result<()> {
    let mut full: u32 = 0;
    loop {
        let record: BaseRecord<'_, (), [u8]> = BaseRecord::to(topic).payload(value);
        match producer.send(record) {
            Ok(()) => {
                // Queueing never waits, so a task sending in a loop would
                // never yield to the others on its worker (a listener in
                // the same process, say): spend tokio's cooperative budget,
                // which yields once it is used up.
                tokio::task::coop::consume_budget().await;
                return Ok(());
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                // librdkafka's queue is full: let it drain, as Python's
                // driver does on BufferError.
                full += 1;
                if !retry.allows(full / 100) {
                    return Err(Error::MessageDeliveryFailure(format!(
                        "cannot queue a notification for Kafka topic {topic:?}: the producer queue stays full"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err((e, _)) => {
                return Err(Error::MessageDeliveryFailure(format!(
                    "cannot publish to Kafka topic {topic:?}: {}",
                    describe(&e)
                )))
            }
        }
    }
}

/// Whether a failed delivery may succeed when tried again.
fn retryable(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    match e.rdkafka_error_code() {
        Some(
            C::MessageSizeTooLarge
            | C::InvalidMessage
            | C::InvalidRecord
            | C::InvalidTopic
            | C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::SaslAuthenticationFailed
            | C::Authentication
            | C::UnsupportedCompressionType
            | C::Fatal,
        ) => false,
        Some(_) => true,
        None => !matches!(e, KafkaError::ClientConfig(..) | KafkaError::Canceled),
    }
}

impl Driver for KafkaDriver {
    fn name(&self) -> &str {
        DRIVER_NAME
    }

    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::none();
        c.notifications = true;
        c.notification_pools = true;
        c.retains_unconsumed_notifications =
            self.options.auto_offset_reset == AutoOffsetReset::Earliest;
        c
    }

    async fn send(&self, _request: RpcRequest) -> Result<Option<ReplyStream>> {
        Err(Error::NotSupported {
            driver: DRIVER_NAME.into(),
            what: RPC_NOT_SUPPORTED.into(),
        })
    }

    async fn send_notification(&self, notification: Notification) -> Result<()> {
        self.check_open()?;
        notification.target.validate_for_send(false)?;
        let target_topic = notification.target.topic.as_deref().unwrap_or_default();
        let topic = self.producer_topic(target_topic);
        let value = codec::encode_notification(
            &notification.message,
            &notification.ctxt,
            notification.format,
        )?;
        let span = tracing::debug_span!("kafka.notify", topic = %topic);
        let producer = match self.producer()? {
            Producer::Queued(p) => {
                return queue_only(&p, &topic, &value, notification.retry)
                    .instrument(span)
                    .await
            }
            Producer::Waiting(p) => p,
        };
        async {
            let mut failures: u32 = 0;
            loop {
                let record: FutureRecord<'_, (), [u8]> = FutureRecord::to(&topic).payload(&value);
                match producer.send(record, Timeout::Never).await {
                    Ok(delivery) => {
                        tracing::trace!(partition = delivery.partition, offset = delivery.offset, "delivered");
                        return Ok(());
                    }
                    Err((e, _)) => {
                        failures += 1;
                        if !retryable(&e) || !notification.retry.allows(failures) {
                            return Err(Error::MessageDeliveryFailure(format!(
                                "cannot publish to Kafka topic {topic:?}: {}",
                                describe(&e)
                            )));
                        }
                        let backoff = Duration::from_millis(500 * u64::from(failures.min(10)));
                        tracing::warn!(error = %describe(&e), attempt = failures, "publish failed; retrying in {backoff:?}");
                        tokio::time::sleep(backoff).await;
                        self.check_open()?;
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn listen(&self, _target: Target, _options: ListenOptions) -> Result<Box<dyn Listener>> {
        Err(Error::NotSupported {
            driver: DRIVER_NAME.into(),
            what: RPC_NOT_SUPPORTED.into(),
        })
    }

    async fn listen_for_notifications(
        &self,
        targets: Vec<(Target, Priority)>,
        pool: Option<String>,
        options: ListenOptions,
    ) -> Result<Box<dyn Listener>> {
        self.open_listener(targets, pool, options).await
    }

    async fn cleanup(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let listeners: Vec<Arc<Shared>> = lock(&self.listeners)
            .drain(..)
            .filter_map(|w| w.upgrade())
            .collect();
        for l in listeners {
            if let Some(done) = l.request_shutdown() {
                let _ = tokio::time::timeout(FLUSH_TIMEOUT, done).await;
            }
        }
        let producer = lock(&self.producer).take();
        if let Some(p) = producer {
            let flushed = tokio::task::spawn_blocking(move || p.flush(FLUSH_TIMEOUT)).await;
            match flushed {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %describe(&e), "producer flush failed at cleanup")
                }
                Err(e) => tracing::warn!(error = %e, "producer flush task failed"),
            }
        }
        lock(&self.admin).take();
    }
}
