//! `POST /v1/decide`: the hot path.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;

use super::auth::{Decider, check_origin};
use super::error::ApiError;
use super::json::ApiJson;
use crate::clock::now_ms;
use crate::decisions::DecisionLog;
use crate::engine::Engines;
use crate::model::Name;
use crate::model::outcome::{OutcomeEvent, OutcomeType};
use crate::pipeline::{self, DecideRequest, DecideResponse, Decision, Subject};
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
    let limit = request
        .check()
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    if let Some(stage) = &request.stage
        && !tenant.settings.has_stage(stage)
    {
        return Err(ApiError::unprocessable(format!(
            "stage {stage:?} is not one of this tenant's stages {:?}",
            tenant.settings.stages
        )));
    }
    let unknown = || {
        ApiError::not_found(format!(
            "no live policy for decision point {:?}",
            request.point
        ))
    };
    let point = Name::parse(&request.point).map_err(|_| unknown())?;
    let policy = registry.live(&caller.tenant, &point).ok_or_else(unknown)?;
    // Recording impressions makes this decide a write: serialise it with the
    // customer's other decides so a contact cap cannot be passed twice.
    let _customer = match request.record_impressions {
        true => Some(
            profiles
                .lock_customer(&caller.tenant, &request.customer_id)
                .await,
        ),
        false => None,
    };
    let profile = profiles.get(&caller.tenant, &request.customer_id).await?;

    let limits = engines.limits().for_tenant(&tenant.settings.limits);
    let subject = Subject {
        limits: &limits,
        tenant: &caller.tenant,
        groups: &tenant.groups,
        profile: profile.as_ref(),
        now_ms: now_ms(),
    };
    let experiments = registry.experiments(&caller.tenant, &point);
    let experiments = experiments.as_deref().map_or(&[][..], Vec::as_slice);
    let Decision { response, record } =
        pipeline::decide(&engines, &subject, &policy, experiments, &request, limit);
    decisions.log(record);
    if request.record_impressions && !response.actions.is_empty() {
        let events: Vec<OutcomeEvent> = response
            .actions
            .iter()
            .map(|a| OutcomeEvent {
                decision_id: response.decision_id.clone(),
                customer_id: request.customer_id.clone(),
                action_id: a.id.clone(),
                kind: OutcomeType::Impression,
                value: None,
                dedup_key: format!("{}/{}/impression", response.decision_id, a.id),
                at_ms: subject.now_ms,
            })
            .collect();
        profiles.record(&caller.tenant, &events).await?;
    }
    Ok(Json(response))
}
