//! [`MessagingConfig`]: the loaded option groups, transport selection and
//! the effective-configuration rendering.

use crate::loader::{convert, parse_bool, SchemeCheck};
use crate::options::{
    AmqpOptions, DefaultOptions, KafkaOptions, MetricsOptions, NotificationOptions, RabbitOptions,
    SecretUrl, TracingOptions,
};
use crate::schema::{self, OptionKind, DEFAULT_GROUP, NOTIFICATIONS_GROUP, RABBIT_GROUP};
use crate::{ConfigError, ConfigErrorKind, ConfigWarning, Origin};
use om_driver_api::om_core::{self, url::mask_password};
use om_driver_api::{DriverConfig, Transport, TransportBuilder};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

/// The messaging configuration of a service: every option group, typed,
/// with oslo.messaging 18.3.1's defaults for whatever was not set.
///
/// Obtain it from [`ConfigLoader::load`](crate::ConfigLoader::load), or
/// start from [`MessagingConfig::default`] and set fields. Serializes as a
/// map of section name to options (`{"DEFAULT": {...}, "oslo_messaging_rabbit": {...}}`);
/// note that serialized transport URLs and secrets are in clear text, use
/// [`MessagingConfig::render_effective`] for display.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MessagingConfig {
    /// `[DEFAULT]`.
    #[serde(rename = "DEFAULT")]
    pub default: DefaultOptions,
    /// `[oslo_messaging_notifications]`.
    #[serde(rename = "oslo_messaging_notifications")]
    pub notifications: NotificationOptions,
    /// `[oslo_messaging_rabbit]`.
    #[serde(rename = "oslo_messaging_rabbit")]
    pub rabbit: RabbitOptions,
    /// `[oslo_messaging_kafka]`.
    #[serde(rename = "oslo_messaging_kafka")]
    pub kafka: KafkaOptions,
    /// `[oslo_messaging_amqp]`.
    #[serde(rename = "oslo_messaging_amqp")]
    pub amqp: AmqpOptions,
    /// `[oslo_messaging_metrics]`.
    #[serde(rename = "oslo_messaging_metrics")]
    pub metrics: MetricsOptions,
    /// `[oslo_messaging_tracing]`.
    #[serde(rename = "oslo_messaging_tracing")]
    pub tracing: TracingOptions,
    #[serde(skip)]
    pub(crate) origins: BTreeMap<(String, String), Origin>,
    #[serde(skip)]
    pub(crate) warnings: Vec<ConfigWarning>,
    /// Driver extension options (see `ConfigLoader::driver_extension_options`).
    #[serde(skip)]
    pub(crate) extras: BTreeMap<String, BTreeMap<String, String>>,
    /// Declared driver extension option names.
    #[serde(skip)]
    pub(crate) extra_names: crate::loader::Extras,
    #[serde(skip)]
    pub(crate) sources: Vec<PathBuf>,
    #[serde(skip)]
    pub(crate) schemes: SchemeCheck,
    #[serde(skip)]
    pub(crate) env_prefix: Option<String>,
    #[serde(skip)]
    pub(crate) override_count: usize,
}

/// Which option a transport came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlSource {
    /// The section: `DEFAULT` or `oslo_messaging_notifications`.
    pub group: &'static str,
    /// The option: `transport_url`.
    pub option: &'static str,
}

impl MessagingConfig {
    pub(crate) fn from_groups_json(doc: Json) -> Result<Self, ConfigError> {
        serde_json::from_value(doc).map_err(|e| {
            ConfigErrorKind::Merge(format!("internal: schema and option types disagree: {e}"))
                .into()
        })
    }

    /// Warnings collected while loading (unknown options, deprecated names,
    /// ignored variables), in the order found. Each was also logged.
    pub fn warnings(&self) -> &[ConfigWarning] {
        &self.warnings
    }

    /// The files read, in order (directories expanded).
    pub fn sources(&self) -> &[PathBuf] {
        &self.sources
    }

