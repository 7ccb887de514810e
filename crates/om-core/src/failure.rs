//! The `failure` string of RPC replies (`wire-rabbit.md` §9): how a remote
//! exception travels, as [`RemoteError::to_failure_json`] and
//! [`RemoteError::from_failure_json`].
//!
//! The string is the JSON encoding (Python `json.dumps` style, see
//! [`crate::envelope::to_python_json`]) of an object with, in this order:
//!
//! | key | value |
//! | --- | --- |
//! | `class` | exception class name |
//! | `module` | Python module of the class (`builtins` for built-ins) |
//! | `message` | `str(exception)` |
//! | `tb` | list of formatted traceback lines |
//! | `args` | positional arguments of the exception |
//! | `kwargs` | keyword arguments (`{}` when the class has none) |
//!
//! That is byte for byte what oslo.messaging's `serialize_remote_exception`
//! writes for the same values (checked against the library in
//! `tests/python_fixtures.rs`).
//!
//! ```
//! use om_core::RemoteError;
//! let err = RemoteError::new("ValueError", "builtins", "bad value");
//! let text = err.to_failure_json();
//! assert_eq!(
//!     text,
//!     r#"{"class": "ValueError", "module": "builtins", "message": "bad value", "tb": [], "args": ["bad value"], "kwargs": {}}"#
//! );
//! assert_eq!(RemoteError::from_failure_json(&text).unwrap(), err);
//! ```

use crate::error::RemoteError;
use crate::{Error, JsonObject, Result};
use serde_json::Value;

/// Suffix oslo gives to the class and module of re-created remote
/// exceptions; stripped again when such an exception is sent on.
pub const REMOTE_SUFFIX: &str = "_Remote";

/// The module Python 3 reports for built-in exceptions.
pub const BUILTINS_MODULE: &str = "builtins";

/// The Python 2 name of [`BUILTINS_MODULE`], still accepted on receipt.
pub const PY2_EXCEPTIONS_MODULE: &str = "exceptions";

impl RemoteError {
    /// Encodes the error as the `failure` string of a reply.
    ///
    /// As Python does, a `_Remote` suffix is stripped from the class and the
    /// module when *both* carry it (an exception that was itself re-created
    /// from a remote one goes on under its original name).
    pub fn to_failure_json(&self) -> String {
        let (class, module) = match (
            self.exc_type.strip_suffix(REMOTE_SUFFIX),
            self.module.strip_suffix(REMOTE_SUFFIX),
        ) {
            (Some(c), Some(m)) => (c, m),
            _ => (self.exc_type.as_str(), self.module.as_str()),
        };
        let mut obj = JsonObject::with_capacity(6);
        obj.insert("class".into(), Value::String(class.to_owned()));
        obj.insert("module".into(), Value::String(module.to_owned()));
        obj.insert("message".into(), Value::String(self.value.clone()));
        obj.insert(
            "tb".into(),
            Value::Array(self.traceback.iter().cloned().map(Value::String).collect()),
        );
        obj.insert("args".into(), Value::Array(self.args.clone()));
        obj.insert("kwargs".into(), Value::Object(self.kwargs.clone()));
        let value = Value::Object(obj);
        // Encoding a `Value` into memory cannot fail; should it ever, fall
        // back to serde_json's own (compact) form rather than lose the error.
        crate::envelope::to_python_json_string(&value).unwrap_or_else(|_| value.to_string())
    }

    /// Decodes the `failure` string of a reply.
    ///
    /// Lenient as Python's `deserialize_remote_exception` is: missing keys
    /// get defaults (class, module and message `""`, no traceback, no
    /// arguments), the module `exceptions` (Python 2) becomes `builtins`,
    /// and values of unexpected types are kept as well as they can be (a
    /// non-string message or traceback line as its JSON text, a string
    /// traceback as one line, a non-list `args` as a single argument).
    ///
    /// Errors ([`Error::MalformedMessage`]) only when the text is not JSON
    /// or not a JSON object.
    pub fn from_failure_json(text: &str) -> Result<RemoteError> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            Error::MalformedMessage(format!("the failure of a reply is not valid JSON: {e}"))
        })?;
        let Value::Object(mut obj) = value else {
            return Err(Error::MalformedMessage(format!(
                "the failure of a reply must be a JSON object, got {}",
                crate::context::json_kind(&value)
            )));
        };
        let exc_type = text_of(obj.shift_remove("class"));
        let mut module = text_of(obj.shift_remove("module"));
        if module == PY2_EXCEPTIONS_MODULE {
            module = BUILTINS_MODULE.to_owned();
        }
        let value = text_of(obj.shift_remove("message"));
        let traceback = match obj.shift_remove("tb") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(lines)) => lines.into_iter().map(|l| text_of(Some(l))).collect(),
            Some(other) => vec![text_of(Some(other))],
        };
        let args = match obj.shift_remove("args") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items,
            Some(other) => vec![other],
        };
        let kwargs = match obj.shift_remove("kwargs") {
            Some(Value::Object(map)) => map,
            _ => JsonObject::new(),
        };
        Ok(RemoteError {
            exc_type,
            module,
            value,
            traceback,
            args,
            kwargs,
        })
    }

    /// The text a Python client puts into a re-created exception:
    /// `message + "\n" + "\n".join(tb)`. A built-in exception (say
    /// `ValueError`) arrives on a Python caller with this as its first
    /// argument.
    pub fn rebuilt_message(&self) -> String {
        let mut out = self.value.clone();
        out.push('\n');
        out.push_str(&self.traceback.join("\n"));
        out
    }

    /// Whether a Python client re-creates this exception as a built-in
    /// class (module `builtins`, or Python 2's `exceptions`) rather than as
    /// `RemoteError` (when the module is not in its `allowed_remote_exmods`).
    pub fn is_builtin(&self) -> bool {
        self.module == BUILTINS_MODULE || self.module == PY2_EXCEPTIONS_MODULE
    }
}

