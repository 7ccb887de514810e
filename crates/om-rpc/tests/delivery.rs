//! Acknowledgement modes, duplicate suppression and malformed input
//! (wire-rabbit §10-§11, test-cases F 65, J 115).
#![allow(clippy::unwrap_used)]

mod common;

use common::scripted::{self, Event};
use common::{ctx, eventually, transport};
use om_driver_api::fake::FakeBroker;
use om_rpc::om_core::envelope::{self, Format};
use om_rpc::om_core::{Context, Error, JsonObject, Target, Value};
use om_rpc::{AckMode, Endpoint, RpcClient, RpcServer};
use serde::Deserialize;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Deserialize)]
struct N {
    n: i64,
}

fn counting(count: &Arc<AtomicUsize>, sleep_ms: u64) -> Endpoint {
    let count = count.clone();
    Endpoint::new().method("count", move |_c: Context, a: N| {
        let count = count.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
            count.fetch_add(1, Ordering::SeqCst);
            Ok(a.n)
        }
    })
}

#[tokio::test]
async fn duplicate_unique_ids_are_suppressed_by_the_server() {
    let (t, script) = scripted::transport();
    let count = Arc::new(AtomicUsize::new(0));
    let s = RpcServer::builder(t, Target::new("dup").with_server("s1"))
        .endpoint(counting(&count, 0))
        .dedup_window(2)
        .build()
        .unwrap();
    s.start().await.unwrap();
    script.push("a", "count", json!({"n": 1}), Some("m1"), Some("u1"));
    script.push("a-again", "count", json!({"n": 1}), Some("m2"), Some("u1"));
    script.push("b", "count", json!({"n": 2}), Some("m3"), Some("u2"));
    script.push("c", "count", json!({"n": 3}), Some("m4"), Some("u3"));
    // u1 has left the 2-entry window: no longer a duplicate.
    script.push("a-late", "count", json!({"n": 1}), Some("m5"), Some("u1"));
    // No unique id: never a duplicate.
    script.push("x1", "count", json!({"n": 4}), Some("m6"), None);
    script.push("x2", "count", json!({"n": 4}), Some("m7"), None);
    eventually("six replies", || script.log.replies().len() == 6).await;
    s.stop().await.unwrap();
    s.wait().await.unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 6);
    let replied: Vec<String> = script
        .log
        .replies()
        .into_iter()
        .map(|(tag, _)| tag)
        .collect();
    assert!(!replied.contains(&"a-again".to_owned()), "{replied:?}");
    // The duplicate was acknowledged (so it is not redelivered), not answered.
    assert!(script.log.events().contains(&Event::Ack("a-again".into())));
}

#[tokio::test]
async fn duplicate_raw_requests_run_once_end_to_end() {
    let t = transport("dup-raw").await;
    let count = Arc::new(AtomicUsize::new(0));
    let s = common::start_server(&t, "dupraw", "s1", vec![counting(&count, 0)]).await;
    let mut msg = JsonObject::new();
    msg.insert("method".into(), "count".into());
    msg.insert("args".into(), json!({"n": 1}));
    msg.insert(
        "_unique_id".into(),
        "fe02beb098e149dc96a77b9508b49cea".into(),
    );
    let body = envelope::encode(&msg, Format::V2).unwrap();
    let broker = FakeBroker::for_url(t.url());
    assert_eq!(
        broker
            .publish_raw("openstack", "dupraw", body.clone())
            .unwrap(),
        1
    );
    assert_eq!(broker.publish_raw("openstack", "dupraw", body).unwrap(), 1);
    // A third, different one proves the server went on.
    msg.insert(
        "_unique_id".into(),
        "00000000000000000000000000000001".into(),
    );
    broker
        .publish_raw(
            "openstack",
            "dupraw",
            envelope::encode(&msg, Format::V2).unwrap(),
        )
        .unwrap();
    eventually("two executions", || count.load(Ordering::SeqCst) == 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(count.load(Ordering::SeqCst), 2);
    common::shutdown(&s).await;
}

#[tokio::test]
async fn default_mode_acknowledges_before_dispatch() {
    let (t, script) = scripted::transport();
    let count = Arc::new(AtomicUsize::new(0));
    let s = RpcServer::builder(t, Target::new("ack").with_server("s1"))
        .endpoint(counting(&count, 0))
        .build()
        .unwrap();
    s.start().await.unwrap();
    script.push("m", "count", json!({"n": 1}), Some("id"), Some("u"));
    eventually("a reply", || !script.log.replies().is_empty()).await;
    common::shutdown(&s).await;
    assert_eq!(
        script.log.events(),
        vec![
            Event::Ack("m".into()),
            Event::Reply("m".into(), Ok(json!(1)))
        ]
    );
}

#[tokio::test]
async fn after_dispatch_mode_acknowledges_after_the_reply() {
    let (t, script) = scripted::transport();
    let count = Arc::new(AtomicUsize::new(0));
    let s = RpcServer::builder(t, Target::new("ack").with_server("s1"))
        .endpoint(counting(&count, 0))
        .ack_mode(AckMode::AfterDispatch)
        .build()
        .unwrap();
    s.start().await.unwrap();
    script.push("m", "count", json!({"n": 1}), Some("id"), Some("u"));
    script.push("cast", "count", json!({"n": 2}), None, Some("u2"));
    eventually("two acks", || {
        script
            .log
            .events()
            .iter()
            .filter(|e| matches!(e, Event::Ack(_)))
            .count()
            == 2
    })
    .await;
    common::shutdown(&s).await;
    let events = script.log.events();
    let reply_at = events
        .iter()
        .position(|e| matches!(e, Event::Reply(t, _) if t == "m"))
        .unwrap();
    let ack_at = events
        .iter()
        .position(|e| *e == Event::Ack("m".into()))
        .unwrap();
    assert!(reply_at < ack_at, "{events:?}");
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Reply(t, _) if t == "cast")),
        "casts get no reply"
    );
}

