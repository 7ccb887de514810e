//! The `[oslo_messaging_rabbit]` option group, typed.
//!
//! Names, types and defaults are those of oslo.messaging 18.3.1
//! (`overview.md` §11.3). [`RabbitOptions::from_map`] parses the string
//! values a [`DriverConfig`](om_driver_api::DriverConfig) carries (config
//! files, then the transport URL's query parameters on top) with oslo.config's
//! conversion rules, rejects unknown keys and bad values with
//! [`Error::Configuration`] naming the option, and runs the cross-option
//! checks oslo does when a driver or connection is created.

use lapin::types::{AMQPValue, FieldTable, LongString};
use om_driver_api::om_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// How the next broker is picked after a connection failure when the URL
/// lists several hosts (`kombu_failover_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum FailoverStrategy {
    /// Try the hosts in order, wrapping around (`round-robin`).
    #[default]
    #[serde(rename = "round-robin")]
    RoundRobin,
    /// Pick a random host each time (`shuffle`).
    #[serde(rename = "shuffle")]
    Shuffle,
}

/// The SASL mechanism used to log in (`rabbit_login_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum LoginMethod {
    /// `PLAIN`
    #[serde(rename = "PLAIN")]
    Plain,
    /// `AMQPLAIN` (oslo's default)
    #[default]
    #[serde(rename = "AMQPLAIN")]
    AmqPlain,
    /// `EXTERNAL` (TLS client certificate)
    #[serde(rename = "EXTERNAL")]
    External,
    /// `RABBIT-CR-DEMO`
    #[serde(rename = "RABBIT-CR-DEMO")]
    RabbitCrDemo,
}

/// Body compression (`kombu_compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A zlib (RFC 1950) stream, header `compression: application/x-gzip`
    /// (kombu's `gzip`/`zlib` codecs).
    Gzip,
}

impl Compression {
    /// The `compression` header value kombu writes.
    pub fn content_type(self) -> &'static str {
        match self {
            Compression::Gzip => "application/x-gzip",
        }
    }
}

