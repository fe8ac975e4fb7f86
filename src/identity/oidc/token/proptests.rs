//! Hostile bearer tokens: any string a caller puts in `Authorization` is a typed
//! [`TokenRejection`] (or a caller), never a panic, whatever its header and claims say; the
//! audience rule never accepts a server's URL on another server's path.

use super::*;
use jsonwebtoken::{DecodingKey, EncodingKey, Header};
use proptest::prelude::*;
use serde_json::json;

const ISSUER: &str = "https://idp.example.com";
/// The same throw-away P-256 test key as the unit tests above.
const KEY_PKCS8: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgWCRfvLxqkck7xEbnTJv3XSL91QVs7PrEfuA9jvbHBAmhRANCAARmOBcYpNodZIXlVShBZYgYikBDsUqFsImoetJm8jf7zkvaU6ivkSQshkrKcIuzpnfROgajz0ALHP6Q+3kD+Mce";
const X: &str = "ZjgXGKTaHWSF5VUoQWWIGIpAQ7FKhbCJqHrSZvI3-84";
const Y: &str = "S9pTqK-RJCyGSspwi7Omd9E6BqPPQAsc_pD7eQP4xx4";

fn rules() -> TokenRules {
    TokenRules {
        issuer: ISSUER.into(),
        audiences: AudiencePolicy::new(
            &["api://gateway".to_owned()],
            Some(&Url::parse("https://gw.example.com/").expect("url")),
        ),
        leeway_secs: 5,
        algorithms: vec![Algorithm::ES256],
    }
}

fn key() -> VerifyKey {
    VerifyKey {
        key: DecodingKey::from_ec_components(X, Y).expect("key"),
        algorithms: vec![Algorithm::ES256],
    }
}

const TARGET: AudienceTarget<'static> = AudienceTarget::Server {
    namespace: "team-a",
    name: "github",
    own: &[],
};

fn check(token: &str) -> Result<Verified, TokenRejection> {
    let r = rules();
    let peeked = peek(token, &r.issuer, &r.algorithms)?;
    verify(token, &peeked, &key(), &r, TARGET)
}

fn sign(claims: &serde_json::Value) -> String {
    let der = base64::engine::general_purpose::STANDARD
        .decode(KEY_PKCS8)
        .expect("der");
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k1".into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&der)).expect("sign")
}

fn b64(v: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"))
}

/// Claim values of every JSON type.
fn claim() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
        proptest::collection::vec(any::<String>(), 0..3).prop_map(serde_json::Value::from),
        Just(json!({"nested": {"deeper": [1, 2]}})),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_strings_are_rejected_not_panicking(s in any::<String>()) {
        prop_assert!(check(&s).is_err());
    }

    #[test]
    fn arbitrary_three_part_tokens_are_rejected(a in "[A-Za-z0-9_=+/-]{0,40}", b in "[A-Za-z0-9_=+/-]{0,40}", c in "[A-Za-z0-9_-]{0,40}") {
        let token = format!("{a}.{b}.{c}");
        prop_assert!(check(&token).is_err());
    }

    #[test]
    fn arbitrary_unsigned_headers_and_claims_are_rejected(
        alg in prop_oneof![Just(json!("ES256")), Just(json!("none")), Just(json!("HS256")), claim()],
        kid in claim(),
        crit in claim(),
        iss in prop_oneof![Just(json!(ISSUER)), claim()],
        sub in claim(),
        aud in claim(),
    ) {
        let header = json!({"alg": alg, "kid": kid, "crit": crit});
        let claims = json!({"iss": iss, "sub": sub, "aud": aud, "exp": 4_000_000_000u64});
        let token = format!("{}.{}.{}", b64(&header), b64(&claims), "c2ln");
        prop_assert!(check(&token).is_err());
    }

    #[test]
    fn signed_tokens_with_arbitrary_claims_never_panic(
        sub in claim(), sid in claim(), aud in claim(), exp in claim(), nbf in claim(), nonce in claim(), azp in claim(),
    ) {
        let claims = json!({"iss": ISSUER, "sub": sub, "sid": sid, "aud": aud, "exp": exp, "nbf": nbf, "nonce": nonce, "azp": azp});
        if let Ok(v) = check(&sign(&claims)) {
            // Only a well-formed caller and an accepted audience get through.
            prop_assert!(!v.caller.user.is_empty() && v.caller.user.len() <= MAX_IDENTIFIER_BYTES);
            prop_assert!(rules().audiences.accepts(&v.audiences, TARGET));
        }
    }

    #[test]
    fn a_valid_token_reads_back_its_caller(sub in "[^\\p{Cc}]{1,64}", sid in proptest::option::of("[A-Za-z0-9-]{1,32}")) {
        let mut claims = json!({"iss": ISSUER, "sub": sub, "aud": "https://gw.example.com/mcp/team-a/github", "exp": 4_000_000_000u64});
        if let Some(s) = &sid { claims["sid"] = s.clone().into(); }
        let v = check(&sign(&claims)).expect("accepted");
        prop_assert_eq!(&v.caller.user, &sub);
        prop_assert_eq!(&v.caller.session, sid.as_ref().unwrap_or(&sub));
    }

    #[test]
    fn a_server_audience_is_accepted_on_that_path_only(ns in "[a-z][a-z0-9-]{0,10}", name in "[a-z][a-z0-9-]{0,10}", ns2 in "[a-z][a-z0-9-]{0,10}", name2 in "[a-z][a-z0-9-]{0,10}") {
        let p = rules().audiences;
        let aud = vec![p.server_audience(&ns, &name).expect("base")];
        let here = AudienceTarget::Server { namespace: &ns, name: &name, own: &[] };
        let there = AudienceTarget::Server { namespace: &ns2, name: &name2, own: &[] };
        prop_assert!(p.accepts(&aud, here));
        prop_assert_eq!(p.accepts(&aud, there), ns == ns2 && name == name2);
        prop_assert!(!p.accepts(&aud, AudienceTarget::Gateway));
        prop_assert!(p.names_gateway(&aud[0]));
    }

    #[test]
    fn whatever_is_accepted_names_the_gateway_unless_it_is_a_servers_own(aud in any::<String>(), own in proptest::collection::vec(any::<String>(), 0..2)) {
        let p = rules().audiences;
        let target = AudienceTarget::Server { namespace: "team-a", name: "fw", own: &own };
        if p.accepts(std::slice::from_ref(&aud), target) {
            prop_assert!(p.names_gateway(&aud) || own.contains(&aud));
        }
    }

    #[test]
    fn caller_from_arbitrary_claims_never_panics(sub in proptest::option::of(any::<String>()), sid in proptest::option::of(any::<String>())) {
        if let Ok(c) = caller_from_claims(sub.as_deref(), sid.as_deref()) {
            prop_assert!(!c.user.chars().any(char::is_control));
            prop_assert!(!c.session.chars().any(char::is_control));
        }
    }
}
