//! Kafka driver tests: options and RPC refusal (no broker needed), and the
//! wire format, pools, commits and offsets against a real broker
//! (`OM_KAFKA_URL`, e.g. tansu started by `xtask/scripts/tansu.sh`).

mod common;

use common::*;
use om_driver_api::om_core::envelope::Format;
use om_driver_api::om_core::{Error, JsonObject, Priority, Target, Value};
use om_driver_api::{ListenOptions, Notification, RpcRequest, Transport};
use om_driver_kafka::{AutoOffsetReset, CompressionCodec, KafkaDriver, SecurityProtocol};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn obj(v: Value) -> JsonObject {
    match v {
        Value::Object(m) => m,
        _ => JsonObject::new(),
    }
}

async fn open(url: &str, options: &[(&str, &str)]) -> Result<Transport, Error> {
    om_driver_kafka::register();
    Transport::builder(url)
        .options(options.iter().map(|(k, v)| (*k, *v)))
        .open()
        .await
}

fn driver(url: &str, options: &[(&str, &str)]) -> Result<KafkaDriver, Error> {
    let mut cfg = om_driver_api::DriverConfig::new(url.parse()?);
    cfg.options = options
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    KafkaDriver::new(cfg)
}

// ---------------------------------------------------------------- no broker

#[tokio::test]
async fn rpc_is_refused_at_once_with_not_supported() {
    // Nothing listens on port 1: the refusal must not depend on a broker.
    let t = open("kafka://127.0.0.1:1/", &[]).await.expect("open");
    let started = Instant::now();
    let err = t
        .driver()
        .send(RpcRequest::cast(
            Target::new("compute"),
            obj(json!({"method": "m", "args": {}})),
        ))
        .await
        .expect_err("cast must fail");
    assert!(
        matches!(&err, Error::NotSupported { driver, .. } if driver == "kafka"),
        "{err:?}"
    );
    assert_eq!(err.oslo_name(), "NotImplementedError");
    let text = err.to_string();
    assert!(
        text.contains("rabbit://") && text.contains("kafka:// for notifications"),
        "{text}"
    );
    let err = t
        .driver()
        .send(RpcRequest::call(
            Target::new("compute"),
            obj(json!({"method": "m"})),
            Duration::from_secs(60),
        ))
        .await
        .expect_err("call must fail");
    assert!(matches!(err, Error::NotSupported { .. }));
    let err = t
        .driver()
        .listen(
            Target::new("compute").with_server("s1"),
            ListenOptions::default(),
        )
        .await
        .err()
        .expect("RPC server must fail");
    assert!(matches!(err, Error::NotSupported { .. }));
    // At once: not after a call's 60 s timeout or a broker connection
    // attempt (generous, the machine running the tests may be busy).
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "refusal took {:?}",
        started.elapsed()
    );
    let caps = t.capabilities();
    assert!(!caps.rpc && !caps.fanout && !caps.heartbeat && !caps.requeue);
    assert!(caps.notifications && caps.notification_pools);
    let err = t.require_features(true).expect_err("requeue unsupported");
    assert!(matches!(err, Error::NotSupported { .. }));
    t.require_features(false).expect("no requeue needed");
    t.cleanup().await;
}

