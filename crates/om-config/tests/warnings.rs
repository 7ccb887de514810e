//! Unknown options and deprecated names are accepted with a warning that
//! names file, section and option — in `warnings()` and as a
//! `tracing::warn!` event.

mod common;

use common::{data, load, loader, write_conf};
use om_driver_api::testkit::logs::Captured;

/// Runs `f` with a subscriber capturing WARN and above; returns the log.
fn capture_warnings<T>(f: impl FnOnce() -> T) -> (T, String) {
    let captured = Captured::new();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(captured.make_writer())
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    (out, captured.text())
}

#[test]
fn unknown_option_is_logged_not_fatal() {
    let path = write_conf(
        "unknown.conf",
        "[DEFAULT]\ntransport_url = fake://\n[oslo_messaging_rabbit]\nheartbeat_in_pthread = true\nheartbeat_rate = 4\n",
    );
    let (cfg, log) = capture_warnings(|| load(loader().config_file(&path)));
    assert_eq!(cfg.rabbit.heartbeat_rate, 4, "the rest of the file is used");
    let p = path.display().to_string();
    assert!(log.contains("WARN"), "{log}");
    for needle in [
        p.as_str(),
        "line 4",
        "oslo_messaging_rabbit",
        "heartbeat_in_pthread",
        "unknown option",
    ] {
        assert!(log.contains(needle), "log lacks {needle:?}: {log}");
    }
    let w = &cfg.warnings()[0];
    assert_eq!(cfg.warnings().len(), 1);
    assert_eq!(
        (w.group.as_str(), w.option.as_str()),
        ("oslo_messaging_rabbit", "heartbeat_in_pthread")
    );
    assert_eq!(
        w.origin,
        om_config::Origin::File {
            path: path.clone(),
            line: 4
        }
    );
    assert_eq!(
        w.to_string(),
        format!(
            "{p}, line 4: [oslo_messaging_rabbit] heartbeat_in_pthread: unknown option, ignored"
        )
    );
}

#[test]
fn typos_get_suggestions() {
    let cfg = load(loader().ini_text(
        "typo.conf",
        "[oslo_messaging_rabbit]\nheartbeat_rte = 2\n[DEFAULT]\ncontrol_exchage = nova\n[oslo_messaging_rabit]\nssl = true\n[oslo_messaging_notification]\ndriver = log\n",
    ));
    let w: Vec<String> = cfg.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(w.len(), 4, "{w:?}");
    assert!(
        w[0].contains("typo.conf, line 2: [oslo_messaging_rabbit] heartbeat_rte")
            && w[0].contains("did you mean heartbeat_rate?")
    );
    assert!(
        w[1].contains("[DEFAULT] control_exchage")
            && w[1].contains("did you mean control_exchange?")
    );
    assert!(
        w[2].contains("[oslo_messaging_rabit] ssl")
            && w[2].contains("did you mean [oslo_messaging_rabbit]?")
    );
    assert!(w[3].contains("did you mean [oslo_messaging_notifications]?"));
    assert_eq!(cfg.default.control_exchange, "openstack");
}

#[test]
fn other_projects_options_are_not_warned_about() {
    // nova's own [DEFAULT] options and sections are not messaging options.
    let (cfg, log) = capture_warnings(|| load(loader().config_file(data("neutron.conf"))));
    let w: Vec<String> = cfg.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(
        w.len(),
        1,
        "only the deprecated rpc_thread_pool_size: {w:?}"
    );
    assert!(
        !log.contains("core_plugin") && !log.contains("lock_path"),
        "{log}"
    );
}

#[test]
fn deprecated_names_and_groups_are_accepted_with_a_warning() {
    let (cfg, log) = capture_warnings(|| {
        load(loader().ini_text(
            "old.conf",
            "[DEFAULT]\nrpc_thread_pool_size = 16\n[oslo_messaging_rabbit]\nkombu_reconnect_timeout = 20\nssl_enforce_fips_mode = false\ndirect_mandatory_flag = true\n[amqp1]\nidle_timeout = 7\n",
        ))
    });
    assert_eq!(cfg.default.executor_thread_pool_size, 16);
    assert_eq!(cfg.rabbit.kombu_missing_consumer_retry_timeout, 20);
    assert_eq!(cfg.amqp.idle_timeout, 7);
    let w: Vec<String> = cfg.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(w.len(), 5, "{w:?}");
    assert!(w[0].contains("old.conf, line 2: [DEFAULT] rpc_thread_pool_size"));
    assert!(w[0].contains("Use option \"executor_thread_pool_size\" from group \"DEFAULT\""));
    assert!(w[1].contains("Use option \"kombu_missing_consumer_retry_timeout\""));
    assert!(w[2].contains("ssl_enforce_fips_mode") && w[2].contains("deprecated for removal"));
    assert!(w[3].contains("direct_mandatory_flag") && w[3].contains("deprecated for removal"));
    assert!(
        w[4].contains("[amqp1] idle_timeout")
            && w[4].contains("from group \"oslo_messaging_amqp\"")
    );
    for needle in ["rpc_thread_pool_size", "kombu_reconnect_timeout", "amqp1"] {
        assert!(log.contains(needle), "log lacks {needle}: {log}");
    }
    // The driver gets the current names only.
    let dc = cfg.rpc_driver_config().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        dc.options
            .get("kombu_missing_consumer_retry_timeout")
            .map(String::as_str),
        Some("20")
    );
    assert!(!dc.options.contains_key("kombu_reconnect_timeout"));
}

#[test]
fn empty_numbers_fall_back_to_the_default_with_a_warning() {
    let cfg = load(loader().ini_text("e.conf", "[oslo_messaging_rabbit]\nheartbeat_rate =\n"));
    assert_eq!(cfg.rabbit.heartbeat_rate, 3);
    assert!(cfg.warnings()[0]
        .to_string()
        .contains("e.conf, line 2: [oslo_messaging_rabbit] heartbeat_rate: empty value"));
}
