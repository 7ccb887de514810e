//! Server and notification listeners: one receiver link per subscribed
//! address, each on its own session, re-attached after a reconnect.
//!
//! Flow control: each link has a credit window (`rpc_server_credit`,
//! `notify_server_credit`, or the listener's prefetch). Credit is topped up
//! once at least half a window can be added (on RabbitMQ only once it is
//! used up: see `credit_to_grant`), never beyond `window − unsettled`, so
//! at most a window of messages is ever un-acknowledged.

use crate::address::{Cast, Service};
use crate::codec;
use crate::connection::{Conn, Connector, Housekeeping, RabbitSide, DRIVER};
use crate::reply::rabbit_queue_expiry;
use crate::sender::{Kind, SenderPool};
use fe2o3_amqp::link::delivery::DeliveryInfo;
use fe2o3_amqp::link::CreditMode;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::definitions::{self, AmqpError, ReceiverSettleMode, SenderSettleMode};
use fe2o3_amqp::types::messaging::Body;
use fe2o3_amqp::types::primitives::Value as AmqpPrimitive;
use fe2o3_amqp::{Delivery, Receiver, ReceiverDisposer};
use om_driver_api::om_core::{Error, RemoteError, Result, Target, Value};
use om_driver_api::{BoxFuture, IncomingHandle, IncomingMessage, Listener, Retry};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What a link subscribes to.
#[derive(Debug, Clone)]
pub(crate) enum Subscription {
    /// One of an RPC server's three addresses.
    Rpc { target: Target, cast: Cast },
    /// Notifications of `<topic>.<priority>`.
    Notify { topic_priority: String },
}

impl Subscription {
    fn service(&self) -> Service {
        match self {
            Subscription::Rpc { .. } => Service::Rpc,
            Subscription::Notify { .. } => Service::Notify,
        }
    }
}

/// Listener lifecycle, shared with its link tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    /// No new messages; links stay attached so fetched ones can be settled.
    Stopped,
    /// Links closed.
    Closed,
}

/// Things a link task needs from the driver.
#[derive(Clone)]
pub(crate) struct LinkEnv {
    pub connector: Arc<Connector>,
    pub senders: Arc<SenderPool>,
}

/// Where RabbitMQ fanout queues of one listener are recorded for deletion.
type FanoutQueues = Arc<Mutex<Vec<(RabbitSide, String)>>>;

/// A listener of the amqp driver.
pub(crate) struct AmqpListener {
    rx: mpsc::UnboundedReceiver<Result<IncomingMessage>>,
    state: watch::Sender<State>,
    tasks: Vec<JoinHandle<()>>,
    fanout_queues: FanoutQueues,
}

impl AmqpListener {
    /// Starts one link task per subscription and waits until every link is
    /// attached (or `deadline` passes, or a link is refused).
    pub(crate) async fn start(
        env: LinkEnv,
        subs: Vec<(Subscription, u32)>,
        deadline: Instant,
        what: &str,
    ) -> Result<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (state, _) = watch::channel(State::Running);
        let fanout_queues: FanoutQueues = Arc::default();
        let listener_id = om_driver_api::om_core::uuid_hex();
        let mut tasks = Vec::new();
        let mut readies = Vec::new();
        for (sub, credit) in subs {
            let (ready_tx, ready_rx) = oneshot::channel();
            readies.push(ready_rx);
            let task = LinkTask {
                env: env.clone(),
                sub,
                window: credit.max(1),
                tx: Some(tx.clone()),
                state: state.subscribe(),
                ready: Some(ready_tx),
                listener_id: listener_id.clone(),
                fanout_queues: fanout_queues.clone(),
            };
            tasks.push(tokio::spawn(task.run()));
        }
        drop(tx);
        let mut listener = AmqpListener {
            rx,
            state,
            tasks,
            fanout_queues,
        };
        for ready in readies {
            let outcome = match tokio::time::timeout_at(deadline, ready).await {
                Ok(Ok(Ok(()))) => continue,
                Ok(Ok(Err(e))) => e,
                Ok(Err(_)) => "the link task ended".to_owned(),
                Err(_) => "no link attached in time (is the AMQP 1.0 peer reachable?)".to_owned(),
            };
            listener.shutdown().await;
            return Err(Error::ServerListen {
                target: what.to_owned(),
                reason: outcome,
            });
        }
        Ok(listener)
    }

    async fn shutdown(&mut self) {
        self.state.send_replace(State::Closed);
        for t in self.tasks.drain(..) {
            if tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .is_err()
            {
                tracing::debug!("amqp: a link task did not stop in time");
            }
        }
        let queues =
            std::mem::take(&mut *self.fanout_queues.lock().unwrap_or_else(|e| e.into_inner()));
        for (side, queue) in queues {
            let qs = [queue];
            if let Err(e) = side.run(Housekeeping::Delete { queues: &qs }).await {
                tracing::warn!(queue = %qs[0], error = %e, "amqp: could not delete a fanout queue");
            }
        }
    }
}

