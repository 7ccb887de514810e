//! [`NotificationFilter`]: which notifications an endpoint receives.

use om_driver_api::om_core::{Error, JsonObject, Result, Value};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The regular expressions of a [`NotificationFilter`], as plain strings
/// (serde-friendly: it can come from configuration). Build the filter with
/// [`NotificationFilterSpec::build`] or through [`NotificationFilter::builder`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotificationFilterSpec {
    /// Context key → regex.
    pub context: BTreeMap<String, String>,
    /// Regex for `publisher_id`.
    pub publisher_id: Option<String>,
    /// Regex for `event_type`.
    pub event_type: Option<String>,
    /// Metadata key (`message_id`, `timestamp`) → regex.
    pub metadata: BTreeMap<String, String>,
    /// Payload key → regex (the payload must be a JSON object).
    pub payload: BTreeMap<String, String>,
}

impl NotificationFilterSpec {
    /// Compiles the regexes. Errors: `Configuration`, naming the field.
    pub fn build(self) -> Result<NotificationFilter> {
        let one = |field: &str, p: &str| compile(field, p);
        let many = |field: &str, m: &BTreeMap<String, String>| -> Result<Vec<(String, Regex)>> {
            m.iter()
                .map(|(k, p)| Ok((k.clone(), compile(&format!("{field}[{k:?}]"), p)?)))
                .collect()
        };
        Ok(NotificationFilter {
            publisher_id: self
                .publisher_id
                .as_deref()
                .map(|p| one("publisher_id", p))
                .transpose()?,
            event_type: self
                .event_type
                .as_deref()
                .map(|p| one("event_type", p))
                .transpose()?,
            context: many("context", &self.context)?,
            metadata: many("metadata", &self.metadata)?,
            payload: many("payload", &self.payload)?,
            spec: self,
        })
    }
}

/// Compiles `pattern` with Python `re.match` semantics: anchored at the
/// start only (a `$` in the pattern anchors the end).
fn compile(field: &str, pattern: &str) -> Result<Regex> {
    Regex::new(&format!("^(?:{pattern})")).map_err(|e| {
        Error::Configuration(format!(
            "invalid regular expression for notification filter {field}: {e}"
        ))
    })
}

/// Builds a [`NotificationFilter`] field by field.
#[derive(Debug, Clone, Default)]
#[must_use = "call build() to get the filter"]
pub struct NotificationFilterBuilder {
    spec: NotificationFilterSpec,
}

impl NotificationFilterBuilder {
    /// Regex the `publisher_id` must match.
    pub fn publisher_id(mut self, regex: impl Into<String>) -> Self {
        self.spec.publisher_id = Some(regex.into());
        self
    }

    /// Regex the `event_type` must match.
    pub fn event_type(mut self, regex: impl Into<String>) -> Self {
        self.spec.event_type = Some(regex.into());
        self
    }

    /// Context `key` must exist and be a string matching `regex`.
    pub fn context(mut self, key: impl Into<String>, regex: impl Into<String>) -> Self {
        self.spec.context.insert(key.into(), regex.into());
        self
    }

    /// Metadata `key` (`message_id` or `timestamp`) must exist and be a
    /// string matching `regex`.
    pub fn metadata(mut self, key: impl Into<String>, regex: impl Into<String>) -> Self {
        self.spec.metadata.insert(key.into(), regex.into());
        self
    }

    /// Payload `key` must exist and be a string matching `regex`.
    pub fn payload(mut self, key: impl Into<String>, regex: impl Into<String>) -> Self {
        self.spec.payload.insert(key.into(), regex.into());
        self
    }

    /// Compiles the filter. Errors: `Configuration` for an invalid regex.
    pub fn build(self) -> Result<NotificationFilter> {
        self.spec.build()
    }
}

/// Filters the notifications an endpoint receives, as oslo.messaging's
/// `NotificationFilter`.
///
/// A notification matches when every criterion given matches:
///
/// * each regex is applied with "match at start" semantics (Python's
///   `re.match`: not anchored at the end unless the pattern ends with `$`);
/// * the tested value must be a string: a non-string value, `null`
///   included, never matches;
/// * for `context`, `metadata` and `payload`, each key must be present
///   (and the payload must be an object).
///
/// Regexes use the `regex` crate's syntax, which is Python's for common
/// patterns but has no look-around or back-references.
///
/// ```
/// use om_notify::NotificationFilter;
/// use serde_json::{json, Value};
/// let f = NotificationFilter::builder().publisher_id("^compute.*").context("tenant", "^abc$").build()?;
/// let ctxt = json!({"tenant": "abc"});
/// let ctxt = ctxt.as_object().unwrap();
/// let meta = serde_json::Map::new();
/// assert!(f.matches(ctxt, &json!("compute.host1"), &json!("x"), &meta, &Value::Null));
/// assert!(!f.matches(ctxt, &json!("network.host1"), &json!("x"), &meta, &Value::Null));
/// assert!(!f.matches(&serde_json::Map::new(), &json!("compute.host1"), &json!("x"), &meta, &Value::Null));
/// # Ok::<(), om_driver_api::om_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct NotificationFilter {
    publisher_id: Option<Regex>,
    event_type: Option<Regex>,
    context: Vec<(String, Regex)>,
    metadata: Vec<(String, Regex)>,
    payload: Vec<(String, Regex)>,
    spec: NotificationFilterSpec,
}

