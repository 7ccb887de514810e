//! The option schema: every option om-config knows, with oslo.messaging
//! 18.3.1's group, name, type, default, range, choices and deprecated names
//! (the AMQP 1.0 group is 14.9.3's, the last release that had it).
//!
//! The typed groups in [`crate::options`] are views of this table; a unit
//! test checks that their `Default` impls agree with it.

/// The type of an option, as oslo.config's option classes.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum OptionKind {
    /// `StrOpt`.
    Str,
    /// `IntOpt`, with its inclusive bounds.
    Int {
        /// Smallest accepted value.
        min: Option<i64>,
        /// Largest accepted value.
        max: Option<i64>,
    },
    /// `FloatOpt`, with its inclusive bounds.
    Float {
        /// Smallest accepted value.
        min: Option<f64>,
        /// Largest accepted value.
        max: Option<f64>,
    },
    /// `BoolOpt`: `true/false`, `yes/no`, `on/off`, `1/0`, `t/f`, `y/n`
    /// (any case).
    Bool,
    /// `ListOpt`: comma-separated, items trimmed, optional surrounding `[...]`.
    List,
    /// `MultiStrOpt`: the option may be repeated; om also splits each value
    /// on commas.
    Multi,
    /// A `StrOpt` holding a transport URL (checked with oslo's URL grammar).
    Url,
}

/// The default of an option.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum OptionDefault {
    /// A value, written as it would be in a file.
    Text(&'static str),
    /// The values of a list or multi option.
    Values(&'static [&'static str]),
    /// No value (`None` in Python).
    Unset,
    /// The machine's host name (`socket.gethostname()`).
    Hostname,
    /// The program's file name (`os.path.basename(sys.argv[0])`).
    ProcessName,
}

/// One option.
#[derive(Debug, Clone, Copy)]
pub struct OptionSpec {
    /// The name in the file.
    pub name: &'static str,
    /// Its type and range.
    pub kind: OptionKind,
    /// Its default.
    pub default: OptionDefault,
    /// Allowed values (empty: any).
    pub choices: &'static [&'static str],
    /// Whether `choices` are compared ignoring case.
    pub choices_ignore_case: bool,
    /// Old names still accepted (with a warning).
    pub deprecated_names: &'static [&'static str],
    /// Whether the value is a secret (masked in renderings and errors).
    pub secret: bool,
    /// Set when oslo marks the option deprecated for removal: the reason.
    pub deprecated_for_removal: Option<&'static str>,
    /// One line of help.
    pub help: &'static str,
}

impl OptionSpec {
    const fn new(
        name: &'static str,
        kind: OptionKind,
        default: OptionDefault,
        help: &'static str,
    ) -> Self {
        OptionSpec {
            name,
            kind,
            default,
            choices: &[],
            choices_ignore_case: false,
            deprecated_names: &[],
            secret: false,
            deprecated_for_removal: None,
            help,
        }
    }
    const fn choices(mut self, choices: &'static [&'static str]) -> Self {
        self.choices = choices;
        self
    }
    const fn choices_ignore_case(mut self, choices: &'static [&'static str]) -> Self {
        self.choices = choices;
        self.choices_ignore_case = true;
        self
    }
    const fn deprecated_names(mut self, names: &'static [&'static str]) -> Self {
        self.deprecated_names = names;
        self
    }
    const fn secret(mut self) -> Self {
        self.secret = true;
        self
    }
    const fn deprecated_for_removal(mut self, reason: &'static str) -> Self {
        self.deprecated_for_removal = Some(reason);
        self
    }
}

/// One option group (INI section).
#[derive(Debug, Clone, Copy)]
pub struct GroupSpec {
    /// The section name, e.g. `oslo_messaging_rabbit`.
    pub name: &'static str,
    /// Old section names whose options are still accepted (with a warning).
    pub deprecated_groups: &'static [&'static str],
    /// The options, in rendering order.
    pub options: &'static [OptionSpec],
}

impl GroupSpec {
    /// The option called `name` (current name only).
    pub fn option(&self, name: &str) -> Option<&'static OptionSpec> {
        self.options.iter().find(|o| o.name == name)
    }

    /// The option whose deprecated name is `name`.
    pub fn option_by_deprecated_name(&self, name: &str) -> Option<&'static OptionSpec> {
        self.options
            .iter()
            .find(|o| o.deprecated_names.contains(&name))
    }
}

