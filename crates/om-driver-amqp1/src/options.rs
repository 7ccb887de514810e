//! The `[oslo_messaging_amqp]` options (`wire-amqp1.md` §9), typed.
//!
//! [`AmqpOptions::from_map`] reads the string map a
//! [`DriverConfig`](om_driver_api::DriverConfig) carries (configuration file
//! values with the URL's query parameters applied on top); an unknown option
//! or a value of the wrong type is a `Configuration` error that names the
//! option.

use om_driver_api::om_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How addresses are built (`addressing_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressingMode {
    /// Decide when the connection opens, from the peer's `product`
    /// (`wire-amqp1.md` §2.1).
    #[default]
    Dynamic,
    /// `.`-joined addresses for brokers (`unicast.openstack.compute`).
    Legacy,
    /// `/`-joined addresses for routers
    /// (`openstack.org/om/rpc/anycast/openstack/compute`).
    Routable,
}

impl FromStr for AddressingMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "dynamic" => Ok(AddressingMode::Dynamic),
            "legacy" => Ok(AddressingMode::Legacy),
            "routable" => Ok(AddressingMode::Routable),
            other => Err(Error::Configuration(format!(
                "option addressing_mode: {other:?} is not one of dynamic, legacy, routable"
            ))),
        }
    }
}

impl fmt::Display for AddressingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressingMode::Dynamic => "dynamic",
            AddressingMode::Legacy => "legacy",
            AddressingMode::Routable => "routable",
        })
    }
}

/// Which kinds of message are sent pre-settled (`pre_settled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PreSettled {
    /// `rpc-call`: calls do not wait for the peer's outcome.
    pub rpc_call: bool,
    /// `rpc-reply`: replies and heartbeats (default).
    pub rpc_reply: bool,
    /// `rpc-cast`: casts and fanouts (default).
    pub rpc_cast: bool,
    /// `notify`: notifications.
    pub notify: bool,
}

impl Default for PreSettled {
    /// Casts and replies pre-settled, calls and notifications unsettled.
    fn default() -> Self {
        PreSettled {
            rpc_call: false,
            rpc_reply: true,
            rpc_cast: true,
            notify: false,
        }
    }
}

impl PreSettled {
    /// Parses the multi-valued option (comma separated). Unknown values are
    /// ignored with a warning, as the Python driver does.
    pub fn parse(value: &str) -> Self {
        let mut p = PreSettled {
            rpc_call: false,
            rpc_reply: false,
            rpc_cast: false,
            notify: false,
        };
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item {
                "rpc-call" => p.rpc_call = true,
                "rpc-reply" => p.rpc_reply = true,
                "rpc-cast" => p.rpc_cast = true,
                "notify" => p.notify = true,
                other => tracing::warn!(value = other, "option pre_settled: unknown value ignored"),
            }
        }
        p
    }
}

