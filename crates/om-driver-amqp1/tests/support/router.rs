//! **Test fixture, not a product**: a small in-process AMQP 1.0 "router"
//! built on fe2o3-amqp's `acceptor` feature, standing in for Qpid Dispatch
//! Router (which no package source offers here) in the driver's tests.
//!
//! What it does, on a loopback port:
//!
//! * SASL PLAIN (one user) and ANONYMOUS; announces `product =
//!   om-test-router` in its `open` properties (so `dynamic` addressing
//!   resolves to routable).
//! * **anycast** per address: each address is a queue shared by its
//!   receivers, served round-robin; messages wait in the queue while no
//!   receiver has credit (a real router holds them back with credit
//!   instead; storing keeps the fixture simple). A message a receiver
//!   releases, modifies, or leaves unsettled when its link goes away is
//!   queued again.
//! * **multicast** for addresses with a `multicast` segment (routable,
//!   `…/multicast/…`) or starting with `broadcast` (legacy): every receiver
//!   attached at the time gets a copy; with no receiver it is dropped.
//! * **dynamic sources**: a receiver asking for one gets `dyn/<n>`, a queue
//!   that disappears with the link.
//! * **anonymous relay**: a sender with a null target address has each
//!   message routed on its `to` property.
//! * Messages from unsettled senders are accepted once queued, unless a
//!   test scripted another outcome with [`Router::script_outcomes`].
//! * Every routed message is recorded ([`Router::routed`]); every
//!   connection can be dropped at once ([`Router::drop_connections`]) to
//!   test reconnection.
#![allow(dead_code)]

use fe2o3_amqp::acceptor::sasl_acceptor::SaslServerFrame;
use fe2o3_amqp::acceptor::{
    ConnectionAcceptor, LinkAcceptor, LinkEndpoint, ListenerConnectionHandle,
    ListenerSessionHandle, SaslAcceptor, SessionAcceptor,
};
use fe2o3_amqp::types::definitions::Fields;
use fe2o3_amqp::types::messaging::{
    Accepted, Body, Message, Modified, Outcome, Rejected, Released, Source,
};
use fe2o3_amqp::types::primitives::{Array, Symbol, Value};
use fe2o3_amqp::types::sasl::{SaslCode, SaslInit, SaslOutcome, SaslResponse};
use fe2o3_amqp::{Receiver, Sendable, Sender};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// A message as the router stores it.
pub type Msg = Message<Body<Value>>;

/// One message the router routed.
#[derive(Debug, Clone)]
pub struct Routed {
    /// The address it was routed on.
    pub address: String,
    /// The message as received.
    pub message: Msg,
}

/// A link a client attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    /// `true` for a client sender (router receiver), `false` for a client
    /// receiver.
    pub client_sends: bool,
    /// The link name.
    pub name: String,
    /// The target (client sender) or source (client receiver) address;
    /// `None` for an anonymous-relay sender.
    pub address: Option<String>,
    /// The client receiver asked for a dynamic source.
    pub dynamic: bool,
}

/// A message a client receiver did not accept.
#[derive(Debug, Clone)]
pub struct Refused {
    /// The address it was consumed from.
    pub address: String,
    /// The message.
    pub message: Msg,
    /// The receiver's outcome.
    pub outcome: Outcome,
}

/// What the router answers to the next unsettled messages on an address.
#[derive(Debug, Clone)]
pub enum Scripted {
    /// `released`: the message is not queued.
    Release,
    /// `rejected`: the message is not queued.
    Reject,
    /// `modified` with `undeliverable-here`.
    Undeliverable,
}

#[derive(Clone)]
struct Sasl {
    user: Option<(String, String)>,
}

impl SaslAcceptor for Sasl {
    fn mechanisms(&self) -> Array<Symbol> {
        let mut m = vec![Symbol::from("ANONYMOUS")];
        if self.user.is_some() {
            m.insert(0, Symbol::from("PLAIN"));
        }
        Array::from(m)
    }

    fn on_init(&mut self, init: SaslInit) -> SaslServerFrame {
        let code = match init.mechanism.0.as_str() {
            "ANONYMOUS" => SaslCode::Ok,
            "PLAIN" => {
                let resp = init
                    .initial_response
                    .map(|b| b.into_vec())
                    .unwrap_or_default();
                let mut parts = resp.split(|b| *b == 0);
                let _authz = parts.next();
                let (user, pass) = (
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                );
                match &self.user {
                    Some((u, p)) if u.as_bytes() == user && p.as_bytes() == pass => SaslCode::Ok,
                    _ => SaslCode::Auth,
                }
            }
            _ => SaslCode::Auth,
        };
        SaslServerFrame::Outcome(SaslOutcome {
            code,
            additional_data: None,
        })
    }

