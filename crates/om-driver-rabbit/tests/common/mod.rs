//! Helpers shared by the broker tests: environment, rabbitmqctl, raw lapin.
#![allow(dead_code)]

use lapin::{Connection, ConnectionProperties};
use om_driver_api::om_core::{JsonObject, TransportUrl, Value};
use om_driver_api::DriverConfig;
use om_driver_rabbit::RabbitDriver;

pub mod broker;
pub use broker::*;

/// A fresh lowercase id for unique names.
pub fn uniq() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Opens a driver directly (not through the registry) with options.
pub fn driver(url: &str, options: &[(&str, &str)]) -> RabbitDriver {
    let mut config = DriverConfig::new(TransportUrl::parse(url).expect("url"));
    for (k, v) in options {
        config.options.insert((*k).to_owned(), (*v).to_owned());
    }
    RabbitDriver::open(&config).expect("open driver")
}

/// The user name and password of a `rabbit://` test URL's first host
/// (`guest` for either when the URL gives none).
pub fn credentials(url: &str) -> (String, String) {
    let u = TransportUrl::parse(url).expect("url");
    let h = &u.hosts[0];
    (
        h.username.clone().unwrap_or_else(|| "guest".into()),
        h.password
            .as_ref()
            .map(|p| p.expose().to_owned())
            .unwrap_or_else(|| "guest".into()),
    )
}

/// The AMQP URI of a `rabbit://` test URL (single host).
pub fn amqp_uri(url: &str) -> String {
    let u = TransportUrl::parse(url).expect("url");
    let h = &u.hosts[0];
    let vhost = match u.virtual_host.as_deref() {
        None | Some("") | Some("/") => "%2f".to_owned(),
        Some(v) => v.to_owned(),
    };
    let (user, password) = credentials(url);
    format!(
        "amqp://{user}:{password}@{}:{}/{vhost}",
        h.hostname,
        h.port.unwrap_or(5672),
    )
}

/// A raw lapin connection to the test broker.
pub async fn raw(url: &str) -> Connection {
    Connection::connect(&amqp_uri(url), ConnectionProperties::default())
        .await
        .expect("raw lapin connection")
}

/// A JSON object from a `json!` value.
pub fn obj(v: Value) -> JsonObject {
    v.as_object().cloned().expect("an object")
}
