//! The driver against RabbitMQ's AMQP 1.0 plugin (`OM_AMQP1_BROKER_URL`,
//! legacy addressing): the layout of what it sends as a raw fe2o3 peer
//! sees it, the RabbitMQ-specific reply queue and fanout, cleanup of what
//! the driver creates, and a Python-style peer's fanout. Without the
//! variable each test prints `SKIPPED (OM_AMQP1_BROKER_URL not set)` and
//! passes, unless `OM_REQUIRE_BROKERS=1`.
#![allow(clippy::unwrap_used)]

mod support;

use fe2o3_amqp::link::CreditMode;
use fe2o3_amqp::types::messaging::{AmqpValue, Body, Message, MessageId, Properties};
use fe2o3_amqp::types::primitives::Value as AmqpValueType;
use fe2o3_amqp::{Connection, Receiver, Sendable, Sender, Session};
use om_driver_amqp1::{Amqp1Driver, Syntax};
use om_driver_api::om_core::envelope::Format;
use om_driver_api::om_core::{JsonObject, Target, TransportUrl, Value};
use om_driver_api::{
    Driver, DriverConfig, ListenOptions, Listener, Notification, ReplyEvent, Retry, RpcRequest,
};
use serde_json::json;
use std::time::Duration;
use support::{uniq, with_options, WAIT};

fn obj(v: Value) -> JsonObject {
    v.as_object().cloned().unwrap_or_default()
}

fn driver(url: &str) -> Amqp1Driver {
    let url: TransportUrl = url.parse().expect("url");
    Amqp1Driver::new(&DriverConfig::new(url)).expect("driver")
}

/// A raw peer on fe2o3 (no om code).
struct Raw {
    _conn: fe2o3_amqp::connection::ConnectionHandle<()>,
    session: fe2o3_amqp::session::SessionHandle<()>,
}

impl Raw {
    async fn connect(url: &str) -> Raw {
        let mut conn = Connection::open("raw-peer", url.trim_end_matches('/'))
            .await
            .expect("raw connect");
        let session = Session::begin(&mut conn).await.expect("raw session");
        Raw {
            _conn: conn,
            session,
        }
    }

    async fn receiver(&mut self, address: &str) -> Receiver {
        Receiver::builder()
            .name(uniq("raw-recv"))
            .source(address)
            .credit_mode(CreditMode::Auto(10))
            .attach(&mut self.session)
            .await
            .expect("raw receiver")
    }

    async fn sender(&mut self, address: &str) -> Sender {
        Sender::builder()
            .name(uniq("raw-send"))
            .target(address)
            .attach(&mut self.session)
            .await
            .expect("raw sender")
    }
}

async fn recv_raw(r: &mut Receiver) -> Message<Body<AmqpValueType>> {
    let d = tokio::time::timeout(WAIT, r.recv::<Body<AmqpValueType>>())
        .await
        .expect("raw receive timed out")
        .expect("raw receive");
    r.accept(&d).await.expect("accept");
    d.message().clone()
}

fn body_string(m: &Message<Body<AmqpValueType>>) -> String {
    match &m.body {
        Body::Value(AmqpValue(AmqpValueType::String(s))) => s.clone(),
        other => panic!("body is not an amqp-value string: {other:?}"),
    }
}

fn message(to: &str, correlation: &str, body: Body<AmqpValueType>) -> Message<Body<AmqpValueType>> {
    Message {
        header: None,
        delivery_annotations: None,
        message_annotations: None,
        properties: Some(Properties {
            to: Some(to.to_owned()),
            correlation_id: Some(MessageId::String(correlation.to_owned())),
            ..Default::default()
        }),
        application_properties: None,
        body,
        footer: None,
    }
}

async fn next(l: &mut Box<dyn Listener>) -> om_driver_api::IncomingMessage {
    tokio::time::timeout(WAIT, l.next())
        .await
        .expect("listener timed out")
        .expect("listener ended")
        .expect("listener error")
}