impl Drop for AmqpListener {
    fn drop(&mut self) {
        self.state.send_replace(State::Closed);
        let queues =
            std::mem::take(&mut *self.fanout_queues.lock().unwrap_or_else(|e| e.into_inner()));
        if !queues.is_empty() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    for (side, queue) in queues {
                        let qs = [queue];
                        let _ = side.run(Housekeeping::Delete { queues: &qs }).await;
                    }
                });
            }
        }
    }
}

impl Listener for AmqpListener {
    fn next(&mut self) -> BoxFuture<'_, Option<Result<IncomingMessage>>> {
        Box::pin(self.rx.recv())
    }

    fn stop(&mut self) -> BoxFuture<'_, Result<()>> {
        self.state.send_if_modified(|s| {
            if *s == State::Running {
                *s = State::Stopped;
                true
            } else {
                false
            }
        });
        Box::pin(async { Ok(()) })
    }

    fn cleanup(mut self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            self.shutdown().await;
            Ok(())
        })
    }
}

/// Counts for credit management, shared with the message handles.
#[derive(Debug, Default)]
struct Flow {
    settled: AtomicU64,
    wake: Notify,
}

impl Flow {
    fn settled_one(&self) {
        self.settled.fetch_add(1, Ordering::AcqRel);
        self.wake.notify_one();
    }
}

/// The credit to grant now (counted from the deliveries `received` so
/// far), if a flow should be sent: `limit` is the delivery count up to
/// which credit was granted, `settled` how many deliveries the application
/// settled.
///
/// The link never grants beyond `window − unsettled`, and it tops the
/// credit up only once that adds at least half a window: topping up after
/// every settlement would send one flow frame per message, and each costs
/// the peer a credit update.
///
/// RabbitMQ's AMQP 1.0 plugin (3.x) counts a new grant from the transfers
/// it already *sent*, not from those its queue already handed to the
/// session, so a flow sent while credit is left lets it exceed the credit
/// by up to that amount; fe2o3-amqp then fails the link ("transfer limit
/// exceeded") and the over-sent message, delivered pre-settled, is lost.
/// On RabbitMQ the link therefore waits until the credit is used up (then
/// nothing is in transit) before it grants more.
fn credit_to_grant(
    window: u32,
    received: u64,
    limit: u64,
    settled: u64,
    rabbit: bool,
) -> Option<u32> {
    let window = u64::from(window);
    let remaining = limit.saturating_sub(received);
    if rabbit && remaining > 0 {
        return None;
    }
    let unsettled = received.saturating_sub(settled);
    let grant = window.saturating_sub(unsettled);
    let gain = grant.saturating_sub(remaining);
    if gain == 0 || gain < window.div_ceil(2) {
        return None;
    }
    Some(u32::try_from(grant).unwrap_or(u32::MAX))
}

struct LinkTask {
    env: LinkEnv,
    sub: Subscription,
    window: u32,
    tx: Option<mpsc::UnboundedSender<Result<IncomingMessage>>>,
    state: watch::Receiver<State>,
    ready: Option<oneshot::Sender<std::result::Result<(), String>>>,
    listener_id: String,
    fanout_queues: FanoutQueues,
}

/// How a link ended.
enum LinkEnd {
    /// The listener was closed.
    Closed,
    /// The link or connection failed; re-attach.
    Failed,
}

/// RabbitMQ fanout: the exchange and routing key a broadcast address maps
/// to (`/topic/<key>`, `/exchange/<x>/<key>`, or a plain address used as a
/// key of `amq.topic`).
pub(crate) fn rabbit_fanout_binding(address: &str) -> (String, String) {
    if let Some(key) = address.strip_prefix("/topic/") {
        return ("amq.topic".into(), key.into());
    }
    if let Some(rest) = address.strip_prefix("/exchange/") {
        if let Some((x, key)) = rest.split_once('/') {
            return (x.into(), key.into());
        }
        return (rest.into(), String::new());
    }
    ("amq.topic".into(), address.into())
}

/// The address senders use for a fanout on RabbitMQ: plain broadcast
/// addresses are published to `amq.topic` (`/topic/<address>`).
pub(crate) fn rabbit_fanout_send_address(address: &str) -> String {
    if address.starts_with('/') {
        address.to_owned()
    } else {
        format!("/topic/{address}")
    }
}

