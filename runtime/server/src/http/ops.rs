//! Operator routes: health, readiness, metrics, the OpenAPI document.

use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// How long one readiness check of the store is answered from.
const READY_FOR: Duration = Duration::from_secs(1);

/// The last readiness check: probes (a load balancer's, every replica's)
/// share one look at the store a second, however many arrive.
#[derive(Default)]
pub struct Readiness {
    last: tokio::sync::Mutex<Option<(Instant, Vec<String>)>>,
}

impl Readiness {
    /// What the store misses, looked at most once per [`READY_FOR`].
    async fn missing(&self, store: &dyn Store) -> Vec<String> {
        let mut last = self.last.lock().await;
        if let Some((at, missing)) = &*last
            && at.elapsed() < READY_FOR
        {
            return missing.clone();
        }
        let missing = store.missing().await;
        *last = Some((Instant::now(), missing.clone()));
        missing
    }
}

/// Readiness: every backend the store needs answers (as of at most a second
/// ago). When one does not, the answer is 503 and names what is missing.
pub async fn readyz(
    State(store): State<Arc<dyn Store>>,
    State(readiness): State<Arc<Readiness>>,
) -> Result<&'static str, ApiError> {
    let missing = readiness.missing(&*store).await;
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
