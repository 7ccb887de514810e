//! Notification listener behaviour on fake:// (test cases G 82-93).

#![allow(clippy::unwrap_used)]

mod common;

use common::{eventually, fake, within};
use om_driver_api::om_core::envelope::{self, Format};
use om_driver_api::om_core::{Context, JsonObject, Priority, Target, Value};
use om_driver_api::BoxFuture;
use om_notify::{
    Endpoint, Notification, NotificationEndpoint, NotificationFilter, NotificationListener,
    NotificationResult, Notifier, NotifierDriver,
};
use serde::Deserialize;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Log<T> = Arc<Mutex<Vec<T>>>;

fn log<T>() -> Log<T> {
    Arc::new(Mutex::new(Vec::new()))
}

fn len<T>(l: &Log<T>) -> usize {
    l.lock().expect("lock").len()
}

fn notifier(transport: &om_driver_api::Transport, topic: &str) -> Notifier {
    Notifier::builder(transport.clone())
        .publisher_id("compute.host1")
        .driver(NotifierDriver::MessagingV2)
        .topics([topic])
        .build()
}

/// An endpoint recording the payloads of `info` notifications.
fn recording_info(l: &Log<Value>) -> Endpoint {
    let l = l.clone();
    Endpoint::new().info(move |n: Notification| {
        let l = l.clone();
        async move {
            l.lock().expect("lock").push(n.payload);
        }
    })
}

#[tokio::test]
async fn endpoint_receives_ctxt_publisher_event_payload_and_metadata() {
    #[derive(Debug, Deserialize, PartialEq)]
    struct Instance {
        id: u64,
        name: String,
    }
    let (transport, _) = fake("l-fields").await;
    let got: Log<Notification<Instance>> = log();
    let g = got.clone();
    let listener = NotificationListener::builder(transport.clone())
        .target(Target::new("fields"))
        .endpoint(Endpoint::new().info(move |n: Notification<Instance>| {
            let g = g.clone();
            async move {
                g.lock().expect("lock").push(n);
                NotificationResult::Handled
            }
        }))
        .build()
        .expect("listener");
    listener.start().await.expect("start");
    let sink = om_notify::TestSink::new();
    let n = Notifier::builder(transport.clone())
        .publisher_id("compute.host1")
        .drivers([
            NotifierDriver::MessagingV2,
            NotifierDriver::Test(sink.clone()),
        ])
        .topics(["fields"])
        .build();
    let ctxt = Context::new()
        .with("user", "u1")
        .with("auth_token", "secret");
    n.info(
        &ctxt,
        "compute.instance.create.end",
        json!({"id": 7, "name": "vm"}),
    )
    .await
    .expect("sent");
    eventually(60, "delivery", || len(&got) == 1).await;
    let sent = sink.take().remove(0);
    let r = got.lock().expect("lock").remove(0);
    assert_eq!(
        r.payload,
        Instance {
            id: 7,
            name: "vm".into()
        }
    );
    assert_eq!(r.publisher_id.as_deref(), Some("compute.host1"));
    assert_eq!(r.event_type, "compute.instance.create.end");
    assert_eq!(r.priority, Priority::Info);
    assert_eq!(r.metadata.message_id.as_deref(), sent.message_id());
    assert_eq!(r.metadata.timestamp.as_deref(), sent.timestamp());
    assert_eq!(r.ctxt.get_str("user"), Some("u1"));
    assert_eq!(
        r.ctxt.get("auth_token"),
        Some(&Value::Null),
        "redacted on send"
    );
    assert_eq!(
        r.ctxt.get("client_timeout"),
        Some(&Value::Null),
        "as oslo's rabbit driver"
    );
    listener.stop().await;
    within(listener.wait()).await;
}

