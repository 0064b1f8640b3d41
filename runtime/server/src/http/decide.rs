//! `POST /v1/decide`: the hot path. The handler checks the key, the origin
//! and the body; deciding is [`DecidePath::decide`].

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use moment_core::pipeline::{DecideRequest, DecideResponse};
use moment_engines::Engines;

use super::auth::{Decider, check_origin};
use super::error::ApiError;
use super::json::ApiJson;
use crate::decisions::DecisionLog;
use crate::pipeline::DecidePath;
use crate::profiles::Profiles;
use crate::registry::Registry;

/// Ranks the actions of a decision point for one customer.
#[utoipa::path(post, path = "/v1/decide", tag = "decide", request_body = DecideRequest,
    security(("bearer" = [])),
    responses((status = 200, body = DecideResponse), (status = 404, body = super::error::Problem),
              (status = 422, body = super::error::Problem)))]
pub async fn decide(
    caller: Decider,
    State(registry): State<Arc<Registry>>,
    State(engines): State<Arc<Engines>>,
    State(profiles): State<Arc<Profiles>>,
    State(decisions): State<Arc<DecisionLog>>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<DecideRequest>,
) -> Result<Json<DecideResponse>, ApiError> {
    let tenant = registry.tenant(&caller.tenant);
    check_origin(&headers, &tenant.settings)?;
    let path = DecidePath {
        registry: &registry,
        engines: &engines,
        profiles: &profiles,
        decisions: &decisions,
    };
    Ok(Json(path.decide(&caller.tenant, &tenant, &request).await?))
}
