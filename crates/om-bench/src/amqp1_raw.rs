//! Raw fe2o3-amqp against RabbitMQ's AMQP 1.0 plugin: the same exchanges
//! as om's AMQP 1.0 driver, without any om code.
//!
//! * RPC: the server receives requests from `/queue/<topic>` (credit 100,
//!   accepted on receipt) and answers each on its own task with a
//!   pre-settled reply to the request's `reply-to`, correlated by
//!   `correlation-id`. The client sends requests unsettled and waits for
//!   `accepted` (as om does for calls), then for the reply on its own
//!   reply queue `/queue/<topic>_reply` (credit 200, accepted on receipt).
//! * Notifications: sent unsettled (waiting for `accepted`) to
//!   `/queue/<topic>.info`; the listener (credit 100) counts, then accepts.
//!
//! One session per link, as om's driver does. Bodies are an amqp-value
//! string holding the prebuilt oslo-shaped JSON of [`crate::oslo_bodies`]
//! (a call, its reply, a notification), the size of om's.

use crate::harness::{self, BenchResult, RunSpec};
use crate::oslo_bodies;
use anyhow::{anyhow, bail, Context as _, Result};
use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::link::CreditMode;
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::messaging::{AmqpValue, Body, Message, MessageId, Outcome, Properties};
use fe2o3_amqp::types::primitives::Value;
use fe2o3_amqp::{Connection, Receiver, Sendable, Sender, Session};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// How long a raw call waits for its reply.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

type Msg = Message<Body<Value>>;

fn message(body: String, props: Properties) -> Msg {
    Message {
        header: None,
        delivery_annotations: None,
        message_annotations: None,
        properties: Some(props),
        application_properties: None,
        body: Body::Value(AmqpValue(Value::String(body))),
        footer: None,
    }
}

fn body_len(m: &Msg) -> usize {
    match &m.body {
        Body::Value(AmqpValue(Value::String(s))) => s.len(),
        _ => 0,
    }
}

