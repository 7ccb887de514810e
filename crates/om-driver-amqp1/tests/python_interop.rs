//! Wire compatibility of om's AMQP 1.0 driver with the real Python
//! oslo.messaging AMQP 1.0 driver (14.9.3, the last series that ships it),
//! both ways, through the in-process router fixture (tests/support/router.rs:
//! routable addressing, dynamic reply sources, anonymous relay, multicast):
//!
//! * om client → Python server: call with arguments and context, the
//!   context echoed back, namespace/version routing, a Python `ValueError`
//!   that arrives as a typed remote error, casts to the topic and to one
//!   server, a fanout cast that every Python server gets;
//! * Python client → om server: the same the other way round (om's handler
//!   error re-created as a Python `ValueError`);
//! * call-monitor heartbeats both ways (a call longer than its
//!   `call_monitor_timeout` survives on the other side's heartbeats);
//! * om notifier → Python listener and Python notifier → om listener, in
//!   both notification formats (`messagingv2` and `messaging`).
//!
//! Needs `OM_PYTHON_AMQP1`, a Python with `oslo.messaging[amqp1]==14.9.3`
//! (`cargo xtask test` makes `.om/venv-amqp1` and exports it; without the
//! variable that venv is used when it exists). Without such a Python each
//! test prints SKIPPED and passes, unless `OM_REQUIRE_PYTHON_AMQP1=1` (set by
//! `cargo xtask test`): then it fails.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

#[path = "../../om-driver-api/testkit/oslo_interop.rs"]
mod oslo_interop;
mod support;

use om_driver_api::om_core::{Context, Target, Value};
use om_driver_api::testkit::python_peer::PythonPeer;
use om_driver_api::Transport;
use om_notify::{NotificationListener, Notifier, NotifierDriver};
use om_rpc::RpcClient;
use oslo_interop::{om_server, py_args, wait_seen, Collected, Seen};
use serde_json::json;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use support::router::Router;
use support::uniq;

/// Credentials of the fixture router (SASL PLAIN, as a deployment would use).
const USER: (&str, &str) = ("om", "secret");
/// Upper bound for something that must happen (not a timing assertion).
const WAIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// The Python peer
// ---------------------------------------------------------------------------

fn required() -> bool {
    matches!(
        std::env::var("OM_REQUIRE_PYTHON_AMQP1")
            .ok()
            .as_deref()
            .map(str::trim),
        Some("1") | Some("true") | Some("yes")
    )
}

