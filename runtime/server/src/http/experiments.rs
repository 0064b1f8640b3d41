//! Experiments: create, list, show, stop, and results.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::auth::Editor;
use super::error::ApiError;
use super::json::ApiJson;
use crate::decisions::DecisionLog;
use crate::service::Service;
use moment_core::model::Name;
use moment_core::model::experiment::{Experiment, ExperimentSpec};
use moment_core::stats::{self, Counts};
use moment_store::{Store, StoredExperiment};

/// Below this SRM p-value the split is flagged as broken.
pub const SRM_ALARM: f64 = 0.001;

/// An experiment with its state.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ExperimentView {
    /// The definition (seed filled in): the fields of the `ExperimentSpec`
    /// it was created with.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub spec: ExperimentSpec,
    /// `running` or `stopped`.
    pub status: &'static str,
    /// Creation time, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// Stop time, if stopped.
    pub stopped_at_ms: Option<i64>,
}

/// Answer to `GET /v1/experiments/{id}/results`.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct Results {
    /// Experiment id.
    pub id: String,
    /// Decision point.
    pub point: String,
    /// The outcome type counted as a conversion.
    pub goal: String,
    /// `running` or `stopped`.
    pub status: String,
    /// One row per variant; the first is the control.
    pub variants: Vec<VariantResult>,
    /// Chi-square p-value of the observed split against the weights.
    pub srm_p_value: Option<f64>,
    /// True when `srm_p_value` < 0.001: the split is not what was configured.
    pub srm_warning: bool,
}

/// Results of one variant.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct VariantResult {
    /// Variant id.
    pub id: String,
    /// Policy version it runs.
    pub version: u32,
    /// Configured weight.
    pub weight: f64,
    /// Unique customers who got a decision in the variant.
    pub exposures: u64,
    /// Unique exposed customers with a goal outcome on a decision of the experiment.
    pub conversions: u64,
    /// conversions / exposures.
    pub rate: Option<f64>,
    /// 95% interval of the rate (Wilson score).
    pub rate_ci: Option<[f64; 2]>,
    /// Sum of the goal outcomes' values (revenue goals).
    pub value: f64,
    /// Relative lift of the rate vs. the control; null for the control.
    pub lift: Option<f64>,
    /// 95% confidence interval of the lift.
    pub lift_ci: Option<[f64; 2]>,
    /// Two-proportion z-test p-value vs. the control.
    pub p_value: Option<f64>,
    /// Bayesian chance to beat the control (Beta-Binomial, uniform priors).
    pub chance_to_beat_control: Option<f64>,
}

fn view(stored: StoredExperiment) -> Result<ExperimentView, ApiError> {
    let spec = serde_json::from_str(&stored.spec_json).map_err(ApiError::internal)?;
    Ok(ExperimentView {
        spec,
        status: if stored.running { "running" } else { "stopped" },
        created_at_ms: stored.created_at_ms,
        stopped_at_ms: stored.stopped_at_ms,
    })
}

fn experiment_id(raw: &str) -> Result<Name, ApiError> {
    Name::parse(raw).map_err(|_| ApiError::not_found(format!("no experiment {raw:?}")))
}

async fn load(store: &dyn Store, tenant: &Name, id: &Name) -> Result<StoredExperiment, ApiError> {
    store
        .experiment(tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no experiment {:?}", id.as_str())))
}

/// Starts an experiment on a decision point.
#[utoipa::path(post, path = "/v1/experiments", tag = "experiments", request_body = ExperimentSpec,
    security(("bearer" = [])),
    responses((status = 201, body = ExperimentView), (status = 409, body = super::error::Problem),
              (status = 422, body = super::error::Problem)))]
pub async fn create(
    caller: Editor,
    State(service): State<Arc<Service>>,
    State(store): State<Arc<dyn Store>>,
    ApiJson(spec): ApiJson<ExperimentSpec>,
) -> Result<(StatusCode, Json<ExperimentView>), ApiError> {
    let experiment = service.create_experiment(&caller.tenant, spec).await?;
    let stored = load(&*store, &caller.tenant, &experiment.id).await?;
    Ok((StatusCode::CREATED, Json(view(stored)?)))
}

/// Lists the tenant's experiments.
#[utoipa::path(get, path = "/v1/experiments", tag = "experiments", security(("bearer" = [])),
    responses((status = 200, body = Vec<ExperimentView>)))]
pub async fn list(
    caller: Editor,
    State(store): State<Arc<dyn Store>>,
) -> Result<Json<Vec<ExperimentView>>, ApiError> {
    let all = store.experiments(&caller.tenant).await?;
    Ok(Json(all.into_iter().map(view).collect::<Result<_, _>>()?))
}

