//! Headers on every response: no sniffing, no framing, a strict CSP, no referrer (the callback
//! URL carries a code), and no caching unless a handler says otherwise.

use crate::flows::routes::page::STYLE_HASH;
use axum::http::{HeaderName, HeaderValue, header};
use tower::ServiceBuilder;
use tower::layer::util::{Identity, Stack};
use tower_http::set_header::SetResponseHeaderLayer;

type L = SetResponseHeaderLayer<HeaderValue>;

fn csp() -> HeaderValue {
    let value = format!(
        "default-src 'none'; style-src {}; img-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        &*STYLE_HASH
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
}

fn set(name: HeaderName, value: HeaderValue) -> L {
    SetResponseHeaderLayer::if_not_present(name, value)
}

#[allow(clippy::type_complexity)]
pub(super) fn layer() -> ServiceBuilder<Stack<L, Stack<L, Stack<L, Stack<L, Stack<L, Identity>>>>>>
{
    ServiceBuilder::new()
        .layer(set(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(set(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(set(header::CONTENT_SECURITY_POLICY, csp()))
        .layer(set(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(set(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
}
