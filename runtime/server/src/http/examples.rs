//! The example pages (`examples/web`, `examples/kiosk`), served by `moment
//! serve --demo` so that a newcomer sees an offer on a page without setting
//! up anything else. They load the client from `/sdk/moment.js` and read the
//! decide key from the address (`#key=…`).

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::get;

const WEB: &str = include_str!("../../../../examples/web/index.html");
const WEB_THANKS: &str = include_str!("../../../../examples/web/thanks.html");
const KIOSK: &str = include_str!("../../../../examples/kiosk/index.html");

/// The pages' Content-Security-Policy. They share Moment's origin with the
/// console, so they may load scripts and talk only to this origin: a
/// `#server=` naming another cannot make them run its code here.
const CSP: &str = "default-src 'none'; script-src 'self' 'unsafe-inline'; \
    connect-src 'self'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// A page that is always fetched fresh, under [`CSP`].
fn page(html: &'static str) -> impl IntoResponse {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        Html(html),
    )
}

/// The example pages' routes.
pub fn router() -> Router {
    Router::new()
        .route(
            "/examples/web",
            get(|| async { Redirect::permanent("/examples/web/") }),
        )
        .route("/examples/web/", get(|| async { page(WEB) }))
        .route(
            "/examples/web/thanks.html",
            get(|| async { page(WEB_THANKS) }),
        )
        .route(
            "/examples/kiosk",
            get(|| async { Redirect::permanent("/examples/kiosk/") }),
        )
        .route("/examples/kiosk/", get(|| async { page(KIOSK) }))
}