    fn on_response(&mut self, _response: SaslResponse) -> SaslServerFrame {
        SaslServerFrame::Outcome(SaslOutcome {
            code: SaslCode::Auth,
            additional_data: None,
        })
    }
}

/// A queue served round-robin to waiting consumers.
#[derive(Default)]
struct Anycast {
    messages: VecDeque<Msg>,
    waiters: VecDeque<oneshot::Sender<Msg>>,
}

#[derive(Default)]
struct State {
    anycast: HashMap<String, Anycast>,
    multicast: HashMap<String, Vec<mpsc::UnboundedSender<Msg>>>,
    scripted: HashMap<String, VecDeque<Scripted>>,
    routed: Vec<Routed>,
    consumers: HashMap<String, usize>,
    producers: HashMap<String, usize>,
    attached: Vec<Attached>,
    refused: Vec<Refused>,
}

struct Inner {
    state: Mutex<State>,
    next_dynamic: AtomicU64,
    kill: watch::Sender<u64>,
}

/// The running fixture. Dropping it stops the listener (connections
/// already open keep running until [`Router::drop_connections`]).
pub struct Router {
    addr: SocketAddr,
    inner: Arc<Inner>,
    task: JoinHandle<()>,
}

impl Drop for Router {
    fn drop(&mut self) {
        self.task.abort();
        self.inner.kill.send_modify(|k| *k += 1);
    }
}

fn is_multicast(address: &str) -> bool {
    address.split('/').any(|seg| seg == "multicast") || address.starts_with("broadcast")
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Routes `msg` to `address`; returns the outcome for its sender.
    fn route(&self, address: &str, mut msg: Msg) -> Outcome {
        // fe2o3 would re-encode a body-less message with a null amqp-value;
        // an empty batch of data sections encodes as no body, as received.
        if matches!(msg.body, Body::Empty) {
            msg.body = Body::Data(Vec::new().into());
        }
        let mut st = self.lock();
        st.routed.push(Routed {
            address: address.to_owned(),
            message: msg.clone(),
        });
        if let Some(s) = st.scripted.get_mut(address).and_then(VecDeque::pop_front) {
            return match s {
                Scripted::Release => Outcome::Released(Released {}),
                Scripted::Reject => Outcome::Rejected(Rejected { error: None }),
                Scripted::Undeliverable => Outcome::Modified(Modified {
                    delivery_failed: Some(true),
                    undeliverable_here: Some(true),
                    message_annotations: None,
                }),
            };
        }
        if is_multicast(address) {
            if let Some(subs) = st.multicast.get_mut(address) {
                subs.retain(|tx| tx.send(msg.clone()).is_ok());
            }
        } else {
            Self::push(&mut st, address, msg, false);
        }
        Outcome::Accepted(Accepted {})
    }

    fn push(st: &mut State, address: &str, mut msg: Msg, front: bool) {
        let q = st.anycast.entry(address.to_owned()).or_default();
        while let Some(w) = q.waiters.pop_front() {
            match w.send(msg) {
                Ok(()) => return,
                Err(m) => msg = m,
            }
        }
        if front {
            q.messages.push_front(msg);
        } else {
            q.messages.push_back(msg);
        }
    }

    fn refuse(&self, address: &str, message: Msg, outcome: Outcome) {
        self.lock().refused.push(Refused {
            address: address.to_owned(),
            message,
            outcome,
        });
    }

    fn requeue(&self, address: &str, msg: Msg) {
        let mut st = self.lock();
        Self::push(&mut st, address, msg, true);
    }

    /// The next message for a consumer of `address`, in turn.
    fn pop(&self, address: &str) -> Result<Msg, oneshot::Receiver<Msg>> {
        let mut st = self.lock();
        let q = st.anycast.entry(address.to_owned()).or_default();
        match q.messages.pop_front() {
            Some(m) => Ok(m),
            None => {
                let (tx, rx) = oneshot::channel();
                q.waiters.push_back(tx);
                Err(rx)
            }
        }
    }
}

