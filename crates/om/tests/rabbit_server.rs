//! The facade's RPC server and notifier on RabbitMQ.
//!
//! - An `RpcServer` through its whole life (test-cases 67): while it runs,
//!   its topic, server and fanout queues exist; after `stop()` and `wait()`
//!   the fanout queue is gone and the other two remain, as with Python's
//!   server.
//! - A notifier with `retry=0` and the broker down (test-cases 44): the
//!   send fails fast with `MessageDeliveryFailure` by default, and returns
//!   `Ok` with `ErrorPolicy::LogAndSwallow` (Python's notifier never
//!   raises for a delivery failure).

#[path = "../../om-driver-rabbit/tests/common/broker.rs"]
mod broker;

use broker::broker;
use om::notify::{ErrorPolicy, Notifier, NotifierDriver};
use om::rpc::{Endpoint, HandlerError, RpcClient, RpcServer};
use om::{Context, Retry, Target};
use std::time::{Duration, Instant};

/// The names of the broker's queues.
fn queues(ctl: &str) -> Vec<String> {
    broker::ctl(ctl, "list_queues name")
        .into_iter()
        .filter_map(|row| row.into_iter().next())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_and_wait_delete_the_fanout_queue_only() {
    let Some((url, ctl)) = broker() else {
        return;
    };
    let transport = om::transport(&url).await.expect("transport");
    let topic = format!("spec_life_{}", om::core::uuid_hex());
    let server = RpcServer::builder(transport.clone(), Target::new(&topic).with_server("s1"))
        .endpoint(
            Endpoint::new().method("ping", |_ctx: Context, _args: serde_json::Value| async {
                Ok::<_, HandlerError>("pong")
            }),
        )
        .build()
        .expect("server");
    server.start().await.expect("start");

    // The server answers, so its consumers are in place.
    let client = RpcClient::builder(transport.clone(), Target::new(&topic))
        .timeout(Duration::from_secs(10))
        .build();
    let pong: String = client
        .call(&Context::new(), "ping", serde_json::json!({}))
        .await
        .expect("call");
    assert_eq!(pong, "pong");

    let fanout_prefix = format!("{topic}_fanout_");
    let server_queue = format!("{topic}.s1");
    let before = queues(&ctl);
    assert!(before.contains(&topic), "{before:?}");
    assert!(before.contains(&server_queue), "{before:?}");
    let fanout: Vec<&String> = before
        .iter()
        .filter(|q| q.starts_with(&fanout_prefix))
        .collect();
    assert_eq!(fanout.len(), 1, "one fanout queue: {before:?}");
    let fanout = fanout[0].clone();

    server.stop().await.expect("stop");
    tokio::time::timeout(Duration::from_secs(30), server.wait())
        .await
        .expect("wait in time")
        .expect("wait");
    let after = queues(&ctl);
    assert!(!after.contains(&fanout), "{fanout} survived: {after:?}");
    assert!(after.contains(&topic), "{after:?}");
    assert!(after.contains(&server_queue), "{after:?}");
    transport.cleanup().await;
}

/// No broker needed: nothing listens on port 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifier_with_retry_0_and_the_broker_down() {
    let transport = om::transport("rabbit://guest:s3cr3tpw@127.0.0.1:1/")
        .await
        .expect("transport (connecting is lazy)");
    let notifier = Notifier::builder(transport.clone())
        .publisher_id("compute.host1")
        .driver(NotifierDriver::MessagingV2)
        .topics(["notifications"])
        .retry(Retry::Limited(0))
        .build();
    let started = Instant::now();
    let e = notifier
        .info(
            &Context::new(),
            "compute.instance.create.end",
            serde_json::json!({"id": 1}),
        )
        .await
        .expect_err("the broker is down");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "retry=0 must not keep trying: {:?}",
        started.elapsed()
    );
    assert_eq!(e.oslo_name(), "MessageDeliveryFailure", "{e}");
    assert!(!format!("{e} {e:?}").contains("s3cr3tpw"), "{e:?}");

    // Python's behaviour on request: logged, not returned.
    let swallowing = Notifier::builder(transport.clone())
        .publisher_id("compute.host1")
        .driver(NotifierDriver::MessagingV2)
        .topics(["notifications"])
        .retry(Retry::Limited(0))
        .error_policy(ErrorPolicy::LogAndSwallow)
        .build();
    swallowing
        .info(
            &Context::new(),
            "compute.instance.create.end",
            serde_json::json!({"id": 2}),
        )
        .await
        .expect("LogAndSwallow returns Ok");
    transport.cleanup().await;
}

/// test-cases 6: a URL query option applies to that transport only: a
/// server on a transport with `?rabbit_qos_prefetch_count=5` consumes with
/// prefetch 5, one on a transport of the same broker without it with 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_query_option_stays_on_its_transport() {
    let Some((url, ctl)) = broker() else {
        return;
    };
    let mut with_query = om::TransportUrl::parse(&url).expect("url");
    with_query
        .query
        .insert("rabbit_qos_prefetch_count".into(), "5".into());
    let tuned = om::transport(&with_query.to_string_with_secrets())
        .await
        .expect("transport with the query");
    let plain = om::transport(&url).await.expect("plain transport");
    let topics = [
        format!("spec_q5_{}", om::core::uuid_hex()),
        format!("spec_q0_{}", om::core::uuid_hex()),
    ];
    let mut servers = Vec::new();
    for (t, topic) in [(&tuned, &topics[0]), (&plain, &topics[1])] {
        let s = RpcServer::builder(t.clone(), Target::new(topic).with_server("s1"))
            .endpoint(
                Endpoint::new().method("ping", |_ctx: Context, _args: serde_json::Value| async {
                    Ok::<_, HandlerError>("pong")
                }),
            )
            .build()
            .expect("server");
        s.start().await.expect("start");
        servers.push(s);
    }
    let consumers = broker::ctl(&ctl, "list_consumers queue_name prefetch_count");
    let prefetch = |queue: &str| -> Option<&str> {
        consumers
            .iter()
            .find(|cols| cols.first().map(String::as_str) == Some(queue))
            .and_then(|cols| cols.get(1).map(String::as_str))
    };
    assert_eq!(prefetch(&topics[0]), Some("5"), "{consumers:?}");
    assert_eq!(prefetch(&topics[1]), Some("0"), "{consumers:?}");
    for s in &servers {
        s.stop().await.expect("stop");
        s.wait().await.expect("wait");
    }
    tuned.cleanup().await;
    plain.cleanup().await;
}
