//! The in-memory broker behind `fake://`: a small model of a RabbitMQ
//! virtual host with topic and fanout exchanges, named queues, bindings,
//! competing consumers served round-robin, unacknowledged-message tracking,
//! requeueing and per-message expiration.
//!
//! Everything here is synchronous and guarded by one mutex per virtual host;
//! deliveries are pushed to consumers through unbounded channels, so no
//! background task is needed.

use crate::ReplyEvent;
use om_core::{Error, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Instant;
use tokio::sync::mpsc;

/// The type of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExchangeKind {
    /// Routes by exact routing key (oslo never binds with wildcards).
    Topic,
    /// Routes to every bound queue, ignoring the routing key.
    Fanout,
}

#[derive(Debug)]
struct Exchange {
    kind: ExchangeKind,
    /// Binding key → bound queues.
    bindings: BTreeMap<String, BTreeSet<String>>,
}

/// A message sitting in a queue or held unacknowledged by a consumer.
#[derive(Debug, Clone)]
struct Stored {
    body: Arc<[u8]>,
    redelivered: bool,
    expires_at: Option<Instant>,
}

impl Stored {
    fn expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

#[derive(Debug, Default)]
struct Queue {
    ready: VecDeque<Stored>,
    /// Consumer ids attached to the queue, served round-robin.
    consumers: Vec<u64>,
    next: usize,
}

/// One message pushed to a consumer.
#[derive(Debug)]
pub(crate) struct Delivery {
    /// Delivery tag, unique within the broker.
    pub(crate) tag: u64,
    /// The raw body.
    pub(crate) body: Arc<[u8]>,
    /// Whether it was delivered before and requeued.
    pub(crate) redelivered: bool,
}

#[derive(Debug)]
struct Consumer {
    /// `None` once cancelled: no more deliveries, the channel closes.
    tx: Option<mpsc::UnboundedSender<Delivery>>,
    queues: Vec<String>,
    /// Delivery tag → (queue, message), until acked or rejected.
    unacked: HashMap<u64, (String, Stored)>,
    /// At most this many unacknowledged messages (`None`: unlimited).
    prefetch: Option<usize>,
}

/// The calls waiting for replies on one reply queue (one per driver).
#[derive(Debug, Default)]
pub(crate) struct ReplyTable {
    waiters: Mutex<HashMap<String, mpsc::UnboundedSender<ReplyEvent>>>,
}

impl ReplyTable {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, mpsc::UnboundedSender<ReplyEvent>>> {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers call `msg_id`.
    pub(crate) fn register(&self, msg_id: &str, tx: mpsc::UnboundedSender<ReplyEvent>) {
        self.lock().insert(msg_id.to_owned(), tx);
    }

    /// Unregisters call `msg_id`.
    pub(crate) fn unregister(&self, msg_id: &str) {
        self.lock().remove(msg_id);
    }

