//! The driver conformance suite of `om_driver_api::testkit` against a real
//! Kafka-protocol broker (`OM_KAFKA_URL`), with the default options
//! (`auto_offset_reset=latest`, as oslo.messaging). RPC cases are not
//! applicable (the driver has no RPC capability), and so are requeue cases
//! and those needing notifications kept for a listener that did not exist
//! yet (see `conformance_earliest.rs` for those).
//!
//! Each case gets its own `consumer_group`, so the pool-less listeners of
//! cases running in parallel do not share (and rebalance) one group.

fn kafka_url() -> Option<String> {
    om_driver_kafka::register();
    let base = std::env::var("OM_KAFKA_URL")
        .ok()
        .filter(|u| !u.is_empty())?;
    let sep = if base.contains('?') { '&' } else { '?' };
    let group = format!("omc_group_{}", om_driver_api::om_core::uuid_hex());
    Some(format!("{base}{sep}consumer_group={group}"))
}

om_driver_api::conformance_tests!(kafka_url());
