//! kombu's JSON type markers in bare (1.0, `messaging`) bodies.
//!
//! Python's rabbit driver hands a 1.0 notification to kombu as a dict, and
//! kombu's JSON encoder writes each value that JSON cannot hold as
//! `{"__type__": <type>, "__value__": <value>}` (a Python listener's kombu
//! turns it back into the object). In a 2.0 body the same values arrive as
//! strings, converted by oslo.serialization before kombu sees the message.
//! om hands endpoints the 2.0 strings for both formats, so a payload reads
//! the same whichever driver the Python notifier was configured with:
//!
//! | kombu marker | 1.0 `__value__` | what om hands out (as in 2.0) |
//! |---|---|---|
//! | `datetime` | `isoformat()` | `%Y-%m-%dT%H:%M:%S.%f` (microseconds always, no UTC offset) |
//! | `date` | `isoformat()` | the same string |
//! | `time`, `decimal`, `bytes` | a string | the same string |
//! | `uuid` | `{"hex": …}` | the dashed form, `str(uuid)` |
//!
//! Anything else (kombu's `base64` bytes, unknown types, markers whose
//! value does not have the expected shape) is left as it came.

use om_driver_api::om_core::{JsonObject, Value};

const TYPE_KEY: &str = "__type__";
const VALUE_KEY: &str = "__value__";

/// Replaces kombu's type markers anywhere in `obj` by their 2.0 strings.
pub(crate) fn plain_values(obj: &mut JsonObject) {
    for value in obj.values_mut() {
        plain(value);
    }
}

fn plain(value: &mut Value) {
    match value {
        Value::Object(obj) => {
            // Inner objects first, as kombu's object hook sees them.
            plain_values(obj);
            if let Some(plain) = marker_value(obj) {
                *value = plain;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(plain),
        _ => {}
    }
}

/// The 2.0 value of a marker object; `None` when `obj` is not one om
/// knows.
fn marker_value(obj: &JsonObject) -> Option<Value> {
    if obj.len() != 2 {
        return None;
    }
    let kind = obj.get(TYPE_KEY)?.as_str()?;
    let value = obj.get(VALUE_KEY)?;
    let text = match kind {
        "datetime" => perfect_time(value.as_str()?)?,
        "date" | "time" | "decimal" | "bytes" => value.as_str()?.to_owned(),
        "uuid" => dashed_uuid(value.get("hex")?.as_str()?)?,
        _ => return None,
    };
    Some(Value::String(text))
}

/// `datetime.isoformat()` (`YYYY-MM-DDTHH:MM:SS[.ffffff][±HH:MM]`) as
/// oslo.serialization writes a datetime: `%Y-%m-%dT%H:%M:%S.%f`.
fn perfect_time(iso: &str) -> Option<String> {
    let (seconds, rest) = (iso.get(..19)?, iso.get(19..)?);
    let shape_ok = seconds.bytes().enumerate().all(|(i, b)| match i {
        4 | 7 => b == b'-',
        10 => b == b'T',
        13 | 16 => b == b':',
        _ => b.is_ascii_digit(),
    });
    if !shape_ok {
        return None;
    }
    let fraction = match rest.strip_prefix('.') {
        Some(f) => {
            let digits = f.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 6 {
                return None;
            }
            &f[..digits]
        }
        None => "",
    };
    Some(format!("{seconds}.{fraction:0<6}"))
}

/// 32 hex digits as `8-4-4-4-12`, lower case (Python's `str(uuid)`).
fn dashed_uuid(hex: &str) -> Option<String> {
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let h = hex.to_ascii_lowercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plained(v: Value) -> Value {
        let mut obj = JsonObject::new();
        obj.insert("v".into(), v);
        plain_values(&mut obj);
        obj.remove("v").unwrap()
    }

    fn marker(kind: &str, value: Value) -> Value {
        json!({"__type__": kind, "__value__": value})
    }

    #[test]
    fn datetimes_read_as_oslo_serialization_writes_them() {
        for (iso, v2) in [
            ("2024-01-02T03:04:05.000006", "2024-01-02T03:04:05.000006"),
            ("2024-01-02T03:04:05", "2024-01-02T03:04:05.000000"),
            ("2024-01-02T03:04:05.5", "2024-01-02T03:04:05.500000"),
            (
                "2024-01-02T03:04:05.123456+02:00",
                "2024-01-02T03:04:05.123456",
            ),
            ("2024-01-02T03:04:05-05:30", "2024-01-02T03:04:05.000000"),
        ] {
            assert_eq!(plained(marker("datetime", json!(iso))), json!(v2), "{iso}");
        }
    }

    #[test]
    fn other_kombu_types() {
        assert_eq!(
            plained(marker("date", json!("2024-01-02"))),
            json!("2024-01-02")
        );
        assert_eq!(
            plained(marker("time", json!("03:04:05"))),
            json!("03:04:05")
        );
        assert_eq!(plained(marker("decimal", json!("1.50"))), json!("1.50"));
        assert_eq!(plained(marker("bytes", json!("abc"))), json!("abc"));
        assert_eq!(
            plained(marker(
                "uuid",
                json!({"hex": "0123456789ABCDEF0123456789abcdef"})
            )),
            json!("01234567-89ab-cdef-0123-456789abcdef")
        );
    }

    #[test]
    fn markers_are_found_at_any_depth() {
        let d = marker("datetime", json!("2024-01-02T03:04:05"));
        assert_eq!(
            plained(json!({"a": [d.clone(), {"b": d}], "n": 1})),
            json!({
                "a": ["2024-01-02T03:04:05.000000", {"b": "2024-01-02T03:04:05.000000"}],
                "n": 1
            })
        );
    }

    #[test]
    fn anything_else_is_left_alone() {
        for v in [
            marker("base64", json!("AAEC")),
            marker("unknown", json!("x")),
            marker("datetime", json!("yesterday")),
            marker("datetime", json!(5)),
            marker("uuid", json!({"hex": "xyz"})),
            json!({"__type__": "date", "__value__": "2024-01-02", "extra": 1}),
            json!({"__type__": "date"}),
        ] {
            assert_eq!(plained(v.clone()), v);
        }
    }
}
