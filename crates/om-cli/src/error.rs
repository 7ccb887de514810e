//! Exit codes, the CLI error type, and the scrubbing of secrets from
//! everything printed.

use om::Error;
use serde_json::{json, Value};
use std::fmt;
use std::sync::Mutex;

/// The exit status of `om`. Stable: scripts may rely on the numbers.
///
/// | code | meaning |
/// |------|---------|
/// | 0 | success |
/// | 1 | other failure (an unexpected driver error, output could not be written) |
/// | 2 | usage error: bad arguments, bad JSON (the message names the argument and the position), an impossible target |
/// | 3 | remote error: the remote method raised; stdout holds `{"error": {"class", "module", "message", "traceback"}}` |
/// | 4 | timeout: no reply within `--timeout` / `--call-monitor-timeout`, or `notify tail --timeout` expired before `--count` |
/// | 5 | connection failure: broker unreachable, connection refused, bad credentials, virtual host refused, retries exhausted |
/// | 6 | configuration error: unreadable or invalid `--config`, invalid transport URL, driver not compiled in |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// 0: success.
    Ok = 0,
    /// 1: any other failure.
    Failure = 1,
    /// 2: usage error (arguments, JSON, target).
    Usage = 2,
    /// 3: the remote method raised an exception.
    Remote = 3,
    /// 4: timed out.
    Timeout = 4,
    /// 5: could not connect to the broker (unreachable, refused, credentials).
    Connection = 5,
    /// 6: configuration error.
    Configuration = 6,
}

impl ExitCode {
    /// The numeric status.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// The exit-code table as shown at the end of `--help`.
pub(crate) const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  other failure (unexpected driver error, output could not be written)
  2  usage error: bad arguments, bad JSON (the message says which argument and where), impossible target
  3  remote error: the remote method raised; stdout has {\"error\": {\"class\", \"module\", \"message\", ...}}
  4  timeout: no reply within --timeout / --call-monitor-timeout (tail: --timeout before --count)
  5  connection failure: broker unreachable, connection refused, bad credentials, vhost refused
  6  configuration error: bad --config file or option, invalid transport URL, driver not compiled in";

/// A failure of a command: the exit code, a human-readable message (for
/// stderr) and, for RPC commands, the JSON document printed on stdout.
#[derive(Debug)]
pub(crate) struct CliError {
    pub(crate) code: ExitCode,
    pub(crate) message: String,
    pub(crate) json: Option<Value>,
}

impl CliError {
    pub(crate) fn new(code: ExitCode, message: impl Into<String>) -> Self {
        CliError {
            code,
            message: message.into(),
            json: None,
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        CliError::new(ExitCode::Usage, message)
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        CliError::new(ExitCode::Configuration, message)
    }

    pub(crate) fn connection(message: impl Into<String>) -> Self {
        CliError::new(ExitCode::Connection, message)
    }

    pub(crate) fn failure(message: impl Into<String>) -> Self {
        CliError::new(ExitCode::Failure, message)
    }

    /// Attaches the JSON error document printed on stdout.
    pub(crate) fn with_json(mut self, json: Value) -> Self {
        self.json = Some(json);
        self
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.message))
    }
}

/// The exit code for an om error.
pub(crate) fn classify(e: &Error) -> ExitCode {
    match e {
        Error::Remote(_) => ExitCode::Remote,
        Error::MessagingTimeout { .. } | Error::TaskTimeout(_) => ExitCode::Timeout,
        Error::Transport { .. } | Error::MessageDeliveryFailure(_) | Error::ServerListen { .. } => {
            ExitCode::Connection
        }
        Error::Configuration(_)
        | Error::InvalidTransportUrl { .. }
        | Error::DriverLoadFailure { .. } => ExitCode::Configuration,
        Error::InvalidTarget { .. }
        | Error::Serialization(_)
        | Error::RpcVersionCap { .. }
        | Error::Messaging(_)
        | Error::NotSupported { .. } => ExitCode::Usage,
        _ => ExitCode::Failure,
    }
}

/// The JSON error document of an om error, naming the exception as the
/// Python side would (`ValueError` from `builtins`, `MessagingTimeout` from
/// `oslo_messaging.exceptions`, ...).
pub(crate) fn error_json(e: &Error) -> Value {
    match e {
        Error::Remote(r) => json!({
            "error": {
                "class": r.exc_type,
                "module": r.module,
                "message": redact(&r.value),
                "remote": true,
                "traceback": r.traceback.iter().map(|l| redact(l)).collect::<Vec<_>>(),
            }
        }),
        other => json!({
            "error": {
                "class": other.oslo_name(),
                "module": other.oslo_module(),
                "message": redact(&other.to_string()),
                "remote": false,
            }
        }),
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        let code = classify(&e);
        let message = match &e {
            Error::Remote(r) => format!("remote error: {}: {}", r.exc_type, r.value),
            other => format!("{}: {other}", other.oslo_name()),
        };
        CliError {
            code,
            message,
            json: None,
        }
    }
}

#[cfg(feature = "config")]
impl From<om::config::ConfigError> for CliError {
    fn from(e: om::config::ConfigError) -> Self {
        CliError::config(format!("configuration error: {e}"))
    }
}

static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Remembers a secret (a password) so that it is replaced by `****`
/// wherever it would be printed.
pub(crate) fn register_secret(secret: &str) {
    if secret.len() < 3 {
        // Too short to search for without mangling ordinary text ("guest"
        // style defaults are longer); such a password is masked in URLs.
        return;
    }
    let mut forms = vec![secret.to_owned()];
    let encoded = percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    if encoded != secret {
        forms.push(encoded);
    }
    let mut all = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    for f in forms {
        if !all.contains(&f) {
            all.push(f);
        }
    }
    // Longest first, so that a secret containing another is replaced whole.
    all.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` with every registered secret replaced by `****` and URL
/// passwords masked.
pub(crate) fn redact(text: &str) -> String {
    let mut out = text.to_owned();
    let all = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    for s in all.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "****");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_scrubbed() {
        register_secret("s3cr/et!");
        assert_eq!(
            redact("bad password s3cr/et! here"),
            "bad password **** here"
        );
        assert_eq!(
            redact("url rabbit://u:s3cr%2Fet%21@h"),
            "url rabbit://u:****@h"
        );
    }

    #[test]
    fn codes_are_stable() {
        assert_eq!(
            classify(&Error::MessagingTimeout {
                msg_id: "x".into(),
                elapsed: Default::default()
            }),
            ExitCode::Timeout
        );
        assert_eq!(
            classify(&Error::Configuration("x".into())),
            ExitCode::Configuration
        );
        assert_eq!(
            classify(&Error::transport("rabbit", "down", true)),
            ExitCode::Connection
        );
        assert_eq!(ExitCode::Remote.code(), 3);
        let j = error_json(&Error::Remote(om::RemoteError::new(
            "ValueError",
            "builtins",
            "boom",
        )));
        assert_eq!(j["error"]["class"], "ValueError");
        assert_eq!(j["error"]["message"], "boom");
    }
}
