//! The customer lookup: a profile's stage, attributes and contact history.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Html;
use axum::routing::get;
use serde::Deserialize;

use super::session::SignedIn;
use super::view::{Frame, when};
use super::{Failure, render};
use crate::http::AppState;

/// One customer, as the page shows it.
struct Customer {
    stage: Option<String>,
    attributes: String,
    /// Action id, impressions, outcome counts, last shown.
    history: Vec<(String, u32, String, String)>,
}

/// One of the customer's last decisions.
struct DecisionRow {
    when: String,
    point: String,
    version: u32,
    actions: String,
    fallback: bool,
    outcomes: String,
}

/// Decisions the page lists at most.
const LAST_DECISIONS: usize = 20;

#[derive(Template)]
#[template(path = "console/customer.html")]
struct CustomerPage {
    frame: Option<Frame>,
    id: String,
    customer: Option<Customer>,
    decisions: Vec<DecisionRow>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Lookup {
    #[serde(default)]
    id: String,
}

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/console/customers", get(lookup))
}

async fn lookup(
    State(app): State<AppState>,
    signed: SignedIn,
    Query(query): Query<Lookup>,
) -> Result<Html<String>, Failure> {
    let id = query.id.trim().to_owned();
    let mut page = CustomerPage {
        frame: Frame::new(&signed, "customers"),
        id: id.clone(),
        customer: None,
        decisions: Vec::new(),
        error: None,
    };
    if !id.is_empty() {
        // Decisions not yet written behind the request are listed too,
        // unless the store is holding them back: then what it has.
        if let Err(error) = app.decisions.flush().await {
            tracing::warn!(%error, "console: the decision log could not be flushed");
        }
        page.decisions = app
            .store
            .customer_decisions(&signed.caller.tenant, &id, LAST_DECISIONS)
            .await?
            .into_iter()
            .map(|d| DecisionRow {
                when: when(d.at_ms),
                point: d.point,
                version: d.version,
                actions: d.actions.join(", "),
                fallback: d.fallback,
                outcomes: d
                    .outcomes
                    .iter()
                    .map(|(action, kind)| format!("{kind} on {action}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
            .collect();
        match app.profiles.get(&signed.caller.tenant, &id).await? {
            None if page.decisions.is_empty() => {
                page.error = Some(format!("No customer {id:?} is known yet."));
            }
            None => {}
            Some(profile) => {
                let history = profile
                    .history
                    .iter()
                    .map(|(action, h)| {
                        let outcomes = h
                            .counts
                            .iter()
                            .map(|(kind, n)| format!("{kind} {n}"))
                            .collect::<Vec<_>>()
                            .join(", ");
                        let last = h
                            .last_shown_ms
                            .map_or_else(|| "never".to_owned(), |ms| when(ms as i64));
                        (action.clone(), h.impressions, outcomes, last)
                    })
                    .collect();
                page.customer = Some(Customer {
                    stage: profile.stage.clone(),
                    attributes: serde_json::to_string_pretty(&profile.attributes)
                        .unwrap_or_default(),
                    history,
                });
            }
        }
    }
    render(&page)
}
