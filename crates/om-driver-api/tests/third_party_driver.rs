//! How a third-party driver crate uses the conformance suite: a tiny
//! `memq://` driver (a wrapper around the in-memory fake driver, without
//! mandatory publishing) is registered and the whole suite runs through
//! `conformance_tests!`.
#![allow(clippy::result_large_err)]

use om_core::{Priority, Result, Target};
use om_driver_api::fake::FakeDriver;
use om_driver_api::{
    BoxFuture, Capabilities, Driver, DriverConfig, DriverFactory, DynDriver, ListenOptions,
    Listener, Notification, ReplyStream, RpcRequest,
};
use std::future::Future;
use std::sync::{Arc, Once};

/// The third-party driver: everything delegated to an inner fake driver.
struct MemqDriver {
    inner: FakeDriver,
}

impl Driver for MemqDriver {
    fn name(&self) -> &str {
        "memq"
    }

    fn capabilities(&self) -> Capabilities {
        // Claims less than the fake can do, to exercise capability gating.
        let mut caps = Capabilities::all();
        caps.mandatory_publish = false;
        caps
    }

    fn send(
        &self,
        request: RpcRequest,
    ) -> impl Future<Output = Result<Option<ReplyStream>>> + Send {
        Driver::send(&self.inner, request)
    }

    fn send_notification(
        &self,
        notification: Notification,
    ) -> impl Future<Output = Result<()>> + Send {
        Driver::send_notification(&self.inner, notification)
    }

    fn listen(
        &self,
        target: Target,
        options: ListenOptions,
    ) -> impl Future<Output = Result<Box<dyn Listener>>> + Send {
        Driver::listen(&self.inner, target, options)
    }

    fn listen_for_notifications(
        &self,
        targets: Vec<(Target, Priority)>,
        pool: Option<String>,
        options: ListenOptions,
    ) -> impl Future<Output = Result<Box<dyn Listener>>> + Send {
        Driver::listen_for_notifications(&self.inner, targets, pool, options)
    }

    fn cleanup(&self) -> impl Future<Output = ()> + Send {
        Driver::cleanup(&self.inner)
    }
}

struct MemqFactory;

impl DriverFactory for MemqFactory {
    fn schemes(&self) -> &'static [&'static str] {
        &["memq"]
    }

    fn open(&self, config: DriverConfig) -> BoxFuture<'static, Result<Arc<dyn DynDriver>>> {
        Box::pin(async move {
            let driver: Arc<dyn DynDriver> = Arc::new(MemqDriver {
                inner: FakeDriver::new(&config),
            });
            Ok(driver)
        })
    }
}

/// Registers the driver once and returns the URL the suite runs against.
fn memq_url() -> Option<String> {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| om_driver_api::register_driver(Arc::new(MemqFactory)));
    Some("memq:///third-party".to_owned())
}

om_driver_api::conformance_tests!(memq_url());

#[tokio::test]
async fn the_wrapper_is_what_the_suite_sees() {
    let url = memq_url().unwrap_or_default();
    let t = om_driver_api::Transport::from_url(&url)
        .await
        .map_err(|e| e.to_string());
    let t = t.as_ref().map_err(String::as_str);
    assert_eq!(t.map(|t| t.driver_name()), Ok("memq"));
    let case = om_driver_api::testkit::case("at_least_once_unroutable_is_undeliverable");
    let case = case.map(|c| c.name);
    assert_eq!(case, Some("at_least_once_unroutable_is_undeliverable"));
    let c = om_driver_api::testkit::case("at_least_once_unroutable_is_undeliverable");
    if let Some(c) = c {
        let outcome = om_driver_api::testkit::run_case(c, &url).await;
        assert_eq!(
            outcome,
            Ok(om_driver_api::testkit::Outcome::NotApplicable {
                missing: vec![om_driver_api::testkit::Capability::MandatoryPublish]
            })
        );
    }
}
