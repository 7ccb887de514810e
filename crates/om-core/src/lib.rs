//! # om-core
//!
//! The transport-independent model of om, a Rust implementation of OpenStack's
//! oslo.messaging: [`Target`], [`TransportUrl`], request [`Context`]s, the
//! message [`envelope`], [`serializer`]s, [`version`] compatibility,
//! notification [`Priority`], the [`Error`] type whose variants map to
//! oslo.messaging's exception classes, and the [`failure`] encoding of
//! remote exceptions.
//!
//! Nothing here talks to a broker; drivers (`om-driver-*`) and the RPC and
//! notification layers build on these types.
#![cfg_attr(docsrs, feature(doc_cfg))]
// `Error` carries a `RemoteError` inline; boxing it would change the public
// API, so the size lint is allowed here as in the other crates.
#![allow(clippy::result_large_err)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod context;
pub mod envelope;
pub mod error;
pub mod failure;
pub mod priority;
pub mod serializer;
pub mod target;
pub mod url;
pub mod version;

pub use context::{Context, RequestContext};
pub use error::{Error, RemoteError, Result};
pub use priority::Priority;
pub use serializer::{DynSerializer, NoOpSerializer, RequestContextSerializer, Serializer};
pub use target::Target;
pub use url::{BrokerAddress, TransportHost, TransportUrl};

/// A JSON object, the shape of every oslo.messaging message and context.
///
/// Key order is preserved (insertion order), as Python dicts do, so that
/// encoded messages match what the Python library produces byte for byte.
pub type JsonObject = serde_json::Map<String, serde_json::Value>;

/// Re-export of `serde_json::Value`, the dynamic value type of message bodies.
pub use serde_json::Value;

/// Returns a fresh uuid4 as 32 lowercase hex characters (oslo's `uuid4().hex`).
pub fn uuid_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Returns a fresh uuid4 in its dashed 36-character form (oslo's `str(uuid4())`).
pub fn uuid_dashed() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}
