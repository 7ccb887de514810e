//! Errors raised by endpoint methods ([`HandlerError`]) and helpers to
//! inspect remote failures on the client side ([`RemoteErrorExt`],
//! [`RemoteException`]).

use om_driver_api::om_core::{Error, JsonObject, RemoteError, Value};
use std::fmt;

/// The module oslo.messaging's dispatcher errors live in.
pub const DISPATCHER_MODULE: &str = "oslo_messaging.rpc.dispatcher";

/// The Python module of built-in exceptions.
pub const BUILTINS: &str = "builtins";

/// An exception raised by an endpoint method, in the shape oslo.messaging
/// sends back to a caller: a Python class and module name, the message, a
/// traceback and the constructor's `args` / `kwargs`.
///
/// A Python caller re-creates built-in classes (`builtins`) and classes from
/// modules in its `allowed_remote_exmods`; anything else becomes its
/// `RemoteError`. So to make a Python client raise `ValueError`, return
/// [`HandlerError::value_error`].
///
/// ```
/// use om_rpc::HandlerError;
/// let e = HandlerError::value_error("bad value");
/// assert_eq!((e.class.as_str(), e.module.as_str()), ("ValueError", "builtins"));
/// let e = HandlerError::new("nova.exception", "InstanceNotFound", "Instance 1 could not be found.")
///     .with_kwarg("instance_id", 1);
/// assert_eq!(e.kwargs["instance_id"], 1);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerError {
    /// Exception class name, e.g. `ValueError`.
    pub class: String,
    /// Python module of the class, e.g. `builtins`.
    pub module: String,
    /// `str(exception)`.
    pub message: String,
    /// Traceback lines (each ending with a newline, as Python formats them).
    /// When empty the server sends a short synthetic traceback naming the
    /// method.
    pub traceback: Vec<String>,
    /// Positional constructor arguments; `None` means `[message]`.
    pub args: Option<Vec<Value>>,
    /// Keyword constructor arguments.
    pub kwargs: JsonObject,
    /// An expected failure (oslo's `@expected_exceptions`): the server logs
    /// it at debug level only; the caller sees it unchanged.
    pub expected: bool,
}

impl HandlerError {
    /// An exception of class `class` from Python module `module`.
    pub fn new(
        module: impl Into<String>,
        class: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        HandlerError {
            class: class.into(),
            module: module.into(),
            message: message.into(),
            traceback: Vec::new(),
            args: None,
            kwargs: JsonObject::new(),
            expected: false,
        }
    }

    /// A built-in Python exception (`builtins.<class>`).
    pub fn builtin(class: impl Into<String>, message: impl Into<String>) -> Self {
        HandlerError::new(BUILTINS, class, message)
    }

    /// `ValueError(message)`.
    pub fn value_error(message: impl Into<String>) -> Self {
        HandlerError::builtin("ValueError", message)
    }

    /// `TypeError(message)`; what Python reports for wrong arguments.
    pub fn type_error(message: impl Into<String>) -> Self {
        HandlerError::builtin("TypeError", message)
    }

    /// `KeyError(message)`.
    pub fn key_error(message: impl Into<String>) -> Self {
        HandlerError::builtin("KeyError", message)
    }

    /// `RuntimeError(message)`.
    pub fn runtime_error(message: impl Into<String>) -> Self {
        HandlerError::builtin("RuntimeError", message)
    }

    /// `NotImplementedError(message)`.
    pub fn not_implemented(message: impl Into<String>) -> Self {
        HandlerError::builtin("NotImplementedError", message)
    }

    /// `AttributeError(message)`.
    pub fn attribute_error(message: impl Into<String>) -> Self {
        HandlerError::builtin("AttributeError", message)
    }

    /// A `RuntimeError` carrying the display text of any Rust error.
    pub fn other(error: &(dyn std::error::Error + 'static)) -> Self {
        HandlerError::runtime_error(error.to_string())
    }

    /// Sets the traceback lines.
    pub fn with_traceback<I, S>(mut self, lines: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.traceback = lines.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the positional constructor arguments (default `[message]`).
    pub fn with_args<I, V>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: Into<Value>,
    {
        self.args = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// Adds one keyword constructor argument.
    pub fn with_kwarg(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.kwargs.insert(name.into(), value.into());
        self
    }

    /// Marks the error as expected (logged at debug level only, as oslo's
    /// `@expected_exceptions` does).
    pub fn expected(mut self) -> Self {
        self.expected = true;
        self
    }

    /// The failure a Python server would send for this exception, raised by
    /// method `method`: class and module with a trailing `_Remote` stripped
    /// when both carry it (re-raising a remote exception forwards the
    /// original type), and a synthetic traceback when none was given.
    pub fn into_remote(self, method: &str) -> RemoteError {
        let (class, module) = strip_remote_suffix(self.class, self.module);
        let traceback = if self.traceback.is_empty() {
            synthetic_traceback(method, &class, &self.message)
        } else {
            self.traceback
        };
        RemoteError {
            args: self
                .args
                .unwrap_or_else(|| vec![Value::String(self.message.clone())]),
            exc_type: class,
            module,
            value: self.message,
            traceback,
            kwargs: self.kwargs,
        }
    }
}

fn strip_remote_suffix(class: String, module: String) -> (String, String) {
    const SUFFIX: &str = "_Remote";
    match (class.strip_suffix(SUFFIX), module.strip_suffix(SUFFIX)) {
        (Some(c), Some(m)) => (c.to_owned(), m.to_owned()),
        _ => (class, module),
    }
}

/// A short traceback in Python's layout, for failures that have none.
pub(crate) fn synthetic_traceback(method: &str, class: &str, message: &str) -> Vec<String> {
    vec![
        "Traceback (most recent call last):\n".to_owned(),
        format!("  om-rpc endpoint method \"{method}\"\n"),
        if message.is_empty() {
            format!("{class}\n")
        } else {
            format!("{class}: {message}\n")
        },
    ]
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}: {}", self.module, self.class, self.message)
    }
}

impl std::error::Error for HandlerError {}

impl From<Error> for HandlerError {
    /// Keeps the class and module oslo uses for the error (a forwarded
    /// [`Error::Remote`] keeps the remote class, module, traceback, args and
    /// kwargs).
    fn from(e: Error) -> Self {
        let r = e.to_remote();
        HandlerError::from(r)
    }
}

impl From<RemoteError> for HandlerError {
    fn from(r: RemoteError) -> Self {
        HandlerError {
            class: r.exc_type,
            module: r.module,
            message: r.value,
            traceback: r.traceback,
            args: Some(r.args),
            kwargs: r.kwargs,
            expected: false,
        }
    }
}

impl From<serde_json::Error> for HandlerError {
    /// A `TypeError`, as Python reports values it cannot convert.
    fn from(e: serde_json::Error) -> Self {
        HandlerError::type_error(e.to_string())
    }
}

/// Client-side helpers to look at remote failures in an [`Error`].
///
/// ```
/// use om_rpc::RemoteErrorExt;
/// use om_rpc::om_core::{Error, RemoteError};
/// let e = Error::Remote(RemoteError::new("NoSuchMethod", "oslo_messaging.rpc.dispatcher", "x"));
/// assert!(e.is_remote_class("NoSuchMethod"));
/// assert!(e.is_remote("oslo_messaging.rpc.dispatcher", "NoSuchMethod"));
/// ```
pub trait RemoteErrorExt {
    /// The remote failure, if this is one.
    fn remote(&self) -> Option<&RemoteError>;

