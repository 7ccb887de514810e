//! Interoperability with the real Python oslo.messaging 18.3.1 on RabbitMQ,
//! in both directions: om client → Python server, Python client → om
//! server, om notifier → Python listener, Python notifier → om listener.
//!
//! Needs `OM_RABBIT_URL` and `OM_PYTHON` (a venv with oslo.messaging
//! 18.3.1), which `cargo xtask test` provides.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
#[path = "../../om-driver-api/testkit/oslo_interop.rs"]
mod oslo_interop;

use common::{json_file, setup, unique, Peer};
use om::notify::{NotificationListener, Notifier, NotifierDriver};
use om::rpc::RpcClient;
use om::{Context, Error, Target, Transport};
use oslo_interop::{
    om_server, py_args, wait_seen, Collected, Seen, HEARTBEAT_MONITOR_S, HEARTBEAT_SLEEP_S,
};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

async fn transport(url: &str) -> Transport {
    om::transport(url).await.expect("rabbit transport opens")
}

/// A payload exercising unicode, nesting, nulls, numbers and booleans.
fn rich_payload() -> Value {
    json!({
        "unicode": "héllo wörld ☃ 😀 日本語",
        "nested": {"list": [1, 2.5, -3, {"deep": [null, true, false]}], "empty": {}, "empty_list": []},
        "null": null,
        "big": 9007199254740991i64,
        "quote\"key": "back\\slash\nnewline\ttab",
    })
}

/// A 1 MiB string payload.
fn mib_payload() -> Value {
    json!({"blob": "x".repeat(1024 * 1024)})
}

// ---------------------------------------------------------------------------
// om client → Python server
// ---------------------------------------------------------------------------

struct PyServer {
    peer_server: common::Running,
}

async fn python_server(peer: &Peer, url: &str, topic: &str, server: &str) -> PyServer {
    let s = peer
        .spawn(
            "rpc-server",
            &["--url", url, "--topic", topic, "--server", server],
        )
        .await;
    PyServer { peer_server: s }
}

