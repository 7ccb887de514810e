//! [`Target`]: where a message goes, or what a server listens to.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A destination, as oslo.messaging's `Target`: an exchange (scope), a topic
/// (a group of servers exposing one interface), optionally one server, and
/// for RPC a namespace and a version.
///
/// Which fields matter depends on the use (see `overview.md` §3): clients
/// need `topic`; servers need `topic` and `server`; endpoints only use
/// `namespace`, `version` and `legacy_namespaces`; notifiers and listeners
/// use `exchange` and `topic`. Validation happens where oslo does it, when
/// the target is used (sending, starting a server), and yields
/// [`Error::InvalidTarget`](crate::Error::InvalidTarget).
///
/// ```
/// use om_core::Target;
/// let t = Target::new("compute").with_server("host1").with_version("1.3");
/// assert_eq!(t.topic.as_deref(), Some("compute"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Target {
    /// Scope of topics; `None` means the transport's `control_exchange`.
    pub exchange: Option<String>,
    /// The interface / group of servers.
    pub topic: Option<String>,
    /// RPC namespace; `None` is the null namespace.
    pub namespace: Option<String>,
    /// `major.minor[.rev]`: for clients the version the request needs, for
    /// endpoints the highest version implemented (`None` means `1.0`).
    pub version: Option<String>,
    /// One specific server.
    pub server: Option<String>,
    /// Broadcast to every server of the topic (casts only).
    pub fanout: bool,
    /// Additional namespaces an endpoint also accepts (`None` entries stand
    /// for the null namespace).
    pub legacy_namespaces: Vec<Option<String>>,
}

impl Target {
    /// A target for `topic`, every other field unset.
    pub fn new(topic: impl Into<String>) -> Self {
        Target {
            topic: Some(topic.into()),
            ..Target::default()
        }
    }

    /// An endpoint target: only namespace and version matter.
    pub fn endpoint(namespace: Option<&str>, version: Option<&str>) -> Self {
        Target {
            namespace: namespace.map(str::to_owned),
            version: version.map(str::to_owned),
            ..Target::default()
        }
    }

    /// Sets the exchange.
    pub fn with_exchange(mut self, exchange: impl Into<String>) -> Self {
        self.exchange = Some(exchange.into());
        self
    }

    /// Sets the topic.
    pub fn with_topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// Sets the namespace.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Sets the version.
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// Sets the server.
    pub fn with_server(mut self, server: impl Into<String>) -> Self {
        self.server = Some(server.into());
        self
    }

    /// Sets the fanout flag.
    pub fn with_fanout(mut self, fanout: bool) -> Self {
        self.fanout = fanout;
        self
    }

    /// Sets the legacy namespaces.
    pub fn with_legacy_namespaces<I, S>(mut self, namespaces: I) -> Self
    where
        I: IntoIterator<Item = Option<S>>,
        S: Into<String>,
    {
        self.legacy_namespaces = namespaces.into_iter().map(|n| n.map(Into::into)).collect();
        self
    }

    /// `[namespace] + legacy_namespaces`, as oslo computes it.
    pub fn accepted_namespaces(&self) -> Vec<Option<&str>> {
        std::iter::once(self.namespace.as_deref())
            .chain(self.legacy_namespaces.iter().map(|n| n.as_deref()))
            .collect()
    }

    /// Whether `namespace` is accepted by this (endpoint) target.
    pub fn accepts_namespace(&self, namespace: Option<&str>) -> bool {
        self.namespace.as_deref() == namespace
            || self
                .legacy_namespaces
                .iter()
                .any(|n| n.as_deref() == namespace)
    }

    /// The exchange, or `default` (the transport's control exchange).
    pub fn exchange_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.exchange.as_deref().unwrap_or(default)
    }

    /// Checks the target can be sent to (a topic is required; a call cannot
    /// be fanout). Mirrors oslo's transport-level checks.
    pub fn validate_for_send(&self, is_call: bool) -> crate::Result<()> {
        if self.topic.as_deref().is_none_or(str::is_empty) {
            return Err(crate::Error::invalid_target(
                "A topic is required to send",
                self,
            ));
        }
        if is_call && self.fanout {
            return Err(crate::Error::invalid_target(
                "A call cannot be used with fanout",
                self,
            ));
        }
        Ok(())
    }

    /// Checks the target can be listened to by an RPC server (topic and
    /// server required).
    pub fn validate_for_server(&self) -> crate::Result<()> {
        if self.topic.as_deref().is_none_or(str::is_empty) {
            return Err(crate::Error::invalid_target(
                "A server's target must have topic and server names specified",
                self,
            ));
        }
        if self.server.as_deref().is_none_or(str::is_empty) {
            return Err(crate::Error::invalid_target(
                "A server's target must have topic and server names specified",
                self,
            ));
        }
        Ok(())
    }

    /// Checks the target can be listened to for notifications (topic
    /// required).
    pub fn validate_for_notification(&self) -> crate::Result<()> {
        if self.topic.as_deref().is_none_or(str::is_empty) {
            return Err(crate::Error::invalid_target(
                "A target must have topic specified",
                self,
            ));
        }
        Ok(())
    }
}

impl fmt::Display for Target {
    /// Rendered like oslo's `repr`: `<Target topic=t, server=s>` listing only
    /// the fields that are set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for (name, value) in [
            ("exchange", &self.exchange),
            ("topic", &self.topic),
            ("namespace", &self.namespace),
            ("version", &self.version),
            ("server", &self.server),
        ] {
            if let Some(v) = value {
                parts.push(format!("{name}={v}"));
            }
        }
        if self.fanout {
            parts.push("fanout=True".into());
        }
        write!(f, "<Target {}>", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_namespaces_includes_legacy() {
        let t = Target::endpoint(Some("a"), None).with_legacy_namespaces([None, Some("b")]);
        assert_eq!(t.accepted_namespaces(), vec![Some("a"), None, Some("b")]);
        assert!(t.accepts_namespace(None));
        assert!(!t.accepts_namespace(Some("c")));
    }

    #[test]
    fn validation() {
        assert!(Target::default().validate_for_send(false).is_err());
        let fan = Target::new("t").with_fanout(true);
        let err = fan.validate_for_send(true).unwrap_err();
        assert_eq!(err.oslo_name(), "InvalidTarget");
        assert!(err
            .to_string()
            .contains("A call cannot be used with fanout"));
        assert!(fan.validate_for_send(false).is_ok());
        assert!(Target::new("t").validate_for_server().is_err());
        assert!(Target::new("t")
            .with_server("s")
            .validate_for_server()
            .is_ok());
        assert_eq!(
            Target::new("t").with_server("s").to_string(),
            "<Target topic=t, server=s>"
        );
    }
}
