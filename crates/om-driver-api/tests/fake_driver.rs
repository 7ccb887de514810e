//! Behaviour of the in-memory `fake://` driver.
#![allow(clippy::unwrap_used, clippy::result_large_err)]

use om_core::envelope::Format;
use om_core::{Error, JsonObject, Priority, RemoteError, Target, Value};
use om_driver_api::fake::FakeBroker;
use om_driver_api::{
    IncomingMessage, ListenOptions, Listener, Notification, ReplyEvent, RpcRequest, Transport,
    TransportOptions,
};
use serde_json::json;
use std::time::Duration;
use tokio::time::timeout;

/// Generous: the machine running the tests may be busy.
const WAIT: Duration = Duration::from_secs(30);
const QUIET: Duration = Duration::from_millis(150);

fn obj(v: Value) -> JsonObject {
    v.as_object().cloned().unwrap()
}

fn uniq(prefix: &str) -> String {
    format!("{prefix}_{}", om_core::uuid_hex())
}

fn request(method: &str, args: Value) -> JsonObject {
    obj(json!({"method": method, "args": args}))
}

async fn transport(vhost: &str) -> Transport {
    Transport::from_url(&format!("fake:///{vhost}"))
        .await
        .unwrap()
}

async fn next(l: &mut Box<dyn Listener>) -> IncomingMessage {
    timeout(WAIT, l.next())
        .await
        .expect("a message in time")
        .expect("listener open")
        .unwrap()
}

async fn nothing(l: &mut Box<dyn Listener>) {
    if let Ok(m) = timeout(QUIET, l.next()).await {
        panic!("unexpected message: {m:?}");
    }
}

async fn server(
    t: &Transport,
    exchange: Option<&str>,
    topic: &str,
    server: &str,
) -> Box<dyn Listener> {
    let mut target = Target::new(topic).with_server(server);
    if let Some(e) = exchange {
        target = target.with_exchange(e);
    }
    t.driver()
        .listen(target, ListenOptions::default())
        .await
        .unwrap()
}

fn notif(topic_priority: &str, event: &str, format: Format) -> Notification {
    let msg = obj(json!({
        "message_id": om_core::uuid_dashed(),
        "publisher_id": "compute.host1",
        "event_type": event,
        "priority": "INFO",
        "payload": {"n": event},
        "timestamp": "2024-01-02 03:04:05.000006",
    }));
    Notification::new(Target::new(topic_priority), msg, format)
}

#[tokio::test]
async fn call_round_trip_carries_context_and_transport_keys() {
    let t = transport("rt").await;
    let topic = uniq("t");
    let mut srv = server(&t, None, &topic, "s1").await;
    let req = RpcRequest::call(Target::new(&topic), request("echo", json!({"a": 1})), WAIT)
        .with_context(obj(json!({"user": "bob", "nested": {"a": [1, 2]}})))
        .with_call_monitor_timeout(Some(2.5));
    let mut replies = t.driver().send(req).await.unwrap().unwrap();
    assert_eq!(replies.msg_id().len(), 32);
    let m = next(&mut srv).await;
    assert_eq!(m.msg_id.as_deref(), Some(replies.msg_id()));
    assert_eq!(m.client_timeout, Some(2.5));
    assert_eq!(
        m.ctxt,
        obj(json!({"user": "bob", "nested": {"a": [1, 2]}, "client_timeout": 2.5}))
    );
    assert_eq!(m.message, request("echo", json!({"a": 1})));
    assert_eq!(m.unique_id.as_ref().map(String::len), Some(32));
    m.acknowledge().await.unwrap();
    m.heartbeat().await.unwrap();
    m.reply(Ok(json!({"echo": 1}))).await.unwrap();
    assert_eq!(
        timeout(WAIT, replies.next()).await.unwrap(),
        Some(ReplyEvent::Heartbeat)
    );
    assert_eq!(
        timeout(WAIT, replies.next()).await.unwrap(),
        Some(ReplyEvent::Final(Ok(json!({"echo": 1}))))
    );
    // A reply to a call whose stream is gone is discarded without error.
    drop(replies);
    m.reply(Ok(json!(2))).await.unwrap();
}

