//! Comparison with what the real Python oslo.messaging 18.3.1 produces.
//!
//! * `crates/om-core/tests/fixtures/notifications.json` (from
//!   `gen_fixtures.py` in the same directory): notification bodies as the
//!   rabbit driver published them. With the same message id, timestamp and
//!   `_unique_id`, om's bodies must be byte-for-byte equal, and om's
//!   listener must read Python's bodies.
//! * `crates/om-notify/tests/fixtures/notify_behaviour.json` (from
//!   `tests/fixtures/gen_notify_fixtures.py`): timestamps, `log` driver
//!   text, routing decisions, filter results and dispatch order.

#![allow(clippy::unwrap_used)]

mod common;

use chrono::NaiveDateTime;
use common::{eventually, fake, within, Recording};
use om_driver_api::om_core::envelope::{self, Format};
use om_driver_api::om_core::{Context, JsonObject, Priority, Target, Value};
use om_notify::{
    format_timestamp, ContextPolicy, Endpoint, Notification, NotificationDispatcher,
    NotificationEndpoint, NotificationFilterSpec, NotificationListener, NotificationResult,
    Notifier, NotifierDriver, RoutingConfig, TestSink,
};
use serde_json::json;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

fn load(rel: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("valid JSON fixture")
}

fn python_cases() -> Vec<Value> {
    let v = load("../om-core/tests/fixtures/notifications.json");
    let cases = v["cases"].as_array().expect("cases").clone();
    assert!(cases.len() >= 8, "fixture has its cases");
    cases
}

fn obj(v: &Value) -> JsonObject {
    v.as_object().cloned().expect("object")
}

fn body_of(published: &Value) -> (String, Format, JsonObject) {
    let body = published["body"].as_str().expect("body").to_owned();
    let format = if body.starts_with("{\"oslo.version\"") {
        Format::V2
    } else {
        Format::V1
    };
    let decoded = envelope::decode(body.as_bytes()).expect("decodes");
    (body, format, decoded)
}

/// Sends case `case` through an om notifier with the fixture's id and
/// clock; returns what the `test` driver recorded.
async fn send_like_python(case: &Value, sink: &TestSink) {
    let (_, _, first) = body_of(&case["published"][0]);
    let message_id = first["message_id"].as_str().expect("message_id").to_owned();
    let utcnow = NaiveDateTime::parse_from_str(
        case["utcnow"].as_str().expect("utcnow"),
        "%Y-%m-%dT%H:%M:%S%.f",
    )
    .expect("iso datetime");
    let topics: Vec<String> = case["published"]
        .as_array()
        .expect("published")
        .iter()
        .map(|p| {
            let key = p["routing_key"].as_str().expect("routing key");
            key.rsplit_once('.').expect("topic.priority").0.to_owned()
        })
        .collect();
    let (transport, _) = fake("fx-send").await;
    let mut b = Notifier::builder(transport)
        .driver(NotifierDriver::Test(sink.clone()))
        .topics(topics)
        .message_id_generator(move || message_id.clone())
        .clock(move || utcnow);
    if let Some(p) = case["publisher_id"].as_str() {
        b = b.publisher_id(p);
    }
    let ctxt = match case["context"]["kind"].as_str() {
        Some("request_context") => Context(obj(&case["context"]["to_dict"])),
        Some("dict") => {
            // Python drops plain dicts: om's equivalent is ContextPolicy::Empty
            // (or passing Context::new()).
            b = b.context_policy(ContextPolicy::Empty);
            Context(obj(&case["context"]["value"]))
        }
        other => panic!("unknown context kind {other:?}"),
    };
    let notifier = b.build();
    let priority: Priority = case["priority"]
        .as_str()
        .expect("priority")
        .parse()
        .expect("known priority");
    let event_type = case["event_type"].as_str().expect("event type");
    notifier
        .notify(priority, &ctxt, event_type, case["payload"].clone())
        .await
        .expect("sent");
}

