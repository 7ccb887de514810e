//! Defaults equal oslo.messaging 18.3.1's table (overview.md §11,
//! wire-kafka.md §7, wire-amqp1.md §9 for 14.9.3's AMQP 1.0 group), written
//! out here independently of the crate's own tables.

mod common;

use common::{load, loader};
use om_config::{schema, MessagingConfig};
use std::collections::BTreeMap;

/// Every option's default as file text, from the spec. `None`: unset.
/// Host and process name defaults are machine-dependent and checked apart.
fn spec_defaults() -> BTreeMap<(&'static str, &'static str), Option<&'static str>> {
    let d = "DEFAULT";
    let n = "oslo_messaging_notifications";
    let r = "oslo_messaging_rabbit";
    let k = "oslo_messaging_kafka";
    let a = "oslo_messaging_amqp";
    let m = "oslo_messaging_metrics";
    let t = "oslo_messaging_tracing";
    let rows: &[(&str, &str, Option<&str>)] = &[
        (d, "transport_url", Some("rabbit://")),
        (d, "control_exchange", Some("openstack")),
        (d, "rpc_response_timeout", Some("60")),
        (d, "executor_thread_pool_size", Some("64")),
        (d, "rpc_ping_enabled", Some("false")),
        (n, "driver", Some("")),
        (n, "transport_url", None),
        (n, "topics", Some("notifications")),
        (n, "retry", Some("-1")),
        (n, "routing_config", Some("")),
        (r, "amqp_durable_queues", Some("false")),
        (r, "amqp_auto_delete", Some("false")),
        (r, "rpc_conn_pool_size", Some("30")),
        (r, "conn_pool_min_size", Some("2")),
        (r, "conn_pool_ttl", Some("1200")),
        (r, "ssl", Some("false")),
        (r, "ssl_version", Some("")),
        (r, "ssl_key_file", Some("")),
        (r, "ssl_cert_file", Some("")),
        (r, "ssl_ca_file", Some("")),
        (r, "ssl_enforce_hostname_verification", Some("true")),
        (r, "ssl_enforce_fips_mode", Some("false")),
        (r, "kombu_reconnect_delay", Some("1.0")),
        (r, "kombu_reconnect_splay", Some("0.0")),
        (r, "kombu_compression", None),
        (r, "kombu_missing_consumer_retry_timeout", Some("60")),
        (r, "kombu_failover_strategy", Some("round-robin")),
        (r, "rabbit_login_method", Some("AMQPLAIN")),
        (r, "rabbit_retry_interval", Some("1")),
        (r, "rabbit_retry_backoff", Some("2")),
        (r, "rabbit_interval_max", Some("30")),
        (r, "rabbit_ha_queues", Some("false")),
        (r, "rabbit_quorum_queue", Some("false")),
        (r, "rabbit_transient_quorum_queue", Some("false")),
        (r, "rabbit_quorum_delivery_limit", Some("0")),
        (r, "rabbit_quorum_max_memory_length", Some("0")),
        (r, "rabbit_quorum_max_memory_bytes", Some("0")),
        (r, "rabbit_transient_queues_ttl", Some("1800")),
        (r, "rabbit_qos_prefetch_count", Some("0")),
        (r, "heartbeat_timeout_threshold", Some("60")),
        (r, "heartbeat_rate", Some("3")),
        (r, "direct_mandatory_flag", Some("true")),
        (r, "enable_cancel_on_failover", Some("false")),
        (r, "use_queue_manager", Some("false")),
        (r, "rabbit_stream_fanout", Some("false")),
        (k, "kafka_max_fetch_bytes", Some("1048576")),
        (k, "kafka_consumer_timeout", Some("1.0")),
        (k, "consumer_group", Some("oslo_messaging_consumer")),
        (k, "producer_batch_timeout", Some("0.0")),
        (k, "producer_batch_size", Some("16384")),
        (k, "compression_codec", Some("none")),
        (k, "enable_auto_commit", Some("false")),
        (k, "max_poll_records", Some("500")),
        (k, "security_protocol", Some("PLAINTEXT")),
        (k, "sasl_mechanism", Some("PLAIN")),
        (k, "ssl_cafile", Some("")),
        (k, "ssl_client_cert_file", Some("")),
        (k, "ssl_client_key_file", Some("")),
        (k, "ssl_client_key_password", Some("")),
        (a, "container_name", None),
        (a, "idle_timeout", Some("0")),
        (a, "trace", Some("false")),
        (a, "ssl", Some("false")),
        (a, "ssl_ca_file", Some("")),
        (a, "ssl_cert_file", Some("")),
        (a, "ssl_key_file", Some("")),
        (a, "ssl_key_password", None),
        (a, "ssl_verify_vhost", Some("false")),
        (a, "sasl_mechanisms", Some("")),
        (a, "sasl_config_dir", Some("")),
        (a, "sasl_config_name", Some("")),
        (a, "sasl_default_realm", Some("")),
        (a, "connection_retry_interval", Some("1")),
        (a, "connection_retry_backoff", Some("2")),
        (a, "connection_retry_interval_max", Some("30")),
        (a, "link_retry_delay", Some("10")),
        (a, "default_reply_retry", Some("0")),
        (a, "default_reply_timeout", Some("30")),
        (a, "default_send_timeout", Some("30")),
        (a, "default_notify_timeout", Some("30")),
        (a, "default_sender_link_timeout", Some("600")),
        (a, "addressing_mode", Some("dynamic")),
        (a, "pseudo_vhost", Some("true")),
        (a, "server_request_prefix", Some("exclusive")),
        (a, "broadcast_prefix", Some("broadcast")),
        (a, "group_request_prefix", Some("unicast")),
        (a, "rpc_address_prefix", Some("openstack.org/om/rpc")),
        (a, "notify_address_prefix", Some("openstack.org/om/notify")),
        (a, "multicast_address", Some("multicast")),
        (a, "unicast_address", Some("unicast")),
        (a, "anycast_address", Some("anycast")),
        (a, "default_notification_exchange", None),
        (a, "default_rpc_exchange", None),
        (a, "reply_link_credit", Some("200")),
        (a, "rpc_server_credit", Some("100")),
        (a, "notify_server_credit", Some("100")),
        (a, "pre_settled", Some("rpc-cast,rpc-reply")),
        (m, "metrics_enabled", Some("false")),
        (m, "metrics_buffer_size", Some("1000")),
        (
            m,
            "metrics_socket_file",
            Some("/var/tmp/metrics_collector.sock"),
        ),
        (m, "metrics_process_name", Some("")),
        (m, "metrics_thread_stop_timeout", Some("10")),
        (t, "tracing_enabled", Some("false")),
        (t, "tracing_service_name", Some("openstack")),
        (
            t,
            "otel_exporter_otlp_endpoint",
            Some("http://localhost:4318"),
        ),
        (t, "otlp_protocol", Some("http/protobuf")),
        (t, "insecure", Some("false")),
    ];
    rows.iter().map(|(g, o, v)| ((*g, *o), *v)).collect()
}

