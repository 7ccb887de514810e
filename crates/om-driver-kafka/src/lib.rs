//! # om-driver-kafka
//!
//! The `kafka://` driver of om: notifications over Apache Kafka (or any
//! broker speaking its protocol), on [rdkafka] with a statically built
//! librdkafka, wire-compatible with Python oslo.messaging 18.3.1's Kafka
//! driver. Like oslo.messaging, it carries **notifications only**.
//!
//! ```no_run
//! # async fn demo() -> om_driver_api::om_core::Result<()> {
//! om_driver_kafka::register();
//! let transport = om_driver_api::Transport::from_url("kafka://127.0.0.1:9092/").await?;
//! assert_eq!(transport.driver_name(), "kafka");
//! # Ok(()) }
//! ```
//!
//! ## Transport URL
//!
//! `kafka://[user:pass@]host:port[,host2:port2...]/[virtual_host][?option=value...]`
//!
//! * The hosts become `bootstrap.servers` (IPv6 literals bracketed). A host
//!   without a port gets 9092 (Python writes `host:None`, which cannot
//!   work); a URL without hosts means `localhost:9092`.
//! * User and password of the first host that has a user are the SASL
//!   credentials (used with `security_protocol` `SASL_PLAINTEXT` or
//!   `SASL_SSL`). They never appear in logs, errors or `Debug` output.
//! * Query parameters override `[oslo_messaging_kafka]` options.
//!
//! ## Options
//!
//! [`KafkaOptions`] holds the `[oslo_messaging_kafka]` options with their
//! oslo names and defaults (`kafka_max_fetch_bytes`,
//! `kafka_consumer_timeout`, `consumer_group`, `producer_batch_timeout`,
//! `producer_batch_size`, `compression_codec`, `enable_auto_commit`,
//! `max_poll_records`, `security_protocol`, `sasl_mechanism`, `ssl_cafile`,
//! `ssl_client_cert_file`, `ssl_client_key_file`, `ssl_client_key_password`),
//! mapped onto the same librdkafka properties as Python does
//! (`wire-kafka.md` §3.3, §4.2). `pool_size`, `conn_pool_min_size` and
//! `conn_pool_ttl`, which older oslo.messaging releases had, are checked
//! and ignored. om adds `auto_offset_reset`, `session_timeout_ms`,
//! `heartbeat_interval_ms`, `metadata_refresh_interval_ms`,
//! `create_topics`, `topic_partitions`, `topic_replication_factor`,
//! `listener_join_timeout` (see below) and `max_message_bytes` (the
//! producer's `message.max.bytes`, 16 MiB instead of librdkafka's 1 MB, so
//! large notifications are limited by the broker only) and
//! `wait_for_delivery` (true; false returns from a send once the record is
//! queued, as Python does) and `producer_max_in_flight` (1: the producer's
//! `max.in.flight.requests.per.connection`, where librdkafka's default and
//! Python's is 1000000; records queued while a produce request is pending
//! then go together in the next one, see [`KafkaOptions`]). Any other key, or a value of the
//! wrong type or outside the choices, fails `Transport` creation with a
//! `Configuration` error naming the key. Two small departures from Python's
//! property list, without effect on the wire: `sasl.mechanism` is set only
//! for the SASL protocols (Python always sets it, which makes librdkafka log
//! a configuration warning), and empty `ssl_*` options are left out.
//!
//! Crate features: `zstd` (default) builds the zstd codec in;
//! `ssl` links the system OpenSSL for `security_protocol` `SSL` and
//! `SASL_SSL`. Without them those values are refused when the transport is
//! opened.
//!
//! ## Notifications on the wire
//!
//! * **Topic.** A notification for target topic `T` and priority `p` goes to
//!   the Kafka topic `T.p`, **plus `.<virtual host>`** when the URL has a
//!   non-empty virtual host (`kafka://h:9092/my_host` → `T.p.my_host`). A
//!   listener subscribes to `T.p` **without** the virtual host. This is
//!   oslo.messaging's behaviour, reproduced for compatibility: with a
//!   virtual host in the URL, a notifier and a listener using that same URL
//!   do not meet (and neither do Python's). Leave the virtual host out of
//!   Kafka URLs unless you need to talk to Python notifiers that have one.
//!   The target's exchange is ignored.
//! * **Record.** No key, no headers; the value is the 2.0 envelope
//!   `{"oslo.version": "2.0", "oslo.message": "<JSON>"}` whose inner object
//!   holds `message_id`, `publisher_id`, `event_type`, `priority`,
//!   `payload`, `timestamp` and the context nested as one object under
//!   `_context` (not flattened, no `_unique_id`). `messaging` (v1) and
//!   `messagingv2` notifiers produce byte-identical records, as in Python.
//!   The JSON is written like Python's `json.dumps`.
//! * **Sending** returns once the broker acknowledged the record (Python
//!   hands it to the client library and returns at once). librdkafka retries
//!   internally for up to `message.timeout.ms` (300 s); after that the
//!   notification's `Retry` decides whether om tries again.
//!
//! ## Listeners, pools and commits
//!
//! * Each listener has its own consumer, in the consumer group named after
//!   its pool, or `consumer_group` (default `oslo_messaging_consumer`)
//!   without a pool. Each group gets every record; the listeners of one
//!   group split the partitions between them.
//! * The context handed to the listener is exactly the record's `_context`
//!   object (no `client_timeout` key, unlike RabbitMQ). A record without
//!   `_context` gets an empty context (Python fails on it); a record that is
//!   not JSON is reported as an `Err` item of the listener and skipped.
//!   Kafka records have no `_unique_id`; the incoming message's `unique_id`
//!   is the record's coordinates `<topic>:<partition>:<offset>`, which stay
//!   the same when a record is delivered again.
//! * **Acknowledging commits, after handling.** A record's offset is
//!   committed only once the record was acknowledged, and only when every
//!   earlier record of its partition was acknowledged too, so nothing is
//!   committed before its endpoint returned. Python's driver commits each
//!   fetched batch *before* dispatching it (at-most-once: a crash while
//!   handling loses the batch); om is **at-least-once**: after a crash or a
//!   rebalance, records handed out but not acknowledged are delivered again.
//!   With `enable_auto_commit=false` (the default) om commits
//!   (synchronously, coalesced) right after acknowledgements; with `true`
//!   it stores the acknowledged offsets and librdkafka commits them in the
//!   background every `auto.commit.interval.ms` (5 s).
//! * **Requeue is not supported** (`Capabilities::requeue` is false, so
//!   `Transport::require_features(true)` fails with `NotSupported`, and a
//!   handle's `requeue()` returns `NotSupported`), as in oslo.messaging. A
//!   Kafka partition is a log: giving one record back would mean seeking the
//!   whole partition back (redelivering every later record as well) or
//!   re-publishing it (which every other pool would receive again). A record
//!   left unacknowledged is delivered again after the listener restarts.
//!
//! ## Where a new pool starts: `auto_offset_reset`
//!
//! Python starts a new consumer group at the end of each partition
//! (`latest`): notifications sent before a pool's first listener joined are
//! never seen by that pool. om keeps this as the default and adds the
//! option `auto_offset_reset = latest | earliest`; with `earliest` a new
//! pool starts at the beginning of what the topics retain, so notifications
//! sent before it existed are delivered too
//! (`Capabilities::retains_unconsumed_notifications` is true then).
//!
//! om also pins the start: when a partition is first assigned to a group
//! that has no committed offset for it, the listener resolves the start
//! offset (end or beginning) and commits it at once. "Latest" therefore
//! means "after the pool first joined", and a later rebalance (another
//! listener joining the pool) never skips records produced in between.
//! Opening a listener waits (up to `listener_join_timeout`, 30 s) until the
//! group assigned its partitions, so records sent after
//! `listen_for_notifications` returned are received.
//!
//! ## Why Python's listeners take so long to start, and om's do not
//!
//! Two delays add up with oslo.messaging's consumer settings:
//!
//! 1. **Group join.** Brokers such as tansu complete a new group's first
//!    join only after about half of the consumer's `session.timeout.ms`;
//!    with librdkafka's default of 45 s that is ~23 s. om sets
//!    `session_timeout_ms` = 6000 (the smallest value Kafka brokers accept
//!    by default) and `heartbeat_interval_ms` = 1000, so a join takes about
//!    3 s on tansu and less on Kafka.
//! 2. **Topics that do not exist yet.** A consumer that subscribes to a
//!    topic that does not exist only notices it at its next metadata
//!    refresh (`topic.metadata.refresh.interval.ms`, 300 s by default), so a
//!    Python listener started before the first notification was sent stays
//!    deaf for up to five minutes. om's listener creates the topics it
//!    subscribes to before subscribing (`create_topics`, default true, with
//!    `topic_partitions` and `topic_replication_factor`, default -1: the
//!    broker's defaults; an existing topic is left alone), and sets
//!    `metadata_refresh_interval_ms` = 5000 for topics created elsewhere and
//!    for broker restarts.
//!
//! ## Broker restarts
//!
//! librdkafka reconnects by itself; the producer holds records until the
//! broker is back (up to `message.timeout.ms`) and the listener's consumer
//! rejoins its group and resumes from the committed offsets. A broker that
//! lost its state (tansu with in-memory storage) comes back without topics
//! or offsets: producers re-create topics by auto-creation, and the
//! listener picks them up at the next metadata refresh and starts them
//! according to `auto_offset_reset`.
//!
//! Two librdkafka 2.12.1 problems show up only with such a state-losing
//! broker. First, tansu answers a fetch for a topic id it no longer knows
//! with a zero topic id and a leader hint, and librdkafka then looks the
//! hint's topic up by a name it never set (SIGSEGV in
//! `rd_kafka_metadata_update_op`). A consumer sends such a fetch when it
//! fetches with a topic id from before the restart: right after
//! reconnecting, or after a group rejoin that used cached metadata. So a
//! listener pauses its partitions while every broker is down, keeps them
//! paused through any rejoin, and resumes only once a metadata request
//! made after the outage lists every one of its topics (that answer
//! replaces the old topic ids; a topic reported missing keeps its old id
//! and leader in librdkafka for up to 30 s, so the listener stays paused
//! until the topic exists again). Deleting a topic under a running
//! listener on tansu leads to the same crash and is not guarded against. Second, a listener that rejoins
//! before its topics exist again may get an empty assignment and not
//! notice the topics when a producer re-creates them later (seen about one
//! restart in four). Re-create the topics right after such a restart (the
//! broker test does).
//!
//! ## RPC
//!
//! `send` (call, cast) and `listen` (RPC server) fail at once with
//! `Error::NotSupported` (Python raises `NotImplementedError`). Use a
//! separate RPC transport (for example `rabbit://`) for RPC and `kafka://`
//! for notifications (see om-config).
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod codec;
mod driver;
mod listener;
pub mod options;

pub use driver::{KafkaDriver, DRIVER_NAME, RPC_NOT_SUPPORTED};
pub use listener::KafkaListener;
pub use options::{AutoOffsetReset, CompressionCodec, KafkaOptions, SecurityProtocol};

use om_driver_api::om_core::Result;
use om_driver_api::{BoxFuture, DriverConfig, DriverFactory, DynDriver};
use std::sync::Arc;

/// Opens [`KafkaDriver`]s for `kafka://` URLs.
#[derive(Debug, Default, Clone, Copy)]
pub struct KafkaDriverFactory;

impl DriverFactory for KafkaDriverFactory {
    fn schemes(&self) -> &'static [&'static str] {
        &["kafka"]
    }

    fn open(&self, config: DriverConfig) -> BoxFuture<'static, Result<Arc<dyn DynDriver>>> {
        Box::pin(async move {
            let driver: Arc<dyn DynDriver> = Arc::new(KafkaDriver::new(config)?);
            Ok(driver)
        })
    }
}

/// Registers [`KafkaDriverFactory`] for the `kafka` scheme, so
/// `Transport::from_url("kafka://...")` opens a [`KafkaDriver`].
pub fn register() {
    om_driver_api::register_driver(Arc::new(KafkaDriverFactory));
}