fn id_string(id: &Option<MessageId>) -> Option<String> {
    match id {
        Some(MessageId::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// One connection; links each get their own session.
struct Peer {
    conn: ConnectionHandle<()>,
    sessions: Vec<SessionHandle<()>>,
}

impl Peer {
    /// Connects to `amqp://[user:pass@]host:port` with TCP_NODELAY (as
    /// om's driver does; without it Nagle's algorithm adds ~40 ms to
    /// small request/reply exchanges) and SASL PLAIN when the URL has a user.
    async fn connect(url: &str, name: &str) -> Result<Peer> {
        let rest = url
            .strip_prefix("amqp://")
            .ok_or_else(|| anyhow!("not an amqp:// URL"))?;
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let (creds, hostport) = match authority.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, authority),
        };
        let hostport = if hostport.contains(':') {
            hostport.to_owned()
        } else {
            format!("{hostport}:5672")
        };
        let tcp = tokio::net::TcpStream::connect(&hostport)
            .await
            .with_context(|| format!("connecting to {hostport}"))?;
        tcp.set_nodelay(true)?;
        let mut builder = Connection::builder().container_id(name.to_owned());
        if let Some(c) = creds {
            let (user, pass) = c.split_once(':').unwrap_or((c, ""));
            builder = builder.sasl_profile(SaslProfile::Plain {
                username: user.to_owned(),
                password: pass.to_owned(),
            });
        }
        let conn = builder
            .open_with_stream(tcp)
            .await
            .map_err(|e| anyhow!("AMQP 1.0 connect failed: {e}"))?;
        Ok(Peer {
            conn,
            sessions: Vec::new(),
        })
    }

    async fn session(&mut self) -> Result<&mut SessionHandle<()>> {
        let s = Session::begin(&mut self.conn)
            .await
            .map_err(|e| anyhow!("session: {e}"))?;
        self.sessions.push(s);
        self.sessions
            .last_mut()
            .ok_or_else(|| anyhow!("no session"))
    }

    async fn sender(&mut self, address: &str) -> Result<Sender> {
        let name = format!("bench-sender-{}", uuid::Uuid::new_v4().simple());
        let session = self.session().await?;
        Sender::attach(session, name, address)
            .await
            .map_err(|e| anyhow!("sender to {address}: {e}"))
    }

    async fn receiver(&mut self, address: &str, credit: u32) -> Result<Receiver> {
        let name = format!("bench-receiver-{}", uuid::Uuid::new_v4().simple());
        let session = self.session().await?;
        Receiver::builder()
            .name(name)
            .source(address)
            .credit_mode(CreditMode::Auto(credit))
            .attach(session)
            .await
            .map_err(|e| anyhow!("receiver from {address}: {e}"))
    }
}

/// Sends on a shared link: the lock is held only to hand the message to
/// the link; the outcome is awaited afterwards.
async fn send(sender: &tokio::sync::Mutex<Sender>, m: Msg, settled: bool) -> Result<()> {
    let fut = {
        let mut s = sender.lock().await;
        s.send_batchable(Sendable::builder().message(m).settled(settled).build())
            .await
            .map_err(|e| anyhow!("send: {e}"))?
    };
    match fut.await.map_err(|e| anyhow!("outcome: {e}"))? {
        Outcome::Accepted(_) => Ok(()),
        other => bail!("message not accepted: {other:?}"),
    }
}

fn as_text(body: Vec<u8>) -> String {
    String::from_utf8_lossy(&body).into_owned()
}

/// RPC calls with `concurrency` callers.
pub async fn rpc(spec: &RunSpec) -> Result<BenchResult> {
    let request_addr = format!("/queue/{}_rpc", spec.prefix);
    let reply_addr = format!("/queue/{}_rpc_reply", spec.prefix);

    // Server.
    let mut server = Peer::connect(&spec.url, "bench-raw-server").await?;
    let mut requests = server.receiver(&request_addr, 100).await?;
    let reply_sender = Arc::new(tokio::sync::Mutex::new(server.sender(&reply_addr).await?));
    let disposer = requests.disposer();
    let reply_text = Arc::new(as_text(oslo_bodies::reply(spec.payload_bytes)));
    let reply_len = reply_text.len();
    tokio::spawn(async move {
        while let Ok(d) = requests.recv::<Body<Value>>().await {
            let (disposer, reply_sender) = (disposer.clone(), reply_sender.clone());
            let reply_text = reply_text.clone();
            tokio::spawn(async move {
                if disposer.accept(&d).await.is_err() {
                    return;
                }
                let m = d.message();
                let Some(props) = &m.properties else { return };
                let (Some(corr), Some(_reply_to)) =
                    (id_string(&props.message_id), props.reply_to.clone())
                else {
                    return;
                };
                if !matches!(&m.body, Body::Value(AmqpValue(Value::String(_)))) {
                    return;
                }
                let reply = message(
                    (*reply_text).clone(),
                    Properties {
                        correlation_id: Some(MessageId::String(corr)),
                        ..Default::default()
                    },
                );
                let _ = send(&reply_sender, reply, true).await;
            });
        }
    });

    // Client.
    let mut client = Peer::connect(&spec.url, "bench-raw-client").await?;
    let mut replies = client.receiver(&reply_addr, 200).await?;
    let request_sender = Arc::new(tokio::sync::Mutex::new(client.sender(&request_addr).await?));
    let waiters: Arc<Mutex<HashMap<String, oneshot::Sender<usize>>>> =
        Arc::new(Mutex::new(HashMap::new()));
    {
        let waiters = waiters.clone();
        let disposer = replies.disposer();
        tokio::spawn(async move {
            while let Ok(d) = replies.recv::<Body<Value>>().await {
                let _ = disposer.accept(&d).await;
                let m = d.message();
                let Some(corr) = m
                    .properties
                    .as_ref()
                    .and_then(|p| id_string(&p.correlation_id))
                else {
                    continue;
                };
                let waiter = waiters
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&corr);
                if let Some(tx) = waiter {
                    let _ = tx.send(body_len(m));
                }
            }
        });
    }
    let text = Arc::new(as_text(oslo_bodies::call(spec.payload_bytes)));
    let call = {
        let reply_addr = reply_addr.clone();
        move |sender: Arc<tokio::sync::Mutex<Sender>>,
              waiters: Arc<Mutex<HashMap<String, oneshot::Sender<usize>>>>,
              text: Arc<String>| {
            let reply_addr = reply_addr.clone();
            async move {
                let id = uuid::Uuid::new_v4().simple().to_string();
                let (tx, rx) = oneshot::channel();
                waiters
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id.clone(), tx);
                let m = message(
                    (*text).clone(),
                    Properties {
                        message_id: Some(MessageId::String(id.clone())),
                        reply_to: Some(reply_addr),
                        ..Default::default()
                    },
                );
                let r = async {
                    send(&sender, m, false).await?;
                    let n = tokio::time::timeout(CALL_TIMEOUT, rx)
                        .await
                        .map_err(|_| anyhow!("no reply within {CALL_TIMEOUT:?}"))?
                        .map_err(|_| anyhow!("reply receiver ended"))?;
                    anyhow::ensure!(n == reply_len, "reply of {n} bytes");
                    Ok(())
                }
                .await;
                if r.is_err() {
                    waiters
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&id);
                }
                r
            }
        }
    };
    call(request_sender.clone(), waiters.clone(), text.clone())
        .await
        .context("first call")?;
    let timeline = spec.window.start();
    let outcome = harness::closed_loop(spec.concurrency, timeline, move |_, _| {
        call(request_sender.clone(), waiters.clone(), text.clone())
    })
    .await;
    let result = harness::finish_calls(spec.result("amqp1", "raw", "rpc"), outcome);
    drop(server);
    drop(client);
    Ok(result)
}