#[tokio::test]
async fn bodies_equal_pythons_byte_for_byte() {
    for case in python_cases() {
        let name = case["name"].as_str().expect("name");
        let sink = TestSink::new();
        send_like_python(&case, &sink).await;
        let sent = sink.take();
        assert_eq!(sent.len(), 1, "{name}");
        let sent = &sent[0];
        assert_eq!(
            Value::Object(sent.ctxt.0.clone()),
            case["sent_context"],
            "{name}: context sent"
        );
        for published in case["published"].as_array().expect("published") {
            let (python_body, format, python_msg) = body_of(published);
            assert_eq!(
                format == Format::V2,
                case["driver"] == json!("messagingv2"),
                "{name}: format follows the driver"
            );
            // What a rabbit driver adds: `_unique_id`, then the flattened context.
            let mut msg = sent.message.clone();
            msg.insert("_unique_id".into(), python_msg["_unique_id"].clone());
            envelope::pack_context_flat(&mut msg, &sent.ctxt.0);
            let om_body = envelope::encode(&msg, format).expect("encode");
            assert_eq!(
                String::from_utf8(om_body).expect("ascii"),
                python_body,
                "{name}"
            );
        }
    }
}

#[tokio::test]
async fn drivers_route_like_python() {
    for case in python_cases() {
        let name = case["name"].as_str().expect("name");
        let (transport, sent) = Recording::transport("fx-route", false);
        let driver: NotifierDriver = case["driver"]
            .as_str()
            .expect("driver")
            .parse()
            .expect("known driver");
        let published = case["published"].as_array().expect("published");
        let topics: Vec<String> = published
            .iter()
            .map(|p| {
                p["routing_key"]
                    .as_str()
                    .expect("key")
                    .rsplit_once('.')
                    .expect("dot")
                    .0
                    .to_owned()
            })
            .collect();
        let n = Notifier::builder(transport)
            .driver(driver)
            .topics(topics)
            .build();
        let priority: Priority = case["priority"]
            .as_str()
            .expect("priority")
            .parse()
            .expect("priority");
        n.notify(priority, &Context::new(), "e", 1)
            .await
            .expect("sent");
        let sent = sent.lock().expect("lock").clone();
        assert_eq!(sent.len(), published.len(), "{name}");
        for (n, p) in sent.iter().zip(published) {
            assert_eq!(
                n.target.topic.as_deref(),
                p["routing_key"].as_str(),
                "{name}"
            );
            // No exchange: the control exchange, `openstack` in the fixtures.
            assert_eq!(n.target.exchange, None, "{name}");
            assert_eq!(p["exchange"], json!("openstack"), "{name}");
            assert_eq!(
                n.format == Format::V2,
                case["driver"] == json!("messagingv2"),
                "{name}"
            );
        }
    }
}

