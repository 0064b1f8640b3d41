//! Operator routes: health, readiness, metrics, the OpenAPI document.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use metrics_exporter_prometheus::PrometheusHandle;
use utoipa::OpenApi;

use super::error::ApiError;
use moment_store::Store;

/// Liveness: the process answers.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: every backend the store needs answers. When one does not, the
/// answer is 503 and names what is missing.
pub async fn readyz(State(store): State<Arc<dyn Store>>) -> Result<&'static str, ApiError> {
    let missing = store.missing().await;
    if missing.is_empty() {
        return Ok("ready");
    }
    tracing::warn!(?missing, "readiness: part of the store does not answer");
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("not ready; missing: {}", missing.join("; ")),
    ))
}

/// Prometheus text exposition.
pub async fn metrics(State(handle): State<Option<PrometheusHandle>>) -> impl IntoResponse {
    match handle {
        Some(h) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            h.render(),
        )
            .into_response(),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "no metrics recorder is installed in this process",
        )
        .into_response(),
    }
}

/// The OpenAPI document, generated from the handlers and types.
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(super::openapi::ApiDoc::openapi())
}
