//! Helpers shared by the integration tests.
#![allow(dead_code)]

use om_driver_api::fake::FakeBroker;
use om_driver_api::Transport;
use std::future::Future;
use std::time::Duration;

/// A transport on its own fake virtual host, and a view of that broker.
pub async fn fake(vhost: &str) -> (Transport, FakeBroker) {
    let transport = Transport::from_url(&format!("fake:///{vhost}"))
        .await
        .expect("fake transport");
    (transport, FakeBroker::for_vhost(vhost))
}

/// Polls `cond` every 5 ms until it holds; panics after `secs` seconds
/// (the tests give 60: the machine running them may be busy).
pub async fn eventually(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Awaits `fut` with a 60 s limit (generous: the machine running the
/// tests may be busy).
pub async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .expect("operation timed out")
}

use om_driver_api::om_core::{Priority, Result, Target, TransportUrl};
use om_driver_api::{
    Capabilities, Driver, DriverConfig, DynDriver, ListenOptions, Listener, Notification,
    ReplyStream, RpcRequest,
};
use std::sync::{Arc, Mutex};

/// A driver that records every notification handed to it, then passes it
/// on to a fake driver (or fails every send when `fail` is set).
pub struct Recording {
    inner: Arc<dyn DynDriver>,
    pub sent: Arc<Mutex<Vec<Notification>>>,
    fail: bool,
}

impl Recording {
    /// A recording transport on fake virtual host `vhost`.
    pub fn transport(vhost: &str, fail: bool) -> (Transport, Arc<Mutex<Vec<Notification>>>) {
        let url = TransportUrl::parse(&format!("fake:///{vhost}")).expect("url");
        let inner: Arc<dyn DynDriver> = Arc::new(om_driver_api::fake::FakeDriver::new(
            &DriverConfig::new(url.clone()),
        ));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let rec = Recording {
            inner,
            sent: sent.clone(),
            fail,
        };
        (
            Transport::from_driver(Arc::new(rec), url, "openstack"),
            sent,
        )
    }
}

impl Driver for Recording {
    fn name(&self) -> &str {
        "recording"
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn send(&self, request: RpcRequest) -> Result<Option<ReplyStream>> {
        self.inner.send(request).await
    }
    async fn send_notification(&self, notification: Notification) -> Result<()> {
        self.sent.lock().expect("lock").push(notification.clone());
        if self.fail {
            return Err(om_driver_api::om_core::Error::MessageDeliveryFailure(
                format!("gave up on {}", notification.target),
            ));
        }
        self.inner.send_notification(notification).await
    }
    async fn listen(&self, target: Target, options: ListenOptions) -> Result<Box<dyn Listener>> {
        self.inner.listen(target, options).await
    }
    async fn listen_for_notifications(
        &self,
        targets: Vec<(Target, Priority)>,
        pool: Option<String>,
        options: ListenOptions,
    ) -> Result<Box<dyn Listener>> {
        self.inner
            .listen_for_notifications(targets, pool, options)
            .await
    }
    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}