impl Router {
    /// Starts the router on `127.0.0.1:<free port>`. With `user`, SASL
    /// PLAIN must use these credentials; ANONYMOUS is always offered.
    pub async fn start(user: Option<(&str, &str)>) -> Router {
        Self::start_on(0, user).await
    }

    /// Starts the router on a given loopback port (0: any free port).
    pub async fn start_on(port: u16, user: Option<(&str, &str)>) -> Router {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the fixture router");
        let addr = listener.local_addr().expect("local address");
        let (kill, _) = watch::channel(0u64);
        let inner = Arc::new(Inner {
            state: Mutex::default(),
            next_dynamic: AtomicU64::new(1),
            kill,
        });
        let sasl = Sasl {
            user: user.map(|(u, p)| (u.to_owned(), p.to_owned())),
        };
        let mut props = Fields::default();
        props.insert(
            Symbol::from("product"),
            Value::String("om-test-router".into()),
        );
        let acceptor = Arc::new(
            ConnectionAcceptor::builder()
                .container_id("om-test-router")
                .properties(props)
                .sasl_acceptor(sasl)
                .build(),
        );
        let inner2 = inner.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let inner = inner2.clone();
                tokio::spawn(async move {
                    let mut kill = inner.kill.subscribe();
                    let Ok(conn) = acceptor.accept(stream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = serve_connection(conn, inner.clone()) => {}
                        _ = kill.changed() => {}
                    }
                });
            }
        });
        Router { addr, inner, task }
    }

    /// `host:port` of the router.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// An `amqp://` URL for the router (with the given credentials).
    pub fn url(&self, creds: Option<(&str, &str)>) -> String {
        match creds {
            Some((u, p)) => format!("amqp://{u}:{p}@{}/", self.addr),
            None => format!("amqp://{}/", self.addr),
        }
    }

    /// Every message routed so far.
    pub fn routed(&self) -> Vec<Routed> {
        self.inner.lock().routed.clone()
    }

    /// Messages waiting on an anycast address.
    pub fn queued(&self, address: &str) -> usize {
        self.inner
            .lock()
            .anycast
            .get(address)
            .map(|q| q.messages.len())
            .unwrap_or(0)
    }

    /// Every link attached so far, in order.
    pub fn attached(&self) -> Vec<Attached> {
        self.inner.lock().attached.clone()
    }

    /// Messages client receivers rejected or modified as undeliverable.
    pub fn refused(&self) -> Vec<Refused> {
        self.inner.lock().refused.clone()
    }

    /// Client senders attached to `address` right now.
    pub fn producers(&self, address: &str) -> usize {
        self.inner
            .lock()
            .producers
            .get(address)
            .copied()
            .unwrap_or(0)
    }

    /// Receivers attached to `address`.
    pub fn consumers(&self, address: &str) -> usize {
        self.inner
            .lock()
            .consumers
            .get(address)
            .copied()
            .unwrap_or(0)
    }

    /// The next unsettled messages on `address` get these outcomes.
    pub fn script_outcomes(&self, address: &str, outcomes: impl IntoIterator<Item = Scripted>) {
        self.inner
            .lock()
            .scripted
            .entry(address.to_owned())
            .or_default()
            .extend(outcomes);
    }

    /// Closes every open connection.
    pub fn drop_connections(&self) {
        self.inner.kill.send_modify(|k| *k += 1);
    }
}

async fn serve_connection(mut conn: ListenerConnectionHandle, inner: Arc<Inner>) {
    let acceptor = SessionAcceptor::new();
    while let Ok(session) = acceptor.accept(&mut conn).await {
        tokio::spawn(serve_session(session, inner.clone()));
    }
}

async fn serve_session(mut session: ListenerSessionHandle, inner: Arc<Inner>) {
    let inner_dyn = inner.clone();
    let acceptor = LinkAcceptor::builder()
        .on_dynamic_source(move |mut s: Source| {
            let n = inner_dyn.next_dynamic.fetch_add(1, Ordering::AcqRel);
            s.address = Some(format!("dyn/{n}"));
            Some(s)
        })
        .build();
    loop {
        match acceptor.accept(&mut session).await {
            Ok(LinkEndpoint::Sender(sender)) => {
                let address = sender.source().as_ref().and_then(|s| s.address.clone());
                inner.lock().attached.push(Attached {
                    client_sends: false,
                    name: sender.name().to_owned(),
                    dynamic: address.as_deref().is_some_and(|a| a.starts_with("dyn/")),
                    address,
                });
                tokio::spawn(serve_consumer(sender, inner.clone()));
            }
            Ok(LinkEndpoint::Receiver(receiver)) => {
                let address = receiver.target().as_ref().and_then(|t| t.address.clone());
                inner.lock().attached.push(Attached {
                    client_sends: true,
                    name: receiver.name().to_owned(),
                    address,
                    dynamic: false,
                });
                tokio::spawn(serve_producer(receiver, inner.clone()));
            }
            Err(_) => return,
        }
    }
}

