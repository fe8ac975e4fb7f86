//! Turning the issuer's JWKS document into verification keys. Each key gets the algorithms it
//! may verify, derived from the key itself (its type and curve, narrowed by its `alg` when
//! published) and the configured allow-list: so a token can never pick an algorithm its key was
//! not made for (no `none`, no HMAC with a public key used as the secret).

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::collections::HashMap;
use std::str::FromStr as _;

/// Every asymmetric signature algorithm `jsonwebtoken` verifies; the default allow-list.
pub const ASYMMETRIC_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// One usable verification key.
#[derive(Clone)]
pub(crate) struct VerifyKey {
    pub key: DecodingKey,
    pub algorithms: Vec<Algorithm>,
}

/// Why a JWKS document could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeysError {
    #[error("the JWKS document is not a JSON object with a `keys` array")]
    NotAJwks,
    #[error("the JWKS document holds no usable signature key")]
    NoUsableKey,
}

/// The issuer's usable keys, by `kid`.
#[derive(Clone, Default)]
pub(crate) struct KeySet {
    by_kid: HashMap<String, VerifyKey>,
    /// Keys published without a `kid`; used only when the set holds exactly one key.
    without_kid: Vec<VerifyKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<&str> = self.by_kid.keys().map(String::as_str).collect();
        kids.sort_unstable();
        f.debug_struct("KeySet")
            .field("kids", &kids)
            .field("without_kid", &self.without_kid.len())
            .finish()
    }
}

#[derive(serde::Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

impl KeySet {
    /// Parses a JWKS body, keeping the keys usable for signature verification with `allowed`
    /// algorithms. Keys of unknown types, encryption keys and symmetric keys are skipped (one
    /// odd key must not take the whole set down).
    pub fn parse(body: &[u8], allowed: &[Algorithm]) -> Result<Self, KeysError> {
        let doc: JwksDocument = serde_json::from_slice(body).map_err(|_| KeysError::NotAJwks)?;
        let mut set = KeySet::default();
        for raw in doc.keys {
            let Ok(jwk) = serde_json::from_value::<Jwk>(raw) else {
                continue;
            };
            let Some(key) = verify_key(&jwk, allowed) else {
                continue;
            };
            match jwk.common.key_id {
                Some(kid) if !kid.is_empty() => {
                    set.by_kid.entry(kid).or_insert(key);
                }
                _ => set.without_kid.push(key),
            }
        }
        if set.len() == 0 {
            return Err(KeysError::NoUsableKey);
        }
        Ok(set)
    }

    /// The key for a token's `kid`. A token without `kid` is accepted only when the issuer
    /// publishes exactly one key (otherwise which key signed it would be a guess).
    pub fn get(&self, kid: Option<&str>) -> Option<&VerifyKey> {
        match kid {
            Some(kid) => self.by_kid.get(kid),
            None if self.len() == 1 => self.by_kid.values().chain(&self.without_kid).next(),
            None => None,
        }
    }

    pub fn len(&self) -> usize {
        self.by_kid.len() + self.without_kid.len()
    }
}

/// The verification key and its algorithms, or `None` when the JWK is not a signature key we
/// can use.
fn verify_key(jwk: &Jwk, allowed: &[Algorithm]) -> Option<VerifyKey> {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    if let Some(ops) = &jwk.common.key_operations
        && !ops.iter().any(|op| matches!(op, KeyOperations::Verify))
    {
        return None;
    }
    let mut algorithms = family_algorithms(&jwk.algorithm);
    if let Some(published) = jwk.common.key_algorithm {
        // An `alg` we cannot verify with (e.g. RSA-OAEP) marks a key not meant for signatures.
        let alg = Algorithm::from_str(&published.to_string()).ok()?;
        algorithms.retain(|a| *a == alg);
    }
    algorithms.retain(|a| allowed.contains(a));
    if algorithms.is_empty() {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(VerifyKey { key, algorithms })
}

/// The asymmetric algorithms a key of this type and curve can verify. Symmetric (`oct`) keys get
/// none: the gateway never shares a secret with the issuer.
fn family_algorithms(params: &AlgorithmParameters) -> Vec<Algorithm> {
    match params {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => Vec::new(),
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const X: &str = "ZjgXGKTaHWSF5VUoQWWIGIpAQ7FKhbCJqHrSZvI3-84";
    const Y: &str = "S9pTqK-RJCyGSspwi7Omd9E6BqPPQAsc_pD7eQP4xx4";

    fn ec(kid: Option<&str>, extra: serde_json::Value) -> serde_json::Value {
        let mut key = json!({"kty": "EC", "crv": "P-256", "x": X, "y": Y});
        if let Some(kid) = kid {
            key["kid"] = json!(kid);
        }
        if let serde_json::Value::Object(extra) = extra {
            for (k, v) in extra {
                key[k] = v;
            }
        }
        key
    }

    fn parse(keys: Vec<serde_json::Value>) -> Result<KeySet, KeysError> {
        KeySet::parse(
            &serde_json::to_vec(&json!({ "keys": keys })).unwrap(),
            &ASYMMETRIC_ALGORITHMS,
        )
    }

    #[test]
    fn ec_key_verifies_es256_only() {
        let set = parse(vec![ec(Some("a"), json!({"use": "sig", "alg": "ES256"}))]).unwrap();
        assert_eq!(set.get(Some("a")).unwrap().algorithms, [Algorithm::ES256]);
        assert!(set.get(Some("b")).is_none());
    }

    #[test]
    fn symmetric_encryption_and_odd_keys_are_skipped() {
        let set = parse(vec![
            json!({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}),
            ec(Some("enc"), json!({"use": "enc"})),
            ec(Some("oaep"), json!({"alg": "RSA-OAEP"})),
            ec(Some("wrap"), json!({"key_ops": ["wrapKey"]})),
            json!({"kty": "weird", "kid": "w"}),
            ec(Some("good"), json!({})),
        ])
        .unwrap();
        assert_eq!(set.len(), 1);
        assert!(set.get(Some("good")).is_some());
        for kid in ["hmac", "enc", "oaep", "wrap", "w"] {
            assert!(set.get(Some(kid)).is_none(), "{kid} must be skipped");
        }
    }

    #[test]
    fn published_alg_outside_the_key_family_leaves_no_algorithm() {
        // An EC key claiming RS256 cannot verify anything.
        let err = parse(vec![ec(Some("a"), json!({"alg": "RS256"}))]).unwrap_err();
        assert_eq!(err, KeysError::NoUsableKey);
    }

    #[test]
    fn allow_list_narrows_the_algorithms() {
        let body = serde_json::to_vec(&json!({ "keys": [ec(Some("a"), json!({}))] })).unwrap();
        assert_eq!(
            KeySet::parse(&body, &[Algorithm::RS256]).unwrap_err(),
            KeysError::NoUsableKey
        );
    }

    #[test]
    fn token_without_kid_uses_the_only_key() {
        let one = parse(vec![ec(None, json!({}))]).unwrap();
        assert!(one.get(None).is_some());
        let two = parse(vec![ec(Some("a"), json!({})), ec(Some("b"), json!({}))]).unwrap();
        assert!(two.get(None).is_none(), "ambiguous without kid");
    }

    #[test]
    fn documents_that_are_not_jwks_are_refused() {
        for body in [&b"[]"[..], b"{}", b"not json", b"{\"keys\": 3}"] {
            assert_eq!(
                KeySet::parse(body, &ASYMMETRIC_ALGORITHMS).unwrap_err(),
                KeysError::NotAJwks
            );
        }
        assert_eq!(parse(vec![]).unwrap_err(), KeysError::NoUsableKey);
    }
}
