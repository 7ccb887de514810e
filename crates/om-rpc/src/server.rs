//! [`RpcServer`]: receives requests for a target and dispatches them to
//! endpoints (`overview.md` §6, `wire-rabbit.md` §10-§11).

use crate::dispatcher::{AccessPolicy, Outcome, RpcDispatcher};
use crate::endpoint::Endpoint;
use om_driver_api::om_core::{DynSerializer, Error, Result, Target};
use om_driver_api::{IncomingMessage, ListenOptions, Listener, Transport};
use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{oneshot, watch, Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::field::Empty;
use tracing::Instrument;

/// Default worker pool size (`executor_thread_pool_size`).
pub const DEFAULT_POOL_SIZE: usize = 64;

/// Default duplicate-detection window (oslo's `DUP_MSG_CHECK_SIZE`).
pub const DEFAULT_DEDUP_WINDOW: usize = 16;

/// When a request is acknowledged to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AckMode {
    /// On receipt, before dispatch: at most once, as oslo does. A server
    /// crashing inside a method does not cause redelivery.
    #[default]
    BeforeDispatch,
    /// After the method finished and the reply was sent: at least once. A
    /// request whose server died mid-way is redelivered (methods should be
    /// idempotent).
    AfterDispatch,
}

/// Builds an [`RpcServer`] (oslo's `get_rpc_server` arguments plus om's
/// delivery options).
pub struct RpcServerBuilder {
    transport: Transport,
    target: Target,
    endpoints: Vec<Endpoint>,
    pool_size: usize,
    policy: AccessPolicy,
    ack_mode: AckMode,
    dedup_window: usize,
    ping_enabled: bool,
    serializer: Option<DynSerializer>,
    listen_options: ListenOptions,
}

impl RpcServerBuilder {
    /// Adds an endpoint (searched in the order added).
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoints.push(endpoint);
        self
    }

    /// Adds several endpoints.
    pub fn endpoints(mut self, endpoints: impl IntoIterator<Item = Endpoint>) -> Self {
        self.endpoints.extend(endpoints);
        self
    }

    /// Maximum number of requests processed at once (default 64). The
    /// server takes the next message only when a worker slot is free.
    pub fn executor_pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// Which methods may be invoked (default [`AccessPolicy::Default`]).
    pub fn access_policy(mut self, policy: AccessPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// When requests are acknowledged (default [`AckMode::BeforeDispatch`]).
    pub fn ack_mode(mut self, mode: AckMode) -> Self {
        self.ack_mode = mode;
        self
    }

    /// How many recent `_unique_id`s are remembered to drop duplicates
    /// (default 16; 0 disables the check).
    pub fn dedup_window(mut self, size: usize) -> Self {
        self.dedup_window = size;
        self
    }

    /// Adds the `oslo_rpc_server_ping` method returning `"pong"` (oslo's
    /// `rpc_ping_enabled`, default false).
    pub fn ping_enabled(mut self, enabled: bool) -> Self {
        self.ping_enabled = enabled;
        self
    }

    /// The serializer for arguments, results and context (default no-op).
    pub fn serializer(mut self, serializer: DynSerializer) -> Self {
        self.serializer = Some(serializer);
        self
    }

    /// Options passed to the driver's `listen` (e.g. prefetch).
    pub fn listen_options(mut self, options: ListenOptions) -> Self {
        self.listen_options = options;
        self
    }

    /// Builds the server. Fails with [`Error::Configuration`] for a pool
    /// size of 0. The target is validated by [`RpcServer::start`].
    pub fn build(self) -> Result<RpcServer> {
        if self.pool_size == 0 {
            return Err(Error::Configuration(
                "executor_pool_size must be at least 1".into(),
            ));
        }
        let pool_size = u32::try_from(self.pool_size)
            .ok()
            .filter(|n| (*n as usize) <= Semaphore::MAX_PERMITS)
            .ok_or_else(|| {
                Error::Configuration(format!(
                    "executor_pool_size {} is too large",
                    self.pool_size
                ))
            })?;
        let dispatcher = RpcDispatcher::new(
            self.endpoints,
            self.policy,
            self.serializer,
            self.ping_enabled,
        );
        Ok(RpcServer {
            inner: Arc::new(Inner {
                transport: self.transport,
                target: self.target,
                dispatcher,
                pool_size,
                ack_mode: self.ack_mode,
                dedup_window: self.dedup_window,
                listen_options: self.listen_options,
                lifecycle: Mutex::new(Lifecycle::Idle),
            }),
        })
    }
}

