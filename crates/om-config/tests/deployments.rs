//! Real-world-shaped configuration files (tests/data): nova with a config
//! directory, neutron, a hybrid ceilometer, and what transports they give.

mod common;

use common::{data, load, loader};
use om_config::{schema, Origin};

fn nova() -> om_config::MessagingConfig {
    load(loader().config_file(data("nova.conf")))
}

#[test]
fn nova_conf_typed_options() {
    let cfg = nova();
    let url = cfg
        .default
        .transport_url
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(url.driver(), "rabbit");
    assert_eq!(url.virtual_host.as_deref(), Some("/"));
    let hosts: Vec<(String, Option<u16>)> = url
        .hosts
        .iter()
        .map(|h| (h.hostname.clone(), h.port))
        .collect();
    assert_eq!(
        hosts,
        vec![
            ("192.0.2.11".to_owned(), Some(5672)),
            ("192.0.2.12".to_owned(), Some(5672)),
            ("192.0.2.13".to_owned(), Some(5672))
        ]
    );
    for h in &url.hosts {
        assert_eq!(h.username.as_deref(), Some("openstack"));
        assert_eq!(h.password.as_ref().map(|p| p.expose()), Some("Rabb1t/pass"));
    }
    assert_eq!(cfg.default.control_exchange, "openstack");
    assert_eq!(cfg.default.rpc_response_timeout, 120);
    assert_eq!(
        cfg.default.response_timeout(),
        std::time::Duration::from_secs(120)
    );
    assert_eq!(cfg.default.executor_thread_pool_size, 32);
    assert!(!cfg.default.rpc_ping_enabled);

    assert_eq!(cfg.notifications.driver, vec!["messagingv2"]);
    assert_eq!(
        cfg.notifications.topics,
        vec!["notifications", "versioned_notifications"]
    );
    assert_eq!(cfg.notifications.retry, -1);
    assert!(cfg.notifications.transport_url.is_some());

    let r = &cfg.rabbit;
    assert!(r.rabbit_quorum_queue && r.rabbit_transient_quorum_queue && r.amqp_durable_queues);
    assert_eq!(r.rabbit_quorum_delivery_limit, 10);
    assert_eq!((r.heartbeat_timeout_threshold, r.heartbeat_rate), (30, 2));
    assert_eq!(r.rabbit_qos_prefetch_count, 64);
    assert_eq!(r.kombu_reconnect_delay, 0.5);
    assert!(r.ssl);
    assert_eq!(r.ssl_ca_file, "/etc/pki/tls/certs/ca-bundle.crt");
    assert_eq!(r.ssl_cert_file, "/etc/nova/certs/rabbitmq-client.crt");
    assert_eq!(r.ssl_key_file, "/etc/nova/certs/rabbitmq-client.key");
    assert_eq!(r.ssl_version, "TLSv1_2");
    // Untouched options keep 18.3.1's defaults.
    assert_eq!(r.rabbit_transient_queues_ttl, 1800);
    assert_eq!(r.kombu_failover_strategy, "round-robin");
    assert_eq!(cfg.kafka, om_config::KafkaOptions::default());

    // Only the option removed from oslo.messaging is warned about; the
    // other sections of nova.conf ([api_database], [vnc], ...) and
    // nova's own [DEFAULT] options are none of om's business.
    let warned: Vec<(&str, &str)> = cfg
        .warnings()
        .iter()
        .map(|w| (w.group.as_str(), w.option.as_str()))
        .collect();
    assert_eq!(
        warned,
        vec![("oslo_messaging_rabbit", "heartbeat_in_pthread")]
    );
    assert_eq!(cfg.sources(), &[data("nova.conf")]);
}