#[tokio::test]
async fn subscribes_only_to_implemented_priorities() {
    let (transport, broker) = fake("l-prios").await;
    let infos = log();
    let warns = Arc::new(AtomicUsize::new(0));
    let w = warns.clone();
    let listener = NotificationListener::builder(transport.clone())
        .target(Target::new("prios"))
        .endpoint(recording_info(&infos).warn(move |_: Notification| {
            w.fetch_add(1, Ordering::SeqCst);
            async {}
        }))
        .build()
        .expect("listener");
    assert_eq!(
        listener
            .subscriptions()
            .iter()
            .map(|(t, p)| (t.topic.clone(), *p))
            .collect::<Vec<_>>(),
        vec![
            (Some("prios".into()), Priority::Info),
            (Some("prios".into()), Priority::Warn)
        ]
    );
    listener.start().await.expect("start");
    assert!(broker.has_queue("prios.info") && broker.has_queue("prios.warn"));
    assert!(!broker.has_queue("prios.sample"));
    let n = notifier(&transport, "prios");
    let c = Context::new();
    n.sample(&c, "cpu", 70).await.expect("sent");
    n.info(&c, "e", 1).await.expect("sent");
    n.warn(&c, "e", 2).await.expect("sent");
    eventually(60, "info and warn", || {
        len(&infos) == 1 && warns.load(Ordering::SeqCst) == 1
    })
    .await;
    // The sample notification stays queued (the notifier declared its queue).
    assert_eq!(broker.queue_len("prios.sample"), Some(1));
    listener.stop().await;
    within(listener.wait()).await;
    assert_eq!(broker.queue_len("prios.sample"), Some(1));
}

#[tokio::test]
async fn pools_each_get_every_message_and_members_of_a_pool_share() {
    let (transport, broker) = fake("l-pools").await;
    let (a1, a2, b, nopool) = (log(), log(), log(), log());
    let mk = |l: &Log<Value>, pool: Option<&str>| {
        let mut builder = NotificationListener::builder(transport.clone())
            .target(Target::new("pooled"))
            .endpoint(recording_info(l));
        if let Some(p) = pool {
            builder = builder.pool(p);
        }
        builder.build().expect("listener")
    };
    let listeners = [
        mk(&a1, Some("poolA")),
        mk(&a2, Some("poolA")),
        mk(&b, Some("poolB")),
        mk(&nopool, None),
    ];
    for l in &listeners {
        l.start().await.expect("start");
    }
    assert_eq!(broker.consumer_count("poolA"), Some(2));
    assert_eq!(
        broker
            .bindings("openstack")
            .iter()
            .filter(|(k, q)| k == "pooled.info" && q == "poolA")
            .count(),
        1
    );
    let n = notifier(&transport, "pooled");
    for i in 0..20 {
        n.info(&Context::new(), "e", i).await.expect("sent");
    }
    eventually(60, "every copy", || {
        len(&a1) + len(&a2) == 20 && len(&b) == 20 && len(&nopool) == 20
    })
    .await;
    assert!(
        len(&a1) > 0 && len(&a2) > 0,
        "both pool members received some: {} / {}",
        len(&a1),
        len(&a2)
    );
    let mut all: Vec<Value> = a1.lock().expect("lock").clone();
    all.extend(a2.lock().expect("lock").iter().cloned());
    all.sort_by_key(|v| v.as_i64());
    assert_eq!(
        all,
        (0..20).map(|i| json!(i)).collect::<Vec<_>>(),
        "each message once within the pool"
    );
    for l in &listeners {
        l.stop().await;
        within(l.wait()).await;
    }
}

#[tokio::test]
async fn two_pool_less_listeners_compete() {
    let (transport, _) = fake("l-compete").await;
    let (x, y) = (log(), log());
    let lx = NotificationListener::builder(transport.clone())
        .target(Target::new("compete"))
        .endpoint(recording_info(&x))
        .build()
        .expect("listener");
    let ly = NotificationListener::builder(transport.clone())
        .target(Target::new("compete"))
        .endpoint(recording_info(&y))
        .build()
        .expect("listener");
    lx.start().await.expect("start");
    ly.start().await.expect("start");
    let n = notifier(&transport, "compete");
    for i in 0..10 {
        n.info(&Context::new(), "e", i).await.expect("sent");
    }
    eventually(60, "all consumed once", || len(&x) + len(&y) == 10).await;
    assert!(len(&x) > 0 && len(&y) > 0);
    for l in [&lx, &ly] {
        l.stop().await;
        within(l.wait()).await;
    }
}

