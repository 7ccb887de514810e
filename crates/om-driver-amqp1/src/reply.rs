//! The reply link: one receiver per connection that collects the replies
//! and heartbeats of every call, matched on `correlation-id`.
//!
//! On a router the link has a **dynamic source** (the peer assigns the
//! address that calls put in `reply-to`, `wire-amqp1.md` §3). RabbitMQ
//! 3.10 has no dynamic sources, so there the driver declares its own reply
//! queue `om.reply.<uuid hex>` over AMQP 0-9-1 with `x-expires` (see
//! [`crate::amqp091`]) and uses `/amq/queue/om.reply.<hex>` as source and
//! `reply-to`; the queue is deleted on cleanup.

use crate::codec;
use crate::connection::{Conn, Connector, Housekeeping, RabbitSide, DRIVER};
use fe2o3_amqp::link::CreditMode;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::messaging::{Body, Modified, Source};
use fe2o3_amqp::types::primitives::Value as AmqpPrimitive;
use fe2o3_amqp::Receiver;
use om_driver_api::om_core::{Error, Result};
use om_driver_api::{ReplyEvent, ReplyStream, Retry};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Calls waiting for replies, and the reply link's address.
pub(crate) struct Replies {
    calls: Mutex<HashMap<String, mpsc::UnboundedSender<ReplyEvent>>>,
    address: watch::Sender<Option<(u64, String)>>,
    started: AtomicBool,
    task: Mutex<Option<JoinHandle<()>>>,
    queue_name: String,
    rabbit_queue: Mutex<Option<RabbitSide>>,
}

impl fmt::Debug for Replies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replies")
            .field("address", &*self.address.borrow())
            .finish_non_exhaustive()
    }
}

/// Unregisters a call when its [`ReplyStream`] is dropped.
struct CallGuard {
    replies: Weak<Replies>,
    msg_id: String,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if let Some(r) = self.replies.upgrade() {
            r.calls
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&self.msg_id);
        }
    }
}

/// How long RabbitMQ keeps an unused per-process queue.
pub(crate) fn rabbit_queue_expiry(conn_retry_max: Duration) -> Duration {
    (conn_retry_max * 2 + Duration::from_secs(30)).max(Duration::from_secs(60))
}

impl Replies {
    /// No calls yet; the link is attached on the first call.
    pub(crate) fn new() -> Arc<Self> {
        let (address, _) = watch::channel(None);
        Arc::new(Replies {
            calls: Mutex::new(HashMap::new()),
            address,
            started: AtomicBool::new(false),
            task: Mutex::new(None),
            queue_name: format!("om.reply.{}", om_driver_api::om_core::uuid_hex()),
            rabbit_queue: Mutex::new(None),
        })
    }

    /// Registers call `msg_id` before its request is sent.
    pub(crate) fn register(self: &Arc<Self>, msg_id: &str) -> ReplyStream {
        let (tx, rx) = mpsc::unbounded_channel();
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(msg_id.to_owned(), tx);
        let guard = CallGuard {
            replies: Arc::downgrade(self),
            msg_id: msg_id.to_owned(),
        };
        ReplyStream::new(msg_id, rx, Some(Box::new(guard)))
    }

    /// The reply address, attaching the reply link first if needed.
    pub(crate) async fn address(
        self: &Arc<Self>,
        connector: &Arc<Connector>,
        deadline: Instant,
        retry: Retry,
    ) -> Result<String> {
        if !self.started.swap(true, Ordering::AcqRel) {
            let me = Arc::downgrade(self);
            let connector = connector.clone();
            let task = tokio::spawn(async move { run(me, connector).await });
            *self.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        }
        let mut rx = self.address.subscribe();
        loop {
            let conn = connector.connection(Some(deadline), retry).await?;
            {
                let cur = rx.borrow_and_update();
                if let Some((generation, addr)) = &*cur {
                    if *generation == conn.generation {
                        return Ok(addr.clone());
                    }
                }
            }
            tokio::time::timeout_at(deadline, rx.changed())
                .await
                .map_err(|_| Error::transport(DRIVER, "the reply link is not attached", true))?
                .map_err(|_| Error::Closed)?;
        }
    }

    /// The reply address attached on connection `generation`, if any.
    pub(crate) fn address_for(&self, generation: u64) -> Option<String> {
        match &*self.address.borrow() {
            Some((g, a)) if *g == generation => Some(a.clone()),
            _ => None,
        }
    }

    fn deliver(&self, correlation_id: &str, event: ReplyEvent) -> bool {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        match calls.get(correlation_id) {
            Some(tx) => tx.send(event).is_ok(),
            None => false,
        }
    }

