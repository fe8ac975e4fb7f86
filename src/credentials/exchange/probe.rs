//! The endpoint check of a `TokenExchangePolicy`: read the expected issuer's RFC 8414 / OIDC
//! metadata (through the SSRF guard, under the policy's own `allowPrivateNetworks`) and compare
//! it with the policy. The fetch ([`fetch`]) only reports what it saw; [`decide`] (pure) turns
//! that into the `Ready` verdict and whether the policy may be used. The controller runs it for a
//! policy's status; the exchanger ([`super::verify`]) runs it where no controller does, before a
//! caller's token is sent: both live on this side of the credentials stage.
//!
//! What each outcome means, and why:
//! - `EndpointVerified`: the metadata names the expected issuer and the same token endpoint.
//! - `ExchangeGrantNotAdvertised` (Ready, with a Warning Event): the metadata lists
//!   `grant_types_supported` without the RFC 8693 grant. The list is advisory (RFC 8414 §2) and
//!   often incomplete, so the policy stays in use; the message says what to check if exchanges
//!   are refused.
//! - `MetadataUnavailable` (not Ready): no metadata could be read (404, timeout, unreachable,
//!   not JSON). Nothing then says that `spec.tokenEndpoint` belongs to the expected issuer, and
//!   every exchange sends a caller's token there, so the policy is taken out of use (fail
//!   closed) and checked again sooner: a provider that comes back is used again by itself.
//! - `IssuerMismatch`, `TokenEndpointMismatch`: the provider says something else than the policy.
//!   Exchanged tokens would then be refused (wrong `iss`) or caller tokens sent to an endpoint
//!   the provider does not claim, so the policy is taken out of use (fail closed).
//! - `AddressRefused`: the token endpoint or the issuer is on an address the policy may not
//!   reach; every exchange would be refused the same way, so the policy is taken out of use.

use crate::net::{AddressPolicy, OutboundConfig};
use crate::net::{AddressRefused, FetchError, OutboundClient, check_url};
use crate::oauth::metadata::clip;
use crate::oauth::{AuthServerMetadataDocument, as_metadata_candidates};
use crate::registry::ServerKey;
use std::sync::Arc;
use std::time::{Duration, Instant};
use url::Url;

/// `Ready` reasons of the endpoint check.
pub mod reason {
    pub const ENDPOINT_VERIFIED: &str = "EndpointVerified";
    pub const EXCHANGE_GRANT_NOT_ADVERTISED: &str = "ExchangeGrantNotAdvertised";
    pub const METADATA_UNAVAILABLE: &str = "MetadataUnavailable";
    pub const ISSUER_MISMATCH: &str = "IssuerMismatch";
    pub const TOKEN_ENDPOINT_MISMATCH: &str = "TokenEndpointMismatch";
    pub const ADDRESS_REFUSED: &str = "AddressRefused";
    /// The issuer is not one the gateway's operator lets receive callers' tokens
    /// (`--exchange-allowed-issuers`); decided before any check of the endpoint.
    pub const ISSUER_NOT_ALLOWED: &str = "IssuerNotAllowed";

    /// Reasons that take the policy out of use; servers using it are not ready either.
    pub const REFUSALS: [&str; 5] = [
        ISSUER_MISMATCH,
        TOKEN_ENDPOINT_MISMATCH,
        ADDRESS_REFUSED,
        METADATA_UNAVAILABLE,
        ISSUER_NOT_ALLOWED,
    ];
}

/// RFC 8693 §2.1 grant type.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// How long a verified (or merely warned-about) endpoint is trusted before it is checked again.
pub const RECHECK_VERIFIED: Duration = Duration::from_secs(3600);
/// How soon an unavailable, mismatching or refused endpoint is checked again: the provider (or
/// the network) may be fixed without the policy changing.
pub const RECHECK_FAILED: Duration = Duration::from_secs(300);
/// Upper bound on one whole check, so a slow provider cannot hold a reconcile for long.
pub const PROBE_DEADLINE: Duration = Duration::from_secs(15);