use OptionDefault::{Text, Unset, Values};

const fn int(min: Option<i64>) -> OptionKind {
    OptionKind::Int { min, max: None }
}
const INT: OptionKind = int(None);
const FLOAT: OptionKind = OptionKind::Float {
    min: None,
    max: None,
};
const STR: OptionKind = OptionKind::Str;
const BOOL: OptionKind = OptionKind::Bool;

/// `[DEFAULT]` section name.
pub const DEFAULT_GROUP: &str = "DEFAULT";
/// `[oslo_messaging_notifications]` section name.
pub const NOTIFICATIONS_GROUP: &str = "oslo_messaging_notifications";
/// `[oslo_messaging_rabbit]` section name.
pub const RABBIT_GROUP: &str = "oslo_messaging_rabbit";
/// `[oslo_messaging_kafka]` section name.
pub const KAFKA_GROUP: &str = "oslo_messaging_kafka";
/// `[oslo_messaging_amqp]` section name.
pub const AMQP_GROUP: &str = "oslo_messaging_amqp";
/// `[oslo_messaging_metrics]` section name.
pub const METRICS_GROUP: &str = "oslo_messaging_metrics";
/// `[oslo_messaging_tracing]` section name.
pub const TRACING_GROUP: &str = "oslo_messaging_tracing";

static DEFAULT_OPTS: [OptionSpec; 5] = [
    OptionSpec::new(
        "transport_url",
        OptionKind::Url,
        Text("rabbit://"),
        "URL of the RPC back end (and of notifications when [oslo_messaging_notifications] has none)",
    )
    .secret(),
    OptionSpec::new("control_exchange", STR, Text("openstack"), "exchange used when a target has none"),
    OptionSpec::new("rpc_response_timeout", INT, Text("60"), "default call() timeout in seconds"),
    OptionSpec::new(
        "executor_thread_pool_size",
        INT,
        Text("64"),
        "worker pool size of each RPC server and notification listener",
    )
    .deprecated_names(&["rpc_thread_pool_size"]),
    OptionSpec::new("rpc_ping_enabled", BOOL, Text("false"), "add the oslo_rpc_server_ping endpoint to RPC servers"),
];

static NOTIFICATION_OPTS: [OptionSpec; 5] = [
    OptionSpec::new(
        "driver",
        OptionKind::Multi,
        Values(&[]),
        "notification drivers: messaging, messagingv2, routing, log, test, noop",
    ),
    OptionSpec::new(
        "transport_url",
        OptionKind::Url,
        Unset,
        "URL for notifications; unset: [DEFAULT] transport_url",
    )
    .secret(),
    OptionSpec::new(
        "topics",
        OptionKind::List,
        Values(&["notifications"]),
        "topics notifications are published to",
    ),
    OptionSpec::new(
        "retry",
        INT,
        Text("-1"),
        "retries of a failed notification send (0 none, -1 forever)",
    ),
    OptionSpec::new(
        "routing_config",
        STR,
        Text(""),
        "YAML file of the routing notification driver",
    ),
];

