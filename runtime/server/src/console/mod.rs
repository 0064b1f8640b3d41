//! The console at `/console`: server-rendered pages (askama templates under
//! `templates/console/`, one stylesheet under `assets/`, both compiled into
//! the binary) for the people who write policies and manage keys.
//!
//! **The console is a client of the same functions as the API**: its
//! handlers call the [`Service`](crate::service::Service), the store and
//! [`DecidePath::try_policy`](crate::pipeline::DecidePath::try_policy)
//! with the signed-in key's tenant and role, never another tenant's.
//! Sessions, CSRF tokens and the cookie are in [`session`]; every response
//! carries a strict Content-Security-Policy (no scripts at all, styles only
//! from this origin), and every state-changing form is refused without the
//! session's CSRF token or when the browser says it came from another site.

mod customers;
mod experiments;
mod keys;
mod overview;
mod policies;
pub mod session;
pub(crate) mod view;

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

use self::session::{SignedIn, cleared};
use self::view::Frame;
use crate::http::AppState;
use crate::http::error::ApiError;
use moment_core::model::{KeyHash, Role};

/// The console's stylesheet, embedded.
const STYLESHEET: &str = include_str!("../../assets/console.css");

/// Every console response's Content-Security-Policy.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's routes, under `/console`; a WASM module's upload may be
/// `upload_bytes` long.
pub fn router(upload_bytes: usize) -> Router<AppState> {
    Router::new()
        .route("/console", get(home))
        .route("/console/", get(home))
        .route("/console/assets/console.css", get(stylesheet))
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .merge(policies::routes(upload_bytes))
        .merge(keys::routes())
        .merge(customers::routes())
        .merge(experiments::routes())
        .merge(overview::routes())
        .layer(middleware::from_fn(guard))
}

/// Adds the security headers, and refuses a state-changing request the
/// browser marks as coming from another site.
async fn guard(request: Request, next: Next) -> Response {
    let cross_site = request
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site");
    let mut response = if request.method() != Method::GET && cross_site {
        Failure::new(
            StatusCode::FORBIDDEN,
            "this form was sent from another site; open the console and send it from there",
        )
        .into_response()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLESHEET,
    )
}

async fn home(signed: Result<SignedIn, Response>) -> Redirect {
    match signed {
        Ok(_) => Redirect::to("/console/overview"),
        Err(_) => Redirect::to("/console/sign-in"),
    }
}

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage {
    frame: Option<Frame>,
    error: Option<String>,
}

async fn sign_in_page() -> Result<Html<String>, Failure> {
    render(&SignInPage {
        frame: None,
        error: None,
    })
}

#[derive(Deserialize)]
struct SignInForm {
    key: String,
}

async fn sign_in(
    State(app): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<SignInForm>,
) -> Response {
    let hash = KeyHash::of(form.key.trim());
    let refused = |status, error: &str| {
        let page = SignInPage {
            frame: None,
            error: Some(error.to_owned()),
        };
        match render(&page) {
            Ok(html) => (status, html).into_response(),
            Err(failure) => failure.into_response(),
        }
    };
    match app.registry.key(&hash) {
        None => refused(
            StatusCode::UNAUTHORIZED,
            "That key is unknown or revoked. Paste an editor or admin key of your tenant.",
        ),
        Some(key) if key.role < Role::Editor => refused(
            StatusCode::FORBIDDEN,
            "That is a publishable decide key: it cannot sign in. Use an editor or admin key.",
        ),
        Some(key) => {
            if let Err(limited) = app.rate.check(&key.tenant) {
                return Failure::from(limited).into_response();
            }
            // A browser signing in again leaves its old session behind.
            if let Some(old) = jar.get(session::COOKIE) {
                app.sessions.end(old.value());
            }
            // Moment serves plain HTTP; behind a proxy that ends TLS the
            // cookie must not travel without it.
            let secure = headers
                .get("x-forwarded-proto")
                .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"));
            let cookie = app.sessions.start(&key.tenant, hash, secure);
            (jar.add(cookie), Redirect::to("/console/overview")).into_response()
        }
    }
}

/// A form that carries only the CSRF token.
#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(
    State(app): State<AppState>,
    signed: SignedIn,
    jar: CookieJar,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, Failure> {
    check_csrf(&signed, &form.csrf)?;
    app.sessions.end(&signed.session);
    Ok((jar.remove(cleared()), Redirect::to("/console/sign-in")).into_response())
}

/// Refuses a form without this session's CSRF token.
fn check_csrf(signed: &SignedIn, token: &str) -> Result<(), Failure> {
    match signed.csrf_ok(token) {
        true => Ok(()),
        false => Err(Failure::new(
            StatusCode::FORBIDDEN,
            "this form's security token is missing or stale; reload the page and send it again",
        )),
    }
}

/// Renders a template to an HTML response.
fn render(page: &impl Template) -> Result<Html<String>, Failure> {
    page.render()
        .map(Html)
        .map_err(|e| Failure::from(ApiError::internal(e)))
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    frame: Option<Frame>,
    title: &'a str,
    detail: &'a str,
}

/// A failed console request: an HTML page with the status and what to do.
#[derive(Debug)]
pub struct Failure {
    status: StatusCode,
    detail: String,
}

impl Failure {
    fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
        }
    }
}

impl From<ApiError> for Failure {
    fn from(err: ApiError) -> Self {
        Self {
            status: err.status(),
            detail: err.detail().to_owned(),
        }
    }
}

/// Errors the console meets answer as the API would, as a page.
macro_rules! failure_from {
    ($($error:ty),*) => {$(
        impl From<$error> for Failure {
            fn from(err: $error) -> Self {
                ApiError::from(err).into()
            }
        }
    )*};
}
failure_from!(
    crate::decisions::Unflushed,
    crate::service::ServiceError,
    moment_store::StoreError,
    crate::pipeline::Refused
);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            frame: None,
            title: self.status.canonical_reason().unwrap_or("Error"),
            detail: &self.detail,
        };
        match page.render() {
            Ok(html) => (self.status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "console error page failed to render");
                (self.status, self.detail).into_response()
            }
        }
    }
}
