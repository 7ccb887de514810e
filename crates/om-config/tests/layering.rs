//! Layering: defaults < file 1 < file 2 < environment < overrides, and
//! oslo's INI details (multi-valued options, deprecated names, sections).

mod common;

use common::{load, load_err, loader, write_conf};
use om_config::{ConfigLoader, Origin};
use std::path::PathBuf;

fn two_files() -> (PathBuf, PathBuf) {
    let f1 = write_conf(
        "base.conf",
        "[DEFAULT]\ntransport_url = rabbit://base-host/\ncontrol_exchange = base\n\n[oslo_messaging_rabbit]\nheartbeat_rate = 1\nrabbit_qos_prefetch_count = 10\n",
    );
    let f2 = write_conf(
        "site.conf",
        "[oslo_messaging_rabbit]\nheartbeat_rate = 2\n\n[oslo_messaging_notifications]\ntopics = site\n",
    );
    (f1, f2)
}

#[test]
fn file1_lt_file2_lt_env_lt_override() {
    let (f1, f2) = two_files();
    let origin_f1 = Origin::File {
        path: f1.clone(),
        line: 6,
    };
    let origin_f2 = Origin::File {
        path: f2.clone(),
        line: 2,
    };

    let cfg = load(loader().config_file(&f1));
    assert_eq!(cfg.rabbit.heartbeat_rate, 1);
    assert_eq!(
        cfg.origin("oslo_messaging_rabbit", "heartbeat_rate"),
        origin_f1
    );

    let cfg = load(loader().config_file(&f1).config_file(&f2));
    assert_eq!(cfg.rabbit.heartbeat_rate, 2);
    assert_eq!(
        cfg.origin("oslo_messaging_rabbit", "heartbeat_rate"),
        origin_f2
    );
    // what file 2 does not set stays from file 1
    assert_eq!(cfg.rabbit.rabbit_qos_prefetch_count, 10);
    assert_eq!(cfg.default.control_exchange, "base");

    let env = [("OM__OSLO_MESSAGING_RABBIT__HEARTBEAT_RATE", "3")];
    let cfg = load(loader().config_file(&f1).config_file(&f2).env_vars(env));
    assert_eq!(cfg.rabbit.heartbeat_rate, 3);
    assert_eq!(
        cfg.origin("oslo_messaging_rabbit", "heartbeat_rate"),
        Origin::Environment {
            variable: "OM__OSLO_MESSAGING_RABBIT__HEARTBEAT_RATE".into()
        }
    );

    let cfg = load(
        loader()
            .config_file(&f1)
            .config_file(&f2)
            .env_vars(env)
            .set_override("oslo_messaging_rabbit", "heartbeat_rate", 4),
    );
    assert_eq!(cfg.rabbit.heartbeat_rate, 4);
    assert_eq!(
        cfg.origin("oslo_messaging_rabbit", "heartbeat_rate"),
        Origin::Override
    );
    assert_eq!(cfg.rabbit.rabbit_qos_prefetch_count, 10);
    assert_eq!(cfg.notifications.topics, vec!["site"]);
    assert_eq!(
        cfg.origin("oslo_messaging_rabbit", "heartbeat_timeout_threshold"),
        Origin::Default
    );

    // The driver sees the winning value.
    let dc = cfg.rpc_driver_config().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        dc.options.get("heartbeat_rate").map(String::as_str),
        Some("4")
    );
    assert_eq!(dc.control_exchange, "base");
}

#[test]
fn file_order_is_the_order_given() {
    let (f1, f2) = two_files();
    let cfg = load(loader().config_file(&f2).config_file(&f1));
    assert_eq!(cfg.rabbit.heartbeat_rate, 1);
}

