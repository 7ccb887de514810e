//! Sender links: one per destination address, each on its own session,
//! created on first use and closed after `default_sender_link_timeout` idle
//! seconds; and the send loop with settlement, retries and deadlines
//! (`wire-amqp1.md` §3, §5, §6).

use crate::codec::AmqpMessage;
use crate::connection::{Conn, Connector, DRIVER};
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::definitions::{ReceiverSettleMode, SenderSettleMode};
use fe2o3_amqp::types::messaging::Outcome;
use fe2o3_amqp::{Sendable, Sender};
use om_driver_api::om_core::{Error, Result};
use om_driver_api::Retry;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The kind of message, for settlement and error reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An RPC call.
    Call,
    /// An RPC cast or fanout.
    Cast,
    /// A reply or a heartbeat.
    Reply,
    /// A notification.
    Notify,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Call => "RPC call",
            Kind::Cast => "RPC cast",
            Kind::Reply => "RPC reply",
            Kind::Notify => "notification",
        })
    }
}

struct Slot {
    generation: u64,
    sender: Sender,
    _session: SessionHandle<()>,
    last_used: Instant,
}

type SlotRef = Arc<tokio::sync::Mutex<Option<Slot>>>;

/// The driver's sender links.
pub(crate) struct SenderPool {
    slots: Mutex<HashMap<String, SlotRef>>,
    trace: bool,
}

impl fmt::Debug for SenderPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.slots.lock().map(|s| s.len()).unwrap_or(0);
        f.debug_struct("SenderPool").field("links", &n).finish()
    }
}

/// What one attempt produced.
enum Attempt {
    /// The peer's outcome (pre-settled sends report `Accepted`).
    Outcome(Outcome),
    /// The link or connection failed; the message may not have arrived.
    Failed(String),
}

impl SenderPool {
    /// An empty pool.
    pub(crate) fn new(trace: bool) -> Self {
        SenderPool {
            slots: Mutex::new(HashMap::new()),
            trace,
        }
    }

    fn slot(&self, address: &str) -> SlotRef {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(address.to_owned()).or_default().clone()
    }

    async fn attach(conn: &Conn, address: &str) -> Result<(SessionHandle<()>, Sender)> {
        let mut session = conn.begin_session().await?;
        let name = format!(
            "openstack.org/om/sender/[{address}]/{}",
            om_driver_api::om_core::uuid_hex()
        );
        let sender = Sender::builder()
            .name(name)
            .source(address)
            .target(address)
            .sender_settle_mode(SenderSettleMode::Mixed)
            .receiver_settle_mode(ReceiverSettleMode::First)
            .attach(&mut session)
            .await
            .map_err(|e| {
                Error::transport(
                    DRIVER,
                    format!("sender link to {address:?} refused: {e}"),
                    true,
                )
            })?;
        tracing::debug!(
            address,
            generation = conn.generation,
            "amqp: sender link attached"
        );
        Ok((session, sender))
    }

    /// One send on the connection's link for `address` (attached if
    /// needed). Returns the outcome, or why the link failed.
    async fn send_once(
        &self,
        conn: &Conn,
        address: &str,
        message: AmqpMessage,
        settled: bool,
    ) -> Attempt {
        // A link on a dying connection may wait for credit or an outcome
        // that never comes: give up as soon as the connection is lost.
        tokio::select! {
            a = self.send_on_link(conn, address, message, settled) => a,
            _ = conn.wait_broken() => Attempt::Failed("the connection was lost".into()),
        }
    }

    async fn send_on_link(
        &self,
        conn: &Conn,
        address: &str,
        message: AmqpMessage,
        settled: bool,
    ) -> Attempt {
        let slot = self.slot(address);
        let mut guard = slot.lock().await;
        if guard
            .as_ref()
            .is_some_and(|s| s.generation != conn.generation)
        {
            *guard = None;
        }
        if guard.is_none() {
            match Self::attach(conn, address).await {
                Ok((session, sender)) => {
                    *guard = Some(Slot {
                        generation: conn.generation,
                        sender,
                        _session: session,
                        last_used: Instant::now(),
                    })
                }
                Err(e) => {
                    conn.check_alive().await;
                    return Attempt::Failed(e.to_string());
                }
            }
        }
        let Some(s) = guard.as_mut() else {
            return Attempt::Failed("no sender link".into());
        };
        s.last_used = Instant::now();
        if self.trace {
            tracing::info!(target: "om_driver_amqp1::trace", address, settled, message = ?message, "send");
        }
        let sendable = Sendable::builder()
            .message(message)
            .settled(settled)
            .build();
        let fut = match s.sender.send_batchable(sendable).await {
            Ok(f) => f,
            Err(e) => {
                *guard = None;
                drop(guard);
                conn.check_alive().await;
                return Attempt::Failed(format!("sending on the link to {address:?} failed: {e}"));
            }
        };
        drop(guard);
        match fut.await {
            Ok(outcome) => Attempt::Outcome(outcome),
            Err(e) => {
                let mut guard = slot.lock().await;
                if guard
                    .as_ref()
                    .is_some_and(|s| s.generation == conn.generation)
                {
                    *guard = None;
                }
                drop(guard);
                conn.check_alive().await;
                Attempt::Failed(format!("no outcome from {address:?}: {e}"))
            }
        }
    }

