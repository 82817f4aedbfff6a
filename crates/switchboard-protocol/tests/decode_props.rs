//! Property tests: arbitrary bytes never panic the decoders, and encoding round-trips.

use bytes::Bytes;
use proptest::prelude::*;
use switchboard_protocol::{Format, Id, RawPayload, encode};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        for format in Format::ALL {
            if let Ok(m) = format.decode(&Bytes::from(bytes.clone())) {
                // Whatever decoded must re-encode and decode to the same envelope.
                let _ = m.payload.decode::<serde_json::Value>();
                if let Ok(frame) = encode(format, &m.kind, &m.payload, m.id) {
                    let again = format.decode(&frame).unwrap();
                    prop_assert_eq!(again.kind, m.kind);
                    prop_assert_eq!(again.id, m.id);
                }
            }
        }
    }

    #[test]
    fn msgpack_prefixes_of_valid_frames_never_panic(v in arb_json(), cut in 0usize..64) {
        let frame = rmp_serde::to_vec(&serde_json::json!(["t", v, 3])).unwrap();
        let end = cut.min(frame.len());
        let _ = Format::MsgPack.decode(&Bytes::copy_from_slice(&frame[..end]));
    }

    #[test]
    fn roundtrip(kind in "[a-z~.]{1,20}", v in arb_json(), id in proptest::option::of(1u64..=(1u64 << 53) - 1)) {
        let payload = RawPayload::json(&v).unwrap();
        for format in Format::ALL {
            let frame = encode(format, &kind, &payload, id.and_then(Id::new)).unwrap();
            let m = format.decode(&frame).unwrap();
            prop_assert_eq!(m.kind.as_str(), kind.as_str());
            prop_assert_eq!(m.id.map(Id::get), id);
            prop_assert_eq!(m.payload.decode::<serde_json::Value>().unwrap(), v.clone());
        }
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("[\"t\",{}{}]", "[".repeat(100_000), "]".repeat(100_000));
    // A deep payload is a valid message (the envelope skips it without recursion); decoding it
    // into a value hits the decoder's depth limit and fails cleanly.
    let m = Format::Json.decode(&Bytes::from(deep)).unwrap();
    assert!(m.payload.decode::<serde_json::Value>().is_err());
    let mut mp = vec![0x92, 0xa1, b't'];
    mp.extend(std::iter::repeat_n(0x91, 100_000));
    mp.push(0xc0);
    let m = Format::MsgPack.decode(&Bytes::from(mp)).unwrap();
    assert!(m.payload.decode::<serde_json::Value>().is_err());
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[a-zA-Z0-9 \"\\\\é]{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            proptest::collection::btree_map("[a-z]{1,6}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
