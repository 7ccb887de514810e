//! The driver's one AMQP 1.0 connection and its supervisor.
//!
//! [`Connector`] keeps a connection up: it connects on first use, to the
//! URL's hosts round-robin starting at a random one; after a failed attempt
//! it waits `connection_retry_interval × connection_retry_backoff^n`
//! (capped at `connection_retry_interval_max`), and once connected the
//! delay starts over (`wire-amqp1.md` §7). Links report a lost connection
//! with [`Conn::mark_broken`]; the supervisor then reconnects and every
//! user of the connection re-creates its links on the new one.

use crate::address::{resolve_syntax, Addresser, PeerInfo};
use crate::amqp091::{Amqp091, Login};
use crate::options::AmqpOptions;
use crate::sniff::Sniffer;
use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::definitions::Fields;
use fe2o3_amqp::types::primitives::{Symbol, Value as AmqpPrimitive};
use fe2o3_amqp::{Connection, Session};
use om_driver_api::om_core::{Error, Result, TransportHost, TransportUrl};
use om_driver_api::Retry;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The driver name used in errors.
pub(crate) const DRIVER: &str = "amqp";
/// The default AMQP port.
pub(crate) const DEFAULT_PORT: u16 = 5672;
/// How long one connection attempt (TCP, TLS, SASL, open) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long beginning a session may take.
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// A byte stream the driver can run AMQP on.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug + 'static> Io for T {}

/// Everything needed to (re)connect.
pub(crate) struct ConnConfig {
    pub opts: AmqpOptions,
    pub hosts: Vec<TransportHost>,
    pub vhost: Option<String>,
    pub control_exchange: String,
    pub container_id: String,
    #[cfg(feature = "tls")]
    pub tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
}

impl ConnConfig {
    /// Builds the configuration from a parsed URL.
    pub(crate) fn new(url: &TransportUrl, opts: AmqpOptions, control_exchange: String) -> Self {
        let mut hosts = url.hosts.clone();
        if hosts.is_empty() {
            hosts.push(TransportHost::new("localhost", Some(DEFAULT_PORT)));
        }
        let container_id = opts
            .container_name
            .clone()
            .unwrap_or_else(default_container_id);
        ConnConfig {
            #[cfg(feature = "tls")]
            tls: None,
            opts,
            hosts,
            vhost: url.virtual_host.clone(),
            control_exchange,
            container_id,
        }
    }

    /// Checks that every host can authenticate with the SASL options, and
    /// loads the TLS configuration.
    pub(crate) fn validate(&mut self) -> Result<()> {
        for h in &self.hosts {
            sasl_profile(&self.opts, h)?;
        }
        #[cfg(feature = "tls")]
        if self.opts.tls_enabled() {
            self.tls = Some(crate::tls::client_config(&self.opts)?);
        }
        Ok(())
    }

    /// The `open` hostname: the virtual host when `pseudo_vhost` is off.
    fn open_hostname(&self) -> Option<&str> {
        if self.opts.pseudo_vhost {
            None
        } else {
            self.vhost.as_deref().filter(|v| !v.is_empty())
        }
    }
}

fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

fn program_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "om".into())
}

/// `openstack.org/om/container/<node>/<program>/<pid>/<uuid hex>`.
fn default_container_id() -> String {
    format!(
        "openstack.org/om/container/{}/{}/{}/{}",
        node_name(),
        program_name(),
        std::process::id(),
        om_driver_api::om_core::uuid_hex()
    )
}

/// The `open` properties: `process`, `pid`, `node`.
fn open_properties() -> Fields {
    let mut f = Fields::default();
    f.insert(
        Symbol::from("process"),
        AmqpPrimitive::String(program_name()),
    );
    f.insert(
        Symbol::from("pid"),
        AmqpPrimitive::Long(i64::from(std::process::id())),
    );
    f.insert(Symbol::from("node"), AmqpPrimitive::String(node_name()));
    f
}

fn transport_err(message: impl Into<String>) -> Error {
    Error::transport(DRIVER, message, true)
}

