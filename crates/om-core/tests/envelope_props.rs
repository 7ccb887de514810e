//! Property tests of the envelope codec, and float formatting against
//! Python's `json.dumps` for 1500 doubles (`tests/fixtures/floats.json`).
#![allow(clippy::unwrap_used, clippy::result_large_err)]

use om_core::envelope::{self, Format, MESSAGE_KEY, VERSION_KEY};
use om_core::{Error, JsonObject, Value};
use proptest::prelude::*;

#[test]
fn floats_are_written_like_python() {
    let fx: Value = serde_json::from_str(include_str!("fixtures/floats.json")).unwrap();
    let values = fx["values"].as_array().unwrap();
    assert!(values.len() >= 1500);
    for v in values {
        let bits = u64::from_str_radix(v["bits"].as_str().unwrap(), 16).unwrap();
        let f = f64::from_bits(bits);
        let ours = envelope::to_python_json_string(&f).unwrap();
        assert_eq!(ours, v["json"].as_str().unwrap(), "bits {bits:016x}");
        // Also as a JSON number inside a message, after a decode.
        let decoded: Value = serde_json::from_str(&ours).unwrap();
        assert_eq!(envelope::to_python_json_string(&decoded).unwrap(), ours);
    }
}

/// Arbitrary JSON values with finite floats, unicode strings and keys.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((any::<String>(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = JsonObject> {
    proptest::collection::vec((any::<String>(), json_value()), 0..8)
        .prop_map(|kv| kv.into_iter().collect())
}

/// Objects whose keys are often context entries or a driver's reserved keys.
fn flat_message() -> impl Strategy<Value = JsonObject> {
    let key = prop_oneof![
        any::<String>(),
        "_context_[a-z_]{0,4}",
        Just("_context_".to_owned()),
        Just("_msg_id".to_owned()),
        Just("_reply_q".to_owned()),
        Just("_timeout".to_owned()),
    ];
    proptest::collection::vec((key, json_value()), 0..10).prop_map(|kv| kv.into_iter().collect())
}

fn is_decode_error(e: &Error) -> bool {
    matches!(
        e,
        Error::MalformedMessage(_) | Error::UnsupportedEnvelopeVersion(_)
    )
}

fn keys(m: &JsonObject) -> Vec<&String> {
    m.keys().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Err(e) = envelope::decode(&bytes) {
            prop_assert!(is_decode_error(&e), "{e:?}");
        }
    }

    #[test]
    fn decode_never_panics_on_arbitrary_json(v in json_value()) {
        let bytes = serde_json::to_vec(&v).unwrap();
        match envelope::decode(&bytes) {
            Ok(m) => prop_assert!(v.is_object(), "decoded a non-object: {v}, {m:?}"),
            Err(e) => prop_assert!(is_decode_error(&e), "{e:?}"),
        }
    }

    #[test]
    fn decode_never_panics_on_envelope_shapes(
        version in prop_oneof![
            Just(Value::from("2.0")), Just(Value::from("2.0.0")), Just(Value::from("2.1")),
            Just(Value::from("x")), Just(Value::from(2.0)), Just(Value::Null), json_value(),
        ],
        message in prop_oneof![
            json_value().prop_map(|v| Value::String(v.to_string())),
            any::<String>().prop_map(Value::String),
            json_value(),
        ],
    ) {
        let mut env = JsonObject::new();
        env.insert(VERSION_KEY.into(), version.clone());
        env.insert(MESSAGE_KEY.into(), message);
        let bytes = serde_json::to_vec(&env).unwrap();
        match envelope::decode(&bytes) {
            // A number 2.0 is read as "2.0" (Python would fail on it).
            Ok(_) => prop_assert!(
                matches!(version.as_str(), Some("2.0" | "2.0.0")) || version.as_f64() == Some(2.0),
                "accepted version {version}"
            ),
            Err(e) => prop_assert!(is_decode_error(&e), "{e:?}"),
        }
    }

    #[test]
    fn encode_then_decode_round_trips(m in json_object()) {
        let body = envelope::encode(&m, Format::V2).unwrap();
        prop_assert!(body.is_ascii());
        let back = envelope::decode(&body).unwrap();
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(keys(&back), keys(&m));
        // Encoding again gives the same bytes.
        prop_assert_eq!(envelope::encode(&back, Format::V2).unwrap(), body);

        // 1.0 too, unless the object looks like an envelope itself.
        if !(m.contains_key(VERSION_KEY) && m.contains_key(MESSAGE_KEY)) {
            let body = envelope::encode(&m, Format::V1).unwrap();
            let back = envelope::decode(&body).unwrap();
            prop_assert_eq!(&back, &m);
            prop_assert_eq!(keys(&back), keys(&m));
        }
    }

    #[test]
    fn one_pass_envelope_equals_escaping_the_encoded_message(m in json_object()) {
        // The 2.0 body is written in one pass; it must be byte for byte the
        // envelope object encoded with the message as a JSON string.
        let mut env = JsonObject::new();
        env.insert(VERSION_KEY.into(), Value::from("2.0"));
        env.insert(MESSAGE_KEY.into(), Value::String(envelope::to_python_json_string(&m).unwrap()));
        prop_assert_eq!(
            String::from_utf8(envelope::encode(&m, Format::V2).unwrap()).unwrap(),
            envelope::to_python_json_string(&env).unwrap()
        );
    }

    #[test]
    fn decode_split_equals_decode_then_unpack(m in flat_message(), v1 in any::<bool>()) {
        let body = envelope::encode(&m, if v1 { Format::V1 } else { Format::V2 }).unwrap();
        let reserved = ["_msg_id", "_reply_q", "_timeout"];
        let Ok(mut expected) = envelope::decode(&body) else {
            // A 1.0 body that looks like an envelope: both must fail.
            prop_assert!(envelope::decode_split(&body, &reserved).is_err());
            return Ok(());
        };
        let ctxt = envelope::unpack_context_flat(&mut expected);
        let taken = reserved.map(|k| expected.shift_remove(k));
        let split = envelope::decode_split(&body, &reserved).unwrap();
        prop_assert_eq!(&split.ctxt, &ctxt);
        prop_assert_eq!(keys(&split.ctxt), keys(&ctxt));
        prop_assert_eq!(&split.reserved, &taken);
        prop_assert_eq!(&split.message, &expected);
        prop_assert_eq!(keys(&split.message), keys(&expected));
        prop_assert_eq!(split.format, if v1 { Format::V1 } else { Format::V2 });
    }

    #[test]
    fn encode_flat_equals_packing_the_map(
        m in flat_message(),
        ctxt in json_object(),
        id in any::<String>(),
        v1 in any::<bool>(),
    ) {
        let format = if v1 { Format::V1 } else { Format::V2 };
        let (id, t) = (Value::String(id), Value::from(5));
        let extra = [("_msg_id", &id), ("_timeout", &t)];
        let mut full = m.clone();
        for (k, v) in extra {
            full.insert(k.to_owned(), v.clone());
        }
        envelope::pack_context_flat(&mut full, &ctxt);
        prop_assert_eq!(
            String::from_utf8(envelope::encode_flat(&m, &extra, &ctxt, format).unwrap()).unwrap(),
            String::from_utf8(envelope::encode(&full, format).unwrap()).unwrap()
        );
    }

    #[test]
    fn python_json_of_a_float_reads_back_exactly(f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
        let text = envelope::to_python_json_string(&f).unwrap();
        let back: f64 = text.parse().unwrap();
        prop_assert_eq!(back.to_bits(), f.to_bits(), "{}", text);
    }
}
