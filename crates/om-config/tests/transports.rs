//! Opening transports from configuration: what the driver factories get
//! (URL, control exchange, option group), RPC vs notification selection
//! (test case A7), and the in-memory fake:// driver end to end.
//!
//! This test binary registers a recording factory for `rabbit`, `kafka` and
//! `amqp` that notes the `DriverConfig` it is given and opens an in-memory
//! fake driver instead, so no broker is contacted.

mod common;

use common::{data, load, loader};
use om_driver_api::fake::FakeDriverFactory;
use om_driver_api::{BoxFuture, DriverConfig, DriverFactory, DynDriver};
use std::sync::{Arc, Mutex, Once};

static RECORDED: Mutex<Vec<DriverConfig>> = Mutex::new(Vec::new());

struct Recording;

impl DriverFactory for Recording {
    fn schemes(&self) -> &'static [&'static str] {
        &["rabbit", "kafka", "amqp"]
    }
    fn open(
        &self,
        config: DriverConfig,
    ) -> BoxFuture<'static, om_driver_api::om_core::Result<Arc<dyn DynDriver>>> {
        if let Ok(mut r) = RECORDED.lock() {
            r.push(config.clone());
        }
        FakeDriverFactory.open(config)
    }
}

fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| om_driver_api::register_driver(Arc::new(Recording)));
}

/// The config the factory got for the URL whose first host is `host`.
fn recorded_for(host: &str) -> DriverConfig {
    let r = RECORDED.lock().unwrap_or_else(|e| e.into_inner());
    r.iter()
        .rev()
        .find(|c| c.url.hosts.first().is_some_and(|h| h.hostname == host))
        .cloned()
        .unwrap_or_else(|| panic!("no driver opened for {host}"))
}

#[tokio::test]
async fn hybrid_deployment_opens_two_drivers_with_their_groups() {
    register();
    let cfg = load(loader().config_file(data("ceilometer.conf")));
    let rpc = cfg
        .open_rpc_transport()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let notify = cfg
        .open_notification_transport()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rpc.url().driver(), "rabbit");
    assert_eq!(notify.url().driver(), "kafka");

    let got_rpc = recorded_for("ctl1.example.org");
    let want_rpc = cfg.rpc_driver_config().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got_rpc.url, want_rpc.url);
    assert_eq!(got_rpc.control_exchange, "openstack");
    assert_eq!(got_rpc.options, want_rpc.options);
    assert_eq!(
        got_rpc
            .options
            .get("heartbeat_timeout_threshold")
            .map(String::as_str),
        Some("60")
    );

    let got_notify = recorded_for("kafka1.example.org");
    let want_notify = cfg
        .notification_driver_config()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got_notify.url, want_notify.url);
    assert_eq!(got_notify.options, want_notify.options);
    assert_eq!(
        got_notify.options.get("consumer_group").map(String::as_str),
        Some("ceilometer")
    );
    assert_eq!(
        got_notify
            .options
            .get("ssl_client_key_password")
            .map(String::as_str),
        Some("K4fkaKeyPass")
    );
    rpc.cleanup().await;
    notify.cleanup().await;
}

#[tokio::test]
async fn test_case_a7_notifications_fall_back_to_default_transport_url() {
    register();
    // Unset: the notification transport uses [DEFAULT] transport_url.
    let cfg = load(loader().ini_text(
        "a7.conf",
        "[DEFAULT]\ntransport_url = rabbit://a7-rpc-host:5672/\ncontrol_exchange = a7\n",
    ));
    let n = cfg
        .open_notification_transport()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n.url().hosts[0].hostname, "a7-rpc-host");
    assert_eq!(n.control_exchange(), "a7");
    assert_eq!(recorded_for("a7-rpc-host").control_exchange, "a7");

    // Set: notifications use it, RPC keeps [DEFAULT].
    let cfg = load(loader().ini_text(
        "a7.conf",
        "[DEFAULT]\ntransport_url = rabbit://a7-rpc-host2:5672/\n[oslo_messaging_notifications]\ntransport_url = amqp://a7-amqp-host:5672/\n[oslo_messaging_amqp]\naddressing_mode = legacy\n",
    ));
    let rpc = cfg
        .open_rpc_transport()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let n = cfg
        .open_notification_transport()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rpc.url().hosts[0].hostname, "a7-rpc-host2");
    assert_eq!(n.url().hosts[0].hostname, "a7-amqp-host");
    let amqp = recorded_for("a7-amqp-host");
    assert_eq!(
        amqp.options.get("addressing_mode").map(String::as_str),
        Some("legacy")
    );
    assert_eq!(
        amqp.options.get("pre_settled").map(String::as_str),
        Some("rpc-cast,rpc-reply")
    );
    assert!(!amqp.options.contains_key("heartbeat_rate"));
    assert!(
        !amqp.options.contains_key("ssl_key_password"),
        "unset options are not passed"
    );
}

