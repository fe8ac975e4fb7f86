//! Why a presented bearer token was refused. Each reason is a fixed message: nothing from the
//! token itself (which an attacker controls and which may be a real credential) is echoed.

/// The specific reason a bearer JWT failed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    #[error("it is not a well-formed JWT")]
    Malformed,
    #[error("its signing algorithm is not accepted")]
    UnsupportedAlgorithm,
    #[error("it names no key id, or a key the issuer does not publish")]
    UnknownKey,
    #[error("its signature is invalid")]
    BadSignature,
    #[error("it has expired")]
    Expired,
    #[error("it is not valid yet")]
    NotYetValid,
    #[error("it was issued by another issuer")]
    WrongIssuer,
    #[error("it was issued for another audience")]
    WrongAudience,
    #[error("a required claim is missing or invalid: {0}")]
    InvalidClaim(&'static str),
}
