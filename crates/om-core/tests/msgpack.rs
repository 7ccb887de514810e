//! The MessagePack entity codec (feature `msgpack`).
#![cfg(feature = "msgpack")]
#![allow(clippy::unwrap_used, clippy::result_large_err)]

use om_core::serializer::MsgPackSerializer;
use om_core::{Context, Error, Serializer, Value};
use proptest::prelude::*;
use serde_json::json;

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

#[test]
fn packed_form_and_passthrough() {
    let s = MsgPackSerializer;
    let ctx = Context::new().with("user", "u");
    let packed = s.serialize_entity(&ctx, json!({"a": 1})).unwrap();
    // {"a": 1} is fixmap(1), fixstr "a", positive fixint 1.
    assert_eq!(packed, json!({"__msgpack__": [0x81, 0xa1, 0x61, 0x01]}));
    // Values that are not packed pass through untouched.
    for v in [
        json!(1),
        json!("x"),
        json!({"k": "v"}),
        json!({"__msgpack__": [1], "other": 2}),
    ] {
        assert_eq!(s.deserialize_entity(&ctx, v.clone()).unwrap(), v);
    }
    assert_eq!(s.serialize_context(&ctx).unwrap(), ctx);
    assert_eq!(s.deserialize_context(ctx.clone()).unwrap(), ctx);
}

#[test]
fn malformed_packed_values_are_typed_errors() {
    let s = MsgPackSerializer;
    let ctx = Context::new();
    for bad in [
        json!({"__msgpack__": "not an array"}),
        json!({"__msgpack__": [256]}),
        json!({"__msgpack__": [-1]}),
        json!({"__msgpack__": ["x"]}),
        json!({"__msgpack__": []}),
        json!({"__msgpack__": [0xc1]}),
        json!({"__msgpack__": [0x92, 0x01]}),
    ] {
        let err = s.deserialize_entity(&ctx, bad.clone()).unwrap_err();
        assert!(matches!(err, Error::Serialization(_)), "{bad}: {err:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trips_any_json(v in json_value()) {
        let s = MsgPackSerializer;
        let ctx = Context::new();
        let packed = s.serialize_entity(&ctx, v.clone()).unwrap();
        prop_assert_eq!(s.deserialize_entity(&ctx, packed).unwrap(), v);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let s = MsgPackSerializer;
        let packed = json!({"__msgpack__": bytes});
        if let Err(e) = s.deserialize_entity(&Context::new(), packed) {
            prop_assert!(matches!(e, Error::Serialization(_)), "{e:?}");
        }
    }
}
