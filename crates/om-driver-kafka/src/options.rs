//! `[oslo_messaging_kafka]` options, typed, and their mapping onto
//! librdkafka properties.

use om_driver_api::om_core::url::Secret;
use om_driver_api::om_core::{Error, Result, TransportUrl};
use rdkafka::ClientConfig;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The option group name, used in error messages.
pub const GROUP: &str = "oslo_messaging_kafka";

/// Every option name the driver accepts, in documentation order.
pub const KNOWN_OPTIONS: &[&str] = &[
    // oslo.messaging 18.3.1 [oslo_messaging_kafka]
    "kafka_max_fetch_bytes",
    "kafka_consumer_timeout",
    "consumer_group",
    "producer_batch_timeout",
    "producer_batch_size",
    "compression_codec",
    "enable_auto_commit",
    "max_poll_records",
    "security_protocol",
    "sasl_mechanism",
    "ssl_cafile",
    "ssl_client_cert_file",
    "ssl_client_key_file",
    "ssl_client_key_password",
    // removed from oslo.messaging, still found in old configuration files:
    // checked, then ignored
    "pool_size",
    "conn_pool_min_size",
    "conn_pool_ttl",
    // om's own
    "auto_offset_reset",
    "session_timeout_ms",
    "heartbeat_interval_ms",
    "metadata_refresh_interval_ms",
    "create_topics",
    "topic_partitions",
    "topic_replication_factor",
    "listener_join_timeout",
    "max_message_bytes",
    "wait_for_delivery",
    "producer_max_in_flight",
];

/// `compression_codec`: how the producer compresses record batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompressionCodec {
    /// No compression (`none`, the default).
    #[default]
    None,
    /// `gzip`.
    Gzip,
    /// `snappy`.
    Snappy,
    /// `lz4`.
    Lz4,
    /// `zstd` (needs the crate feature `zstd`, on by default).
    Zstd,
}

impl CompressionCodec {
    /// The option value, which is also librdkafka's `compression.codec` value.
    pub fn as_str(self) -> &'static str {
        match self {
            CompressionCodec::None => "none",
            CompressionCodec::Gzip => "gzip",
            CompressionCodec::Snappy => "snappy",
            CompressionCodec::Lz4 => "lz4",
            CompressionCodec::Zstd => "zstd",
        }
    }
}

/// `security_protocol`: how the client talks to the brokers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityProtocol {
    /// Plain TCP (the default).
    #[default]
    Plaintext,
    /// SASL authentication over plain TCP.
    SaslPlaintext,
    /// TLS (needs the crate feature `ssl`).
    Ssl,
    /// SASL authentication over TLS (needs the crate feature `ssl`).
    SaslSsl,
}

impl SecurityProtocol {
    /// The option value, which is also librdkafka's `security.protocol` value.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether the protocol authenticates with SASL.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// `auto_offset_reset` (om only): where a consumer group starts reading a
/// partition for which it has no committed offset yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoOffsetReset {
    /// At the end: only records produced after the group first joined are
    /// received (oslo.messaging's behaviour, the default).
    #[default]
    Latest,
    /// At the beginning: a new pool also receives what was produced before
    /// it first joined, as far as the topic still retains it.
    Earliest,
}

impl AutoOffsetReset {
    /// The option value, which is also librdkafka's `auto.offset.reset` value.
    pub fn as_str(self) -> &'static str {
        match self {
            AutoOffsetReset::Latest => "latest",
            AutoOffsetReset::Earliest => "earliest",
        }
    }
}

