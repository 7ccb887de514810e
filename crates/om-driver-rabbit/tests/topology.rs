//! Declared exchanges, queues, arguments and bindings, checked with
//! rabbitmqctl against test-cases.md 56, 57, 67, 68, 69, 70, 71, 73, 74, 80, 85.

mod common;

use common::{broker, ctl, ctl_cmd, driver, obj, row, uniq};
use om_driver_api::om_core::envelope::Format;
use om_driver_api::om_core::Value;
use om_driver_api::om_core::{Priority, Target};
use om_driver_api::{Driver, ListenOptions, Listener, Notification, ReplyEvent, RpcRequest};
use om_driver_rabbit::RabbitDriver;
use serde_json::json;
use std::time::Duration;

const QUEUE_COLS: &str = "list_queues name durable auto_delete arguments";
const EXCHANGE_COLS: &str = "list_exchanges name type durable auto_delete";
const BINDING_COLS: &str = "list_bindings source_name destination_name routing_key";

fn has_binding(rows: &[Vec<String>], source: &str, dest: &str, key: &str) -> bool {
    rows.iter()
        .any(|r| r.len() >= 3 && r[0] == source && r[1] == dest && r[2] == key)
}

/// One call from `client` to the server behind `listener` (on `topic`),
/// which answers `answer`; the caller gets exactly that. Returns the
/// listener.
async fn round_trip(
    mut listener: Box<dyn Listener>,
    client: &RabbitDriver,
    topic: &str,
    answer: Value,
) -> Box<dyn Listener> {
    let reply = answer.clone();
    let server = tokio::spawn(async move {
        let m = listener.next().await.expect("open").expect("request");
        m.acknowledge().await.expect("ack");
        m.reply(Ok(reply)).await.expect("reply");
        listener
    });
    let req = RpcRequest::call(
        Target::new(topic),
        obj(json!({"method": "m", "args": {}})),
        Duration::from_secs(20),
    );
    let mut stream = client
        .send(req)
        .await
        .expect("send")
        .expect("a call has replies");
    assert_eq!(stream.next().await, Some(ReplyEvent::Final(Ok(answer))));
    server.await.expect("server task")
}

