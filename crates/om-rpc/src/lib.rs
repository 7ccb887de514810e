//! # om-rpc
//!
//! RPC clients and servers with oslo.messaging's semantics, on any om
//! driver (`rabbit://`, `fake://`, ...), wire-compatible with Python
//! oslo.messaging 18.3.1 peers.
//!
//! * [`RpcClient`]: `call` (wait for one reply, with the overall timeout and
//!   the heartbeat-based call monitor), `cast` (fire and forget, fanout),
//!   `prepare` overlays, version caps. Remote failures come back as
//!   [`om_core::Error::Remote`]; see [`RemoteErrorExt`] and
//!   [`RpcClient::remote_exception`].
//! * [`RpcServer`]: subscribes to a target, dispatches requests to
//!   [`Endpoint`]s with oslo's namespace/version rules
//!   ([`RpcDispatcher`]), runs methods as tokio tasks bounded by a pool
//!   size, heartbeats long calls, replies, and shuts down gracefully.
//! * Endpoint methods are async closures with typed (serde) arguments and
//!   results; they fail with a [`HandlerError`] naming a Python class and
//!   module so Python callers re-create the exception.
//!
//! ```
//! use om_rpc::{Endpoint, RpcClient, RpcServer, om_core::{Context, Target}};
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let transport = om_rpc::Transport::from_url("fake:///lib-doc").await?;
//! #[derive(serde::Deserialize)]
//! struct Add { a: i64, b: i64 }
//! let server = RpcServer::builder(transport.clone(), Target::new("calc").with_server("s1"))
//!     .endpoint(Endpoint::new().method("add", |_ctx: Context, x: Add| async move { Ok(x.a + x.b) }))
//!     .build()?;
//! server.start().await?;
//! let client = RpcClient::new(transport, Target::new("calc"));
//! let sum: i64 = client.call(&Context::new(), "add", serde_json::json!({"a": 2, "b": 3})).await?;
//! assert_eq!(sum, 5);
//! server.stop().await?;
//! server.wait().await?;
//! # Ok::<(), om_rpc::om_core::Error>(()) }).unwrap();
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
mod dispatcher;
mod endpoint;
mod error;
mod server;

pub use client::{CallMonitorTimeout, Prepare, RpcClient, RpcClientBuilder, DEFAULT_TIMEOUT};
pub use dispatcher::{heartbeat_interval, AccessPolicy, Outcome, RpcDispatcher, PING_METHOD};
pub use endpoint::Endpoint;
pub use error::{HandlerError, RemoteErrorExt, RemoteException, BUILTINS, DISPATCHER_MODULE};
pub use server::{
    AckMode, RpcServer, RpcServerBuilder, ShutdownHandle, DEFAULT_DEDUP_WINDOW, DEFAULT_POOL_SIZE,
};

pub use om_driver_api::om_core;
pub use om_driver_api::{Retry, Transport, TransportOptions};
