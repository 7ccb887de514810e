//! The driver conformance suite against a real RabbitMQ (`OM_RABBIT_URL`).
//! Without the variable every case prints SKIPPED and passes, unless
//! `OM_REQUIRE_BROKERS=1`.

fn broker_url() -> Option<String> {
    om_driver_rabbit::register();
    std::env::var("OM_RABBIT_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
}

om_driver_api::conformance_tests!(broker_url());
