//! Properties and bodies on the wire, read and written with raw lapin
//! (test-cases.md 45, 58–62, 64, 66, 72, 75; retry=0 failing fast).

mod common;

use common::{driver, env_or_skip, obj, raw, uniq};
use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Consumer, ExchangeKind};
use om_driver_api::om_core::{Error, JsonObject, RemoteError, Target, Value};
use om_driver_api::{Driver, ListenOptions, ReplyEvent, Retry, RpcRequest, TransportOptions};
use serde_json::json;
use std::time::{Duration, Instant};

/// A raw, exclusive queue bound to `exchange` (declared as oslo does) with `key`.
async fn tap(
    ch: &Channel,
    exchange: &str,
    kind: ExchangeKind,
    auto_delete: bool,
    key: &str,
) -> Consumer {
    ch.exchange_declare(
        exchange.into(),
        kind,
        ExchangeDeclareOptions {
            auto_delete,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("exchange");
    let q = format!("tap_{}", uniq());
    let consumer = consumed_queue(ch, &q).await;
    ch.queue_bind(
        q.as_str().into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    consumer
}

async fn next_delivery(c: &mut Consumer) -> lapin::message::Delivery {
    tokio::time::timeout(Duration::from_secs(30), c.next())
        .await
        .expect("a message in time")
        .expect("consumer open")
        .expect("delivery")
}

/// The envelope's inner message, checking the outer shape.
fn inner(data: &[u8]) -> JsonObject {
    let outer: Value = serde_json::from_slice(data).expect("json body");
    let outer = outer.as_object().expect("object");
    assert_eq!(
        outer.keys().collect::<Vec<_>>(),
        ["oslo.version", "oslo.message"]
    );
    assert_eq!(outer["oslo.version"], "2.0");
    let text = outer["oslo.message"]
        .as_str()
        .expect("oslo.message is a string");
    obj(serde_json::from_str(text).expect("inner json"))
}

fn assert_python_properties(p: &BasicProperties) {
    assert_eq!(
        p.content_type().as_ref().map(|s| s.as_str()),
        Some("application/json")
    );
    assert_eq!(
        p.content_encoding().as_ref().map(|s| s.as_str()),
        Some("utf-8")
    );
    assert_eq!(p.delivery_mode(), &Some(2));
    assert_eq!(p.priority(), &Some(0));
    assert!(
        p.headers().as_ref().is_some_and(|h| h.inner().is_empty()),
        "{:?}",
        p.headers()
    );
    assert!(p.correlation_id().is_none() && p.reply_to().is_none() && p.message_id().is_none());
}

/// A raw connection and channel beside a driver (missing reply queues
/// given up after 1 s) and its RPC server listener on a fresh topic.
struct ServerSide {
    conn: lapin::Connection,
    ch: Channel,
    d: om_driver_rabbit::RabbitDriver,
    topic: String,
    listener: Box<dyn om_driver_api::Listener>,
}

async fn server_side(url: &str, prefix: &str) -> ServerSide {
    let conn = raw(url).await;
    let ch = conn.create_channel().await.expect("channel");
    let d = driver(url, &[("kombu_missing_consumer_retry_timeout", "1")]);
    let topic = format!("{prefix}{}", uniq());
    let listener = d
        .listen(
            Target::new(&topic).with_server("s1"),
            ListenOptions::default(),
        )
        .await
        .expect("listen");
    ServerSide {
        conn,
        ch,
        d,
        topic,
        listener,
    }
}

/// An exclusive queue `name`, consumed without acks (as a Python client's
/// reply queue).
async fn consumed_queue(ch: &Channel, name: &str) -> Consumer {
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("reply queue");
    ch.basic_consume(
        name.into(),
        "".into(),
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("consume")
}

/// A 2.0 body of a call of `m()` with `_timeout` 2 and the keys of `extra`
/// (a JSON object) added to the message.
fn call_body(msg_id: &str, reply_q: &str, extra: Value) -> String {
    let mut inner = json!({"method": "m", "args": {}, "_msg_id": msg_id, "_reply_q": reply_q,
        "_timeout": 2, "_unique_id": uniq()});
    if let (Some(m), Value::Object(e)) = (inner.as_object_mut(), extra) {
        m.extend(e);
    }
    json!({"oslo.version": "2.0", "oslo.message": inner.to_string()}).to_string()
}

fn is_hex32(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 32
            && s.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_casts_and_fanout_look_like_python() {
    let Some(url) = env_or_skip("OM_RABBIT_URL") else {
        return;
    };
    let conn = raw(&url).await;
    let ch = conn.create_channel().await.expect("channel");
    let topic = format!("spec_topic_{}", uniq());
    let mut t = tap(&ch, "openstack", ExchangeKind::Topic, false, &topic).await;
    let mut ts = tap(
        &ch,
        "openstack",
        ExchangeKind::Topic,
        false,
        &format!("{topic}.srv1"),
    )
    .await;
    let mut tf = tap(
        &ch,
        &format!("{topic}_fanout"),
        ExchangeKind::Fanout,
        true,
        "",
    )
    .await;
    let d = driver(&url, &[]);

    // A call with namespace, version, context and call-monitor timeout.
    // om-rpc puts namespace and version into the message (the driver keeps its order).
    let target = Target::new(&topic)
        .with_namespace("nsX")
        .with_version("1.3");
    let ctxt = obj(json!({"user_id": "u", "project_id": "p", "request_id": "req-1"}));
    let req = RpcRequest::call(target, obj(json!({"method": "echo", "args": {"a": 1, "b": "x"}, "namespace": "nsX", "version": "1.3"})), Duration::from_secs(5))
        .with_context(ctxt)
        .with_call_monitor_timeout(Some(2.0));
    let mut replies = d.send(req).await.expect("send").expect("stream");
    let m = next_delivery(&mut t).await;
    assert_eq!(m.exchange.as_str(), "openstack");
    assert_eq!(m.routing_key.as_str(), topic);
    assert_python_properties(&m.properties);
    assert_eq!(
        m.properties.expiration().as_ref().map(|s| s.as_str()),
        Some("5000")
    );
    let body = inner(&m.data);
    let keys: Vec<&str> = body.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "method",
            "args",
            "namespace",
            "version",
            "_msg_id",
            "_reply_q",
            "_timeout",
            "_unique_id",
            "_context_user_id",
            "_context_project_id",
            "_context_request_id"
        ]
    );
    assert!(is_hex32(&body["_msg_id"]) && is_hex32(&body["_unique_id"]));
    assert_eq!(body["_msg_id"].as_str(), Some(replies.msg_id()));
    assert_eq!(body["_reply_q"].as_str(), d.reply_queue());
    assert_eq!(body["_timeout"], json!(2));
    assert_eq!(body["args"], json!({"a": 1, "b": "x"}));

    // Python-style replies from a raw peer: heartbeat, old-style partial, end.
    let reply_q = body["_reply_q"].as_str().expect("reply q").to_owned();
    let msg_id = body["_msg_id"].as_str().expect("msg id").to_owned();
    let props = BasicProperties::default().with_content_type("application/json".into());
    for part in [
        json!({"result": null, "failure": null, "ending": false, "_msg_id": msg_id, "_unique_id": uniq()}),
        json!({"result": "part", "failure": null, "_msg_id": msg_id, "_unique_id": uniq()}),
        json!({"result": null, "failure": null, "ending": true, "_msg_id": msg_id, "_unique_id": uniq()}),
    ] {
        let env = json!({"oslo.version": "2.0", "oslo.message": part.to_string()});
        ch.basic_publish(
            "".into(),
            reply_q.as_str().into(),
            BasicPublishOptions::default(),
            env.to_string().as_bytes(),
            props.clone(),
        )
        .await
        .expect("publish reply");
    }
    assert_eq!(replies.next().await, Some(ReplyEvent::Heartbeat));
    assert_eq!(
        replies.next().await,
        Some(ReplyEvent::Final(Ok(json!("part"))))
    );

    // A server-directed cast: no expiration, no call keys, no namespace/version.
    let cast = RpcRequest::cast(
        Target::new(&topic).with_server("srv1"),
        obj(json!({"method": "direct", "args": {"y": 2}})),
    );
    assert!(d.send(cast).await.expect("cast").is_none());
    let m = next_delivery(&mut ts).await;
    assert_eq!(m.routing_key.as_str(), format!("{topic}.srv1"));
    assert_python_properties(&m.properties);
    assert!(m.properties.expiration().is_none());
    let body = inner(&m.data);
    assert_eq!(
        body.keys().map(String::as_str).collect::<Vec<_>>(),
        ["method", "args", "_unique_id"]
    );

    // Fanout: exchange <topic>_fanout, routing key "".
    let fan = RpcRequest::cast(
        Target::new(&topic).with_fanout(true).with_server("ignored"),
        obj(json!({"method": "fan", "args": {"x": 1}})),
    )
    .with_context(obj(json!({"a": 1})));
    d.send(fan).await.expect("fanout");
    let m = next_delivery(&mut tf).await;
    assert_eq!(m.exchange.as_str(), format!("{topic}_fanout"));
    assert_eq!(m.routing_key.as_str(), "");
    assert!(m.properties.expiration().is_none());
    let body = inner(&m.data);
    assert_eq!(
        body.keys().map(String::as_str).collect::<Vec<_>>(),
        ["method", "args", "_unique_id", "_context_a"]
    );
    d.cleanup().await;
    let _ = conn.close(200, "OK".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_look_like_python_and_missing_queues_are_retried() {
    let Some(url) = env_or_skip("OM_RABBIT_URL") else {
        return;
    };
    let ServerSide {
        conn,
        ch,
        d,
        topic,
        mut listener,
    } = server_side(&url, "spec_srv_").await;
    let reply_q = format!("reply_{}", uniq());
    let mut replies = consumed_queue(&ch, &reply_q).await;
    let request = |msg_id: &str, reply_q: &str| {
        call_body(
            msg_id,
            reply_q,
            json!({"_context_user": "bob", "_context_roles": ["admin"]}),
        )
    };
    let props = BasicProperties::default().with_content_type("application/json".into());
    ch.basic_publish(
        "openstack".into(),
        topic.as_str().into(),
        BasicPublishOptions::default(),
        request("id1", &reply_q).as_bytes(),
        props.clone(),
    )
    .await
    .expect("publish");
    let m = listener.next().await.expect("open").expect("request");
    // The context handed to endpoints: flattened keys plus client_timeout.
    assert_eq!(
        m.ctxt,
        obj(json!({"user": "bob", "roles": ["admin"], "client_timeout": 2}))
    );
    assert_eq!(m.message, obj(json!({"method": "m", "args": {}})));
    assert_eq!(m.msg_id.as_deref(), Some("id1"));
    assert_eq!(m.client_timeout, Some(2.0));
    m.acknowledge().await.expect("ack");
    m.heartbeat().await.expect("heartbeat");
    m.reply(Err(RemoteError::new("ValueError", "builtins", "bad value")))
        .await
        .expect("reply");

    let hb = tokio::time::timeout(Duration::from_secs(10), replies.next())
        .await
        .expect("hb")
        .expect("open")
        .expect("delivery");
    assert_eq!(hb.exchange.as_str(), "");
    assert_eq!(hb.routing_key.as_str(), reply_q);
    assert_python_properties(&hb.properties);
    assert!(hb.properties.expiration().is_none());
    let body = inner(&hb.data);
    assert_eq!(
        body.keys().map(String::as_str).collect::<Vec<_>>(),
        ["result", "failure", "ending", "_msg_id", "_unique_id"]
    );
    assert_eq!(
        (
            &body["result"],
            &body["failure"],
            &body["ending"],
            &body["_msg_id"]
        ),
        (&json!(null), &json!(null), &json!(false), &json!("id1"))
    );
    let fin = tokio::time::timeout(Duration::from_secs(10), replies.next())
        .await
        .expect("final")
        .expect("open")
        .expect("delivery");
    let body = inner(&fin.data);
    assert_eq!(body["ending"], json!(true));
    let failure: Value = serde_json::from_str(body["failure"].as_str().expect("failure string"))
        .expect("failure json");
    assert_eq!(
        failure,
        json!({"class": "ValueError", "module": "builtins", "message": "bad value", "tb": [], "args": ["bad value"], "kwargs": {}})
    );

    // test-cases 66: a reply to a missing queue is retried (every 0.25 s)
    // for kombu_missing_consumer_retry_timeout, then dropped; later replies
    // to it are dropped at once.
    let gone = format!("reply_{}", uniq());
    for id in ["id2", "id3"] {
        ch.basic_publish(
            "openstack".into(),
            topic.as_str().into(),
            BasicPublishOptions::default(),
            request(id, &gone).as_bytes(),
            props.clone(),
        )
        .await
        .expect("publish");
    }
    let m2 = listener.next().await.expect("open").expect("request");
    m2.acknowledge().await.expect("ack");
    let started = Instant::now();
    m2.reply(Ok(json!(1)))
        .await
        .expect("reply gives up quietly");
    let took = started.elapsed();
    // Retried for the configured 1 s, not the default 60 s.
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(20),
        "{took:?}"
    );
    let m3 = listener.next().await.expect("open").expect("request");
    m3.acknowledge().await.expect("ack");
    let started = Instant::now();
    m3.reply(Ok(json!(1))).await.expect("dropped");
    // Dropped at once: retrying would take the whole 1 s again.
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    let hb = m3
        .heartbeat()
        .await
        .expect_err("heartbeat to a missing queue fails");
    assert_eq!(hb.oslo_name(), "MessageDeliveryFailure");

    // test-cases 64 and undecodable bodies: rejected (dropped), reported as
    // Err items, the listener goes on.
    for bad in [
        &b"not json"[..],
        br#"{"oslo.version": "2.1", "oslo.message": "{}"}"#,
    ] {
        ch.basic_publish(
            "openstack".into(),
            topic.as_str().into(),
            BasicPublishOptions::default(),
            bad,
            props.clone(),
        )
        .await
        .expect("publish");
    }
    let e1 = listener.next().await.expect("open").expect_err("malformed");
    assert_eq!(e1.oslo_name(), "MessagingException");
    let e2 = listener
        .next()
        .await
        .expect("open")
        .expect_err("bad version");
    assert_eq!(e2.oslo_name(), "UnsupportedRpcEnvelopeVersion");
    let cast = RpcRequest::cast(
        Target::new(&topic),
        obj(json!({"method": "after", "args": {}})),
    );
    d.send(cast).await.expect("cast");
    let ok = listener
        .next()
        .await
        .expect("open")
        .expect("valid message after bad ones");
    assert_eq!(ok.message["method"], "after");
    ok.acknowledge().await.expect("ack");
    listener.stop().await.expect("stop");
    listener.cleanup().await.expect("cleanup");
    // Nothing was requeued: the topic queue is empty.
    let left = ch
        .basic_get(topic.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get");
    assert!(left.is_none(), "rejected messages must not be requeued");
    d.cleanup().await;
    let _ = conn.close(200, "OK".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirms_compression_and_fast_failure() {
    let Some(url) = env_or_skip("OM_RABBIT_URL") else {
        return;
    };
    let conn = raw(&url).await;
    let ch = conn.create_channel().await.expect("channel");

    // test-cases 75: cast returns only after the broker confirmed, so the
    // message is already in the queue.
    let topic = format!("spec_confirm_{}", uniq());
    ch.exchange_declare(
        "openstack".into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange");
    ch.queue_declare(
        topic.as_str().into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("queue");
    ch.queue_bind(
        topic.as_str().into(),
        "openstack".into(),
        topic.as_str().into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    let d = driver(&url, &[]);
    for i in 0..20 {
        let cast = RpcRequest::cast(
            Target::new(&topic),
            obj(json!({"method": "m", "args": {"i": i}})),
        );
        d.send(cast).await.expect("cast");
        let got = ch
            .basic_get(topic.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("get");
        assert!(
            got.is_some(),
            "cast {i} returned before the message was in the queue"
        );
    }

    // test-cases 72: gzip = zlib stream + compression header; decoded by our listener.
    let z = driver(&url, &[("kombu_compression", "gzip")]);
    let cast = RpcRequest::cast(
        Target::new(&topic),
        obj(json!({"method": "zipped", "args": {"s": "x".repeat(500)}})),
    );
    z.send(cast).await.expect("compressed cast");
    let got = ch
        .basic_get(topic.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get")
        .expect("message");
    assert_eq!(&got.data[..2], &[0x78, 0x9c]);
    assert_eq!(
        got.properties.content_type().as_ref().map(|s| s.as_str()),
        Some("application/json")
    );
    let header = got
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("compression").cloned());
    assert_eq!(
        header,
        Some(lapin::types::AMQPValue::LongString(
            "application/x-gzip".into()
        ))
    );
    let ztopic = format!("spec_zip_{}", uniq());
    let mut zl = z
        .listen(
            Target::new(&ztopic).with_server("s"),
            ListenOptions::default(),
        )
        .await
        .expect("listen");
    let cast = RpcRequest::cast(
        Target::new(&ztopic),
        obj(json!({"method": "zipped", "args": {"s": "é"}})),
    );
    z.send(cast).await.expect("cast");
    let m = zl.next().await.expect("open").expect("decoded");
    assert_eq!(
        m.message,
        obj(json!({"method": "zipped", "args": {"s": "é"}}))
    );
    m.acknowledge().await.expect("ack");
    zl.cleanup().await.expect("cleanup");

    // at_least_once: unroutable → MessageUndeliverable at once.
    let req = RpcRequest::cast(
        Target::new(format!("nobody_{}", uniq())),
        obj(json!({"method": "m", "args": {}})),
    )
    .with_transport_options(TransportOptions::at_least_once(true));
    let e = d.send(req).await.expect_err("undeliverable");
    assert!(matches!(e, Error::MessageUndeliverable { .. }), "{e}");

    // retry=0 with the broker down fails fast, names the host, hides the password.
    let down = driver("rabbit://guest:s3cr3tpw@127.0.0.1:1/", &[]);
    let started = Instant::now();
    let req = RpcRequest::cast(Target::new("t"), obj(json!({"method": "m", "args": {}})))
        .with_retry(Retry::Limited(0));
    let e = down.send(req).await.expect_err("broker down");
    // Not the endless retries of the default (a retry would wait 1 s and
    // more): generous, the attempt count below is the exact check.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(e.oslo_name(), "MessageDeliveryFailure");
    let text = format!("{e} {e:?}");
    assert!(text.contains("after 1 attempt(s)"), "{text}");
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert!(!text.contains("s3cr3tpw"), "{text}");
    d.cleanup().await;
    z.cleanup().await;
    let _ = conn.close(200, "OK".into()).await;
}

/// Replies are pipelined on one channel and lapin may hand a
/// `basic.return` to another reply's confirm: replies to a missing queue
/// interleaved with replies to a live one must cost none of the live
/// replies (each arrives exactly once) and fail none of the calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returned_replies_never_cost_another_reply() {
    let Some(url) = env_or_skip("OM_RABBIT_URL") else {
        return;
    };
    let ServerSide {
        conn,
        ch,
        d,
        topic,
        mut listener,
    } = server_side(&url, "spec_pipe_").await;
    let live = format!("reply_{}", uniq());
    let mut replies = consumed_queue(&ch, &live).await;
    let gone = format!("reply_{}", uniq());
    const N: usize = 40;
    for i in 0..N {
        let reply_q = if i % 2 == 0 { &live } else { &gone };
        let body = call_body(&format!("id{i}"), reply_q, json!({}));
        ch.basic_publish(
            "openstack".into(),
            topic.as_str().into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            BasicProperties::default().with_content_type("application/json".into()),
        )
        .await
        .expect("publish");
    }
    let mut requests = Vec::new();
    for _ in 0..N {
        let m = tokio::time::timeout(Duration::from_secs(10), listener.next())
            .await
            .expect("a request in time")
            .expect("open")
            .expect("request");
        m.acknowledge().await.expect("ack");
        requests.push(m);
    }
    // All replies at once, so that they share confirms.
    let results =
        futures_util::future::join_all(requests.iter().map(|m| m.reply(Ok(json!("r"))))).await;
    for r in results {
        r.expect("a reply to a live or a missing queue never fails the server");
    }
    let msg_id = |d: &lapin::message::Delivery| {
        inner(&d.data)["_msg_id"]
            .as_str()
            .expect("msg id")
            .to_owned()
    };
    let mut want: Vec<String> = (0..N).step_by(2).map(|i| format!("id{i}")).collect();
    want.sort();
    // As many replies as live calls, however slowly they come...
    let mut got = Vec::new();
    while got.len() < want.len() {
        let d = tokio::time::timeout(Duration::from_secs(60), replies.next())
            .await
            .unwrap_or_else(|_| panic!("only {} live replies arrived: {got:?}", got.len()))
            .expect("reply consumer open")
            .expect("delivery");
        got.push(msg_id(&d));
    }
    // ...and no more after them.
    while let Ok(Some(Ok(d))) = tokio::time::timeout(Duration::from_secs(3), replies.next()).await {
        got.push(msg_id(&d));
    }
    got.sort();
    assert_eq!(got, want, "every live reply exactly once");
    listener.stop().await.expect("stop");
    listener.cleanup().await.expect("cleanup");
    d.cleanup().await;
    let _ = conn.close(200, "OK".into()).await;
}

/// test-cases 63: a request body without the 2.0 envelope (a bare 1.0
/// message, as old clients send) is served, and its reply goes back to the
/// caller's reply queue with the caller's `_msg_id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unenveloped_calls_are_served_and_replied_to() {
    let Some(url) = env_or_skip("OM_RABBIT_URL") else {
        return;
    };
    let ServerSide {
        conn,
        ch,
        d,
        topic,
        mut listener,
    } = server_side(&url, "spec_bare_").await;
    let reply_q = format!("reply_{}", uniq());
    let mut replies = consumed_queue(&ch, &reply_q).await;
    let bare = json!({"method": "echo", "args": {"x": [1, "two", null]},
        "_msg_id": "bare1", "_reply_q": reply_q, "_timeout": 5,
        "_context_user": "carol"});
    ch.basic_publish(
        "openstack".into(),
        topic.as_str().into(),
        BasicPublishOptions::default(),
        bare.to_string().as_bytes(),
        BasicProperties::default().with_content_type("application/json".into()),
    )
    .await
    .expect("publish");
    let m = tokio::time::timeout(Duration::from_secs(10), listener.next())
        .await
        .expect("the request arrives")
        .expect("open")
        .expect("request");
    assert_eq!(
        m.message,
        obj(json!({"method": "echo", "args": {"x": [1, "two", null]}}))
    );
    assert_eq!(m.ctxt["user"], json!("carol"));
    assert_eq!(m.msg_id.as_deref(), Some("bare1"));
    m.acknowledge().await.expect("ack");
    m.reply(Ok(json!({"x": [1, "two", null]})))
        .await
        .expect("reply");
    let reply = next_delivery(&mut replies).await;
    assert_eq!(reply.routing_key.as_str(), reply_q);
    let body = inner(&reply.data);
    assert_eq!(body["result"], json!({"x": [1, "two", null]}));
    assert_eq!(body["failure"], Value::Null);
    assert_eq!(body["ending"], json!(true));
    assert_eq!(body["_msg_id"], json!("bare1"));
    listener.cleanup().await.expect("cleanup");
    d.cleanup().await;
    let _ = conn.close(200, "bye".into()).await;
}

/// test-cases 57: when a client's first call reaches the server, the
/// client's reply queue already has its consumer (checked with a passive
/// declare as the request arrives), and a reply published at once reaches
/// the caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_queue_is_consumed_when_the_first_call_arrives() {
    let Some(url) = env_or_skip("OM_RABBIT_URL") else {
        return;
    };
    let conn = raw(&url).await;
    let ch = conn.create_channel().await.expect("channel");
    let topic = format!("spec_rq_{}", uniq());
    let mut requests = tap(&ch, "openstack", ExchangeKind::Topic, false, &topic).await;
    let d = driver(&url, &[]);
    assert!(d.reply_queue().is_none(), "no reply queue before a call");
    let mut stream = d
        .send(RpcRequest::call(
            Target::new(&topic),
            obj(json!({"method": "m", "args": {}})),
            Duration::from_secs(10),
        ))
        .await
        .expect("send")
        .expect("a call has replies");
    let request = next_delivery(&mut requests).await;
    let body = inner(&request.data);
    let reply_q = body["_reply_q"].as_str().expect("_reply_q").to_owned();
    let declared = ch
        .queue_declare(
            reply_q.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("the reply queue exists");
    assert_eq!(
        declared.consumer_count(),
        1,
        "consumed when the call arrives"
    );
    let reply = json!({"oslo.version": "2.0", "oslo.message": json!({
        "result": "pong", "failure": null, "ending": true,
        "_msg_id": body["_msg_id"], "_unique_id": uniq()}).to_string()});
    ch.basic_publish(
        "".into(),
        reply_q.as_str().into(),
        BasicPublishOptions::default(),
        reply.to_string().as_bytes(),
        BasicProperties::default().with_content_type("application/json".into()),
    )
    .await
    .expect("reply");
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("the reply arrives"),
        Some(ReplyEvent::Final(Ok(json!("pong"))))
    );
    d.cleanup().await;
    let _ = conn.close(200, "bye".into()).await;
}