/// Notifications with `concurrency` senders; the listener counts, then
/// accepts.
pub async fn notify(spec: &RunSpec) -> Result<BenchResult> {
    let address = format!("/queue/{}_notify.info", spec.prefix);
    let arrivals = Arc::new(AtomicU64::new(0));
    let mut listener = Peer::connect(&spec.url, "bench-raw-listener").await?;
    let mut rx = listener.receiver(&address, 100).await?;
    {
        let counter = arrivals.clone();
        tokio::spawn(async move {
            while let Ok(d) = rx.recv::<Body<Value>>().await {
                counter.fetch_add(1, Ordering::AcqRel);
                if rx.accept(&d).await.is_err() {
                    break;
                }
            }
        });
    }
    let mut notifier = Peer::connect(&spec.url, "bench-raw-notifier").await?;
    let sender = Arc::new(tokio::sync::Mutex::new(notifier.sender(&address).await?));
    let text = Arc::new(as_text(oslo_bodies::notification(spec.payload_bytes)));
    let notify_one = move |sender: Arc<tokio::sync::Mutex<Sender>>, text: Arc<String>| async move {
        let m = message(
            (*text).clone(),
            Properties {
                message_id: Some(MessageId::String(uuid::Uuid::new_v4().simple().to_string())),
                ..Default::default()
            },
        );
        send(&sender, m, false).await
    };
    notify_one(sender.clone(), text.clone())
        .await
        .context("first notification")?;
    anyhow::ensure!(
        harness::wait_for_count(&arrivals, 1, Duration::from_secs(10)).await,
        "the first notification never arrived"
    );
    let (arrived, outcome) = harness::senders_with_arrivals(spec, arrivals, move |_, _| {
        notify_one(sender.clone(), text.clone())
    })
    .await;
    let result = harness::finish_arrivals(spec.result("amqp1", "raw", "notify"), arrived, outcome);
    drop(listener);
    drop(notifier);
    Ok(result)
}
