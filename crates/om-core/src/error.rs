//! The one error type of om, with variants that map to oslo.messaging's
//! exception classes.
//!
//! Every variant has a stable name ([`Error::oslo_name`]) equal to the Python
//! class a Python user would catch for the same condition, so logs, the CLI
//! and tests can speak oslo's vocabulary.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Shorthand for `Result<T, om_core::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An exception raised by a remote RPC endpoint, as carried in a reply's
/// `failure` field (see `wire-rabbit.md` §9).
///
/// `exc_type` and `module` are the Python class and module names (`ValueError`
/// / `builtins`, `NoSuchMethod` / `oslo_messaging.rpc.dispatcher`, ...).
///
/// [`RemoteError::to_failure_json`] and [`RemoteError::from_failure_json`]
/// convert to and from the reply's `failure` string (module
/// [`crate::failure`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteError {
    /// Exception class name, e.g. `ValueError`.
    pub exc_type: String,
    /// Python module of the class, e.g. `builtins`.
    pub module: String,
    /// `str(exception)` on the remote side.
    pub value: String,
    /// Formatted traceback lines.
    pub traceback: Vec<String>,
    /// Positional constructor arguments.
    pub args: Vec<serde_json::Value>,
    /// Keyword constructor arguments.
    pub kwargs: serde_json::Map<String, serde_json::Value>,
}

impl RemoteError {
    /// A remote error with the given class, module and message, no traceback,
    /// and `args = [message]` (what Python records for most exceptions).
    pub fn new(
        exc_type: impl Into<String>,
        module: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        let value = value.into();
        RemoteError {
            exc_type: exc_type.into(),
            module: module.into(),
            args: vec![serde_json::Value::String(value.clone())],
            value,
            traceback: Vec::new(),
            kwargs: serde_json::Map::new(),
        }
    }

    /// Whether this is the named class from the named module (`exceptions` is
    /// treated as `builtins`, as oslo does).
    pub fn is(&self, module: &str, exc_type: &str) -> bool {
        let m = if self.module == "exceptions" {
            "builtins"
        } else {
            self.module.as_str()
        };
        m == module && self.exc_type == exc_type
    }
}

impl std::fmt::Display for RemoteError {
    /// Rendered like Python's `RemoteError.__str__`:
    /// `Remote error: <exc_type> <value>\n<traceback list>.`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Remote error: {} {}\n{}.",
            self.exc_type,
            self.value,
            python_list_repr(&self.traceback)
        )
    }
}

impl std::error::Error for RemoteError {}

/// Renders a list of strings the way Python's `repr(list)` does
/// (`['a\n', 'b']`), which is how oslo prints remote tracebacks.
pub fn python_list_repr(items: &[String]) -> String {
    let mut out = String::from("[");
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let quote = if s.contains('\'') && !s.contains('"') {
            '"'
        } else {
            '\''
        };
        out.push(quote);
        for c in s.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c == quote => {
                    out.push('\\');
                    out.push(c);
                }
                c => out.push(c),
            }
        }
        out.push(quote);
    }
    out.push(']');
    out
}