    /// Whether this is a remote failure of the given class name (any module).
    fn is_remote_class(&self, class: &str) -> bool {
        self.remote().is_some_and(|r| r.exc_type == class)
    }

    /// Whether this is a remote failure of the given module and class
    /// (`exceptions` counts as `builtins`).
    fn is_remote(&self, module: &str, class: &str) -> bool {
        self.remote().is_some_and(|r| r.is(module, class))
    }
}

impl RemoteErrorExt for Error {
    fn remote(&self) -> Option<&RemoteError> {
        match self {
            Error::Remote(r) => Some(r),
            _ => None,
        }
    }
}

/// How a Python client with the same `allowed_remote_exmods` would surface a
/// remote failure (see [`crate::RpcClient::remote_exception`]).
///
/// om always returns [`Error::Remote`]; this tells whether Python would have
/// re-raised the remote class itself ([`RemoteException::Typed`]: module
/// `builtins`/`exceptions` or listed in `allowed_remote_exmods`) or its
/// generic `RemoteError` ([`RemoteException::Opaque`]).
///
/// om decides by the module alone, since it cannot import Python classes.
/// Python also falls back to `RemoteError` when an allowed module lacks the
/// class, the name is not an exception class, or its constructor rejects
/// the sent arguments; om still reports those as `Typed`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RemoteException<'a> {
    /// The module is allowed: Python re-raises the class (or a `_Remote`
    /// subclass of it).
    Typed(&'a RemoteError),
    /// The module is not allowed: Python raises `RemoteError`.
    Opaque(&'a RemoteError),
}

impl<'a> RemoteException<'a> {
    /// The underlying failure.
    pub fn error(&self) -> &'a RemoteError {
        match self {
            RemoteException::Typed(r) | RemoteException::Opaque(r) => r,
        }
    }

    /// Whether Python would re-raise the remote class.
    pub fn is_typed(&self) -> bool {
        matches!(self, RemoteException::Typed(_))
    }

    /// The class name Python would raise: the remote class when typed,
    /// `RemoteError` otherwise.
    pub fn python_class(&self) -> &'a str {
        match self {
            RemoteException::Typed(r) => r.exc_type.as_str(),
            RemoteException::Opaque(_) => "RemoteError",
        }
    }

    /// `str(exception)` on the Python side: message, newline and the
    /// traceback lines joined by newlines when typed; `Remote error: <class>
    /// <message>\n<traceback list>.` otherwise.
    pub fn python_message(&self) -> String {
        match self {
            RemoteException::Typed(r) => format!("{}\n{}", r.value, r.traceback.join("\n")),
            RemoteException::Opaque(r) => r.to_string(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn remote_suffix_stripped_only_when_both_carry_it() {
        let r = HandlerError::new("nova.exception_Remote", "InstanceNotFound_Remote", "x")
            .into_remote("m");
        assert_eq!(
            (r.exc_type.as_str(), r.module.as_str()),
            ("InstanceNotFound", "nova.exception")
        );
        let r = HandlerError::new("nova.exception", "Foo_Remote", "x").into_remote("m");
        assert_eq!(r.exc_type, "Foo_Remote");
    }

    #[test]
    fn defaults_like_python() {
        let r = HandlerError::value_error("bad value").into_remote("echo");
        assert_eq!(r.args, vec![Value::from("bad value")]);
        assert!(r.kwargs.is_empty());
        assert_eq!(
            r.traceback.last().map(String::as_str),
            Some("ValueError: bad value\n")
        );
        let e = HandlerError::from(Error::NoSuchMethod { method: "x".into() });
        assert_eq!(e.module, DISPATCHER_MODULE);
        assert_eq!(e.class, "NoSuchMethod");
    }
}
