//! The driver against the router fixture (routable addressing): the wire
//! layout of what it sends and answers (checked by a raw fe2o3 peer
//! against `wire-amqp1.md`), links, settlement outcomes, credit,
//! reconnection, SASL, and the fixture's own router features.
#![allow(clippy::unwrap_used)]

mod support;

use fe2o3_amqp::link::CreditMode;
use fe2o3_amqp::types::messaging::{
    AmqpValue, Body, Message, MessageId, Outcome, Properties, Source,
};
use fe2o3_amqp::types::primitives::Value as AmqpValueType;
use fe2o3_amqp::{Connection, Receiver, Sendable, Sender, Session};
use om_driver_amqp1::{Amqp1Driver, Syntax};
use om_driver_api::om_core::envelope::Format;
use om_driver_api::om_core::{JsonObject, Priority, RemoteError, Target, TransportUrl, Value};
use om_driver_api::{
    Driver, DriverConfig, ListenOptions, Listener, Notification, ReplyEvent, Retry, RpcRequest,
};
use serde_json::json;
use std::time::{Duration, Instant};
use support::router::{Router, Scripted};
use support::{uniq, with_options, WAIT};

const USER: (&str, &str) = ("om", "secret");

/// Polls `cond` every 20 ms until it holds; panics after 60 s (generous:
/// the machine running the tests may be busy).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn obj(v: Value) -> JsonObject {
    v.as_object().cloned().unwrap_or_default()
}

fn driver(url: &str) -> Amqp1Driver {
    let url: TransportUrl = url.parse().expect("url");
    Amqp1Driver::new(&DriverConfig::new(url)).expect("driver")
}

async fn routable(router: &Router, extra: &[(&str, &str)]) -> Amqp1Driver {
    let mut opts = vec![("addressing_mode", "routable")];
    opts.extend_from_slice(extra);
    driver(&with_options(&router.url(Some(USER)), &opts))
}

/// A raw AMQP 1.0 peer written directly on fe2o3 (no om code).
struct Raw {
    _conn: fe2o3_amqp::connection::ConnectionHandle<()>,
    session: fe2o3_amqp::session::SessionHandle<()>,
}

