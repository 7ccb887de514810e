//! Version and namespace dispatch over fake:// (test-cases C 20-24, 27, 30).
#![allow(clippy::unwrap_used)]

mod common;

use common::{client, ctx, shutdown, start_server, tagged_echo, transport};
use om_rpc::om_core::{Error, Value};
use om_rpc::{Endpoint, RemoteErrorExt};
use serde_json::json;

async fn echo_with(c: &om_rpc::RpcClient) -> Result<Value, Error> {
    c.call_value(&ctx(), "echo", json!({"x": 1})).await
}

#[tokio::test]
async fn older_minor_reaches_newer_endpoint_and_other_major_is_refused() {
    let t = transport("ver-minor").await;
    let s = start_server(&t, "v", "s1", vec![tagged_echo("a").version("1.5")]).await;
    let c = client(&t, "v");
    for ok in ["1.3", "1.5", "1.0"] {
        let r = echo_with(&c.prepare().version(ok).build().unwrap())
            .await
            .unwrap();
        assert_eq!(r, json!(["a", 1]), "version {ok}");
    }
    let e = echo_with(&c.prepare().version("2.0").build().unwrap())
        .await
        .unwrap_err();
    assert!(
        e.is_remote("oslo_messaging.rpc.dispatcher", "UnsupportedVersion"),
        "{e}"
    );
    let e = echo_with(&c.prepare().version("1.6").build().unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        e.remote().unwrap().value,
        "Endpoint does not support RPC version 1.6. Attempted method: echo"
    );
    shutdown(&s).await;
}

#[tokio::test]
async fn first_compatible_endpoint_wins() {
    let t = transport("ver-pick").await;
    let s = start_server(
        &t,
        "v",
        "s1",
        vec![
            tagged_echo("first").version("1.5"),
            tagged_echo("second").version("3.4"),
            tagged_echo("third").version("3.4"),
        ],
    )
    .await;
    let c = client(&t, "v");
    let r = echo_with(&c.prepare().version("3.2").build().unwrap())
        .await
        .unwrap();
    assert_eq!(r, json!(["second", 1]));
    // No version at all means 1.0.
    assert_eq!(echo_with(&c).await.unwrap(), json!(["first", 1]));
    shutdown(&s).await;

    let t = transport("ver-pick2").await;
    let s = start_server(
        &t,
        "v",
        "s1",
        vec![
            tagged_echo("a").version("1.5"),
            tagged_echo("b").version("3.0"),
        ],
    )
    .await;
    let e = echo_with(&client(&t, "v").prepare().version("3.2").build().unwrap())
        .await
        .unwrap_err();
    assert!(e.is_remote_class("UnsupportedVersion"), "{e}");
    shutdown(&s).await;
}

#[tokio::test]
async fn request_without_version_does_not_reach_a_2x_endpoint() {
    let t = transport("ver-none").await;
    let s = start_server(&t, "v", "s1", vec![tagged_echo("two").version("2.0")]).await;
    let e = echo_with(&client(&t, "v")).await.unwrap_err();
    assert_eq!(
        e.remote().unwrap().value,
        "Endpoint does not support RPC version 1.0. Attempted method: echo"
    );
    shutdown(&s).await;
}

#[tokio::test]
async fn namespaces_route_requests() {
    let t = transport("ns").await;
    let s = start_server(
        &t,
        "n",
        "s1",
        vec![
            tagged_echo("ns1").namespace("ns1").version("2.3"),
            tagged_echo("null"),
        ],
    )
    .await;
    let c = client(&t, "n");
    let r = echo_with(&c.prepare().namespace("ns1").version("2.1").build().unwrap())
        .await
        .unwrap();
    assert_eq!(r, json!(["ns1", 1]));
    assert_eq!(echo_with(&c).await.unwrap(), json!(["null", 1]));
    let e = echo_with(&c.prepare().namespace("ns2").build().unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        e.remote().unwrap().value,
        "Endpoint does not support RPC version 1.0. Attempted method: echo"
    );
    shutdown(&s).await;
}

#[tokio::test]
async fn legacy_namespaces_are_accepted() {
    let t = transport("ns-legacy").await;
    let s = start_server(
        &t,
        "n",
        "s1",
        vec![tagged_echo("legacy")
            .namespace("testns")
            .legacy_namespaces([Some("second"), None])],
    )
    .await;
    let c = client(&t, "n");
    assert_eq!(echo_with(&c).await.unwrap(), json!(["legacy", 1]));
    for ns in ["testns", "second"] {
        let r = echo_with(&c.prepare().namespace(ns).build().unwrap())
            .await
            .unwrap();
        assert_eq!(r, json!(["legacy", 1]), "namespace {ns}");
    }
    let e = echo_with(&c.prepare().namespace("wrong").build().unwrap())
        .await
        .unwrap_err();
    assert!(e.is_remote_class("UnsupportedVersion"), "{e}");
    shutdown(&s).await;
}

#[tokio::test]
async fn no_endpoints_means_unsupported_version() {
    let t = transport("no-ep").await;
    let s = start_server(&t, "e", "s1", Vec::<Endpoint>::new()).await;
    let e = echo_with(&client(&t, "e")).await.unwrap_err();
    assert!(e.is_remote_class("UnsupportedVersion"), "{e}");
    shutdown(&s).await;
}