#[tokio::test]
async fn at_least_once_mode_redelivers_after_a_crash() {
    let t = transport("redeliver").await;
    let count = Arc::new(AtomicUsize::new(0));
    let build = |mode: AckMode, sleep: u64| {
        RpcServer::builder(t.clone(), Target::new("redeliver").with_server("s1"))
            .endpoint(counting(&count, sleep))
            .ack_mode(mode)
            .build()
            .unwrap()
    };
    let crashing = build(AckMode::AfterDispatch, 60_000);
    crashing.start().await.unwrap();
    let c = RpcClient::builder(t.clone(), Target::new("redeliver"))
        .timeout(Duration::from_secs(10))
        .build();
    c.cast(&ctx(), "count", json!({"n": 1})).await.unwrap();
    let broker = FakeBroker::for_url(t.url());
    eventually("the cast in flight", || {
        broker.unacked_len("redeliver") == 1
    })
    .await;
    crashing.abort().await;
    // The unacknowledged request went back to the queue; a healthy server
    // runs it.
    let healthy = build(AckMode::AfterDispatch, 0);
    healthy.start().await.unwrap();
    eventually("the redelivered cast", || count.load(Ordering::SeqCst) == 1).await;
    common::shutdown(&healthy).await;
}

#[tokio::test]
async fn at_most_once_mode_does_not_redeliver_after_a_crash() {
    let t = transport("no-redeliver").await;
    let count = Arc::new(AtomicUsize::new(0));
    let crashing = RpcServer::builder(t.clone(), Target::new("nr").with_server("s1"))
        .endpoint(counting(&count, 60_000))
        .build()
        .unwrap();
    crashing.start().await.unwrap();
    let c = RpcClient::new(t.clone(), Target::new("nr"));
    c.cast(&ctx(), "count", json!({"n": 1})).await.unwrap();
    let broker = FakeBroker::for_url(t.url());
    // Taken and acknowledged (the fake broker moves a delivery from the
    // queue to the unacknowledged set at once, so both being empty means
    // the server acknowledged it) before the crash.
    eventually("the cast taken and acknowledged", || {
        broker.queue_len("nr") == Some(0) && broker.unacked_len("nr") == 0
    })
    .await;
    crashing.abort().await;
    assert_eq!(broker.queue_len("nr"), Some(0));
    assert_eq!(broker.unacked_len("nr"), 0);
    let healthy = common::start_server(&t, "nr", "s1", vec![counting(&count, 0)]).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        count.load(Ordering::SeqCst),
        0,
        "the acknowledged request is gone"
    );
    common::shutdown(&healthy).await;
}

#[tokio::test]
async fn malformed_messages_are_skipped() {
    // Scripted: an error item from the listener.
    let (t, script) = scripted::transport();
    let count = Arc::new(AtomicUsize::new(0));
    let s = RpcServer::builder(t, Target::new("bad").with_server("s1"))
        .endpoint(counting(&count, 0))
        .build()
        .unwrap();
    s.start().await.unwrap();
    script.push_error(Error::MalformedMessage("not JSON".into()));
    script.push("ok", "count", json!({"n": 1}), Some("id"), None);
    eventually("the good message answered", || {
        script.log.replies().len() == 1
    })
    .await;
    common::shutdown(&s).await;

    // fake://: garbage bodies on the wire.
    let t = transport("garbage").await;
    let s = common::start_server(&t, "garbage", "s1", vec![counting(&count, 0)]).await;
    let broker = FakeBroker::for_url(t.url());
    broker
        .publish_raw("openstack", "garbage", b"\xff not json".to_vec())
        .unwrap();
    broker
        .publish_raw(
            "openstack",
            "garbage",
            br#"{"oslo.version": "3.0", "oslo.message": "{}"}"#.to_vec(),
        )
        .unwrap();
    let c = RpcClient::builder(t.clone(), Target::new("garbage"))
        .timeout(Duration::from_secs(30))
        .build();
    let r: i64 = c.call(&ctx(), "count", json!({"n": 5})).await.unwrap();
    assert_eq!(r, 5);
    common::shutdown(&s).await;
}

