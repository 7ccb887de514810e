//! The conformance suite must fail drivers that break the contract: each
//! wrapper below injects one bug into the fake driver, and the case that
//! covers it must report a failure (or a timeout) instead of passing.
#![allow(clippy::result_large_err)]

use om_core::{JsonObject, Priority, Result, Target};
use om_driver_api::fake::FakeDriver;
use om_driver_api::testkit::{case, run_case, Case, Outcome};
use om_driver_api::{
    BoxFuture, Capabilities, Driver, DriverConfig, DriverFactory, DynDriver, IncomingHandle,
    IncomingMessage, ListenOptions, Listener, Notification, ReplyStream, RpcRequest,
};
use std::sync::{Arc, Once};
use std::time::Duration;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Bug {
    /// Sends requests without their context.
    DropsContext,
    /// Silently drops fanout casts.
    DropsFanout,
    /// Publishes every cast twice.
    Duplicates,
    /// `listen` never returns.
    HangsOnListen,
    /// `requeue` acknowledges instead.
    RequeueAcks,
    /// Logs the URL with its password, from another task, on each send.
    LogsPassword,
    /// Fails every send with an error that quotes the URL with its password.
    PasswordInError,
}

struct Buggy {
    inner: FakeDriver,
    bug: Bug,
    /// The transport URL, password included.
    url: String,
}

impl Driver for Buggy {
    fn name(&self) -> &str {
        "buggy"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }

    async fn send(&self, mut request: RpcRequest) -> Result<Option<ReplyStream>> {
        match self.bug {
            Bug::LogsPassword => {
                let url = self.url.clone();
                let _ = tokio::spawn(async move { tracing::debug!(%url, "publishing") }).await;
            }
            Bug::PasswordInError => {
                return Err(om_core::Error::Messaging(format!(
                    "cannot publish on {}",
                    self.url
                )))
            }
            Bug::DropsContext => request.ctxt = JsonObject::new(),
            Bug::DropsFanout if request.target.fanout => return Ok(None),
            Bug::Duplicates if !request.wait_for_reply => {
                Driver::send(&self.inner, request.clone()).await?;
            }
            _ => {}
        }
        Driver::send(&self.inner, request).await
    }

    async fn send_notification(&self, notification: Notification) -> Result<()> {
        Driver::send_notification(&self.inner, notification).await
    }

    async fn listen(&self, target: Target, options: ListenOptions) -> Result<Box<dyn Listener>> {
        if self.bug == Bug::HangsOnListen {
            std::future::pending::<()>().await;
        }
        Driver::listen(&self.inner, target, options).await
    }

    async fn listen_for_notifications(
        &self,
        targets: Vec<(Target, Priority)>,
        pool: Option<String>,
        options: ListenOptions,
    ) -> Result<Box<dyn Listener>> {
        let l = Driver::listen_for_notifications(&self.inner, targets, pool, options).await?;
        if self.bug == Bug::RequeueAcks {
            return Ok(Box::new(AckingListener(l)));
        }
        Ok(l)
    }

    async fn cleanup(&self) {
        Driver::cleanup(&self.inner).await
    }
}

struct AckingListener(Box<dyn Listener>);

struct AckingHandle(Arc<dyn IncomingHandle>);

impl IncomingHandle for AckingHandle {
    fn acknowledge(&self) -> BoxFuture<'_, Result<()>> {
        self.0.acknowledge()
    }
    fn requeue(&self) -> BoxFuture<'_, Result<()>> {
        self.0.acknowledge()
    }
}

impl Listener for AckingListener {
    fn next(&mut self) -> BoxFuture<'_, Option<Result<IncomingMessage>>> {
        Box::pin(async move {
            let m = match self.0.next().await? {
                Ok(m) => m,
                Err(e) => return Some(Err(e)),
            };
            let handle = Arc::new(AckingHandle(m.handle()));
            Some(Ok(IncomingMessage::new(
                m.ctxt.clone(),
                m.message.clone(),
                handle,
            )
            .with_unique_id(m.unique_id.clone())))
        })
    }
    fn stop(&mut self) -> BoxFuture<'_, Result<()>> {
        self.0.stop()
    }
    fn cleanup(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        self.0.cleanup()
    }
}

struct Factory(&'static [&'static str], Bug);

impl DriverFactory for Factory {
    fn schemes(&self) -> &'static [&'static str] {
        self.0
    }
    fn open(&self, config: DriverConfig) -> BoxFuture<'static, Result<Arc<dyn DynDriver>>> {
        let bug = self.1;
        Box::pin(async move {
            let d: Arc<dyn DynDriver> = Arc::new(Buggy {
                inner: FakeDriver::new(&config),
                bug,
                url: config.url.to_string_with_secrets(),
            });
            Ok(d)
        })
    }
}

fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for f in [
            Factory(&["bugctx"], Bug::DropsContext),
            Factory(&["bugfan"], Bug::DropsFanout),
            Factory(&["bugdup"], Bug::Duplicates),
            Factory(&["bughang"], Bug::HangsOnListen),
            Factory(&["bugreq"], Bug::RequeueAcks),
            Factory(&["buglog"], Bug::LogsPassword),
            Factory(&["bugerr"], Bug::PasswordInError),
        ] {
            om_driver_api::register_driver(Arc::new(f));
        }
    });
}

fn the_case(name: &str) -> &'static Case {
    match case(name) {
        Some(c) => c,
        None => panic!("no case {name}"),
    }
}

async fn assert_fails(url: &str, name: &str, why: &str) {
    register();
    let outcome = run_case(the_case(name), url).await;
    match outcome {
        Err(f) => assert!(
            f.0.contains(why),
            "{name} on {url} failed for another reason: {f}"
        ),
        Ok(o) => panic!("{name} on {url} should fail, got {o:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_context_is_caught() {
    assert_fails(
        "bugctx:///bugs",
        "call_round_trip_with_context",
        "request context",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_fanout_is_caught() {
    assert_fails(
        "bugfan:///bugs",
        "fanout_reaches_every_server_once",
        "no message",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_casts_are_caught() {
    assert_fails(
        "bugdup:///bugs",
        "topic_messages_shared_round_robin",
        "handled twice",
    )
    .await;
    assert_fails(
        "bugdup:///bugs",
        "server_targeted_message_reaches_only_that_server",
        "order of the casts",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_that_acknowledges_is_caught() {
    assert_fails(
        "bugreq:///bugs",
        "notification_requeue_redelivers",
        "requeued notification",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logged_password_is_caught() {
    assert_fails(
        "buglog:///bugs",
        "credentials_stay_out_of_errors_and_logs",
        "appears in the log",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_in_an_error_is_caught() {
    assert_fails(
        "bugerr:///bugs",
        "credentials_stay_out_of_errors_and_logs",
        "appears in the error of a send",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_driver_times_out() {
    register();
    let short = Case {
        time_limit: Duration::from_millis(300),
        ..*the_case("fanout_reaches_every_server_once")
    };
    let outcome = run_case(&short, "bughang:///bugs").await;
    assert!(
        matches!(&outcome, Err(f) if f.0.contains("timed out")),
        "{outcome:?}"
    );
    // The same case, with room for its quiet periods, passes on the healthy driver.
    let healthy = Case {
        time_limit: Duration::from_secs(20),
        ..short
    };
    assert_eq!(
        run_case(&healthy, "fake:///bugs").await,
        Ok(Outcome::Passed)
    );
}
