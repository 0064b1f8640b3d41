//! Policy versions: upload, list, inspect, read one in full, activate.

use std::sync::Arc;

use axum::Json;
use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::auth::Editor;
use super::error::ApiError;
use super::json::{ApiJson, json_content_type};
use crate::registry::Registry;
use crate::service::{NewPolicy, PolicyUpload, Service};
use moment_core::call::Limits;
use moment_core::model::Name;
use moment_core::model::policy::{Action, EngineKind, StoredBundle};
use moment_engines::Engines;
use moment_store::Store;

/// Answer to an upload or activation.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyRow {
    /// Policy name.
    pub name: String,
    /// Live version, if any.
    pub live_version: Option<u32>,
    /// Newest version.
    pub latest_version: u32,
}

/// Answer to `GET /v1/policies/{name}`.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
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

/// Answer to `GET /v1/policies/{name}/versions/{version}`: everything the
/// version holds, and the limits it runs under.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct VersionDetail {
    /// Policy name.
    pub name: String,
    /// Version number.
    pub version: u32,
    /// Engine.
    pub engine: EngineKind,
    /// The Rhai source (engine `rhai`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The WebAssembly module (engine `wasm`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wasm: Option<WasmModule>,
    /// The actions this version ranks, as uploaded.
    pub catalog: Vec<Action>,
    /// Actions served when the policy fails.
    pub fallback: Vec<String>,
    /// The limits its calls run under today: the operator's, tightened by
    /// the tenant's own.
    pub limits: RunLimits,
    /// Upload time, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// Key id of the uploader.
    pub created_by: String,
    /// Whether it is live.
    pub active: bool,
}

/// A version's WebAssembly module.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct WasmModule {
    /// Size in bytes.
    pub size_bytes: usize,
    /// SHA-256 of the module, hex.
    pub sha256: String,
    /// The module itself, base64, with `?include=wasm`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
}

impl WasmModule {
    /// The size and SHA-256 of `code`; the module itself with `include`.
    pub fn of(code: &[u8], include: bool) -> Self {
        Self {
            size_bytes: code.len(),
            sha256: hex::encode(Sha256::digest(code)),
            base64: include.then(|| BASE64.encode(code)),
        }
    }

    /// The module as one line of text, for diffs: its size and hash.
    pub fn summary(&self) -> String {
        module_line(self.size_bytes, &self.sha256)
    }
}

/// A WebAssembly module as one line of text, for diffs.
pub fn module_line(size_bytes: usize, sha256: &str) -> String {
    format!("WebAssembly module, {size_bytes} bytes, SHA-256 {sha256}\n")
}

/// The limits one policy call runs under.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunLimits {
    /// Wall-clock budget of one call, in ms.
    pub deadline_ms: u64,
    /// Rhai operations one call may perform.
    pub rhai_max_operations: u64,
    /// Heap one Rhai call may hold, in bytes.
    pub rhai_max_memory_bytes: usize,
    /// WASM fuel one call may burn.
    pub wasm_fuel: u64,
    /// Largest WASM linear memory, in bytes.
    pub wasm_memory_bytes: usize,
}

impl From<&Limits> for RunLimits {
    fn from(limits: &Limits) -> Self {
        Self {
            deadline_ms: limits.deadline.as_millis() as u64,
            rhai_max_operations: limits.rhai_max_operations,
            rhai_max_memory_bytes: limits.rhai_max_memory_bytes,
            wasm_fuel: limits.wasm_fuel,
            wasm_memory_bytes: limits.wasm_memory_bytes,
        }
    }
}

/// Query of `GET /v1/policies/{name}/versions/{version}`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionQuery {
    /// `wasm` to include a WASM version's module, base64.
    pub include: Option<String>,
}

fn policy_name(raw: &str) -> Result<Name, ApiError> {
    Name::parse(raw)
        .map_err(|e| ApiError::unprocessable(format!("policy name {raw:?} is invalid: it {e}")))
}

fn existing(raw: &str) -> Result<Name, ApiError> {
    Name::parse(raw).map_err(|_| ApiError::not_found(format!("no policy named {raw:?}")))
}

/// A WASM version as `multipart/form-data`: the module itself beside the
/// rest of its bundle, rather than base64 inside JSON.
#[derive(utoipa::ToSchema)]
pub struct ModuleUpload {
    /// The WebAssembly module (ABI v1), as a file part.
    #[schema(value_type = String, format = Binary)]
    pub module: Vec<u8>,
    /// JSON: `{"catalog": […], "fallback": […], "activate": false}`.
    pub bundle: ModuleBundle,
}

/// The `bundle` part of a [`ModuleUpload`].
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModuleBundle {
    /// The actions this policy ranks.
    #[serde(deserialize_with = "moment_core::model::objects::many")]
    pub catalog: Vec<Action>,
    /// Actions served when the policy fails.
    #[serde(default)]
    pub fallback: Vec<String>,
    /// Make this version live at once.
    #[serde(default)]
    pub activate: bool,
}

/// Uploads a new, immutable policy version: JSON (Rhai source, or a WASM
/// module in base64), or for WASM a multipart form with the module itself.
#[utoipa::path(post, path = "/v1/policies/{name}/versions", tag = "policies",
    request_body(content(
        (PolicyUpload = "application/json"),
        (ModuleUpload = "multipart/form-data"),
    )),
    security(("bearer" = [])), params(("name" = String, Path, description = "policy (decision point) name")),
    responses((status = 201, body = VersionCreated), (status = 422, body = super::error::Problem)))]
