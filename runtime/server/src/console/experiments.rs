//! Experiments: the list, a form to split a point's traffic between its
//! versions, the results page (rates with their 95% intervals drawn as a
//! chart, lift, p-value, chance to beat control, the sample-ratio warning in
//! words), and stop after a confirmation.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

use super::policies::Confirm;
use super::session::SignedIn;
use super::view::{Frame, when};
use super::{CsrfOnly, Failure, check_csrf, render};
use crate::http::AppState;
use crate::http::experiments::{Results, compute_results};
use moment_core::model::Name;
use moment_core::model::experiment::{ExperimentSpec, VariantSpec};
use moment_core::model::outcome::OutcomeType;
use moment_store::VariantDay;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/experiments", get(list).post(create))
        .route("/console/new-experiment", get(new))
        .route("/console/experiments/{id}", get(results))
        .route(
            "/console/experiments/{id}/stop",
            get(confirm_stop).post(stop),
        )
}

struct ExperimentRow {
    id: String,
    point: String,
    variants: String,
    goal: String,
    running: bool,
    when: String,
}

#[derive(Template)]
#[template(path = "console/experiments.html")]
struct ListPage {
    frame: Option<Frame>,
    experiments: Vec<ExperimentRow>,
    points: Vec<String>,
}

async fn list(State(app): State<AppState>, signed: SignedIn) -> Result<Html<String>, Failure> {
    let tenant = &signed.caller.tenant;
    let mut experiments = Vec::new();
    for stored in app.store.experiments(tenant).await?.into_iter().rev() {
        let spec: ExperimentSpec = serde_json::from_str(&stored.spec_json)
            .map_err(crate::http::error::ApiError::internal)?;
        experiments.push(ExperimentRow {
            variants: spec
                .variants
                .iter()
                .map(|v| format!("{} (v{}, {:.0}%)", v.id, v.version, v.weight * 100.0))
                .collect::<Vec<_>>()
                .join(", "),
            id: spec.id,
            point: spec.point,
            goal: spec.goal.as_str().to_owned(),
            running: stored.running,
            when: when(stored.created_at_ms),
        });
    }
    let points = app
        .store
        .policies(tenant)
        .await?
        .into_iter()
        .map(|p| p.name.to_string())
        .collect();
    render(&ListPage {
        frame: Frame::new(&signed, "experiments"),
        experiments,
        points,
    })
}

/// The form's fields as typed.
#[derive(Default, Deserialize)]
struct Draft {
    #[serde(default)]
    point: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    seed: String,
    #[serde(default)]
    coverage: String,
    #[serde(default)]
    goal: String,
    #[serde(default)]
    condition: String,
    #[serde(default)]
    v0_id: String,
    #[serde(default)]
    v0_version: String,
    #[serde(default)]
    v0_weight: String,
    #[serde(default)]
    v1_id: String,
    #[serde(default)]
    v1_version: String,
    #[serde(default)]
    v1_weight: String,
    #[serde(default)]
    v2_id: String,
    #[serde(default)]
    v2_version: String,
    #[serde(default)]
    v2_weight: String,
    #[serde(default)]
    v3_id: String,
    #[serde(default)]
    v3_version: String,
    #[serde(default)]
    v3_weight: String,
}

/// One variant row of the form.
struct VariantRow {
    index: usize,
    id: String,
    version: String,
    weight: String,
}

impl Draft {
    /// The form's four variant rows.
    fn rows(&self) -> Vec<VariantRow> {
        let fields = [
            (&self.v0_id, &self.v0_version, &self.v0_weight),
            (&self.v1_id, &self.v1_version, &self.v1_weight),
            (&self.v2_id, &self.v2_version, &self.v2_weight),
            (&self.v3_id, &self.v3_version, &self.v3_weight),
        ];
        fields
            .into_iter()
            .enumerate()
            .map(|(index, (id, version, weight))| VariantRow {
                index,
                id: id.clone(),
                version: version.clone(),
                weight: weight.clone(),
            })
            .collect()
    }

