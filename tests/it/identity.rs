//! Caller identity against the real IdP (node-oidc-provider): `oidc` mode validates the IdP's
//! JWT access tokens through its JWKS and refuses expired, forged, foreign and malformed ones;
//! the 401 helper and the gateway's RFC 9728 metadata point clients at the issuer; `header`
//! mode reads trusted proxy headers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcp_oauth_operator::identity::{
    AudienceTarget, Authenticator, Caller, HeaderConfig, IdentityError, OidcConfig, SignInClient,
    TokenRejection, unauthorized,
};
use mcp_oauth_operator::net::{OutboundClient, OutboundConfig};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use testkit::{Idp, IdpOptions, free_port, jwt_payload};
use url::Url;

/// The IdP's key id (tests/infra/node/idp.mjs).
const IDP_KID: &str = "test-es256";
/// A throw-away P-256 key (PKCS#8 DER, base64) that is NOT the IdP's: signatures made with it
/// must be refused even under the IdP's key id.
const FOREIGN_KEY_PKCS8: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgWCRfvLxqkck7xEbnTJv3XSL91QVs7PrEfuA9jvbHBAmhRANCAARmOBcYpNodZIXlVShBZYgYikBDsUqFsImoetJm8jf7zkvaU6ivkSQshkrKcIuzpnfROgajz0ALHP6Q+3kD+Mce";
const SERVER_PATH: &str = "/mcp/team-a/github";
/// Where the tests' tokens are presented: the server of [`SERVER_PATH`].
const AT_SERVER: AudienceTarget<'static> = AudienceTarget::Server {
    namespace: "team-a",
    name: "github",
    own: &[],
};

/// The gateway's public URL in these tests (nothing listens there; tokens are issued for it).
fn public_url() -> Url {
    Url::parse(&format!("http://127.0.0.1:{}", free_port())).expect("public URL")
}

fn resource(public: &Url) -> String {
    format!("{}{}", public.as_str().trim_end_matches('/'), SERVER_PATH)
}

fn client() -> OutboundClient {
    OutboundClient::new(OutboundConfig::default()).expect("outbound client")
}

fn config(idp: &Idp, public: &Url) -> OidcConfig {
    let mut cfg = OidcConfig::new(idp.issuer());
    cfg.resource_base = Some(public.clone());
    cfg.leeway = Duration::ZERO;
    cfg
}

fn oidc(idp: &Idp, public: &Url) -> Authenticator {
    Authenticator::oidc(config(idp, public), client()).expect("oidc authenticator")
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header value"),
    );
    h
}

/// An ES256 JWT access token of `login` with `aud` = `resource` (see `Idp::user_access_token`).
async fn access_token(idp: &Idp, login: &str, resource: &str) -> String {
    idp.user_access_token(login, resource).await
}

/// `claims` signed with the foreign key under key id `kid`.
fn forge(claims: &Value, kid: &str) -> String {
    let der = STANDARD.decode(FOREIGN_KEY_PKCS8).expect("test key");
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_ec_der(&der)).expect("sign")
}