/// Opens the byte stream to `host`: TCP, then TLS when configured.
pub(crate) async fn open_stream(cfg: &ConnConfig, host: &TransportHost) -> Result<Box<dyn Io>> {
    let addr = host.address(DEFAULT_PORT);
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr))
        .await
        .map_err(|_| transport_err(format!("connecting to {addr} timed out")))?
        .map_err(|e| transport_err(format!("cannot connect to {addr}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    if cfg.opts.tls_enabled() {
        #[cfg(feature = "tls")]
        {
            let server_name = if cfg.opts.ssl_verify_vhost {
                cfg.vhost
                    .as_deref()
                    .filter(|v| !v.is_empty())
                    .unwrap_or(&host.hostname)
            } else {
                &host.hostname
            };
            let config = match &cfg.tls {
                Some(c) => c.clone(),
                None => crate::tls::client_config(&cfg.opts)?,
            };
            return crate::tls::wrap(tcp, server_name, config).await;
        }
        #[cfg(not(feature = "tls"))]
        return Err(Error::Configuration(
            "TLS needs om-driver-amqp1's crate feature `tls`".into(),
        ));
    }
    Ok(Box::new(tcp))
}

fn sasl_profile(opts: &AmqpOptions, host: &TransportHost) -> Result<SaslProfile> {
    if let Some(user) = host.username.as_deref().filter(|u| !u.is_empty()) {
        if opts.allows_mechanism("PLAIN") {
            let username = if !opts.sasl_default_realm.is_empty() && !user.contains('@') {
                format!("{user}@{}", opts.sasl_default_realm)
            } else {
                user.to_owned()
            };
            let password = host
                .password
                .as_ref()
                .map(|p| p.expose().to_owned())
                .unwrap_or_default();
            return Ok(SaslProfile::Plain { username, password });
        }
    }
    if opts.allows_mechanism("ANONYMOUS") {
        return Ok(SaslProfile::Anonymous);
    }
    Err(Error::Configuration(format!(
        "option sasl_mechanisms: {:?} leaves no usable mechanism (PLAIN needs a user name in the URL)",
        opts.sasl_mechanisms
    )))
}

/// RabbitMQ housekeeping access: how to reach the node over AMQP 0-9-1.
#[derive(Clone)]
pub(crate) struct RabbitSide {
    cfg: Arc<ConnConfig>,
    host: TransportHost,
    login: Login,
}

impl fmt::Debug for RabbitSide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitSide")
            .field("host", &self.host.address(DEFAULT_PORT))
            .field("login", &self.login)
            .finish()
    }
}

/// Work to do over one housekeeping connection.
pub(crate) enum Housekeeping<'a> {
    /// Declare an expiring queue, optionally bound to `(exchange, key)`.
    Declare {
        queue: &'a str,
        bind: Option<(&'a str, &'a str)>,
        expires: Duration,
    },
    /// Delete queues.
    Delete { queues: &'a [String] },
}

impl RabbitSide {
    fn new(cfg: Arc<ConnConfig>, host: &TransportHost) -> Self {
        // The AMQP 1.0 plugin maps ANONYMOUS to its default user (guest).
        let user = host
            .username
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "guest".into());
        let password = match &host.password {
            Some(p) => p.expose().to_owned(),
            None if host.username.is_none() => "guest".into(),
            None => String::new(),
        };
        // With pseudo_vhost the plugin uses its default virtual host; else
        // the open hostname `vhost:<name>` selects one.
        let vhost = cfg
            .open_hostname()
            .and_then(|h| h.strip_prefix("vhost:"))
            .map(str::to_owned)
            .unwrap_or_else(|| "/".into());
        RabbitSide {
            host: host.clone(),
            login: Login {
                user,
                password,
                vhost,
            },
            cfg,
        }
    }

    /// Runs `work` over a fresh AMQP 0-9-1 connection.
    pub(crate) async fn run(&self, work: Housekeeping<'_>) -> Result<()> {
        let io = open_stream(&self.cfg, &self.host).await?;
        let mut c = Amqp091::open(io, &self.login, CONNECT_TIMEOUT).await?;
        let r = match work {
            Housekeeping::Declare {
                queue,
                bind,
                expires,
            } => {
                let mut r = c.declare_expiring_queue(queue, expires).await;
                if let (Ok(()), Some((exchange, key))) = (&r, bind) {
                    r = c.bind(queue, exchange, key).await;
                }
                r
            }
            Housekeeping::Delete { queues } => {
                let mut r = Ok(());
                for q in queues {
                    if let Err(e) = c.delete_queue(q).await {
                        r = Err(e);
                        break;
                    }
                }
                r
            }
        };
        c.close().await;
        r
    }
}