#[test]
fn every_default_equals_the_18_3_1_table() {
    let cfg = MessagingConfig::default();
    let expected = spec_defaults();
    let mut seen = 0;
    for group in schema::groups() {
        let opts = cfg
            .group_options(group.name)
            .unwrap_or_else(|e| panic!("{e}"));
        for spec in group.options {
            if matches!(spec.name, "hostname" | "processname") {
                continue;
            }
            let want = expected.get(&(group.name, spec.name)).unwrap_or_else(|| {
                panic!("[{}] {} is not in the spec table", group.name, spec.name)
            });
            let got = opts.get(spec.name).map(String::as_str);
            assert_eq!(got, *want, "default of [{}] {}", group.name, spec.name);
            seen += 1;
        }
    }
    assert_eq!(
        seen,
        expected.len(),
        "every spec row is an option of the schema"
    );
}

#[test]
fn loading_nothing_gives_the_defaults() {
    let loaded = load(loader());
    let default = MessagingConfig::default();
    for group in schema::groups() {
        assert_eq!(
            loaded
                .group_options(group.name)
                .unwrap_or_else(|e| panic!("{e}")),
            default
                .group_options(group.name)
                .unwrap_or_else(|e| panic!("{e}")),
            "[{}]",
            group.name
        );
    }
    assert!(loaded.warnings().is_empty());
    assert!(loaded.sources().is_empty());
}

#[test]
fn test_case_a8_defaults() {
    let cfg = MessagingConfig::default();
    assert_eq!(cfg.default.rpc_response_timeout, 60);
    assert_eq!(cfg.default.control_exchange, "openstack");
    assert_eq!(cfg.default.executor_thread_pool_size, 64);
    assert!(!cfg.default.rpc_ping_enabled);
    assert_eq!(cfg.notifications.topics, vec!["notifications"]);
    assert_eq!(cfg.notifications.retry, -1);
    assert_eq!(
        cfg.notifications.retry_policy(),
        om_driver_api::Retry::Forever
    );
    assert!(cfg.notifications.driver.is_empty() && cfg.notifications.disabled());
    assert_eq!(cfg.rabbit.rabbit_transient_queues_ttl, 1800);
    assert_eq!(cfg.rabbit.heartbeat_timeout_threshold, 60);
    assert_eq!(cfg.rabbit.kombu_missing_consumer_retry_timeout, 60);
    assert_eq!(cfg.default.transport_url.expose(), "rabbit://");
}

#[test]
fn machine_dependent_defaults() {
    let cfg = MessagingConfig::default();
    assert!(!cfg.rabbit.hostname.is_empty());
    assert!(!cfg.rabbit.hostname.contains('\n'));
    // The test binary's own file name, as Python's basename(sys.argv[0]).
    let exe = std::env::args().next().unwrap_or_default();
    assert!(
        exe.ends_with(&cfg.rabbit.processname),
        "{exe} / {}",
        cfg.rabbit.processname
    );
    assert!(
        cfg.rabbit.processname.starts_with("defaults"),
        "{}",
        cfg.rabbit.processname
    );
}

#[test]
fn the_default_transport_is_rabbit_with_the_rabbit_group() {
    let cfg = MessagingConfig::default();
    let rpc = cfg.rpc_driver_config().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rpc.url.transport, "rabbit");
    assert!(rpc.url.hosts.is_empty());
    assert_eq!(rpc.control_exchange, "openstack");
    assert_eq!(
        rpc.options
            .get("heartbeat_timeout_threshold")
            .map(String::as_str),
        Some("60")
    );
    let n = cfg
        .notification_driver_config()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n.url, rpc.url);
}