/// An endpoint that answers Requeue the first `n` times it sees a message.
fn requeue_first(times: usize, calls: &Arc<AtomicUsize>) -> Endpoint {
    let calls = calls.clone();
    Endpoint::new().info(move |_: Notification| {
        let seen = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            if seen < times {
                NotificationResult::Requeue
            } else {
                NotificationResult::Handled
            }
        }
    })
}

#[tokio::test]
async fn requeue_delivers_again_when_allowed() {
    let (transport, broker) = fake("l-requeue").await;
    let calls = Arc::new(AtomicUsize::new(0));
    let listener = NotificationListener::builder(transport.clone())
        .target(Target::new("rq"))
        .endpoint(requeue_first(2, &calls))
        .allow_requeue(true)
        .build()
        .expect("listener");
    assert!(listener.allow_requeue());
    listener.start().await.expect("start");
    notifier(&transport, "rq")
        .info(&Context::new(), "e", 1)
        .await
        .expect("sent");
    eventually(60, "processed a third time", || {
        calls.load(Ordering::SeqCst) == 3
    })
    .await;
    listener.stop().await;
    within(listener.wait()).await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(broker.queue_len("rq.info"), Some(0));
    assert_eq!(broker.unacked_len("rq.info"), 0);
}

#[tokio::test]
async fn requeue_is_acknowledged_when_not_allowed() {
    let (transport, broker) = fake("l-norequeue").await;
    let calls = Arc::new(AtomicUsize::new(0));
    let listener = NotificationListener::builder(transport.clone())
        .target(Target::new("norq"))
        .endpoint(requeue_first(usize::MAX, &calls))
        .build()
        .expect("listener");
    listener.start().await.expect("start");
    notifier(&transport, "norq")
        .info(&Context::new(), "e", 1)
        .await
        .expect("sent");
    eventually(60, "processed", || calls.load(Ordering::SeqCst) == 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    listener.stop().await;
    within(listener.wait()).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "not redelivered");
    assert_eq!(
        broker.queue_len("norq.info"),
        Some(0),
        "acknowledged (dropped)"
    );
}

