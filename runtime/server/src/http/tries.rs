//! `POST /v1/policies/{name}/try`: run a stored version or an unsaved draft
//! for a customer, through the whole decide pipeline, and see why each
//! action was or was not chosen. Nothing is written; see
//! [`DecidePath::try_policy`](crate::pipeline::DecidePath::try_policy).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use moment_core::model::Name;
use moment_core::model::policy::ActionKind;
use moment_core::pipeline::{DecideRequest, DecideResponse};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::AppState;
use super::auth::Editor;
use super::error::ApiError;
use super::json::ApiJson;
use crate::service::PolicyUpload;

/// The customer id a try without one runs as (with no profile).
pub const ANONYMOUS: &str = "try";

/// Body of `POST /v1/policies/{name}/try`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TryRequest {
    /// The stored version to run; the live one when neither this nor
    /// `draft` is given.
    #[serde(default)]
    pub version: Option<u32>,
    /// An unsaved version, checked like an upload (its `activate` must be
    /// false): answers as version 0.
    #[serde(default)]
    pub draft: Option<PolicyUpload>,
    /// The customer whose stored profile and contact history are used;
    /// without one the try runs on the given attributes alone, as customer
    /// `try`.
    #[serde(default)]
    pub customer_id: Option<String>,
    /// Life-cycle stage; defaults to the profile's.
    #[serde(default)]
    pub stage: Option<String>,
    /// Channel asking.
    #[serde(default)]
    pub channel: Option<String>,
    /// Attributes; they override the profile's.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
    /// Context of the moment.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub context: Map<String, Value>,
    /// How many actions to return (1–100, default 3).
    #[serde(default)]
    pub limit: Option<usize>,
    /// At most this many actions of a kind.
    #[serde(default)]
    pub max_per_kind: BTreeMap<ActionKind, usize>,
}

/// Runs one version of a policy, or a draft, for a customer: the decide
/// answer with `explain`. No decision is logged, no impression recorded,
/// no experiment consulted; it counts in `moment_policy_tries_total`.
#[utoipa::path(post, path = "/v1/policies/{name}/try", tag = "policies", request_body = TryRequest,
    security(("bearer" = [])), params(("name" = String, Path, description = "policy (decision point) name")),
    responses((status = 200, body = DecideResponse), (status = 404, body = super::error::Problem),
              (status = 422, body = super::error::Problem)))]
pub async fn try_policy(
    caller: Editor,
    State(app): State<AppState>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<TryRequest>,
) -> Result<Json<DecideResponse>, ApiError> {
    let missing = || ApiError::not_found(format!("no policy named {name:?}"));
    let policy = match (body.version, body.draft) {
        (Some(_), Some(_)) => {
            return Err(ApiError::unprocessable(
                "give either `version` or `draft`, not both",
            ));
        }
        (None, Some(draft)) => {
            if draft.activate {
                return Err(ApiError::unprocessable(
                    "a draft is tried, never activated: leave out `draft.activate`",
                ));
            }
            let point = Name::parse(&name).map_err(|e| {
                ApiError::unprocessable(format!("policy name {name:?} is invalid: it {e}"))
            })?;
            Arc::new(app.service.draft(&point, draft.try_into()?).await?)
        }
        (Some(version), None) => {
            let point = Name::parse(&name).map_err(|_| missing())?;
            app.service.version(&caller.tenant, &point, version).await?
        }
        (None, None) => {
            let point = Name::parse(&name).map_err(|_| missing())?;
            app.registry.live(&caller.tenant, &point).ok_or_else(|| {
                ApiError::not_found(format!(
                    "policy {name:?} has no live version; give a `version` or a `draft`"
                ))
            })?
        }
    };
    let anonymous = body.customer_id.is_none();
    let request = DecideRequest {
        point: name.clone(),
        customer_id: body.customer_id.unwrap_or_else(|| ANONYMOUS.to_owned()),
        stage: body.stage,
        channel: body.channel,
        attributes: body.attributes,
        context: body.context,
        limit: body.limit,
        max_per_kind: body.max_per_kind,
        record_impressions: false,
        explain: true,
    };
    let tenant = app.registry.tenant(&caller.tenant);
    let path = app.decide_path();
    Ok(Json(
        path.try_policy(
            &caller.tenant,
            &tenant,
            policy,
            Arc::new(request),
            anonymous,
        )
        .await?,
    ))
}