/// One experiment.
#[utoipa::path(get, path = "/v1/experiments/{id}", tag = "experiments", security(("bearer" = [])),
    params(("id" = String, Path, description = "experiment id")),
    responses((status = 200, body = ExperimentView), (status = 404, body = super::error::Problem)))]
pub async fn show(
    caller: Editor,
    State(store): State<Arc<dyn Store>>,
    Path(id): Path<String>,
) -> Result<Json<ExperimentView>, ApiError> {
    Ok(Json(view(
        load(&*store, &caller.tenant, &experiment_id(&id)?).await?,
    )?))
}

/// Stops an experiment; its point serves the live version again.
#[utoipa::path(post, path = "/v1/experiments/{id}/stop", tag = "experiments", security(("bearer" = [])),
    params(("id" = String, Path, description = "experiment id")),
    responses((status = 200, body = ExperimentView), (status = 404, body = super::error::Problem)))]
pub async fn stop(
    caller: Editor,
    State(service): State<Arc<Service>>,
    State(store): State<Arc<dyn Store>>,
    Path(id): Path<String>,
) -> Result<Json<ExperimentView>, ApiError> {
    let id = experiment_id(&id)?;
    service.stop_experiment(&caller.tenant, &id).await?;
    Ok(Json(view(load(&*store, &caller.tenant, &id).await?)?))
}

/// Exposures, conversions, lift with a 95% interval, p-value, chance to beat
/// control, and the sample-ratio-mismatch check.
#[utoipa::path(get, path = "/v1/experiments/{id}/results", tag = "experiments", security(("bearer" = [])),
    params(("id" = String, Path, description = "experiment id")),
    responses((status = 200, body = Results), (status = 404, body = super::error::Problem)))]
pub async fn results(
    caller: Editor,
    State(store): State<Arc<dyn Store>>,
    State(decisions): State<Arc<DecisionLog>>,
    Path(id): Path<String>,
) -> Result<Json<Results>, ApiError> {
    let id = experiment_id(&id)?;
    Ok(Json(
        compute_results(&*store, &decisions, &caller.tenant, &id).await?,
    ))
}

/// An experiment's results, from every decision made so far (the decision
/// log is flushed first) and the outcomes stored.
pub async fn compute_results(
    store: &dyn Store,
    decisions: &DecisionLog,
    tenant: &Name,
    id: &Name,
) -> Result<Results, ApiError> {
    let stored = load(store, tenant, id).await?;
    let spec: ExperimentSpec =
        serde_json::from_str(&stored.spec_json).map_err(ApiError::internal)?;
    let spec = Experiment::new(spec)
        .map_err(|e| ApiError::internal(format!("stored experiment {id}: {e}")))?
        .spec;
    // Count every decision made so far, not only those the writer has reached.
    decisions.flush().await?;
    let counts = store
        .experiment_counts(tenant, id, spec.goal.as_str())
        .await?;
    let of = |variant: &str| {
        counts
            .iter()
            .find(|(v, _)| v == variant)
            .map(|(_, c)| c.clone())
            .unwrap_or_default()
    };

    let control = of(&spec.variants[0].id);
    let control = Counts {
        n: control.exposures,
        x: control.conversions,
    };
    let variants: Vec<VariantResult> = spec
        .variants
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let c = of(&v.id);
            let counts = Counts {
                n: c.exposures,
                x: c.conversions,
            };
            let vs = (i > 0).then(|| stats::compare(control, counts));
            VariantResult {
                id: v.id.clone(),
                version: v.version,
                weight: v.weight,
                exposures: c.exposures,
                conversions: c.conversions,
                rate: counts.rate(),
                rate_ci: counts.rate_interval().map(|(lo, hi)| [lo, hi]),
                value: c.value,
                lift: vs.as_ref().and_then(|s| s.lift),
                lift_ci: vs.as_ref().and_then(|s| s.lift_ci).map(|(lo, hi)| [lo, hi]),
                p_value: vs.as_ref().and_then(|s| s.p_value),
                chance_to_beat_control: vs.as_ref().and_then(|s| s.chance_to_beat_control),
            }
        })
        .collect();
    let observed: Vec<u64> = variants.iter().map(|v| v.exposures).collect();
    let weights: Vec<f64> = variants.iter().map(|v| v.weight).collect();
    let srm_p_value = stats::srm_p_value(&observed, &weights);
    Ok(Results {
        id: id.to_string(),
        point: spec.point,
        goal: spec.goal.to_string(),
        status: if stored.running { "running" } else { "stopped" }.to_owned(),
        variants,
        srm_p_value,
        srm_warning: srm_p_value.is_some_and(|p| p < SRM_ALARM),
    })
}