/// Queue names on the broker, through `OM_RABBIT_CTL` (`<prefix> ctl
/// list_queues name`), when the test environment provides it.
fn list_queues() -> Option<Vec<String>> {
    let ctl = std::env::var("OM_RABBIT_CTL")
        .ok()
        .filter(|c| !c.trim().is_empty())?;
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{ctl} ctl list_queues -q name"))
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect(),
    )
}

/// `dynamic` addressing picks legacy on RabbitMQ (om's deliberate
/// deviation: Python picks routable, which RabbitMQ refuses).
#[tokio::test]
async fn dynamic_mode_picks_legacy_on_rabbitmq() {
    let Some(url) = support::broker_url("dynamic_mode_picks_legacy_on_rabbitmq") else {
        return;
    };
    let d = driver(&url);
    d.connect(WAIT).await.expect("connect");
    assert_eq!(d.peer_product().as_deref(), Some("RabbitMQ"));
    assert_eq!(d.current_syntax(), Some(Syntax::Legacy));
    assert!(d.capabilities().retains_unconsumed_notifications);
    d.cleanup().await;
}

/// test-cases.md 108 on RabbitMQ: a call's layout as a raw peer receives
/// it from the legacy anycast queue; the raw peer's heartbeat (which
/// RabbitMQ turns into an empty data section) and reply reach the caller.
#[tokio::test]
async fn call_layout_and_raw_reply_through_rabbitmq() {
    let Some(url) = support::broker_url("call_layout_and_raw_reply_through_rabbitmq") else {
        return;
    };
    support::init_logs();
    let d = driver(&with_options(&url, &[("addressing_mode", "legacy")]));
    let topic = uniq("layout");
    let address = format!("unicast.openstack.{topic}");
    let mut raw = Raw::connect(&url).await;
    let mut rx = raw.receiver(&address).await;
    let call = RpcRequest::call(
        Target::new(&topic),
        obj(json!({"method": "echo", "args": {"x": 1}})),
        Duration::from_secs(8),
    )
    .with_context(obj(json!({"user": "bob"})));
    let mut stream = d.send(call).await.expect("call").expect("stream");
    let m = recv_raw(&mut rx).await;
    assert_eq!(
        body_string(&m),
        r#"{"request": {"method": "echo", "args": {"x": 1}}, "context": {"user": "bob"}}"#
    );
    let p = m.properties.clone().expect("properties");
    assert_eq!(p.to.as_deref(), Some(address.as_str()));
    let msg_id = match &p.message_id {
        Some(MessageId::String(s)) => s.clone(),
        other => panic!("message-id {other:?}"),
    };
    assert_eq!(msg_id, stream.msg_id());
    let reply_to = p.reply_to.clone().expect("reply-to");
    assert!(
        reply_to.starts_with("/amq/queue/om.reply."),
        "reply-to {reply_to}"
    );
    assert_eq!(m.header.as_ref().and_then(|h| h.ttl), Some(8000));

    let mut tx = raw.sender(&reply_to).await;
    let hb = message(&reply_to, &msg_id, Body::Data(Vec::new().into()));
    tx.send(Sendable::builder().message(hb).settled(true).build())
        .await
        .expect("heartbeat");
    let reply = message(
        &reply_to,
        &msg_id,
        Body::Value(AmqpValue(AmqpValueType::String(
            r#"{"response": "hi"}"#.into(),
        ))),
    );
    tx.send(Sendable::builder().message(reply).settled(true).build())
        .await
        .expect("reply");
    assert_eq!(
        tokio::time::timeout(WAIT, stream.next()).await.unwrap(),
        Some(ReplyEvent::Heartbeat)
    );
    assert_eq!(
        tokio::time::timeout(WAIT, stream.next()).await.unwrap(),
        Some(ReplyEvent::Final(Ok(json!("hi"))))
    );
    d.cleanup().await;
}

