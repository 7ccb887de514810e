//! Every error class, each message naming file, section and option and
//! saying what was expected.

mod common;

use common::{assert_mentions, data, load, load_err, loader, temp_dir, write_conf};
use om_config::{ConfigErrorKind, Origin, SchemeCheck};
use om_driver_api::om_core;

/// Loads `text` from a real file; returns the error and the file's path.
fn file_err(text: &str) -> (om_config::ConfigError, String) {
    let path = write_conf("bad.conf", text);
    let e = load_err(loader().config_file(&path));
    (e, path.display().to_string())
}

#[test]
fn missing_file_and_directory() {
    let missing = temp_dir("missing").join("nope.conf");
    let e = load_err(loader().config_file(&missing));
    assert!(
        matches!(e.kind(), ConfigErrorKind::Io { what: "file", .. }),
        "{e:?}"
    );
    assert_mentions(
        &e.to_string(),
        &[
            "cannot read configuration file",
            &missing.display().to_string(),
        ],
    );
    let dir = temp_dir("missing-dir").join("conf.d");
    let e = load_err(loader().config_dir(&dir));
    assert!(
        matches!(
            e.kind(),
            ConfigErrorKind::Io {
                what: "directory",
                ..
            }
        ),
        "{e:?}"
    );
    assert_mentions(&e.to_string(), &[&dir.display().to_string()]);
    // an empty directory is fine
    let cfg = load(loader().config_dir(temp_dir("empty-dir")));
    assert!(cfg.sources().is_empty());
}

