//! The HTTP edge: routing, auth, JSON in and problem+json out.
//!
//! **Only this module knows HTTP.** Handlers authorise, parse, call one of
//! the [`Service`](crate::service::Service),
//! [`DecidePath`](crate::pipeline::DecidePath) or
//! [`outcomes::record`](crate::outcomes::record), and map the answer.

pub mod auth;
pub mod customers;
pub mod decide;
pub mod error;
pub mod examples;
pub mod experiments;
pub mod json;
pub mod keys;
pub mod openapi;
pub mod ops;
pub mod outcomes;
pub mod policies;
pub mod rate;
pub mod sdk;
pub mod tenants;
pub mod tries;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, MatchedPath, Request};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::cors::{AllowOrigin, CorsLayer};

use self::auth::RootToken;
use self::error::ApiError;
use crate::decisions::DecisionLog;
use crate::pipeline::DecidePath;
use crate::profiles::Profiles;
use crate::registry::Registry;
use crate::service::Service;
use crate::telemetry;
use moment_engines::Engines;
use moment_store::Store;

use crate::fairness::PolicyPool;

/// Everything the handlers share; each handler extracts only its slice.
#[derive(Clone, FromRef)]
pub struct AppState {
    /// Durable storage (read routes; writes go through `service`).
    pub store: Arc<dyn Store>,
    /// In-memory keys, settings and live policies.
    pub registry: Arc<Registry>,
    /// Policy engines.
    pub engines: Arc<Engines>,
    /// The threads policies run on, shared fairly between tenants.
    pub pool: Arc<PolicyPool>,
    /// Each tenant's request rate.
    pub rate: Arc<rate::TenantRate>,
    /// Console sessions.
    pub sessions: Arc<crate::console::session::Sessions>,
    /// The last readiness check, shared by probes.
    pub readiness: Arc<ops::Readiness>,
    /// Tenant and policy writes.
    pub service: Arc<Service>,
    /// Customer profiles, cached.
    pub profiles: Arc<Profiles>,
    /// The decision log.
    pub decisions: Arc<DecisionLog>,
    /// The operator's root token.
    pub root: RootToken,
    /// Renders `/metrics`, when the binary installed a recorder.
    pub metrics: Option<PrometheusHandle>,
}

impl AppState {
    /// What deciding (and trying) needs, borrowed from the state.
    pub fn decide_path(&self) -> DecidePath<'_> {
        DecidePath {
            registry: &self.registry,
            engines: &self.engines,
            pool: &self.pool,
            profiles: &self.profiles,
            decisions: &self.decisions,
        }
    }
}

/// Body size limits per route.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    /// Every route but policy uploads.
    pub default_bytes: usize,
    /// Policy uploads (a base64 module plus catalog).
    pub upload_bytes: usize,
}

/// Builds the router over `state`.
pub fn router(state: AppState, limits: BodyLimits) -> Router {
    // Browsers call decide and outcomes straight from pages with the
    // publishable key; the tenant's own origin list is checked in the handler.
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        // A page's script must see how long a 429 or 503 asks it to wait.
        .expose_headers([header::RETRY_AFTER])
        .max_age(Duration::from_secs(3600));
    let browser = Router::new()
        .route("/v1/decide", post(decide::decide))
        .route("/v1/outcomes", post(outcomes::record))
        .layer(cors);
    // Routes that carry policy code: a version, or a draft to try.
    let uploads = Router::new()
        .route("/v1/policies/{name}/versions", post(policies::upload))
        .route("/v1/policies/{name}/try", post(tries::try_policy))
        .layer(DefaultBodyLimit::max(limits.upload_bytes));

    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .route("/sdk/moment.js", get(sdk::client))
        .route("/sdk/moment.d.ts", get(sdk::types))
        .route("/v1/tenants", post(tenants::create))
        .route("/v1/tenant", axum::routing::patch(tenants::update))
        .route("/v1/policies", get(policies::list))
        .route("/v1/policies/{name}", get(policies::show))
        .route(
            "/v1/policies/{name}/versions/{version}",
            get(policies::version),
        )
        .route("/v1/policies/{name}/activate", post(policies::activate))
        .route(
            "/v1/customers/{id}",
            get(customers::show).patch(customers::patch),
        )
        .route("/v1/keys", get(keys::list).post(keys::issue))
        .route("/v1/keys/{id}", axum::routing::delete(keys::revoke))
        .route(
            "/v1/experiments",
            get(experiments::list).post(experiments::create),
        )
        .route("/v1/experiments/{id}", get(experiments::show))
        .route("/v1/experiments/{id}/stop", post(experiments::stop))
        .route("/v1/experiments/{id}/results", get(experiments::results))
        .merge(browser)
        .merge(uploads)
        .merge(crate::console::router(limits.upload_bytes))
        .fallback(|| async { ApiError::not_found("no such route; see /openapi.json") })
        .layer(DefaultBodyLimit::max(limits.default_bytes))
        .layer(middleware::from_fn(track))
        .with_state(state)
}

async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().clone();
    let started = Instant::now();
    let mut response = next.run(request).await;
    // axum answers a known path with the wrong method with an empty 405;
    // give it a problem body like every other error (the Allow header stays).
    if response.status() == StatusCode::METHOD_NOT_ALLOWED
        && !response.headers().contains_key(header::CONTENT_TYPE)
    {
        let allow = response.headers().get(header::ALLOW).cloned();
        response = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "this route does not take that method; see /openapi.json",
        )
        .into_response();
        if let Some(allow) = allow {
            response.headers_mut().insert(header::ALLOW, allow);
        }
    }
    telemetry::http(
        route,
        method.as_str(),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
