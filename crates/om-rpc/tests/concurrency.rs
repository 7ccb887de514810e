//! Concurrency bound, graceful shutdown and restart (test-cases D 43, J).
#![allow(clippy::unwrap_used)]

mod common;

use common::{ctx, eventually, transport};
use om_rpc::om_core::{Context, Target};
use om_rpc::{Endpoint, RpcClient, RpcServer};
use serde::Deserialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

#[derive(Clone, Default)]
struct Gauge {
    now: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
    started: Arc<AtomicUsize>,
}

#[derive(Deserialize)]
struct Work {
    i: u64,
    ms: u64,
}

fn gauged(g: &Gauge) -> Endpoint {
    let g = g.clone();
    Endpoint::new().method("work", move |_c: Context, w: Work| {
        let g = g.clone();
        async move {
            g.started.fetch_add(1, Ordering::SeqCst);
            let n = g.now.fetch_add(1, Ordering::SeqCst) + 1;
            g.max.fetch_max(n, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(w.ms)).await;
            g.now.fetch_sub(1, Ordering::SeqCst);
            g.done.fetch_add(1, Ordering::SeqCst);
            Ok(w.i)
        }
    })
}

/// Like [`gauged`], but each handler waits for a permit of `gate` instead
/// of sleeping: the test decides when the running requests finish.
fn gated(g: &Gauge, gate: &Arc<Semaphore>) -> Endpoint {
    let (g, gate) = (g.clone(), gate.clone());
    Endpoint::new().method("work", move |_c: Context, w: Work| {
        let (g, gate) = (g.clone(), gate.clone());
        async move {
            g.started.fetch_add(1, Ordering::SeqCst);
            let _permit = gate.acquire().await.expect("gate open");
            g.done.fetch_add(1, Ordering::SeqCst);
            Ok(w.i)
        }
    })
}

