//! `POST /v1/outcomes`: what happened after a decision.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auth::{Decider, check_origin};
use super::error::ApiError;
use super::json::ApiJson;
use crate::decisions::DecisionLog;
use moment_core::clock::now_ms;

use crate::profiles::Profiles;
use crate::registry::Registry;
use crate::telemetry;
use moment_core::model::outcome::{OutcomeEvent, OutcomeType, default_dedup_key};

/// Most events in one batch.
pub const MAX_BATCH: usize = 1000;
/// Longest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 256;

/// One outcome; the body, or an element of `{"events": [...]}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    /// The decision it follows.
    pub decision_id: String,
    /// The action concerned (one the decision returned).
    pub action_id: String,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: OutcomeType,
    /// Business value, e.g. revenue.
    #[serde(default)]
    pub value: Option<f64>,
    /// Makes client retries safe; defaults to decision, action and type.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    events: Vec<Outcome>,
}

/// Answer to `POST /v1/outcomes`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OutcomesAccepted {
    /// Outcomes stored now.
    pub accepted: usize,
    /// Outcomes already stored earlier (retries), ignored.
    pub duplicates: usize,
}

/// Records one outcome or a batch; answered once stored. A batch is all or nothing.
#[utoipa::path(post, path = "/v1/outcomes", tag = "outcomes", request_body = Outcome,
    security(("bearer" = [])),
    responses((status = 202, body = OutcomesAccepted), (status = 404, body = super::error::Problem),
              (status = 422, body = super::error::Problem)))]
pub async fn record(
    caller: Decider,
    State(decisions): State<Arc<DecisionLog>>,
    State(profiles): State<Arc<Profiles>>,
    State(registry): State<Arc<Registry>>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<OutcomesAccepted>), ApiError> {
    check_origin(&headers, &registry.tenant(&caller.tenant).settings)?;
    let shape = |e: serde_json::Error| {
        ApiError::unprocessable(format!("the body does not match the expected shape: {e}"))
    };
    let outcomes = if body.get("events").is_some() {
        serde_json::from_value::<Batch>(body).map_err(shape)?.events
    } else {
        vec![serde_json::from_value::<Outcome>(body).map_err(shape)?]
    };
    if outcomes.is_empty() || outcomes.len() > MAX_BATCH {
        return Err(ApiError::unprocessable(format!(
            "send 1 to {MAX_BATCH} events"
        )));
    }
    let at_ms = now_ms();
    let mut events = Vec::with_capacity(outcomes.len());
    for (i, o) in outcomes.into_iter().enumerate() {
        if o.value.is_some_and(|v| !v.is_finite()) {
            return Err(ApiError::unprocessable(format!(
                "events[{i}].value must be a finite number"
            )));
        }
        if o.idempotency_key
            .as_ref()
            .is_some_and(|k| k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY_LEN)
        {
            return Err(ApiError::unprocessable(format!(
                "events[{i}].idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} bytes long"
            )));
        }
        let decision = decisions
            .find(&caller.tenant, &o.decision_id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no decision {:?}", o.decision_id)))?;
        if !decision.actions.contains(&o.action_id) {
            return Err(ApiError::unprocessable(format!(
                "action {:?} was not returned by decision {:?}",
                o.action_id, o.decision_id
            )));
        }
        let dedup_key = o
            .idempotency_key
            .map(|k| format!("key:{k}"))
            .unwrap_or_else(|| default_dedup_key(&o.decision_id, &o.action_id, o.kind));
        events.push(OutcomeEvent {
            decision_id: o.decision_id,
            customer_id: decision.customer_id.clone(),
            action_id: o.action_id,
            kind: o.kind,
            value: o.value,
            dedup_key,
            at_ms,
        });
    }
    // An accepted outcome must not outlive its decision: the decisions it
    // names may still be queued for the log, so write the queue first.
    decisions.flush().await?;
    let report = profiles.record(&caller.tenant, &events).await?;
    telemetry::outcomes(report.accepted, report.duplicates);
    Ok((
        StatusCode::ACCEPTED,
        Json(OutcomesAccepted {
            accepted: report.accepted,
            duplicates: report.duplicates,
        }),
    ))
}
