//! Opening the transport of a command from `--url` / `--config`.

use crate::args::{SendDriver, TransportArgs};
use crate::error::{register_secret, CliError};
use om::{Retry, Transport, TransportBuilder, TransportUrl};
use std::time::Duration;

/// Which transport of a configuration file a command uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// `[DEFAULT] transport_url`.
    Rpc,
    /// `[oslo_messaging_notifications] transport_url`, else `[DEFAULT]`'s.
    Notifications,
}

/// What a configuration file says beyond the transport.
#[derive(Debug, Clone, Default)]
pub(crate) struct Settings {
    /// `[DEFAULT] rpc_response_timeout`.
    pub(crate) rpc_response_timeout: Option<Duration>,
    /// `[oslo_messaging_notifications] topics`.
    pub(crate) notification_topics: Vec<String>,
    /// The first `messaging`/`messagingv2` of `[oslo_messaging_notifications] driver`.
    pub(crate) notification_driver: Option<SendDriver>,
    /// `[oslo_messaging_rabbit] ssl`.
    pub(crate) rabbit_ssl: bool,
}

/// An open transport and what goes with it.
pub(crate) struct Connected {
    pub(crate) transport: Transport,
    pub(crate) url: TransportUrl,
    pub(crate) settings: Settings,
    pub(crate) retry: Retry,
}

impl Connected {
    /// The URL with passwords masked.
    pub(crate) fn masked_url(&self) -> String {
        self.url.to_string()
    }
}

/// Checks the numeric transport arguments.
fn connect_timeout(args: &TransportArgs) -> Result<Duration, CliError> {
    seconds("--connect-timeout", args.connect_timeout)
}

/// A positive, finite number of seconds.
pub(crate) fn seconds(name: &str, value: f64) -> Result<Duration, CliError> {
    if !(value.is_finite() && value > 0.0) {
        return Err(CliError::usage(format!(
            "{name} must be a positive number of seconds, got {value}"
        )));
    }
    Duration::try_from_secs_f64(value).map_err(|e| CliError::usage(format!("{name}: {e}")))
}

/// Resolves the transport builder, the URL and the settings (nothing is
/// contacted).
fn resolve(
    args: &TransportArgs,
    purpose: Purpose,
) -> Result<(TransportBuilder, String, Settings), CliError> {
    om::install_default_drivers();
    let uses_config = !args.config.is_empty() || !args.config_dir.is_empty();
    if uses_config {
        return from_config(args, purpose);
    }
    let url = match &args.url {
        Some(u) => u.clone(),
        None => std::env::var("OM_TRANSPORT_URL")
            .ok()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                CliError::usage(
                    "no broker given: use --url URL or --config FILE (or set OM_TRANSPORT_URL)",
                )
            })?,
    };
    Ok((om::transport_builder(url.clone()), url, Settings::default()))
}

#[cfg(feature = "config")]
fn from_config(
    args: &TransportArgs,
    purpose: Purpose,
) -> Result<(TransportBuilder, String, Settings), CliError> {
    use om::config::ConfigLoader;
    let mut loader = ConfigLoader::new().config_files(args.config.iter().cloned());
    for d in &args.config_dir {
        loader = loader.config_dir(d.clone());
    }
    if let Some(url) = &args.url {
        let group = match purpose {
            Purpose::Rpc => "DEFAULT",
            Purpose::Notifications => "oslo_messaging_notifications",
        };
        loader = loader.set_override(group, "transport_url", url.as_str());
    }
    let cfg = loader.load()?;
    register_config_secrets(&cfg);
    let (builder, url) = match purpose {
        Purpose::Rpc => (cfg.rpc_transport()?, cfg.rpc_url().0.expose().to_owned()),
        Purpose::Notifications => (
            cfg.notification_transport()?,
            cfg.notification_url().0.expose().to_owned(),
        ),
    };
    let settings = Settings {
        rpc_response_timeout: Some(cfg.default.response_timeout()),
        notification_topics: cfg.notifications.topics.clone(),
        notification_driver: cfg
            .notifications
            .driver
            .iter()
            .find_map(|d| match d.as_str() {
                "messagingv2" => Some(SendDriver::Messagingv2),
                "messaging" => Some(SendDriver::Messaging),
                _ => None,
            }),
        rabbit_ssl: cfg.rabbit.ssl,
    };
    Ok((builder, url, settings))
}

