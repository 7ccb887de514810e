//! `om` against a real RabbitMQ (`OM_RABBIT_URL`) and, where said, the
//! Python oslo.messaging 18.3.1 peer (`OM_PYTHON`). Without them each test
//! prints SKIPPED and passes, unless `OM_REQUIRE_BROKERS=1`.

mod common;

use common::{om, rabbit_and_python, rabbit_url, unique, with_password, Proc, TempFile};
use serde_json::{json, Value};
use std::time::Duration;

const READY: Duration = Duration::from_secs(60);
const LINE: Duration = Duration::from_secs(60);

/// Starts `om rpc responder` and waits until it is subscribed.
async fn responder(url: &str, topic: &str, server: &str, extra: &[&str]) -> Proc {
    let mut args = vec![
        "rpc",
        "responder",
        "--url",
        url,
        "--topic",
        topic,
        "--server",
        server,
        "--until-stdin-closes",
    ];
    args.extend_from_slice(extra);
    let mut p = Proc::om(&args);
    p.wait_stderr("responder ready", READY).await;
    p
}

#[tokio::test]
async fn call_and_cast_against_the_responder() {
    let Some(url) = rabbit_url() else { return };
    let topic = unique("cli_resp");
    let mut resp = responder(&url, &topic, "s1", &[]).await;

    // echo: inline arguments.
    let r = om(
        &[
            "rpc",
            "call",
            "--url",
            &url,
            "--topic",
            &topic,
            "echo",
            r#"{"a": 1, "b": [true, null]}"#,
        ],
        None,
    )
    .await;
    r.expect_code(0);
    assert_eq!(r.json(), json!({"a": 1, "b": [true, null]}));
    let line = resp.next_json(LINE).await;
    assert_eq!(line["event"], "handled");
    assert_eq!(line["method"], "echo");
    assert_eq!(line["args"], json!({"a": 1, "b": [true, null]}));

    // Arguments from a file and from stdin, to the server explicitly.
    let f = TempFile::new("json", r#"{"from": "file"}"#);
    let at = format!("@{}", f.path());
    let r = om(
        &[
            "rpc", "call", "--url", &url, "--topic", &topic, "--server", "s1", "echo", &at,
        ],
        None,
    )
    .await;
    r.expect_code(0);
    assert_eq!(r.json(), json!({"from": "file"}));
    let r = om(
        &[
            "rpc", "call", "--url", &url, "--topic", &topic, "--pretty", "echo", "-",
        ],
        Some(r#"{"from": "stdin"}"#),
    )
    .await;
    r.expect_code(0);
    assert_eq!(r.stdout, "{\n  \"from\": \"stdin\"\n}\n");
    assert_eq!(resp.next_json(LINE).await["args"], json!({"from": "file"}));
    assert_eq!(resp.next_json(LINE).await["args"], json!({"from": "stdin"}));

    // context() returns the context it received.
    let r = om(
        &[
            "rpc",
            "call",
            "--url",
            &url,
            "--topic",
            &topic,
            "--context",
            r#"{"request_id": "req-cli-1", "user": "alice"}"#,
            "context",
        ],
        None,
    )
    .await;
    r.expect_code(0);
    let ctx = r.json();
    assert_eq!(ctx["request_id"], "req-cli-1");
    assert_eq!(ctx["user"], "alice");
    assert_eq!(resp.next_json(LINE).await["ctxt"]["user"], "alice");

    // The ping method.
    let r = om(
        &[
            "rpc",
            "call",
            "--url",
            &url,
            "--topic",
            &topic,
            "oslo_rpc_server_ping",
        ],
        None,
    )
    .await;
    r.expect_code(0);
    assert_eq!(r.json(), json!("pong"));

    // A remote error: exit 3, the Python class and message on stdout.
    let r = om(
        &[
            "rpc",
            "call",
            "--url",
            &url,
            "--topic",
            &topic,
            "fail",
            r#"{"message": "no such flavor"}"#,
        ],
        None,
    )
    .await;
    r.expect_code(3);
    let e = r.json();
    assert_eq!(e["error"]["class"], "ValueError");
    assert_eq!(e["error"]["module"], "builtins");
    assert_eq!(e["error"]["message"], "no such flavor");
    assert_eq!(e["error"]["remote"], true);
    assert!(
        r.stderr
            .contains("remote error: ValueError: no such flavor"),
        "{}",
        r.stderr
    );
    assert_eq!(resp.next_json(LINE).await["method"], "fail");

    // An unknown method is the dispatcher's NoSuchMethod.
    let r = om(
        &["rpc", "call", "--url", &url, "--topic", &topic, "nosuch"],
        None,
    )
    .await;
    r.expect_code(3);
    assert_eq!(r.json()["error"]["class"], "NoSuchMethod");
    assert_eq!(r.json()["error"]["module"], "oslo_messaging.rpc.dispatcher");

    // A timeout: exit 4, MessagingTimeout.
    let r = om(
        &[
            "rpc",
            "call",
            "--url",
            &url,
            "--topic",
            &topic,
            "--timeout",
            "1",
            "sleep",
            r#"{"seconds": 4}"#,
        ],
        None,
    )
    .await;
    r.expect_code(4);
    assert_eq!(r.json()["error"]["class"], "MessagingTimeout");
    assert!(
        r.stderr
            .contains(&format!("is a server listening on topic \"{topic}\"")),
        "{}",
        r.stderr
    );
    assert_eq!(resp.next_json(LINE).await["method"], "sleep");

    // A call longer than the call-monitor timeout survives on heartbeats.
    let r = om(
        &[
            "rpc",
            "call",
            "--url",
            &url,
            "--topic",
            &topic,
            "--timeout",
            "30",
            "--call-monitor-timeout",
            "2",
            "sleep",
            r#"{"seconds": 3}"#,
        ],
        None,
    )
    .await;
    r.expect_code(0);
    assert_eq!(r.json(), json!(3.0));
    let line = resp.next_json(LINE).await;
    assert_eq!(line["ctxt"]["client_timeout"], 2);

    // A cast: nothing printed, the responder handles it.
    let r = om(
        &[
            "rpc",
            "cast",
            "--url",
            &url,
            "--topic",
            &topic,
            "echo",
            r#"{"cast": 1}"#,
        ],
        None,
    )
    .await;
    r.expect_code(0);
    assert_eq!(r.stdout, "");
    let line = resp.next_json(LINE).await;
    assert_eq!(
        (line["method"].clone(), line["args"].clone()),
        (json!("echo"), json!({"cast": 1}))
    );

    // A fanout cast reaches it too.
    let r = om(
        &[
            "rpc",
            "cast",
            "--url",
            &url,
            "--topic",
            &topic,
            "--fanout",
            "echo",
            r#"{"fanout": 1}"#,
        ],
        None,
    )
    .await;
    r.expect_code(0);
    assert_eq!(resp.next_json(LINE).await["args"], json!({"fanout": 1}));

    // Closing stdin stops it cleanly.
    resp.close_stdin();
    let (code, stderr) = resp.wait(Duration::from_secs(30)).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("responder stopped after"), "{stderr}");
}

#[tokio::test]
async fn responder_versions_and_sigterm() {
    let Some(url) = rabbit_url() else { return };
    let topic = unique("cli_ver");
    let mut resp = responder(
        &url,
        &topic,
        "v1",
        &["--namespace", "ops", "--version", "2.4"],
    )
    .await;
    let r = om(
        &[
            "rpc",
            "call",
            "--url",
            &url,
            "--topic",
            &topic,
            "--namespace",
            "ops",
            "--version",
            "2.1",
            "echo",
            r#"{"v": 1}"#,
        ],
        None,
    )
    .await;
    r.expect_code(0);
    assert_eq!(r.json(), json!({"v": 1}));
    assert_eq!(resp.next_json(LINE).await["method"], "echo");
    let r = om(
        &[
            "rpc",
            "call",
            "--url",
            &url,
            "--topic",
            &topic,
            "--namespace",
            "ops",
            "--version",
            "2.5",
            "echo",
        ],
        None,
    )
    .await;
    r.expect_code(3);
    assert_eq!(r.json()["error"]["class"], "UnsupportedVersion");
    resp.terminate();
    let (code, stderr) = resp.wait(Duration::from_secs(30)).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("responder stopped after 1 request(s)"),
        "{stderr}"
    );
}