#[tokio::test]
async fn endpoint_error_and_panic_count_as_requeue() {
    let (transport, _) = fake("l-errors").await;
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let listener = NotificationListener::builder(transport.clone())
        .target(Target::new("errs"))
        .endpoint(Endpoint::new().info(move |_: Notification| {
            let seen = c.fetch_add(1, Ordering::SeqCst);
            async move {
                match seen {
                    0 => Err("database unavailable"),
                    1 => panic!("endpoint bug"),
                    _ => Ok(NotificationResult::Handled),
                }
            }
        }))
        .allow_requeue(true)
        .build()
        .expect("listener");
    listener.start().await.expect("start");
    notifier(&transport, "errs")
        .info(&Context::new(), "e", 1)
        .await
        .expect("sent");
    eventually(60, "third delivery", || calls.load(Ordering::SeqCst) == 3).await;
    listener.stop().await;
    within(listener.wait()).await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn first_endpoint_requeue_skips_the_second() {
    let (transport, _) = fake("l-order").await;
    let first = Arc::new(AtomicUsize::new(0));
    let second_saw: Log<Value> = log();
    let listener = NotificationListener::builder(transport.clone())
        .target(Target::new("order"))
        .endpoint(requeue_first(1, &first))
        .endpoint(recording_info(&second_saw))
        .allow_requeue(true)
        .build()
        .expect("listener");
    listener.start().await.expect("start");
    notifier(&transport, "order")
        .info(&Context::new(), "e", "m")
        .await
        .expect("sent");
    eventually(60, "second delivery reaches the second endpoint", || {
        len(&second_saw) == 1
    })
    .await;
    assert_eq!(
        first.load(Ordering::SeqCst),
        2,
        "first endpoint saw both deliveries"
    );
    assert_eq!(
        len(&second_saw),
        1,
        "second endpoint skipped on the requeued delivery"
    );
    listener.stop().await;
    within(listener.wait()).await;
}

#[tokio::test]
async fn filters_skip_an_endpoint_but_not_the_others() {
    let (transport, _) = fake("l-filter").await;
    let (compute_only, everything, tenant_abc) = (log(), log(), log());
    let listener = NotificationListener::builder(transport.clone())
        .target(Target::new("filt"))
        .endpoint(
            recording_info(&compute_only).filter(
                NotificationFilter::builder()
                    .event_type("^compute\\.")
                    .build()
                    .expect("regex"),
            ),
        )
        .endpoint(recording_info(&everything))
        .endpoint(
            recording_info(&tenant_abc).filter(
                NotificationFilter::builder()
                    .context("tenant", "^abc$")
                    .build()
                    .expect("regex"),
            ),
        )
        .build()
        .expect("listener");
    listener.start().await.expect("start");
    let n = Notifier::builder(transport.clone())
        .driver(NotifierDriver::MessagingV2)
        .topics(["filt"])
        .build();
    n.info(&Context::new().with("tenant", "abc"), "compute.start", 1)
        .await
        .expect("sent");
    n.info(&Context::new(), "network.x", 2).await.expect("sent");
    n.info(&Context::new().with("tenant", 5), "compute.y", 3)
        .await
        .expect("sent");
    n.info(&Context::new().with("tenant", "abcd"), "xcompute.", 4)
        .await
        .expect("sent");
    eventually(60, "all to the unfiltered endpoint", || {
        len(&everything) == 4
    })
    .await;
    let vals = |l: &Log<Value>| l.lock().expect("lock").clone();
    assert_eq!(vals(&compute_only), vec![json!(1), json!(3)]);
    assert_eq!(
        vals(&tenant_abc),
        vec![json!(1)],
        "missing key and non-string value never match"
    );
    listener.stop().await;
    within(listener.wait()).await;
}

#[tokio::test]
async fn unknown_priority_is_acknowledged_without_calling_endpoints() {
    let (transport, broker) = fake("l-unknown").await;
    let got = log();
    let listener = NotificationListener::builder(transport.clone())
        .target(Target::new("unk"))
        .endpoint(recording_info(&got))
        .allow_requeue(true)
        .build()
        .expect("listener");
    listener.start().await.expect("start");
    let mut body = JsonObject::new();
    for (k, v) in [
        ("message_id", json!("m-1")),
        ("publisher_id", json!("p")),
        ("event_type", json!("e")),
        ("priority", json!("FOO")),
        ("payload", json!(1)),
        ("timestamp", json!("2024-01-02 03:04:05")),
    ] {
        body.insert(k.into(), v);
    }
    let raw = envelope::encode(&body, Format::V2).expect("encode");
    assert_eq!(
        broker
            .publish_raw("openstack", "unk.info", raw)
            .expect("published"),
        1
    );
    // "warning" is not a priority either.
    body.insert("priority".into(), json!("warning"));
    broker
        .publish_raw(
            "openstack",
            "unk.info",
            envelope::encode(&body, Format::V1).expect("encode"),
        )
        .expect("published");
    // A good one after them proves they were processed.
    body.insert("priority".into(), json!("Info"));
    body.insert("payload".into(), json!("good"));
    broker
        .publish_raw(
            "openstack",
            "unk.info",
            envelope::encode(&body, Format::V1).expect("encode"),
        )
        .expect("published");
    eventually(60, "good message", || len(&got) == 1).await;
    eventually(60, "all settled", || broker.unacked_len("unk.info") == 0).await;
    assert_eq!(got.lock().expect("lock")[0], json!("good"));
    assert_eq!(
        broker.queue_len("unk.info"),
        Some(0),
        "unknown priorities acknowledged"
    );
    // Malformed bodies are skipped; the listener goes on.
    broker
        .publish_raw("openstack", "unk.info", b"not json".to_vec())
        .expect("published");
    body.insert("payload".into(), json!("after junk"));
    broker
        .publish_raw(
            "openstack",
            "unk.info",
            envelope::encode(&body, Format::V1).expect("encode"),
        )
        .expect("published");
    eventually(60, "message after junk", || len(&got) == 2).await;
    listener.stop().await;
    within(listener.wait()).await;
}

#[tokio::test]
async fn stop_and_wait_lose_nothing() {
    let (transport, broker) = fake("l-stop").await;
    let done = Arc::new(AtomicUsize::new(0));
    // Each notification takes a permit: the test decides how many finish
    // before stop(), so some are always left however slow the machine is.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (d, g) = (done.clone(), gate.clone());
    let listener = NotificationListener::builder(transport.clone())
        .target(Target::new("slow"))
        .endpoint(Endpoint::new().info(move |_: Notification| {
            let (d, g) = (d.clone(), g.clone());
            async move {
                g.acquire().await.expect("gate").forget();
                d.fetch_add(1, Ordering::SeqCst);
            }
        }))
        .executor_pool_size(4)
        .prefetch(8)
        .build()
        .expect("listener");
    listener.start().await.expect("start");
    assert!(listener.is_running().await);
    let n = notifier(&transport, "slow");
    for i in 0..200 {
        n.info(&Context::new(), "e", i).await.expect("sent");
    }
    gate.add_permits(4);
    eventually(60, "some processed", || done.load(Ordering::SeqCst) >= 4).await;
    listener.stop().await;
    assert!(!listener.is_running().await);
    // Let the running and fetched ones finish (and the restarted listener
    // below run freely).
    gate.add_permits(1_000);
    within(listener.wait()).await;
    let processed = done.load(Ordering::SeqCst);
    let left = broker.queue_len("slow.info").expect("queue exists");
    assert_eq!(broker.unacked_len("slow.info"), 0, "nothing left half-done");
    assert_eq!(
        processed + left,
        200,
        "processed {processed} + queued {left}"
    );
    assert!(left > 0, "stop really stopped taking messages");

    // A restarted listener takes the rest.
    listener.start().await.expect("restart");
    eventually(60, "the rest", || done.load(Ordering::SeqCst) == 200).await;
    listener.stop().await;
    within(listener.wait()).await;
    assert_eq!(broker.queue_len("slow.info"), Some(0));
}

#[tokio::test]
async fn concurrency_is_bounded_by_the_pool_size() {
    let (transport, _) = fake("l-bound").await;
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let (r, p, d) = (running.clone(), peak.clone(), done.clone());
    let listener = NotificationListener::builder(transport.clone())
        .target(Target::new("bound"))
        .endpoint(Endpoint::new().info(move |_: Notification| {
            let (r, p, d) = (r.clone(), p.clone(), d.clone());
            async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                r.fetch_sub(1, Ordering::SeqCst);
                d.fetch_add(1, Ordering::SeqCst);
            }
        }))
        .executor_pool_size(3)
        .build()
        .expect("listener");
    // All queued before the start: the pool is saturated at once, whatever
    // the timing of the sends.
    let n = notifier(&transport, "bound");
    for i in 0..30 {
        n.info(&Context::new(), "e", i).await.expect("sent");
    }
    listener.start().await.expect("start");
    eventually(60, "all processed", || done.load(Ordering::SeqCst) == 30).await;
    assert_eq!(peak.load(Ordering::SeqCst), 3, "ran 3 at once, never more");
    listener.stop().await;
    within(listener.wait()).await;
}

