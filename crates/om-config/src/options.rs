//! Typed option groups, one struct per INI section, with oslo.messaging
//! 18.3.1's option names (the field names), types and defaults.
//!
//! oslo's `IntOpt` is `i64`, `FloatOpt` `f64`, `BoolOpt` `bool`, `StrOpt`
//! `String` (or `Option<String>` when oslo's default is `None`), `ListOpt`
//! and `MultiStrOpt` `Vec<String>`. Secret options use [`SecretString`] and
//! [`SecretUrl`], whose `Debug` and `Display` mask them.
//!
//! All groups are `serde` types: they serialize to and deserialize from a
//! map of option name to value, missing options taking their defaults.

use om_driver_api::om_core::{self, url::mask_password, TransportUrl};
use om_driver_api::Retry;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A secret string option (a key password, ...). `Debug` and `Display`
/// print `****` (or nothing when empty). Serializes as the plain string.
#[derive(Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        SecretString(s.into())
    }
    /// The secret itself; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            f.write_str("****")
        }
    }
}

/// A transport URL option, kept exactly as written (it is handed to
/// [`TransportBuilder`](om_driver_api::TransportBuilder) as is). `Debug` and
/// `Display` mask passwords (`user:****@host`). Serializes as the plain URL.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps a URL (not checked here; see [`SecretUrl::parse`]).
    pub fn new(url: impl Into<String>) -> Self {
        SecretUrl(url.into())
    }
    /// The URL with its passwords; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// The URL with passwords replaced by `****`.
    pub fn masked(&self) -> String {
        mask_password(&self.0)
    }
    /// Parses the URL with oslo's grammar.
    // The error type is om_core's, as for `TransportUrl::parse`; its size is
    // om_core's business.
    #[allow(clippy::result_large_err)]
    pub fn parse(&self) -> om_core::Result<TransportUrl> {
        TransportUrl::parse(&self.0)
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({:?})", self.masked())
    }
}

impl From<&str> for SecretUrl {
    fn from(s: &str) -> Self {
        SecretUrl::new(s)
    }
}

/// `[DEFAULT]`: the RPC transport and server/client settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DefaultOptions {
    /// URL of the RPC back end, and of notifications when
    /// [`NotificationOptions::transport_url`] is unset. Default `rabbit://`.
    pub transport_url: SecretUrl,
    /// Exchange used when a target has none. Default `openstack`.
    pub control_exchange: String,
    /// Default `call()` timeout in seconds. Default 60.
    pub rpc_response_timeout: i64,
    /// Worker pool size of each server and listener (old name
    /// `rpc_thread_pool_size`). Default 64.
    pub executor_thread_pool_size: i64,
    /// Add the `oslo_rpc_server_ping` endpoint to RPC servers. Default false.
    pub rpc_ping_enabled: bool,
}

impl Default for DefaultOptions {
    fn default() -> Self {
        DefaultOptions {
            transport_url: SecretUrl::new("rabbit://"),
            control_exchange: "openstack".into(),
            rpc_response_timeout: 60,
            executor_thread_pool_size: 64,
            rpc_ping_enabled: false,
        }
    }
}

impl DefaultOptions {
    /// [`DefaultOptions::rpc_response_timeout`] as a duration (negative
    /// values count as zero).
    pub fn response_timeout(&self) -> Duration {
        Duration::from_secs(u64::try_from(self.rpc_response_timeout).unwrap_or(0))
    }
}

/// `[oslo_messaging_notifications]`: notifier drivers, transport and topics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotificationOptions {
    /// Notification drivers (`messaging`, `messagingv2`, `routing`, `log`,
    /// `test`, `noop`); empty: notifications are not sent.
    pub driver: Vec<String>,
    /// URL for notifications; `None`: `[DEFAULT] transport_url`.
    pub transport_url: Option<SecretUrl>,
    /// Topics notifications are published to. Default `["notifications"]`.
    pub topics: Vec<String>,
    /// Retries of a failed send (0 none, -1 forever). Default -1.
    pub retry: i64,
    /// YAML file of the `routing` driver. Default empty.
    pub routing_config: String,
}

