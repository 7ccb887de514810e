//! The driver conformance suite against RabbitMQ's AMQP 1.0 plugin
//! (`OM_AMQP1_BROKER_URL`), with legacy addressing. Without the variable
//! every case prints SKIPPED and passes, unless `OM_REQUIRE_BROKERS=1`.
#![allow(clippy::unwrap_used)]

mod support;

fn broker_url() -> Option<String> {
    om_driver_amqp1::register();
    support::broker_url("conformance_broker")
        .map(|u| support::with_options(&u, &[("addressing_mode", "legacy")]))
}

om_driver_api::conformance_tests!(broker_url());