/// What the check is about; a change means the previous outcome no longer applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeInput {
    pub expected_issuer: String,
    pub token_endpoint: Url,
    pub allow_private_networks: bool,
}

/// The parts of a metadata document the check looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertised {
    /// Where the document was read.
    pub url: String,
    pub issuer: Option<String>,
    pub token_endpoint: Option<String>,
    pub grant_types_supported: Option<Vec<String>>,
}

impl From<(&Url, AuthServerMetadataDocument)> for Advertised {
    fn from((url, doc): (&Url, AuthServerMetadataDocument)) -> Self {
        Self {
            url: url.to_string(),
            issuer: doc.issuer,
            token_endpoint: doc.token_endpoint,
            grant_types_supported: doc.grant_types_supported,
        }
    }
}

/// What the fetch saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// A document naming the expected issuer.
    Found(Advertised),
    /// Only documents naming another issuer (or none); the first one.
    OtherIssuer(Advertised),
    /// The SSRF guard refused `what` (`spec.tokenEndpoint` or the issuer's metadata).
    Refused {
        what: &'static str,
        refusal: AddressRefused,
    },
    /// Nothing usable could be read; `detail` says why.
    Unavailable { detail: String },
}

/// The decision of one check. The controller writes it as the policy's `Ready` condition
/// (`True` exactly when the policy is usable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// CamelCase reason, one of [`reason`].
    pub reason: &'static str,
    /// What is the case and, when the policy is not usable, how to fix it.
    pub message: String,
    /// Whether the policy may be used (registered); the `Ready` status.
    pub usable: bool,
    /// Whether the Event is a Warning although the policy is usable.
    pub warning: bool,
    /// When to check again.
    pub recheck: Duration,
}

/// Decides the outcome of a check of `input` from what the fetch saw.
pub fn decide(input: &ProbeInput, fetched: &Fetched) -> Outcome {
    let expected = &input.expected_issuer;
    match fetched {
        Fetched::Refused { what, refusal } => refused(what, refusal),
        Fetched::Unavailable { detail } => failed(
            reason::METADATA_UNAVAILABLE,
            format!(
                "the metadata of issuer `{expected}` could not be read ({detail}), so spec.tokenEndpoint and spec.expectedIssuer are not verified and the policy is not used (no caller's token is sent to an unverified endpoint); checked again in {} minutes",
                RECHECK_FAILED.as_secs() / 60
            ),
        ),
        Fetched::OtherIssuer(doc) => {
            let found = doc.issuer.as_deref().map_or_else(
                || "no issuer".to_owned(),
                |i| format!("issuer `{}`", clip(i)),
            );
            failed(
                reason::ISSUER_MISMATCH,
                format!(
                    "the metadata at {} names {found}, not the expected issuer `{expected}` (RFC 8414 requires them to be equal): set spec.expectedIssuer to the issuer the provider's tokens carry, or fix spec.tokenEndpoint",
                    clip(&doc.url)
                ),
            )
        }
        Fetched::Found(doc) => found(input, doc),
    }
}