impl Default for NotificationOptions {
    fn default() -> Self {
        NotificationOptions {
            driver: Vec::new(),
            transport_url: None,
            topics: vec!["notifications".into()],
            retry: -1,
            routing_config: String::new(),
        }
    }
}

impl NotificationOptions {
    /// [`NotificationOptions::retry`] as a [`Retry`].
    pub fn retry_policy(&self) -> Retry {
        Retry::from_oslo(Some(self.retry))
    }

    /// Whether notifications are disabled: no driver, or only `noop`.
    pub fn disabled(&self) -> bool {
        self.driver.iter().all(|d| d == "noop")
    }
}

/// `[oslo_messaging_rabbit]`: the RabbitMQ driver (also `kombu://`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RabbitOptions {
    /// Durable topic exchanges and queues. Default false.
    pub amqp_durable_queues: bool,
    /// Auto-delete topic exchanges and queues. Default false.
    pub amqp_auto_delete: bool,
    /// Maximum pooled sending connections (≥ 1). Default 30.
    pub rpc_conn_pool_size: i64,
    /// Pool size below which idle connections are kept. Default 2.
    pub conn_pool_min_size: i64,
    /// Idle seconds after which a pooled connection is closed. Default 1200.
    pub conn_pool_ttl: i64,
    /// Use TLS. Default false.
    pub ssl: bool,
    /// TLS version (`TLSv1`, `SSLv23`, `TLSv1_1`, `TLSv1_2`, ...). Default empty.
    pub ssl_version: String,
    /// Client key file. Default empty.
    pub ssl_key_file: String,
    /// Client certificate file. Default empty.
    pub ssl_cert_file: String,
    /// CA bundle. Default empty.
    pub ssl_ca_file: String,
    /// Deprecated, no effect. Default true.
    pub ssl_enforce_hostname_verification: bool,
    /// Deprecated, no effect. Default false.
    pub ssl_enforce_fips_mode: bool,
    /// Delay before reconnecting after a consumer cancel (0–4.5 s). Default 1.0.
    pub kombu_reconnect_delay: f64,
    /// Random extra reconnect delay (≥ 0 s). Default 0.0.
    pub kombu_reconnect_splay: f64,
    /// Experimental body compression (`gzip`, `bz2`). Default unset.
    pub kombu_compression: Option<String>,
    /// How long a reply to a missing reply queue is retried (s) (old name
    /// `kombu_reconnect_timeout`). Default 60.
    pub kombu_missing_consumer_retry_timeout: i64,
    /// `round-robin` or `shuffle`. Default `round-robin`.
    pub kombu_failover_strategy: String,
    /// `PLAIN`, `AMQPLAIN`, `EXTERNAL` or `RABBIT-CR-DEMO`. Default `AMQPLAIN`.
    pub rabbit_login_method: String,
    /// First reconnect interval (≥ 1 s). Default 1.
    pub rabbit_retry_interval: i64,
    /// Reconnect interval increment (≥ 0 s). Default 2.
    pub rabbit_retry_backoff: i64,
    /// Maximum reconnect interval (≥ 1 s). Default 30.
    pub rabbit_interval_max: i64,
    /// Classic mirrored queues (`x-ha-policy: all`). Default false.
    pub rabbit_ha_queues: bool,
    /// Quorum topic/notification queues. Default false.
    pub rabbit_quorum_queue: bool,
    /// Quorum reply/fanout queues. Default false.
    pub rabbit_transient_quorum_queue: bool,
    /// `x-delivery-limit` (0: not set). Default 0.
    pub rabbit_quorum_delivery_limit: i64,
    /// `x-max-in-memory-length` (0: not set). Default 0.
    pub rabbit_quorum_max_memory_length: i64,
    /// `x-max-in-memory-bytes` (0: not set). Default 0.
    pub rabbit_quorum_max_memory_bytes: i64,
    /// `x-expires` of reply and fanout queues (≥ 0 s, 0: none). Default 1800.
    pub rabbit_transient_queues_ttl: i64,
    /// `basic.qos` prefetch count (0: unlimited). Default 0.
    pub rabbit_qos_prefetch_count: i64,
    /// AMQP heartbeat (s), 0 disables. Default 60.
    pub heartbeat_timeout_threshold: i64,
    /// Heartbeat checks per threshold period. Default 3.
    pub heartbeat_rate: i64,
    /// Deprecated; replies are always mandatory. Default true.
    pub direct_mandatory_flag: bool,
    /// Consumer argument `x-cancel-on-ha-failover`. Default false.
    pub enable_cancel_on_failover: bool,
    /// Stable reply and fanout queue names. Default false.
    pub use_queue_manager: bool,
    /// Host name used by the queue manager. Default: this machine's.
    pub hostname: String,
    /// Process name used by the queue manager. Default: this program's.
    pub processname: String,
    /// One stream queue per fanout topic. Default false.
    pub rabbit_stream_fanout: bool,
}

