//! Key rotation: list, issue and revoke a tenant's keys (admin role).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::auth::Admin;
use super::error::ApiError;
use super::json::ApiJson;
use crate::service::Service;
use moment_core::model::Role;
use moment_store::Store;

/// Body of `POST /v1/keys`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// The role of the new key.
    pub role: Role,
}

/// A key just issued; the secret is shown only now.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IssuedKey {
    /// Key id (for revoking it).
    pub id: String,
    /// The key's role.
    pub role: Role,
    /// The bearer secret.
    pub key: String,
}

/// A key as listed.
#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyRow {
    /// Key id.
    pub id: String,
    /// The key's role.
    pub role: Role,
    /// Creation time, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// Revocation time, if revoked.
    pub revoked_at_ms: Option<i64>,
}

/// Lists the tenant's keys (never their secrets).
#[utoipa::path(get, path = "/v1/keys", tag = "keys", security(("bearer" = [])),
    responses((status = 200, body = Vec<KeyRow>), (status = 403, body = super::error::Problem)))]
pub async fn list(
    caller: Admin,
    State(store): State<Arc<dyn Store>>,
) -> Result<Json<Vec<KeyRow>>, ApiError> {
    let rows = store
        .keys(&caller.tenant)
        .await?
        .into_iter()
        .map(|k| KeyRow {
            id: k.id,
            role: k.role,
            created_at_ms: k.created_at_ms,
            revoked_at_ms: k.revoked_at_ms,
        })
        .collect();
    Ok(Json(rows))
}

/// Issues a new key.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = NewKey, security(("bearer" = [])),
    responses((status = 201, body = IssuedKey), (status = 403, body = super::error::Problem)))]
pub async fn issue(
    caller: Admin,
    State(service): State<Arc<Service>>,
    ApiJson(body): ApiJson<NewKey>,
) -> Result<(StatusCode, Json<IssuedKey>), ApiError> {
    let (id, key) = service.issue_key(&caller.tenant, body.role).await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedKey {
            id,
            role: body.role,
            key,
        }),
    ))
}

/// Revokes a key; it stops working at once. The key making the call cannot revoke itself.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys", security(("bearer" = [])),
    params(("id" = String, Path, description = "key id")),
    responses((status = 204), (status = 404, body = super::error::Problem), (status = 422, body = super::error::Problem)))]
pub async fn revoke(
    caller: Admin,
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if id == caller.key_id {
        return Err(ApiError::unprocessable(
            "a key cannot revoke itself; use another admin key",
        ));
    }
    service.revoke_key(&caller.tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
