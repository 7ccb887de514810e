//! [`ConfigError`], [`Origin`] (where a value came from) and
//! [`ConfigWarning`] (what was tolerated but reported).

use om_driver_api::om_core;
use std::fmt;
use std::path::PathBuf;

/// Where an option's value came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Origin {
    /// The built-in default (oslo.messaging 18.3.1's).
    Default,
    /// A line of a configuration file (or of in-memory INI text).
    File {
        /// The file's path as given (or the name given to in-memory text).
        path: PathBuf,
        /// 1-based line number of the `key = value` line.
        line: usize,
    },
    /// An `OM__<GROUP>__<OPTION>` environment variable.
    Environment {
        /// The variable's name, upper case, e.g. `OM__DEFAULT__TRANSPORT_URL`.
        variable: String,
    },
    /// [`ConfigLoader::set_override`](crate::ConfigLoader::set_override).
    Override,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("the default value"),
            Origin::File { path, line } => write!(f, "{}, line {line}", path.display()),
            Origin::Environment { variable } => write!(f, "environment variable {variable}"),
            Origin::Override => f.write_str("a programmatic override"),
        }
    }
}

/// Text the `config` crate keeps as a value's origin, and back.
///
/// Files are recorded as `file:<line>:<path>`, environment variables as
/// `env:<NAME>`; values without origin are programmatic overrides.
pub(crate) fn encode_origin(origin: &Origin) -> Option<String> {
    match origin {
        Origin::File { path, line } => Some(format!("file:{line}:{}", path.display())),
        Origin::Environment { variable } => Some(format!("env:{variable}")),
        Origin::Default => Some("default:".to_owned()),
        Origin::Override => None,
    }
}

pub(crate) fn decode_origin(text: Option<&str>) -> Origin {
    let Some(text) = text else {
        return Origin::Override;
    };
    if let Some(rest) = text.strip_prefix("file:") {
        if let Some((line, path)) = rest.split_once(':') {
            if let Ok(line) = line.parse() {
                return Origin::File {
                    path: PathBuf::from(path),
                    line,
                };
            }
        }
    } else if let Some(var) = text.strip_prefix("env:") {
        return Origin::Environment {
            variable: var.to_owned(),
        };
    } else if text == "default:" {
        return Origin::Default;
    }
    // An origin written by the `config` crate itself (not expected: every
    // source om-config adds records its own). Keep the text as a file name.
    Origin::File {
        path: PathBuf::from(text),
        line: 0,
    }
}

/// A configuration error. Every variant that concerns an option names where
/// the value came from (file and line, environment variable or override),
/// the section and the option, and says what was expected.
///
/// Converts into [`om_core::Error`]: URL problems become
/// `InvalidTransportURL`, unknown drivers `DriverLoadFailure` (the classes
/// oslo raises for them), everything else `ConfigurationError`.
///
/// The details are boxed (see [`ConfigError::kind`]) so that results stay small.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ConfigError(Box<ConfigErrorKind>);

impl From<ConfigErrorKind> for ConfigError {
    fn from(kind: ConfigErrorKind) -> Self {
        ConfigError(Box::new(kind))
    }
}

