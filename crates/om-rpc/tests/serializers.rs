//! Serializer hooks on both sides (overview §4.2, §6.4, §9).
#![allow(clippy::unwrap_used)]

mod common;

use common::{shutdown, transport};
use om_rpc::om_core::{Context, Result, Serializer, Target, Value};
use om_rpc::{Endpoint, RpcClient, RpcServer};
use std::sync::Arc;

/// Tags strings on the way out and untags them on the way in; marks
/// contexts it serialized / deserialized.
struct Tagging;

impl Serializer for Tagging {
    fn serialize_entity(&self, _c: &Context, v: Value) -> Result<Value> {
        Ok(match v {
            Value::String(s) => Value::String(format!("wire:{s}")),
            other => other,
        })
    }
    fn deserialize_entity(&self, _c: &Context, v: Value) -> Result<Value> {
        Ok(match v {
            Value::String(s) => Value::String(s.strip_prefix("wire:").unwrap_or(&s).to_owned()),
            other => other,
        })
    }
    fn serialize_context(&self, c: &Context) -> Result<Context> {
        Ok(c.clone().with("serialized", true))
    }
    fn deserialize_context(&self, c: Context) -> Result<Context> {
        Ok(c.with("deserialized", true))
    }
}

#[derive(serde::Deserialize)]
struct S {
    s: String,
}

/// Calls `echo(s="hi")` with the context `{"user": "u"}`.
async fn echo_hi_as_u(c: &RpcClient) -> String {
    c.call(
        &Context::new().with("user", "u"),
        "echo",
        serde_json::json!({"s": "hi"}),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn serializers_apply_on_both_sides() {
    let t = transport("serializer").await;
    let seen = Arc::new(std::sync::Mutex::new(None::<(String, Context)>));
    let ep = {
        let seen = seen.clone();
        Endpoint::new().method("echo", move |c: Context, a: S| {
            let seen = seen.clone();
            async move {
                *seen.lock().unwrap() = Some((a.s.clone(), c));
                Ok(a.s)
            }
        })
    };
    let s = RpcServer::builder(t.clone(), Target::new("ser").with_server("s1"))
        .endpoint(ep)
        .serializer(Arc::new(Tagging))
        .build()
        .unwrap();
    s.start().await.unwrap();
    let c = RpcClient::builder(t.clone(), Target::new("ser"))
        .serializer(Arc::new(Tagging))
        .build();
    let r = echo_hi_as_u(&c).await;
    assert_eq!(
        r, "hi",
        "result serialized by the server, deserialized by the client"
    );
    let (arg, ctx) = seen.lock().unwrap().clone().unwrap();
    assert_eq!(
        arg, "hi",
        "argument serialized by the client, deserialized by the server"
    );
    assert_eq!(ctx.get("user"), Some(&Value::from("u")));
    assert_eq!(ctx.get("serialized"), Some(&Value::from(true)));
    assert_eq!(ctx.get("deserialized"), Some(&Value::from(true)));
    assert_eq!(ctx.get("client_timeout"), Some(&Value::Null));

    // Without a serializer on the server, the handler sees the wire form.
    let raw = RpcServer::builder(t.clone(), Target::new("ser2").with_server("s1"))
        .endpoint(Endpoint::new().method("echo", |_c: Context, a: S| async move { Ok(a.s) }))
        .build()
        .unwrap();
    raw.start().await.unwrap();
    let plain = RpcClient::new(t.clone(), Target::new("ser2"));
    let tagged_client = RpcClient::builder(t.clone(), Target::new("ser2"))
        .serializer(Arc::new(Tagging))
        .build();
    let r: String = tagged_client
        .call(&Context::new(), "echo", serde_json::json!({"s": "x"}))
        .await
        .unwrap();
    assert_eq!(r, "x", "wire:x came back and the client untagged it");
    let r: String = plain
        .call(&Context::new(), "echo", serde_json::json!({"s": "x"}))
        .await
        .unwrap();
    assert_eq!(r, "x");
    shutdown(&s).await;
    shutdown(&raw).await;
}

/// Serializes results with the request context: each string result gets
/// the caller's `user` appended.
struct ByUser;

impl Serializer for ByUser {
    fn serialize_entity(&self, c: &Context, v: Value) -> Result<Value> {
        let user = c.get("user").and_then(Value::as_str).unwrap_or("?");
        Ok(match v {
            Value::String(s) => Value::String(format!("{s} for {user}")),
            other => other,
        })
    }
    fn deserialize_entity(&self, _c: &Context, v: Value) -> Result<Value> {
        Ok(v)
    }
    fn serialize_context(&self, c: &Context) -> Result<Context> {
        Ok(c.clone())
    }
    fn deserialize_context(&self, c: Context) -> Result<Context> {
        Ok(c)
    }
}

#[tokio::test]
async fn a_result_is_serialized_with_the_request_context() {
    let t = transport("serializer-ctx").await;
    let s = RpcServer::builder(t.clone(), Target::new("ser3").with_server("s1"))
        .endpoint(
            Endpoint::new().method("echo", |c: Context, a: S| async move {
                // The endpoint owns its context; the serializer still sees it.
                assert_eq!(c.get("user"), Some(&Value::from("u")));
                Ok(a.s)
            }),
        )
        .serializer(Arc::new(ByUser))
        .build()
        .unwrap();
    s.start().await.unwrap();
    let c = RpcClient::new(t.clone(), Target::new("ser3"));
    let r = echo_hi_as_u(&c).await;
    assert_eq!(r, "hi for u");
    shutdown(&s).await;
}
