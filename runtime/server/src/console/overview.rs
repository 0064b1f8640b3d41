//! The overview: each decision point with its live version, its decisions
//! and fallback share over the last hour and day (hour by hour, drawn small),
//! an open circuit breaker, its running experiments, and warnings.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;

use super::session::SignedIn;
use super::view::Frame;
use super::{Failure, render};
use crate::http::AppState;
use crate::http::experiments::compute_results;
use moment_core::clock::now_ms;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/console/overview", get(overview))
}

const HOUR_MS: i64 = 3_600_000;
/// Hours the chart shows.
const HOURS: usize = 24;

/// One hour's bar of the small chart, in SVG units.
struct HourBar {
    x: usize,
    /// Top of the decisions bar, and its height.
    y: f64,
    height: f64,
    /// The fallback part, drawn over its foot.
    fallback_y: f64,
    fallback_height: f64,
    title: String,
}

struct PointRow {
    point: String,
    live: Option<u32>,
    hour: u64,
    hour_fallback: String,
    day: u64,
    day_fallback: String,
    bars: Vec<HourBar>,
    breaker_open: bool,
    experiments: Vec<String>,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    frame: Option<Frame>,
    points: Vec<PointRow>,
    warnings: Vec<String>,
}

fn share(part: u64, whole: u64) -> String {
    match whole {
        0 => "—".to_owned(),
        _ => format!("{:.1}%", part as f64 * 100.0 / whole as f64),
    }
}

async fn overview(State(app): State<AppState>, signed: SignedIn) -> Result<Html<String>, Failure> {
    let tenant = &signed.caller.tenant;
    let now = now_ms() as i64;
    let this_hour = now - now.rem_euclid(HOUR_MS);
    let since = this_hour - (HOURS as i64 - 1) * HOUR_MS;
    let activity = app.store.activity(tenant, since, HOUR_MS).await?;
    let mut warnings = Vec::new();
    let mut points = Vec::new();
    for policy in app.store.policies(tenant).await? {
        let name = policy.name.to_string();
        let mut hours = [(0u64, 0u64); HOURS];
        for a in activity.iter().filter(|a| a.point == name) {
            let slot = ((a.bucket_ms - since) / HOUR_MS) as usize;
            if let Some(hour) = hours.get_mut(slot) {
                *hour = (a.decisions, a.fallbacks);
            }
        }
        let (hour, hour_fallbacks) = hours[HOURS - 1];
        let (day, day_fallbacks) = hours
            .iter()
            .fold((0, 0), |(d, f), &(hd, hf)| (d + hd, f + hf));
        let tallest = hours.iter().map(|h| h.0).max().unwrap_or(0).max(1) as f64;
        let bars = hours
            .iter()
            .enumerate()
            .map(|(i, &(decisions, fallbacks))| {
                let height = decisions as f64 / tallest * 36.0;
                let fallback_height = fallbacks as f64 / tallest * 36.0;
                HourBar {
                    x: i * 10,
                    y: 38.0 - height,
                    height,
                    fallback_y: 38.0 - fallback_height,
                    fallback_height,
                    title: format!(
                        "{} h ago: {decisions} decisions, {fallbacks} fallbacks",
                        HOURS - 1 - i
                    ),
                }
            })
            .collect();
        let live = app.registry.live(tenant, &policy.name);
        let breaker_open = live.as_ref().is_some_and(|p| p.breaker.is_open());
        if breaker_open {
            warnings.push(format!(
                "{name}: the live version keeps failing, so its breaker serves the fallback \
                 actions without running it. Try it to see why."
            ));
        }
        // Rising fallbacks: this hour's share well above the day's.
        if hour >= 20
            && hour_fallbacks * 20 > hour
            && hour_fallbacks * day > 2 * day_fallbacks * hour
        {
            warnings.push(format!(
                "{name}: {} of this hour's decisions fell back, against {} over the day.",
                share(hour_fallbacks, hour),
                share(day_fallbacks, day)
            ));
        }
        let mut experiments = Vec::new();
        for running in app
            .registry
            .experiments(tenant, &policy.name)
            .map(|e| {
                e.iter()
                    .map(|r| r.experiment.id.clone())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
        {
            let results = compute_results(&*app.store, &app.decisions, tenant, &running).await;
            if results.is_err() {
                warnings.push(format!(
                    "Experiment {running} on {name}: its results cannot be read now."
                ));
            }
            if results.is_ok_and(|r| r.srm_warning) {
                warnings.push(format!(
                    "Experiment {running} on {name}: the split between its variants is not \
                     what its weights ask for (sample ratio mismatch); its results cannot be \
                     trusted until the cause is found."
                ));
            }
            experiments.push(running.to_string());
        }
        points.push(PointRow {
            point: name,
            live: policy.live,
            hour,
            hour_fallback: share(hour_fallbacks, hour),
            day,
            day_fallback: share(day_fallbacks, day),
            bars,
            breaker_open,
            experiments,
        });
    }
    render(&OverviewPage {
        frame: Frame::new(&signed, "overview"),
        points,
        warnings,
    })
}
