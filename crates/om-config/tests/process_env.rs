//! The default loader reads the process environment. Alone in its test
//! binary because it changes the environment of the process.

mod common;

use om_config::{ConfigLoader, Origin};

#[test]
fn default_loader_reads_om_variables_from_the_process_environment() {
    std::env::set_var("OM__OSLO_MESSAGING_RABBIT__HEARTBEAT_RATE", "5");
    std::env::set_var("OM__DEFAULT__TRANSPORT_URL", "fake:///process-env");
    let file = common::write_conf(
        "p.conf",
        "[oslo_messaging_rabbit]\nheartbeat_rate = 2\nheartbeat_timeout_threshold = 20\n",
    );
    let cfg = common::load(ConfigLoader::new().config_file(&file));
    assert_eq!(cfg.rabbit.heartbeat_rate, 5);
    assert_eq!(cfg.rabbit.heartbeat_timeout_threshold, 20);
    assert_eq!(cfg.default.transport_url.expose(), "fake:///process-env");
    assert_eq!(
        cfg.origin("DEFAULT", "transport_url"),
        Origin::Environment {
            variable: "OM__DEFAULT__TRANSPORT_URL".into()
        }
    );
    assert!(cfg.render_effective().contains("#   environment (OM__*)\n"));
    // no_env() ignores them
    let cfg = common::load(ConfigLoader::new().no_env().config_file(&file));
    assert_eq!(cfg.rabbit.heartbeat_rate, 2);
    std::env::remove_var("OM__OSLO_MESSAGING_RABBIT__HEARTBEAT_RATE");
    std::env::remove_var("OM__DEFAULT__TRANSPORT_URL");
}
