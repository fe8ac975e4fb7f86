//! Validating one bearer JWT, without I/O: a cheap look at the unverified header and issuer
//! (so tokens that can never pass cost no key lookup and no JWKS refetch), then signature and
//! claims with `jsonwebtoken`, then the caller from `sub` / `sid`.

use crate::identity::{Caller, TokenRejection};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use std::str::FromStr as _;
use url::Url;

use super::keys::VerifyKey;

/// Largest bearer token accepted, in bytes; real access tokens are a few KiB.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Longest `sub` / `sid` accepted, in bytes (they become store keys).
pub const MAX_IDENTIFIER_BYTES: usize = 1024;

/// What the unverified token says about how to verify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Peeked {
    pub alg: Algorithm,
    pub kid: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
    crit: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawIssuer {
    iss: Option<serde_json::Value>,
}

fn decode_part<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, TokenRejection> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenRejection::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenRejection::Malformed)
}

/// Reads the header and `iss` of a compact JWS without trusting them: the algorithm must be an
/// allowed asymmetric one (never `none`, never HMAC), the issuer must be the configured one.
/// Only a rejection is ever decided from unverified data.
pub(crate) fn peek(
    token: &str,
    issuer: &str,
    allowed: &[Algorithm],
) -> Result<Peeked, TokenRejection> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenRejection::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenRejection::Malformed);
    };
    let header: RawHeader = decode_part(header)?;
    if header.crit.is_some() {
        // RFC 7515 §4.1.11: extensions we do not understand make the token invalid.
        return Err(TokenRejection::Malformed);
    }
    let alg = header
        .alg
        .as_deref()
        .and_then(|a| Algorithm::from_str(a).ok())
        .filter(|a| allowed.contains(a) && !is_hmac(*a))
        .ok_or(TokenRejection::UnsupportedAlgorithm)?;
    let claims: RawIssuer = decode_part(payload)?;
    match claims.iss {
        Some(serde_json::Value::String(iss)) if iss == issuer => {}
        Some(serde_json::Value::String(_)) => return Err(TokenRejection::WrongIssuer),
        _ => return Err(TokenRejection::InvalidClaim("iss")),
    }
    Ok(Peeked {
        alg,
        kid: header.kid,
    })
}

fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// Where a token is presented: that decides which audiences name the gateway there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudienceTarget<'a> {
    /// The gateway as a whole (`/oauth/*`, a browser sign-in): its public URL and the
    /// configured audiences only.
    Gateway,
    /// One server, `/mcp/{namespace}/{name}`: the gateway-wide audiences, that server's own URL
    /// `{public-url}/mcp/{namespace}/{name}` (its RFC 9728 `resource`), and `own`: audiences the
    /// server's resource names as its own (a `forward` server's allowed audiences, which are
    /// then valid on that path only).
    Server {
        namespace: &'a str,
        name: &'a str,
        own: &'a [String],
    },
}

/// Which `aud` values identify this gateway.
///
/// Exact, per path: a token for one server (`aud` = `{public-url}/mcp/team-a/x`) is not
/// accepted on another server's path, so a token a client obtained for one server cannot be
/// used at another, and a server's URL is never a wildcard for the whole gateway. The public
/// URL itself and the configured audiences (`--oidc-audience`) name the whole gateway and are
/// accepted everywhere: they are what an operator chose, and what IdPs without resource
/// indicators issue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AudiencePolicy {
    /// Configured audiences, accepted on every path.
    exact: Vec<String>,
    /// The public URL without query, fragment or trailing `/`.
    base: Option<String>,
}

impl AudiencePolicy {
    /// `exact` values (empty ones dropped) and, when `resource_base` is set, the gateway's
    /// public URL and its servers' URLs below it.
    pub fn new(exact: &[String], resource_base: Option<&Url>) -> Self {
        let base = resource_base.map(|u| {
            let mut u = u.clone();
            u.set_query(None);
            u.set_fragment(None);
            u.as_str().trim_end_matches('/').to_owned()
        });
        Self {
            exact: exact.iter().filter(|a| !a.is_empty()).cloned().collect(),
            base,
        }
    }