/// The `[oslo_messaging_kafka]` options, with oslo.messaging 18.3.1's
/// names and defaults, plus a few om-only options (marked *om*) that make
/// listeners join promptly and let a new pool start at the beginning.
///
/// Build it with [`KafkaOptions::from_options`] from the strings of a
/// configuration file and the transport URL's query (what
/// `DriverConfig::effective_options()` returns), or start from
/// [`KafkaOptions::default`] and change fields.
///
/// `Debug` never shows `ssl_client_key_password`.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct KafkaOptions {
    /// `kafka_max_fetch_bytes` (1048576): consumer `max.partition.fetch.bytes`.
    pub kafka_max_fetch_bytes: u32,
    /// `kafka_consumer_timeout` (1.0 s): longest single poll of a listener.
    /// om polls in steps of at most 100 ms, so that stopping and committing
    /// stay prompt; a smaller value makes the steps smaller.
    pub kafka_consumer_timeout: Duration,
    /// `consumer_group` (`oslo_messaging_consumer`): the group id of a
    /// listener that has no pool.
    pub consumer_group: String,
    /// `producer_batch_timeout` (0.0 s): producer `linger.ms`.
    pub producer_batch_timeout: Duration,
    /// `producer_batch_size` (16384): producer `batch.num.messages`.
    pub producer_batch_size: u32,
    /// `compression_codec` (`none`): producer `compression.codec`.
    pub compression_codec: CompressionCodec,
    /// `enable_auto_commit` (false): commit acknowledged offsets in the
    /// background every `auto.commit.interval.ms` (5 s) instead of right
    /// after each acknowledgement.
    pub enable_auto_commit: bool,
    /// `max_poll_records` (500): how many received records a listener
    /// buffers ahead of its consumer (unless `ListenOptions::prefetch` says
    /// otherwise).
    pub max_poll_records: u32,
    /// `security_protocol` (`PLAINTEXT`).
    pub security_protocol: SecurityProtocol,
    /// `sasl_mechanism` (`PLAIN`): `sasl.mechanism`, used when the protocol
    /// is `SASL_PLAINTEXT` or `SASL_SSL`.
    pub sasl_mechanism: String,
    /// `ssl_cafile` (empty): `ssl.ca.location`.
    pub ssl_cafile: String,
    /// `ssl_client_cert_file` (empty): `ssl.certificate.location`.
    pub ssl_client_cert_file: String,
    /// `ssl_client_key_file` (empty): `ssl.key.location`.
    pub ssl_client_key_file: String,
    /// `ssl_client_key_password` (empty): `ssl.key.password`.
    pub ssl_client_key_password: Option<Secret>,
    /// *om* `auto_offset_reset` (`latest`): where a new consumer group
    /// starts.
    pub auto_offset_reset: AutoOffsetReset,
    /// *om* `session_timeout_ms` (6000): consumer `session.timeout.ms`.
    /// librdkafka's default (45000) makes tansu hold a new group's first
    /// join for ~23 s; 6000 is the smallest value Kafka brokers accept by
    /// default (`group.min.session.timeout.ms`).
    pub session_timeout_ms: u32,
    /// *om* `heartbeat_interval_ms` (1000): consumer `heartbeat.interval.ms`.
    pub heartbeat_interval_ms: u32,
    /// *om* `metadata_refresh_interval_ms` (5000): `topic.metadata.refresh.interval.ms`
    /// of consumers and the producer (librdkafka's default is 300000, so a
    /// topic created after subscribing is seen only minutes later).
    pub metadata_refresh_interval_ms: u32,
    /// *om* `create_topics` (true): a listener creates the topics it
    /// subscribes to before subscribing (an existing topic is left alone).
    pub create_topics: bool,
    /// *om* `topic_partitions` (-1: the broker's default): partitions of the
    /// topics a listener creates.
    pub topic_partitions: i32,
    /// *om* `topic_replication_factor` (-1: the broker's default).
    pub topic_replication_factor: i32,
    /// *om* `listener_join_timeout` (30.0 s): how long opening a listener
    /// waits for its first partition assignment. On timeout the listener is
    /// returned anyway (it keeps trying) and a warning is logged; 0 returns
    /// at once.
    pub listener_join_timeout: Duration,
    /// *om* `max_message_bytes` (16777216): the producer's
    /// `message.max.bytes`, the largest record it sends. librdkafka's
    /// default (1000000, which Python keeps) refuses notifications of about
    /// 1 MB and more; the broker has its own limit (Kafka's
    /// `message.max.bytes` / the topic's `max.message.bytes`, 1 MiB by
    /// default), which still applies.
    pub max_message_bytes: u32,
    /// *om* `wait_for_delivery` (true): a notification's send returns once
    /// the broker acknowledged the record (its delivery report), and a
    /// record that cannot be delivered is an error of the send. `false`
    /// does what Python's driver does: the send returns once librdkafka
    /// has queued the record, and a record lost after that is only logged
    /// (error). Far higher throughput for one sender, weaker guarantee.
    /// Such a send never waits, so it yields to the runtime whenever
    /// tokio's cooperative budget is spent.
    pub wait_for_delivery: bool,
    /// *om* `producer_max_in_flight` (1): the producer's
    /// `max.in.flight.requests.per.connection`, how many produce requests
    /// it sends to a broker before the first is answered. librdkafka's
    /// default (1000000, which Python keeps) sends every record as a
    /// request of its own while earlier ones are pending when
    /// `producer_batch_timeout` is 0; with 1, records queued while a
    /// request is answered go together in the next one, so batches grow
    /// with the load and add no delay when idle. It also keeps records in
    /// order when a request is retried.
    pub producer_max_in_flight: u32,
}

