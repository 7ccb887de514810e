//! [`Amqp1Driver`]: the `Driver` implementation.

use crate::address::Cast;
use crate::address::Syntax;
use crate::codec::{self, CallInfo};
use crate::connection::{ConnConfig, Connector, DRIVER};
use crate::listener::{rabbit_fanout_send_address, AmqpListener, LinkEnv, Subscription};
use crate::options::{AddressingMode, AmqpOptions};
use crate::reply::Replies;
use crate::sender::{Kind, SenderPool};
use om_driver_api::om_core::{Error, Priority, Result, Target, TransportUrl};
use om_driver_api::{
    BoxFuture, Capabilities, Driver, DriverConfig, DriverFactory, DynDriver, ListenOptions,
    Listener, Notification, ReplyStream, RpcRequest,
};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Opens `amqp://` drivers. Register it with [`crate::register`].
#[derive(Debug, Default, Clone, Copy)]
pub struct Amqp1DriverFactory;

impl DriverFactory for Amqp1DriverFactory {
    fn schemes(&self) -> &'static [&'static str] {
        &["amqp"]
    }

    fn open(&self, config: DriverConfig) -> BoxFuture<'static, Result<Arc<dyn DynDriver>>> {
        Box::pin(async move {
            let driver: Arc<dyn DynDriver> = Arc::new(Amqp1Driver::new(&config)?);
            Ok(driver)
        })
    }
}

/// The AMQP 1.0 driver (oslo.messaging's `amqp` driver, 14.9.3 wire
/// format). One connection per driver; see the crate documentation.
pub struct Amqp1Driver {
    connector: Arc<Connector>,
    senders: Arc<SenderPool>,
    replies: Arc<Replies>,
    janitor: JoinHandle<()>,
}

impl fmt::Debug for Amqp1Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Amqp1Driver")
            .field("connector", &self.connector)
            .finish_non_exhaustive()
    }
}

impl Drop for Amqp1Driver {
    /// Dropping the driver without [`Driver::cleanup`] still stops its
    /// tasks and closes the connection (the RabbitMQ reply queue then
    /// expires by itself).
    fn drop(&mut self) {
        self.janitor.abort();
        self.replies.abort();
        self.connector.shutdown_now();
    }
}

impl Amqp1Driver {
    /// A driver for `config`; fails on bad options. Connects on first use.
    ///
    /// Must be called inside a tokio runtime.
    pub fn new(config: &DriverConfig) -> Result<Self> {
        let opts = AmqpOptions::from_map(&config.effective_options())?;
        Self::with_options(&config.url, opts, &config.control_exchange)
    }