static RABBIT_OPTS: [OptionSpec; 37] = [
    OptionSpec::new(
        "amqp_durable_queues",
        BOOL,
        Text("false"),
        "durable topic exchanges and queues (forced on by rabbit_quorum_queue)",
    ),
    OptionSpec::new(
        "amqp_auto_delete",
        BOOL,
        Text("false"),
        "auto-delete topic exchanges and queues",
    ),
    OptionSpec::new(
        "rpc_conn_pool_size",
        int(Some(1)),
        Text("30"),
        "maximum pooled sending connections",
    ),
    OptionSpec::new(
        "conn_pool_min_size",
        INT,
        Text("2"),
        "pool size below which idle connections are kept",
    ),
    OptionSpec::new(
        "conn_pool_ttl",
        INT,
        Text("1200"),
        "idle seconds after which a pooled connection is closed",
    ),
    OptionSpec::new("ssl", BOOL, Text("false"), "connect with TLS"),
    OptionSpec::new(
        "ssl_version",
        STR,
        Text(""),
        "TLS protocol version (TLSv1, SSLv23, TLSv1_1, TLSv1_2, ...)",
    )
    .choices_ignore_case(&[
        "", "tlsv1", "sslv23", "sslv2", "sslv3", "tlsv1_1", "tlsv1_2",
    ]),
    OptionSpec::new("ssl_key_file", STR, Text(""), "client private key (PEM)"),
    OptionSpec::new("ssl_cert_file", STR, Text(""), "client certificate (PEM)"),
    OptionSpec::new(
        "ssl_ca_file",
        STR,
        Text(""),
        "CA bundle the broker certificate is verified against",
    ),
    OptionSpec::new(
        "ssl_enforce_hostname_verification",
        BOOL,
        Text("true"),
        "verify the broker host name (no effect in 18.3.1)",
    )
    .deprecated_for_removal("Verification is always enabled now"),
    OptionSpec::new(
        "ssl_enforce_fips_mode",
        BOOL,
        Text("false"),
        "enforce OpenSSL FIPS mode (no effect)",
    )
    .deprecated_for_removal(
        "FIPS_mode_set API was removed in OpenSSL 3.0.0. This option has no effect now.",
    ),
    OptionSpec::new(
        "kombu_reconnect_delay",
        OptionKind::Float {
            min: Some(0.0),
            max: Some(4.5),
        },
        Text("1.0"),
        "seconds to wait before reconnecting after a consumer cancel notification",
    ),
    OptionSpec::new(
        "kombu_reconnect_splay",
        OptionKind::Float {
            min: Some(0.0),
            max: None,
        },
        Text("0.0"),
        "random extra seconds (0..splay) added when reconnecting",
    ),
    OptionSpec::new(
        "kombu_compression",
        STR,
        Unset,
        "experimental body compression (gzip, bz2)",
    ),
    OptionSpec::new(
        "kombu_missing_consumer_retry_timeout",
        INT,
        Text("60"),
        "seconds a server keeps retrying a reply whose reply queue is missing",
    )
    .deprecated_names(&["kombu_reconnect_timeout"]),
    OptionSpec::new(
        "kombu_failover_strategy",
        STR,
        Text("round-robin"),
        "how the next broker is chosen when several hosts are given",
    )
    .choices(&["round-robin", "shuffle"]),
    OptionSpec::new(
        "rabbit_login_method",
        STR,
        Text("AMQPLAIN"),
        "SASL login method",
    )
    .choices(&["PLAIN", "AMQPLAIN", "EXTERNAL", "RABBIT-CR-DEMO"]),
    OptionSpec::new(
        "rabbit_retry_interval",
        int(Some(1)),
        Text("1"),
        "first reconnect interval (s)",
    ),
    OptionSpec::new(
        "rabbit_retry_backoff",
        int(Some(0)),
        Text("2"),
        "reconnect interval increment per attempt (s)",
    ),
    OptionSpec::new(
        "rabbit_interval_max",
        int(Some(1)),
        Text("30"),
        "maximum reconnect interval (s)",
    ),
    OptionSpec::new(
        "rabbit_ha_queues",
        BOOL,
        Text("false"),
        "declare queues with x-ha-policy: all",
    ),
    OptionSpec::new(
        "rabbit_quorum_queue",
        BOOL,
        Text("false"),
        "topic and notification queues are quorum queues",
    ),
    OptionSpec::new(
        "rabbit_transient_quorum_queue",
        BOOL,
        Text("false"),
        "reply and fanout queues are quorum queues",
    ),
    OptionSpec::new(
        "rabbit_quorum_delivery_limit",
        INT,
        Text("0"),
        "x-delivery-limit of quorum queues (0: none)",
    ),
    OptionSpec::new(
        "rabbit_quorum_max_memory_length",
        INT,
        Text("0"),
        "x-max-in-memory-length of quorum queues (0: none)",
    ),
    OptionSpec::new(
        "rabbit_quorum_max_memory_bytes",
        INT,
        Text("0"),
        "x-max-in-memory-bytes of quorum queues (0: none)",
    ),
    OptionSpec::new(
        "rabbit_transient_queues_ttl",
        int(Some(0)),
        Text("1800"),
        "x-expires (s) of reply and fanout queues (0: none)",
    ),
    OptionSpec::new(
        "rabbit_qos_prefetch_count",
        INT,
        Text("0"),
        "basic.qos prefetch count (0: unlimited)",
    ),
    OptionSpec::new(
        "heartbeat_timeout_threshold",
        INT,
        Text("60"),
        "AMQP heartbeat (s); 0 disables",
    ),
    OptionSpec::new(
        "heartbeat_rate",
        INT,
        Text("3"),
        "heartbeat checks per threshold period",
    ),
    OptionSpec::new(
        "direct_mandatory_flag",
        BOOL,
        Text("true"),
        "publish replies with the mandatory flag",
    )
    .deprecated_for_removal("Mandatory flag no longer deactivable."),
    OptionSpec::new(
        "enable_cancel_on_failover",
        BOOL,
        Text("false"),
        "consumer argument x-cancel-on-ha-failover",
    ),
    OptionSpec::new(
        "use_queue_manager",
        BOOL,
        Text("false"),
        "stable reply and fanout queue names",
    ),
    OptionSpec::new(
        "hostname",
        STR,
        OptionDefault::Hostname,
        "host name used by the queue manager",
    ),
    OptionSpec::new(
        "processname",
        STR,
        OptionDefault::ProcessName,
        "process name used by the queue manager",
    ),
    OptionSpec::new(
        "rabbit_stream_fanout",
        BOOL,
        Text("false"),
        "one stream queue per fanout topic",
    ),
];