#[tokio::test]
async fn call_a_python_server() {
    let Some((url, python)) = rabbit_and_python() else {
        return;
    };
    let topic = unique("cli_py");
    let mut py = Proc::peer(
        &python,
        "rpc-server",
        &["--url", &url, "--topic", &topic, "--server", "py1"],
    )
    .await;

    let r = om(
        &[
            "rpc",
            "call",
            "--url",
            &url,
            "--topic",
            &topic,
            "--version",
            "1.5",
            "echo",
            r#"{"x": "y", "n": [1, 2.5]}"#,
        ],
        None,
    )
    .await;
    r.expect_code(0);
    assert_eq!(r.json(), json!({"x": "y", "n": [1, 2.5]}));
    let handled = py.next_json(LINE).await;
    assert_eq!(handled["method"], "echo");

    let r = om(
        &[
            "rpc",
            "call",
            "--url",
            &url,
            "--topic",
            &topic,
            "--server",
            "py1",
            "--context",
            r#"{"user": "bob"}"#,
            "add",
            r#"{"a": 2, "b": 40}"#,
        ],
        None,
    )
    .await;
    r.expect_code(0);
    assert_eq!(r.json(), json!(42));
    let handled = py.next_json(LINE).await;
    assert_eq!(handled["ctxt"]["user"], "bob");

    let r = om(
        &[
            "rpc",
            "call",
            "--url",
            &url,
            "--topic",
            &topic,
            "--namespace",
            "om_ns",
            "--version",
            "2.3",
            "ns_echo",
            r#"{"k": 1}"#,
        ],
        None,
    )
    .await;
    r.expect_code(0);
    assert_eq!(r.json(), json!({"ns": "om_ns", "args": {"k": 1}}));
    py.next_json(LINE).await;

    // Python's ValueError, with its Python traceback.
    let r = om(
        &[
            "rpc",
            "call",
            "--url",
            &url,
            "--topic",
            &topic,
            "fail",
            r#"{"message": "python says no"}"#,
        ],
        None,
    )
    .await;
    r.expect_code(3);
    let e = r.json();
    assert_eq!(e["error"]["class"], "ValueError");
    assert_eq!(e["error"]["module"], "builtins");
    assert_eq!(e["error"]["message"], "python says no");
    let tb: Vec<String> =
        serde_json::from_value(e["error"]["traceback"].clone()).expect("traceback list");
    assert!(tb.iter().any(|l| l.contains("peer.py")), "{tb:?}");
    py.next_json(LINE).await;

    // Heartbeats from the Python server keep a monitored call alive.
    let r = om(
        &[
            "rpc",
            "call",
            "--url",
            &url,
            "--topic",
            &topic,
            "--timeout",
            "30",
            "--call-monitor-timeout",
            "2",
            "sleep",
            r#"{"seconds": 3}"#,
        ],
        None,
    )
    .await;
    r.expect_code(0);
    assert_eq!(r.json(), json!(3));
    py.next_json(LINE).await;

    // A cast reaches Python.
    let r = om(
        &[
            "rpc",
            "cast",
            "--url",
            &url,
            "--topic",
            &topic,
            "cast_sink",
            r#"{"z": 26}"#,
        ],
        None,
    )
    .await;
    r.expect_code(0);
    let handled = py.next_json(LINE).await;
    assert_eq!(
        (handled["method"].clone(), handled["args"].clone()),
        (json!("cast_sink"), json!({"z": 26}))
    );

    py.close_stdin();
    py.wait(Duration::from_secs(30)).await;
}

