//! Notification priorities.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The seven notification priorities of oslo.messaging.
///
/// On the wire the message's `priority` is upper case (`INFO`); routing keys
/// and listener method names use lower case (`notifications.info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Priority {
    /// `AUDIT`
    Audit,
    /// `DEBUG`
    Debug,
    /// `INFO`
    Info,
    /// `WARN` (Python's `warn` and `warning` methods)
    Warn,
    /// `ERROR`
    Error,
    /// `CRITICAL`
    Critical,
    /// `SAMPLE`
    Sample,
}

impl Priority {
    /// All priorities, in oslo's listener order.
    pub const ALL: [Priority; 7] = [
        Priority::Audit,
        Priority::Debug,
        Priority::Info,
        Priority::Warn,
        Priority::Error,
        Priority::Critical,
        Priority::Sample,
    ];

    /// Upper-case wire form (`INFO`).
    pub fn as_upper(self) -> &'static str {
        match self {
            Priority::Audit => "AUDIT",
            Priority::Debug => "DEBUG",
            Priority::Info => "INFO",
            Priority::Warn => "WARN",
            Priority::Error => "ERROR",
            Priority::Critical => "CRITICAL",
            Priority::Sample => "SAMPLE",
        }
    }

    /// Lower-case form used in routing keys and listener methods (`info`).
    pub fn as_lower(self) -> &'static str {
        match self {
            Priority::Audit => "audit",
            Priority::Debug => "debug",
            Priority::Info => "info",
            Priority::Warn => "warn",
            Priority::Error => "error",
            Priority::Critical => "critical",
            Priority::Sample => "sample",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_lower())
    }
}

/// Error for a string that names no priority.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown notification priority {0:?}")]
pub struct UnknownPriority(pub String);

impl FromStr for Priority {
    type Err = UnknownPriority;

    /// Case-insensitive; `warning` is accepted as [`Priority::Warn`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "audit" => Priority::Audit,
            "debug" => Priority::Debug,
            "info" => Priority::Info,
            "warn" | "warning" => Priority::Warn,
            "error" => Priority::Error,
            "critical" => Priority::Critical,
            "sample" => Priority::Sample,
            _ => return Err(UnknownPriority(s.to_owned())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for p in Priority::ALL {
            assert_eq!(p.as_upper().parse::<Priority>().unwrap(), p);
            assert_eq!(p.as_lower().parse::<Priority>().unwrap(), p);
        }
        assert_eq!("warning".parse::<Priority>().unwrap(), Priority::Warn);
        assert!("FOO".parse::<Priority>().is_err());
        assert_eq!(serde_json::to_string(&Priority::Warn).unwrap(), "\"WARN\"");
    }
}