/// The `[oslo_messaging_amqp]` option group with the Python driver's
/// defaults. Durations are whole seconds, as in oslo.config.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct AmqpOptions {
    /// AMQP container id; generated (unique per driver) when unset.
    pub container_name: Option<String>,
    /// Connection idle timeout in seconds; 0 disables it.
    pub idle_timeout: u32,
    /// Log every message sent and received (at `info` level, target
    /// `om_driver_amqp1::trace`).
    pub trace: bool,
    /// Use TLS (requires the crate feature `tls`).
    pub ssl: bool,
    /// CA certificates (PEM); setting it enables TLS.
    pub ssl_ca_file: String,
    /// Client certificate (PEM); setting it enables TLS.
    pub ssl_cert_file: String,
    /// Client private key (PEM).
    pub ssl_key_file: String,
    /// Password of an encrypted client key (not supported: keys must be
    /// unencrypted PEM). Never serialized or printed.
    #[serde(skip_serializing)]
    pub ssl_key_password: Option<String>,
    /// Check the server certificate against the virtual host name.
    pub ssl_verify_vhost: bool,
    /// Space separated acceptable SASL mechanisms (`PLAIN`, `ANONYMOUS`);
    /// empty: any.
    pub sasl_mechanisms: String,
    /// Cyrus SASL configuration directory (accepted, unused: om has no
    /// Cyrus SASL).
    pub sasl_config_dir: String,
    /// Cyrus SASL configuration name (accepted, unused).
    pub sasl_config_name: String,
    /// Realm appended to user names without `@`.
    pub sasl_default_realm: String,
    /// First reconnect delay (s, ≥ 1).
    pub connection_retry_interval: u32,
    /// Multiplier applied to the delay after each failed attempt (≥ 0).
    pub connection_retry_backoff: u32,
    /// Largest reconnect delay (s, ≥ 1).
    pub connection_retry_interval_max: u32,
    /// Delay before re-opening a failed link or re-sending a released
    /// message (s, ≥ 1).
    pub link_retry_delay: u32,
    /// Re-send attempts for replies (≥ -1; -1 forever).
    pub default_reply_retry: i32,
    /// Reply delivery deadline (s, ≥ 5).
    pub default_reply_timeout: u32,
    /// Send deadline for casts and for calls without timeout (s, ≥ 5).
    pub default_send_timeout: u32,
    /// Notification send deadline (s, ≥ 5).
    pub default_notify_timeout: u32,
    /// Idle sender links are closed after this many seconds (≥ 1).
    pub default_sender_link_timeout: u32,
    /// Address syntax.
    pub addressing_mode: AddressingMode,
    /// Put the virtual host into addresses instead of the `open` hostname.
    pub pseudo_vhost: bool,
    /// Legacy prefix for messages to one server.
    pub server_request_prefix: String,
    /// Legacy prefix for fanout.
    pub broadcast_prefix: String,
    /// Legacy prefix for messages to any server of a group.
    pub group_request_prefix: String,
    /// Routable RPC prefix.
    pub rpc_address_prefix: String,
    /// Routable notification prefix.
    pub notify_address_prefix: String,
    /// Routable fanout tag.
    pub multicast_address: String,
    /// Routable single-server tag.
    pub unicast_address: String,
    /// Routable any-server tag.
    pub anycast_address: String,
    /// Exchange of routable notification addresses.
    pub default_notification_exchange: Option<String>,
    /// Exchange of routable RPC addresses.
    pub default_rpc_exchange: Option<String>,
    /// Credit window of the reply link (≥ 1).
    pub reply_link_credit: u32,
    /// Credit window of each RPC server link (≥ 1).
    pub rpc_server_credit: u32,
    /// Credit window of each notification link (≥ 1).
    pub notify_server_credit: u32,
    /// Message kinds sent pre-settled.
    pub pre_settled: PreSettled,
}

impl Default for AmqpOptions {
    fn default() -> Self {
        AmqpOptions {
            container_name: None,
            idle_timeout: 0,
            trace: false,
            ssl: false,
            ssl_ca_file: String::new(),
            ssl_cert_file: String::new(),
            ssl_key_file: String::new(),
            ssl_key_password: None,
            ssl_verify_vhost: false,
            sasl_mechanisms: String::new(),
            sasl_config_dir: String::new(),
            sasl_config_name: String::new(),
            sasl_default_realm: String::new(),
            connection_retry_interval: 1,
            connection_retry_backoff: 2,
            connection_retry_interval_max: 30,
            link_retry_delay: 10,
            default_reply_retry: 0,
            default_reply_timeout: 30,
            default_send_timeout: 30,
            default_notify_timeout: 30,
            default_sender_link_timeout: 600,
            addressing_mode: AddressingMode::Dynamic,
            pseudo_vhost: true,
            server_request_prefix: "exclusive".into(),
            broadcast_prefix: "broadcast".into(),
            group_request_prefix: "unicast".into(),
            rpc_address_prefix: "openstack.org/om/rpc".into(),
            notify_address_prefix: "openstack.org/om/notify".into(),
            multicast_address: "multicast".into(),
            unicast_address: "unicast".into(),
            anycast_address: "anycast".into(),
            default_notification_exchange: None,
            default_rpc_exchange: None,
            reply_link_credit: 200,
            rpc_server_credit: 100,
            notify_server_credit: 100,
            pre_settled: PreSettled::default(),
        }
    }
}