/// One open connection.
pub(crate) struct Conn {
    /// Increases with every (re)connection.
    pub generation: u64,
    /// What the peer announced.
    pub peer: PeerInfo,
    /// Addresses for this connection's syntax.
    pub addresser: Addresser,
    /// RabbitMQ housekeeping, when the peer is RabbitMQ.
    pub rabbit: Option<RabbitSide>,
    handle: tokio::sync::Mutex<ConnectionHandle<()>>,
    broken: AtomicBool,
    broken_notify: Notify,
    broken_watch: watch::Sender<bool>,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("generation", &self.generation)
            .field("peer", &self.peer)
            .field("syntax", &self.addresser.syntax())
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// Begins a session (each link gets its own, as the Python driver does).
    pub(crate) async fn begin_session(&self) -> Result<SessionHandle<()>> {
        let mut h = self.handle.lock().await;
        if h.is_closed() {
            drop(h);
            self.mark_broken();
            return Err(transport_err("the connection is closed"));
        }
        let r = tokio::time::timeout(SESSION_TIMEOUT, Session::begin(&mut h)).await;
        let closed = h.is_closed();
        drop(h);
        match r {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => {
                if closed {
                    self.mark_broken();
                }
                Err(transport_err(format!("cannot begin a session: {e}")))
            }
            Err(_) => {
                self.mark_broken();
                Err(transport_err("beginning a session timed out"))
            }
        }
    }

    /// Reports the connection as unusable; the supervisor reconnects.
    pub(crate) fn mark_broken(&self) {
        if !self.broken.swap(true, Ordering::AcqRel) {
            tracing::info!(
                generation = self.generation,
                "amqp: connection lost, reconnecting"
            );
        }
        self.broken_notify.notify_one();
        self.broken_watch.send_replace(true);
    }

    /// Resolves once the connection is reported broken.
    pub(crate) async fn wait_broken(&self) {
        let mut rx = self.broken_watch.subscribe();
        // An error means the sender is gone, which cannot happen while
        // `self` lives; either way there is nothing more to wait for.
        let _ = rx.wait_for(|b| *b).await;
    }

    /// Marks the connection broken if its engine stopped; returns whether
    /// it did. Links call this after a failure to tell a link problem from
    /// a connection problem.
    pub(crate) async fn check_alive(&self) -> bool {
        if self.is_broken() {
            return false;
        }
        let closed = self.handle.lock().await.is_closed();
        if closed {
            self.mark_broken();
        }
        !closed
    }

    /// Whether the connection was reported broken.
    pub(crate) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    async fn close(&self) {
        let mut h = self.handle.lock().await;
        if !h.is_closed() {
            let _ = tokio::time::timeout(Duration::from_secs(2), h.close()).await;
        }
    }
}

/// The supervisor's published state.
#[derive(Debug, Clone, Default)]
pub(crate) struct Status {
    /// The live connection, if any.
    pub conn: Option<Arc<Conn>>,
    /// Failed connection attempts since the driver started.
    pub failed_attempts: u64,
    /// The last connection error.
    pub last_error: Option<String>,
    /// The driver was cleaned up.
    pub closed: bool,
}

/// Keeps the driver's connection up.
pub(crate) struct Connector {
    cfg: Arc<ConnConfig>,
    status: watch::Sender<Status>,
    started: AtomicBool,
    task: Mutex<Option<JoinHandle<()>>>,
    generation: AtomicU64,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("container_id", &self.cfg.container_id)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// A connector; nothing happens until [`Connector::connection`] is called.
    pub(crate) fn new(cfg: Arc<ConnConfig>) -> Arc<Self> {
        let (status, _) = watch::channel(Status::default());
        Arc::new(Connector {
            cfg,
            status,
            started: AtomicBool::new(false),
            task: Mutex::new(None),
            generation: AtomicU64::new(0),
        })
    }

    /// The configuration.
    pub(crate) fn config(&self) -> &Arc<ConnConfig> {
        &self.cfg
    }