impl LinkTask {
    fn address(&self, conn: &Conn) -> String {
        match &self.sub {
            Subscription::Rpc { target, cast } => {
                let topic = target.topic.as_deref().unwrap_or("");
                conn.addresser.address(
                    Service::Rpc,
                    *cast,
                    target.exchange.as_deref(),
                    topic,
                    target.server.as_deref(),
                )
            }
            Subscription::Notify { topic_priority } => {
                conn.addresser.notify_address(topic_priority)
            }
        }
    }

    /// The source address to attach: the subscription's address, or on
    /// RabbitMQ for fanout a per-listener queue bound to the broadcast key.
    async fn source(&self, conn: &Conn) -> Result<String> {
        let address = self.address(conn);
        let (
            Some(side),
            Subscription::Rpc {
                cast: Cast::Multicast,
                ..
            },
        ) = (&conn.rabbit, &self.sub)
        else {
            return Ok(address);
        };
        let (exchange, key) = rabbit_fanout_binding(&address);
        let mut queue = format!("{key}.{}", self.listener_id);
        if queue.len() > 200 {
            queue = format!("om.fanout.{}", self.listener_id);
        }
        let expiry = rabbit_queue_expiry(self.env.connector.config().opts.retry_interval_max());
        side.run(Housekeeping::Declare {
            queue: &queue,
            bind: Some((&exchange, &key)),
            expires: expiry,
        })
        .await?;
        {
            let mut q = self.fanout_queues.lock().unwrap_or_else(|e| e.into_inner());
            if !q.iter().any(|(_, n)| *n == queue) {
                q.push((side.clone(), queue.clone()));
            }
        }
        Ok(format!("/amq/queue/{queue}"))
    }

    async fn attach(&self, conn: &Conn) -> Result<(SessionHandle<()>, Receiver, String)> {
        let source = self.source(conn).await?;
        let mut session = conn.begin_session().await?;
        let name = format!(
            "openstack.org/om/receiver/[{source}]/{}",
            om_driver_api::om_core::uuid_hex()
        );
        let receiver = Receiver::builder()
            .name(name)
            .source(source.as_str())
            .target(source.as_str())
            .sender_settle_mode(SenderSettleMode::Mixed)
            .receiver_settle_mode(ReceiverSettleMode::First)
            .credit_mode(CreditMode::Manual)
            .attach(&mut session)
            .await
            .map_err(|e| {
                Error::transport(
                    DRIVER,
                    format!("receiver link on {source:?} refused: {e}"),
                    true,
                )
            })?;
        Ok((session, receiver, source))
    }

    async fn run(mut self) {
        let link_retry = self.env.connector.config().opts.link_retry();
        loop {
            if *self.state.borrow() != State::Running {
                break;
            }
            let conn = tokio::select! {
                c = self.env.connector.connection(None, Retry::Forever) => match c {
                    Ok(c) => c,
                    Err(_) => break,
                },
                _ = self.state.changed() => continue,
            };
            match self.attach(&conn).await {
                Ok((session, mut receiver, source)) => {
                    tracing::debug!(source = %source, generation = conn.generation, "amqp: listener link attached");
                    if let Some(r) = self.ready.take() {
                        let _ = r.send(Ok(()));
                    }
                    let end = self.receive(&conn, &mut receiver).await;
                    let _ = tokio::time::timeout(Duration::from_secs(2), receiver.close()).await;
                    drop(session);
                    if matches!(end, LinkEnd::Closed) {
                        break;
                    }
                    if conn.check_alive().await {
                        // The peer detached the link: re-open it later.
                        self.pause(link_retry).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "amqp: cannot attach a listener link");
                    let alive = conn.check_alive().await;
                    if alive {
                        if let Some(r) = self.ready.take() {
                            let _ = r.send(Err(e.to_string()));
                        }
                        self.pause(link_retry).await;
                    }
                }
            }
        }
        // Stopped before or after attaching: no more messages from here.
        self.tx = None;
    }

