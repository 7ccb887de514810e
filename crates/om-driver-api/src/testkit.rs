//! The driver conformance suite.
//!
//! A set of named, self-contained checks of the driver contract (RPC
//! routing, replies, heartbeats, notifications, pools, acknowledgement,
//! payloads, validation) that every driver must pass. Each case takes the
//! transport URL of a driver that is already registered, opens fresh
//! [`Transport`]s (client and server sides separately),
//! and uses unique topic, exchange and pool names, so cases can run in
//! parallel and against a shared broker. Every case has a time limit, so a
//! broken driver fails instead of hanging.
//!
//! Cases are gated on [`Capabilities`]: a case whose driver lacks a
//! capability it needs prints
//! `conformance: <case> not applicable: driver lacks <capability>` and
//! passes as [`Outcome::NotApplicable`].
//!
//! Driver crates get one `#[test]` per case with
//! [`conformance_tests!`](crate::conformance_tests); tools can use
//! [`cases`], [`run_case`] and [`run_all`].
//!
//! For interop tests against Python peers (the real oslo.messaging),
//! [`python_peer`] runs a peer script and reads its JSON lines; [`logs`]
//! captures log output for checks of what was logged. With the feature
//! `testkit-tls`, [`tls`] puts a TLS-terminating proxy with a test-only CA in
//! front of a plain listener, for a driver's TLS tests.
//!
//! ## What the suite assumes of a driver
//!
//! * When `listen` / `listen_for_notifications` returns, the subscription is
//!   live (queues declared, bound and consumed).
//! * Cases leave non-auto-delete queues with unique names behind on a real
//!   broker (RPC topic queues, notification queues), as oslo's own
//!   functional tests do; they clean up listeners and transports.
//! * Injecting malformed bodies needs raw broker access, which this suite
//!   does not have; each driver covers that in its own tests.
//!
//! ## Environment
//!
//! * `OM_REQUIRE_BROKERS=1`: a case whose URL is `None` fails instead of
//!   being skipped (for CI jobs that must exercise real brokers).
//! * `OM_CONFORMANCE_TIME_SCALE=<factor>`: multiplies every wait and time
//!   limit (e.g. `5` for slow brokers).

#![allow(clippy::result_large_err)]

mod cases;
pub mod logs;
pub mod python_peer;
#[cfg(feature = "testkit-tls")]
pub mod tls;

use crate::{Capabilities, Transport};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A boxed case body.
pub type CaseFuture = Pin<Box<dyn Future<Output = Result<(), Failure>> + Send + 'static>>;

/// One capability a case can require (the fields of [`Capabilities`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Capability {
    /// [`Capabilities::rpc`].
    Rpc,
    /// [`Capabilities::fanout`].
    Fanout,
    /// [`Capabilities::heartbeat`].
    Heartbeat,
    /// [`Capabilities::notifications`].
    Notifications,
    /// [`Capabilities::notification_pools`].
    NotificationPools,
    /// [`Capabilities::requeue`].
    Requeue,
    /// [`Capabilities::retains_unconsumed_notifications`].
    RetainsUnconsumedNotifications,
    /// [`Capabilities::mandatory_publish`].
    MandatoryPublish,
}

impl Capability {
    /// The field name in [`Capabilities`] (`rpc`, `mandatory_publish`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Capability::Rpc => "rpc",
            Capability::Fanout => "fanout",
            Capability::Heartbeat => "heartbeat",
            Capability::Notifications => "notifications",
            Capability::NotificationPools => "notification_pools",
            Capability::Requeue => "requeue",
            Capability::RetainsUnconsumedNotifications => "retains_unconsumed_notifications",
            Capability::MandatoryPublish => "mandatory_publish",
        }
    }

    /// Whether `caps` has this capability.
    pub fn is_in(self, caps: &Capabilities) -> bool {
        match self {
            Capability::Rpc => caps.rpc,
            Capability::Fanout => caps.fanout,
            Capability::Heartbeat => caps.heartbeat,
            Capability::Notifications => caps.notifications,
            Capability::NotificationPools => caps.notification_pools,
            Capability::Requeue => caps.requeue,
            Capability::RetainsUnconsumedNotifications => caps.retains_unconsumed_notifications,
            Capability::MandatoryPublish => caps.mandatory_publish,
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a case failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

impl From<om_core::Error> for Failure {
    fn from(e: om_core::Error) -> Self {
        Failure(format!("unexpected error {}: {e}", e.oslo_name()))
    }
}

/// How a case ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every check held.
    Passed,
    /// The driver lacks capabilities the case needs; nothing was checked.
    NotApplicable {
        /// The missing capabilities.
        missing: Vec<Capability>,
    },
}

/// One conformance case.
#[derive(Clone, Copy)]
pub struct Case {
    /// Unique name (a valid Rust identifier; the test function's name).
    pub name: &'static str,
    /// Capabilities the driver needs for the case to apply.
    pub requires: &'static [Capability],
    /// Time limit before scaling by `OM_CONFORMANCE_TIME_SCALE`.
    pub time_limit: Duration,
    /// The body, given the transport URL. Prefer [`run_case`], which also
    /// checks capabilities and applies the time limit.
    pub body: fn(String) -> CaseFuture,
}

impl Case {
    /// The capabilities of `caps` this case needs and does not find.
    pub fn missing(&self, caps: &Capabilities) -> Vec<Capability> {
        self.requires
            .iter()
            .copied()
            .filter(|c| !c.is_in(caps))
            .collect()
    }
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Case")
            .field("name", &self.name)
            .field("requires", &self.requires)
            .field("time_limit", &self.time_limit)
            .finish()
    }
}