    /// Watches the supervisor's state.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    fn start(self: &Arc<Self>) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = Arc::downgrade(self);
        let handle = tokio::spawn(async move { supervise(me).await });
        *self.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
    }

    /// The live connection, connecting first if needed. Waits until
    /// `deadline` (forever when `None`); with `Retry::Limited(n)` it gives
    /// up after `n + 1` failed connection attempts.
    pub(crate) async fn connection(
        self: &Arc<Self>,
        deadline: Option<Instant>,
        retry: Retry,
    ) -> Result<Arc<Conn>> {
        self.start();
        let mut rx = self.status.subscribe();
        let base = rx.borrow().failed_attempts;
        loop {
            {
                let st = rx.borrow_and_update();
                if st.closed {
                    return Err(Error::Closed);
                }
                if let Some(c) = &st.conn {
                    if !c.is_broken() {
                        return Ok(c.clone());
                    }
                }
                let failed = st.failed_attempts.saturating_sub(base);
                if let Retry::Limited(n) = retry {
                    if failed > u64::from(n) {
                        return Err(Error::MessageDeliveryFailure(format!(
                            "cannot connect to the AMQP 1.0 peer after {failed} attempt(s): {}",
                            st.last_error.as_deref().unwrap_or("unknown error")
                        )));
                    }
                }
            }
            let changed = rx.changed();
            match deadline {
                Some(d) => match tokio::time::timeout_at(d, changed).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Err(Error::Closed),
                    Err(_) => {
                        let st = rx.borrow();
                        return Err(transport_err(format!(
                            "no connection to the AMQP 1.0 peer in time{}",
                            st.last_error
                                .as_deref()
                                .map(|e| format!(": {e}"))
                                .unwrap_or_default()
                        )));
                    }
                },
                None => {
                    if changed.await.is_err() {
                        return Err(Error::Closed);
                    }
                }
            }
        }
    }

    /// Like [`Connector::shutdown`], without waiting: for `Drop`. The
    /// connection is closed by a spawned task when a runtime is available
    /// (else when its last user lets go of it).
    pub(crate) fn shutdown_now(&self) {
        let mut conn = None;
        self.status.send_modify(|s| {
            s.closed = true;
            conn = s.conn.take();
        });
        if let Some(t) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.abort();
        }
        if let Some(c) = conn {
            c.mark_broken();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { c.close().await });
            }
        }
    }

    /// Closes the connection and stops reconnecting.
    pub(crate) async fn shutdown(&self) {
        let conn = {
            let mut conn = None;
            self.status.send_modify(|s| {
                s.closed = true;
                conn = s.conn.take();
            });
            conn
        };
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = task {
            t.abort();
        }
        if let Some(c) = conn {
            c.mark_broken();
            c.close().await;
        }
    }

    async fn connect_once(&self, host: &TransportHost) -> Result<Arc<Conn>> {
        let cfg = &self.cfg;
        let io = open_stream(cfg, host).await?;
        let (io, capture) = Sniffer::new(io);
        let mut builder = Connection::builder()
            .container_id(cfg.container_id.clone())
            .properties(open_properties())
            .channel_max(32767u16)
            .sasl_profile(sasl_profile(&cfg.opts, host)?);
        if let Some(h) = cfg.open_hostname() {
            builder = builder.hostname(h);
        }
        if cfg.opts.idle_timeout > 0 {
            builder = builder.idle_time_out(cfg.opts.idle_timeout.saturating_mul(1000));
        }
        let handle = tokio::time::timeout(CONNECT_TIMEOUT, builder.open_with_stream(io))
            .await
            .map_err(|_| {
                transport_err(format!(
                    "opening the AMQP connection to {} timed out",
                    host.address(DEFAULT_PORT)
                ))
            })?
            .map_err(|e| {
                transport_err(format!(
                    "cannot open the AMQP connection to {}: {e}",
                    host.address(DEFAULT_PORT)
                ))
            })?;
        let peer = capture.peer().unwrap_or_else(|| {
            tracing::warn!("amqp: could not read the peer's open properties; assuming a broker");
            PeerInfo::default()
        });
        let syntax = resolve_syntax(cfg.opts.addressing_mode, &peer);
        let addresser = Addresser::new(
            &cfg.opts,
            syntax,
            cfg.vhost.as_deref(),
            &cfg.control_exchange,
        );
        let rabbit = peer
            .is_rabbitmq()
            .then(|| RabbitSide::new(cfg.clone(), host));
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        tracing::info!(
            host = %host.address(DEFAULT_PORT),
            product = peer.product.as_deref().unwrap_or("-"),
            ?syntax,
            generation,
            "amqp: connected"
        );
        Ok(Arc::new(Conn {
            generation,
            peer,
            addresser,
            rabbit,
            handle: tokio::sync::Mutex::new(handle),
            broken: AtomicBool::new(false),
            broken_notify: Notify::new(),
            broken_watch: watch::channel(false).0,
        }))
    }
}