#[tokio::test]
async fn builders_carry_url_exchange_and_options() {
    register();
    let cfg = load(
        loader()
            .ini_text(
                "b.conf",
                "[DEFAULT]\ntransport_url = rabbit://u:p@builder-host:5672/?rabbit_qos_prefetch_count=7\ncontrol_exchange = nova\n",
            )
            .set_override("oslo_messaging_rabbit", "heartbeat_rate", 9),
    );
    let t = cfg
        .rpc_transport()
        .unwrap_or_else(|e| panic!("{e}"))
        .open()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.control_exchange(), "nova");
    let got = recorded_for("builder-host");
    assert_eq!(
        got.url.hosts[0].password.as_ref().map(|p| p.expose()),
        Some("p")
    );
    assert_eq!(
        got.options.get("heartbeat_rate").map(String::as_str),
        Some("9")
    );
    // URL query parameters stay in the URL; the driver applies them on top.
    assert_eq!(
        got.options
            .get("rabbit_qos_prefetch_count")
            .map(String::as_str),
        Some("0")
    );
    assert_eq!(
        got.effective_options()
            .get("rabbit_qos_prefetch_count")
            .map(String::as_str),
        Some("7")
    );
}

#[tokio::test]
async fn fake_transports_open_and_carry_messages() {
    use om_driver_api::om_core::envelope::Format;
    use om_driver_api::om_core::{JsonObject, Priority, Target, Value};
    use om_driver_api::{ListenOptions, Notification};

    let cfg = load(loader().config_file(data("hybrid-fake.conf")));
    let notify = cfg
        .open_notification_transport()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let exchange = notify.control_exchange().to_owned();
    let listen_target = Target::new("notifications").with_exchange(exchange.clone());
    let mut listener = notify
        .driver()
        .listen_for_notifications(
            vec![(listen_target, Priority::Info)],
            None,
            ListenOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut body = JsonObject::new();
    body.insert(
        "event_type".into(),
        Value::from("compute.instance.create.end"),
    );
    let send_target = Target::new("notifications.info").with_exchange(exchange);
    notify
        .driver()
        .send_notification(Notification::new(send_target, body, Format::V2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let msg = match listener.next().await {
        Some(Ok(msg)) => msg,
        Some(Err(e)) => panic!("{e}"),
        None => panic!("listener closed"),
    };
    assert_eq!(
        msg.message.get("event_type"),
        Some(&Value::from("compute.instance.create.end"))
    );
    msg.acknowledge().await.unwrap_or_else(|e| panic!("{e}"));
    notify.cleanup().await;
}

#[tokio::test]
async fn conflicting_options_stop_the_transport_before_the_driver() {
    register();
    let cfg = load(loader().ini_text(
        "c.conf",
        "[DEFAULT]\ntransport_url = rabbit://conflict-host/\n[oslo_messaging_rabbit]\nrpc_conn_pool_size = 1\n",
    ));
    let e = cfg
        .open_rpc_transport()
        .await
        .map(|_| ())
        .expect_err("an error was expected");
    assert_eq!(e.oslo_name(), "ConfigurationError");
    assert!(
        e.to_string()
            .contains("rpc_conn_pool_size from c.conf, line 4"),
        "{e}"
    );
    let none = RECORDED
        .lock()
        .map(|r| {
            r.iter().all(|c| {
                c.url
                    .hosts
                    .first()
                    .is_none_or(|h| h.hostname != "conflict-host")
            })
        })
        .unwrap_or(false);
    assert!(none, "the driver was not opened");
}
