//! Notifier behaviour: message construction, drivers, topics, contexts,
//! errors (test cases G 76-81, 94).

#![allow(clippy::unwrap_used)]

mod common;

use chrono::NaiveDate;
use common::{fake, within, Recording};
use om_driver_api::om_core::envelope::{self, Format};
use om_driver_api::om_core::{
    Context, Error, JsonObject, Priority, RequestContext, Serializer, Target, Value,
};
use om_driver_api::{ListenOptions, Retry};
use om_notify::{
    ContextPolicy, ErrorPolicy, Notifier, NotifierDriver, RouteDriver, RouteRules, RoutingConfig,
    TestSink,
};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn fixed_clock(micro: u32) -> impl Fn() -> chrono::NaiveDateTime + Send + Sync + 'static {
    move || {
        NaiveDate::from_ymd_opt(2024, 1, 2)
            .and_then(|d| d.and_hms_micro_opt(3, 4, 5, micro))
            .expect("valid time")
    }
}

fn counter_ids() -> impl Fn() -> String + Send + Sync + 'static {
    let n = Arc::new(AtomicUsize::new(0));
    move || {
        format!(
            "00000000-0000-4000-8000-{:012}",
            n.fetch_add(1, Ordering::SeqCst) + 1
        )
    }
}

#[tokio::test]
async fn message_has_python_keys_in_python_order() {
    let sink = TestSink::new();
    let (transport, _) = fake("n-keys").await;
    let notifier = Notifier::builder(transport)
        .publisher_id("compute.host1")
        .driver(NotifierDriver::Test(sink.clone()))
        .build();
    notifier
        .info(
            &Context::new(),
            "compute.instance.create.end",
            json!({"id": 2}),
        )
        .await
        .expect("sent");
    let sent = sink.take();
    assert_eq!(sent.len(), 1);
    let m = &sent[0].message;
    let keys: Vec<&str> = m.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "message_id",
            "publisher_id",
            "event_type",
            "priority",
            "payload",
            "timestamp"
        ]
    );
    let id = sent[0].message_id().expect("message id");
    assert_eq!(id.len(), 36);
    assert_eq!(id.matches('-').count(), 4);
    assert_eq!(&id[14..15], "4", "uuid version 4: {id}");
    assert_eq!(sent[0].publisher_id(), Some("compute.host1"));
    assert_eq!(m["priority"], json!("INFO"));
    assert_eq!(sent[0].payload(), &json!({"id": 2}));
    let ts = sent[0].timestamp().expect("timestamp");
    let parsed =
        chrono::NaiveDateTime::parse_from_str(ts, "%Y-%m-%d %H:%M:%S%.f").expect("python format");
    let age = chrono::Utc::now().naive_utc() - parsed;
    assert!(age.num_seconds().abs() < 60, "timestamp {ts} is UTC now");
    assert_eq!(sent[0].retry, Retry::Forever);
    assert_eq!(sent[0].topics, vec!["notifications".to_owned()]);
}