    /// The experiment these fields describe, or what is wrong with them.
    fn spec(&self) -> Result<ExperimentSpec, String> {
        let mut variants = Vec::new();
        for row in self.rows() {
            if row.id.trim().is_empty() {
                continue;
            }
            let version =
                row.version.trim().parse().map_err(|_| {
                    format!("Variant {:?} needs one of the point's versions.", row.id)
                })?;
            let weight: f64 = row.weight.trim().parse().map_err(|_| {
                format!(
                    "Variant {:?}: the weight must be a number between 0 and 1.",
                    row.id
                )
            })?;
            variants.push(VariantSpec {
                id: row.id.trim().to_owned(),
                version,
                weight,
            });
        }
        let coverage = match self.coverage.trim() {
            "" => 1.0,
            text => text
                .parse()
                .map_err(|_| "Coverage must be a number between 0 and 1.".to_owned())?,
        };
        let condition = match self.condition.trim() {
            "" => None,
            text => Some(
                serde_json::from_str(text)
                    .map_err(|e| format!("The targeting condition is not JSON: {e}."))?,
            ),
        };
        let goal: OutcomeType =
            serde_json::from_value(serde_json::Value::String(self.goal.clone()))
                .map_err(|_| "Choose the outcome that counts as a conversion.".to_owned())?;
        Ok(ExperimentSpec {
            id: self.id.trim().to_owned(),
            point: self.point.clone(),
            seed: Some(self.seed.trim().to_owned()).filter(|s| !s.is_empty()),
            hash_version: 2,
            coverage,
            condition,
            namespace: None,
            variants,
            goal,
        })
    }
}

#[derive(Template)]
#[template(path = "console/experiment_new.html")]
struct NewPage {
    frame: Option<Frame>,
    csrf: String,
    draft: Draft,
    rows: Vec<VariantRow>,
    versions: Vec<u32>,
    goals: Vec<&'static str>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct ForPoint {
    point: String,
}

async fn new_page(
    app: &AppState,
    signed: &SignedIn,
    draft: Draft,
    error: Option<String>,
) -> Result<Html<String>, Failure> {
    let point = Name::parse(&draft.point).map_err(|_| {
        Failure::new(
            StatusCode::NOT_FOUND,
            format!("there is no policy named {:?}", draft.point),
        )
    })?;
    let history = app
        .store
        .history(&signed.caller.tenant, &point)
        .await?
        .ok_or_else(|| {
            Failure::new(
                StatusCode::NOT_FOUND,
                format!("there is no policy named {:?}", draft.point),
            )
        })?;
    let versions = history.versions.iter().map(|v| v.version).collect();
    render(&NewPage {
        frame: Frame::new(signed, "experiments"),
        csrf: signed.csrf.clone(),
        rows: draft.rows(),
        draft,
        versions,
        goals: ["convert", "accept", "click", "impression", "reject"].to_vec(),
        error,
    })
}

async fn new(
    State(app): State<AppState>,
    signed: SignedIn,
    Query(query): Query<ForPoint>,
) -> Result<Html<String>, Failure> {
    let live = app
        .registry
        .live(&signed.caller.tenant, &point_name(&query.point)?)
        .map(|p| p.version.to_string())
        .unwrap_or_default();
    let draft = Draft {
        point: query.point,
        coverage: "1".to_owned(),
        goal: "convert".to_owned(),
        v0_id: "control".to_owned(),
        v0_version: live,
        v0_weight: "0.5".to_owned(),
        v1_id: "treatment".to_owned(),
        v1_weight: "0.5".to_owned(),
        ..Draft::default()
    };
    new_page(&app, &signed, draft, None).await
}

fn point_name(raw: &str) -> Result<Name, Failure> {
    Name::parse(raw).map_err(|_| {
        Failure::new(
            StatusCode::NOT_FOUND,
            format!("there is no policy named {raw:?}"),
        )
    })
}

#[derive(Deserialize)]
struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    draft: Draft,
}