    /// Driver extension options set for `group` (declared with
    /// [`ConfigLoader::driver_extension_options`](crate::ConfigLoader::driver_extension_options)),
    /// as strings.
    pub fn extension_options(&self, group: &str) -> Option<&BTreeMap<String, String>> {
        self.extras.get(group)
    }

    /// Where the value of `[group] option` came from ([`Origin::Default`]
    /// when it was not set).
    pub fn origin(&self, group: &str, option: &str) -> Origin {
        self.origins
            .get(&(group.to_owned(), option.to_owned()))
            .cloned()
            .unwrap_or(Origin::Default)
    }

    /// The URL used for RPC: `[DEFAULT] transport_url`.
    pub fn rpc_url(&self) -> (&SecretUrl, UrlSource) {
        (
            &self.default.transport_url,
            UrlSource {
                group: DEFAULT_GROUP,
                option: "transport_url",
            },
        )
    }

    /// The URL used for notifications: `[oslo_messaging_notifications]
    /// transport_url` when set, else `[DEFAULT] transport_url`.
    pub fn notification_url(&self) -> (&SecretUrl, UrlSource) {
        match &self.notifications.transport_url {
            Some(url) => (
                url,
                UrlSource {
                    group: NOTIFICATIONS_GROUP,
                    option: "transport_url",
                },
            ),
            None => self.rpc_url(),
        }
    }

    /// The [`DriverConfig`] of the RPC transport: its URL, the control
    /// exchange and the option group of the URL's driver as strings.
    pub fn rpc_driver_config(&self) -> Result<DriverConfig, ConfigError> {
        let (url, src) = self.rpc_url();
        self.driver_config(url, src)
    }

    /// The [`DriverConfig`] of the notification transport.
    pub fn notification_driver_config(&self) -> Result<DriverConfig, ConfigError> {
        let (url, src) = self.notification_url();
        self.driver_config(url, src)
    }

    /// A [`TransportBuilder`] for RPC (oslo's `get_rpc_transport(conf)`).
    pub fn rpc_transport(&self) -> Result<TransportBuilder, ConfigError> {
        let (url, src) = self.rpc_url();
        self.builder(url, src)
    }

    /// A [`TransportBuilder`] for notifications (oslo's
    /// `get_notification_transport(conf)`).
    pub fn notification_transport(&self) -> Result<TransportBuilder, ConfigError> {
        let (url, src) = self.notification_url();
        self.builder(url, src)
    }

    /// Opens the RPC transport with the registered drivers.
    pub async fn open_rpc_transport(&self) -> om_core::Result<Transport> {
        self.rpc_transport()?.open().await
    }

    /// Opens the notification transport with the registered drivers.
    pub async fn open_notification_transport(&self) -> om_core::Result<Transport> {
        self.notification_transport()?.open().await
    }

    fn builder(&self, url: &SecretUrl, src: UrlSource) -> Result<TransportBuilder, ConfigError> {
        let dc = self.driver_config(url, src)?;
        Ok(TransportBuilder::new(url.expose())
            .control_exchange(dc.control_exchange)
            .options(dc.options))
    }

    fn driver_config(&self, url: &SecretUrl, src: UrlSource) -> Result<DriverConfig, ConfigError> {
        let mut sink = Vec::new();
        let parsed = self.check_url(url, src, &mut sink)?;
        let driver = parsed.driver().to_owned();
        let mut dc = DriverConfig::new(parsed);
        dc.control_exchange = self.default.control_exchange.clone();
        if let Some(group) = schema::driver_group(&driver) {
            self.validate_group(group)?;
            dc.options = self.group_options(group.name)?;
            if group.name == RABBIT_GROUP {
                self.check_rabbit(&dc, src)?;
            }
        }
        Ok(dc)
    }