    /// A driver for `url` with typed options. Fails on options that cannot
    /// work with the URL (e.g. `sasl_mechanisms = PLAIN` without a user).
    ///
    /// Must be called inside a tokio runtime.
    pub fn with_options(
        url: &TransportUrl,
        opts: AmqpOptions,
        control_exchange: &str,
    ) -> Result<Self> {
        opts.validate()?;
        let idle = Duration::from_secs(opts.default_sender_link_timeout.into());
        let senders = Arc::new(SenderPool::new(opts.trace));
        let mut cfg = ConnConfig::new(url, opts, control_exchange.to_owned());
        cfg.validate()?;
        let connector = Connector::new(Arc::new(cfg));
        let weak = Arc::downgrade(&senders);
        let janitor = tokio::spawn(async move {
            let period = (idle / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
            loop {
                tokio::time::sleep(period).await;
                let Some(s) = weak.upgrade() else { return };
                s.purge_idle(idle).await;
            }
        });
        Ok(Amqp1Driver {
            connector,
            senders,
            replies: Replies::new(),
            janitor,
        })
    }

    /// The options in use.
    pub fn options(&self) -> &AmqpOptions {
        &self.connector.config().opts
    }

    /// The AMQP container id (`open` frame).
    pub fn container_id(&self) -> &str {
        &self.connector.config().container_id
    }

    /// The address syntax of the current connection, if connected.
    pub fn current_syntax(&self) -> Option<Syntax> {
        self.connector
            .subscribe()
            .borrow()
            .conn
            .as_ref()
            .map(|c| c.addresser.syntax())
    }

    /// The `product` the peer announced on the current connection.
    pub fn peer_product(&self) -> Option<String> {
        self.connector
            .subscribe()
            .borrow()
            .conn
            .as_ref()
            .and_then(|c| c.peer.product.clone())
    }

    /// Connects now (instead of on first use) and waits up to `timeout`.
    pub async fn connect(&self, timeout: Duration) -> Result<()> {
        self.connector
            .connection(
                Some(Instant::now() + timeout),
                om_driver_api::Retry::Forever,
            )
            .await
            .map(|_| ())
    }

    fn env(&self) -> LinkEnv {
        LinkEnv {
            connector: self.connector.clone(),
            senders: self.senders.clone(),
        }
    }

    fn syntax_hint(&self) -> Option<Syntax> {
        match self.options().addressing_mode {
            AddressingMode::Legacy => Some(Syntax::Legacy),
            AddressingMode::Routable => Some(Syntax::Routable),
            AddressingMode::Dynamic => self.current_syntax(),
        }
    }

    async fn do_send(&self, request: RpcRequest) -> Result<Option<ReplyStream>> {
        let target = request.target.clone();
        target.validate_for_send(request.wait_for_reply)?;
        let opts = self.options();
        let started = Instant::now();
        let is_call = request.wait_for_reply;
        let timeout = match (is_call, request.timeout) {
            (true, Some(t)) => t,
            _ => Duration::from_secs(opts.default_send_timeout.into()),
        };
        let deadline = started + timeout;
        let (kind, settled) = if is_call {
            (Kind::Call, opts.pre_settled.rpc_call)
        } else {
            (Kind::Cast, opts.pre_settled.rpc_cast)
        };
        let mut call = None;
        let mut stream = None;
        if is_call {
            let msg_id = om_driver_api::om_core::uuid_hex();
            stream = Some(self.replies.register(&msg_id));
            let reply_to = match self
                .replies
                .address(&self.connector, deadline, request.retry)
                .await
            {
                Ok(a) => a,
                Err(e) => return Err(Self::send_error(e, true, &msg_id, started, deadline)),
            };
            call = Some((msg_id, reply_to));
        }
        let ttl = if is_call { request.timeout } else { None };
        let send = self.senders.send(
            &self.connector,
            kind,
            settled,
            request.retry,
            deadline,
            |conn| {
                let mut address = conn.addresser.rpc_address(&target);
                if target.fanout
                    && conn.rabbit.is_some()
                    && conn.addresser.syntax() == Syntax::Legacy
                {
                    address = rabbit_fanout_send_address(&address);
                }
                // After a reconnection: the new connection's reply address.
                let fresh = self.replies.address_for(conn.generation);
                let info = call.as_ref().map(|(msg_id, reply_to)| CallInfo {
                    msg_id,
                    reply_to: fresh.as_deref().unwrap_or(reply_to),
                    ttl,
                });
                let m = codec::request(
                    &address,
                    &request.message,
                    &request.ctxt,
                    request.call_monitor_timeout,
                    info,
                )?;
                Ok((address, m))
            },
        );
        let msg_id = call.as_ref().map(|(id, _)| id.clone()).unwrap_or_default();
        match tokio::time::timeout_at(deadline, send).await {
            Ok(Ok(())) => Ok(stream),
            Ok(Err(e)) => Err(Self::send_error(e, is_call, &msg_id, started, deadline)),
            Err(_) => Err(Self::send_error(
                Error::transport(DRIVER, "timed out", true),
                is_call,
                &msg_id,
                started,
                deadline,
            )),
        }
    }

    /// Maps a failed send as the Python driver reports it: a call whose
    /// deadline passed is a `MessagingTimeout`; other failures are
    /// `MessageDeliveryFailure`s.
    fn send_error(
        e: Error,
        is_call: bool,
        msg_id: &str,
        started: Instant,
        deadline: Instant,
    ) -> Error {
        let what = if is_call { "RPC call" } else { "RPC cast" };
        match e {
            e @ (Error::Closed
            | Error::InvalidTarget { .. }
            | Error::Serialization(_)
            | Error::Configuration(_)) => e,
            _ if is_call && Instant::now() >= deadline => Error::MessagingTimeout {
                msg_id: msg_id.to_owned(),
                elapsed: started.elapsed(),
            },
            Error::Transport { message, .. } => {
                Error::MessageDeliveryFailure(format!("{what} failed: {message}"))
            }
            other => other,
        }
    }

    async fn do_send_notification(&self, n: Notification) -> Result<()> {
        n.target.validate_for_send(false)?;
        let opts = self.options();
        let deadline = Instant::now() + Duration::from_secs(opts.default_notify_timeout.into());
        let topic = n.target.topic.clone().unwrap_or_default();
        let send = self.senders.send(
            &self.connector,
            Kind::Notify,
            opts.pre_settled.notify,
            n.retry,
            deadline,
            |conn| {
                let address = conn.addresser.notify_address(&topic);
                let m = codec::notification(&address, &n.message, n.format, &n.ctxt)?;
                Ok((address, m))
            },
        );
        match tokio::time::timeout_at(deadline, send).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(Error::Transport { message, .. })) => Err(Error::MessageDeliveryFailure(
                format!("notification failed: {message}"),
            )),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::MessageDeliveryFailure(
                "notification failed: timed out".into(),
            )),
        }
    }

    fn listen_deadline(&self) -> Instant {
        Instant::now() + Duration::from_secs(self.options().default_send_timeout.into())
    }

    async fn do_listen(&self, target: Target, options: ListenOptions) -> Result<Box<dyn Listener>> {
        target.validate_for_server()?;
        let credit = options
            .prefetch
            .map(u32::from)
            .unwrap_or(self.options().rpc_server_credit);
        let subs = [Cast::Unicast, Cast::Multicast, Cast::Anycast]
            .into_iter()
            .map(|cast| {
                (
                    Subscription::Rpc {
                        target: target.clone(),
                        cast,
                    },
                    credit,
                )
            })
            .collect();
        let l = AmqpListener::start(
            self.env(),
            subs,
            self.listen_deadline(),
            &target.to_string(),
        )
        .await?;
        Ok(Box::new(l))
    }

    async fn do_listen_for_notifications(
        &self,
        targets: Vec<(Target, Priority)>,
        pool: Option<String>,
        options: ListenOptions,
    ) -> Result<Box<dyn Listener>> {
        if pool.as_deref().is_some_and(|p| !p.is_empty()) {
            return Err(Error::NotSupported {
                driver: DRIVER.into(),
                what: "notification listener pools (the AMQP 1.0 driver has none, as in oslo.messaging)".into(),
            });
        }
        if targets.is_empty() {
            return Err(Error::invalid_target(
                "A notification listener needs at least one target",
                &Target::default(),
            ));
        }
        let credit = options
            .prefetch
            .map(u32::from)
            .unwrap_or(self.options().notify_server_credit);
        let mut subs = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (t, p) in &targets {
            t.validate_for_notification()?;
            let topic_priority = format!(
                "{}.{}",
                t.topic.as_deref().unwrap_or_default(),
                p.as_lower()
            );
            if seen.insert(topic_priority.clone()) {
                subs.push((Subscription::Notify { topic_priority }, credit));
            }
        }
        let what = targets
            .iter()
            .map(|(t, p)| format!("{t}/{p}"))
            .collect::<Vec<_>>()
            .join(", ");
        let l = AmqpListener::start(self.env(), subs, self.listen_deadline(), &what).await?;
        Ok(Box::new(l))
    }

    async fn do_cleanup(&self) {
        self.replies.shutdown().await;
        self.senders.clear();
        self.connector.shutdown().await;
    }
}

