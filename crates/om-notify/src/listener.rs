//! [`NotificationListener`] and [`BatchNotificationListener`]: consume
//! notifications and hand them to endpoints, with oslo's lifecycle.

use crate::dispatcher::{BatchNotificationDispatcher, NotificationDispatcher};
use crate::endpoint::{BatchNotificationEndpoint, NotificationEndpoint, NotificationResult};
use om_driver_api::om_core::{DynSerializer, Error, JsonObject, Priority, Result, Target};
use om_driver_api::{IncomingMessage, ListenOptions, Listener, Transport};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

/// oslo's `executor_thread_pool_size` default.
pub const DEFAULT_EXECUTOR_POOL_SIZE: usize = 64;

/// Settings shared by both listener builders.
#[derive(Clone)]
struct Common {
    transport: Transport,
    targets: Vec<Target>,
    pool: Option<String>,
    allow_requeue: bool,
    pool_size: usize,
    serializer: Option<DynSerializer>,
    prefetch: Option<u16>,
}

impl Common {
    fn new(transport: Transport) -> Self {
        Common {
            transport,
            targets: Vec::new(),
            pool: None,
            allow_requeue: false,
            pool_size: DEFAULT_EXECUTOR_POOL_SIZE,
            serializer: None,
            prefetch: None,
        }
    }

    /// Checks what oslo checks (and a little more, earlier).
    fn validate(&self) -> Result<()> {
        if self.targets.is_empty() {
            return Err(Error::invalid_target(
                "A notification listener needs at least one target",
                &Target::default(),
            ));
        }
        for t in &self.targets {
            t.validate_for_notification()?;
        }
        if self.pool_size == 0 {
            return Err(Error::Configuration(
                "executor_pool_size must be at least 1".into(),
            ));
        }
        if self.allow_requeue {
            self.transport.require_features(true)?;
        }
        if self.pool.is_some() && !self.transport.capabilities().notification_pools {
            return Err(Error::NotSupported {
                driver: self.transport.driver_name().to_owned(),
                what: "notification listener pools".into(),
            });
        }
        Ok(())
    }

    fn subscriptions(&self, priorities: &[Priority]) -> Vec<(Target, Priority)> {
        let mut subs = Vec::with_capacity(self.targets.len() * priorities.len());
        for t in &self.targets {
            for p in priorities {
                // Only topic and exchange matter for notifications.
                let mut target = Target::new(t.topic.clone().unwrap_or_default());
                target.exchange = t.exchange.clone();
                if !subs.contains(&(target.clone(), *p)) {
                    subs.push((target, *p));
                }
            }
        }
        subs
    }
}

macro_rules! common_builder_methods {
    () => {
        /// Adds a target to listen on (only `topic` and `exchange` are used;
        /// no exchange means the transport's control exchange).
        pub fn target(mut self, target: Target) -> Self {
            self.common.targets.push(target);
            self
        }

        /// Adds several targets.
        pub fn targets(mut self, targets: impl IntoIterator<Item = Target>) -> Self {
            self.common.targets.extend(targets);
            self
        }

        /// Joins listener pool `pool`: listeners of one pool share the
        /// messages; each pool (and the pool-less group) gets its own copy
        /// of every notification.
        pub fn pool(mut self, pool: impl Into<String>) -> Self {
            self.common.pool = Some(pool.into());
            self
        }

        /// Honour [`NotificationResult::Requeue`] (default false: a requeue
        /// result is acknowledged like a handled one). Requires a driver
        /// that can requeue (checked by `build`).
        pub fn allow_requeue(mut self, allow: bool) -> Self {
            self.common.allow_requeue = allow;
            self
        }

        /// How many messages (or batches) are processed at once (default 64,
        /// oslo's `executor_thread_pool_size`).
        pub fn executor_pool_size(mut self, size: usize) -> Self {
            self.common.pool_size = size;
            self
        }

        /// The serializer for contexts and payloads (default: no-op).
        pub fn serializer(mut self, serializer: DynSerializer) -> Self {
            self.common.serializer = Some(serializer);
            self
        }

        /// Upper bound of unacknowledged messages the broker may push
        /// (default: the driver's configured prefetch).
        pub fn prefetch(mut self, prefetch: u16) -> Self {
            self.common.prefetch = Some(prefetch);
            self
        }
    };
}