    /// Drops every waiter (their streams end).
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// Hands `event` to the waiter of `msg_id`; false if there is none.
    pub(crate) fn deliver(&self, msg_id: &str, event: ReplyEvent) -> bool {
        let mut map = self.lock();
        match map.get(msg_id) {
            Some(tx) => {
                if tx.send(event).is_err() {
                    map.remove(msg_id);
                    false
                } else {
                    true
                }
            }
            None => false,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    exchanges: HashMap<String, Exchange>,
    queues: HashMap<String, Queue>,
    consumers: HashMap<u64, Consumer>,
    reply_queues: HashMap<String, Weak<ReplyTable>>,
    next_id: u64,
}

/// One virtual host of the in-memory broker.
#[derive(Debug)]
pub(crate) struct Broker {
    vhost: String,
    state: Mutex<State>,
}

/// Normalises a URL's virtual host: absent, empty and `/` are the default.
pub(crate) fn normalize_vhost(vhost: Option<&str>) -> String {
    match vhost {
        None | Some("") | Some("/") => "/".to_owned(),
        Some(v) => v.to_owned(),
    }
}

/// The process-wide broker of `vhost` (created on first use).
pub(crate) fn broker_for(vhost: &str) -> Arc<Broker> {
    static BROKERS: OnceLock<Mutex<HashMap<String, Arc<Broker>>>> = OnceLock::new();
    let map = BROKERS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(vhost.to_owned())
        .or_insert_with(|| {
            Arc::new(Broker {
                vhost: vhost.to_owned(),
                state: Mutex::new(State::default()),
            })
        })
        .clone()
}

impl Broker {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The virtual host name.
    pub(crate) fn vhost(&self) -> &str {
        &self.vhost
    }

    /// Declares an exchange (no-op when it exists; its kind is kept).
    pub(crate) fn declare_exchange(&self, name: &str, kind: ExchangeKind) {
        let mut st = self.lock();
        st.exchanges
            .entry(name.to_owned())
            .or_insert_with(|| Exchange {
                kind,
                bindings: BTreeMap::new(),
            });
    }

    /// Binds `queue` to `exchange` with `key`, declaring both if needed
    /// (a missing exchange is declared as a topic exchange).
    pub(crate) fn bind(&self, exchange: &str, key: &str, queue: &str) {
        let mut st = self.lock();
        st.queues.entry(queue.to_owned()).or_default();
        st.exchanges
            .entry(exchange.to_owned())
            .or_insert_with(|| Exchange {
                kind: ExchangeKind::Topic,
                bindings: BTreeMap::new(),
            })
            .bindings
            .entry(key.to_owned())
            .or_default()
            .insert(queue.to_owned());
    }

    /// Deletes a queue, its messages and its bindings.
    pub(crate) fn delete_queue(&self, name: &str) {
        let mut st = self.lock();
        if let Some(q) = st.queues.remove(name) {
            for cid in q.consumers {
                if let Some(c) = st.consumers.get_mut(&cid) {
                    c.queues.retain(|n| n != name);
                }
            }
        }
        for ex in st.exchanges.values_mut() {
            for set in ex.bindings.values_mut() {
                set.remove(name);
            }
            ex.bindings.retain(|_, set| !set.is_empty());
        }
    }

    /// Publishes `body` to `exchange` with `routing_key`; returns how many
    /// queues took it. With `mandatory`, a message no queue takes fails with
    /// `MessageUndeliverable`; otherwise it is dropped. Publishing to an
    /// exchange that does not exist fails (RabbitMQ's `NOT_FOUND`).
    pub(crate) fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: Arc<[u8]>,
        expires_at: Option<Instant>,
        mandatory: bool,
    ) -> Result<usize> {
        let mut st = self.lock();
        let Some(ex) = st.exchanges.get(exchange) else {
            return Err(Error::transport(
                "fake",
                format!(
                    "NOT_FOUND - no exchange {exchange:?} in vhost {:?}",
                    self.vhost
                ),
                false,
            ));
        };
        let targets: Vec<String> = match ex.kind {
            ExchangeKind::Fanout => {
                let all: BTreeSet<&String> = ex.bindings.values().flatten().collect();
                all.into_iter().cloned().collect()
            }
            ExchangeKind::Topic => ex
                .bindings
                .get(routing_key)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default(),
        };
        if targets.is_empty() {
            if mandatory {
                return Err(Error::MessageUndeliverable {
                    exchange: exchange.to_owned(),
                    routing_key: routing_key.to_owned(),
                });
            }
            tracing::debug!(
                exchange,
                routing_key,
                "fake broker: unroutable message dropped"
            );
            return Ok(0);
        }
        let stored = Stored {
            body,
            redelivered: false,
            expires_at,
        };
        let mut routed = 0;
        for q in &targets {
            if let Some(queue) = st.queues.get_mut(q) {
                queue.ready.push_back(stored.clone());
                routed += 1;
            }
        }
        for q in &targets {
            dispatch(&mut st, q);
        }
        Ok(routed)
    }

    /// Attaches a consumer to `queues` (which must have been declared).
    pub(crate) fn add_consumer(
        &self,
        queues: &[String],
        prefetch: Option<usize>,
    ) -> (u64, mpsc::UnboundedReceiver<Delivery>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut st = self.lock();
        st.next_id += 1;
        let id = st.next_id;
        st.consumers.insert(
            id,
            Consumer {
                tx: Some(tx),
                queues: queues.to_vec(),
                unacked: HashMap::new(),
                prefetch: prefetch.filter(|p| *p > 0),
            },
        );
        for q in queues {
            st.queues.entry(q.clone()).or_default().consumers.push(id);
        }
        for q in queues {
            dispatch(&mut st, q);
        }
        (id, rx)
    }

    /// Stops deliveries to consumer `id`; its channel closes once drained.
    /// Unacknowledged messages stay with it until acked, rejected or closed.
    pub(crate) fn cancel(&self, id: u64) {
        let mut st = self.lock();
        cancel_locked(&mut st, id);
    }

    /// Cancels consumer `id` and returns its unacknowledged messages to
    /// their queues (as a closed AMQP channel does).
    pub(crate) fn close_consumer(&self, id: u64) {
        let mut st = self.lock();
        cancel_locked(&mut st, id);
        let Some(consumer) = st.consumers.remove(&id) else {
            return;
        };
        let mut unacked: Vec<(u64, (String, Stored))> = consumer.unacked.into_iter().collect();
        // Highest tag first, so that pushing to the front restores order.
        unacked.sort_by_key(|u| std::cmp::Reverse(u.0));
        let mut touched = BTreeSet::new();
        for (_, (queue, mut msg)) in unacked {
            if let Some(q) = st.queues.get_mut(&queue) {
                msg.redelivered = true;
                q.ready.push_front(msg);
                touched.insert(queue);
            }
        }
        for q in touched {
            dispatch(&mut st, &q);
        }
    }

    /// Settles delivery `tag` of consumer `id`: acknowledged (removed),
    /// rejected with requeue (back to the front of its queue, marked
    /// redelivered) or rejected without requeue (dropped).
    pub(crate) fn settle(&self, id: u64, tag: u64, outcome: Outcome) -> Result<()> {
        let mut st = self.lock();
        let Some(consumer) = st.consumers.get_mut(&id) else {
            return Err(Error::transport(
                "fake",
                "PRECONDITION_FAILED - the channel of this message is closed",
                false,
            ));
        };
        let Some((queue, mut msg)) = consumer.unacked.remove(&tag) else {
            return Err(Error::transport(
                "fake",
                format!("PRECONDITION_FAILED - unknown delivery tag {tag} (already acknowledged or requeued)"),
                false,
            ));
        };
        let consumer_queues = consumer.queues.clone();
        if outcome == Outcome::Requeue {
            if let Some(q) = st.queues.get_mut(&queue) {
                msg.redelivered = true;
                q.ready.push_front(msg);
            }
        }
        // Capacity was freed (prefetch) or a message came back: dispatch.
        if outcome == Outcome::Requeue {
            dispatch(&mut st, &queue);
        }
        for q in consumer_queues {
            dispatch(&mut st, &q);
        }
        Ok(())
    }

    /// Registers reply queue `name` served by `table`.
    pub(crate) fn register_reply_queue(&self, name: &str, table: &Arc<ReplyTable>) {
        self.lock()
            .reply_queues
            .insert(name.to_owned(), Arc::downgrade(table));
    }

    /// Removes reply queue `name`.
    pub(crate) fn unregister_reply_queue(&self, name: &str) {
        self.lock().reply_queues.remove(name);
    }

    /// The table serving reply queue `name`, if it still exists.
    pub(crate) fn reply_table(&self, name: &str) -> Option<Arc<ReplyTable>> {
        let mut st = self.lock();
        match st.reply_queues.get(name).map(Weak::upgrade) {
            Some(Some(t)) => Some(t),
            Some(None) => {
                st.reply_queues.remove(name);
                None
            }
            None => None,
        }
    }

    /// Ready (not yet delivered, not expired) messages in `queue`.
    pub(crate) fn queue_len(&self, queue: &str) -> Option<usize> {
        let now = Instant::now();
        let st = self.lock();
        st.queues
            .get(queue)
            .map(|q| q.ready.iter().filter(|m| !m.expired(now)).count())
    }

    /// Messages of `queue` delivered to consumers and not yet settled.
    pub(crate) fn unacked_len(&self, queue: &str) -> usize {
        let st = self.lock();
        st.consumers
            .values()
            .flat_map(|c| c.unacked.values())
            .filter(|(q, _)| q == queue)
            .count()
    }

    /// Consumers attached to `queue`.
    pub(crate) fn consumer_count(&self, queue: &str) -> Option<usize> {
        let st = self.lock();
        st.queues.get(queue).map(|q| q.consumers.len())
    }

    /// Every queue name, sorted.
    pub(crate) fn queue_names(&self) -> Vec<String> {
        let st = self.lock();
        let mut v: Vec<String> = st.queues.keys().cloned().collect();
        v.sort();
        v
    }

    /// Every exchange name, sorted.
    pub(crate) fn exchange_names(&self) -> Vec<String> {
        let st = self.lock();
        let mut v: Vec<String> = st.exchanges.keys().cloned().collect();
        v.sort();
        v
    }

    /// The bindings of `exchange` as `(key, queue)` pairs, sorted.
    pub(crate) fn bindings(&self, exchange: &str) -> Vec<(String, String)> {
        let st = self.lock();
        st.exchanges
            .get(exchange)
            .map(|ex| {
                ex.bindings
                    .iter()
                    .flat_map(|(k, qs)| qs.iter().map(move |q| (k.clone(), q.clone())))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// How a delivery is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// `basic.ack`.
    Ack,
    /// `basic.reject(requeue=true)`.
    Requeue,
    /// `basic.reject(requeue=false)`.
    Drop,
}

fn cancel_locked(st: &mut State, id: u64) {
    let Some(consumer) = st.consumers.get_mut(&id) else {
        return;
    };
    consumer.tx = None;
    let queues = std::mem::take(&mut consumer.queues);
    for q in &queues {
        if let Some(queue) = st.queues.get_mut(q) {
            queue.consumers.retain(|c| *c != id);
            if queue.next >= queue.consumers.len() {
                queue.next = 0;
            }
        }
    }
    // Remember the queues (for requeueing on close) without consuming.
    if let Some(consumer) = st.consumers.get_mut(&id) {
        consumer.queues = queues;
    }
}

/// Pushes ready messages of `qname` to its consumers, round-robin, within
/// each consumer's prefetch bound.
fn dispatch(st: &mut State, qname: &str) {
    let State {
        queues,
        consumers,
        next_id,
        ..
    } = st;
    let Some(q) = queues.get_mut(qname) else {
        return;
    };
    let now = Instant::now();
    loop {
        while q.ready.front().is_some_and(|m| m.expired(now)) {
            q.ready.pop_front();
        }
        if q.ready.is_empty() || q.consumers.is_empty() {
            return;
        }
        let n = q.consumers.len();
        let mut chosen = None;
        for i in 0..n {
            let idx = (q.next + i) % n;
            let cid = q.consumers[idx];
            if let Some(c) = consumers.get(&cid) {
                let has_room = c.prefetch.is_none_or(|p| c.unacked.len() < p);
                if c.tx.is_some() && has_room {
                    chosen = Some((idx, cid));
                    break;
                }
            }
        }
        let Some((idx, cid)) = chosen else {
            return;
        };
        q.next = (idx + 1) % n;
        let Some(msg) = q.ready.pop_front() else {
            return;
        };
        let Some(consumer) = consumers.get_mut(&cid) else {
            q.ready.push_front(msg);
            return;
        };
        *next_id += 1;
        let tag = *next_id;
        let delivery = Delivery {
            tag,
            body: msg.body.clone(),
            redelivered: msg.redelivered,
        };
        let sent = consumer
            .tx
            .as_ref()
            .is_some_and(|tx| tx.send(delivery).is_ok());
        if sent {
            consumer.unacked.insert(tag, (qname.to_owned(), msg));
        } else {
            // The receiving side is gone: stop delivering to it.
            consumer.tx = None;
            q.ready.push_front(msg);
            q.consumers.retain(|c| *c != cid);
            q.next = 0;
        }
    }
}
