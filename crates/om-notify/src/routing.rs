//! The `routing` notification driver's configuration.

use crate::fnmatch::Pattern;
use crate::testing::TestSink;
use om_driver_api::om_core::{Error, Priority, Result};
use serde::{Deserialize, Serialize};
use serde_yaml::Value as Yaml;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// A driver the routing notifier can forward to (every built-in driver but
/// `routing` itself, which oslo also refuses to load from a routing file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteDriver {
    /// `messaging`: the transport, bare 1.0 body.
    Messaging,
    /// `messagingv2`: the transport, 2.0 envelope.
    #[serde(rename = "messagingv2")]
    MessagingV2,
    /// `log`: through `tracing`.
    Log,
    /// `noop`: dropped.
    Noop,
    /// `test`: the routing configuration's [`TestSink`].
    Test,
}

impl RouteDriver {
    /// The driver name as written in configuration.
    pub fn name(self) -> &'static str {
        match self {
            RouteDriver::Messaging => "messaging",
            RouteDriver::MessagingV2 => "messagingv2",
            RouteDriver::Log => "log",
            RouteDriver::Noop => "noop",
            RouteDriver::Test => "test",
        }
    }
}

impl fmt::Display for RouteDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RouteDriver {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "messaging" => RouteDriver::Messaging,
            "messagingv2" => RouteDriver::MessagingV2,
            "log" => RouteDriver::Log,
            "noop" => RouteDriver::Noop,
            "test" => RouteDriver::Test,
            "routing" => {
                return Err(Error::Configuration(
                    "the routing notifier cannot route to the routing driver".into(),
                ))
            }
            other => {
                return Err(Error::Configuration(format!(
                    "unknown notification driver {other:?} in the routing configuration \
                     (known: messaging, messagingv2, log, noop, test)"
                )))
            }
        })
    }
}

/// The rules of one driver in one group, as written in the YAML file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRules {
    /// Shell-style patterns for the event type; `None`: not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_events: Option<Vec<String>>,
    /// Shell-style patterns for the lower-case priority; `None`: not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_priorities: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
struct CompiledRoute {
    group: String,
    driver: RouteDriver,
    rules: RouteRules,
    events: Option<Vec<Pattern>>,
    priorities: Option<Vec<Pattern>>,
}

impl CompiledRoute {
    fn new(group: String, driver: RouteDriver, rules: RouteRules) -> Self {
        let events = rules
            .accepted_events
            .as_ref()
            .map(|ps| ps.iter().map(|p| Pattern::new(p)).collect());
        let priorities = rules
            .accepted_priorities
            .as_ref()
            .map(|ps| ps.iter().map(|p| Pattern::new(&p.to_lowercase())).collect());
        CompiledRoute {
            group,
            driver,
            rules,
            events,
            priorities,
        }
    }

    fn accepts(&self, event_type: &str, priority_lower: &str) -> bool {
        let events_ok = self
            .events
            .as_ref()
            .is_none_or(|ps| ps.iter().any(|p| p.matches(event_type)));
        let prios_ok = self
            .priorities
            .as_ref()
            .is_none_or(|ps| ps.iter().any(|p| p.matches(priority_lower)));
        events_ok && prios_ok
    }
}

/// A parsed routing configuration (oslo's `routing_config` YAML file):
/// which drivers get a notification, by event type and priority.
///
/// ```yaml
/// group_1:
///   messaging:
///     accepted_events: ["compute.instance.*"]
///   log:
///     accepted_priorities: ["error", "critical"]
/// group_2:
///   test:
///     accepted_events: ["network.*"]
///     accepted_priorities: ["info"]
/// ```
///
/// The top level maps group names to `{driver: rules}`. A rule set may list
/// `accepted_events` (shell-style patterns matched against the event type,
/// case-sensitively) and `accepted_priorities` (patterns matched against the
/// lower-case priority, written in any case). A driver receives the
/// notification when **every** kind of rule it lists has a matching pattern;
/// a driver without rules (`{}` or null) receives everything. Every group is
/// evaluated and a driver gets the notification at most once even if
/// several groups accept it.
///
/// This is the behaviour oslo.messaging's routing notifier is written to
/// have. In 18.3.1 it cannot work at all (it loads its target drivers
/// without their constructor arguments, so every notification is dropped
/// with a logged error, see `overview.md` §7.3); om implements the intended
/// semantics. Two small differences: an unknown driver name is a
/// configuration error (Python would silently not load it), and a single
/// pattern may be written without brackets.
///
/// # Example
///
/// ```
/// use om_notify::{RoutingConfig, RouteDriver};
/// use om_driver_api::om_core::Priority;
/// let cfg = RoutingConfig::from_yaml_str(r#"
/// group_1:
///   messagingv2: {accepted_events: ["compute.*"]}
///   log: {accepted_priorities: ["ERROR", "critical"]}
/// "#)?;
/// assert_eq!(cfg.drivers_for("compute.start", Priority::Info), vec![RouteDriver::MessagingV2]);
/// assert_eq!(cfg.drivers_for("network.x", Priority::Error), vec![RouteDriver::Log]);
/// assert!(cfg.drivers_for("network.x", Priority::Info).is_empty());
/// # Ok::<(), om_driver_api::om_core::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct RoutingConfig {
    routes: Vec<CompiledRoute>,
    test_sink: TestSink,
}