fn random_index(n: usize) -> usize {
    let hex = om_driver_api::om_core::uuid_hex();
    let v = u64::from_str_radix(&hex[..12], 16).unwrap_or(0);
    (v % n.max(1) as u64) as usize
}

async fn supervise(me: std::sync::Weak<Connector>) {
    let n = match me.upgrade() {
        Some(c) => c.cfg.hosts.len(),
        None => return,
    };
    let mut idx = random_index(n);
    let mut failures: u32 = 0;
    loop {
        let Some(connector) = me.upgrade() else {
            return;
        };
        if connector.status.borrow().closed {
            return;
        }
        let host = connector.cfg.hosts[idx % n].clone();
        match connector.connect_once(&host).await {
            Ok(conn) => {
                failures = 0;
                connector.status.send_modify(|s| {
                    s.conn = Some(conn.clone());
                    s.last_error = None;
                });
                let retry_interval = connector.cfg.opts.retry_interval();
                drop(connector);
                loop {
                    tokio::select! {
                        _ = conn.broken_notify.notified() => {}
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                    if me.strong_count() == 0 {
                        // The driver is gone without cleanup.
                        conn.mark_broken();
                        conn.close().await;
                        return;
                    }
                    if !conn.check_alive().await {
                        break;
                    }
                }
                conn.close().await;
                let Some(connector) = me.upgrade() else {
                    return;
                };
                connector.status.send_modify(|s| {
                    if s.conn
                        .as_ref()
                        .is_some_and(|c| c.generation == conn.generation)
                    {
                        s.conn = None;
                    }
                });
                drop(connector);
                idx = (idx + 1) % n;
                tokio::time::sleep(retry_interval).await;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let delay = connector
                    .cfg
                    .opts
                    .reconnect_delay(failures)
                    .max(Duration::from_millis(50));
                tracing::warn!(host = %host.address(DEFAULT_PORT), error = %e, retry_in = ?delay, "amqp: connection attempt failed");
                connector.status.send_modify(|s| {
                    s.failed_attempts += 1;
                    s.last_error = Some(e.to_string());
                });
                drop(connector);
                idx = (idx + 1) % n;
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn container_id_shape() {
        let id = default_container_id();
        assert!(id.starts_with("openstack.org/om/container/"), "{id}");
        assert_eq!(id.split('/').count(), 7, "{id}");
        assert_eq!(id.rsplit('/').next().map(str::len), Some(32));
    }

    #[test]
    fn sasl_choice() {
        let url: TransportUrl = "amqp://u:p@h:1/".parse().unwrap();
        let mut o = AmqpOptions::default();
        assert!(
            matches!(sasl_profile(&o, &url.hosts[0]).unwrap(), SaslProfile::Plain { username, .. } if username == "u")
        );
        o.sasl_default_realm = "realm".into();
        assert!(
            matches!(sasl_profile(&o, &url.hosts[0]).unwrap(), SaslProfile::Plain { username, .. } if username == "u@realm")
        );
        let anon: TransportUrl = "amqp://h:1/".parse().unwrap();
        assert!(matches!(
            sasl_profile(&o, &anon.hosts[0]).unwrap(),
            SaslProfile::Anonymous
        ));
        o.sasl_mechanisms = "ANONYMOUS".into();
        assert!(matches!(
            sasl_profile(&o, &url.hosts[0]).unwrap(),
            SaslProfile::Anonymous
        ));
        o.sasl_mechanisms = "PLAIN".into();
        assert!(sasl_profile(&o, &anon.hosts[0]).is_err());
    }

    #[test]
    fn hosts_default_to_localhost() {
        let url: TransportUrl = "amqp://".parse().unwrap();
        let cfg = ConnConfig::new(&url, AmqpOptions::default(), "openstack".into());
        assert_eq!(cfg.hosts[0].address(DEFAULT_PORT), "localhost:5672");
        assert!(cfg.open_hostname().is_none());
        let url: TransportUrl = "amqp://h/vh".parse().unwrap();
        let o = AmqpOptions {
            pseudo_vhost: false,
            ..Default::default()
        };
        let cfg = ConnConfig::new(&url, o, "openstack".into());
        assert_eq!(cfg.open_hostname(), Some("vh"));
    }
}