    /// Whether no audience at all would be accepted (a configuration error).
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.base.is_none()
    }

    /// Whether one of the token's audiences is accepted at `target`.
    pub fn accepts(&self, audiences: &[String], target: AudienceTarget<'_>) -> bool {
        audiences.iter().any(|aud| self.accepts_one(aud, target))
    }

    fn accepts_one(&self, aud: &str, target: AudienceTarget<'_>) -> bool {
        if self.is_gateway_wide(aud) {
            return true;
        }
        match target {
            AudienceTarget::Gateway => false,
            AudienceTarget::Server {
                namespace,
                name,
                own,
            } => {
                // An own audience that names the gateway adds nothing: a resource author
                // cannot make another server's URL valid on their path.
                self.server_audience(namespace, name).as_deref() == Some(aud)
                    || (own.iter().any(|a| !a.is_empty() && a == aud) && !self.names_gateway(aud))
            }
        }
    }

    /// The public URL (with or without its trailing `/`) or a configured audience.
    fn is_gateway_wide(&self, aud: &str) -> bool {
        if self.exact.iter().any(|a| a == aud) {
            return true;
        }
        self.base
            .as_deref()
            .and_then(|base| aud.strip_prefix(base))
            .is_some_and(|rest| rest.is_empty() || rest == "/")
    }

    /// `{public-url}/mcp/{namespace}/{name}`: the `resource` of the server's RFC 9728 metadata.
    pub fn server_audience(&self, namespace: &str, name: &str) -> Option<String> {
        self.base
            .as_ref()
            .map(|base| format!("{base}/mcp/{namespace}/{name}"))
    }

    /// Whether `aud` would let a token be used at this gateway: a configured audience, the
    /// public URL, or anything below it (every server's URL, whether registered or not).
    /// Such a token is never handed to a remote server.
    pub fn names_gateway(&self, aud: &str) -> bool {
        if self.is_gateway_wide(aud) {
            return true;
        }
        self.base
            .as_deref()
            .and_then(|base| aud.strip_prefix(base))
            .is_some_and(|rest| rest.starts_with(['/', '?', '#']))
    }
}

/// Static validation settings of one issuer.
#[derive(Debug, Clone)]
pub(crate) struct TokenRules {
    pub issuer: String,
    pub audiences: AudiencePolicy,
    pub leeway_secs: u64,
    pub algorithms: Vec<Algorithm>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// The claims we read; all optional so that a missing one is reported by name.
#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    sid: Option<String>,
    aud: Option<OneOrMany>,
    /// OpenID Connect ID tokens only (browser sign-in).
    nonce: Option<String>,
    /// OpenID Connect: the party the ID token was issued to.
    azp: Option<String>,
}

/// A validated token's caller and audiences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verified {
    pub caller: Caller,
    pub audiences: Vec<String>,
    pub nonce: Option<String>,
    pub azp: Option<String>,
}

/// Verifies signature and claims of `token` (already [`peek`]ed) with `key`.
pub(crate) fn verify(
    token: &str,
    peeked: &Peeked,
    key: &VerifyKey,
    rules: &TokenRules,
    target: AudienceTarget<'_>,
) -> Result<Verified, TokenRejection> {
    if !key.algorithms.contains(&peeked.alg) {
        return Err(TokenRejection::UnsupportedAlgorithm);
    }
    let mut validation = Validation::new(peeked.alg);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.set_issuer(&[rules.issuer.as_str()]);
    validation.leeway = rules.leeway_secs;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    // The audience rule (exact, per path: see `AudiencePolicy`) is ours, applied below.
    validation.validate_aud = false;
    let data = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
        .map_err(|e| rejection(e.kind()))?;
    let claims = data.claims;
    let audiences = match claims.aud {
        Some(OneOrMany::One(a)) => vec![a],
        Some(OneOrMany::Many(a)) => a,
        None => Vec::new(),
    };
    if !rules.audiences.accepts(&audiences, target) {
        return Err(TokenRejection::WrongAudience);
    }
    let caller = caller_from_claims(claims.sub.as_deref(), claims.sid.as_deref())?;
    Ok(Verified {
        caller,
        audiences,
        nonce: claims.nonce,
        azp: claims.azp,
    })
}