impl RoutingConfig {
    /// A configuration that routes nothing (oslo's behaviour when
    /// `routing_config` is empty).
    pub fn empty() -> Self {
        RoutingConfig::default()
    }

    /// Adds a route: in `group`, `driver` receives what `rules` accept.
    pub fn route(
        mut self,
        group: impl Into<String>,
        driver: RouteDriver,
        rules: RouteRules,
    ) -> Self {
        self.routes
            .push(CompiledRoute::new(group.into(), driver, rules));
        self
    }

    /// Parses oslo's YAML routing format (see [`RoutingConfig`]).
    ///
    /// An empty document routes nothing. Errors (`Configuration`): invalid
    /// YAML, a top level or group that is not a mapping, an unknown driver
    /// name (Python would silently skip it), patterns that are not strings.
    /// Unknown rule keys are ignored, as in Python.
    pub fn from_yaml_str(yaml: &str) -> Result<Self> {
        let doc: Yaml = serde_yaml::from_str(yaml).map_err(|e| {
            Error::Configuration(format!("routing configuration is not valid YAML: {e}"))
        })?;
        let mut cfg = RoutingConfig::empty();
        let groups = match doc {
            Yaml::Null => return Ok(cfg),
            Yaml::Mapping(m) => m,
            other => {
                return Err(Error::Configuration(format!(
                    "routing configuration must map group names to drivers, got {}",
                    yaml_kind(&other)
                )))
            }
        };
        for (group_key, group) in groups {
            let group_name = yaml_key(&group_key);
            let drivers = match group {
                Yaml::Mapping(m) => m,
                Yaml::Null => continue,
                other => {
                    return Err(Error::Configuration(format!(
                        "routing group {group_name:?} must map driver names to rules, got {}",
                        yaml_kind(&other)
                    )))
                }
            };
            for (driver_key, rules) in drivers {
                let driver_name = yaml_key(&driver_key);
                let driver: RouteDriver = driver_name.parse()?;
                let rules = parse_rules(&group_name, &driver_name, rules)?;
                cfg = cfg.route(group_name.clone(), driver, rules);
            }
        }
        Ok(cfg)
    }

    /// Reads and parses a routing file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Configuration(format!(
                "cannot read routing configuration {}: {e}",
                path.display()
            ))
        })?;
        Self::from_yaml_str(&text)
    }

    /// Uses `sink` for the `test` routes (share it with a
    /// [`NotifierDriver::Test`](crate::NotifierDriver::Test) driver or keep
    /// it to inspect what was routed to `test`).
    pub fn with_test_sink(mut self, sink: TestSink) -> Self {
        self.test_sink = sink;
        self
    }

    /// The store of the `test` routes.
    pub fn test_sink(&self) -> &TestSink {
        &self.test_sink
    }

    /// Whether no route is configured.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Every `(group, driver, rules)` route, in file order.
    pub fn routes(&self) -> impl Iterator<Item = (&str, RouteDriver, &RouteRules)> {
        self.routes
            .iter()
            .map(|r| (r.group.as_str(), r.driver, &r.rules))
    }

    /// The drivers that receive a notification of `event_type` at
    /// `priority`: each at most once, in the order they first appear.
    pub fn drivers_for(&self, event_type: &str, priority: Priority) -> Vec<RouteDriver> {
        let prio = priority.as_lower();
        let mut out: Vec<RouteDriver> = Vec::new();
        for r in &self.routes {
            if !out.contains(&r.driver) && r.accepts(event_type, prio) {
                out.push(r.driver);
            }
        }
        out
    }
}