impl Driver for Amqp1Driver {
    fn name(&self) -> &str {
        DRIVER
    }

    /// RPC (calls, casts, fanout, heartbeats), notifications and requeue
    /// everywhere; no listener pools and no mandatory publish. Notifications
    /// sent before a listener exists are kept only with legacy addressing
    /// (a broker: addresses are queues); a router does not store messages.
    /// In `dynamic` mode before the first connection, the router answer.
    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::none();
        c.rpc = true;
        c.fanout = true;
        c.heartbeat = true;
        c.notifications = true;
        c.notification_pools = false;
        c.requeue = true;
        c.mandatory_publish = false;
        c.retains_unconsumed_notifications = self.syntax_hint() == Some(Syntax::Legacy);
        c
    }

    async fn send(&self, request: RpcRequest) -> Result<Option<ReplyStream>> {
        self.do_send(request).await
    }

    async fn send_notification(&self, notification: Notification) -> Result<()> {
        self.do_send_notification(notification).await
    }

    async fn listen(&self, target: Target, options: ListenOptions) -> Result<Box<dyn Listener>> {
        self.do_listen(target, options).await
    }

    async fn listen_for_notifications(
        &self,
        targets: Vec<(Target, Priority)>,
        pool: Option<String>,
        options: ListenOptions,
    ) -> Result<Box<dyn Listener>> {
        self.do_listen_for_notifications(targets, pool, options)
            .await
    }

    async fn cleanup(&self) {
        self.do_cleanup().await
    }
}
