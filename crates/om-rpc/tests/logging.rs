//! What the server logs for a failing method (test-cases E 52), with the
//! log captured. In a binary of its own: `tracing` caches, per call site,
//! whether any subscriber wants its events, and a test running at the same
//! time on another thread (without a subscriber) can make that cache say
//! "nobody" before this test's subscriber is seen.
#![allow(clippy::unwrap_used)]

mod common;

use common::{client, ctx, shutdown, start_server, transport};
use om_driver_api::testkit::logs::Captured;
use om_rpc::om_core::Context;
use om_rpc::{Endpoint, HandlerError, RemoteErrorExt};

/// test-cases 52: an exception the method declares as expected reaches the
/// client with its class, like any other, but the server logs it at debug
/// level only; an undeclared one is logged as an error. (A
/// current-thread runtime, so that the server's tasks log to this test's
/// subscriber.)
#[tokio::test(flavor = "current_thread")]
async fn expected_exceptions_arrive_typed_and_are_logged_at_debug_only() {
    let captured = Captured::new();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(captured.make_writer())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let t = transport("expected").await;
    let ep = Endpoint::new()
        .method("declared", |_c: Context, _a: ()| async {
            Err::<(), _>(HandlerError::value_error("declared failure").expected())
        })
        .method("undeclared", |_c: Context, _a: ()| async {
            Err::<(), _>(HandlerError::value_error("undeclared failure"))
        });
    let s = start_server(&t, "x", "s1", vec![ep]).await;
    let c = client(&t, "x");
    for (method, text) in [
        ("declared", "declared failure"),
        ("undeclared", "undeclared failure"),
    ] {
        let e = c.call_value(&ctx(), method, ()).await.unwrap_err();
        let r = e.remote().unwrap();
        assert_eq!(
            (r.exc_type.as_str(), r.module.as_str(), r.value.as_str()),
            ("ValueError", "builtins", text)
        );
    }
    shutdown(&s).await;

    let log = captured.text();
    let lines_with = |needle: &str| -> Vec<String> {
        log.lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    };
    let declared = lines_with("declared failure");
    let declared: Vec<&String> = declared
        .iter()
        .filter(|l| !l.contains("undeclared"))
        .collect();
    assert!(!declared.is_empty(), "the expected one is logged: {log}");
    assert!(
        declared.iter().all(|l| l.contains("DEBUG")),
        "only at debug level: {declared:?}"
    );
    let undeclared = lines_with("undeclared failure");
    assert!(
        undeclared.iter().any(|l| l.contains("ERROR")),
        "the undeclared one is an error: {log}"
    );
}
