//! Overall timeouts, call-monitor heartbeats and dead-server detection
//! (test-cases D 34-37, overview §4.5). Every test runs on tokio's paused
//! clock (`start_paused`): time advances only when every task waits on a
//! timer, so the timings below are exact however busy the machine is
//! (client, server and the fake:// driver all use tokio's clock).
#![allow(clippy::unwrap_used)]

mod common;

use common::{ctx, shutdown, start_server, transport};
use om_driver_api::{ReplyEvent, RpcRequest};
use om_rpc::om_core::{Context, Error, JsonObject, Target, Value};
use om_rpc::{Endpoint, RpcClient};
use serde::Deserialize;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Deserialize)]
struct Sleep {
    ms: u64,
}

fn sleeper() -> Endpoint {
    Endpoint::new().method("sleep", |_c: Context, a: Sleep| async move {
        tokio::time::sleep(Duration::from_millis(a.ms)).await;
        Ok(a.ms)
    })
}

fn assert_timeout(e: &Error) {
    assert!(
        matches!(e, Error::MessagingTimeout { .. }),
        "expected MessagingTimeout, got {e}"
    );
    assert_eq!(e.oslo_name(), "MessagingTimeout");
}

#[tokio::test(start_paused = true)]
async fn call_times_out_when_nobody_answers() {
    let t = transport("timeout-none").await;
    let c = RpcClient::builder(t, Target::new("nobody"))
        .timeout(Duration::from_millis(300))
        .build();
    let start = Instant::now();
    let e = c.call_value(&ctx(), "m", ()).await.unwrap_err();
    let took = start.elapsed();
    assert_timeout(&e);
    assert!(took >= Duration::from_millis(290), "{took:?}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn slow_method_times_out() {
    let t = transport("timeout-slow").await;
    let s = start_server(&t, "slow", "s1", vec![sleeper()]).await;
    let c = RpcClient::builder(t.clone(), Target::new("slow"))
        .timeout(Duration::from_millis(300))
        .build();
    let start = Instant::now();
    let e = c
        .call_value(&ctx(), "sleep", serde_json::json!({"ms": 1500}))
        .await
        .unwrap_err();
    assert_timeout(&e);
    assert!(
        start.elapsed() < Duration::from_millis(1400),
        "{:?}",
        start.elapsed()
    );
    shutdown(&s).await;
}

#[tokio::test(start_paused = true)]
async fn heartbeats_keep_a_long_call_alive() {
    // call_monitor_timeout 2 s (heartbeats every second), method runs 6 s.
    let t = transport("hb-alive").await;
    let s = start_server(&t, "hb", "s1", vec![sleeper()]).await;
    let c = RpcClient::builder(t.clone(), Target::new("hb"))
        .timeout(Duration::from_secs(30))
        .call_monitor_timeout(2)
        .build();
    let start = Instant::now();
    let r: u64 = c
        .call(&ctx(), "sleep", serde_json::json!({"ms": 6000}))
        .await
        .unwrap();
    assert_eq!(r, 6000);
    assert!(start.elapsed() >= Duration::from_secs(6));
    shutdown(&s).await;
}

#[tokio::test(start_paused = true)]
async fn heartbeats_do_not_extend_the_overall_timeout() {
    let t = transport("hb-overall").await;
    let s = start_server(&t, "hb", "s1", vec![sleeper()]).await;
    let c = RpcClient::builder(t.clone(), Target::new("hb"))
        .timeout(Duration::from_secs(3))
        .call_monitor_timeout(2.0)
        .build();
    let start = Instant::now();
    let e = c
        .call_value(&ctx(), "sleep", serde_json::json!({"ms": 6000}))
        .await
        .unwrap_err();
    let took = start.elapsed();
    assert_timeout(&e);
    assert!(took >= Duration::from_millis(2900), "{took:?}");
    assert!(took < Duration::from_millis(4800), "{took:?}");
    s.abort().await;
}

#[tokio::test(start_paused = true)]
async fn dead_server_is_detected_by_the_call_monitor() {
    let t = transport("hb-dead").await;
    let s = start_server(&t, "hb", "s1", vec![sleeper()]).await;
    let c = RpcClient::builder(t.clone(), Target::new("hb"))
        .timeout(Duration::from_secs(60))
        .call_monitor_timeout(Duration::from_secs(2))
        .build();
    let start = Instant::now();
    let call = tokio::spawn(async move {
        c.call_value(&ctx(), "sleep", serde_json::json!({"ms": 60000}))
            .await
    });
    // Let a heartbeat or two go out, then kill the server mid-call.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.abort().await;
    let killed_at = start.elapsed();
    let e = call.await.unwrap().unwrap_err();
    let took = start.elapsed();
    assert_timeout(&e);
    // Detected within about call_monitor_timeout of the last heartbeat,
    // far from the 60 s overall timeout.
    assert!(took > killed_at, "{took:?}");
    assert!(
        took < killed_at + Duration::from_millis(3000),
        "killed at {killed_at:?}, failed at {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn silent_server_fails_at_the_call_monitor_timeout() {
    // A call-monitor timeout below 2 s gets no heartbeats (oslo's rule), so
    // a method longer than it fails the call.
    let t = transport("hb-silent").await;
    let s = start_server(&t, "hb", "s1", vec![sleeper()]).await;
    let c = RpcClient::builder(t.clone(), Target::new("hb"))
        .timeout(Duration::from_secs(10))
        .call_monitor_timeout(0.5)
        .build();
    let start = Instant::now();
    let e = c
        .call_value(&ctx(), "sleep", serde_json::json!({"ms": 2000}))
        .await
        .unwrap_err();
    assert_timeout(&e);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(480) && took < Duration::from_millis(1900),
        "{took:?}"
    );
    shutdown(&s).await;
}

#[tokio::test(start_paused = true)]
async fn server_heartbeat_cadence() {
    // Observe the replies at the driver level: `_timeout=2` → one heartbeat
    // per second while the method runs, the first after a second;
    // `_timeout=1` and `_timeout=null` → none.
    let t = transport("hb-cadence").await;
    let s = start_server(&t, "hb", "s1", vec![sleeper()]).await;
    let mut msg = JsonObject::new();
    msg.insert("method".into(), "sleep".into());
    msg.insert("args".into(), serde_json::json!({"ms": 2500}));
    let run = |cm: Option<f64>| {
        let req = RpcRequest::call(Target::new("hb"), msg.clone(), Duration::from_secs(10))
            .with_call_monitor_timeout(cm);
        let t = t.clone();
        async move {
            let sent = Instant::now();
            let mut replies = t.driver().send(req).await.unwrap().unwrap();
            let mut beats = Vec::new();
            loop {
                match replies.next().await.unwrap() {
                    ReplyEvent::Heartbeat => beats.push(sent.elapsed()),
                    ReplyEvent::Final(r) => break (beats, r),
                }
            }
        }
    };
    let ((beats2, r2), (beats1, r1), (beats_null, r_null)) =
        tokio::join!(run(Some(2.0)), run(Some(1.0)), run(None));
    for r in [&r2, &r1, &r_null] {
        assert_eq!(r, &Ok(Value::from(2500)));
    }
    assert!(
        (1..=3).contains(&beats2.len()),
        "_timeout=2: {beats2:?} heartbeats"
    );
    assert!(
        beats2[0] >= Duration::from_millis(900),
        "the first heartbeat comes after a second, not at once: {beats2:?}"
    );
    assert!(beats1.is_empty(), "_timeout=1 gets no heartbeat");
    assert!(beats_null.is_empty(), "_timeout=null gets no heartbeat");
    shutdown(&s).await;
}