struct Inner {
    transport: Transport,
    target: Target,
    dispatcher: RpcDispatcher,
    pool_size: u32,
    ack_mode: AckMode,
    dedup_window: usize,
    listen_options: ListenOptions,
    lifecycle: Mutex<Lifecycle>,
}

enum Lifecycle {
    Idle,
    Running(Run),
    Stopped(Stopped),
}

struct Run {
    shutdown: ShutdownHandle,
    abort: watch::Sender<bool>,
    semaphore: Arc<Semaphore>,
    receiver: JoinHandle<Option<Box<dyn Listener>>>,
    /// Completed (or dropped) by the receive loop once the subscription is
    /// stopped, before it hands out what the driver had already fetched.
    receiving_stopped: oneshot::Receiver<()>,
}

struct Stopped {
    semaphore: Arc<Semaphore>,
    abort: watch::Sender<bool>,
    /// The receive loop, still dispatching what the driver had fetched
    /// before the stop (as workers free up); it returns the listener.
    receiver: JoinHandle<Option<Box<dyn Listener>>>,
}

/// A cloneable handle that tells a running server to stop taking messages
/// (the first half of a graceful shutdown; [`RpcServer::wait`] or
/// [`RpcServer::serve_until`] finish it). Usable from any task or thread.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    tx: Arc<watch::Sender<bool>>,
}

impl ShutdownHandle {
    fn new() -> Self {
        ShutdownHandle {
            tx: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Asks the server to stop taking new messages. Idempotent.
    pub fn shutdown(&self) {
        self.tx.send_replace(true);
    }

    /// Whether a shutdown was asked for.
    pub fn is_shutdown(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once a shutdown was asked for.
    pub async fn requested(&self) {
        let mut rx = self.tx.subscribe();
        // An error means the sender is gone, which cannot happen while
        // `self` holds it; either way there is nothing left to wait for.
        let _ = rx.wait_for(|v| *v).await;
    }
}

/// An RPC server for one target (topic + server name): subscribes through
/// the transport's driver, dispatches requests to its endpoints on tokio
/// tasks (at most `executor_pool_size` at once) and replies to calls.
///
/// Lifecycle as oslo's: [`RpcServer::start`], [`RpcServer::stop`] (take no
/// new messages), [`RpcServer::wait`] (finish and reply to every in-flight
/// request, then release the subscription). After `wait` the server can be
/// started again. [`RpcServer::serve_until`] runs the whole sequence around
/// a shutdown signal. Dropping an `RpcServer` does not stop it: its tasks
/// run until stopped (or aborted, or the runtime ends).
///
/// ```no_run
/// # async fn demo() -> om_rpc::om_core::Result<()> {
/// use om_rpc::{Endpoint, RpcServer, om_core::{Context, Target}};
/// let transport = om_rpc::Transport::from_url("fake://").await?;
/// let server = RpcServer::builder(transport, Target::new("compute").with_server("host1"))
///     .endpoint(Endpoint::new().method("ping", |_ctx: Context, _: ()| async { Ok("pong") }))
///     .build()?;
/// server.serve_until(async { let _ = tokio::signal::ctrl_c().await; }).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RpcServer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcServer")
            .field("target", &self.inner.target)
            .field("dispatcher", &self.inner.dispatcher)
            .field("pool_size", &self.inner.pool_size)
            .field("ack_mode", &self.inner.ack_mode)
            .finish_non_exhaustive()
    }
}

impl RpcServer {
    /// A builder for a server of `target` (topic and server required) over
    /// `transport`.
    pub fn builder(transport: Transport, target: Target) -> RpcServerBuilder {
        RpcServerBuilder {
            transport,
            target,
            endpoints: Vec::new(),
            pool_size: DEFAULT_POOL_SIZE,
            policy: AccessPolicy::Default,
            ack_mode: AckMode::BeforeDispatch,
            dedup_window: DEFAULT_DEDUP_WINDOW,
            ping_enabled: false,
            serializer: None,
            listen_options: ListenOptions::default(),
        }
    }