/// Every case of the suite, in a stable order.
pub fn cases() -> &'static [Case] {
    cases::ALL
}

/// The case called `name`.
pub fn case(name: &str) -> Option<&'static Case> {
    cases().iter().find(|c| c.name == name)
}

/// The factor applied to every wait (`OM_CONFORMANCE_TIME_SCALE`, default 1).
pub fn time_scale() -> f64 {
    std::env::var("OM_CONFORMANCE_TIME_SCALE")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v > 0.0)
        .unwrap_or(1.0)
}

pub(crate) fn scaled(d: Duration) -> Duration {
    d.mul_f64(time_scale())
}

/// Whether `OM_REQUIRE_BROKERS=1` (or `true`) is set.
pub fn brokers_required() -> bool {
    matches!(
        std::env::var("OM_REQUIRE_BROKERS")
            .ok()
            .as_deref()
            .map(str::trim),
        Some("1") | Some("true") | Some("yes")
    )
}

/// Runs one case against `url`: opens a transport to read the driver's
/// capabilities, reports the case not applicable if some are missing
/// (printing a `conformance: <case> not applicable: ...` line), otherwise
/// runs it within its time limit.
pub async fn run_case(case: &Case, url: &str) -> Result<Outcome, Failure> {
    let probe = Transport::from_url(url)
        .await
        .map_err(|e| Failure(format!("cannot open a transport for the suite: {e}")))?;
    let caps = probe.capabilities();
    probe.cleanup().await;
    let missing = case.missing(&caps);
    if !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|c| c.name()).collect();
        println!(
            "conformance: {} not applicable: driver lacks {}",
            case.name,
            names.join(", ")
        );
        return Ok(Outcome::NotApplicable { missing });
    }
    let limit = scaled(case.time_limit);
    match tokio::time::timeout(limit, (case.body)(url.to_owned())).await {
        Ok(Ok(())) => Ok(Outcome::Passed),
        Ok(Err(f)) => Err(f),
        Err(_) => Err(Failure(format!("timed out after {limit:?}"))),
    }
}

/// Runs every case against `url`, in parallel, and returns each result in
/// the order of [`cases`].
pub async fn run_all(url: &str) -> Vec<(&'static str, Result<Outcome, Failure>)> {
    let mut handles = Vec::new();
    for c in cases() {
        let url = url.to_owned();
        handles.push((c.name, tokio::spawn(async move { run_case(c, &url).await })));
    }
    let mut out = Vec::with_capacity(handles.len());
    for (name, h) in handles {
        let r = match h.await {
            Ok(r) => r,
            Err(e) => Err(Failure(format!("the case panicked: {e}"))),
        };
        out.push((name, r));
    }
    out
}

/// The body of each test generated by [`conformance_tests!`](crate::conformance_tests).
/// Not a stable API.
#[doc(hidden)]
pub fn __run_test(name: &str, url: Option<String>) {
    let Some(url) = url else {
        if brokers_required() {
            panic!(
                "conformance: {name}: OM_REQUIRE_BROKERS is set but no broker URL is configured"
            );
        }
        println!("conformance: {name} SKIPPED (broker not configured)");
        return;
    };
    let Some(case) = case(name) else {
        panic!("conformance: no case named {name}");
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("conformance: {name}: cannot build a tokio runtime: {e}"),
    };
    match runtime.block_on(run_case(case, &url)) {
        Ok(Outcome::Passed) => {}
        Ok(Outcome::NotApplicable { .. }) => {}
        Err(f) => panic!("conformance case {name} failed: {f}"),
    }
}