fn found(input: &ProbeInput, doc: &Advertised) -> Outcome {
    let expected = &input.expected_issuer;
    let spec_endpoint = input.token_endpoint.as_str();
    let Some(advertised) = doc.token_endpoint.as_deref() else {
        return failed(
            reason::TOKEN_ENDPOINT_MISMATCH,
            format!(
                "issuer `{expected}` advertises no token_endpoint (metadata at {}), so spec.tokenEndpoint `{spec_endpoint}` is not its token endpoint: check spec.expectedIssuer and spec.tokenEndpoint",
                clip(&doc.url)
            ),
        );
    };
    if Url::parse(advertised).ok().as_ref() != Some(&input.token_endpoint) {
        return failed(
            reason::TOKEN_ENDPOINT_MISMATCH,
            format!(
                "issuer `{expected}` advertises the token endpoint `{}`, not spec.tokenEndpoint `{spec_endpoint}`: set spec.tokenEndpoint to the advertised endpoint (or spec.expectedIssuer to the issuer that owns `{spec_endpoint}`)",
                clip(advertised)
            ),
        );
    }
    let grant_missing = doc
        .grant_types_supported
        .as_ref()
        .is_some_and(|grants| !grants.iter().any(|g| g == TOKEN_EXCHANGE_GRANT));
    if grant_missing {
        return Outcome {
            reason: reason::EXCHANGE_GRANT_NOT_ADVERTISED,
            message: format!(
                "the token endpoint of issuer `{expected}` is verified, but its metadata lists grant_types_supported without `{TOKEN_EXCHANGE_GRANT}`; the policy is in use, and if exchanges are refused, enable token exchange for this client at the provider"
            ),
            usable: true,
            warning: true,
            recheck: RECHECK_VERIFIED,
        };
    }
    Outcome {
        reason: reason::ENDPOINT_VERIFIED,
        message: format!(
            "issuer `{expected}` advertises spec.tokenEndpoint `{spec_endpoint}` in its metadata"
        ),
        usable: true,
        warning: false,
        recheck: RECHECK_VERIFIED,
    }
}

fn refused(what: &str, refusal: &AddressRefused) -> Outcome {
    let remedy = if refusal.class.is_never_allowed() {
        "such addresses are never allowed".to_owned()
    } else {
        "set spec.allowPrivateNetworks: true if the provider is inside a trusted network".to_owned()
    };
    failed(
        reason::ADDRESS_REFUSED,
        format!(
            "{what} is on {} ({}), which this policy may not reach: {remedy}",
            refusal.class.describe(),
            clip(&refusal.host)
        ),
    )
}

fn failed(reason: &'static str, message: String) -> Outcome {
    Outcome {
        reason,
        message,
        usable: false,
        warning: false,
        recheck: RECHECK_FAILED,
    }
}

/// The outbound client the checks use: guarded, redirects refused, with the default outbound
/// limits (5 s to connect, 15 s in all, 1 MiB); [`probe`] switches it to the policy's own
/// address policy.
pub fn probe_client() -> Result<OutboundClient, FetchError> {
    OutboundClient::new(OutboundConfig {
        address_policy: AddressPolicy::PublicOnly,
        ..OutboundConfig::default()
    })
}

/// Checks `input` over the network within [`PROBE_DEADLINE`].
pub async fn probe(client: &OutboundClient, input: &ProbeInput) -> Outcome {
    let client = client.with_private_networks(input.allow_private_networks);
    let fetched = match tokio::time::timeout(PROBE_DEADLINE, fetch(&client, input)).await {
        Ok(fetched) => fetched,
        Err(_) => Fetched::Unavailable {
            detail: format!("no answer within {} s", PROBE_DEADLINE.as_secs()),
        },
    };
    decide(input, &fetched)
}

/// Reads the expected issuer's metadata at the MCP candidate locations (RFC 8414, then OIDC),
/// after checking that the token endpoint's literal address is allowed. A document for another
/// issuer moves on to the next candidate, as in discovery; a timeout or connection failure
/// stops (every candidate is on the same host).
pub async fn fetch(client: &OutboundClient, input: &ProbeInput) -> Fetched {
    if let Err(refusal) = check_url(&input.token_endpoint, client.address_policy()) {
        return Fetched::Refused {
            what: "spec.tokenEndpoint",
            refusal,
        };
    }
    let issuer = match Url::parse(&input.expected_issuer) {
        Ok(url) => url,
        Err(_) => {
            return Fetched::Unavailable {
                detail: "the expected issuer is not an absolute URL".to_owned(),
            };
        }
    };
    let candidates = as_metadata_candidates(&issuer);
    let mut other: Option<Advertised> = None;
    let mut problem: Option<String> = None;
    for url in &candidates {
        match client.get_json::<AuthServerMetadataDocument>(url).await {
            Ok(doc) if doc.issuer.as_deref() == Some(input.expected_issuer.as_str()) => {
                return Fetched::Found((url, doc).into());
            }
            Ok(doc) => {
                other.get_or_insert_with(|| (url, doc).into());
            }
            Err(FetchError::AddressRefused(refusal)) => {
                return Fetched::Refused {
                    what: "the issuer's metadata",
                    refusal,
                };
            }
            Err(FetchError::Status(404 | 410)) => {}
            Err(e @ (FetchError::Timeout | FetchError::Connect(_))) => {
                problem.get_or_insert_with(|| format!("fetching {url} failed: {e}"));
                break;
            }
            Err(e) => {
                problem.get_or_insert_with(|| format!("fetching {url} failed: {e}"));
            }
        }
    }
    if let Some(doc) = other {
        return Fetched::OtherIssuer(doc);
    }
    let detail = problem.unwrap_or_else(|| {
        let tried: Vec<String> = candidates.iter().map(Url::to_string).collect();
        format!("no metadata document at {}", tried.join(", "))
    });
    Fetched::Unavailable { detail }
}

