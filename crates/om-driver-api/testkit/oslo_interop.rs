//! Scenarios and om-side fixtures shared by the Python oslo.messaging
//! interop suites (`crates/om/tests/interop_rabbit.rs` on RabbitMQ with
//! oslo.messaging 18.3.1, `crates/om-driver-amqp1/tests/python_interop.rs`
//! on AMQP 1.0 with 14.9.3), included by both with
//! `#[path = "../../om-driver-api/testkit/oslo_interop.rs"] mod oslo_interop;`.
//!
//! The Python side is `testkit/python/oslo_peer.py` (through each suite's
//! peer script), driven by `om_driver_api::testkit::python_peer`. Only what
//! both suites check the same way, with the same peer modes, lives here; each
//! function takes the transport URL and peer it runs against.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use om_driver_api::om_core::{Context, Error, Target, Value};
use om_driver_api::testkit::python_peer::PythonPeer;
use om_driver_api::Transport;
use om_notify::{Endpoint as NotifyEndpoint, Notification};
use om_rpc::{Endpoint, HandlerError, RpcClient, RpcServer};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bound for something that must happen (not a timing assertion).
const BOUND: Duration = Duration::from_secs(60);

/// The `call_monitor_timeout` (seconds) of the heartbeat cases. The server
/// heartbeats every half of it, so a stall of up to 2 s on a busy test
/// machine does not fail them.
pub const HEARTBEAT_MONITOR_S: f64 = 4.0;

/// How long the heartbeat cases' `sleep` call runs: more than twice
/// [`HEARTBEAT_MONITOR_S`], so only heartbeats keep it alive.
pub const HEARTBEAT_SLEEP_S: f64 = 9.0;

/// What om's endpoints handled: (server, context, arguments).
pub type Seen = Arc<Mutex<Vec<(String, Value, Value)>>>;

/// The om counterpart of the Python peer's endpoints: `echo`, `cast_sink`,
/// `fail` (a `ValueError`, or the exception `class` of `module` when the
/// arguments name them), `sleep`, `context` in the null namespace at
/// version 1.5, and `ns_echo` in namespace `om_ns` at version 2.3. `echo`
/// and `cast_sink` record what they got in `seen`.
pub fn om_endpoints(server: &str, seen: Seen) -> Vec<Endpoint> {
    let (s1, s2) = (seen.clone(), seen);
    let (n1, n2) = (server.to_owned(), server.to_owned());
    let main = Endpoint::new()
        .version("1.5")
        .method("echo", move |ctx: Context, args: Value| {
            let (seen, n) = (s1.clone(), n1.clone());
            async move {
                seen.lock()
                    .unwrap()
                    .push((n, Value::Object(ctx.into_object()), args.clone()));
                Ok::<_, HandlerError>(args)
            }
        })
        .method("cast_sink", move |ctx: Context, args: Value| {
            let (seen, n) = (s2.clone(), n2.clone());
            async move {
                seen.lock()
                    .unwrap()
                    .push((n, Value::Object(ctx.into_object()), args));
                Ok::<_, HandlerError>(())
            }
        })
        .method("fail", |_ctx: Context, args: Value| async move {
            let text = |key: &str, default: &str| {
                args.get(key)
                    .and_then(Value::as_str)
                    .unwrap_or(default)
                    .to_owned()
            };
            Err::<(), _>(HandlerError::new(
                text("module", "builtins"),
                text("class", "ValueError"),
                text("message", "boom"),
            ))
        })
        .method("context", |ctx: Context, _args: Value| async move {
            Ok::<_, HandlerError>(ctx)
        })
        .method("sleep", |_ctx: Context, args: Value| async move {
            let secs = args.get("seconds").and_then(Value::as_f64).unwrap_or(0.0);
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            Ok::<_, HandlerError>(secs)
        });
    let ns = Endpoint::new().namespace("om_ns").version("2.3").method(
        "ns_echo",
        |_ctx: Context, args: Value| async move {
            Ok::<_, HandlerError>(json!({"ns": "om_ns", "args": args}))
        },
    );
    vec![main, ns]
}