#[test]
fn ini_syntax_error_names_file_and_line() {
    let (e, path) = file_err(
        "[DEFAULT]\ntransport_url = fake://\n[oslo_messaging_rabbit\nheartbeat_rate = 1\n",
    );
    assert!(
        matches!(e.kind(), ConfigErrorKind::Parse { line: 3, .. }),
        "{e:?}"
    );
    assert_mentions(
        &e.to_string(),
        &[&path, "line 3", "Invalid section (must end with ])"],
    );
    // A broken file in a config dir is found too.
    let dir = temp_dir("bad-dir");
    std::fs::write(dir.join("01-ok.conf"), "[DEFAULT]\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("02-bad.conf"), "[DEFAULT]\nno equals sign here\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let e = load_err(loader().config_dir(&dir));
    assert_mentions(
        &e.to_string(),
        &["02-bad.conf", "line 2", "No ':' or '=' found in assignment"],
    );
}

#[test]
fn wrong_types_name_file_line_section_option_and_expectation() {
    for (text, line, section, option, expected) in [
        (
            "[oslo_messaging_rabbit]\n\nheartbeat_rate = fast\n",
            3,
            "oslo_messaging_rabbit",
            "heartbeat_rate",
            "expected an integer",
        ),
        (
            "[oslo_messaging_rabbit]\nssl = maybe\n",
            2,
            "oslo_messaging_rabbit",
            "ssl",
            "expected a boolean",
        ),
        (
            "[oslo_messaging_rabbit]\nkombu_reconnect_delay = soon\n",
            2,
            "oslo_messaging_rabbit",
            "kombu_reconnect_delay",
            "expected a number between 0 and 4.5",
        ),
        (
            "[DEFAULT]\nrpc_response_timeout = 1m\n",
            2,
            "DEFAULT",
            "rpc_response_timeout",
            "expected an integer",
        ),
        (
            "[oslo_messaging_notifications]\nretry = never\n",
            2,
            "oslo_messaging_notifications",
            "retry",
            "expected an integer",
        ),
        (
            "[oslo_messaging_kafka]\nkafka_consumer_timeout = 1s\n",
            2,
            "oslo_messaging_kafka",
            "kafka_consumer_timeout",
            "expected a number",
        ),
        (
            "[oslo_messaging_amqp]\ntrace = sometimes\n",
            2,
            "oslo_messaging_amqp",
            "trace",
            "expected a boolean",
        ),
        (
            "[oslo_messaging_metrics]\nmetrics_buffer_size = big\n",
            2,
            "oslo_messaging_metrics",
            "metrics_buffer_size",
            "expected an integer",
        ),
        (
            "[oslo_messaging_tracing]\ntracing_enabled = please\n",
            2,
            "oslo_messaging_tracing",
            "tracing_enabled",
            "expected a boolean",
        ),
    ] {
        let (e, path) = file_err(text);
        assert!(
            matches!(e.kind(), ConfigErrorKind::InvalidValue { .. }),
            "{e:?}"
        );
        assert_eq!(e.group(), Some(section));
        assert_eq!(e.option(), Some(option));
        assert!(
            matches!(e.origin(), Some(Origin::File { line: l, .. }) if *l == line),
            "{e:?}"
        );
        assert_mentions(
            &e.to_string(),
            &[
                &path,
                &format!("line {line}"),
                &format!("[{section}] {option}"),
                expected,
            ],
        );
        // As an om_core error: oslo's ConfigurationError.
        let core: om_core::Error = e.into();
        assert_eq!(core.oslo_name(), "ConfigurationError");
        assert_mentions(&core.to_string(), &[&path, option]);
    }
}

#[test]
fn inline_comments_get_a_hint() {
    let (e, _) = file_err("[oslo_messaging_rabbit]\nheartbeat_rate = 5 # five\n");
    assert_mentions(
        &e.to_string(),
        &["\"5 # five\"", "only at the beginning of a line"],
    );
}

#[test]
fn values_out_of_range() {
    for (text, option, range) in [
        (
            "[oslo_messaging_rabbit]\nkombu_reconnect_delay = 5.0\n",
            "kombu_reconnect_delay",
            "a number between 0 and 4.5",
        ),
        (
            "[oslo_messaging_rabbit]\nkombu_reconnect_delay = -0.1\n",
            "kombu_reconnect_delay",
            "a number between 0 and 4.5",
        ),
        (
            "[oslo_messaging_rabbit]\nkombu_reconnect_splay = -1\n",
            "kombu_reconnect_splay",
            "a number greater than or equal to 0",
        ),
        (
            "[oslo_messaging_rabbit]\nrabbit_retry_interval = 0\n",
            "rabbit_retry_interval",
            "an integer greater than or equal to 1",
        ),
        (
            "[oslo_messaging_rabbit]\nrabbit_interval_max = 0\n",
            "rabbit_interval_max",
            "an integer greater than or equal to 1",
        ),
        (
            "[oslo_messaging_rabbit]\nrabbit_retry_backoff = -2\n",
            "rabbit_retry_backoff",
            "an integer greater than or equal to 0",
        ),
        (
            "[oslo_messaging_rabbit]\nrpc_conn_pool_size = 0\n",
            "rpc_conn_pool_size",
            "an integer greater than or equal to 1",
        ),
        (
            "[oslo_messaging_rabbit]\nrabbit_transient_queues_ttl = -1\n",
            "rabbit_transient_queues_ttl",
            "an integer greater than or equal to 0",
        ),
        (
            "[oslo_messaging_amqp]\ndefault_reply_timeout = 4\n",
            "default_reply_timeout",
            "an integer greater than or equal to 5",
        ),
        (
            "[oslo_messaging_amqp]\ndefault_reply_retry = -2\n",
            "default_reply_retry",
            "an integer greater than or equal to -1",
        ),
        (
            "[amqp1]\nreply_link_credit = 0\n",
            "reply_link_credit",
            "an integer greater than or equal to 1",
        ),
    ] {
        let (e, path) = file_err(text);
        assert!(
            matches!(e.kind(), ConfigErrorKind::OutOfRange { .. }),
            "{text}: {e:?}"
        );
        assert_eq!(e.option(), Some(option));
        assert_mentions(
            &e.to_string(),
            &[&path, "line 2", option, "out of range", range],
        );
    }
    // The bounds themselves are fine.
    let cfg = load(loader().ini_text(
        "ok.conf",
        "[oslo_messaging_rabbit]\nkombu_reconnect_delay = 4.5\nrabbit_retry_interval = 1\nrabbit_transient_queues_ttl = 0\n",
    ));
    assert_eq!(cfg.rabbit.kombu_reconnect_delay, 4.5);
}

#[test]
fn values_outside_the_choices() {
    for (text, option, choices) in [
        (
            "[oslo_messaging_rabbit]\nkombu_failover_strategy = random\n",
            "kombu_failover_strategy",
            "one of round-robin, shuffle",
        ),
        (
            "[oslo_messaging_rabbit]\nrabbit_login_method = plain\n",
            "rabbit_login_method",
            "one of PLAIN, AMQPLAIN, EXTERNAL, RABBIT-CR-DEMO",
        ),
        (
            "[oslo_messaging_rabbit]\nssl_version = TLSv9\n",
            "ssl_version",
            "tlsv1_2",
        ),
        (
            "[oslo_messaging_kafka]\ncompression_codec = brotli\n",
            "compression_codec",
            "one of none, gzip, snappy, lz4, zstd",
        ),
        (
            "[oslo_messaging_kafka]\nsecurity_protocol = TLS\n",
            "security_protocol",
            "SASL_SSL",
        ),
        (
            "[oslo_messaging_amqp]\naddressing_mode = smart\n",
            "addressing_mode",
            "one of legacy, routable, dynamic",
        ),
        (
            "[oslo_messaging_tracing]\notlp_protocol = thrift\n",
            "otlp_protocol",
            "one of http/protobuf, grpc",
        ),
    ] {
        let (e, path) = file_err(text);
        assert!(
            matches!(e.kind(), ConfigErrorKind::InvalidValue { .. }),
            "{e:?}"
        );
        assert_mentions(&e.to_string(), &[&path, "line 2", option, choices]);
    }
    // ssl_version is compared ignoring case, as oslo does.
    let cfg = load(loader().ini_text("v.conf", "[oslo_messaging_rabbit]\nssl_version = tlsv1_2\n"));
    assert_eq!(cfg.rabbit.ssl_version, "tlsv1_2");
}

#[test]
fn bad_transport_urls() {
    let (e, path) = file_err("[DEFAULT]\ntransport_url = rabbit://nova:s3cret@ctl1:99999/\n");
    assert!(
        matches!(e.kind(), ConfigErrorKind::InvalidTransportUrl { .. }),
        "{e:?}"
    );
    let msg = e.to_string();
    assert_mentions(
        &msg,
        &[
            &path,
            "line 2",
            "[DEFAULT] transport_url",
            "out of range",
            "nova:****@ctl1",
        ],
    );
    assert!(!msg.contains("s3cret"), "{msg}");
    assert!(!format!("{e:?}").contains("s3cret"));
    let core: om_core::Error = e.into();
    assert_eq!(core.oslo_name(), "InvalidTransportURL");
    assert!(!core.to_string().contains("s3cret"));

    let (e, path) = file_err("[oslo_messaging_notifications]\ntransport_url = //kafka1:9092/\n");
    assert!(
        matches!(e.kind(), ConfigErrorKind::InvalidTransportUrl { .. }),
        "{e:?}"
    );
    assert_mentions(
        &e.to_string(),
        &[
            &path,
            "[oslo_messaging_notifications] transport_url",
            "scheme",
        ],
    );

    let (e, _) = file_err("[DEFAULT]\ntransport_url =\n");
    assert_mentions(&e.to_string(), &["[DEFAULT] transport_url", "empty"]);

    // A URL from the environment names the variable.
    let e = load_err(loader().env_vars([("OM__DEFAULT__TRANSPORT_URL", "rabbit://h:port/")]));
    assert_mentions(
        &e.to_string(),
        &[
            "environment variable OM__DEFAULT__TRANSPORT_URL",
            "[DEFAULT] transport_url",
        ],
    );
}

#[test]
fn unknown_driver_scheme() {
    let (e, path) = file_err("[DEFAULT]\ntransport_url = nosuchdriver://u:pw@x/\n");
    let ConfigErrorKind::UnknownDriver { driver, known, .. } = e.kind() else {
        panic!("{e:?}")
    };
    assert_eq!(driver, "nosuchdriver");
    assert!(
        known.iter().any(|k| k == "rabbit") && known.iter().any(|k| k == "kafka"),
        "{known:?}"
    );
    let msg = e.to_string();
    assert_mentions(
        &msg,
        &[
            &path,
            "line 2",
            "[DEFAULT] transport_url",
            "nosuchdriver",
            "known drivers",
        ],
    );
    assert!(!msg.contains(":pw@"), "{msg}");
    let core: om_core::Error = e.into();
    assert_eq!(core.oslo_name(), "DriverLoadFailure");

    // The notifications URL is checked too.
    let (e, _) = file_err("[oslo_messaging_notifications]\ntransport_url = kafak://k:9092/\n");
    assert_mentions(
        &e.to_string(),
        &["[oslo_messaging_notifications] transport_url", "\"kafak\""],
    );
}

#[tokio::test]
async fn scheme_checks_are_configurable() {
    let text = "[DEFAULT]\ntransport_url = nosuchdriver://x/\n";
    // Off: loads; opening fails as oslo's get_transport does.
    let cfg = load(
        loader()
            .scheme_check(SchemeCheck::Off)
            .ini_text("s.conf", text),
    );
    let e = cfg
        .open_rpc_transport()
        .await
        .map(|_| ())
        .expect_err("an error was expected");
    assert_eq!(e.oslo_name(), "DriverLoadFailure");

    // Known list only.
    let e = load_err(
        loader()
            .scheme_check(SchemeCheck::Known(vec!["rabbit".into()]))
            .ini_text("s.conf", "[DEFAULT]\ntransport_url = kafka://k/\n"),
    );
    assert_mentions(&e.to_string(), &["\"kafka\"", "known drivers: rabbit"]);

    // Registered drivers only: fake always is; rabbit is not in this test binary.
    load(
        loader()
            .scheme_check(SchemeCheck::Registered)
            .ini_text("s.conf", "[DEFAULT]\ntransport_url = fake://\n"),
    );
    let e = load_err(
        loader()
            .scheme_check(SchemeCheck::Registered)
            .ini_text("s.conf", "[DEFAULT]\ntransport_url = rabbit://h/\n"),
    );
    assert_mentions(
        &e.to_string(),
        &["s.conf, line 2", "\"rabbit\"", "known drivers: fake"],
    );
}

#[test]
fn query_parameters_are_typed_like_the_options_they_override() {
    let (e, path) =
        file_err("[DEFAULT]\ntransport_url = rabbit://u:secret@h/?rabbit_qos_prefetch_count=abc\n");
    assert!(
        matches!(e.kind(), ConfigErrorKind::InvalidValue { .. }),
        "{e:?}"
    );
    let msg = e.to_string();
    assert_mentions(
        &msg,
        &[
            &path,
            "[DEFAULT] transport_url",
            "rabbit_qos_prefetch_count=abc",
            "an integer",
            "[oslo_messaging_rabbit]",
        ],
    );
    assert!(!msg.contains("secret@"), "{msg}");
    let (e, _) = file_err("[DEFAULT]\ntransport_url = rabbit://h/?kombu_reconnect_delay=9\n");
    assert_mentions(
        &e.to_string(),
        &["kombu_reconnect_delay=9", "between 0 and 4.5"],
    );

    // Known and well-typed: fine, and the driver applies it on top.
    let cfg = load(loader().ini_text(
        "q.conf",
        "[DEFAULT]\ntransport_url = rabbit://h/?rabbit_qos_prefetch_count=5&heartbeat_timeout_threshold=0\n",
    ));
    let dc = cfg.rpc_driver_config().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        dc.options
            .get("rabbit_qos_prefetch_count")
            .map(String::as_str),
        Some("0")
    );
    let eff = dc.effective_options();
    assert_eq!(
        eff.get("rabbit_qos_prefetch_count").map(String::as_str),
        Some("5")
    );
    assert_eq!(
        eff.get("heartbeat_timeout_threshold").map(String::as_str),
        Some("0")
    );

    // Unknown: warned about (the driver refuses it when opened).
    let cfg = load(loader().ini_text("q.conf", "[DEFAULT]\ntransport_url = rabbit://h/?foo=1\n"));
    assert!(cfg
        .warnings()
        .iter()
        .any(|w| w.option == "transport_url" && w.message.contains("\"foo\"")));
}