impl Default for RabbitOptions {
    fn default() -> Self {
        RabbitOptions {
            amqp_durable_queues: false,
            amqp_auto_delete: false,
            rpc_conn_pool_size: 30,
            conn_pool_min_size: 2,
            conn_pool_ttl: 1200,
            ssl: false,
            ssl_version: String::new(),
            ssl_key_file: String::new(),
            ssl_cert_file: String::new(),
            ssl_ca_file: String::new(),
            ssl_enforce_hostname_verification: true,
            ssl_enforce_fips_mode: false,
            kombu_reconnect_delay: 1.0,
            kombu_reconnect_splay: 0.0,
            kombu_compression: None,
            kombu_missing_consumer_retry_timeout: 60,
            kombu_failover_strategy: "round-robin".into(),
            rabbit_login_method: "AMQPLAIN".into(),
            rabbit_retry_interval: 1,
            rabbit_retry_backoff: 2,
            rabbit_interval_max: 30,
            rabbit_ha_queues: false,
            rabbit_quorum_queue: false,
            rabbit_transient_quorum_queue: false,
            rabbit_quorum_delivery_limit: 0,
            rabbit_quorum_max_memory_length: 0,
            rabbit_quorum_max_memory_bytes: 0,
            rabbit_transient_queues_ttl: 1800,
            rabbit_qos_prefetch_count: 0,
            heartbeat_timeout_threshold: 60,
            heartbeat_rate: 3,
            direct_mandatory_flag: true,
            enable_cancel_on_failover: false,
            use_queue_manager: false,
            hostname: default_hostname(),
            processname: default_processname(),
            rabbit_stream_fanout: false,
        }
    }
}

/// `[oslo_messaging_kafka]`: the Kafka driver (notifications only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KafkaOptions {
    /// Consumer `max.partition.fetch.bytes`. Default 1048576.
    pub kafka_max_fetch_bytes: i64,
    /// Maximum single poll wait (s). Default 1.0.
    pub kafka_consumer_timeout: f64,
    /// Consumer group when the listener has no pool. Default `oslo_messaging_consumer`.
    pub consumer_group: String,
    /// Producer linger (s). Default 0.0.
    pub producer_batch_timeout: f64,
    /// Producer batch size. Default 16384.
    pub producer_batch_size: i64,
    /// `none`, `gzip`, `snappy`, `lz4` or `zstd`. Default `none`.
    pub compression_codec: String,
    /// Commit offsets in the background. Default false.
    pub enable_auto_commit: bool,
    /// Records per consume call. Default 500.
    pub max_poll_records: i64,
    /// `PLAINTEXT`, `SASL_PLAINTEXT`, `SSL` or `SASL_SSL`. Default `PLAINTEXT`.
    pub security_protocol: String,
    /// SASL mechanism. Default `PLAIN`.
    pub sasl_mechanism: String,
    /// CA certificate (PEM). Default empty.
    pub ssl_cafile: String,
    /// Client certificate (PEM). Default empty.
    pub ssl_client_cert_file: String,
    /// Client key (PEM). Default empty.
    pub ssl_client_key_file: String,
    /// Client key password. Default empty.
    pub ssl_client_key_password: SecretString,
}

