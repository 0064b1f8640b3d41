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

#[derive(Template)]
#[template(path = "console/customer.html")]
struct CustomerPage {
    frame: Option<Frame>,
    id: String,
    customer: Option<Customer>,
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
        error: None,
    };
    if !id.is_empty() {
        match app.profiles.get(&signed.caller.tenant, &id).await? {
            None => page.error = Some(format!("No customer {id:?} is known yet.")),
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