/// user = `sub`; session = `sid` when present, else the user (one session per user).
pub(crate) fn caller_from_claims(
    sub: Option<&str>,
    sid: Option<&str>,
) -> Result<Caller, TokenRejection> {
    let user = sub
        .filter(|s| valid_identifier(s))
        .ok_or(TokenRejection::InvalidClaim("sub"))?;
    let session = match sid {
        None => user,
        Some(s) if valid_identifier(s) => s,
        Some(_) => return Err(TokenRejection::InvalidClaim("sid")),
    };
    Ok(Caller::new(user, session))
}

/// Non-empty, bounded, free of control characters: safe as a store key and in logs.
fn valid_identifier(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_IDENTIFIER_BYTES && !s.chars().any(char::is_control)
}

/// A `jsonwebtoken` error as a fixed reason (its messages could echo token content).
fn rejection(kind: &ErrorKind) -> TokenRejection {
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => TokenRejection::BadSignature,
        ErrorKind::ExpiredSignature => TokenRejection::Expired,
        ErrorKind::ImmatureSignature => TokenRejection::NotYetValid,
        ErrorKind::InvalidIssuer => TokenRejection::WrongIssuer,
        ErrorKind::InvalidAudience => TokenRejection::WrongAudience,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidAlgorithmName => TokenRejection::UnsupportedAlgorithm,
        ErrorKind::MissingRequiredClaim(c) | ErrorKind::InvalidClaimFormat(c) => {
            TokenRejection::InvalidClaim(claim_name(c))
        }
        _ => TokenRejection::Malformed,
    }
}