fn unsigned(header: &Value, claims: &Value) -> String {
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"));
    format!("{}.{}.", enc(header), enc(claims))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

async fn rejection(auth: &Authenticator, headers: &HeaderMap) -> IdentityError {
    match auth.authenticate_at(headers, AT_SERVER).await {
        Ok(a) => panic!("expected a rejection, got caller {:?}", a.caller),
        Err(e) => e,
    }
}

/// JWKS requests the IdP has answered (`/test/stats`).
async fn idp_jwks_requests(idp: &Idp) -> u64 {
    let mut origin = Url::parse(idp.issuer()).expect("issuer URL");
    origin.set_path("/test/stats");
    let stats: Value = reqwest::get(origin)
        .await
        .expect("GET /test/stats")
        .json()
        .await
        .expect("stats JSON");
    stats["jwks_requests"].as_u64().expect("jwks_requests")
}

fn www_authenticate(resp: &axum::response::Response) -> String {
    resp.headers()
        .get(header::WWW_AUTHENTICATE)
        .expect("WWW-Authenticate")
        .to_str()
        .expect("ASCII")
        .to_owned()
}

async fn body_json(resp: axum::response::Response) -> Value {
    let bytes = axum::body::to_bytes(resp.into_body(), 64 * 1024)
        .await
        .expect("body");
    serde_json::from_slice(&bytes).expect("JSON body")
}

#[tokio::test]
async fn valid_tokens_identify_user_and_session() {
    let idp = Idp::start(IdpOptions::default()).await;
    let public = public_url();
    let auth = oidc(&idp, &public);
    assert!(auth.requires_bearer());
    assert_eq!(auth.issuer(), Some(idp.issuer()));

    let alice_token = access_token(&idp, "alice", &resource(&public)).await;
    let claims = jwt_payload(&alice_token);
    let sid = claims["sid"]
        .as_str()
        .expect("the IdP puts sid in access tokens");
    let alice = auth
        .authenticate_at(&bearer(&alice_token), AT_SERVER)
        .await
        .expect("alice");
    assert_eq!(alice.caller, Caller::new("alice", sid));
    assert_eq!(alice.audiences, [resource(&public)]);
    assert_eq!(
        alice.bearer.as_ref().map(|b| b.expose_secret().to_owned()),
        Some(alice_token.clone()),
        "the caller's own token is kept for forward/exchange"
    );

    // Another login of alice (another browser) is another session of the same user.
    let again = access_token(&idp, "alice", &resource(&public)).await;
    let alice2 = auth
        .authenticate_at(&bearer(&again), AT_SERVER)
        .await
        .expect("alice again");
    assert_eq!(alice2.caller.user, "alice");
    assert_ne!(alice2.caller.session, alice.caller.session);

    let bob_token = access_token(&idp, "bob", &resource(&public)).await;
    let bob = auth
        .authenticate_at(&bearer(&bob_token), AT_SERVER)
        .await
        .expect("bob");
    assert_eq!(bob.caller.user, "bob");
    assert_ne!(bob.caller.session, alice.caller.session);

    // A token for one server is that server's only: not another server's, not `/oauth/*`.
    let elsewhere = AudienceTarget::Server {
        namespace: "team-b",
        name: "github",
        own: &[],
    };
    for target in [elsewhere, AudienceTarget::Gateway] {
        let err = auth
            .authenticate_at(&bearer(&alice_token), target)
            .await
            .expect_err("another resource");
        assert!(
            matches!(err, IdentityError::Rejected(TokenRejection::WrongAudience)),
            "{target:?}: {err:?}"
        );
    }

    // A token for the gateway as a whole (its public URL) is accepted too.
    let whole = access_token(&idp, "carol", public.as_str()).await;
    let carol = auth
        .authenticate_at(&bearer(&whole), AT_SERVER)
        .await
        .expect("carol");
    assert_eq!(carol.caller.user, "carol");
    let carol = auth
        .authenticate(&bearer(&whole))
        .await
        .expect("carol at /oauth/*");
    assert_eq!(carol.caller.user, "carol");
    assert_eq!(
        carol.gateway_audiences,
        [public.to_string()],
        "never forwarded"
    );
    idp.stop().await;
}

#[tokio::test]
async fn expired_token_is_refused_with_invalid_token_challenge() {
    let idp = Idp::start(IdpOptions {
        access_token_ttl: Some(1),
        ..IdpOptions::default()
    })
    .await;
    let public = public_url();
    let auth = oidc(&idp, &public);
    let token = access_token(&idp, "alice", &resource(&public)).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let err = rejection(&auth, &bearer(&token)).await;
    assert!(
        matches!(err, IdentityError::Rejected(TokenRejection::Expired)),
        "{err:?}"
    );
    assert!(
        !err.to_string().contains(&token[..20]),
        "no token in errors"
    );

    let resp = unauthorized(&public, SERVER_PATH, &err);
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let expected_metadata = format!(
        "{}/.well-known/oauth-protected-resource{SERVER_PATH}",
        public.as_str().trim_end_matches('/')
    );
    assert_eq!(
        www_authenticate(&resp),
        format!("Bearer resource_metadata=\"{expected_metadata}\", error=\"invalid_token\"")
    );
    assert_eq!(
        resp.headers()
            .get(header::CACHE_CONTROL)
            .map(|v| v.as_bytes()),
        Some(&b"no-store"[..])
    );
    let body = body_json(resp).await;
    assert_eq!(body["error"], "invalid_token");
    assert_eq!(
        body["error_description"],
        "the bearer token was rejected: it has expired"
    );
    idp.stop().await;
}

#[tokio::test]
async fn forged_foreign_and_misaddressed_tokens_are_refused() {
    let idp = Idp::start(IdpOptions::default()).await;
    let public = public_url();
    let auth = oidc(&idp, &public);
    let genuine = access_token(&idp, "alice", &resource(&public)).await;
    let claims = jwt_payload(&genuine);

    // The IdP's claims and key id, signed with another key.
    let forged = forge(&claims, IDP_KID);
    let err = rejection(&auth, &bearer(&forged)).await;
    assert!(
        matches!(err, IdentityError::Rejected(TokenRejection::BadSignature)),
        "{err:?}"
    );

    // Another audience: a token the IdP issued for some other resource.
    let other = access_token(&idp, "alice", "http://127.0.0.1:1/mcp").await;
    let err = rejection(&auth, &bearer(&other)).await;
    assert!(
        matches!(err, IdentityError::Rejected(TokenRejection::WrongAudience)),
        "{err:?}"
    );
    // ...which is fine for a gateway configured to accept that audience.
    let mut cfg = config(&idp, &public);
    cfg.audiences = vec!["http://127.0.0.1:1/mcp".to_owned()];
    let lenient = Authenticator::oidc(cfg, client()).expect("oidc");
    assert_eq!(
        lenient
            .authenticate_at(&bearer(&other), AT_SERVER)
            .await
            .expect("configured audience")
            .caller
            .user,
        "alice"
    );

    // Another issuer: a genuine token of a second IdP.
    let idp2 = Idp::start(IdpOptions::default()).await;
    let foreign = access_token(&idp2, "alice", &resource(&public)).await;
    let err = rejection(&auth, &bearer(&foreign)).await;
    assert!(
        matches!(err, IdentityError::Rejected(TokenRejection::WrongIssuer)),
        "{err:?}"
    );
    idp2.stop().await;

    // The right keys, but an issuer string that differs from the tokens' `iss` (exact match).
    let mut cfg = config(&idp, &public);
    cfg.issuer = idp.issuer().replace("127.0.0.1", "localhost");
    cfg.jwks_uri = Some(Url::parse(&format!("{}/jwks", idp.issuer())).expect("jwks URL"));
    let other_issuer = Authenticator::oidc(cfg, client()).expect("oidc");
    let err = rejection(&other_issuer, &bearer(&genuine)).await;
    assert!(
        matches!(err, IdentityError::Rejected(TokenRejection::WrongIssuer)),
        "{err:?}"
    );

    // The genuine token still passes: the refusals above were about the tokens.
    assert!(
        auth.authenticate_at(&bearer(&genuine), AT_SERVER)
            .await
            .is_ok()
    );
    idp.stop().await;
}

#[tokio::test]
async fn none_hmac_garbage_and_missing_tokens_are_refused() {
    let idp = Idp::start(IdpOptions::default()).await;
    let public = public_url();
    let auth = oidc(&idp, &public);
    let genuine = access_token(&idp, "alice", &resource(&public)).await;
    let claims = jwt_payload(&genuine);

    let none = unsigned(&json!({"alg": "none", "kid": IDP_KID}), &claims);
    let err = rejection(&auth, &bearer(&none)).await;
    assert!(
        matches!(
            err,
            IdentityError::Rejected(TokenRejection::UnsupportedAlgorithm)
        ),
        "{err:?}"
    );

    // HS256 keyed with the IdP's public key material (the classic algorithm confusion).
    let jwks: Value = reqwest::get(format!("{}/jwks", idp.issuer()))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("jwks JSON");
    let x = jwks["keys"][0]["x"].as_str().expect("EC x");
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some(IDP_KID.to_owned());
    let hmac =
        jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(x.as_bytes())).expect("sign");
    let err = rejection(&auth, &bearer(&hmac)).await;
    assert!(
        matches!(
            err,
            IdentityError::Rejected(TokenRejection::UnsupportedAlgorithm)
        ),
        "{err:?}"
    );

    let err = rejection(&auth, &bearer("garbage")).await;
    assert!(
        matches!(err, IdentityError::Rejected(TokenRejection::Malformed)),
        "{err:?}"
    );
    let resp = unauthorized(&public, SERVER_PATH, &err);
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(www_authenticate(&resp).ends_with(", error=\"invalid_token\""));

    let err = rejection(&auth, &HeaderMap::new()).await;
    assert!(matches!(err, IdentityError::MissingToken), "{err:?}");
    let resp = unauthorized(&public, SERVER_PATH, &err);
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = www_authenticate(&resp);
    assert!(
        challenge.starts_with("Bearer resource_metadata=\"http://127.0.0.1:")
            && !challenge.contains("error="),
        "no error code without a token (RFC 6750 §3.1): {challenge}"
    );

    let mut basic = HeaderMap::new();
    basic.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("Basic YTpi"),
    );
    assert!(matches!(
        rejection(&auth, &basic).await,
        IdentityError::MissingToken
    ));
    idp.stop().await;
}