/// Builds a [`NotificationListener`]; see [`NotificationListener::builder`].
#[must_use = "call build() to get a listener"]
pub struct NotificationListenerBuilder {
    common: Common,
    endpoints: Vec<Arc<dyn NotificationEndpoint>>,
}

impl NotificationListenerBuilder {
    common_builder_methods!();

    /// Adds an endpoint (endpoints are called in the order added).
    pub fn endpoint(mut self, endpoint: impl NotificationEndpoint) -> Self {
        self.endpoints.push(Arc::new(endpoint));
        self
    }

    /// Adds a shared endpoint.
    pub fn endpoint_arc(mut self, endpoint: Arc<dyn NotificationEndpoint>) -> Self {
        self.endpoints.push(endpoint);
        self
    }

    /// Checks the settings and builds the listener (not started).
    ///
    /// Errors: `InvalidTarget` without targets or for a target without
    /// topic; `Configuration` for a zero pool size; `NotSupported` when
    /// `allow_requeue` is set and the driver cannot requeue, or a pool is
    /// asked of a driver without pools.
    pub fn build(self) -> Result<NotificationListener> {
        self.common.validate()?;
        let dispatcher = Arc::new(NotificationDispatcher::new(
            self.endpoints,
            self.common.serializer.clone(),
        ));
        let subscriptions = self
            .common
            .subscriptions(&dispatcher.supported_priorities());
        Ok(NotificationListener {
            core: Core::new(self.common, subscriptions, Mode::Single(dispatcher)),
        })
    }
}

/// Builds a [`BatchNotificationListener`]; see
/// [`BatchNotificationListener::builder`].
#[must_use = "call build() to get a listener"]
pub struct BatchNotificationListenerBuilder {
    common: Common,
    endpoints: Vec<Arc<dyn BatchNotificationEndpoint>>,
    batch_size: usize,
    batch_timeout: Option<Duration>,
}

impl BatchNotificationListenerBuilder {
    common_builder_methods!();

    /// Adds a batch endpoint.
    pub fn endpoint(mut self, endpoint: impl BatchNotificationEndpoint) -> Self {
        self.endpoints.push(Arc::new(endpoint));
        self
    }

    /// Adds a shared batch endpoint.
    pub fn endpoint_arc(mut self, endpoint: Arc<dyn BatchNotificationEndpoint>) -> Self {
        self.endpoints.push(endpoint);
        self
    }

    /// Messages per full batch (default 1). As in oslo, a positive
    /// [`prefetch`](Self::prefetch) caps it. Keep the driver's own prefetch
    /// setting (e.g. `rabbit_qos_prefetch_count`) at least this large, or
    /// set a batch timeout: the broker does not push more unacknowledged
    /// messages than the prefetch allows, so a larger batch never fills.
    pub fn batch_size(mut self, size: usize) -> Self {
        self.batch_size = size;
        self
    }

    /// How long a batch collects before a partial one is dispatched
    /// (default: none, only full batches are dispatched).
    pub fn batch_timeout(mut self, timeout: Duration) -> Self {
        self.batch_timeout = Some(timeout);
        self
    }

    /// Checks the settings and builds the listener (not started). Errors as
    /// [`NotificationListenerBuilder::build`], plus `Configuration` for a
    /// zero batch size or batch timeout.
    pub fn build(self) -> Result<BatchNotificationListener> {
        self.common.validate()?;
        if self.batch_size == 0 {
            return Err(Error::Configuration("batch_size must be at least 1".into()));
        }
        if self.batch_timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::Configuration(
                "batch_timeout must be positive".into(),
            ));
        }
        // As oslo's batch poll: a positive prefetch caps the batch size,
        // since the broker will not push more unacknowledged messages.
        let size = match self.common.prefetch {
            Some(p) if p > 0 => self.batch_size.min(usize::from(p)),
            _ => self.batch_size,
        };
        let dispatcher = Arc::new(BatchNotificationDispatcher::new(
            self.endpoints,
            self.common.serializer.clone(),
        ));
        let subscriptions = self
            .common
            .subscriptions(&dispatcher.supported_priorities());
        Ok(BatchNotificationListener {
            core: Core::new(
                self.common,
                subscriptions,
                Mode::Batch {
                    dispatcher,
                    size,
                    timeout: self.batch_timeout,
                },
            ),
        })
    }
}