#[test]
fn environment_sets_default_group_and_any_group() {
    let (f1, _) = two_files();
    let cfg = load(loader().config_file(&f1).env_vars([
        (
            "OM__DEFAULT__TRANSPORT_URL",
            "rabbit://env-user:env-pass@env-host:5673/env",
        ),
        ("OM__DEFAULT__CONTROL_EXCHANGE", "from-env"),
        (
            "OM__OSLO_MESSAGING_NOTIFICATIONS__TRANSPORT_URL",
            "kafka://k1:9092/",
        ),
        ("OM__OSLO_MESSAGING_KAFKA__CONSUMER_GROUP", "env-group"),
        ("UNRELATED_VARIABLE", "x"),
        ("OMNIBUS", "not our prefix"),
    ]));
    let rpc = cfg.rpc_driver_config().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rpc.url.hosts[0].hostname, "env-host");
    assert_eq!(
        rpc.url.hosts[0].password.as_ref().map(|p| p.expose()),
        Some("env-pass")
    );
    assert_eq!(rpc.control_exchange, "from-env");
    let n = cfg
        .notification_driver_config()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n.url.driver(), "kafka");
    assert_eq!(
        n.options.get("consumer_group").map(String::as_str),
        Some("env-group")
    );
    assert!(cfg.warnings().is_empty(), "{:?}", cfg.warnings());
}

#[test]
fn custom_environment_prefix() {
    let cfg = load(loader().env_prefix("NOVA").env_vars([
        ("NOVA__DEFAULT__RPC_RESPONSE_TIMEOUT", "33"),
        ("OM__DEFAULT__RPC_RESPONSE_TIMEOUT", "44"),
    ]));
    assert_eq!(cfg.default.rpc_response_timeout, 33);
}

#[test]
fn environment_replaces_multi_values_and_splits_commas() {
    let f = write_conf(
        "multi.conf",
        "[oslo_messaging_notifications]\ndriver = messagingv2\ndriver = routing\n",
    );
    let cfg = load(loader().config_file(&f));
    assert_eq!(cfg.notifications.driver, vec!["messagingv2", "routing"]);
    let cfg = load(
        loader()
            .config_file(&f)
            .env_vars([("OM__OSLO_MESSAGING_NOTIFICATIONS__DRIVER", "messaging, log")]),
    );
    assert_eq!(cfg.notifications.driver, vec!["messaging", "log"]);
    let cfg = load(loader().config_file(&f).set_override(
        "oslo_messaging_notifications",
        "driver",
        vec!["noop"],
    ));
    assert_eq!(cfg.notifications.driver, vec!["noop"]);
    assert!(cfg.notifications.disabled());
}

#[test]
fn environment_accepts_deprecated_names_with_a_warning() {
    let cfg = load(loader().env_vars([
        ("OM__DEFAULT__RPC_THREAD_POOL_SIZE", "7"),
        ("OM__OSLO_MESSAGING_RABBIT__KOMBU_RECONNECT_TIMEOUT", "15"),
    ]));
    assert_eq!(cfg.default.executor_thread_pool_size, 7);
    assert_eq!(cfg.rabbit.kombu_missing_consumer_retry_timeout, 15);
    let w: Vec<String> = cfg.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w
        .iter()
        .any(|w| w.contains("OM__DEFAULT__RPC_THREAD_POOL_SIZE")
            && w.contains("executor_thread_pool_size")));
    assert!(w.iter().any(
        |w| w.contains("OM__OSLO_MESSAGING_RABBIT__KOMBU_RECONNECT_TIMEOUT")
            && w.contains("kombu_missing_consumer_retry_timeout")
    ));
}

#[test]
fn environment_variables_that_name_nothing_are_warned_about() {
    let cfg = load(loader().env_vars([
        ("OM__TRANSPORT_URL", "rabbit://x/"),
        ("OM__OSLO_MESSAGING_RABBIT__NO_SUCH_THING", "1"),
        ("OM__OSLO_MESSAGING_RABBIT__HEARTBEAT_RTE", "1"),
    ]));
    let w: Vec<String> = cfg.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(w
        .iter()
        .any(|w| w.contains("OM__TRANSPORT_URL") && w.contains("OM__<SECTION>__<OPTION>")));
    assert!(w
        .iter()
        .any(|w| w.contains("OM__OSLO_MESSAGING_RABBIT__NO_SUCH_THING")
            && w.contains("no_such_thing")));
    assert!(w.iter().any(|w| w.contains("did you mean heartbeat_rate")));
    assert_eq!(cfg.rabbit.heartbeat_rate, 3);
}

