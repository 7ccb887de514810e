//! Without a broker URL a generated test passes as SKIPPED, unless
//! `OM_REQUIRE_BROKERS=1`, in which case it fails. One test function only:
//! it changes the process environment.

use om_driver_api::testkit::{__run_test, brokers_required, cases};

#[test]
fn unconfigured_broker_skips_or_fails_as_required() {
    let saved = std::env::var("OM_REQUIRE_BROKERS").ok();
    let name = cases()[0].name;

    std::env::remove_var("OM_REQUIRE_BROKERS");
    assert!(!brokers_required());
    __run_test(name, None);

    std::env::set_var("OM_REQUIRE_BROKERS", "1");
    assert!(brokers_required());
    let failed = std::panic::catch_unwind(|| __run_test(name, None));
    assert!(
        failed.is_err(),
        "with OM_REQUIRE_BROKERS=1 a missing broker must fail the test"
    );

    match saved {
        Some(v) => std::env::set_var("OM_REQUIRE_BROKERS", v),
        None => std::env::remove_var("OM_REQUIRE_BROKERS"),
    }
}