#[tokio::test]
async fn failures_travel_as_remote_errors() {
    let t = transport("rt").await;
    let topic = uniq("t");
    let mut srv = server(&t, None, &topic, "s1").await;
    let mut replies = t
        .driver()
        .send(RpcRequest::call(
            Target::new(&topic),
            request("boom", json!({})),
            WAIT,
        ))
        .await
        .unwrap()
        .unwrap();
    let m = next(&mut srv).await;
    assert_eq!(m.ctxt.get("client_timeout"), Some(&Value::Null));
    let mut err = RemoteError::new("ValueError", "builtins", "bad value");
    err.traceback = vec!["Traceback (most recent call last):\n".into()];
    m.reply(Err(err.clone())).await.unwrap();
    assert_eq!(
        timeout(WAIT, replies.next()).await.unwrap(),
        Some(ReplyEvent::Final(Err(err)))
    );
}

#[tokio::test]
async fn casts_have_no_reply_stream_and_reply_is_a_no_op() {
    let t = transport("rt").await;
    let topic = uniq("t");
    let mut srv = server(&t, None, &topic, "s1").await;
    let r = t
        .driver()
        .send(RpcRequest::cast(
            Target::new(&topic),
            request("c", json!({})),
        ))
        .await
        .unwrap();
    assert!(r.is_none());
    let m = next(&mut srv).await;
    assert!(!m.is_call());
    assert!(m.reply(Ok(json!(1))).await.is_ok());
    assert!(m.heartbeat().await.is_err());
}

#[tokio::test]
async fn topic_requests_are_shared_round_robin() {
    let t = transport("rr").await;
    let topic = uniq("t");
    let mut servers = Vec::new();
    for s in ["a", "b", "c"] {
        servers.push(server(&t, None, &topic, s).await);
    }
    for i in 0..21 {
        t.driver()
            .send(RpcRequest::cast(
                Target::new(&topic),
                request("c", json!({"i": i})),
            ))
            .await
            .unwrap();
    }
    for s in &mut servers {
        for _ in 0..7 {
            next(s).await.acknowledge().await.unwrap();
        }
        nothing(s).await;
    }
}

#[tokio::test]
async fn server_targeted_and_fanout_routing() {
    let t = transport("routing").await;
    let topic = uniq("t");
    let mut s1 = server(&t, None, &topic, "s1").await;
    let mut s2 = server(&t, None, &topic, "s2").await;
    t.driver()
        .send(RpcRequest::cast(
            Target::new(&topic).with_server("s2"),
            request("direct", json!({})),
        ))
        .await
        .unwrap();
    assert_eq!(next(&mut s2).await.message["method"], json!("direct"));
    nothing(&mut s1).await;

    t.driver()
        .send(RpcRequest::cast(
            Target::new(&topic).with_fanout(true).with_server("s1"),
            request("fan", json!({})),
        ))
        .await
        .unwrap();
    assert_eq!(next(&mut s1).await.message["method"], json!("fan"));
    assert_eq!(next(&mut s2).await.message["method"], json!("fan"));
    nothing(&mut s1).await;
    nothing(&mut s2).await;

    // Cleaning up a server deletes its fanout queue, keeps T and T.S.
    let broker = FakeBroker::for_vhost("routing");
    let fanout_queues = |b: &FakeBroker| {
        b.queue_names()
            .into_iter()
            .filter(|q| q.starts_with(&format!("{topic}_fanout_")))
            .count()
    };
    assert_eq!(fanout_queues(&broker), 2);
    s1.cleanup().await.unwrap();
    assert_eq!(fanout_queues(&broker), 1);
    assert!(broker.has_queue(&topic));
    assert!(broker.has_queue(&format!("{topic}.s1")));
    assert_eq!(broker.bindings(&format!("{topic}_fanout")).len(), 1);
}