#[tokio::test]
async fn listener_reads_python_bodies() {
    let (transport, broker) = fake("fx-listen").await;
    let got: Arc<Mutex<Vec<Notification>>> = Arc::default();
    let mut ep = Endpoint::new();
    for p in Priority::ALL {
        let g = got.clone();
        ep = ep.on(p, move |n: Notification| {
            let g = g.clone();
            async move { g.lock().expect("lock").push(n) }
        });
    }
    let listener = NotificationListener::builder(transport.clone())
        .targets([Target::new("notifications"), Target::new("monitor")])
        .endpoint(ep)
        .build()
        .expect("listener");
    listener.start().await.expect("start");
    let cases = python_cases();
    let mut expected = 0;
    for case in &cases {
        for p in case["published"].as_array().expect("published") {
            let (body, _, _) = body_of(p);
            let routed = broker
                .publish_raw(
                    p["exchange"].as_str().expect("exchange"),
                    p["routing_key"].as_str().expect("key"),
                    body.into_bytes(),
                )
                .expect("published");
            assert_eq!(routed, 1);
            expected += 1;
        }
    }
    eventually(60, "every Python body", || {
        got.lock().expect("lock").len() == expected
    })
    .await;
    listener.stop().await;
    within(listener.wait()).await;
    let got = got.lock().expect("lock").clone();
    for case in &cases {
        let name = case["name"].as_str().expect("name");
        let (_, _, python_msg) = body_of(&case["published"][0]);
        let n = got
            .iter()
            .find(|n| n.metadata.message_id.as_deref() == python_msg["message_id"].as_str())
            .unwrap_or_else(|| panic!("{name} received"));
        assert_eq!(n.payload, case["payload"], "{name}");
        assert_eq!(
            n.event_type,
            case["event_type"].as_str().expect("event type"),
            "{name}"
        );
        assert_eq!(
            n.publisher_id.as_deref(),
            case["publisher_id"].as_str(),
            "{name}"
        );
        assert_eq!(
            n.priority.as_upper(),
            case["priority"].as_str().expect("priority"),
            "{name}"
        );
        assert_eq!(
            n.metadata.timestamp.as_deref(),
            python_msg["timestamp"].as_str(),
            "{name}"
        );
        let mut want_ctxt = obj(&case["sent_context"]);
        want_ctxt.insert("client_timeout".into(), Value::Null);
        assert_eq!(n.ctxt.0, want_ctxt, "{name}: context plus client_timeout");
    }
}

fn behaviour() -> Value {
    load("tests/fixtures/notify_behaviour.json")
}

#[test]
fn timestamps_like_python_str_datetime() {
    let b = behaviour();
    for t in b["timestamps"].as_array().expect("timestamps") {
        let p: Vec<u32> = t["parts"]
            .as_array()
            .expect("parts")
            .iter()
            .map(|x| x.as_u64().and_then(|v| u32::try_from(v).ok()).expect("u32"))
            .collect();
        let year = i32::try_from(p[0]).expect("year");
        let dt = chrono::NaiveDate::from_ymd_opt(year, p[1], p[2])
            .and_then(|d| d.and_hms_micro_opt(p[3], p[4], p[5], p[6]))
            .expect("valid");
        assert_eq!(format_timestamp(dt), t["str"].as_str().expect("str"));
    }
}

#[test]
fn routing_decisions_like_pythons_routing_logic() {
    let b = behaviour();
    let cfg =
        RoutingConfig::from_yaml_str(b["routing"]["yaml"].as_str().expect("yaml")).expect("valid");
    for q in b["routing"]["queries"].as_array().expect("queries") {
        let event = q["event_type"].as_str().expect("event");
        let priority: Priority = q["priority"]
            .as_str()
            .expect("priority")
            .parse()
            .expect("priority");
        let mut got: Vec<&str> = cfg
            .drivers_for(event, priority)
            .iter()
            .map(|d| d.name())
            .collect();
        got.sort_unstable();
        let want: Vec<&str> = q["drivers"]
            .as_array()
            .expect("drivers")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(got, want, "{event} at {priority}");
    }
}

#[test]
fn filters_like_python() {
    let b = behaviour();
    let messages = b["filters"]["messages"].as_array().expect("messages");
    for case in b["filters"]["cases"].as_array().expect("cases") {
        let spec: NotificationFilterSpec =
            serde_json::from_value(case["filter"].clone()).expect("spec");
        let f = spec.build().expect("valid regexes");
        for (m, want) in messages
            .iter()
            .zip(case["results"].as_array().expect("results"))
        {
            let got = f.matches(
                &obj(&m["ctxt"]),
                &m["publisher_id"],
                &m["event_type"],
                &obj(&m["metadata"]),
                &m["payload"],
            );
            assert_eq!(Value::Bool(got), *want, "filter {} on {m}", case["filter"]);
        }
    }
}