    /// The server's target.
    pub fn target(&self) -> &Target {
        &self.inner.target
    }

    /// The dispatcher (endpoints, policy, serializer).
    pub fn dispatcher(&self) -> &RpcDispatcher {
        &self.inner.dispatcher
    }

    /// Subscribes and starts receiving. Returns a [`ShutdownHandle`].
    ///
    /// A second `start` while running is a no-op returning the same handle.
    /// A `start` after `stop` without `wait` first completes that `wait`.
    ///
    /// Errors: [`Error::InvalidTarget`] when the target lacks topic or
    /// server; [`Error::ServerListen`] when the driver fails to subscribe
    /// (other driver errors, e.g. `NotSupported`, as they come).
    pub async fn start(&self) -> Result<ShutdownHandle> {
        let mut state = self.inner.lifecycle.lock().await;
        match &*state {
            Lifecycle::Running(run) => return Ok(run.shutdown.clone()),
            Lifecycle::Stopped(_) => {
                if let Lifecycle::Stopped(stopped) = std::mem::replace(&mut *state, Lifecycle::Idle)
                {
                    self.finish(stopped).await?;
                }
            }
            Lifecycle::Idle => {}
        }
        let target = &self.inner.target;
        target.validate_for_server()?;
        let listener = self
            .inner
            .transport
            .driver()
            .listen(target.clone(), self.inner.listen_options.clone())
            .await
            .map_err(|e| match e {
                Error::Transport { message, .. } => Error::ServerListen {
                    target: target.to_string(),
                    reason: message,
                },
                other => other,
            })?;
        let shutdown = ShutdownHandle::new();
        let (abort, _) = watch::channel(false);
        let semaphore = Arc::new(Semaphore::new(self.inner.pool_size as usize));
        let (stopped_tx, receiving_stopped) = oneshot::channel();
        let receiver = tokio::spawn(
            receive_loop(
                self.inner.clone(),
                listener,
                shutdown.clone(),
                abort.clone(),
                semaphore.clone(),
                stopped_tx,
            )
            .instrument(tracing::info_span!("om_rpc.server", target = %target)),
        );
        tracing::info!(target = %target, pool_size = self.inner.pool_size, "RPC server started");
        *state = Lifecycle::Running(Run {
            shutdown: shutdown.clone(),
            abort,
            semaphore,
            receiver,
            receiving_stopped,
        });
        Ok(shutdown)
    }

    /// Stops taking new messages. Returns once the subscription is
    /// stopped, without waiting for running requests or for a free worker:
    /// messages the driver had already fetched are still dispatched, in
    /// order, as workers free up, and running requests go on (see
    /// [`RpcServer::wait`], which waits for both). A no-op when not running.
    pub async fn stop(&self) -> Result<()> {
        let mut state = self.inner.lifecycle.lock().await;
        if let Lifecycle::Running(_) = &*state {
            if let Lifecycle::Running(run) = std::mem::replace(&mut *state, Lifecycle::Idle) {
                run.shutdown.shutdown();
                // An error means the loop ended without signalling (the
                // driver closed the subscription, or the task failed):
                // receiving has stopped either way.
                let _ = run.receiving_stopped.await;
                *state = Lifecycle::Stopped(Stopped {
                    semaphore: run.semaphore,
                    abort: run.abort,
                    receiver: run.receiver,
                });
                tracing::info!(target = %self.inner.target, "RPC server stopped");
            }
        }
        Ok(())
    }

