//! Access policies, ping, failures and contexts over fake://
//! (test-cases C 25-32, E 46-53).
#![allow(clippy::unwrap_used)]

mod common;

use common::{client, ctx, shutdown, start_server, transport};
use om_rpc::om_core::{Context, Error, RemoteError, Target, Value};
use om_rpc::{
    AccessPolicy, Endpoint, HandlerError, RemoteErrorExt, RemoteException, RpcClient, RpcServer,
    PING_METHOD,
};
use serde::Deserialize;
use serde_json::json;

fn private_ep() -> Endpoint {
    Endpoint::new()
        .method("public", |_c: Context, _a: ()| async { Ok("public") })
        .method("_private", |_c: Context, _a: ()| async { Ok("private") })
        .exposed_method("shown", |_c: Context, _a: ()| async { Ok("shown") })
}

async fn server_with(
    t: &om_rpc::Transport,
    policy: AccessPolicy,
    ping: bool,
    eps: Vec<Endpoint>,
) -> RpcServer {
    let s = RpcServer::builder(t.clone(), Target::new("d").with_server("s1"))
        .endpoints(eps)
        .access_policy(policy)
        .ping_enabled(ping)
        .build()
        .unwrap();
    s.start().await.unwrap();
    s
}

#[tokio::test]
async fn unknown_method_is_no_such_method_with_oslo_fields() {
    let t = transport("nosuch").await;
    let s = start_server(&t, "d", "s1", vec![private_ep()]).await;
    let e = client(&t, "d")
        .call_value(&ctx(), "nosuch", ())
        .await
        .unwrap_err();
    let r = e.remote().expect("remote failure");
    assert_eq!(r.exc_type, "NoSuchMethod");
    assert_eq!(r.module, "oslo_messaging.rpc.dispatcher");
    assert_eq!(r.value, "Endpoint does not support RPC method nosuch");
    assert_eq!(
        r.args,
        vec![json!("Endpoint does not support RPC method nosuch")]
    );
    assert!(r.kwargs.is_empty());
    assert!(!r.traceback.is_empty());
    shutdown(&s).await;
}

#[tokio::test]
async fn default_policy_refuses_private_methods() {
    let t = transport("private").await;
    let s = server_with(&t, AccessPolicy::Default, false, vec![private_ep()]).await;
    let c = client(&t, "d");
    assert_eq!(
        c.call::<_, String>(&ctx(), "public", ()).await.unwrap(),
        "public"
    );
    let e = c.call_value(&ctx(), "_private", ()).await.unwrap_err();
    assert!(e.is_remote_class("NoSuchMethod"), "{e}");
    shutdown(&s).await;
}

#[tokio::test]
async fn legacy_policy_allows_private_methods() {
    let t = transport("legacy").await;
    let s = server_with(&t, AccessPolicy::Legacy, false, vec![private_ep()]).await;
    let r: String = client(&t, "d").call(&ctx(), "_private", ()).await.unwrap();
    assert_eq!(r, "private");
    shutdown(&s).await;
}

#[tokio::test]
async fn explicit_policy_allows_only_exposed_methods() {
    let t = transport("explicit").await;
    let s = server_with(&t, AccessPolicy::Explicit, false, vec![private_ep()]).await;
    let c = client(&t, "d");
    assert_eq!(
        c.call::<_, String>(&ctx(), "shown", ()).await.unwrap(),
        "shown"
    );
    for m in ["public", "_private"] {
        let e = c.call_value(&ctx(), m, ()).await.unwrap_err();
        assert!(e.is_remote_class("NoSuchMethod"), "{m}: {e}");
    }
    shutdown(&s).await;
}

#[tokio::test]
async fn ping_endpoint_follows_the_option() {
    let t = transport("ping").await;
    let s = server_with(
        &t,
        AccessPolicy::Default,
        true,
        vec![private_ep().namespace("other")],
    )
    .await;
    let c = client(&t, "d");
    let r: String = c.call(&ctx(), PING_METHOD, ()).await.unwrap();
    assert_eq!(r, "pong");
    // The ping endpoint is in the null namespace at version 1.0.
    let e = c
        .prepare()
        .version("1.1")
        .build()
        .unwrap()
        .call_value(&ctx(), PING_METHOD, ())
        .await
        .unwrap_err();
    assert!(e.is_remote_class("UnsupportedVersion"), "{e}");
    shutdown(&s).await;

    let t = transport("ping-off").await;
    let s = server_with(&t, AccessPolicy::Default, false, vec![private_ep()]).await;
    let e = client(&t, "d")
        .call_value(&ctx(), PING_METHOD, ())
        .await
        .unwrap_err();
    assert!(e.is_remote_class("NoSuchMethod"), "{e}");
    shutdown(&s).await;

    let t = transport("ping-own").await;
    let own = Endpoint::new().method(PING_METHOD, |_c: Context, _a: Value| async {
        Ok("my pong")
    });
    let s = server_with(&t, AccessPolicy::Default, true, vec![own]).await;
    let r: String = client(&t, "d").call(&ctx(), PING_METHOD, ()).await.unwrap();
    assert_eq!(r, "my pong");
    shutdown(&s).await;
}

