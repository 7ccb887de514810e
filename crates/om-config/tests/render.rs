//! `render_effective`: every group, defaults included, secrets masked,
//! origins noted, and the text loads back.

mod common;

use common::{data, load, loader};
use om_config::schema;

fn hybrid() -> om_config::MessagingConfig {
    load(
        loader()
            .config_file(data("nova.conf"))
            .config_file(data("ceilometer.conf"))
            .env_vars([("OM__OSLO_MESSAGING_AMQP__SSL_KEY_PASSWORD", "Amqp-Key-Pass")])
            .set_override("oslo_messaging_rabbit", "heartbeat_rate", 6),
    )
}

#[test]
fn secrets_are_masked() {
    let cfg = hybrid();
    let text = cfg.render_effective();
    for secret in ["C3ilo", "K4fkaKeyPass", "Amqp-Key-Pass", "Rabb1t"] {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
    assert!(text.contains(
        "transport_url = rabbit://ceilometer:****@ctl1.example.org:5672,ceilometer:****@ctl2.example.org:5672/\n"
    ));
    assert!(
        text.contains("transport_url = kafka://kafka1.example.org:9092,kafka2.example.org:9092/\n")
    );
    assert!(text.contains("ssl_client_key_password = ****\n"));
    assert!(text.contains("ssl_key_password = ****\n"));
    // The values are still there for the drivers.
    assert_eq!(cfg.kafka.ssl_client_key_password.expose(), "K4fkaKeyPass");
    // Debug output masks them too.
    let debug = format!("{cfg:?}");
    for secret in ["C3ilo", "K4fkaKeyPass", "Amqp-Key-Pass", "Rabb1t"] {
        assert!(!debug.contains(secret), "{secret} leaked in Debug");
    }
}

#[test]
fn every_group_and_option_is_rendered_with_its_origin() {
    let cfg = hybrid();
    let text = cfg.render_effective();
    for group in schema::groups() {
        assert!(
            text.contains(&format!("\n[{}]\n", group.name)),
            "[{}] missing",
            group.name
        );
        for spec in group.options {
            let set = text.contains(&format!("\n{} =", spec.name))
                || text.contains(&format!("\n#{} =", spec.name));
            assert!(set, "[{}] {} missing", group.name, spec.name);
        }
    }
    let nova = data("nova.conf").display().to_string();
    let ceilo = data("ceilometer.conf").display().to_string();
    assert!(
        text.contains(&format!(
            "#   {nova}\n#   {ceilo}\n#   environment (OM__*)\n#   programmatic overrides\n"
        )),
        "{text}"
    );
    // Set values carry their origin; defaults do not.
    assert!(
        text.contains(&format!(
            "# from {nova}, line 13\nrpc_response_timeout = 120\n"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "# from {ceilo}, line 25\nheartbeat_timeout_threshold = 60\n"
        )),
        "{text}"
    );
    assert!(text.contains("# from a programmatic override\nheartbeat_rate = 6\n"));
    assert!(text.contains("# from environment variable OM__OSLO_MESSAGING_AMQP__SSL_KEY_PASSWORD\nssl_key_password = ****\n"));
    assert!(!text.contains("# from the default value"));
    // Defaults are commented out with their value, as oslo-config-generator
    // writes sample files; unset ones show <None>.
    assert!(text.contains("\n#control_exchange = openstack\n"));
    assert!(text.contains("\n#kombu_compression = <None>\n"));
    assert!(text.contains("\n#container_name = <None>\n"));
    assert!(text.contains("\n#kafka_consumer_timeout = 1.0\n"));
    assert!(text.contains("\n#pre_settled = rpc-cast\n#pre_settled = rpc-reply\n"));
    // Multi options: one line per value.
    assert!(
        text.contains("\ndriver = messagingv2\ndriver = log\n"),
        "{text}"
    );
    assert!(text.contains("\ntopics = notifications\n"));
    assert!(text.contains("\nkombu_reconnect_delay = 0.5\n"));
}

#[test]
fn the_rendering_loads_back_to_the_same_options() {
    let cfg = hybrid();
    let text = cfg.render_effective();
    let again = load(loader().ini_text("rendered.conf", text));
    assert!(again.warnings().is_empty(), "{:?}", again.warnings());
    for group in schema::groups() {
        let mut a = cfg
            .group_options(group.name)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut b = again
            .group_options(group.name)
            .unwrap_or_else(|e| panic!("{e}"));
        // Secrets come back masked; everything else is identical.
        for spec in group.options.iter().filter(|s| s.secret) {
            if let (Some(x), Some(y)) = (a.remove(spec.name), b.remove(spec.name)) {
                let masked = om_driver_api::om_core::url::mask_password(&x);
                let expected = if spec.kind == schema::OptionKind::Url {
                    masked
                } else {
                    "****".to_owned()
                };
                assert_eq!(y, expected, "[{}] {}", group.name, spec.name);
            }
        }
        assert_eq!(a, b, "[{}]", group.name);
    }
}

#[test]
fn defaults_only_rendering() {
    let text = om_config::MessagingConfig::default().render_effective();
    assert!(text.contains("# Sources: none (defaults only).\n"));
    assert!(text.contains("\n[DEFAULT]\n#transport_url = rabbit://\n#control_exchange = openstack\n#rpc_response_timeout = 60\n"));
    assert!(text.contains(
        "\n[oslo_messaging_notifications]\n#driver =\n#transport_url = <None>\n#topics = notifications\n#retry = -1\n#routing_config =\n"
    ));
    // Nothing is live: it loads back to the defaults without a warning.
    let again = load(loader().ini_text("defaults.conf", text.clone()));
    assert!(again.warnings().is_empty());
    assert_eq!(again.rabbit, om_config::RabbitOptions::default());
    assert!(!text.contains("# from"));
}