#[test]
fn rabbit_option_conflicts_are_reported_when_the_transport_is_built() {
    let path = write_conf(
        "conflict.conf",
        "[DEFAULT]\ntransport_url = rabbit://h/\n[oslo_messaging_rabbit]\nrabbit_quorum_queue = true\nrabbit_ha_queues = true\n",
    );
    // Loading works (oslo fails later too); building the transport does not.
    let cfg = load(loader().config_file(&path));
    let e = cfg
        .rpc_transport()
        .map(|_| ())
        .expect_err("an error was expected");
    assert!(
        matches!(e.kind(), ConfigErrorKind::Conflict { .. }),
        "{e:?}"
    );
    let p = path.display().to_string();
    assert_mentions(
        &e.to_string(),
        &[
            "[oslo_messaging_rabbit]",
            &format!("rabbit_quorum_queue from {p}, line 4"),
            &format!("rabbit_ha_queues from {p}, line 5"),
        ],
    );
    let core: om_core::Error = e.into();
    assert_eq!(core.oslo_name(), "ConfigurationError");

    for (text, names) in [
        ("[oslo_messaging_rabbit]\nrpc_conn_pool_size = 1\nconn_pool_min_size = 2\n", ["rpc_conn_pool_size", "conn_pool_min_size"]),
        (
            "[oslo_messaging_rabbit]\nrabbit_stream_fanout = true\nrabbit_transient_quorum_queue = true\n",
            ["rabbit_stream_fanout", "rabbit_qos_prefetch_count"],
        ),
        (
            "[oslo_messaging_rabbit]\nrabbit_stream_fanout = true\nrabbit_qos_prefetch_count = 10\n",
            ["rabbit_stream_fanout", "rabbit_transient_quorum_queue"],
        ),
    ] {
        let cfg = load(loader().ini_text("c.conf", text));
        let e = cfg.rpc_driver_config().map(|_| ()).expect_err("an error was expected");
        assert_mentions(&e.to_string(), &names);
    }
    // The URL query takes part (it is what the driver will use).
    let cfg = load(loader().ini_text(
        "c.conf",
        "[DEFAULT]\ntransport_url = rabbit://h/?rabbit_ha_queues=true\n[oslo_messaging_rabbit]\nrabbit_quorum_queue = true\n",
    ));
    let e = cfg
        .rpc_driver_config()
        .map(|_| ())
        .expect_err("an error was expected");
    assert_mentions(&e.to_string(), &["rabbit_ha_queues from c.conf, line 2"]);
    // A Kafka notification transport is not affected by the rabbit group.
    let cfg = load(loader().ini_text(
        "c.conf",
        "[oslo_messaging_notifications]\ntransport_url = kafka://k/\n[oslo_messaging_rabbit]\nrabbit_quorum_queue = true\nrabbit_ha_queues = true\n",
    ));
    assert!(cfg.notification_driver_config().is_ok());
}

