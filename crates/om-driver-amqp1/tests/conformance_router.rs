//! The driver conformance suite against the in-process router fixture
//! (`tests/support/router.rs`), with routable addressing: what the driver
//! does with a message router such as Qpid Dispatch.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::OnceLock;

/// Starts the fixture once, on a runtime of its own that outlives every
/// test, and returns the driver URL for it.
fn router_url() -> Option<String> {
    static URL: OnceLock<String> = OnceLock::new();
    om_driver_amqp1::register();
    let url = URL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("fixture runtime");
            rt.block_on(async move {
                let router = support::router::Router::start(Some(("om", "secret"))).await;
                let url = support::with_options(
                    &router.url(Some(("om", "secret"))),
                    &[("addressing_mode", "routable")],
                );
                tx.send(url).expect("hand the URL over");
                // Serve until the test process exits.
                std::future::pending::<()>().await;
                drop(router);
            });
        });
        rx.recv().expect("the fixture router started")
    });
    Some(url.clone())
}

om_driver_api::conformance_tests!(router_url());