static KAFKA_OPTS: [OptionSpec; 14] = [
    OptionSpec::new(
        "kafka_max_fetch_bytes",
        INT,
        Text("1048576"),
        "consumer max.partition.fetch.bytes",
    ),
    OptionSpec::new(
        "kafka_consumer_timeout",
        FLOAT,
        Text("1.0"),
        "maximum single poll wait (s)",
    ),
    OptionSpec::new(
        "consumer_group",
        STR,
        Text("oslo_messaging_consumer"),
        "consumer group id when the listener has no pool",
    ),
    OptionSpec::new(
        "producer_batch_timeout",
        FLOAT,
        Text("0.0"),
        "producer linger (s)",
    ),
    OptionSpec::new(
        "producer_batch_size",
        INT,
        Text("16384"),
        "producer batch size",
    ),
    OptionSpec::new(
        "compression_codec",
        STR,
        Text("none"),
        "producer compression codec",
    )
    .choices(&["none", "gzip", "snappy", "lz4", "zstd"]),
    OptionSpec::new(
        "enable_auto_commit",
        BOOL,
        Text("false"),
        "commit offsets in the background",
    ),
    OptionSpec::new(
        "max_poll_records",
        INT,
        Text("500"),
        "records per consume call",
    ),
    OptionSpec::new(
        "security_protocol",
        STR,
        Text("PLAINTEXT"),
        "protocol used to talk to brokers",
    )
    .choices(&["PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL"]),
    OptionSpec::new("sasl_mechanism", STR, Text("PLAIN"), "SASL mechanism"),
    OptionSpec::new("ssl_cafile", STR, Text(""), "CA certificate (PEM)"),
    OptionSpec::new(
        "ssl_client_cert_file",
        STR,
        Text(""),
        "client certificate (PEM)",
    ),
    OptionSpec::new("ssl_client_key_file", STR, Text(""), "client key (PEM)"),
    OptionSpec::new(
        "ssl_client_key_password",
        STR,
        Text(""),
        "client key password",
    )
    .secret(),
];