impl Default for KafkaOptions {
    fn default() -> Self {
        KafkaOptions {
            kafka_max_fetch_bytes: 1024 * 1024,
            kafka_consumer_timeout: Duration::from_secs(1),
            consumer_group: "oslo_messaging_consumer".into(),
            producer_batch_timeout: Duration::ZERO,
            producer_batch_size: 16384,
            compression_codec: CompressionCodec::None,
            enable_auto_commit: false,
            max_poll_records: 500,
            security_protocol: SecurityProtocol::Plaintext,
            sasl_mechanism: "PLAIN".into(),
            ssl_cafile: String::new(),
            ssl_client_cert_file: String::new(),
            ssl_client_key_file: String::new(),
            ssl_client_key_password: None,
            auto_offset_reset: AutoOffsetReset::Latest,
            session_timeout_ms: 6000,
            heartbeat_interval_ms: 1000,
            metadata_refresh_interval_ms: 5000,
            create_topics: true,
            topic_partitions: -1,
            topic_replication_factor: -1,
            listener_join_timeout: Duration::from_secs(30),
            max_message_bytes: 16 * 1024 * 1024,
            wait_for_delivery: true,
            producer_max_in_flight: 1,
        }
    }
}

impl fmt::Debug for KafkaOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaOptions")
            .field("kafka_max_fetch_bytes", &self.kafka_max_fetch_bytes)
            .field("kafka_consumer_timeout", &self.kafka_consumer_timeout)
            .field("consumer_group", &self.consumer_group)
            .field("producer_batch_timeout", &self.producer_batch_timeout)
            .field("producer_batch_size", &self.producer_batch_size)
            .field("compression_codec", &self.compression_codec)
            .field("enable_auto_commit", &self.enable_auto_commit)
            .field("max_poll_records", &self.max_poll_records)
            .field("security_protocol", &self.security_protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("ssl_cafile", &self.ssl_cafile)
            .field("ssl_client_cert_file", &self.ssl_client_cert_file)
            .field("ssl_client_key_file", &self.ssl_client_key_file)
            .field(
                "ssl_client_key_password",
                &self.ssl_client_key_password.as_ref().map(|_| "****"),
            )
            .field("auto_offset_reset", &self.auto_offset_reset)
            .field("session_timeout_ms", &self.session_timeout_ms)
            .field("heartbeat_interval_ms", &self.heartbeat_interval_ms)
            .field(
                "metadata_refresh_interval_ms",
                &self.metadata_refresh_interval_ms,
            )
            .field("create_topics", &self.create_topics)
            .field("topic_partitions", &self.topic_partitions)
            .field("topic_replication_factor", &self.topic_replication_factor)
            .field("listener_join_timeout", &self.listener_join_timeout)
            .field("wait_for_delivery", &self.wait_for_delivery)
            .field("producer_max_in_flight", &self.producer_max_in_flight)
            .field("max_message_bytes", &self.max_message_bytes)
            .finish()
    }
}

fn bad(key: &str, msg: impl fmt::Display) -> Error {
    Error::Configuration(format!("[{GROUP}] {key}: {msg}"))
}

fn parse_int(key: &str, raw: &str, min: i64, max: i64) -> Result<i64> {
    let v: i64 = raw
        .trim()
        .parse()
        .map_err(|_| bad(key, format!("expected an integer, got {raw:?}")))?;
    if v < min || v > max {
        return Err(bad(key, format!("{v} is out of range {min}..={max}")));
    }
    Ok(v)
}

fn parse_u32(key: &str, raw: &str, min: u32) -> Result<u32> {
    let v = parse_int(key, raw, i64::from(min), i64::from(i32::MAX))?;
    u32::try_from(v).map_err(|_| bad(key, format!("{v} is out of range")))
}