#[tokio::test]
async fn lifecycle_edges() {
    let (transport, _) = fake("l-life").await;
    let got = log();
    let listener = NotificationListener::builder(transport.clone())
        .target(Target::new("life"))
        .endpoint(recording_info(&got))
        .build()
        .expect("listener");
    // stop and wait before start are no-ops.
    listener.stop().await;
    within(listener.wait()).await;
    listener.start().await.expect("start");
    listener.start().await.expect("second start is a no-op");
    // wait() before stop() waits for stop().
    let waiter = {
        let l = Arc::new(listener);
        let l2 = l.clone();
        (l, tokio::spawn(async move { l2.wait().await }))
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.1.is_finished());
    waiter.0.stop().await;
    within(waiter.1).await.expect("waiter finished");
    waiter
        .0
        .wait_timeout(Duration::from_secs(1))
        .await
        .expect("already done");
}

#[tokio::test]
async fn build_errors() {
    let (transport, _) = fake("l-build").await;
    let e = NotificationListener::builder(transport.clone())
        .endpoint(Endpoint::new())
        .build()
        .unwrap_err();
    assert_eq!(e.oslo_name(), "InvalidTarget");
    let e = NotificationListener::builder(transport.clone())
        .target(Target::default())
        .build()
        .unwrap_err();
    assert_eq!(e.oslo_name(), "InvalidTarget");
    let e = NotificationListener::builder(transport.clone())
        .target(Target::new("t"))
        .executor_pool_size(0)
        .build()
        .unwrap_err();
    assert_eq!(e.oslo_name(), "ConfigurationError");
    let e = NotificationFilter::builder()
        .publisher_id("[")
        .build()
        .unwrap_err();
    assert_eq!(e.oslo_name(), "ConfigurationError");
}