/// What went wrong, with the details; see [`ConfigError`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// A configuration file or directory could not be read.
    #[error("cannot read configuration {what} {}: {source}", path.display())]
    Io {
        /// `file` or `directory`.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A configuration file is not valid INI (oslo's `ConfigFileParseError`).
    #[error("{}, line {line}: {message}: {text:?}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
        /// The offending line.
        text: String,
    },

    /// A value could not be converted to the option's type, or is not one
    /// of its allowed choices.
    #[error("{origin}: [{group}] {option} = {value:?}: expected {expected}")]
    InvalidValue {
        /// Where the value came from.
        origin: Origin,
        /// The section, e.g. `oslo_messaging_rabbit`.
        group: String,
        /// The option.
        option: String,
        /// The value as written (`****` for secret options).
        value: String,
        /// What the option accepts.
        expected: String,
    },

    /// A number is outside the option's range.
    #[error("{origin}: [{group}] {option} = {value}: out of range, expected {range}")]
    OutOfRange {
        /// Where the value came from.
        origin: Origin,
        /// The section.
        group: String,
        /// The option.
        option: String,
        /// The value as written.
        value: String,
        /// The accepted range, e.g. `a number between 0 and 4.5`.
        range: String,
    },

    /// A transport URL does not parse (oslo's `InvalidTransportURL`).
    #[error("{origin}: [{group}] {option}: invalid transport URL {url:?}: {reason}")]
    InvalidTransportUrl {
        /// Where the value came from.
        origin: Origin,
        /// The section.
        group: String,
        /// The option (`transport_url`).
        option: String,
        /// The URL, passwords masked.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A transport URL names a driver that is not known (oslo's
    /// `DriverLoadFailure`).
    #[error("{origin}: [{group}] {option}: unknown messaging driver {driver:?} in {url:?}; known drivers: {}", known.join(", "))]
    UnknownDriver {
        /// Where the value came from.
        origin: Origin,
        /// The section.
        group: String,
        /// The option (`transport_url`).
        option: String,
        /// The driver name (scheme before any `+`).
        driver: String,
        /// The URL, passwords masked.
        url: String,
        /// The driver names that would have been accepted.
        known: Vec<String>,
    },

    /// Options whose values are valid alone but not together (e.g.
    /// `rabbit_quorum_queue` with `rabbit_ha_queues`).
    #[error("[{group}] {reason} ({})", origins.iter().map(|(o, origin)| format!("{o} from {origin}")).collect::<Vec<_>>().join("; "))]
    Conflict {
        /// The section.
        group: String,
        /// The options involved and where each value came from.
        origins: Vec<(String, Origin)>,
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// A name given to [`ConfigLoader::set_override`](crate::ConfigLoader::set_override)
    /// is not a valid section or option name.
    #[error("invalid override [{group}] {option}: {reason}")]
    InvalidOverride {
        /// The section given.
        group: String,
        /// The option given.
        option: String,
        /// Why it was refused.
        reason: String,
    },

    /// An error reported by the `config` crate while merging sources.
    #[error("merging configuration sources failed: {0}")]
    Merge(String),
}

impl ConfigError {
    /// The details.
    pub fn kind(&self) -> &ConfigErrorKind {
        &self.0
    }

    /// The details, by value.
    pub fn into_kind(self) -> ConfigErrorKind {
        *self.0
    }

    /// The section (group) the error is about, when it concerns one.
    pub fn group(&self) -> Option<&str> {
        match self.kind() {
            ConfigErrorKind::InvalidValue { group, .. }
            | ConfigErrorKind::OutOfRange { group, .. }
            | ConfigErrorKind::InvalidTransportUrl { group, .. }
            | ConfigErrorKind::UnknownDriver { group, .. }
            | ConfigErrorKind::Conflict { group, .. }
            | ConfigErrorKind::InvalidOverride { group, .. } => Some(group),
            _ => None,
        }
    }

    /// The option the error is about, when it concerns exactly one.
    pub fn option(&self) -> Option<&str> {
        match self.kind() {
            ConfigErrorKind::InvalidValue { option, .. }
            | ConfigErrorKind::OutOfRange { option, .. }
            | ConfigErrorKind::InvalidTransportUrl { option, .. }
            | ConfigErrorKind::UnknownDriver { option, .. }
            | ConfigErrorKind::InvalidOverride { option, .. } => Some(option),
            _ => None,
        }
    }

    /// Where the offending value came from, when the error concerns one value.
    pub fn origin(&self) -> Option<&Origin> {
        match self.kind() {
            ConfigErrorKind::InvalidValue { origin, .. }
            | ConfigErrorKind::OutOfRange { origin, .. }
            | ConfigErrorKind::InvalidTransportUrl { origin, .. }
            | ConfigErrorKind::UnknownDriver { origin, .. } => Some(origin),
            _ => None,
        }
    }
}

impl From<ConfigError> for om_core::Error {
    fn from(e: ConfigError) -> Self {
        match e.kind() {
            ConfigErrorKind::InvalidTransportUrl { url, .. } => {
                om_core::Error::InvalidTransportUrl {
                    url: url.clone(),
                    reason: e.to_string(),
                }
            }
            ConfigErrorKind::UnknownDriver { driver, .. } => om_core::Error::DriverLoadFailure {
                driver: driver.clone(),
                reason: e.to_string(),
            },
            _ => om_core::Error::Configuration(e.to_string()),
        }
    }
}

/// Something in the configuration that was accepted but deserves attention:
/// an unknown option, a deprecated name, an ignored environment variable.
/// Each one is also logged with `tracing::warn!` when it is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// Where the value came from.
    pub origin: Origin,
    /// The section (empty when the warning concerns no section).
    pub group: String,
    /// The option (empty when the warning concerns a whole section).
    pub option: String,
    /// What is wrong and, where possible, what to do.
    pub message: String,
}

impl ConfigWarning {
    pub(crate) fn emit(
        origin: Origin,
        group: impl Into<String>,
        option: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let w = ConfigWarning {
            origin,
            group: group.into(),
            option: option.into(),
            message: message.into(),
        };
        tracing::warn!(
            origin = %w.origin,
            section = %w.group,
            option = %w.option,
            "{w}"
        );
        w
    }
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.group.is_empty(), self.option.is_empty()) {
            (true, _) => write!(f, "{}: {}", self.origin, self.message),
            (false, true) => write!(f, "{}: [{}]: {}", self.origin, self.group, self.message),
            (false, false) => write!(
                f,
                "{}: [{}] {}: {}",
                self.origin, self.group, self.option, self.message
            ),
        }
    }
}