fn parse_seconds(key: &str, raw: &str) -> Result<Duration> {
    let v: f64 = raw
        .trim()
        .parse()
        .map_err(|_| bad(key, format!("expected a number of seconds, got {raw:?}")))?;
    if !v.is_finite() || !(0.0..=1.0e9).contains(&v) {
        return Err(bad(
            key,
            format!("{raw:?} is not a non-negative number of seconds"),
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

/// Parses a boolean the way oslo.config does (`true`/`false`, `yes`/`no`,
/// `on`/`off`, `1`/`0`, any case).
fn parse_bool(key: &str, raw: &str) -> Result<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "on" | "yes" => Ok(true),
        "false" | "0" | "off" | "no" => Ok(false),
        _ => Err(bad(
            key,
            format!("expected a boolean (true/false, yes/no, on/off, 1/0), got {raw:?}"),
        )),
    }
}

fn parse_choice<T: Copy>(key: &str, raw: &str, choices: &[(&str, T)]) -> Result<T> {
    for (name, value) in choices {
        if *name == raw {
            return Ok(*value);
        }
    }
    let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
    // oslo.config's wording for a bad choice.
    Err(bad(
        key,
        format!("Valid values are [{}], but found {raw:?}", names.join(", ")),
    ))
}

impl KafkaOptions {
    /// Reads the options from strings (configuration file values with the
    /// transport URL's query applied on top). Every key must be one of
    /// [`KNOWN_OPTIONS`]; a bad key or value is a
    /// [`Error::Configuration`] naming it.
    pub fn from_options(options: &BTreeMap<String, String>) -> Result<Self> {
        let mut o = KafkaOptions::default();
        for (key, raw) in options {
            let k = key.as_str();
            match k {
                "kafka_max_fetch_bytes" => o.kafka_max_fetch_bytes = parse_u32(k, raw, 1)?,
                "kafka_consumer_timeout" => o.kafka_consumer_timeout = parse_seconds(k, raw)?,
                "consumer_group" => {
                    if raw.is_empty() {
                        return Err(bad(k, "the group id must not be empty"));
                    }
                    o.consumer_group = raw.clone();
                }
                "producer_batch_timeout" => o.producer_batch_timeout = parse_seconds(k, raw)?,
                "producer_batch_size" => o.producer_batch_size = parse_u32(k, raw, 1)?,
                "compression_codec" => {
                    o.compression_codec = parse_choice(
                        k,
                        raw,
                        &[
                            ("none", CompressionCodec::None),
                            ("gzip", CompressionCodec::Gzip),
                            ("snappy", CompressionCodec::Snappy),
                            ("lz4", CompressionCodec::Lz4),
                            ("zstd", CompressionCodec::Zstd),
                        ],
                    )?
                }
                "enable_auto_commit" => o.enable_auto_commit = parse_bool(k, raw)?,
                "max_poll_records" => o.max_poll_records = parse_u32(k, raw, 1)?,
                "security_protocol" => {
                    o.security_protocol = parse_choice(
                        k,
                        raw,
                        &[
                            ("PLAINTEXT", SecurityProtocol::Plaintext),
                            ("SASL_PLAINTEXT", SecurityProtocol::SaslPlaintext),
                            ("SSL", SecurityProtocol::Ssl),
                            ("SASL_SSL", SecurityProtocol::SaslSsl),
                        ],
                    )?
                }
                "sasl_mechanism" => o.sasl_mechanism = raw.clone(),
                "ssl_cafile" => o.ssl_cafile = raw.clone(),
                "ssl_client_cert_file" => o.ssl_client_cert_file = raw.clone(),
                "ssl_client_key_file" => o.ssl_client_key_file = raw.clone(),
                "ssl_client_key_password" => {
                    o.ssl_client_key_password =
                        (!raw.is_empty()).then(|| Secret::new(raw.as_str()));
                }
                "pool_size" | "conn_pool_min_size" | "conn_pool_ttl" => {
                    parse_int(k, raw, 0, i64::from(i32::MAX))?;
                    tracing::debug!(
                        option = k,
                        "ignoring an option oslo.messaging no longer has"
                    );
                }
                "auto_offset_reset" => {
                    o.auto_offset_reset = parse_choice(
                        k,
                        raw,
                        &[
                            ("latest", AutoOffsetReset::Latest),
                            ("earliest", AutoOffsetReset::Earliest),
                        ],
                    )?
                }
                "session_timeout_ms" => o.session_timeout_ms = parse_u32(k, raw, 1)?,
                "heartbeat_interval_ms" => o.heartbeat_interval_ms = parse_u32(k, raw, 1)?,
                "metadata_refresh_interval_ms" => {
                    o.metadata_refresh_interval_ms = parse_u32(k, raw, 10)?
                }
                "create_topics" => o.create_topics = parse_bool(k, raw)?,
                "topic_partitions" => {
                    o.topic_partitions = parse_int(k, raw, -1, i64::from(i32::MAX))? as i32;
                    if o.topic_partitions == 0 {
                        return Err(bad(k, "must be -1 (the broker's default) or at least 1"));
                    }
                }
                "topic_replication_factor" => {
                    o.topic_replication_factor = parse_int(k, raw, -1, i64::from(i16::MAX))? as i32;
                    if o.topic_replication_factor == 0 {
                        return Err(bad(k, "must be -1 (the broker's default) or at least 1"));
                    }
                }
                "listener_join_timeout" => o.listener_join_timeout = parse_seconds(k, raw)?,
                "max_message_bytes" => o.max_message_bytes = parse_u32(k, raw, 1000)?,
                "wait_for_delivery" => o.wait_for_delivery = parse_bool(k, raw)?,
                "producer_max_in_flight" => {
                    o.producer_max_in_flight = parse_int(k, raw, 1, 1_000_000)? as u32
                }
                _ => {
                    return Err(Error::Configuration(format!(
                        "[{GROUP}] unknown option {key:?}; the kafka driver knows: {}",
                        KNOWN_OPTIONS.join(", ")
                    )))
                }
            }
        }
        if o.heartbeat_interval_ms >= o.session_timeout_ms {
            return Err(bad(
                "heartbeat_interval_ms",
                format!(
                    "{} must be lower than session_timeout_ms ({})",
                    o.heartbeat_interval_ms, o.session_timeout_ms
                ),
            ));
        }
        Ok(o)
    }
}

/// Connection settings taken from the transport URL.
#[derive(Clone)]
pub(crate) struct Endpoint {
    /// `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// SASL user, from the first host that has one.
    pub username: Option<String>,
    /// SASL password of that host.
    pub password: Option<Secret>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "****"))
            .finish()
    }
}