/// A remembered outcome.
#[derive(Debug, Clone)]
struct Checked {
    input: ProbeInput,
    outcome: Outcome,
    at: Instant,
}

/// Whether `checked` still answers a check of `input` at `now`.
fn is_fresh(checked: &Checked, input: &ProbeInput, now: Instant) -> bool {
    checked.input == *input && now.saturating_duration_since(checked.at) < checked.outcome.recheck
}

/// The last outcome per policy, so frequent reconciles (the status counters are refreshed every
/// minute) do not fetch metadata each time; a changed input is checked at once.
#[derive(Clone)]
pub struct ProbeCache {
    entries: moka::sync::Cache<ServerKey, Arc<Checked>>,
}

impl Default for ProbeCache {
    fn default() -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(RECHECK_VERIFIED)
                .build(),
        }
    }
}

impl ProbeCache {
    /// The remembered outcome for `key` when it is still fresh for `input`.
    pub fn fresh(&self, key: &ServerKey, input: &ProbeInput, now: Instant) -> Option<Outcome> {
        self.entries
            .get(key)
            .filter(|c| is_fresh(c, input, now))
            .map(|c| c.outcome.clone())
    }

    pub fn remember(&self, key: &ServerKey, input: ProbeInput, outcome: Outcome, now: Instant) {
        self.entries.insert(
            key.clone(),
            Arc::new(Checked {
                input,
                outcome,
                at: now,
            }),
        );
    }

