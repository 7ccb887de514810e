//! Topic, server and fanout routing over fake:// (test-cases D 38-42).
#![allow(clippy::unwrap_used)]

mod common;

use common::{ctx, eventually, shutdown, transport};
use om_rpc::om_core::{Context, Target};
use om_rpc::{Endpoint, RpcClient, RpcServer};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Hits = Arc<Mutex<HashMap<String, usize>>>;

#[derive(Deserialize)]
struct NoArgs {}

fn counting(name: &str, hits: &Hits) -> Endpoint {
    let name = name.to_owned();
    let hits = hits.clone();
    Endpoint::new().method("hit", move |_ctx: Context, _a: NoArgs| {
        let name = name.clone();
        let hits = hits.clone();
        async move {
            *hits.lock().unwrap().entry(name.clone()).or_default() += 1;
            Ok(name)
        }
    })
}

async fn servers(
    t: &om_rpc::Transport,
    names: &[&str],
    exchange: Option<&str>,
    hits: &Hits,
) -> Vec<RpcServer> {
    let mut v = Vec::new();
    for n in names {
        let mut target = Target::new("r").with_server(*n);
        target.exchange = exchange.map(str::to_owned);
        let s = RpcServer::builder(t.clone(), target)
            .endpoint(counting(n, hits))
            .build()
            .unwrap();
        s.start().await.unwrap();
        v.push(s);
    }
    v
}

async fn wait_total(hits: &Hits, total: usize) {
    eventually(&format!("{total} hits"), || {
        hits.lock().expect("lock").values().sum::<usize>() >= total
    })
    .await;
    // Give stray deliveries a chance to show up.
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[tokio::test]
async fn fanout_cast_reaches_every_server_once() {
    let t = transport("fanout").await;
    let hits = Hits::default();
    let ss = servers(&t, &["s1", "s2", "s3"], None, &hits).await;
    let c = RpcClient::new(t.clone(), Target::new("r"));
    c.prepare()
        .fanout(true)
        .cast(&ctx(), "hit", ())
        .await
        .unwrap();
    wait_total(&hits, 3).await;
    let h = hits.lock().unwrap().clone();
    assert_eq!(h.len(), 3, "{h:?}");
    assert!(h.values().all(|n| *n == 1), "{h:?}");
    for s in &ss {
        shutdown(s).await;
    }
}

#[tokio::test]
async fn server_targeted_call_reaches_only_that_server() {
    let t = transport("direct").await;
    let hits = Hits::default();
    let ss = servers(&t, &["s1", "s2", "s3"], None, &hits).await;
    let c = RpcClient::new(t.clone(), Target::new("r"));
    for _ in 0..5 {
        let who: String = c
            .prepare()
            .server("s2")
            .call(&ctx(), "hit", ())
            .await
            .unwrap();
        assert_eq!(who, "s2");
    }
    c.prepare()
        .server("s3")
        .cast(&ctx(), "hit", ())
        .await
        .unwrap();
    wait_total(&hits, 6).await;
    let h = hits.lock().unwrap().clone();
    assert_eq!(h.get("s2"), Some(&5));
    assert_eq!(h.get("s3"), Some(&1));
    assert_eq!(h.get("s1"), None);
    for s in &ss {
        shutdown(s).await;
    }
}

#[tokio::test]
async fn topic_casts_are_spread_over_servers() {
    let t = transport("spread").await;
    let hits = Hits::default();
    let ss = servers(&t, &["s1", "s2", "s3"], None, &hits).await;
    let c = RpcClient::new(t.clone(), Target::new("r"));
    for _ in 0..20 {
        c.cast(&ctx(), "hit", ()).await.unwrap();
    }
    wait_total(&hits, 20).await;
    let h = hits.lock().unwrap().clone();
    assert_eq!(h.values().sum::<usize>(), 20, "{h:?}");
    assert_eq!(h.len(), 3, "every server got some: {h:?}");
    assert!(h.values().all(|n| *n > 0 && *n < 20), "{h:?}");
    for s in &ss {
        shutdown(s).await;
    }
}

#[tokio::test]
async fn cast_gets_no_reply_even_when_the_method_returns_a_value() {
    let t = transport("cast-noreply").await;
    let hits = Hits::default();
    let ss = servers(&t, &["s1"], None, &hits).await;
    let c = RpcClient::new(t.clone(), Target::new("r"));
    c.cast(&ctx(), "hit", ()).await.unwrap();
    wait_total(&hits, 1).await;
    assert_eq!(hits.lock().unwrap().get("s1"), Some(&1));
    // A cast has no reply queue registration; the fake broker has no
    // pending replies anywhere.
    let broker = om_driver_api::fake::FakeBroker::for_url(t.url());
    for q in broker
        .queue_names()
        .iter()
        .filter(|q| q.starts_with("reply_"))
    {
        assert_eq!(broker.queue_len(q), Some(0), "reply queue {q}");
    }
    for s in &ss {
        shutdown(s).await;
    }
}