fn parse_rules(group: &str, driver: &str, rules: Yaml) -> Result<RouteRules> {
    let map = match rules {
        Yaml::Null => return Ok(RouteRules::default()),
        Yaml::Mapping(m) => m,
        other => {
            return Err(Error::Configuration(format!(
                "rules of driver {driver:?} in routing group {group:?} must be a mapping, got {}",
                yaml_kind(&other)
            )))
        }
    };
    let mut out = RouteRules::default();
    for (k, v) in map {
        let key = yaml_key(&k);
        let slot = match key.as_str() {
            "accepted_events" => &mut out.accepted_events,
            "accepted_priorities" => &mut out.accepted_priorities,
            other => {
                tracing::warn!(
                    group,
                    driver,
                    key = other,
                    "ignoring unknown key in routing configuration"
                );
                continue;
            }
        };
        *slot = Some(parse_patterns(group, driver, &key, v)?);
    }
    Ok(out)
}

fn parse_patterns(group: &str, driver: &str, key: &str, v: Yaml) -> Result<Vec<String>> {
    let bad = |what: &str| {
        Error::Configuration(format!(
            "{key} of driver {driver:?} in routing group {group:?} must be a list of strings, {what}"
        ))
    };
    match v {
        // A single pattern written without brackets.
        Yaml::String(s) => Ok(vec![s]),
        Yaml::Null => Ok(Vec::new()),
        Yaml::Sequence(items) => items
            .into_iter()
            .map(|item| match item {
                Yaml::String(s) => Ok(s),
                other => Err(bad(&format!("found {}", yaml_kind(&other)))),
            })
            .collect(),
        other => Err(bad(&format!("got {}", yaml_kind(&other)))),
    }
}

fn yaml_key(k: &Yaml) -> String {
    match k {
        Yaml::String(s) => s.clone(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Null => "null".into(),
        other => format!("{other:?}"),
    }
}

fn yaml_kind(v: &Yaml) -> &'static str {
    match v {
        Yaml::Null => "null",
        Yaml::Bool(_) => "a boolean",
        Yaml::Number(_) => "a number",
        Yaml::String(_) => "a string",
        Yaml::Sequence(_) => "a list",
        Yaml::Mapping(_) => "a mapping",
        Yaml::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_listed_rule_kinds_must_match() {
        let cfg = RoutingConfig::from_yaml_str(
            "g1:\n  test:\n    accepted_events: ['compute.*', 'image.up?oad']\n    accepted_priorities: [info, WARN]\n  log: {}\n",
        )
        .expect("valid");
        assert_eq!(
            cfg.drivers_for("compute.start", Priority::Info),
            vec![RouteDriver::Test, RouteDriver::Log]
        );
        assert_eq!(
            cfg.drivers_for("image.upload", Priority::Warn),
            vec![RouteDriver::Test, RouteDriver::Log]
        );
        assert_eq!(
            cfg.drivers_for("compute.start", Priority::Error),
            vec![RouteDriver::Log]
        );
        assert_eq!(
            cfg.drivers_for("network.create", Priority::Info),
            vec![RouteDriver::Log]
        );
    }

    #[test]
    fn groups_union_without_duplicates() {
        let cfg = RoutingConfig::from_yaml_str(
            "a:\n  noop: {accepted_events: ['x.*']}\nb:\n  noop: {accepted_priorities: ['info']}\n  test: {accepted_events: []}\n",
        )
        .expect("valid");
        assert_eq!(
            cfg.drivers_for("x.y", Priority::Info),
            vec![RouteDriver::Noop]
        );
        assert_eq!(
            cfg.drivers_for("z", Priority::Info),
            vec![RouteDriver::Noop]
        );
        assert!(cfg.drivers_for("z", Priority::Debug).is_empty());
    }

    #[test]
    fn empty_and_invalid_documents() {
        assert!(RoutingConfig::from_yaml_str("")
            .expect("empty ok")
            .is_empty());
        assert!(RoutingConfig::from_yaml_str("# nothing\n")
            .expect("comment ok")
            .is_empty());
        let e = RoutingConfig::from_yaml_str("[1, 2]").unwrap_err();
        assert_eq!(e.oslo_name(), "ConfigurationError");
        let e = RoutingConfig::from_yaml_str("g: {carrier_pigeon: {}}").unwrap_err();
        assert!(e.to_string().contains("carrier_pigeon"), "{e}");
        assert!(RoutingConfig::from_yaml_str("g: {routing: {}}").is_err());
        assert!(RoutingConfig::from_yaml_str("g: {log: {accepted_events: [1]}}").is_err());
        assert!(RoutingConfig::from_yaml_str("g: {log: {accepted_events: [}").is_err());
        // Unknown keys are ignored; null rules accept everything.
        let cfg = RoutingConfig::from_yaml_str("g: {log: {colour: red}, test: ~}").expect("valid");
        assert_eq!(
            cfg.drivers_for("any", Priority::Sample),
            vec![RouteDriver::Log, RouteDriver::Test]
        );
    }
}
