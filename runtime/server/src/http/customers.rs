//! Customer profiles: `PATCH` and `GET /v1/customers/{id}`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::auth::Editor;
use super::error::ApiError;
use super::json::ApiJson;

use crate::profiles::Profiles;
use crate::registry::Registry;
use moment_core::model::document::check_document;
use moment_core::model::profile::{ContactHistory, MAX_CUSTOMER_ID_LEN, Profile};
use moment_core::model::text::check_id;

/// Body of `PATCH /v1/customers/{id}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchCustomer {
    /// Attributes to set; a `null` value removes the attribute.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
    /// New life-cycle stage (one of the tenant's stages).
    #[serde(default)]
    pub stage: Option<String>,
}

/// A customer's profile.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CustomerView {
    /// The customer id.
    pub customer_id: String,
    /// Attributes merged from every channel.
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
    /// Life-cycle stage.
    pub stage: Option<String>,
    /// Contact history per action id.
    pub history: BTreeMap<String, ContactHistory>,
}

impl CustomerView {
    fn new(customer_id: String, profile: &Profile) -> Self {
        Self {
            customer_id,
            attributes: profile.attributes.clone(),
            stage: profile.stage.clone(),
            history: profile.history.clone(),
        }
    }
}

fn customer_id(id: &str) -> Result<(), ApiError> {
    check_id("customer id", id, MAX_CUSTOMER_ID_LEN)
        .map_err(|e| ApiError::unprocessable(e.to_string()))
}

/// Merges attributes (and optionally the stage) into a customer's profile.
#[utoipa::path(patch, path = "/v1/customers/{id}", tag = "customers", request_body = PatchCustomer,
    security(("bearer" = [])), params(("id" = String, Path, description = "customer id")),
    responses((status = 200, body = CustomerView), (status = 422, body = super::error::Problem)))]
pub async fn patch(
    caller: Editor,
    State(registry): State<Arc<Registry>>,
    State(profiles): State<Arc<Profiles>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PatchCustomer>,
) -> Result<Json<CustomerView>, ApiError> {
    customer_id(&id)?;
    check_document("attributes", &body.attributes)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let tenant = registry.tenant(&caller.tenant);
    if let Some(stage) = &body.stage
        && !tenant.settings.has_stage(stage)
    {
        return Err(ApiError::unprocessable(format!(
            "stage {stage:?} is not one of this tenant's stages {:?}",
            tenant.settings.stages
        )));
    }
    let profile = profiles
        .patch(&caller.tenant, &id, body.attributes, body.stage)
        .await?;
    Ok(Json(CustomerView::new(id, &profile)))
}

/// A customer's attributes, stage and contact history.
#[utoipa::path(get, path = "/v1/customers/{id}", tag = "customers", security(("bearer" = [])),
    params(("id" = String, Path, description = "customer id")),
    responses((status = 200, body = CustomerView), (status = 404, body = super::error::Problem)))]
pub async fn show(
    caller: Editor,
    State(profiles): State<Arc<Profiles>>,
    Path(id): Path<String>,
) -> Result<Json<CustomerView>, ApiError> {
    let profile = profiles
        .get(&caller.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no customer {id:?}")))?;
    Ok(Json(CustomerView::new(id, &profile)))
}