fn server(t: &om_rpc::Transport, topic: &str, pool: usize, g: &Gauge) -> RpcServer {
    RpcServer::builder(t.clone(), Target::new(topic).with_server("s1"))
        .endpoint(gauged(g))
        .executor_pool_size(pool)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_calls_with_bounded_concurrency() {
    let t = transport("many").await;
    let g = Gauge::default();
    let pool = 8;
    let s = server(&t, "many", pool, &g);
    s.start().await.unwrap();
    let c = RpcClient::builder(t.clone(), Target::new("many"))
        .timeout(Duration::from_secs(60))
        .build();
    let mut set = JoinSet::new();
    for i in 0..1000u64 {
        let c = c.clone();
        set.spawn(async move {
            let r: u64 = c
                .call(&ctx(), "work", serde_json::json!({"i": i, "ms": 2}))
                .await
                .unwrap();
            assert_eq!(r, i);
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    assert_eq!(g.done.load(Ordering::SeqCst), 1000);
    let max = g.max.load(Ordering::SeqCst);
    assert!(max <= pool, "max concurrent handlers {max} > pool {pool}");
    assert!(max > 1, "handlers ran in parallel (max {max})");
    s.stop().await.unwrap();
    s.wait().await.unwrap();
}

/// test-cases 43, first half: the calls of one caller (each waiting for
/// its reply) run one after the other, in the order made, even on a
/// server that could run eight at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_callers_calls_run_in_order() {
    let t = transport("in-order").await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let now = Arc::new(AtomicUsize::new(0));
    let endpoint = Endpoint::new().method("work", {
        let (seen, now) = (seen.clone(), now.clone());
        move |_c: Context, w: Work| {
            let (seen, now) = (seen.clone(), now.clone());
            async move {
                let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                seen.lock().expect("lock").push((w.i, running));
                tokio::time::sleep(Duration::from_millis(w.ms)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                Ok(w.i)
            }
        }
    });
    let s = RpcServer::builder(t.clone(), Target::new("in-order").with_server("s1"))
        .endpoint(endpoint)
        .executor_pool_size(8)
        .build()
        .unwrap();
    s.start().await.unwrap();
    let c = RpcClient::builder(t.clone(), Target::new("in-order"))
        .timeout(Duration::from_secs(20))
        .build();
    for i in 0..30u64 {
        let r: u64 = c
            .call(&ctx(), "work", serde_json::json!({"i": i, "ms": 1}))
            .await
            .unwrap();
        assert_eq!(r, i);
    }
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(
        seen.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        (0..30).collect::<Vec<_>>()
    );
    assert!(
        seen.iter().all(|(_, running)| *running == 1),
        "one at a time: {seen:?}"
    );
    s.stop().await.unwrap();
    s.wait().await.unwrap();
}

#[tokio::test]
async fn stop_and_wait_lose_no_reply() {
    let t = transport("graceful").await;
    let g = Gauge::default();
    // The handlers run until the gate opens, after stop() returned.
    let gate = Arc::new(Semaphore::new(0));
    let s = RpcServer::builder(t.clone(), Target::new("graceful").with_server("s1"))
        .endpoint(gated(&g, &gate))
        .executor_pool_size(16)
        .build()
        .expect("server builds");
    s.start().await.unwrap();
    let c = RpcClient::builder(t.clone(), Target::new("graceful"))
        .timeout(Duration::from_secs(20))
        .build();
    let mut set = JoinSet::new();
    for i in 0..10u64 {
        let c = c.clone();
        set.spawn(async move {
            c.call::<_, u64>(&ctx(), "work", serde_json::json!({"i": i, "ms": 0}))
                .await
        });
    }
    eventually("ten running requests", || {
        g.started.load(Ordering::SeqCst) == 10
    })
    .await;
    // The gate is closed: a stop() that waited for them would never return.
    tokio::time::timeout(Duration::from_secs(30), s.stop())
        .await
        .expect("stop does not wait for running requests")
        .expect("stop");
    assert_eq!(
        g.done.load(Ordering::SeqCst),
        0,
        "the running requests are still running"
    );
    gate.add_permits(10);
    tokio::time::timeout(Duration::from_secs(30), s.wait())
        .await
        .expect("wait returns once the requests finished")
        .expect("wait");
    assert_eq!(
        g.done.load(Ordering::SeqCst),
        10,
        "wait waits for running requests"
    );
    let mut got = Vec::new();
    while let Some(r) = set.join_next().await {
        got.push(r.unwrap().expect("every in-flight call got its reply"));
    }
    got.sort_unstable();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
}

#[tokio::test]
async fn stopped_server_takes_no_new_messages_and_restarts() {
    let t = transport("restart").await;
    let g = Gauge::default();
    let s = server(&t, "restart", 4, &g);
    let h1 = s.start().await.unwrap();
    let h2 = s.start().await.unwrap();
    assert!(
        !h1.is_shutdown() && !h2.is_shutdown(),
        "a second start is a no-op"
    );
    let c = RpcClient::builder(t.clone(), Target::new("restart"))
        .timeout(Duration::from_secs(30))
        .build();
    assert_eq!(
        c.call::<_, u64>(&ctx(), "work", serde_json::json!({"i": 1, "ms": 0}))
            .await
            .unwrap(),
        1
    );
    s.stop().await.unwrap();
    s.wait().await.unwrap();

    // Cast while stopped: it stays queued, nobody runs it.
    c.cast(&ctx(), "work", serde_json::json!({"i": 2, "ms": 0}))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(g.done.load(Ordering::SeqCst), 1);

    // Restarted, it serves again (and picks up the queued cast).
    s.start().await.unwrap();
    assert_eq!(
        c.call::<_, u64>(&ctx(), "work", serde_json::json!({"i": 3, "ms": 0}))
            .await
            .unwrap(),
        3
    );
    eventually("the queued cast to run too", || {
        g.done.load(Ordering::SeqCst) >= 3
    })
    .await;
    assert_eq!(g.done.load(Ordering::SeqCst), 3);
    s.stop().await.unwrap();
    s.wait().await.unwrap();
}

#[tokio::test]
async fn serve_until_and_shutdown_handle() {
    let t = transport("serve-until").await;
    let g = Gauge::default();
    let s = server(&t, "su", 4, &g);
    // Started first so the calls below find it; serve_until's own start is
    // then a no-op.
    s.start().await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let s = s.clone();
        tokio::spawn(async move {
            s.serve_until(async {
                let _ = rx.await;
            })
            .await
        })
    };
    let c = RpcClient::builder(t.clone(), Target::new("su"))
        .timeout(Duration::from_secs(30))
        .build();
    assert_eq!(
        c.call::<_, u64>(&ctx(), "work", serde_json::json!({"i": 7, "ms": 0}))
            .await
            .unwrap(),
        7
    );
    let slow = {
        let c = c.clone();
        tokio::spawn(async move {
            c.call::<_, u64>(&ctx(), "work", serde_json::json!({"i": 8, "ms": 300}))
                .await
        })
    };
    while g.started.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tx.send(()).unwrap();
    runner.await.unwrap().unwrap();
    assert_eq!(
        slow.await.unwrap().unwrap(),
        8,
        "the in-flight call was answered"
    );

    // A ShutdownHandle ends `wait` from another task.
    let handle = s.start().await.unwrap();
    let waiter = {
        let s = s.clone();
        tokio::spawn(async move { s.wait().await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished());
    handle.shutdown();
    tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