#[test]
fn multi_option_repeated_and_comma_separated_in_one_file() {
    let cfg = load(loader().ini_text(
        "n.conf",
        "[oslo_messaging_notifications]\ndriver = messagingv2, log\ndriver = noop\ntopics = [a, b ,c]\n",
    ));
    assert_eq!(cfg.notifications.driver, vec!["messagingv2", "log", "noop"]);
    assert!(!cfg.notifications.disabled());
    assert_eq!(cfg.notifications.topics, vec!["a", "b", "c"]);
    let dc = cfg
        .notification_driver_config()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        dc.options.contains_key("heartbeat_rate"),
        "default rabbit:// URL gets the rabbit group"
    );
}

#[test]
fn scalar_repeated_in_one_file_last_wins() {
    let cfg = load(loader().ini_text(
        "r.conf",
        "[oslo_messaging_rabbit]\nheartbeat_rate = 1\nheartbeat_rate = 9\n[DEFAULT]\nx = 1\n[oslo_messaging_rabbit]\nrabbit_qos_prefetch_count = 5\n",
    ));
    assert_eq!(cfg.rabbit.heartbeat_rate, 9);
    assert_eq!(
        cfg.rabbit.rabbit_qos_prefetch_count, 5,
        "a section may be written twice"
    );
}

#[test]
fn current_name_beats_deprecated_name_in_a_file_but_not_a_later_file() {
    let a = write_conf(
        "a.conf",
        "[oslo_messaging_rabbit]\nkombu_missing_consumer_retry_timeout = 30\nkombu_reconnect_timeout = 99\n",
    );
    let cfg = load(loader().config_file(&a));
    assert_eq!(cfg.rabbit.kombu_missing_consumer_retry_timeout, 30);
    let b = write_conf(
        "b.conf",
        "[oslo_messaging_rabbit]\nkombu_reconnect_timeout = 45\n",
    );
    let cfg = load(loader().config_file(&a).config_file(&b));
    assert_eq!(cfg.rabbit.kombu_missing_consumer_retry_timeout, 45);
}

#[test]
fn section_names_are_case_insensitive_except_default() {
    let cfg = load(loader().ini_text(
        "c.conf",
        "[OSLO_MESSAGING_RABBIT]\nheartbeat_rate = 7\n[default]\nrpc_response_timeout = 5\n",
    ));
    assert_eq!(cfg.rabbit.heartbeat_rate, 7);
    assert_eq!(
        cfg.default.rpc_response_timeout, 60,
        "[default] is not [DEFAULT]"
    );
    assert!(cfg
        .warnings()
        .iter()
        .any(|w| w.group == "default" && w.message.contains("case-sensitive")));
}

#[test]
fn ini_details_quotes_equals_continuations() {
    let cfg = load(loader().ini_text(
        "q.conf",
        "; comment\n# comment\n[DEFAULT]\ntransport_url = \"rabbit://user:p=w:x@host:5672/vh\"\ncontrol_exchange: colon-style\n\n[oslo_messaging_notifications]\ntopics = a,\n  b\n",
    ));
    let url = cfg
        .default
        .transport_url
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        url.hosts[0].password.as_ref().map(|p| p.expose()),
        Some("p=w:x")
    );
    assert_eq!(url.virtual_host.as_deref(), Some("vh"));
    assert_eq!(cfg.default.control_exchange, "colon-style");
    assert_eq!(cfg.notifications.topics, vec!["a", "b"]);
}