    /// The options of a group as the strings a driver receives
    /// ([`DriverConfig::options`]): every option, defaults included,
    /// booleans as `true`/`false`, lists and multi options comma-joined,
    /// unset options left out. Secrets are included in clear text.
    pub fn group_options(&self, group: &str) -> Result<BTreeMap<String, String>, ConfigError> {
        let spec = schema::group(group)
            .ok_or_else(|| ConfigErrorKind::Merge(format!("no option group [{group}]")))?;
        let all = serde_json::to_value(self).map_err(|e| ConfigErrorKind::Merge(e.to_string()))?;
        let mut out = BTreeMap::new();
        if let Some(Json::Object(opts)) = all.get(spec.name) {
            for o in spec.options {
                if let Some(text) = opts
                    .get(o.name)
                    .and_then(|v| format_json(v).map(|v| v.join(",")))
                {
                    out.insert(o.name.to_owned(), text);
                }
            }
        }
        if let Some(extra) = self.extras.get(spec.name) {
            out.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Ok(out)
    }

    /// Checks a transport URL: syntax, known driver, and the types of
    /// query parameters that override options of the driver's group.
    fn check_url(
        &self,
        url: &SecretUrl,
        src: UrlSource,
        warnings: &mut Vec<ConfigWarning>,
    ) -> Result<om_core::TransportUrl, ConfigError> {
        let origin = self.origin(src.group, src.option);
        let parsed = url.parse().map_err(|e| {
            let reason = match e {
                om_core::Error::InvalidTransportUrl { reason, .. } => reason,
                other => other.to_string(),
            };
            ConfigErrorKind::InvalidTransportUrl {
                origin: origin.clone(),
                group: src.group.to_owned(),
                option: src.option.to_owned(),
                url: url.masked(),
                reason,
            }
        })?;
        let driver = parsed.driver().to_owned();
        if let Err(known) = self.schemes.check(&driver) {
            return Err(ConfigErrorKind::UnknownDriver {
                origin,
                group: src.group.to_owned(),
                option: src.option.to_owned(),
                driver,
                url: url.masked(),
                known,
            }
            .into());
        }
        if let Some(group) = schema::driver_group(&driver) {
            for (key, value) in &parsed.query {
                if self
                    .extra_names
                    .get(group.name)
                    .is_some_and(|n| n.contains(key))
                {
                    continue;
                }
                match group.option(key) {
                    Some(spec) => {
                        let mut sink = Vec::new();
                        convert(group.name, spec, std::slice::from_ref(value), &origin, &mut sink).map_err(|e| {
                            let expected = match e.into_kind() {
                                ConfigErrorKind::InvalidValue { expected, .. } => expected,
                                ConfigErrorKind::OutOfRange { range, .. } => range,
                                other => other.to_string(),
                            };
                            ConfigErrorKind::InvalidValue {
                                origin: origin.clone(),
                                group: src.group.to_owned(),
                                option: src.option.to_owned(),
                                value: url.masked(),
                                expected: format!(
                                    "query parameter {key}={} to be {expected} (it overrides [{}] {key})",
                                    if spec.secret { "****" } else { value },
                                    group.name
                                ),
                            }
                        })?;
                    }
                    None => warnings.push(ConfigWarning::emit(
                        origin.clone(),
                        src.group,
                        src.option,
                        format!(
                            "query parameter {key:?} is not an option of [{}]; the {driver} driver will refuse it",
                            group.name
                        ),
                    )),
                }
            }
        }
        Ok(parsed)
    }

    /// Checks every option against the schema (ranges, choices) and both
    /// transport URLs, as loading does. Useful after changing fields
    /// programmatically; building a transport checks the driver's group
    /// the same way.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for group in schema::groups() {
            self.validate_group(group)?;
        }
        self.check_urls(&mut Vec::new())
    }

    fn validate_group(&self, group: &schema::GroupSpec) -> Result<(), ConfigError> {
        let all = serde_json::to_value(self).map_err(|e| ConfigErrorKind::Merge(e.to_string()))?;
        let Some(Json::Object(opts)) = all.get(group.name) else {
            return Ok(());
        };
        for spec in group.options {
            if let Some(values) = opts.get(spec.name).and_then(format_json) {
                let raw = match spec.kind {
                    OptionKind::List | OptionKind::Multi => values,
                    _ => vec![values.join(",")],
                };
                convert(
                    group.name,
                    spec,
                    &raw,
                    &self.origin(group.name, spec.name),
                    &mut Vec::new(),
                )?;
            }
        }
        Ok(())
    }

    /// Checks both transport URLs (done by the loader).
    pub(crate) fn check_urls(&self, warnings: &mut Vec<ConfigWarning>) -> Result<(), ConfigError> {
        let (url, src) = self.rpc_url();
        self.check_url(url, src, warnings)?;
        if let Some(url) = &self.notifications.transport_url {
            self.check_url(
                url,
                UrlSource {
                    group: NOTIFICATIONS_GROUP,
                    option: "transport_url",
                },
                warnings,
            )?;
        }
        Ok(())
    }

    /// oslo's combination rules of the rabbit driver, checked on the
    /// effective options (group plus URL query): quorum vs HA queues, pool
    /// sizes, stream fanout prerequisites.
    fn check_rabbit(&self, dc: &DriverConfig, src: UrlSource) -> Result<(), ConfigError> {
        let eff = dc.effective_options();
        let origin_of = |name: &str| -> (String, Origin) {
            let origin = if dc.url.query.contains_key(name) {
                self.origin(src.group, src.option)
            } else {
                self.origin(RABBIT_GROUP, name)
            };
            (name.to_owned(), origin)
        };
        let flag = |name: &str| eff.get(name).and_then(|v| parse_bool(v)).unwrap_or(false);
        let int = |name: &str| {
            eff.get(name)
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(0)
        };
        let conflict = |names: &[&str], reason: &str| -> ConfigError {
            ConfigErrorKind::Conflict {
                group: RABBIT_GROUP.to_owned(),
                origins: names.iter().map(|n| origin_of(n)).collect(),
                reason: reason.to_owned(),
            }
            .into()
        };
        if flag("rabbit_quorum_queue") && flag("rabbit_ha_queues") {
            return Err(conflict(
                &["rabbit_quorum_queue", "rabbit_ha_queues"],
                "rabbit_quorum_queue and rabbit_ha_queues cannot both be true: quorum queues are replicated already; disable rabbit_ha_queues",
            ));
        }
        if int("rpc_conn_pool_size") < int("conn_pool_min_size") {
            return Err(conflict(
                &["rpc_conn_pool_size", "conn_pool_min_size"],
                "rpc_conn_pool_size must be greater than or equal to conn_pool_min_size",
            ));
        }
        if flag("rabbit_stream_fanout") {
            if int("rabbit_qos_prefetch_count") <= 0 {
                return Err(conflict(
                    &["rabbit_stream_fanout", "rabbit_qos_prefetch_count"],
                    "rabbit_stream_fanout requires rabbit_qos_prefetch_count greater than 0",
                ));
            }
            if !flag("rabbit_transient_quorum_queue") {
                return Err(conflict(
                    &["rabbit_stream_fanout", "rabbit_transient_quorum_queue"],
                    "rabbit_stream_fanout requires rabbit_transient_quorum_queue = true",
                ));
            }
        }
        Ok(())
    }

    /// The effective configuration as INI text, for `om config show`:
    /// every group and option, secrets masked (`user:****@` in transport
    /// URLs, `****` for secret options).
    ///
    /// The layout is oslo-config-generator's: an option left at its default
    /// is written commented out with the default value (`#heartbeat_rate =
    /// 3`, `#kombu_compression = <None>` when unset); an option set by a
    /// file, the environment or an override is written live, preceded by a
    /// comment saying where it came from. The text loads back with
    /// [`ConfigLoader`](crate::ConfigLoader) to the same options (masked
    /// secrets aside).
    pub fn render_effective(&self) -> String {
        let mut out = String::new();
        out.push_str("# Effective messaging configuration (om). Secrets are masked.\n");
        out.push_str("# Options at their default are commented out.\n");
        let mut layers: Vec<String> = self
            .sources
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        if let Some(prefix) = &self.env_prefix {
            layers.push(format!("environment ({prefix}__*)"));
        }
        if self.override_count > 0 {
            layers.push("programmatic overrides".into());
        }
        if layers.is_empty() {
            out.push_str("# Sources: none (defaults only).\n");
        } else {
            out.push_str("# Sources, lowest precedence first:\n");
            for l in layers {
                let _ = writeln!(out, "#   {l}");
            }
        }
        let all = serde_json::to_value(self).unwrap_or(Json::Null);
        for group in schema::groups() {
            let _ = write!(out, "\n[{}]\n", group.name);
            let opts = all.get(group.name);
            for spec in group.options {
                let value = opts.and_then(|o| o.get(spec.name)).unwrap_or(&Json::Null);
                let origin = self.origin(group.name, spec.name);
                let comment = if origin == Origin::Default {
                    "#"
                } else {
                    let _ = writeln!(out, "# from {origin}");
                    ""
                };
                match format_json(value) {
                    // Unset: `<None>` as oslo's generator writes it; a live
                    // empty value reads back as unset.
                    None if comment.is_empty() => {
                        let _ = writeln!(out, "{} =", spec.name);
                    }
                    None => {
                        let _ = writeln!(out, "#{} = <None>", spec.name);
                    }
                    Some(values) if spec.kind == OptionKind::Multi => {
                        if values.is_empty() {
                            let _ = writeln!(out, "{comment}{} =", spec.name);
                        }
                        for v in values {
                            let _ = writeln!(out, "{comment}{} = {}", spec.name, mask(spec, &v));
                        }
                    }
                    Some(values) => {
                        let v = mask(spec, &values.join(","));
                        let sep = if v.is_empty() { "" } else { " " };
                        let _ = writeln!(out, "{comment}{} ={sep}{v}", spec.name);
                    }
                }
            }
            if let Some(extra) = self.extras.get(group.name) {
                for (name, value) in extra {
                    let _ = writeln!(
                        out,
                        "# driver extension option, from {}",
                        self.origin(group.name, name)
                    );
                    let lower = name.to_lowercase();
                    let shown = if (lower.contains("password") || lower.contains("secret"))
                        && !value.is_empty()
                    {
                        "****"
                    } else {
                        value.as_str()
                    };
                    let _ = writeln!(out, "{name} = {shown}");
                }
            }
        }
        out
    }
}