#[tokio::test]
async fn notify_send_seen_by_tail() {
    let Some(url) = rabbit_url() else { return };
    let topic = unique("cli_note");
    let mut tail = Proc::om(&[
        "notify",
        "tail",
        "--url",
        &url,
        "--topic",
        &topic,
        "--count",
        "1",
        "--timeout",
        "60",
    ]);
    tail.wait_stderr("following notifications", READY).await;
    let r = om(
        &[
            "notify",
            "send",
            "--url",
            &url,
            "--topic",
            &topic,
            "--priority",
            "error",
            "--event-type",
            "compute.instance.delete.end",
            "--publisher-id",
            "compute.host7",
            r#"{"instance_id": "i-1", "n": 2}"#,
        ],
        None,
    )
    .await;
    r.expect_code(0);
    let sent = r.json();
    assert_eq!(sent["priority"], "ERROR");
    assert_eq!(sent["topics"], json!([format!("{topic}.error")]));
    let line = tail.next_line(LINE).await;
    let cols: Vec<&str> = line.split_whitespace().collect();
    // date, time, priority, publisher, event type, payload
    assert_eq!(cols.len(), 6, "{line}");
    assert_eq!(
        &cols[2..],
        [
            "ERROR",
            "compute.host7",
            "compute.instance.delete.end",
            r#"{"instance_id":"i-1","n":2}"#
        ]
    );
    let (code, stderr) = tail.wait(Duration::from_secs(30)).await;
    assert_eq!(code, 0, "{stderr}");

    // --json, with the event-type filter and the context.
    let mut tail = Proc::om(&[
        "notify",
        "tail",
        "--url",
        &url,
        "--topic",
        &topic,
        "--json",
        "--count",
        "1",
        "--event-type",
        "^image\\.",
        "--timeout",
        "60",
    ]);
    tail.wait_stderr("following notifications", READY).await;
    for (event, payload) in [
        ("compute.x", r#"{"skip": true}"#),
        ("image.upload", r#"{"keep": true}"#),
    ] {
        om(
            &[
                "notify",
                "send",
                "--url",
                &url,
                "--topic",
                &topic,
                "--event-type",
                event,
                "--context",
                r#"{"user": "carol", "auth_token": "tok-123"}"#,
                payload,
            ],
            None,
        )
        .await
        .expect_code(0);
    }
    let n: Value = serde_json::from_str(&tail.next_line(LINE).await).expect("json line");
    assert_eq!(n["event_type"], "image.upload");
    assert_eq!(n["priority"], "info");
    assert_eq!(n["publisher_id"], "om-cli");
    assert_eq!(n["payload"], json!({"keep": true}));
    assert_eq!(n["ctxt"]["user"], "carol");
    assert_eq!(
        n["ctxt"]["auth_token"],
        Value::Null,
        "the notifier sends auth_token as null"
    );
    assert!(
        n["metadata"]["message_id"].is_string() && n["metadata"]["timestamp"].is_string(),
        "{n}"
    );
    let (code, _) = tail.wait(Duration::from_secs(30)).await;
    assert_eq!(code, 0);

    // The legacy "messaging" driver is read too.
    let mut tail = Proc::om(&[
        "notify",
        "tail",
        "--url",
        &url,
        "--topic",
        &topic,
        "--json",
        "--count",
        "1",
        "--timeout",
        "60",
    ]);
    tail.wait_stderr("following notifications", READY).await;
    om(
        &[
            "notify",
            "send",
            "--url",
            &url,
            "--topic",
            &topic,
            "--driver",
            "messaging",
            "--event-type",
            "legacy.e",
            "7",
        ],
        None,
    )
    .await
    .expect_code(0);
    let n: Value = serde_json::from_str(&tail.next_line(LINE).await).expect("json line");
    assert_eq!(
        (n["event_type"].clone(), n["payload"].clone()),
        (json!("legacy.e"), json!(7))
    );
    tail.wait(Duration::from_secs(30)).await;

    // Nothing more arrives: --timeout before --count is exit 4.
    let r = om(
        &[
            "notify",
            "tail",
            "--url",
            &url,
            "--topic",
            &topic,
            "--count",
            "1",
            "--timeout",
            "2",
        ],
        None,
    )
    .await;
    r.expect_code(4);
    assert!(
        r.stderr.contains("timed out: 0 of 1 notification(s)"),
        "{}",
        r.stderr
    );
}

#[tokio::test]
async fn tail_shows_python_notifications_from_a_pool_without_stealing() {
    let Some((url, python)) = rabbit_and_python() else {
        return;
    };
    let topic = unique("cli_pynote");
    let pool = unique("cli_pool");
    let mut tail = Proc::om(&[
        "notify",
        "tail",
        "--url",
        &url,
        "--topic",
        &topic,
        "--pool",
        &pool,
        "--json",
        "--count",
        "3",
        "--timeout",
        "90",
    ]);
    tail.wait_stderr("following notifications", READY).await;
    let sent = std::process::Command::new(&python)
        .arg(common::peer_script())
        .args([
            "notify-send",
            "--url",
            &url,
            "--topic",
            &topic,
            "--event-type",
            "volume.attach",
            "--publisher-id",
            "cinder.host3",
            "--payload",
            r#"{"volume": "v-9"}"#,
            "--context",
            r#"{"user": "dave"}"#,
            "--count",
            "3",
        ])
        .output()
        .expect("python peer runs");
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    for seq in 0..3 {
        let n: Value = serde_json::from_str(&tail.next_line(LINE).await).expect("json line");
        assert_eq!(n["event_type"], "volume.attach");
        assert_eq!(n["publisher_id"], "cinder.host3");
        assert_eq!(n["payload"], json!({"volume": "v-9", "seq": seq}));
        assert_eq!(n["ctxt"]["user"], "dave");
    }
    let (code, stderr) = tail.wait(Duration::from_secs(30)).await;
    assert_eq!(code, 0, "{stderr}");

    // The topic's own consumers (no pool) still have every message.
    let r = om(
        &[
            "notify",
            "tail",
            "--url",
            &url,
            "--topic",
            &topic,
            "--json",
            "--count",
            "3",
            "--timeout",
            "30",
        ],
        None,
    )
    .await;
    r.expect_code(0);
    let seqs: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json")["payload"]["seq"].clone())
        .collect();
    assert_eq!(seqs, vec![json!(0), json!(1), json!(2)]);
}

#[tokio::test]
async fn python_listener_receives_om_notifications() {
    let Some((url, python)) = rabbit_and_python() else {
        return;
    };
    let topic = unique("cli_topy");
    let mut py = Proc::peer(
        &python,
        "notify-listen",
        &[
            "--url",
            &url,
            "--topic",
            &topic,
            "--count",
            "1",
            "--timeout",
            "60",
        ],
    )
    .await;
    om(
        &[
            "notify",
            "send",
            "--url",
            &url,
            "--topic",
            &topic,
            "--priority",
            "warn",
            "--event-type",
            "om.to.python",
            "--publisher-id",
            "om.host",
            r#"{"hello": "python"}"#,
        ],
        None,
    )
    .await
    .expect_code(0);
    let n = py.next_json(LINE).await;
    assert_eq!(n["priority"], "warn");
    assert_eq!(n["event_type"], "om.to.python");
    assert_eq!(n["publisher_id"], "om.host");
    assert_eq!(n["payload"], json!({"hello": "python"}));
    py.close_stdin();
    py.wait(Duration::from_secs(60)).await;
}

#[tokio::test]
async fn bench_runs_briefly() {
    let Some(url) = rabbit_url() else { return };
    for mode in ["rpc", "cast", "notify"] {
        let r = om(
            &[
                "bench",
                mode,
                "--url",
                &url,
                "--duration",
                "1",
                "--concurrency",
                "2",
                "--size",
                "256",
                "--json",
            ],
            None,
        )
        .await;
        r.expect_code(0);
        let j = r.json();
        assert_eq!(j["mode"], mode);
        assert_eq!(j["driver"], "rabbit");
        assert!(
            j["url"].as_str().expect("url").contains(":****@"),
            "password not masked: {j}"
        );
        assert!(j["received"].as_u64().expect("received") > 0, "{j}");
        assert_eq!(j["errors"], 0, "{j}");
        assert_eq!(j["lost"], 0, "{j}");
        let l = &j["latency_ms"];
        let p = |k: &str| l[k].as_f64().expect(k);
        assert!(
            0.0 < p("min")
                && p("min") <= p("p50")
                && p("p50") <= p("p90")
                && p("p90") <= p("p99")
                && p("p99") <= p("max"),
            "{j}"
        );
    }
    let r = om(
        &[
            "bench",
            "rpc",
            "--url",
            &url,
            "--duration",
            "1",
            "--concurrency",
            "2",
        ],
        None,
    )
    .await;
    r.expect_code(0);
    assert!(r.stdout.contains("om bench rpc: rabbit://"), "{}", r.stdout);
    assert!(r.stdout.contains("round trip"), "{}", r.stdout);
    for col in [
        "sent",
        "received",
        "throughput/s",
        "p50",
        "p90",
        "p99",
        "max",
    ] {
        assert!(r.stdout.contains(col), "table lacks {col}: {}", r.stdout);
    }
}

#[tokio::test]
async fn bad_credentials_exit_5_naming_host_and_user() {
    let Some(url) = rabbit_url() else { return };
    let bad = with_password(&url, "Wr0ng-Cli-Pass");
    let r = om(
        &["rpc", "call", "--url", &bad, "--topic", "t", "echo"],
        None,
    )
    .await;
    r.expect_code(5);
    assert!(
        r.stderr.contains("authentication failed for user"),
        "{}",
        r.stderr
    );
    let host = bad
        .split('@')
        .nth(1)
        .and_then(|h| h.split('/').next())
        .expect("host");
    assert!(r.stderr.contains(host), "{}", r.stderr);
    assert!(
        !r.stderr.contains("Wr0ng-Cli-Pass") && !r.stdout.contains("Wr0ng-Cli-Pass"),
        "{}",
        r.stderr
    );
    let r = om(
        &["-vvv", "notify", "tail", "--url", &bad, "--count", "1"],
        None,
    )
    .await;
    r.expect_code(5);
    assert!(
        !r.stderr.contains("Wr0ng-Cli-Pass"),
        "verbose log printed the password"
    );
    // A virtual host that does not exist.
    let at = url.rfind('@').expect("credentials");
    let base = url[at..].find('/').map_or(url.as_str(), |i| &url[..at + i]);
    let vhost = format!("{base}/{}", unique("novhost"));
    let r = om(
        &["rpc", "call", "--url", &vhost, "--topic", "t", "echo"],
        None,
    )
    .await;
    r.expect_code(5);
    assert!(
        r.stderr.contains("may not use virtual host"),
        "{}",
        r.stderr
    );
}

#[tokio::test]
async fn config_file_drives_the_client() {
    let Some(url) = rabbit_url() else { return };
    let topic = unique("cli_cfg");
    let exchange = unique("cli_x");
    let conf = TempFile::new(
        "conf",
        &format!("[DEFAULT]\ntransport_url = {url}\ncontrol_exchange = {exchange}\nrpc_response_timeout = 2\n"),
    );
    let mut resp = responder(&url, &topic, "c1", &["--exchange", &exchange]).await;
    let r = om(
        &[
            "rpc",
            "call",
            "--config",
            conf.path(),
            "--topic",
            &topic,
            "echo",
            r#"{"via": "config"}"#,
        ],
        None,
    )
    .await;
    r.expect_code(0);
    assert_eq!(r.json(), json!({"via": "config"}));
    resp.next_json(LINE).await;
    // rpc_response_timeout = 2 applies.
    let started = std::time::Instant::now();
    let r = om(
        &[
            "rpc",
            "call",
            "--config",
            conf.path(),
            "--topic",
            &topic,
            "sleep",
            r#"{"seconds": 5}"#,
        ],
        None,
    )
    .await;
    r.expect_code(4);
    assert!(r.stderr.contains("--timeout was 2s"), "{}", r.stderr);
    assert!(started.elapsed() < Duration::from_secs(30));
    resp.close_stdin();
    resp.wait(Duration::from_secs(30)).await;
}

/// Sends `<prefix>.e<i>` for each `i` of `numbers` to `topic` with
/// `om notify send`, each with `payload` when given.
async fn send_numbered(
    url: &str,
    topic: &str,
    prefix: &str,
    numbers: std::ops::RangeInclusive<usize>,
    payload: Option<&str>,
) {
    for i in numbers {
        let event = format!("{prefix}.e{i}");
        let mut args = vec![
            "notify",
            "send",
            "--url",
            url,
            "--topic",
            topic,
            "--event-type",
            &event,
        ];
        args.extend(payload);
        om(&args, None).await.expect_code(0);
    }
}

/// The event types of `om notify tail --json` output, line by line.
fn tail_events(out: &str) -> Vec<String> {
    out.lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("json")["event_type"]
                .as_str()
                .expect("event")
                .to_owned()
        })
        .collect()
}