macro_rules! rabbit_options {
    ($( $(#[doc = $doc:literal])* $name:ident : $ty:ty = $default:expr ;)*) => {
        /// The `[oslo_messaging_rabbit]` options (oslo.messaging 18.3.1 names
        /// and defaults). Serde-friendly: every field has a default, so a
        /// partial document deserializes.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        #[non_exhaustive]
        pub struct RabbitOptions {
            $( $(#[doc = $doc])* pub $name: $ty, )*
        }

        impl Default for RabbitOptions {
            fn default() -> Self {
                RabbitOptions { $( $name: $default, )* }
            }
        }

        impl RabbitOptions {
            /// Every option name of the group, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$( stringify!($name), )*];

            fn set(&mut self, key: &str, value: &str) -> Result<()> {
                match key {
                    $( stringify!($name) => { self.$name = FromOption::from_option(key, value)?; } )*
                    // oslo's deprecated name of kombu_missing_consumer_retry_timeout.
                    "kombu_reconnect_timeout" => {
                        self.kombu_missing_consumer_retry_timeout = FromOption::from_option(key, value)?;
                    }
                    _ => {
                        return Err(Error::Configuration(format!(
                            "no such option {key:?} in group [oslo_messaging_rabbit]"
                        )))
                    }
                }
                Ok(())
            }
        }
    };
}

rabbit_options! {
    /// Declare topic exchanges and topic/notification queues durable.
    amqp_durable_queues: bool = false;
    /// Auto-delete flag of topic exchanges and topic/notification queues.
    amqp_auto_delete: bool = false;
    /// Maximum pooled sending connections (oslo); om opens up to this many
    /// channels (at most 64) for `at_least_once` (`mandatory`) requests,
    /// one request in flight on each. At least 1.
    rpc_conn_pool_size: i64 = 30;
    /// Pool size below which idle connections are not expired.
    conn_pool_min_size: i64 = 2;
    /// Idle time (s) after which a pooled connection is closed.
    conn_pool_ttl: i64 = 1200;
    /// Use TLS.
    ssl: bool = false;
    /// TLS protocol version (`TLSv1`, `SSLv23`, `TLSv1_1`, `TLSv1_2`, ...).
    ssl_version: String = String::new();
    /// Client key file (PEM).
    ssl_key_file: String = String::new();
    /// Client certificate file (PEM).
    ssl_cert_file: String = String::new();
    /// CA bundle (PEM) the broker certificate is verified against.
    ssl_ca_file: String = String::new();
    /// Deprecated; no effect.
    ssl_enforce_hostname_verification: bool = true;
    /// Deprecated; no effect.
    ssl_enforce_fips_mode: bool = false;
    /// Extra delay (s, 0–4.5) before reconnecting after an error during an operation.
    kombu_reconnect_delay: f64 = 1.0;
    /// Random extra delay (s, 0..splay) added on reconnect.
    kombu_reconnect_splay: f64 = 0.0;
    /// Body compression: `gzip` (or `zlib`); unset for none.
    kombu_compression: Option<String> = None;
    /// How long (s) a server retries a reply whose reply queue is missing.
    kombu_missing_consumer_retry_timeout: i64 = 60;
    /// Next broker after a failure: `round-robin` or `shuffle`.
    kombu_failover_strategy: FailoverStrategy = FailoverStrategy::RoundRobin;
    /// SASL mechanism.
    rabbit_login_method: LoginMethod = LoginMethod::AmqPlain;
    /// First reconnect interval (s, ≥ 1).
    rabbit_retry_interval: i64 = 1;
    /// Increment of the reconnect interval per attempt (s, ≥ 0).
    rabbit_retry_backoff: i64 = 2;
    /// Maximum reconnect interval (s, ≥ 1).
    rabbit_interval_max: i64 = 30;
    /// Add `x-ha-policy: all` to queues.
    rabbit_ha_queues: bool = false;
    /// Topic and notification queues are quorum queues (durable).
    rabbit_quorum_queue: bool = false;
    /// Reply and fanout queues are quorum queues (durable).
    rabbit_transient_quorum_queue: bool = false;
    /// `x-delivery-limit` of quorum queues (0: not set).
    rabbit_quorum_delivery_limit: i64 = 0;
    /// `x-max-in-memory-length` of quorum queues (0: not set).
    rabbit_quorum_max_memory_length: i64 = 0;
    /// `x-max-in-memory-bytes` of quorum queues (0: not set).
    rabbit_quorum_max_memory_bytes: i64 = 0;
    /// `x-expires` (s) of reply and fanout queues (0 disables).
    rabbit_transient_queues_ttl: i64 = 1800;
    /// `basic.qos` prefetch of consuming connections (0: unlimited, no qos sent).
    rabbit_qos_prefetch_count: i64 = 0;
    /// AMQP heartbeat (s) requested from the broker; 0 disables.
    heartbeat_timeout_threshold: i64 = 60;
    /// Heartbeat checks per threshold period.
    heartbeat_rate: i64 = 3;
    /// Deprecated; replies are always published `mandatory`.
    direct_mandatory_flag: bool = true;
    /// Consumer argument `x-cancel-on-ha-failover: true`.
    enable_cancel_on_failover: bool = false;
    /// Stable reply/fanout queue names `<hostname>:<processname>:<n>`.
    use_queue_manager: bool = false;
    /// Host name used by the queue manager.
    hostname: String = default_hostname();
    /// Process name used by the queue manager.
    processname: String = default_processname();
    /// One shared stream queue per fanout topic (needs prefetch > 0 and
    /// transient quorum queues).
    rabbit_stream_fanout: bool = false;
}

/// The machine's host name (oslo's `socket.gethostname()`).
fn default_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// The program's file name (oslo's `os.path.basename(sys.argv[0])`).
pub(crate) fn default_processname() -> String {
    std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_default()
}

/// Conversion of one option value from its string form, as oslo.config does.
trait FromOption: Sized {
    fn from_option(key: &str, value: &str) -> Result<Self>;
}

fn bad_value(key: &str, value: &str, expected: &str) -> Error {
    Error::Configuration(format!(
        "option {key} of [oslo_messaging_rabbit]: value {value:?} is not {expected}"
    ))
}

impl FromOption for bool {
    fn from_option(key: &str, value: &str) -> Result<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "on" | "yes" => Ok(true),
            "false" | "0" | "off" | "no" => Ok(false),
            _ => Err(bad_value(
                key,
                value,
                "a boolean (true/false, yes/no, on/off, 1/0)",
            )),
        }
    }
}

impl FromOption for i64 {
    fn from_option(key: &str, value: &str) -> Result<Self> {
        value
            .trim()
            .parse()
            .map_err(|_| bad_value(key, value, "an integer"))
    }
}

impl FromOption for f64 {
    fn from_option(key: &str, value: &str) -> Result<Self> {
        value
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| bad_value(key, value, "a floating point number"))
    }
}

impl FromOption for String {
    fn from_option(_key: &str, value: &str) -> Result<Self> {
        Ok(value.to_owned())
    }
}

impl FromOption for Option<String> {
    fn from_option(_key: &str, value: &str) -> Result<Self> {
        Ok(Some(value.to_owned()))
    }
}

impl FromOption for FailoverStrategy {
    fn from_option(key: &str, value: &str) -> Result<Self> {
        match value.trim() {
            "round-robin" => Ok(FailoverStrategy::RoundRobin),
            "shuffle" => Ok(FailoverStrategy::Shuffle),
            _ => Err(bad_value(key, value, "one of round-robin, shuffle")),
        }
    }
}

impl FromOption for LoginMethod {
    fn from_option(key: &str, value: &str) -> Result<Self> {
        match value.trim() {
            "PLAIN" => Ok(LoginMethod::Plain),
            "AMQPLAIN" => Ok(LoginMethod::AmqPlain),
            "EXTERNAL" => Ok(LoginMethod::External),
            "RABBIT-CR-DEMO" => Ok(LoginMethod::RabbitCrDemo),
            _ => Err(bad_value(
                key,
                value,
                "one of PLAIN, AMQPLAIN, EXTERNAL, RABBIT-CR-DEMO",
            )),
        }
    }
}

fn at_least(key: &str, value: i64, min: i64) -> Result<()> {
    if value < min {
        return Err(Error::Configuration(format!(
            "option {key} of [oslo_messaging_rabbit]: {value} is below the minimum {min}"
        )));
    }
    Ok(())
}

impl RabbitOptions {
    /// Parses the option strings of a driver configuration (see
    /// [`DriverConfig::effective_options`](om_driver_api::DriverConfig::effective_options)),
    /// starting from the defaults, then [validates](RabbitOptions::validate).
    ///
    /// ```
    /// use om_driver_rabbit::RabbitOptions;
    /// let opts = RabbitOptions::from_map(&[("rabbit_qos_prefetch_count".to_string(), "5".to_string())].into()).unwrap();
    /// assert_eq!(opts.rabbit_qos_prefetch_count, 5);
    /// assert_eq!(opts.rabbit_transient_queues_ttl, 1800);
    /// assert!(RabbitOptions::from_map(&[("foo".to_string(), "1".to_string())].into()).is_err());
    /// ```
    pub fn from_map(map: &BTreeMap<String, String>) -> Result<Self> {
        let mut opts = RabbitOptions::default();
        for (k, v) in map {
            opts.set(k, v)?;
        }
        opts.validate()?;
        Ok(opts)
    }

    /// Checks ranges, choices and the cross-option rules of oslo:
    /// quorum and HA queues are exclusive, stream fanout needs a prefetch
    /// count > 0 and transient quorum queues, and `rpc_conn_pool_size` must
    /// not be below `conn_pool_min_size`.
    pub fn validate(&self) -> Result<()> {
        at_least("rpc_conn_pool_size", self.rpc_conn_pool_size, 1)?;
        at_least("rabbit_retry_interval", self.rabbit_retry_interval, 1)?;
        at_least("rabbit_retry_backoff", self.rabbit_retry_backoff, 0)?;
        at_least("rabbit_interval_max", self.rabbit_interval_max, 1)?;
        at_least(
            "rabbit_transient_queues_ttl",
            self.rabbit_transient_queues_ttl,
            0,
        )?;
        if !(0.0..=4.5).contains(&self.kombu_reconnect_delay) {
            return Err(Error::Configuration(format!(
                "option kombu_reconnect_delay of [oslo_messaging_rabbit]: {} is outside 0.0-4.5",
                self.kombu_reconnect_delay
            )));
        }
        if self.kombu_reconnect_splay.is_nan() || self.kombu_reconnect_splay < 0.0 {
            return Err(Error::Configuration(format!(
                "option kombu_reconnect_splay of [oslo_messaging_rabbit]: {} is below 0.0",
                self.kombu_reconnect_splay
            )));
        }
        if self.rabbit_qos_prefetch_count > i64::from(u16::MAX) {
            return Err(Error::Configuration(format!(
                "option rabbit_qos_prefetch_count of [oslo_messaging_rabbit]: {} is above the AMQP maximum {}",
                self.rabbit_qos_prefetch_count,
                u16::MAX
            )));
        }
        if !(0..=i64::from(u16::MAX)).contains(&self.heartbeat_timeout_threshold) {
            return Err(Error::Configuration(format!(
                "option heartbeat_timeout_threshold of [oslo_messaging_rabbit]: {} is outside 0-{}",
                self.heartbeat_timeout_threshold,
                u16::MAX
            )));
        }
        self.compression()?;
        if self.rabbit_ha_queues && (self.rabbit_quorum_queue || self.rabbit_transient_quorum_queue)
        {
            return Err(Error::Configuration(
                "rabbit_quorum_queue (or rabbit_transient_quorum_queue) and rabbit_ha_queues are both enabled; \
                 queue type is quorum or HA (mirrored), not both"
                    .into(),
            ));
        }
        if self.rabbit_stream_fanout && self.rabbit_qos_prefetch_count <= 0 {
            return Err(Error::Configuration(
                "rabbit_stream_fanout needs rabbit_qos_prefetch_count to be set to a value greater than 0".into(),
            ));
        }
        if self.rabbit_stream_fanout && !self.rabbit_transient_quorum_queue {
            return Err(Error::Configuration(
                "rabbit_stream_fanout needs rabbit_transient_quorum_queue to be set to true".into(),
            ));
        }
        if self.rpc_conn_pool_size < self.conn_pool_min_size {
            return Err(Error::Configuration(format!(
                "rpc_conn_pool_size: {} must be greater than or equal to conn_pool_min_size: {}",
                self.rpc_conn_pool_size, self.conn_pool_min_size
            )));
        }
        if self.ssl && !self.ssl_version.is_empty() {
            let v = self.ssl_version.to_ascii_lowercase();
            if !matches!(v.as_str(), "tlsv1" | "sslv23" | "tlsv1_1" | "tlsv1_2") {
                return Err(Error::Configuration(format!(
                    "Invalid SSL version : {}",
                    self.ssl_version
                )));
            }
        }
        Ok(())
    }

    /// The body compression, if any. `gzip` and `zlib` select a zlib stream;
    /// other kombu codecs are not available in om.
    pub fn compression(&self) -> Result<Option<Compression>> {
        match self.kombu_compression.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some("gzip") | Some("zlib") => Ok(Some(Compression::Gzip)),
            Some(other) => Err(Error::Configuration(format!(
                "option kombu_compression of [oslo_messaging_rabbit]: {other:?} is not supported by om \
                 (supported: gzip, zlib)"
            ))),
        }
    }

    /// Durability of topic exchanges and topic/notification queues.
    pub fn durable(&self) -> bool {
        self.amqp_durable_queues || self.rabbit_quorum_queue
    }

    /// The `basic.qos` prefetch count for consumers (`None`: send no qos).
    pub(crate) fn prefetch(&self, requested: Option<u16>) -> Option<u16> {
        match requested {
            Some(n) if n > 0 => Some(n),
            Some(_) => None,
            None => u16::try_from(self.rabbit_qos_prefetch_count)
                .ok()
                .filter(|n| *n > 0),
        }
    }

    /// The reconnect wait before round `round` (0-based): interval start
    /// plus `round` steps, capped at the maximum.
    pub(crate) fn retry_interval(&self, round: u32) -> Duration {
        let secs = self
            .rabbit_retry_interval
            .saturating_add(self.rabbit_retry_backoff.saturating_mul(i64::from(round)))
            .min(self.rabbit_interval_max)
            .max(0);
        Duration::from_secs(u64::try_from(secs).unwrap_or(0))
    }

    /// Arguments of topic queues (`T`, `T.S`) and notification/pool queues.
    pub fn topic_queue_arguments(&self) -> FieldTable {
        self.queue_arguments(self.rabbit_quorum_queue, 0, false)
    }

    /// Arguments of the reply queue.
    pub fn reply_queue_arguments(&self) -> FieldTable {
        self.queue_arguments(
            self.rabbit_transient_quorum_queue,
            self.rabbit_transient_queues_ttl,
            false,
        )
    }

    /// Arguments of a server's fanout queue.
    pub fn fanout_queue_arguments(&self) -> FieldTable {
        self.queue_arguments(
            self.rabbit_transient_quorum_queue,
            self.rabbit_transient_queues_ttl,
            self.rabbit_stream_fanout,
        )
    }

    /// oslo's `_get_queue_arguments`. Integers are sent as signed 32-bit
    /// values when they fit (as py-amqp encodes them), since RabbitMQ
    /// compares argument types on redeclaration.
    fn queue_arguments(&self, quorum: bool, ttl: i64, stream: bool) -> FieldTable {
        let mut args = FieldTable::default();
        if stream {
            args.insert("x-queue-type".into(), long_string("stream"));
            if ttl > 0 {
                args.insert("x-max-age".into(), long_string(&format!("{ttl}s")));
            }
            return args;
        }
        if self.rabbit_ha_queues {
            args.insert("x-ha-policy".into(), long_string("all"));
        }
        if quorum {
            args.insert("x-queue-type".into(), long_string("quorum"));
            if self.rabbit_quorum_delivery_limit != 0 {
                args.insert(
                    "x-delivery-limit".into(),
                    amqp_int(self.rabbit_quorum_delivery_limit),
                );
            }
            if self.rabbit_quorum_max_memory_length != 0 {
                args.insert(
                    "x-max-in-memory-length".into(),
                    amqp_int(self.rabbit_quorum_max_memory_length),
                );
            }
            if self.rabbit_quorum_max_memory_bytes != 0 {
                args.insert(
                    "x-max-in-memory-bytes".into(),
                    amqp_int(self.rabbit_quorum_max_memory_bytes),
                );
            }
        }
        if ttl > 0 {
            args.insert("x-expires".into(), amqp_int(ttl.saturating_mul(1000)));
        }
        args
    }

    /// Consumer arguments (`x-cancel-on-ha-failover`).
    pub(crate) fn consumer_arguments(&self) -> FieldTable {
        let mut args = FieldTable::default();
        if self.enable_cancel_on_failover {
            args.insert("x-cancel-on-ha-failover".into(), AMQPValue::Boolean(true));
        }
        args
    }
}