/// A started om RPC server on `topic`/`server` with [`om_endpoints`].
pub async fn om_server(t: &Transport, topic: &str, server: &str, seen: Seen) -> RpcServer {
    let srv = RpcServer::builder(t.clone(), Target::new(topic).with_server(server))
        .endpoints(om_endpoints(server, seen))
        .build()
        .expect("server builds");
    srv.start().await.expect("server starts");
    srv
}

/// What `seen` holds once it has `n` entries (or after the bound).
pub async fn wait_seen(seen: &Seen, n: usize) -> Vec<(String, Value, Value)> {
    let deadline = tokio::time::Instant::now() + BOUND;
    while seen.lock().unwrap().len() < n && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen.lock().unwrap().clone()
}

/// Notifications an om listener received.
#[derive(Clone, Default)]
pub struct Collected(pub Arc<Mutex<Vec<Notification>>>);

impl Collected {
    /// An endpoint that records every priority.
    pub fn endpoint(&self) -> NotifyEndpoint {
        let c = self.0.clone();
        let push = move |n: Notification| {
            let c = c.clone();
            async move {
                c.lock().unwrap().push(n);
            }
        };
        NotifyEndpoint::new()
            .info(push.clone())
            .warn(push.clone())
            .error(push.clone())
            .audit(push.clone())
            .debug(push.clone())
            .critical(push.clone())
            .sample(push)
    }

    /// What was received once there are `n` (or after the bound).
    pub async fn wait(&self, n: usize) -> Vec<Notification> {
        let deadline = tokio::time::Instant::now() + BOUND;
        while self.0.lock().unwrap().len() < n && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.0.lock().unwrap().clone()
    }
}

/// `--url U --topic T --timeout 30` followed by `extra`.
pub fn py_args<'a>(url: &'a str, topic: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--url", url, "--topic", topic, "--timeout", "30"];
    v.extend_from_slice(extra);
    v
}

fn remote(err: &Error) -> &om_driver_api::om_core::RemoteError {
    match err {
        Error::Remote(remote) => remote,
        _ => panic!("expected a remote error, got {err:?}"),
    }
}

/// om client → Python `rpc-server`: a Python `ValueError` raised by the
/// endpoint arrives typed (class, module, value, traceback), and the
/// dispatcher's `NoSuchMethod` by class and module. The server handles
/// `fail` with `{"message": "bad value"}`; `nosuch` never reaches it.
pub async fn om_client_gets_python_errors(client: &RpcClient) {
    let err = client
        .call::<_, Value>(&Context::new(), "fail", json!({"message": "bad value"}))
        .await
        .unwrap_err();
    let r = remote(&err);
    assert_eq!(r.exc_type, "ValueError");
    assert_eq!(r.module, "builtins");
    assert_eq!(r.value, "bad value");
    assert!(
        r.traceback.iter().any(|l| l.contains("raise ValueError")),
        "the Python traceback comes along: {:?}",
        r.traceback
    );

    let err = client
        .call::<_, Value>(&Context::new(), "nosuch", json!({}))
        .await
        .unwrap_err();
    let r = remote(&err);
    assert_eq!(r.exc_type, "NoSuchMethod");
    assert_eq!(r.module, "oslo_messaging.rpc.dispatcher");
    assert_eq!(r.value, "Endpoint does not support RPC method nosuch");
}

/// Python `rpc-call` → om server with [`om_endpoints`] on `topic`: om's
/// `ValueError` is re-created as a Python `ValueError`, and om's
/// `NoSuchMethod` arrives as a `RemoteError` naming the dispatcher's class.
pub async fn python_client_gets_om_errors(peer: &PythonPeer, url: &str, topic: &str) {
    let out = peer
        .run(
            "rpc-call",
            &py_args(
                url,
                topic,
                &["--method", "fail", "--args", r#"{"message": "bad value"}"#],
            ),
        )
        .await;
    assert_eq!(out["error"]["class"], "ValueError", "{out}");
    assert_eq!(out["error"]["module"], "builtins");
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("bad value"),
        "{out}"
    );

    let out = peer
        .run("rpc-call", &py_args(url, topic, &["--method", "nosuch"]))
        .await;
    assert_eq!(out["error"]["class"], "RemoteError", "{out}");
    assert_eq!(out["error"]["exc_type"], "NoSuchMethod");
    assert_eq!(
        out["error"]["value"],
        "Endpoint does not support RPC method nosuch"
    );
}