/// Starts `om notify tail --json` on `topic` with its stdout piped (and
/// stderr as given), killed when dropped.
fn spawn_json_tail(url: &str, topic: &str, stderr: std::process::Stdio) -> tokio::process::Child {
    tokio::process::Command::new(common::om_bin())
        .args(["notify", "tail", "--url", url, "--topic", topic, "--json"])
        .env_remove("OM_TRANSPORT_URL")
        .env_remove("OM_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("om notify tail starts")
}

/// `om notify tail --json --count N` on `topic`: the event types it showed.
async fn tail_count(url: &str, topic: &str, count: &str, timeout: &str) -> Vec<String> {
    let r = om(
        &[
            "notify",
            "tail",
            "--url",
            url,
            "--topic",
            topic,
            "--json",
            "--count",
            count,
            "--timeout",
            timeout,
        ],
        None,
    )
    .await;
    r.expect_code(0);
    tail_events(&r.stdout)
}

#[tokio::test]
async fn tail_takes_only_what_it_shows() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let Some(url) = rabbit_url() else { return };
    let topic = unique("cli_count");
    send_numbered(&url, &topic, "seq", 1..=2, None).await;
    // --count 1 shows one; the other goes back to the queue.
    assert_eq!(tail_count(&url, &topic, "1", "30").await, ["seq.e1"]);

    // A reader that goes away after one line (like `| head -n 1`) does not
    // lose the notifications om could not write. Only seq.e2 is queued
    // while the reader reads, so nothing else can sit unread in the pipe
    // (a line written into a pipe counts as shown; `head` itself would
    // make that a race).
    let mut child = spawn_json_tail(&url, &topic, std::process::Stdio::null());
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(READY + LINE, stdout.next_line())
        .await
        .expect("tail shows seq.e2")
        .expect("read")
        .expect("a line");
    assert_eq!(tail_events(&first), ["seq.e2"]);
    drop(stdout);
    // The reader is gone: seq.e3 cannot be written, and seq.e4 is not shown.
    send_numbered(&url, &topic, "seq", 3..=4, None).await;
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("om exits once its reader is gone")
        .expect("wait");
    assert!(status.success(), "{status:?}");
    assert_eq!(
        tail_count(&url, &topic, "2", "30").await,
        ["seq.e3", "seq.e4"]
    );
}