impl fmt::Debug for AmqpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpOptions")
            .field("container_name", &self.container_name)
            .field("addressing_mode", &self.addressing_mode)
            .field("pseudo_vhost", &self.pseudo_vhost)
            .field("ssl", &self.tls_enabled())
            .field(
                "ssl_key_password",
                &self.ssl_key_password.as_ref().map(|_| "****"),
            )
            .field("sasl_mechanisms", &self.sasl_mechanisms)
            .field("connection_retry_interval", &self.connection_retry_interval)
            .field("connection_retry_backoff", &self.connection_retry_backoff)
            .field(
                "connection_retry_interval_max",
                &self.connection_retry_interval_max,
            )
            .field("pre_settled", &self.pre_settled)
            .finish_non_exhaustive()
    }
}

/// Every option name this driver accepts.
pub const OPTION_NAMES: &[&str] = &[
    "container_name",
    "idle_timeout",
    "trace",
    "ssl",
    "ssl_ca_file",
    "ssl_cert_file",
    "ssl_key_file",
    "ssl_key_password",
    "ssl_verify_vhost",
    "sasl_mechanisms",
    "sasl_config_dir",
    "sasl_config_name",
    "sasl_default_realm",
    "connection_retry_interval",
    "connection_retry_backoff",
    "connection_retry_interval_max",
    "link_retry_delay",
    "default_reply_retry",
    "default_reply_timeout",
    "default_send_timeout",
    "default_notify_timeout",
    "default_sender_link_timeout",
    "addressing_mode",
    "pseudo_vhost",
    "server_request_prefix",
    "broadcast_prefix",
    "group_request_prefix",
    "rpc_address_prefix",
    "notify_address_prefix",
    "multicast_address",
    "unicast_address",
    "anycast_address",
    "default_notification_exchange",
    "default_rpc_exchange",
    "reply_link_credit",
    "rpc_server_credit",
    "notify_server_credit",
    "pre_settled",
];

fn parse_bool(name: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(Error::Configuration(format!(
            "option {name}: {value:?} is not a boolean (true/false)"
        ))),
    }
}

fn parse_int(name: &str, value: &str, min: i64) -> Result<i64> {
    let n: i64 = value
        .trim()
        .parse()
        .map_err(|_| Error::Configuration(format!("option {name}: {value:?} is not an integer")))?;
    if n < min {
        return Err(Error::Configuration(format!(
            "option {name}: {n} is below the minimum {min}"
        )));
    }
    Ok(n)
}

fn parse_u32(name: &str, value: &str, min: u32) -> Result<u32> {
    let n = parse_int(name, value, i64::from(min))?;
    u32::try_from(n).map_err(|_| Error::Configuration(format!("option {name}: {n} is too large")))
}

fn non_empty(value: &str) -> Option<String> {
    let v = value.trim();
    (!v.is_empty()).then(|| v.to_owned())
}

impl AmqpOptions {
    /// Reads options from a string map (oslo.config names). Unknown names
    /// and malformed values are `Configuration` errors naming the option.
    ///
    /// ```
    /// use om_driver_amqp1::{AmqpOptions, AddressingMode};
    /// let mut map = std::collections::BTreeMap::new();
    /// map.insert("addressing_mode".to_string(), "legacy".to_string());
    /// let opts = AmqpOptions::from_map(&map).unwrap();
    /// assert_eq!(opts.addressing_mode, AddressingMode::Legacy);
    /// assert_eq!(opts.rpc_server_credit, 100);
    /// map.insert("no_such_option".to_string(), "1".to_string());
    /// assert!(AmqpOptions::from_map(&map).unwrap_err().to_string().contains("no_such_option"));
    /// ```
    pub fn from_map(map: &BTreeMap<String, String>) -> Result<Self> {
        let mut opts = AmqpOptions::default();
        for (k, v) in map {
            opts.set(k, v)?;
        }
        opts.validate()?;
        Ok(opts)
    }