    async fn pause(&mut self, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.state.changed() => {}
        }
    }

    /// Receives until the link fails or the listener closes.
    async fn receive(&mut self, conn: &Arc<Conn>, receiver: &mut Receiver) -> LinkEnd {
        let flow = Arc::new(Flow::default());
        let disposer = receiver.disposer();
        let trace = self.env.connector.config().opts.trace;
        let mut received: u64 = 0;
        let mut limit: u64 = 0;
        let mut stopped = *self.state.borrow() != State::Running;
        if !stopped {
            if receiver.set_credit(self.window).await.is_err() {
                return LinkEnd::Failed;
            }
            limit = u64::from(self.window);
        }
        let rabbit = conn.rabbit.is_some();
        loop {
            if !stopped {
                if let Some(grant) = credit_to_grant(
                    self.window,
                    received,
                    limit,
                    flow.settled.load(Ordering::Acquire),
                    rabbit,
                ) {
                    if receiver.set_credit(grant).await.is_err() {
                        return LinkEnd::Failed;
                    }
                    limit = received + u64::from(grant);
                }
            }
            tokio::select! {
                d = receiver.recv::<Body<AmqpPrimitive>>() => {
                    let delivery = match d {
                        Ok(d) => d,
                        Err(e) => {
                            tracing::debug!(error = %e, "amqp: listener link ended");
                            return LinkEnd::Failed;
                        }
                    };
                    received += 1;
                    if trace {
                        tracing::info!(target: "om_driver_amqp1::trace", message = ?delivery.message(), "received");
                    }
                    if stopped || self.tx.is_none() {
                        // Arrived after stop(): back to the peer.
                        let _ = disposer.release(&delivery).await;
                        flow.settled_one();
                        continue;
                    }
                    self.dispatch(conn, receiver, &disposer, &flow, delivery).await;
                }
                _ = flow.wake.notified() => {}
                changed = self.state.changed() => {
                    let st = if changed.is_ok() { *self.state.borrow() } else { State::Closed };
                    match st {
                        State::Running => {}
                        State::Stopped => {
                            stopped = true;
                            self.tx = None;
                            let _ = receiver.set_credit(0).await;
                        }
                        State::Closed => return LinkEnd::Closed,
                    }
                }
            }
        }
    }

    async fn dispatch(
        &mut self,
        conn: &Arc<Conn>,
        receiver: &Receiver,
        disposer: &ReceiverDisposer,
        flow: &Arc<Flow>,
        delivery: Delivery<Body<AmqpPrimitive>>,
    ) {
        let msg = delivery.message();
        let decoded = match &self.sub {
            Subscription::Rpc { .. } => codec::decode_request(&msg.body).map(|d| {
                let props = msg.properties.as_ref();
                let reply_to = props
                    .and_then(|p| p.reply_to.clone())
                    .filter(|r| !r.is_empty());
                let msg_id = props
                    .and_then(|p| p.message_id.as_ref())
                    .map(codec::message_id_text);
                let call = match (reply_to, msg_id) {
                    (Some(r), Some(id)) => Some((r, id)),
                    _ => None,
                };
                // AMQP 1.0 requests carry no `_unique_id`: a call's
                // message-id is stable across redeliveries; a cast has none.
                let unique_id = call.as_ref().map(|(_, id)| id.clone());
                let mut ctxt = d.context;
                ctxt.insert("client_timeout".into(), d.call_monitor_timeout_raw);
                (ctxt, d.request, d.call_monitor_timeout, call, unique_id)
            }),
            Subscription::Notify { .. } => {
                codec::decode_notification(&msg.body).map(|(mut c, m)| {
                    // Notifications carry no `_unique_id` either; their own
                    // `message_id` identifies them.
                    let unique_id = m
                        .get("message_id")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    c.entry("client_timeout").or_insert(Value::Null);
                    (c, m, None, None, unique_id)
                })
            }
        };
        let (ctxt, message, cmt, call, unique_id) = match decoded {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "amqp: malformed message rejected");
                let err =
                    definitions::Error::new(AmqpError::DecodeError, Some(e.to_string()), None);
                let _ = receiver.reject(&delivery, err).await;
                flow.settled_one();
                if let Some(tx) = &self.tx {
                    let _ = tx.send(Err(e));
                }
                return;
            }
        };
        let unique_id = unique_id.unwrap_or_else(om_driver_api::om_core::uuid_hex);
        let handle = Handle {
            disposer: disposer.clone(),
            info: DeliveryInfo::from(&delivery),
            settled: AtomicBool::new(false),
            flow: flow.clone(),
            reply: call.as_ref().map(|(reply_to, msg_id)| ReplyTarget {
                reply_to: reply_to.clone(),
                msg_id: msg_id.clone(),
                call_monitor_timeout: cmt,
                env: self.env.clone(),
            }),
            generation: conn.generation,
            kind: self.sub.service(),
        };
        let incoming = IncomingMessage::new(ctxt, message, Arc::new(handle))
            .with_msg_id(call.map(|(_, id)| id))
            .with_client_timeout(cmt)
            .with_unique_id(Some(unique_id));
        if let Some(tx) = &self.tx {
            let _ = tx.send(Ok(incoming));
        }
    }
}