impl NotificationFilter {
    /// A builder with no criterion (matching everything).
    pub fn builder() -> NotificationFilterBuilder {
        NotificationFilterBuilder::default()
    }

    /// The criteria as written.
    pub fn spec(&self) -> &NotificationFilterSpec {
        &self.spec
    }

    /// Whether a notification matches, given its context, `publisher_id`,
    /// `event_type`, metadata (`{"message_id", "timestamp"}`) and payload as
    /// received (`publisher_id` and `event_type` are raw JSON values so that
    /// a `null` or non-string value is seen as such).
    pub fn matches(
        &self,
        context: &JsonObject,
        publisher_id: &Value,
        event_type: &Value,
        metadata: &JsonObject,
        payload: &Value,
    ) -> bool {
        self.matches_parts(
            context,
            publisher_id.as_str(),
            event_type.as_str(),
            |key| metadata.get(key).and_then(Value::as_str),
            payload,
        )
    }

    /// [`NotificationFilter::matches`] on values already taken apart:
    /// `None` for a `publisher_id` or `event_type` that is not a string,
    /// and the metadata as a lookup of its string values.
    pub(crate) fn matches_parts<'m>(
        &self,
        context: &JsonObject,
        publisher_id: Option<&str>,
        event_type: Option<&str>,
        metadata: impl Fn(&str) -> Option<&'m str>,
        payload: &Value,
    ) -> bool {
        single(publisher_id, self.publisher_id.as_ref())
            && single(event_type, self.event_type.as_ref())
            && dict(&self.context, |k| context.get(k).and_then(Value::as_str))
            && dict(&self.metadata, metadata)
            && dict(&self.payload, |k| {
                payload.as_object()?.get(k).and_then(Value::as_str)
            })
    }
}

/// Whether `value` is a string the regex matches (always, without regex).
fn single(value: Option<&str>, regex: Option<&Regex>) -> bool {
    match regex {
        None => true,
        Some(re) => value.is_some_and(|s| re.is_match(s)),
    }
}

/// Whether every `(key, regex)` names a string the regex matches; `lookup`
/// gives a key's value when it is present and a string.
fn dict<'a>(regexes: &[(String, Regex)], lookup: impl Fn(&str) -> Option<&'a str>) -> bool {
    regexes
        .iter()
        .all(|(k, re)| lookup(k).is_some_and(|s| re.is_match(s)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> JsonObject {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn match_at_start_not_end() {
        let f = NotificationFilter::builder()
            .event_type("compute")
            .build()
            .expect("valid");
        let (c, m) = (JsonObject::new(), JsonObject::new());
        assert!(f.matches(
            &c,
            &Value::Null,
            &json!("compute.instance"),
            &m,
            &Value::Null
        ));
        assert!(!f.matches(&c, &Value::Null, &json!("xcompute"), &m, &Value::Null));
        let f = NotificationFilter::builder()
            .event_type("a|b$")
            .build()
            .expect("valid");
        assert!(f.matches(&c, &Value::Null, &json!("azz"), &m, &Value::Null));
        assert!(f.matches(&c, &Value::Null, &json!("b"), &m, &Value::Null));
        assert!(!f.matches(&c, &Value::Null, &json!("bz"), &m, &Value::Null));
    }

    #[test]
    fn non_strings_and_missing_keys_never_match() {
        let f = NotificationFilter::builder()
            .payload("state", "^active$")
            .metadata("timestamp", "2024")
            .build()
            .expect("valid");
        let c = JsonObject::new();
        let meta = obj(json!({"message_id": "m", "timestamp": "2024-01-01 00:00:00"}));
        assert!(f.matches(
            &c,
            &Value::Null,
            &Value::Null,
            &meta,
            &json!({"state": "active"})
        ));
        assert!(!f.matches(&c, &Value::Null, &Value::Null, &meta, &json!({"state": 1})));
        assert!(!f.matches(
            &c,
            &Value::Null,
            &Value::Null,
            &meta,
            &json!({"other": "active"})
        ));
        assert!(!f.matches(&c, &Value::Null, &Value::Null, &meta, &json!("active")));
        let meta_null = obj(json!({"message_id": "m", "timestamp": null}));
        assert!(!f.matches(
            &c,
            &Value::Null,
            &Value::Null,
            &meta_null,
            &json!({"state": "active"})
        ));
        let p = NotificationFilter::builder()
            .publisher_id(".*")
            .build()
            .expect("valid");
        assert!(!p.matches(&c, &Value::Null, &Value::Null, &meta, &Value::Null));
        assert!(!p.matches(&c, &json!(5), &Value::Null, &meta, &Value::Null));
    }

    #[test]
    fn bad_regex_is_a_configuration_error() {
        let e = NotificationFilter::builder()
            .context("k", "(")
            .build()
            .unwrap_err();
        assert_eq!(e.oslo_name(), "ConfigurationError");
        assert!(e.to_string().contains("context"), "{e}");
        let spec: NotificationFilterSpec =
            serde_json::from_value(json!({"event_type": "^x", "context": {"a": "b"}}))
                .expect("valid spec");
        let f = spec.clone().build().expect("valid");
        assert_eq!(f.spec(), &spec);
    }
}