#[tokio::test]
async fn unknown_key_ids_refetch_the_jwks_at_a_bounded_rate() {
    let idp = Idp::start(IdpOptions::default()).await;
    let public = public_url();
    let genuine = access_token(&idp, "alice", &resource(&public)).await;
    let claims = jwt_payload(&genuine);
    let bogus = |i: usize| bearer(&forge(&claims, &format!("bogus-{i}")));
    let base = idp_jwks_requests(&idp).await;

    // A long interval: the first token loads the keys, a flood of unknown kids adds nothing.
    let mut cfg = config(&idp, &public);
    cfg.jwks_min_refresh = Duration::from_secs(600);
    let auth = Authenticator::oidc(cfg, client()).expect("oidc");
    auth.authenticate_at(&bearer(&genuine), AT_SERVER)
        .await
        .expect("genuine");
    let flood = futures::future::join_all((0..50).map(|i| {
        let auth = &auth;
        let headers = bogus(i);
        async move { auth.authenticate_at(&headers, AT_SERVER).await }
    }))
    .await;
    for result in flood {
        assert!(
            matches!(
                result,
                Err(IdentityError::Rejected(TokenRejection::UnknownKey))
            ),
            "{result:?}"
        );
    }
    let fetches = auth.oidc_validator().expect("oidc").jwks_fetches();
    assert_eq!(
        fetches, 1,
        "one fetch for the first token, none for the flood"
    );
    assert_eq!(
        idp_jwks_requests(&idp).await - base,
        1,
        "as seen by the IdP"
    );

    // A 1-second interval: each interval allows one refetch, however many bogus tokens come.
    let mut cfg = config(&idp, &public);
    cfg.jwks_min_refresh = Duration::from_secs(1);
    let auth = Authenticator::oidc(cfg, client()).expect("oidc");
    auth.authenticate_at(&bearer(&genuine), AT_SERVER)
        .await
        .expect("genuine");
    for round in 0..2 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let results = futures::future::join_all((0..30).map(|i| {
            let auth = &auth;
            let headers = bogus(100 * round + i);
            async move { auth.authenticate_at(&headers, AT_SERVER).await }
        }))
        .await;
        assert!(results.iter().all(Result::is_err));
    }
    let fetches = auth.oidc_validator().expect("oidc").jwks_fetches();
    assert_eq!(
        fetches, 3,
        "initial load plus one refetch per elapsed interval"
    );
    idp.stop().await;
}