/// Calls back `$($cb)*! { $($pre)* ; <case> [<capabilities>], ... }` with
/// the list of cases: the one list both [`cases`] and
/// [`conformance_tests!`](crate::conformance_tests) are built from.
#[doc(hidden)]
#[macro_export]
macro_rules! __om_conformance_case_list {
    ([$($cb:tt)*] ($($pre:tt)*)) => {
        $($cb)* ! { $($pre)* ;
            transport_opens_and_cleans_up [],
            credentials_stay_out_of_errors_and_logs [],
            call_round_trip_with_context [Rpc],
            call_context_carries_client_timeout [Rpc],
            call_results_keep_json_types [Rpc],
            call_ids_are_fresh_and_match [Rpc],
            concurrent_calls_get_their_own_replies [Rpc],
            request_message_has_no_transport_keys [Rpc],
            cast_is_delivered_without_reply_stream [Rpc],
            casts_never_get_replies [Rpc],
            unique_ids_present_and_unique [Rpc],
            reply_carries_failure [Rpc],
            heartbeats_arrive_in_order_before_final_reply [Rpc, Heartbeat],
            reply_to_abandoned_call_is_harmless [Rpc],
            server_targeted_message_reaches_only_that_server [Rpc],
            server_targeted_call_round_trip [Rpc],
            topic_messages_shared_round_robin [Rpc],
            fanout_reaches_every_server_once [Rpc, Fanout],
            fanout_ignores_server [Rpc, Fanout],
            fanout_stops_at_cleaned_up_server [Rpc, Fanout],
            exchanges_isolate [Rpc],
            control_exchange_is_the_default [Rpc],
            unroutable_call_is_dropped_silently [Rpc],
            at_least_once_unroutable_is_undeliverable [Rpc, MandatoryPublish],
            at_least_once_routable_is_delivered [Rpc, MandatoryPublish],
            invalid_target_without_topic [Rpc],
            invalid_target_fanout_call [Rpc],
            listen_requires_topic_and_server [Rpc],
            rpc_payloads_unicode_nested_null [Rpc],
            rpc_payload_one_mebibyte [Rpc],
            many_casts_none_lost [Rpc],
            rpc_stop_drains_then_ends [Rpc],
            notification_round_trip_v2 [Notifications],
            notification_v1_decodes [Notifications],
            notification_retained_before_listener [Notifications, RetainsUnconsumedNotifications],
            notification_priorities_routed_to_subscribers_only [Notifications],
            notification_listener_several_targets [Notifications],
            notification_pools_each_get_a_copy [Notifications, NotificationPools],
            notification_pool_members_split [Notifications, NotificationPools],
            notification_poolless_listeners_split [Notifications],
            notification_requeue_redelivers [Notifications, Requeue],
            notification_unacked_redelivered_after_cleanup [Notifications, Requeue],
            notification_payloads_survive [Notifications],
            many_notifications_none_lost [Notifications],
            notification_stop_drains_then_ends [Notifications, RetainsUnconsumedNotifications],
            notification_invalid_targets_rejected [Notifications],
        }
    };
}

/// Generates one `#[test]` per conformance case for the driver whose
/// transport URL `$url` gives.
///
/// `$url` is an expression of type `Option<String>`, evaluated at the start
/// of every test: `Some(url)` runs the case against that URL (the driver of
/// its scheme must be registered by then, e.g. inside the expression);
/// `None` means no broker is configured: the test prints
/// `conformance: <case> SKIPPED (broker not configured)` and passes —
/// **unless the environment variable `OM_REQUIRE_BROKERS=1` is set, in which
/// case it fails**, so CI cannot silently skip the suite.
///
/// Each test builds its own multi-threaded tokio runtime, so the calling
/// crate needs no tokio test macros; it needs `om-driver-api` with feature
/// `testkit` as a dev-dependency. Cases the driver's [`Capabilities`] do not
/// cover pass after printing
/// `conformance: <case> not applicable: driver lacks <capability>`.
///
/// Use it once per test file, at module level:
///
/// ```
/// // tests/conformance.rs of a driver crate
/// fn broker_url() -> Option<String> {
///     // Register the driver (idempotent), then say where the broker is.
///     om_driver_api::register_driver(std::sync::Arc::new(om_driver_api::fake::FakeDriverFactory));
///     std::env::var("MY_DRIVER_URL").ok()
/// }
///
/// om_driver_api::conformance_tests!(broker_url());
/// # fn main() {}
/// ```
///
/// For the in-memory driver, `om_driver_api::conformance_tests!(Some("fake:///my-vhost".to_owned()));`.
#[macro_export]
macro_rules! conformance_tests {
    ($url:expr) => {
        $crate::__om_conformance_case_list!([$crate::__om_conformance_test_fns]($url));
    };
}

/// Expands the case list into `#[test]` functions. Not a stable API.
#[doc(hidden)]
#[macro_export]
macro_rules! __om_conformance_test_fns {
    ($url:expr ; $($name:ident [$($cap:ident),*]),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let url: ::std::option::Option<::std::string::String> = $url;
                $crate::testkit::__run_test(::std::stringify!($name), url);
            }
        )*
    };
}