/// Fanout on RabbitMQ goes through `amq.topic` with the broadcast address
/// as key, as a Python peer configured with `broadcast_prefix =
/// /topic/broadcast` sends and receives it.
#[tokio::test]
async fn fanout_interoperates_with_a_topic_broadcast_peer() {
    let Some(url) = support::broker_url("fanout_interoperates_with_a_topic_broadcast_peer") else {
        return;
    };
    let d = driver(&with_options(&url, &[("addressing_mode", "legacy")]));
    let topic = uniq("fan");
    let key = format!("broadcast.openstack.{topic}.all");
    let mut raw = Raw::connect(&url).await;
    // A Python-style server's fanout receiver. RabbitMQ creates an
    // `amq.gen-…` queue for it and never deletes it (the leak om avoids);
    // the test removes it afterwards when it can.
    let gen_before: Vec<String> = list_queues()
        .unwrap_or_default()
        .into_iter()
        .filter(|q| q.starts_with("amq.gen-"))
        .collect();
    let mut py_server = raw.receiver(&format!("/topic/{key}")).await;
    let leaked: Vec<String> = list_queues()
        .unwrap_or_default()
        .into_iter()
        .filter(|q| q.starts_with("amq.gen-") && !gen_before.contains(q))
        .collect();
    let mut om_server = d
        .listen(
            Target::new(&topic).with_server("s1"),
            ListenOptions::default(),
        )
        .await
        .expect("listen");
    d.send(RpcRequest::cast(
        Target::new(&topic).with_fanout(true),
        obj(json!({"method": "f", "args": {}})),
    ))
    .await
    .expect("fanout");
    let m = recv_raw(&mut py_server).await;
    assert_eq!(
        body_string(&m),
        r#"{"request": {"method": "f", "args": {}}, "context": {}}"#
    );
    assert_eq!(
        m.properties.and_then(|p| p.to).as_deref(),
        Some(format!("/topic/{key}").as_str())
    );
    next(&mut om_server).await.acknowledge().await.expect("ack");
    // A Python-style client's fanout reaches the om server.
    let mut tx = raw.sender(&format!("/topic/{key}")).await;
    let body = Body::Value(AmqpValue(AmqpValueType::String(
        r#"{"request": {"method": "g", "args": {}}, "context": {}}"#.into(),
    )));
    tx.send(message(&format!("/topic/{key}"), "x", body))
        .await
        .expect("raw fanout");
    let got = next(&mut om_server).await;
    assert_eq!(got.message.get("method"), Some(&json!("g")));
    assert!(!got.is_call());
    got.acknowledge().await.expect("ack");
    om_server.cleanup().await.expect("cleanup");
    d.cleanup().await;
    drop(py_server);
    drop(raw);
    if let Ok(ctl) = std::env::var("OM_RABBIT_CTL") {
        for q in leaked {
            let _ = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("{ctl} ctl delete_queue -q '{q}'"))
                .output();
        }
    }
}