    /// Sets one option from its string form.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        match name {
            "container_name" => self.container_name = non_empty(value),
            "idle_timeout" => self.idle_timeout = parse_u32(name, value, 0)?,
            "trace" => self.trace = parse_bool(name, value)?,
            "ssl" => self.ssl = parse_bool(name, value)?,
            "ssl_ca_file" => self.ssl_ca_file = value.trim().to_owned(),
            "ssl_cert_file" => self.ssl_cert_file = value.trim().to_owned(),
            "ssl_key_file" => self.ssl_key_file = value.trim().to_owned(),
            "ssl_key_password" => self.ssl_key_password = (!value.is_empty()).then(|| value.to_owned()),
            "ssl_verify_vhost" => self.ssl_verify_vhost = parse_bool(name, value)?,
            "sasl_mechanisms" => self.sasl_mechanisms = value.trim().to_owned(),
            "sasl_config_dir" => self.sasl_config_dir = value.trim().to_owned(),
            "sasl_config_name" => self.sasl_config_name = value.trim().to_owned(),
            "sasl_default_realm" => self.sasl_default_realm = value.trim().to_owned(),
            "connection_retry_interval" => self.connection_retry_interval = parse_u32(name, value, 1)?,
            "connection_retry_backoff" => self.connection_retry_backoff = parse_u32(name, value, 0)?,
            "connection_retry_interval_max" => {
                self.connection_retry_interval_max = parse_u32(name, value, 1)?
            }
            "link_retry_delay" => self.link_retry_delay = parse_u32(name, value, 1)?,
            "default_reply_retry" => {
                self.default_reply_retry = i32::try_from(parse_int(name, value, -1)?)
                    .map_err(|_| Error::Configuration(format!("option {name}: {value:?} is too large")))?
            }
            "default_reply_timeout" => self.default_reply_timeout = parse_u32(name, value, 5)?,
            "default_send_timeout" => self.default_send_timeout = parse_u32(name, value, 5)?,
            "default_notify_timeout" => self.default_notify_timeout = parse_u32(name, value, 5)?,
            "default_sender_link_timeout" => self.default_sender_link_timeout = parse_u32(name, value, 1)?,
            "addressing_mode" => self.addressing_mode = value.parse()?,
            "pseudo_vhost" => self.pseudo_vhost = parse_bool(name, value)?,
            "server_request_prefix" => self.server_request_prefix = value.trim().to_owned(),
            "broadcast_prefix" => self.broadcast_prefix = value.trim().to_owned(),
            "group_request_prefix" => self.group_request_prefix = value.trim().to_owned(),
            "rpc_address_prefix" => self.rpc_address_prefix = value.trim().to_owned(),
            "notify_address_prefix" => self.notify_address_prefix = value.trim().to_owned(),
            "multicast_address" => self.multicast_address = value.trim().to_owned(),
            "unicast_address" => self.unicast_address = value.trim().to_owned(),
            "anycast_address" => self.anycast_address = value.trim().to_owned(),
            "default_notification_exchange" => self.default_notification_exchange = non_empty(value),
            "default_rpc_exchange" => self.default_rpc_exchange = non_empty(value),
            "reply_link_credit" => self.reply_link_credit = parse_u32(name, value, 1)?,
            "rpc_server_credit" => self.rpc_server_credit = parse_u32(name, value, 1)?,
            "notify_server_credit" => self.notify_server_credit = parse_u32(name, value, 1)?,
            "pre_settled" => self.pre_settled = PreSettled::parse(value),
            other => {
                return Err(Error::Configuration(format!(
                    "unknown option {other:?} for the amqp driver ([oslo_messaging_amqp]); known options: {}",
                    OPTION_NAMES.join(", ")
                )))
            }
        }
        Ok(())
    }

    /// Checks values that serde may have let through (the same bounds as
    /// [`AmqpOptions::set`]).
    pub fn validate(&self) -> Result<()> {
        let checks: [(&str, i64, i64); 13] = [
            (
                "connection_retry_interval",
                self.connection_retry_interval.into(),
                1,
            ),
            (
                "connection_retry_interval_max",
                self.connection_retry_interval_max.into(),
                1,
            ),
            ("link_retry_delay", self.link_retry_delay.into(), 1),
            ("default_reply_retry", self.default_reply_retry.into(), -1),
            (
                "default_reply_timeout",
                self.default_reply_timeout.into(),
                5,
            ),
            ("default_send_timeout", self.default_send_timeout.into(), 5),
            (
                "default_notify_timeout",
                self.default_notify_timeout.into(),
                5,
            ),
            (
                "default_sender_link_timeout",
                self.default_sender_link_timeout.into(),
                1,
            ),
            ("reply_link_credit", self.reply_link_credit.into(), 1),
            ("rpc_server_credit", self.rpc_server_credit.into(), 1),
            ("notify_server_credit", self.notify_server_credit.into(), 1),
            (
                "connection_retry_backoff",
                self.connection_retry_backoff.into(),
                0,
            ),
            ("idle_timeout", self.idle_timeout.into(), 0),
        ];
        for (name, value, min) in checks {
            if value < min {
                return Err(Error::Configuration(format!(
                    "option {name}: {value} is below the minimum {min}"
                )));
            }
        }
        for m in self.sasl_mechanisms.split_whitespace() {
            if !matches!(m.to_ascii_uppercase().as_str(), "PLAIN" | "ANONYMOUS") {
                return Err(Error::Configuration(format!(
                    "option sasl_mechanisms: mechanism {m:?} is not supported (om offers PLAIN and ANONYMOUS)"
                )));
            }
        }
        if self.ssl_key_password.is_some() {
            return Err(Error::Configuration(
                "option ssl_key_password: encrypted client keys are not supported; give an unencrypted PEM key in ssl_key_file".into(),
            ));
        }
        if self.tls_enabled() && !cfg!(feature = "tls") {
            return Err(Error::Configuration(
                "options ssl / ssl_ca_file / ssl_cert_file: TLS needs om-driver-amqp1's crate feature `tls`".into(),
            ));
        }
        Ok(())
    }

    /// Whether TLS is on: `ssl`, or a CA or client certificate file given.
    pub fn tls_enabled(&self) -> bool {
        self.ssl || !self.ssl_ca_file.is_empty() || !self.ssl_cert_file.is_empty()
    }

    /// Whether SASL mechanism `name` may be used.
    pub fn allows_mechanism(&self, name: &str) -> bool {
        self.sasl_mechanisms.trim().is_empty()
            || self
                .sasl_mechanisms
                .split_whitespace()
                .any(|m| m.eq_ignore_ascii_case(name))
    }

    /// `connection_retry_interval` as a duration.
    pub fn retry_interval(&self) -> Duration {
        Duration::from_secs(self.connection_retry_interval.into())
    }

    /// `connection_retry_interval_max` as a duration.
    pub fn retry_interval_max(&self) -> Duration {
        Duration::from_secs(self.connection_retry_interval_max.into())
    }

    /// `link_retry_delay` as a duration.
    pub fn link_retry(&self) -> Duration {
        Duration::from_secs(self.link_retry_delay.into())
    }

    /// The reconnect delay after `failures` consecutive failed attempts:
    /// `interval × backoff^(failures-1)`, capped at the maximum.
    pub fn reconnect_delay(&self, failures: u32) -> Duration {
        let mut delay = u64::from(self.connection_retry_interval);
        let cap = u64::from(self.connection_retry_interval_max);
        for _ in 1..failures.max(1) {
            delay = delay.saturating_mul(u64::from(self.connection_retry_backoff));
            if delay >= cap {
                break;
            }
        }
        Duration::from_secs(delay.min(cap))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_the_python_driver() {
        let o = AmqpOptions::from_map(&BTreeMap::new()).unwrap();
        assert_eq!(o.addressing_mode, AddressingMode::Dynamic);
        assert!(o.pseudo_vhost);
        assert_eq!(o.server_request_prefix, "exclusive");
        assert_eq!(o.broadcast_prefix, "broadcast");
        assert_eq!(o.group_request_prefix, "unicast");
        assert_eq!(o.rpc_address_prefix, "openstack.org/om/rpc");
        assert_eq!(o.notify_address_prefix, "openstack.org/om/notify");
        assert_eq!(
            (
                o.reply_link_credit,
                o.rpc_server_credit,
                o.notify_server_credit
            ),
            (200, 100, 100)
        );
        assert_eq!(
            o.pre_settled,
            PreSettled {
                rpc_call: false,
                rpc_reply: true,
                rpc_cast: true,
                notify: false
            }
        );
        assert_eq!(
            (
                o.default_send_timeout,
                o.default_notify_timeout,
                o.default_reply_timeout
            ),
            (30, 30, 30)
        );
        assert_eq!(o.default_reply_retry, 0);
        assert_eq!(o.link_retry_delay, 10);
        assert_eq!(o.default_sender_link_timeout, 600);
        assert_eq!(o.idle_timeout, 0);
    }

    #[test]
    fn values_are_parsed_and_checked() {
        let o = AmqpOptions::from_map(&map(&[
            ("addressing_mode", "Routable"),
            ("pseudo_vhost", "false"),
            ("rpc_server_credit", "7"),
            ("pre_settled", "rpc-call,notify,bogus"),
            ("default_rpc_exchange", "ex"),
        ]))
        .unwrap();
        assert_eq!(o.addressing_mode, AddressingMode::Routable);
        assert!(!o.pseudo_vhost);
        assert_eq!(o.rpc_server_credit, 7);
        assert_eq!(
            o.pre_settled,
            PreSettled {
                rpc_call: true,
                rpc_reply: false,
                rpc_cast: false,
                notify: true
            }
        );
        assert_eq!(o.default_rpc_exchange.as_deref(), Some("ex"));

        for (k, v) in [
            ("rpc_server_credit", "0"),
            ("rpc_server_credit", "many"),
            ("default_send_timeout", "4"),
            ("pseudo_vhost", "maybe"),
            ("addressing_mode", "clever"),
            ("default_reply_retry", "-2"),
            ("sasl_mechanisms", "GSSAPI"),
            ("bogus_option", "1"),
        ] {
            let e = AmqpOptions::from_map(&map(&[(k, v)])).unwrap_err();
            assert_eq!(e.oslo_name(), "ConfigurationError");
            assert!(e.to_string().contains(k), "{k}: {e}");
        }
    }

    #[test]
    fn reconnect_delay_backs_off_and_caps() {
        let o = AmqpOptions::default();
        let d: Vec<u64> = (1..=7).map(|n| o.reconnect_delay(n).as_secs()).collect();
        assert_eq!(d, vec![1, 2, 4, 8, 16, 30, 30]);
        let flat = AmqpOptions {
            connection_retry_backoff: 0,
            ..Default::default()
        };
        assert_eq!(flat.reconnect_delay(3).as_secs(), 0);
    }

    #[test]
    fn debug_hides_the_key_password() {
        let o = AmqpOptions {
            ssl_key_password: Some("hunter2".into()),
            ..Default::default()
        };
        assert!(!format!("{o:?}").contains("hunter2"));
        assert!(!serde_json::to_string(&o).unwrap().contains("hunter2"));
    }
}