impl Default for KafkaOptions {
    fn default() -> Self {
        KafkaOptions {
            kafka_max_fetch_bytes: 1_048_576,
            kafka_consumer_timeout: 1.0,
            consumer_group: "oslo_messaging_consumer".into(),
            producer_batch_timeout: 0.0,
            producer_batch_size: 16384,
            compression_codec: "none".into(),
            enable_auto_commit: false,
            max_poll_records: 500,
            security_protocol: "PLAINTEXT".into(),
            sasl_mechanism: "PLAIN".into(),
            ssl_cafile: String::new(),
            ssl_client_cert_file: String::new(),
            ssl_client_key_file: String::new(),
            ssl_client_key_password: SecretString::default(),
        }
    }
}

/// `[oslo_messaging_amqp]`: the AMQP 1.0 driver (14.9.3's options; the old
/// section name `[amqp1]` is accepted with a warning).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AmqpOptions {
    /// AMQP container id. Default: generated.
    pub container_name: Option<String>,
    /// Connection idle timeout (s), 0 disables. Default 0.
    pub idle_timeout: i64,
    /// Dump frames to stdout. Default false.
    pub trace: bool,
    /// Use TLS. Default false.
    pub ssl: bool,
    /// CA certificate (PEM). Default empty.
    pub ssl_ca_file: String,
    /// Client certificate (PEM). Default empty.
    pub ssl_cert_file: String,
    /// Client key (PEM). Default empty.
    pub ssl_key_file: String,
    /// Client key password. Default unset.
    pub ssl_key_password: Option<SecretString>,
    /// Verify the certificate against the virtual host. Default false.
    pub ssl_verify_vhost: bool,
    /// Space separated SASL mechanisms. Default empty.
    pub sasl_mechanisms: String,
    /// Cyrus SASL configuration directory. Default empty.
    pub sasl_config_dir: String,
    /// Cyrus SASL configuration name. Default empty.
    pub sasl_config_name: String,
    /// Realm added to user names without `@`. Default empty.
    pub sasl_default_realm: String,
    /// First reconnect delay (≥ 1 s). Default 1.
    pub connection_retry_interval: i64,
    /// Reconnect delay multiplier (≥ 0). Default 2.
    pub connection_retry_backoff: i64,
    /// Maximum reconnect delay (≥ 1 s). Default 30.
    pub connection_retry_interval_max: i64,
    /// Delay before re-opening a failed link (≥ 1 s). Default 10.
    pub link_retry_delay: i64,
    /// Re-send attempts for replies (≥ -1). Default 0.
    pub default_reply_retry: i64,
    /// Reply delivery deadline (≥ 5 s). Default 30.
    pub default_reply_timeout: i64,
    /// RPC send deadline (≥ 5 s). Default 30.
    pub default_send_timeout: i64,
    /// Notification send deadline (≥ 5 s). Default 30.
    pub default_notify_timeout: i64,
    /// Idle sender link purge period (≥ 1 s). Default 600.
    pub default_sender_link_timeout: i64,
    /// `legacy`, `routable` or `dynamic`. Default `dynamic`.
    pub addressing_mode: String,
    /// Put the virtual host into addresses. Default true.
    pub pseudo_vhost: bool,
    /// Legacy prefix, to a specific server. Default `exclusive`.
    pub server_request_prefix: String,
    /// Legacy prefix, fanout. Default `broadcast`.
    pub broadcast_prefix: String,
    /// Legacy prefix, any server of a group. Default `unicast`.
    pub group_request_prefix: String,
    /// Routable RPC prefix. Default `openstack.org/om/rpc`.
    pub rpc_address_prefix: String,
    /// Routable notification prefix. Default `openstack.org/om/notify`.
    pub notify_address_prefix: String,
    /// Routable fanout tag. Default `multicast`.
    pub multicast_address: String,
    /// Routable single-server tag. Default `unicast`.
    pub unicast_address: String,
    /// Routable any-server tag. Default `anycast`.
    pub anycast_address: String,
    /// Exchange of routable notification addresses. Default unset.
    pub default_notification_exchange: Option<String>,
    /// Exchange of routable RPC addresses. Default unset.
    pub default_rpc_exchange: Option<String>,
    /// Credit window of the reply link (≥ 1). Default 200.
    pub reply_link_credit: i64,
    /// Credit window of each RPC server link (≥ 1). Default 100.
    pub rpc_server_credit: i64,
    /// Credit window of each notification link (≥ 1). Default 100.
    pub notify_server_credit: i64,
    /// Message kinds sent pre-settled. Default `rpc-cast`, `rpc-reply`.
    pub pre_settled: Vec<String>,
}

