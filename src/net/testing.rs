//! Test helpers: a tiny loopback axum server, for fault injection (statuses, redirects, slow or
//! oversized bodies) that a real authorization server cannot be made to produce.

use axum::Router;
use tokio::net::TcpListener;
use url::Url;

/// Serves `router` on an ephemeral loopback port; returns its base URL (`http://127.0.0.1:PORT/`).
/// The server task ends with the test's runtime.
pub(crate) async fn serve(router: Router) -> Url {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Url::parse(&format!("http://{addr}/")).expect("base url")
}