#[tokio::test]
async fn requeue_needs_a_driver_that_can() {
    struct NoRequeue(Arc<dyn om_driver_api::DynDriver>);
    impl om_driver_api::Driver for NoRequeue {
        fn name(&self) -> &str {
            "norequeue"
        }
        fn capabilities(&self) -> om_driver_api::Capabilities {
            let mut c = self.0.capabilities();
            c.requeue = false;
            c.notification_pools = false;
            c
        }
        async fn send(
            &self,
            r: om_driver_api::RpcRequest,
        ) -> om_driver_api::om_core::Result<Option<om_driver_api::ReplyStream>> {
            self.0.send(r).await
        }
        async fn send_notification(
            &self,
            n: om_driver_api::Notification,
        ) -> om_driver_api::om_core::Result<()> {
            self.0.send_notification(n).await
        }
        async fn listen(
            &self,
            t: Target,
            o: om_driver_api::ListenOptions,
        ) -> om_driver_api::om_core::Result<Box<dyn om_driver_api::Listener>> {
            self.0.listen(t, o).await
        }
        async fn listen_for_notifications(
            &self,
            t: Vec<(Target, Priority)>,
            p: Option<String>,
            o: om_driver_api::ListenOptions,
        ) -> om_driver_api::om_core::Result<Box<dyn om_driver_api::Listener>> {
            self.0.listen_for_notifications(t, p, o).await
        }
        async fn cleanup(&self) {
            self.0.cleanup().await
        }
    }
    let (fake_transport, _) = fake("l-norq-driver").await;
    let transport = om_driver_api::Transport::from_driver(
        Arc::new(NoRequeue(fake_transport.driver().clone())),
        fake_transport.url().clone(),
        "openstack",
    );
    let e = NotificationListener::builder(transport.clone())
        .target(Target::new("t"))
        .allow_requeue(true)
        .build()
        .unwrap_err();
    assert_eq!(e.oslo_name(), "NotImplementedError");
    let e = NotificationListener::builder(transport.clone())
        .target(Target::new("t"))
        .pool("p")
        .build()
        .unwrap_err();
    assert_eq!(e.oslo_name(), "NotImplementedError");
    NotificationListener::builder(transport)
        .target(Target::new("t"))
        .build()
        .expect("fine without requeue");
}

/// A trait-based endpoint with its own filter, on a second exchange.
#[tokio::test]
async fn trait_endpoint_and_targets_on_two_exchanges() {
    struct Audit {
        seen: Log<(String, Priority)>,
        filter: NotificationFilter,
    }
    impl NotificationEndpoint for Audit {
        fn priorities(&self) -> Vec<Priority> {
            vec![Priority::Audit, Priority::Error]
        }
        fn filter_rule(&self) -> Option<&NotificationFilter> {
            Some(&self.filter)
        }
        fn handle<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, NotificationResult> {
            Box::pin(async move {
                self.seen
                    .lock()
                    .expect("lock")
                    .push((n.event_type.clone(), n.priority));
                NotificationResult::Handled
            })
        }
    }
    let (transport, broker) = fake("l-trait").await;
    let seen = log();
    let listener = NotificationListener::builder(transport.clone())
        .targets([Target::new("t1"), Target::new("t2").with_exchange("nova")])
        .endpoint(Audit {
            seen: seen.clone(),
            filter: NotificationFilter::builder()
                .publisher_id("^compute")
                .build()
                .expect("regex"),
        })
        .pool("auditors")
        .build()
        .expect("listener");
    listener.start().await.expect("start");
    let mut bindings = broker.bindings("nova");
    bindings.retain(|(_, q)| q == "auditors");
    assert_eq!(
        bindings,
        vec![
            ("t2.audit".into(), "auditors".into()),
            ("t2.error".into(), "auditors".into())
        ]
    );
    let n = notifier(&transport, "t1");
    n.audit(&Context::new(), "a1", 1).await.expect("sent");
    n.error(&Context::new(), "e1", 1).await.expect("sent");
    n.prepare()
        .publisher_id("network.h")
        .build()
        .audit(&Context::new(), "skipped", 1)
        .await
        .expect("sent");
    eventually(60, "two accepted", || len(&seen) == 2).await;
    listener.stop().await;
    within(listener.wait()).await;
    let mut got = seen.lock().expect("lock").clone();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("a1".to_owned(), Priority::Audit),
            ("e1".to_owned(), Priority::Error)
        ]
    );
}