#[tokio::test]
async fn exchanges_route_only_to_their_bindings() {
    let t = transport("exchanges").await;
    let topic = uniq("t");
    let ex_a = uniq("a");
    let ex_b = uniq("b");
    let mut sb = server(&t, Some(&ex_b), &topic, "s").await;
    t.driver()
        .send(RpcRequest::cast(
            Target::new(&topic).with_exchange(&ex_a),
            request("m", json!({})),
        ))
        .await
        .unwrap();
    nothing(&mut sb).await;
    t.driver()
        .send(RpcRequest::cast(
            Target::new(&topic).with_exchange(&ex_b),
            request("m", json!({})),
        ))
        .await
        .unwrap();
    next(&mut sb).await;
    // The control exchange of the transport is used for targets without one.
    let t2 = Transport::builder("fake:///exchanges")
        .control_exchange(&ex_b)
        .open()
        .await
        .unwrap();
    t2.driver()
        .send(RpcRequest::cast(
            Target::new(&topic),
            request("m", json!({})),
        ))
        .await
        .unwrap();
    next(&mut sb).await;
}

#[tokio::test]
async fn unroutable_requests_drop_or_fail_with_at_least_once() {
    let t = transport("unroutable").await;
    let topic = uniq("nobody");
    let mut replies = t
        .driver()
        .send(RpcRequest::call(
            Target::new(&topic),
            request("m", json!({})),
            WAIT,
        ))
        .await
        .unwrap()
        .unwrap();
    assert!(timeout(QUIET, replies.next()).await.is_err());
    let err = t
        .driver()
        .send(
            RpcRequest::call(Target::new(&topic), request("m", json!({})), WAIT)
                .with_transport_options(TransportOptions::at_least_once(true)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::MessageUndeliverable { ref routing_key, .. } if routing_key == &topic)
    );
    assert_eq!(err.oslo_name(), "MessageUndeliverable");
}

#[tokio::test]
async fn queues_keep_messages_without_consumers_and_calls_expire() {
    let t = transport("retain").await;
    let topic = uniq("t");
    let srv = server(&t, None, &topic, "s1").await;
    srv.cleanup().await.unwrap();
    t.driver()
        .send(RpcRequest::cast(
            Target::new(&topic),
            request("kept", json!({})),
        ))
        .await
        .unwrap();
    // Long enough that the check right after the send always sees it (the
    // fake broker expires messages on the real clock).
    let ttl = Duration::from_secs(2);
    let _stale = t
        .driver()
        .send(RpcRequest::call(
            Target::new(&topic),
            request("stale", json!({})),
            ttl,
        ))
        .await
        .unwrap();
    let broker = FakeBroker::for_vhost("retain");
    assert_eq!(broker.queue_len(&topic), Some(2));
    // A sleep lasts at least its duration: the call has expired after it.
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    assert_eq!(broker.queue_len(&topic), Some(1));
    let mut srv = server(&t, None, &topic, "s2").await;
    assert_eq!(next(&mut srv).await.message["method"], json!("kept"));
    nothing(&mut srv).await;
}

#[tokio::test]
async fn invalid_targets_are_rejected() {
    let t = transport("invalid").await;
    let e = t
        .driver()
        .send(RpcRequest::cast(Target::default(), request("m", json!({}))))
        .await
        .unwrap_err();
    assert_eq!(e.oslo_name(), "InvalidTarget");
    let e = t
        .driver()
        .send(RpcRequest::call(
            Target::new("x").with_fanout(true),
            request("m", json!({})),
            WAIT,
        ))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("A call cannot be used with fanout"));
    assert!(t
        .driver()
        .listen(Target::new("x"), ListenOptions::default())
        .await
        .is_err());
    assert!(t
        .driver()
        .listen_for_notifications(
            vec![(Target::default(), Priority::Info)],
            None,
            ListenOptions::default()
        )
        .await
        .is_err());
    let e = t
        .driver()
        .send_notification(notif("", "e", Format::V2))
        .await
        .unwrap_err();
    assert_eq!(e.oslo_name(), "InvalidTarget");
}