async fn create(
    State(app): State<AppState>,
    signed: SignedIn,
    Form(form): Form<CreateForm>,
) -> Result<Response, Failure> {
    check_csrf(&signed, &form.csrf)?;
    let spec = match form.draft.spec() {
        Ok(spec) => spec,
        Err(error) => {
            let page = new_page(&app, &signed, form.draft, Some(error)).await?;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    match app
        .service
        .create_experiment(&signed.caller.tenant, spec)
        .await
    {
        Ok(created) => {
            Ok(Redirect::to(&format!("/console/experiments/{}", created.id)).into_response())
        }
        Err(err) => {
            let failure = Failure::from(err);
            let page = new_page(&app, &signed, form.draft, Some(failure.detail)).await?;
            Ok((failure.status, page).into_response())
        }
    }
}

/// One variant's rate and its interval, placed on the chart.
struct Bar {
    id: String,
    y: u32,
    x_lo: f64,
    x_rate: f64,
    x_hi: f64,
    label: String,
}

/// One variant's row of the results table.
struct ResultRow {
    id: String,
    version: u32,
    weight: String,
    exposures: u64,
    conversions: u64,
    rate: String,
    lift: String,
    p_value: String,
    chance: String,
}

/// One variant's cumulative conversion rate, day by day, on the chart.
struct Line {
    id: String,
    colour: &'static str,
    /// SVG points of the polyline.
    points: String,
    dots: Vec<(f64, f64)>,
}

/// One day's row of the cumulative table: the day, then per variant
/// "converted / exposed (rate)".
struct DayRow {
    day: String,
    cells: Vec<String>,
}

const COLOURS: [&str; 4] = ["#1d2330", "#2456c9", "#a45a00", "#1d7a46"];
const DAY_MS: i64 = 86_400_000;

/// The cumulative chart and table from the store's per-day counts.
fn cumulative(results: &Results, days: &[VariantDay]) -> (Vec<Line>, Vec<DayRow>, String) {
    let mut all_days: Vec<i64> = days.iter().map(|d| d.day_ms).collect();
    all_days.sort_unstable();
    all_days.dedup();
    let totals: Vec<Vec<(u64, u64)>> = results
        .variants
        .iter()
        .map(|v| {
            let (mut exposed, mut converted) = (0, 0);
            all_days
                .iter()
                .map(|&day| {
                    if let Some(d) = days.iter().find(|d| d.variant == v.id && d.day_ms == day) {
                        exposed += d.exposed;
                        converted += d.converted;
                    }
                    (exposed, converted)
                })
                .collect()
        })
        .collect();
    let rate =
        |(exposed, converted): (u64, u64)| (exposed > 0).then(|| converted as f64 / exposed as f64);
    let top = totals
        .iter()
        .flatten()
        .filter_map(|&t| rate(t))
        .fold(0.0_f64, f64::max);
    let axis = ((top * 10.0).ceil() / 10.0).clamp(0.1, 1.0);
    let step = match all_days.len() {
        0 | 1 => 0.0,
        n => 560.0 / (n - 1) as f64,
    };
    let lines = results
        .variants
        .iter()
        .zip(&totals)
        .enumerate()
        .map(|(i, (v, totals))| {
            let dots: Vec<(f64, f64)> = totals
                .iter()
                .enumerate()
                .filter_map(|(d, &t)| {
                    rate(t).map(|r| (60.0 + step * d as f64, 170.0 - r / axis * 150.0))
                })
                .collect();
            Line {
                id: v.id.clone(),
                colour: COLOURS[i % COLOURS.len()],
                points: dots
                    .iter()
                    .map(|(x, y)| format!("{x:.1},{y:.1}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                dots,
            }
        })
        .collect();
    let rows = all_days
        .iter()
        .enumerate()
        .map(|(d, &day)| DayRow {
            day: when(day).chars().take(11).collect(),
            cells: totals
                .iter()
                .map(|t| {
                    let (exposed, converted) = t[d];
                    match rate(t[d]) {
                        Some(r) => format!("{converted} / {exposed} ({})", percent(r)),
                        None => "—".to_owned(),
                    }
                })
                .collect(),
        })
        .collect();
    (lines, rows, percent(axis))
}

#[derive(Template)]
#[template(path = "console/experiment.html")]
struct ResultsPage {
    frame: Option<Frame>,
    results: Results,
    rows: Vec<ResultRow>,
    bars: Vec<Bar>,
    chart_height: u32,
    axis_max: String,
    srm: Option<String>,
    lines: Vec<Line>,
    days: Vec<DayRow>,
    days_axis_max: String,
}

/// Where the chart's axis starts and how wide it is, in SVG units.
const CHART_LEFT: f64 = 140.0;
const CHART_WIDTH: f64 = 480.0;

fn percent(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

async fn results(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> Result<Html<String>, Failure> {
    let id = Name::parse(&id)
        .map_err(|_| Failure::new(StatusCode::NOT_FOUND, format!("no experiment {id:?}")))?;
    let results = compute_results(&*app.store, &app.decisions, &signed.caller.tenant, &id).await?;
    let top = results
        .variants
        .iter()
        .filter_map(|v| v.rate_ci.map(|[_, hi]| hi))
        .fold(0.0_f64, f64::max);
    // The axis ends at the next tenth above the highest interval.
    let axis = ((top * 10.0).ceil() / 10.0).clamp(0.1, 1.0);
    let x = |rate: f64| CHART_LEFT + rate / axis * CHART_WIDTH;
    let bars = results
        .variants
        .iter()
        .enumerate()
        .filter_map(|(i, v)| {
            let (rate, [lo, hi]) = (v.rate?, v.rate_ci?);
            Some(Bar {
                id: v.id.clone(),
                y: 30 + 40 * i as u32,
                x_lo: x(lo),
                x_rate: x(rate),
                x_hi: x(hi),
                label: format!("{} ({}–{})", percent(rate), percent(lo), percent(hi)),
            })
        })
        .collect();
    let rows = results
        .variants
        .iter()
        .map(|v| ResultRow {
            id: v.id.clone(),
            version: v.version,
            weight: format!("{:.0}%", v.weight * 100.0),
            exposures: v.exposures,
            conversions: v.conversions,
            rate: match (v.rate, v.rate_ci) {
                (Some(rate), Some([lo, hi])) => {
                    format!("{} (95%: {}–{})", percent(rate), percent(lo), percent(hi))
                }
                _ => "—".to_owned(),
            },
            lift: match (v.lift, v.lift_ci) {
                (Some(lift), Some([lo, hi])) => {
                    format!(
                        "{:+.1}% ({:+.1}% to {:+.1}%)",
                        lift * 100.0,
                        lo * 100.0,
                        hi * 100.0
                    )
                }
                (Some(lift), None) => format!("{:+.1}%", lift * 100.0),
                _ => "—".to_owned(),
            },
            p_value: v
                .p_value
                .map_or_else(|| "—".to_owned(), |p| format!("{p:.4}")),
            chance: v
                .chance_to_beat_control
                .map_or_else(|| "—".to_owned(), percent),
        })
        .collect();
    let srm = results.srm_warning.then(|| {
        let shares: Vec<String> = results
            .variants
            .iter()
            .map(|v| {
                format!(
                    "{} {} customers ({:.0}% expected)",
                    v.id,
                    v.exposures,
                    v.weight * 100.0
                )
            })
            .collect();
        format!(
            "The split is not what the weights ask for: {}. A difference this large happens by \
             chance less than once in a thousand experiments (p = {:.2e}), so something is \
             dropping or duplicating one variant's traffic. Do not trust these results until \
             the cause is found.",
            shares.join(", "),
            results.srm_p_value.unwrap_or(0.0)
        )
    });
    let chart_height = 40 * results.variants.len() as u32 + 40;
    let goal = results.goal.clone();
    let per_day = app
        .store
        .experiment_days(&signed.caller.tenant, &id, &goal, DAY_MS)
        .await?;
    let (lines, days, days_axis_max) = cumulative(&results, &per_day);
    render(&ResultsPage {
        lines,
        days,
        days_axis_max,
        frame: Frame::new(&signed, "experiments"),
        rows,
        bars,
        chart_height,
        axis_max: percent(axis),
        srm,
        results,
    })
}

async fn confirm_stop(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> Result<Html<String>, Failure> {
    let missing = || Failure::new(StatusCode::NOT_FOUND, format!("no experiment {id:?}"));
    let name = Name::parse(&id).map_err(|_| missing())?;
    let stored = app
        .store
        .experiment(&signed.caller.tenant, &name)
        .await?
        .ok_or_else(missing)?;
    if !stored.running {
        return Err(Failure::new(
            StatusCode::CONFLICT,
            format!("experiment {id} is stopped already"),
        ));
    }
    let id = name;
    render(&Confirm {
        frame: Frame::new(&signed, "experiments"),
        heading: format!("Stop experiment {id}?"),
        what: "Its point serves its live version to everyone again, on every server, from \
               the next request. Its results stay readable; a stopped experiment cannot be \
               restarted."
            .to_owned(),
        action: format!("/console/experiments/{id}/stop"),
        csrf: signed.csrf.clone(),
        fields: Vec::new(),
        confirm: "Stop it".to_owned(),
        back: format!("/console/experiments/{id}"),
    })
}

async fn stop(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Result<Redirect, Failure> {
    check_csrf(&signed, &form.csrf)?;
    let id = Name::parse(&id)
        .map_err(|_| Failure::new(StatusCode::NOT_FOUND, format!("no experiment {id:?}")))?;
    app.service
        .stop_experiment(&signed.caller.tenant, &id)
        .await?;
    Ok(Redirect::to(&format!("/console/experiments/{id}")))
}
