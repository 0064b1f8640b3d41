//! `POST /v1/decide`: the hot path. The handler checks the key, the origin
//! and the body, and holds a publishable key to what a web page needs (no
//! `explain`; only the tenant's `caller_attributes`); deciding is
//! [`DecidePath::decide`](crate::pipeline::DecidePath::decide).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use moment_core::model::Role;
use moment_core::pipeline::{DecideRequest, DecideResponse};

use super::AppState;
use super::auth::{Decider, check_origin};
use super::error::ApiError;
use super::json::ApiJson;
use crate::telemetry;

/// Ranks the actions of a decision point for one customer.
#[utoipa::path(post, path = "/v1/decide", tag = "decide", request_body = DecideRequest,
    security(("bearer" = [])),
    responses((status = 200, body = DecideResponse), (status = 404, body = super::error::Problem),
              (status = 403, body = super::error::Problem), (status = 422, body = super::error::Problem)))]
pub async fn decide(
    caller: Decider,
    State(app): State<AppState>,
    headers: HeaderMap,
    ApiJson(mut request): ApiJson<DecideRequest>,
) -> Result<Json<DecideResponse>, ApiError> {
    let tenant = app.registry.tenant(&caller.tenant);
    check_origin(&headers, &tenant.settings)?;
    if caller.role == Role::Decide {
        // A web page's key: it may not read why a customer fails conditions
        // or what they have seen, nor claim attributes the tenant keeps.
        if request.explain {
            caller.require(Role::Editor)?;
        }
        let before = request.attributes.len();
        request
            .attributes
            .retain(|name, _| tenant.settings.caller_may_set(name));
        telemetry::caller_attributes_ignored(before - request.attributes.len());
    }
    let path = app.decide_path();
    Ok(Json(
        path.decide(&caller.tenant, &tenant, Arc::new(request))
            .await?,
    ))
}