#[tokio::test]
async fn virtual_hosts_are_isolated() {
    let a = transport(&uniq("vh")).await;
    let b = transport(&uniq("vh")).await;
    let topic = uniq("t");
    let mut sa = server(&a, None, &topic, "s").await;
    let e = b
        .driver()
        .send(
            RpcRequest::cast(Target::new(&topic), request("m", json!({})))
                .with_transport_options(TransportOptions::at_least_once(true)),
        )
        .await
        .unwrap_err();
    assert_eq!(e.oslo_name(), "MessageUndeliverable");
    nothing(&mut sa).await;
    // fake://, fake:/// and fake://host/ share the default virtual host.
    let d1 = Transport::from_url("fake://").await.unwrap();
    let d2 = Transport::from_url("fake://localhost/").await.unwrap();
    let topic = uniq("t");
    let mut s = server(&d1, None, &topic, "s").await;
    d2.driver()
        .send(RpcRequest::cast(
            Target::new(&topic),
            request("m", json!({})),
        ))
        .await
        .unwrap();
    next(&mut s).await;
}

#[tokio::test]
async fn stop_drains_then_ends_and_keeps_the_rest_on_the_broker() {
    let t = transport("stop").await;
    let topic = uniq("t");
    let mut srv = server(&t, None, &topic, "s1").await;
    for i in 0..3 {
        t.driver()
            .send(RpcRequest::cast(
                Target::new(&topic),
                request("m", json!({"i": i})),
            ))
            .await
            .unwrap();
    }
    srv.stop().await.unwrap();
    for i in 0..3 {
        let m = next(&mut srv).await;
        assert_eq!(m.message["args"]["i"], json!(i));
        m.acknowledge().await.unwrap();
    }
    assert!(timeout(WAIT, srv.next()).await.unwrap().is_none());
    t.driver()
        .send(RpcRequest::cast(
            Target::new(&topic),
            request("later", json!({})),
        ))
        .await
        .unwrap();
    assert_eq!(FakeBroker::for_vhost("stop").queue_len(&topic), Some(1));
    srv.cleanup().await.unwrap();
}

