//! Helpers shared by the om-rpc integration tests.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

pub mod scripted;

use om_rpc::om_core::{Context, Target};
use om_rpc::{Endpoint, RpcClient, RpcServer, Transport};
use serde::Deserialize;
use std::sync::atomic::{AtomicU64, Ordering};

/// A transport on a fresh, isolated fake virtual host.
pub async fn transport(name: &str) -> Transport {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    Transport::from_url(&format!("fake:///{name}-{n}-{}", std::process::id()))
        .await
        .expect("fake transport")
}

#[derive(Debug, Deserialize)]
pub struct EchoArgs {
    pub x: serde_json::Value,
}

/// An endpoint whose `echo(x)` returns `[tag, x]`.
pub fn tagged_echo(tag: &'static str) -> Endpoint {
    Endpoint::new().method("echo", move |_ctx: Context, a: EchoArgs| async move {
        Ok(serde_json::json!([tag, a.x]))
    })
}

/// Builds and starts a server for `topic`/`server` with the endpoints.
pub async fn start_server(
    transport: &Transport,
    topic: &str,
    server: &str,
    endpoints: Vec<Endpoint>,
) -> RpcServer {
    let s = RpcServer::builder(transport.clone(), Target::new(topic).with_server(server))
        .endpoints(endpoints)
        .build()
        .expect("server builds");
    s.start().await.expect("server starts");
    s
}

pub async fn shutdown(server: &RpcServer) {
    server.stop().await.expect("stop");
    server.wait().await.expect("wait");
}

pub fn client(transport: &Transport, topic: &str) -> RpcClient {
    RpcClient::builder(transport.clone(), Target::new(topic))
        .timeout(std::time::Duration::from_secs(10))
        .build()
}

pub fn ctx() -> Context {
    Context::new()
}

/// Polls `f` every 10 ms until it holds; panics after 60 s (a generous
/// bound: the machine running the tests may be busy).
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