#[derive(Clone)]
enum Mode {
    Single(Arc<NotificationDispatcher>),
    Batch {
        dispatcher: Arc<BatchNotificationDispatcher>,
        size: usize,
        timeout: Option<Duration>,
    },
}

enum State {
    Idle,
    Running {
        stop_tx: watch::Sender<bool>,
        receiving: watch::Receiver<bool>,
        done: watch::Receiver<bool>,
    },
    Stopping {
        receiving: watch::Receiver<bool>,
        done: watch::Receiver<bool>,
    },
}

/// The lifecycle and receive loop shared by both listener kinds.
struct Core {
    common: Common,
    subscriptions: Vec<(Target, Priority)>,
    mode: Mode,
    state: Mutex<State>,
}

impl Core {
    fn new(common: Common, subscriptions: Vec<(Target, Priority)>, mode: Mode) -> Self {
        Core {
            common,
            subscriptions,
            mode,
            state: Mutex::new(State::Idle),
        }
    }

    async fn start(&self) -> Result<()> {
        let mut state = self.state.lock().await;
        match &*state {
            State::Running { .. } => return Ok(()),
            State::Stopping { done, .. } => {
                // Restart after stop without wait: let the old run finish.
                let mut done = done.clone();
                let _ = done.wait_for(|d| *d).await;
            }
            State::Idle => {}
        }
        let listener = if self.subscriptions.is_empty() {
            tracing::warn!("no endpoint handles any priority; the listener subscribes to nothing");
            None
        } else {
            let options = ListenOptions::default().with_prefetch(self.common.prefetch);
            let listener = self
                .common
                .transport
                .driver()
                .listen_for_notifications(
                    self.subscriptions.clone(),
                    self.common.pool.clone(),
                    options,
                )
                .await
                .map_err(|e| match e {
                    Error::Transport { message, .. } => Error::ServerListen {
                        target: describe_targets(&self.common.targets),
                        reason: message,
                    },
                    other => other,
                })?;
            Some(listener)
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, done_rx) = watch::channel(false);
        let (receiving_tx, receiving_rx) = watch::channel(true);
        let run = Run {
            listener,
            stop_rx,
            receiving: receiving_tx,
            semaphore: Arc::new(Semaphore::new(self.common.pool_size)),
            allow_requeue: self.common.allow_requeue,
            tasks: JoinSet::new(),
            stopping: false,
        };
        let span = tracing::info_span!(
            "om.notify.listener",
            targets = %describe_targets(&self.common.targets),
            pool = self.common.pool.as_deref(),
        );
        let mode = self.mode.clone();
        tokio::spawn(
            async move {
                run.run(mode).await;
                let _ = done_tx.send(true);
            }
            .instrument(span),
        );
        tracing::debug!(
            subscriptions = self.subscriptions.len(),
            "notification listener started"
        );
        *state = State::Running {
            stop_tx,
            receiving: receiving_rx,
            done: done_rx,
        };
        Ok(())
    }

    /// Signals the receive loop to stop and returns once the driver
    /// listener has stopped (nothing new is fetched after that); the
    /// messages fetched before are dispatched afterwards (`wait`).
    async fn stop(&self) {
        let mut receiving = {
            let mut state = self.state.lock().await;
            match &*state {
                State::Running {
                    stop_tx,
                    receiving,
                    done,
                } => {
                    let _ = stop_tx.send(true);
                    let (receiving, done) = (receiving.clone(), done.clone());
                    *state = State::Stopping {
                        receiving: receiving.clone(),
                        done,
                    };
                    receiving
                }
                State::Stopping { receiving, .. } => receiving.clone(),
                State::Idle => return,
            }
        };
        // An error means the run task is gone: not receiving either.
        let _ = receiving.wait_for(|r| !*r).await;
    }

    async fn wait(&self) {
        let mut done = {
            let state = self.state.lock().await;
            match &*state {
                State::Idle => return,
                State::Running { done, .. } => {
                    tracing::warn!("wait() called before stop(); waiting for stop()");
                    done.clone()
                }
                State::Stopping { done, .. } => done.clone(),
            }
        };
        // An error means the run task is gone: finished just the same.
        let _ = done.wait_for(|d| *d).await;
        let mut state = self.state.lock().await;
        if let State::Stopping { done: d, .. } = &*state {
            if d.same_channel(&done) {
                *state = State::Idle;
            }
        }
    }