/// The same cases through a dispatcher: an endpoint with the filter is
/// called exactly for the messages Python's filter lets through. Also a
/// non-string `event_type`, which no regex matches (not even `.*`), although
/// the endpoint sees it as empty.
#[tokio::test]
async fn dispatcher_filters_like_python() {
    let b = behaviour();
    let messages = b["filters"]["messages"].as_array().expect("messages");
    let mut cases = b["filters"]["cases"].as_array().expect("cases").clone();
    let odd = json!({"ctxt": {}, "publisher_id": 7, "event_type": ["x"],
                     "metadata": {"message_id": 1, "timestamp": "t"}, "payload": "p"});
    let mut messages = messages.clone();
    messages.push(odd);
    for case in &mut cases {
        if let Some(r) = case["results"].as_array_mut() {
            r.push(json!(false));
        }
    }
    cases.push(json!({"filter": {"event_type": ".*"}, "results": [true, true, true, true, false]}));
    cases.push(json!({"filter": {}, "results": [true, true, true, true, true]}));
    for case in &cases {
        let spec: NotificationFilterSpec =
            serde_json::from_value(case["filter"].clone()).expect("spec");
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let calls = seen.clone();
        let ep = Endpoint::new()
            .info(move |n: Notification| {
                calls.lock().expect("lock").push(n.event_type.clone());
                async {}
            })
            .filter(spec.build().expect("regex"));
        let d = NotificationDispatcher::new(vec![Arc::new(ep)], None);
        for (m, want) in messages
            .iter()
            .zip(case["results"].as_array().expect("results"))
        {
            let mut message = obj(&m["metadata"]);
            for key in ["publisher_id", "event_type", "payload"] {
                message.insert(key.into(), m[key].clone());
            }
            message.insert("priority".into(), json!("INFO"));
            seen.lock().expect("lock").clear();
            let result = d.dispatch(obj(&m["ctxt"]), &message).await;
            assert_eq!(result, NotificationResult::Handled);
            let called = !seen.lock().expect("lock").is_empty();
            assert_eq!(
                Value::Bool(called),
                *want,
                "filter {} on {m}",
                case["filter"]
            );
        }
    }
}

#[tokio::test]
async fn dispatch_order_and_results_like_python() {
    let b = behaviour();
    for s in b["dispatch"].as_array().expect("scenarios") {
        let name = s["name"].as_str().expect("name");
        let calls: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut endpoints: Vec<Arc<dyn NotificationEndpoint>> = Vec::new();
        for e in s["endpoints"].as_array().expect("endpoints") {
            let ep_name = e["name"].as_str().expect("endpoint name").to_owned();
            let answer = e["answer"].as_str().map(str::to_owned);
            let mut ep = Endpoint::new();
            for p in e["priorities"].as_array().expect("priorities") {
                let prio: Priority = p.as_str().expect("priority").parse().expect("priority");
                let (calls, ep_name, answer) = (calls.clone(), ep_name.clone(), answer.clone());
                ep = ep.on(prio, move |n: Notification| {
                    calls
                        .lock()
                        .expect("lock")
                        .push(format!("{ep_name}.{}", n.priority));
                    let answer = answer.clone();
                    async move {
                        match answer.as_deref() {
                            Some("requeue") => Ok(NotificationResult::Requeue),
                            Some("raise") => Err("boom"),
                            // None, "handled", or any other string: not a requeue.
                            _ => Ok(NotificationResult::Handled),
                        }
                    }
                });
            }
            if !e["filter"].is_null() {
                let spec: NotificationFilterSpec =
                    serde_json::from_value(e["filter"].clone()).expect("spec");
                ep = ep.filter(spec.build().expect("regex"));
            }
            endpoints.push(Arc::new(ep));
        }
        let d = NotificationDispatcher::new(endpoints, None);
        let want_prios: Vec<&str> = s["supported_priorities"]
            .as_array()
            .expect("prios")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let got_prios: Vec<&str> = d
            .supported_priorities()
            .iter()
            .map(|p| p.as_lower())
            .collect();
        assert_eq!(got_prios, want_prios, "{name}");
        let message = obj(
            &json!({"message_id": "m", "publisher_id": "p", "event_type": "ev",
                                  "priority": s["priority"], "payload": {}, "timestamp": "t"}),
        );
        let result = d.dispatch(JsonObject::new(), &message).await;
        assert_eq!(
            result == NotificationResult::Requeue,
            s["result"] == json!("requeue"),
            "{name}: result {result:?} vs Python {}",
            s["result"]
        );
        let want_calls: Vec<&str> = s["calls"]
            .as_array()
            .expect("calls")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(*calls.lock().expect("lock"), want_calls, "{name}");
    }
}

