//! The JavaScript client (`sdk/js`), served so that a page can load it
//! without a bundler: `import { createClient } from "<moment>/sdk/moment.js"`.
//! The compiled file is committed (`sdk/js/dist`); the client's tests check
//! that it is what its TypeScript source compiles to.

use axum::http::header;
use axum::response::IntoResponse;

/// The compiled client.
const CLIENT_JS: &str = include_str!("../../../../sdk/js/dist/moment.js");
/// Its type declarations.
const CLIENT_TYPES: &str = include_str!("../../../../sdk/js/dist/moment.d.ts");

/// Headers for a script any page may import: module scripts from another
/// origin need CORS, and the client holds nothing secret.
fn script(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}

/// `GET /sdk/moment.js`: the client as an ES module.
pub async fn client() -> impl IntoResponse {
    script("text/javascript; charset=utf-8", CLIENT_JS)
}

/// `GET /sdk/moment.d.ts`: the client's TypeScript declarations.
pub async fn types() -> impl IntoResponse {
    script("application/typescript; charset=utf-8", CLIENT_TYPES)
}