    async fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        tokio::time::timeout(timeout, self.wait())
            .await
            .map_err(|_| {
                Error::TaskTimeout(format!("the listener did not finish within {timeout:?}"))
            })
    }

    async fn is_running(&self) -> bool {
        matches!(&*self.state.lock().await, State::Running { .. })
    }
}

fn describe_targets(targets: &[Target]) -> String {
    targets
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One run of a listener: from `start` until the driver listener is
/// drained after `stop`.
struct Run {
    listener: Option<Box<dyn Listener>>,
    stop_rx: watch::Receiver<bool>,
    /// Set to false once the driver listener was stopped (what `stop`
    /// waits for).
    receiving: watch::Sender<bool>,
    semaphore: Arc<Semaphore>,
    allow_requeue: bool,
    tasks: JoinSet<()>,
    stopping: bool,
}

/// What one step of the receive loop produced (a transient value, moved
/// once: its size does not matter).
#[allow(clippy::large_enum_variant)]
enum Step {
    Stop,
    Item(Option<Result<IncomingMessage>>),
    Timeout,
}

impl Run {
    async fn run(mut self, mode: Mode) {
        let Some(mut listener) = self.listener.take() else {
            // Nothing subscribed: just wait for stop.
            let _ = self.stop_rx.wait_for(|s| *s).await;
            return;
        };
        match mode {
            Mode::Single(d) => self.run_single(&mut *listener, d).await,
            Mode::Batch {
                dispatcher,
                size,
                timeout,
            } => {
                self.run_batch(&mut *listener, dispatcher, size, timeout)
                    .await
            }
        }
        // Nothing more is received (stopped, or the driver ended the stream).
        let _ = self.receiving.send(false);
        while let Some(res) = self.tasks.join_next().await {
            log_join(res);
        }
        if let Err(e) = listener.cleanup().await {
            tracing::warn!(error = %e, "error while cleaning up the notification listener");
        }
        tracing::debug!("notification listener finished");
    }

    async fn begin_stop(&mut self, listener: &mut dyn Listener) {
        self.stopping = true;
        tracing::debug!("stopping notification listener");
        if let Err(e) = listener.stop().await {
            tracing::warn!(error = %e, "error while stopping the notification listener");
        }
        let _ = self.receiving.send(false);
    }

    fn reap(&mut self) {
        while let Some(res) = self.tasks.try_join_next() {
            log_join(res);
        }
    }

    async fn permit(&mut self, listener: &mut dyn Listener) -> Option<OwnedSemaphorePermit> {
        loop {
            if self.stopping {
                return self.semaphore.clone().acquire_owned().await.ok();
            }
            tokio::select! {
                biased;
                _ = self.stop_rx.changed() => self.begin_stop(listener).await,
                p = self.semaphore.clone().acquire_owned() => return p.ok(),
            }
        }
    }

    /// The next message, or a timeout at `deadline`; handles the stop
    /// signal on the way.
    async fn step(&mut self, listener: &mut dyn Listener, deadline: Option<Instant>) -> Step {
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        if self.stopping {
            return tokio::select! {
                m = listener.next() => Step::Item(m),
                _ = sleep => Step::Timeout,
            };
        }
        tokio::select! {
            biased;
            _ = self.stop_rx.changed() => Step::Stop,
            m = listener.next() => Step::Item(m),
            _ = sleep => Step::Timeout,
        }
    }

    async fn run_single(
        &mut self,
        listener: &mut dyn Listener,
        dispatcher: Arc<NotificationDispatcher>,
    ) {
        loop {
            self.reap();
            let Some(permit) = self.permit(listener).await else {
                break;
            };
            let item = loop {
                match self.step(listener, None).await {
                    Step::Stop => self.begin_stop(listener).await,
                    Step::Item(item) => break item,
                    Step::Timeout => continue,
                }
            };
            match item {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "notification listener: bad message skipped")
                }
                Some(Ok(msg)) => {
                    let d = dispatcher.clone();
                    let allow = self.allow_requeue;
                    // Boxed: the task then holds a pointer, not the whole
                    // dispatch future, which tokio would otherwise copy as
                    // the task is created, polled to completion and joined.
                    self.tasks.spawn(Box::pin(
                        async move {
                            process_one(msg, &d, allow).await;
                            drop(permit);
                        }
                        .in_current_span(),
                    ));
                }
            }
        }
    }

    async fn run_batch(
        &mut self,
        listener: &mut dyn Listener,
        dispatcher: Arc<BatchNotificationDispatcher>,
        size: usize,
        timeout: Option<Duration>,
    ) {
        let mut ended = false;
        while !ended {
            self.reap();
            // As oslo's batch poll: the timeout window starts when the
            // collection of a batch starts.
            let deadline = timeout.map(|t| Instant::now() + t);
            let mut batch: Vec<IncomingMessage> = Vec::with_capacity(size.min(1024));
            loop {
                match self.step(listener, deadline).await {
                    Step::Stop => self.begin_stop(listener).await,
                    Step::Timeout => break,
                    Step::Item(None) => {
                        ended = true;
                        break;
                    }
                    Step::Item(Some(Err(e))) => {
                        tracing::warn!(error = %e, "notification listener: bad message skipped")
                    }
                    Step::Item(Some(Ok(m))) => {
                        batch.push(m);
                        if batch.len() >= size {
                            break;
                        }
                    }
                }
            }
            if batch.is_empty() {
                continue;
            }
            let Ok(permit) = self.semaphore.clone().acquire_owned().await else {
                break;
            };
            let d = dispatcher.clone();
            let allow = self.allow_requeue;
            self.tasks.spawn(Box::pin(
                async move {
                    process_batch(batch, &d, allow).await;
                    drop(permit);
                }
                .in_current_span(),
            ));
        }
    }
}