/// A client sender: route what it sends.
async fn serve_producer(mut receiver: Receiver, inner: Arc<Inner>) {
    let link_address = receiver
        .target()
        .as_ref()
        .and_then(|t| t.address.clone())
        .filter(|a| !a.is_empty());
    let key = link_address.clone().unwrap_or_default();
    *inner.lock().producers.entry(key.clone()).or_default() += 1;
    serve_producer_loop(&mut receiver, &inner, link_address).await;
    if let Some(n) = inner.lock().producers.get_mut(&key) {
        *n = n.saturating_sub(1);
    }
}

async fn serve_producer_loop(
    receiver: &mut Receiver,
    inner: &Arc<Inner>,
    link_address: Option<String>,
) {
    loop {
        let Ok(delivery) = receiver.recv::<Body<Value>>().await else {
            return;
        };
        let msg = delivery.message().clone();
        let address = link_address
            .clone()
            .or_else(|| msg.properties.as_ref().and_then(|p| p.to.clone()))
            .unwrap_or_default();
        let outcome = inner.route(&address, msg);
        let r = match outcome {
            Outcome::Accepted(_) => receiver.accept(&delivery).await,
            Outcome::Released(_) => receiver.release(&delivery).await,
            Outcome::Rejected(r) => receiver.reject(&delivery, r.error).await,
            Outcome::Modified(m) => receiver.modify(&delivery, m).await,
            #[allow(unreachable_patterns)]
            _ => receiver.accept(&delivery).await,
        };
        if r.is_err() {
            return;
        }
    }
}

/// A client receiver: feed it from its address.
async fn serve_consumer(mut sender: Sender, inner: Arc<Inner>) {
    let Some(address) = sender.source().as_ref().and_then(|s| s.address.clone()) else {
        let _ = sender.close().await;
        return;
    };
    *inner.lock().consumers.entry(address.clone()).or_default() += 1;
    if is_multicast(&address) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        inner
            .lock()
            .multicast
            .entry(address.clone())
            .or_default()
            .push(tx);
        loop {
            let msg = tokio::select! {
                _ = sender.on_detach() => break,
                m = rx.recv() => match m { Some(m) => m, None => break },
            };
            let settled = Sendable::builder().message(msg).settled(true).build();
            if sender.send_batchable(settled).await.is_err() {
                break;
            }
        }
        drop(rx);
        // Senders to a dead channel are pruned on the next message.
    } else {
        loop {
            let msg = match inner.pop(&address) {
                Ok(m) => m,
                Err(mut rx) => tokio::select! {
                    biased;
                    m = &mut rx => match m { Ok(m) => m, Err(_) => break },
                    _ = sender.on_detach() => {
                        // A message handed over just now goes back.
                        rx.close();
                        if let Ok(m) = rx.try_recv() {
                            inner.requeue(&address, m);
                        }
                        break;
                    }
                },
            };
            match sender
                .send_batchable(
                    Sendable::builder()
                        .message(msg.clone())
                        .settled(false)
                        .build(),
                )
                .await
            {
                Ok(fut) => {
                    let inner = inner.clone();
                    let address = address.clone();
                    tokio::spawn(async move {
                        match fut.await {
                            Ok(Outcome::Accepted(_)) => {}
                            Ok(outcome @ Outcome::Rejected(_)) => {
                                inner.refuse(&address, msg, outcome)
                            }
                            Ok(Outcome::Modified(m)) if m.undeliverable_here == Some(true) => {
                                inner.refuse(&address, msg, Outcome::Modified(m))
                            }
                            _ => inner.requeue(&address, msg),
                        }
                    });
                }
                Err(_) => {
                    inner.requeue(&address, msg);
                    break;
                }
            }
        }
        if address.starts_with("dyn/") {
            inner.lock().anycast.remove(&address);
        }
    }
    if let Some(n) = inner.lock().consumers.get_mut(&address) {
        *n = n.saturating_sub(1);
    }
    let _ = sender.close().await;
}