impl Raw {
    async fn connect(router: &Router) -> Raw {
        let url = format!("amqp://{}:{}@{}", USER.0, USER.1, router.addr());
        let mut conn = Connection::open("raw-peer", url.as_str())
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

    async fn dynamic_receiver(&mut self) -> (Receiver, String) {
        let r = Receiver::builder()
            .name(uniq("raw-dyn"))
            .source(Source::builder().dynamic(true).build())
            .attach(&mut self.session)
            .await
            .expect("raw dynamic receiver");
        let addr = r
            .source()
            .as_ref()
            .and_then(|s| s.address.clone())
            .expect("dynamic address");
        (r, addr)
    }

    async fn sender(&mut self, address: Option<&str>) -> Sender {
        let b = Sender::builder().name(uniq("raw-send"));
        match address {
            Some(a) => b.target(a).attach(&mut self.session).await,
            None => {
                b.target(fe2o3_amqp::types::messaging::Target::builder().build())
                    .attach(&mut self.session)
                    .await
            }
        }
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

fn id_string(id: &Option<MessageId>) -> String {
    match id {
        Some(MessageId::String(s)) => s.clone(),
        other => panic!("expected a string id, got {other:?}"),
    }
}

fn raw_message(
    to: &str,
    props: Properties,
    body: Body<AmqpValueType>,
) -> Message<Body<AmqpValueType>> {
    Message {
        header: None,
        delivery_annotations: None,
        message_annotations: None,
        properties: Some(Properties {
            to: Some(to.to_owned()),
            ..props
        }),
        application_properties: None,
        body,
        footer: None,
    }
}

/// Sends, from a raw peer's sender, a call with `body` (the request JSON)
/// to server `s1` of `topic` (routable unicast address), with `msg_id` and
/// `reply_to`; the router must accept it.
async fn send_raw_call(tx: &mut Sender, topic: &str, msg_id: &str, reply_to: &str, body: &str) {
    let req = raw_message(
        &format!("openstack.org/om/rpc/unicast/openstack/{topic}/s1"),
        Properties {
            message_id: Some(MessageId::String(msg_id.into())),
            reply_to: Some(reply_to.into()),
            ..Default::default()
        },
        Body::Value(AmqpValue(AmqpValueType::String(body.into()))),
    );
    let out = tx.send(req).await.expect("request sent");
    assert!(matches!(out, Outcome::Accepted(_)), "{out:?}");
}

async fn next(l: &mut Box<dyn Listener>) -> om_driver_api::IncomingMessage {
    tokio::time::timeout(WAIT, l.next())
        .await
        .expect("listener timed out")
        .expect("listener ended")
        .expect("listener error")
}

/// test-cases.md 108: a call's layout, and a hand-written reply and
/// heartbeat reaching the caller.
#[tokio::test]
async fn call_layout_and_reply_from_a_raw_peer() {
    support::init_logs();
    let router = Router::start(Some(USER)).await;
    let d = routable(&router, &[]).await;
    let topic = uniq("layout");
    let address = format!("openstack.org/om/rpc/anycast/openstack/{topic}");
    let mut raw = Raw::connect(&router).await;
    let mut rx = raw.receiver(&address).await;

    let req =
        obj(json!({"method": "echo", "args": {"x": "é"}, "namespace": "ns1", "version": "2.1"}));
    let ctxt = obj(json!({"user": "bob", "request_id": "req-1"}));
    let call = RpcRequest::call(Target::new(&topic), req, Duration::from_secs(8))
        .with_context(ctxt)
        .with_call_monitor_timeout(Some(30.0));
    let mut stream = d
        .send(call)
        .await
        .expect("call sent")
        .expect("a reply stream");

    let m = recv_raw(&mut rx).await;
    assert_eq!(
        body_string(&m),
        r#"{"request": {"method": "echo", "args": {"x": "\u00e9"}, "namespace": "ns1", "version": "2.1"}, "context": {"user": "bob", "request_id": "req-1"}, "call_monitor_timeout": 30}"#
    );
    let p = m.properties.clone().expect("properties");
    assert_eq!(p.to.as_deref(), Some(address.as_str()));
    let msg_id = id_string(&p.message_id);
    assert_eq!(msg_id.len(), 32);
    assert!(msg_id.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(msg_id, stream.msg_id());
    let reply_to = p.reply_to.clone().expect("reply-to");
    assert!(
        reply_to.starts_with("dyn/"),
        "reply-to {reply_to} is the dynamic reply address"
    );
    assert!(p.correlation_id.is_none() && p.subject.is_none() && p.user_id.is_none());
    assert!(p.content_type.is_none() && p.content_encoding.is_none());
    assert_eq!(m.header.as_ref().and_then(|h| h.ttl), Some(8000));
    assert!(
        m.application_properties.is_none()
            && m.message_annotations.is_none()
            && m.delivery_annotations.is_none()
    );

    // The raw peer answers: a body-less heartbeat, then the result.
    let mut tx = raw.sender(Some(&reply_to)).await;
    let hb = raw_message(
        &reply_to,
        Properties {
            correlation_id: Some(MessageId::String(msg_id.clone())),
            ..Default::default()
        },
        Body::Data(Vec::new().into()),
    );
    tx.send(Sendable::builder().message(hb).settled(true).build())
        .await
        .expect("heartbeat");
    let reply = raw_message(
        &reply_to,
        Properties {
            correlation_id: Some(MessageId::String(msg_id.clone())),
            ..Default::default()
        },
        Body::Value(AmqpValue(AmqpValueType::String(
            r#"{"response": {"ok": [1, null]}}"#.into(),
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
        Some(ReplyEvent::Final(Ok(json!({"ok": [1, null]}))))
    );
    d.cleanup().await;
}

/// Casts and notifications: only `to`, an empty header, the JSON body.
#[tokio::test]
async fn cast_and_notification_layout() {
    let router = Router::start(Some(USER)).await;
    let d = routable(&router, &[]).await;
    let topic = uniq("castlay");
    let mut raw = Raw::connect(&router).await;
    let cast_addr = format!("openstack.org/om/rpc/unicast/openstack/{topic}/s1");
    let fan_addr = format!("openstack.org/om/rpc/multicast/openstack/{topic}");
    let note_addr = format!("openstack.org/om/notify/anycast/openstack/{topic}.info");
    let mut rx_cast = raw.receiver(&cast_addr).await;
    let mut rx_fan = raw.receiver(&fan_addr).await;
    let mut rx_note = raw.receiver(&note_addr).await;

    d.send(RpcRequest::cast(
        Target::new(&topic).with_server("s1"),
        obj(json!({"method": "c", "args": {}})),
    ))
    .await
    .expect("cast");
    let m = recv_raw(&mut rx_cast).await;
    assert_eq!(
        body_string(&m),
        r#"{"request": {"method": "c", "args": {}}, "context": {}}"#
    );
    let p = m.properties.clone().expect("properties");
    assert_eq!(p.to.as_deref(), Some(cast_addr.as_str()));
    assert!(p.message_id.is_none() && p.reply_to.is_none() && p.correlation_id.is_none());
    let h = m.header.clone().expect("a header section");
    assert_eq!(h.ttl, None);

    d.send(RpcRequest::cast(
        Target::new(&topic).with_fanout(true),
        obj(json!({"method": "f", "args": {}})),
    ))
    .await
    .expect("fanout");
    let m = recv_raw(&mut rx_fan).await;
    assert_eq!(
        m.properties.and_then(|p| p.to).as_deref(),
        Some(fan_addr.as_str())
    );

    let msg = obj(
        json!({"message_id": "m-1", "publisher_id": "p", "event_type": "e", "priority": "INFO", "payload": {}, "timestamp": "t"}),
    );
    let n = Notification::new(
        Target::new(format!("{topic}.info")).with_exchange("ignored"),
        msg,
        Format::V2,
    )
    .with_context(obj(json!({"user": "u"})));
    d.send_notification(n).await.expect("notification");
    let m = recv_raw(&mut rx_note).await;
    assert_eq!(
        body_string(&m),
        r#"{"request": {"oslo.version": "2.0", "oslo.message": "{\"message_id\": \"m-1\", \"publisher_id\": \"p\", \"event_type\": \"e\", \"priority\": \"INFO\", \"payload\": {}, \"timestamp\": \"t\"}"}, "context": {"user": "u"}}"#
    );
    let p = m.properties.clone().expect("properties");
    assert_eq!(p.to.as_deref(), Some(note_addr.as_str()));
    assert!(p.message_id.is_none() && p.reply_to.is_none());
    d.cleanup().await;
}

/// A raw client calls an om server: the reply and heartbeats have the
/// request's id as `correlation-id`, go to `reply-to`, and heartbeats have
/// no body and `ttl` = the call-monitor timeout (test-cases.md 110).
#[tokio::test]
async fn server_replies_and_heartbeats_to_a_raw_caller() {
    let router = Router::start(Some(USER)).await;
    let d = routable(&router, &[]).await;
    let topic = uniq("srv");
    let mut l = d
        .listen(
            Target::new(&topic).with_server("s1"),
            ListenOptions::default(),
        )
        .await
        .expect("listen");
    let mut raw = Raw::connect(&router).await;
    let (mut replies, reply_to) = raw.dynamic_receiver().await;
    let mut tx = raw.sender(None).await; // anonymous relay: routed on `to`
    send_raw_call(
        &mut tx,
        &topic,
        "0123456789abcdef0123456789abcdef",
        &reply_to,
        r#"{"request": {"method": "m", "args": {"a": 1}}, "context": {"user": "u"}, "call_monitor_timeout": 2}"#,
    )
    .await;
    let m = next(&mut l).await;
    assert_eq!(
        m.msg_id.as_deref(),
        Some("0123456789abcdef0123456789abcdef")
    );
    assert_eq!(m.client_timeout, Some(2.0));
    assert_eq!(m.ctxt.get("client_timeout"), Some(&json!(2)));
    assert_eq!(m.message, obj(json!({"method": "m", "args": {"a": 1}})));
    m.acknowledge().await.expect("ack");
    m.heartbeat().await.expect("heartbeat");
    m.reply(Err(RemoteError::new("ValueError", "builtins", "bad")))
        .await
        .expect("reply");

    let hb = recv_raw(&mut replies).await;
    let p = hb.properties.clone().expect("properties");
    assert_eq!(p.to.as_deref(), Some(reply_to.as_str()));
    assert_eq!(
        id_string(&p.correlation_id),
        "0123456789abcdef0123456789abcdef"
    );
    assert!(p.message_id.is_none());
    assert_eq!(hb.header.as_ref().and_then(|h| h.ttl), Some(2000));
    assert!(
        matches!(&hb.body, Body::Empty) || matches!(&hb.body, Body::Data(b) if b.is_empty()),
        "a heartbeat has no body section: {:?}",
        hb.body
    );
    let r = recv_raw(&mut replies).await;
    assert_eq!(
        body_string(&r),
        r#"{"failure": "{\"class\": \"ValueError\", \"module\": \"builtins\", \"message\": \"bad\", \"tb\": [], \"args\": [\"bad\"], \"kwargs\": {}}"}"#
    );
    assert_eq!(
        id_string(&r.properties.clone().and_then(|p| p.correlation_id)),
        "0123456789abcdef0123456789abcdef"
    );
    assert_eq!(r.header.as_ref().and_then(|h| h.ttl), None);
    l.cleanup().await.expect("cleanup");
    d.cleanup().await;
}

/// test-cases 109: replies and heartbeats go pre-settled by default, so
/// they neither wait for nor see the router's outcome; with `pre_settled`
/// not naming `rpc-reply` they are sent unsettled and a rejection fails
/// them. The router rejects both messages to the caller's address each
/// time (rejected messages are not queued).
#[tokio::test]
async fn replies_are_sent_pre_settled() {
    let router = Router::start(Some(USER)).await;
    for (extra, pre_settled) in [(None, true), (Some("rpc-cast"), false)] {
        let opts: Vec<(&str, &str)> = extra.map(|v| ("pre_settled", v)).into_iter().collect();
        let d = routable(&router, &opts).await;
        let topic = uniq("presettled");
        let mut l = d
            .listen(
                Target::new(&topic).with_server("s1"),
                ListenOptions::default(),
            )
            .await
            .expect("listen");
        let mut raw = Raw::connect(&router).await;
        let (mut replies, reply_to) = raw.dynamic_receiver().await;
        let mut tx = raw.sender(None).await;
        send_raw_call(
            &mut tx,
            &topic,
            &uniq("id"),
            &reply_to,
            r#"{"request": {"method": "m", "args": {}}, "context": {}, "call_monitor_timeout": 2}"#,
        )
        .await;
        let m = next(&mut l).await;
        m.acknowledge().await.expect("ack");
        router.script_outcomes(&reply_to, [Scripted::Reject, Scripted::Reject]);
        let hb = m.heartbeat().await;
        let reply = m.reply(Ok(json!(1))).await;
        if pre_settled {
            hb.expect("a pre-settled heartbeat does not see the rejection");
            reply.expect("a pre-settled reply does not see the rejection");
        } else {
            let e = reply.expect_err("an unsettled reply sees the rejection");
            assert_eq!(e.oslo_name(), "MessageDeliveryFailure", "{e}");
            // Heartbeats are sent once, never retried: theirs fails too.
            assert!(hb.is_err(), "{hb:?}");
        }
        // Both reached the router (a pre-settled send may return before
        // that), which queued neither.
        eventually("the heartbeat and the reply at the router", || {
            router
                .routed()
                .iter()
                .filter(|r| r.address == reply_to)
                .count()
                == 2
        })
        .await;
        assert!(
            tokio::time::timeout(
                Duration::from_millis(300),
                replies.recv::<Body<AmqpValueType>>()
            )
            .await
            .is_err(),
            "a rejected message reached the caller"
        );
        l.cleanup().await.expect("cleanup");
        d.cleanup().await;
    }
}

/// Link names and terminus addresses follow the Python driver: one sender
/// link per destination, three server links, one dynamic reply link.
#[tokio::test]
async fn links_are_named_and_addressed_like_the_python_driver() {
    let router = Router::start(Some(USER)).await;
    let d = routable(&router, &[]).await;
    let topic = uniq("links");
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
        .unwrap()
        .unwrap();
    let m = next(&mut l).await;
    m.acknowledge().await.unwrap();
    m.reply(Ok(json!(1))).await.unwrap();
    assert_eq!(s.next().await, Some(ReplyEvent::Final(Ok(json!(1)))));

    let attached = router.attached();
    let base = "openstack.org/om/rpc";
    for addr in [
        format!("{base}/unicast/openstack/{topic}/s1"),
        format!("{base}/multicast/openstack/{topic}"),
        format!("{base}/anycast/openstack/{topic}"),
    ] {
        let link = attached
            .iter()
            .find(|a| !a.client_sends && a.address.as_deref() == Some(&addr))
            .expect("server link");
        let prefix = format!("openstack.org/om/receiver/[{addr}]/");
        assert!(
            link.name.starts_with(&prefix) && link.name.len() == prefix.len() + 32,
            "{}",
            link.name
        );
    }
    let anycast = format!("{base}/anycast/openstack/{topic}");
    let senders: Vec<_> = attached
        .iter()
        .filter(|a| a.client_sends && a.address.as_deref() == Some(&anycast))
        .collect();
    assert_eq!(senders.len(), 1, "one sender link per destination");
    assert!(senders[0]
        .name
        .starts_with(&format!("openstack.org/om/sender/[{anycast}]/")));
    let reply = attached
        .iter()
        .find(|a| {
            a.name
                .starts_with("openstack.org/om/receiver/[rpc-response]/")
        })
        .expect("reply link");
    assert!(reply.dynamic, "the reply link has a dynamic source");
    // The server replied on a sender link to the reply address.
    let reply_addr = reply.address.clone().unwrap();
    assert!(attached.iter().any(|a| a.client_sends
        && a.address.as_deref() == Some(&reply_addr)
        && a.name
            .starts_with(&format!("openstack.org/om/sender/[{reply_addr}]/"))));
    l.cleanup().await.unwrap();
    d.cleanup().await;
}

/// test-cases.md 109: casts are pre-settled (an outcome the router would
/// give does not matter), calls wait for `accepted`, `rejected` and
/// `modified(undeliverable-here)` fail with MessageDeliveryFailure,
/// `released` is re-sent after `link_retry_delay`.
#[tokio::test]
async fn settlement_outcomes() {
    let router = Router::start(Some(USER)).await;
    let d = routable(&router, &[("link_retry_delay", "1")]).await;
    let topic = uniq("settle");
    let anycast = format!("openstack.org/om/rpc/anycast/openstack/{topic}");
    let msg = || obj(json!({"method": "m", "args": {}}));

    router.script_outcomes(&anycast, [Scripted::Reject]);
    let e = d
        .send(RpcRequest::call(Target::new(&topic), msg(), WAIT))
        .await
        .unwrap_err();
    assert_eq!(e.oslo_name(), "MessageDeliveryFailure", "{e}");

    router.script_outcomes(&anycast, [Scripted::Undeliverable]);
    let e = d
        .send(RpcRequest::call(Target::new(&topic), msg(), WAIT))
        .await
        .unwrap_err();
    assert_eq!(e.oslo_name(), "MessageDeliveryFailure", "{e}");

    // Pre-settled: the cast does not wait for (or see) the rejection.
    router.script_outcomes(&anycast, [Scripted::Reject]);
    d.send(RpcRequest::cast(Target::new(&topic), msg()))
        .await
        .expect("a pre-settled cast succeeds");

    // Released: sent again after link_retry_delay (1 s here).
    router.script_outcomes(&anycast, [Scripted::Release]);
    let started = Instant::now();
    let s = d
        .send(RpcRequest::call(Target::new(&topic), msg(), WAIT))
        .await
        .expect("re-sent after release")
        .expect("stream");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "re-sent after {:?}",
        started.elapsed()
    );
    let copies = router
        .routed()
        .iter()
        .filter(|r| {
            r.message
                .properties
                .as_ref()
                .and_then(|p| p.message_id.clone())
                == Some(MessageId::String(s.msg_id().into()))
        })
        .count();
    assert_eq!(copies, 2, "the released call was sent twice");

    // Out of retries.
    router.script_outcomes(&anycast, [Scripted::Release]);
    let e = d
        .send(RpcRequest::call(Target::new(&topic), msg(), WAIT).with_retry(Retry::Limited(0)))
        .await
        .unwrap_err();
    assert_eq!(e.oslo_name(), "MessageDeliveryFailure", "{e}");

    // Notifications wait for the outcome too.
    let note = format!("openstack.org/om/notify/anycast/openstack/{topic}.info");
    router.script_outcomes(&note, [Scripted::Reject]);
    let n = Notification::new(
        Target::new(format!("{topic}.info")),
        obj(json!({"event_type": "e"})),
        Format::V2,
    );
    let e = d.send_notification(n).await.unwrap_err();
    assert_eq!(e.oslo_name(), "MessageDeliveryFailure", "{e}");

    // With pre_settled = rpc-call, a call no longer waits.
    let d2 = routable(&router, &[("pre_settled", "rpc-call")]).await;
    router.script_outcomes(&anycast, [Scripted::Reject]);
    d2.send(RpcRequest::call(Target::new(&topic), msg(), WAIT))
        .await
        .expect("pre-settled call");
    d.cleanup().await;
    d2.cleanup().await;
}

/// test-cases.md 111, and the capabilities declared in router mode.
#[tokio::test]
async fn pools_are_not_supported_and_capabilities_are_honest() {
    let router = Router::start(Some(USER)).await;
    let d = routable(&router, &[]).await;
    let e = d
        .listen_for_notifications(
            vec![(Target::new("t"), Priority::Info)],
            Some("pool".into()),
            ListenOptions::default(),
        )
        .await
        .err()
        .expect("a pool is refused");
    assert_eq!(e.oslo_name(), "NotImplementedError");
    let c = d.capabilities();
    assert!(c.rpc && c.fanout && c.heartbeat && c.notifications && c.requeue);
    assert!(!c.notification_pools && !c.mandatory_publish && !c.retains_unconsumed_notifications);
    d.cleanup().await;
}

/// test-cases.md 106 end to end: `dynamic` picks routable on a router.
#[tokio::test]
async fn dynamic_mode_resolves_to_routable_on_a_router() {
    let router = Router::start(Some(USER)).await;
    let d = driver(&router.url(Some(USER)));
    assert_eq!(d.current_syntax(), None);
    d.connect(WAIT).await.expect("connect");
    assert_eq!(d.current_syntax(), Some(Syntax::Routable));
    assert_eq!(d.peer_product().as_deref(), Some("om-test-router"));
    assert!(!d.capabilities().retains_unconsumed_notifications);
    let legacy = driver(&with_options(
        &router.url(Some(USER)),
        &[("addressing_mode", "legacy")],
    ));
    legacy.connect(WAIT).await.expect("connect");
    assert_eq!(legacy.current_syntax(), Some(Syntax::Legacy));
    d.cleanup().await;
    legacy.cleanup().await;
}

/// Legacy addresses on the router: the fixture's `broadcast…` addresses
/// are multicast, so fanout works there too.
#[tokio::test]
async fn legacy_addressing_through_the_router() {
    let router = Router::start(Some(USER)).await;
    let d = driver(&with_options(
        &router.url(Some(USER)),
        &[("addressing_mode", "legacy")],
    ));
    let topic = uniq("leg");
    let mut a = d
        .listen(
            Target::new(&topic).with_server("a"),
            ListenOptions::default(),
        )
        .await
        .unwrap();
    let mut b = d
        .listen(
            Target::new(&topic).with_server("b"),
            ListenOptions::default(),
        )
        .await
        .unwrap();
    d.send(RpcRequest::cast(
        Target::new(&topic).with_fanout(true),
        obj(json!({"method": "f", "args": {}})),
    ))
    .await
    .unwrap();
    next(&mut a).await.acknowledge().await.unwrap();
    next(&mut b).await.acknowledge().await.unwrap();
    let routed = router.routed();
    assert!(routed
        .iter()
        .any(|r| r.address == format!("broadcast.openstack.{topic}.all")));
    assert_eq!(
        router.consumers(&format!("exclusive.openstack.{topic}.a")),
        1
    );
    assert_eq!(router.consumers(&format!("unicast.openstack.{topic}")), 2);
    a.cleanup().await.unwrap();
    b.cleanup().await.unwrap();
    d.cleanup().await;
}

/// SASL: PLAIN with the URL's user, ANONYMOUS without one; a wrong
/// password makes sends fail once the retries are used up; a PLAIN-only
/// configuration without a user is refused at open.
#[tokio::test]
async fn sasl_plain_and_anonymous() {
    let router = Router::start(Some(USER)).await;
    let topic = uniq("sasl");
    let anon = driver(&with_options(
        &router.url(None),
        &[("addressing_mode", "routable")],
    ));
    anon.send(RpcRequest::cast(
        Target::new(&topic),
        obj(json!({"method": "m"})),
    ))
    .await
    .expect("anonymous");
    let plain = routable(&router, &[]).await;
    plain
        .send(RpcRequest::cast(
            Target::new(&topic),
            obj(json!({"method": "m"})),
        ))
        .await
        .expect("plain");
    let bad = driver(&with_options(
        &router.url(Some(("om", "wrong"))),
        &[("addressing_mode", "routable")],
    ));
    let e = bad
        .send(
            RpcRequest::cast(Target::new(&topic), obj(json!({"method": "m"})))
                .with_retry(Retry::Limited(0)),
        )
        .await
        .unwrap_err();
    assert_eq!(e.oslo_name(), "MessageDeliveryFailure", "{e}");
    assert!(!e.to_string().contains("wrong"), "the password leaked: {e}");
    let url: TransportUrl = with_options(&router.url(None), &[("sasl_mechanisms", "PLAIN")])
        .parse()
        .unwrap();
    let e = Amqp1Driver::new(&DriverConfig::new(url)).expect_err("refused");
    assert_eq!(e.oslo_name(), "ConfigurationError");
    for d in [anon, plain, bad] {
        d.cleanup().await;
    }
}

/// Unknown options and bad values fail the transport at open, naming the
/// option.
#[tokio::test]
async fn options_are_checked_at_open() {
    om_driver_amqp1::register();
    for (q, name) in [
        ("bogus=1", "bogus"),
        ("rpc_server_credit=zero", "rpc_server_credit"),
        ("addressing_mode=odd", "addressing_mode"),
    ] {
        let e = om_driver_api::Transport::from_url(&format!("amqp://127.0.0.1:1/?{q}"))
            .await
            .unwrap_err();
        assert_eq!(e.oslo_name(), "ConfigurationError");
        assert!(e.to_string().contains(name), "{e}");
    }
    let e = om_driver_api::Transport::builder("amqp://127.0.0.1:1/")
        .option("idle_timeout", "-1")
        .open()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("idle_timeout"), "{e}");
}

/// The connection drops: calls and servers work again on the new one.
#[tokio::test]
async fn reconnects_and_reattaches_after_connection_loss() {
    support::init_logs();
    let router = Router::start(Some(USER)).await;
    let d = routable(&router, &[]).await;
    let srv = routable(&router, &[]).await;
    let topic = uniq("reconn");
    let mut l = srv
        .listen(
            Target::new(&topic).with_server("s1"),
            ListenOptions::default(),
        )
        .await
        .unwrap();
    let serve = tokio::spawn(async move {
        while let Some(Ok(m)) = l.next().await {
            let _ = m.acknowledge().await;
            let _ = m.reply(Ok(json!("pong"))).await;
        }
    });
    let ping = |t: &str| {
        RpcRequest::call(
            Target::new(t),
            obj(json!({"method": "ping", "args": {}})),
            Duration::from_secs(20),
        )
    };
    let mut s = d.send(ping(&topic)).await.unwrap().unwrap();
    assert_eq!(s.next().await, Some(ReplyEvent::Final(Ok(json!("pong")))));
    let before = router.attached().len();

    router.drop_connections();
    let started = Instant::now();
    let mut answered = false;
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(Some(mut s)) = d.send(ping(&topic)).await {
            if let Ok(Some(ReplyEvent::Final(Ok(v)))) =
                tokio::time::timeout(Duration::from_secs(5), s.next()).await
            {
                assert_eq!(v, json!("pong"));
                answered = true;
                break;
            }
        }
    }
    assert!(answered, "no answer after the reconnection");
    assert!(
        router.attached().len() > before,
        "links were attached again"
    );
    serve.abort();
    d.cleanup().await;
    srv.cleanup().await;
}

/// A dead first host: the driver goes on to the next one.
#[tokio::test]
async fn fails_over_to_the_next_host() {
    let router = Router::start(Some(USER)).await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let url = format!(
        "amqp://{u}:{p}@127.0.0.1:{dead_port},{u}:{p}@{}/?addressing_mode=routable&connection_retry_interval=1",
        router.addr(),
        u = USER.0,
        p = USER.1
    );
    let d = driver(&url);
    let topic = uniq("failover");
    d.send(RpcRequest::cast(
        Target::new(&topic),
        obj(json!({"method": "m"})),
    ))
    .await
    .expect("sent through the live host");
    let started = Instant::now();
    while !router.routed().iter().any(|r| r.address.ends_with(&topic)) {
        assert!(
            started.elapsed() < WAIT,
            "the cast never reached the router"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    d.cleanup().await;
}

/// Undecodable requests are rejected (not requeued) and reported by the
/// listener, which goes on; replies for unknown calls are refused as
/// undeliverable.
#[tokio::test]
async fn malformed_and_stray_messages() {
    let router = Router::start(Some(USER)).await;
    let d = routable(&router, &[]).await;
    let topic = uniq("bad");
    let mut l = d
        .listen(
            Target::new(&topic).with_server("s1"),
            ListenOptions::default(),
        )
        .await
        .unwrap();
    let mut raw = Raw::connect(&router).await;
    let addr = format!("openstack.org/om/rpc/unicast/openstack/{topic}/s1");
    let mut tx = raw.sender(Some(&addr)).await;
    tx.send(raw_message(
        &addr,
        Properties::default(),
        Body::Value(AmqpValue(AmqpValueType::String("not json".into()))),
    ))
    .await
    .unwrap();
    let e = tokio::time::timeout(WAIT, l.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(e.oslo_name(), "MessagingException", "{e}");
    eventually("the router to see the undecodable request rejected", || {
        router
            .refused()
            .iter()
            .any(|r| r.address == addr && matches!(r.outcome, Outcome::Rejected(_)))
    })
    .await;
    d.send(RpcRequest::cast(
        Target::new(&topic).with_server("s1"),
        obj(json!({"method": "ok", "args": {}})),
    ))
    .await
    .unwrap();
    assert_eq!(next(&mut l).await.message.get("method"), Some(&json!("ok")));

    // A reply nobody waits for.
    let s = d
        .send(RpcRequest::call(
            Target::new(&topic).with_server("s1"),
            obj(json!({"method": "m", "args": {}})),
            WAIT,
        ))
        .await
        .unwrap()
        .unwrap();
    let m = next(&mut l).await;
    let reply_to = router
        .routed()
        .iter()
        .filter_map(|r| {
            r.message
                .properties
                .as_ref()
                .and_then(|p| p.reply_to.clone())
        })
        .next_back()
        .expect("the call's reply-to");
    drop(s);
    let mut stray = raw.sender(Some(&reply_to)).await;
    let out = stray
        .send(raw_message(
            &reply_to,
            Properties {
                correlation_id: Some(MessageId::String("nobody".into())),
                ..Default::default()
            },
            Body::Value(AmqpValue(AmqpValueType::String(
                r#"{"response": 1}"#.into(),
            ))),
        ))
        .await
        .unwrap();
    assert!(
        matches!(out, Outcome::Accepted(_)),
        "the router took it: {out:?}"
    );
    eventually("the driver to refuse the stray reply as undeliverable", || {
        router.refused().iter().any(|r| r.address == reply_to
            && matches!(&r.outcome, Outcome::Modified(m) if m.delivery_failed == Some(true) && m.undeliverable_here == Some(true)))
    })
    .await;
    m.acknowledge().await.unwrap();
    l.cleanup().await.unwrap();
    d.cleanup().await;
}

/// Credit: a listener with prefetch 2 holds at most two unsettled
/// notifications; settling one lets the next in.
#[tokio::test]
async fn prefetch_bounds_unsettled_messages() {
    let router = Router::start(Some(USER)).await;
    let d = routable(&router, &[]).await;
    let topic = uniq("credit");
    let mut l = d
        .listen_for_notifications(
            vec![(Target::new(&topic), Priority::Info)],
            None,
            ListenOptions::default().with_prefetch(Some(2)),
        )
        .await
        .unwrap();
    for i in 0..5 {
        let n = Notification::new(
            Target::new(format!("{topic}.info")),
            obj(json!({"event_type": format!("e{i}")})),
            Format::V2,
        );
        d.send_notification(n).await.unwrap();
    }
    let first = next(&mut l).await;
    let second = next(&mut l).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(700), l.next())
            .await
            .is_err(),
        "a third arrived with two unsettled"
    );
    first.acknowledge().await.unwrap();
    second.acknowledge().await.unwrap();
    let mut rest = Vec::new();
    for _ in 0..3 {
        let m = next(&mut l).await;
        m.acknowledge().await.unwrap();
        rest.push(m.message.get("event_type").cloned());
    }
    assert_eq!(
        rest,
        vec![Some(json!("e2")), Some(json!("e3")), Some(json!("e4"))]
    );
    l.cleanup().await.unwrap();
    d.cleanup().await;
}

/// Idle sender links are detached after `default_sender_link_timeout`.
#[tokio::test]
async fn idle_sender_links_are_closed() {
    let router = Router::start(Some(USER)).await;
    let d = routable(&router, &[("default_sender_link_timeout", "1")]).await;
    let topic = uniq("idle");
    let addr = format!("openstack.org/om/rpc/anycast/openstack/{topic}");
    d.send(RpcRequest::cast(
        Target::new(&topic),
        obj(json!({"method": "m"})),
    ))
    .await
    .unwrap();
    assert_eq!(router.producers(&addr), 1);
    let started = Instant::now();
    while router.producers(&addr) > 0 && started.elapsed() < WAIT {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        router.producers(&addr),
        0,
        "the idle sender link is still attached"
    );
    d.send(RpcRequest::cast(
        Target::new(&topic),
        obj(json!({"method": "m"})),
    ))
    .await
    .expect("re-attached on demand");
    d.cleanup().await;
}

/// The fixture itself: dynamic sources, anonymous relay, anycast
/// round-robin and multicast copies, as documented.
#[tokio::test]
async fn fixture_router_features() {
    let router = Router::start(None).await;
    let mut raw = Raw::connect_anonymous(&router).await;
    let (mut dynr, addr) = raw.dynamic_receiver().await;
    assert!(addr.starts_with("dyn/"));
    let mut relay = raw.sender(None).await;
    let m = raw_message(
        &addr,
        Properties::default(),
        Body::Value(AmqpValue(AmqpValueType::String("hi".into()))),
    );
    relay.send(m).await.unwrap();
    assert_eq!(body_string(&recv_raw(&mut dynr).await), "hi");

    let mut a = raw.receiver("any/q").await;
    let mut b = raw.receiver("any/q").await;
    let mut tx = raw.sender(Some("any/q")).await;
    for i in 0..4 {
        tx.send(raw_message(
            "any/q",
            Properties::default(),
            Body::Value(AmqpValue(AmqpValueType::String(i.to_string()))),
        ))
        .await
        .unwrap();
    }
    let got_a = [
        body_string(&recv_raw(&mut a).await),
        body_string(&recv_raw(&mut a).await),
    ];
    let got_b = [
        body_string(&recv_raw(&mut b).await),
        body_string(&recv_raw(&mut b).await),
    ];
    let mut all: Vec<String> = got_a.iter().chain(got_b.iter()).cloned().collect();
    all.sort();
    assert_eq!(all, ["0", "1", "2", "3"]);

    let mut m1 = raw.receiver("x/multicast/y").await;
    let mut m2 = raw.receiver("x/multicast/y").await;
    let mut mt = raw.sender(Some("x/multicast/y")).await;
    mt.send(raw_message(
        "x/multicast/y",
        Properties::default(),
        Body::Value(AmqpValue(AmqpValueType::String("all".into()))),
    ))
    .await
    .unwrap();
    assert_eq!(body_string(&recv_raw(&mut m1).await), "all");
    assert_eq!(body_string(&recv_raw(&mut m2).await), "all");
}

impl Raw {
    async fn connect_anonymous(router: &Router) -> Raw {
        let mut conn = Connection::builder()
            .container_id("raw-anon")
            .sasl_profile(fe2o3_amqp::sasl_profile::SaslProfile::Anonymous)
            .open(format!("amqp://{}", router.addr()).as_str())
            .await
            .expect("raw anonymous connect");
        let session = Session::begin(&mut conn).await.expect("raw session");
        Raw {
            _conn: conn,
            session,
        }
    }
}

/// Dropping a driver without cleanup closes its connection: its server
/// links go away.
#[tokio::test]
async fn dropping_the_driver_closes_its_links() {
    let router = Router::start(Some(USER)).await;
    let d = routable(&router, &[]).await;
    let topic = uniq("drop");
    let anycast = format!("openstack.org/om/rpc/anycast/openstack/{topic}");
    let l = d
        .listen(
            Target::new(&topic).with_server("s1"),
            ListenOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(router.consumers(&anycast), 1);
    drop(d);
    let started = Instant::now();
    while router.consumers(&anycast) > 0 && started.elapsed() < WAIT {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        router.consumers(&anycast),
        0,
        "the server link outlived its driver"
    );
    drop(l);
}

/// After `stop()`, messages are no longer taken: the next server of the
/// topic gets them.
#[tokio::test]
async fn stopped_listener_leaves_new_messages_to_the_next_server() {
    let router = Router::start(Some(USER)).await;
    let d = routable(&router, &[]).await;
    let topic = uniq("stopq");
    let mut l = d
        .listen(
            Target::new(&topic).with_server("s1"),
            ListenOptions::default(),
        )
        .await
        .unwrap();
    l.stop().await.unwrap();
    assert!(
        tokio::time::timeout(WAIT, l.next())
            .await
            .unwrap()
            .is_none(),
        "next() ends after stop()"
    );
    d.send(RpcRequest::cast(
        Target::new(&topic),
        obj(json!({"method": "later", "args": {}})),
    ))
    .await
    .unwrap();
    // (The fixture's consumer task may already hold the message while the
    // stopped link grants no credit; it goes back when the link closes.)
    tokio::time::sleep(Duration::from_millis(300)).await;
    l.cleanup().await.unwrap();
    let mut l2 = d
        .listen(
            Target::new(&topic).with_server("s2"),
            ListenOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        next(&mut l2).await.message.get("method"),
        Some(&json!("later"))
    );
    l2.cleanup().await.unwrap();
    d.cleanup().await;
}
