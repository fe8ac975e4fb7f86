//! Hostile token-endpoint answers: whatever an authorization server sends, the gateway gets a
//! typed [`TokenError`] (or a token), never a panic; a well-formed answer reads back exactly.

use super::*;
use proptest::prelude::*;
use secrecy::ExposeSecret as _;

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number)),
        any::<String>().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("access_token".to_owned()),
                    Just("token_type".to_owned()),
                    Just("expires_in".to_owned()),
                    Just("refresh_token".to_owned()),
                    Just("error".to_owned()),
                    Just("scope".to_owned()),
                    any::<String>(),
                ],
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(status in 100u16..600, body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_token_response(status, &body);
        let _ = parse_revocation_response(status, &body);
    }

    #[test]
    fn arbitrary_json_never_panics(status in prop_oneof![Just(200u16), Just(400u16), 100u16..600], v in json_value()) {
        let body = serde_json::to_vec(&v).expect("serialises");
        if let Err(e) = parse_token_response(status, &body) {
            // Messages are bounded whatever the server sent.
            prop_assert!(e.to_string().len() < 2048, "{}", e);
            let _ = e.kind();
        }
    }

    #[test]
    fn a_well_formed_answer_reads_back(
        token in "[A-Za-z0-9._~+/-]{1,64}",
        refresh in proptest::option::of("[A-Za-z0-9._~-]{1,64}"),
        expires in proptest::option::of(0u64..10_000_000),
        scope in proptest::option::of("[a-z:]{1,10}( [a-z:]{1,10}){0,3}"),
        bearer in prop_oneof![Just("Bearer"), Just("bearer"), Just("BEARER")],
    ) {
        let mut obj = serde_json::json!({"access_token": token, "token_type": bearer});
        if let Some(r) = &refresh { obj["refresh_token"] = r.clone().into(); }
        if let Some(e) = expires { obj["expires_in"] = e.into(); }
        if let Some(s) = &scope { obj["scope"] = s.clone().into(); }
        let t = parse_token_response(200, &serde_json::to_vec(&obj).expect("json")).expect("accepted");
        prop_assert_eq!(t.access_token.expose_secret(), token.as_str());
        prop_assert_eq!(t.token_type, "Bearer");
        prop_assert_eq!(t.expires_in, expires);
        prop_assert_eq!(t.refresh_token.as_ref().map(|r| r.expose_secret().to_owned()), refresh);
        prop_assert_eq!(t.scope, scope);
    }

    #[test]
    fn an_error_answer_is_a_rejection(code in "[a-z_]{1,20}", status in prop_oneof![Just(200u16), Just(400u16), Just(401u16)]) {
        let body = serde_json::to_vec(&serde_json::json!({"error": code})).expect("json");
        let err = parse_token_response(status, &body).expect_err("refused");
        let is_rejection = matches!(err, TokenError::Rejected { .. });
        prop_assert!(is_rejection, "{:?}", err);
    }

    #[test]
    fn clean_is_bounded_and_free_of_controls(s in any::<String>(), max in 0usize..64) {
        let c = clean(&s, max);
        prop_assert!(!c.chars().any(char::is_control));
        prop_assert!(c.chars().count() <= max + 1);
    }
}