pub async fn upload(
    caller: Editor,
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
    request: Request,
) -> Result<(StatusCode, Json<VersionCreated>), ApiError> {
    let name = policy_name(&name)?;
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    let new: NewPolicy = if multipart {
        let form = Multipart::from_request(request, &())
            .await
            .map_err(|e| unreadable(e.status(), e.body_text()))?;
        module_upload(form).await?
    } else if json_content_type(request.headers()) {
        ApiJson::<PolicyUpload>::from_request(request, &())
            .await?
            .0
            .try_into()?
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the version as JSON (`Content-Type: application/json`) or, for a WASM \
             module, as `multipart/form-data` with `module` and `bundle` parts",
        ));
    };
    let active = new.activate;
    let version = service
        .create_version(&caller.tenant, &name, new, &caller.key_id)
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

/// A form that could not be read: 413 past the route's body limit, else
/// 400 (a malformed form, a body cut off or too slow to arrive).
fn unreadable(status: StatusCode, why: String) -> ApiError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the upload is larger than this route accepts",
        ),
        _ => ApiError::bad_request(format!("the form could not be read: {why}")),
    }
}

/// Reads a [`ModuleUpload`] form.
async fn module_upload(mut form: Multipart) -> Result<NewPolicy, ApiError> {
    let failed = |e: MultipartError| unreadable(e.status(), e.body_text());
    let (mut module, mut bundle) = (None, None);
    while let Some(field) = form.next_field().await.map_err(failed)? {
        match field.name().unwrap_or_default() {
            "module" => module = Some(field.bytes().await.map_err(failed)?),
            "bundle" => bundle = Some(field.bytes().await.map_err(failed)?),
            other => {
                return Err(ApiError::unprocessable(format!(
                    "the form has a part {other:?}; it takes `module` (the .wasm file) and `bundle` (JSON)"
                )));
            }
        }
    }
    let (Some(module), Some(bundle)) = (module, bundle) else {
        return Err(ApiError::unprocessable(
            "the form needs two parts: `module` (the .wasm file) and `bundle` (JSON with `catalog`, `fallback`, `activate`)",
        ));
    };
    let bundle: ModuleBundle = serde_json::from_slice(&bundle)
        .map_err(|e| ApiError::unprocessable(format!("the `bundle` part is not valid: {e}")))?;
    Ok(NewPolicy {
        engine: EngineKind::Wasm,
        code: module.to_vec(),
        catalog: bundle.catalog,
        fallback: bundle.fallback,
        activate: bundle.activate,
    })
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

/// One version in full: its code (or the WASM module's size and hash),
/// catalog, fallback, the limits it runs under, who uploaded it and when.
#[utoipa::path(get, path = "/v1/policies/{name}/versions/{version}", tag = "policies",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "policy name"),
           ("version" = u32, Path, description = "version number"), VersionQuery),
    responses((status = 200, body = VersionDetail), (status = 404, body = super::error::Problem),
              (status = 422, body = super::error::Problem)))]
pub async fn version(
    caller: Editor,
    State(store): State<Arc<dyn Store>>,
    State(registry): State<Arc<Registry>>,
    State(engines): State<Arc<Engines>>,
    Path((name, number)): Path<(String, String)>,
    Query(query): Query<VersionQuery>,
) -> Result<Json<VersionDetail>, ApiError> {
    let include_wasm = match query.include.as_deref() {
        None => false,
        Some("wasm") => true,
        Some(other) => {
            return Err(ApiError::unprocessable(format!(
                "include={other:?} is not known; the one value is `wasm`"
            )));
        }
    };
    let name = existing(&name)?;
    let missing = || {
        ApiError::not_found(format!(
            "policy {:?} has no version {number:?}",
            name.as_str()
        ))
    };
    let number: u32 = number.parse().map_err(|_| missing())?;
    let stored = store
        .version(&caller.tenant, &name, number)
        .await?
        .ok_or_else(missing)?;
    let history = store
        .history(&caller.tenant, &name)
        .await?
        .ok_or_else(missing)?;
    let info = history
        .versions
        .iter()
        .find(|v| v.version == number)
        .ok_or_else(missing)?;
    let bundle: StoredBundle =
        serde_json::from_str(&stored.bundle_json).map_err(ApiError::internal)?;
    let (source, wasm) = match stored.engine {
        EngineKind::Rhai => (
            Some(String::from_utf8_lossy(&stored.code).into_owned()),
            None,
        ),
        EngineKind::Wasm => (None, Some(WasmModule::of(&stored.code, include_wasm))),
    };
    let limits = engines
        .limits()
        .for_tenant(&registry.tenant(&caller.tenant).settings.limits);
    Ok(Json(VersionDetail {
        name: name.to_string(),
        version: number,
        engine: stored.engine,
        source,
        wasm,
        catalog: bundle.catalog,
        fallback: bundle.fallback,
        limits: RunLimits::from(&limits),
        created_at_ms: info.created_at_ms,
        created_by: info.created_by.clone(),
        active: history.live == Some(number),
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