/// Python `notify-send` → om listener: one notification (priority `warn`,
/// event type `compute.instance.delete.start`, publisher `compute.py1`,
/// context `user=u1, project_id=p1`, the payload `payload_arg` as given on
/// the command line) in `driver`'s format reaches the om listener that
/// collects into `got` with every field, and it is the only one there.
/// `diag` adds to the failure message when it does not arrive.
#[allow(clippy::too_many_arguments)]
pub async fn python_notification_reaches_om(
    peer: &PythonPeer,
    url: &str,
    topic: &str,
    driver: &str,
    payload_arg: &str,
    payload: &Value,
    got: &Collected,
    diag: impl Fn() -> String,
) {
    let out = peer
        .run(
            "notify-send",
            &[
                "--url",
                url,
                "--topic",
                topic,
                "--driver",
                driver,
                "--priority",
                "warn",
                "--event-type",
                "compute.instance.delete.start",
                "--publisher-id",
                "compute.py1",
                "--payload",
                payload_arg,
                "--context",
                r#"{"user": "u1", "project_id": "p1"}"#,
            ],
        )
        .await;
    assert_eq!(out["sent"], 1, "{out}");
    let got = got.wait(1).await;
    assert_eq!(got.len(), 1, "{driver}: {got:?}; {}", diag());
    let n = &got[0];
    assert_eq!(n.event_type, "compute.instance.delete.start");
    assert_eq!(n.publisher_id.as_deref(), Some("compute.py1"));
    assert_eq!(n.priority, om_notify::Priority::Warn);
    assert_eq!(&n.payload, payload);
    assert_eq!(n.ctxt.get_str("user"), Some("u1"));
    assert_eq!(n.ctxt.get_str("project_id"), Some("p1"));
    assert_eq!(
        n.metadata.message_id.as_deref().map(str::len),
        Some(36),
        "{:?}",
        n.metadata
    );
}

/// om client → Python `rpc-server`: a 2.1 client in namespace `om_ns`
/// reaches the Python endpoint in that namespace at version 2.3.
pub async fn om_client_reaches_python_namespace(client: &RpcClient) {
    let ns = client
        .prepare()
        .namespace("om_ns")
        .version("2.1")
        .build()
        .expect("prepare");
    let got: Value = ns
        .call(&Context::new(), "ns_echo", json!({"k": "v"}))
        .await
        .expect("ns_echo");
    assert_eq!(got, json!({"ns": "om_ns", "args": {"k": "v"}}));
}

/// Python `rpc-call` → om server with [`om_endpoints`] on `topic`: a 2.2
/// client in namespace `om_ns` reaches om's endpoint there (version 2.3).
pub async fn python_client_reaches_om_namespace(peer: &PythonPeer, url: &str, topic: &str) {
    let out = peer
        .run(
            "rpc-call",
            &py_args(
                url,
                topic,
                &[
                    "--method",
                    "ns_echo",
                    "--namespace",
                    "om_ns",
                    "--version",
                    "2.2",
                    "--args",
                    r#"{"k": 1}"#,
                ],
            ),
        )
        .await;
    assert_eq!(
        out["result"],
        json!({"ns": "om_ns", "args": {"k": 1}}),
        "{out}"
    );
}

/// Python `rpc-call` with `call_monitor_timeout` [`HEARTBEAT_MONITOR_S`] →
/// om server with [`om_endpoints`] on `topic`: a [`HEARTBEAT_SLEEP_S`]
/// `sleep` call survives because om's heartbeats arrive and are understood.
pub async fn python_call_survives_on_om_heartbeats(peer: &PythonPeer, url: &str, topic: &str) {
    let out = peer
        .run(
            "rpc-call",
            &[
                "--url",
                url,
                "--topic",
                topic,
                "--timeout",
                "60",
                "--call-monitor-timeout",
                &HEARTBEAT_MONITOR_S.to_string(),
                "--method",
                "sleep",
                "--args",
                &json!({ "seconds": HEARTBEAT_SLEEP_S }).to_string(),
            ],
        )
        .await;
    assert_eq!(out["result"], json!(HEARTBEAT_SLEEP_S), "{out}");
}
