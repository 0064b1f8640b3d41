//! Who is calling: the bearer key's tenant and role, or the operator's root token.
//!
//! **Every handler takes a [`Caller`] or [`Root`]** and checks the role it
//! needs; resources are always looked up under the caller's own tenant, so
//! another tenant's resources answer 404 exactly as missing ones do.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::model::{KeyHash, Name, Role};
use crate::registry::Registry;

/// A caller authenticated by a tenant key.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Id of the key used (for audit trails).
    pub key_id: String,
    /// The key's tenant.
    pub tenant: Name,
    /// The key's role.
    pub role: Role,
}

impl Caller {
    /// Refuses with 403 unless the key's role is at least `needed`.
    pub fn require(&self, needed: Role) -> Result<(), ApiError> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this route needs a key with the {needed} role; this key has the {} role",
                self.role
            )))
        }
    }
}

/// Refuses a browser call from an origin the tenant has not allowed.
pub fn check_origin(
    headers: &axum::http::HeaderMap,
    settings: &crate::registry::TenantSettings,
) -> Result<(), ApiError> {
    let origin = headers
        .get(axum::http::header::ORIGIN)
        .and_then(|o| o.to_str().ok());
    match origin {
        Some(origin) if !settings.allows_origin(origin) => Err(ApiError::forbidden(format!(
            "origin {origin:?} is not among this tenant's allowed CORS origins"
        ))),
        _ => Ok(()),
    }
}

/// The operator's root token, hashed; `None` when `MOMENT_ROOT_TOKEN` is unset.
#[derive(Clone, Copy, Debug)]
pub struct RootToken(pub Option<KeyHash>);

/// A caller authenticated by the root token.
#[derive(Debug)]
pub struct Root;

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let missing = || ApiError::unauthorized("send an API key as `Authorization: Bearer <key>`");
    let value = parts.headers.get(AUTHORIZATION).ok_or_else(missing)?;
    let value = value.to_str().map_err(|_| missing())?;
    value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(missing)
}

impl<S> FromRequestParts<S> for Caller
where
    Arc<Registry>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        let registry = Arc::<Registry>::from_ref(state);
        let key = registry
            .key(&KeyHash::of(token))
            .ok_or_else(|| ApiError::unauthorized("the API key is unknown or revoked"))?;
        Ok(Caller {
            key_id: key.id.clone(),
            tenant: key.tenant.clone(),
            role: key.role,
        })
    }
}

impl<S> FromRequestParts<S> for Root
where
    RootToken: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let RootToken(root) = RootToken::from_ref(state);
        let Some(root) = root else {
            return Err(ApiError::unauthorized(
                "tenant creation is disabled: start the server with MOMENT_ROOT_TOKEN set",
            ));
        };
        if KeyHash::of(bearer(parts)?) == root {
            Ok(Root)
        } else {
            Err(ApiError::unauthorized(
                "this route needs the operator's root token",
            ))
        }
    }
}