fn mask(spec: &schema::OptionSpec, value: &str) -> String {
    match spec.kind {
        OptionKind::Url => mask_password(value),
        _ if spec.secret && !value.is_empty() => "****".to_owned(),
        _ => value.to_owned(),
    }
}

/// A typed JSON value as file text: `None` for unset; several items for
/// lists and multi options.
fn format_json(v: &Json) -> Option<Vec<String>> {
    match v {
        Json::Null => None,
        Json::Bool(b) => Some(vec![b.to_string()]),
        Json::Number(n) => Some(vec![match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) => format!("{f:?}"),
            _ => n.to_string(),
        }]),
        Json::String(s) => Some(vec![s.clone()]),
        Json::Array(items) => Some(
            items
                .iter()
                .filter_map(|i| format_json(i).map(|v| v.join(",")))
                .collect(),
        ),
        Json::Object(_) => Some(vec![v.to_string()]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::default_json;
    use crate::schema::groups;

    #[test]
    fn struct_defaults_agree_with_the_schema() {
        let cfg = serde_json::to_value(MessagingConfig::default()).unwrap_or(Json::Null);
        for g in groups() {
            let obj = cfg.get(g.name).and_then(Json::as_object);
            let Some(obj) = obj else {
                panic!("group {} missing from MessagingConfig", g.name)
            };
            assert_eq!(obj.len(), g.options.len(), "field count of [{}]", g.name);
            for o in g.options {
                let expected = default_json(g.name, o).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(
                    obj.get(o.name),
                    Some(&expected),
                    "default of [{}] {}",
                    g.name,
                    o.name
                );
            }
        }
    }

    #[test]
    fn float_formatting_keeps_a_decimal_point() {
        assert_eq!(
            format_json(&serde_json::json!(1.0)),
            Some(vec!["1.0".to_owned()])
        );
        assert_eq!(
            format_json(&serde_json::json!(4.5)),
            Some(vec!["4.5".to_owned()])
        );
        assert_eq!(
            format_json(&serde_json::json!(60)),
            Some(vec!["60".to_owned()])
        );
        assert_eq!(format_json(&Json::Null), None);
    }
}