/// Python `notify-send` of one notification in `driver`'s format, with
/// `extra` arguments.
async fn notify_send(peer: &Peer, url: &str, topic: &str, driver: &str, extra: &[&str]) -> Value {
    let mut args = vec!["--url", url, "--topic", topic, "--driver", driver];
    args.extend_from_slice(extra);
    peer.run("notify-send", &args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn om_client_calls_python_server() {
    let Some((url, peer)) = setup("OM_RABBIT_URL") else {
        return;
    };
    let topic = unique("interop_call");
    let mut srv = python_server(&peer, &url, &topic, "py1").await;
    let t = transport(&url).await;
    let client = RpcClient::builder(t.clone(), Target::new(&topic))
        .timeout(WAIT)
        .build();
    let ctx = Context::new()
        .with("user", "bob")
        .with("roles", json!(["admin"]))
        .with("nested", json!({"a": [1, 2]}));

    // call with arguments and context
    let got: Value = client
        .call(&ctx, "echo", json!({"a": 1, "b": "x"}))
        .await
        .expect("echo");
    assert_eq!(got, json!({"a": 1, "b": "x"}));
    let handled = srv.peer_server.next_line(WAIT).await;
    assert_eq!(handled["method"], "echo");
    assert_eq!(
        handled["ctxt"],
        json!({"user": "bob", "roles": ["admin"], "nested": {"a": [1, 2]}, "client_timeout": null})
    );

    // typed arguments and result
    #[derive(serde::Serialize)]
    struct Add {
        a: i64,
        b: i64,
    }
    let sum: i64 = client
        .call(&Context::new(), "add", Add { a: 40, b: 2 })
        .await
        .expect("add");
    assert_eq!(sum, 42);
    srv.peer_server.next_line(WAIT).await;

    // unicode, nested structures, nulls, and 1 MiB
    for payload in [rich_payload(), mib_payload()] {
        let got: Value = client
            .call(&Context::new(), "echo", payload.clone())
            .await
            .expect("echo payload");
        assert_eq!(got, payload);
        srv.peer_server.next_line(WAIT).await;
    }

    // the context comes back as the Python endpoint saw it
    let seen: Value = client
        .call(&ctx, "context", json!({}))
        .await
        .expect("context");
    assert_eq!(seen["user"], "bob");
    assert_eq!(seen["client_timeout"], Value::Null);
    srv.peer_server.next_line(WAIT).await;

    // namespace + version routing: ns_echo lives in namespace om_ns v2.3
    oslo_interop::om_client_reaches_python_namespace(&client).await;
    srv.peer_server.next_line(WAIT).await;

    srv.peer_server.finish().await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn om_client_gets_typed_python_errors() {
    let Some((url, peer)) = setup("OM_RABBIT_URL") else {
        return;
    };
    let topic = unique("interop_err");
    let srv = python_server(&peer, &url, &topic, "py1").await;
    let t = transport(&url).await;
    let client = RpcClient::builder(t.clone(), Target::new(&topic))
        .timeout(WAIT)
        .build();

    // a remote exception arrives typed; NoSuchMethod
    oslo_interop::om_client_gets_python_errors(&client).await;

    // UnsupportedVersion
    let v2 = client.prepare().version("2.0").build().expect("prepare");
    let err = v2
        .call::<_, Value>(&Context::new(), "echo", json!({}))
        .await
        .unwrap_err();
    let Error::Remote(remote) = &err else {
        panic!("expected a remote error, got {err:?}")
    };
    assert_eq!(remote.exc_type, "UnsupportedVersion");
    assert_eq!(
        remote.value,
        "Endpoint does not support RPC version 2.0. Attempted method: echo"
    );

    // a wrong keyword argument is a remote TypeError
    let err = client
        .call::<_, Value>(&Context::new(), "add", json!({"a": 1}))
        .await
        .unwrap_err();
    let Error::Remote(remote) = &err else {
        panic!("expected a remote error, got {err:?}")
    };
    assert_eq!(remote.exc_type, "TypeError");

    srv.peer_server.finish().await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn om_client_timeout_and_call_monitor_against_python() {
    let Some((url, peer)) = setup("OM_RABBIT_URL") else {
        return;
    };
    let topic = unique("interop_timeout");
    let srv = python_server(&peer, &url, &topic, "py1").await;
    let t = transport(&url).await;

    // a call that takes longer than its timeout fails at the timeout, not
    // when the method returns (10 s leaves room for a busy machine)
    let client = RpcClient::builder(t.clone(), Target::new(&topic))
        .timeout(Duration::from_secs(1))
        .build();
    let started = std::time::Instant::now();
    let err = client
        .call::<_, Value>(&Context::new(), "sleep", json!({"seconds": 10}))
        .await
        .unwrap_err();
    assert_eq!(err.oslo_name(), "MessagingTimeout", "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );

    // a call longer than call_monitor_timeout survives through heartbeats
    let client = RpcClient::builder(t.clone(), Target::new(&topic))
        .timeout(Duration::from_secs(60))
        .call_monitor_timeout(HEARTBEAT_MONITOR_S)
        .build();
    let started = std::time::Instant::now();
    let slept: f64 = client
        .call(
            &Context::new(),
            "sleep",
            json!({"seconds": HEARTBEAT_SLEEP_S}),
        )
        .await
        .expect("heartbeats keep it alive");
    assert_eq!(slept, HEARTBEAT_SLEEP_S);
    assert!(started.elapsed() >= Duration::from_secs_f64(HEARTBEAT_SLEEP_S));

    srv.peer_server.finish().await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn om_casts_fanout_and_server_targets_reach_python_servers() {
    let Some((url, peer)) = setup("OM_RABBIT_URL") else {
        return;
    };
    let topic = unique("interop_cast");
    let mut s1 = python_server(&peer, &url, &topic, "py1").await;
    let mut s2 = python_server(&peer, &url, &topic, "py2").await;
    let t = transport(&url).await;
    let client = RpcClient::builder(t.clone(), Target::new(&topic))
        .timeout(WAIT)
        .build();

    // a cast is handled once
    client
        .cast(&Context::new().with("k", 1), "cast_sink", json!({"n": 1}))
        .await
        .expect("cast");
    let mut handled = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    while handled.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no Python server handled the cast"
        );
        handled.extend(
            s1.peer_server
                .lines_for(Duration::from_millis(200), 1)
                .await,
        );
        handled.extend(
            s2.peer_server
                .lines_for(Duration::from_millis(200), 1)
                .await,
        );
    }
    // ... and neither handles it a second time
    handled.extend(s1.peer_server.lines_for(Duration::from_secs(1), 1).await);
    handled.extend(s2.peer_server.lines_for(Duration::from_secs(1), 1).await);
    assert_eq!(handled.len(), 1, "{handled:?}");
    assert_eq!(handled[0]["args"], json!({"n": 1}));
    assert_eq!(handled[0]["ctxt"]["k"], 1);

    // a fanout cast reaches every server once
    let fan = client.prepare().fanout(true).build().expect("prepare");
    fan.cast(&Context::new(), "cast_sink", json!({"fan": true}))
        .await
        .expect("fanout cast");
    let a = s1.peer_server.next_line(WAIT).await;
    let b = s2.peer_server.next_line(WAIT).await;
    assert_eq!(a["args"], json!({"fan": true}));
    assert_eq!(b["args"], json!({"fan": true}));

    // a server-targeted call reaches only that server
    let only2 = client.prepare().server("py2").build().expect("prepare");
    for i in 0..4 {
        let got: Value = only2
            .call(&Context::new(), "echo", json!({"i": i}))
            .await
            .expect("targeted call");
        assert_eq!(got, json!({"i": i}));
        let line = s2.peer_server.next_line(WAIT).await;
        assert_eq!(line["args"], json!({"i": i}));
    }
    assert!(
        s1.peer_server
            .lines_for(Duration::from_millis(500), 1)
            .await
            .is_empty(),
        "py1 must not see targeted calls"
    );

    s1.peer_server.finish().await;
    s2.peer_server.finish().await;
    t.cleanup().await;
}

// ---------------------------------------------------------------------------
// Python client → om server
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_calls_om_server() {
    let Some((url, peer)) = setup("OM_RABBIT_URL") else {
        return;
    };
    let topic = unique("interop_pycall");
    let t = transport(&url).await;
    let seen: Seen = Arc::default();
    let srv = om_server(&t, &topic, "om1", seen.clone()).await;

    // call with arguments and context
    let out = peer
        .run(
            "rpc-call",
            &py_args(
                &url,
                &topic,
                &[
                    "--method",
                    "echo",
                    "--args",
                    r#"{"a": 1, "b": "x"}"#,
                    "--context",
                    r#"{"user": "bob", "roles": ["admin"]}"#,
                ],
            ),
        )
        .await;
    assert_eq!(out["result"], json!({"a": 1, "b": "x"}), "{out}");
    {
        let seen = seen.lock().expect("lock");
        let (_, ctx, args) = seen.last().expect("om handled the call");
        assert_eq!(args, &json!({"a": 1, "b": "x"}));
        assert_eq!(
            ctx,
            &json!({"user": "bob", "roles": ["admin"], "client_timeout": null})
        );
    }

    // unicode, nested, nulls, 1 MiB (through a file: too big for argv)
    for payload in [rich_payload(), mib_payload()] {
        let (_tmp, arg) = json_file(&payload);
        let out = peer
            .run(
                "rpc-call",
                &py_args(&url, &topic, &["--method", "echo", "--args", &arg]),
            )
            .await;
        assert_eq!(out["result"], payload);
    }

    // namespace and version
    oslo_interop::python_client_reaches_om_namespace(&peer, &url, &topic).await;

    // a 1.3 client reaches the 1.5 endpoint
    let out = peer
        .run(
            "rpc-call",
            &py_args(
                &url,
                &topic,
                &["--method", "echo", "--version", "1.3", "--args", "{}"],
            ),
        )
        .await;
    assert_eq!(out["result"], json!({}), "{out}");

    srv.stop().await.expect("stop");
    srv.wait().await.expect("wait");
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_gets_python_exceptions_from_om_server() {
    let Some((url, peer)) = setup("OM_RABBIT_URL") else {
        return;
    };
    let topic = unique("interop_pyerr");
    let t = transport(&url).await;
    let srv = om_server(&t, &topic, "om1", Arc::default()).await;

    // a handler's ValueError is re-created as a Python ValueError;
    // NoSuchMethod arrives as RemoteError with the dispatcher's class
    oslo_interop::python_client_gets_om_errors(&peer, &url, &topic).await;

    // UnsupportedVersion arrives as RemoteError with the dispatcher's class
    let out = peer
        .run(
            "rpc-call",
            &py_args(&url, &topic, &["--method", "echo", "--version", "2.0"]),
        )
        .await;
    assert_eq!(out["error"]["exc_type"], "UnsupportedVersion", "{out}");
    assert_eq!(
        out["error"]["value"],
        "Endpoint does not support RPC version 2.0. Attempted method: echo"
    );

    // allowed_remote_exmods (test-cases E 49, E 50): the class of an
    // allowed module is re-raised as `<class>_Remote`; a class the module
    // lacks, or a module not allowed, gives RemoteError. om's client
    // classifies by module alone (RemoteException), so only Python can
    // tell the two allowed cases apart.
    let fail = |class: &'static str, allow: bool| {
        let (peer, url, topic) = (&peer, &url, &topic);
        async move {
            let args = format!(
                r#"{{"message": "gone", "module": "oslo_messaging.exceptions", "class": "{class}"}}"#
            );
            let mut extra = vec!["--method", "fail", "--args", &args];
            if allow {
                extra.extend(["--allowed-exmods", "oslo_messaging.exceptions"]);
            }
            peer.run("rpc-call", &py_args(url, topic, &extra)).await
        }
    };
    let out = fail("MessagingException", true).await;
    assert_eq!(out["error"]["class"], "MessagingException_Remote", "{out}");
    assert_eq!(out["error"]["module"], "oslo_messaging.exceptions_Remote");
    let message = out["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("gone\n"),
        "message and traceback: {out}"
    );
    let out = fail("MessagingException", false).await;
    assert_eq!(out["error"]["class"], "RemoteError", "not allowed: {out}");
    assert_eq!(out["error"]["exc_type"], "MessagingException");
    assert_eq!(out["error"]["value"], "gone");
    let out = fail("NoSuchError", true).await;
    assert_eq!(out["error"]["class"], "RemoteError", "missing class: {out}");
    assert_eq!(out["error"]["exc_type"], "NoSuchError");

    // a private method is refused like Python's default access policy
    let out = peer
        .run(
            "rpc-call",
            &py_args(&url, &topic, &["--method", "_private"]),
        )
        .await;
    assert_eq!(out["error"]["exc_type"], "NoSuchMethod", "{out}");

    srv.stop().await.expect("stop");
    srv.wait().await.expect("wait");
    t.cleanup().await;
}

/// test-cases F 72: with `kombu_compression=gzip` each side writes zlib
/// bodies that the other, configured without it, reads: a Python client
/// calling an om server and an om client calling a Python server, with
/// 1 MiB payloads (the option is set in each sender's URL query).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_bodies_both_ways() {
    let Some((url, peer)) = setup("OM_RABBIT_URL") else {
        return;
    };
    let mut gzip = om::TransportUrl::parse(&url).expect("url");
    gzip.query.insert("kombu_compression".into(), "gzip".into());
    let gzip = gzip.to_string_with_secrets();
    let big = mib_payload();

    // Python (gzip) → om (plain), and om's plain reply back.
    let topic = unique("interop_gzip_om");
    let t = transport(&url).await;
    let srv = om_server(&t, &topic, "om1", Arc::default()).await;
    let (_tmp, arg) = json_file(&big);
    let out = peer
        .run(
            "rpc-call",
            &py_args(&gzip, &topic, &["--method", "echo", "--args", &arg]),
        )
        .await;
    assert!(
        out["result"] == big,
        "the compressed 1 MiB call came back: {}",
        out.get("error").unwrap_or(&Value::Null)
    );
    srv.stop().await.expect("stop");
    srv.wait().await.expect("wait");

    // om (gzip) → Python (plain), and Python's plain reply back.
    let topic = unique("interop_gzip_py");
    let mut py = python_server(&peer, &url, &topic, "py1").await;
    let compressed = transport(&gzip).await;
    let client = RpcClient::builder(compressed.clone(), Target::new(&topic))
        .timeout(WAIT)
        .build();
    let got: Value = client
        .call(&Context::new(), "echo", big.clone())
        .await
        .expect("a compressed call to Python");
    assert!(got == big, "Python echoed the 1 MiB payload");
    py.peer_server.next_line(WAIT).await;
    py.peer_server.finish().await;
    compressed.cleanup().await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_timeout_and_heartbeats_with_om_server() {
    let Some((url, peer)) = setup("OM_RABBIT_URL") else {
        return;
    };
    let topic = unique("interop_pyhb");
    let t = transport(&url).await;
    let srv = om_server(&t, &topic, "om1", Arc::default()).await;

    // the Python client times out on a slow om method
    let out = peer
        .run(
            "rpc-call",
            &[
                "--url",
                &url,
                "--topic",
                &topic,
                "--timeout",
                "1",
                "--method",
                "sleep",
                "--args",
                r#"{"seconds": 3}"#,
            ],
        )
        .await;
    assert_eq!(out["error"]["class"], "MessagingTimeout", "{out}");

    // om's heartbeats keep a Python call with call_monitor_timeout=2 alive for 5 s
    oslo_interop::python_call_survives_on_om_heartbeats(&peer, &url, &topic).await;

    srv.stop().await.expect("stop");
    srv.wait().await.expect("wait");
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_casts_fanout_and_server_targets_reach_om_servers() {
    let Some((url, peer)) = setup("OM_RABBIT_URL") else {
        return;
    };
    let topic = unique("interop_pycast");
    let t = transport(&url).await;
    let seen: Seen = Arc::default();
    let a = om_server(&t, &topic, "om1", seen.clone()).await;
    let b = om_server(&t, &topic, "om2", seen.clone()).await;

    // one cast, handled once
    let out = peer
        .run(
            "rpc-cast",
            &py_args(
                &url,
                &topic,
                &["--method", "cast_sink", "--args", r#"{"n": 1}"#],
            ),
        )
        .await;
    assert_eq!(out["result"], Value::Null, "{out}");
    let got = wait_seen(&seen, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seen.lock().expect("lock").len(), 1, "{got:?}");

    // fanout: both om servers
    seen.lock().expect("lock").clear();
    peer.run(
        "rpc-cast",
        &py_args(
            &url,
            &topic,
            &[
                "--fanout",
                "--method",
                "cast_sink",
                "--args",
                r#"{"fan": 1}"#,
            ],
        ),
    )
    .await;
    let got = wait_seen(&seen, 2).await;
    let mut servers: Vec<String> = got.iter().map(|(s, _, _)| s.clone()).collect();
    servers.sort();
    assert_eq!(servers, vec!["om1", "om2"]);

    // server-targeted call: only om2
    seen.lock().expect("lock").clear();
    for i in 0..3 {
        let args = format!(r#"{{"i": {i}}}"#);
        let out = peer
            .run(
                "rpc-call",
                &py_args(
                    &url,
                    &topic,
                    &["--server", "om2", "--method", "echo", "--args", &args],
                ),
            )
            .await;
        assert_eq!(out["result"], json!({"i": i}), "{out}");
    }
    let got = wait_seen(&seen, 3).await;
    assert!(got.iter().all(|(s, _, _)| s == "om2"), "{got:?}");

    for s in [a, b] {
        s.stop().await.expect("stop");
        s.wait().await.expect("wait");
    }
    t.cleanup().await;
}

// ---------------------------------------------------------------------------
// Notifications, both ways, both body formats, pools
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn om_notifier_to_python_listener() {
    let Some((url, peer)) = setup("OM_RABBIT_URL") else {
        return;
    };
    let t = transport(&url).await;
    for driver in [NotifierDriver::MessagingV2, NotifierDriver::Messaging] {
        let topic = unique("interop_notif");
        let mut listener = peer
            .spawn(
                "notify-listen",
                &[
                    "--url",
                    &url,
                    "--topic",
                    &topic,
                    "--count",
                    "3",
                    "--timeout",
                    "60",
                ],
            )
            .await;
        let notifier = Notifier::builder(t.clone())
            .publisher_id("compute.om1")
            .driver(driver.clone())
            .topics([topic.as_str()])
            .build();
        let ctx = Context::new().with("user", "u1").with("project_id", "p1");
        notifier
            .info(&ctx, "compute.instance.create.end", json!({"id": 1}))
            .await
            .expect("info");
        notifier
            .warn(&ctx, "compute.instance.rich", rich_payload())
            .await
            .expect("warn");
        notifier
            .error(&Context::new(), "compute.instance.big", mib_payload())
            .await
            .expect("error");
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(listener.next_line(WAIT).await);
        }
        got.sort_by_key(|v| v["event_type"].as_str().unwrap_or("").to_owned());
        assert_eq!(got[0]["event_type"], "compute.instance.big");
        assert_eq!(got[0]["priority"], "error");
        assert_eq!(got[0]["payload"], mib_payload());
        assert_eq!(got[1]["event_type"], "compute.instance.create.end");
        assert_eq!(got[1]["priority"], "info");
        assert_eq!(got[1]["publisher_id"], "compute.om1");
        assert_eq!(got[1]["payload"], json!({"id": 1}));
        assert_eq!(got[1]["ctxt"]["user"], "u1");
        assert_eq!(got[1]["ctxt"]["project_id"], "p1");
        let ts = got[1]["metadata"]["timestamp"].as_str().unwrap_or("");
        assert!(
            ts.len() == 19 || ts.len() == 26,
            "timestamp {ts:?} must look like 2026-11-23 15:34:52.905151"
        );
        assert_eq!(&ts[10..11], " ");
        assert!(got[1]["metadata"]["message_id"]
            .as_str()
            .is_some_and(|s| s.len() == 36));
        assert_eq!(got[2]["priority"], "warn");
        assert_eq!(got[2]["payload"], rich_payload());
        let done = listener.next_line(WAIT).await;
        assert_eq!(done["received"], 3);
        listener.finish().await;
    }
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_notifier_to_om_listener() {
    let Some((url, peer)) = setup("OM_RABBIT_URL") else {
        return;
    };
    let t = transport(&url).await;
    for driver in ["messagingv2", "messaging"] {
        let topic = unique("interop_pynotif");
        let got = Collected::default();
        let listener = NotificationListener::builder(t.clone())
            .target(Target::new(&topic))
            .endpoint(got.endpoint())
            .build()
            .expect("listener builds");
        listener.start().await.expect("listener starts");

        oslo_interop::python_notification_reaches_om(
            &peer,
            &url,
            &topic,
            driver,
            r#"{"id": 2}"#,
            &json!({"id": 2}),
            &got,
            String::new,
        )
        .await;
        // test-cases G 93: the RabbitMQ listener's context has the sender's
        // keys and `client_timeout: null`, as Python's.
        let ctxt = got.0.lock().unwrap()[0].ctxt.clone();
        assert_eq!(
            ctxt.get("client_timeout"),
            Some(&Value::Null),
            "{driver}: {ctxt:?}"
        );
        let (_tmp, arg) = json_file(&mib_payload());
        notify_send(
            &peer,
            &url,
            &topic,
            driver,
            &[
                "--priority",
                "info",
                "--event-type",
                "big",
                "--payload",
                &arg,
            ],
        )
        .await;
        let (_tmp2, arg2) = json_file(&rich_payload());
        notify_send(
            &peer,
            &url,
            &topic,
            driver,
            &[
                "--priority",
                "sample",
                "--event-type",
                "rich",
                "--payload",
                &arg2,
            ],
        )
        .await;
        // Python values JSON cannot hold: kombu marks them in a 1.0 body,
        // oslo.serialization turns them into strings in a 2.0 one; om's
        // endpoint sees the 2.0 strings either way.
        notify_send(
            &peer,
            &url,
            &topic,
            driver,
            &[
                "--event-type",
                "typed",
                "--payload",
                r#"{"n": 1}"#,
                "--typed",
                r#"{"at": ["datetime", "2024-01-02T03:04:05.000006"],
                "whole": ["datetime", "2024-01-02T03:04:05"],
                "aware": ["datetime", "2024-01-02T03:04:05.5+02:00"],
                "day": ["date", "2024-01-02"],
                "id": ["uuid", "0123456789abcdef0123456789abcdef"],
                "amount": ["decimal", "1.50"]}"#,
            ],
        )
        .await;

        let mut got = got.wait(4).await;
        assert_eq!(got.len(), 4, "{driver}: {got:?}");
        got.sort_by(|a, b| a.event_type.cmp(&b.event_type));
        assert_eq!(got[0].event_type, "big");
        assert_eq!(got[0].payload, mib_payload());
        // got[1] is the one checked field by field above
        assert_eq!(got[1].event_type, "compute.instance.delete.start");
        assert_eq!(got[2].payload, rich_payload());
        assert_eq!(got[3].event_type, "typed");
        assert_eq!(
            got[3].payload,
            json!({
                "n": 1,
                "at": "2024-01-02T03:04:05.000006",
                "whole": "2024-01-02T03:04:05.000000",
                "aware": "2024-01-02T03:04:05.500000",
                "day": "2024-01-02",
                "id": "01234567-89ab-cdef-0123-456789abcdef",
                "amount": "1.50",
            }),
            "{driver}"
        );

        listener.stop().await;
        listener.wait().await;
    }
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_are_shared_between_python_and_om() {
    let Some((url, peer)) = setup("OM_RABBIT_URL") else {
        return;
    };
    let t = transport(&url).await;
    let topic = unique("interop_pools");
    let pool_a = unique("poolA");
    let pool_b = unique("poolB");

    // om listener in pool B, Python listener in pool A: each gets every message
    let om_b = Collected::default();
    let listener_b = NotificationListener::builder(t.clone())
        .target(Target::new(&topic))
        .pool(&pool_b)
        .endpoint(om_b.endpoint())
        .build()
        .expect("listener");
    listener_b.start().await.expect("start");
    let mut py_a = peer
        .spawn(
            "notify-listen",
            &[
                "--url",
                &url,
                "--topic",
                &topic,
                "--pool",
                &pool_a,
                "--count",
                "4",
                "--timeout",
                "60",
            ],
        )
        .await;

    let notifier = Notifier::builder(t.clone())
        .publisher_id("om")
        .driver(NotifierDriver::MessagingV2)
        .topics([topic.as_str()])
        .build();
    for i in 0..4 {
        notifier
            .info(&Context::new(), "pool.test", json!({"i": i}))
            .await
            .expect("info");
    }
    let got_b = om_b.wait(4).await;
    assert_eq!(got_b.len(), 4);
    let mut py_got = Vec::new();
    for _ in 0..4 {
        py_got.push(py_a.next_line(WAIT).await["payload"]["i"].clone());
    }
    py_got.sort_by_key(|v| v.as_i64());
    assert_eq!(py_got, vec![json!(0), json!(1), json!(2), json!(3)]);
    py_a.finish().await;

    // Python listener and om listener in the same pool split the messages
    let shared = unique("poolS");
    let om_s = Collected::default();
    let listener_s = NotificationListener::builder(t.clone())
        .target(Target::new(&topic))
        .pool(&shared)
        .endpoint(om_s.endpoint())
        .build()
        .expect("listener");
    listener_s.start().await.expect("start");
    let mut py_s = peer
        .spawn(
            "notify-listen",
            &[
                "--url",
                &url,
                "--topic",
                &topic,
                "--pool",
                &shared,
                "--count",
                "40",
                "--timeout",
                "8",
            ],
        )
        .await;
    for i in 0..40 {
        notifier
            .info(&Context::new(), "pool.split", json!({"i": i}))
            .await
            .expect("info");
    }
    let mut py_count = 0;
    loop {
        let line = py_s.next_line(WAIT).await;
        if line.get("event") == Some(&json!("done")) {
            break;
        }
        py_count += 1;
    }
    let om_count = om_s
        .0
        .lock()
        .expect("lock")
        .iter()
        .filter(|n| n.event_type == "pool.split")
        .count();
    assert_eq!(py_count + om_count, 40, "python {py_count} + om {om_count}");
    assert!(
        py_count > 0 && om_count > 0,
        "python {py_count}, om {om_count}: both pool members must get some"
    );
    py_s.finish().await;

    for l in [listener_b, listener_s] {
        l.stop().await;
        l.wait().await;
    }
    t.cleanup().await;
}
