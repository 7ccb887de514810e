//! Interoperability with Python oslo.messaging 18.3.1's Kafka driver, both
//! ways, on the test broker: a Python notifier's records reach an om
//! listener (and their bytes are exactly what om would write for the same
//! notification), and om's notifications reach a Python listener.
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
        if std::env::var("OM_REQUIRE_BROKERS").as_deref() == Ok("1") {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_om_exchange_notifications_both_ways() {
    let Some(url) = kafka_url() else { return };
    let Some(py) = python() else { return };
    let t = transport(&url, &[("auto_offset_reset", "earliest")]).await;
    let to_om = unique("py2om");
    let to_py = unique("om2py");
    let mut from_py = listen(&t, &to_om, &[Priority::Info], Some(&unique("om-pool"))).await;
    // Make the topic Python listens on exist before it subscribes (a
    // Python consumer would otherwise only see it minutes later).
    let holder = listen(&t, &to_py, &[Priority::Info], Some(&unique("holder"))).await;

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/kafka_peer.py");
    let mut child = tokio::process::Command::new(&py)
        .args([script, &url, &to_om, &to_py, "3", "120"])
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

    // Python → om.
    let got = collect(&mut from_py, 2, Duration::from_secs(60)).await;
    assert_eq!(got.len(), 2, "both Python notifications arrive");
    let mut drivers = Vec::new();
    for m in &got {
        assert_eq!(m.ctxt.get("user"), Some(&json!("u-py")));
        assert_eq!(m.ctxt.get("request_id"), Some(&json!("req-py")));
        assert!(!m.ctxt.contains_key("client_timeout"));
        assert_eq!(m.message["publisher_id"], json!("py.host"));
        assert_eq!(m.message["priority"], json!("INFO"));
        drivers.push(
            m.message["payload"]["driver"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    drivers.sort();
    assert_eq!(drivers, ["messaging", "messagingv2"]);
    // The bytes Python wrote are the bytes om writes for the same notification.
    let raw = tokio::task::spawn_blocking({
        let url = url.clone();
        let topic = format!("{to_om}.info");
        move || read_raw(&url, &topic, 2, Duration::from_secs(30))
    })
    .await
    .expect("reader");
    assert_eq!(raw.len(), 2);
    for r in &raw {
        assert_eq!(r.key, None);
        assert_eq!(r.header_count, 0);
        let value = r.value.clone().expect("value");
        let (ctxt, message) =
            om_driver_kafka::codec::decode_notification(Some(&value)).expect("decode");
        let ours = om_driver_kafka::codec::encode_notification(&message, &ctxt, Format::V2)
            .expect("encode");
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&value)
        );
    }

    // om → Python: a Python listener joins only after ~23 s (librdkafka's
    // 45 s session timeout) and starts at the end of the topic, so keep
    // sending until it has seen three.
    let ctxt: JsonObject = json!({"user": "u-om", "roles": ["r"]})
        .as_object()
        .cloned()
        .unwrap_or_default();
    let started = Instant::now();
    let mut n = 0;
    while !lines.is_finished() && started.elapsed() < Duration::from_secs(120) {
        n += 1;
        notify_ctx(&t, &to_py, Priority::Info, json!({"n": n}), ctxt.clone()).await;
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
        "Python listener got {} of {n} om notifications ({:?} of sending)",
        received.len(),
        started.elapsed()
    );
    assert!(received.len() >= 3, "{lines:?}");
    for r in &received {
        assert_eq!(r["ctxt"], json!({"user": "u-om", "roles": ["r"]}));
        assert_eq!(r["publisher_id"], json!("test.host1"));
        assert_eq!(r["event_type"], json!("test.event"));
        assert!(r["payload"]["n"].is_i64());
    }
    for l in [from_py, holder] {
        l.cleanup().await.expect("cleanup");
    }
    t.cleanup().await;
}