#[test]
fn secret_values_are_masked_in_errors() {
    // A secret option with a bad value for its choices does not exist in
    // oslo's tables; a secret URL with a bad query value is the case.
    let e = load_err(loader().ini_text(
        "s.conf",
        "[oslo_messaging_notifications]\ntransport_url = kafka://u:hunter2@k/?max_poll_records=lots\n",
    ));
    assert!(!e.to_string().contains("hunter2"), "{e}");
    assert_mentions(&e.to_string(), &["u:****@k", "max_poll_records=lots"]);
}

#[test]
fn errors_in_real_files_point_at_the_right_file_of_several() {
    let bad = write_conf(
        "99-bad.conf",
        "[oslo_messaging_rabbit]\nheartbeat_rate = x\n",
    );
    let e = load_err(loader().config_file(data("nova.conf")).config_file(&bad));
    assert_mentions(&e.to_string(), &["99-bad.conf", "line 2"]);
    // Only the winning value is converted, as in oslo: a later valid value
    // replaces the bad one.
    let good = write_conf(
        "100-good.conf",
        "[oslo_messaging_rabbit]\nheartbeat_rate = 4\n",
    );
    let cfg = load(loader().config_file(&bad).config_file(&good));
    assert_eq!(cfg.rabbit.heartbeat_rate, 4);
}