#[tokio::test]
async fn unreachable_idp_is_unavailable_not_unauthorized() {
    let issuer = format!("http://127.0.0.1:{}", free_port());
    let public = public_url();
    let mut cfg = OidcConfig::new(issuer);
    cfg.resource_base = Some(public.clone());
    let auth = Authenticator::oidc(cfg, client()).expect("oidc");
    let token = forge(
        &json!({"iss": auth.issuer(), "sub": "a", "aud": resource(&public), "exp": now() + 60}),
        IDP_KID,
    );
    let err = rejection(&auth, &bearer(&token)).await;
    assert!(matches!(err, IdentityError::Unavailable(_)), "{err:?}");
    let resp = unauthorized(&public, SERVER_PATH, &err);
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().get(header::RETRY_AFTER).is_some());
    assert!(resp.headers().get(header::WWW_AUTHENTICATE).is_none());
}

#[tokio::test]
async fn header_mode_reads_the_proxy_headers() {
    let auth = Authenticator::header(
        HeaderConfig::new("X-Forwarded-User", Some("X-Forwarded-Session")).expect("config"),
    );
    assert!(!auth.requires_bearer());
    let mut h = HeaderMap::new();
    h.insert(
        "x-forwarded-user",
        HeaderValue::from_static("alice@example.com"),
    );
    h.insert("x-forwarded-session", HeaderValue::from_static("s-1"));
    let a = auth.authenticate_at(&h, AT_SERVER).await.expect("caller");
    assert_eq!(a.caller, Caller::new("alice@example.com", "s-1"));
    assert!(a.bearer.is_none());

    h.insert("x-forwarded-user", HeaderValue::from_static("two words"));
    let err = rejection(&auth, &h).await;
    assert!(matches!(err, IdentityError::MissingHeader(ref n) if n == "x-forwarded-user"));
    let public = public_url();
    let resp = unauthorized(&public, SERVER_PATH, &err);
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(
        resp.headers().get(header::WWW_AUTHENTICATE).is_none(),
        "the proxy logs users in, not an OAuth client"
    );
}