struct ReplyTarget {
    reply_to: String,
    msg_id: String,
    call_monitor_timeout: Option<f64>,
    env: LinkEnv,
}

/// Settles one received message, replies and heartbeats.
struct Handle {
    disposer: ReceiverDisposer,
    info: DeliveryInfo,
    settled: AtomicBool,
    flow: Arc<Flow>,
    reply: Option<ReplyTarget>,
    generation: u64,
    kind: Service,
}

impl Handle {
    async fn settle(&self, accept: bool) -> Result<()> {
        if self.settled.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let r = if accept {
            self.disposer.accept(self.info.clone()).await
        } else {
            self.disposer.release(self.info.clone()).await
        };
        self.flow.settled_one();
        r.map_err(|e| {
            Error::transport(
                DRIVER,
                format!(
                    "cannot settle the message (link of connection {} gone?): {e}",
                    self.generation
                ),
                true,
            )
        })
    }

    async fn send_reply(
        &self,
        heartbeat: bool,
        reply: Option<std::result::Result<Value, RemoteError>>,
    ) -> Result<()> {
        let Some(t) = &self.reply else {
            return Err(Error::Messaging("this message cannot be replied to".into()));
        };
        let opts = &t.env.connector.config().opts;
        let deadline = Instant::now() + Duration::from_secs(opts.default_reply_timeout.into());
        let retry = if heartbeat {
            Retry::Limited(0)
        } else {
            Retry::from_oslo(Some(opts.default_reply_retry.into()))
        };
        let settled = opts.pre_settled.rpc_reply;
        let ttl = t
            .call_monitor_timeout
            .map(|s| Duration::from_secs_f64(s.max(0.0)));
        let fut = t.env.senders.send(
            &t.env.connector,
            Kind::Reply,
            settled,
            retry,
            deadline,
            |_conn| {
                let m = match &reply {
                    Some(r) => codec::reply(&t.reply_to, &t.msg_id, r)?,
                    None => codec::heartbeat(&t.reply_to, &t.msg_id, ttl),
                };
                Ok((t.reply_to.clone(), m))
            },
        );
        match tokio::time::timeout_at(deadline, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::MessageDeliveryFailure(
                "RPC reply failed: timed out".into(),
            )),
        }
    }
}

impl IncomingHandle for Handle {
    fn acknowledge(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.settle(true))
    }

    fn requeue(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.settle(false))
    }

    fn reply(&self, reply: std::result::Result<Value, RemoteError>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if self.reply.is_none() {
                return Ok(());
            }
            self.send_reply(false, Some(reply)).await
        })
    }

    fn heartbeat(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if self.kind == Service::Notify {
                return Err(Error::Messaging(
                    "notifications cannot be heartbeated".into(),
                ));
            }
            self.send_reply(true, None).await
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn credit_top_up() {
        // Router: tops up once half a window can be added.
        assert_eq!(credit_to_grant(100, 40, 100, 40, false), None);
        assert_eq!(credit_to_grant(100, 50, 100, 50, false), Some(100));
        // Never beyond window − unsettled, and not one flow per settlement.
        assert_eq!(credit_to_grant(100, 60, 100, 20, false), None);
        assert_eq!(credit_to_grant(100, 100, 100, 49, false), None);
        assert_eq!(credit_to_grant(100, 100, 100, 50, false), Some(50));
        // RabbitMQ: only once the credit is used up.
        assert_eq!(credit_to_grant(100, 99, 100, 99, true), None);
        assert_eq!(credit_to_grant(100, 100, 100, 100, true), Some(100));
        assert_eq!(credit_to_grant(100, 100, 100, 60, true), Some(60));
        // A window of one still moves.
        assert_eq!(credit_to_grant(1, 1, 1, 1, true), Some(1));
        assert_eq!(credit_to_grant(1, 1, 1, 0, false), None);
    }

    #[test]
    fn rabbit_fanout_mapping() {
        assert_eq!(
            rabbit_fanout_binding("broadcast.openstack.t.all"),
            ("amq.topic".into(), "broadcast.openstack.t.all".into())
        );
        assert_eq!(
            rabbit_fanout_binding("/topic/broadcast.x.all"),
            ("amq.topic".into(), "broadcast.x.all".into())
        );
        assert_eq!(
            rabbit_fanout_binding("/exchange/fx/k.all"),
            ("fx".into(), "k.all".into())
        );
        assert_eq!(
            rabbit_fanout_send_address("broadcast.openstack.t.all"),
            "/topic/broadcast.openstack.t.all"
        );
        assert_eq!(
            rabbit_fanout_send_address("/exchange/fx/k"),
            "/exchange/fx/k"
        );
    }
}