#[tokio::test]
async fn unenveloped_requests_are_served() {
    let t = transport("v1-body").await;
    let seen = Arc::new(std::sync::Mutex::new(None::<Value>));
    let ep = {
        let seen = seen.clone();
        Endpoint::new().method("store", move |_c: Context, a: Value| {
            let seen = seen.clone();
            async move {
                *seen.lock().unwrap() = Some(a);
                Ok(())
            }
        })
    };
    let s = common::start_server(&t, "v1", "s1", vec![ep]).await;
    let broker = FakeBroker::for_url(t.url());
    broker
        .publish_raw(
            "openstack",
            "v1",
            br#"{"method": "store", "args": {"k": "v"}}"#.to_vec(),
        )
        .unwrap();
    eventually("the v1 request", || seen.lock().unwrap().is_some()).await;
    assert_eq!(seen.lock().unwrap().clone(), Some(json!({"k": "v"})));
    common::shutdown(&s).await;
}

#[tokio::test]
async fn driver_listen_failure_is_server_listen_error() {
    // The scripted driver can listen only once; the second start fails in
    // the driver with a transport error.
    let (t, _script) = scripted::transport();
    let s = RpcServer::builder(t, Target::new("listen").with_server("s1"))
        .build()
        .unwrap();
    s.start().await.unwrap();
    common::shutdown(&s).await;
    let e = s.start().await.unwrap_err();
    assert!(matches!(e, Error::ServerListen { .. }), "{e}");
    assert_eq!(e.oslo_name(), "ServerListenError");
}

#[tokio::test]
async fn closed_subscription_lets_wait_return() {
    let (t, script) = scripted::transport();
    let s = RpcServer::builder(t, Target::new("closed").with_server("s1"))
        .build()
        .unwrap();
    s.start().await.unwrap();
    // The driver ends the subscription (e.g. transport cleanup).
    drop(script);
    tokio::time::timeout(Duration::from_secs(30), s.wait())
        .await
        .expect("wait returns once the subscription is gone")
        .unwrap();
}

/// test-cases J 114: requests the driver fetched before `stop()` are still
/// processed (they were acknowledged first, so skipping one would lose it);
/// the server takes nothing new afterwards. One worker, so four requests
/// wait in the driver while the first one runs.
#[tokio::test]
async fn requests_fetched_before_stop_are_still_processed() {
    let (t, script) = scripted::transport();
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let handled = Arc::new(std::sync::Mutex::new(Vec::new()));
    let endpoint = {
        let (release, handled) = (release.clone(), handled.clone());
        Endpoint::new().method("work", move |_c: Context, a: N| {
            let (release, handled) = (release.clone(), handled.clone());
            async move {
                if a.n == 0 {
                    // The first request holds the only worker until released.
                    release.acquire().await.unwrap().forget();
                }
                handled.lock().unwrap().push(a.n);
                Ok(a.n)
            }
        })
    };
    let s = RpcServer::builder(t, Target::new("drain").with_server("s1"))
        .endpoint(endpoint)
        .executor_pool_size(1)
        .build()
        .unwrap();
    s.start().await.unwrap();
    for n in 0..5 {
        script.push(&format!("m{n}"), "work", json!({ "n": n }), None, None);
    }
    eventually("the first request to start", || {
        script.log.events().contains(&Event::Ack("m0".into()))
    })
    .await;
    // stop() returns although the only worker is busy and four fetched
    // requests still wait for it.
    // The worker stays busy until released below, so a stop() that waited
    // for it would never return.
    tokio::time::timeout(Duration::from_secs(30), s.stop())
        .await
        .expect("stop() returned while the worker was busy")
        .unwrap();
    assert!(
        handled.lock().unwrap().is_empty(),
        "the first request is still running"
    );
    release.add_permits(1);
    tokio::time::timeout(Duration::from_secs(30), s.wait())
        .await
        .expect("wait() returned")
        .unwrap();
    assert_eq!(
        *handled.lock().unwrap(),
        vec![0, 1, 2, 3, 4],
        "every fetched request ran, in order"
    );
    let acks: Vec<Event> = script
        .log
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::Ack(_)))
        .collect();
    assert_eq!(acks.len(), 5, "each request acknowledged once: {acks:?}");
    // The subscription is stopped: the driver refuses anything new.
    assert!(
        script.tx.is_closed(),
        "the listener was stopped, so no new request is taken"
    );
}