#[tokio::test]
async fn gateway_publishes_its_protected_resource_metadata_in_oidc_mode() {
    let idp = Idp::start(IdpOptions::default()).await;
    let gw = testkit::gateway::Gateway::start_with(&[
        "--identity",
        "oidc",
        "--oidc-issuer",
        idp.issuer(),
        "--oidc-scope",
        "openid,mcp:tools",
    ])
    .await;
    gw.register_oauth("github", "http://127.0.0.1:1/mcp");
    let http = reqwest::Client::new();

    let root: Value = http
        .get(gw.url("/.well-known/oauth-protected-resource"))
        .send()
        .await
        .expect("GET metadata")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        root,
        json!({
            "resource": format!("{}/", gw.base()),
            "authorization_servers": [idp.issuer()],
            "bearer_methods_supported": ["header"],
            "scopes_supported": ["openid", "mcp:tools"],
        })
    );

    let response = http
        .get(gw.url("/.well-known/oauth-protected-resource/mcp/default/github"))
        .send()
        .await
        .expect("GET server metadata");
    assert_eq!(response.status(), StatusCode::OK);
    let server: Value = response.json().await.expect("JSON");
    assert_eq!(server["resource"], json!(gw.url("/mcp/default/github")));
    assert_eq!(server["authorization_servers"], json!([idp.issuer()]));

    let missing = http
        .get(gw.url("/.well-known/oauth-protected-resource/mcp/default/nope"))
        .send()
        .await
        .expect("GET unknown server metadata");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // The gateway itself answers an unauthenticated call with the challenge pointing there.
    let response = http
        .post(gw.url("/mcp/default/github"))
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .expect("POST /mcp");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .expect("challenge")
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert_eq!(
        challenge,
        format!(
            "Bearer resource_metadata=\"{}\"",
            gw.url("/.well-known/oauth-protected-resource/mcp/default/github")
        )
    );
    gw.shutdown().await;
    idp.stop().await;
}