#[tokio::test]
async fn malformed_bodies_are_reported_and_the_listener_goes_on() {
    let t = transport("malformed").await;
    let topic = uniq("t");
    let mut srv = server(&t, None, &topic, "s1").await;
    let broker = FakeBroker::for_vhost("malformed");
    broker
        .publish_raw("openstack", &topic, b"\xff not json".to_vec())
        .unwrap();
    broker
        .publish_raw(
            "openstack",
            &topic,
            br#"{"oslo.version": "3.0", "oslo.message": "{}"}"#.to_vec(),
        )
        .unwrap();
    broker
        .publish_raw(
            "openstack",
            &topic,
            br#"{"method": "plain", "args": {}}"#.to_vec(),
        )
        .unwrap();
    let e = timeout(WAIT, srv.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(e.oslo_name(), "MessagingException");
    let e = timeout(WAIT, srv.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(e.oslo_name(), "UnsupportedRpcEnvelopeVersion");
    // Unenveloped requests are accepted, as Python servers do.
    let m = next(&mut srv).await;
    assert_eq!(m.message["method"], json!("plain"));
    assert!(m.unique_id.is_none());
    assert_eq!(broker.unacked_len(&topic), 1);
    m.acknowledge().await.unwrap();
    assert_eq!(broker.unacked_len(&topic), 0);
    assert!(m.acknowledge().await.is_err(), "a second ack is an error");
}

#[tokio::test]
async fn duplicate_requests_are_dropped() {
    let t = transport("dups").await;
    let topic = uniq("t");
    let mut srv = server(&t, None, &topic, "s1").await;
    let broker = FakeBroker::for_vhost("dups");
    let body =
        br#"{"method": "once", "args": {}, "_unique_id": "0123456789abcdef0123456789abcdef"}"#;
    broker
        .publish_raw("openstack", &topic, body.to_vec())
        .unwrap();
    broker
        .publish_raw("openstack", &topic, body.to_vec())
        .unwrap();
    broker
        .publish_raw(
            "openstack",
            &topic,
            br#"{"method": "next", "args": {}}"#.to_vec(),
        )
        .unwrap();
    assert_eq!(next(&mut srv).await.message["method"], json!("once"));
    assert_eq!(next(&mut srv).await.message["method"], json!("next"));
}

#[tokio::test]
async fn notifications_are_retained_routed_by_priority_and_decoded_in_both_formats() {
    let t = transport("notif").await;
    let topic = uniq("n");
    let info = format!("{topic}.info");
    t.driver()
        .send_notification(notif(&info, "v2", Format::V2))
        .await
        .unwrap();
    t.driver()
        .send_notification(notif(&info, "v1", Format::V1).with_context(obj(json!({"user": "u"}))))
        .await
        .unwrap();
    t.driver()
        .send_notification(notif(&format!("{topic}.sample"), "s", Format::V2))
        .await
        .unwrap();
    let broker = FakeBroker::for_vhost("notif");
    assert_eq!(broker.queue_len(&info), Some(2));
    assert!(broker
        .bindings("openstack")
        .contains(&(info.clone(), info.clone())));
    let mut l = t
        .driver()
        .listen_for_notifications(
            vec![(Target::new(&topic), Priority::Info)],
            None,
            ListenOptions::default(),
        )
        .await
        .unwrap();
    let m = next(&mut l).await;
    assert_eq!(m.message["event_type"], json!("v2"));
    assert_eq!(m.ctxt, obj(json!({"client_timeout": null})));
    assert!(m.unique_id.is_some());
    m.acknowledge().await.unwrap();
    let m = next(&mut l).await;
    assert_eq!(m.message["event_type"], json!("v1"));
    assert_eq!(m.ctxt, obj(json!({"user": "u", "client_timeout": null})));
    assert_eq!(m.message["payload"], json!({"n": "v1"}));
    m.acknowledge().await.unwrap();
    nothing(&mut l).await;
    assert_eq!(broker.queue_len(&format!("{topic}.sample")), Some(1));
}

#[tokio::test]
async fn pools_each_get_a_copy_and_poolless_listeners_compete() {
    let t = transport("pools").await;
    let topic = uniq("n");
    let ex2 = uniq("nova");
    let targets = vec![
        (Target::new(&topic), Priority::Info),
        (Target::new(&topic).with_exchange(&ex2), Priority::Warn),
    ];
    let pool_a = uniq("poolA");
    let pool_b = uniq("poolB");
    let open = |pool: Option<String>| {
        let t = t.clone();
        let targets = targets.clone();
        async move {
            t.driver()
                .listen_for_notifications(targets, pool, ListenOptions::default())
                .await
                .unwrap()
        }
    };
    let mut a = open(Some(pool_a.clone())).await;
    let mut b = open(Some(pool_b.clone())).await;
    let mut p1 = open(None).await;
    let mut p2 = open(None).await;
    let broker = FakeBroker::for_vhost("pools");
    assert!(broker
        .bindings(&ex2)
        .contains(&(format!("{topic}.warn"), pool_a.clone())));
    for i in 0..10 {
        t.driver()
            .send_notification(notif(
                &format!("{topic}.info"),
                &format!("e{i}"),
                Format::V2,
            ))
            .await
            .unwrap();
    }
    let mut w = notif(&format!("{topic}.warn"), "w", Format::V2);
    w.target = w.target.with_exchange(&ex2);
    t.driver().send_notification(w).await.unwrap();
    for l in [&mut a, &mut b] {
        for _ in 0..11 {
            next(l).await.acknowledge().await.unwrap();
        }
        nothing(l).await;
    }
    let mut n1 = 0;
    while let Ok(Some(Ok(m))) = timeout(QUIET, p1.next()).await {
        m.acknowledge().await.unwrap();
        n1 += 1;
    }
    let mut n2 = 0;
    while let Ok(Some(Ok(m))) = timeout(QUIET, p2.next()).await {
        m.acknowledge().await.unwrap();
        n2 += 1;
    }
    assert_eq!(n1 + n2, 11);
    assert!(n1 > 0 && n2 > 0, "split {n1}/{n2}");
}

#[tokio::test]
async fn requeue_and_unsettled_messages_are_redelivered() {
    let t = transport("requeue").await;
    let topic = uniq("n");
    let targets = vec![(Target::new(&topic), Priority::Info)];
    let mut l = t
        .driver()
        .listen_for_notifications(targets.clone(), None, ListenOptions::default())
        .await
        .unwrap();
    t.driver()
        .send_notification(notif(&format!("{topic}.info"), "r", Format::V2))
        .await
        .unwrap();
    let m = next(&mut l).await;
    m.requeue().await.unwrap();
    let again = next(&mut l).await;
    assert_eq!(again.message, m.message);
    // Neither acked nor requeued: back on the queue after cleanup...
    l.cleanup().await.unwrap();
    let queue = format!("{topic}.info");
    let broker = FakeBroker::for_vhost("requeue");
    assert_eq!(broker.queue_len(&queue), Some(1));
    assert!(again.acknowledge().await.is_err());
    // ...and after a listener is simply dropped.
    let mut l2 = t
        .driver()
        .listen_for_notifications(targets.clone(), None, ListenOptions::default())
        .await
        .unwrap();
    let m2 = next(&mut l2).await;
    assert_eq!(m2.message, m.message);
    drop(l2);
    assert_eq!(broker.queue_len(&queue), Some(1));
    let mut l3 = t
        .driver()
        .listen_for_notifications(targets, None, ListenOptions::default())
        .await
        .unwrap();
    next(&mut l3).await.acknowledge().await.unwrap();
    nothing(&mut l3).await;
    assert_eq!(broker.queue_len(&queue), Some(0));
}

#[tokio::test]
async fn prefetch_bounds_unacknowledged_deliveries() {
    let t = transport("prefetch").await;
    let topic = uniq("n");
    let queue = format!("{topic}.info");
    for i in 0..5 {
        t.driver()
            .send_notification(notif(&queue, &format!("e{i}"), Format::V2))
            .await
            .unwrap();
    }
    let mut l = t
        .driver()
        .listen_for_notifications(
            vec![(Target::new(&topic), Priority::Info)],
            None,
            ListenOptions::default().with_prefetch(Some(2)),
        )
        .await
        .unwrap();
    let broker = FakeBroker::for_vhost("prefetch");
    let first = next(&mut l).await;
    let _second = next(&mut l).await;
    assert_eq!(broker.unacked_len(&queue), 2);
    assert_eq!(broker.queue_len(&queue), Some(3));
    nothing(&mut l).await;
    first.acknowledge().await.unwrap();
    let third = next(&mut l).await;
    assert_eq!(third.message["event_type"], json!("e2"));
}

#[tokio::test]
async fn driver_cleanup_closes_calls_and_listeners() {
    let t = transport("cleanup").await;
    let topic = uniq("t");
    let mut srv = server(&t, None, &topic, "s").await;
    let mut replies = t
        .driver()
        .send(RpcRequest::call(
            Target::new(&topic),
            request("m", json!({})),
            WAIT,
        ))
        .await
        .unwrap()
        .unwrap();
    let m = next(&mut srv).await;
    t.cleanup().await;
    assert_eq!(timeout(WAIT, replies.next()).await.unwrap(), None);
    assert!(timeout(WAIT, srv.next()).await.unwrap().is_none());
    // The caller is gone: the reply is discarded.
    m.reply(Ok(json!(1))).await.unwrap();
    let e = t
        .driver()
        .send(RpcRequest::cast(
            Target::new(&topic),
            request("m", json!({})),
        ))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Closed));
}

#[tokio::test]
async fn large_and_unicode_payloads_survive() {
    let t = transport("payloads").await;
    let topic = uniq("t");
    let mut srv = server(&t, None, &topic, "s").await;
    let big = "x".repeat(1 << 20);
    let args = json!({"big": big, "uni": "é☃😀\u{0}", "nested": {"a": [null, 1.5, {"b": null}]}, "none": null});
    t.driver()
        .send(RpcRequest::cast(
            Target::new(&topic),
            request("m", args.clone()),
        ))
        .await
        .unwrap();
    assert_eq!(next(&mut srv).await.message["args"], args);
}
