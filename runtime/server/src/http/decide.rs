//! `POST /v1/decide`: the hot path.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;

use super::auth::{Decider, check_origin};
use super::error::ApiError;
use super::json::ApiJson;
use crate::decisions::DecisionLog;
use moment_core::clock::now_ms;
use moment_core::model::Name;
use moment_core::model::profile::Profile;
use moment_core::pipeline::{DecideRequest, DecideResponse, Subject};
use moment_engines::Engines;

use crate::pipeline::{self, Decision};
use crate::profiles::Profiles;
use crate::registry::Registry;
use crate::telemetry;
use moment_store::StoreError;

/// Ranks the actions of a decision point for one customer.
#[utoipa::path(post, path = "/v1/decide", tag = "decide", request_body = DecideRequest,
    security(("bearer" = [])),
    responses((status = 200, body = DecideResponse), (status = 404, body = super::error::Problem),
              (status = 422, body = super::error::Problem)))]
pub async fn decide(
    caller: Decider,
    State(registry): State<Arc<Registry>>,
    State(engines): State<Arc<Engines>>,
    State(profiles): State<Arc<Profiles>>,
    State(decisions): State<Arc<DecisionLog>>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<DecideRequest>,
) -> Result<Json<DecideResponse>, ApiError> {
    let tenant = registry.tenant(&caller.tenant);
    check_origin(&headers, &tenant.settings)?;
    let limit = request
        .check()
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    if let Some(stage) = &request.stage
        && !tenant.settings.has_stage(stage)
    {
        return Err(ApiError::unprocessable(format!(
            "stage {stage:?} is not one of this tenant's stages {:?}",
            tenant.settings.stages
        )));
    }
    let unknown = || {
        ApiError::not_found(format!(
            "no live policy for decision point {:?}",
            request.point
        ))
    };
    let point = Name::parse(&request.point).map_err(|_| unknown())?;
    let policy = registry.live(&caller.tenant, &point).ok_or_else(unknown)?;
    // Recording impressions makes this decide a write: serialise it with the
    // customer's other decides here, so a contact cap cannot be passed twice.
    let _customer = match request.record_impressions {
        true => Some(
            profiles
                .lock_customer(&caller.tenant, &request.customer_id)
                .await,
        ),
        false => None,
    };
    let limits = engines.limits().for_tenant(&tenant.settings.limits);
    let experiments = registry.experiments(&caller.tenant, &point);
    let experiments = experiments.as_deref().map_or(&[][..], Vec::as_slice);
    let mut read = Read::Cached;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (profile, history_unavailable) = match read
            .profile(&profiles, &caller.tenant, &request.customer_id)
            .await
        {
            Ok(profile) => (profile, None),
            Err(error @ StoreError::Unavailable { .. }) => {
                telemetry::profiles_unavailable();
                tracing::warn!(tenant = %caller.tenant, %error, "profile store unavailable; deciding on the request alone");
                (None, Some(tenant.settings.contact_rules_when_unavailable))
            }
            Err(error) => return Err(error.into()),
        };
        let subject = Subject {
            limits: &limits,
            tenant: &caller.tenant,
            groups: &tenant.groups,
            profile: profile.as_ref(),
            history_unavailable,
            now_ms: now_ms(),
        };
        let Decision {
            response,
            mut record,
        } = pipeline::decide(&engines, &subject, &policy, experiments, &request, limit);
        if request.record_impressions
            && history_unavailable.is_none()
            && !response.actions.is_empty()
        {
            let recorded = profiles
                .record_impressions(
                    &caller.tenant,
                    &request.customer_id,
                    profile.as_deref(),
                    &record.actions,
                    subject.now_ms,
                )
                .await;
            match recorded {
                Ok(()) => record.impressions = true,
                // Another replica wrote the profile since it was read: decide
                // again on the fresh one.
                Err(StoreError::Stale) if attempt < MAX_ATTEMPTS => {
                    telemetry::decide_retried();
                    read = Read::Fresh;
                    continue;
                }
                // The store went away meanwhile: decide again without history.
                Err(StoreError::Unavailable { .. }) if attempt < MAX_ATTEMPTS => {
                    read = Read::Unavailable;
                    continue;
                }
                Err(error) => return Err(error.into()),
            }
        }
        decisions.log(record);
        return Ok(Json(response));
    }
}

/// Decisions made per request, at most, when other writes to the customer's
/// profile keep coming first. Each attempt lost means another write to the
/// customer succeeded meanwhile, so a decide fails (503) only when more than
/// this many writes to one customer overtake it: that many concurrent
/// decides for one customer across replicas, say.
const MAX_ATTEMPTS: u32 = 64;

/// Where a decision reads the customer's profile from.
enum Read {
    /// The profile cache (the store on a miss).
    Cached,
    /// The store: the cached profile turned out stale.
    Fresh,
    /// Nowhere: the store just failed.
    Unavailable,
}

impl Read {
    async fn profile(
        &self,
        profiles: &Profiles,
        tenant: &Name,
        customer: &str,
    ) -> Result<Option<Arc<Profile>>, StoreError> {
        match self {
            Read::Cached => profiles.get(tenant, customer).await,
            Read::Fresh => profiles.reload(tenant, customer).await,
            Read::Unavailable => Err(StoreError::unavailable(
                "the profile store",
                "not reachable",
            )),
        }
    }
}
