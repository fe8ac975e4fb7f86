//! Hostile browser input: query strings, OAuth `state` (flow ids and `signin.<flow>`), and the
//! `Cookie` header the binding cookie is read from. Each is parsed into a value or refused with
//! a typed error, never a panic; well-formed values read back.

use super::*;
use crate::flows::{SIGN_IN_STATE_PREFIX, sign_in_flow};
use crate::store::{BrowserBinding, FlowId};
use axum_extra::extract::cookie::CookieJar;
use http::{HeaderMap, HeaderValue, header};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_query_strings_never_panic(raw in any::<String>()) {
        if let Err(DuplicateParameter(name)) = parse(Some(&raw)) {
            // Only a name that really occurs twice is reported.
            let again = url::form_urlencoded::parse(raw.as_bytes()).filter(|(k, _)| *k == name).count();
            prop_assert!(again >= 2);
        }
    }

    #[test]
    fn query_strings_round_trip(pairs in proptest::collection::btree_map("[^\\x00]{1,12}", "[^\\x00]{0,24}", 0..6)) {
        let raw = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&pairs).finish();
        let parsed = parse(Some(&raw)).expect("unique names");
        prop_assert_eq!(parsed.len(), pairs.len());
        for (k, v) in &pairs {
            prop_assert_eq!(parsed.get(k), Some(v));
        }
    }

    #[test]
    fn a_repeated_parameter_is_refused(name in "[a-z_]{1,10}", a in "[a-z0-9]{0,8}", b in "[a-z0-9]{0,8}", other in "[a-z]{0,5}=x&") {
        let raw = format!("{name}={a}&{other}{name}={b}");
        prop_assert_eq!(parse(Some(&raw)), Err(DuplicateParameter(name)));
    }

    #[test]
    fn arbitrary_states_never_panic(s in any::<String>()) {
        if let Some(id) = FlowId::parse(&s) {
            prop_assert_eq!(id.as_str(), s.as_str());
            prop_assert_eq!(id.short().len(), 8);
        }
        if let Some(flow) = sign_in_flow(&s) {
            let _ = FlowId::parse(flow);
        }
    }

    #[test]
    fn state_shaped_junk_is_refused(s in "[A-Za-z0-9_+/=.-]{0,60}") {
        let ok = s.len() == 43 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        prop_assert_eq!(FlowId::parse(&s).is_some(), ok);
    }

    #[test]
    fn cookie_headers_never_panic(values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..3)) {
        let mut headers = HeaderMap::new();
        for v in values {
            if let Ok(v) = HeaderValue::from_bytes(&v) {
                headers.append(header::COOKIE, v);
            }
        }
        let jar = CookieJar::from_headers(&headers);
        for c in jar.iter() {
            let _ = BrowserBinding::from_cookie_secret(c.value());
        }
    }
}

#[test]
fn generated_ids_and_sign_in_states_read_back() {
    for _ in 0..64 {
        let id = FlowId::generate();
        assert_eq!(FlowId::parse(id.as_str()).as_ref(), Some(&id));
        let state = format!("{SIGN_IN_STATE_PREFIX}{}", id.as_str());
        assert_eq!(sign_in_flow(&state).and_then(FlowId::parse), Some(id));
    }
}