fn claim_name(claim: &str) -> &'static str {
    match claim {
        "exp" => "exp",
        "nbf" => "nbf",
        "iss" => "iss",
        "aud" => "aud",
        "sub" => "sub",
        _ => "registered claim",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, EncodingKey, Header};
    use serde_json::json;

    /// A throw-away P-256 key (PKCS#8 DER, base64) used only by these tests.
    const TEST_KEY_PKCS8: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgWCRfvLxqkck7xEbnTJv3XSL91QVs7PrEfuA9jvbHBAmhRANCAARmOBcYpNodZIXlVShBZYgYikBDsUqFsImoetJm8jf7zkvaU6ivkSQshkrKcIuzpnfROgajz0ALHP6Q+3kD+Mce";
    const TEST_X: &str = "ZjgXGKTaHWSF5VUoQWWIGIpAQ7FKhbCJqHrSZvI3-84";
    const TEST_Y: &str = "S9pTqK-RJCyGSspwi7Omd9E6BqPPQAsc_pD7eQP4xx4";
    const ISSUER: &str = "https://idp.example.com";

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    fn sign(claims: serde_json::Value) -> String {
        let der = base64::engine::general_purpose::STANDARD
            .decode(TEST_KEY_PKCS8)
            .unwrap();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("k1".into());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(&der)).unwrap()
    }

    fn good_claims() -> serde_json::Value {
        json!({
            "iss": ISSUER,
            "sub": "alice",
            "aud": "https://gw.example.com/mcp/team-a/github",
            "exp": now() + 300,
            "iat": now(),
        })
    }

    fn key() -> VerifyKey {
        VerifyKey {
            key: DecodingKey::from_ec_components(TEST_X, TEST_Y).unwrap(),
            algorithms: vec![Algorithm::ES256],
        }
    }

    fn rules() -> TokenRules {
        TokenRules {
            issuer: ISSUER.into(),
            audiences: AudiencePolicy::new(
                &["api://gateway".to_owned()],
                Some(&Url::parse("https://gw.example.com/").unwrap()),
            ),
            leeway_secs: 5,
            algorithms: vec![Algorithm::ES256],
        }
    }

    const AT_GITHUB: AudienceTarget<'static> = AudienceTarget::Server {
        namespace: "team-a",
        name: "github",
        own: &[],
    };

    fn check(token: &str) -> Result<Verified, TokenRejection> {
        check_at(token, AT_GITHUB)
    }

    fn check_at(token: &str, target: AudienceTarget<'_>) -> Result<Verified, TokenRejection> {
        let r = rules();
        let peeked = peek(token, &r.issuer, &r.algorithms)?;
        verify(token, &peeked, &key(), &r, target)
    }

    fn with(mut claims: serde_json::Value, k: &str, v: serde_json::Value) -> serde_json::Value {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v;
        }
        claims
    }

    fn unsigned(header: serde_json::Value, claims: serde_json::Value) -> String {
        let enc = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
        format!("{}.{}.", enc(&header), enc(&claims))
    }

    #[test]
    fn valid_token_gives_user_and_session() {
        let v = check(&sign(good_claims())).unwrap();
        assert_eq!(v.caller, Caller::new("alice", "alice"));
        assert_eq!(v.audiences, ["https://gw.example.com/mcp/team-a/github"]);
        let v = check(&sign(with(good_claims(), "sid", json!("s-1")))).unwrap();
        assert_eq!(v.caller, Caller::new("alice", "s-1"));
    }

    #[test]
    fn peek_reads_kid_and_alg() {
        let p = peek(&sign(good_claims()), ISSUER, &[Algorithm::ES256]).unwrap();
        assert_eq!(
            p,
            Peeked {
                alg: Algorithm::ES256,
                kid: Some("k1".into())
            }
        );
    }

    #[test]
    fn expired_and_not_yet_valid_tokens_are_refused() {
        let expired = with(good_claims(), "exp", json!(now() - 60));
        assert_eq!(check(&sign(expired)), Err(TokenRejection::Expired));
        let within_leeway = with(good_claims(), "exp", json!(now() - 2));
        assert!(check(&sign(within_leeway)).is_ok(), "leeway applies");
        let future = with(good_claims(), "nbf", json!(now() + 120));
        assert_eq!(check(&sign(future)), Err(TokenRejection::NotYetValid));
    }

    #[test]
    fn issuer_must_match_exactly() {
        for iss in [
            json!("https://idp.example.com/"),
            json!("https://evil.example"),
        ] {
            let t = sign(with(good_claims(), "iss", iss));
            assert_eq!(check(&t), Err(TokenRejection::WrongIssuer));
        }
        let array = sign(with(good_claims(), "iss", json!([ISSUER])));
        assert_eq!(check(&array), Err(TokenRejection::InvalidClaim("iss")));
        let missing = sign(with(good_claims(), "iss", json!(null)));
        assert_eq!(check(&missing), Err(TokenRejection::InvalidClaim("iss")));
    }

    #[test]
    fn audience_must_name_the_gateway() {
        for aud in [
            json!("https://other.example.com/mcp"),
            json!("https://gw.example.com.evil/mcp/a/b"),
            json!("https://gw.example.com/other"),
            json!("https://gw.example.com/mcp/"),
            json!([]),
        ] {
            let t = sign(with(good_claims(), "aud", aud.clone()));
            assert_eq!(check(&t), Err(TokenRejection::WrongAudience), "{aud}");
        }
        for aud in [
            json!("api://gateway"),
            json!("https://gw.example.com"),
            json!("https://gw.example.com/"),
            json!(["x", "https://gw.example.com/mcp/team-a/github"]),
        ] {
            assert!(
                check(&sign(with(good_claims(), "aud", aud.clone()))).is_ok(),
                "{aud}"
            );
        }
        let missing = sign(with(good_claims(), "aud", json!(null)));
        assert_eq!(check(&missing), Err(TokenRejection::InvalidClaim("aud")));
    }

    #[test]
    fn a_server_audience_is_accepted_on_that_servers_path_only() {
        let t = sign(good_claims()); // aud: https://gw.example.com/mcp/team-a/github
        assert!(check(&t).is_ok());
        for target in [
            AudienceTarget::Server {
                namespace: "team-b",
                name: "github",
                own: &[],
            },
            AudienceTarget::Server {
                namespace: "team-a",
                name: "gitlab",
                own: &[],
            },
            AudienceTarget::Gateway,
        ] {
            assert_eq!(
                check_at(&t, target),
                Err(TokenRejection::WrongAudience),
                "{target:?}"
            );
        }
        // Deeper or decorated variants of the server's URL are not its URL.
        for aud in [
            "https://gw.example.com/mcp/team-a/github/x",
            "https://gw.example.com/mcp/team-a/github/",
            "https://gw.example.com/mcp/team-a/github?x",
            "https://gw.example.com/mcp/team-a",
        ] {
            let t = sign(with(good_claims(), "aud", json!(aud)));
            assert_eq!(check(&t), Err(TokenRejection::WrongAudience), "{aud}");
        }
        // Gateway-wide audiences are accepted everywhere, including `/oauth/*`.
        for aud in ["api://gateway", "https://gw.example.com/"] {
            let t = sign(with(good_claims(), "aud", json!(aud)));
            assert!(check_at(&t, AudienceTarget::Gateway).is_ok(), "{aud}");
        }
    }

    #[test]
    fn a_servers_own_audiences_are_accepted_on_its_path_only() {
        let own = ["mcp-cluster-b".to_owned(), String::new()];
        let at_forward = AudienceTarget::Server {
            namespace: "team-a",
            name: "fw",
            own: &own,
        };
        let t = sign(with(good_claims(), "aud", json!("mcp-cluster-b")));
        assert!(check_at(&t, at_forward).is_ok());
        assert_eq!(check(&t), Err(TokenRejection::WrongAudience));
        assert_eq!(
            check_at(&t, AudienceTarget::Gateway),
            Err(TokenRejection::WrongAudience)
        );
        // Another server's gateway URL listed as "own" is still not accepted here.
        let theirs = ["https://gw.example.com/mcp/team-b/x".to_owned()];
        let claiming = AudienceTarget::Server {
            namespace: "team-a",
            name: "fw",
            own: &theirs,
        };
        let t = sign(with(good_claims(), "aud", json!(theirs[0])));
        assert_eq!(check_at(&t, claiming), Err(TokenRejection::WrongAudience));
        let empty = sign(with(good_claims(), "aud", json!("")));
        assert_eq!(
            check_at(&empty, at_forward),
            Err(TokenRejection::WrongAudience)
        );
    }

    #[test]
    fn server_audiences_are_the_rfc9728_resources() {
        for public in [
            "https://gw.example.com",
            "https://gw.example.com/",
            "https://example.com/gw/",
            "http://127.0.0.1:8080",
        ] {
            let public = Url::parse(public).unwrap();
            let p = AudiencePolicy::new(&[], Some(&public));
            assert_eq!(
                p.server_audience("team-a", "github").unwrap(),
                crate::identity::resource_for(&public, "/mcp/team-a/github"),
            );
            assert!(p.accepts(
                &[crate::identity::resource_for(&public, "")],
                AudienceTarget::Gateway
            ));
        }
    }

    #[test]
    fn names_gateway_covers_everything_the_gateway_could_accept() {
        let p = rules().audiences;
        for aud in [
            "api://gateway",
            "https://gw.example.com",
            "https://gw.example.com/",
            "https://gw.example.com/mcp/team-a/github",
            "https://gw.example.com/mcp/unregistered/x",
            "https://gw.example.com/oauth/status",
            "https://gw.example.com?x",
        ] {
            assert!(p.names_gateway(aud), "{aud}");
        }
        for aud in [
            "https://gw.example.com.evil/mcp/a/b",
            "https://gw.example.comx",
            "mcp-cluster-b",
            "https://cluster-b.example.com/mcp",
            "",
        ] {
            assert!(!p.names_gateway(aud), "{aud}");
        }
    }

    #[test]
    fn audience_policy_without_base_is_exact() {
        let p = AudiencePolicy::new(&["a".to_owned(), String::new()], None);
        assert!(p.accepts(&["a".to_owned()], AudienceTarget::Gateway));
        assert!(
            !p.accepts(&[String::new()], AT_GITHUB),
            "empty configured values are dropped"
        );
        assert!(AudiencePolicy::new(&[String::new()], None).is_empty());
        assert_eq!(p.server_audience("a", "b"), None);
    }

    #[test]
    fn missing_or_bad_subject_is_refused() {
        let t = sign(with(good_claims(), "sub", json!(null)));
        assert_eq!(check(&t), Err(TokenRejection::InvalidClaim("sub")));
        let t = sign(with(good_claims(), "sub", json!("")));
        assert_eq!(check(&t), Err(TokenRejection::InvalidClaim("sub")));
        let t = sign(with(good_claims(), "sid", json!("a\nb")));
        assert_eq!(check(&t), Err(TokenRejection::InvalidClaim("sid")));
        let t = sign(with(good_claims(), "exp", json!(null)));
        assert_eq!(check(&t), Err(TokenRejection::InvalidClaim("exp")));
    }

    #[test]
    fn none_and_hmac_algorithms_are_refused_before_any_key_lookup() {
        let none = unsigned(json!({"alg": "none", "kid": "k1"}), good_claims());
        assert_eq!(check(&none), Err(TokenRejection::UnsupportedAlgorithm));
        let hmac = jsonwebtoken::encode(
            &Header {
                kid: Some("k1".into()),
                ..Header::new(Algorithm::HS256)
            },
            &good_claims(),
            &EncodingKey::from_secret(TEST_X.as_bytes()),
        )
        .unwrap();
        let all = [Algorithm::HS256, Algorithm::ES256];
        assert_eq!(
            peek(&hmac, ISSUER, &all),
            Err(TokenRejection::UnsupportedAlgorithm),
            "HMAC is refused even when listed"
        );
        let no_alg = unsigned(json!({"kid": "k1"}), good_claims());
        assert_eq!(check(&no_alg), Err(TokenRejection::UnsupportedAlgorithm));
    }

    #[test]
    fn key_must_allow_the_algorithm() {
        let t = sign(good_claims());
        let r = rules();
        let p = peek(&t, ISSUER, &[Algorithm::ES256]).unwrap();
        let rsa_only = VerifyKey {
            algorithms: vec![Algorithm::RS256],
            ..key()
        };
        assert_eq!(
            verify(&t, &p, &rsa_only, &r, AT_GITHUB),
            Err(TokenRejection::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn tampered_signature_is_refused() {
        let t = sign(good_claims());
        let (head, _) = t.rsplit_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&with(good_claims(), "sub", json!("mallory"))).unwrap());
        let (header, _) = head.split_once('.').unwrap();
        let sig = t.rsplit('.').next().unwrap();
        let forged = format!("{header}.{forged_payload}.{sig}");
        assert_eq!(check(&forged), Err(TokenRejection::BadSignature));
    }

    #[test]
    fn garbage_is_malformed() {
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        for t in [
            "",
            "garbage",
            "a.b",
            "a.b.c.d.e",
            "!!!.e30.x",
            long.as_str(),
        ] {
            assert_eq!(check(t), Err(TokenRejection::Malformed), "{t:.20}");
        }
        let crit = unsigned(json!({"alg": "ES256", "crit": ["exp"]}), good_claims());
        assert_eq!(check(&crit), Err(TokenRejection::Malformed));
    }

    #[test]
    fn caller_from_claims_prefers_sid() {
        assert_eq!(
            caller_from_claims(Some("u"), Some("s")).unwrap(),
            Caller::new("u", "s")
        );
        assert_eq!(
            caller_from_claims(Some("u"), None).unwrap(),
            Caller::new("u", "u")
        );
        let long = "x".repeat(MAX_IDENTIFIER_BYTES + 1);
        assert_eq!(
            caller_from_claims(Some(&long), None),
            Err(TokenRejection::InvalidClaim("sub"))
        );
        assert_eq!(
            caller_from_claims(Some("u"), Some("")),
            Err(TokenRejection::InvalidClaim("sid"))
        );
    }
}

#[cfg(test)]
mod proptests;