#[tokio::test]
async fn default_options_map_to_pythons_librdkafka_settings() {
    let d = driver("kafka://127.0.0.1:1234,localhost2:1234/", &[]).expect("driver");
    let o = d.options();
    assert_eq!(o.kafka_max_fetch_bytes, 1_048_576);
    assert_eq!(o.kafka_consumer_timeout, Duration::from_secs(1));
    assert_eq!(o.consumer_group, "oslo_messaging_consumer");
    assert_eq!(o.producer_batch_timeout, Duration::ZERO);
    assert_eq!(o.producer_batch_size, 16384);
    assert_eq!(o.compression_codec, CompressionCodec::None);
    assert!(!o.enable_auto_commit);
    assert_eq!(o.max_poll_records, 500);
    assert_eq!(o.security_protocol, SecurityProtocol::Plaintext);
    assert_eq!(o.sasl_mechanism, "PLAIN");
    assert_eq!(o.auto_offset_reset, AutoOffsetReset::Latest);
    assert_eq!(o.session_timeout_ms, 6000);
    assert!(o.create_topics);

    let p = d.producer_properties();
    let get = |m: &BTreeMap<String, String>, k: &str| {
        m.get(k)
            .cloned()
            .unwrap_or_else(|| panic!("{k} missing in {m:?}"))
    };
    assert_eq!(
        get(&p, "bootstrap.servers"),
        "127.0.0.1:1234,localhost2:1234"
    );
    assert_eq!(get(&p, "linger.ms"), "0.0");
    assert_eq!(get(&p, "batch.num.messages"), "16384");
    // om's own default (librdkafka's and Python's is 1000000).
    assert_eq!(get(&p, "max.in.flight.requests.per.connection"), "1");
    assert_eq!(get(&p, "compression.codec"), "none");
    assert_eq!(get(&p, "security.protocol"), "PLAINTEXT");
    assert!(!p.contains_key("sasl.username"));

    let c = d.consumer_properties("oslo_messaging_consumer");
    assert_eq!(get(&c, "group.id"), "oslo_messaging_consumer");
    assert_eq!(get(&c, "max.partition.fetch.bytes"), "1048576");
    assert_eq!(get(&c, "enable.auto.commit"), "false");
    assert_eq!(get(&c, "enable.partition.eof"), "false");
    assert_eq!(get(&c, "auto.offset.reset"), "latest");
    assert_eq!(get(&c, "session.timeout.ms"), "6000");
    assert_eq!(get(&c, "topic.metadata.refresh.interval.ms"), "5000");
    assert!(!om_driver_api::Driver::capabilities(&d).retains_unconsumed_notifications);
}

#[tokio::test]
async fn options_from_configuration_and_url_override() {
    // The URL's query wins over the configuration values.
    let d = driver(
        "kafka://stack:stacksecret@127.0.0.1:9092/?compression_codec=gzip&enable_auto_commit=yes&consumer_group=from-url",
        &[
            ("compression_codec", "lz4"),
            ("consumer_group", "from-conf"),
            ("producer_batch_timeout", "0.25"),
            ("producer_batch_size", "100"),
            ("producer_max_in_flight", "5"),
            ("kafka_max_fetch_bytes", "2048"),
            ("auto_offset_reset", "earliest"),
            ("security_protocol", "SASL_PLAINTEXT"),
            ("pool_size", "10"),
        ],
    )
    .expect("driver");
    let o = d.options();
    assert_eq!(o.compression_codec, CompressionCodec::Gzip);
    assert!(o.enable_auto_commit);
    assert_eq!(o.consumer_group, "from-url");
    assert_eq!(o.producer_batch_timeout, Duration::from_millis(250));
    assert_eq!(o.auto_offset_reset, AutoOffsetReset::Earliest);
    let p = d.producer_properties();
    assert_eq!(p["linger.ms"], "250.0");
    assert_eq!(p["batch.num.messages"], "100");
    assert_eq!(p["max.in.flight.requests.per.connection"], "5");
    assert_eq!(p["compression.codec"], "gzip");
    assert_eq!(p["security.protocol"], "SASL_PLAINTEXT");
    assert_eq!(p["sasl.mechanism"], "PLAIN");
    assert_eq!(p["sasl.username"], "stack");
    assert_eq!(p["sasl.password"], "****");
    let c = d.consumer_properties("pool-a");
    assert_eq!(c["group.id"], "pool-a");
    assert_eq!(c["max.partition.fetch.bytes"], "2048");
    assert_eq!(c["enable.auto.commit"], "true");
    assert_eq!(c["auto.offset.reset"], "earliest");
    assert!(om_driver_api::Driver::capabilities(&d).retains_unconsumed_notifications);
    // No password in Debug output.
    let dbg = format!("{d:?}");
    assert!(!dbg.contains("stacksecret"), "{dbg}");
}