fn log_join(res: std::result::Result<(), tokio::task::JoinError>) {
    if let Err(e) = res {
        if e.is_panic() {
            tracing::error!("a notification processing task panicked");
        }
    }
}

async fn settle(msg: &IncomingMessage, requeue: bool) {
    let res = if requeue {
        msg.requeue().await
    } else {
        msg.acknowledge().await
    };
    if let Err(e) = res {
        tracing::error!(error = %e, requeue, "Fail to ack/requeue message.");
    }
}

async fn process_one(
    mut msg: IncomingMessage,
    dispatcher: &NotificationDispatcher,
    allow_requeue: bool,
) {
    let ctxt = std::mem::take(&mut msg.ctxt);
    let message = std::mem::take(&mut msg.message);
    let result = dispatcher.dispatch_owned(ctxt, message).await;
    settle(&msg, result == NotificationResult::Requeue && allow_requeue).await;
}

async fn process_batch(
    mut batch: Vec<IncomingMessage>,
    dispatcher: &BatchNotificationDispatcher,
    allow_requeue: bool,
) {
    let ctxts: Vec<JsonObject> = batch
        .iter_mut()
        .map(|m| std::mem::take(&mut m.ctxt))
        .collect();
    let inputs = ctxts
        .into_iter()
        .zip(batch.iter().map(|m| &m.message))
        .collect();
    let flags = dispatcher.dispatch(inputs).await;
    for (m, requeue) in batch.iter().zip(flags) {
        settle(m, requeue && allow_requeue).await;
    }
}

/// Consumes notifications and hands each one to the endpoints, as
/// oslo.messaging's notification listener (`get_notification_listener`).
///
/// * It subscribes to `<topic>.<priority>` for every target and every
///   priority at least one endpoint implements, in `pool` if given.
/// * Each message is dispatched as described in
///   [`NotificationDispatcher::dispatch`], up to `executor_pool_size`
///   (default 64) at once, and acknowledged only **after** the endpoints
///   ran; it is requeued instead when the result is
///   [`NotificationResult::Requeue`] and `allow_requeue` is set. A message
///   never acknowledged stays on the broker.
/// * `start` / `stop` / `wait` as oslo's servers: `start` subscribes (a
///   second call is a no-op; driver failures become `ServerListenError`);
///   `stop` stops taking messages, the ones already fetched are still
///   processed; `wait` waits for them and releases the subscription.
///   Calling `start` again afterwards restarts it. Dropping the listener
///   stops it the same way.
///
/// ```
/// # async fn demo() -> om_driver_api::om_core::Result<()> {
/// use om_notify::{Endpoint, Notification, NotificationListener};
/// use om_driver_api::{om_core::Target, Transport};
/// let transport = Transport::from_url("fake://").await?;
/// let listener = NotificationListener::builder(transport)
///     .target(Target::new("notifications"))
///     .endpoint(Endpoint::new().info(|n: Notification| async move {
///         println!("{} {}", n.event_type, n.payload);
///     }))
///     .build()?;
/// listener.start().await?;
/// // ...
/// listener.stop().await;
/// listener.wait().await;
/// # Ok(()) }
/// ```
pub struct NotificationListener {
    core: Core,
}

