//! Who is calling: the bearer key's tenant and role, or the operator's root token.
//!
//! **Every handler takes a role-typed caller** ([`Decider`], [`Editor`],
//! [`Admin`]) or [`Root`]; the role is checked from the headers alone, before
//! any body is read. Resources are always looked up under the caller's own
//! tenant, so another tenant's resources answer 404 exactly as missing ones do.

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::error::ApiError;
use super::rate::TenantRate;
use crate::registry::Registry;
use moment_core::model::{KeyHash, Name, Role};

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

/// A role an [`Authorized`] caller must have at least.
pub trait NeedsRole {
    /// The least role accepted.
    const ROLE: Role;
}

/// Marker: the `decide` role (publishable keys and up).
pub enum DecideRole {}
/// Marker: the `editor` role.
pub enum EditorRole {}
/// Marker: the `admin` role.
pub enum AdminRole {}

impl NeedsRole for DecideRole {
    const ROLE: Role = Role::Decide;
}
impl NeedsRole for EditorRole {
    const ROLE: Role = Role::Editor;
}
impl NeedsRole for AdminRole {
    const ROLE: Role = Role::Admin;
}

/// A caller whose key has at least role `R`, checked from the headers alone,
/// so a key without the role gets its 403 before any body is read.
pub struct Authorized<R: NeedsRole> {
    caller: Caller,
    role: PhantomData<R>,
}

/// A caller allowed to decide and report outcomes.
pub type Decider = Authorized<DecideRole>;
/// A caller allowed to manage policies, customers and experiments.
pub type Editor = Authorized<EditorRole>;
/// A caller allowed to manage keys and tenant settings.
pub type Admin = Authorized<AdminRole>;

impl<R: NeedsRole> Deref for Authorized<R> {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.caller
    }
}

impl<S, R> FromRequestParts<S> for Authorized<R>
where
    Arc<Registry>: FromRef<S>,
    Arc<TenantRate>: FromRef<S>,
    S: Send + Sync,
    R: NeedsRole,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(R::ROLE)?;
        Ok(Self {
            caller,
            role: PhantomData,
        })
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

/// The key's caller, once its tenant's request rate allows one more.
impl<S> FromRequestParts<S> for Caller
where
    Arc<Registry>: FromRef<S>,
    Arc<TenantRate>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        caller_of(bearer(parts)?, state)
    }
}

/// The caller `token` names, once its tenant's request rate allows one more.
fn caller_of<S>(token: &str, state: &S) -> Result<Caller, ApiError>
where
    Arc<Registry>: FromRef<S>,
    Arc<TenantRate>: FromRef<S>,
{
    let registry = Arc::<Registry>::from_ref(state);
    let key = registry
        .key(&KeyHash::of(token))
        .ok_or_else(|| ApiError::unauthorized("the API key is unknown or revoked"))?;
    Arc::<TenantRate>::from_ref(state).check(&key.tenant)?;
    Ok(Caller {
        key_id: key.id.clone(),
        tenant: key.tenant.clone(),
        role: key.role,
    })
}

/// A caller reporting outcomes: a [`Decider`], or — only on `POST
/// /v1/outcomes`, where browsers send beacons and beacons cannot set headers —
/// a publishable key sent as `?key=` when there is no `Authorization` header.
/// Only a key with exactly the `decide` role is taken from the URL: an editor
/// or admin key there would end up in browser history and proxy logs.
pub struct Reporter(pub Caller);

impl<S> FromRequestParts<S> for Reporter
where
    Arc<Registry>: FromRef<S>,
    Arc<TenantRate>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.headers.contains_key(AUTHORIZATION) {
            let caller = Decider::from_request_parts(parts, state).await?;
            return Ok(Self(caller.caller));
        }
        let token = query_key(parts).ok_or_else(|| {
            ApiError::unauthorized(
                "send an API key as `Authorization: Bearer <key>`, or a publishable \
                 (decide) key as `?key=<key>` on this route",
            )
        })?;
        let caller = caller_of(&token, state)?;
        if caller.role != Role::Decide {
            return Err(ApiError::forbidden(format!(
                "only a publishable (decide) key may be sent in the URL; send this {} key \
                 as `Authorization: Bearer <key>`",
                caller.role
            )));
        }
        Ok(Self(caller))
    }
}

/// The non-empty `key` parameter of the query string, percent-decoded.
fn query_key(parts: &Parts) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct KeyParam {
        key: Option<String>,
    }
    let axum::extract::Query(param) =
        axum::extract::Query::<KeyParam>::try_from_uri(&parts.uri).ok()?;
    param
        .key
        .map(|key| key.trim().to_owned())
        .filter(|key| !key.is_empty())
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