/// The `log` driver's text equals Python's `jsonutils.dumps(
/// mask_dict_password(message))`, at the level Python's logger method has
/// (`critical` → ERROR, and INFO where Python has no method).
#[test]
fn log_driver_text_like_python() {
    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};

    #[derive(Default, Clone)]
    struct Seen(Arc<Mutex<Vec<(tracing::Level, String)>>>);
    struct MessageVisitor(String);
    impl Visit for MessageVisitor {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                self.0 = format!("{value:?}");
            }
        }
    }
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Seen {
        fn on_event(&self, event: &tracing::Event<'_>, _: LayerContext<'_, S>) {
            if event.metadata().target() == "oslo.messaging.notification" {
                let mut v = MessageVisitor(String::new());
                event.record(&mut v);
                self.0
                    .lock()
                    .expect("lock")
                    .push((*event.metadata().level(), v.0));
            }
        }
    }
    let seen = Seen::default();
    let subscriber = tracing_subscriber::registry().with(seen.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let b = behaviour();
    let cases = b["log"].as_array().expect("log cases");
    rt.block_on(async {
        let (transport, _) = fake("fx-log").await;
        for case in cases {
            let m = &case["message"];
            let priority: Priority = case["priority"]
                .as_str()
                .expect("priority")
                .parse()
                .expect("priority");
            let text = m["timestamp"].as_str().expect("timestamp").to_owned();
            let clock =
                NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f").expect("timestamp");
            let id = m["message_id"].as_str().expect("id").to_owned();
            let mut builder = Notifier::builder(transport.clone())
                .driver(NotifierDriver::Log)
                .message_id_generator(move || id.clone())
                .clock(move || clock);
            if let Some(p) = m["publisher_id"].as_str() {
                builder = builder.publisher_id(p);
            }
            let notifier = builder.build();
            notifier
                .notify(
                    priority,
                    &Context::new(),
                    m["event_type"].as_str().expect("event"),
                    m["payload"].clone(),
                )
                .await
                .expect("logged");
        }
    });
    let seen = seen.0.lock().expect("lock").clone();
    assert_eq!(seen.len(), cases.len());
    for (case, (level, text)) in cases.iter().zip(seen) {
        // Python logs the message with the priority it was given, so
        // compare with the message text after fixing the priority field.
        let priority: Priority = case["priority"]
            .as_str()
            .expect("priority")
            .parse()
            .expect("priority");
        let python_text = case["text"].as_str().expect("text");
        let mut python_msg: JsonObject = serde_json::from_str(python_text).expect("python JSON");
        python_msg.insert("priority".into(), json!(priority.as_upper()));
        let want = envelope::to_python_json_string(&python_msg).expect("json");
        assert_eq!(text, want, "{}", case["priority"]);
        let want_level = match case["logger_method"].as_str() {
            Some("debug") => tracing::Level::DEBUG,
            Some("info") | None => tracing::Level::INFO,
            Some("warn") | Some("warning") => tracing::Level::WARN,
            Some("error") | Some("critical") => tracing::Level::ERROR,
            Some(other) => panic!("unexpected logger method {other}"),
        };
        assert_eq!(level, want_level, "{}", case["priority"]);
    }
}
