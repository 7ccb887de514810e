//! Batch notification listener behaviour on fake:// (test case G 91).

#![allow(clippy::unwrap_used)]

mod common;

use common::{eventually, fake, within};
use om_driver_api::om_core::{Context, Priority, Target, Value};
use om_notify::{
    BatchEndpoint, BatchNotificationListener, Notification, NotificationFilter, NotificationResult,
    Notifier, NotifierDriver,
};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Batches = Arc<Mutex<Vec<Vec<Value>>>>;

fn recorder(
    b: &Batches,
) -> impl Fn(Vec<Notification>) -> std::future::Ready<NotificationResult> + Send + Sync + 'static {
    let b = b.clone();
    move |batch: Vec<Notification>| {
        b.lock()
            .expect("lock")
            .push(batch.into_iter().map(|n| n.payload).collect());
        std::future::ready(NotificationResult::Handled)
    }
}

fn sizes(b: &Batches) -> Vec<usize> {
    b.lock().expect("lock").iter().map(Vec::len).collect()
}

fn notifier(transport: &om_driver_api::Transport, topic: &str) -> Notifier {
    Notifier::builder(transport.clone())
        .driver(NotifierDriver::MessagingV2)
        .topics([topic])
        .build()
}

#[tokio::test]
async fn full_batches_then_a_partial_one_after_the_timeout() {
    let (transport, broker) = fake("b-205").await;
    let batches: Batches = Arc::default();
    let listener = BatchNotificationListener::builder(transport.clone())
        .target(Target::new("b205"))
        .endpoint(BatchEndpoint::new().info(recorder(&batches)))
        .batch_size(100)
        .batch_timeout(Duration::from_millis(400))
        .build()
        .expect("listener");
    assert_eq!(listener.batch_size(), 100);
    // Declare the queue, then send everything before the listener starts.
    let n = notifier(&transport, "b205");
    for i in 0..205 {
        n.info(&Context::new(), "e", i).await.expect("sent");
    }
    assert_eq!(broker.queue_len("b205.info"), Some(205));
    let started = Instant::now();
    listener.start().await.expect("start");
    eventually(60, "three batches", || sizes(&batches).len() == 3).await;
    assert_eq!(sizes(&batches), vec![100, 100, 5]);
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "the partial batch waited for the timeout"
    );
    let all: Vec<Value> = batches.lock().expect("lock").concat();
    assert_eq!(
        all,
        (0..205).map(|i| json!(i)).collect::<Vec<_>>(),
        "in order, each once"
    );
    eventually(60, "acknowledged", || broker.unacked_len("b205.info") == 0).await;
    assert_eq!(broker.queue_len("b205.info"), Some(0));
    // Idle windows never dispatch empty batches.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(sizes(&batches).len(), 3);
    listener.stop().await;
    within(listener.wait()).await;
}

