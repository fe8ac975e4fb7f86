//! Hostile input to the metadata parsers: documents come from servers a resource author (or a
//! remote MCP server) chose. Whatever they send, the gateway gets a typed error, never a panic.

use super::*;
use proptest::prelude::*;

/// Strings that look a bit like URLs, and plain junk.
fn urlish() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "(https?|ftp|javascript)://[a-z0-9.\\-\\[\\]:@]{0,20}(/[a-z0-9%./?#=&]{0,20})?",
        Just("https://as.example.com".to_owned()),
    ]
}

fn opt(s: impl Strategy<Value = String>) -> impl Strategy<Value = Option<String>> {
    proptest::option::of(s)
}

fn list() -> impl Strategy<Value = Option<Vec<String>>> {
    proptest::option::of(proptest::collection::vec(
        prop_oneof![
            any::<String>(),
            Just("S256".to_owned()),
            Just("code".to_owned())
        ],
        0..4,
    ))
}

prop_compose! {
    fn as_doc()(
        issuer in opt(urlish()),
        authorization_endpoint in opt(urlish()),
        token_endpoint in opt(urlish()),
        revocation_endpoint in opt(urlish()),
        jwks_uri in opt(urlish()),
        response_types_supported in list(),
        code_challenge_methods_supported in list(),
    ) -> AuthServerMetadataDocument {
        AuthServerMetadataDocument {
            issuer,
            authorization_endpoint,
            token_endpoint,
            revocation_endpoint,
            jwks_uri,
            response_types_supported,
            code_challenge_methods_supported,
            ..AuthServerMetadataDocument::default()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_are_a_serde_error_not_a_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = serde_json::from_slice::<ProtectedResourceMetadata>(&body);
        let _ = serde_json::from_slice::<AuthServerMetadataDocument>(&body);
    }

    #[test]
    fn arbitrary_json_shapes_are_a_serde_error_not_a_panic(
        resource in prop_oneof![Just("null".to_owned()), Just("1".to_owned()), Just("[]".to_owned()), Just("{}".to_owned()), any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap_or_default())],
        servers in prop_oneof![Just("null".to_owned()), Just("\"x\"".to_owned()), Just("[1]".to_owned()), Just("[\"a\",null]".to_owned())],
    ) {
        let body = format!(r#"{{"resource":{resource},"authorization_servers":{servers},"issuer":{resource},"scopes_supported":{servers}}}"#);
        let _ = serde_json::from_str::<ProtectedResourceMetadata>(&body);
        let _ = serde_json::from_str::<AuthServerMetadataDocument>(&body);
    }

    #[test]
    fn as_metadata_checks_never_panic(doc in as_doc(), expected in urlish(), insecure in any::<bool>()) {
        let _ = validate_as_metadata(&expected, &doc, insecure);
        if let Some(issuer) = doc.issuer.clone() {
            // Against its own issuer, the document passes or names what is wrong.
            match validate_as_metadata(&issuer, &doc, insecure) {
                Ok(m) => {
                    prop_assert_eq!(m.issuer, issuer);
                    prop_assert!(m.code_challenge_methods_supported.iter().any(|c| c == "S256"));
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }

    #[test]
    fn a_well_formed_document_is_accepted(host in "[a-z]{1,10}\\.example\\.com", path in "(/[a-z]{1,8}){0,2}") {
        let issuer = format!("https://{host}{path}");
        let doc = AuthServerMetadataDocument {
            issuer: Some(issuer.clone()),
            authorization_endpoint: Some(format!("{issuer}/authorize")),
            token_endpoint: Some(format!("{issuer}/token")),
            code_challenge_methods_supported: Some(vec!["S256".to_owned()]),
            ..AuthServerMetadataDocument::default()
        };
        let m = validate_as_metadata(&issuer, &doc, false).expect("accepted");
        prop_assert_eq!(m.token_endpoint.as_str(), format!("{issuer}/token"));
        let candidates = as_metadata_candidates(&Url::parse(&issuer).expect("url"));
        prop_assert!(!candidates.is_empty());
    }

    #[test]
    fn prm_checks_never_panic(resource in opt(urlish()), servers in proptest::collection::vec(urlish(), 0..3), expected in urlish()) {
        let doc = ProtectedResourceMetadata {
            resource: resource.clone(),
            authorization_servers: servers.clone(),
            ..ProtectedResourceMetadata::default()
        };
        let result = validate_prm(&doc, &expected);
        if resource.is_none() {
            prop_assert!(matches!(result, Err(MetadataError::MissingField("resource"))));
        }
        if let Some(r) = resource {
            let own = validate_prm(&doc, &r);
            if servers.is_empty() {
                prop_assert!(own.is_err());
            }
        }
    }

    #[test]
    fn issuer_endpoint_and_candidate_helpers_never_panic(s in urlish(), insecure in any::<bool>()) {
        let _ = parse_issuer(&s, insecure);
        let _ = check_endpoint("token_endpoint", &s, insecure);
        if let Ok(u) = Url::parse(&s) {
            let _ = prm_candidates(&u);
            let _ = as_metadata_candidates(&u);
            let _ = is_loopback(&u);
        }
        let clipped = clip(&s);
        prop_assert!(clipped.chars().count() <= MAX_ECHO + 1);
        prop_assert!(!clipped.chars().any(char::is_control));
    }
}