/// The default Kafka port, used for hosts given without one (Python renders
/// those as `host:None`, which cannot work).
pub const DEFAULT_PORT: u16 = 9092;

impl Endpoint {
    pub(crate) fn from_url(url: &TransportUrl) -> Self {
        let mut servers = Vec::with_capacity(url.hosts.len());
        for h in &url.hosts {
            let port = h.port.unwrap_or(DEFAULT_PORT);
            if h.hostname.contains(':') {
                servers.push(format!("[{}]:{port}", h.hostname));
            } else {
                servers.push(format!("{}:{port}", h.hostname));
            }
        }
        if servers.is_empty() {
            servers.push(format!("localhost:{DEFAULT_PORT}"));
        }
        let first = url.hosts.iter().find(|h| h.username.is_some());
        if let Some(f) = first {
            if url
                .hosts
                .iter()
                .any(|h| h.username.is_some() && h.username != f.username)
            {
                tracing::warn!("Different transport usernames detected; using the first one");
            }
        }
        Endpoint {
            bootstrap_servers: servers.join(","),
            username: first.and_then(|h| h.username.clone()),
            password: first.and_then(|h| h.password.clone()),
        }
    }
}

/// Settings shared by producers, consumers and admin clients.
fn common_config(opts: &KafkaOptions, ep: &Endpoint) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &ep.bootstrap_servers);
    c.set("security.protocol", opts.security_protocol.as_str());
    if opts.security_protocol.uses_sasl() {
        c.set("sasl.mechanism", &opts.sasl_mechanism);
        if let Some(u) = &ep.username {
            c.set("sasl.username", u);
        }
        if let Some(p) = &ep.password {
            c.set("sasl.password", p.expose());
        }
    }
    for (prop, value) in [
        ("ssl.ca.location", &opts.ssl_cafile),
        ("ssl.certificate.location", &opts.ssl_client_cert_file),
        ("ssl.key.location", &opts.ssl_client_key_file),
    ] {
        if !value.is_empty() {
            c.set(prop, value);
        }
    }
    if let Some(p) = &opts.ssl_client_key_password {
        c.set("ssl.key.password", p.expose());
    }
    c.set(
        "topic.metadata.refresh.interval.ms",
        opts.metadata_refresh_interval_ms.to_string(),
    );
    c
}