/// What the driver creates on RabbitMQ it deletes: the reply queue on
/// driver cleanup, each server's fanout queue on listener cleanup. (Needs
/// `OM_RABBIT_CTL` to list queues; `cargo xtask test` sets it.)
#[tokio::test]
async fn per_process_queues_are_deleted() {
    let Some(url) = support::broker_url("per_process_queues_are_deleted") else {
        return;
    };
    if list_queues().is_none() {
        assert!(
            !om_driver_api::testkit::brokers_required(),
            "OM_REQUIRE_BROKERS is set but OM_RABBIT_CTL cannot list queues"
        );
        println!("per_process_queues_are_deleted: SKIPPED (OM_RABBIT_CTL not set)");
        return;
    }
    let d = driver(&with_options(&url, &[("addressing_mode", "legacy")]));
    let topic = uniq("clean");
    let mut l = d
        .listen(
            Target::new(&topic).with_server("s1"),
            ListenOptions::default(),
        )
        .await
        .expect("listen");
    let mut s = d
        .send(RpcRequest::call(
            Target::new(&topic),
            obj(json!({"method": "m", "args": {}})),
            WAIT,
        ))
        .await
        .expect("call")
        .expect("stream");
    let m = next(&mut l).await;
    m.acknowledge().await.unwrap();
    m.reply(Ok(json!(1))).await.unwrap();
    assert_eq!(s.next().await, Some(ReplyEvent::Final(Ok(json!(1)))));
    let fanout_prefix = format!("broadcast.openstack.{topic}.all.");
    let queues = list_queues().expect("queues");
    assert!(
        queues.iter().any(|q| q.starts_with(&fanout_prefix)),
        "no fanout queue in {queues:?}"
    );
    let replies_before: Vec<String> = queues
        .iter()
        .filter(|q| q.starts_with("om.reply."))
        .cloned()
        .collect();
    assert!(!replies_before.is_empty());
    l.cleanup().await.expect("listener cleanup");
    d.cleanup().await;
    let queues = list_queues().expect("queues");
    assert!(
        !queues.iter().any(|q| q.starts_with(&fanout_prefix)),
        "fanout queue left: {queues:?}"
    );
    let left: Vec<&String> = queues
        .iter()
        .filter(|q| q.starts_with("om.reply.") && replies_before.contains(q))
        .collect();
    // Other tests running at the same time have their own reply queues;
    // exactly one of those seen before was ours.
    assert!(
        left.len() < replies_before.len(),
        "our reply queue is still there: {left:?}"
    );
}

/// Notifications are kept in their legacy queue until a listener comes;
/// a requeued one comes back.
#[tokio::test]
async fn notifications_are_retained_and_requeued() {
    let Some(url) = support::broker_url("notifications_are_retained_and_requeued") else {
        return;
    };
    let d = driver(&with_options(&url, &[("addressing_mode", "legacy")]));
    let topic = uniq("keep");
    let n = Notification::new(
        Target::new(format!("{topic}.info")),
        obj(json!({"message_id": "m1", "event_type": "e"})),
        Format::V2,
    );
    d.send_notification(n)
        .await
        .expect("sent before any listener");
    let mut l = d
        .listen_for_notifications(
            vec![(Target::new(&topic), om_driver_api::om_core::Priority::Info)],
            None,
            ListenOptions::default(),
        )
        .await
        .expect("listen");
    let m = next(&mut l).await;
    assert_eq!(m.message.get("event_type"), Some(&json!("e")));
    assert_eq!(m.unique_id.as_deref(), Some("m1"));
    m.requeue().await.expect("requeue");
    let again = next(&mut l).await;
    assert_eq!(again.message.get("message_id"), Some(&json!("m1")));
    again.acknowledge().await.expect("ack");
    l.cleanup().await.expect("cleanup");
    d.cleanup().await;
}

/// Bad credentials: sends fail with MessageDeliveryFailure once the
/// retries are used up, without printing the password.
#[tokio::test]
async fn wrong_password_fails_cleanly() {
    let Some(url) = support::broker_url("wrong_password_fails_cleanly") else {
        return;
    };
    let Ok(parsed) = url.parse::<TransportUrl>() else {
        panic!("bad OM_AMQP1_BROKER_URL")
    };
    let Some(host) = parsed.hosts.first() else {
        panic!("no host in OM_AMQP1_BROKER_URL")
    };
    let bad = format!(
        "amqp://nobody:not-the-password@{}/?addressing_mode=legacy",
        host.address(5672)
    );
    let d = driver(&bad);
    let e = d
        .send(
            RpcRequest::cast(Target::new(uniq("pw")), obj(json!({"method": "m"})))
                .with_retry(Retry::Limited(1)),
        )
        .await
        .unwrap_err();
    assert_eq!(e.oslo_name(), "MessageDeliveryFailure", "{e}");
    assert!(!e.to_string().contains("not-the-password"), "{e}");
    d.cleanup().await;
}
