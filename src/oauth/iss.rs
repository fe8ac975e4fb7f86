//! RFC 9207 authorization-response issuer identification, exactly per the MCP rules: a present
//! `iss` must equal the issuer recorded with the flow by simple string comparison; an absent
//! `iss` is refused only when the server advertised that it sends one. This is what defeats
//! mix-up attacks against a client (like this gateway) that talks to many servers.

/// Why the callback's `iss` was refused. On a mismatch the callback's `error` and
/// `error_description` must not be acted on or displayed either.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssError {
    #[error("the authorization response lacks `iss` although the server advertises it")]
    Missing,
    #[error(
        "the authorization response came from a different issuer than the one the flow started with"
    )]
    Mismatch,
}

/// Checks the callback's `iss` (`received`) against the flow's issuer (`expected`);
/// `advertised` is the server's `authorization_response_iss_parameter_supported`.
pub fn check_iss(expected: &str, advertised: bool, received: Option<&str>) -> Result<(), IssError> {
    match received {
        Some(iss) if iss == expected => Ok(()),
        Some(_) => Err(IssError::Mismatch),
        None if advertised => Err(IssError::Missing),
        None => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ISS: &str = "https://idp.example.com";

    #[test]
    fn present_and_equal_is_accepted() {
        assert_eq!(check_iss(ISS, true, Some(ISS)), Ok(()));
        assert_eq!(check_iss(ISS, false, Some(ISS)), Ok(()));
    }

    #[test]
    fn present_and_different_is_refused_without_normalisation() {
        assert_eq!(
            check_iss(ISS, true, Some("https://evil.example.com")),
            Err(IssError::Mismatch)
        );
        assert_eq!(
            check_iss(ISS, false, Some("https://idp.example.com/")),
            Err(IssError::Mismatch)
        );
        assert_eq!(
            check_iss(ISS, true, Some("https://IDP.example.com")),
            Err(IssError::Mismatch)
        );
        assert_eq!(check_iss(ISS, true, Some("")), Err(IssError::Mismatch));
    }

    #[test]
    fn absent_and_advertised_is_refused() {
        assert_eq!(check_iss(ISS, true, None), Err(IssError::Missing));
    }

    #[test]
    fn absent_and_not_advertised_is_accepted() {
        assert_eq!(check_iss(ISS, false, None), Ok(()));
    }
}
