//! The bearer token of a request (RFC 6750 §2.1: `Authorization: Bearer <token>`).

use super::{IdentityError, TokenRejection};
use http::HeaderMap;
use http::header::AUTHORIZATION;

/// The token of the request's single `Authorization: Bearer` header. No header, or another
/// scheme, is [`IdentityError::MissingToken`]; several `Authorization` headers, an empty token or
/// one with characters outside RFC 6750's `b64token` set are a malformed token.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, IdentityError> {
    let malformed = || IdentityError::Rejected(TokenRejection::Malformed);
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(IdentityError::MissingToken);
    };
    if values.next().is_some() {
        return Err(malformed());
    }
    let value = value.to_str().map_err(|_| malformed())?;
    let Some((scheme, token)) = value.split_once(' ') else {
        return if value.eq_ignore_ascii_case("bearer") {
            Err(malformed())
        } else {
            Err(IdentityError::MissingToken)
        };
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(IdentityError::MissingToken);
    }
    let token = token.trim_matches(' ');
    if token.is_empty() || !token.bytes().all(is_b64token_byte) {
        return Err(malformed());
    }
    Ok(token)
}

/// RFC 6750 `b64token`: `ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/"`, then `"="*`.
fn is_b64token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn reads_the_bearer_token() {
        assert_eq!(
            bearer_token(&headers(&["Bearer abc.def.ghi"])).unwrap(),
            "abc.def.ghi"
        );
        assert_eq!(
            bearer_token(&headers(&["bearer  a-b_c~d+e/f=="])).unwrap(),
            "a-b_c~d+e/f=="
        );
    }

    #[test]
    fn missing_or_other_scheme_is_missing_token() {
        for h in [
            headers(&[]),
            headers(&["Basic dXNlcjpwdw=="]),
            headers(&["Negotiate"]),
        ] {
            assert!(matches!(bearer_token(&h), Err(IdentityError::MissingToken)));
        }
    }

    #[test]
    fn bad_values_are_malformed() {
        for h in [
            headers(&["Bearer"]),
            headers(&["Bearer "]),
            headers(&["Bearer a b"]),
            headers(&["Bearer a\"b"]),
            headers(&["Bearer a", "Bearer b"]),
        ] {
            assert!(
                matches!(
                    bearer_token(&h),
                    Err(IdentityError::Rejected(TokenRejection::Malformed))
                ),
                "{h:?}"
            );
        }
    }
}