#[tokio::test]
async fn unknown_option_and_bad_values_are_configuration_errors() {
    let cases: &[(&str, &str, &str)] = &[
        ("no_such_option", "1", "no_such_option"),
        (
            "compression_codec",
            "brotli",
            "Valid values are [none, gzip, snappy, lz4, zstd], but found \"brotli\"",
        ),
        ("security_protocol", "plaintext", "security_protocol"),
        ("enable_auto_commit", "maybe", "enable_auto_commit"),
        ("kafka_max_fetch_bytes", "lots", "kafka_max_fetch_bytes"),
        ("kafka_consumer_timeout", "-1", "kafka_consumer_timeout"),
        ("max_poll_records", "0", "max_poll_records"),
        ("auto_offset_reset", "smallest", "auto_offset_reset"),
        ("topic_partitions", "0", "topic_partitions"),
        ("heartbeat_interval_ms", "60000", "heartbeat_interval_ms"),
        ("conn_pool_ttl", "soon", "conn_pool_ttl"),
    ];
    for (key, value, expect) in cases {
        let err = open("kafka://127.0.0.1:9092/", &[(key, value)])
            .await
            .expect_err(key);
        assert!(matches!(err, Error::Configuration(_)), "{key}: {err:?}");
        let text = err.to_string();
        assert!(text.contains(expect), "{key}={value}: {text}");
        assert!(text.contains(key), "{key}: {text}");
    }
    // Also through the URL query.
    let err = open("kafka://127.0.0.1:9092/?compression_codec=brotli", &[])
        .await
        .expect_err("url");
    assert!(err.to_string().contains("compression_codec"), "{err}");
    // A secret in a rejected setting never shows up.
    let err = open(
        "kafka://127.0.0.1:9092/",
        &[
            ("ssl_client_key_password", "hunter2"),
            ("security_protocol", "SSL"),
            ("ssl_client_key_file", "/nonexistent/key.pem"),
        ],
    )
    .await;
    if let Err(e) = err {
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(!format!("{e:?}").contains("hunter2"));
    }
    // Without the `ssl` feature librdkafka refuses any ssl.* property; the
    // typed options still hold the password, never printing it.
    let opts: BTreeMap<String, String> =
        [("ssl_client_key_password".to_owned(), "hunter2".to_owned())].into();
    let o = om_driver_kafka::KafkaOptions::from_options(&opts).expect("options");
    assert_eq!(
        o.ssl_client_key_password.as_ref().map(|s| s.expose()),
        Some("hunter2")
    );
    assert!(!format!("{o:?}").contains("hunter2"));
    let ssl_built = std::hint::black_box(cfg!(feature = "ssl"));
    match driver(
        "kafka://127.0.0.1:9092/",
        &[("ssl_client_key_password", "hunter2")],
    ) {
        Ok(d) => {
            assert!(ssl_built, "only an ssl build accepts ssl.key.password");
            assert!(!format!("{d:?}").contains("hunter2"));
            assert_eq!(d.producer_properties()["ssl.key.password"], "****");
        }
        Err(e) => {
            assert!(!ssl_built, "{e}");
            assert!(matches!(e, Error::Configuration(_)));
            assert!(
                e.to_string().contains("ssl.key.password") && !e.to_string().contains("hunter2"),
                "{e}"
            );
        }
    }
}

#[tokio::test]
async fn every_codec_is_accepted() {
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let d = driver("kafka://127.0.0.1:9092/", &[("compression_codec", codec)]).expect(codec);
        assert_eq!(d.producer_properties()["compression.codec"], codec);
    }
}

#[tokio::test]
async fn topic_naming() {
    let d = driver("kafka://127.0.0.1:9092/my_host", &[]).expect("driver");
    assert_eq!(
        d.producer_topic("notifications.info"),
        "notifications.info.my_host"
    );
    let d = driver("kafka://127.0.0.1:9092/", &[]).expect("driver");
    assert_eq!(d.producer_topic("notifications.info"), "notifications.info");
    let d = driver("kafka://127.0.0.1:9092", &[]).expect("driver");
    assert_eq!(d.producer_topic("notifications.info"), "notifications.info");
}

// ------------------------------------------------------------ with a broker

const FIXED_ID: &str = "0b6f3c1e-5d2a-4f7e-9a61-2c8d4e5f6a7b";

