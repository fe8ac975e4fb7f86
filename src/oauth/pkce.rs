//! PKCE S256 (RFC 7636), via the `oauth2` crate's generator (32 bytes from a CSPRNG →
//! 43-character base64url verifier). The verifier stays server-side with the flow state.

use oauth2::{PkceCodeChallenge, PkceCodeVerifier};
use secrecy::{ExposeSecret, SecretString};

/// A fresh verifier and its S256 challenge.
#[derive(Debug)]
pub struct PkcePair {
    pub verifier: SecretString,
    pub challenge: String,
}

impl PkcePair {
    pub fn generate() -> Self {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        Self {
            verifier: SecretString::from(verifier.secret().as_str()),
            challenge: challenge.as_str().to_owned(),
        }
    }
}

/// The verifier is not one RFC 7636 allows (43–128 unreserved characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("PKCE verifier is not 43-128 unreserved characters")]
pub struct InvalidVerifier;

/// The S256 challenge of `verifier`. Checked first, because `oauth2` panics on a bad length.
pub fn challenge_for(verifier: &SecretString) -> Result<String, InvalidVerifier> {
    let v = verifier.expose_secret();
    let unreserved = |c: char| c.is_ascii_alphanumeric() || "-._~".contains(c);
    if !(43..=128).contains(&v.len()) || !v.chars().all(unreserved) {
        return Err(InvalidVerifier);
    }
    let verifier = PkceCodeVerifier::new(v.to_owned());
    Ok(PkceCodeChallenge::from_code_verifier_sha256(&verifier)
        .as_str()
        .to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_pair_is_consistent_and_random() {
        let a = PkcePair::generate();
        let b = PkcePair::generate();
        assert_eq!(a.verifier.expose_secret().len(), 43);
        assert_eq!(challenge_for(&a.verifier).unwrap(), a.challenge);
        assert_ne!(a.verifier.expose_secret(), b.verifier.expose_secret());
        assert_ne!(a.challenge, b.challenge);
        assert!(!format!("{a:?}").contains(a.verifier.expose_secret()));
    }

    #[test]
    fn rfc7636_appendix_b_vector() {
        let v = SecretString::from("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(
            challenge_for(&v).unwrap(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn bad_verifiers_are_refused_not_panicked_on() {
        for bad in ["short", &"a".repeat(129), &format!("{}!", "a".repeat(43))] {
            assert_eq!(
                challenge_for(&SecretString::from(bad)),
                Err(InvalidVerifier)
            );
        }
    }
}