    /// Waits for the server to be stopped (by [`RpcServer::stop`] or a
    /// [`ShutdownHandle`]), then for every in-flight request to finish and
    /// be replied to, then releases the subscription (the driver's
    /// cleanup). The server can be started again afterwards. Returns at once
    /// when the server is idle.
    pub async fn wait(&self) -> Result<()> {
        loop {
            let state = self.inner.lifecycle.lock().await;
            match &*state {
                Lifecycle::Idle => return Ok(()),
                Lifecycle::Running(run) => {
                    let shutdown = run.shutdown.clone();
                    drop(state);
                    shutdown.requested().await;
                    self.stop().await?;
                }
                Lifecycle::Stopped(_) => {
                    let mut state = state;
                    if let Lifecycle::Stopped(stopped) =
                        std::mem::replace(&mut *state, Lifecycle::Idle)
                    {
                        return self.finish(stopped).await;
                    }
                }
            }
        }
    }

    /// Starts, runs until `signal` resolves (or a [`ShutdownHandle`] asks
    /// for shutdown), then stops and waits: a graceful shutdown in which
    /// every request already taken is answered.
    pub async fn serve_until<F: Future<Output = ()>>(&self, signal: F) -> Result<()> {
        let handle = self.start().await?;
        tokio::select! {
            _ = signal => {}
            _ = handle.requested() => {}
        }
        self.stop().await?;
        self.wait().await
    }

    /// Kills the server as a crash would: receiving ends, in-flight
    /// requests are cancelled without reply or heartbeat, and the
    /// subscription is dropped without cleanup (with
    /// [`AckMode::AfterDispatch`] their messages return to the broker).
    /// Meant for tests and emergencies; use stop + wait otherwise.
    pub async fn abort(&self) {
        let mut state = self.inner.lifecycle.lock().await;
        match std::mem::replace(&mut *state, Lifecycle::Idle) {
            Lifecycle::Running(run) => {
                run.abort.send_replace(true);
                run.receiver.abort();
                // The loop owns the listener; aborting drops it.
                let _ = run.receiver.await;
            }
            Lifecycle::Stopped(stopped) => {
                stopped.abort.send_replace(true);
                // Fetched messages not yet dispatched are dropped with the
                // listener, unacknowledged (the broker delivers them again).
                stopped.receiver.abort();
                let _ = stopped.receiver.await;
            }
            Lifecycle::Idle => {}
        }
        tracing::warn!(target = %self.inner.target, "RPC server aborted");
    }

    async fn finish(&self, stopped: Stopped) -> Result<()> {
        // First every fetched message is dispatched ...
        let listener = match stopped.receiver.await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "RPC server receive loop failed");
                None
            }
        };
        // ... then every worker holds a permit: owning them all means all
        // are done.
        if let Ok(permits) = stopped.semaphore.acquire_many(self.inner.pool_size).await {
            drop(permits);
        }
        if let Some(listener) = listener {
            listener.cleanup().await?;
        }
        tracing::info!(target = %self.inner.target, "RPC server finished");
        Ok(())
    }
}

/// A bounded window of recently seen `_unique_id`s.
pub(crate) struct DedupWindow {
    cap: usize,
    // One allocation per id, shared by both.
    order: VecDeque<Arc<str>>,
    seen: HashSet<Arc<str>>,
}

impl DedupWindow {
    pub(crate) fn new(cap: usize) -> Self {
        DedupWindow {
            cap,
            order: VecDeque::with_capacity(cap),
            seen: HashSet::with_capacity(cap),
        }
    }