#[test]
fn programmatic_changes_are_checked_too() {
    let mut cfg = load(loader().ini_text(
        "p.conf",
        "[oslo_messaging_rabbit]\nkombu_reconnect_delay = 2.0\n",
    ));
    assert!(cfg.validate().is_ok());
    cfg.rabbit.kombu_reconnect_delay = 10.0;
    let e = cfg
        .rpc_driver_config()
        .map(|_| ())
        .expect_err("out of range");
    assert_mentions(
        &e.to_string(),
        &[
            "[oslo_messaging_rabbit] kombu_reconnect_delay = 10.0",
            "between 0 and 4.5",
        ],
    );
    assert!(cfg.validate().is_err());
    cfg.rabbit.kombu_reconnect_delay = 1.0;
    cfg.kafka.compression_codec = "brotli".into();
    // The kafka group is not the RPC transport's: building it is fine...
    assert!(cfg.rpc_driver_config().is_ok());
    // ...but validate() looks at everything.
    let e = cfg.validate().expect_err("bad codec");
    assert_mentions(
        &e.to_string(),
        &["[oslo_messaging_kafka] compression_codec", "one of none"],
    );
    cfg.kafka.compression_codec = "zstd".into();
    cfg.default.transport_url = "no scheme".into();
    let e = cfg.validate().expect_err("bad url");
    assert_mentions(&e.to_string(), &["[DEFAULT] transport_url"]);
}