#[cfg(not(feature = "config"))]
fn from_config(
    _args: &TransportArgs,
    _purpose: Purpose,
) -> Result<(TransportBuilder, String, Settings), CliError> {
    Err(CliError::config(
        "--config needs the `config` feature; this om was built without it (cargo build -p om-cli --features config)",
    ))
}

/// Registers every password of a configuration (both transport URLs and
/// secret options) for scrubbing.
#[cfg(feature = "config")]
pub(crate) fn register_config_secrets(cfg: &om::config::MessagingConfig) {
    let mut urls = vec![cfg.rpc_url().0.expose().to_owned()];
    if let Some(u) = &cfg.notifications.transport_url {
        urls.push(u.expose().to_owned());
    }
    for u in urls {
        if let Ok(parsed) = TransportUrl::parse(&u) {
            register_url_secrets(&parsed);
        }
    }
    // Secret options (passwords of Kafka SASL, AMQP 1.0, TLS keys) are
    // whatever serializes as a string under a name saying so.
    if let Ok(serde_json::Value::Object(groups)) = serde_json::to_value(cfg) {
        for (_, opts) in groups {
            if let serde_json::Value::Object(opts) = opts {
                for (name, v) in opts {
                    if name.contains("password") || name.contains("secret") {
                        if let Some(s) = v.as_str() {
                            register_secret(s);
                        }
                    }
                }
            }
        }
    }
}

/// Registers the passwords of a URL for scrubbing.
///
/// RabbitMQ's well-known default password `guest` (also what the drivers
/// use when a URL has none) is not a secret and stays readable, so that the
/// user name `guest` is not masked in every message.
pub(crate) fn register_url_secrets(url: &TransportUrl) {
    for h in &url.hosts {
        if let Some(p) = &h.password {
            if p.expose() != "guest" {
                register_secret(p.expose());
            }
        }
    }
}

/// Opens the transport for `purpose`: resolves URL and options, checks
/// the broker can be reached and logged in to, and opens the driver.
pub(crate) async fn open(args: &TransportArgs, purpose: Purpose) -> Result<Connected, CliError> {
    let timeout = connect_timeout(args)?;
    let (builder, url_text, settings) = resolve(args, purpose)?;
    let url = TransportUrl::parse(&url_text).map_err(CliError::from)?;
    register_url_secrets(&url);
    let driver = url.driver().to_owned();
    if om::driver_api::lookup_driver(&driver).is_none() {
        let feature = match driver.as_str() {
            "rabbit" | "kombu" => Some("rabbit"),
            "kafka" => Some("kafka"),
            "amqp" => Some("amqp1"),
            _ => None,
        };
        return Err(CliError::config(match feature {
            Some(f) => format!(
                "this om was built without the {driver} driver (cargo build -p om-cli --features {f}, or --features full)"
            ),
            None => format!(
                "no driver for transport URL scheme {driver:?} (built in: {})",
                om::driver_api::registered_schemes().join(", ")
            ),
        }));
    }
    let tls = settings.rabbit_ssl
        || url.query.get("ssl").is_some_and(|v| {
            matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
        });
    crate::probe::check(&url, tls, timeout).await?;
    let transport = builder.open().await.map_err(CliError::from)?;
    tracing::info!(url = %url, driver = transport.driver_name(), "transport open");
    Ok(Connected {
        transport,
        url,
        settings,
        retry: Retry::from_oslo(Some(args.retry)),
    })
}