static AMQP_OPTS: [OptionSpec; 38] = [
    OptionSpec::new(
        "container_name",
        STR,
        Unset,
        "AMQP container id (generated when unset)",
    ),
    OptionSpec::new(
        "idle_timeout",
        INT,
        Text("0"),
        "connection idle timeout (s), 0 disables",
    ),
    OptionSpec::new("trace", BOOL, Text("false"), "dump AMQP frames to stdout"),
    OptionSpec::new("ssl", BOOL, Text("false"), "use TLS"),
    OptionSpec::new(
        "ssl_ca_file",
        STR,
        Text(""),
        "CA certificate (PEM); enables TLS",
    ),
    OptionSpec::new(
        "ssl_cert_file",
        STR,
        Text(""),
        "client certificate (PEM); enables TLS",
    ),
    OptionSpec::new("ssl_key_file", STR, Text(""), "client key (PEM)"),
    OptionSpec::new("ssl_key_password", STR, Unset, "client key password").secret(),
    OptionSpec::new(
        "ssl_verify_vhost",
        BOOL,
        Text("false"),
        "verify the certificate against the virtual host name",
    ),
    OptionSpec::new(
        "sasl_mechanisms",
        STR,
        Text(""),
        "space separated acceptable SASL mechanisms",
    ),
    OptionSpec::new(
        "sasl_config_dir",
        STR,
        Text(""),
        "Cyrus SASL configuration directory",
    ),
    OptionSpec::new(
        "sasl_config_name",
        STR,
        Text(""),
        "Cyrus SASL configuration name",
    ),
    OptionSpec::new(
        "sasl_default_realm",
        STR,
        Text(""),
        "realm added to user names without @",
    ),
    OptionSpec::new(
        "connection_retry_interval",
        int(Some(1)),
        Text("1"),
        "first reconnect delay (s)",
    ),
    OptionSpec::new(
        "connection_retry_backoff",
        int(Some(0)),
        Text("2"),
        "reconnect delay multiplier",
    ),
    OptionSpec::new(
        "connection_retry_interval_max",
        int(Some(1)),
        Text("30"),
        "maximum reconnect delay (s)",
    ),
    OptionSpec::new(
        "link_retry_delay",
        int(Some(1)),
        Text("10"),
        "delay before re-opening a failed link (s)",
    ),
    OptionSpec::new(
        "default_reply_retry",
        int(Some(-1)),
        Text("0"),
        "re-send attempts for replies",
    ),
    OptionSpec::new(
        "default_reply_timeout",
        int(Some(5)),
        Text("30"),
        "reply delivery deadline (s)",
    ),
    OptionSpec::new(
        "default_send_timeout",
        int(Some(5)),
        Text("30"),
        "RPC send deadline (s)",
    ),
    OptionSpec::new(
        "default_notify_timeout",
        int(Some(5)),
        Text("30"),
        "notification send deadline (s)",
    ),
    OptionSpec::new(
        "default_sender_link_timeout",
        int(Some(1)),
        Text("600"),
        "idle sender link purge period (s)",
    ),
    OptionSpec::new(
        "addressing_mode",
        STR,
        Text("dynamic"),
        "address format: legacy, routable or dynamic",
    )
    .choices(&["legacy", "routable", "dynamic"]),
    OptionSpec::new(
        "pseudo_vhost",
        BOOL,
        Text("true"),
        "put the virtual host into addresses",
    ),
    OptionSpec::new(
        "server_request_prefix",
        STR,
        Text("exclusive"),
        "legacy prefix, to a specific server",
    ),
    OptionSpec::new(
        "broadcast_prefix",
        STR,
        Text("broadcast"),
        "legacy prefix, fanout",
    ),
    OptionSpec::new(
        "group_request_prefix",
        STR,
        Text("unicast"),
        "legacy prefix, any server of a group",
    ),
    OptionSpec::new(
        "rpc_address_prefix",
        STR,
        Text("openstack.org/om/rpc"),
        "routable RPC prefix",
    ),
    OptionSpec::new(
        "notify_address_prefix",
        STR,
        Text("openstack.org/om/notify"),
        "routable notification prefix",
    ),
    OptionSpec::new(
        "multicast_address",
        STR,
        Text("multicast"),
        "routable fanout tag",
    ),
    OptionSpec::new(
        "unicast_address",
        STR,
        Text("unicast"),
        "routable single-server tag",
    ),
    OptionSpec::new(
        "anycast_address",
        STR,
        Text("anycast"),
        "routable any-server tag",
    ),
    OptionSpec::new(
        "default_notification_exchange",
        STR,
        Unset,
        "exchange of routable notification addresses",
    ),
    OptionSpec::new(
        "default_rpc_exchange",
        STR,
        Unset,
        "exchange of routable RPC addresses",
    ),
    OptionSpec::new(
        "reply_link_credit",
        int(Some(1)),
        Text("200"),
        "credit window of the reply link",
    ),
    OptionSpec::new(
        "rpc_server_credit",
        int(Some(1)),
        Text("100"),
        "credit window of each RPC server link",
    ),
    OptionSpec::new(
        "notify_server_credit",
        int(Some(1)),
        Text("100"),
        "credit window of each notification link",
    ),
    OptionSpec::new(
        "pre_settled",
        OptionKind::Multi,
        Values(&["rpc-cast", "rpc-reply"]),
        "message kinds sent pre-settled: rpc-call, rpc-reply, rpc-cast, notify",
    ),
];

