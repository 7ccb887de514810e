//! A client and a server on the in-memory `fake://` transport.
//!
//! Run with `cargo run -p om-rpc --example rpc_fake`; add
//! `RUST_LOG=om_rpc=debug` to see the call and dispatch spans.

use om_rpc::om_core::{Context, Target};
use om_rpc::{Endpoint, HandlerError, RemoteErrorExt, RpcClient, RpcServer, Transport};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

#[derive(Serialize, Deserialize, Debug)]
struct Sum {
    sum: i64,
}

#[tokio::main]
async fn main() -> om_rpc::om_core::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let transport = Transport::from_url("fake://").await?;

    // The server: topic "calc", server name "host1", one endpoint.
    let endpoint = Endpoint::new()
        .version("1.2")
        .method("add", |_ctx: Context, x: Add| async move {
            Ok(Sum { sum: x.a + x.b })
        })
        .method("div", |_ctx: Context, x: Add| async move {
            if x.b == 0 {
                return Err(HandlerError::builtin(
                    "ZeroDivisionError",
                    "division by zero",
                ));
            }
            Ok(x.a / x.b)
        });
    let server = RpcServer::builder(transport.clone(), Target::new("calc").with_server("host1"))
        .endpoint(endpoint)
        .build()?;
    server.start().await?;

    // The client.
    let client = RpcClient::builder(transport, Target::new("calc").with_version("1.1"))
        .timeout(Duration::from_secs(5))
        .build();
    let ctxt = Context::new().with("user", "demo");

    let sum: Sum = client
        .call(&ctxt, "add", serde_json::json!({"a": 2, "b": 40}))
        .await?;
    println!("add(a=2, b=40) = {sum:?}");

    match client
        .call_value(&ctxt, "div", serde_json::json!({"a": 1, "b": 0}))
        .await
    {
        Err(e) if e.is_remote_class("ZeroDivisionError") => {
            println!("div(a=1, b=0) failed remotely: {e}")
        }
        other => println!("div(a=1, b=0) = {other:?}"),
    }

    client
        .cast(&ctxt, "add", serde_json::json!({"a": 1, "b": 1}))
        .await?;
    println!("cast add(a=1, b=1) sent");

    server.stop().await?;
    server.wait().await?;
    println!("server stopped");
    Ok(())
}