#[tokio::test]
async fn handler_errors_arrive_typed() {
    let t = transport("errors").await;
    let ep = Endpoint::new()
        .method("bad", |_c: Context, _a: ()| async {
            Err::<(), _>(HandlerError::value_error("bad value"))
        })
        .method("missing", |_c: Context, _a: ()| async {
            Err::<(), _>(
                HandlerError::new(
                    "nova.exception",
                    "InstanceNotFound",
                    "Instance 1 could not be found.",
                )
                .with_kwarg("instance_id", 1),
            )
        })
        .method("internal", |_c: Context, _a: ()| async {
            let e: Result<(), Error> = Err(Error::Messaging("inner failure".into()));
            e?;
            Ok(())
        });
    let s = start_server(&t, "d", "s1", vec![ep]).await;
    let c = RpcClient::builder(t.clone(), Target::new("d"))
        .allowed_remote_exmods(["nova.exception"])
        .build();
    let plain = client(&t, "d");

    let e = c.call_value(&ctx(), "bad", ()).await.unwrap_err();
    let r = e.remote().unwrap();
    assert_eq!(
        (r.exc_type.as_str(), r.module.as_str(), r.value.as_str()),
        ("ValueError", "builtins", "bad value")
    );
    assert_eq!(r.args, vec![json!("bad value")]);
    assert!(r
        .traceback
        .last()
        .unwrap()
        .contains("ValueError: bad value"));
    let typed = plain.remote_exception(&e).unwrap();
    assert!(typed.is_typed());
    assert_eq!(typed.python_class(), "ValueError");
    assert!(typed.python_message().starts_with("bad value\n"));

    let e = c.call_value(&ctx(), "missing", ()).await.unwrap_err();
    assert!(e.is_remote("nova.exception", "InstanceNotFound"));
    assert_eq!(e.remote().unwrap().kwargs["instance_id"], json!(1));
    assert!(matches!(
        c.remote_exception(&e),
        Some(RemoteException::Typed(_))
    ));
    let opaque = plain.remote_exception(&e).unwrap();
    assert_eq!(opaque.python_class(), "RemoteError");
    assert!(opaque
        .python_message()
        .starts_with("Remote error: InstanceNotFound Instance 1 could not be found.\n["));

    let e = c.call_value(&ctx(), "internal", ()).await.unwrap_err();
    assert!(
        e.is_remote("oslo_messaging.exceptions", "MessagingException"),
        "{e}"
    );
    assert_eq!(e.remote().unwrap().value, "inner failure");
    shutdown(&s).await;
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Strict {
    #[allow(dead_code)]
    a: i64,
}

#[tokio::test]
async fn wrong_argument_types_are_type_errors() {
    let t = transport("typeerror").await;
    let ep = Endpoint::new().method("strict", |_c: Context, s: Strict| async move { Ok(s.a) });
    let s = start_server(&t, "d", "s1", vec![ep]).await;
    let c = client(&t, "d");
    assert_eq!(
        c.call::<_, i64>(&ctx(), "strict", json!({"a": 3}))
            .await
            .unwrap(),
        3
    );
    for bad in [json!({"a": "three"}), json!({}), json!({"a": 1, "b": 2})] {
        let e = c
            .call_value(&ctx(), "strict", bad.clone())
            .await
            .unwrap_err();
        assert!(e.is_remote("builtins", "TypeError"), "{bad}: {e}");
    }
    shutdown(&s).await;
}

#[tokio::test]
async fn context_arrives_with_client_timeout() {
    let t = transport("context").await;
    let ep = Endpoint::new().method("ctx", |c: Context, _a: ()| async move { Ok(c) });
    let s = start_server(&t, "d", "s1", vec![ep]).await;
    let sent = Context::new()
        .with("user", "bob")
        .with("roles", json!(["admin"]))
        .with("nested", json!({"a": [1, 2]}));
    let c = client(&t, "d");
    let got: Value = c.call(&sent, "ctx", ()).await.unwrap();
    assert_eq!(
        got,
        json!({"user": "bob", "roles": ["admin"], "nested": {"a": [1, 2]}, "client_timeout": null})
    );
    let got: Value = c
        .prepare()
        .call_monitor_timeout(5)
        .call(&sent, "ctx", ())
        .await
        .unwrap();
    assert_eq!(got["client_timeout"], json!(5));
    shutdown(&s).await;
}

#[tokio::test]
async fn raw_methods_get_the_keyword_arguments() {
    let t = transport("raw").await;
    let ep = Endpoint::new().raw_method("raw", |_c, args| async move {
        Ok(Value::from(args.keys().cloned().collect::<Vec<_>>()))
    });
    let s = start_server(&t, "d", "s1", vec![ep]).await;
    let got: Vec<String> = client(&t, "d")
        .call(&ctx(), "raw", json!({"b": 1, "a": 2}))
        .await
        .unwrap();
    assert_eq!(got, vec!["b", "a"]);
    shutdown(&s).await;
}

#[tokio::test]
async fn remote_errors_can_be_forwarded() {
    // A server that calls another server and forwards its failure keeps the
    // original class and module.
    let t = transport("forward").await;
    let inner = Endpoint::new().method("fail", |_c: Context, _a: ()| async {
        Err::<(), _>(HandlerError::key_error("k"))
    });
    let inner_s = start_server(&t, "inner", "s1", vec![inner]).await;
    let inner_client = client(&t, "inner");
    let outer = Endpoint::new().method("relay", move |c: Context, _a: ()| {
        let inner_client = inner_client.clone();
        async move { Ok(inner_client.call_value(&c, "fail", ()).await?) }
    });
    let outer_s = start_server(&t, "outer", "s1", vec![outer]).await;
    let e = client(&t, "outer")
        .call_value(&ctx(), "relay", ())
        .await
        .unwrap_err();
    let r: &RemoteError = e.remote().unwrap();
    assert_eq!(
        (r.exc_type.as_str(), r.module.as_str()),
        ("KeyError", "builtins")
    );
    shutdown(&outer_s).await;
    shutdown(&inner_s).await;
}