#[test]
fn nova_rpc_transport_carries_the_rabbit_group() {
    let cfg = nova();
    let dc = cfg.rpc_driver_config().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dc.url.transport, "rabbit");
    assert_eq!(dc.url.hosts.len(), 3);
    assert_eq!(dc.control_exchange, "openstack");
    let o = &dc.options;
    for (k, v) in [
        ("rabbit_quorum_queue", "true"),
        ("rabbit_transient_quorum_queue", "true"),
        ("rabbit_quorum_delivery_limit", "10"),
        ("amqp_durable_queues", "true"),
        ("heartbeat_timeout_threshold", "30"),
        ("heartbeat_rate", "2"),
        ("rabbit_qos_prefetch_count", "64"),
        ("kombu_reconnect_delay", "0.5"),
        ("ssl", "true"),
        ("ssl_ca_file", "/etc/pki/tls/certs/ca-bundle.crt"),
        ("ssl_version", "TLSv1_2"),
        // defaults are passed too, in file syntax
        ("rabbit_ha_queues", "false"),
        ("rabbit_transient_queues_ttl", "1800"),
        ("kombu_reconnect_splay", "0.0"),
        ("rabbit_login_method", "AMQPLAIN"),
    ] {
        assert_eq!(o.get(k).map(String::as_str), Some(v), "option {k}");
    }
    // Every option of the group but the unset kombu_compression; nothing
    // from other groups; not the unknown heartbeat_in_pthread.
    let rabbit = schema::group(schema::RABBIT_GROUP).unwrap_or_else(|| panic!("rabbit group"));
    let mut expected: Vec<&str> = rabbit
        .options
        .iter()
        .map(|s| s.name)
        .filter(|n| *n != "kombu_compression")
        .collect();
    expected.sort_unstable();
    let got: Vec<&str> = o.keys().map(String::as_str).collect();
    assert_eq!(got, expected);

    // Notifications use their own (here identical) URL and the same group.
    let n = cfg
        .notification_driver_config()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n.url, dc.url);
    assert_eq!(n.options, dc.options);
}

#[test]
fn nova_with_config_dir_layers_in_sorted_order() {
    let cfg = load(
        loader()
            .config_file(data("nova.conf"))
            .config_dir(data("nova.conf.d")),
    );
    assert_eq!(
        cfg.sources(),
        &[
            data("nova.conf"),
            data("nova.conf.d/10-rabbit-tuning.conf"),
            data("nova.conf.d/20-notifications.conf")
        ],
        "README and *.conf.bak are not read"
    );
    // nova.conf 2 < 10-rabbit-tuning 4 < 20-notifications 5
    assert_eq!(cfg.rabbit.heartbeat_rate, 5);
    assert_eq!(
        cfg.origin("oslo_messaging_rabbit", "heartbeat_rate"),
        Origin::File {
            path: data("nova.conf.d/20-notifications.conf"),
            line: 7
        }
    );
    assert_eq!(cfg.rabbit.rabbit_retry_interval, 2);
    assert_eq!(cfg.rabbit.rabbit_interval_max, 60);
    // Deprecated name in the drop-in.
    assert_eq!(cfg.rabbit.kombu_missing_consumer_retry_timeout, 90);
    assert!(cfg
        .warnings()
        .iter()
        .any(|w| w.option == "kombu_reconnect_timeout"
            && w.message.contains("kombu_missing_consumer_retry_timeout")));
    // Multi-valued driver accumulates across files, as oslo.config does.
    assert_eq!(cfg.notifications.driver, vec!["messagingv2", "log"]);
    assert_eq!(cfg.notifications.retry, 3);
    assert_eq!(
        cfg.notifications.retry_policy(),
        om_driver_api::Retry::Limited(3)
    );
    // Values not touched by the drop-ins stay as nova.conf set them.
    assert_eq!(cfg.rabbit.heartbeat_timeout_threshold, 30);
    let dc = cfg.rpc_driver_config().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        dc.options.get("heartbeat_rate").map(String::as_str),
        Some("5")
    );
    assert_eq!(
        dc.options
            .get("kombu_missing_consumer_retry_timeout")
            .map(String::as_str),
        Some("90")
    );
    assert!(!dc.options.contains_key("kombu_reconnect_timeout"));
}