fn fixed_message() -> JsonObject {
    obj(json!({
        "message_id": FIXED_ID,
        "publisher_id": "compute.host1",
        "event_type": "compute.instance.create.end",
        "priority": "INFO",
        "payload": {"instance_id": "42", "name": "caf\u{e9}"},
        "timestamp": "2025-03-01 10:00:00.123456",
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_format_v1_and_v2_identical_no_key_no_headers() {
    let Some(url) = kafka_url() else { return };
    let t = transport(&url, &[]).await;
    let topic = unique("fmt");
    let ctxt = obj(json!({"user": "u1", "request_id": "req-1", "roles": ["admin"]}));
    for format in [Format::V2, Format::V1] {
        let n = Notification::new(
            Target::new(format!("{topic}.info")),
            fixed_message(),
            format,
        )
        .with_context(ctxt.clone());
        t.driver().send_notification(n).await.expect("send");
    }
    let records = tokio::task::spawn_blocking({
        let url = url.clone();
        let topic = format!("{topic}.info");
        move || read_raw(&url, &topic, 2, Duration::from_secs(60))
    })
    .await
    .expect("reader");
    assert_eq!(records.len(), 2, "{records:?}");
    let expected = r#"{"oslo.version": "2.0", "oslo.message": "{\"message_id\": \"0b6f3c1e-5d2a-4f7e-9a61-2c8d4e5f6a7b\", \"publisher_id\": \"compute.host1\", \"event_type\": \"compute.instance.create.end\", \"priority\": \"INFO\", \"payload\": {\"instance_id\": \"42\", \"name\": \"caf\\u00e9\"}, \"timestamp\": \"2025-03-01 10:00:00.123456\", \"_context\": {\"user\": \"u1\", \"request_id\": \"req-1\", \"roles\": [\"admin\"]}}"}"#;
    for r in &records {
        assert_eq!(r.key, None, "records carry no key");
        assert_eq!(r.header_count, 0, "records carry no headers");
        let value = String::from_utf8(r.value.clone().expect("value")).expect("utf-8");
        assert_eq!(value, expected);
    }
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_host_is_appended_by_the_producer_only() {
    let Some(url) = kafka_url() else { return };
    let plain = transport(&url, &[]).await;
    let vhost = transport(&with_vhost(&url, "my_host"), &[]).await;
    let topic = unique("vh");
    // A listener on the vhost URL subscribes to <topic>.info, not .my_host.
    let mut l = listen(&vhost, &topic, &[Priority::Info], Some(&unique("vh-pool"))).await;
    notify(&vhost, &topic, Priority::Info, json!({"n": 1})).await;
    notify(&plain, &topic, Priority::Info, json!({"n": 2})).await;
    let got = collect(&mut l, 1, JOIN).await;
    assert_eq!(numbers(&got), vec![2]);
    assert!(drain(&mut l, Duration::from_secs(3)).await.is_empty());
    let raw = tokio::task::spawn_blocking({
        let url = url.clone();
        let t = format!("{topic}.info.my_host");
        move || read_raw(&url, &t, 1, Duration::from_secs(60))
    })
    .await
    .expect("reader");
    assert_eq!(raw.len(), 1);
    let v: Value = serde_json::from_slice(raw[0].value.as_deref().expect("value")).expect("json");
    let inner: Value =
        serde_json::from_str(v["oslo.message"].as_str().expect("inner")).expect("inner json");
    assert_eq!(inner["payload"]["n"], json!(1));
    l.cleanup().await.expect("cleanup");
    plain.cleanup().await;
    vhost.cleanup().await;
}

#[tokio::test]
async fn wait_for_delivery_defaults_to_true_and_parses() {
    assert!(
        driver("kafka://127.0.0.1:9092/", &[])
            .expect("driver")
            .options()
            .wait_for_delivery
    );
    let d = driver("kafka://127.0.0.1:9092/?wait_for_delivery=false", &[]).expect("driver");
    assert!(!d.options().wait_for_delivery);
    let e = driver("kafka://127.0.0.1:9092/", &[("wait_for_delivery", "maybe")])
        .expect_err("not a boolean");
    assert!(e.to_string().contains("wait_for_delivery"), "{e}");
}

#[tokio::test]
async fn producer_max_in_flight_is_checked() {
    for bad in ["0", "1000001", "many"] {
        let e = driver(
            "kafka://127.0.0.1:9092/",
            &[("producer_max_in_flight", bad)],
        )
        .expect_err("out of range or not a number");
        assert!(
            e.to_string().contains("producer_max_in_flight"),
            "{bad}: {e}"
        );
    }
    let d = driver(
        "kafka://127.0.0.1:9092/?producer_max_in_flight=1000000",
        &[],
    )
    .expect("driver");
    assert_eq!(d.options().producer_max_in_flight, 1_000_000);
}

/// `wait_for_delivery = false` (Python's way): sends return once queued,
/// and every queued record still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_sends_without_delivery_wait_all_arrive() {
    let Some(url) = kafka_url() else { return };
    let t = transport(&url, &[("wait_for_delivery", "false")]).await;
    let topic = unique("queued");
    let mut l = listen(&t, &topic, &[Priority::Info], Some(&unique("queued-pool"))).await;
    const N: i64 = 200;
    for n in 0..N {
        notify(&t, &topic, Priority::Info, json!({ "n": n })).await;
    }
    let got = collect(&mut l, N as usize, JOIN).await;
    assert_eq!(numbers(&got), (0..N).collect::<Vec<_>>());
    l.cleanup().await.expect("cleanup");
    t.cleanup().await;
}

/// A listener that reads more slowly than records arrive: its consumer
/// thread finds the channel (4 records here) full again and again, waits
/// for room, and still hands out every record once, in order, committing
/// as it goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_channel_loses_and_repeats_nothing() {
    let Some(url) = kafka_url() else { return };
    let t = transport(
        &url,
        &[("topic_partitions", "1"), ("wait_for_delivery", "false")],
    )
    .await;
    let topic = unique("full");
    let pool = unique("full-pool");
    let mut l = t
        .driver()
        .listen_for_notifications(
            vec![(Target::new(topic.as_str()), Priority::Info)],
            Some(pool.clone()),
            ListenOptions::default().with_prefetch(Some(4)),
        )
        .await
        .expect("listen");
    const N: i64 = 300;
    for n in 0..N {
        notify(&t, &topic, Priority::Info, json!({ "n": n })).await;
    }
    let mut got = Vec::new();
    while got.len() < N as usize {
        let Some(m) = next_within(&mut l, JOIN).await else {
            panic!("only {} of {N} records arrived", got.len());
        };
        if got.len() % 50 == 0 {
            // Let the channel fill up behind a slow reader.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        m.acknowledge().await.expect("ack");
        got.push(m);
    }
    // In order: one partition.
    assert_eq!(numbers_in_order(&got), (0..N).collect::<Vec<_>>());
    assert!(drain(&mut l, Duration::from_secs(1)).await.is_empty());
    drop(got);
    l.cleanup().await.expect("cleanup");
    // Everything was acknowledged, so the pool's next listener gets only
    // what is sent after it joined.
    pool_gets_only_new_records(&t, &topic, &pool, N).await;
    t.cleanup().await;
}

/// Queueing never waits, so a task that sends in a loop must still let the
/// other tasks of its runtime run (a listener in the same process, say):
/// on a single-threaded runtime the other task runs before the loop ends.
#[tokio::test(flavor = "current_thread")]
async fn queued_sends_in_a_loop_let_other_tasks_run() {
    let Some(url) = kafka_url() else { return };
    let t = transport(&url, &[("wait_for_delivery", "false")]).await;
    let topic = unique("yield");
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let other = tokio::spawn({
        let ran = ran.clone();
        async move { ran.store(true, std::sync::atomic::Ordering::SeqCst) }
    });
    let mut sent_before_it_ran = None;
    for n in 0..5_000 {
        notify(&t, &topic, Priority::Info, json!({ "n": n })).await;
        if ran.load(std::sync::atomic::Ordering::SeqCst) {
            sent_before_it_ran = Some(n + 1);
            break;
        }
    }
    let sent = sent_before_it_ran.expect("the other task never ran during 5,000 queued sends");
    assert!(sent <= 1_000, "the other task ran only after {sent} sends");
    other.await.expect("the other task");
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_gets_the_context_object_without_client_timeout() {
    let Some(url) = kafka_url() else { return };
    let t = transport(&url, &[]).await;
    let topic = unique("ctx");
    let mut l = listen(
        &t,
        &topic,
        &[Priority::Info, Priority::Error],
        Some(&unique("ctx-pool")),
    )
    .await;
    let ctxt = obj(
        json!({"user": "u1", "project_id": "p1", "roles": ["admin", "member"], "auth_token": null}),
    );
    notify_ctx(&t, &topic, Priority::Error, json!({"n": 7}), ctxt.clone()).await;
    let got = collect(&mut l, 1, JOIN).await;
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.ctxt, ctxt);
    assert!(!m.ctxt.contains_key("client_timeout"));
    assert!(!m.message.contains_key("_context"));
    assert_eq!(m.message["priority"], json!("ERROR"));
    assert_eq!(m.message["payload"], json!({"n": 7}));
    assert_eq!(m.msg_id, None);
    l.cleanup().await.expect("cleanup");
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_each_get_every_record_and_one_pools_listeners_split() {
    let Some(url) = kafka_url() else { return };
    let t = transport(&url, &[("topic_partitions", "4")]).await;
    let topic = unique("pools");
    let pool_a = unique("pool-a");
    let pool_b = unique("pool-b");
    let mut a1 = listen(&t, &topic, &[Priority::Info], Some(&pool_a)).await;
    let mut a2 = listen(&t, &topic, &[Priority::Info], Some(&pool_a)).await;
    let mut b = listen(&t, &topic, &[Priority::Info], Some(&pool_b)).await;
    const N: i64 = 40;
    for n in 1..=N {
        notify(&t, &topic, Priority::Info, json!({"n": n})).await;
    }
    let all: Vec<i64> = (1..=N).collect();
    let got_b = collect(&mut b, N as usize, JOIN).await;
    assert_eq!(numbers(&got_b), all, "pool B gets every record");
    let deadline = Instant::now() + JOIN;
    let (mut got_a1, mut got_a2) = (Vec::new(), Vec::new());
    while got_a1.len() + got_a2.len() < N as usize && Instant::now() < deadline {
        got_a1.extend(collect(&mut a1, 1, Duration::from_millis(300)).await);
        got_a2.extend(collect(&mut a2, 1, Duration::from_millis(300)).await);
    }
    got_a1.extend(drain(&mut a1, Duration::from_secs(2)).await);
    got_a2.extend(drain(&mut a2, Duration::from_secs(1)).await);
    let mut union = numbers(&got_a1);
    union.extend(numbers(&got_a2));
    union.sort_unstable();
    assert_eq!(
        union, all,
        "pool A's listeners together get every record once"
    );
    assert!(
        !got_a1.is_empty() && !got_a2.is_empty(),
        "both listeners of pool A get a share: {} + {}",
        got_a1.len(),
        got_a2.len()
    );
    println!("pool A split: {} + {}", got_a1.len(), got_a2.len());
    for l in [a1, a2, b] {
        l.cleanup().await.expect("cleanup");
    }
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_without_pool_uses_consumer_group() {
    let Some(url) = kafka_url() else { return };
    let group = unique("cg");
    let t = transport(
        &url,
        &[
            ("consumer_group", group.as_str()),
            ("topic_partitions", "4"),
        ],
    )
    .await;
    let topic = unique("nopool");
    // No pool → group `consumer_group`; a pool named like it is the same group.
    let mut l1 = listen(&t, &topic, &[Priority::Info], None).await;
    let mut l2 = listen(&t, &topic, &[Priority::Info], Some(&group)).await;
    for n in 1..=20 {
        notify(&t, &topic, Priority::Info, json!({"n": n})).await;
    }
    let deadline = Instant::now() + JOIN;
    let (mut g1, mut g2) = (Vec::new(), Vec::new());
    while g1.len() + g2.len() < 20 && Instant::now() < deadline {
        g1.extend(collect(&mut l1, 1, Duration::from_millis(300)).await);
        g2.extend(collect(&mut l2, 1, Duration::from_millis(300)).await);
    }
    g1.extend(drain(&mut l1, Duration::from_secs(2)).await);
    g2.extend(drain(&mut l2, Duration::from_secs(1)).await);
    let mut union = numbers(&g1);
    union.extend(numbers(&g2));
    union.sort_unstable();
    assert_eq!(
        union,
        (1..=20).collect::<Vec<_>>(),
        "one group: every record exactly once"
    );
    assert!(
        !g1.is_empty() && !g2.is_empty(),
        "they compete: {} + {}",
        g1.len(),
        g2.len()
    );
    for l in [l1, l2] {
        l.cleanup().await.expect("cleanup");
    }
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_group_starts_latest_by_default_and_earliest_on_request() {
    let Some(url) = kafka_url() else { return };
    let latest_t = transport(&url, &[]).await;
    let earliest_t = transport(&url, &[("auto_offset_reset", "earliest")]).await;
    assert!(!latest_t.capabilities().retains_unconsumed_notifications);
    assert!(earliest_t.capabilities().retains_unconsumed_notifications);
    let topic = unique("reset");
    // Sent before any listener: the topic is auto-created by the producer.
    notify(&latest_t, &topic, Priority::Info, json!({"n": 1})).await;
    notify(&latest_t, &topic, Priority::Info, json!({"n": 2})).await;
    let mut latest = listen(
        &latest_t,
        &topic,
        &[Priority::Info],
        Some(&unique("latest")),
    )
    .await;
    let mut earliest = listen(
        &earliest_t,
        &topic,
        &[Priority::Info],
        Some(&unique("earliest")),
    )
    .await;
    notify(&latest_t, &topic, Priority::Info, json!({"n": 3})).await;
    let got_e = collect(&mut earliest, 3, JOIN).await;
    assert_eq!(
        numbers(&got_e),
        vec![1, 2, 3],
        "earliest: a new pool gets what was sent before it joined"
    );
    let mut got_l = collect(&mut latest, 1, JOIN).await;
    got_l.extend(drain(&mut latest, Duration::from_secs(3)).await);
    assert_eq!(
        numbers(&got_l),
        vec![3],
        "latest: only what was sent after the pool joined"
    );
    for l in [latest, earliest] {
        l.cleanup().await.expect("cleanup");
    }
    latest_t.cleanup().await;
    earliest_t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_acknowledged_records_are_committed() {
    let Some(url) = kafka_url() else { return };
    // One partition, so the order of the records is the order of offsets.
    let t = transport(&url, &[("topic_partitions", "1")]).await;
    let topic = unique("commit");
    let pool = unique("commit-pool");
    let mut l1 = listen(&t, &topic, &[Priority::Info], Some(&pool)).await;
    for n in 1..=4 {
        notify(&t, &topic, Priority::Info, json!({"n": n})).await;
    }
    let mut got = Vec::new();
    while got.len() < 4 {
        match next_within(&mut l1, JOIN).await {
            Some(m) => got.push(m),
            None => panic!("only {} of 4 records arrived", got.len()),
        }
    }
    // Acknowledge 1, 3 and 4 but not 2: the commit may only pass 1.
    for m in &got {
        if m.message["payload"]["n"] != json!(2) {
            m.acknowledge().await.expect("ack");
        }
    }
    // A requeue is refused (not supported by Kafka) and changes nothing.
    let err = got[1].requeue().await.expect_err("requeue");
    assert!(matches!(err, Error::NotSupported { .. }), "{err:?}");
    drop(got);
    l1.cleanup().await.expect("cleanup");

    let mut l2 = listen(&t, &topic, &[Priority::Info], Some(&pool)).await;
    let again = collect(&mut l2, 3, JOIN).await;
    assert_eq!(
        numbers(&again),
        vec![2, 3, 4],
        "redelivered from the first unacknowledged record"
    );
    assert!(drain(&mut l2, Duration::from_secs(2)).await.is_empty());
    l2.cleanup().await.expect("cleanup");

    // Everything is acknowledged now: nothing comes back, new records do.
    pool_gets_only_new_records(&t, &topic, &pool, 5).await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_commit_commits_acknowledged_records_in_the_background() {
    let Some(url) = kafka_url() else { return };
    let t = transport(
        &url,
        &[("topic_partitions", "1"), ("enable_auto_commit", "true")],
    )
    .await;
    let topic = unique("autocommit");
    let pool = unique("ac-pool");
    let mut l1 = listen(&t, &topic, &[Priority::Info], Some(&pool)).await;
    for n in 1..=3 {
        notify(&t, &topic, Priority::Info, json!({"n": n})).await;
    }
    let mut got = Vec::new();
    while got.len() < 3 {
        got.push(next_within(&mut l1, JOIN).await.expect("record"));
    }
    got[0].acknowledge().await.expect("ack");
    drop(got);
    // Closing the consumer commits the stored offsets.
    l1.cleanup().await.expect("cleanup");
    let mut l2 = listen(&t, &topic, &[Priority::Info], Some(&pool)).await;
    let again = collect(&mut l2, 2, JOIN).await;
    assert_eq!(numbers(&again), vec![2, 3]);
    l2.cleanup().await.expect("cleanup");
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_bare_records() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let Some(url) = kafka_url() else { return };
    let t = transport(&url, &[]).await;
    let topic = unique("bad");
    let mut l = listen(&t, &topic, &[Priority::Info], Some(&unique("bad-pool"))).await;
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap(&url))
        .create()
        .expect("producer");
    let full = format!("{topic}.info");
    for value in [
        &b"this is not json"[..],
        br#"{"event_type": "bare", "priority": "INFO", "payload": {"n": 1}, "_context": {"user": "u"}}"#,
    ] {
        producer
            .send(FutureRecord::<(), [u8]>::to(&full).payload(value), Duration::from_secs(30))
            .await
            .expect("raw produce");
    }
    let first = tokio::time::timeout(JOIN, l.next())
        .await
        .expect("in time")
        .expect("item");
    assert!(
        matches!(first, Err(Error::MalformedMessage(_))),
        "{first:?}"
    );
    let second = next_within(&mut l, JOIN).await.expect("bare record");
    assert_eq!(second.message["event_type"], json!("bare"));
    assert_eq!(second.ctxt, obj(json!({"user": "u"})));
    second.acknowledge().await.expect("ack");
    l.cleanup().await.expect("cleanup");
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_the_stream_and_cleanup_closes() {
    let Some(url) = kafka_url() else { return };
    let t = transport(&url, &[]).await;
    let topic = unique("stop");
    let mut l = listen(&t, &topic, &[Priority::Info], Some(&unique("stop-pool"))).await;
    notify(&t, &topic, Priority::Info, json!({"n": 1})).await;
    let got = collect(&mut l, 1, JOIN).await;
    assert_eq!(numbers(&got), vec![1]);
    l.stop().await.expect("stop");
    let end = tokio::time::timeout(Duration::from_secs(10), l.next())
        .await
        .expect("next after stop returns");
    assert!(end.is_none());
    l.cleanup().await.expect("cleanup");
    t.cleanup().await;
    // A closed transport refuses to send.
    let target = Target::new(format!("{topic}.info"));
    let err = t
        .driver()
        .send_notification(Notification::new(
            target,
            message("e", Priority::Info, json!({})),
            Format::V2,
        ))
        .await
        .expect_err("closed");
    assert!(matches!(err, Error::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_brokers_in_the_url_one_of_them_down() {
    let Some(url) = kafka_url() else { return };
    // Nothing listens on port 1: librdkafka bootstraps from the live one.
    let multi = format!("kafka://127.0.0.1:1,{}/", bootstrap(&url));
    let t = transport(&multi, &[]).await;
    let topic = unique("multi");
    let mut l = listen(&t, &topic, &[Priority::Info], Some(&unique("multi-pool"))).await;
    notify(&t, &topic, Priority::Info, json!({"n": 1})).await;
    assert_eq!(numbers(&collect(&mut l, 1, JOIN).await), vec![1]);
    l.cleanup().await.expect("cleanup");
    t.cleanup().await;
}