    /// Records `id`; returns `true` when it was already in the window.
    pub(crate) fn is_duplicate(&mut self, id: &str) -> bool {
        if self.cap == 0 {
            return false;
        }
        if self.seen.contains(id) {
            return true;
        }
        if self.order.len() == self.cap {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        let id: Arc<str> = Arc::from(id);
        self.order.push_back(id.clone());
        self.seen.insert(id);
        false
    }
}

async fn receive_loop(
    inner: Arc<Inner>,
    mut listener: Box<dyn Listener>,
    shutdown: ShutdownHandle,
    abort: watch::Sender<bool>,
    semaphore: Arc<Semaphore>,
    receiving_stopped: oneshot::Sender<()>,
) -> Option<Box<dyn Listener>> {
    let mut dedup = DedupWindow::new(inner.dedup_window);
    let mut ended = false;
    loop {
        // Backpressure: take a message only when a worker slot is free.
        let permit = tokio::select! {
            biased;
            _ = shutdown.requested() => break,
            p = semaphore.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let next = tokio::select! {
            biased;
            _ = shutdown.requested() => break,
            n = listener.next() => n,
        };
        match next {
            None => {
                tracing::warn!(
                    "the driver closed the subscription; the server takes no more messages"
                );
                // Let `wait()` proceed as after a stop.
                shutdown.shutdown();
                ended = true;
                break;
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "dropping a message that could not be received");
            }
            Some(Ok(msg)) => accept(&inner, msg, permit, &mut dedup, &abort).await,
        }
    }
    if !ended {
        if let Err(e) = listener.stop().await {
            tracing::warn!(error = %e, "failed to stop the subscription");
        }
        // `stop()` returns now; `wait()` waits for the rest.
        let _ = receiving_stopped.send(());
        // Hand out what the driver had already fetched.
        loop {
            let Ok(permit) = semaphore.clone().acquire_owned().await else {
                break;
            };
            match listener.next().await {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "dropping a message that could not be received")
                }
                Some(Ok(msg)) => accept(&inner, msg, permit, &mut dedup, &abort).await,
            }
        }
    }
    Some(listener)
}

async fn accept(
    inner: &Arc<Inner>,
    msg: IncomingMessage,
    permit: OwnedSemaphorePermit,
    dedup: &mut DedupWindow,
    abort: &watch::Sender<bool>,
) {
    if let Some(id) = msg.unique_id.as_deref() {
        if dedup.is_duplicate(id) {
            tracing::debug!(unique_id = %id, "ignoring duplicate message");
            if let Err(e) = msg.acknowledge().await {
                tracing::debug!(error = %e, "failed to acknowledge a duplicate message");
            }
            return;
        }
    }
    let span = tracing::info_span!(
        "om_rpc.dispatch",
        method = msg.message.get("method").and_then(|m| m.as_str()).unwrap_or("None"),
        target = %inner.target,
        msg_id = msg.msg_id.as_deref().unwrap_or(""),
        duration_ms = Empty,
        outcome = Empty,
    );
    let inner = inner.clone();
    let mut abort_rx = abort.subscribe();
    tokio::spawn(
        async move {
            let work = process(&inner, msg);
            tokio::select! {
                biased;
                _ = abort_rx.wait_for(|a| *a) => {
                    tracing::Span::current().record("outcome", "aborted");
                }
                _ = work => {}
            }
            drop(permit);
        }
        .instrument(span),
    );
}

async fn process(inner: &Inner, msg: IncomingMessage) {
    let start = Instant::now();
    let span = tracing::Span::current();
    if inner.ack_mode == AckMode::BeforeDispatch {
        if let Err(e) = msg.acknowledge().await {
            tracing::warn!(error = %e, "failed to acknowledge the request; it is discarded");
            span.record("outcome", "ack_failed");
            return;
        }
    }
    let handle = (inner.ack_mode == AckMode::AfterDispatch).then(|| msg.handle());
    let outcome = inner.dispatcher.handle_incoming(msg).await;
    if let Some(handle) = handle {
        if let Err(e) = handle.acknowledge().await {
            tracing::warn!(error = %e, "failed to acknowledge the request after dispatch");
        }
    }
    span.record("duration_ms", start.elapsed().as_secs_f64() * 1000.0);
    match &outcome {
        Outcome::Success => span.record("outcome", "ok"),
        Outcome::Failure { class, .. } => span.record("outcome", class.as_str()),
    };
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dedup_window_is_bounded() {
        let mut w = DedupWindow::new(2);
        assert!(!w.is_duplicate("a"));
        assert!(w.is_duplicate("a"));
        assert!(!w.is_duplicate("b"));
        assert!(!w.is_duplicate("c")); // evicts "a"
        assert!(!w.is_duplicate("a"));
        assert!(w.is_duplicate("c"));
        let mut off = DedupWindow::new(0);
        assert!(!off.is_duplicate("a"));
        assert!(!off.is_duplicate("a"));
    }
}