    /// Stops the reply link task without waiting (for `Drop`).
    pub(crate) fn abort(&self) {
        if let Some(t) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.abort();
        }
    }

    /// Stops the reply link and deletes the RabbitMQ reply queue.
    pub(crate) async fn shutdown(&self) {
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = task {
            t.abort();
        }
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let side = self
            .rabbit_queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(side) = side {
            let queues = [self.queue_name.clone()];
            if let Err(e) = side.run(Housekeeping::Delete { queues: &queues }).await {
                tracing::warn!(queue = %self.queue_name, error = %e, "amqp: could not delete the reply queue");
            }
        }
    }

    async fn attach(
        &self,
        conn: &Conn,
        credit: u32,
        expiry: Duration,
    ) -> Result<(SessionHandle<()>, Receiver, String)> {
        let mut session = conn.begin_session().await?;
        let name = format!(
            "openstack.org/om/receiver/[rpc-response]/{}",
            om_driver_api::om_core::uuid_hex()
        );
        let builder = Receiver::builder()
            .name(name)
            .target("rpc-response")
            .credit_mode(CreditMode::Auto(credit));
        let (receiver, requested) = if let Some(side) = &conn.rabbit {
            let address = match side
                .run(Housekeeping::Declare {
                    queue: &self.queue_name,
                    bind: None,
                    expires: expiry,
                })
                .await
            {
                Ok(()) => {
                    *self.rabbit_queue.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(side.clone());
                    format!("/amq/queue/{}", self.queue_name)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "amqp: RabbitMQ housekeeping failed; the reply queue will not expire by itself");
                    format!("/queue/{}", self.queue_name)
                }
            };
            (
                builder.source(address.as_str()).attach(&mut session).await,
                Some(address),
            )
        } else {
            (
                builder
                    .source(Source::builder().dynamic(true).build())
                    .attach(&mut session)
                    .await,
                None,
            )
        };
        let receiver = receiver
            .map_err(|e| Error::transport(DRIVER, format!("reply link refused: {e}"), true))?;
        // A router assigns the address of the dynamic source.
        let address = match requested {
            Some(a) => a,
            None => receiver
                .source()
                .as_ref()
                .and_then(|s| s.address.clone())
                .filter(|a| !a.is_empty())
                .ok_or_else(|| {
                    Error::transport(DRIVER, "the peer assigned no reply address", true)
                })?,
        };
        Ok((session, receiver, address))
    }
}

async fn run(me: Weak<Replies>, connector: Arc<Connector>) {
    let opts = connector.config().opts.clone();
    let expiry = rabbit_queue_expiry(opts.retry_interval_max());
    loop {
        let conn = match connector.connection(None, Retry::Forever).await {
            Ok(c) => c,
            Err(_) => return,
        };
        let Some(replies) = me.upgrade() else { return };
        match replies.attach(&conn, opts.reply_link_credit, expiry).await {
            Ok((session, mut receiver, address)) => {
                tracing::debug!(address = %address, generation = conn.generation, "amqp: reply link attached");
                replies
                    .address
                    .send_replace(Some((conn.generation, address)));
                drop(replies);
                receive(&me, &mut receiver, opts.trace).await;
                drop(receiver);
                drop(session);
            }
            Err(e) => {
                tracing::warn!(error = %e, "amqp: cannot attach the reply link");
                drop(replies);
            }
        }
        // As the Python driver: a lost or refused reply link drops the
        // connection, and everything is re-attached on a new one.
        if let Some(replies) = me.upgrade() {
            replies.address.send_if_modified(|a| {
                if a.as_ref().is_some_and(|(g, _)| *g == conn.generation) {
                    *a = None;
                    true
                } else {
                    false
                }
            });
        }
        conn.mark_broken();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn receive(me: &Weak<Replies>, receiver: &mut Receiver, trace: bool) {
    loop {
        let delivery = match receiver.recv::<Body<AmqpPrimitive>>().await {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "amqp: reply link closed");
                return;
            }
        };
        let Some(replies) = me.upgrade() else { return };
        let msg = delivery.message();
        if trace {
            tracing::info!(target: "om_driver_amqp1::trace", message = ?msg, "reply received");
        }
        let cid = msg
            .properties
            .as_ref()
            .and_then(|p| p.correlation_id.as_ref())
            .map(codec::message_id_text);
        let disposition = match cid {
            None => None,
            Some(cid) => match codec::decode_reply(&msg.body) {
                Ok(event) => Some(replies.deliver(&cid, event)),
                Err(e) => {
                    tracing::warn!(correlation_id = %cid, error = %e, "amqp: undecodable reply dropped");
                    Some(true)
                }
            },
        };
        let r = match disposition {
            Some(true) => receiver.accept(&delivery).await,
            _ => {
                tracing::debug!("amqp: reply for an unknown call");
                let m = Modified {
                    delivery_failed: Some(true),
                    undeliverable_here: Some(true),
                    message_annotations: None,
                };
                receiver.modify(&delivery, m).await
            }
        };
        if let Err(e) = r {
            tracing::debug!(error = %e, "amqp: cannot settle a reply");
            return;
        }
    }
}