/// Formats a float the way Python's `str(float)` does for simple values
/// (`0.0`, `5.0`, `2.5`).
fn python_float(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1.0e15 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

/// The producer's librdkafka configuration.
pub(crate) fn producer_config(opts: &KafkaOptions, ep: &Endpoint) -> ClientConfig {
    let mut c = common_config(opts, ep);
    c.set(
        "linger.ms",
        python_float(opts.producer_batch_timeout.as_secs_f64() * 1000.0),
    );
    c.set("batch.num.messages", opts.producer_batch_size.to_string());
    c.set("compression.codec", opts.compression_codec.as_str());
    c.set("message.max.bytes", opts.max_message_bytes.to_string());
    c.set(
        "max.in.flight.requests.per.connection",
        opts.producer_max_in_flight.to_string(),
    );
    c
}

/// A consumer's librdkafka configuration for `group`.
pub(crate) fn consumer_config(opts: &KafkaOptions, ep: &Endpoint, group: &str) -> ClientConfig {
    let mut c = common_config(opts, ep);
    c.set("group.id", group);
    c.set(
        "max.partition.fetch.bytes",
        opts.kafka_max_fetch_bytes.to_string(),
    );
    c.set("enable.partition.eof", "false");
    c.set("auto.offset.reset", opts.auto_offset_reset.as_str());
    // om stores only acknowledged offsets; with enable_auto_commit the
    // library commits the stored ones periodically, otherwise om commits.
    c.set(
        "enable.auto.commit",
        if opts.enable_auto_commit {
            "true"
        } else {
            "false"
        },
    );
    c.set("enable.auto.offset.store", "false");
    c.set("session.timeout.ms", opts.session_timeout_ms.to_string());
    c.set(
        "heartbeat.interval.ms",
        opts.heartbeat_interval_ms.to_string(),
    );
    c
}

/// The admin client's configuration (topic creation).
pub(crate) fn admin_config(opts: &KafkaOptions, ep: &Endpoint) -> ClientConfig {
    common_config(opts, ep)
}

/// Checks that librdkafka accepts a configuration (unknown property, bad
/// value, feature not built in), without creating a client.
pub(crate) fn validate(config: &ClientConfig, what: &str) -> Result<()> {
    config.create_native_config().map(|_| ()).map_err(|e| {
        Error::Configuration(format!(
            "[{GROUP}] librdkafka rejected the {what} configuration: {}",
            describe_error(&e)
        ))
    })
}

/// Describes a librdkafka error without ever printing a configuration
/// value (rdkafka's own `Display` of a configuration error includes the
/// value, which may be a password).
pub(crate) fn describe_error(e: &rdkafka::error::KafkaError) -> String {
    match e {
        rdkafka::error::KafkaError::ClientConfig(_, desc, key, _) => {
            format!("{desc} (property {key})")
        }
        other => other.to_string(),
    }
}

/// The librdkafka properties om would pass, for inspection and tests, with
/// any password replaced by `****`.
pub fn describe_config(config: &ClientConfig) -> BTreeMap<String, String> {
    config
        .config_map()
        .into_iter()
        .map(|(k, v)| {
            let v = if k.contains("password") { "****" } else { v };
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn python_floats() {
        assert_eq!(python_float(0.0), "0.0");
        assert_eq!(python_float(5.0), "5.0");
        assert_eq!(python_float(2.5), "2.5");
    }

    #[test]
    fn bad_choice_names_the_key_and_choices() {
        let e = KafkaOptions::from_options(&map(&[("compression_codec", "brotli")])).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("compression_codec"), "{s}");
        assert!(
            s.contains("Valid values are [none, gzip, snappy, lz4, zstd], but found \"brotli\""),
            "{s}"
        );
    }

    #[test]
    fn endpoint_from_url() {
        let u: TransportUrl = "kafka://stack:stacksecret@localhost:9092,[::1]:1234,h3/my_host"
            .parse()
            .unwrap();
        let ep = Endpoint::from_url(&u);
        assert_eq!(ep.bootstrap_servers, "localhost:9092,[::1]:1234,h3:9092");
        assert_eq!(ep.username.as_deref(), Some("stack"));
        assert_eq!(
            ep.password.as_ref().map(Secret::expose),
            Some("stacksecret")
        );
        assert!(!format!("{ep:?}").contains("stacksecret"));
        let ep = Endpoint::from_url(&"kafka://".parse().unwrap());
        assert_eq!(ep.bootstrap_servers, "localhost:9092");
    }
}
