//! # om-config
//!
//! oslo.config-style configuration for om: the messaging options of an
//! OpenStack service (`nova.conf`, `neutron.conf`, ...) read from INI files,
//! `OM__` environment variables and programmatic overrides, typed with
//! oslo.messaging 18.3.1's names, types and defaults, and turned into
//! transports the way oslo does it.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let cfg = om_config::ConfigLoader::new()
//!     .config_file("/etc/nova/nova.conf")
//!     .config_dir("/etc/nova/nova.conf.d")
//!     .load()?;
//! let rpc = cfg.open_rpc_transport().await?;            // [DEFAULT] transport_url
//! let notify = cfg.open_notification_transport().await?; // [oslo_messaging_notifications] transport_url, else [DEFAULT]
//! println!("{}", cfg.render_effective());                // `om config show`
//! # Ok(()) }
//! ```
//!
//! A hybrid deployment (RPC on RabbitMQ, notifications on Kafka) is two
//! lines of configuration:
//!
//! ```ini
//! [DEFAULT]
//! transport_url = rabbit://nova:secret@ctl1:5672,nova:secret@ctl2:5672/
//! [oslo_messaging_notifications]
//! transport_url = kafka://kafka1:9092/
//! ```
//!
//! ## Layers, lowest precedence first
//!
//! 1. Files and directories in the order given ([`ConfigLoader::config_file`],
//!    [`ConfigLoader::config_dir`]: every `*.conf` of a directory in sorted
//!    order), later files overriding earlier ones; values of multi-valued
//!    options accumulate across files, as in oslo.
//! 2. Environment variables `OM__<SECTION>__<OPTION>`, e.g.
//!    `OM__DEFAULT__TRANSPORT_URL`, `OM__OSLO_MESSAGING_RABBIT__HEARTBEAT_RATE=5`.
//! 3. [`ConfigLoader::set_override`].
//!
//! The `config` crate does the merging; INI files are read with oslo's own
//! rules by this crate (see the `ini` module for why the `config` crate's
//! INI reader does not fit: repeated keys, backslashes).
//!
//! ## Options
//!
//! [`DefaultOptions`], [`NotificationOptions`], [`RabbitOptions`],
//! [`KafkaOptions`], [`AmqpOptions`], [`MetricsOptions`] and
//! [`TracingOptions`] hold the typed values; [`schema`] describes every
//! option (type, default, range, choices, deprecated names). Values of the
//! wrong type or out of range are errors naming the file, line, section and
//! option; unknown options and deprecated names are accepted with a
//! warning ([`MessagingConfig::warnings`], and `tracing::warn!`).
//!
//! ## Transports
//!
//! [`MessagingConfig::rpc_transport`] and
//! [`MessagingConfig::notification_transport`] return
//! [`om_driver_api::TransportBuilder`]s carrying the URL, `control_exchange`
//! and the URL driver's option group as strings (`rabbit`/`kombu` →
//! `[oslo_messaging_rabbit]`, `kafka` → `[oslo_messaging_kafka]`, `amqp` →
//! `[oslo_messaging_amqp]`, `fake` → none). Drivers validate their own
//! options again when opened, and apply URL query parameters on top.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod ini;
mod loader;
mod messaging;
pub mod options;
pub mod schema;

pub use error::{ConfigError, ConfigErrorKind, ConfigWarning, Origin};
pub use loader::{ConfigLoader, OverrideValue, SchemeCheck};
pub use messaging::{MessagingConfig, UrlSource};
pub use options::{
    AmqpOptions, DefaultOptions, KafkaOptions, MetricsOptions, NotificationOptions, RabbitOptions,
    SecretString, SecretUrl, TracingOptions,
};
