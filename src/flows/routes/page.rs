//! The small HTML pages a browser sees (the flow's, and the router's 404, 403 and 429). Every
//! dynamic value is escaped; the one stylesheet is allowed by its hash in the
//! Content-Security-Policy, so no inline script or style can run.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use std::sync::LazyLock;

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1b1b1b}h1{font-size:1.4rem}p{line-height:1.5}a{color:#0b57d0}.detail{color:#555;font-size:.9rem}";

/// `'sha256-…'` source for [`STYLE`], used by the CSP.
pub static STYLE_HASH: LazyLock<String> = LazyLock::new(|| {
    let digest = Sha256::digest(STYLE.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
});

/// Escape text for HTML element content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(c),
        }
    }
    out
}

/// A page: heading, message, optional detail line and optional link.
pub struct Page<'a> {
    pub status: StatusCode,
    pub title: &'a str,
    pub message: &'a str,
    pub detail: Option<&'a str>,
    pub link: Option<(&'a str, &'a str)>,
}

impl Page<'_> {
    pub fn render(&self) -> String {
        let mut body = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{t}</title><style>{STYLE}</style></head><body><h1>{t}</h1><p>{m}</p>",
            t = escape_html(self.title),
            m = escape_html(self.message),
        );
        if let Some(d) = self.detail {
            body.push_str(&format!("<p class=\"detail\">{}</p>", escape_html(d)));
        }
        if let Some((href, label)) = self.link {
            body.push_str(&format!(
                "<p><a href=\"{}\">{}</a></p>",
                escape_html(href),
                escape_html(label)
            ));
        }
        body.push_str("</body></html>");
        body
    }
}

impl IntoResponse for Page<'_> {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            self.render(),
        )
            .into_response()
    }
}

pub async fn not_found() -> Response {
    Page {
        status: StatusCode::NOT_FOUND,
        title: "Not found",
        message: "There is nothing at this address.",
        detail: None,
        link: None,
    }
    .into_response()
}

/// An HTML page whose one form posts back to the gateway: the pages' strict CSP with
/// `form-action 'self'` added (the global policy forbids form submissions), never cached.
pub fn form_page(html: String) -> Response {
    let mut resp = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    let csp = format!(
        "default-src 'none'; style-src {}; img-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        &*STYLE_HASH
    );
    if let Ok(v) = axum::http::HeaderValue::from_str(&csp) {
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
    no_store(resp)
}

/// Whether the client prefers HTML over JSON, by the `q` values of `Accept` (RFC 9110 §12.5.1).
/// Only an explicit `text/html` counts for HTML; `*/*`, no header or a tie answers JSON.
pub fn prefers_html(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let (mut html, mut json) = (0.0f32, 0.0f32);
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "text/html" => html = html.max(q),
            "application/json" => json = json.max(q),
            _ => {}
        }
    }
    html > json
}

/// A response that must never be cached (it describes a user's tokens).
pub fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).expect("header"));
        h
    }

    #[test]
    fn html_only_when_explicitly_preferred() {
        assert!(prefers_html(&accept(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        )));
        assert!(!prefers_html(&accept("*/*")));
        assert!(!prefers_html(&accept("application/json")));
        assert!(!prefers_html(&accept("text/html;q=0.5, application/json")));
        assert!(!prefers_html(&accept("text/html, application/json")));
        assert!(prefers_html(&accept("application/json;q=0.1, TEXT/HTML")));
        assert!(!prefers_html(&HeaderMap::new()));
    }

    #[test]
    fn escapes_every_special_character() {
        assert_eq!(
            escape_html(r#"<script>alert("x&y")</script>'"#),
            "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;&#x27;"
        );
    }

    #[test]
    fn page_escapes_dynamic_values_once() {
        let html = Page {
            status: StatusCode::BAD_REQUEST,
            title: "A & B",
            message: "<b>bold</b>",
            detail: Some("\"quoted\""),
            link: Some(("/x?a=1&b=2", "go")),
        }
        .render();
        assert!(html.contains("<h1>A &amp; B</h1>"));
        assert!(html.contains("&lt;b&gt;bold&lt;/b&gt;"));
        assert!(html.contains("&quot;quoted&quot;"));
        assert!(html.contains("href=\"/x?a=1&amp;b=2\""));
        assert!(!html.contains("<b>"));
    }

    #[test]
    fn style_hash_is_a_csp_source() {
        assert!(STYLE_HASH.starts_with("'sha256-") && STYLE_HASH.ends_with('\''));
    }
}