#[tokio::test]
async fn typed_payload_mismatch_counts_as_requeue() {
    #[derive(Debug, Deserialize)]
    struct Strict {
        #[allow(dead_code)]
        id: u64,
    }
    let (transport, broker) = fake("l-typed").await;
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let listener = NotificationListener::builder(transport.clone())
        .target(Target::new("typed"))
        .endpoint(Endpoint::new().info(move |_: Notification<Strict>| {
            c.fetch_add(1, Ordering::SeqCst);
            async {}
        }))
        .build()
        .expect("listener");
    listener.start().await.expect("start");
    let n = notifier(&transport, "typed");
    n.info(&Context::new(), "e", json!({"id": "not a number"}))
        .await
        .expect("sent");
    n.info(&Context::new(), "e", json!({"id": 3}))
        .await
        .expect("sent");
    eventually(60, "good one handled", || calls.load(Ordering::SeqCst) == 1).await;
    eventually(60, "bad one settled", || {
        broker.unacked_len("typed.info") == 0
    })
    .await;
    // Without allow_requeue the bad one is acknowledged (dropped).
    assert_eq!(broker.queue_len("typed.info"), Some(0));
    listener.stop().await;
    within(listener.wait()).await;
}

#[tokio::test]
async fn dropping_a_running_listener_stops_it() {
    let (transport, broker) = fake("l-drop").await;
    let got = log();
    let listener = NotificationListener::builder(transport.clone())
        .target(Target::new("dropped"))
        .endpoint(recording_info(&got))
        .build()
        .expect("listener");
    listener.start().await.expect("start");
    assert_eq!(broker.consumer_count("dropped.info"), Some(1));
    drop(listener);
    eventually(60, "consumer gone", || {
        broker.consumer_count("dropped.info") == Some(0)
    })
    .await;
    notifier(&transport, "dropped")
        .info(&Context::new(), "e", 1)
        .await
        .expect("sent");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(len(&got), 0);
    assert_eq!(
        broker.queue_len("dropped.info"),
        Some(1),
        "kept on the broker"
    );
}

/// test-cases J 113 as om has it: `wait_timeout` gives `TaskTimeout` while
/// an endpoint is still running, and can be called again to finish the
/// wait once it returned.
#[tokio::test]
async fn wait_timeout_reports_task_timeout_and_can_be_resumed() {
    let (transport, _) = fake("l-wait-timeout").await;
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let (r, s) = (release.clone(), started.clone());
    let listener = NotificationListener::builder(transport.clone())
        .target(Target::new("held"))
        .endpoint(Endpoint::new().info(move |_: Notification| {
            let (r, s) = (r.clone(), s.clone());
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                r.acquire().await.expect("semaphore").forget();
            }
        }))
        .build()
        .expect("listener");
    listener.start().await.expect("start");
    notifier(&transport, "held")
        .info(&Context::new(), "e", 1)
        .await
        .expect("sent");
    eventually(60, "the endpoint to start", || {
        started.load(Ordering::SeqCst) == 1
    })
    .await;
    listener.stop().await;
    let err = listener
        .wait_timeout(Duration::from_millis(100))
        .await
        .expect_err("the endpoint is still running");
    assert_eq!(err.oslo_name(), "TaskTimeout", "{err:?}");
    release.add_permits(1);
    listener
        .wait_timeout(Duration::from_secs(60))
        .await
        .expect("the resumed wait finishes once the endpoint returned");
}
