//! `POST /v1/tenants` (root token) and `PATCH /v1/tenant` (admin).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::auth::{Admin, Root};
use super::error::ApiError;
use super::json::ApiJson;
use crate::registry::{SettingsPatch, TenantSettings};
use crate::service::{Service, TenantKeys};
use moment_core::model::Name;

/// Body of `POST /v1/tenants`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Tenant id: lowercase letters, digits, `-`, `_`, `.`.
    pub id: String,
    /// Optional settings; defaults allow any CORS origin.
    #[serde(default, deserialize_with = "moment_core::model::objects::optional")]
    pub settings: Option<TenantSettings>,
}

/// Answer to `POST /v1/tenants`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TenantCreated {
    /// The tenant id.
    pub id: String,
    /// Its keys, shown only now.
    pub keys: TenantKeys,
}

/// Creates a tenant and its three keys.
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = CreateTenant,
    security(("root_token" = [])),
    responses((status = 201, body = TenantCreated), (status = 401, body = super::error::Problem),
              (status = 409, body = super::error::Problem), (status = 422, body = super::error::Problem)))]
pub async fn create(
    _root: Root,
    State(service): State<Arc<Service>>,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<(StatusCode, Json<TenantCreated>), ApiError> {
    let id = Name::parse(&body.id).map_err(|e| ApiError::unprocessable(format!("id {e}")))?;
    let keys = service
        .create_tenant(&id, body.settings.unwrap_or_default())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TenantCreated {
            id: id.to_string(),
            keys,
        }),
    ))
}

/// Changes the given fields of the caller's tenant settings; answers them all.
#[utoipa::path(patch, path = "/v1/tenant", tag = "tenants", request_body = SettingsPatch,
    security(("bearer" = [])),
    responses((status = 200, body = TenantSettings), (status = 403, body = super::error::Problem)))]
pub async fn update(
    caller: Admin,
    State(service): State<Arc<Service>>,
    ApiJson(patch): ApiJson<SettingsPatch>,
) -> Result<Json<TenantSettings>, ApiError> {
    Ok(Json(service.update_settings(&caller.tenant, patch).await?))
}
