//! Interoperability with Python oslo.messaging 18.3.1's Kafka driver, both
//! ways, on the test broker, with listeners in pools and without: a Python
//! notifier's records reach an om listener (and their bytes are exactly
//! what om would write for the same notification), and om's notifications
//! reach a Python listener; both ways with non-ASCII text and a 256 KiB
//! payload.
//!
//! Needs `OM_KAFKA_URL` and `OM_PYTHON`, a Python with oslo.messaging
//! 18.3.1 and confluent-kafka (oslo.messaging's `kafka` extra). Without
//! them the test prints SKIPPED and passes, unless `OM_REQUIRE_BROKERS=1`
//! (then a missing broker or Python fails; a Python without confluent-kafka
//! fails only with `OM_REQUIRE_PYTHON_KAFKA=1`, as the project's venv may
//! not have it).

mod common;

use common::*;
use om_driver_api::om_core::envelope::Format;
use om_driver_api::om_core::{JsonObject, Priority, Value};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

fn python() -> Option<String> {
    let py = std::env::var("OM_PYTHON").ok().filter(|p| !p.is_empty());
    let Some(py) = py else {
        if om_driver_api::testkit::brokers_required() {
            panic!("OM_PYTHON is not set but OM_REQUIRE_BROKERS=1");
        }
        println!("SKIPPED (OM_PYTHON not set)");
        return None;
    };
    let ok = std::process::Command::new(&py)
        .args(["-c", "import confluent_kafka, oslo_messaging"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("OM_REQUIRE_PYTHON_KAFKA").as_deref() == Ok("1") {
            panic!("{py} lacks confluent-kafka or oslo.messaging but OM_REQUIRE_PYTHON_KAFKA=1");
        }
        println!(
            "SKIPPED ({py} has no confluent-kafka; pip install confluent-kafka to run this test)"
        );
        return None;
    }
    Some(py)
}

/// Non-ASCII text carried both ways (the same string as the peer's).
const UNICODE: &str = "caf\u{e9} \u{2603} \u{1F600} \u{6f22}\u{5b57} \u{fc}\u{df}";

/// Size of the `big` payload string sent both ways (the peer's BIG_BYTES;
/// Python's producer takes records up to librdkafka's 1 MB default).
const BIG_BYTES: usize = 256 * 1024;

/// `n` characters of the text both sides expect in a `big` payload (the
/// peer's `big_text`).
fn big_text(n: usize) -> String {
    "om-kafka-interop 0123456789 "
        .chars()
        .cycle()
        .take(n)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_om_exchange_notifications_both_ways_in_pools() {
    exchange_both_ways(true).await;
}

/// Without pools, each side's listener is in the consumer group its
/// configuration names (`consumer_group`, set to a fresh name per run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_om_exchange_notifications_both_ways_without_pools() {
    exchange_both_ways(false).await;
}

async fn exchange_both_ways(pools: bool) {
    let Some(url) = kafka_url() else { return };
    let Some(py) = python() else { return };
    let om_group = unique("om-group");
    let t = transport(
        &url,
        &[
            ("auto_offset_reset", "earliest"),
            ("consumer_group", om_group.as_str()),
        ],
    )
    .await;
    let to_om = unique("py2om");
    let to_py = unique("om2py");
    let om_pool = pools.then(|| unique("om-pool"));
    let mut from_py = listen(&t, &to_om, &[Priority::Info], om_pool.as_deref()).await;
    // Make the topic Python listens on exist before it subscribes (a
    // Python consumer would otherwise only see it minutes later).
    let holder = listen(&t, &to_py, &[Priority::Info], Some(&unique("holder"))).await;

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/kafka_peer.py");
    let py_pool = format!("py-{to_py}");
    let py_group = unique("py-group");
    let mut args = vec![script, &url, &to_om, &to_py, "4", "120"];
    if pools {
        args.push(&py_pool);
    } else {
        args.extend(["--no-pool", py_group.as_str()]);
    }
    let mut child = tokio::process::Command::new(&py)
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the Python peer");
    let stdout = child.stdout.take().expect("stdout");
    let lines = tokio::spawn(async move {
        let mut out = Vec::new();
        let mut r = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = r.next_line().await {
            out.push(line);
        }
        out
    });

    // Python → om: both drivers, non-ASCII text and a large payload.
    let got = collect(&mut from_py, 4, Duration::from_secs(60)).await;
    assert_eq!(got.len(), 4, "all four Python notifications arrive");
    let mut drivers = Vec::new();
    for m in &got {
        assert_eq!(m.ctxt.get("user"), Some(&json!("u-py")));
        assert_eq!(m.ctxt.get("request_id"), Some(&json!("req-py")));
        assert!(!m.ctxt.contains_key("client_timeout"));
        assert_eq!(m.message["publisher_id"], json!("py.host"));
        assert_eq!(m.message["priority"], json!("INFO"));
        let payload = &m.message["payload"];
        let driver = payload["driver"].as_str().unwrap_or_default().to_owned();
        match driver.as_str() {
            "unicode" => assert_eq!(payload["text"], json!(UNICODE)),
            "big" => {
                let big = payload["big"].as_str().expect("big payload");
                assert_eq!(big.len(), BIG_BYTES);
                assert!(big == big_text(BIG_BYTES), "the big payload arrives intact");
            }
            _ => {}
        }
        drivers.push(driver);
    }
    drivers.sort();
    assert_eq!(drivers, ["big", "messaging", "messagingv2", "unicode"]);
    // The bytes Python wrote are the bytes om writes for the same notification.
    let raw = tokio::task::spawn_blocking({
        let url = url.clone();
        let topic = format!("{to_om}.info");
        move || read_raw(&url, &topic, 4, Duration::from_secs(30))
    })
    .await
    .expect("reader");
    assert_eq!(raw.len(), 4);
    for r in &raw {
        assert_eq!(r.key, None);
        assert_eq!(r.header_count, 0);
        let value = r.value.clone().expect("value");
        let (ctxt, message) =
            om_driver_kafka::codec::decode_notification(Some(&value)).expect("decode");
        let ours = om_driver_kafka::codec::encode_notification(&message, &ctxt, Format::V2)
            .expect("encode");
        assert!(ours == value, "om's bytes differ from Python's");
    }

    // om → Python: a Python listener joins only after ~23 s (librdkafka's
    // 45 s session timeout) and starts at the end of the topic, so keep
    // sending until it has seen four; every other one is large.
    let ctxt: JsonObject = json!({"user": "u-om", "roles": ["r"]})
        .as_object()
        .cloned()
        .unwrap_or_default();
    let big = big_text(BIG_BYTES);
    let started = Instant::now();
    let mut n = 0;
    while !lines.is_finished() && started.elapsed() < Duration::from_secs(120) {
        n += 1;
        let payload = if n % 2 == 0 {
            json!({"n": n, "big": big})
        } else {
            json!({"n": n, "text": UNICODE})
        };
        notify_ctx(&t, &to_py, Priority::Info, payload, ctxt.clone()).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let status = child.wait().await.expect("peer exit");
    let lines = lines.await.expect("peer output");
    assert!(status.success(), "peer failed: {lines:?}");
    let received: Vec<Value> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("GOT "))
        .map(|j| serde_json::from_str(j).expect("peer JSON"))
        .collect();
    println!(
        "Python listener (pools: {pools}) got {} of {n} om notifications ({:?} of sending)",
        received.len(),
        started.elapsed()
    );
    assert!(received.len() >= 4, "{lines:?}");
    let mut bigs = 0;
    for r in &received {
        assert_eq!(r["ctxt"], json!({"user": "u-om", "roles": ["r"]}));
        assert_eq!(r["publisher_id"], json!("test.host1"));
        assert_eq!(r["event_type"], json!("test.event"));
        let payload = &r["payload"];
        assert!(payload["n"].is_i64());
        if payload.get("big_len").is_some() {
            assert_eq!(payload["big_len"], json!(BIG_BYTES));
            assert_eq!(
                payload["big_ok"],
                json!(true),
                "the big payload arrives intact"
            );
            bigs += 1;
        } else {
            assert_eq!(payload["text"], json!(UNICODE));
        }
    }
    assert!(bigs >= 1, "Python got a large notification: {received:?}");
    // Each listener was in the group its pool, or else its configuration,
    // names.
    let groups = tokio::task::spawn_blocking({
        let url = url.clone();
        move || group_names(&url)
    })
    .await
    .expect("group lister");
    let expected = if pools {
        [om_pool.clone().unwrap_or_default(), py_pool.clone()]
    } else {
        [om_group.clone(), py_group.clone()]
    };
    for g in &expected {
        assert!(
            groups.contains(g),
            "no consumer group {g:?} among {groups:?}"
        );
    }
    for l in [from_py, holder] {
        l.cleanup().await.expect("cleanup");
    }
    t.cleanup().await;
}