/// Consumes notifications in batches, as oslo.messaging's
/// `get_batch_notification_listener`.
///
/// A batch is handed to the endpoints when it holds `batch_size`
/// messages, or when `batch_timeout` has passed since its collection
/// started and it holds at least one (empty batches are never dispatched;
/// without a timeout only full batches are, until `stop`, which flushes
/// what was fetched). Within a batch messages are grouped by priority; see
/// [`BatchNotificationDispatcher::dispatch`]. Messages not marked for
/// requeue are acknowledged after the endpoints ran. Lifecycle as
/// [`NotificationListener`]; batches are processed up to
/// `executor_pool_size` at once.
pub struct BatchNotificationListener {
    core: Core,
}

macro_rules! listener_methods {
    () => {
        /// Subscribes and starts dispatching. A second call while running is
        /// a no-op.
        pub async fn start(&self) -> Result<()> {
            self.core.start().await
        }

        /// Stops taking new messages and returns once the driver stopped
        /// fetching (it does not wait for running endpoints); those
        /// already fetched are still dispatched (and acknowledged or
        /// requeued), which [`wait`](Self::wait) waits for. No-op unless
        /// running.
        pub async fn stop(&self) {
            self.core.stop().await
        }

        /// Waits until every fetched message was processed, then releases
        /// the subscription. Called while running, it waits for `stop`.
        pub async fn wait(&self) {
            self.core.wait().await
        }

        /// [`wait`](Self::wait) with a limit: `TaskTimeout` when it takes
        /// longer (the wait can be resumed by calling it again).
        pub async fn wait_timeout(&self, timeout: Duration) -> Result<()> {
            self.core.wait_timeout(timeout).await
        }

        /// Whether the listener was started and not stopped.
        pub async fn is_running(&self) -> bool {
            self.core.is_running().await
        }

        /// The `(target, priority)` pairs it subscribes to.
        pub fn subscriptions(&self) -> &[(Target, Priority)] {
            &self.core.subscriptions
        }

        /// The pool, if any.
        pub fn pool(&self) -> Option<&str> {
            self.core.common.pool.as_deref()
        }

        /// Whether requeue results are honoured.
        pub fn allow_requeue(&self) -> bool {
            self.core.common.allow_requeue
        }
    };
}

impl NotificationListener {
    /// A builder: no target, no endpoint, no pool, `allow_requeue = false`,
    /// pool size 64, no-op serializer.
    pub fn builder(transport: Transport) -> NotificationListenerBuilder {
        NotificationListenerBuilder {
            common: Common::new(transport),
            endpoints: Vec::new(),
        }
    }

    listener_methods!();
}

impl BatchNotificationListener {
    /// A builder: as [`NotificationListener::builder`], batch size 1, no
    /// batch timeout.
    pub fn builder(transport: Transport) -> BatchNotificationListenerBuilder {
        BatchNotificationListenerBuilder {
            common: Common::new(transport),
            endpoints: Vec::new(),
            batch_size: 1,
            batch_timeout: None,
        }
    }

    listener_methods!();

    /// Messages per full batch.
    pub fn batch_size(&self) -> usize {
        match &self.core.mode {
            Mode::Batch { size, .. } => *size,
            Mode::Single(_) => 1,
        }
    }
}

impl fmt::Debug for NotificationListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotificationListener")
            .field("subscriptions", &self.core.subscriptions)
            .field("pool", &self.core.common.pool)
            .field("allow_requeue", &self.core.common.allow_requeue)
            .field("executor_pool_size", &self.core.common.pool_size)
            .finish()
    }
}

impl fmt::Debug for BatchNotificationListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (size, timeout) = match &self.core.mode {
            Mode::Batch { size, timeout, .. } => (*size, *timeout),
            Mode::Single(_) => (1, None),
        };
        f.debug_struct("BatchNotificationListener")
            .field("subscriptions", &self.core.subscriptions)
            .field("pool", &self.core.common.pool)
            .field("allow_requeue", &self.core.common.allow_requeue)
            .field("executor_pool_size", &self.core.common.pool_size)
            .field("batch_size", &size)
            .field("batch_timeout", &timeout)
            .finish()
    }
}
