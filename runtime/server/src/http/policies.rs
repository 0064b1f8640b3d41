//! Policy versions: upload, list, inspect, activate.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::auth::Editor;
use super::error::ApiError;
use super::json::ApiJson;
use crate::service::{PolicyUpload, Service};
use moment_core::model::Name;
use moment_core::model::policy::EngineKind;
use moment_store::Store;

/// Answer to an upload or activation.
#[derive(Serialize, utoipa::ToSchema)]
pub struct VersionCreated {
    /// Policy name.
    pub name: String,
    /// Version number.
    pub version: u32,
    /// Whether this version is now live.
    pub active: bool,
}

/// Body of `POST /v1/policies/{name}/activate`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Activate {
    /// The version to make live.
    pub version: u32,
}

/// A row of `GET /v1/policies`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PolicyRow {
    /// Policy name.
    pub name: String,
    /// Live version, if any.
    pub live_version: Option<u32>,
    /// Newest version.
    pub latest_version: u32,
}

/// Answer to `GET /v1/policies/{name}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PolicyDetail {
    /// Policy name.
    pub name: String,
    /// Live version, if any.
    pub live_version: Option<u32>,
    /// Every version, oldest first.
    pub versions: Vec<VersionRow>,
    /// Audit trail of uploads and activations, oldest first.
    pub events: Vec<EventRow>,
}

/// One version of a policy.
#[derive(Serialize, utoipa::ToSchema)]
pub struct VersionRow {
    /// Version number.
    pub version: u32,
    /// Engine.
    pub engine: EngineKind,
    /// Upload time, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// Key id of the uploader.
    pub created_by: String,
    /// Whether it is live.
    pub active: bool,
}

/// One audit-trail entry.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EventRow {
    /// `uploaded` or `activated`.
    pub event: String,
    /// The version concerned.
    pub version: u32,
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
    /// Key id of the actor.
    pub by: String,
}

fn policy_name(raw: &str) -> Result<Name, ApiError> {
    Name::parse(raw)
        .map_err(|e| ApiError::unprocessable(format!("policy name {raw:?} is invalid: it {e}")))
}

fn existing(raw: &str) -> Result<Name, ApiError> {
    Name::parse(raw).map_err(|_| ApiError::not_found(format!("no policy named {raw:?}")))
}

/// Uploads a new, immutable policy version.
#[utoipa::path(post, path = "/v1/policies/{name}/versions", tag = "policies", request_body = PolicyUpload,
    security(("bearer" = [])), params(("name" = String, Path, description = "policy (decision point) name")),
    responses((status = 201, body = VersionCreated), (status = 422, body = super::error::Problem)))]
pub async fn upload(
    caller: Editor,
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<PolicyUpload>,
) -> Result<(StatusCode, Json<VersionCreated>), ApiError> {
    let name = policy_name(&name)?;
    let active = body.activate;
    let version = service
        .create_version(&caller.tenant, &name, body.try_into()?, &caller.key_id)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(VersionCreated {
            name: name.to_string(),
            version,
            active,
        }),
    ))
}

/// Lists the tenant's policies with their live versions.
#[utoipa::path(get, path = "/v1/policies", tag = "policies", security(("bearer" = [])),
    responses((status = 200, body = Vec<PolicyRow>)))]
pub async fn list(
    caller: Editor,
    State(store): State<Arc<dyn Store>>,
) -> Result<Json<Vec<PolicyRow>>, ApiError> {
    let rows = store
        .policies(&caller.tenant)
        .await?
        .into_iter()
        .map(|p| PolicyRow {
            name: p.name.to_string(),
            live_version: p.live,
            latest_version: p.latest,
        })
        .collect();
    Ok(Json(rows))
}

/// A policy's versions, live version and audit trail.
#[utoipa::path(get, path = "/v1/policies/{name}", tag = "policies", security(("bearer" = [])),
    params(("name" = String, Path, description = "policy name")),
    responses((status = 200, body = PolicyDetail), (status = 404, body = super::error::Problem)))]
pub async fn show(
    caller: Editor,
    State(store): State<Arc<dyn Store>>,
    Path(name): Path<String>,
) -> Result<Json<PolicyDetail>, ApiError> {
    let name = existing(&name)?;
    let history = store
        .history(&caller.tenant, &name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no policy named {:?}", name.as_str())))?;
    Ok(Json(PolicyDetail {
        name: name.to_string(),
        live_version: history.live,
        versions: history
            .versions
            .into_iter()
            .map(|v| VersionRow {
                active: history.live == Some(v.version),
                version: v.version,
                engine: v.engine,
                created_at_ms: v.created_at_ms,
                created_by: v.created_by,
            })
            .collect(),
        events: history
            .events
            .into_iter()
            .map(|e| EventRow {
                event: e.event,
                version: e.version,
                at_ms: e.at_ms,
                by: e.by,
            })
            .collect(),
    }))
}

/// Makes a version live; activating an older one is a rollback.
#[utoipa::path(post, path = "/v1/policies/{name}/activate", tag = "policies", request_body = Activate,
    security(("bearer" = [])), params(("name" = String, Path, description = "policy name")),
    responses((status = 200, body = VersionCreated), (status = 404, body = super::error::Problem)))]
pub async fn activate(
    caller: Editor,
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<Activate>,
) -> Result<Json<VersionCreated>, ApiError> {
    let name = existing(&name)?;
    service
        .activate(&caller.tenant, &name, body.version, &caller.key_id)
        .await?;
    Ok(Json(VersionCreated {
        name: name.to_string(),
        version: body.version,
        active: true,
    }))
}
