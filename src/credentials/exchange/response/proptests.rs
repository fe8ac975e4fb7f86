//! Hostile token-exchange answers: a typed [`ExchangeError`] or a checked token, never a panic;
//! a well-formed answer (opaque or a JWT of the expected issuer) reads back.

use super::*;
use proptest::prelude::*;
use secrecy::ExposeSecret as _;

const ISS: &str = "https://dex.example.com";
const AT: &str = "urn:ietf:params:oauth:token-type:access_token";

fn want(requested: Option<&str>) -> Expectations<'_> {
    Expectations {
        requested_token_type: requested,
        expected_issuer: ISS,
        now: 1_000,
    }
}

fn b64(v: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(status in 100u16..600, body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse(status, &body, want(None));
        let _ = parse(status, &body, want(Some(AT)));
    }

    #[test]
    fn arbitrary_fields_never_panic(
        token in any::<String>(),
        issued in prop_oneof![Just(AT.to_owned()), any::<String>()],
        token_type in prop_oneof![Just("Bearer".to_owned()), Just("N_A".to_owned()), any::<String>()],
        expires in prop_oneof![Just(serde_json::json!(null)), Just(serde_json::json!(-1)), Just(serde_json::json!(1.5)), Just(serde_json::json!("60")), any::<u64>().prop_map(serde_json::Value::from)],
    ) {
        let body = serde_json::json!({
            "access_token": token, "issued_token_type": issued,
            "token_type": token_type, "expires_in": expires,
        });
        if let Err(e) = parse(200, &serde_json::to_vec(&body).expect("json"), want(None)) {
            let msg = e.to_string();
            prop_assert!(msg.len() < 2048);
            let _ = e.kind();
        }
    }

    #[test]
    fn arbitrary_jwt_like_tokens_never_panic(
        header in any::<String>(),
        payload in prop_oneof![any::<String>(), any::<String>().prop_map(|iss| b64(&serde_json::json!({"iss": iss, "exp": -5})))],
        sig in "[A-Za-z0-9_=-]{0,10}",
    ) {
        let token = format!("{header}.{payload}.{sig}");
        let body = serde_json::json!({"access_token": token, "issued_token_type": AT, "token_type": "Bearer"});
        let _ = parse(200, &serde_json::to_vec(&body).expect("json"), want(None));
        let _ = jwt_claims(&token);
    }

    #[test]
    fn a_jwt_of_the_expected_issuer_reads_back(exp in 0u64..100_000, trailing_slash in any::<bool>(), expires_in in proptest::option::of(0u64..100_000)) {
        let iss = if trailing_slash { format!("{ISS}/") } else { ISS.to_owned() };
        let token = format!("{}.{}.sig", b64(&serde_json::json!({"alg": "RS256"})), b64(&serde_json::json!({"iss": iss, "exp": exp})));
        let mut body = serde_json::json!({"access_token": token, "issued_token_type": AT, "token_type": "bearer"});
        if let Some(e) = expires_in { body["expires_in"] = e.into(); }
        let issued = parse(200, &serde_json::to_vec(&body).expect("json"), want(Some(AT))).expect("accepted");
        prop_assert_eq!(issued.access_token.expose_secret(), token.as_str());
        prop_assert_eq!(issued.token_type, "Bearer");
        prop_assert_eq!(issued.lifetime, expires_in.or(Some(exp.saturating_sub(1_000))));
    }

    #[test]
    fn a_jwt_of_another_issuer_is_refused_with_its_issuer_cleaned(other in "[^\\x00]{0,300}") {
        prop_assume!(other.trim_end_matches('/') != ISS);
        let token = format!("h.{}.s", b64(&serde_json::json!({"iss": other})));
        let body = serde_json::json!({"access_token": token, "issued_token_type": AT, "token_type": "Bearer"});
        let err = parse(200, &serde_json::to_vec(&body).expect("json"), want(None)).expect_err("refused");
        match err {
            ExchangeError::IssuerMismatch { actual, .. } => {
                prop_assert!(actual.chars().count() <= 200);
                prop_assert!(!actual.chars().any(char::is_control));
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }
}