#[test]
fn overrides_are_typed_and_accept_old_names() {
    let cfg = load(
        loader()
            .set_override("DEFAULT", "rpc_ping_enabled", true)
            .set_override("DEFAULT", "rpc_thread_pool_size", 12)
            .set_override("oslo_messaging_rabbit", "kombu_reconnect_delay", 2.5)
            .set_override("oslo_messaging_notifications", "topics", vec!["x", "y"])
            .set_override("oslo_messaging_notifications", "transport_url", "fake://"),
    );
    assert!(cfg.default.rpc_ping_enabled);
    assert_eq!(cfg.default.executor_thread_pool_size, 12);
    assert_eq!(cfg.rabbit.kombu_reconnect_delay, 2.5);
    assert_eq!(cfg.notifications.topics, vec!["x", "y"]);
    assert_eq!(
        cfg.notification_url().1.group,
        "oslo_messaging_notifications"
    );
    assert!(cfg
        .warnings()
        .iter()
        .any(|w| w.option == "rpc_thread_pool_size"));
}

#[test]
fn overrides_naming_nothing_fail() {
    let e = load_err(loader().set_override("oslo_messaging_rabbit", "heartbeat_rte", 1));
    common::assert_mentions(
        &e.to_string(),
        &[
            "[oslo_messaging_rabbit] heartbeat_rte",
            "did you mean heartbeat_rate",
        ],
    );
    let e = load_err(loader().set_override("oslo_messaging_rabit", "heartbeat_rate", 1));
    common::assert_mentions(&e.to_string(), &["oslo_messaging_rabit", "no such section"]);
    // overrides are checked like any value
    let e = load_err(loader().set_override("oslo_messaging_rabbit", "heartbeat_rate", "often"));
    common::assert_mentions(
        &e.to_string(),
        &[
            "a programmatic override",
            "[oslo_messaging_rabbit] heartbeat_rate",
            "an integer",
        ],
    );
}

#[test]
fn project_defaults_sit_below_files() {
    let cfg = load(ConfigLoader::new().no_env().set_transport_defaults("nova"));
    assert_eq!(cfg.default.control_exchange, "nova");
    assert_eq!(cfg.origin("DEFAULT", "control_exchange"), Origin::Default);
    let cfg = load(
        loader()
            .set_transport_defaults("nova")
            .ini_text("x.conf", "[DEFAULT]\ncontrol_exchange = mine\n"),
    );
    assert_eq!(cfg.default.control_exchange, "mine");
}

#[test]
fn driver_extension_options_pass_through_instead_of_being_dropped() {
    let text = "[DEFAULT]\ntransport_url = kafka://k:9092/\n[oslo_messaging_kafka]\nauto_offset_reset = earliest\nsession_timeout_ms = 30000\n";
    let cfg = load(loader().ini_text("k.conf", text));
    assert_eq!(
        cfg.warnings().len(),
        2,
        "unknown to oslo: warned and dropped by default"
    );
    let dc = cfg.rpc_driver_config().unwrap_or_else(|e| panic!("{e}"));
    assert!(!dc.options.contains_key("auto_offset_reset"));

    let cfg = load(
        loader()
            .driver_extension_options(
                "oslo_messaging_kafka",
                ["auto_offset_reset", "session_timeout_ms"],
            )
            .ini_text("k.conf", text)
            .env_vars([("OM__OSLO_MESSAGING_KAFKA__SESSION_TIMEOUT_MS", "45000")]),
    );
    assert!(cfg.warnings().is_empty(), "{:?}", cfg.warnings());
    let dc = cfg.rpc_driver_config().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        dc.options.get("auto_offset_reset").map(String::as_str),
        Some("earliest")
    );
    assert_eq!(
        dc.options.get("session_timeout_ms").map(String::as_str),
        Some("45000")
    );
    assert!(cfg
        .render_effective()
        .contains("auto_offset_reset = earliest"));
}

#[test]
fn loader_debug_output_has_no_values() {
    let l = loader()
        .ini_text("x.conf", "[DEFAULT]\n")
        .env_vars([("OM__DEFAULT__TRANSPORT_URL", "rabbit://u:EnvSecret@h/")])
        .set_override("DEFAULT", "transport_url", "rabbit://u:OverrideSecret@h/");
    let d = format!("{l:?}");
    assert!(
        !d.contains("EnvSecret") && !d.contains("OverrideSecret"),
        "{d}"
    );
    common::assert_mentions(
        &d,
        &[
            "text x.conf",
            "1 given variables (OM__*)",
            "[DEFAULT] transport_url",
        ],
    );
}
