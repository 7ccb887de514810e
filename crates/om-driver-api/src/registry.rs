//! The driver registry and [`Transport`], the handle applications hold.

use crate::{BoxFuture, Capabilities, DynDriver};
use om_core::{Error, Result, TransportUrl};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, OnceLock, RwLock};

/// Everything a driver factory gets to open a driver.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DriverConfig {
    /// The parsed transport URL.
    pub url: TransportUrl,
    /// Exchange used when a target has none (`[DEFAULT] control_exchange`).
    pub control_exchange: String,
    /// The driver's option group (`[oslo_messaging_rabbit]`, ...) as strings,
    /// from configuration files. The URL's query parameters override these
    /// (the driver applies them and rejects unknown keys).
    pub options: BTreeMap<String, String>,
}

impl DriverConfig {
    /// A config for `url` with the default control exchange (`openstack`)
    /// and no options.
    pub fn new(url: TransportUrl) -> Self {
        DriverConfig {
            url,
            control_exchange: "openstack".into(),
            options: BTreeMap::new(),
        }
    }

    /// The driver options with the URL's query parameters applied on top.
    pub fn effective_options(&self) -> BTreeMap<String, String> {
        let mut opts = self.options.clone();
        for (k, v) in &self.url.query {
            opts.insert(k.clone(), v.clone());
        }
        opts
    }
}

/// Opens drivers for one or more URL schemes. Driver crates export one and
/// a `register()` function that calls [`register_driver`].
pub trait DriverFactory: Send + Sync + 'static {
    /// The URL schemes (driver names) this factory serves, e.g. `["rabbit", "kombu"]`.
    fn schemes(&self) -> &'static [&'static str];

    /// Opens a driver. Should fail fast on bad options (`Configuration`
    /// errors naming the option); connecting may be lazy.
    fn open(&self, config: DriverConfig) -> BoxFuture<'static, Result<Arc<dyn DynDriver>>>;
}

type Registry = RwLock<HashMap<String, Arc<dyn DriverFactory>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut map: HashMap<String, Arc<dyn DriverFactory>> = HashMap::new();
        let fake: Arc<dyn DriverFactory> = Arc::new(crate::fake::FakeDriverFactory);
        for s in fake.schemes() {
            map.insert((*s).to_owned(), fake.clone());
        }
        RwLock::new(map)
    })
}

/// Registers a driver factory for its schemes, replacing any earlier one
/// for the same scheme. `fake` is always registered.
pub fn register_driver(factory: Arc<dyn DriverFactory>) {
    let mut map = registry().write().unwrap_or_else(|e| e.into_inner());
    for s in factory.schemes() {
        map.insert((*s).to_owned(), factory.clone());
    }
}

/// The factory registered for a driver name, if any.
pub fn lookup_driver(name: &str) -> Option<Arc<dyn DriverFactory>> {
    let map = registry().read().unwrap_or_else(|e| e.into_inner());
    map.get(name).cloned()
}

/// The registered schemes, sorted.
pub fn registered_schemes() -> Vec<String> {
    let map = registry().read().unwrap_or_else(|e| e.into_inner());
    let mut v: Vec<String> = map.keys().cloned().collect();
    v.sort();
    v
}

/// A handle on one messaging back end, selected by a transport URL.
///
/// Cheap to clone; RPC clients, servers, notifiers and listeners share it.
///
/// ```
/// # async fn demo() -> om_core::Result<()> {
/// let transport = om_driver_api::Transport::from_url("fake://").await?;
/// assert_eq!(transport.driver_name(), "fake");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Transport {
    inner: Arc<TransportInner>,
}

struct TransportInner {
    driver: Arc<dyn DynDriver>,
    url: TransportUrl,
    control_exchange: String,
}

impl Transport {
    /// Opens a transport for `url` with default settings.
    pub async fn from_url(url: &str) -> Result<Transport> {
        TransportBuilder::new(url).open().await
    }

    /// A builder for a transport on `url`.
    pub fn builder(url: impl Into<String>) -> TransportBuilder {
        TransportBuilder::new(url)
    }

    /// Wraps an already opened driver (for tests and custom set-ups).
    pub fn from_driver(
        driver: Arc<dyn DynDriver>,
        url: TransportUrl,
        control_exchange: impl Into<String>,
    ) -> Self {
        Transport {
            inner: Arc::new(TransportInner {
                driver,
                url,
                control_exchange: control_exchange.into(),
            }),
        }
    }

    /// The driver.
    pub fn driver(&self) -> &Arc<dyn DynDriver> {
        &self.inner.driver
    }

    /// The driver's name.
    pub fn driver_name(&self) -> &str {
        self.inner.driver.name()
    }

    /// The transport URL (its `Display` masks passwords).
    pub fn url(&self) -> &TransportUrl {
        &self.inner.url
    }

    /// The exchange used for targets without one.
    pub fn control_exchange(&self) -> &str {
        &self.inner.control_exchange
    }

    /// The driver's capabilities.
    pub fn capabilities(&self) -> Capabilities {
        self.inner.driver.capabilities()
    }

    /// oslo's `require_features`: fails with `NotSupported` when `requeue`
    /// is asked for and the driver cannot requeue.
    pub fn require_features(&self, requeue: bool) -> Result<()> {
        if requeue && !self.capabilities().requeue {
            return Err(Error::NotSupported {
                driver: self.driver_name().to_owned(),
                what: "message requeue".into(),
            });
        }
        Ok(())
    }

    /// Closes the driver's connections and tasks.
    pub async fn cleanup(&self) {
        self.inner.driver.cleanup().await
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("driver", &self.driver_name())
            .field("url", &self.inner.url)
            .field("control_exchange", &self.inner.control_exchange)
            .finish()
    }
}

/// Builds a [`Transport`]: URL, control exchange and driver options.
#[derive(Debug, Clone)]
pub struct TransportBuilder {
    url: String,
    control_exchange: String,
    options: BTreeMap<String, String>,
}

impl TransportBuilder {
    /// A builder for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        TransportBuilder {
            url: url.into(),
            control_exchange: "openstack".into(),
            options: BTreeMap::new(),
        }
    }

    /// Sets the control exchange (default `openstack`).
    pub fn control_exchange(mut self, exchange: impl Into<String>) -> Self {
        self.control_exchange = exchange.into();
        self
    }

    /// Sets one option of the driver's group (e.g. `rabbit_qos_prefetch_count`).
    pub fn option(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.insert(name.into(), value.into());
        self
    }

    /// Sets several driver options.
    pub fn options<I, K, V>(mut self, options: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        for (k, v) in options {
            self.options.insert(k.into(), v.into());
        }
        self
    }

    /// Parses the URL, finds the driver by scheme and opens it.
    ///
    /// Errors: `InvalidTransportURL` for a malformed URL, `DriverLoadFailure`
    /// when no driver is registered for the scheme (the message lists the
    /// registered ones), or the driver's own configuration errors.
    pub async fn open(self) -> Result<Transport> {
        let url = TransportUrl::parse(&self.url)?;
        let name = url.driver().to_owned();
        let factory = lookup_driver(&name).ok_or_else(|| Error::DriverLoadFailure {
            driver: name.clone(),
            reason: format!(
                "no driver registered for this scheme (registered: {}); enable the crate feature of the driver or register it",
                registered_schemes().join(", ")
            ),
        })?;
        let config = DriverConfig {
            url: url.clone(),
            control_exchange: self.control_exchange.clone(),
            options: self.options,
        };
        let driver = factory.open(config).await?;
        Ok(Transport::from_driver(driver, url, self.control_exchange))
    }
}