#[tokio::test]
async fn without_timeout_only_full_batches_until_stop_flushes() {
    let (transport, broker) = fake("b-notimeout").await;
    let batches: Batches = Arc::default();
    let listener = BatchNotificationListener::builder(transport.clone())
        .target(Target::new("bnt"))
        .endpoint(BatchEndpoint::new().info(recorder(&batches)))
        .batch_size(10)
        .build()
        .expect("listener");
    listener.start().await.expect("start");
    let n = notifier(&transport, "bnt");
    for i in 0..25 {
        n.info(&Context::new(), "e", i).await.expect("sent");
    }
    eventually(60, "two full batches", || sizes(&batches) == vec![10, 10]).await;
    // Both full batches acknowledged; the last five fetched and held.
    eventually(60, "two batches settled", || {
        broker.unacked_len("bnt.info") == 5
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sizes(&batches),
        vec![10, 10],
        "no partial batch without a timeout"
    );
    assert_eq!(
        broker.unacked_len("bnt.info"),
        5,
        "fetched, not acknowledged"
    );
    listener.stop().await;
    within(listener.wait()).await;
    assert_eq!(
        sizes(&batches),
        vec![10, 10, 5],
        "stop flushes what was fetched"
    );
    assert_eq!(broker.queue_len("bnt.info"), Some(0));
    assert_eq!(broker.unacked_len("bnt.info"), 0);
}

#[tokio::test]
async fn grouped_by_priority_and_requeue_marks_only_that_group() {
    let (transport, broker) = fake("b-groups").await;
    let infos: Batches = Arc::default();
    let errors: Batches = Arc::default();
    let error_calls = Arc::new(AtomicUsize::new(0));
    let (e, ec) = (errors.clone(), error_calls.clone());
    let later: Batches = Arc::default();
    let listener = BatchNotificationListener::builder(transport.clone())
        .target(Target::new("bg"))
        .endpoint(BatchEndpoint::new().info(recorder(&infos)).error(
            move |batch: Vec<Notification>| {
                let first = ec.fetch_add(1, Ordering::SeqCst) == 0;
                e.lock()
                    .expect("lock")
                    .push(batch.into_iter().map(|n| n.payload).collect());
                async move {
                    if first {
                        NotificationResult::Requeue
                    } else {
                        NotificationResult::Handled
                    }
                }
            },
        ))
        // Sees the error group only when the first endpoint did not requeue it.
        .endpoint(BatchEndpoint::new().error(recorder(&later)))
        .batch_size(6)
        .batch_timeout(Duration::from_millis(200))
        .allow_requeue(true)
        .build()
        .expect("listener");
    let n = notifier(&transport, "bg");
    let c = Context::new();
    for i in 0..3 {
        n.info(&c, "e", i).await.expect("sent");
        n.error(&c, "e", 100 + i).await.expect("sent");
    }
    listener.start().await.expect("start");
    eventually(60, "error group delivered twice", || {
        error_calls.load(Ordering::SeqCst) == 2
    })
    .await;
    eventually(60, "settled", || {
        broker.unacked_len("bg.error") == 0 && broker.unacked_len("bg.info") == 0
    })
    .await;
    assert_eq!(sizes(&infos), vec![3], "info group handled once");
    let errs = errors.lock().expect("lock").clone();
    assert_eq!(errs[0], vec![json!(100), json!(101), json!(102)]);
    assert_eq!(errs[1].len(), 3, "the whole error group came back");
    assert_eq!(
        sizes(&later),
        vec![3],
        "second endpoint skipped for the requeued group"
    );
    listener.stop().await;
    within(listener.wait()).await;
    assert_eq!(broker.queue_len("bg.error"), Some(0));
}

#[tokio::test]
async fn batch_filters_narrow_the_batch() {
    let (transport, broker) = fake("b-filter").await;
    let compute: Batches = Arc::default();
    let listener = BatchNotificationListener::builder(transport.clone())
        .target(Target::new("bf"))
        .endpoint(
            BatchEndpoint::new().warn(recorder(&compute)).filter(
                NotificationFilter::builder()
                    .event_type("compute")
                    .build()
                    .expect("regex"),
            ),
        )
        .batch_size(4)
        .batch_timeout(Duration::from_millis(100))
        .build()
        .expect("listener");
    assert_eq!(
        listener
            .subscriptions()
            .iter()
            .map(|(_, p)| *p)
            .collect::<Vec<_>>(),
        vec![Priority::Warn]
    );
    // Everything is queued before the listener starts, so the batches are
    // the first four and then the fifth alone (after the batch timeout),
    // whatever the timing of the sends.
    let n = notifier(&transport, "bf");
    for (i, ev) in ["compute.a", "network.b", "compute.c", "image.d"]
        .iter()
        .enumerate()
    {
        n.warn(&Context::new(), ev, i).await.expect("sent");
    }
    // A batch holding only non-matching messages skips the endpoint.
    n.warn(&Context::new(), "network.z", 9).await.expect("sent");
    assert_eq!(broker.queue_len("bf.warn"), Some(5));
    listener.start().await.expect("start");
    // A batch is acknowledged after its endpoints ran: once all five are,
    // both batches were dispatched.
    eventually(60, "both batches dispatched", || {
        broker.queue_len("bf.warn") == Some(0) && broker.unacked_len("bf.warn") == 0
    })
    .await;
    assert_eq!(
        compute.lock().expect("lock").clone(),
        vec![vec![json!(0), json!(2)]]
    );
    listener.stop().await;
    within(listener.wait()).await;
}

#[tokio::test]
async fn typed_batches_and_build_errors() {
    #[derive(serde::Deserialize)]
    struct P {
        n: u32,
    }
    let (transport, _) = fake("b-typed").await;
    let total = Arc::new(AtomicUsize::new(0));
    let t = total.clone();
    let listener = BatchNotificationListener::builder(transport.clone())
        .target(Target::new("bt"))
        .endpoint(
            BatchEndpoint::new().sample(move |batch: Vec<Notification<P>>| {
                let sum: u32 = batch.iter().map(|n| n.payload.n).sum();
                t.fetch_add(sum as usize, Ordering::SeqCst);
                async { Ok::<_, String>(()) }
            }),
        )
        .batch_size(2)
        .build()
        .expect("listener");
    listener.start().await.expect("start");
    let n = notifier(&transport, "bt");
    for i in 1..=4 {
        n.sample(&Context::new(), "cpu", json!({"n": i}))
            .await
            .expect("sent");
    }
    eventually(60, "two batches summed", || {
        total.load(Ordering::SeqCst) == 10
    })
    .await;
    listener.stop().await;
    within(listener.wait()).await;

    let e = BatchNotificationListener::builder(transport.clone())
        .target(Target::new("x"))
        .batch_size(0)
        .build()
        .unwrap_err();
    assert_eq!(e.oslo_name(), "ConfigurationError");
    let e = BatchNotificationListener::builder(transport)
        .target(Target::new("x"))
        .batch_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(e.oslo_name(), "ConfigurationError");
}

#[tokio::test]
async fn prefetch_caps_the_batch_size_as_in_oslo() {
    let (transport, broker) = fake("b-prefetch").await;
    let batches: Batches = Arc::default();
    let listener = BatchNotificationListener::builder(transport.clone())
        .target(Target::new("bp"))
        .endpoint(BatchEndpoint::new().info(recorder(&batches)))
        .batch_size(10)
        .prefetch(3)
        .build()
        .expect("listener");
    assert_eq!(listener.batch_size(), 3);
    listener.start().await.expect("start");
    let n = notifier(&transport, "bp");
    for i in 0..7 {
        n.info(&Context::new(), "e", i).await.expect("sent");
    }
    eventually(60, "two capped batches", || sizes(&batches) == vec![3, 3]).await;
    // The second batch acknowledged, so the broker pushed the seventh:
    // fetched before stop(), it is in the batch that stop flushes.
    eventually(60, "the seventh fetched", || {
        broker.queue_len("bp.info") == Some(0) && broker.unacked_len("bp.info") == 1
    })
    .await;
    listener.stop().await;
    within(listener.wait()).await;
    assert_eq!(sizes(&batches), vec![3, 3, 1]);
}
