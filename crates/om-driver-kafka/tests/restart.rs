//! A broker restart in the middle of a stream of notifications: the
//! producer holds its records until the broker is back and the listeners
//! rejoin and go on. Runs on its own (its own test binary), since it stops
//! the shared broker (`$OM_KAFKA_CTL stop` / `start`).
//!
//! tansu keeps everything in memory: after the restart the topics, records
//! and committed offsets are gone, so the pools start again according to
//! `auto_offset_reset`.

mod common;

use common::*;
use om_driver_api::om_core::Priority;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_resume_after_a_broker_restart() {
    let Some(url) = kafka_url() else { return };
    if std::env::var("OM_KAFKA_CTL").is_err() {
        if std::env::var("OM_REQUIRE_BROKERS").as_deref() == Ok("1") {
            panic!("OM_KAFKA_CTL is not set but OM_REQUIRE_BROKERS=1");
        }
        println!("SKIPPED (OM_KAFKA_CTL not set)");
        return;
    }
    let latest_t = transport(&url, &[]).await;
    let earliest_t = transport(&url, &[("auto_offset_reset", "earliest")]).await;
    let topic = unique("restart");
    let mut earliest = listen(
        &earliest_t,
        &topic,
        &[Priority::Info],
        Some(&unique("restart-e")),
    )
    .await;
    let mut latest = listen(
        &latest_t,
        &topic,
        &[Priority::Info],
        Some(&unique("restart-l")),
    )
    .await;

    const BEFORE: i64 = 10;
    const TOTAL: i64 = 60;
    for n in 1..=BEFORE {
        notify(&latest_t, &topic, Priority::Info, json!({"n": n})).await;
    }
    assert_eq!(
        numbers(&collect(&mut earliest, BEFORE as usize, JOIN).await),
        (1..=BEFORE).collect::<Vec<_>>()
    );
    assert_eq!(
        numbers(&collect(&mut latest, BEFORE as usize, JOIN).await),
        (1..=BEFORE).collect::<Vec<_>>()
    );

    broker_ctl("stop");
    let stopped = Instant::now();
    // A stream of notifications, one every 200 ms; the first ones wait in
    // the producer until the broker is back.
    let sender = tokio::spawn({
        let t = latest_t.clone();
        let topic = topic.clone();
        async move {
            let mut sent_at = Vec::new();
            for n in BEFORE + 1..=TOTAL {
                notify(&t, &topic, Priority::Info, json!({"n": n})).await;
                sent_at.push((n, Instant::now()));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            sent_at
        }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    broker_ctl("start");
    let restarted = Instant::now();
    println!("broker down for {:?}", restarted - stopped);

    // Collect from both pools until the stream is complete or time is up.
    let deadline = Instant::now() + Duration::from_secs(150);
    let (mut got_e, mut got_l) = (Vec::new(), Vec::new());
    let (mut first_e, mut first_l) = (None, None);
    while Instant::now() < deadline {
        for (l, got, first) in [
            (&mut earliest, &mut got_e, &mut first_e),
            (&mut latest, &mut got_l, &mut first_l),
        ] {
            for m in collect(l, 100, Duration::from_millis(250)).await {
                if first.is_none() {
                    *first = Some(restarted.elapsed());
                }
                got.push(m);
            }
        }
        let done = numbers(&got_e).contains(&TOTAL) && numbers(&got_l).contains(&TOTAL);
        if done && sender.is_finished() {
            break;
        }
    }
    let sent_at = sender.await.expect("sender");
    let first_sent_after = sent_at.first().map(|(_, at)| at.duration_since(restarted));
    let mut e = numbers(&got_e);
    e.dedup();
    let mut l = numbers(&got_l);
    l.dedup();
    println!(
        "first record after the restart delivered by the producer {first_sent_after:?} after start; \
         earliest pool: first record {first_e:?} after start, {} distinct of {} ({:?}); \
         latest pool: first record {first_l:?} after start, {} distinct ({:?})",
        e.len(),
        TOTAL - BEFORE,
        e.first(),
        l.len(),
        l.first()
    );
    // earliest: the recreated topic is read from its start, nothing is lost.
    assert_eq!(
        e,
        (BEFORE + 1..=TOTAL).collect::<Vec<_>>(),
        "earliest pool lost records"
    );
    // latest: the pool restarts at the end of the recreated topic once it
    // rejoined; from its first record on, nothing is missing.
    let from = *l
        .first()
        .expect("the latest pool received records after the restart");
    assert_eq!(
        l,
        (from..=TOTAL).collect::<Vec<_>>(),
        "latest pool has gaps after it resumed"
    );
    assert!(
        TOTAL - from >= 10,
        "latest pool resumed too late (first record {from})"
    );

    for listener in [earliest, latest] {
        listener.cleanup().await.expect("cleanup");
    }
    latest_t.cleanup().await;
    earliest_t.cleanup().await;
}
