//! Hostile JSON-RPC bodies from MCP clients: single messages, batches, deep nesting. Every body
//! is an envelope or a typed [`EnvelopeError`] (a JSON-RPC error code to answer with), never a
//! panic or unbounded recursion; a well-formed request reads back its id and method.

use super::*;
use proptest::prelude::*;
use serde_json::json;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("jsonrpc".to_owned()),
                    Just("id".to_owned()),
                    Just("method".to_owned()),
                    Just("params".to_owned()),
                    Just("result".to_owned()),
                    Just("error".to_owned()),
                    Just("_meta".to_owned()),
                    Just("name".to_owned()),
                    Just("capabilities".to_owned()),
                    Just("protocolVersion".to_owned()),
                    any::<String>(),
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn code_of(e: &EnvelopeError) -> i64 {
    e.code()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_are_an_envelope_or_a_typed_error(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        for result in [parse_envelope(&body).map(|_| ()), parse_batch(&body).map(|_| ())] {
            if let Err(e) = result {
                prop_assert!([PARSE_ERROR, INVALID_REQUEST].contains(&code_of(&e)));
                prop_assert!(e.to_response()["error"]["code"].is_i64());
            }
        }
    }

    #[test]
    fn arbitrary_json_is_an_envelope_or_a_typed_error(v in json_value(), batch in any::<bool>()) {
        let v = if batch { Value::Array(vec![v.clone(), v]) } else { v };
        let body = serde_json::to_vec(&v).expect("json");
        let _ = parse_envelope(&body);
        if let Ok(members) = parse_batch(&body) {
            prop_assert!(!members.is_empty());
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow(depth in 100usize..5000, open in prop_oneof![Just('['), Just('{')]) {
        let body = match open {
            '[' => format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
            _ => format!("{}1{}", r#"{"params":"#.repeat(depth), "}".repeat(depth)),
        };
        let _ = parse_envelope(body.as_bytes());
        let _ = parse_batch(body.as_bytes());
    }

    #[test]
    fn a_request_reads_back_its_id_and_method(
        id in prop_oneof![any::<i64>().prop_map(Value::from), "[ -~]{0,20}".prop_map(Value::from)],
        method in "[a-z/_]{1,20}",
        tool in proptest::option::of("[a-z_]{1,12}"),
    ) {
        let mut msg = json!({"jsonrpc": "2.0", "id": id, "method": method});
        if let Some(t) = &tool { msg["params"] = json!({"name": t}); }
        let e = parse_envelope(&serde_json::to_vec(&msg).expect("json")).expect("parses");
        prop_assert_eq!(e.id, Some(id.clone()));
        prop_assert_eq!(e.method.as_deref(), Some(method.as_str()));
        prop_assert!(!e.is_notification && !e.is_batch);
        if method == "tools/call" {
            prop_assert_eq!(e.tool_name, tool);
        }
        let batch = parse_batch(&serde_json::to_vec(&json!([msg.clone(), msg])).expect("json")).expect("batch");
        prop_assert_eq!(batch.len(), 2);
        prop_assert_eq!(&batch[0].id, &Some(id));
    }
}