/// A new virtual host `<prefix>_<uuid>` that guest may use, and the test
/// URL pointed at it.
fn fresh_vhost(url: &str, ctl_prefix: &str, prefix: &str) -> (String, String) {
    let vhost = format!("{prefix}_{}", uniq());
    ctl_cmd(ctl_prefix, &format!("add_vhost {vhost}"));
    ctl_cmd(
        ctl_prefix,
        &format!("set_permissions -p {vhost} guest '.*' '.*' '.*'"),
    );
    let mut parsed = om_driver_api::om_core::TransportUrl::parse(url).expect("url");
    parsed.virtual_host = Some(vhost.clone());
    (vhost, parsed.to_string_with_secrets())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_topology_matches_python() {
    let Some((url, ctl_prefix)) = broker() else {
        return;
    };
    let d = driver(&url, &[]);
    let topic = format!("spec_topic_{}", uniq());
    let listener = d
        .listen(
            Target::new(&topic).with_server("srv1"),
            ListenOptions::default(),
        )
        .await
        .expect("listen");

    let ex = ctl(&ctl_prefix, EXCHANGE_COLS);
    assert_eq!(
        row(&ex, "openstack").map(|r| &r[1..]),
        Some(&["topic", "false", "false"].map(String::from)[..])
    );
    let fanout_x = format!("{topic}_fanout");
    assert_eq!(
        row(&ex, &fanout_x).map(|r| &r[1..]),
        Some(&["fanout", "false", "true"].map(String::from)[..])
    );

    let qs = ctl(&ctl_prefix, QUEUE_COLS);
    assert_eq!(
        row(&qs, &topic).map(|r| &r[1..]),
        Some(&["false", "false", "[]"].map(String::from)[..])
    );
    let direct = format!("{topic}.srv1");
    assert_eq!(
        row(&qs, &direct).map(|r| &r[1..]),
        Some(&["false", "false", "[]"].map(String::from)[..])
    );
    let prefix = format!("{topic}_fanout_");
    let fanout_rows: Vec<&Vec<String>> = qs.iter().filter(|r| r[0].starts_with(&prefix)).collect();
    assert_eq!(fanout_rows.len(), 1, "{fanout_rows:?}");
    let fq = fanout_rows[0][0].clone();
    let hex = &fq[prefix.len()..];
    assert!(
        hex.len() == 32
            && hex
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "{fq}"
    );
    assert_eq!(
        &fanout_rows[0][1..],
        &["false", "false", "[{\"x-expires\",1800000}]"].map(String::from)[..]
    );

    let b = ctl(&ctl_prefix, BINDING_COLS);
    assert!(has_binding(&b, "openstack", &topic, &topic));
    assert!(has_binding(&b, "openstack", &direct, &direct));
    assert!(has_binding(&b, &fanout_x, &fq, &topic));

    // test-cases 67: cleanup deletes the fanout queue, keeps T and T.S.
    listener.cleanup().await.expect("cleanup");
    let qs = ctl(&ctl_prefix, QUEUE_COLS);
    assert!(row(&qs, &fq).is_none(), "fanout queue survived cleanup");
    assert!(row(&qs, &topic).is_some() && row(&qs, &direct).is_some());
    d.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_queue_is_declared_consumed_and_shared() {
    let Some((url, ctl_prefix)) = broker() else {
        return;
    };
    let server_driver = driver(&url, &[]);
    let topic = format!("spec_reply_{}", uniq());
    let mut listener = server_driver
        .listen(
            Target::new(&topic).with_server("s"),
            ListenOptions::default(),
        )
        .await
        .expect("listen");
    let server = tokio::spawn(async move {
        let mut reply_queues = Vec::new();
        for _ in 0..2 {
            let m = listener.next().await.expect("open").expect("request");
            m.acknowledge().await.expect("ack");
            m.reply(Ok(json!("pong"))).await.expect("reply");
            reply_queues.push(m.msg_id.clone());
        }
        listener.cleanup().await.expect("cleanup");
        reply_queues
    });
    let client = driver(&url, &[]);
    assert!(
        client.reply_queue().is_none(),
        "reply queue must be created lazily"
    );
    let mut first_queue = None;
    for _ in 0..2 {
        let req = RpcRequest::call(
            Target::new(&topic),
            obj(json!({"method": "ping", "args": {}})),
            Duration::from_secs(10),
        );
        let mut stream = client
            .send(req)
            .await
            .expect("send")
            .expect("a call has replies");
        let q = client
            .reply_queue()
            .expect("created at the first call")
            .to_owned();
        if let Some(f) = &first_queue {
            assert_eq!(f, &q, "all calls of one driver share the reply queue");
        }
        first_queue = Some(q);
        assert_eq!(
            stream.next().await,
            Some(ReplyEvent::Final(Ok(json!("pong"))))
        );
    }
    server.await.expect("server task");
    let q = first_queue.expect("queue");
    let hex = q.strip_prefix("reply_").expect("reply_ prefix");
    assert!(hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()));
    let qs = ctl(
        &ctl_prefix,
        "list_queues name durable auto_delete arguments consumers",
    );
    assert_eq!(
        row(&qs, &q).map(|r| &r[1..]),
        Some(&["false", "false", "[{\"x-expires\",1800000}]", "1"].map(String::from)[..])
    );
    client.cleanup().await;
    server_driver.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_and_pool_queues() {
    let Some((url, ctl_prefix)) = broker() else {
        return;
    };
    let d = driver(&url, &[]);
    let topic = format!("spec_notif_{}", uniq());
    // test-cases 80: the notifier declares and binds <topic>.info itself.
    let n = Notification::new(
        Target::new(format!("{topic}.info")),
        obj(json!({"event_type": "e", "payload": {}})),
        Format::V2,
    );
    d.send_notification(n).await.expect("notify");
    let qs = ctl(
        &ctl_prefix,
        "list_queues name durable auto_delete arguments messages",
    );
    let key = format!("{topic}.info");
    assert_eq!(
        row(&qs, &key).map(|r| &r[1..]),
        Some(&["false", "false", "[]", "1"].map(String::from)[..])
    );
    let b = ctl(&ctl_prefix, BINDING_COLS);
    assert!(has_binding(&b, "openstack", &key, &key));

    // test-cases 85: the pool queue is named after the pool, one binding
    // per (exchange, topic.priority).
    let other = format!("other_{}", uniq());
    let exchange = format!("nova_{}", uniq());
    let pool = format!("poolA_{}", uniq());
    let targets = vec![
        (Target::new(&topic), Priority::Info),
        (Target::new(&topic), Priority::Warn),
        (Target::new(&other).with_exchange(&exchange), Priority::Info),
        (Target::new(&other).with_exchange(&exchange), Priority::Warn),
    ];
    let listener = d
        .listen_for_notifications(targets, Some(pool.clone()), ListenOptions::default())
        .await
        .expect("listen");
    let qs = ctl(&ctl_prefix, QUEUE_COLS);
    assert_eq!(
        row(&qs, &pool).map(|r| &r[1..]),
        Some(&["false", "false", "[]"].map(String::from)[..])
    );
    let b = ctl(&ctl_prefix, BINDING_COLS);
    assert!(has_binding(
        &b,
        "openstack",
        &pool,
        &format!("{topic}.info")
    ));
    assert!(has_binding(
        &b,
        "openstack",
        &pool,
        &format!("{topic}.warn")
    ));
    assert!(has_binding(&b, &exchange, &pool, &format!("{other}.info")));
    assert!(has_binding(&b, &exchange, &pool, &format!("{other}.warn")));
    let ex = ctl(&ctl_prefix, EXCHANGE_COLS);
    assert_eq!(
        row(&ex, &exchange).map(|r| &r[1..]),
        Some(&["topic", "false", "false"].map(String::from)[..])
    );
    listener.cleanup().await.expect("cleanup");
    d.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos_prefetch_and_connection_properties() {
    let Some((url, ctl_prefix)) = broker() else {
        return;
    };
    let d = driver(&url, &[("rabbit_qos_prefetch_count", "7")]);
    let topic = format!("spec_qos_{}", uniq());
    let listener = d
        .listen(
            Target::new(&topic).with_server("s"),
            ListenOptions::default(),
        )
        .await
        .expect("listen");
    // test-cases 73: basic.qos(0, 7, false) on the consuming channel.
    let consumers = ctl(&ctl_prefix, "list_consumers queue_name prefetch_count");
    assert_eq!(row(&consumers, &topic).map(|r| r[1].as_str()), Some("7"));
    // test-cases 74: connection_name <program>:<pid>:<uuid>, capabilities.
    let conns = ctl(&ctl_prefix, "list_connections client_properties");
    let pid = format!(":{}:", std::process::id());
    let ours: Vec<&Vec<String>> = conns.iter().filter(|r| r[0].contains(&pid)).collect();
    assert!(
        !ours.is_empty(),
        "no connection named with our pid: {conns:?}"
    );
    let props = &ours[0][0];
    // The connection_name property: <program>:<pid>:<dashed uuid4>, the
    // program being this test binary's file name.
    let name = props
        .split_once("{\"connection_name\",\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(name, _)| name)
        .unwrap_or_else(|| panic!("no connection_name in {props}"));
    let program = std::env::args()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .expect("program name");
    let parts: Vec<&str> = name.rsplitn(3, ':').collect();
    assert_eq!(parts.len(), 3, "{name}");
    let (id, pid_part, prog) = (parts[0], parts[1], parts[2]);
    assert_eq!(prog, program, "{name}");
    assert_eq!(pid_part, std::process::id().to_string(), "{name}");
    assert!(
        uuid::Uuid::parse_str(id).is_ok_and(|u| u.get_version_num() == 4)
            && id.len() == 36
            && id == id.to_ascii_lowercase(),
        "{name}"
    );
    assert!(
        props.contains("{\"consumer_cancel_notify\",true}"),
        "{props}"
    );
    assert!(props.contains("{\"connection.blocked\",true}"), "{props}");
    assert!(
        props.contains("{\"authentication_failure_close\",true}"),
        "{props}"
    );
    listener.cleanup().await.expect("cleanup");

    let unlimited = driver(&url, &[]);
    let topic2 = format!("spec_noqos_{}", uniq());
    let l2 = unlimited
        .listen(
            Target::new(&topic2).with_server("s"),
            ListenOptions::default(),
        )
        .await
        .expect("listen");
    let consumers = ctl(&ctl_prefix, "list_consumers queue_name prefetch_count");
    assert_eq!(row(&consumers, &topic2).map(|r| r[1].as_str()), Some("0"));
    l2.cleanup().await.expect("cleanup");
    d.cleanup().await;
    unlimited.cleanup().await;
}

/// test-cases 73, the other half: `rabbit_qos_prefetch_count` reaches the
/// channels that consume with acknowledgements, and no other: the channels
/// om publishes on (requests, casts, replies, notifications) keep no
/// prefetch. The reply queue is consumed without acknowledgements, where a
/// prefetch would have no effect, and gets none (a difference from Python,
/// on purpose: docs/compatibility.md). On a vhost of its own, so that every
/// channel and consumer listed there is this driver's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_only_on_consuming_channels() {
    let Some((url, ctl_prefix)) = broker() else {
        return;
    };
    let (vhost, vurl) = fresh_vhost(&url, &ctl_prefix, "om_qos");
    let d = driver(&vurl, &[("rabbit_qos_prefetch_count", "7")]);
    let topic = format!("spec_qos_pub_{}", uniq());
    // A server, a call to it (a request, a reply queue, a reply), a cast
    // and a notification: every kind of consuming and publishing channel.
    let listener = d
        .listen(
            Target::new(&topic).with_server("s"),
            ListenOptions::default(),
        )
        .await
        .expect("listen");
    let mut listener = round_trip(listener, &d, &topic, json!("ok")).await;
    d.send(RpcRequest::cast(
        Target::new(&topic),
        obj(json!({"method": "c", "args": {}})),
    ))
    .await
    .expect("cast");
    let m = listener.next().await.expect("open").expect("cast");
    m.acknowledge().await.expect("ack");
    d.send_notification(Notification::new(
        Target::new(format!("{topic}.info")),
        obj(json!({"event_type": "e", "payload": {}})),
        Format::V2,
    ))
    .await
    .expect("notify");

    let consumers = ctl(
        &ctl_prefix,
        &format!("list_consumers -p {vhost} queue_name ack_required prefetch_count"),
    );
    // The server's three queues, each consumed with acknowledgements and
    // the prefetch; the reply queue without either.
    let acking: Vec<&Vec<String>> = consumers.iter().filter(|r| r[1] == "true").collect();
    assert_eq!(acking.len(), 3, "{consumers:?}");
    for r in &acking {
        assert_eq!(r[2], "7", "{consumers:?}");
    }
    let reply = consumers
        .iter()
        .find(|r| r[0].starts_with("reply_"))
        .unwrap_or_else(|| panic!("no reply consumer: {consumers:?}"));
    assert_eq!(reply[1..], ["false", "0"], "{consumers:?}");

    let channels: Vec<Vec<String>> = ctl(
        &ctl_prefix,
        "list_channels vhost confirm consumer_count prefetch_count",
    )
    .into_iter()
    .filter(|r| r.len() >= 4 && r[0] == vhost)
    .collect();
    let publishing: Vec<&Vec<String>> = channels
        .iter()
        .filter(|r| r[1] == "true" && r[2] == "0")
        .collect();
    assert!(!publishing.is_empty(), "{channels:?}");
    for r in channels.iter().filter(|r| r[2] == "0") {
        assert_eq!(
            r[3], "0",
            "basic.qos on a channel that consumes nothing: {channels:?}"
        );
    }
    listener.cleanup().await.expect("cleanup");
    d.cleanup().await;
    ctl_cmd(&ctl_prefix, &format!("delete_vhost {vhost}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_queues_on_a_fresh_vhost() {
    let Some((url, ctl_prefix)) = broker() else {
        return;
    };
    let (vhost, vurl) = fresh_vhost(&url, &ctl_prefix, "om_quorum");
    let opts = [
        ("rabbit_quorum_queue", "true"),
        ("rabbit_transient_quorum_queue", "true"),
        ("rabbit_quorum_delivery_limit", "5"),
    ];
    let server = driver(&vurl, &opts);
    let topic = format!("qtopic_{}", uniq());
    let listener = server
        .listen(
            Target::new(&topic).with_server("s"),
            ListenOptions::default(),
        )
        .await
        .expect("listen");
    let client = driver(&vurl, &opts);
    let listener = round_trip(listener, &client, &topic, json!(1)).await;

    let p = format!("-p {vhost} ");
    let qs = ctl(&ctl_prefix, &format!("{p}{QUEUE_COLS}"));
    let quorum = "[{\"x-delivery-limit\",5},{\"x-queue-type\",\"quorum\"}]";
    for q in [topic.clone(), format!("{topic}.s")] {
        let r = row(&qs, &q).unwrap_or_else(|| panic!("queue {q} missing: {qs:?}"));
        assert_eq!(r[1], "true");
        assert_eq!(r[2], "false");
        assert!(
            r[3].contains("{\"x-queue-type\",\"quorum\"}")
                && r[3].contains("{\"x-delivery-limit\",5}"),
            "{r:?} vs {quorum}"
        );
        assert!(!r[3].contains("x-expires"), "{r:?}");
    }
    let reply_q = client.reply_queue().expect("reply queue").to_owned();
    for r in qs
        .iter()
        .filter(|r| r[0] == reply_q || r[0].starts_with(&format!("{topic}_fanout_")))
    {
        assert_eq!(r[1], "true", "{r:?}");
        assert!(r[3].contains("{\"x-queue-type\",\"quorum\"}"), "{r:?}");
        assert!(
            r[3].contains("{\"x-delivery-limit\",5}") && r[3].contains("{\"x-expires\",1800000}"),
            "{r:?}"
        );
    }
    assert_eq!(
        qs.iter()
            .filter(|r| r[0] == reply_q || r[0].starts_with(&format!("{topic}_fanout_")))
            .count(),
        2
    );
    let ex = ctl(&ctl_prefix, &format!("{p}{EXCHANGE_COLS}"));
    assert_eq!(
        row(&ex, "openstack").map(|r| &r[1..]),
        Some(&["topic", "true", "false"].map(String::from)[..])
    );
    assert_eq!(
        row(&ex, &format!("{topic}_fanout")).map(|r| &r[1..]),
        Some(&["fanout", "true", "true"].map(String::from)[..])
    );
    listener.cleanup().await.expect("cleanup");
    client.cleanup().await;
    server.cleanup().await;
    ctl_cmd(&ctl_prefix, &format!("delete_vhost {vhost}"));
}

/// test-cases 70: with `rabbit_stream_fanout`, a server's fanout queue is
/// the shared, durable stream queue `<topic>_fanout` (no suffix), with
/// `x-max-age` 1800s, and a fanout cast reaches the server through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_fanout_queue_on_a_fresh_vhost() {
    let Some((url, ctl_prefix)) = broker() else {
        return;
    };
    let (vhost, vurl) = fresh_vhost(&url, &ctl_prefix, "om_stream");
    let opts = [
        ("rabbit_stream_fanout", "true"),
        ("rabbit_qos_prefetch_count", "10"),
        ("rabbit_transient_quorum_queue", "true"),
    ];
    let server = driver(&vurl, &opts);
    let topic = format!("stopic_{}", uniq());
    let mut listener = server
        .listen(
            Target::new(&topic).with_server("s"),
            ListenOptions::default(),
        )
        .await
        .expect("listen");
    let p = format!("-p {vhost} ");
    let qs = ctl(&ctl_prefix, &format!("{p}{QUEUE_COLS}"));
    let fanout = format!("{topic}_fanout");
    let r = row(&qs, &fanout).unwrap_or_else(|| panic!("no {fanout}: {qs:?}"));
    assert_eq!(
        &r[1..3],
        &["true", "false"],
        "durable, not auto-delete: {r:?}"
    );
    assert!(
        r[3].contains("{\"x-queue-type\",\"stream\"}")
            && r[3].contains("{\"x-max-age\",\"1800s\"}"),
        "{r:?}"
    );
    assert!(
        !qs.iter().any(|q| q[0].starts_with(&format!("{fanout}_"))),
        "no per-server fanout queue: {qs:?}"
    );
    let b = ctl(&ctl_prefix, &format!("{p}{BINDING_COLS}"));
    assert!(has_binding(&b, &fanout, &fanout, &topic), "{b:?}");

    let client = driver(&vurl, &opts);
    client
        .send(RpcRequest::cast(
            Target::new(&topic).with_fanout(true),
            obj(json!({"method": "hello", "args": {}})),
        ))
        .await
        .expect("fanout cast");
    let m = tokio::time::timeout(Duration::from_secs(20), listener.next())
        .await
        .expect("the fanout cast arrives")
        .expect("open")
        .expect("message");
    assert_eq!(m.message["method"], json!("hello"));
    m.acknowledge().await.expect("ack");
    listener.cleanup().await.expect("cleanup");
    client.cleanup().await;
    server.cleanup().await;
    ctl_cmd(&ctl_prefix, &format!("delete_vhost {vhost}"));
}

/// test-cases 71: a declaration that conflicts with what the vhost already
/// has. An exchange that exists non-durable makes a durable server fall
/// back to a non-durable exchange and queue (as oslo does); a quorum queue
/// cannot follow it there, and a shared queue declared with other
/// arguments is refused: both fail `listen()` with a typed error that
/// carries the broker's `PRECONDITION_FAILED` text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declarations_that_conflict_with_existing_ones() {
    let Some((url, ctl_prefix)) = broker() else {
        return;
    };
    let (vhost, vurl) = fresh_vhost(&url, &ctl_prefix, "om_conflict");
    let p = format!("-p {vhost} ");

    // Defaults: the `openstack` exchange is declared non-durable.
    let plain = driver(&vurl, &[]);
    let shared = format!("shared_{}", uniq());
    let first = plain
        .listen(
            Target::new(&shared).with_server("a"),
            ListenOptions::default(),
        )
        .await
        .expect("listen with defaults");
    let ex = ctl(&ctl_prefix, &format!("{p}{EXCHANGE_COLS}"));
    assert_eq!(
        row(&ex, "openstack").map(|r| r[2].as_str()),
        Some("false"),
        "{ex:?}"
    );

    // Durable queues asked for: exchange and queue fall back to non-durable.
    let durable = driver(&vurl, &[("amqp_durable_queues", "true")]);
    let topic = format!("durable_{}", uniq());
    let fell_back = durable
        .listen(
            Target::new(&topic).with_server("b"),
            ListenOptions::default(),
        )
        .await
        .expect("a durable server on a non-durable exchange falls back");
    let qs = ctl(&ctl_prefix, &format!("{p}{QUEUE_COLS}"));
    let r = row(&qs, &topic).unwrap_or_else(|| panic!("queue {topic} missing: {qs:?}"));
    assert_eq!(
        r[1], "false",
        "declared non-durable after the fallback: {r:?}"
    );

    // Quorum queues must be durable: no fallback possible, a typed error.
    let quorum = driver(&vurl, &[("rabbit_quorum_queue", "true")]);
    let qtopic = format!("quorum_{}", uniq());
    let err = quorum
        .listen(
            Target::new(&qtopic).with_server("c"),
            ListenOptions::default(),
        )
        .await
        .err()
        .expect("a quorum queue behind a non-durable exchange is refused");
    let text = err.to_string();
    assert!(
        matches!(err, om_driver_api::om_core::Error::ServerListen { .. })
            && text.contains("PRECONDITION_FAILED"),
        "{err:?}"
    );

    // Moving a vhost to quorum queues: the classic shared queue exists
    // (durable exchange this time), the quorum declaration is refused.
    let (vhost2, vurl2) = fresh_vhost(&url, &ctl_prefix, "om_conflict2");
    let classic = driver(&vurl2, &[("amqp_durable_queues", "true")]);
    let existing = classic
        .listen(
            Target::new(&shared).with_server("d"),
            ListenOptions::default(),
        )
        .await
        .expect("listen with classic durable queues");
    let moved = driver(&vurl2, &[("rabbit_quorum_queue", "true")]);
    let err = moved
        .listen(
            Target::new(&shared).with_server("e"),
            ListenOptions::default(),
        )
        .await
        .err()
        .expect("a classic shared queue redeclared as quorum is refused");
    let text = err.to_string();
    assert!(
        matches!(err, om_driver_api::om_core::Error::ServerListen { .. })
            && text.contains("PRECONDITION_FAILED")
            && text.contains(&shared),
        "{err:?}"
    );
    existing.cleanup().await.expect("cleanup");
    for d in [classic, moved] {
        d.cleanup().await;
    }
    ctl_cmd(&ctl_prefix, &format!("delete_vhost {vhost2}"));

    first.cleanup().await.expect("cleanup");
    fell_back.cleanup().await.expect("cleanup");
    for d in [plain, durable, quorum] {
        d.cleanup().await;
    }
    ctl_cmd(&ctl_prefix, &format!("delete_vhost {vhost}"));
}

/// test-cases 68: with `use_queue_manager`, the fanout and reply queues are
/// named `<hostname>:<processname>:<n>` from one counter (the fanout queue
/// of the server started first gets 1, the client's reply queue 2), and
/// they outlive the listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_manager_names_fanout_and_reply_queues() {
    let Some((url, ctl_prefix)) = broker() else {
        return;
    };
    // A host name of its own, so the counter file in /dev/shm is new.
    let host = format!("omhost{}", &uniq()[..12]);
    let options = [
        ("use_queue_manager", "true"),
        ("hostname", host.as_str()),
        ("processname", "omproc"),
    ];
    let d = driver(&url, &options);
    let topic = format!("spec_qm_{}", uniq());
    let listener = d
        .listen(
            Target::new(&topic).with_server("s"),
            ListenOptions::default(),
        )
        .await
        .expect("listen");
    let listener = round_trip(listener, &d, &topic, json!("pong")).await;

    let fanout = format!("{topic}_fanout_{host}:omproc:1");
    let reply = format!("reply_{host}:omproc:2");
    assert_eq!(d.reply_queue(), Some(reply.as_str()));
    let qs = ctl(&ctl_prefix, QUEUE_COLS);
    assert!(row(&qs, &fanout).is_some(), "no {fanout} in {qs:?}");
    assert!(row(&qs, &reply).is_some(), "no {reply} in {qs:?}");
    let b = ctl(&ctl_prefix, BINDING_COLS);
    assert!(has_binding(&b, &format!("{topic}_fanout"), &fanout, &topic));

    // Unlike a uuid-named one, the fanout queue stays (wire-rabbit §2.5).
    listener.cleanup().await.expect("cleanup");
    let qs = ctl(&ctl_prefix, QUEUE_COLS);
    assert!(row(&qs, &fanout).is_some(), "{fanout} deleted at cleanup");
    d.cleanup().await;
    for q in [&fanout, &reply] {
        ctl_cmd(&ctl_prefix, &format!("delete_queue '{q}'"));
    }
    let _ = std::fs::remove_file(format!("/dev/shm/{host}_omproc_qmanager"));
}