#[tokio::test]
async fn every_priority_method_maps_as_oslo() {
    let sink = TestSink::new();
    let (transport, _) = fake("n-prio").await;
    let n = Notifier::builder(transport)
        .driver(NotifierDriver::Test(sink.clone()))
        .build();
    let c = Context::new();
    n.audit(&c, "e", 1).await.expect("audit");
    n.debug(&c, "e", 2).await.expect("debug");
    n.info(&c, "e", 3).await.expect("info");
    n.warn(&c, "e", 4).await.expect("warn");
    n.warning(&c, "e", 5).await.expect("warning");
    n.error(&c, "e", 6).await.expect("error");
    n.critical(&c, "e", 7).await.expect("critical");
    n.sample(&c, "e", 8).await.expect("sample");
    let got: Vec<(String, Priority, Value)> = sink
        .take()
        .into_iter()
        .map(|s| {
            (
                s.message["priority"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                s.priority,
                s.payload().clone(),
            )
        })
        .collect();
    let want = [
        ("AUDIT", Priority::Audit),
        ("DEBUG", Priority::Debug),
        ("INFO", Priority::Info),
        ("WARN", Priority::Warn),
        ("WARN", Priority::Warn),
        ("ERROR", Priority::Error),
        ("CRITICAL", Priority::Critical),
        ("SAMPLE", Priority::Sample),
    ];
    assert_eq!(got.len(), want.len());
    for (i, ((s, p, payload), (ws, wp))) in got.iter().zip(want).enumerate() {
        assert_eq!((s.as_str(), *p), (ws, wp));
        assert_eq!(payload, &json!(i + 1));
    }
}

#[tokio::test]
async fn messaging_drivers_send_one_copy_per_topic_to_topic_dot_priority() {
    let (transport, sent) = Recording::transport("n-topics", false);
    let notifier = Notifier::builder(transport)
        .publisher_id("p")
        .drivers([NotifierDriver::MessagingV2, NotifierDriver::Messaging])
        .topics(["a", "b"])
        .retry(Retry::Limited(3))
        .build();
    notifier
        .warn(&Context::new(), "ev", json!({}))
        .await
        .expect("sent");
    let sent = sent.lock().expect("lock").clone();
    let seen: Vec<(Option<String>, Option<String>, Format, Retry)> = sent
        .iter()
        .map(|n| {
            (
                n.target.topic.clone(),
                n.target.exchange.clone(),
                n.format,
                n.retry,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (Some("a.warn".into()), None, Format::V2, Retry::Limited(3)),
            (Some("b.warn".into()), None, Format::V2, Retry::Limited(3)),
            (Some("a.warn".into()), None, Format::V1, Retry::Limited(3)),
            (Some("b.warn".into()), None, Format::V1, Retry::Limited(3)),
        ]
    );
    // Every copy carries the same message (same id).
    assert!(sent.windows(2).all(|w| w[0].message == w[1].message));
}

/// `messaging` and `messagingv2` produce the two body formats: encode what
/// the driver is handed, and check what the fake broker carried decodes.
#[tokio::test]
async fn messaging_and_messagingv2_body_formats() {
    let (transport, sent) = Recording::transport("n-formats", false);
    let mut raw = transport
        .driver()
        .listen_for_notifications(
            vec![(Target::new("fmt"), Priority::Info)],
            None,
            ListenOptions::default(),
        )
        .await
        .expect("listen");
    for driver in [NotifierDriver::MessagingV2, NotifierDriver::Messaging] {
        let notifier = Notifier::builder(transport.clone())
            .publisher_id("compute.host1")
            .driver(driver)
            .topics(["fmt"])
            .message_id_generator(|| "11111111-2222-4333-8444-555555555555".into())
            .clock(fixed_clock(6))
            .build();
        notifier
            .info(&Context::new(), "ev.x", json!({"k": "é"}))
            .await
            .expect("sent");
    }
    let sent = sent.lock().expect("lock").clone();
    let inner = r#"{"message_id": "11111111-2222-4333-8444-555555555555", "publisher_id": "compute.host1", "event_type": "ev.x", "priority": "INFO", "payload": {"k": "\u00e9"}, "timestamp": "2024-01-02 03:04:05.000006"}"#;
    let v2 = envelope::encode(&sent[0].message, sent[0].format).expect("encode");
    let want_v2 =
        envelope::to_python_json_string(&json!({"oslo.version": "2.0", "oslo.message": inner}))
            .expect("json");
    assert_eq!(String::from_utf8(v2).expect("ascii"), want_v2);
    let v1 = envelope::encode(&sent[1].message, sent[1].format).expect("encode");
    assert_eq!(String::from_utf8(v1).expect("ascii"), inner);

    // What the broker carried decodes to the same message both times.
    for _ in 0..2 {
        let m = within(raw.next()).await.expect("open").expect("decoded");
        assert_eq!(m.message, sent[0].message);
        assert_eq!(m.ctxt.get("client_timeout"), Some(&Value::Null));
        m.acknowledge().await.expect("ack");
    }
}

#[tokio::test]
async fn timestamp_drops_zero_microseconds() {
    let sink = TestSink::new();
    let (transport, _) = fake("n-ts").await;
    let n = Notifier::builder(transport)
        .driver(NotifierDriver::Test(sink.clone()))
        .clock(fixed_clock(0))
        .build();
    n.info(&Context::new(), "e", ()).await.expect("sent");
    assert_eq!(sink.take()[0].timestamp(), Some("2024-01-02 03:04:05"));
}

#[tokio::test]
async fn request_context_is_redacted_and_serialized() {
    struct Tagging;
    impl Serializer for Tagging {
        fn serialize_entity(
            &self,
            ctxt: &Context,
            entity: Value,
        ) -> om_driver_api::om_core::Result<Value> {
            // Python passes the original context to serialize_entity.
            Ok(json!({"wrapped": entity, "token_seen": ctxt.get("auth_token").cloned()}))
        }
        fn deserialize_entity(
            &self,
            _: &Context,
            entity: Value,
        ) -> om_driver_api::om_core::Result<Value> {
            Ok(entity)
        }
        fn serialize_context(&self, ctxt: &Context) -> om_driver_api::om_core::Result<Context> {
            Ok(ctxt.clone().with("serialized", true))
        }
        fn deserialize_context(&self, ctxt: Context) -> om_driver_api::om_core::Result<Context> {
            Ok(ctxt)
        }
    }
    let sink = TestSink::new();
    let (transport, _) = fake("n-ctx").await;
    let base = Notifier::builder(transport)
        .driver(NotifierDriver::Test(sink.clone()))
        .serializer(Arc::new(Tagging))
        .build();
    let rc = RequestContext {
        user_id: Some("u1".into()),
        auth_token: Some("tok-secret".into()),
        ..RequestContext::new()
    };
    let ctxt: Context = rc.into();
    base.info(&ctxt, "e", 1).await.expect("sent");
    let s = sink.take().remove(0);
    assert_eq!(s.ctxt.get("auth_token"), Some(&Value::Null), "redacted");
    assert_eq!(s.ctxt.get_str("user"), Some("u1"));
    assert_eq!(s.ctxt.get("serialized"), Some(&json!(true)));
    assert_eq!(
        s.payload(),
        &json!({"wrapped": 1, "token_seen": "tok-secret"})
    );

    // Context::new() sends what Python sends for a plain dict: nothing.
    let plain = Notifier::builder(base.transport().clone())
        .driver(NotifierDriver::Test(sink.clone()))
        .build();
    plain.info(&Context::new(), "e", 1).await.expect("sent");
    assert!(sink.take()[0].ctxt.is_empty());

    // ContextPolicy::Empty drops any context; AsGiven keeps secrets.
    let empty = Notifier::builder(base.transport().clone())
        .driver(NotifierDriver::Test(sink.clone()))
        .context_policy(ContextPolicy::Empty)
        .build();
    empty.info(&ctxt, "e", 1).await.expect("sent");
    assert!(sink.take()[0].ctxt.is_empty());
    let as_given = Notifier::builder(base.transport().clone())
        .driver(NotifierDriver::Test(sink.clone()))
        .context_policy(ContextPolicy::AsGiven)
        .build();
    as_given.info(&ctxt, "e", 1).await.expect("sent");
    assert_eq!(
        sink.take()[0].ctxt.get_str("auth_token"),
        Some("tok-secret")
    );
}

#[tokio::test]
async fn prepare_overrides_publisher_retry_and_topics_and_shares_drivers() {
    let sink = TestSink::new();
    let (transport, _) = fake("n-prepare").await;
    let base = Notifier::builder(transport)
        .publisher_id("compute.host1")
        .driver(NotifierDriver::Test(sink.clone()))
        .build();
    let p = base
        .prepare()
        .publisher_id("compute.host2")
        .retry(Retry::Limited(0))
        .topics(["other"])
        .build();
    p.info(&Context::new(), "e", 1).await.expect("sent");
    base.info(&Context::new(), "e", 2).await.expect("sent");
    let nulled = base.prepare().no_publisher_id().build();
    nulled.info(&Context::new(), "e", 3).await.expect("sent");
    let s = sink.take();
    assert_eq!(s[0].publisher_id(), Some("compute.host2"));
    assert_eq!(s[0].retry, Retry::Limited(0));
    assert_eq!(s[0].topics, vec!["other".to_owned()]);
    assert_eq!(s[1].publisher_id(), Some("compute.host1"));
    assert_eq!(s[1].retry, Retry::Forever);
    assert_eq!(s[2].message["publisher_id"], Value::Null);
    assert!(p.test_sink().expect("shared sink").same_store(&sink));
}

#[tokio::test]
async fn no_driver_and_noop_send_nothing() {
    let (transport, sent) = Recording::transport("n-noop", false);
    let none = Notifier::builder(transport.clone()).build();
    none.info(&Context::new(), "e", 1)
        .await
        .expect("nothing to do");
    assert!(
        none.is_enabled(),
        "an empty driver list counts as enabled (Python quirk)"
    );
    let noop = Notifier::builder(transport.clone())
        .driver(NotifierDriver::Noop)
        .build();
    noop.info(&Context::new(), "e", 1)
        .await
        .expect("nothing to do");
    assert!(!noop.is_enabled());
    let two = Notifier::builder(transport)
        .drivers([NotifierDriver::Noop, NotifierDriver::Noop])
        .build();
    assert!(two.is_enabled(), "only exactly [noop] is disabled");
    assert!(sent.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn delivery_failure_is_returned_after_trying_every_topic() {
    let (transport, sent) = Recording::transport("n-fail", true);
    let sink = TestSink::new();
    let notifier = Notifier::builder(transport.clone())
        .drivers([
            NotifierDriver::MessagingV2,
            NotifierDriver::Test(sink.clone()),
        ])
        .topics(["a", "b"])
        .build();
    let err = notifier.error(&Context::new(), "e", 1).await.unwrap_err();
    assert_eq!(err.oslo_name(), "MessageDeliveryFailure");
    assert!(
        err.to_string().contains("a.error"),
        "first failure returned: {err}"
    );
    assert_eq!(sent.lock().expect("lock").len(), 2, "both topics tried");
    assert_eq!(sink.len(), 1, "the other drivers still ran");

    let swallowing = Notifier::builder(transport)
        .driver(NotifierDriver::MessagingV2)
        .error_policy(ErrorPolicy::LogAndSwallow)
        .build();
    swallowing
        .info(&Context::new(), "e", 1)
        .await
        .expect("swallowed like Python");
}

#[tokio::test]
async fn closed_transport_fails_and_serialization_errors_always_surface() {
    let (transport, _) = fake("n-closed").await;
    transport.cleanup().await;
    let notifier = Notifier::builder(transport.clone())
        .driver(NotifierDriver::MessagingV2)
        .build();
    assert!(matches!(
        notifier.info(&Context::new(), "e", 1).await,
        Err(Error::Closed)
    ));

    struct Unserializable;
    impl serde::Serialize for Unserializable {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("no way"))
        }
    }
    let swallowing = Notifier::builder(transport)
        .driver(NotifierDriver::Noop)
        .error_policy(ErrorPolicy::LogAndSwallow)
        .build();
    let e = swallowing
        .info(&Context::new(), "e", Unserializable)
        .await
        .unwrap_err();
    assert_eq!(e.oslo_name(), "TypeError");
}

#[tokio::test]
async fn routing_by_event_type_and_priority() {
    let (transport, sent) = Recording::transport("n-routing", false);
    let routed = TestSink::new();
    let cfg = RoutingConfig::from_yaml_str(
        r#"
group_1:
  messagingv2:
    accepted_events: ["compute.instance.*"]
  test:
    accepted_priorities: ["ERROR", "crit*"]
group_2:
  test:
    accepted_events: ["image.*"]
    accepted_priorities: ["info"]
"#,
    )
    .expect("valid")
    .with_test_sink(routed.clone());
    let notifier = Notifier::builder(transport)
        .driver(NotifierDriver::Routing(cfg))
        .topics(["routed"])
        .build();
    let c = Context::new();
    notifier
        .info(&c, "compute.instance.create", 1)
        .await
        .expect("sent");
    notifier
        .error(&c, "compute.instance.delete", 2)
        .await
        .expect("sent");
    notifier
        .critical(&c, "network.down", 3)
        .await
        .expect("sent");
    notifier.info(&c, "image.upload", 4).await.expect("sent");
    notifier.warn(&c, "image.upload", 5).await.expect("sent");
    notifier.info(&c, "network.create", 6).await.expect("sent");

    let over_transport: Vec<(Option<String>, Value)> = sent
        .lock()
        .expect("lock")
        .iter()
        .map(|n| (n.target.topic.clone(), n.message["payload"].clone()))
        .collect();
    assert_eq!(
        over_transport,
        vec![
            (Some("routed.info".into()), json!(1)),
            (Some("routed.error".into()), json!(2))
        ]
    );
    let to_test: Vec<Value> = routed.take().iter().map(|s| s.payload().clone()).collect();
    assert_eq!(to_test, vec![json!(2), json!(3), json!(4)]);
    assert!(notifier.test_sink().is_some());
}

#[tokio::test]
async fn routing_built_in_code_and_from_file() {
    let dir = std::env::temp_dir().join(format!("om-notify-routing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("routing.yaml");
    std::fs::write(&path, "g:\n  test: {accepted_events: ['a.*']}\n").expect("write");
    let from_file = RoutingConfig::from_file(&path).expect("read");
    assert_eq!(
        from_file.drivers_for("a.b", Priority::Debug),
        vec![RouteDriver::Test]
    );
    assert!(RoutingConfig::from_file(dir.join("missing.yaml")).is_err());
    std::fs::remove_dir_all(&dir).expect("cleanup");

    let sink = TestSink::new();
    let cfg = RoutingConfig::empty()
        .route(
            "g",
            RouteDriver::Test,
            RouteRules {
                accepted_priorities: Some(vec!["sample".into()]),
                ..RouteRules::default()
            },
        )
        .with_test_sink(sink.clone());
    let (transport, _) = fake("n-routing2").await;
    let n = Notifier::builder(transport)
        .driver(NotifierDriver::Routing(cfg))
        .build();
    n.sample(&Context::new(), "cpu", 70).await.expect("sent");
    n.info(&Context::new(), "cpu", 71).await.expect("sent");
    let got: Vec<Value> = sink.take().iter().map(|s| s.payload().clone()).collect();
    assert_eq!(got, vec![json!(70)]);

    // "routing" by name: oslo's empty routing_config routes nothing.
    let by_name: NotifierDriver = "routing".parse().expect("known");
    match by_name {
        NotifierDriver::Routing(cfg) => assert!(cfg.is_empty()),
        other => panic!("unexpected {other}"),
    }
}

#[tokio::test]
async fn log_driver_emits_masked_json_at_the_priority_level() {
    let buf = om_driver_api::testkit::logs::Captured::new();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(buf.make_writer())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (transport, _) = fake("n-log").await;
    let n = Notifier::builder(transport)
        .driver(NotifierDriver::Log)
        .build();
    let c = Context::new();
    n.error(
        &c,
        "compute.fail",
        json!({"admin_password": "hunter2", "id": 1}),
    )
    .await
    .expect("logged");
    n.audit(&c, "compute.audit", json!({"id": 2}))
        .await
        .expect("logged");
    n.critical(&c, "compute.crit", json!({"id": 3}))
        .await
        .expect("logged");
    let out = buf.text();
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("oslo.messaging.notification"))
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].contains("ERROR") && lines[0].contains("event_type=\"compute.fail\""),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains(r#""payload": {"admin_password": "***", "id": 1}"#),
        "{}",
        lines[0]
    );
    assert!(!out.contains("hunter2"));
    assert!(
        lines[1].contains("INFO") && lines[1].contains("priority=\"audit\""),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("ERROR") && lines[2].contains("priority=\"critical\""),
        "{}",
        lines[2]
    );
}

#[tokio::test]
async fn build_message_without_sending() {
    let (transport, sent) = Recording::transport("n-build", false);
    let n = Notifier::builder(transport)
        .driver(NotifierDriver::MessagingV2)
        .message_id_generator(counter_ids())
        .clock(fixed_clock(5))
        .build();
    let (ctxt, m): (JsonObject, JsonObject) = n
        .build_message(Priority::Debug, &Context::new().with("k", "v"), "e", [1, 2])
        .expect("built");
    assert_eq!(ctxt.get("k"), Some(&json!("v")));
    assert_eq!(
        m["message_id"],
        json!("00000000-0000-4000-8000-000000000001")
    );
    assert_eq!(m["timestamp"], json!("2024-01-02 03:04:05.000005"));
    assert_eq!(m["payload"], json!([1, 2]));
    assert!(sent.lock().expect("lock").is_empty());
}