    pub fn forget(&self, key: &ServerKey) {
        self.entries.invalidate(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::AddressClass;
    use std::net::{IpAddr, Ipv4Addr};

    const ISSUER: &str = "https://dex.example.com";

    fn input() -> ProbeInput {
        ProbeInput {
            expected_issuer: ISSUER.into(),
            token_endpoint: Url::parse("https://dex.example.com/token").expect("url"),
            allow_private_networks: false,
        }
    }

    fn doc(issuer: Option<&str>, endpoint: Option<&str>, grants: Option<&[&str]>) -> Advertised {
        Advertised {
            url: format!("{ISSUER}/.well-known/openid-configuration"),
            issuer: issuer.map(str::to_owned),
            token_endpoint: endpoint.map(str::to_owned),
            grant_types_supported: grants.map(|g| g.iter().map(|s| (*s).to_owned()).collect()),
        }
    }

    fn found(endpoint: &str, grants: Option<&[&str]>) -> Outcome {
        decide(
            &input(),
            &Fetched::Found(doc(Some(ISSUER), Some(endpoint), grants)),
        )
    }

    #[test]
    fn matching_metadata_verifies_the_endpoint() {
        let out = found(
            "https://dex.example.com/token",
            Some(&["authorization_code", TOKEN_EXCHANGE_GRANT]),
        );
        assert!(out.usable && !out.warning);
        assert_eq!(out.reason, reason::ENDPOINT_VERIFIED);
        assert_eq!(out.recheck, RECHECK_VERIFIED);
        // No grant list at all says nothing against the exchange.
        assert_eq!(
            found("https://dex.example.com/token", None).reason,
            reason::ENDPOINT_VERIFIED
        );
        // URLs are compared parsed: a default port or host case is the same endpoint.
        assert_eq!(
            found("https://DEX.example.com:443/token", None).reason,
            reason::ENDPOINT_VERIFIED
        );
    }

    #[test]
    fn a_grant_list_without_token_exchange_is_a_usable_warning() {
        let out = found(
            "https://dex.example.com/token",
            Some(&["authorization_code"]),
        );
        assert!(out.usable && out.warning);
        assert_eq!(out.reason, reason::EXCHANGE_GRANT_NOT_ADVERTISED);
        assert!(out.message.contains(TOKEN_EXCHANGE_GRANT));
    }

    #[test]
    fn another_token_endpoint_fails_closed_and_names_the_advertised_one() {
        let out = found("https://dex.example.com/oauth2/token", None);
        assert!(!out.usable);
        assert_eq!(out.reason, reason::TOKEN_ENDPOINT_MISMATCH);
        assert!(
            out.message
                .contains("`https://dex.example.com/oauth2/token`"),
            "{}",
            out.message
        );
        assert!(out.message.contains("spec.tokenEndpoint"));
        assert_eq!(out.recheck, RECHECK_FAILED);

        let none = decide(&input(), &Fetched::Found(doc(Some(ISSUER), None, None)));
        assert_eq!(none.reason, reason::TOKEN_ENDPOINT_MISMATCH);
        assert!(!none.usable);
        let garbage = found("not a url", None);
        assert_eq!(garbage.reason, reason::TOKEN_ENDPOINT_MISMATCH);
    }

    #[test]
    fn another_issuer_fails_closed_and_says_to_set_expected_issuer() {
        let other = doc(Some("https://login.example.com"), None, None);
        let out = decide(&input(), &Fetched::OtherIssuer(other));
        assert!(!out.usable);
        assert_eq!(out.reason, reason::ISSUER_MISMATCH);
        let msg = &out.message;
        assert!(msg.contains("`https://login.example.com`"), "{msg}");
        assert!(msg.contains(&format!("`{ISSUER}`")), "{msg}");
        assert!(msg.contains("spec.expectedIssuer"), "{msg}");

        let anonymous = decide(&input(), &Fetched::OtherIssuer(doc(None, None, None)));
        assert_eq!(anonymous.reason, reason::ISSUER_MISMATCH);
        assert!(anonymous.message.contains("no issuer"));
    }

    #[test]
    fn unavailable_metadata_takes_the_policy_out_of_use_and_rechecks_sooner() {
        let out = decide(
            &input(),
            &Fetched::Unavailable {
                detail: "request timed out".into(),
            },
        );
        assert!(!out.usable, "fail closed: {out:?}");
        assert!(out.message.contains("not used"));
        assert_eq!(out.reason, reason::METADATA_UNAVAILABLE);
        assert!(out.message.contains("request timed out"));
        assert_eq!(out.recheck, RECHECK_FAILED);
    }

    #[test]
    fn refused_addresses_fail_closed_and_name_the_field_to_set() {
        let refusal = |class| AddressRefused {
            host: "127.0.0.1".into(),
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            class,
        };
        let out = decide(
            &input(),
            &Fetched::Refused {
                what: "spec.tokenEndpoint",
                refusal: refusal(AddressClass::Loopback),
            },
        );
        assert!(!out.usable);
        assert_eq!(out.reason, reason::ADDRESS_REFUSED);
        assert!(out.message.contains("spec.allowPrivateNetworks"));
        assert!(out.message.starts_with("spec.tokenEndpoint"));
        assert!(reason::REFUSALS.contains(&out.reason));

        let never = decide(
            &input(),
            &Fetched::Refused {
                what: "the issuer's metadata",
                refusal: refusal(AddressClass::CloudMetadata),
            },
        );
        assert!(never.message.contains("never allowed"));
        assert!(!never.message.contains("allowPrivateNetworks"));
    }

    #[test]
    fn remembered_outcomes_expire_and_never_answer_another_input() {
        let cache = ProbeCache::default();
        let key = ServerKey::new("team-a", "cluster-b");
        let t0 = Instant::now();
        let verified = found("https://dex.example.com/token", None);
        assert!(cache.fresh(&key, &input(), t0).is_none());
        cache.remember(&key, input(), verified.clone(), t0);
        assert_eq!(cache.fresh(&key, &input(), t0), Some(verified));
        let later = t0 + RECHECK_VERIFIED;
        assert!(cache.fresh(&key, &input(), later).is_none(), "expired");
        let private = ProbeInput {
            allow_private_networks: true,
            ..input()
        };
        assert!(cache.fresh(&key, &private, t0).is_none(), "input changed");
        cache.forget(&key);
        assert!(cache.fresh(&key, &input(), t0).is_none());
    }

    /// Fault injection a real provider cannot be made to produce: which candidate answers what.
    async fn walk(routes: axum::Router) -> (Fetched, String) {
        let base = crate::net::testing::serve(routes).await;
        let issuer = base.as_str().trim_end_matches('/').to_owned();
        let input = ProbeInput {
            expected_issuer: issuer.clone(),
            token_endpoint: base.join("token").expect("url"),
            allow_private_networks: true,
        };
        let client = probe_client().expect("client").with_private_networks(true);
        (fetch(&client, &input).await, issuer)
    }

    #[tokio::test]
    async fn the_walk_skips_other_issuers_and_reports_what_it_missed() {
        use axum::http::{HeaderMap, StatusCode};
        use axum::routing::get;
        let own = |h: &HeaderMap| {
            format!(
                "http://{}",
                h.get("host").and_then(|v| v.to_str().ok()).unwrap_or("")
            )
        };
        let routes = axum::Router::new()
            .route(
                "/.well-known/oauth-authorization-server",
                get(|| async { axum::Json(serde_json::json!({"issuer": "https://other.example"})) }),
            )
            .route(
                "/.well-known/openid-configuration",
                get(move |h: HeaderMap| async move {
                    let issuer = own(&h);
                    axum::Json(serde_json::json!({"issuer": issuer, "token_endpoint": format!("{issuer}/token")}))
                }),
            );
        let (fetched, issuer) = walk(routes).await;
        match fetched {
            Fetched::Found(doc) => {
                assert_eq!(doc.issuer.as_deref(), Some(issuer.as_str()));
                assert!(doc.url.ends_with("/.well-known/openid-configuration"));
            }
            other => panic!("expected the OIDC document, got {other:?}"),
        }

        let only_other = axum::Router::new().route(
            "/.well-known/openid-configuration",
            get(|| async { axum::Json(serde_json::json!({"issuer": "https://other.example"})) }),
        );
        let (fetched, _) = walk(only_other).await;
        assert!(
            matches!(&fetched, Fetched::OtherIssuer(d) if d.issuer.as_deref() == Some("https://other.example")),
            "{fetched:?}"
        );

        let (fetched, _) = walk(axum::Router::new()).await;
        match fetched {
            Fetched::Unavailable { detail } => {
                assert!(detail.contains("no metadata document"), "{detail}");
                assert!(
                    detail.contains("/.well-known/openid-configuration"),
                    "{detail}"
                );
            }
            other => panic!("expected unavailable, got {other:?}"),
        }

        let broken = axum::Router::new().route(
            "/.well-known/oauth-authorization-server",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        );
        let (fetched, _) = walk(broken).await;
        assert!(
            matches!(&fetched, Fetched::Unavailable { detail } if detail.contains("500")),
            "{fetched:?}"
        );
    }

    #[tokio::test]
    async fn a_literal_private_token_endpoint_is_refused_before_any_request() {
        let client = probe_client().expect("client");
        let input = ProbeInput {
            token_endpoint: Url::parse("http://127.0.0.1:9/token").expect("url"),
            expected_issuer: "http://127.0.0.1:9".into(),
            allow_private_networks: false,
        };
        let out = probe(&client, &input).await;
        assert_eq!(out.reason, reason::ADDRESS_REFUSED);
        assert!(!out.usable);
    }
}