impl Default for AmqpOptions {
    fn default() -> Self {
        AmqpOptions {
            container_name: None,
            idle_timeout: 0,
            trace: false,
            ssl: false,
            ssl_ca_file: String::new(),
            ssl_cert_file: String::new(),
            ssl_key_file: String::new(),
            ssl_key_password: None,
            ssl_verify_vhost: false,
            sasl_mechanisms: String::new(),
            sasl_config_dir: String::new(),
            sasl_config_name: String::new(),
            sasl_default_realm: String::new(),
            connection_retry_interval: 1,
            connection_retry_backoff: 2,
            connection_retry_interval_max: 30,
            link_retry_delay: 10,
            default_reply_retry: 0,
            default_reply_timeout: 30,
            default_send_timeout: 30,
            default_notify_timeout: 30,
            default_sender_link_timeout: 600,
            addressing_mode: "dynamic".into(),
            pseudo_vhost: true,
            server_request_prefix: "exclusive".into(),
            broadcast_prefix: "broadcast".into(),
            group_request_prefix: "unicast".into(),
            rpc_address_prefix: "openstack.org/om/rpc".into(),
            notify_address_prefix: "openstack.org/om/notify".into(),
            multicast_address: "multicast".into(),
            unicast_address: "unicast".into(),
            anycast_address: "anycast".into(),
            default_notification_exchange: None,
            default_rpc_exchange: None,
            reply_link_credit: 200,
            rpc_server_credit: 100,
            notify_server_credit: 100,
            pre_settled: vec!["rpc-cast".into(), "rpc-reply".into()],
        }
    }
}

/// `[oslo_messaging_metrics]`: client-side RPC metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsOptions {
    /// Send metrics. Default false.
    pub metrics_enabled: bool,
    /// Buffer size. Default 1000.
    pub metrics_buffer_size: i64,
    /// Collector socket. Default `/var/tmp/metrics_collector.sock`.
    pub metrics_socket_file: String,
    /// Process name reported. Default empty.
    pub metrics_process_name: String,
    /// Seconds to wait for the metrics thread to stop. Default 10.
    pub metrics_thread_stop_timeout: i64,
}

impl Default for MetricsOptions {
    fn default() -> Self {
        MetricsOptions {
            metrics_enabled: false,
            metrics_buffer_size: 1000,
            metrics_socket_file: "/var/tmp/metrics_collector.sock".into(),
            metrics_process_name: String::new(),
            metrics_thread_stop_timeout: 10,
        }
    }
}

/// `[oslo_messaging_tracing]`: OpenTelemetry spans (18.3.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TracingOptions {
    /// Emit spans. Default false.
    pub tracing_enabled: bool,
    /// Service name of spans. Default `openstack`.
    pub tracing_service_name: String,
    /// Exporter endpoint. Default `http://localhost:4318`.
    pub otel_exporter_otlp_endpoint: String,
    /// `http/protobuf` or `grpc`. Default `http/protobuf`.
    pub otlp_protocol: String,
    /// No TLS verification for gRPC. Default false.
    pub insecure: bool,
}

impl Default for TracingOptions {
    fn default() -> Self {
        TracingOptions {
            tracing_enabled: false,
            tracing_service_name: "openstack".into(),
            otel_exporter_otlp_endpoint: "http://localhost:4318".into(),
            otlp_protocol: "http/protobuf".into(),
            insecure: false,
        }
    }
}

/// The machine's host name, as Python's `socket.gethostname()`: the
/// kernel's on Linux, else `$HOSTNAME`/`$COMPUTERNAME`, else `localhost`.
pub fn default_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .or_else(|| std::env::var("COMPUTERNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The program's file name, as Python's `os.path.basename(sys.argv[0])`.
pub fn default_processname() -> String {
    std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default()
}