/// A JSON value as text: strings as they are, `null`/absent as `""`,
/// anything else as its JSON form.
fn text_of(v: Option<Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_and_format_match_python() {
        let mut e = RemoteError::new(
            "NoSuchMethod",
            "oslo_messaging.rpc.dispatcher",
            "Endpoint does not support RPC method x",
        );
        e.traceback = vec![
            "Traceback (most recent call last):\n".into(),
            "  File \"a.py\"\n".into(),
        ];
        e.kwargs.insert("k".into(), json!(1.5));
        assert_eq!(
            e.to_failure_json(),
            "{\"class\": \"NoSuchMethod\", \"module\": \"oslo_messaging.rpc.dispatcher\", \
             \"message\": \"Endpoint does not support RPC method x\", \
             \"tb\": [\"Traceback (most recent call last):\\n\", \"  File \\\"a.py\\\"\\n\"], \
             \"args\": [\"Endpoint does not support RPC method x\"], \"kwargs\": {\"k\": 1.5}}"
        );
    }

    #[test]
    fn remote_suffix_stripped_only_when_both_have_it() {
        let both = RemoteError::new("NotFound_Remote", "nova.exception_Remote", "x");
        let v: Value = serde_json::from_str(&both.to_failure_json()).unwrap();
        assert_eq!(v["class"], "NotFound");
        assert_eq!(v["module"], "nova.exception");
        let one = RemoteError::new("NotFound_Remote", "nova.exception", "x");
        let v: Value = serde_json::from_str(&one.to_failure_json()).unwrap();
        assert_eq!(v["class"], "NotFound_Remote");
        assert_eq!(v["module"], "nova.exception");
    }

    #[test]
    fn lenient_decoding() {
        let e = RemoteError::from_failure_json("{}").unwrap();
        assert_eq!(
            (e.exc_type.as_str(), e.module.as_str(), e.value.as_str()),
            ("", "", "")
        );
        assert!(e.traceback.is_empty() && e.args.is_empty() && e.kwargs.is_empty());

        let e = RemoteError::from_failure_json(
            r#"{"class": 5, "module": "exceptions", "message": null, "tb": "one line", "args": "a", "kwargs": [1]}"#,
        )
        .unwrap();
        assert_eq!(e.exc_type, "5");
        assert_eq!(e.module, "builtins");
        assert!(e.is("builtins", "5") && e.is_builtin());
        assert_eq!(e.value, "");
        assert_eq!(e.traceback, vec!["one line".to_owned()]);
        assert_eq!(e.args, vec![json!("a")]);
        assert!(e.kwargs.is_empty());

        let e = RemoteError::from_failure_json(r#"{"tb": ["a\n", 7, null]}"#).unwrap();
        assert_eq!(
            e.traceback,
            vec!["a\n".to_owned(), "7".to_owned(), String::new()]
        );
    }

    #[test]
    fn not_an_object_is_a_typed_error() {
        for bad in ["", "nope", "[1]", "\"s\"", "null", "{\"class\": "] {
            let err = RemoteError::from_failure_json(bad).unwrap_err();
            assert!(
                matches!(err, Error::MalformedMessage(_)),
                "{bad:?}: {err:?}"
            );
        }
    }

    #[test]
    fn rebuilt_message_like_python() {
        let mut e = RemoteError::new("ValueError", "builtins", "bad value");
        e.traceback = vec!["tb1\n".into(), "tb2\n".into()];
        assert_eq!(e.rebuilt_message(), "bad value\ntb1\n\ntb2\n");
        assert_eq!(
            RemoteError::new("ValueError", "builtins", "old").rebuilt_message(),
            "old\n"
        );
    }
}
