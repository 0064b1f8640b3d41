//! `POST /v1/outcomes`: what happened after a decision. The handler decodes
//! one outcome or a batch; checking and storing them is
//! [`outcomes::record`](crate::outcomes::record).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auth::{Reporter, check_origin};
use super::error::ApiError;
use super::json::BeaconJson;
use crate::decisions::DecisionLog;
use crate::outcomes::{self, Outcome};
use crate::profiles::Profiles;
use crate::registry::Registry;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    #[serde(deserialize_with = "moment_core::model::objects::many")]
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

/// Records one outcome or a batch (`{"events":[…]}`); answered once stored.
/// A batch is all or nothing.
///
/// For browser beacons, which cannot set headers, this route alone also
/// takes a publishable (decide) key as `?key=` when no `Authorization` header
/// is sent, and a `text/plain` body holding the JSON. The tenant's CORS
/// origins are checked either way.
#[utoipa::path(post, path = "/v1/outcomes", tag = "outcomes", request_body = Outcome,
    params(("key" = Option<String>, Query,
            description = "A publishable (decide) key, for beacons; read only without an Authorization header")),
    security(("bearer" = [])),
    responses((status = 202, body = OutcomesAccepted), (status = 404, body = super::error::Problem),
              (status = 422, body = super::error::Problem)))]
pub async fn record(
    Reporter(caller): Reporter,
    State(decisions): State<Arc<DecisionLog>>,
    State(profiles): State<Arc<Profiles>>,
    State(registry): State<Arc<Registry>>,
    headers: HeaderMap,
    BeaconJson(body): BeaconJson<Value>,
) -> Result<(StatusCode, Json<OutcomesAccepted>), ApiError> {
    check_origin(&headers, &registry.tenant(&caller.tenant).settings)?;
    let shape = |e: serde_json::Error| {
        ApiError::unprocessable(format!("the body does not match the expected shape: {e}"))
    };
    let batch = if body.get("events").is_some() {
        serde_json::from_value::<Batch>(body).map_err(shape)?.events
    } else {
        vec![serde_json::from_value::<Outcome>(body).map_err(shape)?]
    };
    let report = outcomes::record(&decisions, &profiles, &caller.tenant, batch).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(OutcomesAccepted {
            accepted: report.accepted,
            duplicates: report.duplicates,
        }),
    ))
}
