//! A `302 Found` to a URL the gateway built (an authorization endpoint with its query).

use super::page::Page;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use url::Url;

pub(super) fn redirect(url: &Url) -> Response {
    match HeaderValue::from_str(url.as_str()) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        // A parsed URL serialises to visible ASCII, so this is not expected; still a page, not
        // a panic.
        Err(_) => Page {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            title: "Cannot start sign-in",
            message: "The sign-in address could not be built.",
            detail: None,
            link: None,
        }
        .into_response(),
    }
}
