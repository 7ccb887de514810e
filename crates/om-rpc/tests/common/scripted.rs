//! A scripted driver: its listener hands out messages the test pushes, and
//! its handle records acknowledgements, replies and heartbeats, so server
//! behaviour can be observed without a broker.

use om_driver_api::{
    BoxFuture, Capabilities, Driver, IncomingHandle, IncomingMessage, ListenOptions, Listener,
    Notification, ReplyStream, RpcRequest, Transport,
};
use om_rpc::om_core::{
    Error, JsonObject, Priority, RemoteError, Result, Target, TransportUrl, Value,
};
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// What happened to one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Ack(String),
    Reply(String, std::result::Result<Value, RemoteError>),
    Heartbeat(String),
}

#[derive(Clone, Default)]
pub struct Log(pub Arc<Mutex<Vec<Event>>>);

impl Log {
    pub fn push(&self, e: Event) {
        self.0.lock().unwrap().push(e);
    }
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }
    pub fn replies(&self) -> Vec<(String, std::result::Result<Value, RemoteError>)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Reply(id, r) => Some((id, r)),
                _ => None,
            })
            .collect()
    }
}

struct Handle {
    tag: String,
    log: Log,
}

impl IncomingHandle for Handle {
    fn acknowledge(&self) -> BoxFuture<'_, Result<()>> {
        self.log.push(Event::Ack(self.tag.clone()));
        Box::pin(async { Ok(()) })
    }
    fn requeue(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }
    fn reply(&self, reply: std::result::Result<Value, RemoteError>) -> BoxFuture<'_, Result<()>> {
        self.log.push(Event::Reply(self.tag.clone(), reply));
        Box::pin(async { Ok(()) })
    }
    fn heartbeat(&self) -> BoxFuture<'_, Result<()>> {
        self.log.push(Event::Heartbeat(self.tag.clone()));
        Box::pin(async { Ok(()) })
    }
}

type Feed = mpsc::UnboundedReceiver<Result<IncomingMessage>>;

pub struct ScriptedDriver {
    feed: Mutex<Option<Feed>>,
}

struct ScriptedListener {
    rx: Feed,
}

impl Listener for ScriptedListener {
    fn next(&mut self) -> BoxFuture<'_, Option<Result<IncomingMessage>>> {
        Box::pin(self.rx.recv())
    }
    fn stop(&mut self) -> BoxFuture<'_, Result<()>> {
        self.rx.close();
        Box::pin(async { Ok(()) })
    }
    fn cleanup(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

impl Driver for ScriptedDriver {
    fn name(&self) -> &str {
        "scripted"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }
    async fn send(&self, _request: RpcRequest) -> Result<Option<ReplyStream>> {
        Err(Error::Messaging("scripted driver cannot send".into()))
    }
    async fn send_notification(&self, _n: Notification) -> Result<()> {
        Err(Error::Messaging("scripted driver cannot send".into()))
    }
    fn listen(
        &self,
        _target: Target,
        _o: ListenOptions,
    ) -> impl Future<Output = Result<Box<dyn Listener>>> + Send {
        let feed = self.feed.lock().unwrap().take();
        async move {
            match feed {
                Some(rx) => Ok(Box::new(ScriptedListener { rx }) as Box<dyn Listener>),
                None => Err(Error::transport("scripted", "already listening", false)),
            }
        }
    }
    async fn listen_for_notifications(
        &self,
        _t: Vec<(Target, Priority)>,
        _p: Option<String>,
        _o: ListenOptions,
    ) -> Result<Box<dyn Listener>> {
        Err(Error::Messaging("no notifications".into()))
    }
    async fn cleanup(&self) {}
}

/// The test's side: push messages, read the log.
pub struct Script {
    pub tx: mpsc::UnboundedSender<Result<IncomingMessage>>,
    pub log: Log,
}

impl Script {
    /// Pushes a call (when `msg_id` is set) or cast of `method` with `args`.
    pub fn push(
        &self,
        tag: &str,
        method: &str,
        args: Value,
        msg_id: Option<&str>,
        unique_id: Option<&str>,
    ) {
        let mut message = JsonObject::new();
        message.insert("method".into(), method.into());
        message.insert("args".into(), args);
        let handle = Arc::new(Handle {
            tag: tag.to_owned(),
            log: self.log.clone(),
        });
        let mut ctxt = JsonObject::new();
        ctxt.insert("client_timeout".into(), Value::Null);
        let m = IncomingMessage::new(ctxt, message, handle)
            .with_msg_id(msg_id.map(str::to_owned))
            .with_unique_id(unique_id.map(str::to_owned));
        self.tx.send(Ok(m)).unwrap();
    }

    pub fn push_error(&self, e: Error) {
        self.tx.send(Err(e)).unwrap();
    }
}

/// A transport over a fresh scripted driver.
pub fn transport() -> (Transport, Script) {
    let (tx, rx) = mpsc::unbounded_channel();
    let driver = Arc::new(ScriptedDriver {
        feed: Mutex::new(Some(rx)),
    });
    let url = TransportUrl::parse("scripted://").unwrap();
    (
        Transport::from_driver(driver, url, "openstack"),
        Script {
            tx,
            log: Log::default(),
        },
    )
}