/// The errors of om. Non-exhaustive: new variants may be added.
///
/// See [`Error::oslo_name`] for the oslo.messaging class of each variant.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Base oslo error with a message (`MessagingException`), e.g. a
    /// malformed version string given to `prepare`.
    #[error("{0}")]
    Messaging(String),

    /// A call got no final reply in time, or its call monitor expired
    /// (`MessagingTimeout`).
    #[error("Timed out waiting for a reply to message ID {msg_id} after {elapsed:?}")]
    MessagingTimeout {
        /// The `_msg_id` of the call.
        msg_id: String,
        /// How long the caller waited.
        elapsed: Duration,
    },

    /// Sending failed after the allowed retries (`MessageDeliveryFailure`).
    #[error("message delivery failed: {0}")]
    MessageDeliveryFailure(String),

    /// A target lacks a required field or is used in a way it cannot be
    /// (`InvalidTarget`).
    #[error("invalid target: {reason} ({target})")]
    InvalidTarget {
        /// What is wrong.
        reason: String,
        /// The target, rendered.
        target: String,
    },

    /// A `mandatory` publish was returned by the broker (`MessageUndeliverable`).
    #[error(
        "message undeliverable: no queue for exchange {exchange:?} routing key {routing_key:?}"
    )]
    MessageUndeliverable {
        /// Exchange published to.
        exchange: String,
        /// Routing key used.
        routing_key: String,
    },

    /// A transport URL could not be parsed (`InvalidTransportURL`). The URL
    /// is stored with its passwords masked.
    #[error("invalid transport URL {url:?}: {reason}")]
    InvalidTransportUrl {
        /// The offending URL, passwords replaced by `****`.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// No driver is registered for the URL's scheme, or it failed to load
    /// (`DriverLoadFailure`).
    #[error("failed to load driver {driver:?}: {reason}")]
    DriverLoadFailure {
        /// The driver name (the URL scheme before any `+`).
        driver: String,
        /// Why.
        reason: String,
    },

    /// The remote endpoint raised an exception (`RemoteError`, or the
    /// re-created class when its module is allowed).
    #[error(transparent)]
    Remote(#[from] RemoteError),

    /// The request version is not compatible with the client's version cap
    /// (`RPCVersionCapError`).
    #[error("Requested message version, {version} is incompatible.  It needs to be equal in major version and less than or equal in minor version as the specified version cap {version_cap}.")]
    RpcVersionCap {
        /// Version of the request.
        version: String,
        /// The client's cap.
        version_cap: String,
    },

    /// No endpoint exposes the method (`NoSuchMethod`).
    #[error("Endpoint does not support RPC method {method}")]
    NoSuchMethod {
        /// The method requested.
        method: String,
    },

    /// No endpoint matches namespace and version (`UnsupportedVersion`).
    #[error("Endpoint does not support RPC version {version}.{}", method.as_ref().map(|m| format!(" Attempted method: {m}")).unwrap_or_default())]
    UnsupportedVersion {
        /// The version requested.
        version: String,
        /// The method, when known.
        method: Option<String>,
    },

    /// A server or listener could not subscribe (`ServerListenError`).
    #[error("failed to listen on {target}: {reason}")]
    ServerListen {
        /// The target, rendered.
        target: String,
        /// Why.
        reason: String,
    },

    /// A lifecycle step did not complete in time (`TaskTimeout`).
    #[error("{0}")]
    TaskTimeout(String),

    /// Invalid configuration (`ConfigurationError`). The message names the
    /// option and what was expected.
    #[error("configuration error: {0}")]
    Configuration(String),

    /// The driver does not support this operation (Python raises
    /// `NotImplementedError`), e.g. RPC on Kafka or pools on AMQP 1.0.
    #[error("not supported by the {driver} driver: {what}")]
    NotSupported {
        /// Driver name.
        driver: String,
        /// What is not supported and, where there is one, the remedy.
        what: String,
    },

    /// A message from the wire could not be decoded (oslo logs and drops
    /// these; om reports them with this variant).
    #[error("malformed message: {0}")]
    MalformedMessage(String),

    /// The envelope's `oslo.version` is not compatible with 2.0
    /// (`UnsupportedRpcEnvelopeVersion`).
    #[error("unsupported envelope version {0:?}")]
    UnsupportedEnvelopeVersion(String),

    /// A value could not be (de)serialized (`TypeError` on the Python side
    /// for bad arguments).
    #[error("serialization error: {0}")]
    Serialization(String),

    /// A driver-level failure talking to the broker (`TransportDriverError`;
    /// wrapped by oslo as `ClientSendError` when sending).
    #[error("{driver} transport error: {message}")]
    Transport {
        /// Driver name.
        driver: String,
        /// Description (never contains a password).
        message: String,
        /// Whether retrying may succeed (connection lost, broker restarting).
        retryable: bool,
    },

    /// The transport or server was shut down.
    #[error("transport closed")]
    Closed,
}

impl Error {
    /// The oslo.messaging exception class name this error corresponds to.
    /// Stable: safe to match on and to print.
    pub fn oslo_name(&self) -> &'static str {
        match self {
            Error::Messaging(_) => "MessagingException",
            Error::MessagingTimeout { .. } => "MessagingTimeout",
            Error::MessageDeliveryFailure(_) => "MessageDeliveryFailure",
            Error::InvalidTarget { .. } => "InvalidTarget",
            Error::MessageUndeliverable { .. } => "MessageUndeliverable",
            Error::InvalidTransportUrl { .. } => "InvalidTransportURL",
            Error::DriverLoadFailure { .. } => "DriverLoadFailure",
            Error::Remote(_) => "RemoteError",
            Error::RpcVersionCap { .. } => "RPCVersionCapError",
            Error::NoSuchMethod { .. } => "NoSuchMethod",
            Error::UnsupportedVersion { .. } => "UnsupportedVersion",
            Error::ServerListen { .. } => "ServerListenError",
            Error::TaskTimeout(_) => "TaskTimeout",
            Error::Configuration(_) => "ConfigurationError",
            Error::NotSupported { .. } => "NotImplementedError",
            Error::MalformedMessage(_) => "MessagingException",
            Error::UnsupportedEnvelopeVersion(_) => "UnsupportedRpcEnvelopeVersion",
            Error::Serialization(_) => "TypeError",
            Error::Transport { .. } => "TransportDriverError",
            Error::Closed => "MessagingException",
        }
    }

    /// The Python module of [`Error::oslo_name`] (`builtins` for Python
    /// built-ins such as `TypeError`).
    pub fn oslo_module(&self) -> &'static str {
        match self {
            Error::NoSuchMethod { .. } | Error::UnsupportedVersion { .. } => {
                "oslo_messaging.rpc.dispatcher"
            }
            Error::Serialization(_) | Error::NotSupported { .. } => "builtins",
            Error::Configuration(_) => "oslo_messaging.exceptions",
            _ => "oslo_messaging.exceptions",
        }
    }

    /// Whether retrying the operation may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Transport {
                retryable: true,
                ..
            }
        )
    }

    /// Shorthand for a [`Error::Transport`] error.
    pub fn transport(
        driver: impl Into<String>,
        message: impl Into<String>,
        retryable: bool,
    ) -> Self {
        Error::Transport {
            driver: driver.into(),
            message: message.into(),
            retryable,
        }
    }

    /// Shorthand for an [`Error::InvalidTarget`] error.
    pub fn invalid_target(reason: impl Into<String>, target: &crate::Target) -> Self {
        Error::InvalidTarget {
            reason: reason.into(),
            target: target.to_string(),
        }
    }

    /// Converts a dispatcher error into the [`RemoteError`] a Python server
    /// would send for it (class, module, message, `args=[message]`).
    pub fn to_remote(&self) -> RemoteError {
        match self {
            Error::Remote(r) => r.clone(),
            other => RemoteError::new(other.oslo_name(), other.oslo_module(), other.to_string()),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Serialization(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatcher_messages_match_oslo() {
        let e = Error::NoSuchMethod {
            method: "nosuch".into(),
        };
        assert_eq!(e.to_string(), "Endpoint does not support RPC method nosuch");
        let e = Error::UnsupportedVersion {
            version: "1.6".into(),
            method: Some("echo".into()),
        };
        assert_eq!(
            e.to_string(),
            "Endpoint does not support RPC version 1.6. Attempted method: echo"
        );
        let e = Error::UnsupportedVersion {
            version: "2.0".into(),
            method: None,
        };
        assert_eq!(e.to_string(), "Endpoint does not support RPC version 2.0.");
        let r = e.to_remote();
        assert_eq!(r.module, "oslo_messaging.rpc.dispatcher");
        assert_eq!(r.exc_type, "UnsupportedVersion");
    }

    #[test]
    fn remote_error_display_like_python() {
        let mut r = RemoteError::new(
            "InstanceNotFound",
            "nova.exception",
            "Instance 1 could not be found.",
        );
        r.traceback = vec!["Traceback...\n".into()];
        assert_eq!(
            r.to_string(),
            "Remote error: InstanceNotFound Instance 1 could not be found.\n['Traceback...\\n']."
        );
        assert!(RemoteError::new("ValueError", "exceptions", "x").is("builtins", "ValueError"));
    }
}
