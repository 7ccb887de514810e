//! `NotificationListener::stop` returns only once the driver's listener
//! has stopped fetching, even when that takes a while and every worker of
//! the pool is busy; what was fetched before is still dispatched by `wait`.

use om_driver_api::om_core::{Error, JsonObject, Priority, Result, Target, TransportUrl, Value};
use om_driver_api::{
    BoxFuture, Capabilities, Driver, IncomingHandle, IncomingMessage, ListenOptions, Listener,
    Notification as DriverNotification, ReplyStream, RpcRequest, Transport,
};
use om_notify::{Endpoint, Notification, NotificationListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

type Feed = mpsc::UnboundedReceiver<Result<IncomingMessage>>;

/// A driver whose notification listener hands out what the test pushes
/// and takes `stop_delay` to stop.
struct SlowStopDriver {
    feed: Mutex<Option<Feed>>,
    stopped: Arc<AtomicBool>,
    stop_delay: Duration,
}

struct SlowStopListener {
    rx: Feed,
    stopped: Arc<AtomicBool>,
    stop_delay: Duration,
}

impl Listener for SlowStopListener {
    fn next(&mut self) -> BoxFuture<'_, Option<Result<IncomingMessage>>> {
        Box::pin(self.rx.recv())
    }
    fn stop(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            tokio::time::sleep(self.stop_delay).await;
            self.rx.close();
            self.stopped.store(true, Ordering::SeqCst);
            Ok(())
        })
    }
    fn cleanup(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

impl Driver for SlowStopDriver {
    fn name(&self) -> &str {
        "slow-stop"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }
    async fn send(&self, _request: RpcRequest) -> Result<Option<ReplyStream>> {
        Err(Error::Messaging("cannot send".into()))
    }
    async fn send_notification(&self, _n: DriverNotification) -> Result<()> {
        Err(Error::Messaging("cannot send".into()))
    }
    async fn listen(&self, _target: Target, _o: ListenOptions) -> Result<Box<dyn Listener>> {
        Err(Error::Messaging("no RPC".into()))
    }
    async fn listen_for_notifications(
        &self,
        _t: Vec<(Target, Priority)>,
        _p: Option<String>,
        _o: ListenOptions,
    ) -> Result<Box<dyn Listener>> {
        let rx = self
            .feed
            .lock()
            .expect("lock")
            .take()
            .ok_or_else(|| Error::Messaging("already listening".into()))?;
        Ok(Box::new(SlowStopListener {
            rx,
            stopped: self.stopped.clone(),
            stop_delay: self.stop_delay,
        }))
    }
    async fn cleanup(&self) {}
}

/// Counts acknowledgements.
struct Acks(Arc<AtomicUsize>);

impl IncomingHandle for Acks {
    fn acknowledge(&self) -> BoxFuture<'_, Result<()>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }
    fn requeue(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

fn info(n: i64, acks: &Arc<AtomicUsize>) -> Result<IncomingMessage> {
    let mut message = JsonObject::new();
    message.insert("priority".into(), "INFO".into());
    message.insert("event_type".into(), "e".into());
    message.insert("payload".into(), Value::from(n));
    Ok(IncomingMessage::new(
        JsonObject::new(),
        message,
        Arc::new(Acks(acks.clone())),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_returns_once_the_driver_stopped_fetching() {
    let (tx, rx) = mpsc::unbounded_channel();
    let stopped = Arc::new(AtomicBool::new(false));
    let driver = Arc::new(SlowStopDriver {
        feed: Mutex::new(Some(rx)),
        stopped: stopped.clone(),
        stop_delay: Duration::from_millis(300),
    });
    let transport = Transport::from_driver(
        driver,
        TransportUrl::parse("slow-stop://").expect("url"),
        "openstack",
    );
    // One worker, blocked until released: the pool is full when stop()
    // is called.
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let handled = Arc::new(Mutex::new(Vec::new()));
    let started = Arc::new(AtomicUsize::new(0));
    let endpoint = Endpoint::new().info({
        let (release, handled, started) = (release.clone(), handled.clone(), started.clone());
        move |n: Notification| {
            let (release, handled, started) = (release.clone(), handled.clone(), started.clone());
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                let _permit = release.acquire().await.expect("semaphore");
                handled.lock().expect("lock").push(n.payload);
            }
        }
    });
    let listener = NotificationListener::builder(transport)
        .target(Target::new("t"))
        .endpoint(endpoint)
        .executor_pool_size(1)
        .build()
        .expect("listener");
    listener.start().await.expect("start");
    let acks = Arc::new(AtomicUsize::new(0));
    for n in 0..3 {
        tx.send(info(n, &acks)).expect("push");
    }
    // Wait for the first one to reach the (blocked) endpoint.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while started.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first notification never reached the endpoint"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(started.load(Ordering::SeqCst), 1, "one worker");

    // The endpoint stays blocked until released below, so a stop() that
    // waited for it would never return.
    tokio::time::timeout(Duration::from_secs(30), listener.stop())
        .await
        .expect("stop() must not wait for running notifications");
    assert!(
        stopped.load(Ordering::SeqCst),
        "stop() returned before the driver's listener had stopped"
    );
    assert_eq!(acks.load(Ordering::SeqCst), 0, "nothing finished yet");

    // What was fetched before the stop is still dispatched, in order.
    release.add_permits(10);
    tokio::time::timeout(Duration::from_secs(30), listener.wait())
        .await
        .expect("wait");
    assert_eq!(
        *handled.lock().expect("lock"),
        vec![Value::from(0), Value::from(1), Value::from(2)]
    );
    assert_eq!(acks.load(Ordering::SeqCst), 3);
}