/// test-cases G 92: a listener killed while it handles notifications loses
/// none of them. `om notify tail` acknowledges a notification only once it
/// is written out; here its stdout is a pipe that is read for 1,000 bytes
/// and then no more, so writing the first 100 KB notification is under way
/// and blocked when the process is killed (SIGKILL, no shutdown at all). A
/// new tail then receives all three notifications.
#[tokio::test]
async fn killed_tail_loses_nothing() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
    let Some(url) = rabbit_url() else { return };
    let topic = unique("cli_kill");
    let payload = json!({ "blob": "x".repeat(100_000) }).to_string();
    send_numbered(&url, &topic, "kill", 1..=3, Some(&payload)).await;

    let mut child = spawn_json_tail(&url, &topic, std::process::Stdio::piped());
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
    tokio::time::timeout(READY, async {
        while let Some(line) = stderr.next_line().await.expect("stderr") {
            if line.contains("following notifications") {
                return;
            }
        }
        panic!("om notify tail ended before it subscribed");
    })
    .await
    .expect("om notify tail subscribed");
    // The first notification is being written: its first bytes arrive.
    let mut first = vec![0u8; 1000];
    tokio::time::timeout(LINE, stdout.read_exact(&mut first))
        .await
        .expect("tail started writing a notification")
        .expect("read");
    assert!(
        String::from_utf8_lossy(&first).contains("kill.e1"),
        "{}",
        String::from_utf8_lossy(&first)
    );
    child.kill().await.expect("SIGKILL");
    drop(stdout);

    let mut events = tail_count(&url, &topic, "3", "60").await;
    events.sort();
    assert_eq!(events, ["kill.e1", "kill.e2", "kill.e3"]);
}