pub(crate) fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// An integer table value encoded as py-amqp does: 32-bit when it fits.
pub(crate) fn amqp_int(v: i64) -> AMQPValue {
    match i32::try_from(v) {
        Ok(i) if i != i32::MIN => AMQPValue::LongInt(i),
        _ => AMQPValue::LongLongInt(v),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_are_oslo_18_3_1() {
        let o = RabbitOptions::from_map(&BTreeMap::new()).unwrap();
        assert!(!o.amqp_durable_queues && !o.amqp_auto_delete);
        assert_eq!(o.rpc_conn_pool_size, 30);
        assert_eq!(o.conn_pool_min_size, 2);
        assert_eq!(o.conn_pool_ttl, 1200);
        assert_eq!(o.kombu_reconnect_delay, 1.0);
        assert_eq!(o.kombu_missing_consumer_retry_timeout, 60);
        assert_eq!(o.kombu_failover_strategy, FailoverStrategy::RoundRobin);
        assert_eq!(o.rabbit_login_method, LoginMethod::AmqPlain);
        assert_eq!(
            (
                o.rabbit_retry_interval,
                o.rabbit_retry_backoff,
                o.rabbit_interval_max
            ),
            (1, 2, 30)
        );
        assert_eq!(o.rabbit_transient_queues_ttl, 1800);
        assert_eq!(o.rabbit_qos_prefetch_count, 0);
        assert_eq!(o.heartbeat_timeout_threshold, 60);
        assert_eq!(o.heartbeat_rate, 3);
        assert!(o.direct_mandatory_flag && o.ssl_enforce_hostname_verification);
        assert_eq!(o.kombu_compression, None);
        assert_eq!(o.compression().unwrap(), None);
        assert!(!o.durable());
        assert_eq!(o.prefetch(None), None);
        assert_eq!(RabbitOptions::NAMES.len(), 37);
    }

    #[test]
    fn values_are_converted_like_oslo_config() {
        let o = RabbitOptions::from_map(&map(&[
            ("rabbit_qos_prefetch_count", "5"),
            ("heartbeat_timeout_threshold", "0"),
            ("amqp_durable_queues", "Yes"),
            ("kombu_reconnect_delay", "0.5"),
            ("kombu_failover_strategy", "shuffle"),
            ("rabbit_login_method", "PLAIN"),
            ("kombu_reconnect_timeout", "7"),
            ("kombu_compression", "gzip"),
        ]))
        .unwrap();
        assert_eq!(o.rabbit_qos_prefetch_count, 5);
        assert_eq!(o.prefetch(None), Some(5));
        assert_eq!(o.prefetch(Some(9)), Some(9));
        assert_eq!(o.heartbeat_timeout_threshold, 0);
        assert!(o.amqp_durable_queues && o.durable());
        assert_eq!(o.kombu_reconnect_delay, 0.5);
        assert_eq!(o.kombu_failover_strategy, FailoverStrategy::Shuffle);
        assert_eq!(o.rabbit_login_method, LoginMethod::Plain);
        assert_eq!(o.kombu_missing_consumer_retry_timeout, 7);
        assert_eq!(o.compression().unwrap(), Some(Compression::Gzip));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_option() {
        let e = RabbitOptions::from_map(&map(&[("foo", "1")])).unwrap_err();
        assert_eq!(e.oslo_name(), "ConfigurationError");
        assert!(e.to_string().contains("\"foo\""), "{e}");
        let e = RabbitOptions::from_map(&map(&[("rabbit_qos_prefetch_count", "abc")])).unwrap_err();
        assert!(matches!(e, Error::Configuration(_)));
        assert!(
            e.to_string().contains("rabbit_qos_prefetch_count")
                && e.to_string().contains("an integer"),
            "{e}"
        );
        let e = RabbitOptions::from_map(&map(&[("ssl", "maybe")])).unwrap_err();
        assert!(
            e.to_string().contains("ssl") && e.to_string().contains("a boolean"),
            "{e}"
        );
        let e = RabbitOptions::from_map(&map(&[("kombu_reconnect_delay", "x")])).unwrap_err();
        assert!(e.to_string().contains("floating point"), "{e}");
        let e =
            RabbitOptions::from_map(&map(&[("kombu_failover_strategy", "random")])).unwrap_err();
        assert!(e.to_string().contains("round-robin, shuffle"), "{e}");
        let e = RabbitOptions::from_map(&map(&[("rabbit_retry_interval", "0")])).unwrap_err();
        assert!(e.to_string().contains("rabbit_retry_interval"), "{e}");
        let e = RabbitOptions::from_map(&map(&[("kombu_compression", "bz2")])).unwrap_err();
        assert!(e.to_string().contains("kombu_compression"), "{e}");
    }

    #[test]
    fn cross_option_checks() {
        let e = RabbitOptions::from_map(&map(&[
            ("rabbit_quorum_queue", "true"),
            ("rabbit_ha_queues", "true"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("rabbit_ha_queues"), "{e}");
        let e = RabbitOptions::from_map(&map(&[
            ("rabbit_stream_fanout", "true"),
            ("rabbit_transient_quorum_queue", "true"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("rabbit_qos_prefetch_count"), "{e}");
        let e = RabbitOptions::from_map(&map(&[
            ("rabbit_stream_fanout", "true"),
            ("rabbit_qos_prefetch_count", "10"),
        ]))
        .unwrap_err();
        assert!(
            e.to_string().contains("rabbit_transient_quorum_queue"),
            "{e}"
        );
        assert!(RabbitOptions::from_map(&map(&[
            ("rabbit_stream_fanout", "true"),
            ("rabbit_qos_prefetch_count", "10"),
            ("rabbit_transient_quorum_queue", "true"),
        ]))
        .is_ok());
        let e = RabbitOptions::from_map(&map(&[
            ("rpc_conn_pool_size", "1"),
            ("conn_pool_min_size", "2"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains(
            "rpc_conn_pool_size: 1 must be greater than or equal to conn_pool_min_size: 2"
        ));
    }

    #[test]
    fn queue_arguments_follow_oslo() {
        let o = RabbitOptions::default();
        assert!(o.topic_queue_arguments().inner().is_empty());
        assert_eq!(
            o.reply_queue_arguments().inner().get("x-expires"),
            Some(&AMQPValue::LongInt(1_800_000))
        );
        let q = RabbitOptions::from_map(&map(&[
            ("rabbit_quorum_queue", "true"),
            ("rabbit_transient_quorum_queue", "true"),
            ("rabbit_quorum_delivery_limit", "5"),
        ]))
        .unwrap();
        let t = q.topic_queue_arguments();
        assert_eq!(t.inner().get("x-queue-type"), Some(&long_string("quorum")));
        assert_eq!(
            t.inner().get("x-delivery-limit"),
            Some(&AMQPValue::LongInt(5))
        );
        assert!(t.inner().get("x-expires").is_none());
        let r = q.reply_queue_arguments();
        assert_eq!(r.inner().len(), 3);
        let s = RabbitOptions::from_map(&map(&[
            ("rabbit_stream_fanout", "true"),
            ("rabbit_qos_prefetch_count", "10"),
            ("rabbit_transient_quorum_queue", "true"),
        ]))
        .unwrap();
        let f = s.fanout_queue_arguments();
        assert_eq!(f.inner().len(), 2);
        assert_eq!(f.inner().get("x-max-age"), Some(&long_string("1800s")));
        let ha = RabbitOptions::from_map(&map(&[("rabbit_ha_queues", "true")])).unwrap();
        assert_eq!(
            ha.topic_queue_arguments().inner().get("x-ha-policy"),
            Some(&long_string("all"))
        );
    }

    #[test]
    fn retry_intervals_grow_and_cap() {
        let o = RabbitOptions::default();
        assert_eq!(o.retry_interval(0), Duration::from_secs(1));
        assert_eq!(o.retry_interval(1), Duration::from_secs(3));
        assert_eq!(o.retry_interval(100), Duration::from_secs(30));
    }

    #[test]
    fn serde_round_trip() {
        let o = RabbitOptions::default();
        let v = serde_json::to_value(&o).unwrap();
        assert_eq!(v["kombu_failover_strategy"], "round-robin");
        assert_eq!(v["rabbit_login_method"], "AMQPLAIN");
        let back: RabbitOptions =
            serde_json::from_value(serde_json::json!({"rabbit_qos_prefetch_count": 3})).unwrap();
        assert_eq!(back.rabbit_qos_prefetch_count, 3);
        assert!(serde_json::from_value::<RabbitOptions>(serde_json::json!({"nope": 1})).is_err());
    }
}