#[tokio::test]
async fn no_protected_resource_metadata_without_oidc() {
    let gw = testkit::gateway::Gateway::start().await;
    gw.register_oauth("github", "http://127.0.0.1:1/mcp");
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp/default/github",
    ] {
        let status = reqwest::get(gw.url(path)).await.expect("GET").status();
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn run_without_an_issuer_refuses_to_start() {
    use clap::Parser as _;
    use mcp_oauth_operator::app::{self, Registrations};
    use mcp_oauth_operator::cli::{Cli, Command};

    let cli =
        Cli::try_parse_with_defaults(["mcp-oauth-operator", "run", "--listen", "127.0.0.1:0"])
            .expect("parse");
    let Command::Run(args) = cli.command else {
        unreachable!("run was requested")
    };
    let Err(err) = app::start(&args.server.app_config(), Registrations::Programmatic).await else {
        panic!("run defaults to oidc and must not start without an issuer");
    };
    let message = err.to_string();
    assert!(
        message.contains("--oidc-issuer") && message.contains("--identity"),
        "{message}"
    );

    // `serve` parsed the same way stays anonymous and starts.
    let cli = Cli::try_parse_from(["mcp-oauth-operator", "serve", "--listen", "127.0.0.1:0"])
        .expect("parse");
    let Command::Serve(args) = cli.command else {
        unreachable!("serve was requested")
    };
    let server = app::start(&args.server.app_config(), Registrations::Programmatic)
        .await
        .expect("serve starts");
    server.shutdown().await;
}

/// `oidc` with a sign-in client (`--oidc-client-id`).
fn with_sign_in(idp: &Idp, public: &Url, client_id: &str) -> Authenticator {
    let mut cfg = config(idp, public);
    cfg.sign_in = Some(SignInClient {
        client_id: client_id.to_owned(),
        client_secret: None,
    });
    Authenticator::oidc(cfg, client()).expect("oidc authenticator with sign-in")
}

fn rejected(result: Result<String, IdentityError>) -> TokenRejection {
    match result {
        Err(IdentityError::Rejected(r)) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// Browser sign-in: the ID token must be the issuer's, issued to the gateway's sign-in client,
/// and carry this sign-in's nonce; the user is its `sub`. The issuer's metadata is loaded with
/// the same checks as any authorization server's.
#[tokio::test]
async fn sign_in_id_tokens_are_checked_for_issuer_client_and_nonce() {
    let idp = Idp::start(IdpOptions::default()).await;
    let public = public_url();
    assert!(
        oidc(&idp, &public).sign_in().is_none(),
        "no client, no sign-in"
    );
    let auth = with_sign_in(&idp, &public, testkit::idp::PUBLIC_CLIENT_ID);
    let sign_in = auth.sign_in().expect("sign-in configured");

    let md = sign_in.sign_in_metadata().await.expect("issuer metadata");
    assert_eq!(md.issuer, idp.issuer());
    assert_eq!(md.token_endpoint.as_str(), idp.token_endpoint());
    assert_eq!(
        md.authorization_endpoint.as_str(),
        idp.authorization_endpoint()
    );

    let id_token = idp.user_id_token("alice", Some("nonce-one")).await;
    let user = sign_in
        .verify_id_token(&id_token, "nonce-one")
        .await
        .expect("a valid ID token");
    assert_eq!(user, "alice");
    // Another sign-in's nonce, or none at all, is refused.
    assert_eq!(
        rejected(sign_in.verify_id_token(&id_token, "nonce-two").await),
        TokenRejection::InvalidClaim("nonce")
    );
    let no_nonce = idp.user_id_token("alice", None).await;
    assert_eq!(
        rejected(sign_in.verify_id_token(&no_nonce, "nonce-one").await),
        TokenRejection::InvalidClaim("nonce")
    );
    // An access token is not an ID token for the sign-in client; nor is an ID token issued to
    // another client.
    let access = access_token(&idp, "alice", &resource(&public)).await;
    assert_eq!(
        rejected(sign_in.verify_id_token(&access, "nonce-one").await),
        TokenRejection::WrongAudience
    );
    let other = with_sign_in(&idp, &public, "another-client");
    let other = other.sign_in().expect("sign-in configured");
    assert_eq!(
        rejected(other.verify_id_token(&id_token, "nonce-one").await),
        TokenRejection::WrongAudience
    );
    // A token signed with a key that is not the issuer's, under the issuer's key id.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let forged = forge(
        &json!({
            "iss": idp.issuer(),
            "sub": "alice",
            "aud": testkit::idp::PUBLIC_CLIENT_ID,
            "exp": now + 300,
            "iat": now,
            "nonce": "nonce-one",
        }),
        IDP_KID,
    );
    assert_eq!(
        rejected(sign_in.verify_id_token(&forged, "nonce-one").await),
        TokenRejection::BadSignature
    );
}