#[test]
fn neutron_conf_ipv6_own_exchange_and_old_names() {
    let cfg = load(loader().config_file(data("neutron.conf")));
    let dc = cfg.rpc_driver_config().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dc.control_exchange, "neutron");
    assert_eq!(dc.url.virtual_host.as_deref(), Some("neutron"));
    let hosts: Vec<String> = dc.url.hosts.iter().map(|h| h.address(5672)).collect();
    assert_eq!(hosts, vec!["[fd00:10::11]:5671", "[fd00:10::12]:5671"]);
    assert_eq!(cfg.default.rpc_response_timeout, 180);
    assert_eq!(
        cfg.default.executor_thread_pool_size, 128,
        "rpc_thread_pool_size is the old name"
    );
    assert!(cfg.warnings().iter().any(|w| w.group == "DEFAULT"
        && w.option == "rpc_thread_pool_size"
        && w.message.contains("executor_thread_pool_size")));
    assert!(cfg.default.rpc_ping_enabled, "`yes` is true");
    assert_eq!(cfg.rabbit.kombu_failover_strategy, "shuffle");
    assert_eq!(cfg.rabbit.rabbit_login_method, "PLAIN");
    assert_eq!(cfg.rabbit.rabbit_retry_backoff, 4);
    assert_eq!(cfg.rabbit.rabbit_transient_queues_ttl, 600);
    assert!(cfg.rabbit.ssl, "`True` is true");
    assert!(cfg.rabbit.enable_cancel_on_failover, "`on` is true");
    assert_eq!(
        dc.options
            .get("enable_cancel_on_failover")
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(
        dc.options
            .get("kombu_failover_strategy")
            .map(String::as_str),
        Some("shuffle")
    );
    // Notifications fall back to [DEFAULT] transport_url.
    let n = cfg
        .notification_driver_config()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n.url, dc.url);
    assert_eq!(cfg.notification_url().1.group, "DEFAULT");
    assert_eq!(cfg.notifications.driver, vec!["messagingv2"]);
}

#[test]
fn ceilometer_hybrid_rabbit_rpc_kafka_notifications() {
    let cfg = load(loader().config_file(data("ceilometer.conf")));
    let rpc = cfg.rpc_driver_config().unwrap_or_else(|e| panic!("{e}"));
    let notify = cfg
        .notification_driver_config()
        .unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(rpc.url.driver(), "rabbit");
    assert_eq!(rpc.url.hosts.len(), 2);
    assert_eq!(
        rpc.options
            .get("heartbeat_timeout_threshold")
            .map(String::as_str),
        Some("60")
    );
    assert!(!rpc.options.contains_key("consumer_group"));

    assert_eq!(notify.url.driver(), "kafka");
    let hosts: Vec<String> = notify.url.hosts.iter().map(|h| h.address(9092)).collect();
    assert_eq!(
        hosts,
        vec!["kafka1.example.org:9092", "kafka2.example.org:9092"]
    );
    assert_eq!(notify.control_exchange, "openstack");
    for (k, v) in [
        ("consumer_group", "ceilometer"),
        ("compression_codec", "lz4"),
        ("security_protocol", "SASL_SSL"),
        ("sasl_mechanism", "SCRAM-SHA-512"),
        ("ssl_cafile", "/etc/ceilometer/kafka-ca.pem"),
        // the driver needs the secret itself
        ("ssl_client_key_password", "K4fkaKeyPass"),
        ("producer_batch_timeout", "0.01"),
        ("producer_batch_size", "32768"),
        ("max_poll_records", "1000"),
        ("kafka_max_fetch_bytes", "1048576"),
        ("enable_auto_commit", "false"),
    ] {
        assert_eq!(
            notify.options.get(k).map(String::as_str),
            Some(v),
            "option {k}"
        );
    }
    let kafka = schema::group(schema::KAFKA_GROUP).unwrap_or_else(|| panic!("kafka group"));
    assert_eq!(notify.options.len(), kafka.options.len());
    assert!(!notify.options.contains_key("heartbeat_timeout_threshold"));

    // Repeated `driver` lines in one section.
    assert_eq!(cfg.notifications.driver, vec!["messagingv2", "log"]);
    assert_eq!(cfg.kafka.ssl_client_key_password.expose(), "K4fkaKeyPass");
    assert_eq!(format!("{:?}", cfg.kafka.ssl_client_key_password), "****");
    assert_eq!(cfg.kafka.producer_batch_timeout, 0.01);
    assert!(cfg.warnings().is_empty(), "{:?}", cfg.warnings());
}

#[tokio::test]
async fn hybrid_fake_transports_open_on_their_own_urls() {
    let cfg = load(loader().config_file(data("hybrid-fake.conf")));
    let rpc = cfg
        .open_rpc_transport()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let notify = cfg
        .open_notification_transport()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rpc.driver_name(), "fake");
    assert_eq!(notify.driver_name(), "fake");
    assert_eq!(
        rpc.url().virtual_host.as_deref(),
        Some("om-config-hybrid-rpc")
    );
    assert_eq!(
        notify.url().virtual_host.as_deref(),
        Some("om-config-hybrid-notify")
    );
    assert_eq!(rpc.control_exchange(), "hybrid");
    assert_eq!(notify.control_exchange(), "hybrid");
    rpc.cleanup().await;
    notify.cleanup().await;
}