static METRICS_OPTS: [OptionSpec; 5] = [
    OptionSpec::new(
        "metrics_enabled",
        BOOL,
        Text("false"),
        "send client-side RPC metrics",
    ),
    OptionSpec::new(
        "metrics_buffer_size",
        INT,
        Text("1000"),
        "metrics buffer size",
    ),
    OptionSpec::new(
        "metrics_socket_file",
        STR,
        Text("/var/tmp/metrics_collector.sock"),
        "Unix socket of the metrics collector",
    ),
    OptionSpec::new(
        "metrics_process_name",
        STR,
        Text(""),
        "process name reported in metrics",
    ),
    OptionSpec::new(
        "metrics_thread_stop_timeout",
        INT,
        Text("10"),
        "seconds to wait for the metrics thread to stop",
    ),
];

static TRACING_OPTS: [OptionSpec; 5] = [
    OptionSpec::new(
        "tracing_enabled",
        BOOL,
        Text("false"),
        "OpenTelemetry spans for RPC send and receive",
    ),
    OptionSpec::new(
        "tracing_service_name",
        STR,
        Text("openstack"),
        "service name of spans",
    ),
    OptionSpec::new(
        "otel_exporter_otlp_endpoint",
        STR,
        Text("http://localhost:4318"),
        "OTLP exporter endpoint",
    ),
    OptionSpec::new("otlp_protocol", STR, Text("http/protobuf"), "OTLP protocol")
        .choices(&["http/protobuf", "grpc"]),
    OptionSpec::new(
        "insecure",
        BOOL,
        Text("false"),
        "no TLS verification of the gRPC endpoint",
    ),
];

static GROUPS: [GroupSpec; 7] = [
    GroupSpec {
        name: DEFAULT_GROUP,
        deprecated_groups: &[],
        options: &DEFAULT_OPTS,
    },
    GroupSpec {
        name: NOTIFICATIONS_GROUP,
        deprecated_groups: &[],
        options: &NOTIFICATION_OPTS,
    },
    GroupSpec {
        name: RABBIT_GROUP,
        deprecated_groups: &[],
        options: &RABBIT_OPTS,
    },
    GroupSpec {
        name: KAFKA_GROUP,
        deprecated_groups: &[],
        options: &KAFKA_OPTS,
    },
    GroupSpec {
        name: AMQP_GROUP,
        deprecated_groups: &["amqp1"],
        options: &AMQP_OPTS,
    },
    GroupSpec {
        name: METRICS_GROUP,
        deprecated_groups: &[],
        options: &METRICS_OPTS,
    },
    GroupSpec {
        name: TRACING_GROUP,
        deprecated_groups: &[],
        options: &TRACING_OPTS,
    },
];

/// Every option group om-config knows, in rendering order.
pub fn groups() -> &'static [GroupSpec] {
    &GROUPS
}

/// The group called `name` (current name only).
pub fn group(name: &str) -> Option<&'static GroupSpec> {
    GROUPS.iter().find(|g| g.name == name)
}

/// The group whose deprecated name is `name` (e.g. `amqp1`).
pub fn group_by_deprecated_name(name: &str) -> Option<&'static GroupSpec> {
    GROUPS.iter().find(|g| g.deprecated_groups.contains(&name))
}

/// The option group a driver reads, by driver name (the URL scheme before
/// any `+`): `rabbit`/`kombu` → `oslo_messaging_rabbit`, `kafka` →
/// `oslo_messaging_kafka`, `amqp` → `oslo_messaging_amqp`; `None` for
/// `fake` and drivers om-config does not know.
pub fn driver_group(driver: &str) -> Option<&'static GroupSpec> {
    match driver {
        "rabbit" | "kombu" => group(RABBIT_GROUP),
        "kafka" => group(KAFKA_GROUP),
        "amqp" => group(AMQP_GROUP),
        _ => None,
    }
}

/// The driver names of oslo.messaging (18.3.1 plus 14.x's `amqp`), the
/// default list of known URL schemes.
pub const OSLO_DRIVERS: &[&str] = &["amqp", "fake", "kafka", "kombu", "rabbit"];