/// The Python with the AMQP 1.0 driver, or `None` (SKIPPED) when there is
/// none and `OM_REQUIRE_PYTHON_AMQP1` is not set.
fn python(test: &str) -> Option<PythonPeer> {
    let from_env = std::env::var("OM_PYTHON_AMQP1")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .map(PathBuf::from);
    let default = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.om/venv-amqp1/bin/python");
    let py = from_env.or_else(|| default.exists().then_some(default));
    let Some(py) = py else {
        assert!(
            !required(),
            "{test}: OM_REQUIRE_PYTHON_AMQP1=1 but OM_PYTHON_AMQP1 is not set and .om/venv-amqp1 does not exist (run `cargo xtask test`)"
        );
        println!("{test}: SKIPPED (OM_PYTHON_AMQP1 not set)");
        return None;
    };
    let ok = std::process::Command::new(&py)
        .args([
            "-c",
            "import pyngus, proton, oslo_messaging._drivers.impl_amqp1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !required(),
            "{test}: OM_REQUIRE_PYTHON_AMQP1=1 but {} lacks oslo.messaging's AMQP 1.0 driver (pip install 'oslo.messaging[amqp1]==14.9.3')",
            py.display()
        );
        println!(
            "{test}: SKIPPED ({} has no oslo.messaging AMQP 1.0 driver)",
            py.display()
        );
        return None;
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/peer_amqp1.py");
    Some(PythonPeer::new(py, script).limit(WAIT))
}

// ---------------------------------------------------------------------------
// Common set-up
// ---------------------------------------------------------------------------

async fn setup(test: &str) -> Option<(Router, String, PythonPeer, Transport)> {
    support::init_logs();
    let peer = python(test)?;
    let router = Router::start(Some(USER)).await;
    let url = router.url(Some(USER));
    om_driver_amqp1::register();
    let t = Transport::from_url(&url)
        .await
        .expect("amqp transport opens");
    Some((router, url, peer, t))
}

/// The address the routable addressing mode gives fanout casts on `topic`
/// (both drivers; the fixture multicasts it).
fn fanout_address(topic: &str) -> String {
    format!("openstack.org/om/rpc/multicast/openstack/{topic}")
}

/// Waits until `n` receivers are attached to `address` (a multicast copy
/// only goes to receivers attached when it is routed).
async fn wait_consumers(router: &Router, address: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while router.consumers(address) < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} receivers never attached to {address}: {:?}",
            router.attached()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------
// om client → Python server
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn om_client_calls_python_server() {
    let Some((_router, url, peer, t)) = setup("om_client_calls_python_server").await else {
        return;
    };
    let topic = uniq("py_srv");
    let mut srv = peer
        .spawn(
            "rpc-server",
            &["--url", &url, "--topic", &topic, "--server", "py1"],
        )
        .await;
    let client = RpcClient::builder(t.clone(), Target::new(&topic))
        .timeout(WAIT)
        .build();
    let ctx = Context::new()
        .with("user", "bob")
        .with("roles", json!(["admin"]))
        .with("nested", json!({"a": [1, 2], "é": "ü"}));

    // arguments and context reach the Python endpoint; its result comes back
    let got: Value = client
        .call(
            &ctx,
            "echo",
            json!({"a": 1, "b": "x", "u": "héllo ☃", "n": null}),
        )
        .await
        .expect("echo");
    assert_eq!(got, json!({"a": 1, "b": "x", "u": "héllo ☃", "n": null}));
    let handled = srv.next_line(WAIT).await;
    assert_eq!(handled["method"], "echo");
    assert_eq!(handled["server"], "py1");
    assert_eq!(
        handled["args"],
        json!({"a": 1, "b": "x", "u": "héllo ☃", "n": null})
    );
    assert_eq!(handled["ctxt"]["user"], "bob");
    assert_eq!(handled["ctxt"]["roles"], json!(["admin"]));
    assert_eq!(handled["ctxt"]["nested"], json!({"a": [1, 2], "é": "ü"}));

    // typed arguments and result
    let sum: i64 = client
        .call(&Context::new(), "add", json!({"a": 40, "b": 2}))
        .await
        .expect("add");
    assert_eq!(sum, 42);
    assert_eq!(srv.next_line(WAIT).await["args"], json!({"a": 40, "b": 2}));

    // the context as the Python endpoint saw it, returned as the result
    let seen: Value = client
        .call(&ctx, "context", json!({}))
        .await
        .expect("context");
    assert_eq!(seen["user"], "bob");
    assert_eq!(seen["roles"], json!(["admin"]));
    assert_eq!(seen["nested"], json!({"a": [1, 2], "é": "ü"}));
    srv.next_line(WAIT).await;

    // namespace + version: ns_echo lives in namespace om_ns, version 2.3
    oslo_interop::om_client_reaches_python_namespace(&client).await;
    srv.next_line(WAIT).await;

    srv.finish().await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn om_client_gets_typed_python_exceptions() {
    let Some((_router, url, peer, t)) = setup("om_client_gets_typed_python_exceptions").await
    else {
        return;
    };
    let topic = uniq("py_err");
    let mut srv = peer
        .spawn(
            "rpc-server",
            &["--url", &url, "--topic", &topic, "--server", "py1"],
        )
        .await;
    let client = RpcClient::builder(t.clone(), Target::new(&topic).with_server("py1"))
        .timeout(WAIT)
        .build();

    oslo_interop::om_client_gets_python_errors(&client).await;
    // the Python server handled `fail` (`nosuch` never reaches an endpoint)
    assert_eq!(
        srv.next_line(WAIT).await["args"],
        json!({"message": "bad value"})
    );

    srv.finish().await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn om_casts_and_fanout_reach_python_servers() {
    let Some((router, url, peer, t)) = setup("om_casts_and_fanout_reach_python_servers").await
    else {
        return;
    };
    let topic = uniq("py_cast");
    let mut py1 = peer
        .spawn(
            "rpc-server",
            &["--url", &url, "--topic", &topic, "--server", "py1"],
        )
        .await;
    let mut py2 = peer
        .spawn(
            "rpc-server",
            &["--url", &url, "--topic", &topic, "--server", "py2"],
        )
        .await;
    wait_consumers(&router, &fanout_address(&topic), 2).await;
    let client = RpcClient::builder(t.clone(), Target::new(&topic))
        .timeout(WAIT)
        .build();
    let ctx = Context::new().with("user", "caster");

    // a cast to one server
    client
        .prepare()
        .server("py2")
        .build()
        .expect("prepare")
        .cast(&ctx, "cast_sink", json!({"to": "py2"}))
        .await
        .expect("cast to py2");
    let got = py2.next_line(WAIT).await;
    assert_eq!(got["method"], "cast_sink");
    assert_eq!(got["args"], json!({"to": "py2"}));
    assert_eq!(got["ctxt"]["user"], "caster");

    // a fanout cast: every server gets it
    client
        .prepare()
        .fanout(true)
        .build()
        .expect("prepare")
        .cast(&ctx, "cast_sink", json!({"fan": 1}))
        .await
        .expect("fanout cast");
    for (name, srv) in [("py1", &mut py1), ("py2", &mut py2)] {
        let got = srv.next_line(WAIT).await;
        assert_eq!(got["server"], name);
        assert_eq!(got["args"], json!({"fan": 1}), "{name}");
        assert_eq!(got["ctxt"]["user"], "caster");
    }

    // a cast to the topic: exactly one of them (then a call to each server
    // shows what each one saw next)
    client
        .cast(&ctx, "cast_sink", json!({"any": 1}))
        .await
        .expect("cast to the topic");
    for name in ["py1", "py2"] {
        let echoed: Value = client
            .prepare()
            .server(name)
            .build()
            .expect("prepare")
            .call(&Context::new(), "echo", json!({"marker": name}))
            .await
            .expect("echo");
        assert_eq!(echoed, json!({"marker": name}));
    }
    let mut seen = Vec::new();
    for srv in [&mut py1, &mut py2] {
        loop {
            let l = srv.next_line(WAIT).await;
            if l["method"] == "echo" {
                break;
            }
            seen.push(l);
        }
    }
    assert_eq!(seen.len(), 1, "the topic cast is handled once: {seen:?}");
    assert_eq!(seen[0]["args"], json!({"any": 1}));

    py1.finish().await;
    py2.finish().await;
    t.cleanup().await;
}

// ---------------------------------------------------------------------------
// Python client → om server
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_calls_om_server() {
    let Some((_router, url, peer, t)) = setup("python_client_calls_om_server").await else {
        return;
    };
    let topic = uniq("om_srv");
    let seen: Seen = Arc::default();
    let srv = om_server(&t, &topic, "om1", seen.clone()).await;

    // arguments and context reach the om endpoint; its result comes back
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
                    r#"{"a": 1, "b": "x", "u": "h\u00e9llo \u2603", "n": null}"#,
                    "--context",
                    r#"{"user": "bob", "roles": ["admin"]}"#,
                ],
            ),
        )
        .await;
    assert_eq!(
        out["result"],
        json!({"a": 1, "b": "x", "u": "héllo ☃", "n": null}),
        "{out}"
    );
    {
        let seen = seen.lock().unwrap();
        let (server, ctx, args) = seen.last().expect("om handled the call");
        assert_eq!(server, "om1");
        assert_eq!(args, &json!({"a": 1, "b": "x", "u": "héllo ☃", "n": null}));
        assert_eq!(ctx["user"], "bob");
        assert_eq!(ctx["roles"], json!(["admin"]));
    }

    // the context as om saw it, returned to Python
    let out = peer
        .run(
            "rpc-call",
            &py_args(
                &url,
                &topic,
                &[
                    "--server",
                    "om1",
                    "--method",
                    "context",
                    "--context",
                    r#"{"user": "alice", "project_id": "p1"}"#,
                ],
            ),
        )
        .await;
    assert_eq!(out["result"]["user"], "alice", "{out}");
    assert_eq!(out["result"]["project_id"], "p1", "{out}");

    // namespace and version
    oslo_interop::python_client_reaches_om_namespace(&peer, &url, &topic).await;

    srv.stop().await.expect("stop");
    srv.wait().await.expect("wait");
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_gets_typed_exceptions_from_om_server() {
    let Some((_router, url, peer, t)) =
        setup("python_client_gets_typed_exceptions_from_om_server").await
    else {
        return;
    };
    let topic = uniq("om_err");
    let srv = om_server(&t, &topic, "om1", Arc::default()).await;

    oslo_interop::python_client_gets_om_errors(&peer, &url, &topic).await;

    srv.stop().await.expect("stop");
    srv.wait().await.expect("wait");
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_casts_and_fanout_reach_om_servers() {
    let Some((router, url, peer, t)) = setup("python_casts_and_fanout_reach_om_servers").await
    else {
        return;
    };
    let topic = uniq("om_cast");
    let seen: Seen = Arc::default();
    let a = om_server(&t, &topic, "om1", seen.clone()).await;
    let b = om_server(&t, &topic, "om2", seen.clone()).await;
    wait_consumers(&router, &fanout_address(&topic), 2).await;

    // a cast to one server
    let out = peer
        .run(
            "rpc-cast",
            &py_args(
                &url,
                &topic,
                &[
                    "--server",
                    "om2",
                    "--method",
                    "cast_sink",
                    "--args",
                    r#"{"to": "om2"}"#,
                    "--context",
                    r#"{"user": "pycaster"}"#,
                ],
            ),
        )
        .await;
    assert_eq!(out["result"], Value::Null, "{out}");
    let got = wait_seen(&seen, 1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "om2");
    assert_eq!(got[0].1["user"], "pycaster");
    assert_eq!(got[0].2, json!({"to": "om2"}));

    // fanout: both om servers
    seen.lock().unwrap().clear();
    let out = peer
        .run(
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
    assert_eq!(out["result"], Value::Null, "{out}");
    let got = wait_seen(&seen, 2).await;
    let mut servers: Vec<&str> = got.iter().map(|(s, _, _)| s.as_str()).collect();
    servers.sort();
    assert_eq!(servers, ["om1", "om2"], "{got:?}");
    assert!(got.iter().all(|(_, _, args)| args == &json!({"fan": 1})));

    // a cast to the topic: handled once (a call to each server afterwards
    // is answered only once every server has seen what came before it)
    seen.lock().unwrap().clear();
    peer.run(
        "rpc-cast",
        &py_args(
            &url,
            &topic,
            &["--method", "cast_sink", "--args", r#"{"any": 1}"#],
        ),
    )
    .await;
    let got = wait_seen(&seen, 1).await;
    assert_eq!(got[0].2, json!({"any": 1}));
    for name in ["om1", "om2"] {
        let out = peer
            .run(
                "rpc-call",
                &py_args(
                    &url,
                    &topic,
                    &["--server", name, "--method", "echo", "--args", "{}"],
                ),
            )
            .await;
        assert_eq!(out["result"], json!({}), "{out}");
    }
    let got = seen.lock().unwrap().clone();
    let casts = got
        .iter()
        .filter(|(_, _, a)| a == &json!({"any": 1}))
        .count();
    assert_eq!(casts, 1, "the topic cast is handled once: {got:?}");

    for s in [a, b] {
        s.stop().await.expect("stop");
        s.wait().await.expect("wait");
    }
    t.cleanup().await;
}

/// Call-monitor heartbeats (body-less messages on the reply address) both
/// ways: a call that outlives its `call_monitor_timeout` survives because
/// the other side's heartbeats arrive and are understood.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_monitor_heartbeats_both_ways() {
    let Some((router, url, peer, t)) = setup("call_monitor_heartbeats_both_ways").await else {
        return;
    };
    // om client, Python server: Python sends the heartbeats
    let topic = uniq("py_hb");
    let mut srv = peer
        .spawn(
            "rpc-server",
            &["--url", &url, "--topic", &topic, "--server", "py1"],
        )
        .await;
    let client = RpcClient::builder(t.clone(), Target::new(&topic))
        .timeout(WAIT)
        .call_monitor_timeout(oslo_interop::HEARTBEAT_MONITOR_S)
        .build();
    let seconds = oslo_interop::HEARTBEAT_SLEEP_S;
    let slept: f64 = client
        .call(&Context::new(), "sleep", json!({ "seconds": seconds }))
        .await
        .expect("Python's heartbeats keep the call alive");
    assert_eq!(slept, seconds);
    let handled = srv.next_line(WAIT).await;
    assert_eq!(handled["method"], "sleep");
    assert_eq!(handled["args"], json!({ "seconds": seconds }));
    srv.finish().await;
    let body_less = |r: &support::router::Routed| matches!(&r.message.body, fe2o3_amqp::types::messaging::Body::Data(d) if d.is_empty());
    let from_python = router.routed().iter().filter(|r| body_less(r)).count();
    assert!(from_python >= 1, "Python sent heartbeats");

    // Python client, om server: om sends the heartbeats
    let topic = uniq("om_hb");
    let srv = om_server(&t, &topic, "om1", Arc::default()).await;
    oslo_interop::python_call_survives_on_om_heartbeats(&peer, &url, &topic).await;
    let from_om = router.routed().iter().filter(|r| body_less(r)).count() - from_python;
    assert!(from_om >= 1, "om sent heartbeats");
    srv.stop().await.expect("stop");
    srv.wait().await.expect("wait");
    t.cleanup().await;
}

// ---------------------------------------------------------------------------
// Notifications, both ways, both formats
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn om_notifier_to_python_listener() {
    let Some((_router, url, peer, t)) = setup("om_notifier_to_python_listener").await else {
        return;
    };
    for driver in [NotifierDriver::MessagingV2, NotifierDriver::Messaging] {
        let topic = uniq("py_notif");
        let mut listener = peer
            .spawn(
                "notify-listen",
                &["--url", &url, "--topic", &topic, "--count", "2"],
            )
            .await;
        let notifier = Notifier::builder(t.clone())
            .publisher_id("compute.om1")
            .driver(driver.clone())
            .topics([topic.as_str()])
            .build();
        let ctx = Context::new().with("user", "u1").with("project_id", "p1");
        notifier
            .info(
                &ctx,
                "compute.instance.create.end",
                json!({"id": 1, "name": "vm☃"}),
            )
            .await
            .expect("info");
        notifier
            .error(&Context::new(), "compute.instance.error", json!({"id": 2}))
            .await
            .expect("error");
        let mut got = [
            listener.next_line(WAIT).await,
            listener.next_line(WAIT).await,
        ];
        got.sort_by_key(|v| v["event_type"].as_str().unwrap_or("").to_owned());
        let (create, error) = (&got[0], &got[1]);
        assert_eq!(create["event_type"], "compute.instance.create.end");
        assert_eq!(create["priority"], "info");
        assert_eq!(create["publisher_id"], "compute.om1");
        assert_eq!(create["payload"], json!({"id": 1, "name": "vm☃"}));
        assert_eq!(create["ctxt"]["user"], "u1");
        assert_eq!(create["ctxt"]["project_id"], "p1");
        assert!(
            create["metadata"]["message_id"]
                .as_str()
                .is_some_and(|s| s.len() == 36),
            "{create}"
        );
        assert!(
            create["metadata"]["timestamp"]
                .as_str()
                .is_some_and(|s| s.len() >= 19 && &s[10..11] == " "),
            "{create}"
        );
        assert_eq!(error["event_type"], "compute.instance.error");
        assert_eq!(error["priority"], "error");
        assert_eq!(error["payload"], json!({"id": 2}));
        let done = listener.next_line(WAIT).await;
        assert_eq!(done["received"], 2, "{driver:?}");
        listener.finish().await;
    }
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_notifier_to_om_listener() {
    let Some((router, url, peer, t)) = setup("python_notifier_to_om_listener").await else {
        return;
    };
    for driver in ["messagingv2", "messaging"] {
        let topic = uniq("om_notif");
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
            r#"{"id": 2, "name": "vm\u2603", "tags": [null, true]}"#,
            &json!({"id": 2, "name": "vm☃", "tags": [null, true]}),
            &got,
            || {
                format!(
                    "routed to {:?}; links {:?}",
                    router
                        .routed()
                        .iter()
                        .map(|r| r.address.clone())
                        .collect::<Vec<_>>(),
                    router.attached()
                )
            },
        )
        .await;

        listener.stop().await;
        listener.wait().await;
    }
    t.cleanup().await;
}