    /// Sends `message` (built by `build` for the current connection, which
    /// also returns the destination address) until the peer accepts it,
    /// the deadline passes or the retries run out.
    ///
    /// * accepted → `Ok`;
    /// * rejected, or modified with `delivery-failed` / `undeliverable-here`
    ///   → `MessageDeliveryFailure`;
    /// * released or plain modified → re-sent after `link_retry_delay`;
    /// * link or connection failure → re-sent on the next connection;
    ///
    /// re-sends count against `retry`. The caller applies the deadline.
    pub(crate) async fn send<F>(
        &self,
        connector: &Arc<Connector>,
        kind: Kind,
        settled: bool,
        retry: Retry,
        deadline: Instant,
        mut build: F,
    ) -> Result<()>
    where
        F: FnMut(&Conn) -> Result<(String, AmqpMessage)>,
    {
        let link_retry = connector.config().opts.link_retry();
        let mut resends: u32 = 0;
        loop {
            let conn = connector
                .connection(Some(deadline), retry)
                .await
                .map_err(|e| match e {
                    Error::Transport { message, .. } => {
                        Error::MessageDeliveryFailure(format!("{kind} failed: {message}"))
                    }
                    other => other,
                })?;
            let (address, message) = build(&conn)?;
            let why = match self.send_once(&conn, &address, message, settled).await {
                Attempt::Outcome(Outcome::Accepted(_)) => return Ok(()),
                Attempt::Outcome(Outcome::Rejected(r)) => {
                    let detail = r
                        .error
                        .map(|e| {
                            format!("{:?}: {}", e.condition, e.description.unwrap_or_default())
                        })
                        .unwrap_or_else(|| "no reason given".into());
                    return Err(Error::MessageDeliveryFailure(format!(
                        "{kind} to {address:?} rejected by the peer ({detail})"
                    )));
                }
                Attempt::Outcome(Outcome::Modified(m))
                    if m.delivery_failed == Some(true) || m.undeliverable_here == Some(true) =>
                {
                    return Err(Error::MessageDeliveryFailure(format!(
                        "{kind} to {address:?} could not be delivered (modified: delivery-failed={:?}, undeliverable-here={:?})",
                        m.delivery_failed, m.undeliverable_here
                    )));
                }
                Attempt::Outcome(Outcome::Released(_)) | Attempt::Outcome(Outcome::Modified(_)) => {
                    let why = format!("{kind} to {address:?} released by the peer");
                    resends += 1;
                    if !retry.allows(resends) {
                        return Err(Error::MessageDeliveryFailure(format!(
                            "{why}; no retries left"
                        )));
                    }
                    tracing::debug!(
                        address,
                        "amqp: message released, re-sending after link_retry_delay"
                    );
                    tokio::time::sleep_until(deadline.min(Instant::now() + link_retry)).await;
                    continue;
                }
                #[allow(unreachable_patterns)]
                Attempt::Outcome(other) => {
                    return Err(Error::MessageDeliveryFailure(format!(
                        "{kind} to {address:?}: unexpected outcome {other:?}"
                    )))
                }
                Attempt::Failed(why) => why,
            };
            resends += 1;
            if !retry.allows(resends) {
                return Err(Error::MessageDeliveryFailure(format!(
                    "{kind} failed: {why}"
                )));
            }
            tracing::debug!(error = %why, "amqp: send failed, retrying");
            let pause = if conn.is_broken() {
                Duration::from_millis(50)
            } else {
                link_retry.min(Duration::from_secs(1))
            };
            tokio::time::sleep_until(deadline.min(Instant::now() + pause)).await;
        }
    }

    /// Closes sender links idle for longer than `idle`.
    pub(crate) async fn purge_idle(&self, idle: Duration) {
        let slots: Vec<(String, SlotRef)> = {
            let s = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            s.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        for (address, slot) in slots {
            let Ok(mut guard) = slot.try_lock() else {
                continue;
            };
            if guard
                .as_ref()
                .is_some_and(|s| s.last_used.elapsed() >= idle)
            {
                if let Some(s) = guard.take() {
                    tracing::debug!(address, "amqp: closing idle sender link");
                    let _ = tokio::time::timeout(Duration::from_secs(2), s.sender.close()).await;
                }
            }
            if guard.is_none() {
                drop(guard);
                let mut all = self.slots.lock().unwrap_or_else(|e| e.into_inner());
                if all
                    .get(&address)
                    .is_some_and(|s| Arc::ptr_eq(s, &slot) && Arc::strong_count(&slot) <= 2)
                {
                    all.remove(&address);
                }
            }
        }
    }

    /// Drops every link (on cleanup).
    pub(crate) fn clear(&self) {
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
