//! `POST /v1/decide`: the hot path.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::ORIGIN;

use super::auth::Caller;
use super::error::ApiError;
use super::json::ApiJson;
use crate::engine::Engines;
use crate::model::{Name, Role};
use crate::pipeline::{self, DecideRequest, DecideResponse};
use crate::registry::Registry;

/// Ranks the actions of a decision point for one customer.
#[utoipa::path(post, path = "/v1/decide", tag = "decide", request_body = DecideRequest,
    security(("bearer" = [])),
    responses((status = 200, body = DecideResponse), (status = 404, body = super::error::Problem),
              (status = 422, body = super::error::Problem)))]
pub async fn decide(
    caller: Caller,
    State(registry): State<Arc<Registry>>,
    State(engines): State<Arc<Engines>>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<DecideRequest>,
) -> Result<Json<DecideResponse>, ApiError> {
    caller.require(Role::Decide)?;
    let origin = headers.get(ORIGIN).and_then(|o| o.to_str().ok());
    if let Some(origin) = origin
        && !registry
            .tenant_settings(&caller.tenant)
            .allows_origin(origin)
    {
        return Err(ApiError::forbidden(format!(
            "origin {origin:?} is not among this tenant's allowed CORS origins"
        )));
    }
    let limit = request
        .check()
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let unknown = || {
        ApiError::not_found(format!(
            "no live policy for decision point {:?}",
            request.point
        ))
    };
    let point = Name::parse(&request.point).map_err(|_| unknown())?;
    let policy = registry.live(&caller.tenant, &point).ok_or_else(unknown)?;
    Ok(Json(pipeline::decide(
        &engines,
        &caller.tenant,
        &policy,
        &request,
        limit,
    )))
}
